//! The device's reaction to each reject cause it can receive during
//! registration (TS 24.501 §5.5.1.2.5): give up, back off for the time the
//! cause or T3346 says, or start over; and that a back-off ends in a new
//! attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::time::Duration;

use nido_nas::build::{self, GmmCause};
use nido_sec::Cause;
use nido_sim::scenario::NetworkOptions;
use nido_ue::{DeviceEvent, DeviceState, Timers};

use common::{one_device, world};

/// Powers a device on, feeds it REGISTRATION REJECT `cause` (plain, as a
/// network sends it before security), returns its state and wake-up delay.
fn reject(
    cause: GmmCause,
    t3346: Option<u64>,
) -> (DeviceState, Option<Duration>, Vec<DeviceEvent>) {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 4);
    fleet.power_on(0);
    let now = fleet.now();
    let pdu = build::registration_reject(cause, t3346)
        .unwrap()
        .encode()
        .unwrap();
    let device = fleet.device_mut(0);
    device.handle_pdu(now, &pdu);
    let wake = device
        .poll_timeout()
        .map(|at| at.duration_since(now).unwrap());
    let mut events = Vec::new();
    while let Some(e) = device.poll_event() {
        events.push(e);
    }
    (device.state(), wake, events)
}

/// #3 and #75 before security come without integrity protection: the
/// device waits T3247 (TS 24.501 §5.3.20.2) rather than giving up at once.
#[test]
fn unprotected_illegal_ue_and_permanently_not_authorized_wait_t3247() {
    for cause in [
        GmmCause::IllegalUe,
        GmmCause::PermanentlyNotAuthorizedForThisSnpn,
    ] {
        let (state, wake, events) = reject(cause, None);
        assert_eq!(state, DeviceState::BackingOff, "{cause:?}");
        let (min, max) = Timers::default().t3247;
        assert!(
            wake.is_some_and(|w| (min..=max).contains(&w)),
            "{cause:?}: {wake:?}"
        );
        assert!(events.contains(&DeviceEvent::Rejected {
            message: nido_ue::RejectMessage::RegistrationReject,
            cause: Cause(cause as u8)
        }));
    }
}

#[test]
fn temporarily_not_authorized_backs_off() {
    let (state, wake, _) = reject(GmmCause::TemporarilyNotAuthorizedForThisSnpn, None);
    assert_eq!(state, DeviceState::BackingOff);
    assert_eq!(wake, Some(Timers::default().not_authorized_retry));
}

/// Each #74 in a row doubles the wait, up to `temporarily_not_authorized`;
/// an accepted registration starts the count again.
#[test]
fn repeated_not_authorized_waits_ever_longer() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 7);
    let timers = Timers::default();
    fleet.power_on(0);
    // The device alone, on its own clock: each REGISTRATION REQUEST it
    // sends is answered by the reject below.
    let mut now = fleet.now();
    let mut waits = Vec::new();
    for _ in 0..10 {
        let pdu = build::registration_reject(GmmCause::TemporarilyNotAuthorizedForThisSnpn, None)
            .unwrap()
            .encode()
            .unwrap();
        fleet.device_mut(0).handle_pdu(now, &pdu);
        assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
        let wake = fleet.device_mut(0).poll_timeout().unwrap();
        waits.push(wake.duration_since(now).unwrap());
        // The back-off ends: the device registers again (and is refused again).
        fleet.device_mut(0).handle_timeout(wake);
        assert_eq!(fleet.device(0).state(), DeviceState::Onboarding);
        now = wake;
    }
    let first = timers.not_authorized_retry;
    assert_eq!(&waits[..3], &[first, first * 2, first * 4]);
    assert_eq!(*waits.last().unwrap(), timers.temporarily_not_authorized);
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
}

/// #22 before security comes without integrity protection: its T3346
/// may be forged, so the device waits a value from the default range
/// instead (TS 24.501 §5.5.1.2.5); without T3346 it waits T3502.
#[test]
fn unprotected_congestion_waits_the_default_t3346_range() {
    let (state, wake, events) = reject(GmmCause::Congestion, Some(120));
    assert_eq!(state, DeviceState::BackingOff);
    let (min, max) = Timers::default().t3346_default;
    assert_eq!(
        (min, max),
        (Duration::from_secs(900), Duration::from_secs(1800))
    );
    let wake = wake.unwrap();
    assert!((min..=max).contains(&wake), "{wake:?}");
    assert!(
        events.contains(&DeviceEvent::Congestion {
            t3346: Duration::from_secs(120),
            protected: false,
            wait: wake,
        }),
        "{events:?}"
    );
    // Without T3346 the device waits T3502.
    let (_, wake, _) = reject(GmmCause::Congestion, None);
    assert_eq!(wake, Some(Timers::default().t3502));
}

/// The unprotected T3346 draws follow the device's seed: the same seed
/// draws the same values, other seeds others, all in the range.
#[test]
fn unprotected_t3346_draws_follow_the_seed() {
    let world = world();
    let draws = |seed: u64| -> Vec<Duration> {
        let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 4);
        fleet.device_mut(0).seed_backoff(seed);
        fleet.power_on(0);
        let mut now = fleet.now();
        let mut waits = Vec::new();
        for _ in 0..4 {
            let pdu = build::registration_reject(GmmCause::Congestion, Some(60))
                .unwrap()
                .encode()
                .unwrap();
            let device = fleet.device_mut(0);
            device.handle_pdu(now, &pdu);
            let wake = device.poll_timeout().unwrap();
            waits.push(wake.duration_since(now).unwrap());
            device.handle_timeout(wake);
            now = wake;
        }
        waits
    };
    let (min, max) = Timers::default().t3346_default;
    let one = draws(1);
    assert!(one.iter().all(|w| (min..=max).contains(w)), "{one:?}");
    assert_eq!(one, draws(1));
    assert_ne!(one, draws(2));
    assert!(one.windows(2).any(|w| w[0] != w[1]), "{one:?}");
}

/// A #22 with T3346 resets the registration attempt counter (TS 24.501
/// §5.5.1.2.5): failures before the back-off do not count on towards T3502
/// after it.
#[test]
fn congestion_resets_the_attempt_counter() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 8);
    fleet.power_on(0);
    let attempts = Timers::default().max_attempts;
    let mut now = fleet.now();
    let feed = |fleet: &mut nido_sim::Fleet, now: std::time::SystemTime, cause, t3346| {
        let pdu = build::registration_reject(cause, t3346)
            .unwrap()
            .encode()
            .unwrap();
        fleet.device_mut(0).handle_pdu(now, &pdu);
        fleet.device(0).state()
    };
    for _ in 1..attempts {
        let state = feed(&mut fleet, now, GmmCause::ProtocolErrorUnspecified, None);
        assert_eq!(state, DeviceState::Onboarding);
    }
    let state = feed(&mut fleet, now, GmmCause::Congestion, Some(60));
    assert_eq!(state, DeviceState::BackingOff);
    now = fleet.device(0).poll_timeout().unwrap();
    fleet.device_mut(0).handle_timeout(now);
    assert_eq!(fleet.device(0).state(), DeviceState::Onboarding);
    // A full count of failures again before T3502.
    for n in 1..=attempts {
        let state = feed(&mut fleet, now, GmmCause::ProtocolErrorUnspecified, None);
        let expected = if n < attempts {
            DeviceState::Onboarding
        } else {
            DeviceState::BackingOff
        };
        assert_eq!(state, expected, "after {n} failures past the back-off");
    }
    let wake = fleet.device(0).poll_timeout().unwrap();
    assert_eq!(wake.duration_since(now).unwrap(), Timers::default().t3502);
}

#[test]
fn a_back_off_ends_in_a_new_registration_that_succeeds() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 5);
    fleet.power_on(0);
    let now = fleet.now();
    let pdu = build::registration_reject(GmmCause::Congestion, Some(60))
        .unwrap()
        .encode()
        .unwrap();
    fleet.device_mut(0).handle_pdu(now, &pdu);
    fleet.pump_devices();
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    // The network answers the first request meanwhile; the device released
    // that connection, so nothing it sends reaches the device. After the
    // back-off (the reject was unprotected: a T3346 from the default
    // range, not its 60 s) it registers again on a new connection and gets
    // through.
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    assert!(fleet.now().duration_since(now).unwrap() >= Timers::default().t3346_default.0);
}

#[test]
fn unknown_causes_retry_a_bounded_number_of_times_then_wait_t3502() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 6);
    fleet.power_on(0);
    let attempts = Timers::default().max_attempts;
    for n in 1..=attempts {
        let now = fleet.now();
        let pdu = build::registration_reject(GmmCause::ProtocolErrorUnspecified, None)
            .unwrap()
            .encode()
            .unwrap();
        fleet.device_mut(0).handle_pdu(now, &pdu);
        let expected = if n < attempts {
            DeviceState::Onboarding
        } else {
            DeviceState::BackingOff
        };
        assert_eq!(fleet.device(0).state(), expected, "after {n} rejects");
    }
}

#[test]
fn a_device_whose_network_lost_its_context_registers_again_and_its_burst_arrives() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 8);
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    fleet.advance(Duration::from_secs(30));
    // The network restarts: its NAS contexts are gone, the store is not.
    fleet.network_mut().forget_contexts();
    fleet.send_data(0, b"after the restart").unwrap();
    let deadline = fleet.now() + Duration::from_secs(600);
    assert!(fleet.run_until(deadline, |_| !sink.received().is_empty()));
    assert_eq!(sink.received()[0].data, b"after the restart");
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
}

/// #9 comes unprotected, so one may be a corrupted datagram or a forgery:
/// an active device keeps its subscription over two #9 in a row; the third
/// makes it onboard again, still keeping the subscription. Since the
/// network holds that subscription (active), the onboarding is refused
/// with #74, and the device returns to its subscription and is active
/// again, with the same K, without the operator.
#[test]
fn unknown_identity_never_erases_the_subscription() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 9);
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    let supi = fleet.device(0).subscription().unwrap().supi.clone();
    let k_before = fleet
        .network()
        .store()
        .subscription_by_supi(&supi)
        .unwrap()
        .unwrap()
        .k;
    let reject_9 =
        build::registration_reject(GmmCause::UeIdentityCannotBeDerivedByTheNetwork, None)
            .unwrap()
            .encode()
            .unwrap();
    for n in 1..=3 {
        // A registration starts (the device registers again)...
        fleet.power_on(0);
        assert_eq!(fleet.device(0).state(), DeviceState::Registering, "try {n}");
        // ...and gets #9 before the network answers it.
        let now = fleet.now();
        fleet.device_mut(0).handle_pdu(now, &reject_9);
        fleet.pump_devices();
        assert_eq!(
            fleet.device(0).subscription().map(|p| p.supi.clone()),
            Some(supi.clone()),
            "kept after #9 number {n}"
        );
        assert!(fleet.device(0).secure_element().has_subscription());
        if n < 3 {
            assert_eq!(fleet.device(0).state(), DeviceState::BackingOff, "try {n}");
            let wake = fleet.device(0).poll_timeout().unwrap();
            assert_eq!(
                wake.duration_since(now).unwrap(),
                Timers::default().not_authorized_retry
            );
            // Let the network's answer to the abandoned request pass.
            fleet.advance(Duration::from_secs(1));
            fleet.power_off(0);
        }
    }
    // The third: it onboards again, the network refuses (#74: it holds a
    // subscription and presents no erasure receipt, so the restricted
    // onboarding registration ends in a protected DEREGISTRATION REQUEST),
    // and the device goes back to the subscription it kept.
    assert_eq!(fleet.device(0).state(), DeviceState::Onboarding);
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    assert!(fleet.device_events(0).contains(&DeviceEvent::Rejected {
        message: nido_ue::RejectMessage::DeregistrationRequest,
        cause: nido_nas::Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
    }));
    let after = fleet
        .network()
        .store()
        .subscription_by_supi(&supi)
        .unwrap()
        .unwrap();
    assert!(after.k == k_before, "the same subscription, not a new one");
    assert_eq!(fleet.device(0).subscription().unwrap().supi, supi);
}

/// #7 "5GS services not allowed" without integrity protection (anyone on
/// the link can send one): the device keeps its package and waits T3247;
/// only a #7 protected by the subscription's own 5G-AKA context makes it
/// erase the package and renew (tests/lifecycle.rs).
#[test]
fn an_unprotected_7_never_erases_the_package() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 11);
    fleet.power_on(0);
    let deadline = fleet.now() + Duration::from_secs(600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    let package = fleet.device(0).subscription().unwrap().package_id;
    let reject_7 = build::registration_reject(GmmCause::FiveGsServicesNotAllowed, None)
        .unwrap()
        .encode()
        .unwrap();
    fleet.power_on(0);
    assert_eq!(fleet.device(0).state(), DeviceState::Registering);
    let now = fleet.now();
    fleet.device_mut(0).handle_pdu(now, &reject_7);
    fleet.pump_devices();
    assert!(fleet.device(0).secure_element().has_subscription());
    assert_eq!(
        fleet.device(0).subscription().map(|p| p.package_id),
        Some(package)
    );
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    assert!(
        !fleet
            .device_events(0)
            .iter()
            .any(|e| matches!(e, DeviceEvent::Renewing { .. })),
        "{:?}",
        fleet.device_events(0)
    );
}
