//! Every PDU of `shared/vectors/nas_examples.json` (and the plain messages
//! inside the null-ciphered ones), cut short by 1 to all of its octets:
//! - strict decoding ([`Mode::Strict`]) refuses every cut that does not
//!   fall on a boundary between IEs of the non-imperative part, with an
//!   error that names an IE of the whole message (or the header) at an
//!   offset inside the cut PDU; a cut on a boundary decodes to the IEs
//!   before it, and nothing else;
//! - receiver decoding ([`Mode::Receiver`], TS 24.501 clause 7) keeps the
//!   IEs before a cut optional IE and reports that IE as truncated
//!   (§7.7.1), and refuses a cut in the imperative part with #96 (§7.5.1)
//!   or as too short (§7.2.1);
//! - nothing panics.
//!
//! The ciphered PDUs (security header types 2 and 4) are cut only inside
//! their header: the octets after it are ciphertext of unknown length,
//! which the codec cannot tell cut (the MAC does, TS 24.501 §4.4.4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

use nido_nas::wire::GmmCause;
use nido_nas::{DropReason, Fault, Mode, decode_with, fields};
use serde_json::Value;

/// Every example PDU, and the plain message inside each null-ciphered one.
fn examples() -> Vec<(String, Vec<u8>)> {
    let path = nido_testkit::vectors_dir().join("nas_examples.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for e in doc["examples"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        out.push((
            id.to_owned(),
            hex::decode(e["hex"].as_str().unwrap()).unwrap(),
        ));
        if let Some(inner) = e["inner_hex"].as_str() {
            out.push((format!("{id} (inner)"), hex::decode(inner).unwrap()));
        }
    }
    assert!(out.len() >= 26, "{} examples", out.len());
    out
}

/// srsRAN's REGISTRATION ACCEPT has an empty Allowed NSSAI, which TS 24.501
/// table 8.2.7.1 does not allow (length 4 to 74): strict decoding refuses
/// it whole, a receiver drops the IE (§7.7.1; see `nas_examples.rs`).
const SRSRAN_ACCEPT: &str = "srsran-registration-accept-protected (inner)";

fn ciphered(pdu: &[u8]) -> bool {
    matches!(pdu, [0x7e, sht, ..] if matches!(sht & 0x0f, 2 | 4))
}

/// The (name, octets) of every IE of a message as located in `pdu`.
fn ies(pdu: &[u8]) -> Vec<(String, Option<usize>, Option<String>)> {
    let received = decode_with(pdu, Mode::Receiver).unwrap();
    fields(&received.message, pdu)
        .into_iter()
        .map(|f| (f.name, f.offset, f.octets))
        .collect()
}

#[test]
fn every_cut_example_is_refused_strictly_naming_an_ie() {
    let mut refused = 0;
    let mut boundaries = 0;
    for (id, pdu) in examples() {
        // Refused whole (see `SRSRAN_ACCEPT`), and so is every cut after
        // its empty Allowed NSSAI at 28; the cuts before are checked.
        let end = if id == SRSRAN_ACCEPT {
            for k in 30..pdu.len() {
                let err = decode_with(&pdu[..k], Mode::Strict).unwrap_err();
                assert_eq!(err.ie.as_deref(), Some("allowed-nssai"), "{id} cut to {k}");
            }
            29
        } else {
            let whole = decode_with(&pdu, Mode::Strict).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(whole.dropped.is_empty(), "{id}: {:?}", whole.dropped);
            pdu.len()
        };
        let names: Vec<String> = ies(&pdu).into_iter().map(|(n, _, _)| n).collect();
        let cuts = if ciphered(&pdu) { 0..7 } else { 0..end };
        for k in cuts {
            let cut = &pdu[..k];
            match decode_with(cut, Mode::Strict) {
                Err(err) => {
                    refused += 1;
                    assert!(err.offset <= cut.len(), "{id} cut to {k}: {err}");
                    if let Some(ie) = &err.ie {
                        assert!(
                            names.contains(ie) || ie == "message-type",
                            "{id} cut to {k}: {ie} is no IE of the message ({names:?})"
                        );
                    } else {
                        assert_eq!(err.fault, Fault::TooShort, "{id} cut to {k}: {err}");
                    }
                    // One line naming the IE and its offset, as `nido nas decode` prints.
                    let line = err.to_string();
                    assert!(!line.contains('\n'), "{line}");
                    assert!(
                        line.contains(&format!("at offset {}", err.offset)),
                        "{line}"
                    );
                }
                Ok(kept) => {
                    // A cut between two IEs of the non-imperative part: the
                    // message before it, every octet accounted for.
                    boundaries += 1;
                    assert!(kept.dropped.is_empty(), "{id} cut to {k}");
                    assert_eq!(kept.message.encode().unwrap(), cut, "{id} cut to {k}");
                    let before: Vec<_> = ies(&pdu)
                        .into_iter()
                        .filter(|(_, o, _)| o.is_none_or(|o| o < k))
                        .collect();
                    assert_eq!(ies(cut), before, "{id} cut to {k}");
                }
            }
        }
    }
    assert!(refused > 300, "{refused} refused");
    assert!(boundaries > 5, "{boundaries} cuts on IE boundaries");
}

#[test]
fn a_receiver_keeps_what_precedes_a_cut_optional_ie() {
    let mut dropped = 0;
    for (id, pdu) in examples() {
        if ciphered(&pdu) {
            continue;
        }
        let whole = ies(&pdu);
        // What the whole PDU has dropped already (the srsRAN accept's empty
        // Allowed NSSAI) is dropped from its cuts too.
        let before = decode_with(&pdu, Mode::Receiver).unwrap().dropped;
        for k in 0..pdu.len() {
            let cut = &pdu[..k];
            match decode_with(cut, Mode::Receiver) {
                Ok(mut received) => {
                    received
                        .dropped
                        .retain(|d| !before.iter().any(|b| b.offset == d.offset && b.ie == d.ie));
                    let kept = ies(cut);
                    // What is kept is what the whole message has before the cut.
                    for ie in &kept {
                        assert!(whole.contains(ie), "{id} cut to {k}: kept {ie:?}");
                    }
                    if let Some(d) = received.dropped.last() {
                        dropped += 1;
                        assert_eq!(received.dropped.len(), 1, "{id} cut to {k}");
                        assert_eq!(d.reason, DropReason::Truncated, "{id} cut to {k}: {d:?}");
                        assert_eq!(d.offset + d.len, k, "{id} cut to {k}: {d:?}");
                        assert!(
                            whole.iter().any(|(n, _, _)| *n == d.ie),
                            "{id} cut to {k}: {d:?}"
                        );
                        // The strict error is this IE, at this offset.
                        let err = decode_with(cut, Mode::Strict).unwrap_err();
                        if id == SRSRAN_ACCEPT {
                            continue;
                        }
                        assert_eq!(
                            (err.ie.as_deref(), err.iei, err.offset, err.fault),
                            (
                                Some(d.ie.as_str()),
                                Some(d.iei),
                                d.offset,
                                Fault::OptionalIe
                            )
                        );
                        assert_eq!(err.cause(), None, "§7.7.1: not refused");
                        assert!(err.to_string().contains("§7.7.1"), "{err}");
                    }
                }
                Err(err) => {
                    assert!(
                        matches!(err.fault, Fault::TooShort | Fault::MandatoryIe),
                        "{id} cut to {k}: {err}"
                    );
                    if err.fault == Fault::MandatoryIe {
                        assert_eq!(err.cause(), Some(GmmCause::InvalidMandatoryInformation));
                    }
                }
            }
        }
    }
    assert!(dropped > 40, "{dropped} truncated optional IEs dropped");
}

#[test]
fn the_issue_s_truncations_are_refused_naming_the_ie() {
    // Issue #12: three octets cut off a REGISTRATION REQUEST (its UE
    // security capability keeps its IEI alone).
    let pdu = hex::decode("7e004179000d0100f1100000000022222222222e").unwrap();
    let err = decode_with(&pdu, Mode::Strict).unwrap_err();
    assert_eq!(err.ie.as_deref(), Some("ue-security-capability"));
    assert_eq!((err.iei, err.offset), (Some(0x2e), 19));
    let kept = decode_with(&pdu, Mode::Receiver).unwrap();
    assert_eq!(kept.dropped.len(), 1);
    assert_eq!(kept.dropped[0].ie, "ue-security-capability");
    // AUTHENTICATION REQUEST with an EAP message cut short.
    let pdu = hex::decode("7e005600020000780008010100080d0000").unwrap();
    let err = decode_with(&pdu, Mode::Strict).unwrap_err();
    assert_eq!(
        (err.ie.as_deref(), err.iei, err.offset),
        (Some("eap-message"), Some(0x78), 7),
        "{err}"
    );
    // AUTHENTICATION FAILURE #21 with an AUTS cut short.
    let pdu = hex::decode("7e005915300e000102030405060708090a0b0c").unwrap();
    let err = decode_with(&pdu, Mode::Strict).unwrap_err();
    assert_eq!(
        (err.ie.as_deref(), err.iei, err.offset),
        (Some("authentication-failure-parameter"), Some(0x30), 4),
        "{err}"
    );
}

#[test]
fn unknown_and_repeated_ies() {
    // REGISTRATION COMPLETE with an unknown IE 0x6a: well framed, a
    // receiver ignores it (§7.6.1), and strict decoding accounts for it.
    let pdu = [0x7e, 0x00, 0x43, 0x6a, 0x01, 0x05];
    let strict = decode_with(&pdu, Mode::Strict).unwrap();
    assert_eq!(strict.dropped.len(), 1);
    assert_eq!(strict.dropped[0].reason, DropReason::Unknown);
    assert_eq!(strict.dropped[0].offset, 3);
    // Cut short, it is refused strictly.
    let err = decode_with(&pdu[..5], Mode::Strict).unwrap_err();
    assert_eq!((err.iei, err.offset), (Some(0x6a), 3), "{err}");
    // Unknown and "comprehension required" (TS 24.007 §11.2.5): #96 in both modes.
    let pdu = [0x7e, 0x00, 0x43, 0x03, 0x01, 0x00];
    for mode in [Mode::Strict, Mode::Receiver] {
        let err = decode_with(&pdu, mode).unwrap_err();
        assert_eq!(err.cause(), Some(GmmCause::InvalidMandatoryInformation));
        assert_eq!((err.iei, err.offset), (Some(0x03), 3));
    }
    // A REGISTRATION REQUEST with its UE security capability twice: the
    // first is handled (§7.6.3), the repetition is refused strictly.
    let pdu = hex::decode("7e004179000d0100f1100000000022222222222e02e0e02e02e0e0").unwrap();
    let received = decode_with(&pdu, Mode::Receiver).unwrap();
    assert_eq!(received.dropped.len(), 1);
    assert_eq!(received.dropped[0].reason, DropReason::Repeated);
    assert_eq!(received.dropped[0].offset, 23);
    let err = decode_with(&pdu, Mode::Strict).unwrap_err();
    assert_eq!(
        (err.ie.as_deref(), err.offset),
        (Some("ue-security-capability"), 23)
    );
}

#[test]
fn a_message_type_that_does_not_exist_is_cause_97() {
    let err = decode_with(&[0x7e, 0x00, 0x01], Mode::Receiver).unwrap_err();
    assert_eq!(err.fault, Fault::MessageType);
    assert_eq!(
        err.cause(),
        Some(GmmCause::MessageTypeNonExistentOrNotImplemented)
    );
}
