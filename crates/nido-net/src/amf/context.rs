//! The AMF's per-UE context: its 5GMM state and what each state keeps.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use nido_eap::EapTlsServer;
use nido_nas::build::Nas5gsMessage;
use nido_nas::security::{Protection, SecurityContext};
use nido_nas::view::Guti5g;
use nido_sec::{KAmf, KProv, Supi};

use crate::ausf::AkaSession;

/// The AMF's timers (TS 24.501 §10.2) plus nido's onboarding timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// AUTHENTICATION REQUEST and SECURITY MODE COMMAND retransmission.
    T3560,
    /// REGISTRATION ACCEPT retransmission (a 5G-GUTI was assigned).
    T3550,
    /// Network-initiated DEREGISTRATION REQUEST retransmission
    /// (TS 24.501 §5.5.2.3.1).
    T3522,
    /// The onboarding registration's lifetime (design doc step 6, #93).
    Onboarding,
    /// How long a deregistered context is kept to answer a retransmitted
    /// DEREGISTRATION REQUEST.
    Tombstone,
    /// How long a relayed authentication waits for the external DCS's
    /// answer ([`super::NetworkConfig::aaa_timeout`]).
    Aaa,
}

impl TimerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::T3560 => "T3560",
            Self::T3550 => "T3550",
            Self::T3522 => "T3522",
            Self::Onboarding => "onboarding",
            Self::Tombstone => "tombstone",
            Self::Aaa => "AAA",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    pub(crate) kind: TimerKind,
    pub(crate) retransmissions: u32,
    pub(crate) generation: u64,
}

/// How the UE is being authenticated.
pub(crate) enum Authentication {
    /// EAP-TLS with the DCS (phase A).
    EapTls(Box<EapTlsServer>),
    /// 5G-AKA with the subscription (phase C).
    Aka(Box<AkaSession>),
    /// EAP relayed to an external DCS over AAA (phase A, TS 33.501 I.9.2.3).
    Relayed(Box<super::aaa::Relay>),
}

/// The 5GMM state of a UE (TS 24.501 §5.1.3.3), with what each step keeps.
pub(crate) enum MmState {
    /// Authentication is running.
    Authenticating(Authentication),
    /// SECURITY MODE COMMAND sent.
    SecurityMode,
    /// REGISTRATION ACCEPT sent, COMPLETE awaited.
    AcceptSent,
    /// Registered for onboarding: restricted service, onboarding timer running.
    Onboarding,
    /// Registered with its own subscription.
    Registered,
    /// Deregistered; kept briefly to answer a retransmitted request.
    Deregistered,
    /// The network's DEREGISTRATION REQUEST sent (T3522 running), its
    /// ACCEPT awaited; nothing else the UE sends is processed.
    Deregistering,
}

impl MmState {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Authenticating(_) => "authenticating",
            Self::SecurityMode => "security mode",
            Self::AcceptSent => "registration accept sent",
            Self::Onboarding => "registered for onboarding",
            Self::Registered => "registered",
            Self::Deregistered => "deregistered",
            Self::Deregistering => "deregistration requested",
        }
    }

    /// Whether the UE is in a registration procedure, the contexts
    /// admission control counts (see [`super::Admission`]).
    pub(crate) fn in_procedure(&self) -> bool {
        matches!(
            self,
            Self::Authenticating(_) | Self::SecurityMode | Self::AcceptSent
        )
    }
}

/// A PDU session (control plane only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PduSession {
    pub(crate) psi: u8,
    pub(crate) pti: u8,
}

/// The CoAP exchange the PVS last answered on this context (deduplication
/// of retransmitted requests, RFC 7252 §4.5).
pub(crate) struct CoapCache {
    pub(crate) message_id: u16,
    pub(crate) token: Vec<u8>,
    pub(crate) response: Vec<u8>,
}

/// One UE's context in the AMF.
pub(crate) struct UeContext {
    pub(crate) state: MmState,
    /// Registration type 101 (SNPN onboarding) rather than 001 (initial).
    pub(crate) onboarding: bool,
    /// The octets of the REGISTRATION REQUEST that started the procedure.
    pub(crate) initial: Vec<u8>,
    /// The UE security capability it sent: [EA, IA].
    pub(crate) ue_capability: [u8; 2],
    pub(crate) sec: Option<SecurityContext>,
    pub(crate) kamf: Option<KAmf>,
    /// K_PROV of the onboarding EAP session (from K_AUSF): the PVS
    /// seals the credential package with it (HPKE PSK). Zeroized on drop,
    /// redacted in `Debug` (a `nido_sec` secret type).
    pub(crate) k_prov: Option<KProv>,
    pub(crate) ngksi: u8,
    /// The downlink messages of the step in progress, re-sent on its timer.
    pub(crate) pending: Vec<(Nas5gsMessage, Option<Protection>)>,
    pub(crate) timer: Option<Timer>,
    pub(crate) last_uplink: SystemTime,
    /// The device identity the DCS authenticated (onboarding).
    pub(crate) device: Option<crate::DeviceId>,
    /// What its certificate says, where the built-in DCS saw the
    /// certificate (a relayed realm's DCS sends none): an erasure receipt's
    /// signature is checked with its key, and the package's audit records
    /// its issuer and serial (for a later CRL).
    pub(crate) device_cert: Option<Box<nido_pki::DeviceInfo>>,
    /// The onboarding SUPI (NAI) or the subscription's SUPI.
    pub(crate) supi: Option<Supi>,
    /// The owner of the subscription, for the application sink: set when a
    /// registration with the subscription completes (an onboarding
    /// registration carries no data; the PVS reads the owner itself when
    /// it provisions).
    pub(crate) owner: Option<String>,
    pub(crate) guti: Option<Guti5g>,
    pub(crate) session: Option<PduSession>,
    pub(crate) coap: Option<CoapCache>,
    /// Whether the network's count of contexts in a procedure includes
    /// this one (kept by `Network::recount` and `Network::remove`).
    pub(crate) counted: bool,
    /// Whether a PDU protected with `sec` verified: the secure exchange of
    /// NAS messages is established (TS 24.501 §4.4.4.3) and no plain
    /// message is processed on this connection any more.
    pub(crate) secured: bool,
    /// Why the registration is refused with #22 (congestion) once security
    /// mode control completed: the store could not be reached after the
    /// UE authenticated. The reject then goes integrity protected, so the
    /// UE uses its T3346 (TS 24.501 §5.5.1.2.5) instead of drawing 15-30
    /// min for a reject anyone could have sent.
    pub(crate) congested: Option<String>,
    /// Onboarding of an identity that holds a provisioned or active
    /// subscription: only a provisioning request with an erasure receipt
    /// that verifies may follow (anything else ends the registration, #74).
    pub(crate) receipt_pending: bool,
    /// The used flag of the 5G-AKA challenge this context sent, shared
    /// with every context the same unanswered challenge went to (see
    /// `Outstanding`): a RES* is accepted for one of them only.
    pub(crate) aka_used: Option<Arc<AtomicBool>>,
}

impl UeContext {
    pub(crate) fn new(now: SystemTime, initial: Vec<u8>, state: MmState) -> Self {
        Self {
            state,
            onboarding: false,
            initial,
            ue_capability: [0, 0],
            sec: None,
            kamf: None,
            k_prov: None,
            ngksi: 0,
            pending: Vec::new(),
            timer: None,
            last_uplink: now,
            device: None,
            device_cert: None,
            supi: None,
            owner: None,
            guti: None,
            session: None,
            coap: None,
            counted: false,
            secured: false,
            congested: None,
            receipt_pending: false,
            aka_used: None,
        }
    }
}
