//! Malformed NAS messages on the link, handled as TS 24.501 clause 7 has a
//! receiver handle them (issue #12 item 6):
//! - the AMF answers a plain REGISTRATION REQUEST whose mandatory IE is
//!   cut short with REGISTRATION REJECT #96 "invalid mandatory
//!   information" (§7.5.1), and one whose optional IE is cut short as if
//!   that IE were absent (§7.7.1), until SECURITY MODE COMPLETE shows the
//!   request was tampered with (§4.4.6);
//! - the device ignores an AUTHENTICATION REQUEST whose mandatory ABBA is
//!   cut short (§7.5.1), and processes one that carries a truncated
//!   optional IE without it (§7.7.1).
//!
//! A man in the middle rewrites the first such message; the rest of the
//! onboarding runs untouched, in simulated time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use nido_net::NetworkEvent;
use nido_sec::Cause;
use nido_sim::Direction;
use nido_sim::adversary::{Mitm, Verdict};
use nido_sim::scenario::NetworkOptions;
use nido_ue::{DeviceEvent, DeviceState};

use common::{one_device, settle, world};

/// Plain 5GMM message type of `pdu`, if it is plain 5GMM.
fn plain_type(pdu: &[u8]) -> Option<u8> {
    match pdu {
        [0x7e, sht, kind, ..] if sht & 0x0f == 0 => Some(*kind),
        _ => None,
    }
}

const REGISTRATION_REQUEST: u8 = 0x41;
const REGISTRATION_REJECT: u8 = 0x44;
const AUTHENTICATION_REQUEST: u8 = 0x56;

/// Every datagram delivered: (direction, octets).
type Log = Rc<RefCell<Vec<(Direction, Vec<u8>)>>>;

/// Every datagram (direction, octets delivered), and a man in the middle
/// that delivers `rewrite(pdu)` in place of the first one of `direction`
/// and plain message type `kind`.
fn tamper(
    direction: Direction,
    kind: u8,
    rewrite: impl Fn(&[u8]) -> Vec<u8> + 'static,
) -> (Mitm, Log) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink = log.clone();
    let mut done = false;
    let mitm = Mitm::new(move |seen, _| {
        let pdu = if !done && seen.direction == direction && plain_type(&seen.pdu) == Some(kind) {
            done = true;
            rewrite(&seen.pdu)
        } else {
            seen.pdu.clone()
        };
        sink.borrow_mut().push((seen.direction, pdu.clone()));
        Verdict::Deliver(pdu)
    });
    (mitm, log)
}

#[test]
fn a_registration_request_with_a_cut_mandatory_ie_gets_reject_96() {
    let world = world();
    let (mut fleet, _sink) = one_device(&world, &NetworkOptions::default(), 71);
    // Cut inside the 5GS mobile identity (octets 4.. are its length and value).
    let (mitm, log) = tamper(Direction::Uplink, REGISTRATION_REQUEST, |pdu| {
        pdu[..8].to_vec()
    });
    fleet.set_adversary(mitm);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    let log = log.borrow();
    let cut = log
        .iter()
        .position(|(d, p)| *d == Direction::Uplink && p.len() == 8)
        .expect("the cut request went up");
    let answer = log[cut + 1..]
        .iter()
        .find(|(d, _)| *d == Direction::Downlink)
        .map(|(_, p)| p.clone())
        .expect("an answer");
    // REGISTRATION REJECT, 5GMM cause #96.
    assert_eq!(
        plain_type(&answer),
        Some(REGISTRATION_REJECT),
        "{answer:02x?}"
    );
    assert_eq!(answer[3], 96, "{answer:02x?}");
    assert!(
        fleet.network_events().iter().any(|e| matches!(
            e,
            NetworkEvent::Refused { cause: Cause::INVALID_MANDATORY_INFORMATION, reason, .. } if reason.contains("5gs-mobile-identity")
        )),
        "{:?}",
        fleet.network_events()
    );
    // The device takes the reject as one and retries: it ends active.
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
}

#[test]
fn a_registration_request_with_a_cut_optional_ie_proceeds_without_it() {
    let world = world();
    let (mut fleet, _sink) = one_device(&world, &NetworkOptions::default(), 72);
    // A requested NSSAI (IEI 0x2f) whose length says 5 and that has 1 octet.
    let (mitm, log) = tamper(Direction::Uplink, REGISTRATION_REQUEST, |pdu| {
        [pdu, &[0x2f, 0x05, 0x01][..]].concat()
    });
    fleet.set_adversary(mitm);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let log = log.borrow();
    let cut = log
        .iter()
        .position(|(d, p)| *d == Direction::Uplink && p.ends_with(&[0x2f, 0x05, 0x01]))
        .expect("the tampered request went up");
    let answer = log[cut + 1..]
        .iter()
        .find(|(d, _)| *d == Direction::Downlink)
        .map(|(_, p)| p.clone())
        .expect("an answer");
    // Answered as the request without the IE is: authentication starts.
    assert_eq!(
        plain_type(&answer),
        Some(AUTHENTICATION_REQUEST),
        "{answer:02x?}"
    );
    // Nothing was discarded. The tampering itself shows at SECURITY MODE
    // COMPLETE, whose NAS message container holds the request as the device
    // sent it (§4.4.6): that registration is refused with #111, and the
    // device registers again, untouched.
    let events = fleet.network_events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, NetworkEvent::Discarded { .. })),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| match e {
            NetworkEvent::Refused { cause, reason, .. } =>
                *cause == nido_nas::Cause::PROTOCOL_ERROR_UNSPECIFIED && reason.contains("differs"),
            _ => true,
        }),
        "{events:?}"
    );
}

#[test]
fn the_device_ignores_an_authentication_request_with_a_cut_abba() {
    let world = world();
    let (mut fleet, _sink) = one_device(&world, &NetworkOptions::default(), 73);
    // 7e 00 56 | ngKSI | ABBA: length 2 and one octet of it.
    let (mitm, log) = tamper(Direction::Downlink, AUTHENTICATION_REQUEST, |pdu| {
        pdu[..6].to_vec()
    });
    fleet.set_adversary(mitm);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    let discarded: Vec<_> = fleet
        .device_events(0)
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::Discarded { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        discarded
            .iter()
            .any(|r| r.contains("abba at offset") && r.contains("malformed NAS PDU")),
        "{discarded:?}"
    );
    // Nothing went up in answer to it: the next uplink PDU follows the
    // network's retransmission (T3560, §5.4.1.3.7), which the device answers.
    let log = log.borrow();
    let cut = log
        .iter()
        .position(|(d, p)| *d == Direction::Downlink && p.len() == 6)
        .expect("the cut request went down");
    assert_eq!(
        log[cut + 1].0,
        Direction::Downlink,
        "the device answered the cut request: {:02x?}",
        log[cut + 1].1
    );
    assert_eq!(plain_type(&log[cut + 1].1), Some(AUTHENTICATION_REQUEST));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
}

#[test]
fn the_device_drops_a_cut_optional_ie_and_authenticates() {
    let world = world();
    let (mut fleet, _sink) = one_device(&world, &NetworkOptions::default(), 74);
    // An authentication parameter RAND (IEI 0x21, 16 octets) cut to 2.
    let (mitm, log) = tamper(Direction::Downlink, AUTHENTICATION_REQUEST, |pdu| {
        [pdu, &[0x21, 0x01, 0x02][..]].concat()
    });
    fleet.set_adversary(mitm);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let log = log.borrow();
    let cut = log
        .iter()
        .position(|(d, p)| *d == Direction::Downlink && p.ends_with(&[0x21, 0x01, 0x02]))
        .expect("the tampered request went down");
    // Answered at once, as the request without the IE.
    assert_eq!(log[cut + 1].0, Direction::Uplink);
    assert!(
        !fleet
            .device_events(0)
            .iter()
            .any(|e| matches!(e, DeviceEvent::Discarded { .. })),
        "{:?}",
        fleet.device_events(0)
    );
}
