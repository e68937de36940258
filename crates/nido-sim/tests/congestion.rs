//! Admission control in the AMF: at most `max_procedures` registrations run
//! at once; a device arriving beyond that gets REGISTRATION REJECT #22 with
//! a T3346 from the configured range, backs off, and gets through later.
//! Admission control refuses before authentication, so the reject goes
//! plain and the device backs off for a T3346 of its own default range
//! instead of the one sent (TS 24.501 §5.5.1.2.5: an unprotected value may
//! be forged).
//! Registered devices' bursts and retransmissions of a running
//! registration are never refused; the last tenth of the limit is kept for
//! devices past onboarding.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::rc::Rc;
use std::time::Duration;

use nido_nas::view::Inbound;
use nido_net::NetworkEvent;
use nido_net::amf::Admission;
use nido_pki::DeviceProfile;
use nido_sec::Cause;
use nido_sim::scenario::NetworkOptions;
use nido_sim::{Direction, Faults, Fleet, TraceRecord};
use nido_ue::{DeviceEvent, DeviceState};

use common::{fleet, world};

const LIMIT: usize = 5;

fn t3346() -> RangeInclusive<Duration> {
    Duration::from_secs(10)..=Duration::from_secs(30)
}

fn limited(fleet: &mut Fleet, max: usize) {
    fleet.network_mut().set_admission(Admission {
        max_procedures: Some(max),
        t3346: t3346(),
        seed: Some(22),
    });
}

/// (device, cause, T3346) of every REGISTRATION REJECT sent downlink.
type Rejects = Rc<RefCell<Vec<(usize, Cause, Option<Duration>)>>>;

fn note_reject(log: &Rejects, r: &TraceRecord<'_>) {
    if r.direction == Direction::Downlink
        && let Ok(m) = nido_nas::decode(r.pdu)
        && let Ok(Inbound::RegistrationReject { cause, t3346, .. }) = Inbound::read(&m)
    {
        log.borrow_mut().push((r.device, cause, t3346));
    }
}

/// Contexts in a procedure, counted the slow way: the network's state of
/// each device's current connection.
fn walk(fleet: &Fleet) -> usize {
    (0..fleet.devices().len())
        .filter(|&i| {
            matches!(
                fleet.network().state_of(fleet.connection(i)),
                Some("authenticating" | "security mode" | "registration accept sent")
            )
        })
        .count()
}

#[test]
fn fifty_devices_at_once_through_a_limit_of_five_all_end_active() {
    const DEVICES: usize = 50;
    let world = world();
    let profiles = vec![DeviceProfile::standard(world.now); DEVICES];
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        Faults::NONE,
        0xc0de,
    );
    limited(&mut fleet, LIMIT);
    let rejects = Rejects::default();
    let log = rejects.clone();
    fleet.set_trace(move |r| note_reject(&log, r));
    for i in 0..DEVICES {
        fleet.power_on(i);
    }
    let mut most = 0;
    let deadline = fleet.now() + Duration::from_secs(3600);
    let all_active = fleet.run_until(deadline, |f| {
        let n = f.network().procedures();
        assert!(n <= LIMIT, "{n} registrations in progress, limit {LIMIT}");
        assert_eq!(n, walk(f), "the kept count and the contexts disagree");
        most = most.max(n);
        f.count(DeviceState::Active) == DEVICES
    });
    assert!(
        all_active,
        "{} of {DEVICES} active",
        fleet.count(DeviceState::Active)
    );
    assert_eq!(most, LIMIT, "the limit was reached");
    // The last REGISTRATION COMPLETE arrives: no procedure is left.
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.network().procedures(), 0);

    // Refused devices got #22 with a T3346 in range, and nothing else.
    let rejects = rejects.borrow();
    let refused: BTreeSet<usize> = rejects.iter().map(|r| r.0).collect();
    assert!(refused.len() >= DEVICES - LIMIT, "{refused:?}");
    for &(device, cause, t) in rejects.iter() {
        assert_eq!(cause, Cause::CONGESTION, "device {device}");
        let t = t.expect("T3346 with #22");
        assert!(t3346().contains(&t), "device {device}: T3346 {t:?}");
    }
    let spread: BTreeSet<Duration> = rejects.iter().filter_map(|r| r.2).collect();
    assert!(spread.len() > 3, "back-offs not spread: {spread:?}");

    // Each reject was reported; each refused device backed off, for a
    // value from its own default range (the reject came plain).
    let congested = fleet
        .network_events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                NetworkEvent::Congested {
                    procedures: LIMIT,
                    ..
                }
            )
        })
        .count();
    assert_eq!(congested, rejects.len());
    for &device in &refused {
        let events = fleet.device_events(device);
        assert!(events.contains(&DeviceEvent::Rejected {
            message: nido_ue::RejectMessage::RegistrationReject,
            cause: Cause::CONGESTION
        }));
        assert!(events.contains(&DeviceEvent::State {
            from: DeviceState::Onboarding,
            to: DeviceState::BackingOff
        }));
        let (min, max) = nido_ue::Timers::default().t3346_default;
        assert!(
            events.iter().any(|e| matches!(
                e,
                DeviceEvent::Congestion { t3346: sent, protected: false, wait }
                    if t3346().contains(sent) && (min..=max).contains(wait)
            )),
            "device {device}: {events:?}"
        );
    }
    // One subscription per device.
    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), DEVICES);
    eprintln!(
        "{} rejects for {} devices, T3346 values {spread:?}, simulated {:?}",
        rejects.len(),
        refused.len(),
        fleet.now().duration_since(world.now).unwrap()
    );
}

/// Devices 1..=LIMIT are stuck in authentication (their downlink is lost),
/// so the network sits at its limit: a new device is refused, while the
/// registered device 0 still gets its burst through.
#[test]
fn a_registered_device_bursts_while_the_network_is_at_its_limit() {
    let world = world();
    let profiles = vec![DeviceProfile::standard(world.now); LIMIT + 2];
    let (mut fleet, sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        Faults::NONE,
        7,
    );
    limited(&mut fleet, LIMIT);
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(60);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    fleet.advance(Duration::from_secs(30)); // data session up, device idle
    assert_eq!(fleet.network().procedures(), 0);

    let stuck = 1..=LIMIT;
    fleet.set_downlink_filter(move |t| !stuck.contains(&(nido_sim::device_of(t.conn.0))));
    for i in 1..=LIMIT {
        fleet.power_on(i);
    }
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.network().procedures(), LIMIT);

    // A new device is refused...
    let newcomer = LIMIT + 1;
    fleet.power_on(newcomer);
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.device(newcomer).state(), DeviceState::BackingOff);
    assert!(
        fleet
            .device_events(newcomer)
            .contains(&DeviceEvent::Rejected {
                message: nido_ue::RejectMessage::RegistrationReject,
                cause: Cause::CONGESTION
            })
    );
    // ...while the registered one's burst goes through.
    let before = fleet.network_events().len();
    fleet.send_data(0, b"t=21.5C").unwrap();
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.network().procedures(), LIMIT);
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].data, b"t=21.5C");
    let conn0 = fleet.connection(0);
    assert!(
        !fleet.network_events()[before..].iter().any(|e| matches!(
            e,
            NetworkEvent::Congested { conn, .. } | NetworkEvent::Discarded { conn, .. } if *conn == conn0
        )),
        "{:?}",
        &fleet.network_events()[before..]
    );
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert!(
        !fleet
            .device_events(0)
            .iter()
            .any(|e| matches!(e, DeviceEvent::Rejected { .. })),
        "{:?}",
        fleet.device_events(0)
    );
}

/// The last tenth of the limit is kept for registrations with a
/// subscription: with 9 of 10 taken by onboarding devices (stuck, their
/// downlink lost), a new device is refused while a provisioned one
/// registering again (5G-AKA) gets in.
#[test]
fn a_tenth_of_the_limit_is_kept_for_devices_past_onboarding() {
    let world = world();
    let profiles = vec![DeviceProfile::standard(world.now); 11];
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        Faults::NONE,
        11,
    );
    limited(&mut fleet, 10);
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(60);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    fleet.advance(Duration::from_secs(30));

    fleet.set_downlink_filter(|t| !(1..=9).contains(&(nido_sim::device_of(t.conn.0))));
    for i in 1..=9 {
        fleet.power_on(i);
    }
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.network().procedures(), 9);
    fleet.power_on(10);
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.device(10).state(), DeviceState::BackingOff);
    assert_eq!(fleet.network().procedures(), 9);

    // Device 0 registers again with its subscription: admitted to the 10th
    // place, active again.
    let now = fleet.now();
    fleet.device_mut(0).power_on(now);
    fleet.pump_devices();
    let mut most = 0;
    let deadline = fleet.now() + Duration::from_secs(5);
    assert!(fleet.run_until(deadline, |f| {
        most = most.max(f.network().procedures());
        f.device(0).state() == DeviceState::Active
    }));
    assert_eq!(most, 10);
    assert!(
        !fleet.device_events(0).iter().any(|e| matches!(
            e,
            DeviceEvent::Rejected {
                cause: Cause::CONGESTION,
                ..
            }
        )),
        "{:?}",
        fleet.device_events(0)
    );
}

/// A REGISTRATION REQUEST the network gets again while its procedure runs
/// (a duplicate on the link, a retransmission) continues the procedure,
/// even with the network at its limit.
#[test]
fn a_retransmitted_registration_request_is_not_refused_at_the_limit() {
    let world = world();
    let profiles = vec![DeviceProfile::standard(world.now); 2];
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        Faults::NONE,
        9,
    );
    limited(&mut fleet, 1);
    let first = Rc::new(RefCell::new(None::<Vec<u8>>));
    let keep = first.clone();
    fleet.set_trace(move |r| {
        if r.direction == Direction::Uplink && r.message == "RegistrationRequest" {
            keep.borrow_mut().get_or_insert_with(|| r.pdu.to_vec());
        }
    });
    fleet.power_on(0);
    // The request reached the network: device 0 is in its procedure, the
    // network at its limit of one.
    let deadline = fleet.now() + Duration::from_secs(5);
    assert!(fleet.run_until(deadline, |f| f.network().procedures() == 1));
    let conn = fleet.connection(0);
    assert_eq!(fleet.network().state_of(conn), Some("authenticating"));

    let pdu = first.borrow().clone().unwrap();
    let now = fleet.now();
    let before = fleet.network_events().len();
    fleet.network_mut().handle_pdu(now, conn, &pdu);
    fleet.pump();
    assert_eq!(fleet.network().procedures(), 1);
    assert_eq!(fleet.network().state_of(conn), Some("authenticating"));
    assert!(
        !fleet.network_events()[before..]
            .iter()
            .any(|e| matches!(e, NetworkEvent::Congested { .. })),
        "{:?}",
        &fleet.network_events()[before..]
    );

    // Another device's request is refused meanwhile; device 0 goes on to
    // active, and the other one gets through after its back-off (its own
    // draw from the default range: the reject came plain).
    fleet.power_on(1);
    fleet.advance(Duration::from_millis(100));
    assert!(
        fleet
            .network_events()
            .iter()
            .any(|e| matches!(e, NetworkEvent::Congested { procedures: 1, .. }))
    );
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| f.count(DeviceState::Active) == 2));
    assert!(!fleet.device_events(0).iter().any(|e| matches!(
        e,
        DeviceEvent::Rejected {
            cause: Cause::CONGESTION,
            ..
        }
    )));
}

/// Without a limit (the library's default) nothing is refused, however
/// many devices arrive at once.
#[test]
fn no_limit_refuses_nothing() {
    const DEVICES: usize = 30;
    let world = world();
    let profiles = vec![DeviceProfile::standard(world.now); DEVICES];
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        Faults::NONE,
        3,
    );
    assert_eq!(fleet.network().admission().max_procedures, None);
    for i in 0..DEVICES {
        fleet.power_on(i);
    }
    let mut most = 0;
    let deadline = fleet.now() + Duration::from_secs(600);
    assert!(fleet.run_until(deadline, |f| {
        most = most.max(f.network().procedures());
        f.count(DeviceState::Active) == DEVICES
    }));
    assert_eq!(most, DEVICES, "all registered at once");
    assert!(
        !fleet
            .network_events()
            .iter()
            .any(|e| matches!(e, NetworkEvent::Congested { .. }))
    );
}
