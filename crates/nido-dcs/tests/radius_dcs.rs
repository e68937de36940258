//! The DCS's RADIUS server against the supplicant, in memory: a genuine
//! device is accepted with its serial and the MSK in the MPPE keys; a
//! retransmission gets the cached reply; unauthentic datagrams are dropped
//! before any EAP work; one operator cannot reach another's conversation;
//! the bounds hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use nido_dcs::{
    Client, Clients, Dropped, Finished, Limits, Outcome, RadiusDcs, Supplicant, SupplicantStep,
};
use nido_eap::Settings;
use nido_eap::fixtures::Onboarding;
use nido_pki::{DeviceProfile, Revoked};
use nido_radius::client::{Pending, RetransmitPolicy};
use nido_radius::{Packet, Secret};

const A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
const B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 40000);

fn secret(s: &str) -> Secret {
    Secret::new(s.as_bytes()).unwrap()
}

fn clients() -> Clients {
    let mut c = Clients::new();
    for (name, addr, s) in [
        ("operator-a", A, "secret-of-operator-a"),
        ("operator-b", B, "secret-of-operator-b"),
    ] {
        c.add(Client {
            name: name.into(),
            address: addr.ip(),
            secret: secret(s),
        })
        .unwrap();
    }
    c
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

fn dcs(world: &Onboarding, limits: Limits) -> RadiusDcs {
    RadiusDcs::new(world.dcs.clone(), Settings::default(), clients(), limits, 7)
}

/// A client of `addr` with its secret.
struct Nas {
    addr: SocketAddr,
    secret: Secret,
    pending: Pending,
    counter: u8,
}

impl Nas {
    fn new(addr: SocketAddr, s: &str) -> Self {
        Self {
            addr,
            secret: secret(s),
            pending: Pending::new(RetransmitPolicy::default(), secret(s)),
            counter: 0,
        }
    }

    /// Signs `p` with a fresh Request Authenticator: (octets, authenticator).
    fn sign(&mut self, mut p: Packet) -> (Vec<u8>, [u8; 16]) {
        self.counter = self.counter.wrapping_add(1);
        p.authenticator = [self.counter; 16];
        p.authenticator[0] = 0xa5;
        let authenticator = p.authenticator;
        let (_, octets) = self.pending.send(p, Duration::ZERO, 0.0).unwrap();
        (octets, authenticator)
    }
}

/// Runs a whole conversation; returns how it finished and every decision.
fn run(
    dcs: &mut RadiusDcs,
    nas: &mut Nas,
    world: &Onboarding,
    creds: &nido_eap::DeviceCredentials,
) -> (Finished, Vec<nido_dcs::Decision>) {
    let outer = format!("anonymous@{}", world.manufacturer.dcs_realm());
    let (mut s, first) = Supplicant::start(creds, &outer, world.now).unwrap();
    let mut next = first;
    let mut decisions = Vec::new();
    for _ in 0..50 {
        let (octets, authenticator) = nas.sign(next);
        let out = dcs
            .handle(nas.addr, &octets, world.now, Duration::from_secs(1))
            .unwrap();
        decisions.extend(out.decision);
        let (_, reply) = nas.pending.on_response(&out.reply).unwrap();
        match s.handle(&reply, &nas.secret, &authenticator) {
            SupplicantStep::Send(p) => next = p,
            SupplicantStep::Done(f) => return (f, decisions),
            SupplicantStep::Ignored(why) => panic!("ignored: {why}"),
        }
    }
    panic!("no end after 50 rounds");
}

#[test]
fn a_genuine_device_is_accepted_with_its_serial_and_the_msk() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut dcs = dcs(&world, Limits::default());
    let mut nas = Nas::new(A, "secret-of-operator-a");
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let (finished, decisions) = run(&mut dcs, &mut nas, &world, &creds);
    let serial = world.manufacturer.device_serial(1);
    assert_eq!(
        finished,
        Finished::Accepted {
            user_name: Some(serial.clone())
        }
    );
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].client, "operator-a");
    assert_eq!(decisions[0].serial(), Some(serial.as_str()));
    assert_eq!(dcs.conversations(), 0);
}

#[test]
fn a_device_revoked_while_serving_is_refused_with_the_reason() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut dcs = dcs(&world, Limits::default());
    let (id, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    // A new CRL revoking it reaches the serving DCS.
    let m = &world.manufacturer;
    let mut trust = nido_pki::TrustStore::new();
    trust
        .enroll(
            m.name(),
            m.root_der().clone(),
            nido_pki::Policy::for_manufacturer(m),
        )
        .unwrap();
    let crl = m
        .crl(
            &[Revoked {
                serial: id.serial.clone(),
                ..Revoked::new(&id.cert_serial, now() - Duration::from_secs(10))
            }],
            now() - Duration::from_secs(60),
            now() + Duration::from_secs(86_400),
            1,
        )
        .unwrap();
    trust.add_crl(m.name(), &crl, m.issuing_der()).unwrap();
    dcs.set_trust_store(std::sync::Arc::new(trust));
    let mut nas = Nas::new(A, "secret-of-operator-a");
    let (finished, decisions) = run(&mut dcs, &mut nas, &world, &creds);
    assert!(matches!(finished, Finished::Refused(_)), "{finished:?}");
    assert_eq!(decisions.len(), 1);
    match &decisions[0].outcome {
        Outcome::Refused { reason, .. } => assert_eq!(*reason, "revoked"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retransmitted_request_gets_the_same_reply_and_runs_no_eap() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut dcs = dcs(&world, Limits::default());
    let mut nas = Nas::new(A, "secret-of-operator-a");
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let (mut s, first) = Supplicant::start(&creds, "anonymous@x", world.now).unwrap();
    let (octets, authenticator) = nas.sign(first);
    let t = Duration::from_secs(1);
    let one = dcs.handle(A, &octets, world.now, t).unwrap();
    assert_eq!(dcs.conversations(), 1);
    let again = dcs.handle(A, &octets, world.now, t).unwrap();
    assert_eq!(
        one.reply, again.reply,
        "a duplicate must get the cached reply"
    );
    assert_eq!(
        dcs.conversations(),
        1,
        "a duplicate must not start a conversation"
    );
    // The next round is unaffected.
    let (_, reply) = nas.pending.on_response(&one.reply).unwrap();
    let SupplicantStep::Send(next) = s.handle(&reply, &nas.secret, &authenticator) else {
        panic!("no ClientHello");
    };
    let (octets, _) = nas.sign(next);
    let out = dcs.handle(A, &octets, world.now, t).unwrap();
    assert!(nas.pending.on_response(&out.reply).is_ok());
}

#[test]
fn unauthentic_datagrams_are_dropped_before_any_eap_work() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut dcs = dcs(&world, Limits::default());
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let (_, first) = Supplicant::start(&creds, "anonymous@x", world.now).unwrap();
    let t = Duration::from_secs(1);

    // From an address that is no client.
    let mut stranger = Nas::new(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 1),
        "secret-of-operator-a",
    );
    let (octets, _) = stranger.sign(first.clone());
    assert_eq!(
        dcs.handle(stranger.addr, &octets, world.now, t)
            .unwrap_err(),
        Dropped::UnknownClient
    );
    // A client's address with the wrong secret.
    let mut wrong = Nas::new(A, "not-the-secret-of-a");
    let (octets, _) = wrong.sign(first.clone());
    assert_eq!(
        dcs.handle(A, &octets, world.now, t).unwrap_err(),
        Dropped::Unauthentic
    );
    // Without a Message-Authenticator (the BlastRADIUS hardening).
    let mut bare = first.clone();
    bare.authenticator = [9; 16];
    let octets = bare.encode().unwrap();
    assert_eq!(
        dcs.handle(A, &octets, world.now, t).unwrap_err(),
        Dropped::Unauthentic
    );
    // B's secret from A's address.
    let mut spoof = Nas::new(A, "secret-of-operator-b");
    let (octets, _) = spoof.sign(first);
    assert_eq!(
        dcs.handle(A, &octets, world.now, t).unwrap_err(),
        Dropped::Unauthentic
    );
    assert_eq!(dcs.conversations(), 0);
}

#[test]
fn one_operator_cannot_reach_another_operators_conversation() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut dcs = dcs(&world, Limits::default());
    let t = Duration::from_secs(1);
    let mut a = Nas::new(A, "secret-of-operator-a");
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let (mut s, first) = Supplicant::start(&creds, "anonymous@x", world.now).unwrap();
    let (octets, authenticator) = a.sign(first);
    let out = dcs.handle(A, &octets, world.now, t).unwrap();
    let (_, reply) = a.pending.on_response(&out.reply).unwrap();
    let SupplicantStep::Send(next) = s.handle(&reply, &a.secret, &authenticator) else {
        panic!("no ClientHello");
    };
    // B replays A's State with its own (valid) signature.
    let mut b = Nas::new(B, "secret-of-operator-b");
    let (octets, _) = b.sign(next.clone());
    let out = dcs.handle(B, &octets, world.now, t).unwrap();
    let (_, reply) = b.pending.on_response(&out.reply).unwrap();
    assert_eq!(reply.code, nido_radius::Code::AccessReject);
    assert!(out.decision.is_none());
    assert_eq!(dcs.conversations(), 1, "A's conversation must survive");
    // A goes on to the end.
    let (octets, _) = a.sign(next);
    let out = dcs.handle(A, &octets, world.now, t).unwrap();
    let (_, reply) = a.pending.on_response(&out.reply).unwrap();
    assert_eq!(reply.code, nido_radius::Code::AccessChallenge);
}

#[test]
fn conversations_are_bounded_and_expire() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let limits = Limits {
        max_conversations: 1,
        idle: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut dcs = dcs(&world, limits);
    let mut a = Nas::new(A, "secret-of-operator-a");
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let t = Duration::from_secs(1);
    let (mut s1, first) = Supplicant::start(&creds, "anonymous@x", world.now).unwrap();
    let (octets, auth1) = a.sign(first.clone());
    let out1 = dcs.handle(A, &octets, world.now, t).unwrap();
    // A second conversation while the first runs: refused, and audited.
    let (octets, _) = a.sign(first.clone());
    let out = dcs.handle(A, &octets, world.now, t).unwrap();
    let (_, reply) = a.pending.on_response(&out.reply).unwrap();
    assert_eq!(reply.code, nido_radius::Code::AccessReject);
    match out.decision.map(|d| d.outcome) {
        Some(Outcome::Refused { reason, .. }) => assert_eq!(reason, "busy"),
        other => panic!("{other:?}"),
    }
    // The first expires after `idle`; its State is then refused.
    let (_, reply) = a.pending.on_response(&out1.reply).unwrap();
    let SupplicantStep::Send(next) = s1.handle(&reply, &a.secret, &auth1) else {
        panic!("no ClientHello");
    };
    assert_eq!(dcs.expire(t + Duration::from_secs(11)), 1);
    let (octets, _) = a.sign(next);
    let out = dcs
        .handle(A, &octets, world.now, t + Duration::from_secs(12))
        .unwrap();
    let (_, reply) = a.pending.on_response(&out.reply).unwrap();
    assert_eq!(reply.code, nido_radius::Code::AccessReject);
    // And a new conversation fits again.
    let (octets, _) = a.sign(first);
    let out = dcs
        .handle(A, &octets, world.now, t + Duration::from_secs(12))
        .unwrap();
    let (_, reply) = a.pending.on_response(&out.reply).unwrap();
    assert_eq!(reply.code, nido_radius::Code::AccessChallenge);
}

#[test]
fn a_radsec_client_is_known_by_its_fingerprint_and_uses_the_secret_radsec() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut clients = clients();
    let fingerprint = [0x42; 32];
    clients
        .add_radsec(nido_dcs::RadSecClient {
            name: "operator-r".into(),
            fingerprint,
        })
        .unwrap();
    let mut dcs = RadiusDcs::new(
        world.dcs.clone(),
        Settings::default(),
        clients,
        Limits::default(),
        7,
    );
    // From an address no UDP client has: the certificate identifies it.
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 51000);
    let mut nas = Nas::new(peer, nido_dcs::clients::RADSEC_SECRET);
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let outer = format!("anonymous@{}", world.manufacturer.dcs_realm());
    let (mut s, first) = Supplicant::start(&creds, &outer, world.now).unwrap();
    // An unpinned certificate, and the UDP path for the same octets: dropped.
    let (octets, _) = nas.sign(first.clone());
    assert_eq!(
        dcs.handle_radsec(
            &[0x43; 32],
            peer,
            &octets,
            world.now,
            Duration::from_secs(1)
        )
        .unwrap_err(),
        Dropped::UnknownClient
    );
    assert_eq!(
        dcs.handle(peer, &octets, world.now, Duration::from_secs(1))
            .unwrap_err(),
        Dropped::UnknownClient
    );
    nas.pending.cancel(octets[1]);
    let mut next = first;
    for _ in 0..50 {
        let (octets, authenticator) = nas.sign(next);
        let out = dcs
            .handle_radsec(
                &fingerprint,
                peer,
                &octets,
                world.now,
                Duration::from_secs(1),
            )
            .unwrap();
        let (_, reply) = nas.pending.on_response(&out.reply).unwrap();
        match s.handle(&reply, &nas.secret, &authenticator) {
            SupplicantStep::Send(p) => next = p,
            SupplicantStep::Done(f) => {
                assert!(matches!(f, Finished::Accepted { .. }), "{f:?}");
                let d = out.decision.unwrap();
                assert_eq!(d.client, "operator-r");
                assert_eq!(d.client_addr, peer);
                return;
            }
            SupplicantStep::Ignored(why) => panic!("ignored: {why}"),
        }
    }
    panic!("no end after 50 rounds");
}

#[test]
fn a_radsec_packet_with_another_secret_is_unauthentic() {
    let world = Onboarding::new("Acme Sensors", now()).unwrap();
    let mut clients = clients();
    clients
        .add_radsec(nido_dcs::RadSecClient {
            name: "operator-r".into(),
            fingerprint: [0x42; 32],
        })
        .unwrap();
    let mut dcs = RadiusDcs::new(
        world.dcs.clone(),
        Settings::default(),
        clients,
        Limits::default(),
        7,
    );
    let mut nas = Nas::new(A, "secret-of-operator-a");
    let (_, creds) = world.device(1, &DeviceProfile::standard(now())).unwrap();
    let outer = format!("anonymous@{}", world.manufacturer.dcs_realm());
    let (_, first) = Supplicant::start(&creds, &outer, world.now).unwrap();
    let (octets, _) = nas.sign(first);
    assert_eq!(
        dcs.handle_radsec(&[0x42; 32], A, &octets, world.now, Duration::from_secs(1))
            .unwrap_err(),
        Dropped::Unauthentic
    );
}
