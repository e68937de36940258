//! The device against an attacker on the radio side (issue #17, findings 1,
//! 3 and the device's part of 9): a fake base station that switches NAS
//! integrity off, an off-path injector of plain rejects and deregistrations,
//! forged SECURITY MODE COMMANDs. Simulated time throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use nido_nas::build::{self, CipheringAlgorithm, IntegrityAlgorithm, KeySetIdentifier};
use nido_sec::Cause;
use nido_sim::adversary::{FakeBaseStation, Mitm, Verdict, forge};
use nido_sim::scenario::NetworkOptions;
use nido_sim::{Direction, Fleet, connection_id};
use nido_ue::{DeviceEvent, DeviceState, Timers};

use common::{one_device, world};

fn device_0(conn: u64) -> bool {
    nido_sim::device_of(conn) == 0
}

fn active(fleet: &mut Fleet) -> bool {
    let deadline = fleet.now() + Duration::from_secs(3600);
    fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active)
}

fn reached(fleet: &Fleet, state: DeviceState) -> bool {
    fleet
        .device_events(0)
        .iter()
        .any(|e| matches!(e, DeviceEvent::State { to, .. } if *to == state))
}

/// Finding 1: a fake base station relays EAP-TLS, then replaces the
/// network's SECURITY MODE COMMAND by one selecting NIA0/NEA0 with a zero
/// MAC and answers with REGISTRATION ACCEPTs of its own. The device
/// refuses the command (SECURITY MODE REJECT #24), never takes a null
/// integrity context into use, never accepts either ACCEPT and never
/// reaches provisioning; once the attacker leaves it onboards normally.
#[test]
fn a_fake_base_station_selecting_null_integrity_does_not_become_the_network() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 11);
    let fbs = Rc::new(RefCell::new(FakeBaseStation::new(device_0)));
    fleet.set_adversary(fbs.clone());
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(60));

    assert!(fbs.borrow().hijacked(), "the attack reached the command");
    assert!(
        fleet.device_events(0).iter().any(|e| matches!(
            e,
            DeviceEvent::SecurityModeRejected {
                cause: Cause::SECURITY_MODE_REJECTED,
                ..
            }
        )),
        "{:?}",
        fleet.device_events(0)
    );
    // What the device said to the fake network: the SECURITY MODE REJECT
    // #24, plain; nothing protected.
    let uplink = fbs.borrow().uplink_after.clone();
    assert_eq!(
        uplink.first().map(Vec::as_slice),
        Some(&[0x7e, 0, 0x5f, 24][..])
    );
    assert!(
        uplink
            .iter()
            .all(|pdu| forge::security_header_type(pdu) == Some(0)),
        "nothing protected under the attacker's context: {uplink:02x?}"
    );
    assert!(!reached(&fleet, DeviceState::Provisioning));
    assert!(fleet.device(0).security_context().is_none());
    assert!(!fleet.device(0).secure_element().has_subscription());

    fleet.clear_adversary();
    assert!(active(&mut fleet), "{:?}", fleet.device_events(0));
}

/// TS 24.501 §4.4.4.2: without integrity protection a UE processes only a
/// few messages, with or without a security context. A plain REGISTRATION
/// ACCEPT injected while the device authenticates is discarded.
#[test]
fn a_plain_registration_accept_is_discarded() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 12);
    fleet.power_on(0);
    let conn = connection_id(0, fleet.device(0).connection());
    let accept = forge::registration_accept_plain().unwrap();
    fleet.inject(Direction::Downlink, conn, &accept);
    assert_eq!(fleet.device(0).state(), DeviceState::Onboarding);
    assert!(fleet.device_events(0).iter().any(|e| matches!(
        e,
        DeviceEvent::Discarded { reason } if reason.contains("without integrity protection")
    )));
    assert!(active(&mut fleet));
}

/// The device's part of finding 9: a SECURITY MODE COMMAND whose MAC does
/// not verify changes nothing and is answered with nothing, even when its
/// replayed capabilities differ (a SECURITY MODE REJECT before the MAC
/// check would let anyone abort the procedure). The genuine command that
/// follows is taken.
#[test]
fn a_security_mode_command_with_a_bad_mac_is_discarded_silently() {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 13);
    let mut done = false;
    let forged = build::security_mode_command(&build::SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA2,
        integrity: IntegrityAlgorithm::NIA2,
        ngksi: KeySetIdentifier::Native(0),
        replayed_ue_security_capability: build::NasUeSecurityCapability::from_capabilities(
            0x80, 0x20,
        ),
        imeisv_request: false,
        abba: Some(build::ABBA.to_vec()),
        additional_security_information: None,
        eap_message: None,
    })
    .unwrap()
    .encode()
    .unwrap();
    let forged = forge::with_null_mac(3, 0, &forged);
    // Just before the genuine command, the forged one.
    let mitm = Rc::new(RefCell::new(Mitm::new(move |seen, inject| {
        if !done
            && seen.direction == Direction::Downlink
            && forge::security_header_type(&seen.pdu) == Some(3)
        {
            done = true;
            inject.push_back(nido_sim::adversary::Injection {
                direction: Direction::Downlink,
                conn: seen.conn,
                pdu: seen.pdu.clone(),
            });
            return Verdict::Deliver(forged.clone());
        }
        Verdict::Deliver(seen.pdu.clone())
    })));
    fleet.set_adversary(mitm.clone());
    fleet.power_on(0);
    assert!(active(&mut fleet), "{:?}", fleet.device_events(0));
    let rejects = mitm
        .borrow()
        .captured
        .iter()
        .filter(|s| s.direction == Direction::Uplink && is_security_mode_reject(&s.pdu))
        .count();
    assert_eq!(rejects, 0, "no SECURITY MODE REJECT for a forged command");
    assert!(
        !fleet
            .device_events(0)
            .iter()
            .any(|e| matches!(e, DeviceEvent::SecurityModeRejected { .. }))
    );
}

/// Whether `pdu` is a SECURITY MODE REJECT (TS 24.501 §8.2.27), read as a
/// receiver reads it: a plain 5GMM message (security header type 0,
/// §9.3) is decoded whole; an integrity-protected one (types 1 and 3) has a
/// 7-octet security header (§9.1.1: EPD, header type, MAC, sequence
/// number) before its plain message, which is decoded. A ciphered one
/// (types 2 and 4) cannot be read here; the device's events show whether
/// it rejected. Not a byte compare at a fixed offset: octet 2 of a
/// protected PDU is its MAC's first octet, 0x5f one time in 256.
fn is_security_mode_reject(pdu: &[u8]) -> bool {
    let plain = match forge::security_header_type(pdu) {
        Some(0) => pdu,
        Some(1 | 3) => pdu.get(7..).unwrap_or_default(),
        _ => return false,
    };
    nido_nas::decode(plain).is_ok_and(|m| nido_nas::message_name(&m) == "SecurityModeReject")
}

/// The filter above: a SECURITY MODE REJECT plain or inside an
/// integrity-protected PDU, never a protected PDU whose MAC begins with
/// 0x5f (what made the test above fail one run in five).
#[test]
fn a_security_mode_reject_is_known_by_its_header_and_message_type() {
    let reject = [0x7e, 0, 0x5f, 24];
    assert!(is_security_mode_reject(&reject));
    assert!(is_security_mode_reject(&forge::with_null_mac(
        3, 0, &reject
    )));
    // REGISTRATION COMPLETE (0x43), integrity protected, MAC 5f 00 00 00.
    let mut complete = forge::with_null_mac(1, 0, &[0x7e, 0, 0x43]);
    complete[2] = 0x5f;
    assert!(!is_security_mode_reject(&complete));
    // Ciphered: unreadable here, whatever its octets.
    assert!(!is_security_mode_reject(&forge::with_null_mac(
        2, 0, &reject
    )));
}

/// An active device registers again; an off-path attacker who knows the
/// connection answers its REGISTRATION REQUEST with `pdu` first.
fn active_then_injected(seed: u64, pdu: &[u8]) -> Fleet {
    let world = world();
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), seed);
    fleet.power_on(0);
    assert!(active(&mut fleet));
    fleet.power_off(0);
    fleet.advance(Duration::from_secs(1));
    fleet.power_on(0);
    assert_eq!(fleet.device(0).state(), DeviceState::Registering);
    let conn = connection_id(0, fleet.device(0).connection());
    fleet.inject(Direction::Downlink, conn, pdu);
    fleet
}

/// Finding 3: one 4-octet datagram, a plain REGISTRATION REJECT #7, used to
/// erase K and OPc. Now the device keeps its subscription, waits T3247
/// (30-60 min, TS 24.501 §5.3.20.2) and registers with it again.
#[test]
fn a_forged_plain_reject_does_not_erase_the_subscription() {
    for (seed, cause) in [(21, 7u8), (22, 3), (23, 75), (24, 6)] {
        let mut fleet = active_then_injected(seed, &forge::registration_reject(cause));
        let now = fleet.now();
        assert_eq!(fleet.device(0).state(), DeviceState::BackingOff, "#{cause}");
        assert!(
            fleet.device(0).secure_element().has_subscription(),
            "#{cause}"
        );
        assert!(fleet.device(0).subscription().is_some(), "#{cause}");
        let wait = fleet
            .device(0)
            .poll_timeout()
            .unwrap()
            .duration_since(now)
            .unwrap();
        let (min, max) = Timers::default().t3247;
        assert!((min..=max).contains(&wait), "#{cause}: T3247 {wait:?}");
        assert!(fleet.device_events(0).iter().any(|e| matches!(
            e,
            DeviceEvent::UnprotectedReject { cause: c, .. } if *c == Cause(cause)
        )));
        // After T3247 it registers with the same subscription.
        let supi = fleet.device(0).subscription().unwrap().supi.clone();
        assert!(active(&mut fleet), "#{cause}");
        assert_eq!(fleet.device(0).subscription().unwrap().supi, supi);
        assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    }
}

/// The counter of TS 24.501 §5.3.20.2: only `max_unprotected_rejects`
/// unprotected #3 in a row stop the device (until it is powered on
/// again), and even then nothing is erased.
#[test]
fn unprotected_illegal_ue_is_believed_only_after_the_counter_runs_out() {
    let reject = forge::registration_reject(3);
    let mut fleet = active_then_injected(25, &reject);
    let max = Timers::default().max_unprotected_rejects;
    for n in 2..=max {
        assert_eq!(fleet.device(0).state(), DeviceState::BackingOff, "try {n}");
        let wake = fleet.device(0).poll_timeout().unwrap();
        fleet.device_mut(0).handle_timeout(wake);
        fleet.pump_devices();
        assert_eq!(fleet.device(0).state(), DeviceState::Registering, "try {n}");
        let conn = connection_id(0, fleet.device(0).connection());
        fleet.inject(Direction::Downlink, conn, &reject);
    }
    assert_eq!(fleet.device(0).state(), DeviceState::Failed);
    assert!(fleet.device(0).secure_element().has_subscription());
    // Powered on again, it registers with its subscription.
    fleet.power_off(0);
    fleet.power_on(0);
    assert!(active(&mut fleet));
}

/// Finding 3, the deregistration: a plain network-initiated DEREGISTRATION
/// REQUEST (#7) is not among the messages a UE takes without integrity
/// protection; an active device discards it and stays active.
#[test]
fn a_forged_plain_deregistration_request_is_discarded() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 26);
    fleet.power_on(0);
    assert!(active(&mut fleet));
    let conn = connection_id(0, fleet.device(0).connection());
    fleet.inject(Direction::Downlink, conn, &forge::deregistration_request(7));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert!(fleet.device(0).secure_element().has_subscription());
    fleet.advance(Duration::from_secs(20));
    fleet.send_data(0, b"still here").unwrap();
    let deadline = fleet.now() + Duration::from_secs(120);
    assert!(fleet.run_until(deadline, |_| !sink.received().is_empty()));
}
