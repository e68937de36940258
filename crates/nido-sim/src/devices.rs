//! The device side of every fleet: the one fleet core that the in-process
//! harness ([`crate::Fleet`], and through it `nido demo`'s shards) and the
//! UDP driver (`nido_access::fleet`, and through it `nido sim` and `nido
//! device run`) are configurations of. What differs between them is only
//! the clock (simulated or wall) and where a device's PDUs go (a
//! simulated link to an in-process network, or a link whose far end is a
//! UDP socket); everything a device does is driven here:
//!
//! - the devices themselves, each with its index in the fleet;
//! - the one connection-id scheme ([`crate::connection`]): device `i`'s
//!   link connections carry `base + i` (`base` 0 in a fleet of its own, a
//!   random number for a device on a shared network);
//! - one timer heap (lazy deletion: an entry that no longer matches its
//!   device's timer is dropped when it surfaces, and an unchanged timer is
//!   not pushed again);
//! - the burst schedule ([`Bursts`]) and, with [`arrival`], the arrival
//!   schedule;
//! - the one [`Metrics`]: every device event and every PDU a device sends
//!   goes through it, and [`Devices::fill_report`] is the device part of
//!   the one report;
//! - per-state counts and the settled count, kept as devices change.
//!
//! Invariants: every operation costs what concerns the devices it touches,
//! never a walk over the fleet (a million devices run); a device's events
//! are taken before its PDUs, so what an event says (a burst left) decides
//! how the PDUs that went with it count; a device switched off
//! ([`Devices::power_off`]) neither fires timers nor receives PDUs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use nido_ue::{DataError, Device, DeviceEvent, DeviceState, Transmit};

use crate::connection::{connection_id, device_of};
use crate::link::Direction;
use crate::metrics::Metrics;
use crate::report::{RefusedDevice, Report};

type EventHook = Box<dyn FnMut(SystemTime, usize, &DeviceEvent)>;

/// The number of [`DeviceState`]s.
const STATES: usize = 8;

/// A dense index for `state`, for the per-state counters.
fn state_index(state: DeviceState) -> usize {
    match state {
        DeviceState::Off => 0,
        DeviceState::Onboarding => 1,
        DeviceState::Provisioning => 2,
        DeviceState::Deregistering => 3,
        DeviceState::Registering => 4,
        DeviceState::Active => 5,
        DeviceState::BackingOff => 6,
        DeviceState::Failed => 7,
    }
}

/// When device `i` of a fleet arriving at `rate` devices per second
/// powers on, from the fleet's start (all at once without a rate).
pub fn arrival(i: usize, rate: Option<f64>) -> Duration {
    match rate {
        Some(r) if r > 0.0 => Duration::from_secs_f64(i as f64 / r),
        _ => Duration::ZERO,
    }
}

/// What each device sends once active: `count` bursts (`None`: as long as
/// it runs), the first as soon as it is active, then one per `every` (a
/// device that left `Active` sends its next one when it is back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bursts {
    /// How many bursts each device sends (`None`: no end).
    pub count: Option<u32>,
    /// Time between two bursts of a device.
    pub every: Duration,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether burst K carries `;n=K` after the payload (K from 1), so a
    /// receiver tells a device's retransmission (same K) from its next
    /// burst.
    pub numbered: bool,
}

/// The burst schedule's state.
struct BurstPlan {
    bursts: Bursts,
    /// Per device: bursts sent, when the next may leave, whether it is in
    /// `due`.
    sent: Vec<u32>,
    next: Vec<Option<SystemTime>>,
    queued: Vec<bool>,
    /// Bursts due, by time; a device is in it at most once.
    due: BinaryHeap<Reverse<(SystemTime, usize)>>,
}

impl BurstPlan {
    fn done(&self, i: usize) -> bool {
        self.bursts.count.is_some_and(|n| self.sent[i] >= n)
    }
}

/// The devices of one fleet (see the module doc).
pub struct Devices {
    devices: Vec<Device>,
    base: u64,
    timers: BinaryHeap<Reverse<(SystemTime, usize)>>,
    /// The timer last pushed for each device.
    scheduled: Vec<Option<SystemTime>>,
    states: [usize; STATES],
    off: Vec<bool>,
    settled_flags: Vec<bool>,
    settled: usize,
    metrics: Metrics,
    record: bool,
    events: Vec<Vec<DeviceEvent>>,
    hook: Option<EventHook>,
    plan: Option<BurstPlan>,
}

impl core::fmt::Debug for Devices {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Devices")
            .field("devices", &self.devices.len())
            .field("base", &self.base)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Devices {
    /// No device yet; the fleet's measurements start at `start`. Device
    /// `i`'s link connections carry `base + i`; `record` keeps every event
    /// for inspection ([`Devices::events`]).
    pub fn new(start: SystemTime, base: u64, record: bool) -> Self {
        Self {
            devices: Vec::new(),
            base,
            timers: BinaryHeap::new(),
            scheduled: Vec::new(),
            states: [0; STATES],
            off: Vec::new(),
            settled_flags: Vec::new(),
            settled: 0,
            metrics: Metrics::new(start),
            record,
            events: Vec::new(),
            hook: None,
            plan: None,
        }
    }

    /// Adds a device (as it is, normally off); returns its index.
    pub fn add(&mut self, device: Device) -> usize {
        self.states[state_index(device.state())] += 1;
        self.devices.push(device);
        self.scheduled.push(None);
        self.off.push(false);
        self.settled_flags.push(false);
        self.metrics.add_devices(1);
        if self.record {
            self.events.push(Vec::new());
        }
        if let Some(p) = self.plan.as_mut() {
            p.sent.push(0);
            p.next.push(None);
            p.queued.push(false);
        }
        self.devices.len() - 1
    }

    /// Has every device send `bursts` once active (no bursts without it:
    /// a driver may still send them itself, [`Devices::send_data`]).
    pub fn set_bursts(&mut self, bursts: Bursts) {
        let n = self.devices.len();
        self.plan = Some(BurstPlan {
            bursts,
            sent: vec![0; n],
            next: vec![None; n],
            queued: vec![false; n],
            due: BinaryHeap::new(),
        });
    }

    /// Calls `hook` with every device event as it is taken (with the
    /// clock and the device's index), whether or not events are recorded.
    pub fn set_events(&mut self, hook: impl FnMut(SystemTime, usize, &DeviceEvent) + 'static) {
        self.hook = Some(Box::new(hook));
    }

    /// How many devices there are.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Device `i`.
    pub fn get(&self, i: usize) -> &Device {
        &self.devices[i]
    }

    /// Device `i`, to drive directly (call [`Devices::pump`] after).
    pub fn get_mut(&mut self, i: usize) -> &mut Device {
        &mut self.devices[i]
    }

    /// All devices.
    pub fn as_slice(&self) -> &[Device] {
        &self.devices
    }

    /// The link connection device `i` is on now.
    pub fn connection(&self, i: usize) -> u64 {
        connection_id(self.base + i as u64, self.devices[i].connection())
    }

    /// The device a link connection belongs to, if it is one of these.
    pub fn index_of(&self, conn: u64) -> Option<usize> {
        let i = device_of(conn).checked_sub(usize::try_from(self.base).ok()?)?;
        (i < self.devices.len()).then_some(i)
    }

    /// What was measured so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The measurements, to change what they count.
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// Device `i`'s recorded events (none unless recording).
    pub fn events(&self, i: usize) -> &[DeviceEvent] {
        self.events.get(i).map_or(&[], Vec::as_slice)
    }

    /// How many devices are in `state` now.
    pub fn count(&self, state: DeviceState) -> usize {
        self.states[state_index(state)]
    }

    /// How many devices are settled: [`Metrics::settled`] (active with no
    /// burst waiting, given up, or backing off after a refusal other than
    /// #22), and, with a burst schedule, an active device has sent all its
    /// bursts.
    pub fn settled(&self) -> usize {
        self.settled
    }

    /// Whether device `i` is settled ([`Devices::settled`]).
    pub fn is_settled(&self, i: usize) -> bool {
        self.settled_flags[i]
    }

    /// Powers device `i` on at `now`; what it sends goes to `send`.
    pub fn power_on(&mut self, i: usize, now: SystemTime, send: impl FnMut(u64, Transmit)) {
        self.off[i] = false;
        self.devices[i].power_on(now);
        self.pump(i, now, send);
    }

    /// Switches device `i` off where it stands: its timers no longer fire
    /// and PDUs for it are lost, until [`Devices::power_on`]. Its state
    /// stays what it was.
    pub fn power_off(&mut self, i: usize) {
        self.off[i] = true;
        self.scheduled[i] = None;
    }

    /// Whether device `i` was switched off.
    pub fn is_off(&self, i: usize) -> bool {
        self.off[i]
    }

    /// A PDU from the network on link connection `conn`: lost unless it is
    /// the current connection of a device that is on.
    pub fn deliver(
        &mut self,
        conn: u64,
        now: SystemTime,
        pdu: &[u8],
        send: impl FnMut(u64, Transmit),
    ) {
        let Some(i) = self.index_of(conn) else {
            return;
        };
        if self.off[i] || self.connection(i) != conn {
            return;
        }
        self.devices[i].handle_pdu(now, pdu);
        self.pump(i, now, send);
    }

    /// Device `i` sends a burst now.
    ///
    /// # Errors
    /// What [`Device::send_data`] refuses.
    pub fn send_data(
        &mut self,
        i: usize,
        now: SystemTime,
        data: &[u8],
        send: impl FnMut(u64, Transmit),
    ) -> Result<(), DataError> {
        self.devices[i].send_data(now, data)?;
        self.pump(i, now, send);
        Ok(())
    }

    /// Takes what device `i` has to say: its events into the metrics (and
    /// the hook, and the record), its PDUs to `send` (with their link
    /// connection), its timer into the heap, its next burst into the
    /// schedule; and updates the counts.
    pub fn pump(&mut self, i: usize, now: SystemTime, mut send: impl FnMut(u64, Transmit)) {
        let device = &mut self.devices[i];
        while let Some(e) = device.poll_event() {
            if let DeviceEvent::State { from, to } = e {
                self.states[state_index(from)] -= 1;
                self.states[state_index(to)] += 1;
            }
            self.metrics.device_event(now, i, &e);
            if let Some(hook) = self.hook.as_mut() {
                hook(now, i, &e);
            }
            if self.record {
                self.events[i].push(e);
            }
        }
        while let Some(t) = device.poll_transmit() {
            self.metrics.pdu(Direction::Uplink, i, t.pdu.len());
            let conn = connection_id(self.base + i as u64, t.connection);
            send(conn, t);
        }
        let state = device.state();
        let mut settled = self.metrics.settled(i, device);
        if let Some(p) = self.plan.as_mut()
            && state == DeviceState::Active
            && !p.done(i)
        {
            settled = false;
            if !p.queued[i] {
                let at = p.next[i].map_or(now, |t| t.max(now));
                p.due.push(Reverse((at, i)));
                p.queued[i] = true;
            }
        }
        if settled != self.settled_flags[i] {
            self.settled_flags[i] = settled;
            if settled {
                self.settled += 1;
            } else {
                self.settled -= 1;
            }
        }
        let timer = self.devices[i].poll_timeout();
        if timer != self.scheduled[i] {
            self.scheduled[i] = timer;
            if let Some(at) = timer {
                self.timers.push(Reverse((at, i)));
            }
        }
    }

    /// When a device timer or a burst is next due.
    pub fn next_due(&mut self) -> Option<SystemTime> {
        while let Some(Reverse((at, i))) = self.timers.peek().copied() {
            if !self.off[i] && self.devices[i].poll_timeout() == Some(at) {
                break;
            }
            self.timers.pop();
        }
        let timer = self.timers.peek().map(|Reverse((at, _))| *at);
        let burst = self
            .plan
            .as_ref()
            .and_then(|p| p.due.peek().map(|Reverse((at, _))| *at));
        timer.into_iter().chain(burst).min()
    }

    /// Fires the device timers due by `now`, then sends the bursts due.
    pub fn fire_due(&mut self, now: SystemTime, mut send: impl FnMut(u64, Transmit)) {
        while let Some(Reverse((at, i))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.off[i] && self.devices[i].poll_timeout() == Some(at) {
                if self.scheduled[i] == Some(at) {
                    self.scheduled[i] = None;
                }
                self.devices[i].handle_timeout(now);
                self.pump(i, now, &mut send);
            }
        }
        // The bursts due now; one a device sends here is due again at
        // `now + every` at the earliest, and waits for the next call even
        // when `every` is zero.
        let Some(p) = self.plan.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        while let Some(Reverse((at, i))) = p.due.peek().copied() {
            if at > now {
                break;
            }
            p.due.pop();
            p.queued[i] = false;
            due.push(i);
        }
        for i in due {
            let Some(p) = self.plan.as_mut() else {
                return;
            };
            if self.off[i] || self.devices[i].state() != DeviceState::Active || p.done(i) {
                continue;
            }
            let mut payload = p.bursts.payload.clone();
            if p.bursts.numbered {
                payload.extend_from_slice(format!(";n={}", p.sent[i] + 1).as_bytes());
            }
            if self.devices[i].send_data(now, &payload).is_ok() {
                p.sent[i] += 1;
                p.next[i] = Some(now + p.bursts.every);
                self.pump(i, now, &mut send);
            }
        }
    }

    /// The device part of the one report: the devices, how many are
    /// active, refused (settled and not active: one entry each) or neither
    /// (incomplete), the failures by why, and what the metrics measured.
    pub fn fill_report(&self, r: &mut Report) {
        r.devices = self.devices.len() as u64;
        for (i, device) in self.devices.iter().enumerate() {
            let state = device.state();
            if state == DeviceState::Active {
                r.active += 1;
            } else if self.settled_flags[i] {
                let refusal = self.metrics.refusal(i);
                r.refused.total += 1;
                *r.refused.by_reason.entry("refused".to_owned()).or_default() += 1;
                r.refused.devices.push(RefusedDevice {
                    device: device.serial().to_owned(),
                    reason: "refused".to_owned(),
                    cause: refusal.map(|x| x.cause.octet()),
                    expected_cause: None,
                    network_reason: refusal
                        .map_or_else(|| self.metrics.failure(i, state), |x| x.reason.clone()),
                    state: format!("{state:?}"),
                });
            } else {
                r.incomplete += 1;
            }
        }
        r.good_devices = r.active;
        r.failures = self
            .metrics
            .failures(self.devices.iter().map(Device::state).enumerate());
        self.metrics.fill(r);
    }
}
