//! The PVS messages and their CoAP framing.
#![allow(clippy::unwrap_used)]

use nido_prov::coap::{self, CoapError, ErrorCode, Path, ResponseBody, Token};
use nido_prov::package::SealedPackage;
use nido_prov::{
    Confirmation, ConfirmationAck, ProvError, ProvisioningRequest, ProvisioningResponse,
};
use nido_sec::suci::Profile;
use proptest::prelude::*;

fn request() -> ProvisioningRequest {
    ProvisioningRequest {
        device_public_key: [0xaa; 32],
        nonce: [0x42; 16],
        suci_profiles: vec![Profile::A, Profile::B],
        claim_hint: Some("acme".into()),
        erasure_receipt: None,
    }
}

#[test]
fn request_golden_prefix_and_round_trip() {
    let bytes = request().encode();
    assert_eq!(bytes[0], 0xa5); // map(5)
    assert_eq!(&bytes[1..10], b"\x67version\x01");
    assert_eq!(&bytes[10..28], b"\x71device_public_key");
    assert_eq!(&bytes[28..30], &[0x58, 0x20]); // bstr(32)
    assert!(bytes.ends_with(b"\x6aclaim_hint\x64acme"));
    assert_eq!(ProvisioningRequest::decode(&bytes).unwrap(), request());
}

/// A message decoder with the value dropped.
type Decoder = fn(&[u8]) -> Result<(), ProvError>;

#[test]
fn decoders_reject_trailing_bytes_and_other_versions() {
    let sealed = SealedPackage {
        enc: [1; 32],
        ciphertext: vec![2; 40],
    };
    let encodings: Vec<(Vec<u8>, Decoder)> = vec![
        (request().encode(), |b| {
            ProvisioningRequest::decode(b).map(drop)
        }),
        (ProvisioningResponse::Provisioned(sealed).encode(), |b| {
            ProvisioningResponse::decode(b).map(drop)
        }),
        (
            Confirmation {
                package_id: [3; 16],
                mac: [4; 32],
            }
            .encode(),
            |b| Confirmation::decode(b).map(drop),
        ),
        (
            ConfirmationAck {
                package_id: [3; 16],
            }
            .encode(),
            |b| ConfirmationAck::decode(b).map(drop),
        ),
    ];
    for (bytes, decode) in encodings {
        decode(&bytes).unwrap();
        let mut trailing = bytes.clone();
        trailing.push(0xf6);
        assert!(matches!(
            decode(&trailing),
            Err(ProvError::TrailingBytes { count: 1, .. })
        ));
        // every message starts with map head, then "version": 1.
        assert_eq!(&bytes[1..10], b"\x67version\x01");
        for v in [0u8, 2, 23] {
            let mut other = bytes.clone();
            other[9] = v;
            assert!(
                matches!(decode(&other), Err(ProvError::Version { .. })),
                "version {v}"
            );
        }
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

#[test]
fn wrong_lengths_name_the_field() {
    let mut bytes = request().encode();
    // nonce: bstr(16) → bstr(15), drop one octet
    let at = bytes.windows(6).position(|w| w == b"\x65nonce").unwrap() + 6;
    assert_eq!(bytes[at], 0x50);
    bytes[at] = 0x4f;
    bytes.remove(at + 1);
    let err = ProvisioningRequest::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        ProvError::Length {
            what: "ProvisioningRequest",
            field: "nonce",
            expected: 16,
            got: 15
        }
    );
    assert_eq!(
        err.to_string(),
        "ProvisioningRequest.nonce: expected 16 octets, got 15"
    );
}

#[test]
fn missing_unknown_and_inconsistent_fields() {
    // {"version": 1, "package_id": h'03…'} is an Ack, not a Confirmation.
    let ack = ConfirmationAck {
        package_id: [3; 16],
    }
    .encode();
    assert_eq!(
        Confirmation::decode(&ack),
        Err(ProvError::Missing {
            what: "Confirmation",
            field: "mac"
        })
    );
    // A Confirmation is not an Ack: "mac" is unknown there.
    let conf = Confirmation {
        package_id: [3; 16],
        mac: [4; 32],
    }
    .encode();
    assert!(matches!(
        ConfirmationAck::decode(&conf),
        Err(ProvError::UnknownField { field, .. }) if field == "mac"
    ));
    // A rejected response carrying no reason.
    let bytes = [&[0xa2][..], b"\x67version\x01", b"\x66status\x01"].concat();
    assert!(matches!(
        ProvisioningResponse::decode(&bytes),
        Err(ProvError::Missing {
            field: "reason",
            ..
        })
    ));
    // Repeated SUCI profile.
    let mut r = request();
    r.suci_profiles = vec![Profile::A, Profile::A];
    assert!(matches!(
        ProvisioningRequest::decode(&r.encode()),
        Err(ProvError::Invalid { field, .. }) if field == "suci_profiles"
    ));
    // Not CBOR at all / not a map.
    assert!(ProvisioningRequest::decode(&[0xff]).is_err());
    assert!(ProvisioningRequest::decode(&[0x01]).is_err());
    assert!(ProvisioningRequest::decode(&[]).is_err());
}

#[test]
fn coap_request_round_trip() {
    let token = Token::new(&[1, 2, 3, 4]).unwrap();
    let payload = request().encode();
    let bytes = coap::request(Path::Request, 0x1234, &token, &payload).unwrap();
    // Ver 1, CON, TKL 4; POST (0.02); message id.
    assert_eq!(&bytes[..4], &[0x44, 0x02, 0x12, 0x34]);
    let parsed = coap::parse_request(&bytes).unwrap();
    assert_eq!(parsed.path, Path::Request);
    assert_eq!(parsed.message_id, 0x1234);
    assert_eq!(parsed.token, token);
    assert_eq!(
        ProvisioningRequest::decode(&parsed.payload).unwrap(),
        request()
    );

    let confirm = coap::request(Path::Confirm, 7, &Token::default(), b"\xa0").unwrap();
    assert_eq!(coap::parse_request(&confirm).unwrap().path, Path::Confirm);
}

#[test]
fn coap_request_refusals() {
    let token = Token::new(&[9]).unwrap();
    let good = coap::request(Path::Confirm, 1, &token, b"\xa0").unwrap();
    // NON instead of CON.
    let mut non = good.clone();
    non[0] = (non[0] & 0xcf) | 0x10;
    assert!(matches!(
        coap::parse_request(&non),
        Err(ProvError::Coap(CoapError::MessageType("NON")))
    ));
    // GET instead of POST.
    let mut get = good.clone();
    get[1] = 0x01;
    let err = coap::parse_request(&get).unwrap_err();
    let ProvError::Coap(c) = err else { panic!() };
    assert_eq!(c.response_code(), ErrorCode::MethodNotAllowed);
    // Unknown path: "confirm" → "confirX".
    let mut path = good.clone();
    let at = path.windows(7).position(|w| w == b"confirm").unwrap();
    path[at + 6] = b'X';
    let ProvError::Coap(c) = coap::parse_request(&path).unwrap_err() else {
        panic!()
    };
    assert_eq!(c, CoapError::Path("prov/v1/confirX".into()));
    assert_eq!(c.response_code(), ErrorCode::NotFound);
    // Garbage and too-long tokens.
    assert!(coap::parse_request(&[0x40]).is_err());
    assert!(coap::parse_request(&[0x49, 0x02, 0, 0]).is_err());
    assert!(Token::new(&[0; 9]).is_err());
}

#[test]
fn coap_response_round_trip() {
    let token = Token::new(&[0xde, 0xad]).unwrap();
    let body = ResponseBody::Changed(
        ProvisioningResponse::Rejected {
            reason: "policy".into(),
        }
        .encode(),
    );
    let bytes = coap::response(0x0102, &token, &body).unwrap();
    // Ver 1, ACK, TKL 2; 2.04.
    assert_eq!(&bytes[..4], &[0x62, 0x44, 0x01, 0x02]);
    let parsed = coap::parse_response(&bytes).unwrap();
    assert_eq!(parsed.message_id, 0x0102);
    assert_eq!(parsed.token, token);
    assert_eq!(parsed.body, body);

    for code in [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedContentFormat,
        ErrorCode::InternalServerError,
        ErrorCode::ServiceUnavailable,
    ] {
        let body = ResponseBody::Error {
            code,
            diagnostic: "bad MAC".into(),
        };
        let bytes = coap::response(9, &token, &body).unwrap();
        assert_eq!(coap::parse_response(&bytes).unwrap().body, body);
    }
    assert_eq!(ErrorCode::UnsupportedContentFormat.dotted(), "4.15");
    // A request is not a response.
    let req = coap::request(Path::Request, 1, &token, b"\xa0").unwrap();
    assert!(coap::parse_response(&req).is_err());
}

fn profiles() -> impl Strategy<Value = Vec<Profile>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![Profile::A]),
        Just(vec![Profile::B]),
        Just(vec![Profile::A, Profile::B]),
        Just(vec![Profile::B, Profile::A]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_round_trips(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 16]>(),
        suci_profiles in profiles(),
        claim_hint in proptest::option::of(".{0,40}"),
    ) {
        let r = ProvisioningRequest { device_public_key: key, nonce, suci_profiles, claim_hint, erasure_receipt: None };
        prop_assert_eq!(ProvisioningRequest::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn response_round_trips(
        enc in any::<[u8; 32]>(),
        ciphertext in proptest::collection::vec(any::<u8>(), 0..600),
        reason in ".{0,60}",
        status in 0u8..3,
    ) {
        let r = match status {
            0 => ProvisioningResponse::Provisioned(SealedPackage { enc, ciphertext }),
            1 => ProvisioningResponse::Rejected { reason },
            _ => ProvisioningResponse::RetryLater { reason },
        };
        prop_assert_eq!(ProvisioningResponse::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn confirmation_round_trips(package_id in any::<[u8; 16]>(), mac in any::<[u8; 32]>()) {
        let c = Confirmation { package_id, mac };
        prop_assert_eq!(Confirmation::decode(&c.encode()).unwrap(), c);
        let a = ConfirmationAck { package_id };
        prop_assert_eq!(ConfirmationAck::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn coap_round_trips(
        message_id in any::<u16>(),
        token in proptest::collection::vec(any::<u8>(), 0..=8),
        payload in proptest::collection::vec(any::<u8>(), 0..2000),
        confirm in any::<bool>(),
    ) {
        let token = Token::new(&token).unwrap();
        let path = if confirm { Path::Confirm } else { Path::Request };
        let parsed = coap::parse_request(&coap::request(path, message_id, &token, &payload).unwrap()).unwrap();
        prop_assert_eq!(parsed.path, path);
        prop_assert_eq!(parsed.message_id, message_id);
        prop_assert_eq!(&parsed.token, &token);
        prop_assert_eq!(parsed.payload, payload.clone());
        let body = ResponseBody::Changed(payload);
        let parsed = coap::parse_response(&coap::response(message_id, &token, &body).unwrap()).unwrap();
        prop_assert_eq!(parsed.body, body);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ProvisioningRequest::decode(&bytes);
        let _ = ProvisioningResponse::decode(&bytes);
        let _ = Confirmation::decode(&bytes);
        let _ = ConfirmationAck::decode(&bytes);
        let _ = nido_prov::CredentialPackage::from_cbor(&bytes);
        let _ = coap::parse_request(&bytes);
        let _ = coap::parse_response(&bytes);
    }
}

#[test]
fn huge_declared_lengths_fail_cleanly() {
    for bytes in [
        &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0x81; 5000],
    ] {
        assert!(ProvisioningRequest::decode(bytes).is_err());
        assert!(nido_prov::CredentialPackage::from_cbor(bytes).is_err());
    }
}
