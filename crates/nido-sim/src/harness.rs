//! The in-memory harness (quinn-style pair, many-to-one): N devices and
//! one network over a [`Link`], with a clock the harness owns. Every PDU
//! either side sends goes through the link (and its faults) and the trace
//! hook; time jumps straight to the next delivery or timer. The device
//! side is the one fleet core, [`Devices`]: this is its configuration
//! with a simulated clock and an in-process network.

use std::time::{Duration, SystemTime};

use nido_net::stage::Tag;
use nido_net::{AaaAnswer, AaaRequest, ConnectionId, Network, NetworkEvent, Stage};
use nido_ue::{DataError, Device, DeviceEvent, DeviceState};

use crate::adversary::{Adversary, Injection, Seen, Verdict};
use crate::connection::device_of;
use crate::devices::Devices;
use crate::link::{Direction, Link, LinkStats};
use crate::metrics::{self, Metrics};

/// One PDU as it entered the link, for traces.
#[derive(Debug, Clone, Copy)]
pub struct TraceRecord<'a> {
    /// When it was sent.
    pub at: SystemTime,
    /// Which way.
    pub direction: Direction,
    /// The device it belongs to.
    pub device: usize,
    /// The link connection.
    pub conn: u64,
    /// The PDU on the wire.
    pub pdu: &'a [u8],
    /// The plain message's name.
    pub message: &'static str,
    /// The plain message's encoding when the PDU is protected (if tracing).
    pub plain: Option<&'a [u8]>,
}

type TraceHook = Box<dyn FnMut(&TraceRecord<'_>)>;
type NetworkEventHook = Box<dyn FnMut(SystemTime, &NetworkEvent)>;
type DownlinkFilter = Box<dyn FnMut(&nido_net::Transmit) -> bool>;
type AaaHook = Box<dyn FnMut(SystemTime, &AaaRequest) -> Option<AaaAnswer>>;

/// N devices, one network, one link, one clock.
///
/// Cost: every step costs what is due at that instant (link deliveries,
/// network timers, device timers popped from one heap), never a walk over
/// all devices; the number of devices in each [`DeviceState`] is kept
/// incrementally from the devices' state events ([`Fleet::count`]).
pub struct Fleet {
    network: Network,
    /// The device side: devices, their timers, counts and the metrics
    /// (every device event, network event and PDU entering the link goes
    /// through them).
    devices: Devices,
    link: Link,
    now: SystemTime,
    record: bool,
    network_events: Vec<NetworkEvent>,
    trace: Option<TraceHook>,
    network_hook: Option<NetworkEventHook>,
    downlink_filter: Option<DownlinkFilter>,
    adversary: Option<Box<dyn Adversary>>,
    commit: Option<GroupCommit>,
    aaa: Option<AaaHook>,
}

/// The network's store as a [`Stage`] committed in groups: the network's
/// messages gather in `held` for `window` of simulated time after the
/// first of them; the group then closes (its writes are those issued so
/// far) and takes another `window` to become durable, while the fleet goes
/// on (issue #11: the simulator follows the server's durability rule, and
/// its group commits are what make a real database keep up). Simulated
/// time decides when a group's messages leave; real time only whether the
/// fleet must wait for the database at that instant, so a run is still
/// determined by its seed.
struct GroupCommit {
    stage: Stage,
    window: Duration,
    epoch: u64,
    held: Vec<(Tag, nido_net::Transmit)>,
    /// When the gathering group closes.
    due: Option<SystemTime>,
    /// Closed groups, oldest first: when their messages leave, and the
    /// writes that must be durable by then.
    closed: std::collections::VecDeque<Closed>,
    groups: u64,
}

/// A closed group ([`GroupCommit`]).
struct Closed {
    at: SystemTime,
    upto: u64,
    held: Vec<(Tag, nido_net::Transmit)>,
}

impl GroupCommit {
    /// When the fleet next has a group to close or to release.
    fn next(&self) -> Option<SystemTime> {
        [self.due, self.closed.front().map(|c| c.at)]
            .into_iter()
            .flatten()
            .min()
    }
}

impl core::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.devices.len())
            .field("now", &self.now)
            .field("link", &self.link.stats())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet with no device yet; `record` keeps every event for inspection.
    pub fn new(network: Network, link: Link, now: SystemTime, record: bool) -> Self {
        Self {
            network,
            devices: Devices::new(now, 0, record),
            link,
            now,
            record,
            network_events: Vec::new(),
            trace: None,
            network_hook: None,
            downlink_filter: None,
            adversary: None,
            commit: None,
            aaa: None,
        }
    }

    /// Commits the network's writes in groups: `stage` must be the
    /// network's store. Every message the network produces waits for the
    /// next group, which makes every write issued before it durable; a
    /// group closes `window` of simulated time after the first message that
    /// waits (whatever the network wrote meanwhile goes in it) and its
    /// messages leave `window` later, once its writes are durable: the
    /// fleet commits them then itself if nobody else did (a committer
    /// thread on the same stage, as `nido demo` runs, commits meanwhile, so
    /// the database's time overlaps the fleet's work). A message that
    /// depended on no pending write waits too: the
    /// stage may be shared with fleets on other threads, and what waits
    /// must not depend on their timing. A
    /// group the store refuses is abandoned ([`Stage::abandon`]): its
    /// messages are dropped and the network forgets its UE contexts, as
    /// after a crash.
    pub fn set_group_commit(&mut self, stage: Stage, window: Duration) {
        let epoch = stage.failures();
        self.commit = Some(GroupCommit {
            stage,
            window,
            epoch,
            held: Vec::new(),
            due: None,
            closed: std::collections::VecDeque::new(),
            groups: 0,
        });
    }

    /// Group commits made so far ([`Fleet::set_group_commit`]).
    pub fn group_commits(&self) -> u64 {
        self.commit.as_ref().map_or(0, |c| c.groups)
    }

    /// Closes the gathering group at `now`: its writes are those issued so
    /// far, its messages leave one window later.
    fn close_group(&mut self, now: SystemTime) {
        let Some(c) = self.commit.as_mut() else {
            return;
        };
        c.due = None;
        let upto = c.stage.issued();
        let held = core::mem::take(&mut c.held);
        c.closed.push_back(Closed {
            at: now + c.window,
            upto,
            held,
        });
    }

    /// Makes the oldest closed group's writes durable and sends its
    /// messages (a commit that fails drops them and resets the network).
    fn release_group(&mut self) {
        let Some(c) = self.commit.as_mut() else {
            return;
        };
        let Some(Closed { upto, held, .. }) = c.closed.pop_front() else {
            return;
        };
        if c.stage.flush(upto).is_err() {
            c.stage.abandon();
        }
        c.groups += 1;
        let stage = c.stage.clone();
        let now_epoch = stage.failures();
        if now_epoch != c.epoch {
            c.epoch = now_epoch;
            self.network.forget_contexts();
            return;
        }
        for (tag, t) in held {
            if stage.release(tag) == Some(true) {
                self.send_downlink(t);
            }
        }
    }

    /// Adds a device (powered off); returns its index.
    pub fn add_device(&mut self, device: Device) -> usize {
        self.devices.add(device)
    }

    /// How many devices are settled ([`Metrics::settled`]: active with no
    /// burst waiting, given up, or backing off after a refusal other than
    /// #22), kept as the
    /// devices change, so asking costs nothing.
    pub fn settled(&self) -> usize {
        self.devices.settled()
    }

    /// What the run measured so far ([`Metrics`]; times from the fleet's
    /// start).
    pub fn metrics(&self) -> &Metrics {
        self.devices.metrics()
    }

    /// The measurements, to change what they count ([`Metrics::take_meter`]).
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        self.devices.metrics_mut()
    }

    /// The run so far as the one fleet report ([`crate::report`]): the
    /// counts, failures, funnel, latencies on the simulated clock and the
    /// NAS cost of onboarding per active device (a driver with stages
    /// fills in the rest itself, as `nido demo` does).
    pub fn report(&self) -> crate::Report {
        let mut r = crate::Report {
            clock: "simulated".to_owned(),
            store: "memory".to_owned(),
            threads: 1,
            simulated_s: self
                .now
                .duration_since(self.metrics().start())
                .unwrap_or_default()
                .as_secs_f64(),
            ..crate::Report::default()
        };
        self.devices.fill_report(&mut r);
        r.link = self.link.stats().into();
        r.memory.network_contexts = self.network.contexts() as u64;
        r
    }

    /// How many devices are in `state` now (kept from the devices' state
    /// events, so asking costs nothing).
    pub fn count(&self, state: DeviceState) -> usize {
        self.devices.count(state)
    }

    /// Calls `hook` with every device event as it is polled (with the
    /// clock and the device's index), whether or not the fleet records
    /// events: a driver keeps its own compact statistics this way.
    pub fn set_device_events(
        &mut self,
        hook: impl FnMut(SystemTime, usize, &DeviceEvent) + 'static,
    ) {
        self.devices.set_events(hook);
    }

    /// Calls `hook` with every network event as it is polled.
    pub fn set_network_events(&mut self, hook: impl FnMut(SystemTime, &NetworkEvent) + 'static) {
        self.network_hook = Some(Box::new(hook));
    }

    /// Calls `hook` for every PDU entering the link.
    pub fn set_trace(&mut self, hook: impl FnMut(&TraceRecord<'_>) + 'static) {
        self.trace = Some(Box::new(hook));
    }

    /// Lets `filter` drop downlink PDUs before they enter the link (fault
    /// injection: return `false` to drop).
    pub fn set_downlink_filter(
        &mut self,
        filter: impl FnMut(&nido_net::Transmit) -> bool + 'static,
    ) {
        self.downlink_filter = Some(Box::new(filter));
    }

    /// Puts `adversary` on the path: it sees every datagram the link
    /// delivers, in both directions, and decides what is delivered instead;
    /// what it injects is delivered at once, past it.
    pub fn set_adversary(&mut self, adversary: impl Adversary + 'static) {
        self.adversary = Some(Box::new(adversary));
    }

    /// Takes the adversary off the path (the attack ends).
    pub fn clear_adversary(&mut self) {
        self.adversary = None;
    }

    /// An off-path attacker's datagram, delivered now: to the network
    /// (uplink) or to the device whose connection `conn` is (downlink; lost
    /// if the device is off or left that connection).
    pub fn inject(&mut self, direction: Direction, conn: u64, pdu: &[u8]) {
        let now = self.now;
        self.deliver(now, direction, conn, pdu);
    }

    /// Delivers one datagram to its receiver and collects what it sends.
    fn deliver(&mut self, now: SystemTime, direction: Direction, conn: u64, pdu: &[u8]) {
        match direction {
            Direction::Uplink => {
                self.network.handle_pdu(now, ConnectionId(conn), pdu);
                self.pump();
            }
            Direction::Downlink => {
                // Lost if the device is off or left that connection.
                self.with_uplink(|devices, now, send| devices.deliver(conn, now, pdu, send));
            }
        }
    }

    /// Delivers what the adversary sends of its own accord.
    fn deliver_injections(&mut self, now: SystemTime) {
        while let Some(Injection {
            direction,
            conn,
            pdu,
        }) = self.adversary.as_mut().and_then(|a| a.poll_injection())
        {
            self.deliver(now, direction, conn, &pdu);
        }
    }

    /// The clock.
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network, to change or inject into (call [`Fleet::pump`] after).
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Device `i`.
    pub fn device(&self, i: usize) -> &Device {
        self.devices.get(i)
    }

    /// All devices.
    pub fn devices(&self) -> &[Device] {
        self.devices.as_slice()
    }

    /// The link connection device `i` is on now.
    pub fn connection(&self, i: usize) -> ConnectionId {
        ConnectionId(self.devices.connection(i))
    }

    /// Device `i`'s recorded events (none unless the fleet records).
    pub fn device_events(&self, i: usize) -> &[DeviceEvent] {
        self.devices.events(i)
    }

    /// The network's recorded events.
    pub fn network_events(&self) -> &[NetworkEvent] {
        &self.network_events
    }

    /// What the link did.
    pub fn link_stats(&self) -> LinkStats {
        self.link.stats()
    }

    /// Powers device `i` on.
    pub fn power_on(&mut self, i: usize) {
        self.with_uplink(|devices, now, send| devices.power_on(i, now, send));
    }

    /// Switches device `i` off where it stands: its timers no longer fire
    /// and PDUs for it are lost, until [`Fleet::power_on`]. Its state stays
    /// what it was (a device that gave up after a reject, say).
    pub fn power_off(&mut self, i: usize) {
        self.devices.power_off(i);
    }

    /// Whether device `i` was switched off by [`Fleet::power_off`].
    pub fn is_off(&self, i: usize) -> bool {
        self.devices.is_off(i)
    }

    /// Device `i` sends a burst.
    pub fn send_data(&mut self, i: usize, data: &[u8]) -> Result<(), DataError> {
        self.with_uplink(|devices, now, send| devices.send_data(i, now, data, send))
    }

    /// Device `i` sends `message` outside its procedures ([`Device::send_raw`]).
    pub fn send_raw(&mut self, i: usize, message: &nido_nas::build::Nas5gsMessage) {
        let now = self.now;
        self.devices.get_mut(i).send_raw(now, message);
        self.pump_device(i);
    }

    /// Device `i`, to drive directly (call [`Fleet::pump_devices`] after).
    pub fn device_mut(&mut self, i: usize) -> &mut Device {
        self.devices.get_mut(i)
    }

    /// Collects what every device wants sent (after driving one directly).
    pub fn pump_devices(&mut self) {
        for i in 0..self.devices.len() {
            self.pump_device(i);
        }
    }

    /// Moves what device `i` wants sent into the link, and its events out.
    fn pump_device(&mut self, i: usize) {
        self.with_uplink(|devices, now, send| devices.pump(i, now, send));
    }

    /// Answers the network's [`AaaRequest`]s (onboarding EAP for a relayed
    /// realm, [`Network::relay_realm`]) with `dcs`, an external DCS as the
    /// driver would reach it over RADIUS: each request is handed to it as
    /// the network emits it, and its answer, if any, goes back at the same
    /// instant ([`Network::handle_aaa`]). `None` leaves the request
    /// unanswered (a test may answer later through [`Fleet::network_mut`]).
    /// Without a hook, requests are dropped.
    pub fn set_aaa(
        &mut self,
        dcs: impl FnMut(SystemTime, &AaaRequest) -> Option<AaaAnswer> + 'static,
    ) {
        self.aaa = Some(Box::new(dcs));
    }

    /// Moves what the network wants sent into the link, and its events out.
    pub fn pump(&mut self) {
        let now = self.now;
        while let Some(request) = self.network.poll_aaa() {
            let answer = self.aaa.as_mut().and_then(|dcs| dcs(now, &request));
            if let Some(answer) = answer {
                self.network.handle_aaa(now, request.conn, answer);
            }
        }
        while let Some(t) = self.network.poll_transmit() {
            if let Some(c) = self.commit.as_mut() {
                // Every message waits for this fleet's next group commit,
                // whether or not a write it depends on is still pending:
                // the stage may be shared with fleets on other threads,
                // whose writes would otherwise decide (by the threads'
                // timing) which messages wait, and a run would no longer
                // be determined by its seed.
                let tag = c.stage.tag(c.epoch);
                c.held.push((tag, t));
                c.due.get_or_insert(now + c.window);
                continue;
            }
            self.send_downlink(t);
        }
        while let Some(e) = self.network.poll_event() {
            self.devices.metrics_mut().network_event(&e);
            if let Some(hook) = self.network_hook.as_mut() {
                hook(now, &e);
            }
            if self.record {
                self.network_events.push(e);
            }
        }
    }

    /// Puts one network message on the link (through the filter and the trace).
    fn send_downlink(&mut self, t: nido_net::Transmit) {
        let now = self.now;
        {
            if let Some(filter) = self.downlink_filter.as_mut()
                && !filter(&t)
            {
                return;
            }
            if let Some(trace) = self.trace.as_mut() {
                trace(&TraceRecord {
                    at: now,
                    direction: Direction::Downlink,
                    device: device_of(t.conn.0),
                    conn: t.conn.0,
                    pdu: &t.pdu,
                    message: t.message,
                    plain: t.plain.as_deref(),
                });
            }
            self.devices
                .metrics_mut()
                .pdu(Direction::Downlink, device_of(t.conn.0), t.pdu.len());
            self.link.send(now, Direction::Downlink, t.conn.0, t.pdu);
        }
    }

    /// When something next happens.
    fn next_time(&mut self) -> Option<SystemTime> {
        [
            self.link.next_delivery(),
            self.network.poll_timeout(),
            self.devices.next_due(),
            self.commit.as_ref().and_then(GroupCommit::next),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs one instant: advances the clock to the next delivery or timer
    /// (if not after `deadline`) and processes everything due then.
    /// Returns `false` when nothing is due by `deadline` (the clock then
    /// moves to `deadline`).
    pub fn step(&mut self, deadline: SystemTime) -> bool {
        self.pump();
        let Some(next) = self.next_time().filter(|t| *t <= deadline) else {
            self.now = self.now.max(deadline);
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        while let Some(d) = self.link.poll_delivery(now) {
            let pdu = match self.adversary.as_mut() {
                None => d.pdu,
                Some(adversary) => match adversary.intercept(Seen {
                    at: now,
                    direction: d.direction,
                    conn: d.conn,
                    pdu: d.pdu,
                }) {
                    Verdict::Deliver(pdu) => pdu,
                    Verdict::Drop => {
                        self.deliver_injections(now);
                        continue;
                    }
                },
            };
            self.deliver(now, d.direction, d.conn, &pdu);
            self.deliver_injections(now);
        }
        self.network.handle_timeout(now);
        self.pump();
        if self
            .commit
            .as_ref()
            .and_then(|c| c.due)
            .is_some_and(|due| due <= now)
        {
            self.close_group(now);
        }
        while self
            .commit
            .as_ref()
            .and_then(|c| c.closed.front())
            .is_some_and(|c| c.at <= now)
        {
            self.release_group();
        }
        self.with_uplink(|devices, now, send| devices.fire_due(now, send));
        true
    }

    /// Runs until `done` holds (checked after every instant) or `deadline`;
    /// returns whether `done` held.
    pub fn run_until(&mut self, deadline: SystemTime, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step(deadline) {
                return done(self);
            }
        }
    }

    /// Runs for `duration` of simulated time.
    pub fn advance(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        while self.step(deadline) {}
    }

    /// Onboards the fleet: devices power on in index order, at most
    /// `concurrency` unsettled at once (the next powers on when one
    /// settles), until every device is settled or `deadline`; then one
    /// more simulated second, in which the data sessions come up. `each`
    /// runs after every instant (a driver's progress display, or its
    /// reaction to what happened). Returns the most devices that were
    /// onboarding at once. The NAS cost of onboarding is what
    /// [`Metrics::take_meter`] gives right after.
    pub fn onboard(
        &mut self,
        concurrency: usize,
        deadline: SystemTime,
        mut each: impl FnMut(&mut Self),
    ) -> usize {
        let total = self.devices.len();
        let mut next = 0;
        let mut peak = 0;
        let in_flight = |f: &Self| (total - f.count(DeviceState::Off)).saturating_sub(f.settled());
        loop {
            let mut room = concurrency.max(1).saturating_sub(in_flight(self));
            while room > 0 && next < total {
                self.power_on(next);
                next += 1;
                room -= 1;
            }
            peak = peak.max(in_flight(self));
            if next == total && self.settled() == total {
                break;
            }
            if !self.step(deadline) {
                break;
            }
            each(self);
        }
        self.advance(Duration::from_secs(1));
        peak
    }

    /// Phase D for the whole fleet: after `idle` (every device back in
    /// idle), every active device sends `payload` once, and the fleet runs
    /// for `answer` more. Returns how many bursts left and the NAS traffic
    /// of the devices that are active meanwhile (the bursts' cost; the
    /// latency of each is in [`Fleet::metrics`]).
    pub fn bursts_from_idle(
        &mut self,
        payload: &[u8],
        idle: Duration,
        answer: Duration,
    ) -> (u64, metrics::Meter) {
        self.advance(idle);
        self.metrics_mut().take_meter();
        self.metrics_mut().count_active_only(true);
        let mut sent = 0;
        for i in 0..self.devices.len() {
            if self.devices.get(i).state() == DeviceState::Active
                && self.send_data(i, payload).is_ok()
            {
                sent += 1;
            }
        }
        self.advance(answer);
        let meter = self.metrics_mut().take_meter();
        self.metrics_mut().count_active_only(false);
        (sent, meter)
    }
}

impl Fleet {
    /// Lends the devices the clock and the place they send to (the trace,
    /// then the link), for one operation of the core.
    fn with_uplink<R>(
        &mut self,
        f: impl FnOnce(&mut Devices, SystemTime, &mut dyn FnMut(u64, nido_ue::Transmit)) -> R,
    ) -> R {
        let now = self.now;
        let Self {
            devices,
            link,
            trace,
            ..
        } = self;
        f(devices, now, &mut uplink(now, link, trace))
    }
}

/// Where the harness's devices send: the trace, then the link.
fn uplink<'a>(
    now: SystemTime,
    link: &'a mut Link,
    trace: &'a mut Option<TraceHook>,
) -> impl FnMut(u64, nido_ue::Transmit) + 'a {
    move |conn, t| {
        if let Some(trace) = trace.as_mut() {
            trace(&TraceRecord {
                at: now,
                direction: Direction::Uplink,
                device: device_of(conn),
                conn,
                pdu: &t.pdu,
                message: t.message,
                plain: t.plain.as_deref(),
            });
        }
        link.send(now, Direction::Uplink, conn, t.pdu);
    }
}
