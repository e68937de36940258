//! What a device is configured with at the factory.

use std::time::Duration;

use nido_eap::{DeviceCredentials, Settings};
use nido_prov::package::ServingNetwork;
use nido_sec::kdf::KausfFrom;

/// The device's NAS timers (TS 24.501 §10.2) and retry bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T3510: started by REGISTRATION REQUEST; nido restarts it on every
    /// message of the ongoing registration (a silence watchdog, so a long
    /// EAP-TLS exchange over a lossy link is not cut short). 15 s.
    pub t3510: Duration,
    /// T3517: started by a CONTROL PLANE SERVICE REQUEST. 15 s.
    pub t3517: Duration,
    /// T3521: started by DEREGISTRATION REQUEST. 15 s.
    pub t3521: Duration,
    /// T3580: started by PDU SESSION ESTABLISHMENT REQUEST (TS 24.501 §10.3). 16 s.
    pub t3580: Duration,
    /// The provisioning exchange's CoAP retransmission timeout (RFC 7252
    /// ACK_TIMEOUT, fixed rather than doubled: NAS carries it). 8 s.
    pub coap: Duration,
    /// Retransmissions of one message before the procedure is abandoned
    /// (TS 24.501: 4 for T3521, 4 for T3580; nido uses one bound). 4.
    pub max_retransmissions: u32,
    /// Failed registration attempts before backing off for `t3502`. 5.
    pub max_attempts: u32,
    /// T3502: the wait after `max_attempts` failed attempts. 12 min.
    pub t3502: Duration,
    /// The first wait after #74 "temporarily not authorized for this
    /// SNPN"; each further #74 in a row doubles it, up to
    /// `temporarily_not_authorized`. 15 s: longer than the network's clone
    /// window (10 s), so a device restarted right after a crash, whose old
    /// connection the network still counts as active, gets through at its
    /// next try, while a clone that keeps trying waits ever longer.
    pub not_authorized_retry: Duration,
    /// The longest wait after #74 "temporarily not authorized for this SNPN". 30 min.
    pub temporarily_not_authorized: Duration,
    /// The UE is idle after this long without NAS traffic (the gNB
    /// releases the RRC connection); the next burst goes in a CONTROL
    /// PLANE SERVICE REQUEST. 10 s.
    pub idle_after: Duration,
    /// T3247's range (TS 24.501 §5.3.20.2, §10.2): the wait after a reject
    /// that would take the device's credentials out of use (#3, #6, #7,
    /// #75) but arrived without integrity protection, so may be forged. The
    /// device keeps its credentials, waits a value drawn uniformly from
    /// this range (so a refused fleet does not return at once) and tries
    /// again. 30 to 60 min.
    pub t3247: (Duration, Duration),
    /// T3346's default range (TS 24.501 §5.5.1.2.5, §10.2, Table 10.2.1):
    /// a REGISTRATION REJECT #22 "congestion" that arrives without
    /// integrity protection may be forged, so its T3346 value is not used;
    /// the device waits a value drawn uniformly from this range instead
    /// (from its seeded back-off source, see `Device::seed_backoff`). An
    /// integrity-protected reject's T3346 is used as sent. 15 to 30 min.
    pub t3346_default: (Duration, Duration),
    /// How many such unprotected rejects in a row the device takes as
    /// possibly forged before it believes one (TS 24.501 §5.3.20.2: "a UE
    /// implementation-specific maximum value"): then #3 or #75 stop it
    /// until it is powered on again; credentials are never erased on an
    /// unprotected message. 5.
    pub max_unprotected_rejects: u32,
    /// How long before its credential package's validity ends
    /// (`not_after_unix`) the device renews it (issue #16 item 5): a
    /// registration that would start within this window erases the package
    /// instead, keeping an erasure receipt, and onboards again; the PVS
    /// renews the subscription in place on the receipt (new K, new end). A
    /// device that missed the window (off, or zero here) is refused by the
    /// network once the package ended (#7, integrity protected) and renews
    /// then. Keep it well below the network's validity (`validity_days`),
    /// or every registration renews. 7 days.
    pub renew_before: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t3510: Duration::from_secs(15),
            t3517: Duration::from_secs(15),
            t3521: Duration::from_secs(15),
            t3580: Duration::from_secs(16),
            coap: Duration::from_secs(8),
            max_retransmissions: 4,
            max_attempts: 5,
            t3502: Duration::from_secs(12 * 60),
            not_authorized_retry: Duration::from_secs(15),
            temporarily_not_authorized: Duration::from_secs(30 * 60),
            idle_after: Duration::from_secs(10),
            t3247: (Duration::from_secs(30 * 60), Duration::from_secs(60 * 60)),
            max_unprotected_rejects: 5,
            t3346_default: (Duration::from_secs(15 * 60), Duration::from_secs(30 * 60)),
            renew_before: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A device's factory configuration.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The IDevID serial (the identity the package is bound to).
    pub serial: String,
    /// The IDevID chain with its secure-element signer, the manufacturer
    /// root and the DCS name (from `nido_eap`).
    pub credentials: DeviceCredentials,
    /// The DCS realm of the anonymous onboarding SUCI.
    pub dcs_realm: String,
    /// The onboarding network (PLMN id and NID, as broadcast): its serving
    /// network name enters K_SEAF in phase A.
    pub onboarding_network: ServingNetwork,
    /// EAP-TLS settings.
    pub eap: Settings,
    /// Which EAP key K_AUSF comes from after onboarding: the EMSK when the
    /// onboarding network runs the DCS itself (TS 33.501 B.2.1.1), the MSK
    /// when it relays EAP to the manufacturer's own DCS over AAA (I.9.2.3).
    /// From the factory bundle's manifest (`"kausf_from"`).
    pub kausf_from: KausfFrom,
    /// Timers.
    pub timers: Timers,
    /// A hint at the owner's claim, sent to the PVS (never the claim code).
    pub claim_hint: Option<String>,
    /// Whether [`crate::Transmit`] carries the plain encoding of protected
    /// messages (for traces; costs one extra encoding per message).
    pub trace: bool,
}

impl DeviceConfig {
    /// A device's configuration as every driver builds it (the simulator,
    /// `nido sim`, `nido device run`): default EAP-TLS settings and
    /// timers, no claim hint, no trace; a driver changes the fields it
    /// sets itself.
    pub fn new(
        serial: String,
        credentials: DeviceCredentials,
        dcs_realm: String,
        onboarding_network: ServingNetwork,
        kausf_from: KausfFrom,
    ) -> Self {
        Self {
            serial,
            credentials,
            dcs_realm,
            onboarding_network,
            eap: Settings::default(),
            kausf_from,
            timers: Timers::default(),
            claim_hint: None,
            trace: false,
        }
    }
}
