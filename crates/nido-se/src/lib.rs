//! # nido-se: the device's secure store
//!
//! A [`SecureElement`] holds what a device must never expose: the private
//! key of its manufacturer identity (IDevID), the provisioning key pair it
//! generates for one provisioning, and, once provisioned, the subscription's
//! K and OPc. It signs, agrees keys and runs MILENAGE inside; callers get
//! signatures, public keys, RES* and K_AUSF, never the secrets.
//!
//! Three backends implement the trait:
//!
//! - [`MemorySe`]: in process memory, for simulation and tests; forgets
//!   everything when dropped.
//! - [`FileSe`]: the default device vault, one directory with a device
//!   storage key file and an AES-256-GCM encrypted vault file rewritten
//!   atomically on every state change (see [`mod@file`] for the threat model).
//! - [`Pkcs11Se`]: a PKCS#11 token (SoftHSM2 in tests, a hardware token or
//!   secure element on a device): the IDevID key and K are non-extractable
//!   token objects; TLS signatures and every AES block of MILENAGE
//!   (TS 35.206) are computed inside the token (see [`mod@pkcs11`]).
//!
//! ## Invariants
//! - No method returns K, OPc or a private key; `Debug` redacts them.
//! - With [`Pkcs11Se`], K never leaves the token: it is created there as a
//!   sensitive, non-extractable AES key and used only through `CKM_AES_ECB`.
//! - The SQN window only moves forward: a challenge is answered only after
//!   the window accepted its SQN, and the persisting backends ([`FileSe`],
//!   [`Pkcs11Se`]) write the advanced window to storage *before* RES* is
//!   returned; if that write fails, the challenge is not answered.
//! - Every state change of a persisting backend is durable before the method
//!   returns (the vault is written before it is used); a power cut leaves the
//!   old state or the new one, never a mixture (a PKCS#11 installation cut
//!   between its two commit steps leaves no subscription: the device
//!   onboards again). The one exception is [`Pkcs11Se`]'s provisioning key,
//!   which lives in host memory for one provisioning by design.
//! - A provisioning key is single-use: it is erased once a package is
//!   installed or a new one is generated.
//! - A factory reset ([`SecureElement::reset`]) leaves an erasure receipt
//!   that is durable no later than the erasure; it is presented only while
//!   no new package is installed.
//! - A package is installed only if it opens under K_PROV, the key the
//!   device derived from its onboarding EAP-TLS session's K_AUSF (HPKE PSK
//!   mode): one sealed by anyone but the network that authenticated the
//!   device is refused ([`SeError::Sealed`]) and nothing of it is kept.

pub mod file;
mod memory;
mod milenage;
pub mod pkcs11;
mod vault;

use std::path::PathBuf;
use std::sync::Arc;

use nido_prov::package::{Binding, PublicPart, SealedPackage};
use nido_prov::{ErasureReceipt, ProvError};
use nido_sec::aka::{AkaFailure, UeAka};
use nido_sec::{KProv, SqnWindow};
use thiserror::Error;

pub use file::FileSe;
pub use memory::MemorySe;
pub use pkcs11::{Pkcs11Config, Pkcs11Se};

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
    /// The sealed package does not open or does not decode
    /// ([`nido_prov::package::open`]): [`ProvError::Open`] for a package not
    /// sealed under this device's K_PROV (a sender that did not authenticate
    /// the device in phase A, or HPKE base mode), a wrong binding or a
    /// modified octet; [`ProvError::Version`] for another format version.
    #[error("credential package refused: {0}")]
    Sealed(#[source] ProvError),
    /// The opened package is invalid, or cannot be kept.
    #[error("credential package refused: {0}")]
    Package(String),
    /// A file of the vault could not be read, written or synced.
    #[error("{}: {op}: {reason}", .path.display())]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("write", "fsync", "rename", ...).
        op: &'static str,
        /// The operating system's error kind.
        kind: std::io::ErrorKind,
        /// The operating system's message.
        reason: String,
    },
    /// The device storage key file does not exist.
    #[error("{}: device storage key file is missing (was the vault created with FileSe::create, or moved without its key?)", .path.display())]
    KeyFileMissing {
        /// The expected key file.
        path: PathBuf,
    },
    /// The device storage key file is not 32 octets.
    #[error("{}: device storage key file must be exactly 32 octets, it has {len}", .path.display())]
    KeyFileInvalid {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A key file (the device storage key, or a network key file checked
    /// with [`file::refuse_open_mode`]) is accessible to others than its owner.
    #[error("{}: key file has mode {mode:04o}, readable by others than its owner; refusing anything wider than 0600 (chmod 600 {})", .path.display(), .path.display())]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// There is no vault file in the directory.
    #[error("{}: no vault here (FileSe::create makes one)", .path.display())]
    VaultMissing {
        /// The expected vault file.
        path: PathBuf,
    },
    /// `create` found a vault already.
    #[error("{}: a vault exists already (open it instead)", .path.display())]
    VaultExists {
        /// The vault file.
        path: PathBuf,
    },
    /// The vault file does not decrypt or does not parse.
    #[error("{}: corrupt or not this device's vault: {reason}", .path.display())]
    VaultCorrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vault file has a format version this build does not read.
    #[error("{}: vault format version {found} is not supported (this build reads version {supported})", .path.display())]
    VaultVersion {
        /// The vault file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// No initialised PKCS#11 token has the configured label.
    #[error("{}: no initialised token labelled {label:?}", .module.display())]
    TokenNotFound {
        /// The PKCS#11 module.
        module: PathBuf,
        /// The token label looked for.
        label: String,
    },
    /// A PKCS#11 call failed, or the token's content is not what nido stored.
    #[error("PKCS#11 {op}: {reason}")]
    Token {
        /// What was being done.
        op: &'static str,
        /// The token's answer (a CKR_ value's description) or what is wrong.
        reason: String,
    },
}

/// A fresh X25519 provisioning key pair (every backend keeps the private
/// half for the one provisioning it serves).
pub(crate) fn provisioning_key_pair() -> Result<(nido_sec::PrivateKey32, [u8; 32]), SeError> {
    nido_prov::package::generate_device_key().map_err(|e| SeError::Crypto(e.to_string()))
}

/// Opens a sealed package with the provisioning private key and K_PROV
/// (HPKE PSK mode, RFC 9180 §5.1.2) and checks what it holds: the step
/// every backend runs before it keeps K and OPc.
pub(crate) fn open_package(
    sealed: &SealedPackage,
    private: &nido_sec::PrivateKey32,
    binding: &Binding,
    k_prov: &KProv,
) -> Result<nido_prov::package::CredentialPackage, SeError> {
    let opened =
        nido_prov::package::open(sealed, private, binding, k_prov).map_err(SeError::Sealed)?;
    opened
        .validate()
        .map_err(|e| SeError::Package(e.to_string()))?;
    Ok(opened)
}

/// Builds the receipt of a reset ([`SecureElement::reset`]): `prove` makes
/// its proof under the erased K, inside the element
/// ([`ErasureReceipt::proof_with`] where K is in memory), `idevid` signs
/// (ECDSA P-256 SHA-256, the IDevID key type nido issues).
pub(crate) fn make_receipt(
    idevid: &dyn rustls::sign::SigningKey,
    serial: &str,
    package_id: [u8; 16],
    counter: u64,
    erased_at_unix: u64,
    prove: impl FnOnce(&ErasureReceipt) -> Result<[u8; 32], SeError>,
) -> Result<ErasureReceipt, SeError> {
    if serial.is_empty() || serial.len() > nido_prov::receipt::MAX_SERIAL_LEN {
        return Err(SeError::Crypto(format!(
            "device serial must be 1 to {} octets for a receipt",
            nido_prov::receipt::MAX_SERIAL_LEN
        )));
    }
    let mut receipt = ErasureReceipt {
        serial: serial.to_owned(),
        package_id,
        counter,
        erased_at_unix,
        proof: [0; 32],
        signature: Vec::new(),
    };
    receipt.proof = prove(&receipt)?;
    let signer = idevid
        .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
        .ok_or_else(|| {
            SeError::IdentityKey("the IDevID key cannot sign ECDSA P-256 SHA-256".into())
        })?;
    receipt.signature = signer
        .sign(&receipt.signed_octets())
        .map_err(|e| SeError::Crypto(format!("signing the erasure receipt: {e}")))?;
    Ok(receipt)
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
    /// (consumed: single use) and `k_prov`, inside the element; keeps K and
    /// OPc, replacing any previous subscription and resetting the SQN
    /// window; returns the public part and the confirmation MAC for the PVS.
    ///
    /// `k_prov` is K_PROV of the onboarding EAP-TLS session
    /// ([`nido_sec::kdf::kprov`] of its K_AUSF): a package not sealed with it
    /// (by a network that did not authenticate this device) is refused with
    /// [`SeError::Sealed`] and nothing is kept.
    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError>;

    /// Whether a subscription is installed.
    fn has_subscription(&self) -> bool;

    /// The public part of the installed subscription (SUPI, home network
    /// key, serving network, third-party credentials, ...), so that a
    /// restarted device knows it without asking the network. `None` without
    /// a subscription.
    ///
    /// The default returns `None`; every backend of this crate overrides it,
    /// and a wrapper should forward it.
    fn installed(&self) -> Option<PublicPart> {
        None
    }

    /// Erases the subscription, without a receipt (the device forgets
    /// credentials it cannot use; a factory reset is [`SecureElement::reset`]).
    fn erase_subscription(&mut self);

    /// Factory reset with proof of erasure (issue #16): erases the
    /// subscription (K, OPc, the SQN window and the public part with the
    /// owner's third-party credentials) and any provisioning key, and keeps
    /// an [`ErasureReceipt`] for the package erased: device `serial`, the
    /// package id, this element's count of resets, `erased_at_unix`, a
    /// MILENAGE proof keyed by the erased K (computed inside, before K goes)
    /// and the IDevID key's signature. A persisting backend makes the
    /// receipt durable no later than the erasure, so no power cut leaves
    /// the credentials gone without a receipt. Without a subscription:
    /// [`SeError::NoSubscription`], and an earlier receipt stays.
    fn reset(&mut self, serial: &str, erased_at_unix: u64) -> Result<ErasureReceipt, SeError>;

    /// The receipt of the last [`SecureElement::reset`], while no package
    /// was installed since (a device presents it in its next provisioning
    /// request; once a new package is installed it is spent).
    fn erasure_receipt(&self) -> Option<ErasureReceipt>;

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

/// An I/O error as a [`SeError::Storage`].
pub(crate) fn storage(path: &std::path::Path, op: &'static str, e: &std::io::Error) -> SeError {
    SeError::Storage {
        path: path.to_path_buf(),
        op,
        kind: e.kind(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod trait_tests {
    use super::*;

    fn _object_safe(_: &dyn SecureElement) {}

    fn _send<T: Send>() {}

    #[test]
    fn backends_are_send() {
        _send::<MemorySe>();
        _send::<FileSe>();
        _send::<Pkcs11Se>();
        _send::<Box<dyn SecureElement>>();
    }
}
