//! Rows of the operator tables, as the extra [`crate::SqlStore`] methods
//! return them, and the audit trail's entries.

use nido_net::NetworkEvent;
use nido_pki::Policy;

/// One line of the append-only audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: u64,
    /// What happened, e.g. `refused`, `package_delivered` (snake case).
    pub kind: String,
    /// The device identity (`MANUFACTURER/SERIAL`), when known.
    pub device: Option<String>,
    /// The SUPI (`imsi-…`), when known.
    pub supi: Option<String>,
    /// The 5GMM cause sent, for refusals.
    pub cause: Option<u8>,
    /// Free text: connection, reason, counts.
    pub detail: String,
}

impl AuditEntry {
    /// An entry with only a kind and a detail.
    pub fn new(at: u64, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            at,
            kind: kind.to_owned(),
            device: None,
            supi: None,
            cause: None,
            detail: detail.into(),
        }
    }

    /// The entry for a [`NetworkEvent`] observed at `at` (unix seconds):
    /// its one record ([`NetworkEvent::record`]) as a row.
    pub fn from_event(at: u64, event: &NetworkEvent) -> Self {
        let r = event.record();
        Self {
            at,
            kind: r.kind.to_owned(),
            detail: r.audit_detail(),
            device: r.device,
            supi: r.supi,
            cause: r.cause.map(|c| c.octet()),
        }
    }
}

/// A device the network has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The IDevID serial.
    pub serial: String,
    /// The last state reported by [`crate::SqlStore::touch_device`].
    pub state: String,
    /// Unix seconds of the first sighting.
    pub first_seen: u64,
    /// Unix seconds of the last sighting.
    pub last_seen: u64,
}

/// An enrolled manufacturer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManufacturerRecord {
    /// Its name in the trust store.
    pub name: String,
    /// Its root certificate, DER.
    pub root_der: Vec<u8>,
    /// Its policy.
    pub policy: Policy,
}

/// A manufacturer's CRL, with the CA certificate that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// The manufacturer's name.
    pub manufacturer: String,
    /// The CRL, DER.
    pub crl_der: Vec<u8>,
    /// The certificate of the CA that signed it (the root or its issuing CA), DER.
    pub issuer_der: Vec<u8>,
    /// Its thisUpdate, unix seconds.
    pub this_update: u64,
}

/// A blocked device identity (`serial` holds `MANUFACTURER/SERIAL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRecord {
    /// The IDevID serial.
    pub serial: String,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub at: u64,
    /// Whether the block waits for the device's next registration (a
    /// registration under way is not ended).
    pub deferred: bool,
}

/// One credential package delivered, as `put_subscription` logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningRecord {
    /// The package id.
    pub package_id: [u8; 16],
    /// The device identity.
    pub device: String,
    /// The SUPI (`imsi-…`).
    pub supi: String,
    /// Unix seconds (the store's clock).
    pub at: u64,
    /// Whether an existing subscription got a new K.
    pub reprovisioned: bool,
}

pub use nido_net::iso8601::{iso8601, iso8601_unix};
