//! The network against an off-path injector (issue #17, findings 4, 5 and
//! 9): someone who knows connection ids (they travel in clear) sends PDUs
//! naming them, without any key. And the network against a UE that holds
//! the keys but breaks the ciphering rules (finding 9).
//!
//! The injector's PDUs go straight into the fleet's network, as if they
//! had arrived on the link ([`nido_sim::injector::Injector`]).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use nido_nas::build::{self, ABBA};
use nido_nas::security::{Protection, Role, SecurityContext};
use nido_nas::view::Inbound;
use nido_net::amf::{Admission, PduVerdict};
use nido_net::{ConnectionId, NetworkEvent};
use nido_sec::{Cause, Milenage, SqnWindow, Supi};
use nido_sim::injector::Injector;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Fleet};

use common::{one_device, settle, world};

/// Every PDU on the link, (direction, connection, octets).
type Capture = Rc<RefCell<Vec<(Direction, u64, Vec<u8>)>>>;

fn capture(fleet: &mut Fleet) -> Capture {
    let log: Capture = Rc::default();
    let sink = log.clone();
    fleet.set_trace(move |r| {
        sink.borrow_mut()
            .push((r.direction, r.conn, r.pdu.to_vec()));
    });
    log
}

fn inbound(pdu: &[u8]) -> Option<Inbound> {
    Inbound::read(&nido_nas::decode(pdu).ok()?).ok()
}

/// The device's plain initial REGISTRATION REQUEST (type 001, IMSI SUCI).
fn captured_initial_request(log: &Capture) -> Vec<u8> {
    log.borrow()
        .iter()
        .filter(|(d, _, _)| *d == Direction::Uplink)
        .find(|(_, _, pdu)| {
            matches!(
                inbound(pdu),
                Some(Inbound::RegistrationRequest {
                    registration_type: 1,
                    ..
                })
            )
        })
        .map(|(_, _, pdu)| pdu.clone())
        .expect("the device registered with its subscription")
}

/// RANDs of the AUTHENTICATION REQUESTs (5G-AKA) sent on `conn`.
fn rands_on(log: &Capture, conn: u64) -> Vec<[u8; 16]> {
    log.borrow()
        .iter()
        .filter(|(d, c, _)| *d == Direction::Downlink && *c == conn)
        .filter_map(|(_, _, pdu)| match inbound(pdu) {
            Some(Inbound::AuthenticationRequest {
                rand: Some(rand), ..
            }) => Some(rand),
            _ => None,
        })
        .collect()
}

/// One device from factory state to active with its subscription, idle.
fn active_fleet(seed: u64) -> (Fleet, nido_net::MemorySink, Capture) {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), seed);
    let log = capture(&mut fleet);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), nido_ue::DeviceState::Active);
    fleet.advance(Duration::from_secs(30)); // the data session up, then idle
    (fleet, sink, log)
}

fn inject(fleet: &mut Fleet, conn: u64, pdu: &[u8]) -> PduVerdict {
    let now = fleet.now();
    let verdict = fleet.network_mut().handle_pdu(now, ConnectionId(conn), pdu);
    fleet.pump();
    verdict
}

/// Finding 4: plain messages from someone who knows a registered device's
/// connection id neither remove its context nor abort anything, and its
/// bursts all arrive (before: one REGISTRATION REQUEST removed the
/// context, the #9 went out, and later bursts were dropped).
#[test]
fn plain_messages_on_a_registered_connection_change_nothing() {
    let (mut fleet, sink, _log) = active_fleet(41);
    let conn = fleet.connection(0).0;
    assert_eq!(
        fleet.network().state_of(ConnectionId(conn)),
        Some("registered")
    );
    let mut injector = Injector::new(4);
    let before = fleet.network_events().len();
    let attacks = [
        injector.registration_request().unwrap(),
        Injector::security_mode_reject().unwrap(),
        Injector::authentication_failure().unwrap(),
        injector.forged_protected(2, &[0x7e, 0x00, 0x67, 0x01, 0x00, 0x00]),
        injector.junk(),
    ];
    for pdu in &attacks {
        let verdict = inject(&mut fleet, conn, pdu);
        assert_eq!(verdict, PduVerdict::Discarded, "{pdu:02x?}");
    }
    assert_eq!(
        fleet.network().state_of(ConnectionId(conn)),
        Some("registered")
    );
    let events = &fleet.network_events()[before..];
    assert!(
        events
            .iter()
            .all(|e| matches!(e, NetworkEvent::Discarded { .. })),
        "{events:?}"
    );
    // 18 bursts, each from idle: all delivered.
    for n in 0..18u8 {
        fleet.send_data(0, &[n; 20]).unwrap();
        fleet.advance(Duration::from_secs(20));
    }
    assert_eq!(sink.received().len(), 18);
    assert_eq!(fleet.device(0).state(), nido_ue::DeviceState::Active);
}

/// Finding 5: 3,000 replays of one captured SUCI (made to differ in turn,
/// so each replaces the procedure on the attacker's connection) issue at
/// most one new 5G-AKA vector, not 3,000; the subscription's SQN moves by
/// at most one, and the device still registers afterwards. A replacing
/// request goes through admission like a new one; SUCIs that fail
/// de-concealment are paid from a bucket.
#[test]
fn replayed_sucis_do_not_inflate_the_sqn_or_bypass_admission() {
    let (mut fleet, _sink, log) = active_fleet(51);
    let captured = captured_initial_request(&log);
    let supi: Supi = fleet
        .network()
        .supi_of(fleet.connection(0))
        .cloned()
        .unwrap();
    let sqn = |f: &Fleet| {
        f.network()
            .store()
            .subscription_by_supi(&supi)
            .unwrap()
            .unwrap()
            .sqn
    };
    let before = sqn(&fleet);
    let attacker = Injector::new(5).random_conn();
    for n in 0..3_000u32 {
        let pdu = Injector::vary_registration_request(&captured, (n % 2) as u8).unwrap();
        inject(&mut fleet, attacker, &pdu);
    }
    let after = sqn(&fleet);
    let rands: BTreeSet<[u8; 16]> = rands_on(&log, attacker).into_iter().collect();
    eprintln!(
        "3,000 replays: {} distinct challenges, SEQ {} -> {}",
        rands.len(),
        before.seq,
        after.seq
    );
    assert_eq!(rands.len(), 1, "one challenge, sent again");
    assert!(after.seq <= before.seq + 1, "{before:?} -> {after:?}");

    // The device registers again (a new connection): the challenge it gets
    // is the outstanding one or a new one, and it becomes active.
    let now = fleet.now();
    fleet.device_mut(0).power_on(now);
    fleet.pump_devices();
    let deadline = fleet.now() + Duration::from_secs(120);
    assert!(fleet.run_until(deadline, |f| f.device(0).state()
        == nido_ue::DeviceState::Active));
    assert!(sqn(&fleet).seq <= before.seq + 2);

    // Admission: at the limit, a different request on a connection already
    // in a procedure is refused like a new one (#22), not let in.
    fleet.advance(Duration::from_secs(60)); // the attacker's procedure abandoned
    assert_eq!(fleet.network().procedures(), 0);
    fleet.network_mut().set_admission(Admission {
        max_procedures: Some(1),
        seed: Some(1),
        ..Admission::default()
    });
    let other = Injector::new(6).random_conn();
    let first = Injector::vary_registration_request(&captured, 0).unwrap();
    let second = Injector::vary_registration_request(&captured, 1).unwrap();
    inject(&mut fleet, other, &first);
    assert_eq!(fleet.network().procedures(), 1);
    let seen = fleet.network_events().len();
    inject(&mut fleet, other, &second);
    assert!(
        fleet.network_events()[seen..]
            .iter()
            .any(|e| matches!(e, NetworkEvent::Congested { .. })),
        "{:?}",
        &fleet.network_events()[seen..]
    );
    assert!(fleet.network().procedures() <= 1);

    // SUCIs that do not de-conceal: at most the bucket's burst (100) of
    // ECDHs at one instant; the rest wait (#22) without one.
    fleet.network_mut().set_admission(Admission::default());
    let mut injector = Injector::new(7);
    let seen = fleet.network_events().len();
    for _ in 0..3_000 {
        let conn = injector.random_conn();
        let pdu = injector.registration_request().unwrap();
        inject(&mut fleet, conn, &pdu);
    }
    let refused = |cause: u8| {
        fleet.network_events()[seen..]
            .iter()
            .filter(|e| matches!(e, NetworkEvent::Refused { cause: c, .. } if *c == Cause(cause)))
            .count()
    };
    eprintln!(
        "3,000 junk SUCIs: {} de-concealed and failed (#9), {} refused before (#22)",
        refused(9),
        refused(22)
    );
    assert!(refused(9) <= 100, "{}", refused(9));
    assert_eq!(refused(9) + refused(22), 3_000);
}

/// K_AMF of a 5G-AKA run with `sub`'s K/OPc on the captured challenge, as
/// the UE derives it (TS 33.501 A.2, A.6, A.7): the test plays a UE that
/// holds the keys but breaks the rules.
fn ue_kamf(
    sub: &nido_net::Subscription,
    rand: &[u8; 16],
    autn: &[u8; 16],
) -> (nido_sec::ResStar, nido_sec::KAmf) {
    let snn = scenario::serving_network().snn;
    let m = Milenage::new(&sub.k, &sub.opc);
    let ue = nido_sec::aka::ue_respond(&m, &mut SqnWindow::default(), rand, autn, snn.as_bytes())
        .unwrap();
    let kseaf = nido_sec::kdf::kseaf(&ue.kausf, snn.as_bytes()).unwrap();
    let kamf = nido_net::ausf::kamf(&kseaf, &sub.supi, &ABBA).unwrap();
    (ue.res_star, kamf)
}

/// Finding 9 (network side): SECURITY MODE COMPLETE without the complete
/// REGISTRATION REQUEST in its NAS message container is refused (TS 24.501
/// §4.4.6, §5.4.2.3); once ciphering is on, an uplink message that is only
/// integrity protected is discarded (§4.4.5), even with a valid MAC.
#[test]
fn security_mode_complete_needs_the_request_and_uplink_must_be_ciphered() {
    let (mut fleet, sink, log) = active_fleet(91);
    let captured = captured_initial_request(&log);
    let supi = fleet
        .network()
        .supi_of(fleet.connection(0))
        .cloned()
        .unwrap();
    let sub = fleet
        .network()
        .store()
        .subscription_by_supi(&supi)
        .unwrap()
        .unwrap();

    // A UE with the keys on a new connection: REGISTRATION REQUEST,
    // AUTHENTICATION RESPONSE, then a COMPLETE without the container.
    let ue_conn = Injector::new(9).random_conn();
    let authenticate = |fleet: &mut Fleet, conn: u64| -> SecurityContext {
        assert_eq!(inject(fleet, conn, &captured), PduVerdict::Plain);
        let rand = *rands_on(&log, conn).last().unwrap();
        let autn = log
            .borrow()
            .iter()
            .rev()
            .filter(|(d, c, _)| *d == Direction::Downlink && *c == conn)
            .find_map(|(_, _, pdu)| match inbound(pdu) {
                Some(Inbound::AuthenticationRequest {
                    autn: Some(autn), ..
                }) => Some(autn),
                _ => None,
            })
            .unwrap();
        let (res, kamf) = ue_kamf(&sub, &rand, &autn);
        let response = build::authentication_response_res_star(res.expose())
            .encode()
            .unwrap();
        assert_eq!(inject(fleet, conn, &response), PduVerdict::Plain);
        assert_eq!(
            fleet.network().state_of(ConnectionId(conn)),
            Some("security mode")
        );
        let algorithms = fleet
            .network()
            .security_context(ConnectionId(conn))
            .unwrap()
            .algorithms();
        SecurityContext::new(&kamf, algorithms, 1, Role::Ue).unwrap()
    };
    let mut ue = authenticate(&mut fleet, ue_conn);
    let complete = build::security_mode_complete(None, None).unwrap();
    let pdu = ue
        .protect(&complete, Protection::IntegrityCipheredNewContext)
        .unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &pdu), PduVerdict::Verified);
    assert_eq!(
        fleet.network().state_of(ConnectionId(ue_conn)),
        None,
        "SECURITY MODE COMPLETE without the REGISTRATION REQUEST was accepted"
    );

    // The same UE doing it right gets in; then sends data integrity
    // protected but not ciphered: discarded, not delivered.
    let ue_conn = Injector::new(10).random_conn();
    let mut ue = authenticate(&mut fleet, ue_conn);
    let request = nido_nas::decode(&captured).unwrap();
    let complete = build::security_mode_complete(None, Some(&request)).unwrap();
    let pdu = ue
        .protect(&complete, Protection::IntegrityCipheredNewContext)
        .unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &pdu), PduVerdict::Verified);
    assert_eq!(
        fleet.network().state_of(ConnectionId(ue_conn)),
        Some("registration accept sent")
    );
    let complete = ue
        .protect(
            &build::registration_complete(),
            Protection::IntegrityCiphered,
        )
        .unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &complete), PduVerdict::Verified);
    assert_eq!(
        fleet.network().state_of(ConnectionId(ue_conn)),
        Some("registered")
    );
    let session = build::ul_nas_transport_pdu_session_establishment_request(
        &build::PduSessionEstablishmentRequestParams {
            psi: 1,
            pti: 1,
            session_type: build::PduSessionTypeValue::Unstructured,
            ssc_mode: None,
            dnn: Some("iot".into()),
            s_nssai: None,
            request_pvs_information: false,
        },
    )
    .unwrap();
    let pdu = ue.protect(&session, Protection::IntegrityCiphered).unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &pdu), PduVerdict::Verified);
    let delivered = sink.received().len();
    let data = build::ul_nas_transport_ciot_data(1, b"integrity only").unwrap();
    let pdu = ue.protect(&data, Protection::Integrity).unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &pdu), PduVerdict::Discarded);
    assert_eq!(
        sink.received().len(),
        delivered,
        "unciphered data was delivered"
    );
    // Ciphered, it passes.
    let pdu = ue.protect(&data, Protection::IntegrityCiphered).unwrap();
    assert_eq!(inject(&mut fleet, ue_conn, &pdu), PduVerdict::Verified);
    assert_eq!(sink.received().len(), delivered + 1);
}
