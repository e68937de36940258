//! A resynchronisation racing a delayed copy of the challenge it replaced
//! (issue #12: AUTS MAC-S failures under overload). The network sends
//! AUTHENTICATION REQUEST with RAND1 (and, on T3560, a copy of it); the
//! device's SQN is ahead, it answers with a synch failure and AUTS for
//! RAND1; the network resynchronises and sends RAND2. If a copy of the
//! RAND1 request reaches the device before RAND2 (a retransmission held
//! up on a loaded link), the device answers it with another synch failure,
//! again computed with RAND1 (TS 33.102 §6.3.3). The network must
//! recognise that AUTS as one for a challenge it already replaced and
//! discard it, not verify it against RAND2, fail MAC-S and end the
//! registration; the device's answer to RAND2 then completes it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use nido_nas::view::Inbound;
use nido_net::NetworkEvent;
use nido_pki::DeviceProfile;
use nido_sec::aka::HeSqn;
use nido_sim::adversary::{Injection, Mitm, Seen, Verdict};
use nido_sim::scenario::NetworkOptions;
use nido_sim::{Direction, Faults};
use nido_ue::DeviceState;

use common::{fleet, record, settle, world};

/// The RAND of a plain AUTHENTICATION REQUEST PDU.
fn rand_of(pdu: &[u8]) -> Option<[u8; 16]> {
    let message = nido_nas::decode(pdu).ok()?;
    match Inbound::read(&message).ok()? {
        Inbound::AuthenticationRequest { rand, .. } => rand,
        _ => None,
    }
}

#[test]
fn an_auts_for_a_replaced_challenge_is_discarded_and_registration_completes() {
    let world = world();
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &[DeviceProfile::standard(world.now)],
        Faults::NONE,
        12,
    );
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    fleet.advance(Duration::from_secs(30));

    // The home network forgets how far the SQN went: the next challenge's
    // SQN is behind the device's, which answers with a synch failure.
    let supi = fleet.device(0).subscription().unwrap().supi.clone();
    let mut sub = fleet
        .network()
        .store()
        .subscription_by_supi(&supi)
        .unwrap()
        .unwrap();
    sub.sqn = HeSqn::default();
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(sub)
        .unwrap();

    // On the path: the first AUTHENTICATION REQUEST passes and is kept;
    // the second (after the resynchronisation) is held back behind a copy
    // of the first, as a delayed retransmission would be.
    let rands = Rc::new(RefCell::new(Vec::new()));
    let seen_rands = rands.clone();
    let mut first: Option<(u64, Vec<u8>)> = None;
    let mut raced = false;
    fleet.set_adversary(Mitm::new(
        move |seen: &Seen, queue: &mut VecDeque<Injection>| {
            if seen.direction != Direction::Downlink {
                return Verdict::Deliver(seen.pdu.clone());
            }
            let Some(rand) = rand_of(&seen.pdu) else {
                return Verdict::Deliver(seen.pdu.clone());
            };
            seen_rands.borrow_mut().push(rand);
            match &first {
                None => {
                    first = Some((seen.conn, seen.pdu.clone()));
                    Verdict::Deliver(seen.pdu.clone())
                }
                Some((conn, copy)) if !raced && rand_of(copy) != Some(rand) => {
                    raced = true;
                    for pdu in [copy.clone(), seen.pdu.clone()] {
                        queue.push_back(Injection {
                            direction: Direction::Downlink,
                            conn: *conn,
                            pdu,
                        });
                    }
                    Verdict::Drop
                }
                Some(_) => Verdict::Deliver(seen.pdu.clone()),
            }
        },
    ));
    let log = record(&mut fleet);
    let events_before = fleet.network_events().len();

    let now = fleet.now();
    fleet.device_mut(0).power_on(now);
    fleet.pump_devices();
    let registered = |f: &nido_sim::Fleet| {
        f.network_events()[events_before..]
            .iter()
            .any(|e| matches!(e, NetworkEvent::Registered { .. }))
    };
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, registered));
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);

    // The race happened: two challenges (the copy of the first was the
    // adversary's, so it is not in the log of what entered the link), and
    // the device answered both copies of the first with a synch failure.
    let rands = rands.borrow();
    assert_eq!(rands.len(), 2, "{rands:?}");
    assert_ne!(rands[0], rands[1]);
    use Direction::{Downlink as D, Uplink as U};
    let log = log.borrow();
    assert_eq!(
        log[..6],
        [
            (U, "RegistrationRequest"),
            (D, "AuthenticationRequest"),  // RAND1
            (U, "AuthenticationFailure"),  // #21, AUTS for RAND1
            (D, "AuthenticationRequest"),  // RAND2, behind a copy of RAND1
            (U, "AuthenticationFailure"),  // #21, AUTS for RAND1 again
            (U, "AuthenticationResponse"), // RES* for RAND2
        ],
        "{log:?}"
    );
    // One resynchronisation, nothing refused, one registration attempt:
    // the stale AUTS was discarded, not taken for a forged one.
    let events = &fleet.network_events()[events_before..];
    let resyncs = events
        .iter()
        .filter(|e| matches!(e, NetworkEvent::Resynchronised { .. }))
        .count();
    assert_eq!(resyncs, 1, "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, NetworkEvent::Refused { .. })),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            NetworkEvent::Discarded { reason, .. } if reason.contains("earlier challenge")
        )),
        "{events:?}"
    );
    let requests = log
        .iter()
        .filter(|(d, m)| *d == U && *m == "RegistrationRequest")
        .count();
    assert_eq!(requests, 1, "{log:?}");
}
