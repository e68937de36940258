//! The operator's block list stops a device that already has a
//! subscription, not only its next onboarding (issue #16, item 1): a block
//! handed to a running network deregisters the device at once (a
//! DEREGISTRATION REQUEST with #3, integrity protected, sent again on
//! T3522 when it is lost; the context ends at the UE's ACCEPT), its registration
//! with 5G-AKA is refused (#3, protected, after the security mode command)
//! while the block lasts, its subscription stays as it was, and unblocking
//! lets it in again with the same SUPI. Another device is untouched, and a
//! block that arrives while a device is onboarding ends the onboarding.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use nido_net::NetworkEvent;
use nido_pki::{DeviceId, DeviceProfile, Policy};
use nido_sec::Cause;
use nido_sim::scenario::NetworkOptions;
use nido_sim::{Faults, Fleet};
use nido_ue::{DeviceEvent, DeviceState, RejectMessage};

use common::{fleet, settle, trust_store, world};

/// How many times device `i` was told `cause` by `message`.
fn told(fleet: &Fleet, i: usize, message: RejectMessage, cause: Cause) -> usize {
    fleet
        .device_events(i)
        .iter()
        .filter(|e| matches!(e, DeviceEvent::Rejected { message: m, cause: c } if *m == message && *c == cause))
        .count()
}

/// The network's refusals of `device` with #3 whose reason holds `needle`.
fn refused(fleet: &Fleet, device: &DeviceId, needle: &str) -> usize {
    fleet
        .network_events()
        .iter()
        .filter(|e| {
            matches!(e, NetworkEvent::Refused { device: Some(d), cause: Cause::ILLEGAL_UE, reason, .. }
                if d == device && reason.contains(needle))
        })
        .count()
}

#[test]
fn a_blocked_device_is_deregistered_and_refused_until_it_is_unblocked() {
    let world = world();
    let m = &world.manufacturer;
    let (mut fleet, sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &vec![DeviceProfile::standard(world.now); 3],
        Faults::NONE,
        16,
    );
    let ids: Vec<DeviceId> = (1..=3)
        .map(|n| DeviceId::new(m.name(), &m.device_serial(n)).unwrap())
        .collect();
    let policy = || Policy::for_manufacturer(m);
    fleet.power_on(0);
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[0, 1]));
    assert_eq!(fleet.count(DeviceState::Active), 2);
    // The network has their REGISTRATION COMPLETEs too.
    let deadline = fleet.now() + Duration::from_secs(10);
    assert!(fleet.run_until(deadline, |f| {
        (0..2).all(|i| f.network().state_of(f.connection(i)) == Some("registered"))
    }));
    let supi = fleet.device(0).subscription().unwrap().supi.clone();

    // The block reaches the running network: device 0 is deregistered
    // with a protected #3, and gives up. The first DEREGISTRATION REQUEST
    // is lost: T3522 (6 s) sends it again.
    let lost = Rc::new(Cell::new(0));
    let counter = lost.clone();
    fleet.set_downlink_filter(move |t| {
        let first = t.message == "DeregistrationRequestUeTerminated" && counter.get() == 0;
        if first {
            counter.set(1);
        }
        !first
    });
    let blocked = trust_store(&world, policy(), |t| {
        t.block(&ids[0]);
    });
    let (now, conn) = (fleet.now(), fleet.connection(0));
    fleet.network_mut().set_trust_store(now, Arc::new(blocked));
    assert_eq!(
        fleet.network().state_of(conn),
        Some("deregistration requested")
    );
    let deadline = fleet.now() + Duration::from_secs(5);
    assert!(!fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Failed));
    let deadline = fleet.now() + Duration::from_secs(2);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Failed));
    assert_eq!(lost.get(), 1);
    assert_eq!(
        told(
            &fleet,
            0,
            RejectMessage::DeregistrationRequest,
            Cause::ILLEGAL_UE
        ),
        1
    );
    assert_eq!(refused(&fleet, &ids[0], "deregistered"), 1);
    // Its DEREGISTRATION ACCEPT ended the context.
    let deadline = fleet.now() + Duration::from_secs(1);
    fleet.run_until(deadline, |_| false);
    assert_eq!(fleet.network().state_of(conn), None);
    assert!(fleet.send_data(0, b"after the block").is_err());
    // Its subscription is kept on both sides.
    assert_eq!(fleet.device(0).subscription().unwrap().supi, supi);
    // Device 1 is untouched: still active, its data still arrives.
    assert_eq!(fleet.device(1).state(), DeviceState::Active);
    fleet.send_data(1, b"still here").unwrap();
    let deadline = fleet.now() + Duration::from_secs(10);
    assert!(fleet.run_until(deadline, |_| {
        sink.received().iter().any(|u| u.data == b"still here")
    }));
    assert!(sink.received().iter().all(|u| u.data != b"after the block"));

    // Powered on again, it registers with its subscription: 5G-AKA and
    // the security mode run, then the REGISTRATION REJECT, protected (an
    // unprotected #3 would only start T3247, TS 24.501 §5.3.20.2).
    fleet.power_off(0);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Failed);
    assert_eq!(
        told(
            &fleet,
            0,
            RejectMessage::RegistrationReject,
            Cause::ILLEGAL_UE
        ),
        1
    );
    assert!(
        !fleet
            .device_events(0)
            .iter()
            .any(|e| matches!(e, DeviceEvent::UnprotectedReject { .. })),
        "{:?}",
        fleet.device_events(0)
    );
    assert_eq!(
        refused(&fleet, &ids[0], "registration of its subscription"),
        1
    );
    assert_eq!(fleet.device(0).subscription().unwrap().supi, supi);

    // A block that arrives while device 2 onboards ends its onboarding.
    fleet.power_on(2);
    let deadline = fleet.now() + Duration::from_secs(60);
    assert!(fleet.run_until(deadline, |f| f.device(2).state()
        == DeviceState::Provisioning));
    let both = trust_store(&world, policy(), |t| {
        t.block(&ids[0]);
        t.block(&ids[2]);
    });
    let now = fleet.now();
    fleet.network_mut().set_trust_store(now, Arc::new(both));
    assert!(settle(&mut fleet, &[2]));
    assert_eq!(fleet.device(2).state(), DeviceState::Failed);
    assert_eq!(
        told(
            &fleet,
            2,
            RejectMessage::DeregistrationRequest,
            Cause::ILLEGAL_UE
        ),
        1,
        "{:?}\n{:?}",
        fleet.device_events(2),
        fleet
            .network_events()
            .iter()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
    );
    assert_eq!(refused(&fleet, &ids[2], "deregistered"), 1);

    // Unblocked: the same subscription registers again and is active.
    let now = fleet.now();
    fleet
        .network_mut()
        .set_trust_store(now, Arc::new(trust_store(&world, policy(), |_| {})));
    for i in [0, 2] {
        fleet.power_off(i);
        fleet.power_on(i);
    }
    assert!(settle(&mut fleet, &[0, 2]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(fleet.device(0).subscription().unwrap().supi, supi);
    assert_eq!(fleet.device(2).state(), DeviceState::Active);
    fleet.send_data(0, b"welcome back").unwrap();
    let deadline = fleet.now() + Duration::from_secs(10);
    assert!(fleet.run_until(deadline, |_| {
        sink.received().iter().any(|u| u.data == b"welcome back")
    }));
}

/// A block that races an onboarding (issue #16): handed to the running
/// network while the device is in EAP-TLS, while it is provisioning, or
/// once it has its package and is registering with it for the first time,
/// it ends that procedure with #3 (unprotected during EAP-TLS, when no
/// security context exists yet, so the device waits T3247; protected after,
/// a REGISTRATION REJECT or a DEREGISTRATION REQUEST on the onboarding
/// registration, so the device gives up) and the device never becomes
/// active; unblocked, it completes with one subscription.
#[test]
fn a_block_that_races_an_onboarding_wins_at_every_stage() {
    let world = world();
    let m = &world.manufacturer;
    let id = DeviceId::new(m.name(), &m.device_serial(1)).unwrap();
    let policy = || Policy::for_manufacturer(m);
    for (n, stage) in [
        DeviceState::Onboarding,
        DeviceState::Provisioning,
        DeviceState::Registering,
    ]
    .into_iter()
    .enumerate()
    {
        let (mut fleet, _sink) = fleet(
            &world,
            &NetworkOptions::default(),
            &[DeviceProfile::standard(world.now)],
            Faults::NONE,
            40 + n as u64,
        );
        fleet.power_on(0);
        let deadline = fleet.now() + Duration::from_secs(60);
        assert!(
            fleet.run_until(deadline, |f| f.device(0).state() == stage),
            "{stage:?}"
        );
        let blocked = trust_store(&world, policy(), |t| {
            t.block(&id);
        });
        let now = fleet.now();
        fleet.network_mut().set_trust_store(now, Arc::new(blocked));
        assert!(settle(&mut fleet, &[0]));
        // Before its EAP-TLS ends there is no security context: the DCS
        // refuses the certificate and the reject goes unprotected, which
        // the device suspects (T3247, TS 24.501 §5.3.20.2). Later, the #3
        // is protected and believed.
        let expected = match stage {
            DeviceState::Onboarding => DeviceState::BackingOff,
            _ => DeviceState::Failed,
        };
        assert_eq!(
            fleet.device(0).state(),
            expected,
            "{stage:?}: {:?}",
            fleet.device_events(0)
        );
        let told_3 = fleet.device_events(0).iter().any(
            |e| matches!(e, DeviceEvent::Rejected { cause, .. } if *cause == Cause::ILLEGAL_UE),
        );
        assert!(told_3, "{stage:?}: {:?}", fleet.device_events(0));
        assert!(
            !fleet
                .device_events(0)
                .iter()
                .any(|e| matches!(e, DeviceEvent::Active { .. })),
            "{stage:?}: never active"
        );
        // Never registered with a subscription (a block is not a state:
        // a subscription 5G-AKA validated stays as it is).
        assert!(
            !fleet
                .network_events()
                .iter()
                .any(|e| matches!(e, NetworkEvent::Registered { .. })),
            "{stage:?}: never registered"
        );
        // Unblocked: it completes, with one subscription.
        let now = fleet.now();
        fleet
            .network_mut()
            .set_trust_store(now, Arc::new(trust_store(&world, policy(), |_| {})));
        fleet.power_off(0);
        fleet.power_on(0);
        assert!(settle(&mut fleet, &[0]));
        assert_eq!(fleet.device(0).state(), DeviceState::Active, "{stage:?}");
        assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    }
}
