//! Message-Authenticator (RFC 3579 §3.2) and the authenticators of RFC 2865
//! §3 and RFC 2866 §3: what nido signs verifies; any tampered octet, a
//! missing, duplicated, short or wrongly computed Message-Authenticator, a
//! wrong secret, Identifier or reply Code is refused.

use hmac::{KeyInit, Mac};
use nido_radius::auth::response_authenticator;
use nido_radius::{
    AuthError, Code, DecodeError, Packet, RequestInfo, Secret, attr, verify_request,
    verify_response,
};

fn secret() -> Secret {
    Secret::new(b"testing123").expect("secret")
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn request(code: Code) -> Packet {
    let mut p = Packet::new(code, 42, *b"0123456789abcdef");
    p.push(
        attr::USER_NAME,
        b"anonymous@5gc.mnc001.mcc001.3gppnetwork.org",
    )
    .expect("push");
    p.push(attr::CALLING_STATION_ID, b"02-00-00-00-00-01")
        .expect("push");
    p.push_eap_message(&[2, 0, 0, 9, 1, b'a', b'n', b'o', b'n']);
    p.push(200, b"unknown attributes are kept").expect("push");
    p
}

fn reply(code: Code) -> Packet {
    let mut p = Packet::new(code, 42, [0; 16]);
    p.push_eap_message(&[3, 0, 0, 4]);
    p.push(attr::STATE, b"state").expect("push");
    p
}

const REQUESTS: [Code; 3] = [
    Code::AccessRequest,
    Code::StatusServer,
    Code::AccountingRequest,
];

#[test]
fn requests_verify_and_carry_one_message_authenticator_first() {
    for code in REQUESTS {
        let mut p = request(code);
        // A stale Message-Authenticator is replaced, not duplicated.
        p.push(attr::MESSAGE_AUTHENTICATOR, &[9; 16]).expect("push");
        let octets = p.encode_request(&secret()).expect("signs");
        let got = verify_request(&octets, &secret()).expect("verifies");
        assert_eq!(
            got.attributes[0].typ,
            attr::MESSAGE_AUTHENTICATOR,
            "{code:?}"
        );
        assert_eq!(got.attrs(attr::MESSAGE_AUTHENTICATOR).count(), 1);
        assert_eq!(got.attributes[1..], request(code).attributes[..]);
        if code == Code::AccountingRequest {
            assert_ne!(got.authenticator, p.authenticator);
        } else {
            assert_eq!(got.authenticator, p.authenticator);
        }
        // Padding after Length is ignored.
        let mut padded = octets.clone();
        padded.extend_from_slice(&[0xee; 7]);
        assert_eq!(verify_request(&padded, &secret()), Ok(got));
    }
}

#[test]
fn every_tampered_octet_fails() {
    for code in REQUESTS {
        let octets = request(code).encode_request(&secret()).expect("signs");
        for i in 0..octets.len() {
            for bit in [0x01, 0x80] {
                let mut t = octets.clone();
                t[i] ^= bit;
                assert!(verify_request(&t, &secret()).is_err(), "{code:?} octet {i}");
            }
        }
        assert!(verify_request(&octets, &Secret::new(b"testing124").expect("s")).is_err());
    }
    for code in [
        Code::AccessAccept,
        Code::AccessReject,
        Code::AccessChallenge,
    ] {
        let sent = request(Code::AccessRequest)
            .encode_request(&secret())
            .expect("signs");
        let info = RequestInfo::from_octets(&sent).expect("header");
        let octets = reply(code)
            .encode_response(&secret(), &info.authenticator)
            .expect("signs");
        assert!(verify_response(&octets, &secret(), &info).is_ok());
        for i in 0..octets.len() {
            let mut t = octets.clone();
            t[i] ^= 0x01;
            assert!(
                verify_response(&t, &secret(), &info).is_err(),
                "{code:?} octet {i}"
            );
        }
    }
}

#[test]
fn missing_message_authenticator_refused() {
    for code in [Code::AccessRequest, Code::StatusServer] {
        let octets = request(code).encode().expect("encodes");
        assert_eq!(
            verify_request(&octets, &secret()),
            Err(AuthError::MissingMessageAuthenticator)
        );
    }
    // An Access-Accept with a valid Response Authenticator but no
    // Message-Authenticator: what a BlastRADIUS forgery looks like.
    let info = RequestInfo {
        code: Code::AccessRequest,
        identifier: 42,
        authenticator: [7; 16],
    };
    for code in [
        Code::AccessAccept,
        Code::AccessReject,
        Code::AccessChallenge,
    ] {
        let mut octets = reply(code).encode().expect("encodes");
        let auth = response_authenticator(&octets, &secret(), &info.authenticator).expect("ok");
        octets[4..20].copy_from_slice(&auth);
        assert_eq!(
            verify_response(&octets, &secret(), &info),
            Err(AuthError::MissingMessageAuthenticator)
        );
    }
}

/// Re-signs `p` by hand: Message-Authenticator over the packet with
/// `ma_field` in the Authenticator field, then the Response Authenticator.
fn sign_reply_by_hand(p: &Packet, ma_field: &[u8; 16], request_auth: &[u8; 16]) -> Vec<u8> {
    let mut p = p.clone();
    p.authenticator = *ma_field;
    let mut octets = p.encode().expect("encodes");
    let mut at = 20;
    for a in &p.attributes {
        if a.typ == attr::MESSAGE_AUTHENTICATOR && a.value.len() == 16 {
            let mac = hmac_md5(b"testing123", &octets);
            octets[at + 2..at + 18].copy_from_slice(&mac);
        }
        at += 2 + a.value.len();
    }
    let auth = response_authenticator(&octets, &secret(), request_auth).expect("ok");
    octets[4..20].copy_from_slice(&auth);
    octets
}

#[test]
fn reply_message_authenticator_uses_the_request_authenticator() {
    let info = RequestInfo {
        code: Code::AccessRequest,
        identifier: 42,
        authenticator: [7; 16],
    };
    let mut p = reply(Code::AccessAccept);
    p.push(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).expect("push");
    // By hand, RFC 3579 §3.2 way: the same octets nido signs (MA last here).
    let good = sign_reply_by_hand(&p, &info.authenticator, &info.authenticator);
    assert!(verify_response(&good, &secret(), &info).is_ok());
    // Computed with a zero Authenticator field: refused.
    let zero = sign_reply_by_hand(&p, &[0; 16], &info.authenticator);
    assert_eq!(
        verify_response(&zero, &secret(), &info),
        Err(AuthError::BadMessageAuthenticator)
    );
}

#[test]
fn duplicate_or_short_message_authenticator_refused() {
    let mut p = request(Code::AccessRequest);
    p.push(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).expect("push");
    p.push(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).expect("push");
    assert_eq!(
        verify_request(&p.encode().expect("encodes"), &secret()),
        Err(AuthError::DuplicateMessageAuthenticator { count: 2 })
    );
    // Signed properly, then a second (valid-looking) copy appended.
    let signed = request(Code::AccessRequest)
        .encode_request(&secret())
        .expect("signs");
    let mut twice = Packet::decode(&signed).expect("decodes");
    let ma = twice.attributes[0].clone();
    twice.attributes.push(ma);
    assert_eq!(
        verify_request(&twice.encode().expect("encodes"), &secret()),
        Err(AuthError::DuplicateMessageAuthenticator { count: 2 })
    );
    let mut short = request(Code::StatusServer);
    short.attributes.insert(
        0,
        nido_radius::Attribute {
            typ: attr::MESSAGE_AUTHENTICATOR,
            value: vec![0; 15],
        },
    );
    assert_eq!(
        verify_request(&short.encode().expect("encodes"), &secret()),
        Err(AuthError::MessageAuthenticatorLength {
            offset: 20,
            length: 15
        })
    );
    // Same rules on replies.
    let info = RequestInfo {
        code: Code::AccessRequest,
        identifier: 42,
        authenticator: [7; 16],
    };
    let mut r = reply(Code::AccessChallenge);
    r.push(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).expect("push");
    r.push(attr::MESSAGE_AUTHENTICATOR, &[0; 16]).expect("push");
    let octets = sign_reply_by_hand(&r, &info.authenticator, &info.authenticator);
    assert_eq!(
        verify_response(&octets, &secret(), &info),
        Err(AuthError::DuplicateMessageAuthenticator { count: 2 })
    );
}

#[test]
fn accounting() {
    let octets = request(Code::AccountingRequest)
        .encode_request(&secret())
        .expect("signs");
    let info = RequestInfo::from_octets(&octets).expect("header");
    // RFC 2866 §3: MD5 over the packet with a zero authenticator, plus secret.
    let mut zeroed = octets.clone();
    zeroed[4..20].fill(0);
    let expected = response_authenticator(&zeroed, &secret(), &[0; 16]).expect("ok");
    assert_eq!(info.authenticator, expected);
    // An Accounting-Request without Message-Authenticator still verifies
    // (RFC 2866 has none); with a bad authenticator it does not.
    let mut plain = request(Code::AccountingRequest);
    plain.authenticator = [0; 16];
    let mut bare = plain.encode().expect("encodes");
    let auth = response_authenticator(&bare, &secret(), &[0; 16]).expect("ok");
    bare[4..20].copy_from_slice(&auth);
    assert!(verify_request(&bare, &secret()).is_ok());
    bare[19] ^= 1;
    assert_eq!(
        verify_request(&bare, &secret()),
        Err(AuthError::BadRequestAuthenticator)
    );

    let response = Packet::new(Code::AccountingResponse, info.identifier, [0; 16]);
    let r = response
        .encode_response(&secret(), &info.authenticator)
        .expect("signs");
    let got = verify_response(&r, &secret(), &info).expect("verifies");
    assert_eq!(got.attrs(attr::MESSAGE_AUTHENTICATOR).count(), 1);
    // An Access-Accept does not answer an Accounting-Request.
    let wrong = Packet::new(Code::AccessAccept, info.identifier, [0; 16]);
    let w = wrong
        .encode_response(&secret(), &info.authenticator)
        .expect("signs");
    assert_eq!(
        verify_response(&w, &secret(), &info),
        Err(AuthError::UnexpectedReply {
            request: Code::AccountingRequest,
            reply: Code::AccessAccept
        })
    );
}

#[test]
fn reply_checks() {
    let sent = request(Code::AccessRequest)
        .encode_request(&secret())
        .expect("signs");
    let info = RequestInfo::from_octets(&sent).expect("header");
    let mut other_id = reply(Code::AccessAccept);
    other_id.identifier = 43;
    let o = other_id
        .encode_response(&secret(), &info.authenticator)
        .expect("signs");
    assert_eq!(
        verify_response(&o, &secret(), &info),
        Err(AuthError::IdentifierMismatch {
            expected: 42,
            found: 43
        })
    );
    let acct = Packet::new(Code::AccountingResponse, 42, [0; 16]);
    let a = acct
        .encode_response(&secret(), &info.authenticator)
        .expect("signs");
    assert!(matches!(
        verify_response(&a, &secret(), &info),
        Err(AuthError::UnexpectedReply { .. })
    ));
    let r = reply(Code::AccessAccept)
        .encode_response(&secret(), &info.authenticator)
        .expect("signs");
    assert_eq!(
        verify_response(&r, &Secret::new(b"testing12").expect("s"), &info),
        Err(AuthError::BadResponseAuthenticator)
    );
    let mut other_request = info;
    other_request.authenticator[0] ^= 1;
    assert_eq!(
        verify_response(&r, &secret(), &other_request),
        Err(AuthError::BadResponseAuthenticator)
    );
    // Status-Server is answered by Access-Accept (RFC 5997).
    let ss = request(Code::StatusServer)
        .encode_request(&secret())
        .expect("signs");
    let ss = RequestInfo::from_octets(&ss).expect("header");
    let ok = Packet::new(Code::AccessAccept, 42, [0; 16]);
    let ok = ok
        .encode_response(&secret(), &ss.authenticator)
        .expect("signs");
    assert!(verify_response(&ok, &secret(), &ss).is_ok());
}

#[test]
fn wrong_direction_refused() {
    assert_eq!(
        reply(Code::AccessAccept).encode_request(&secret()),
        Err(AuthError::NotARequest(Code::AccessAccept))
    );
    assert_eq!(
        request(Code::AccessRequest).encode_response(&secret(), &[0; 16]),
        Err(AuthError::NotAReply(Code::AccessRequest))
    );
    let accept = reply(Code::AccessAccept)
        .encode_response(&secret(), &[0; 16])
        .expect("signs");
    assert_eq!(
        verify_request(&accept, &secret()),
        Err(AuthError::NotARequest(Code::AccessAccept))
    );
    assert!(matches!(
        verify_request(&[1, 0, 0], &secret()),
        Err(AuthError::Decode(DecodeError::Truncated { .. }))
    ));
}
