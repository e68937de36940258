//! RFC 2865 §7.1 ("User Telnet to Specified Host"): the published
//! Access-Request and Access-Accept, shared secret "xyzzy5461".
//!
//! The octets were checked independently: the Response Authenticator and
//! the hidden User-Password ("arctangent") recomputed with Python's hashlib
//! from the RFC's formulas match the published octets.

use nido_radius::auth::{hide_password, response_authenticator, reveal_password};
use nido_radius::{
    AuthError, Code, Packet, RequestInfo, Secret, attr, verify_request, verify_response,
};

const REQUEST: &str = "01000038 0f403f9473978057bd83d5cb98f4227a \
                       01066e656d6f 02120dbe708d93d413ce3196e43f782a0aee \
                       0406c0a80110 050600000003";
const ACCEPT: &str = "02000026 86fe220e7624ba2a1005f6bf9b55e0b2 \
                      060600000001 0f0600000000 0e06c0a80103";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

fn secret() -> Secret {
    Secret::new(b"xyzzy5461").expect("secret")
}

fn request_authenticator() -> [u8; 16] {
    h("0f403f9473978057bd83d5cb98f4227a")
        .try_into()
        .expect("16 octets")
}

#[test]
fn request_decodes_and_password_reveals() {
    let octets = h(REQUEST);
    let p = Packet::decode(&octets).expect("decodes");
    assert_eq!(p.code, Code::AccessRequest);
    assert_eq!(p.identifier, 0);
    assert_eq!(p.authenticator, request_authenticator());
    assert_eq!(p.attr(attr::USER_NAME), Some(&b"nemo"[..]));
    assert_eq!(p.attr(attr::NAS_IP_ADDRESS), Some(&[192, 168, 1, 16][..]));
    assert_eq!(p.attr(attr::NAS_PORT), Some(&[0, 0, 0, 3][..]));
    let hidden = p.attr(attr::USER_PASSWORD).expect("User-Password");
    let pw = reveal_password(hidden, &secret(), &request_authenticator()).expect("reveals");
    assert_eq!(pw.as_slice(), b"arctangent");
    assert_eq!(
        hide_password(b"arctangent", &secret(), &request_authenticator()).expect("hides"),
        hidden
    );
    assert_eq!(p.encode().expect("encodes"), octets);
}

#[test]
fn accept_response_authenticator() {
    let octets = h(ACCEPT);
    let auth = response_authenticator(&octets, &secret(), &request_authenticator()).expect("ok");
    assert_eq!(auth.to_vec(), h("86fe220e7624ba2a1005f6bf9b55e0b2"));
    let p = Packet::decode(&octets).expect("decodes");
    assert_eq!(p.attr(attr::SERVICE_TYPE), Some(&[0, 0, 0, 1][..]));
    assert_eq!(p.attr(attr::LOGIN_SERVICE), Some(&[0, 0, 0, 0][..]));
    assert_eq!(p.attr(attr::LOGIN_IP_HOST), Some(&[192, 168, 1, 3][..]));
    assert_eq!(p.encode().expect("encodes"), octets);
}

/// 1998 octets meet 2024 policy: the Response Authenticator verifies (the
/// check before the Message-Authenticator one), but an Access-Accept
/// without a Message-Authenticator is refused.
#[test]
fn published_packets_lack_a_message_authenticator() {
    let request = RequestInfo::from_octets(&h(REQUEST)).expect("header");
    assert_eq!(
        verify_response(&h(ACCEPT), &secret(), &request),
        Err(AuthError::MissingMessageAuthenticator)
    );
    let mut tampered = h(ACCEPT);
    tampered[37] ^= 1;
    assert_eq!(
        verify_response(&tampered, &secret(), &request),
        Err(AuthError::BadResponseAuthenticator)
    );
    assert_eq!(
        verify_request(&h(REQUEST), &secret()),
        Err(AuthError::MissingMessageAuthenticator)
    );
}

/// Signed the 2024 way, the same exchange verifies both ways.
#[test]
fn same_exchange_with_message_authenticators() {
    let request = Packet::decode(&h(REQUEST)).expect("decodes");
    let sent = request.encode_request(&secret()).expect("signs");
    assert_eq!(sent.len(), 0x38 + 18);
    let got = verify_request(&sent, &secret()).expect("verifies");
    assert_eq!(got.attributes[0].typ, attr::MESSAGE_AUTHENTICATOR);
    assert_eq!(got.attributes[1..], request.attributes[..]);

    let accept = Packet::decode(&h(ACCEPT)).expect("decodes");
    let reply = accept
        .encode_response(&secret(), &request_authenticator())
        .expect("signs");
    let info = RequestInfo::from_octets(&sent).expect("header");
    let got = verify_response(&reply, &secret(), &info).expect("verifies");
    assert_eq!(got.attributes[1..], accept.attributes[..]);
}
