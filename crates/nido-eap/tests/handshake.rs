//! EAP-TLS 1.3 between the sans-IO peer and server, in memory: success at
//! many fragment sizes, and every refusal ending in EAP-Failure or a peer
//! abort with its reason and no keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_eap::packet::{MethodType, Packet};
use nido_eap::tls_frame::{FLAG_LENGTH, FLAG_MORE, TlsFrame};
use nido_eap::{
    DcsCredentials, DeviceCredentials, EapTlsPeer, EapTlsServer, FailureReason, PeerOutcome,
    PeerStep, ServerOutcome, ServerStep, Settings,
};
use nido_pki::{
    DeviceIdentity, DeviceProfile, Manufacturer, Policy, RefusalReason, Revoked, TrustStore,
    Validity,
};
use rustls::pki_types::PrivateKeyDer;

struct World {
    now: SystemTime,
    mfr: Manufacturer,
    other: Manufacturer,
    trust: TrustStore,
}

fn world() -> World {
    let now = SystemTime::now();
    let mfr = Manufacturer::generate("Acme Sensors", now).unwrap();
    let other = Manufacturer::generate("Rogue Devices", now).unwrap();
    let mut trust = TrustStore::new();
    trust
        .enroll(
            mfr.name(),
            mfr.root_der().clone(),
            Policy::for_manufacturer(&mfr),
        )
        .unwrap();
    // A current, empty CRL (number 0; a test's CRL replaces it): the
    // default policy refuses devices whose issuer has none.
    let empty = mfr
        .crl(
            &[],
            now - Duration::from_secs(60),
            now + Duration::from_secs(365 * 86_400),
            0,
        )
        .unwrap();
    trust
        .add_crl(mfr.name(), &empty, mfr.issuing_der())
        .unwrap();
    World {
        now,
        mfr,
        other,
        trust,
    }
}

impl World {
    /// The DCS, taking the world's trust store (built once per test).
    fn dcs(&mut self) -> DcsCredentials {
        let dcs = self
            .mfr
            .issue_dcs(self.mfr.dcs_realm(), Validity::days(self.now, 365))
            .unwrap();
        let trust = Arc::new(std::mem::take(&mut self.trust));
        DcsCredentials::new(
            dcs.chain.clone(),
            &PrivateKeyDer::Pkcs8(dcs.key.clone_key()),
            trust,
        )
        .unwrap()
    }

    /// Device number `n` of this manufacturer, with its serial scheme.
    fn device(&self, n: u64, profile: &DeviceProfile) -> DeviceIdentity {
        self.mfr
            .issue_device(&self.mfr.device_serial(n), profile)
            .unwrap()
    }

    fn peer_creds(&self, d: &DeviceIdentity) -> DeviceCredentials {
        DeviceCredentials::with_software_key(
            d.chain.clone(),
            &PrivateKeyDer::Pkcs8(d.key.clone_key()),
            self.mfr.root_der().clone(),
            self.mfr.dcs_realm(),
        )
        .unwrap()
    }
}

/// Every EAP packet of a conversation, in order, and how it ended.
struct Run {
    packets: Vec<(bool, Vec<u8>)>, // (from server, octets)
    server: Option<ServerOutcome>,
    peer: Option<PeerOutcome>,
}

fn run(
    dcs: &DcsCredentials,
    peer_creds: &DeviceCredentials,
    settings: Settings,
    now: SystemTime,
) -> Run {
    let (mut server, start) = EapTlsServer::start(dcs, settings, now, 1).unwrap();
    let mut peer = EapTlsPeer::new(peer_creds, settings, "anonymous@dcs.example", now).unwrap();
    drive(&mut server, &mut peer, start)
}

fn drive(server: &mut EapTlsServer, peer: &mut EapTlsPeer, first: Vec<u8>) -> Run {
    let mut r = Run {
        packets: vec![(true, first.clone())],
        server: None,
        peer: None,
    };
    let mut request = first;
    for _ in 0..200 {
        match peer.handle(&request) {
            PeerStep::Send(resp) => {
                r.packets.push((false, resp.clone()));
                match server.handle(&resp) {
                    ServerStep::Send(req) => {
                        r.packets.push((true, req.clone()));
                        request = req;
                    }
                    ServerStep::Done(last, outcome) => {
                        r.packets.push((true, last.clone()));
                        r.server = Some(outcome);
                        if let PeerStep::Done(o) = peer.handle(&last) {
                            r.peer = Some(o);
                        }
                        return r;
                    }
                    ServerStep::Ignored(why) => panic!("server ignored a response: {why}"),
                }
            }
            PeerStep::Done(o) => {
                r.peer = Some(o);
                return r;
            }
            PeerStep::Ignored(why) => panic!("peer ignored a request: {why}"),
        }
    }
    panic!("conversation did not end");
}

fn settings(fragment_size: usize) -> Settings {
    Settings {
        fragment_size,
        ..Settings::default()
    }
}

#[test]
fn handshake_succeeds_and_keys_agree_at_every_fragment_size() {
    let mut w = world();
    let dcs = w.dcs();
    let device = w.device(1, &DeviceProfile::standard(w.now));
    let creds = w.peer_creds(&device);
    for size in [
        64,
        100,
        256,
        512,
        1000,
        1400,
        Settings::default().fragment_size,
    ] {
        let r = run(&dcs, &creds, settings(size), w.now);
        let Some(ServerOutcome::Success(auth)) = r.server else {
            panic!("size {size}: server {:?}", r.server)
        };
        let (server_keys, info) = (auth.keys, auth.device);
        let Some(PeerOutcome::Success(peer_keys)) = r.peer else {
            panic!("size {size}: peer {:?}", r.peer)
        };
        assert_eq!(server_keys, *peer_keys, "size {size}");
        assert_eq!(server_keys.session_id()[0], 13);
        assert_eq!(info.id.serial(), w.mfr.device_serial(1));
        assert_eq!(info.id.manufacturer(), w.mfr.name());
        // Every EAP packet fits the NAS EAP message IE.
        for (_, p) in &r.packets {
            assert!(p.len() <= 1500, "size {size}: {} octets", p.len());
            assert!(
                p.len() <= size + 10,
                "size {size}: packet of {} octets",
                p.len()
            );
        }
        // The last three packets: the indication, the empty final response, EAP-Success.
        let n = r.packets.len();
        assert_eq!(r.packets[n - 1].1[0], 3, "EAP-Success last");
        assert_eq!(
            r.packets[n - 2].1,
            Packet::response(r.packets[n - 2].1[1], MethodType::Tls, vec![0]).to_bytes()
        );
    }
}

#[test]
fn independent_handshakes_give_independent_keys() {
    let mut w = world();
    let dcs = w.dcs();
    let creds = w.peer_creds(&w.device(2, &DeviceProfile::standard(w.now)));
    let a = run(&dcs, &creds, Settings::default(), w.now);
    let b = run(&dcs, &creds, Settings::default(), w.now);
    let (Some(ServerOutcome::Success(a)), Some(ServerOutcome::Success(b))) = (a.server, b.server)
    else {
        panic!()
    };
    assert_ne!(a.keys.msk, b.keys.msk);
    assert_ne!(a.keys.method_id, b.keys.method_id);
}

#[test]
fn device_identity_never_travels_in_clear() {
    let mut w = world();
    let device = w.device(7781, &DeviceProfile::standard(w.now));
    let r = run(&w.dcs(), &w.peer_creds(&device), settings(200), w.now);
    assert!(matches!(r.server, Some(ServerOutcome::Success(_))));
    let all: Vec<u8> = r.packets.iter().flat_map(|(_, p)| p.clone()).collect();
    let serial = device.serial.as_bytes();
    assert!(
        !all.windows(serial.len()).any(|w| w == serial),
        "serial in clear"
    );
    let leaf = device.certificate().as_ref();
    assert!(
        !all.windows(64).any(|w| leaf.windows(64).any(|l| l == w)),
        "certificate octets in clear"
    );
}

fn expect_refusal(r: &Run, reason: RefusalReason) {
    match &r.server {
        Some(ServerOutcome::Failure(FailureReason::Refused(refusal))) => {
            assert_eq!(refusal.reason, reason, "{refusal}")
        }
        other => panic!("expected a refusal {reason:?}, got {other:?}"),
    }
    assert!(
        matches!(r.peer, Some(PeerOutcome::Failure(_))),
        "peer: {:?}",
        r.peer
    );
    assert_eq!(r.packets.last().unwrap().1[0], 4, "ends in EAP-Failure");
}

#[test]
fn expired_not_yet_valid_wrong_eku_are_refused() {
    let mut w = world();
    let dcs = w.dcs();
    for (profile, reason) in [
        (DeviceProfile::expired(w.now), RefusalReason::Expired),
        (
            DeviceProfile::not_yet_valid(w.now),
            RefusalReason::NotYetValid,
        ),
        (
            DeviceProfile::server_auth_only(w.now),
            RefusalReason::ExtendedKeyUsage,
        ),
    ] {
        let d = w.device(100, &profile);
        let r = run(&dcs, &w.peer_creds(&d), Settings::default(), w.now);
        expect_refusal(&r, reason);
    }
}

#[test]
fn revoked_via_crl_and_blocked_are_refused() {
    let mut w = world();
    let d = w.device(200, &DeviceProfile::standard(w.now));
    let crl = w
        .mfr
        .crl(
            &[Revoked::of(&d, w.now - Duration::from_secs(60))],
            w.now - Duration::from_secs(30),
            w.now + Duration::from_secs(86_400),
            1,
        )
        .unwrap();
    w.trust
        .add_crl(w.mfr.name(), &crl, w.mfr.issuing_der())
        .unwrap();
    let r = run(&w.dcs(), &w.peer_creds(&d), Settings::default(), w.now);
    expect_refusal(&r, RefusalReason::Revoked);

    let mut w = world();
    let d = w.device(201, &DeviceProfile::standard(w.now));
    w.trust
        .block(&nido_pki::DeviceId::new(w.mfr.name(), &d.serial).unwrap());
    let r = run(&w.dcs(), &w.peer_creds(&d), Settings::default(), w.now);
    expect_refusal(&r, RefusalReason::Blocked);
}

#[test]
fn unknown_manufacturer_is_refused() {
    let mut w = world();
    // A device of a manufacturer the operator never enrolled, which trusts our DCS's root.
    let d = w
        .other
        .issue_device("ROGUE-1", &DeviceProfile::standard(w.now))
        .unwrap();
    let creds = DeviceCredentials::with_software_key(
        d.chain.clone(),
        &PrivateKeyDer::Pkcs8(d.key.clone_key()),
        w.mfr.root_der().clone(),
        w.mfr.dcs_realm(),
    )
    .unwrap();
    let r = run(&w.dcs(), &creds, Settings::default(), w.now);
    expect_refusal(&r, RefusalReason::UnknownManufacturer);
}

#[test]
fn certificate_and_key_mismatch_fails() {
    let mut w = world();
    let a = w.device(300, &DeviceProfile::standard(w.now));
    let b = w.device(301, &DeviceProfile::standard(w.now));
    let creds = DeviceCredentials::with_software_key(
        a.chain.clone(),
        &PrivateKeyDer::Pkcs8(b.key.clone_key()),
        w.mfr.root_der().clone(),
        w.mfr.dcs_realm(),
    )
    .unwrap();
    let r = run(&w.dcs(), &creds, Settings::default(), w.now);
    match &r.server {
        Some(ServerOutcome::Failure(FailureReason::Tls(e))) => {
            assert!(e.contains("ignature"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.peer, Some(PeerOutcome::Failure(_))));
}

#[test]
fn dcs_of_another_manufacturer_is_refused_by_the_device() {
    let mut w = world();
    // A DCS whose certificate another manufacturer issued, for the same name.
    let rogue = w
        .other
        .issue_dcs(w.mfr.dcs_realm(), Validity::days(w.now, 365))
        .unwrap();
    let rogue_dcs = DcsCredentials::new(
        rogue.chain.clone(),
        &PrivateKeyDer::Pkcs8(rogue.key.clone_key()),
        Arc::new(std::mem::take(&mut w.trust)),
    )
    .unwrap();
    let d = w.device(400, &DeviceProfile::standard(w.now));
    let r = run(&rogue_dcs, &w.peer_creds(&d), Settings::default(), w.now);
    match &r.peer {
        Some(PeerOutcome::Failure(FailureReason::Tls(e))) => {
            assert!(e.contains("UnknownIssuer"), "{e}")
        }
        other => panic!("peer: {other:?}"),
    }
    assert!(
        matches!(
            r.server,
            Some(ServerOutcome::Failure(FailureReason::Alert(_)))
        ),
        "{:?}",
        r.server
    );
}

/// A ClientHello offering only TLS 1.2 (no supported_versions extension,
/// TLS 1.2 ECDHE suites), as an old peer sends it.
fn tls12_only_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]); // groups: P-256
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]); // sig algs: ecdsa_secp256r1_sha256
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

fn response(id: u8, frame: &TlsFrame) -> Vec<u8> {
    Packet::response(id, MethodType::Tls, frame.to_bytes()).to_bytes()
}

fn failure_of(step: ServerStep) -> FailureReason {
    match step {
        ServerStep::Done(p, ServerOutcome::Failure(reason)) => {
            assert_eq!(p[0], 4, "EAP-Failure");
            reason
        }
        ServerStep::Send(p) => panic!("expected EAP-Failure, got a request {}", p.len()),
        other => panic!("{other:?}"),
    }
}

/// Feeds the server one response; if it answers with an alert request,
/// acknowledges it, and returns the final failure.
fn fail_after(server: &mut EapTlsServer, resp: Vec<u8>) -> FailureReason {
    match server.handle(&resp) {
        ServerStep::Send(alert) => {
            let id = alert[1];
            failure_of(server.handle(&response(id, &TlsFrame::ack())))
        }
        step => failure_of(step),
    }
}

#[test]
fn tls12_only_peer_is_refused() {
    let mut w = world();
    let (mut server, start) = EapTlsServer::start(&w.dcs(), Settings::default(), w.now, 1).unwrap();
    let id = start[1];
    let frame = TlsFrame {
        flags: 0,
        message_length: None,
        data: tls12_only_client_hello(),
    };
    match fail_after(&mut server, response(id, &frame)) {
        FailureReason::Tls(e) => assert!(
            e.to_lowercase().contains("version") || e.contains("Incompatible"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_oversize_fragments_fail() {
    let mut w = world();
    let dcs = w.dcs();
    // Truncated: announces 1000 octets, the last fragment ends at 10.
    let (mut server, start) = EapTlsServer::start(&dcs, Settings::default(), w.now, 1).unwrap();
    let truncated = TlsFrame {
        flags: FLAG_LENGTH,
        message_length: Some(1000),
        data: vec![0x16; 10],
    };
    assert!(matches!(
        failure_of(server.handle(&response(start[1], &truncated))),
        FailureReason::Fragment(nido_eap::tls_frame::FragmentError::Truncated { .. })
    ));
    // Oversize: announces more than the reassembly bound.
    let (mut server, start) = EapTlsServer::start(&dcs, Settings::default(), w.now, 1).unwrap();
    let oversize = TlsFrame {
        flags: FLAG_LENGTH | FLAG_MORE,
        message_length: Some(10 << 20),
        data: vec![0x16; 10],
    };
    assert!(matches!(
        failure_of(server.handle(&response(start[1], &oversize))),
        FailureReason::Fragment(nido_eap::tls_frame::FragmentError::Oversize(_))
    ));
    // Too many fragments.
    let tiny = Settings {
        limits: nido_eap::tls_frame::Limits {
            max_message: 1 << 16,
            max_fragments: 4,
        },
        ..Settings::default()
    };
    let (mut server, start) = EapTlsServer::start(&dcs, tiny, w.now, 1).unwrap();
    let mut id = start[1];
    let first = TlsFrame {
        flags: FLAG_LENGTH | FLAG_MORE,
        message_length: Some(100),
        data: vec![0x16; 5],
    };
    let more = TlsFrame {
        flags: FLAG_MORE,
        message_length: None,
        data: vec![0x16; 5],
    };
    let mut step = server.handle(&response(id, &first));
    for _ in 0..4 {
        match step {
            ServerStep::Send(ack) => {
                id = ack[1];
                step = server.handle(&response(id, &more));
            }
            other => {
                step = other;
                break;
            }
        }
    }
    assert!(matches!(
        failure_of(step),
        FailureReason::Fragment(nido_eap::tls_frame::FragmentError::TooManyFragments(4))
    ));
}

#[test]
fn out_of_order_identifiers_are_discarded_then_fail() {
    let mut w = world();
    let settings = Settings {
        max_discards: 3,
        ..Settings::default()
    };
    let (mut server, start) = EapTlsServer::start(&w.dcs(), settings, w.now, 1).unwrap();
    let wrong = start[1].wrapping_add(5);
    let hello = TlsFrame {
        flags: 0,
        message_length: None,
        data: vec![0x16, 3, 1, 0, 0],
    };
    // Discarded silently (RFC 3748 §4.1), state unchanged ...
    for _ in 0..3 {
        assert!(matches!(
            server.handle(&response(wrong, &hello)),
            ServerStep::Ignored(_)
        ));
    }
    // ... until too many: EAP-Failure with the reason.
    assert!(matches!(
        failure_of(server.handle(&response(wrong, &hello))),
        FailureReason::Protocol(_)
    ));
}

#[test]
fn discarded_packets_leave_the_conversation_intact() {
    let mut w = world();
    let d = w.device(900, &DeviceProfile::standard(w.now));
    let creds = w.peer_creds(&d);
    let (mut server, start) = EapTlsServer::start(&w.dcs(), Settings::default(), w.now, 1).unwrap();
    let mut peer = EapTlsPeer::new(&creds, Settings::default(), "anonymous@x", w.now).unwrap();
    let PeerStep::Send(first) = peer.handle(&start) else {
        panic!()
    };
    // Junk and stale responses are discarded ...
    assert!(matches!(
        server.handle(&[0x02, 0x01]),
        ServerStep::Ignored(_)
    ));
    assert!(matches!(
        server.handle(&response(start[1].wrapping_sub(1), &TlsFrame::ack())),
        ServerStep::Ignored(_)
    ));
    // ... and the real one still completes the handshake, with EAP-Success
    // carrying the identifier of the response it answers.
    let mut step = server.handle(&first);
    loop {
        match step {
            ServerStep::Send(req) => {
                let PeerStep::Send(resp) = peer.handle(&req) else {
                    panic!()
                };
                step = server.handle(&resp);
            }
            ServerStep::Done(last, ServerOutcome::Success(_)) => {
                assert_eq!(last[1], server.identifier());
                assert!(matches!(
                    peer.handle(&last),
                    PeerStep::Done(PeerOutcome::Success(_))
                ));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn data_instead_of_an_ack_fails_with_no_leftover_fragment() {
    let mut w = world();
    let d = w.device(901, &DeviceProfile::standard(w.now));
    let creds = w.peer_creds(&d);
    let settings = Settings {
        fragment_size: 100,
        ..Settings::default()
    };
    let (mut server, start) = EapTlsServer::start(&w.dcs(), settings, w.now, 1).unwrap();
    let mut peer = EapTlsPeer::new(&creds, settings, "anonymous@x", w.now).unwrap();
    // The ClientHello, in fragments.
    let mut req = start;
    let first_flight = loop {
        let PeerStep::Send(resp) = peer.handle(&req) else {
            panic!()
        };
        match server.handle(&resp) {
            ServerStep::Send(r)
                if TlsFrame::decode(&Packet::decode(&r).unwrap().method.unwrap().1)
                    .unwrap()
                    .data
                    .is_empty() =>
            {
                req = r
            }
            ServerStep::Send(r) => break r,
            other => panic!("{other:?}"),
        }
    };
    // The server's flight is fragmented (M set): answer with data, not an ack.
    let frame =
        TlsFrame::decode(&Packet::decode(&first_flight).unwrap().method.unwrap().1).unwrap();
    assert!(frame.more());
    let bogus = TlsFrame {
        flags: 0,
        message_length: None,
        data: vec![0x15, 3, 3, 0, 2, 2, 40],
    };
    match server.handle(&response(first_flight[1], &bogus)) {
        ServerStep::Done(p, ServerOutcome::Failure(FailureReason::Protocol(_))) => {
            assert_eq!(p[0], 4)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retransmitted_request_gets_the_same_response() {
    let mut w = world();
    let d = w.device(500, &DeviceProfile::standard(w.now));
    let (_, start) = EapTlsServer::start(&w.dcs(), Settings::default(), w.now, 9).unwrap();
    let mut peer =
        EapTlsPeer::new(&w.peer_creds(&d), Settings::default(), "anonymous@x", w.now).unwrap();
    let PeerStep::Send(first) = peer.handle(&start) else {
        panic!()
    };
    let PeerStep::Send(again) = peer.handle(&start) else {
        panic!()
    };
    assert_eq!(first, again);
    assert_eq!(first[1], 9);
}

#[test]
fn peer_never_accepts_success_before_the_indication() {
    let mut w = world();
    let d = w.device(600, &DeviceProfile::standard(w.now));
    let (_, start) = EapTlsServer::start(&w.dcs(), Settings::default(), w.now, 1).unwrap();
    let mut peer =
        EapTlsPeer::new(&w.peer_creds(&d), Settings::default(), "anonymous@x", w.now).unwrap();
    assert!(matches!(peer.handle(&start), PeerStep::Send(_)));
    match peer.handle(&Packet::success(start[1]).to_bytes()) {
        PeerStep::Done(PeerOutcome::Failure(FailureReason::Protocol(_))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn identity_request_gets_the_anonymous_outer_identity() {
    let w = world();
    let d = w.device(700, &DeviceProfile::standard(w.now));
    let mut peer = EapTlsPeer::new(
        &w.peer_creds(&d),
        Settings::default(),
        "anonymous@dcs.acme.example",
        w.now,
    )
    .unwrap();
    let PeerStep::Send(resp) =
        peer.handle(&Packet::request(1, MethodType::Identity, vec![]).to_bytes())
    else {
        panic!()
    };
    let p = Packet::decode(&resp).unwrap();
    assert_eq!(
        p.method,
        Some((MethodType::Identity, b"anonymous@dcs.acme.example".to_vec()))
    );
}

/// A signer standing in for a secure element: it holds the key, exposes
/// only "sign this", and counts how often it was asked.
#[derive(Debug)]
struct SecureElement {
    inner: Arc<dyn rustls::sign::SigningKey>,
    signatures: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug)]
struct SeSigner {
    inner: Box<dyn rustls::sign::Signer>,
    signatures: Arc<std::sync::atomic::AtomicUsize>,
}

impl rustls::sign::Signer for SeSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.signatures
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.sign(message)
    }
    fn scheme(&self) -> rustls::SignatureScheme {
        self.inner.scheme()
    }
}

impl rustls::sign::SigningKey for SecureElement {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        let inner = self.inner.choose_scheme(offered)?;
        Some(Box::new(SeSigner {
            inner,
            signatures: self.signatures.clone(),
        }))
    }
    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.inner.algorithm()
    }
}

#[test]
fn device_key_in_a_secure_element_signs_through_the_trait() {
    let mut w = world();
    let d = w.device(800, &DeviceProfile::standard(w.now));
    let software = rustls::crypto::aws_lc_rs::sign::any_supported_type(&PrivateKeyDer::Pkcs8(
        d.key.clone_key(),
    ))
    .unwrap();
    let signatures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let se = Arc::new(SecureElement {
        inner: software,
        signatures: signatures.clone(),
    });
    let creds = DeviceCredentials::new(
        d.chain.clone(),
        se,
        w.mfr.root_der().clone(),
        w.mfr.dcs_realm(),
    )
    .unwrap();
    let r = run(&w.dcs(), &creds, Settings::default(), w.now);
    assert!(
        matches!(r.server, Some(ServerOutcome::Success(_))),
        "{:?}",
        r.server
    );
    assert!(matches!(r.peer, Some(PeerOutcome::Success(_))));
    // One CertificateVerify per handshake, signed inside the element.
    assert_eq!(signatures.load(std::sync::atomic::Ordering::SeqCst), 1);
}
