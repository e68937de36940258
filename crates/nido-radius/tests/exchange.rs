//! A client's `Pending` table and a server's `ReplyCache` together: the
//! retransmitted request is recognised as a duplicate (RFC 5080 §2.2.2) and
//! gets the same reply, which the client accepts once.

use std::time::Duration;

use nido_radius::client::{ClientError, Pending, RetransmitPolicy};
use nido_radius::dedup::{DedupKey, ReplyCache};
use nido_radius::{Code, Packet, Secret, attr, verify_request};

fn secret() -> Secret {
    Secret::new(b"shared between NAS and server").expect("secret")
}

/// The server: verify, answer from the cache or compute and cache.
fn serve(cache: &mut ReplyCache<&'static str>, octets: &[u8], now: Duration) -> (Vec<u8>, bool) {
    let req = verify_request(octets, &secret()).expect("verifies");
    let key = DedupKey {
        client: "192.0.2.1:1812",
        identifier: req.identifier,
        authenticator: req.authenticator,
    };
    if let Some(reply) = cache.lookup(&key, now) {
        return (reply.to_vec(), true);
    }
    let mut challenge = Packet::new(Code::AccessChallenge, req.identifier, [0; 16]);
    challenge.push_eap_message(&[1, 2, 0, 6, 13, 0x20]);
    challenge
        .push(attr::STATE, &[req.identifier; 8])
        .expect("push");
    let reply = challenge
        .encode_response(&secret(), &req.authenticator)
        .expect("signs");
    cache.insert(key, reply.clone(), now);
    (reply, false)
}

#[test]
fn retransmission_hits_the_reply_cache() {
    let s = Duration::from_secs;
    let mut client = Pending::new(RetransmitPolicy::default(), secret());
    let mut cache = ReplyCache::new(100, s(30));

    let mut req = Packet::new(Code::AccessRequest, 0, [0x42; 16]);
    req.push_eap_message(&[2, 1, 0, 9, 1, b'a', b'n', b'o', b'n']);
    let (id, first) = client.send(req, s(0), 0.0).expect("sends");
    let (reply, cached) = serve(&mut cache, &first, s(0));
    assert!(!cached);
    // The reply is lost; the client retransmits the same octets.
    let due = client.on_timeout(s(2), 0.0);
    assert_eq!(due.retransmit.len(), 1);
    assert_eq!(due.retransmit[0].octets, first);
    let (again, cached) = serve(&mut cache, &due.retransmit[0].octets, s(2));
    assert!(cached);
    assert_eq!(again, reply);
    let (got, p) = client.on_response(&again).expect("accepted");
    assert_eq!(got, id);
    assert_eq!(
        p.eap_packet().expect("EAP length"),
        Some(vec![1, 2, 0, 6, 13, 0x20])
    );
    // The first copy arriving late is no longer matched.
    assert_eq!(
        client.on_response(&reply),
        Err(ClientError::NoSuchRequest { identifier: id })
    );
    assert!(client.is_empty());
    assert_eq!(client.on_timeout(s(60), 0.0).failed, []);
}
