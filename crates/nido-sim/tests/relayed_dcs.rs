//! Onboarding through an external DCS (TS 33.501 I.9.2.3): the network
//! relays the device's EAP to the manufacturer's own DCS (here an
//! in-process EAP-TLS server standing in for the AAA server the driver
//! would reach over RADIUS), which accepts with the MSK; K_AUSF is then the
//! MSK's 256 most significant bits at both ends. A device that takes it
//! from the EMSK fails security mode; rejects, an unreachable DCS,
//! retransmissions and the operator's block list are handled as the
//! built-in DCS's path handles them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_eap::fixtures::Onboarding;
use nido_eap::packet::{Code, MethodType, Packet};
use nido_eap::{DcsCredentials, EapTlsServer, ServerOutcome, ServerStep, Settings};
use nido_nas::view::Inbound;
use nido_net::{AaaAnswer, AaaRequest, ConnectionId, NetworkEvent};
use nido_pki::{DeviceId, Policy, TrustStore};
use nido_sec::Cause;
use nido_sim::scenario::NetworkOptions;
use nido_sim::{Direction, Fleet};
use nido_ue::DeviceState;

use common::{one_device, settle};

/// What the external DCS does with the next request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Run EAP-TLS and answer (but keep request number `hold_at`
    /// unanswered, in `held`).
    Serve,
    /// Access-Reject with an EAP-Failure.
    Reject,
    /// The driver's retransmissions ran out.
    Unreachable,
}

/// The manufacturer's DCS behind its AAA server, as the driver sees it.
struct ExternalDcs {
    credentials: DcsCredentials,
    servers: HashMap<ConnectionId, EapTlsServer>,
    mode: Mode,
    hold_at: Option<usize>,
    requests: Vec<AaaRequest>,
    held: Option<AaaRequest>,
}

impl ExternalDcs {
    fn new(credentials: DcsCredentials) -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self {
            credentials,
            servers: HashMap::new(),
            mode: Mode::Serve,
            hold_at: None,
            requests: Vec::new(),
            held: None,
        }))
    }

    fn answer(&mut self, now: SystemTime, request: &AaaRequest) -> Option<AaaAnswer> {
        self.requests.push(request.clone());
        if self.hold_at == Some(self.requests.len() - 1) {
            self.held = Some(request.clone());
            return None;
        }
        match self.mode {
            Mode::Reject => {
                return Some(AaaAnswer::Reject {
                    eap: Some(Packet::failure(1).to_bytes()),
                });
            }
            Mode::Unreachable => return Some(AaaAnswer::Unreachable),
            Mode::Serve => {}
        }
        self.serve(now, request)
    }

    fn serve(&mut self, now: SystemTime, request: &AaaRequest) -> Option<AaaAnswer> {
        let packet = Packet::decode(&request.eap).unwrap();
        if matches!(packet.method, Some((MethodType::Identity, _))) {
            let (server, start) =
                EapTlsServer::start(&self.credentials, Settings::default(), now, 1).unwrap();
            self.servers.insert(request.conn, server);
            return Some(AaaAnswer::Challenge(start));
        }
        let server = self.servers.get_mut(&request.conn)?;
        match server.handle(&request.eap) {
            ServerStep::Send(next) => Some(AaaAnswer::Challenge(next)),
            ServerStep::Done(last, ServerOutcome::Success(auth)) => Some(AaaAnswer::Accept {
                eap: last,
                msk: auth.keys.msk.clone(),
                identity: auth.device.id.serial().to_owned(),
            }),
            ServerStep::Done(last, ServerOutcome::Failure(_)) => {
                Some(AaaAnswer::Reject { eap: Some(last) })
            }
            ServerStep::Ignored(_) => None,
        }
    }
}

/// A world whose manufacturer runs its own DCS (`external`: its bundles
/// say "msk"), a fleet of one of its devices, and the network relaying
/// the manufacturer's realm to `dcs`.
fn relayed(external: bool) -> (Onboarding, Fleet, Rc<RefCell<ExternalDcs>>) {
    let mut world = common::world();
    world.manufacturer.set_external_dcs(external);
    let (mut fleet, _) = one_device(&world, &NetworkOptions::default(), 7);
    let realm = world.manufacturer.dcs_realm().to_owned();
    // The built-in DCS serves the realm too: relaying wins.
    assert!(fleet.network().serves_realm(&realm));
    fleet
        .network_mut()
        .relay_realm(&realm.to_ascii_uppercase(), world.manufacturer.name());
    assert!(fleet.network().relays_realm(&realm));
    let dcs = ExternalDcs::new(world.dcs.clone());
    let driver = dcs.clone();
    fleet.set_aaa(move |now, request| driver.borrow_mut().answer(now, request));
    (world, fleet, dcs)
}

fn refusals(fleet: &Fleet) -> Vec<(Cause, Option<DeviceId>, String)> {
    fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::Refused {
                cause,
                device,
                reason,
                ..
            } => Some((*cause, device.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn authenticated(fleet: &Fleet) -> Vec<DeviceId> {
    fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::DeviceAuthenticated { device, .. } => Some(device.clone()),
            _ => None,
        })
        .collect()
}

/// (cause, T3346) of every REGISTRATION REJECT sent downlink.
type Rejects = Rc<RefCell<Vec<(Cause, Option<Duration>)>>>;

fn record_rejects(fleet: &mut Fleet) -> Rejects {
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink = log.clone();
    fleet.set_trace(move |r| {
        if r.direction == Direction::Downlink
            && let Ok(m) = nido_nas::decode(r.pdu)
            && let Ok(Inbound::RegistrationReject { cause, t3346, .. }) = Inbound::read(&m)
        {
            sink.borrow_mut().push((cause, t3346));
        }
    });
    log
}

#[test]
fn a_device_whose_bundle_says_msk_onboards_through_the_relay_to_active() {
    let (world, mut fleet, dcs) = relayed(true);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);

    let serial = world.manufacturer.device_serial(1);
    let id = DeviceId::new(world.manufacturer.name(), &serial).unwrap();
    assert_eq!(authenticated(&fleet), vec![id.clone()]);
    assert!(fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::RegisteredForOnboarding { device, .. } if *device == id
    )));
    assert!(
        fleet
            .network_events()
            .iter()
            .any(|e| matches!(e, NetworkEvent::Provisioned { device, .. } if *device == id))
    );
    // The first request was the EAP-Response/Identity with the SUCI NAI,
    // identifier 0; each later one a UE's EAP-TLS response, once.
    let dcs = dcs.borrow();
    let first = Packet::decode(&dcs.requests[0].eap).unwrap();
    assert_eq!((first.code, first.identifier), (Code::Response, 0));
    let Some((MethodType::Identity, nai)) = first.method else {
        panic!("{first:?}")
    };
    let nai = String::from_utf8(nai).unwrap();
    assert!(
        nai.ends_with(&format!("@{}", world.manufacturer.dcs_realm())),
        "{nai}"
    );
    assert!(dcs.requests.len() > 2);
    assert!(
        dcs.requests
            .iter()
            .all(|r| r.realm == world.manufacturer.dcs_realm())
    );
    let ids: Vec<u8> = dcs.requests[1..]
        .iter()
        .map(|r| Packet::decode(&r.eap).unwrap().identifier)
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "a response forwarded twice");
}

#[test]
fn a_device_that_derives_from_the_emsk_fails_security_mode_against_a_relayed_realm() {
    let (world, mut fleet, _dcs) = relayed(false);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(120));
    // The DCS authenticated it, but the device holds another K_AMF: the
    // network never registers it.
    let id = DeviceId::new(
        world.manufacturer.name(),
        &world.manufacturer.device_serial(1),
    )
    .unwrap();
    assert!(authenticated(&fleet).contains(&id));
    assert_ne!(fleet.device(0).state(), DeviceState::Active);
    assert_ne!(fleet.device(0).state(), DeviceState::Provisioning);
    assert!(!fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::RegisteredForOnboarding { .. } | NetworkEvent::PackageDelivered { .. }
    )));
}

#[test]
fn access_reject_refuses_with_illegal_ue_and_the_eap_failure() {
    let (_world, mut fleet, dcs) = relayed(true);
    dcs.borrow_mut().mode = Mode::Reject;
    let rejects = record_rejects(&mut fleet);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(5));
    let refused = refusals(&fleet);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Cause::ILLEGAL_UE);
    assert!(refused[0].2.contains("Access-Reject"), "{}", refused[0].2);
    assert_eq!(rejects.borrow().first(), Some(&(Cause::ILLEGAL_UE, None)));
    assert_eq!(fleet.network().contexts(), 0);
}

#[test]
fn an_unreachable_dcs_refuses_with_congestion_and_a_back_off() {
    let (world, mut fleet, dcs) = relayed(true);
    dcs.borrow_mut().mode = Mode::Unreachable;
    let rejects = record_rejects(&mut fleet);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(5));
    let refused = refusals(&fleet);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Cause::CONGESTION);
    let realm = world.manufacturer.dcs_realm();
    assert!(
        refused[0]
            .2
            .contains(&format!("DCS of realm {realm} unreachable")),
        "{}",
        refused[0].2
    );
    let (cause, t3346) = rejects.borrow()[0];
    assert_eq!(cause, Cause::CONGESTION);
    let range = fleet.network().admission().t3346.clone();
    assert!(range.contains(&t3346.expect("T3346 with #22")));
    assert_eq!(fleet.network().contexts(), 0);
    // The device backs off rather than hanging.
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
}

#[test]
fn a_driver_that_never_answers_cannot_pin_the_context() {
    let (_world, mut fleet, dcs) = relayed(true);
    dcs.borrow_mut().hold_at = Some(0);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(1));
    assert_eq!(fleet.network().contexts(), 1);
    assert!(dcs.borrow().held.is_some());
    fleet.advance(Duration::from_secs(40)); // past the 30 s AAA timeout
    let refused = refusals(&fleet);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Cause::CONGESTION);
    assert!(
        refused[0].2.contains("no answer within 30 s"),
        "{refused:?}"
    );
    // A late answer changes nothing.
    let held = dcs.borrow_mut().held.take().unwrap();
    let now = fleet.now();
    fleet
        .network_mut()
        .handle_aaa(now, held.conn, AaaAnswer::Unreachable);
    fleet.pump();
    assert_eq!(refusals(&fleet).len(), 1);
}

#[test]
fn a_ue_retransmission_while_an_answer_is_awaited_is_not_forwarded_twice() {
    let (_world, mut fleet, dcs) = relayed(true);
    // The identity is answered; the UE's first EAP-TLS response is held.
    let uplinks = Rc::new(RefCell::new(Vec::new()));
    let log = uplinks.clone();
    fleet.set_trace(move |r| {
        if r.direction == Direction::Uplink && r.message == "AuthenticationResponse" {
            log.borrow_mut().push((r.conn, r.pdu.to_vec()));
        }
    });
    // Serve the identity, then hold the next request.
    dcs.borrow_mut().hold_at = Some(1);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(1));
    assert!(dcs.borrow().held.is_some(), "the response was not held");
    let forwarded = dcs.borrow().requests.len();
    let (conn, pdu) = uplinks.borrow()[0].clone();
    // The same AUTHENTICATION RESPONSE again, twice.
    fleet.inject(Direction::Uplink, conn, &pdu);
    fleet.inject(Direction::Uplink, conn, &pdu);
    fleet.pump();
    assert_eq!(dcs.borrow().requests.len(), forwarded);
    let absorbed = fleet
        .network_events()
        .iter()
        .filter(
            |e| matches!(e, NetworkEvent::Discarded { reason, .. } if reason.contains("absorbed")),
        )
        .count();
    assert_eq!(absorbed, 2);
    // The held answer comes; the exchange goes on to the end.
    let held = dcs.borrow_mut().held.take().unwrap();
    let now = fleet.now();
    let answer = dcs.borrow_mut().serve(now, &held).unwrap();
    fleet.network_mut().handle_aaa(now, held.conn, answer);
    fleet.pump();
    // A copy of the old response after the next challenge answers nothing
    // relayed last: not forwarded either.
    let before = dcs.borrow().requests.len();
    fleet.inject(Direction::Uplink, conn, &pdu);
    fleet.pump();
    assert_eq!(dcs.borrow().requests.len(), before);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
}

#[test]
fn a_relayed_device_on_the_operator_block_list_is_refused() {
    let (world, mut fleet, _dcs) = relayed(true);
    let id = DeviceId::new(
        world.manufacturer.name(),
        &world.manufacturer.device_serial(1),
    )
    .unwrap();
    let mut trust = TrustStore::new();
    trust
        .enroll(
            world.manufacturer.name(),
            world.manufacturer.root_der().clone(),
            Policy::for_manufacturer(&world.manufacturer),
        )
        .unwrap();
    trust.block(&id);
    let now = fleet.now();
    fleet.network_mut().set_trust_store(now, Arc::new(trust));
    let rejects = record_rejects(&mut fleet);
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(10));
    let refused = refusals(&fleet);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Cause::ILLEGAL_UE);
    assert_eq!(refused[0].1.as_ref(), Some(&id));
    assert!(refused[0].2.contains("block list"), "{}", refused[0].2);
    assert_eq!(rejects.borrow().first(), Some(&(Cause::ILLEGAL_UE, None)));
    assert!(!fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::DeviceAuthenticated { .. } | NetworkEvent::RegisteredForOnboarding { .. }
    )));
}

#[test]
fn an_accept_with_an_invalid_identity_is_refused() {
    let (_world, mut fleet, _dcs) = relayed(true);
    fleet.set_aaa(|_, _| {
        Some(AaaAnswer::Accept {
            eap: Packet::success(1).to_bytes(),
            msk: nido_sec::Msk::new([9; 64]),
            identity: "no/such serial\n".into(),
        })
    });
    fleet.power_on(0);
    fleet.advance(Duration::from_secs(5));
    let refused = refusals(&fleet);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, Cause::ILLEGAL_UE);
    assert!(
        refused[0].2.contains("invalid device identity"),
        "{}",
        refused[0].2
    );
}
