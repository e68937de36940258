//! Properties: encoding round-trips; decoding and verifying never panic on
//! any octets; signed packets verify and any single flipped octet fails;
//! EAP-Message and MPPE keys round-trip.

use nido_radius::mppe::{MppeKey, decrypt_key, encrypt_key};
use nido_radius::{Attribute, Code, Packet, RequestInfo, Secret, verify_request, verify_response};
use proptest::prelude::*;

fn secret() -> Secret {
    Secret::new(b"proptest secret").expect("secret")
}

fn arb_attribute() -> impl Strategy<Value = Attribute> {
    (any::<u8>(), prop::collection::vec(any::<u8>(), 0..=253))
        .prop_map(|(typ, value)| Attribute { typ, value })
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    // At most 15 attributes of at most 255 octets: always within 4096.
    (
        any::<u8>(),
        any::<u8>(),
        any::<[u8; 16]>(),
        prop::collection::vec(arb_attribute(), 0..15),
    )
        .prop_map(|(code, identifier, authenticator, attributes)| Packet {
            code: Code::from(code),
            identifier,
            authenticator,
            attributes,
        })
}

fn with_code(mut p: Packet, code: Code) -> Packet {
    p.code = code;
    p
}

proptest! {
    #[test]
    fn encode_decode_round_trip(p in arb_packet()) {
        let octets = p.encode().expect("within limits");
        prop_assert_eq!(octets.len(), p.encoded_len());
        prop_assert_eq!(Packet::decode(&octets), Ok(p));
    }

    #[test]
    fn decode_never_panics(octets in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(p) = Packet::decode(&octets) {
            let again = p.encode().expect("what decodes encodes");
            let len = usize::from(u16::from_be_bytes([octets[2], octets[3]]));
            prop_assert_eq!(&again[..], &octets[..len]);
        }
        let s = secret();
        let _ = verify_request(&octets, &s);
        for code in [Code::AccessRequest, Code::AccountingRequest, Code::StatusServer, Code::Unknown(9)] {
            let info = RequestInfo { code, identifier: octets.get(1).copied().unwrap_or(0), authenticator: [3; 16] };
            let _ = verify_response(&octets, &s, &info);
        }
        let _ = decrypt_key(MppeKey::Send, &octets, &s, &[0; 16]);
        let _ = nido_radius::eap::check_eap_length(&octets);
    }

    /// Mutations of a valid packet reach deeper than random octets.
    #[test]
    fn mutated_packets_never_panic(
        p in arb_packet(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut octets = p.encode().expect("within limits");
        for (i, v) in edits {
            let i = i.index(octets.len());
            octets[i] = v;
        }
        octets.truncate(cut.index(octets.len() + 1).max(1));
        if let Ok(q) = Packet::decode(&octets) {
            prop_assert_eq!(Packet::decode(&q.encode().expect("encodes")), Ok(q));
        }
        let _ = verify_request(&octets, &secret());
        let info = RequestInfo { code: Code::AccessRequest, identifier: p.identifier, authenticator: p.authenticator };
        let _ = verify_response(&octets, &secret(), &info);
    }

    #[test]
    fn signed_requests_verify_and_flips_fail(
        p in arb_packet(),
        code in prop::sample::select(vec![Code::AccessRequest, Code::StatusServer, Code::AccountingRequest]),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut p = with_code(p, code);
        p.attributes.truncate(14); // room for the Message-Authenticator
        let octets = p.encode_request(&secret()).expect("signs");
        prop_assert!(verify_request(&octets, &secret()).is_ok());
        let mut t = octets.clone();
        let i = flip.index(t.len());
        t[i] ^= 1 << bit;
        prop_assert!(verify_request(&t, &secret()).is_err());
    }

    #[test]
    fn signed_replies_verify_and_flips_fail(
        p in arb_packet(),
        code in prop::sample::select(vec![Code::AccessAccept, Code::AccessReject, Code::AccessChallenge]),
        request_auth in any::<[u8; 16]>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut p = with_code(p, code);
        p.attributes.truncate(14);
        let info = RequestInfo { code: Code::AccessRequest, identifier: p.identifier, authenticator: request_auth };
        let octets = p.encode_response(&secret(), &request_auth).expect("signs");
        prop_assert!(verify_response(&octets, &secret(), &info).is_ok());
        let mut t = octets.clone();
        let i = flip.index(t.len());
        t[i] ^= 0x40;
        prop_assert!(verify_response(&t, &secret(), &info).is_err());
    }

    #[test]
    fn eap_message_round_trip(eap in prop::collection::vec(any::<u8>(), 1..3000)) {
        let mut p = Packet::new(Code::AccessChallenge, 0, [0; 16]);
        p.push_eap_message(&eap);
        prop_assert!(p.attributes.iter().all(|a| a.value.len() <= 253 && !a.value.is_empty()));
        let q = Packet::decode(&p.encode().expect("fits")).expect("decodes");
        prop_assert_eq!(q.eap_message(), Some(eap));
    }

    #[test]
    fn mppe_round_trip(
        key in prop::collection::vec(any::<u8>(), 0..=239),
        salt in any::<u16>(),
        ra in any::<[u8; 16]>(),
        send in any::<bool>(),
    ) {
        let kind = if send { MppeKey::Send } else { MppeKey::Recv };
        let salt = salt | 0x8000;
        let v = encrypt_key(kind, &key, &secret(), &ra, salt).expect("encrypts");
        prop_assert!(v.len() <= 253);
        prop_assert_eq!(&*decrypt_key(kind, &v, &secret(), &ra).expect("decrypts"), &key);
    }
}
