//! A ready manufacturer, trust store and DCS, and devices of that
//! manufacturer: what tests, benches, traces and the simulator start from.
//!
//! Real certificates (nido-pki) and real keys; nothing is stubbed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_pki::{
    DeviceId, DeviceIdentity, DeviceProfile, Manufacturer, PkiError, Policy, TrustStore, Validity,
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

    /// The network's identity for this manufacturer's device `serial`
    /// (the manufacturer is enrolled under its own name).
    pub fn device_id(&self, serial: &str) -> Result<DeviceId, PkiError> {
        DeviceId::new(self.manufacturer.name(), serial)
    }

    /// A world with a second manufacturer enrolled at the same operator,
    /// the adversary of issue #17: it holds a valid enrollment (its own
    /// root, CRL and DCS certificate, as `nido network trust-manufacturer`
    /// gives it, with no serial policy) and issues certificates with any
    /// serial it likes, such as the serial of a device of `name`. Both
    /// DCSes validate against one trust store holding both manufacturers.
    pub fn with_rogue(
        name: &str,
        rogue: &str,
        now: SystemTime,
    ) -> Result<(Self, RogueManufacturer), FixtureError> {
        let manufacturer = Manufacturer::generate(name, now)?;
        let rogue_mfr = Manufacturer::generate(rogue, now)?;
        let mut trust = TrustStore::new();
        let lifetime = now + Duration::from_secs(10 * 365 * 86_400);
        for (m, policy) in [
            (&manufacturer, Policy::for_manufacturer(&manufacturer)),
            (&rogue_mfr, Policy::default()),
        ] {
            trust.enroll(m.name(), m.root_der().clone(), policy)?;
            let empty = m.crl(&[], now - Duration::from_secs(60), lifetime, 0)?;
            trust.add_crl(m.name(), &empty, m.issuing_der())?;
        }
        let trust = Arc::new(trust);
        let dcs_of = |m: &Manufacturer| -> Result<DcsCredentials, FixtureError> {
            let id = m.issue_dcs(m.dcs_realm(), Validity::days(now, 365))?;
            Ok(DcsCredentials::new(
                id.chain.clone(),
                &PrivateKeyDer::Pkcs8(id.key.clone_key()),
                Arc::clone(&trust),
            )?)
        };
        let dcs = dcs_of(&manufacturer)?;
        let rogue_dcs = dcs_of(&rogue_mfr)?;
        Ok((
            Self {
                now,
                manufacturer,
                dcs,
            },
            RogueManufacturer {
                manufacturer: rogue_mfr,
                dcs: rogue_dcs,
            },
        ))
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

/// A second manufacturer enrolled next to an [`Onboarding`]'s
/// ([`Onboarding::with_rogue`]): a test tool for what one manufacturer can
/// do to another's devices.
#[derive(Debug)]
pub struct RogueManufacturer {
    /// The rogue manufacturer.
    pub manufacturer: Manufacturer,
    /// Its DCS credentials (the operator's DCS for the rogue's realm).
    pub dcs: DcsCredentials,
}

impl RogueManufacturer {
    /// A device certificate with `serial`, whatever manufacturer's serial
    /// it imitates, and the EAP-TLS credentials of a device holding it.
    pub fn issue_device(
        &self,
        serial: &str,
        profile: &DeviceProfile,
    ) -> Result<(DeviceIdentity, DeviceCredentials), FixtureError> {
        let id = self.manufacturer.issue_device(serial, profile)?;
        let creds = DeviceCredentials::with_software_key(
            id.chain.clone(),
            &PrivateKeyDer::Pkcs8(id.key.clone_key()),
            self.manufacturer.root_der().clone(),
            self.manufacturer.dcs_realm(),
        )?;
        Ok((id, creds))
    }

    /// The network's identity for the rogue's device `serial`.
    pub fn device_id(&self, serial: &str) -> Result<DeviceId, PkiError> {
        DeviceId::new(self.manufacturer.name(), serial)
    }
}
