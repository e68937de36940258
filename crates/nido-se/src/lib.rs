//! # nido-se: the device's secure store
//!
//! A [`SecureElement`] holds what a device must never expose: the private
//! key of its manufacturer identity (IDevID), the provisioning key pair it
//! generates for one provisioning, and, once provisioned, the subscription's
//! K and OPc. It signs, agrees keys and runs MILENAGE inside; callers get
//! signatures, public keys, RES* and K_AUSF, never the secrets.
//!
//! [`MemorySe`] is the in-memory element for simulation and tests; the file
//! vault and PKCS#11 backends implement the same trait.
//!
//! ## Invariants
//! - No method returns K, OPc or a private key; `Debug` redacts them.
//! - The SQN window only moves forward: a challenge is answered only after
//!   the window accepted its SQN (persisting backends write it first).
//! - A provisioning key is single-use: it is erased once a package is
//!   installed or a new one is generated.

mod memory;

use std::sync::Arc;

use nido_prov::package::{Binding, PublicPart, SealedPackage};
use nido_sec::SqnWindow;
use nido_sec::aka::{AkaFailure, UeAka};
use thiserror::Error;

pub use memory::MemorySe;

/// Why the element refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SeError {
    /// No subscription is installed.
    #[error("no subscription installed")]
    NoSubscription,
    /// No provisioning key was generated (or it was already used).
    #[error("no provisioning key")]
    NoProvisioningKey,
    /// The IDevID key could not be loaded.
    #[error("identity key: {0}")]
    IdentityKey(String),
    /// A cryptographic operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The sealed package does not open (tampered, not ours, wrong binding) or is invalid.
    #[error("credential package refused: {0}")]
    Package(String),
}

/// What installing a package yields outside the element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Everything but K and OPc.
    pub public: PublicPart,
    /// The confirmation MAC over the package id, keyed from the package.
    pub confirmation_mac: [u8; 32],
}

/// The secure element's interface.
pub trait SecureElement: Send {
    /// A signer for the IDevID key (TLS CertificateVerify); the key stays inside.
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey>;

    /// Generates a fresh X25519 provisioning key pair, replacing any previous
    /// one, and returns the public key.
    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError>;

    /// Opens a sealed credential package with the provisioning private key
    /// (consumed: single use), inside the element; keeps K and OPc, replacing
    /// any previous subscription and resetting the SQN window; returns the
    /// public part and the confirmation MAC for the PVS.
    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
    ) -> Result<Installed, SeError>;

    /// Whether a subscription is installed.
    fn has_subscription(&self) -> bool;

    /// Erases the subscription (factory reset).
    fn erase_subscription(&mut self);

    /// Answers a 5G-AKA challenge inside the element (TS 33.501 §6.1.3.2):
    /// MAC-A, SQN freshness (advancing the window on success only), RES*, K_AUSF.
    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError>;

    /// The SQN window, for persistence.
    fn sqn_window(&self) -> Option<SqnWindow>;
}

/// A failed authentication: the element could not run, or 5G-AKA failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SeAkaError {
    /// The element refused.
    #[error(transparent)]
    Element(#[from] SeError),
    /// 5G-AKA failed (MAC failure, synch failure with AUTS, not 5G).
    #[error(transparent)]
    Aka(#[from] AkaFailure),
}
