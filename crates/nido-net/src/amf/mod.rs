//! The AMF/SEAF (TS 23.502 §4.2.2.2, TS 24.501 §5): one sans-IO state
//! machine for all UEs of one access link. It terminates NAS, runs
//! registration with EAP-TLS (relayed to the [`Dcs`]) or 5G-AKA (with the
//! [`Udm`] and the AUSF), security mode control, the onboarding
//! restrictions and timer, control-plane-only PDU sessions, the provisioning
//! exchange with the [`Pvs`], and hands uplink data to the application sink.
//!
//! Contexts are keyed by the access link's [`ConnectionId`]; two indices
//! (device identity of onboarding UEs, SUPI of registered UEs) find an
//! older context of the same device for clone detection and implicit
//! deregistration. Timers live in one heap; a context's timer is replaced
//! by bumping its generation, so stale heap entries are skipped.
//!
//! Admission control ([`Admission`]): the contexts in a registration
//! procedure are counted as they enter and leave it (never by a walk over
//! the contexts); while the count is at the limit, a REGISTRATION REQUEST
//! that would start another one is refused with #22 (congestion) and a
//! T3346 drawn from a range, before any SUCI de-concealment, EAP-TLS,
//! vector or store access.
//!
//! What an unauthenticated sender can do is bounded (issue #17): once a
//! context has a secure exchange of NAS messages, plain messages are not
//! processed (TS 24.501 §4.4.4.3), so a forged REGISTRATION REQUEST no
//! longer tears a registered context down; [`Network::handle_pdu`] tells
//! the driver whether a PDU passed NAS integrity ([`PduVerdict`]), so it
//! moves a connection's address only then; a 5G-AKA challenge that was not
//! answered is reused for the same SUPI instead of drawing a new SQN; and
//! SUCIs that fail de-concealment are paid from a token bucket
//! ([`NetworkConfig::suci_failures`]).

mod aaa;
mod budget;
mod context;
mod registration;
mod transport;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use nido_nas::build::{GmmCause, Nas5gsMessage};
use nido_nas::security::{Protection, split_header};
use nido_nas::view::{Inbound, message_name};
use nido_prov::package::ServingNetwork;
use nido_sec::{Cause, Supi};

use crate::dcs::Dcs;
use crate::events::NetworkEvent;
use crate::pvs::Pvs;
use crate::sink::ApplicationSink;
use crate::store::Store;
use crate::udm::Udm;
pub use aaa::{AaaAnswer, AaaRequest, MAX_RELAY_ROUNDS};
pub use budget::{RateLimit, TokenBucket};
use context::{MmState, Timer, TimerKind, UeContext};
use nido_sec::aka::HeAv;

/// A UE's association on the access link (the simulator's gNB assigns one
/// per RRC connection; over UDP it is the header's connection id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl core::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "conn-{:x}", self.0)
    }
}

/// The AMF's configuration.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The serving network (PLMN id, NID): its name enters K_SEAF.
    pub serving_network: ServingNetwork,
    /// AMF region id, set id (10 bits) and pointer (6 bits) of 5G-GUTIs.
    pub amf_id: (u8, u16, u8),
    /// The onboarding registration's lifetime; on expiry the UE is
    /// deregistered with #93. 10 min.
    pub onboarding_timer: Duration,
    /// T3560 (AUTHENTICATION REQUEST, SECURITY MODE COMMAND). 6 s.
    pub t3560: Duration,
    /// T3550 (REGISTRATION ACCEPT with a new 5G-GUTI). 6 s.
    pub t3550: Duration,
    /// T3522 (a DEREGISTRATION REQUEST the network sent). 6 s.
    pub t3522: Duration,
    /// How long a deregistered context answers retransmitted requests. 60 s.
    pub tombstone: Duration,
    /// Retransmissions before a procedure is abandoned (TS 24.501: 4).
    pub max_retransmissions: u32,
    /// A device identity onboarding on a second connection is refused
    /// (clone detection) if its first connection sent anything this
    /// recently; an older first connection is considered abandoned. 10 s.
    pub clone_window: Duration,
    /// Resynchronisations per authentication. 2.
    pub max_resyncs: u32,
    /// T3346, the back-off a REGISTRATION REJECT with #22 (congestion)
    /// carries when the store cannot be reached. 60 s. It must be a value
    /// GPRS timer 2 encodes exactly (2 s steps to 62 s, whole minutes to 31
    /// min, 6-minute steps to 186 min); another value is not sent, and the
    /// UE waits its own T3502. (Admission control draws its T3346 from
    /// [`Admission::t3346`] instead.)
    pub t3346: Duration,
    /// Admission control: how many registrations may run at once, and the
    /// back-off of those refused. Unlimited by default.
    pub admission: Admission,
    /// The PVS name the onboarding PDU session announces (ePCO 0x0038).
    pub pvs_name: String,
    /// The DNN of the onboarding session.
    pub onboarding_dnn: String,
    /// The DNNs registered devices may open a session to.
    pub data_dnns: Vec<String>,
    /// Whether [`Transmit`] carries the plain encoding of protected PDUs.
    pub trace: bool,
    /// How many SUCIs may fail de-concealment (or name no subscription):
    /// each costs an ECDH (and a store read) without holding anything an
    /// honest device would, so the cost of junk is capped. While the
    /// bucket is empty an IMSI SUCI registration gets #22 with
    /// [`NetworkConfig::t3346`] before de-concealment (a device backs off
    /// and keeps its credentials). 100 at once, 20 per second.
    pub suci_failures: RateLimit,
    /// How long a relayed onboarding authentication waits for the external
    /// DCS's answer to one [`AaaRequest`] before it is refused as
    /// unreachable (#22, see [`Network::handle_aaa`]): longer than the
    /// driver's own RADIUS retransmissions take (RFC 5080), so it answers
    /// [`AaaAnswer::Unreachable`] first; this bound only frees a context a
    /// driver never answers. 30 s.
    pub aaa_timeout: Duration,
}

impl NetworkConfig {
    /// Defaults for `serving_network`.
    pub fn new(serving_network: ServingNetwork) -> Self {
        Self {
            serving_network,
            amf_id: (1, 1, 1),
            onboarding_timer: Duration::from_secs(600),
            t3560: Duration::from_secs(6),
            t3550: Duration::from_secs(6),
            t3522: Duration::from_secs(6),
            tombstone: Duration::from_secs(60),
            max_retransmissions: 4,
            clone_window: Duration::from_secs(10),
            max_resyncs: 2,
            t3346: Duration::from_secs(60),
            admission: Admission::default(),
            pvs_name: "pvs.nido.invalid".into(),
            onboarding_dnn: "onboarding".into(),
            data_dnns: vec!["iot".into()],
            trace: false,
            suci_failures: RateLimit {
                burst: 100,
                per_second: 20,
            },
            aaa_timeout: Duration::from_secs(30),
        }
    }
}

/// Admission control of new registrations: NAS level congestion control
/// (TS 23.501 §5.19.7) with the mobility management back-off timer T3346
/// (TS 24.501 §5.5.1.2.5, cause #22).
///
/// A UE context is *in a procedure* from the REGISTRATION REQUEST the AMF
/// accepted to work on (a type 101 SNPN onboarding or a type 001 initial
/// registration) until its REGISTRATION COMPLETE, i.e. while its 5GMM
/// state is authenticating (EAP-TLS with the DCS or 5G-AKA), security mode
/// or registration accept sent. A UE registered for onboarding (phase B,
/// provisioning), registered (phase D: service requests, bursts) or
/// deregistered is not: those are never refused by this limit, and their
/// messages are never counted.
///
/// When [`Admission::max_procedures`] contexts are in a procedure, a
/// REGISTRATION REQUEST that would add one is answered with REGISTRATION
/// REJECT #22 and a T3346 drawn uniformly from [`Admission::t3346`] (TS
/// 23.501 asks the network to spread back-offs so deferred requests are
/// not synchronised), and reported as [`NetworkEvent::Congested`]. SNPN
/// onboarding registrations (type 101, new devices) are refused a tenth
/// earlier, from `max_procedures - max_procedures / 10` on: the last tenth
/// is kept for registrations with a subscription (type 001, devices that
/// went through onboarding and provisioning already), so newcomers do not
/// send away devices that are one 5G-AKA from active. The
/// check comes before any expensive work: no SUCI de-concealment, no
/// EAP-TLS, no vector, no store access. A request on a connection whose
/// context is in a procedure is never refused by it: a byte-identical
/// retransmission continues the procedure, a different request replaces
/// it (the count does not grow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// At most this many UE contexts in a procedure at once; `None`: no
    /// limit (the library's default). `Some(0)` refuses every new
    /// registration (draining an AMF).
    pub max_procedures: Option<usize>,
    /// The range T3346 is drawn from, both ends included. A draw is
    /// rounded to a value GPRS timer 2 encodes exactly (2 s steps to 62 s,
    /// whole minutes to 31 min, 6-minute steps to 186 min), inside the
    /// range when the range holds one; never below 2 s. 10 s to 60 s.
    pub t3346: RangeInclusive<Duration>,
    /// The seed of the draws that need no secrecy (T3346 back-offs, the
    /// first 5G-TMSI): reproducible runs for simulations and tests. `None`
    /// (the default): a seed from the system's random source.
    pub seed: Option<u64>,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            max_procedures: None,
            t3346: Duration::from_secs(10)..=Duration::from_secs(60),
            seed: None,
        }
    }
}

/// The longest T3346 GPRS timer 2 encodes: 31 × 6 minutes (186 min).
const GPRS_TIMER2_MAX: u64 = nido_nas::build::GPRS_TIMER2_MAX_SECONDS;

/// The largest value GPRS timer 2 encodes exactly that is at most `s`
/// (`s` itself when it is one), capped at [`GPRS_TIMER2_MAX`].
fn gprs_timer2_floor(s: u64) -> u64 {
    match s {
        0..=62 => s & !1,
        63..=1860 => s / 60 * 60,
        1861..=GPRS_TIMER2_MAX => s / 360 * 360,
        _ => GPRS_TIMER2_MAX,
    }
}

/// The smallest value GPRS timer 2 encodes exactly that is at least `s`,
/// capped at [`GPRS_TIMER2_MAX`].
fn gprs_timer2_ceil(s: u64) -> u64 {
    match s {
        0..=62 => s.div_ceil(2) * 2,
        63..=1860 => s.div_ceil(60) * 60,
        1861..=GPRS_TIMER2_MAX => s.div_ceil(360) * 360,
        _ => GPRS_TIMER2_MAX,
    }
}

/// A T3346 from `range` for the random number `r`: a whole second drawn
/// uniformly from the range's start up to (not including) the first exact
/// GPRS timer 2 value above its end, rounded down to an exact value, so
/// each value in the range is as likely as the span of time it stands
/// for; up when rounding down leaves the range; the nearest value when
/// the range holds none. At least 2 s (0 would mean no back-off at all).
fn t3346_from(range: &RangeInclusive<Duration>, r: u64) -> Duration {
    let lo = range.start().as_secs().max(2);
    let hi = range.end().as_secs().max(lo);
    let top = if hi >= GPRS_TIMER2_MAX {
        hi + 1
    } else {
        gprs_timer2_ceil(hi + 1)
    };
    let s = lo + r % (top - lo);
    let down = gprs_timer2_floor(s);
    let up = gprs_timer2_ceil(s);
    let chosen = if down >= lo {
        down
    } else if up <= hi {
        up
    } else if s - down <= up - s {
        down.max(2)
    } else {
        up
    };
    Duration::from_secs(chosen)
}

/// Whether `pdu` is a plain 5GMM REGISTRATION REQUEST by its header
/// (TS 24.501 §9.1.1: EPD 0x7e, security header type 0; §9.7: message type
/// 0x41), whatever its IEs.
fn is_registration_request(pdu: &[u8]) -> bool {
    matches!(pdu, [0x7e, sht, 0x41, ..] if sht & 0x0f == 0)
}

/// splitmix64: a small, fast, seedable generator for back-off spreading
/// (not for anything secret).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn backoff_seed(admission: &Admission) -> u64 {
    admission.seed.unwrap_or_else(|| {
        let mut seed = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        u64::from_be_bytes(seed)
    })
}

/// The 5G-TMSI before the first one this AMF assigns: drawn from the
/// admission seed when one is given (a simulation is then determined by
/// its seed), from system randomness otherwise.
fn first_tmsi(admission: &Admission) -> u32 {
    match admission.seed {
        // Its own stream of the seed, apart from the T3346 draws.
        Some(seed) => (splitmix64(&mut (seed ^ 0x5476_4D53_495F_5449)) >> 32) as u32,
        None => {
            let mut seed = [0u8; 4];
            let _ = aws_lc_rs::rand::fill(&mut seed);
            u32::from_be_bytes(seed)
        }
    }
}

/// A downlink PDU for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub conn: ConnectionId,
    /// The PDU as it goes on the link.
    pub pdu: Vec<u8>,
    /// The plain message's name.
    pub message: &'static str,
    /// The plain encoding of a protected PDU, when tracing.
    pub plain: Option<Vec<u8>>,
}

/// What [`Network::handle_pdu`] made of an uplink PDU: what a driver needs
/// to bind a connection to a peer address (a radio would bind NAS to a
/// bearer). Only [`PduVerdict::Verified`] proves the sender holds the
/// connection's NAS keys (TS 24.501 §4.4.4.3, TS 33.501 §6.4.2): a driver
/// moves a connection's address on nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduVerdict {
    /// It passed NAS integrity (MAC and COUNT) with the connection's
    /// security context, and was ciphered where it had to be.
    Verified,
    /// A plain message the AMF processes without integrity protection
    /// (only before a secure exchange exists, TS 24.501 §4.4.4.3).
    Plain,
    /// Discarded without effect: undecodable, unknown connection, failed
    /// integrity, replay, not allowed plain, unexpected.
    Discarded,
}

/// A 5G-AKA vector issued for a SUPI and not yet answered: a new
/// registration of the same SUPI gets the same challenge while it is
/// fresh (TS 33.501 §6.1.3.2, TS 33.102 §6.3.2: a vector is used once;
/// an unused one may be sent again), so replayed SUCIs cannot move the
/// subscription's SQN. `used` is shared by every context the challenge
/// went to: the first correct RES* takes it, a second one is refused.
pub(crate) struct Outstanding {
    pub(crate) av: HeAv,
    /// The subscription's state it was issued under.
    pub(crate) under: crate::udm::IssuedUnder,
    pub(crate) used: Arc<AtomicBool>,
    pub(crate) expires: SystemTime,
}

/// Why [`Network::send_downlink_data`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownlinkError {
    /// No registered context with a PDU session on that connection.
    #[error("{0} has no PDU session")]
    NoSession(ConnectionId),
    /// The data cannot be carried.
    #[error("{0}")]
    Build(String),
}

/// The network side: AMF/SEAF with its AUSF, DCS, UDM and PVS over a store.
pub struct Network {
    pub(crate) config: NetworkConfig,
    pub(crate) store: Box<dyn Store + Send>,
    pub(crate) udm: Udm,
    pub(crate) pvs: Pvs,
    pub(crate) dcs: Dcs,
    pub(crate) sink: Box<dyn ApplicationSink>,
    pub(crate) ues: HashMap<ConnectionId, UeContext>,
    /// Device identity → connection of UEs past EAP-TLS in onboarding.
    pub(crate) onboarding_index: HashMap<crate::DeviceId, ConnectionId>,
    /// SUPI → connection of UEs registered with their subscription.
    pub(crate) registered_index: HashMap<Supi, ConnectionId>,
    timers: BinaryHeap<Reverse<(SystemTime, ConnectionId, u64)>>,
    generation: u64,
    pub(crate) outbox: VecDeque<Transmit>,
    pub(crate) events: VecDeque<NetworkEvent>,
    pub(crate) next_tmsi: u32,
    /// Contexts in a procedure (see [`Admission`]): those whose
    /// `counted` flag is set, kept as they change.
    procedures: usize,
    /// The state of the T3346 draws.
    backoff: u64,
    /// SUCI de-concealments that may still fail (see
    /// [`NetworkConfig::suci_failures`]).
    pub(crate) suci_budget: TokenBucket,
    /// Unanswered 5G-AKA challenges by SUPI (see [`Outstanding`]).
    pub(crate) vectors: HashMap<Supi, Outstanding>,
    /// The size of `vectors` at which expired entries are next dropped.
    pub(crate) vectors_prune_at: usize,
    /// Realms (lower case) whose onboarding EAP goes to an external DCS,
    /// with the manufacturer whose devices it authenticates.
    pub(crate) relays: HashMap<String, String>,
    /// EAP packets for external DCSs, for the driver ([`Network::poll_aaa`]).
    pub(crate) aaa_outbox: VecDeque<AaaRequest>,
}

impl core::fmt::Debug for Network {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Network")
            .field("ues", &self.ues.len())
            .field("dcs", &self.dcs)
            .field("relays", &self.relays.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The 5GMM cause IE value (TS 24.501 §9.11.3.2) of `cause`, the one cause
/// type of the network's decisions; a value the codec does not name is
/// sent as #111 (protocol error, unspecified).
fn gmm_cause(cause: Cause) -> GmmCause {
    GmmCause::from_u8(cause.octet()).unwrap_or(GmmCause::ProtocolErrorUnspecified)
}
impl Network {
    /// A network with its functions, store and application sink.
    pub fn new(
        config: NetworkConfig,
        store: Box<dyn Store + Send>,
        udm: Udm,
        pvs: Pvs,
        dcs: Dcs,
        sink: Box<dyn ApplicationSink>,
    ) -> Self {
        let next_tmsi = first_tmsi(&config.admission);
        let backoff = backoff_seed(&config.admission);
        let suci_budget = TokenBucket::new(config.suci_failures);
        Self {
            config,
            store,
            udm,
            pvs,
            dcs,
            sink,
            ues: HashMap::new(),
            onboarding_index: HashMap::new(),
            registered_index: HashMap::new(),
            timers: BinaryHeap::new(),
            generation: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_tmsi,
            procedures: 0,
            backoff,
            suci_budget,
            vectors: HashMap::new(),
            vectors_prune_at: 1024,
            relays: HashMap::new(),
            aaa_outbox: VecDeque::new(),
        }
    }

    /// The serving network this network is (PLMN identity, NID, serving
    /// network name): what its cells announce as system information.
    pub fn serving_network(&self) -> &ServingNetwork {
        &self.config.serving_network
    }

    /// The admission control in force.
    pub fn admission(&self) -> &Admission {
        &self.config.admission
    }

    /// Replaces the admission control (an operator changing the limit of a
    /// running AMF; tests). Contexts already in a procedure stay; a lower
    /// limit refuses new registrations until enough of them end. A given
    /// seed restarts the T3346 draws from it.
    pub fn set_admission(&mut self, admission: Admission) {
        if admission.seed.is_some() {
            self.backoff = backoff_seed(&admission);
        }
        self.config.admission = admission;
    }

    /// How many UE contexts are in a registration procedure (authenticating,
    /// security mode, registration accept sent): the number
    /// [`Admission::max_procedures`] bounds. Kept as contexts change, so
    /// asking is free.
    pub fn procedures(&self) -> usize {
        self.procedures
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The store, to change (owners, claims) between events.
    pub fn store_mut(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Whether the DCS serves `realm`.
    pub fn serves_realm(&self, realm: &str) -> bool {
        self.dcs.serves(realm)
    }

    /// Serves `realm` with `credentials` from now on (a manufacturer
    /// enrolled while serving brings its DCS certificate and realm). A
    /// realm also given to [`Network::relay_realm`] stays relayed.
    pub fn serve_realm(&mut self, realm: &str, credentials: nido_eap::DcsCredentials) {
        self.dcs.serve(realm, credentials);
    }

    /// Replaces the SUCI home network keys (a key added or retired while
    /// serving, issue #16 item 4): the SIDF de-conceals with each of
    /// `keys` and no other; the PVS hands the first one's public key to
    /// devices in every package from now on. Empty `keys`: nothing changes
    /// (a network always has a key).
    pub fn set_home_network_keys(&mut self, keys: Vec<nido_sec::suci::HomeNetworkKey>) {
        let Some(current) = keys.first().map(|k| k.public_key()) else {
            return;
        };
        let mut sidf = nido_sec::suci::Sidf::new();
        for key in keys {
            sidf.insert(key);
        }
        self.udm.sidf = sidf;
        self.pvs.set_home_network_key(current);
    }

    /// Makes the PVS enforce subscription quotas per manufacturer (`None`:
    /// none, the library's default); [`Network::set_trust_store`] then
    /// keeps them in step with the manufacturers' policies.
    pub fn set_quotas(&mut self, quotas: Option<crate::pvs::Quotas>) {
        self.pvs.set_quotas(quotas);
    }

    /// Replaces the DCS's trust store (manufacturers, CRLs, block list,
    /// policies) while serving: the operator's changes take effect from the
    /// next EAP-TLS conversation on, without a restart. The driver reads
    /// the store ([`crate::dcs::TrustSource`]); the network only takes it.
    /// The PVS's subscription quotas, if it enforces any, follow the
    /// policies of the new store.
    ///
    /// Every UE context of a device the new store blocks is deregistered
    /// at `now` (see [`Network::deregister_as_blocked`]).
    pub fn set_trust_store(&mut self, now: SystemTime, trust: Arc<nido_pki::TrustStore>) {
        if let Some(default) = self.pvs.quotas().map(crate::pvs::Quotas::default_quota) {
            self.pvs
                .set_quotas(Some(crate::pvs::Quotas::from_trust(&trust, default)));
        }
        self.dcs.set_trust_store(trust);
        self.deregister_blocked(now);
    }

    /// Network-initiated deregistration (TS 24.501 §5.5.2.3) of every UE
    /// context with NAS security (registered, onboarding, or accepted and
    /// not yet complete) whose device is now on the operator's block list,
    /// in connection order; a block deferred to the next registration
    /// ([`nido_pki::TrustStore::block_at_next_registration`]) leaves a
    /// registration under way alone. A context not yet secured is refused at its
    /// SECURITY MODE COMPLETE instead.
    fn deregister_blocked(&mut self, now: SystemTime) {
        let mut blocked: Vec<(ConnectionId, crate::DeviceId)> = self
            .ues
            .iter()
            .filter_map(|(conn, ctx)| {
                let device = ctx.device.as_ref()?;
                // A tombstone (deregistered, kept for retransmissions) or a
                // deregistration under way has nothing left to end.
                let live = !matches!(ctx.state, MmState::Deregistered | MmState::Deregistering);
                let secured = ctx.secured && ctx.sec.is_some();
                (live && secured && self.dcs.is_blocked_now(device))
                    .then(|| (*conn, device.clone()))
            })
            .collect();
        blocked.sort_by_key(|(conn, _)| *conn);
        for (conn, device) in blocked {
            self.deregister_as_blocked(now, conn, device);
        }
    }

    /// Ends the registration of every UE registered with one of `supis`,
    /// whose credential package ended (an operator's rekey or owner
    /// release, or the end of its validity; the driver learns them from
    /// [`crate::dcs::TrustSource::packages_ended`]): a network-initiated
    /// DEREGISTRATION REQUEST (TS 24.501 §5.5.2.3), integrity protected
    /// and ciphered under the subscription's own 5G-AKA context, with #7
    /// "5GS services not allowed", on which a nido device erases the
    /// package with an erasure receipt and onboards again to renew it (its
    /// next registration with the package would be refused with the same
    /// cause). A SUPI with no registered UE here, or one whose
    /// deregistration is under way, is left alone; the order of `supis`
    /// does not matter (connections are ended in connection order).
    pub fn end_registrations(&mut self, now: SystemTime, supis: &[Supi]) {
        let mut ended: Vec<(ConnectionId, Supi, Option<crate::DeviceId>)> = supis
            .iter()
            .filter_map(|supi| {
                let conn = *self.registered_index.get(supi)?;
                let ctx = self.ues.get(&conn)?;
                let live = !matches!(ctx.state, MmState::Deregistered | MmState::Deregistering);
                let secured = ctx.secured && ctx.sec.is_some() && !ctx.onboarding;
                (live && secured).then(|| (conn, supi.clone(), ctx.device.clone()))
            })
            .collect();
        ended.sort_by_key(|(conn, ..)| *conn);
        for (conn, supi, device) in ended {
            let device = device.or_else(|| {
                self.store
                    .cached_subscription_by_supi(&supi)
                    .ok()
                    .flatten()
                    .map(|sub| sub.device)
            });
            let reason = format!(
                "the credential package of {supi} ended (rekey, owner release or validity); \
                 deregistered (#7): the device renews it by onboarding again with its erasure receipt"
            );
            // Without a device identity (a store that cannot answer now)
            // it is deregistered all the same, and reported without one.
            self.deregister_refused(now, conn, device, Cause::SERVICES_NOT_ALLOWED, reason);
        }
    }

    /// Ends `conn`'s registration because its device is blocked: a
    /// DEREGISTRATION REQUEST (UE terminated, no re-registration) with #3
    /// illegal UE ([`Network::network_deregistration`]). Its subscription
    /// stays in the store, suspended while the block lasts: a registration
    /// with it is refused after 5G-AKA, protected, with #3 too.
    pub(crate) fn deregister_as_blocked(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        device: crate::DeviceId,
    ) {
        self.deregister_refused(
            now,
            conn,
            Some(device.clone()),
            Cause::ILLEGAL_UE,
            format!(
                "device {device}: on the operator block list; deregistered \
                 (its subscription is suspended until it is unblocked)"
            ),
        );
    }

    /// Ends the registration on `conn` with a network-initiated
    /// DEREGISTRATION REQUEST carrying `cause` (integrity protected and
    /// ciphered, [`Network::network_deregistration`]), reported as a
    /// refusal of `device` (when known) for `reason`.
    pub(crate) fn deregister_refused(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        device: Option<crate::DeviceId>,
        cause: Cause,
        reason: String,
    ) {
        let gmm = gmm_cause(cause);
        match nido_nas::build::deregistration_request_ue_terminated(false, Some(gmm), None) {
            Ok(request) => self.network_deregistration(now, conn, request),
            Err(e) => {
                self.discard(conn, format!("DEREGISTRATION REQUEST: {e}"));
                self.remove(conn);
            }
        }
        self.events.push_back(NetworkEvent::Refused {
            presented: None,
            conn,
            reason,
            device,
            cause,
        });
    }

    /// The network-initiated deregistration procedure (TS 24.501
    /// §5.5.2.3) on `conn` with `request`, integrity protected and
    /// ciphered: sent again on each T3522 expiry, up to
    /// [`NetworkConfig::max_retransmissions`] times; the context is in
    /// `Deregistering` (out of the indexes, no PDU session; only the UE's
    /// DEREGISTRATION ACCEPT is processed) until that ACCEPT, or until
    /// T3522 expires once more (the procedure is then abandoned).
    pub(crate) fn network_deregistration(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        request: Nas5gsMessage,
    ) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        ctx.state = MmState::Deregistering;
        ctx.session = None;
        ctx.pending = vec![(request.clone(), Some(Protection::IntegrityCiphered))];
        let (device, supi) = (ctx.device.clone(), ctx.supi.clone());
        self.unindex(conn, device.as_ref(), supi.as_ref());
        self.recount(conn);
        self.send(conn, &request, Some(Protection::IntegrityCiphered));
        self.arm(now, conn, TimerKind::T3522, 0);
    }

    /// Forgets every UE context, index and timer, keeping the store and the
    /// configuration: what a restart of the network process loses. UEs
    /// find out when their next PDU does not verify and register again.
    pub fn forget_contexts(&mut self) {
        self.ues.clear();
        self.onboarding_index.clear();
        self.registered_index.clear();
        self.timers.clear();
        self.outbox.clear();
        self.aaa_outbox.clear();
        self.vectors.clear();
        self.procedures = 0;
    }

    /// How many UE contexts exist.
    pub fn contexts(&self) -> usize {
        self.ues.len()
    }

    /// The 5GMM state of a connection's context, for tests and listings.
    pub fn state_of(&self, conn: ConnectionId) -> Option<&'static str> {
        self.ues.get(&conn).map(|ctx| ctx.state.name())
    }

    /// The NAS security context of a connection (tests compare it with the UE's).
    pub fn security_context(&self, conn: ConnectionId) -> Option<&nido_nas::SecurityContext> {
        self.ues.get(&conn).and_then(|ctx| ctx.sec.as_ref())
    }

    /// The SUPI a connection is registered with (onboarding NAI or subscription).
    pub fn supi_of(&self, conn: ConnectionId) -> Option<&Supi> {
        self.ues.get(&conn).and_then(|ctx| ctx.supi.as_ref())
    }

    /// The next PDU to send downlink.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NetworkEvent> {
        self.events.pop_front()
    }

    /// When [`Network::handle_timeout`] must next be called (may be early:
    /// a replaced timer's entry wakes the network for nothing).
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        while let Some(Reverse((at, conn, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(timer) = self.ues.get(&conn).and_then(|c| c.timer) else {
                continue;
            };
            if timer.generation != generation {
                continue;
            }
            if let Some(ctx) = self.ues.get_mut(&conn) {
                ctx.timer = None;
            }
            self.fire(now, conn, timer);
            self.recount(conn);
        }
    }

    /// Brings `conn`'s context into or out of the count of contexts in a
    /// procedure after its state changed. Called after every PDU and timer
    /// of the connection (a context changes state only then);
    /// [`Network::remove`] takes a removed context out of the count.
    pub(crate) fn recount(&mut self, conn: ConnectionId) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        let in_procedure = ctx.state.in_procedure();
        if in_procedure != ctx.counted {
            ctx.counted = in_procedure;
            if in_procedure {
                self.procedures += 1;
            } else {
                self.procedures -= 1;
            }
        }
    }

    /// Whether a new registration procedure may start on `conn` (which has
    /// no context in a procedure any more); `onboarding` for an SNPN
    /// onboarding registration, which may take all but the reserved tenth
    /// of the limit (see [`Admission`]). If not, REGISTRATION REJECT #22
    /// with a T3346 from the admission range goes out and
    /// [`NetworkEvent::Congested`] is reported.
    pub(crate) fn admit(&mut self, conn: ConnectionId, onboarding: bool) -> bool {
        let Some(max) = self.config.admission.max_procedures else {
            return true;
        };
        let limit = if onboarding { max - max / 10 } else { max };
        if self.procedures < limit {
            return true;
        }
        let t3346 = self.draw_t3346();
        match nido_nas::build::registration_reject(GmmCause::Congestion, Some(t3346.as_secs())) {
            Ok(m) => self.send(conn, &m, None),
            Err(e) => self.discard(conn, format!("REGISTRATION REJECT: {e}")),
        }
        self.events.push_back(NetworkEvent::Congested {
            conn,
            procedures: self.procedures,
            t3346,
        });
        false
    }

    /// A T3346 from [`Admission::t3346`], spread (see [`t3346_from`]).
    pub(crate) fn draw_t3346(&mut self) -> Duration {
        t3346_from(&self.config.admission.t3346, splitmix64(&mut self.backoff))
    }

    fn fire(&mut self, now: SystemTime, conn: ConnectionId, timer: Timer) {
        match timer.kind {
            TimerKind::T3560 | TimerKind::T3550 | TimerKind::T3522 => {
                if timer.retransmissions >= self.config.max_retransmissions {
                    self.events.push_back(NetworkEvent::ProcedureAbandoned {
                        conn,
                        timer: timer.kind.name(),
                    });
                    return self.remove(conn);
                }
                let pending = self
                    .ues
                    .get(&conn)
                    .map(|c| c.pending.clone())
                    .unwrap_or_default();
                for (message, protection) in &pending {
                    self.send(conn, message, *protection);
                }
                self.arm(now, conn, timer.kind, timer.retransmissions + 1);
            }
            TimerKind::Onboarding => {
                let request = nido_nas::build::deregistration_request_onboarding_terminated();
                self.network_deregistration(now, conn, request);
                self.events
                    .push_back(NetworkEvent::OnboardingTimerExpired { conn });
            }
            TimerKind::Tombstone => self.remove(conn),
            TimerKind::Aaa => self.aaa_timed_out(conn),
        }
    }

    /// Starts `kind` on `conn`'s context, replacing its timer.
    pub(crate) fn arm(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        kind: TimerKind,
        retransmissions: u32,
    ) {
        let duration = match kind {
            TimerKind::T3560 => self.config.t3560,
            TimerKind::T3550 => self.config.t3550,
            TimerKind::T3522 => self.config.t3522,
            TimerKind::Onboarding => self.config.onboarding_timer,
            TimerKind::Tombstone => self.config.tombstone,
            TimerKind::Aaa => self.config.aaa_timeout,
        };
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        self.generation += 1;
        let at = now + duration;
        ctx.timer = Some(Timer {
            kind,
            retransmissions,
            generation: self.generation,
        });
        self.timers.push(Reverse((at, conn, self.generation)));
    }

    /// Forgets a context and its index entries.
    pub(crate) fn remove(&mut self, conn: ConnectionId) {
        if let Some(ctx) = self.ues.remove(&conn) {
            if ctx.counted {
                self.procedures -= 1;
            }
            self.unindex(conn, ctx.device.as_ref(), ctx.supi.as_ref());
        }
    }

    /// Takes `conn` out of the onboarding and registration indexes under
    /// its context's `device` and `supi`, where they still point to it (a
    /// newer connection of the same identity keeps its entry).
    pub(crate) fn unindex(
        &mut self,
        conn: ConnectionId,
        device: Option<&crate::DeviceId>,
        supi: Option<&Supi>,
    ) {
        if let Some(device) = device
            && self.onboarding_index.get(device) == Some(&conn)
        {
            self.onboarding_index.remove(device);
        }
        if let Some(supi) = supi
            && self.registered_index.get(supi) == Some(&conn)
        {
            self.registered_index.remove(supi);
        }
    }

    /// Queues `message` for `conn`, protected with its context when asked.
    pub(crate) fn send(
        &mut self,
        conn: ConnectionId,
        message: &Nas5gsMessage,
        protection: Option<Protection>,
    ) {
        let name = message_name(message);
        let pdu = match protection {
            None => message.encode().map_err(|e| e.to_string()),
            Some(p) => match self.ues.get_mut(&conn).and_then(|c| c.sec.as_mut()) {
                Some(sec) => sec.protect(message, p).map_err(|e| e.to_string()),
                None => Err("no security context".into()),
            },
        };
        match pdu {
            Ok(pdu) => {
                let plain = (self.config.trace && protection.is_some())
                    .then(|| message.encode().ok())
                    .flatten();
                self.outbox.push_back(Transmit {
                    conn,
                    pdu,
                    message: name,
                    plain,
                });
            }
            Err(e) => self.discard(conn, format!("cannot send {name}: {e}")),
        }
    }

    /// Sends REGISTRATION REJECT with `cause` and forgets the context; #22
    /// (congestion) carries T3346. Integrity protected (and ciphered) when
    /// the context has a secure exchange of NAS messages (TS 24.501
    /// §4.4.4.2, §4.4.4.3: the UE has taken the context into use): the UE
    /// believes such a reject, and uses a protected #22's T3346 as sent
    /// (§5.5.1.2.5), where it would draw its own 15-30 min for a plain one.
    /// Plain before that (the UE may not hold the context).
    /// [`Self::reject`] with #111 (protocol error, unspecified) and no EAP
    /// message: what a procedure ends with when a message cannot be built
    /// or the exchange breaks a rule no named cause covers.
    pub(crate) fn reject_protocol_error(
        &mut self,
        conn: ConnectionId,
        device: Option<crate::DeviceId>,
        reason: String,
    ) {
        self.reject(
            conn,
            Cause::PROTOCOL_ERROR_UNSPECIFIED,
            device,
            reason,
            None,
        );
    }

    pub(crate) fn reject(
        &mut self,
        conn: ConnectionId,
        cause: Cause,
        device: Option<crate::DeviceId>,
        reason: String,
        eap: Option<&[u8]>,
    ) {
        self.reject_presented(conn, cause, device, None, reason, eap);
    }

    /// [`Self::reject`], naming the identity a refused certificate
    /// presented (see [`NetworkEvent::Refused`]'s `presented`).
    pub(crate) fn reject_presented(
        &mut self,
        conn: ConnectionId,
        cause: Cause,
        device: Option<crate::DeviceId>,
        presented: Option<crate::DeviceId>,
        reason: String,
        eap: Option<&[u8]>,
    ) {
        let gmm = gmm_cause(cause);
        let message = match eap {
            Some(eap) => nido_nas::build::registration_reject_with_eap(gmm, eap),
            None if gmm == GmmCause::Congestion => {
                nido_nas::build::registration_reject(gmm, Some(self.config.t3346.as_secs()))
                    .or_else(|_| nido_nas::build::registration_reject(gmm, None))
            }
            None => nido_nas::build::registration_reject(gmm, None),
        };
        let protection = self
            .ues
            .get(&conn)
            .is_some_and(|c| c.secured && c.sec.is_some())
            .then_some(Protection::IntegrityCiphered);
        match message {
            Ok(m) => self.send(conn, &m, protection),
            Err(e) => self.discard(conn, format!("REGISTRATION REJECT: {e}")),
        }
        self.events.push_back(NetworkEvent::Refused {
            conn,
            device,
            cause,
            reason,
            presented,
        });
        self.remove(conn);
    }

    pub(crate) fn discard(&mut self, conn: ConnectionId, reason: String) {
        self.events
            .push_back(NetworkEvent::Discarded { conn, reason });
    }

    /// An uplink PDU from `conn`; says whether it passed NAS integrity
    /// (see [`PduVerdict`]), for the driver's binding of the connection to
    /// an address. Callers that do not bind may ignore it.
    pub fn handle_pdu(&mut self, now: SystemTime, conn: ConnectionId, pdu: &[u8]) -> PduVerdict {
        let verdict = self.dispatch(now, conn, pdu);
        self.recount(conn);
        verdict
    }

    fn dispatch(&mut self, now: SystemTime, conn: ConnectionId, pdu: &[u8]) -> PduVerdict {
        let sht = match split_header(pdu) {
            Ok((sht, _, _)) => sht,
            Err(e) => {
                self.discard(conn, format!("header: {e}"));
                return PduVerdict::Discarded;
            }
        };
        if sht == 0 {
            return self.handle_plain(now, conn, pdu);
        }
        let Some(ctx) = self.ues.get_mut(&conn) else {
            self.discard(conn, "protected PDU without a context".into());
            return PduVerdict::Discarded;
        };
        let Some(sec) = ctx.sec.as_mut() else {
            self.discard(conn, "protected PDU before security mode".into());
            return PduVerdict::Discarded;
        };
        let verified = match sec.unprotect(pdu) {
            Ok(v) => v,
            Err(e) => {
                self.discard(conn, format!("NAS security: {e}"));
                return PduVerdict::Discarded;
            }
        };
        let inbound = match Inbound::read(&verified.message) {
            Ok(i) => i,
            Err(e) => {
                self.discard(conn, e.to_string());
                return PduVerdict::Discarded;
            }
        };
        // TS 24.501 §4.4.5: once ciphering has started, an unciphered
        // message that had to be ciphered is discarded. Only the initial
        // NAS messages travel integrity protected alone (§4.4.6; a CONTROL
        // PLANE SERVICE REQUEST ciphers its containers instead).
        let initial = matches!(
            inbound,
            Inbound::RegistrationRequest { .. }
                | Inbound::ControlPlaneServiceRequest { .. }
                | Inbound::DeregistrationRequestUeOriginating { .. }
        );
        if !verified.ciphered && !initial {
            self.discard(
                conn,
                format!("{} integrity protected but not ciphered", inbound.name()),
            );
            return PduVerdict::Discarded;
        }
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.last_uplink = now;
            // TS 24.501 §4.4.4.3: the secure exchange of NAS messages is
            // established; plain messages are no longer processed.
            ctx.secured = true;
            // The network ended the registration (T3522 running): only
            // the UE's DEREGISTRATION ACCEPT counts now.
            if matches!(ctx.state, MmState::Deregistering) {
                if matches!(inbound, Inbound::DeregistrationAcceptUeTerminated) {
                    self.remove(conn);
                } else {
                    self.discard(
                        conn,
                        format!("{} while the network deregisters the UE", inbound.name()),
                    );
                }
                return PduVerdict::Verified;
            }
        }
        match inbound {
            Inbound::SecurityModeComplete {
                nas_message_container,
            } => self.on_security_mode_complete(now, conn, nas_message_container),
            Inbound::RegistrationComplete => self.on_registration_complete(now, conn),
            Inbound::UlNasTransport(payload) => self.on_ul_transport(now, conn, payload),
            Inbound::ControlPlaneServiceRequest { psi, data, .. } => {
                self.on_control_plane_service_request(now, conn, psi, data)
            }
            Inbound::DeregistrationRequestUeOriginating { .. } => self.on_deregistration(now, conn),
            Inbound::DeregistrationAcceptUeTerminated => {}
            Inbound::SecurityModeReject { cause } => {
                let device = self.ues.get(&conn).and_then(|c| c.device.clone());
                self.events.push_back(NetworkEvent::Refused {
                    presented: None,
                    conn,
                    device,
                    cause,
                    reason: "the UE rejected the security mode command".into(),
                });
                self.remove(conn);
            }
            other => self.discard(conn, format!("{} not expected", other.name())),
        }
        PduVerdict::Verified
    }

    fn handle_plain(&mut self, now: SystemTime, conn: ConnectionId, pdu: &[u8]) -> PduVerdict {
        // TS 24.501 §4.4.4.3: once the secure exchange of NAS messages is
        // established on a connection, nothing unprotected is processed on
        // it: not a REGISTRATION REQUEST that would replace a registered
        // context, not a SECURITY MODE REJECT or AUTHENTICATION FAILURE
        // that would abort it. (A UE that lost its context registers again
        // on a new connection, as nido's devices always do.)
        if self.ues.get(&conn).is_some_and(|c| c.secured) {
            self.discard(
                conn,
                "plain message on a connection with a secure exchange".into(),
            );
            return PduVerdict::Discarded;
        }
        // TS 24.501 clause 7: the optional IEs a receiver ignores (§7.6,
        // §7.7.1) are dropped by the decoder; a faulty mandatory IE (§7.5)
        // refuses the message.
        let received = match nido_nas::receive(pdu) {
            Ok(r) => r,
            Err(e) => {
                // §7.5.1 lets the network treat a message with invalid
                // mandatory information: a REGISTRATION REQUEST, which
                // §4.4.4.3 has it process unprotected, is answered with
                // REGISTRATION REJECT #96; anything else is ignored (a 5GMM
                // STATUS would not be processed unprotected, §4.4.4.2).
                if e.cause() == Some(GmmCause::InvalidMandatoryInformation)
                    && is_registration_request(pdu)
                {
                    self.reject(
                        conn,
                        Cause::INVALID_MANDATORY_INFORMATION,
                        None,
                        e.to_string(),
                        None,
                    );
                    return PduVerdict::Plain;
                }
                self.discard(conn, e.to_string());
                return PduVerdict::Discarded;
            }
        };
        // `received.dropped` lists what was treated as absent.
        let inbound = match Inbound::read(&received.message) {
            Ok(i) => i,
            Err(e) => {
                // A 5GS mobile identity that is not one of its type is a
                // syntactically incorrect mandatory IE too (§7.5.1).
                if e.message == "RegistrationRequest" && e.field == "5GS mobile identity" {
                    self.reject(
                        conn,
                        Cause::INVALID_MANDATORY_INFORMATION,
                        None,
                        e.to_string(),
                        None,
                    );
                    return PduVerdict::Plain;
                }
                self.discard(conn, e.to_string());
                return PduVerdict::Discarded;
            }
        };
        if let Inbound::RegistrationRequest {
            registration_type,
            identity,
            ue_security_capability,
            ..
        } = inbound
        {
            self.on_registration_request(
                now,
                conn,
                pdu,
                registration_type,
                identity,
                ue_security_capability,
            );
            return PduVerdict::Plain;
        }
        // Before security mode, only the answers of an authentication
        // (TS 24.501 §4.4.4.3) are accepted unprotected.
        let authenticating = self
            .ues
            .get(&conn)
            .is_some_and(|c| matches!(c.state, MmState::Authenticating(_) | MmState::SecurityMode));
        if !authenticating {
            self.discard(conn, format!("plain {} not accepted", inbound.name()));
            return PduVerdict::Discarded;
        }
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.last_uplink = now;
        }
        match inbound {
            Inbound::AuthenticationResponse { res_star, eap } => {
                self.on_authentication_response(now, conn, res_star, eap)
            }
            Inbound::AuthenticationFailure { cause, auts } => {
                self.on_authentication_failure(now, conn, cause, auts)
            }
            Inbound::SecurityModeReject { cause } => {
                let device = self.ues.get(&conn).and_then(|c| c.device.clone());
                self.events.push_back(NetworkEvent::Refused {
                    presented: None,
                    conn,
                    device,
                    cause,
                    reason: "the UE rejected the security mode command".into(),
                });
                self.remove(conn);
            }
            other => {
                self.discard(conn, format!("plain {} not accepted", other.name()));
                return PduVerdict::Discarded;
            }
        }
        PduVerdict::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(range: (u64, u64), r: u64) -> u64 {
        t3346_from(
            &(Duration::from_secs(range.0)..=Duration::from_secs(range.1)),
            r,
        )
        .as_secs()
    }

    fn encodable(s: u64) -> bool {
        nido_nas::build::registration_reject(GmmCause::Congestion, Some(s)).is_ok()
    }

    #[test]
    fn gprs_timer2_rounding_gives_exact_values_around_the_input() {
        for s in 0..=GPRS_TIMER2_MAX + 400 {
            let (down, up) = (gprs_timer2_floor(s), gprs_timer2_ceil(s));
            assert!(encodable(down) && encodable(up), "{s}: {down} {up}");
            assert!(down <= s.min(GPRS_TIMER2_MAX), "{s}: {down}");
            assert!(up >= s.min(GPRS_TIMER2_MAX), "{s}: {up}");
            if encodable(s) {
                assert_eq!((down, up), (s, s));
            }
        }
    }

    #[test]
    fn t3346_draws_stay_in_range_are_encodable_and_spread() {
        for range in [
            (10, 60),
            (2, 2),
            (5, 7),
            (30, 600),
            (61, 61),
            (0, 0),
            (1800, 7200),
        ] {
            let mut state = 7;
            let draws: Vec<u64> = (0..2000)
                .map(|_| secs(range, splitmix64(&mut state)))
                .collect();
            assert!(draws.iter().all(|&s| encodable(s) && s >= 2), "{range:?}");
            let has_one = (range.0.max(2)..=range.1.max(2)).any(encodable);
            if has_one {
                assert!(
                    draws
                        .iter()
                        .all(|&s| (range.0..=range.1.max(2)).contains(&s)),
                    "{range:?}: {draws:?}"
                );
            }
        }
        // 10..=60 s: every even second is a value; all of them come up,
        // about equally often.
        let mut state = 1;
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..26_000 {
            *counts
                .entry(secs((10, 60), splitmix64(&mut state)))
                .or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 26, "{counts:?}");
        assert!(
            counts.values().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
        // 61 s alone is no GPRS timer 2 value: the nearest one.
        assert_eq!(secs((61, 61), 0), 60);
    }

    #[test]
    fn a_seed_makes_the_draws_reproducible() {
        let admission = Admission {
            seed: Some(42),
            ..Admission::default()
        };
        let (mut a, mut b) = (backoff_seed(&admission), backoff_seed(&admission));
        let xs: Vec<u64> = (0..8).map(|_| splitmix64(&mut a)).collect();
        let ys: Vec<u64> = (0..8).map(|_| splitmix64(&mut b)).collect();
        assert_eq!(xs, ys);
        let mut c = backoff_seed(&Admission::default());
        let zs: Vec<u64> = (0..8).map(|_| splitmix64(&mut c)).collect();
        assert_ne!(xs, zs, "an unseeded network draws its own seed");
    }
}
