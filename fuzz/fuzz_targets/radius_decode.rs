//! The input is a datagram a RADIUS client or server may receive.
//!
//! - `Packet::decode` never panics; what decodes re-encodes to the packet's
//!   first Length octets (the rest is padding) and decodes back equal.
//! - `verify_request`, and `verify_response` against an Access-Request,
//!   Accounting-Request and Status-Server with one fixed secret and Request
//!   Authenticator (the Identifier taken from the input), never panic. An
//!   accepted Access-Request or Access reply carries exactly one
//!   Message-Authenticator.
//! - The EAP-Message reassembly, `Packet::msk` and MPPE `decrypt_key` on the
//!   input never panic; a key that decrypts fits the String.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nido_radius::mppe::{MppeKey, decrypt_key};
use nido_radius::{Code, Packet, RequestInfo, Secret, attr, verify_request, verify_response};

/// The secret the seeds in `seeds/radius_decode/` are signed with.
const SECRET: &[u8] = b"nido fuzz secret";
/// The Request Authenticator the seed replies answer.
const REQUEST_AUTHENTICATOR: [u8; 16] = [0x5a; 16];

fuzz_target!(|data: &[u8]| {
    let Ok(secret) = Secret::new(SECRET) else {
        return;
    };
    if let Ok(p) = Packet::decode(data) {
        let octets = p.encode().expect("what decodes encodes");
        let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
        assert_eq!(octets, data[..length], "re-encoding differs");
        assert_eq!(Packet::decode(&octets).as_ref(), Ok(&p));
        let _ = p.eap_packet();
        let _ = p.msk(&secret, &REQUEST_AUTHENTICATOR);
    }

    if let Ok(p) = verify_request(data, &secret) {
        if matches!(p.code, Code::AccessRequest | Code::StatusServer) {
            assert_eq!(p.attrs(attr::MESSAGE_AUTHENTICATOR).count(), 1);
        }
    }
    let identifier = data.get(1).copied().unwrap_or(0);
    for code in [
        Code::AccessRequest,
        Code::AccountingRequest,
        Code::StatusServer,
    ] {
        let request = RequestInfo {
            code,
            identifier,
            authenticator: REQUEST_AUTHENTICATOR,
        };
        if let Ok(p) = verify_response(data, &secret, &request) {
            assert_eq!(p.identifier, identifier);
            if p.code.is_access_reply() {
                assert_eq!(p.attrs(attr::MESSAGE_AUTHENTICATOR).count(), 1);
            }
        }
    }

    for kind in [MppeKey::Send, MppeKey::Recv] {
        if let Ok(key) = decrypt_key(kind, data, &secret, &REQUEST_AUTHENTICATOR) {
            assert!(key.len() + 9 <= data.len());
        }
    }
});
