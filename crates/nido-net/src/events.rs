//! What the network tells its driver and operator.

use std::time::Duration;

use nido_pki::DeviceId;
use nido_sec::{Cause, Supi};

use crate::amf::ConnectionId;

/// A verified erasure receipt, as the audit trail reports it (issue #16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetSeen {
    /// The device element's count of factory resets.
    pub resets: u64,
    /// When it erased the package (seconds since the Unix epoch, as the
    /// device's clock says).
    pub erased_at_unix: u64,
    /// Whether its signature was checked with the device certificate's key
    /// (the built-in DCS saw the certificate; a relayed realm's does not
    /// show it, and the K proof alone then carries the receipt).
    pub signed: bool,
}

/// The certificate a device onboarded with, as a CRL names it (RFC 5280
/// §5.1.2.3, §5.1.2.6): its issuer's name and its serialNumber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSeen {
    /// The issuer name, DER (as in the certificate).
    pub issuer: Vec<u8>,
    /// The serialNumber, big-endian.
    pub serial: Vec<u8>,
}

/// Something that happened in the network, for logs, audit and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// The DCS authenticated a device identity (EAP-TLS succeeded).
    DeviceAuthenticated {
        /// The connection.
        conn: ConnectionId,
        /// The device identity (manufacturer and IDevID serial).
        device: DeviceId,
    },
    /// A device was refused, with the 5GMM cause sent.
    Refused {
        /// The connection.
        conn: ConnectionId,
        /// The device identity, when it was known.
        device: Option<DeviceId>,
        /// The 5GMM cause.
        cause: Cause,
        /// Why, for the audit trail.
        reason: String,
        /// The identity a refused device certificate names, when the DCS's
        /// verdict was about that device (revoked, blocked, refused by
        /// policy: [`nido_pki::Refusal::device`]). The manufacturer signed
        /// it but its holder proved nothing (no CertificateVerify yet), so
        /// `device` stays `None` and the refusal counts as unauthenticated
        /// (drivers audit it within their budget); the audit entry and the
        /// device's state name it.
        presented: Option<DeviceId>,
    },
    /// A REGISTRATION REQUEST that would have started a registration
    /// procedure was refused with #22 (congestion) because
    /// [`crate::amf::Admission::max_procedures`] were in progress; the UE
    /// backs off for `t3346`. Nothing was looked at: no identity is known.
    Congested {
        /// The connection.
        conn: ConnectionId,
        /// Registration procedures in progress (the limit).
        procedures: usize,
        /// The back-off sent.
        t3346: Duration,
    },
    /// The same device identity onboarded on a second connection while its
    /// first one was active: the second was refused.
    CloneSuspected {
        /// The device identity.
        device: DeviceId,
        /// The connection in use.
        active: ConnectionId,
        /// The connection refused.
        refused: ConnectionId,
    },
    /// A device is registered for onboarding (restricted service).
    RegisteredForOnboarding {
        /// The connection.
        conn: ConnectionId,
        /// The device identity.
        device: DeviceId,
    },
    /// The PVS delivered a credential package.
    PackageDelivered {
        /// The device identity.
        device: DeviceId,
        /// The subscription.
        supi: Supi,
        /// Whether an existing subscription got a new K.
        reprovisioned: bool,
        /// The verified erasure receipt that allowed it, for a subscription
        /// its device had confirmed or validated (a factory reset).
        after_reset: Option<ResetSeen>,
        /// The certificate the device that got the package onboarded with,
        /// where the built-in DCS saw it (`None` for a relayed realm's):
        /// the store keeps it, so a CRL imported later reaches the
        /// subscription (issue #16).
        certificate: Option<CertificateSeen>,
    },
    /// The device confirmed its package: the subscription is provisioned.
    Provisioned {
        /// The device identity.
        device: DeviceId,
        /// The subscription.
        supi: Supi,
    },
    /// The operator released a subscription for re-provisioning
    /// ([`crate::SubscriptionState::Released`]): the next onboarding of its
    /// device identity gets a new K.
    Released {
        /// The device identity.
        device: DeviceId,
        /// The subscription.
        supi: Supi,
        /// Why, as the operator said.
        reason: String,
    },
    /// The operator ended a subscription's package before its validity
    /// (`nido network rekey`, issue #16 item 4): its next registration is
    /// refused (#7, protected) and the device renews it with its erasure
    /// receipt, getting a new K (and the current SUCI home network key).
    PackageEnded {
        /// The device identity.
        device: DeviceId,
        /// The subscription.
        supi: Supi,
        /// Why, as the operator said.
        reason: String,
    },
    /// 5G-AKA succeeded with a subscription (the first time: it is now active).
    Authenticated {
        /// The connection.
        conn: ConnectionId,
        /// The subscription.
        supi: Supi,
        /// Whether this activated the subscription.
        activated: bool,
    },
    /// The UDM resynchronised a subscription's SQN from an AUTS.
    Resynchronised {
        /// The subscription.
        supi: Supi,
    },
    /// A device is registered with its subscription.
    Registered {
        /// The connection.
        conn: ConnectionId,
        /// The subscription.
        supi: Supi,
    },
    /// Uplink data was delivered to the application sink.
    DataDelivered {
        /// The subscription.
        supi: Supi,
        /// Octets.
        bytes: usize,
    },
    /// Downlink data of the owner's application was sent to the device
    /// (DL NAS TRANSPORT, integrity protected and ciphered), right after
    /// one of its bursts.
    DownlinkSent {
        /// The subscription.
        supi: Supi,
        /// The device (`MANUFACTURER/SERIAL`).
        device: String,
        /// The application's reference ([`crate::Downlink::id`]).
        id: i64,
        /// Octets.
        bytes: usize,
    },
    /// Traffic an onboarding UE may not send was refused (onboarding
    /// restrictions: only the PVS is reachable).
    RestrictedTrafficRefused {
        /// The connection.
        conn: ConnectionId,
        /// What was refused.
        what: String,
    },
    /// The onboarding timer expired: the UE was deregistered with #93.
    OnboardingTimerExpired {
        /// The connection.
        conn: ConnectionId,
    },
    /// A UE deregistered.
    Deregistered {
        /// The connection.
        conn: ConnectionId,
    },
    /// A procedure was abandoned after its retransmissions ran out.
    ProcedureAbandoned {
        /// The connection.
        conn: ConnectionId,
        /// The timer.
        timer: &'static str,
    },
    /// A received PDU was discarded (bad MAC, replay, wrong state, malformed).
    Discarded {
        /// The connection.
        conn: ConnectionId,
        /// Why.
        reason: String,
    },
}

impl NetworkEvent {
    /// The event's name: its audit trail `kind`, its log message and its
    /// metrics label (`nido_network_events_total{kind}`), one place for
    /// every reader.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DeviceAuthenticated { .. } => "device_authenticated",
            Self::Refused { .. } => "refused",
            Self::Congested { .. } => "congested",
            Self::CloneSuspected { .. } => "clone_suspected",
            Self::RegisteredForOnboarding { .. } => "registered_for_onboarding",
            Self::PackageDelivered { .. } => "package_delivered",
            Self::Provisioned { .. } => "provisioned",
            Self::Released { .. } => "released",
            Self::PackageEnded { .. } => "package_ended",
            Self::Authenticated { .. } => "authenticated",
            Self::Resynchronised { .. } => "resynchronised",
            Self::Registered { .. } => "registered",
            Self::DataDelivered { .. } => "data_delivered",
            Self::DownlinkSent { .. } => "downlink_sent",
            Self::RestrictedTrafficRefused { .. } => "restricted_traffic_refused",
            Self::OnboardingTimerExpired { .. } => "onboarding_timer_expired",
            Self::Deregistered { .. } => "deregistered",
            Self::ProcedureAbandoned { .. } => "procedure_abandoned",
            Self::Discarded { .. } => "discarded",
        }
    }

    /// How loud the event is in a log ([`Loudness`]), without building its
    /// record: a driver skips the record of what anyone can send at will.
    pub fn loudness(&self) -> Loudness {
        match self {
            Self::Refused { .. } | Self::CloneSuspected { .. } => Loudness::Warn,
            // Counted (metrics, the fleet report, a summed log line),
            // never a line each: an overload or a flood must not also
            // flood the log.
            Self::Congested { .. } | Self::Discarded { .. } => Loudness::Debug,
            _ => Loudness::Info,
        }
    }

    /// What the event says, in the one shape every reader takes it in: the
    /// audit trail's row (`nido-store`'s `AuditEntry::from_event`), the
    /// server's log line (at [`EventRecord::loudness`]), the metrics label
    /// ([`NetworkEvent::kind`]). A new event is written here once; the
    /// match is exhaustive, so the compiler points here.
    pub fn record(&self) -> EventRecord {
        let mut r = EventRecord {
            kind: self.kind(),
            device: None,
            supi: None,
            cause: None,
            conn: None,
            detail: String::new(),
            loudness: self.loudness(),
        };
        match self {
            Self::DeviceAuthenticated { conn, device, .. }
            | Self::RegisteredForOnboarding { conn, device } => {
                r.conn = Some(*conn);
                r.device = Some(device.to_string());
            }
            Self::Refused {
                conn,
                device,
                cause,
                reason,
                presented,
            } => {
                r.conn = Some(*conn);
                r.device = device
                    .as_ref()
                    .or(presented.as_ref())
                    .map(ToString::to_string);
                r.cause = Some(*cause);
                r.detail.clone_from(reason);
            }
            Self::Congested {
                conn,
                procedures,
                t3346,
            } => {
                r.conn = Some(*conn);
                r.cause = Some(Cause::CONGESTION);
                r.detail = format!(
                    "{procedures} registrations in progress; T3346 {} s",
                    t3346.as_secs()
                );
            }
            Self::CloneSuspected {
                device,
                active,
                refused,
            } => {
                r.device = Some(device.to_string());
                r.detail = format!("active {active}, refused {refused}");
            }
            Self::PackageDelivered {
                device,
                supi,
                reprovisioned,
                after_reset,
                ..
            } => {
                r.device = Some(device.to_string());
                r.supi = Some(supi.to_string());
                r.detail = match (reprovisioned, after_reset) {
                    (_, Some(reset)) => format!(
                        "re-provisioned with a new K after a factory reset: erasure receipt \
                         verified (reset #{} of its element, erased {}{})",
                        reset.resets,
                        crate::iso8601::iso8601_unix(reset.erased_at_unix),
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
            Self::Provisioned { device, supi } => {
                r.device = Some(device.to_string());
                r.supi = Some(supi.to_string());
            }
            Self::Released {
                device,
                supi,
                reason,
            } => {
                r.device = Some(device.to_string());
                r.supi = Some(supi.to_string());
                r.detail.clone_from(reason);
            }
            Self::PackageEnded {
                device,
                supi,
                reason,
            } => {
                r.device = Some(device.to_string());
                r.supi = Some(supi.to_string());
                r.detail = format!(
                    "{reason} (a new K: deregistered at once if registered, else at its next registration)"
                );
            }
            Self::Authenticated {
                conn,
                supi,
                activated,
            } => {
                r.conn = Some(*conn);
                r.supi = Some(supi.to_string());
                if *activated {
                    r.detail = "activated".into();
                }
            }
            Self::Resynchronised { supi } => r.supi = Some(supi.to_string()),
            Self::Registered { conn, supi } => {
                r.conn = Some(*conn);
                r.supi = Some(supi.to_string());
            }
            Self::DataDelivered { supi, bytes } => {
                r.supi = Some(supi.to_string());
                r.detail = format!("{bytes} octets");
            }
            Self::DownlinkSent {
                supi,
                device,
                id,
                bytes,
            } => {
                r.supi = Some(supi.to_string());
                r.device = Some(device.clone());
                r.detail = format!("downlink {id}: {bytes} octets");
            }
            Self::RestrictedTrafficRefused { conn, what } => {
                r.conn = Some(*conn);
                r.detail.clone_from(what);
            }
            Self::OnboardingTimerExpired { conn } | Self::Deregistered { conn } => {
                r.conn = Some(*conn);
            }
            Self::ProcedureAbandoned { conn, timer } => {
                r.conn = Some(*conn);
                r.detail = (*timer).to_owned();
            }
            Self::Discarded { conn, reason } => {
                r.conn = Some(*conn);
                r.detail.clone_from(reason);
            }
        }
        r
    }

    /// Whether this event reports a change of a subscription that the
    /// network wrote together with its audit entry
    /// ([`crate::Store::put_subscription_audited`]): a package delivered, a
    /// subscription provisioned or activated. A driver keeping an audit
    /// trail records every other event itself, and not these.
    pub fn recorded_with_change(&self) -> bool {
        matches!(
            self,
            Self::PackageDelivered { .. }
                | Self::Provisioned { .. }
                | Self::Released { .. }
                | Self::PackageEnded { .. }
                | Self::Authenticated {
                    activated: true,
                    ..
                }
        )
    }
}

/// How loud an event is in a server's log: what an operator must see
/// ([`Loudness::Warn`]), what tells the story of a device
/// ([`Loudness::Info`]), and what anyone on the access link can cause at
/// will ([`Loudness::Debug`]: counted, never a line each at the default
/// level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loudness {
    /// A refusal or a suspected clone.
    Warn,
    /// A step of a device's life.
    Info,
    /// Discarded PDUs, congestion rejects.
    Debug,
}

/// A [`NetworkEvent`] as every reader takes it ([`NetworkEvent::record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// [`NetworkEvent::kind`].
    pub kind: &'static str,
    /// The device identity (`MANUFACTURER/SERIAL`), when known.
    pub device: Option<String>,
    /// The SUPI (`imsi-…`), when known.
    pub supi: Option<String>,
    /// The 5GMM cause sent, for refusals and congestion.
    pub cause: Option<Cause>,
    /// The access link connection, when the event happened on one. Logs
    /// show it at debug level only: it is what an off-path attacker would
    /// need to aim at a device.
    pub conn: Option<ConnectionId>,
    /// What else there is to say (a reason, counts), without the
    /// connection.
    pub detail: String,
    /// How loud it is in a log.
    pub loudness: Loudness,
}

impl EventRecord {
    /// The audit trail's detail: the connection, then the detail
    /// (`conn: detail`), either alone when the other is missing.
    pub fn audit_detail(&self) -> String {
        match (self.conn, self.detail.is_empty()) {
            (Some(conn), true) => conn.to_string(),
            (Some(conn), false) => format!("{conn}: {}", self.detail),
            (None, _) => self.detail.clone(),
        }
    }
}
