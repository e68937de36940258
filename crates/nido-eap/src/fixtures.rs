//! A ready manufacturer, trust store and DCS, and devices of that
//! manufacturer: what tests, benches, traces and the simulator start from.
//!
//! Real certificates (nido-pki) and real keys; nothing is stubbed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_pki::{
    DeviceIdentity, DeviceProfile, Manufacturer, PkiError, Policy, TrustStore, Validity,
};
use rustls::pki_types::PrivateKeyDer;

use crate::{DcsCredentials, DeviceCredentials, EapError};

/// Why a fixture could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The PKI refused.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The EAP-TLS credentials could not be built.
    #[error(transparent)]
    Eap(#[from] EapError),
}

/// A manufacturer enrolled at an operator whose DCS it certified.
#[derive(Debug)]
pub struct Onboarding {
    /// When the certificates start (and the handshakes run).
    pub now: SystemTime,
    /// The manufacturer.
    pub manufacturer: Manufacturer,
    /// The DCS's credentials, trusting this manufacturer only.
    pub dcs: DcsCredentials,
}

impl Onboarding {
    /// A manufacturer named `name`, enrolled with its own policy, and a DCS
    /// certificate for its realm valid for a year.
    pub fn new(name: &str, now: SystemTime) -> Result<Self, FixtureError> {
        Self::with_trust(name, now, |_, _| Ok(()))
    }

    /// As [`Onboarding::new`], letting `adjust` change the trust store (add
    /// a CRL, block a serial) before the DCS takes it. The store starts with
    /// an empty CRL of the issuing CA (number 0, valid ten years).
    pub fn with_trust(
        name: &str,
        now: SystemTime,
        adjust: impl FnOnce(&Manufacturer, &mut TrustStore) -> Result<(), PkiError>,
    ) -> Result<Self, FixtureError> {
        let manufacturer = Manufacturer::generate(name, now)?;
        let mut trust = TrustStore::new();
        trust.enroll(
            manufacturer.name(),
            manufacturer.root_der().clone(),
            Policy::for_manufacturer(&manufacturer),
        )?;
        // A current CRL of the issuing CA, listing nothing, numbered 0 (any
        // CRL `adjust` adds replaces it): the default policy refuses a
        // device whose issuer has no CRL (revocation status unknown).
        let empty = manufacturer.crl(
            &[],
            now - Duration::from_secs(60),
            now + Duration::from_secs(10 * 365 * 86_400),
            0,
        )?;
        trust.add_crl(manufacturer.name(), &empty, manufacturer.issuing_der())?;
        adjust(&manufacturer, &mut trust)?;
        let id = manufacturer.issue_dcs(manufacturer.dcs_realm(), Validity::days(now, 365))?;
        let dcs = DcsCredentials::new(
            id.chain.clone(),
            &PrivateKeyDer::Pkcs8(id.key.clone_key()),
            Arc::new(trust),
        )?;
        Ok(Self {
            now,
            manufacturer,
            dcs,
        })
    }

    /// Device number `n` with `profile`: its identity and the EAP-TLS
    /// credentials of a device holding it (software key).
    pub fn device(
        &self,
        n: u64,
        profile: &DeviceProfile,
    ) -> Result<(DeviceIdentity, DeviceCredentials), FixtureError> {
        let id = self
            .manufacturer
            .issue_device(&self.manufacturer.device_serial(n), profile)?;
        let creds = self.credentials(&id)?;
        Ok((id, creds))
    }

    /// The EAP-TLS credentials of a device holding `id`, trusting this manufacturer.
    pub fn credentials(&self, id: &DeviceIdentity) -> Result<DeviceCredentials, FixtureError> {
        Ok(DeviceCredentials::with_software_key(
            id.chain.clone(),
            &PrivateKeyDer::Pkcs8(id.key.clone_key()),
            self.manufacturer.root_der().clone(),
            self.manufacturer.dcs_realm(),
        )?)
    }
}
