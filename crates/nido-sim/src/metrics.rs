//! Every figure a fleet run reports, measured in one place and defined
//! once: the funnel, the phases A-D of the design doc, NAS cost, refusals
//! and failures by why. The in-process harness ([`crate::Fleet`], so
//! `nido demo`) and the UDP fleet of `nido sim` feed the same [`Metrics`]
//! from the same three sources, on their own clock (simulated or wall):
//!
//! - every device event ([`Metrics::device_event`]);
//! - every PDU entering the link, either way ([`Metrics::pdu`]);
//! - the network's events where the network runs in-process
//!   ([`Metrics::network_event`]: the network's words for a refusal).
//!
//! Definitions (each a device's *first* passage; µs of the clock fed in):
//!
//! | figure | from | to |
//! |---|---|---|
//! | A onboarding | power-on (`Off` to `Onboarding`) | registered for onboarding (`Onboarding` to `Provisioning`) |
//! | B provisioning | end of A | the registration with the new subscription starts (`Registering`) |
//! | C validation | end of B | `Registering` to `Active` |
//! | overall | power-on | active (A to C) |
//! | D burst | a burst from idle leaves (CONTROL PLANE SERVICE REQUEST) | its SERVICE ACCEPT arrives ([`DeviceEvent::BurstAccepted`]); every such burst is one sample |
//!
//! A device is *settled* ([`Metrics::settled`]) when it is active with no
//! burst waiting, has given up (`Failed`), or backs off right after the
//! network refused it (a REGISTRATION REJECT or a DEREGISTRATION REQUEST
//! with a cause other than #22: T3247 after an unprotected reject, the
//! back-off after #74): a device backing off after #22 (congestion) or
//! after attempts that went unanswered is not settled, it comes back.
//!
//! *NAS cost of onboarding* ([`Metrics::onboarding`]): every PDU of a
//! device, both ways, until its first burst leaves (phases A to C and the
//! data session's set-up), over the devices that became active; a device
//! that never gets there (refused, retrying) counts all its PDUs. *Refused*
//! in the funnel: refused at least once as above (a 5GMM STATUS or a
//! transport error is no refusal).
//!
//! Cost: a few octets per device and one sample per phase passage;
//! nothing walks the fleet.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use nido_net::NetworkEvent;
use nido_sec::Cause;
use nido_ue::{BurstPath, Device, DeviceEvent, DeviceState, RejectMessage};

use crate::connection::device_of;
use crate::link::Direction;
use crate::report::{Latency, NasCost, Percentiles, Report};

/// The device sent its first REGISTRATION REQUEST.
const ATTACHED: u16 = 1;
/// EAP-TLS succeeded: registered for onboarding (phase A done).
const AUTHENTICATED: u16 = 2;
/// The credential package is installed.
const PROVISIONED: u16 = 4;
/// Phase B done (registering with its own subscription).
const VALIDATING: u16 = 8;
/// Phase C done: active.
const ACTIVE: u16 = 16;
/// Refused at least once (a reject with a cause other than #22).
const REFUSED: u16 = 32;
/// A burst from idle is waiting for its SERVICE ACCEPT.
const BURST: u16 = 64;
/// The network sent the device at least one PDU.
const HEARD: u16 = 128;
/// The device's last reject refused it (a cause other than #22) and it
/// has not moved on since (cleared by any state change but into
/// `BackingOff`).
const REFUSED_NOW: u16 = 256;
/// The device sent a burst: its PDUs no longer count as onboarding.
const BURSTING: u16 = 512;

/// Why a device that is not active at the end of a run did not get there:
/// the `last` failure it reported ([`DeviceEvent::failure`]), else
/// `"no answer"` when the network never sent it anything (`heard` false),
/// else `"incomplete (<state>)"`.
pub fn failure_reason(last: Option<&str>, heard: bool, state: DeviceState) -> String {
    match (last, heard) {
        (Some(reason), _) => reason.to_owned(),
        (None, false) => "no answer".to_owned(),
        (None, true) => format!("incomplete ({state:?})"),
    }
}

/// Message and octet counters, both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meter {
    /// PDUs from the devices.
    pub ul_messages: u64,
    /// Their octets.
    pub ul_bytes: u64,
    /// PDUs to the devices.
    pub dl_messages: u64,
    /// Their octets.
    pub dl_bytes: u64,
}

impl Meter {
    /// Adds `other`'s counts (another shard's).
    pub fn absorb(&mut self, other: Meter) {
        self.ul_messages += other.ul_messages;
        self.ul_bytes += other.ul_bytes;
        self.dl_messages += other.dl_messages;
        self.dl_bytes += other.dl_bytes;
    }

    fn add(&mut self, direction: Direction, bytes: usize) {
        match direction {
            Direction::Uplink => {
                self.ul_messages += 1;
                self.ul_bytes += bytes as u64;
            }
            Direction::Downlink => {
                self.dl_messages += 1;
                self.dl_bytes += bytes as u64;
            }
        }
    }

    /// The counts divided by `per` (e.g. the active devices): the NAS cost
    /// of one.
    pub fn per(&self, per: u64) -> NasCost {
        let per = per.max(1) as f64;
        NasCost {
            messages: (self.ul_messages + self.dl_messages) as f64 / per,
            bytes: (self.ul_bytes + self.dl_bytes) as f64 / per,
            uplink_messages: self.ul_messages as f64 / per,
            uplink_bytes: self.ul_bytes as f64 / per,
            downlink_messages: self.dl_messages as f64 / per,
            downlink_bytes: self.dl_bytes as f64 / per,
        }
    }
}

/// How many devices got how far in one fleet run (each counted once, at
/// its first passage; `refused`: refused at least once during the run).
/// Not the store's funnel (`nido_store::Funnel`, the fleet as the
/// database holds it now, which the console and the API show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Funnel {
    /// Powered on and sent a REGISTRATION REQUEST.
    pub attached: u64,
    /// Authenticated by EAP-TLS (phase A done).
    pub authenticated: u64,
    /// Installed a credential package.
    pub provisioned: u64,
    /// Became active with their own subscription (phase C done).
    pub active: u64,
    /// Refused at least once (a reject with a cause).
    pub refused: u64,
}

impl Funnel {
    /// Adds `other`'s counts (another shard's).
    pub fn absorb(&mut self, other: Funnel) {
        self.attached += other.attached;
        self.authenticated += other.authenticated;
        self.provisioned += other.provisioned;
        self.active += other.active;
        self.refused += other.refused;
    }
}

/// A refusal the network reported (in-process only).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The 5GMM cause of its reject.
    pub cause: Cause,
    /// The network's own words (its audit reason).
    pub reason: String,
}

/// Phase latency samples, µs of the clock fed in.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// A, B, C, D and overall, in that order.
    pub samples: [Vec<u64>; 5],
}

impl Phases {
    /// Adds `other`'s samples (another shard's).
    pub fn absorb(&mut self, other: &Phases) {
        for (mine, theirs) in self.samples.iter_mut().zip(&other.samples) {
            mine.extend_from_slice(theirs);
        }
    }

    /// The percentiles of each phase, milliseconds.
    pub fn latency(&self) -> Latency {
        let p = |samples: &[u64]| {
            let mut ms: Vec<f64> = samples.iter().map(|&us| us as f64 / 1000.0).collect();
            Percentiles::of(&mut ms)
        };
        let [a, b, c, d, overall] = &self.samples;
        Latency {
            a: p(a),
            b: p(b),
            c: p(c),
            d: p(d),
            overall: p(overall),
        }
    }
}

/// What one fleet run measured (see the module doc for the definitions).
#[derive(Debug, Clone)]
pub struct Metrics {
    start: SystemTime,
    /// Per device: power-on time, µs since `start`.
    on: Vec<u64>,
    /// Per device: the last phase boundary (or burst), µs since `start`.
    mark: Vec<u64>,
    flags: Vec<u16>,
    /// Per device: the last failure it reported.
    last_failure: Vec<Option<Box<str>>>,
    phases: Phases,
    funnel: Funnel,
    meter: Meter,
    onboarding: Meter,
    meter_active_only: bool,
    baseline_device: Option<usize>,
    baseline: Meter,
    refusals: HashMap<usize, Refusal>,
    /// Bursts that left the devices (both paths).
    pub bursts_sent: u64,
    /// Downlink data the devices received.
    pub downlinks_received: u64,
    /// REGISTRATION REJECTs #22 the devices received.
    pub congestion_rejects: u64,
}

fn micros(start: SystemTime, at: SystemTime) -> u64 {
    at.duration_since(start)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn span(from: u64, to: u64) -> u64 {
    to.saturating_sub(from)
}

impl Metrics {
    /// Nothing measured yet; times count from `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            on: Vec::new(),
            mark: Vec::new(),
            flags: Vec::new(),
            last_failure: Vec::new(),
            phases: Phases::default(),
            funnel: Funnel::default(),
            meter: Meter::default(),
            onboarding: Meter::default(),
            meter_active_only: false,
            baseline_device: None,
            baseline: Meter::default(),
            refusals: HashMap::new(),
            bursts_sent: 0,
            downlinks_received: 0,
            congestion_rejects: 0,
        }
    }

    /// Measures `n` more devices (numbered on from the last one). A PDU,
    /// event or refusal naming a device the metrics do not know (an
    /// attacker's connection id) counts in the totals only: it never makes
    /// room for itself.
    pub fn add_devices(&mut self, n: usize) {
        let n = self.flags.len() + n;
        self.on.resize(n, 0);
        self.mark.resize(n, 0);
        self.flags.resize(n, 0);
        self.last_failure.resize(n, None);
    }

    fn known(&self, i: usize) -> bool {
        i < self.flags.len()
    }

    fn first(&mut self, i: usize, flag: u16) -> bool {
        let fresh = self.flags[i] & flag == 0;
        self.flags[i] |= flag;
        fresh
    }

    /// Device `i` reported `e` at `now`.
    pub fn device_event(&mut self, now: SystemTime, i: usize, e: &DeviceEvent) {
        if !self.known(i) {
            return;
        }
        let t = micros(self.start, now);
        if let Some(reason) = e.failure() {
            self.last_failure[i] = Some(reason.into_boxed_str());
        }
        if let DeviceEvent::State { to, .. } = e
            && *to != DeviceState::BackingOff
        {
            self.flags[i] &= !REFUSED_NOW;
        }
        match e {
            DeviceEvent::State { from, to } => match (from, to) {
                (DeviceState::Off, DeviceState::Onboarding) if self.first(i, ATTACHED) => {
                    self.funnel.attached += 1;
                    self.on[i] = t;
                    self.mark[i] = t;
                }
                (DeviceState::Onboarding, DeviceState::Provisioning)
                    if self.first(i, AUTHENTICATED) =>
                {
                    self.funnel.authenticated += 1;
                    self.phases.samples[0].push(span(self.mark[i], t));
                    self.mark[i] = t;
                }
                (_, DeviceState::Registering)
                    if self.flags[i] & AUTHENTICATED != 0 && self.first(i, VALIDATING) =>
                {
                    self.phases.samples[1].push(span(self.mark[i], t));
                    self.mark[i] = t;
                }
                (DeviceState::Registering, DeviceState::Active)
                    if self.flags[i] & VALIDATING != 0 && self.first(i, ACTIVE) =>
                {
                    self.funnel.active += 1;
                    self.phases.samples[2].push(span(self.mark[i], t));
                    self.phases.samples[4].push(span(self.on[i], t));
                }
                _ => {}
            },
            DeviceEvent::Provisioned { .. } if self.first(i, PROVISIONED) => {
                self.funnel.provisioned += 1;
            }
            DeviceEvent::Rejected { message, cause } => match message {
                RejectMessage::RegistrationReject | RejectMessage::DeregistrationRequest
                    if *cause == Cause::CONGESTION =>
                {
                    if *message == RejectMessage::RegistrationReject {
                        self.congestion_rejects += 1;
                    }
                    self.flags[i] &= !REFUSED_NOW;
                }
                RejectMessage::RegistrationReject | RejectMessage::DeregistrationRequest => {
                    self.flags[i] |= REFUSED_NOW;
                    if self.first(i, REFUSED) {
                        self.funnel.refused += 1;
                    }
                }
                _ => {}
            },
            DeviceEvent::BurstSent { path, .. } => {
                self.flags[i] |= BURSTING;
                self.bursts_sent += 1;
                if *path == BurstPath::ControlPlaneServiceRequest {
                    self.flags[i] |= BURST;
                    self.mark[i] = t;
                }
            }
            DeviceEvent::BurstAccepted if self.flags[i] & BURST != 0 => {
                self.flags[i] &= !BURST;
                self.phases.samples[3].push(span(self.mark[i], t));
            }
            DeviceEvent::Downlink { .. } => self.downlinks_received += 1,
            _ => {}
        }
    }

    /// The in-process network reported `e`.
    pub fn network_event(&mut self, e: &NetworkEvent) {
        if let NetworkEvent::Refused {
            conn,
            cause,
            reason,
            ..
        } = e
        {
            // The last refusal that was one (#22 sends a device away for
            // a while, it refuses nothing).
            let i = device_of(conn.0);
            if self.known(i) && *cause != Cause::CONGESTION {
                self.refusals.insert(
                    i,
                    Refusal {
                        cause: *cause,
                        reason: reason.clone(),
                    },
                );
            }
        }
    }

    /// A PDU of `len` octets of device `i` entered the link.
    pub fn pdu(&mut self, direction: Direction, i: usize, len: usize) {
        let flags = self.flags.get(i).copied().unwrap_or(0);
        if direction == Direction::Downlink && self.known(i) {
            self.flags[i] |= HEARD;
        }
        if !self.meter_active_only || flags & ACTIVE != 0 {
            self.meter.add(direction, len);
        }
        if flags & BURSTING == 0 {
            self.onboarding.add(direction, len);
        }
        if self.baseline_device == Some(i) {
            self.baseline.add(direction, len);
        }
    }

    /// When the clock of the measurements starts.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    /// Puts what is measured the same way in every driver into `report`:
    /// the funnel, the latencies, the NAS cost of onboarding per active
    /// device and the device-side counters (`report.active` first).
    pub fn fill(&self, report: &mut Report) {
        report.funnel = self.funnel;
        report.nas_per_onboarding = self.onboarding.per(report.active);
        report.latency_ms = self.phases.latency();
        report.congestion_rejects = self.congestion_rejects;
        report.downlinks_received = self.downlinks_received;
    }

    /// How far the devices got.
    pub fn funnel(&self) -> Funnel {
        self.funnel
    }

    /// The phase samples.
    pub fn phases(&self) -> &Phases {
        &self.phases
    }

    /// The NAS cost of onboarding (see the module doc): every PDU of a
    /// device until its first burst leaves.
    pub fn onboarding(&self) -> Meter {
        self.onboarding
    }

    /// The NAS traffic counted since the last [`Metrics::take_meter`].
    pub fn meter(&self) -> Meter {
        self.meter
    }

    /// The NAS traffic counted so far; counting starts again from zero (a
    /// driver's stages: onboarding, then the bursts).
    pub fn take_meter(&mut self) -> Meter {
        core::mem::take(&mut self.meter)
    }

    /// From now on count only the traffic of devices that reached active
    /// (the bursts: a bad device backing off and trying again is not part
    /// of them).
    pub fn count_active_only(&mut self, only: bool) {
        self.meter_active_only = only;
    }

    /// Counts device `i`'s traffic apart as well (the re-registration
    /// baseline), or no device's.
    pub fn set_baseline_device(&mut self, i: Option<usize>) {
        self.baseline_device = i;
    }

    /// The baseline device's traffic.
    pub fn baseline(&self) -> Meter {
        self.baseline
    }

    /// Whether device `i` (`device`, whose events went through
    /// [`Metrics::device_event`]) is settled: active with no burst
    /// waiting, given up, or backing off after a refusal that was not #22
    /// (see the module doc).
    pub fn settled(&self, i: usize, device: &Device) -> bool {
        match device.state() {
            DeviceState::Active => !device.bursts_pending(),
            DeviceState::Failed => true,
            DeviceState::BackingOff => {
                device.refusal().is_some()
                    || self.flags.get(i).is_some_and(|f| f & REFUSED_NOW != 0)
            }
            _ => false,
        }
    }

    /// Whether device `i` was refused at least once.
    pub fn refused(&self, i: usize) -> bool {
        self.flags.get(i).is_some_and(|f| f & REFUSED != 0)
    }

    /// The network's last refusal of device `i` other than #22
    /// (in-process only).
    pub fn refusal(&self, i: usize) -> Option<&Refusal> {
        self.refusals.get(&i)
    }

    /// Why device `i`, in `state` and not active, is not
    /// ([`failure_reason`]).
    pub fn failure(&self, i: usize, state: DeviceState) -> String {
        failure_reason(
            self.last_failure.get(i).and_then(|f| f.as_deref()),
            self.flags.get(i).is_some_and(|f| f & HEARD != 0),
            state,
        )
    }

    /// The failures of `devices` (index, state) that are not active, by
    /// why.
    pub fn failures(
        &self,
        devices: impl IntoIterator<Item = (usize, DeviceState)>,
    ) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (i, state) in devices {
            if state != DeviceState::Active {
                *out.entry(self.failure(i, state)).or_default() += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(from: DeviceState, to: DeviceState) -> DeviceEvent {
        DeviceEvent::State { from, to }
    }

    #[test]
    fn phases_are_measured_once_per_device_from_its_events() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut m = Metrics::new(t0);
        m.add_devices(4);
        m.device_event(at(10), 3, &state(DeviceState::Off, DeviceState::Onboarding));
        m.device_event(
            at(110),
            3,
            &state(DeviceState::Onboarding, DeviceState::Provisioning),
        );
        m.device_event(
            at(310),
            3,
            &state(DeviceState::Deregistering, DeviceState::Registering),
        );
        m.device_event(
            at(360),
            3,
            &state(DeviceState::Registering, DeviceState::Active),
        );
        // A second passage counts nothing.
        m.device_event(
            at(400),
            3,
            &state(DeviceState::Active, DeviceState::Registering),
        );
        m.device_event(
            at(500),
            3,
            &state(DeviceState::Registering, DeviceState::Active),
        );
        m.device_event(
            at(600),
            3,
            &DeviceEvent::BurstSent {
                bytes: 4,
                path: BurstPath::ControlPlaneServiceRequest,
            },
        );
        m.device_event(at(620), 3, &DeviceEvent::BurstAccepted);
        // An answer without a burst from idle is no sample.
        m.device_event(at(700), 3, &DeviceEvent::BurstAccepted);
        let l = m.phases().latency();
        assert_eq!(
            [l.a.max, l.b.max, l.c.max, l.d.max, l.overall.max],
            [100.0, 200.0, 50.0, 20.0, 350.0]
        );
        assert_eq!([l.a.samples, l.d.samples, l.overall.samples], [1, 1, 1]);
        let f = m.funnel();
        assert_eq!((f.attached, f.authenticated, f.active), (1, 1, 1));
        assert_eq!(m.bursts_sent, 1);
    }

    #[test]
    fn congestion_is_counted_apart_from_refusals_and_failures_name_the_last_one() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut m = Metrics::new(t0);
        m.add_devices(4);
        let reject = |cause| DeviceEvent::Rejected {
            message: RejectMessage::RegistrationReject,
            cause,
        };
        m.device_event(t0, 0, &reject(Cause::CONGESTION));
        assert!(!m.refused(0));
        assert_eq!(m.congestion_rejects, 1);
        assert_eq!(m.failure(0, DeviceState::BackingOff), "reject #22");
        m.device_event(t0, 0, &reject(Cause::ILLEGAL_UE));
        assert!(m.refused(0));
        assert_eq!(m.failure(0, DeviceState::BackingOff), "reject #3");
        // Device 1 never heard anything; device 2 heard but never failed.
        m.pdu(Direction::Uplink, 1, 40);
        m.pdu(Direction::Downlink, 2, 40);
        let failures = m.failures([
            (0, DeviceState::BackingOff),
            (1, DeviceState::Onboarding),
            (2, DeviceState::Registering),
            (3, DeviceState::Active),
        ]);
        assert_eq!(
            failures,
            BTreeMap::from([
                ("incomplete (Registering)".to_owned(), 1),
                ("no answer".to_owned(), 1),
                ("reject #3".to_owned(), 1),
            ])
        );
        assert_eq!(m.meter().per(1).messages, 2.0);
        assert_eq!(m.onboarding().per(1).messages, 2.0);
        // An attacker's connection id names no device: counted, no room made.
        m.pdu(Direction::Downlink, usize::MAX, 40);
        m.device_event(t0, 1 << 40, &reject(Cause::ILLEGAL_UE));
        assert_eq!(m.meter().per(1).messages, 3.0);
        assert_eq!(m.funnel().refused, 1);
        // A 5GMM STATUS refuses nothing.
        m.device_event(
            t0,
            2,
            &DeviceEvent::Rejected {
                message: RejectMessage::Status,
                cause: Cause::PAYLOAD_NOT_FORWARDED,
            },
        );
        assert!(!m.refused(2));
    }
}
