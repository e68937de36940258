//! CPU cost of one device's life, both ends in one process (design doc
//! phases A-D): the whole onboarding through a [`Fleet`] on a perfect link,
//! its split between the network and the device (a hand-wired pair without
//! a link), and one burst from idle in a CONTROL PLANE SERVICE REQUEST.
//!
//! The clocks are simulated (the fleet jumps to the next delivery or timer),
//! so every measured microsecond is CPU. Identities are issued and networks
//! built outside the timed parts.
//!
//! Run with `cargo bench -p nido-sim --bench onboarding`; the medians go in
//! the closing note.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench fixtures

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nido_eap::fixtures::Onboarding;
use nido_net::{ConnectionId, CountingSink, Network};
use nido_pki::{DeviceIdentity, DeviceProfile};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link, connection_id};
use nido_ue::{BurstPath, Device, DeviceEvent, DeviceState, Timers};

/// The burst of `onboarding/burst_cpsr` (as in the end-to-end test).
const PAYLOAD: [u8; 50] = *b"t=21.5C;h=40%;batt=3.61V;seq=000017;fw=1.2.0;ok!!!";

/// One-way delay of the hand-wired pair ([`Faults::NONE`]'s).
const HOP: Duration = Duration::from_millis(10);

/// Bursts after which `burst_cpsr` onboards a fresh pair, far below the
/// NAS COUNT's exhaustion (2^24).
const BURST_LIMIT: u64 = 1 << 20;

/// A manufacturer, a network trusting it, and one device identity.
struct Fixtures {
    world: Onboarding,
    id: DeviceIdentity,
}

fn fixtures() -> Fixtures {
    let world = Onboarding::new("Bench Devices", SystemTime::now()).unwrap();
    let id = world
        .manufacturer
        .issue_device(
            &world.manufacturer.device_serial(1),
            &DeviceProfile::standard(world.now),
        )
        .unwrap();
    Fixtures { world, id }
}

impl Fixtures {
    fn network(&self, sink: CountingSink) -> Network {
        scenario::network(&self.world, &NetworkOptions::default(), Box::new(sink)).unwrap()
    }

    fn device(&self) -> Device {
        scenario::device(&self.world, &self.id, false).unwrap()
    }

    /// A fresh fleet: a new network and the device, powered off.
    fn fleet(&self) -> Fleet {
        let link = Link::new(Faults::NONE, Faults::NONE, 1).unwrap();
        let mut fleet = Fleet::new(
            self.network(CountingSink::new()),
            link,
            self.world.now,
            false,
        );
        fleet.add_device(self.device());
        fleet
    }

    /// A fresh hand-wired pair, the device powered off.
    fn pair(&self) -> Pair {
        let sink = CountingSink::new();
        Pair {
            network: self.network(sink.clone()),
            device: self.device(),
            now: self.world.now,
            sink,
        }
    }
}

/// Phase D reached: registered with the data session up (the PDU SESSION
/// ESTABLISHMENT ACCEPT stopped T3580, and no other timer runs).
fn in_session(device: &Device) -> bool {
    device.state() == DeviceState::Active && device.poll_timeout().is_none()
}

/// Phases A-D through the fleet: power on, run until [`in_session`].
/// Returns the fleet so that it is dropped outside the timed part.
fn lifecycle(mut fleet: Fleet) -> Fleet {
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| in_session(f.device(0))));
    fleet
}

/// CPU spent in each side's calls.
#[derive(Debug, Default, Clone, Copy)]
struct Split {
    network: Duration,
    device: Duration,
}

/// A network and a device wired by hand: the device's uplink PDUs go
/// straight to [`Network::handle_pdu`], the network's downlink PDUs to
/// [`Device::handle_pdu`], each hop taking [`HOP`] of simulated time.
struct Pair {
    network: Network,
    device: Device,
    now: SystemTime,
    sink: CountingSink,
}

impl Pair {
    fn conn(&self) -> ConnectionId {
        ConnectionId(connection_id(0, self.device.connection()))
    }

    /// Drops the events (the driver's share, not timed).
    fn drain_events(&mut self) {
        while self.network.poll_event().is_some() {}
        while self.device.poll_event().is_some() {}
    }

    /// Powers the device on and runs until [`in_session`], adding the time
    /// spent in each side's calls to `split`.
    fn onboard(&mut self, split: &mut Split) {
        let t = Instant::now();
        self.device.power_on(self.now);
        split.device += t.elapsed();
        let deadline = self.now + Duration::from_secs(3600);
        loop {
            self.drain_events();
            if in_session(&self.device) {
                return;
            }
            assert!(self.now <= deadline, "no session within an hour");
            let mut moved = false;
            let uplink: Vec<_> = std::iter::from_fn(|| self.device.poll_transmit()).collect();
            if !uplink.is_empty() {
                self.now += HOP;
            }
            for tx in uplink {
                let conn = ConnectionId(connection_id(0, tx.connection));
                let t = Instant::now();
                self.network.handle_pdu(self.now, conn, &tx.pdu);
                split.network += t.elapsed();
                moved = true;
            }
            let downlink: Vec<_> = std::iter::from_fn(|| self.network.poll_transmit()).collect();
            if !downlink.is_empty() {
                self.now += HOP;
            }
            for tx in downlink {
                // A PDU for a connection the device released is lost.
                if tx.conn != self.conn() {
                    continue;
                }
                let t = Instant::now();
                self.device.handle_pdu(self.now, &tx.pdu);
                split.device += t.elapsed();
                moved = true;
            }
            if moved {
                continue;
            }
            // Nothing in flight: jump to the next timer (never on a clean run).
            let next = [self.network.poll_timeout(), self.device.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .expect("stalled: nothing in flight and no timer");
            self.now = self.now.max(next);
            let t = Instant::now();
            self.network.handle_timeout(self.now);
            split.network += t.elapsed();
            let t = Instant::now();
            self.device.handle_timeout(self.now);
            split.device += t.elapsed();
        }
    }

    /// One burst from idle: `send_data` (CONTROL PLANE SERVICE REQUEST),
    /// the network's `handle_pdu` (delivery, SERVICE ACCEPT), the device's
    /// `handle_pdu` of the SERVICE ACCEPT. Returns the CPU time of the three.
    fn burst(&mut self) -> Duration {
        let idle = Timers::default().idle_after + Duration::from_secs(1);
        self.now += idle;
        self.network.handle_timeout(self.now);
        let conn = self.conn();
        let sent = self.now;
        let t = Instant::now();
        self.device.send_data(sent, black_box(&PAYLOAD)).unwrap();
        let request = self.device.poll_transmit().unwrap();
        self.network.handle_pdu(sent + HOP, conn, &request.pdu);
        let accept = self.network.poll_transmit().unwrap();
        self.device.handle_pdu(sent + 2 * HOP, &accept.pdu);
        let elapsed = t.elapsed();
        self.now = sent + 2 * HOP;
        self.drain_events();
        elapsed
    }
}

/// Checks once, outside the measurements, that the pair onboards to a data
/// session and that a burst from idle goes in a CONTROL PLANE SERVICE
/// REQUEST, reaches the sink and is acknowledged.
fn check(f: &Fixtures) {
    let mut pair = f.pair();
    pair.onboard(&mut Split::default());
    pair.now += Timers::default().idle_after + Duration::from_secs(1);
    assert!(!pair.device.connected(pair.now));
    pair.device.send_data(pair.now, &PAYLOAD).unwrap();
    assert_eq!(
        pair.device.poll_event(),
        Some(DeviceEvent::BurstSent {
            bytes: PAYLOAD.len(),
            path: BurstPath::ControlPlaneServiceRequest,
        })
    );
    let request = pair.device.poll_transmit().unwrap();
    assert_eq!(request.message, "ControlPlaneServiceRequest");
    let conn = pair.conn();
    pair.network.handle_pdu(pair.now, conn, &request.pdu);
    let accept = pair.network.poll_transmit().unwrap();
    assert_eq!(accept.message, "ServiceAccept");
    pair.device.handle_pdu(pair.now, &accept.pdu);
    assert_eq!(pair.sink.count(), 1);
    assert!(in_session(&pair.device)); // T3517 stopped
    assert!(pair.device.poll_transmit().is_none());
    assert!(pair.network.poll_transmit().is_none());
}

fn bench(c: &mut Criterion) {
    let f = fixtures();
    check(&f);
    let mut g = c.benchmark_group("onboarding");
    g.sample_size(30);
    g.bench_function("full_device_lifecycle", |b| {
        b.iter_batched(|| f.fleet(), lifecycle, BatchSize::SmallInput)
    });
    g.bench_function("network_side", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut split = Split::default();
                    f.pair().onboard(&mut split);
                    split.network
                })
                .sum()
        })
    });
    g.bench_function("device_side", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut split = Split::default();
                    f.pair().onboard(&mut split);
                    split.device
                })
                .sum()
        })
    });
    g.sample_size(100);
    let mut pair = f.pair();
    pair.onboard(&mut Split::default());
    let mut bursts = 0u64;
    g.bench_function("burst_cpsr", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if bursts == BURST_LIMIT {
                    pair = f.pair();
                    pair.onboard(&mut Split::default());
                    bursts = 0;
                }
                let delivered = pair.sink.count();
                total += pair.burst();
                bursts += 1;
                assert_eq!(pair.sink.count(), delivered + 1);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
