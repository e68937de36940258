//! The input is what either end of the PVS protocol may receive: a CoAP
//! message, a CBOR message, a sealed package or a package's plaintext. Every
//! decoder of `nido-prov` gets the whole input.
//!
//! - `ProvisioningRequest`, `ProvisioningResponse`, `Confirmation`,
//!   `ConfirmationAck`, `SealedPackage::decode`, `CredentialPackage::from_cbor`,
//!   `coap::parse_request` and `coap::parse_response` never panic. What
//!   decodes re-encodes, the re-encoding decodes to an equal value, and
//!   encoding that value again gives the same octets.
//! - The payload of a CoAP request or 2.04 response goes on to the message
//!   decoders of its resource.
//! - `package::open` with one fixed device key, binding and K_PROV (the
//!   HPKE PSK), of every sealed package that decodes (alone or in a
//!   response) and of an input `00 ‖ enc (32 octets) ‖ ciphertext`, is
//!   `Err(ProvError::Open)`: a fuzzer that does not know K_PROV is a sender
//!   that did not authenticate the device.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use nido_prov::coap::{self, Path, ResponseBody};
use nido_prov::package::{self, Binding, ENC_LEN};
use nido_prov::{
    Confirmation, ConfirmationAck, CredentialPackage, ProvError, ProvisioningRequest,
    ProvisioningResponse, SealedPackage,
};
use nido_sec::{KProv, PrivateKey32};

/// The fixed device private key (the seeds' sealed packages are sealed to
/// its public key, under another nonce than [`binding`]'s).
const DEVICE_KEY: [u8; 32] = [0x5d; 32];

/// The fixed K_PROV the target opens with.
const K_PROV: [u8; 32] = [0x6f; 32];

fn binding() -> Binding {
    Binding {
        device_identity: "SN-FUZZ-0001".into(),
        nonce: [0x42; 16],
    }
}

/// `decoded` (from fuzzed octets) re-encodes; that decodes to an equal value
/// and encodes to the same octets again.
fn round_trip<T: PartialEq + Debug>(
    what: &str,
    decoded: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, ProvError>,
) {
    let bytes = encode(decoded);
    let again =
        decode(&bytes).unwrap_or_else(|e| panic!("{what}: re-encoding does not decode: {e}"));
    assert_eq!(
        &again, decoded,
        "{what}: re-encoding decodes to another value"
    );
    assert_eq!(encode(&again), bytes, "{what}: encoding is not stable");
}

fn open_fails(sealed: &SealedPackage) {
    let key = PrivateKey32::new(DEVICE_KEY);
    assert_eq!(
        package::open(sealed, &key, &binding(), &KProv::new(K_PROV)),
        Err(ProvError::Open),
        "a fuzzed sealed package opened, or failed otherwise"
    );
}

fn sealed(bytes: &[u8]) {
    if let Ok(s) = SealedPackage::decode(bytes) {
        round_trip(
            "SealedPackage",
            &s,
            SealedPackage::encode,
            SealedPackage::decode,
        );
        open_fails(&s);
    }
}

fn request_payload(path: Path, payload: &[u8]) {
    match path {
        Path::Request => {
            if let Ok(r) = ProvisioningRequest::decode(payload) {
                round_trip(
                    "ProvisioningRequest",
                    &r,
                    ProvisioningRequest::encode,
                    ProvisioningRequest::decode,
                );
            }
        }
        Path::Confirm => {
            if let Ok(c) = Confirmation::decode(payload) {
                round_trip(
                    "Confirmation",
                    &c,
                    Confirmation::encode,
                    Confirmation::decode,
                );
            }
        }
    }
}

fn response_payload(payload: &[u8]) {
    if let Ok(r) = ProvisioningResponse::decode(payload) {
        round_trip(
            "ProvisioningResponse",
            &r,
            ProvisioningResponse::encode,
            ProvisioningResponse::decode,
        );
        if let ProvisioningResponse::Provisioned(s) = &r {
            open_fails(s);
        }
    }
    if let Ok(a) = ConfirmationAck::decode(payload) {
        round_trip(
            "ConfirmationAck",
            &a,
            ConfirmationAck::encode,
            ConfirmationAck::decode,
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The CBOR messages, as the input.
    request_payload(Path::Request, data);
    request_payload(Path::Confirm, data);
    response_payload(data);
    sealed(data);
    if let Ok(p) = CredentialPackage::from_cbor(data) {
        let bytes = p.to_cbor().expect("a decoded package does not encode");
        let again =
            CredentialPackage::from_cbor(&bytes).expect("package re-encoding does not decode");
        assert_eq!(again, p, "package re-encoding decodes to another package");
        let twice = again.to_cbor().expect("a decoded package does not encode");
        assert_eq!(*twice, *bytes, "package encoding is not stable");
    }

    // CoAP framing, and what it carries.
    if let Ok(r) = coap::parse_request(data) {
        round_trip(
            "CoapRequest",
            &r,
            |r| {
                coap::request(r.path, r.message_id, &r.token, &r.payload).expect("request encoding")
            },
            coap::parse_request,
        );
        request_payload(r.path, &r.payload);
    }
    if let Ok(r) = coap::parse_response(data) {
        round_trip(
            "CoapResponse",
            &r,
            |r| coap::response(r.message_id, &r.token, &r.body).expect("response encoding"),
            coap::parse_response,
        );
        if let ResponseBody::Changed(payload) = &r.body {
            response_payload(payload);
        }
    }

    // Raw sealed octets: 0x00 (neither a CBOR map nor a CoAP version 1
    // message), `enc`, then the ciphertext. Gated by that octet to spend the
    // X25519 operation only on inputs meant for it.
    if let Some((0, rest)) = data.split_first()
        && let Some((enc, ciphertext)) = rest.split_first_chunk::<ENC_LEN>()
    {
        open_fails(&SealedPackage {
            enc: *enc,
            ciphertext: ciphertext.to_vec(),
        });
    }
});
