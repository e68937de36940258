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

    /// The entry for a [`NetworkEvent`] observed at `at` (unix seconds).
    pub fn from_event(at: u64, event: &NetworkEvent) -> Self {
        let mut e = Self::new(at, event.kind(), "");
        match event {
            NetworkEvent::DeviceAuthenticated { conn, device, .. } => {
                e.device = Some(device.to_string());
                e.detail = conn.to_string();
            }
            NetworkEvent::Refused {
                conn,
                device,
                cause,
                reason,
                presented,
            } => {
                e.device = device
                    .as_ref()
                    .or(presented.as_ref())
                    .map(ToString::to_string);
                e.cause = Some(cause.octet());
                e.detail = format!("{conn}: {reason}");
            }
            NetworkEvent::Congested {
                conn,
                procedures,
                t3346,
            } => {
                e.cause = Some(22);
                e.detail = format!(
                    "{conn}: {procedures} registrations in progress; T3346 {} s",
                    t3346.as_secs()
                );
            }
            NetworkEvent::CloneSuspected {
                device,
                active,
                refused,
            } => {
                e.device = Some(device.to_string());
                e.detail = format!("active {active}, refused {refused}");
            }
            NetworkEvent::RegisteredForOnboarding { conn, device } => {
                e.device = Some(device.to_string());
                e.detail = conn.to_string();
            }
            NetworkEvent::PackageDelivered {
                device,
                supi,
                reprovisioned,
                after_reset,
                ..
            } => {
                e.device = Some(device.to_string());
                e.supi = Some(supi.to_string());
                e.detail = match (reprovisioned, after_reset) {
                    (_, Some(reset)) => format!(
                        "re-provisioned with a new K after a factory reset: erasure receipt \
                         verified (reset #{} of its element, erased {}{})",
                        reset.resets,
                        iso8601_unix(reset.erased_at_unix),
                        if reset.signed {
                            ", signed by its IDevID key"
                        } else {
                            "; relayed realm, K proof only"
                        }
                    ),
                    (true, None) => "re-provisioned with a new K".into(),
                    (false, None) => "new subscription".into(),
                };
            }
            NetworkEvent::Provisioned { device, supi } => {
                e.device = Some(device.to_string());
                e.supi = Some(supi.to_string());
            }
            NetworkEvent::Released {
                device,
                supi,
                reason,
            } => {
                e.device = Some(device.to_string());
                e.supi = Some(supi.to_string());
                e.detail.clone_from(reason);
            }
            NetworkEvent::PackageEnded {
                device,
                supi,
                reason,
            } => {
                e.device = Some(device.to_string());
                e.supi = Some(supi.to_string());
                e.detail = format!(
                    "{reason} (a new K: deregistered at once if registered, else at its next registration)"
                );
            }
            NetworkEvent::Authenticated {
                conn,
                supi,
                activated,
            } => {
                e.supi = Some(supi.to_string());
                e.detail = if *activated {
                    format!("{conn}: activated")
                } else {
                    conn.to_string()
                };
            }
            NetworkEvent::Resynchronised { supi } => {
                e.supi = Some(supi.to_string());
            }
            NetworkEvent::Registered { conn, supi } => {
                e.supi = Some(supi.to_string());
                e.detail = conn.to_string();
            }
            NetworkEvent::DataDelivered { supi, bytes } => {
                e.supi = Some(supi.to_string());
                e.detail = format!("{bytes} octets");
            }
            NetworkEvent::DownlinkSent {
                supi,
                device,
                id,
                bytes,
            } => {
                e.supi = Some(supi.to_string());
                e.device = Some(device.clone());
                e.detail = format!("downlink {id}: {bytes} octets");
            }
            NetworkEvent::RestrictedTrafficRefused { conn, what } => {
                e.detail = format!("{conn}: {what}");
            }
            NetworkEvent::OnboardingTimerExpired { conn } => {
                e.detail = conn.to_string();
            }
            NetworkEvent::Deregistered { conn } => {
                e.detail = conn.to_string();
            }
            NetworkEvent::ProcedureAbandoned { conn, timer } => {
                e.detail = format!("{conn}: {timer}");
            }
            NetworkEvent::Discarded { conn, reason } => {
                e.detail = format!("{conn}: {reason}");
            }
            other => e.detail = format!("{other:?}"),
        }
        e
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

/// `secs` after the Unix epoch as [`iso8601`], for a number that came from
/// outside (a device's clock): one the platform's time cannot hold is
/// shown as the number, never a panic.
pub fn iso8601_unix(secs: u64) -> String {
    match std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)) {
        Some(t) => iso8601(t),
        None => format!("{secs} s after 1970-01-01T00:00:00Z"),
    }
}

/// `t` as an ISO 8601 UTC time to the millisecond (`2026-12-06T04:46:16.123Z`),
/// the form every human-facing time of nido takes.
pub fn iso8601(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a proleptic Gregorian date (the era-based
    // civil-from-days conversion: 400-year eras of 146,097 days).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}
