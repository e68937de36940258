//! Negative paths through the whole system, in memory (design doc phases
//! A-D): every certificate refusal of the PKI with its 5GMM cause, 5G-AKA
//! failing either way (a wrong RES*, a network that cannot prove itself),
//! SQN resynchronisation, NAS replay and integrity failures in both
//! directions, messages in the wrong state, the onboarding timer (#93),
//! the onboarding restrictions (only the PVS is reachable), a tampered
//! credential package, a cloned identity and a claim-required policy.
//!
//! Each test checks the cause or reaction the device sees AND that the
//! network kept nothing of what it refused: no UE context for a refused
//! connection, no subscription created or changed, nothing delivered to
//! the application.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_eap::fixtures::Onboarding;
use nido_nas::build::{
    self, CiotSmallDataDownlinkDataExpected, GmmCause, KeySetIdentifier,
    PduSessionEstablishmentRequestParams, PduSessionTypeValue, RegistrationAcceptParams,
};
use nido_nas::view::{Inbound, Transport};
use nido_net::pvs::ClaimPolicy;
use nido_net::{ConnectionId, MemorySink, NetworkEvent, Owner, Subscription, SubscriptionState};
use nido_pki::{DeviceProfile, Manufacturer, RefusalReason, Revoked};
use nido_prov::ProvisioningResponse;
use nido_prov::coap::{self, ResponseBody, Token};
use nido_prov::package::{Binding, SealedPackage};
use nido_se::{Installed, MemorySe, SeAkaError, SeError, SecureElement};
use nido_sec::aka::{HeSqn, UeAka};
use nido_sec::{Cause, K, KProv, ResStar, SqnWindow};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Faults, Fleet, connection_id};
use nido_ue::{DeviceEvent, DeviceState, RejectMessage};

use common::{
    connections, device_with_se, fleet, one_device, record, refusals, rejections, settle, world,
};

const PAYLOAD: &[u8] = b"t=21.5C;h=40%;batt=3.61V";
const HOUR: Duration = Duration::from_secs(3600);

/// (direction, plain message name) of every PDU ([`record`]).
type Log = Rc<RefCell<Vec<(Direction, &'static str)>>>;
/// (connection, PDU) of the PDUs [`capture`] keeps.
type Captured = Rc<RefCell<Vec<(ConnectionId, Vec<u8>)>>>;

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// The identities the network's refusals of device `i` named: (the
/// authenticated one, the one a refused certificate presented).
fn refused_identities(
    fleet: &Fleet,
    i: usize,
) -> Vec<(Option<nido_pki::DeviceId>, Option<nido_pki::DeviceId>)> {
    let conns = connections(fleet, i);
    fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::Refused {
                conn,
                device,
                presented,
                ..
            } if conns.contains(conn) => Some((device.clone(), presented.clone())),
            _ => None,
        })
        .collect()
}

/// Why the network discarded PDUs, from its `from`-th event on.
fn network_discards(fleet: &Fleet, from: usize) -> Vec<String> {
    fleet.network_events()[from..]
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::Discarded { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Why device `i` discarded PDUs, from its `from`-th event on.
fn device_discards(fleet: &Fleet, i: usize, from: usize) -> Vec<String> {
    fleet.device_events(i)[from..]
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::Discarded { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// How many network events match.
fn count(fleet: &Fleet, matches: impl Fn(&NetworkEvent) -> bool) -> usize {
    fleet.network_events().iter().filter(|e| matches(e)).count()
}

/// How many events of device `i` match.
fn count_device(fleet: &Fleet, i: usize, matches: impl Fn(&DeviceEvent) -> bool) -> usize {
    fleet.device_events(i).iter().filter(|e| matches(e)).count()
}

/// The subscription of device `i` (by its serial: every device of these
/// fleets comes from one manufacturer or is refused).
fn subscription(fleet: &Fleet, i: usize) -> Subscription {
    fleet
        .network()
        .store()
        .subscriptions()
        .unwrap()
        .into_iter()
        .find(|s| s.device.serial() == fleet.device(i).serial())
        .expect("a subscription")
}

/// The network kept nothing of device `i`: no context on any connection it
/// used, no subscription.
fn assert_forgotten(fleet: &Fleet, i: usize) {
    for conn in connections(fleet, i) {
        assert_eq!(fleet.network().state_of(conn), None, "context on {conn}");
    }
    let serial = fleet.device(i).serial();
    assert!(
        fleet
            .network()
            .store()
            .subscriptions()
            .unwrap()
            .iter()
            .all(|s| s.device.serial() != serial),
        "subscription of {serial}"
    );
}

/// No refused connection of device `i` kept a context.
fn assert_refused_connections_forgotten(fleet: &Fleet, i: usize) {
    for (conn, _, _) in refusals(fleet, i) {
        assert_eq!(fleet.network().state_of(conn), None, "context on {conn}");
    }
}

/// The device's reaction to a reject cause (TS 24.501 §5.5.1.2.5): a
/// refusal before security comes unprotected, so even #3 and #75 are
/// first met with T3247 (§5.3.20.2), a back-off.
fn reaction(cause: Cause) -> DeviceState {
    use nido_sec::Cause;
    match cause {
        Cause::ILLEGAL_UE
        | Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
        | Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN => DeviceState::BackingOff,
        other => panic!("no certificate refusal maps to {other}"),
    }
}

/// `pdu` with the lowest bit of its last octet flipped (inside the MAC's
/// coverage of a protected PDU).
fn flipped(pdu: &[u8]) -> Vec<u8> {
    let mut pdu = pdu.to_vec();
    *pdu.last_mut().unwrap() ^= 0x01;
    pdu
}

/// Keeps every PDU named `message` going `direction`: (connection, PDU).
fn capture(fleet: &mut Fleet, direction: Direction, message: &'static str) -> Captured {
    let kept = Rc::new(RefCell::new(Vec::new()));
    let sink = kept.clone();
    fleet.set_trace(move |r| {
        if r.direction == direction && r.message == message {
            sink.borrow_mut()
                .push((ConnectionId(r.conn), r.pdu.to_vec()));
        }
    });
    kept
}

/// One standard device, onboarded, registered with its data session, idle.
fn active(options: &NetworkOptions, seed: u64) -> (Fleet, MemorySink) {
    let world = world();
    let (mut fleet, sink) = fleet(
        &world,
        options,
        &[DeviceProfile::standard(world.now)],
        Faults::NONE,
        seed,
    );
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    fleet.advance(Duration::from_secs(30)); // the data session; then idle
    assert!(!fleet.device(0).connected(fleet.now()));
    (fleet, sink)
}

/// Powers device `i` on again (it registers with its subscription).
fn power_on_again(fleet: &mut Fleet, i: usize) {
    let now = fleet.now();
    fleet.device_mut(i).power_on(now);
    fleet.pump_devices();
}

// ---------------------------------------------------------------------
// Phase A: certificate refusals, clones, claim policy
// ---------------------------------------------------------------------

#[test]
fn every_certificate_refusal_is_rejected_with_its_cause_and_leaves_nothing() {
    let now = SystemTime::now();
    let mut revoked = None;
    let world = Onboarding::with_trust("Acme Sensors", now, |m, trust| {
        let id = m.issue_device(&m.device_serial(101), &DeviceProfile::standard(now))?;
        let entry = Revoked::of(&id, now - Duration::from_secs(60));
        let crl = m.crl(
            &[entry],
            now - Duration::from_secs(30),
            now + Duration::from_secs(86_400),
            1,
        )?;
        trust.add_crl(m.name(), &crl, m.issuing_der())?;
        trust.block(&nido_pki::DeviceId::new(m.name(), &m.device_serial(102))?);
        revoked = Some(id);
        Ok(())
    })
    .unwrap();
    let m = &world.manufacturer;
    let issue =
        |n: u64, profile: DeviceProfile| m.issue_device(&m.device_serial(n), &profile).unwrap();
    // Another manufacturer's device, configured with the trusted DCS realm
    // and root so it reaches the DCS and trusts it.
    let rogue = Manufacturer::generate("Rogue Devices", now).unwrap();
    let stranger = rogue
        .issue_device(&rogue.device_serial(1), &DeviceProfile::standard(now))
        .unwrap();
    let cases = [
        (
            issue(1, DeviceProfile::expired(now)),
            RefusalReason::Expired,
        ),
        (
            issue(2, DeviceProfile::not_yet_valid(now)),
            RefusalReason::NotYetValid,
        ),
        (
            issue(3, DeviceProfile::server_auth_only(now)),
            RefusalReason::ExtendedKeyUsage,
        ),
        (
            issue(4, DeviceProfile::without_digital_signature(now)),
            RefusalReason::KeyUsage,
        ),
        // The manufacturer's policy requires a hardwareModuleName.
        (
            issue(5, DeviceProfile::without_hardware_module_name(now)),
            RefusalReason::Policy,
        ),
        (revoked.unwrap(), RefusalReason::Revoked),
        (
            issue(102, DeviceProfile::standard(now)),
            RefusalReason::Blocked,
        ),
        (stranger, RefusalReason::UnknownManufacturer),
    ];
    let (mut fleet, sink) = fleet(&world, &NetworkOptions::default(), &[], Faults::NONE, 1);
    for (id, _) in &cases {
        fleet.add_device(scenario::device(&world, id, false).unwrap());
    }

    let all: Vec<usize> = (0..cases.len()).collect();
    for &i in &all {
        fleet.power_on(i);
    }
    assert!(settle(&mut fleet, &all));

    for (i, (_, reason)) in cases.iter().enumerate() {
        let cause = reason.gmm_cause();
        assert_eq!(
            rejections(&fleet, i),
            [(RejectMessage::RegistrationReject, cause)],
            "device {i} ({reason})"
        );
        assert_eq!(
            fleet.device(i).state(),
            reaction(cause),
            "device {i} ({reason})"
        );
        let refused = refusals(&fleet, i);
        assert_eq!(refused.len(), 1, "device {i} ({reason}): {refused:?}");
        let (_, network_cause, why) = &refused[0];
        assert_eq!(*network_cause, cause, "device {i}");
        assert!(why.contains(reason.as_str()), "device {i}: {why}");
        // A verdict about the device (revoked, blocked, its manufacturer's
        // policy) names the identity its certificate presented, never as
        // authenticated; a certificate whose chain or form failed names
        // nothing.
        let presented = match reason {
            RefusalReason::Policy => Some(m.device_serial(5)),
            RefusalReason::Revoked => Some(m.device_serial(101)),
            RefusalReason::Blocked => Some(m.device_serial(102)),
            _ => None,
        }
        .map(|serial| nido_pki::DeviceId::new(m.name(), &serial).unwrap());
        assert_eq!(
            refused_identities(&fleet, i),
            [(None, presented)],
            "device {i} ({reason})"
        );
        assert_forgotten(&fleet, i);
    }
    assert_eq!(fleet.network().contexts(), 0);
    assert!(fleet.network().store().subscriptions().unwrap().is_empty());
    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::DeviceAuthenticated { .. }
        )),
        0
    );
    assert!(sink.received().is_empty());
}

#[test]
fn a_cloned_identity_onboarding_at_the_same_time_is_rejected_with_74() {
    let world = world();
    let (mut fleet, sink) = fleet(&world, &NetworkOptions::default(), &[], Faults::NONE, 11);
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    for _ in 0..2 {
        fleet.add_device(scenario::device(&world, &id, false).unwrap());
    }
    fleet.power_on(0);
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[0, 1]));

    let active: Vec<usize> = (0..2)
        .filter(|&i| fleet.device(i).state() == DeviceState::Active)
        .collect();
    assert_eq!(active.len(), 1, "exactly one of the twins is active");
    let clone = 1 - active[0];
    assert_eq!(
        rejections(&fleet, clone),
        [(
            RejectMessage::RegistrationReject,
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
        )]
    );
    assert_eq!(fleet.device(clone).state(), DeviceState::BackingOff);
    let refused = refusals(&fleet, clone);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].1, Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN);
    assert!(fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::CloneSuspected { device, refused: r, .. }
            if device.serial() == id.serial && *r == refused[0].0
    )));
    assert_refused_connections_forgotten(&fleet, clone);
    assert!(fleet.device(clone).subscription().is_none());

    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].device.serial(), id.serial);
    assert_eq!(subscriptions[0].state, SubscriptionState::Active);
    assert!(sink.received().is_empty());
}

/// A clone that shows up after its twin is active (no overlap for the
/// clone window to catch) is refused with #74 at every try and changes
/// nothing; the twin keeps working. Once the operator releases the
/// subscription (the device was reset, say), the next onboarding of the
/// identity gets a new K, and the old one stops working.
#[test]
fn a_clone_after_its_twin_is_active_gets_74_until_the_operator_releases() {
    let world = world();
    let (mut fleet, sink) = fleet(&world, &NetworkOptions::default(), &[], Faults::NONE, 12);
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    for _ in 0..2 {
        fleet.add_device(scenario::device(&world, &id, false).unwrap());
    }
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let before = subscription(&fleet, 0);
    assert_eq!(before.state, SubscriptionState::Active);

    // The clone, an hour later, tries three times. The network cannot
    // tell it from the device after a factory reset until the provisioning
    // request, where a reset device presents its erasure receipt: without
    // one, the restricted onboarding registration ends in a protected
    // DEREGISTRATION REQUEST #74, before any package.
    fleet.advance(HOUR);
    fleet.power_on(1);
    for attempt in 1..=3 {
        let deadline = fleet.now() + HOUR;
        assert!(fleet.run_until(deadline, |f| rejections(f, 1).len() >= attempt));
    }
    assert_eq!(
        rejections(&fleet, 1),
        [(
            RejectMessage::DeregistrationRequest,
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
        ); 3]
    );
    let refused = refusals(&fleet, 1);
    assert!(
        refused.iter().all(
            |(_, cause, why)| *cause == Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
                && why.contains("already holds a subscription (active)")
        ),
        "{refused:?}"
    );
    assert!(fleet.device(1).subscription().is_none());
    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::PackageDelivered { .. }
        )),
        1
    );
    let after = subscription(&fleet, 0);
    assert!(after.k == before.k && after.package_id == before.package_id);
    assert_eq!(after.state, SubscriptionState::Active);
    // The twin still sends its bursts.
    let delivered = sink.received().len();
    fleet.send_data(0, PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    assert_eq!(sink.received().len(), delivered + 1);

    // The operator releases the subscription; the next try of the other
    // device (its back-off doubles: at most 30 min) re-provisions it.
    let mut released = subscription(&fleet, 0);
    released.state = SubscriptionState::Released;
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(released)
        .unwrap();
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| f.device(1).state() == DeviceState::Active));
    let renewed = subscription(&fleet, 1);
    assert_eq!(renewed.supi, before.supi, "same subscription, in place");
    assert!(renewed.k != before.k, "a new K");
    assert_eq!(renewed.state, SubscriptionState::Active);
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    assert!(fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::PackageDelivered { reprovisioned: true, device, .. } if device.serial() == id.serial
    )));
}

#[test]
fn require_claim_rejects_an_unclaimed_device_with_75_and_admits_a_claimed_one() {
    let world = world();
    let options = NetworkOptions {
        policy: ClaimPolicy::RequireClaim,
        ..NetworkOptions::default()
    };
    let standard = DeviceProfile::standard(world.now);
    let (mut fleet, sink) = fleet(
        &world,
        &options,
        &[standard.clone(), standard],
        Faults::NONE,
        12,
    );
    let claimed = world.device_id(fleet.device(1).serial()).unwrap();
    let store = fleet.network_mut().store_mut();
    store
        .put_owner(Owner {
            id: "acme-farms".into(),
            name: "Acme Farms".into(),
            credentials: Vec::new(),
        })
        .unwrap();
    store.add_claimable(&claimed, "claim-hash-1").unwrap();
    assert_eq!(store.claim("acme-farms", "claim-hash-1").unwrap(), claimed);

    fleet.power_on(0);
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[0, 1]));

    // The unclaimed device: #75 (unprotected: T3247), nothing kept.
    let unclaimed = fleet.device(0).serial().to_owned();
    assert_eq!(
        rejections(&fleet, 0),
        [(
            RejectMessage::RegistrationReject,
            Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN
        )]
    );
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    assert!(fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::Refused { cause: Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN, device: Some(d), .. } if d.serial() == unclaimed
    )));
    assert_forgotten(&fleet, 0);

    // The claimed one joins its owner.
    assert_eq!(fleet.device(1).state(), DeviceState::Active);
    assert!(rejections(&fleet, 1).is_empty());
    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].device, claimed);
    assert_eq!(subscriptions[0].owner.as_deref(), Some("acme-farms"));
    assert!(sink.received().is_empty());
}

// ---------------------------------------------------------------------
// Phase C: 5G-AKA
// ---------------------------------------------------------------------

/// A secure element that answers every 5G-AKA challenge with one bit of
/// RES* flipped: a device that passes the network's MAC check but cannot
/// prove it holds K.
struct WrongResStar(MemorySe);

impl SecureElement for WrongResStar {
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey> {
        self.0.idevid_signer()
    }

    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError> {
        self.0.new_provisioning_key()
    }

    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError> {
        self.0.install_package(sealed, binding, k_prov)
    }

    fn has_subscription(&self) -> bool {
        self.0.has_subscription()
    }

    fn erase_subscription(&mut self) {
        self.0.erase_subscription();
    }

    fn reset(
        &mut self,
        serial: &str,
        erased_at_unix: u64,
    ) -> Result<nido_prov::ErasureReceipt, SeError> {
        self.0.reset(serial, erased_at_unix)
    }

    fn erasure_receipt(&self) -> Option<nido_prov::ErasureReceipt> {
        self.0.erasure_receipt()
    }

    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError> {
        let mut aka = self.0.authenticate(rand, autn, snn)?;
        let mut res = *aka.res_star.expose();
        res[0] ^= 0x01;
        aka.res_star = ResStar::new(res);
        Ok(aka)
    }

    fn sqn_window(&self) -> Option<SqnWindow> {
        self.0.sqn_window()
    }

    fn installed(&self) -> Option<nido_prov::PublicPart> {
        self.0.installed()
    }
}

#[test]
fn a_wrong_res_star_gets_authentication_reject_and_the_subscription_stays_provisioned() {
    let world = world();
    let (mut fleet, sink) = fleet(&world, &NetworkOptions::default(), &[], Faults::NONE, 2);
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    fleet.add_device(device_with_se(&world, &id, |se| Box::new(WrongResStar(se))));
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));

    assert!(rejections(&fleet, 0).is_empty());
    assert_eq!(
        count_device(&fleet, 0, |e| *e == DeviceEvent::AuthenticationRejected),
        1
    );
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    let refused = refusals(&fleet, 0);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].2.contains("5G-AKA"), "{}", refused[0].2);
    assert_refused_connections_forgotten(&fleet, 0);
    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::Authenticated { .. } | NetworkEvent::Registered { .. }
        )),
        0
    );
    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].state, SubscriptionState::Provisioned);
    assert!(sink.received().is_empty());
}

/// An active device whose subscription the network then holds with
/// another K (a network that is not the one the device was provisioned
/// by), powered on again and run until it gave up; the trace log of that
/// run and the first connection it used.
fn registered_against_another_k() -> (Fleet, MemorySink, Log, u32) {
    let (mut fleet, sink) = active(&NetworkOptions::default(), 3);
    let mut forged = subscription(&fleet, 0);
    forged.k = K::new([0x5a; 16]);
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(forged.clone())
        .unwrap();
    let log = record(&mut fleet);
    let authenticated = count(&fleet, |e| matches!(e, NetworkEvent::Authenticated { .. }));

    power_on_again(&mut fleet, 0);
    let first = fleet.device(0).connection();
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| !refusals(f, 0).is_empty()));
    // The first challenge: #20, the network is not authentic.
    assert_eq!(refusals(&fleet, 0)[0].1, Cause::MAC_FAILURE);
    assert!(
        fleet
            .device_events(0)
            .contains(&DeviceEvent::NetworkNotAuthentic),
        "{:?}",
        fleet.device_events(0)
    );
    assert_refused_connections_forgotten(&fleet, 0);

    assert!(settle(&mut fleet, &[0]));
    // The last AUTHENTICATION FAILURE is still on the link when the device
    // starts backing off.
    fleet.advance(Duration::from_secs(1));
    assert_eq!(
        count(&fleet, |e| matches!(e, NetworkEvent::Authenticated { .. })),
        authenticated
    );
    let after = subscription(&fleet, 0);
    assert_eq!(after.state, SubscriptionState::Active);
    assert_eq!(after.k.fingerprint(), forged.k.fingerprint());
    assert!(sink.received().is_empty());
    (fleet, sink, log, first)
}

/// How many uplink PDUs named `name` the log holds.
fn uplink(log: &[(Direction, &str)], name: &str) -> usize {
    log.iter()
        .filter(|(d, m)| *d == Direction::Uplink && *m == name)
        .count()
}

#[test]
fn a_network_with_another_k_fails_the_mac_check_and_never_gets_res_star() {
    let (fleet, _sink, log, _) = registered_against_another_k();
    // After three such challenges in a row the device backs off (TS 24.501
    // §5.4.1.3.7); it never answered one with RES*.
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    assert_eq!(
        count_device(&fleet, 0, |e| *e == DeviceEvent::NetworkNotAuthentic),
        3
    );
    assert_eq!(uplink(&log.borrow(), "AuthenticationResponse"), 0);
    let refused = refusals(&fleet, 0);
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|(_, cause, _)| *cause == Cause::MAC_FAILURE),
        "{refused:?}"
    );
    assert_refused_connections_forgotten(&fleet, 0);
}

#[test]

fn every_mac_failure_is_answered_with_authentication_failure_20() {
    let (fleet, _sink, log, first) = registered_against_another_k();
    assert_eq!(uplink(&log.borrow(), "AuthenticationFailure"), 3);
    let refused = refusals(&fleet, 0);
    assert_eq!(refused.len(), 3, "{refused:?}");
    // The network kept no context of any of the three attempts.
    for g in first..=fleet.device(0).connection() {
        let conn = ConnectionId(connection_id(0, g));
        assert_eq!(fleet.network().state_of(conn), None, "context on {conn}");
    }
}

#[test]
fn an_sqn_out_of_range_is_resynchronised_and_registration_succeeds() {
    let (mut fleet, sink) = active(&NetworkOptions::default(), 4);
    let mut sub = subscription(&fleet, 0);
    sub.sqn = HeSqn::default();
    fleet
        .network_mut()
        .store_mut()
        .put_subscription(sub.clone())
        .unwrap();
    let log = record(&mut fleet);
    let registered = |f: &Fleet| count(f, |e| matches!(e, NetworkEvent::Registered { .. }));
    let before = registered(&fleet);

    power_on_again(&mut fleet, 0);
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| registered(f) > before));
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);

    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::Resynchronised { supi } if *supi == sub.supi
        )),
        1
    );
    use Direction::{Downlink as D, Uplink as U};
    assert_eq!(
        log.borrow()[..5],
        [
            (U, "RegistrationRequest"),
            (D, "AuthenticationRequest"),
            (U, "AuthenticationFailure"), // #21 with AUTS
            (D, "AuthenticationRequest"),
            (U, "AuthenticationResponse"),
        ]
    );
    assert!(refusals(&fleet, 0).is_empty());
    assert_eq!(
        count_device(&fleet, 0, |e| *e == DeviceEvent::NetworkNotAuthentic),
        0
    );
    let after = subscription(&fleet, 0);
    assert_eq!(after.state, SubscriptionState::Active);
    assert!(after.sqn.seq > 1, "{:?}", after.sqn);
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    assert!(sink.received().is_empty());
}

// ---------------------------------------------------------------------
// NAS security: replay, integrity
// ---------------------------------------------------------------------

#[test]
fn a_replayed_control_plane_service_request_is_discarded_as_a_replay() {
    let (mut fleet, sink) = active(&NetworkOptions::default(), 5);
    let sent = capture(&mut fleet, Direction::Uplink, "ControlPlaneServiceRequest");
    fleet.send_data(0, PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    assert_eq!(sink.received().len(), 1);
    let (conn, pdu) = sent.borrow()[0].clone();
    let state = fleet.network().state_of(conn);
    let counts = fleet.network().security_context(conn).unwrap().counts();
    let from = fleet.network_events().len();

    let now = fleet.now();
    fleet.network_mut().handle_pdu(now, conn, &pdu);
    fleet.pump();

    let discards = network_discards(&fleet, from);
    assert_eq!(discards.len(), 1, "{discards:?}");
    assert!(discards[0].contains("replay"), "{}", discards[0]);
    assert_eq!(fleet.network_events().len(), from + 1);
    assert_eq!(fleet.network().state_of(conn), state);
    assert_eq!(
        fleet.network().security_context(conn).unwrap().counts(),
        counts
    );
    assert_eq!(sink.received().len(), 1, "delivered once");
}

#[test]
fn an_uplink_pdu_with_a_bad_mac_is_discarded_and_changes_nothing() {
    let (mut fleet, sink) = active(&NetworkOptions::default(), 6);
    let conn = fleet.connection(0);
    let now = fleet.now();
    let burst = build::ul_nas_transport_ciot_data(1, PAYLOAD).unwrap();
    fleet.device_mut(0).send_raw(now, &burst);
    let genuine = fleet.device_mut(0).poll_transmit().unwrap().pdu;
    let state = fleet.network().state_of(conn);
    let counts = fleet.network().security_context(conn).unwrap().counts();
    let from = fleet.network_events().len();

    fleet
        .network_mut()
        .handle_pdu(now, conn, &flipped(&genuine));
    fleet.pump();
    let discards = network_discards(&fleet, from);
    assert_eq!(discards.len(), 1, "{discards:?}");
    assert!(discards[0].contains("MAC"), "{}", discards[0]);
    assert_eq!(fleet.network_events().len(), from + 1);
    assert_eq!(fleet.network().state_of(conn), state);
    assert_eq!(
        fleet.network().security_context(conn).unwrap().counts(),
        counts
    );
    assert!(sink.received().is_empty());

    // The same PDU unaltered is accepted: only the flipped bit was wrong.
    fleet.network_mut().handle_pdu(now, conn, &genuine);
    fleet.pump();
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].data, PAYLOAD);
}

#[test]
fn a_downlink_pdu_with_a_bad_mac_is_discarded_by_the_device() {
    let (mut fleet, _sink) = active(&NetworkOptions::default(), 7);
    let conn = fleet.connection(0);
    fleet
        .network_mut()
        .send_downlink_data(conn, b"set-interval=60")
        .unwrap();
    let genuine = fleet.network_mut().poll_transmit().unwrap().pdu;
    let counts = fleet.device(0).security_context().unwrap().counts();
    let from = fleet.device_events(0).len();

    let now = fleet.now();
    fleet.device_mut(0).handle_pdu(now, &flipped(&genuine));
    assert!(fleet.device_mut(0).poll_transmit().is_none());
    fleet.pump_devices();
    let discards = device_discards(&fleet, 0, from);
    assert_eq!(discards.len(), 1, "{discards:?}");
    assert!(discards[0].contains("MAC"), "{}", discards[0]);
    assert_eq!(fleet.device_events(0).len(), from + 1);
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(fleet.device(0).security_context().unwrap().counts(), counts);

    // The same PDU unaltered is delivered.
    fleet.device_mut(0).handle_pdu(now, &genuine);
    fleet.pump_devices();
    assert_eq!(
        fleet.device_events(0)[from + 1..],
        [DeviceEvent::Downlink {
            psi: 1,
            data: b"set-interval=60".to_vec()
        }]
    );
}

// ---------------------------------------------------------------------
// Messages in the wrong state
// ---------------------------------------------------------------------

#[test]
fn plain_messages_for_an_authenticating_connection_are_discarded_by_the_network() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 8);
    fleet.power_on(0);
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| {
        f.network().state_of(f.connection(0)) == Some("authenticating")
    }));
    let conn = fleet.connection(0);
    let from = fleet.network_events().len();

    let now = fleet.now();
    for message in [
        build::registration_complete(),
        build::ul_nas_transport_ciot_data(1, PAYLOAD).unwrap(),
    ] {
        fleet
            .network_mut()
            .handle_pdu(now, conn, &message.encode().unwrap());
    }
    fleet.pump();
    let discards = network_discards(&fleet, from);
    assert_eq!(discards.len(), 2, "{discards:?}");
    assert!(
        discards.iter().all(|d| d.contains("not accepted")),
        "{discards:?}"
    );
    assert_eq!(fleet.network_events().len(), from + 2);
    assert_eq!(fleet.network().state_of(conn), Some("authenticating"));

    // The onboarding goes on as if nothing happened.
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    assert!(sink.received().is_empty());
}

/// Feeds `pdu` to the active device 0 and checks it was discarded without
/// an answer or any change; returns the discard reason.
fn discarded_by_active_device(fleet: &mut Fleet, pdu: &[u8]) -> String {
    let counts = fleet.device(0).security_context().unwrap().counts();
    let connection = fleet.device(0).connection();
    let from = fleet.device_events(0).len();
    let now = fleet.now();
    fleet.device_mut(0).handle_pdu(now, pdu);
    assert!(fleet.device_mut(0).poll_transmit().is_none(), "no answer");
    fleet.pump_devices();
    let discards = device_discards(fleet, 0, from);
    assert_eq!(discards.len(), 1, "{:?}", &fleet.device_events(0)[from..]);
    assert_eq!(fleet.device_events(0).len(), from + 1);
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(fleet.device(0).connection(), connection);
    assert_eq!(fleet.device(0).security_context().unwrap().counts(), counts);
    discards[0].clone()
}

#[test]
fn plain_messages_out_of_state_are_discarded_by_an_active_device() {
    let (mut fleet, _sink) = active(&NetworkOptions::default(), 9);
    let accept = build::registration_accept(&RegistrationAcceptParams {
        guti: None,
        tai_list: None,
        allowed_nssai: Vec::new(),
        t3512_seconds: None,
        cp_ciot: true,
    })
    .unwrap();
    let reason = discarded_by_active_device(&mut fleet, &accept.encode().unwrap());
    assert!(reason.contains("without integrity protection"), "{reason}");

    // A forged network deregistration (#93) without integrity protection.
    let deregistration = build::deregistration_request_onboarding_terminated();
    let reason = discarded_by_active_device(&mut fleet, &deregistration.encode().unwrap());
    assert!(reason.contains("without integrity protection"), "{reason}");

    // A REGISTRATION REJECT outside a registration.
    let reject = build::registration_reject(GmmCause::IllegalUe, None).unwrap();
    let reason = discarded_by_active_device(&mut fleet, &reject.encode().unwrap());
    assert!(reason.contains("outside a registration"), "{reason}");
}

#[test]

fn a_plain_authentication_reject_outside_an_authentication_is_discarded() {
    let (mut fleet, _sink) = active(&NetworkOptions::default(), 10);
    let reject = build::authentication_reject(None).unwrap();
    discarded_by_active_device(&mut fleet, &reject.encode().unwrap());
}

// ---------------------------------------------------------------------
// Phase A/B: onboarding timer, restrictions, tampered package
// ---------------------------------------------------------------------

/// A network with a 2 s onboarding timer whose DL NAS TRANSPORTs are
/// dropped while the returned flag is set (so the device stays registered
/// for onboarding without a PDU session), one standard device powered on,
/// run until the onboarding timer expired. Returns the flag, the trace log
/// and the expired connection with the fleet and its sink.
fn onboarding_timer_expired() -> (Fleet, MemorySink, Rc<Cell<bool>>, Log, ConnectionId) {
    let world = world();
    let options = NetworkOptions {
        onboarding_timer: Duration::from_secs(2),
        ..NetworkOptions::default()
    };
    let (mut fleet, sink) = one_device(&world, &options, 13);
    let drop_transport = Rc::new(Cell::new(true));
    let flag = drop_transport.clone();
    fleet.set_downlink_filter(move |t| !(flag.get() && t.message == "DlNasTransport"));
    let log = record(&mut fleet);
    fleet.power_on(0);
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| {
        count(f, |e| {
            matches!(e, NetworkEvent::OnboardingTimerExpired { .. })
        }) > 0
    }));
    let expired = fleet
        .network_events()
        .iter()
        .find_map(|e| match e {
            NetworkEvent::OnboardingTimerExpired { conn } => Some(*conn),
            _ => None,
        })
        .unwrap();
    (fleet, sink, drop_transport, log, expired)
}

#[test]
fn the_onboarding_timer_deregisters_with_93_and_the_device_starts_over() {
    let (mut fleet, sink, drop_transport, log, expired) = onboarding_timer_expired();
    // The network-initiated deregistration runs (T3522) until the
    // device's DEREGISTRATION ACCEPT, which ends the context.
    assert_eq!(
        fleet.network().state_of(expired),
        Some("deregistration requested")
    );
    assert!(fleet.network().store().subscriptions().unwrap().is_empty());

    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| !rejections(f, 0).is_empty()));
    assert_eq!(
        rejections(&fleet, 0),
        [(
            RejectMessage::DeregistrationRequest,
            Cause::ONBOARDING_SERVICES_TERMINATED
        )]
    );
    assert_eq!(fleet.device(0).state(), DeviceState::Onboarding);
    let registration_requests = |log: &[(Direction, &str)]| {
        log.iter()
            .filter(|e| **e == (Direction::Uplink, "RegistrationRequest"))
            .count()
    };
    assert_eq!(registration_requests(&log.borrow()), 2, "started over");

    // Without the fault the second onboarding completes.
    drop_transport.set(false);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::RegisteredForOnboarding { .. }
        )),
        2
    );
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    assert!(sink.received().is_empty());
    // Its DEREGISTRATION ACCEPT ended the first context (not T3522's
    // expiries: no procedure was abandoned).
    assert_eq!(fleet.network().state_of(expired), None);
    assert_eq!(
        count(&fleet, |e| matches!(
            e,
            NetworkEvent::ProcedureAbandoned { .. }
        )),
        0
    );
}

#[test]

fn a_network_deregistration_is_answered_with_deregistration_accept() {
    let (mut fleet, _sink, _drop_transport, log, _expired) = onboarding_timer_expired();
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| !rejections(f, 0).is_empty()));
    // TS 24.501 §5.5.2.3.2: the UE answers DEREGISTRATION ACCEPT, then
    // starts over.
    let log = log.borrow();
    let answer = log
        .iter()
        .position(|e| *e == (Direction::Uplink, "DeregistrationAcceptUeTerminated"));
    let restart = log
        .iter()
        .rposition(|e| *e == (Direction::Uplink, "RegistrationRequest"));
    assert!(answer.is_some(), "{log:?}");
    assert!(answer < restart, "{log:?}");
}

/// One standard device, run until it is registered for onboarding (its
/// onboarding PDU session requested); its connection.
fn registered_for_onboarding(seed: u64) -> (Fleet, MemorySink, ConnectionId) {
    let world = world();
    let (mut fleet, sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &[DeviceProfile::standard(world.now)],
        Faults::NONE,
        seed,
    );
    fleet.power_on(0);
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |f| {
        count(f, |e| {
            matches!(e, NetworkEvent::RegisteredForOnboarding { .. })
        }) > 0
    }));
    let conn = fleet.connection(0);
    (fleet, sink, conn)
}

/// UL NAS TRANSPORT with a PDU SESSION ESTABLISHMENT REQUEST for the DNN
/// "internet" on PDU session 2.
fn internet_session_request() -> build::Nas5gsMessage {
    build::ul_nas_transport_pdu_session_establishment_request(
        &PduSessionEstablishmentRequestParams {
            psi: 2,
            pti: 7,
            session_type: PduSessionTypeValue::Unstructured,
            ssc_mode: None,
            dnn: Some("internet".into()),
            s_nssai: None,
            request_pvs_information: false,
        },
    )
    .unwrap()
}

#[test]
fn an_onboarding_device_reaches_nothing_but_the_pvs() {
    let (mut fleet, sink, conn) = registered_for_onboarding(14);
    let attempts = [
        internet_session_request(),
        // CIoT data on a PDU session it does not have.
        build::ul_nas_transport_ciot_data(5, PAYLOAD).unwrap(),
        // Data on the onboarding session that is no PVS request.
        build::ul_nas_transport_ciot_data(1, PAYLOAD).unwrap(),
        // A burst in a CONTROL PLANE SERVICE REQUEST.
        build::control_plane_service_request(
            KeySetIdentifier::Native(0),
            1,
            CiotSmallDataDownlinkDataExpected::NoInformationAvailable,
            PAYLOAD,
        )
        .unwrap(),
    ];
    let refused = |f: &Fleet| {
        count(
            f,
            |e| matches!(e, NetworkEvent::RestrictedTrafficRefused { conn: c, .. } if *c == conn),
        )
    };
    for message in &attempts {
        fleet.send_raw(0, message);
    }
    let deadline = fleet.now() + Duration::from_secs(5);
    assert!(fleet.run_until(deadline, |f| refused(f) == attempts.len()));
    assert_eq!(
        fleet.network().state_of(conn),
        Some("registered for onboarding")
    );
    assert!(sink.received().is_empty());

    // Each data attempt was answered with 5GMM STATUS #90 "payload was
    // not forwarded"; the device still gets its subscription.
    assert!(settle(&mut fleet, &[0]));
    let not_forwarded = rejections(&fleet, 0)
        .into_iter()
        .filter(|r| *r == (RejectMessage::Status, Cause::PAYLOAD_NOT_FORWARDED))
        .count();
    assert_eq!(not_forwarded, 3);
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    assert_eq!(refused(&fleet), attempts.len());
    assert_eq!(
        count(&fleet, |e| matches!(e, NetworkEvent::DataDelivered { .. })),
        0
    );
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
    assert!(sink.received().is_empty());
}

#[test]

fn a_refused_session_to_another_dnn_does_not_abort_provisioning() {
    let (mut fleet, _sink, _conn) = registered_for_onboarding(16);
    fleet.send_raw(0, &internet_session_request());
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    // The reject names PDU session 2; the onboarding session (1) and the
    // provisioning on it go on, on the same onboarding registration.
    assert!(rejections(&fleet, 0).is_empty());
    assert_eq!(
        count_device(&fleet, 0, |e| *e
            == DeviceEvent::SessionRejected { psi: 2, cause: 27 }),
        1
    );
    for (what, n) in [
        (
            "onboarding registrations",
            count(&fleet, |e| {
                matches!(e, NetworkEvent::RegisteredForOnboarding { .. })
            }),
        ),
        (
            "packages",
            count(&fleet, |e| {
                matches!(e, NetworkEvent::PackageDelivered { .. })
            }),
        ),
    ] {
        assert_eq!(n, 1, "{what}: {:?}", fleet.network_events());
    }
}

/// The credential package a DL NAS TRANSPORT carries, with the CoAP
/// exchange it answers: (message id, token, sealed package).
fn package_in(t: &nido_net::Transmit) -> Option<(u16, Token, SealedPackage)> {
    let message = nido_nas::decode(t.plain.as_deref()?).ok()?;
    let Inbound::DlNasTransport {
        payload: Transport::CiotData { data, .. },
        ..
    } = Inbound::read(&message).ok()?
    else {
        return None;
    };
    let response = coap::parse_response(&data).ok()?;
    let ResponseBody::Changed(body) = response.body else {
        return None;
    };
    match ProvisioningResponse::decode(&body).ok()? {
        ProvisioningResponse::Provisioned(sealed) => {
            Some((response.message_id, response.token, sealed))
        }
        _ => None,
    }
}

#[test]
fn a_tampered_credential_package_is_refused_and_the_device_asks_again() {
    let world = world();
    let options = NetworkOptions {
        trace: true,
        ..NetworkOptions::default()
    };
    let (mut fleet, sink) = one_device(&world, &options, 15);
    // Hold back the first package (and only it).
    let held = Rc::new(RefCell::new(None));
    let keep = held.clone();
    let done = Cell::new(false);
    fleet.set_downlink_filter(move |t| {
        if done.get() {
            return true;
        }
        match package_in(t) {
            Some(package) => {
                done.set(true);
                *keep.borrow_mut() = Some((t.conn, package));
                false
            }
            None => true,
        }
    });
    fleet.power_on(0);
    let deadline = fleet.now() + HOUR;
    assert!(fleet.run_until(deadline, |_| held.borrow().is_some()));
    let first = subscription(&fleet, 0);
    assert_eq!(first.state, SubscriptionState::Created);

    // The same response, one octet of the ciphertext flipped.
    let (conn, (message_id, token, mut sealed)) = held.borrow_mut().take().unwrap();
    sealed.ciphertext[0] ^= 0xff;
    let body = ResponseBody::Changed(ProvisioningResponse::Provisioned(sealed).encode());
    let tampered = coap::response(message_id, &token, &body).unwrap();
    fleet
        .network_mut()
        .send_downlink_data(conn, &tampered)
        .unwrap();
    fleet.pump();
    assert!(settle(&mut fleet, &[0]));

    let refused = count_device(&fleet, 0, |e| {
        matches!(e, DeviceEvent::PackageRefused { .. })
    });
    assert_eq!(refused, 1, "{:?}", fleet.device_events(0));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    // Asked again: a second package for the same subscription; only that
    // one was confirmed.
    let delivered: Vec<bool> = fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::PackageDelivered { reprovisioned, .. } => Some(*reprovisioned),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [false, true]);
    assert_eq!(
        count(&fleet, |e| matches!(e, NetworkEvent::Provisioned { .. })),
        1
    );
    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), 1);
    let sub = &subscriptions[0];
    assert_eq!(sub.supi, first.supi);
    assert_ne!(
        sub.package_id, first.package_id,
        "the tampered package was never confirmed"
    );
    assert_eq!(sub.state, SubscriptionState::Active);
    assert_eq!(fleet.device(0).subscription().unwrap().supi, sub.supi);
    assert!(sink.received().is_empty());
}
