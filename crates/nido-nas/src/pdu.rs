//! Decoding NAS PDUs for people: the message, each IE with its offset and
//! octets, and errors that name the IE and the offset where decoding failed.
//!
//! The codec is oxirush-nas (`Nas5gsMessage::decode`, strict: trailing or
//! malformed octets are errors). This module adds the field-by-field view
//! with offsets that `nido nas decode` prints.

use oxirush_nas::nas_5gs::{Nas5gsMessage, NasError};
use serde_json::Value;
use thiserror::Error;

/// A PDU that does not decode: which IE, at which offset, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed NAS PDU: {} at offset {offset}: {reason}", ie.as_deref().unwrap_or("header"))]
pub struct DecodeError {
    /// The IE that failed (its TS 24.501 name, lower-case), or `None` for the header.
    pub ie: Option<String>,
    /// Offset in octets from the start of the PDU.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// One IE of a decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The IE's name as TS 24.501 tables name it, lower-case with hyphens.
    pub name: String,
    /// Offset of the IE's value octets in the PDU, where they could be located.
    pub offset: Option<usize>,
    /// The value octets, hex.
    pub octets: Option<String>,
    /// The decoded value.
    pub value: Value,
}

/// Decodes a plain or protected 5GS NAS PDU (strict).
pub fn decode(pdu: &[u8]) -> Result<Nas5gsMessage, DecodeError> {
    Nas5gsMessage::decode(pdu).map_err(|e| locate(pdu, &e))
}

/// The IEs of a message in wire order, located in `pdu`: each IE's value
/// octets are searched for after the previous IE's; a half-octet IE (a value
/// of one nibble) is matched against the low, then the high nibble of the
/// octet at the cursor.
pub fn fields(message: &Nas5gsMessage, pdu: &[u8]) -> Vec<Field> {
    let view = serde_json::to_value(message.to_view()).unwrap_or(Value::Null);
    let Value::Object(map) = view else {
        return Vec::new();
    };
    // IEs start after the message type octet.
    let mut cursor = (header_len(pdu) + 1).min(pdu.len());
    let mut out = Vec::new();
    for (name, ie) in map {
        if ie.is_null() {
            continue;
        }
        let octets = ie.get("octets").and_then(Value::as_str).map(str::to_owned);
        let offset = octets
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|bytes| locate_value(pdu, &mut cursor, &bytes));
        let value = ie.get("value").cloned().unwrap_or(Value::Null);
        out.push(Field {
            name,
            offset,
            octets,
            value,
        });
    }
    out
}

fn locate_value(pdu: &[u8], cursor: &mut usize, bytes: &[u8]) -> Option<usize> {
    let here = *pdu.get(*cursor)?;
    if let [nibble] = bytes
        && *nibble <= 0x0f
    {
        if here & 0x0f == *nibble {
            return Some(*cursor); // low nibble: the high one belongs to the next IE
        }
        if here >> 4 == *nibble {
            *cursor += 1;
            return Some(*cursor - 1);
        }
    }
    let at = find(&pdu[*cursor..], bytes)? + *cursor;
    *cursor = at + bytes.len();
    Some(at)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The offset of the message type octet: after the security header of a
/// protected 5GMM PDU (followed once: a plain message under it), the EPD and
/// header octet, and for 5GSM the PSI and PTI. Never past the PDU's end.
fn header_len(pdu: &[u8]) -> usize {
    let plain = |p: &[u8]| match p {
        [0x7e, ..] => 2,
        [0x2e, ..] => 3,
        _ => 0,
    };
    let len = match pdu {
        [0x7e, sht, ..] if sht & 0x0f != 0 => 7 + plain(pdu.get(7..).unwrap_or_default()),
        _ => plain(pdu),
    };
    len.min(pdu.len())
}

fn locate(pdu: &[u8], error: &NasError) -> DecodeError {
    let reason = error.to_string();
    match error {
        NasError::InvalidMandatoryIe { ie, .. } => {
            let name = ie.to_string();
            let offset = Nas5gsMessage::decode_lenient(pdu)
                .ok()
                .and_then(|(m, _)| fields(&m, pdu).into_iter().find(|f| f.name == name))
                .and_then(|f| f.offset)
                .unwrap_or_else(|| first_unlocated(pdu));
            DecodeError {
                ie: Some(name),
                offset,
                reason,
            }
        }
        NasError::UnknownIeCutShort { iei, octets } => DecodeError {
            ie: Some(format!("unknown IE {iei:#04x}")),
            offset: pdu.len().saturating_sub(*octets),
            reason,
        },
        NasError::UnknownMessageType(_) | NasError::UnknownSessionMessageType { .. } => {
            DecodeError {
                ie: Some("message-type".into()),
                offset: header_len(pdu),
                reason,
            }
        }
        NasError::ReservedPduSessionIdentity { .. } => DecodeError {
            ie: Some("pdu-session-identity".into()),
            offset: 1,
            reason,
        },
        NasError::UnknownProtocolDiscriminator(_) => DecodeError {
            ie: Some("extended-protocol-discriminator".into()),
            offset: 0,
            reason,
        },
        NasError::ReservedSecurityHeaderType(_) => DecodeError {
            ie: Some("security-header-type".into()),
            offset: 1,
            reason,
        },
        NasError::MessageTooShort | NasError::BufferTooShort => DecodeError {
            ie: None,
            offset: pdu.len(),
            reason,
        },
        _ => DecodeError {
            ie: None,
            offset: first_unlocated(pdu),
            reason,
        },
    }
}

/// Where the located IEs of a leniently decoded PDU stop: the best guess at
/// where an IE that could not be named starts.
fn first_unlocated(pdu: &[u8]) -> usize {
    Nas5gsMessage::decode_lenient(pdu)
        .ok()
        .map(|(m, _)| {
            fields(&m, pdu)
                .iter()
                .filter_map(|f| Some(f.offset? + f.octets.as_ref()?.len() / 2))
                .max()
                .unwrap_or_else(|| header_len(pdu) + 1)
        })
        .unwrap_or_else(|| header_len(pdu) + 1)
        .min(pdu.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_guti_names_the_ie_and_offset() {
        // REGISTRATION REQUEST whose 5G-GUTI is one octet short.
        let pdu = hex::decode("7e004179000af202f839cafe001122332e02a020").unwrap();
        let err = decode(&pdu).unwrap_err();
        assert_eq!(err.ie.as_deref(), Some("5gs-mobile-identity"));
        assert_eq!(err.offset, 6); // 7e 00 41 | 79 | 00 0a | f2.. : value octets start at 6
        assert!(
            err.to_string().contains("5gs-mobile-identity at offset 6"),
            "{err}"
        );
    }

    #[test]
    fn fields_are_located_in_order() {
        let pdu = hex::decode("7e004179000d0100f1100000000022222222222e02e0e0").unwrap();
        let m = decode(&pdu).unwrap();
        let f = fields(&m, &pdu);
        let mi = f.iter().find(|f| f.name == "5gs-mobile-identity").unwrap();
        assert_eq!(mi.offset, Some(6));
        let cap = f
            .iter()
            .find(|f| f.name == "ue-security-capability")
            .unwrap();
        assert_eq!(cap.offset, Some(pdu.len() - 2));
    }

    #[test]
    fn offsets_follow_wire_order_with_optional_ies() {
        // REGISTRATION REQUEST with a 5GMM capability (IEI 0x10) before the
        // UE security capability, and a short 5G-GUTI.
        let ok = hex::decode("7e004179000d0100f1100000000022222222221001032e02e0e0").unwrap();
        let m = decode(&ok).unwrap();
        let f = fields(&m, &ok);
        let at = |n: &str| f.iter().find(|f| f.name == n).and_then(|f| f.offset);
        assert_eq!(at("5gs-registration-type"), Some(3));
        assert_eq!(at("ngksi"), Some(3));
        assert_eq!(at("5gs-mobile-identity"), Some(6));
        assert_eq!(at("5gmm-capability"), Some(21));
        assert_eq!(at("ue-security-capability"), Some(24));
        let bad = hex::decode("7e004179000af202f839cafe00112233100103 2e02a020".replace(' ', ""))
            .unwrap();
        let err = decode(&bad).unwrap_err();
        assert_eq!(
            (err.ie.as_deref(), err.offset),
            (Some("5gs-mobile-identity"), 6),
            "{err}"
        );
    }

    #[test]
    fn offsets_never_pass_the_end() {
        // Found by fuzzing: a security header inside a security header.
        for h in [
            "7e0100000000007e01",
            "7e0139dd70d8057e013943",
            "7e031e7e775e007e031e",
            "7e016f23e25b007e034f007e00",
        ] {
            let pdu = hex::decode(h).unwrap();
            let err = decode(&pdu).unwrap_err();
            assert!(err.offset <= pdu.len(), "{h}: {err}");
        }
    }

    #[test]
    fn header_errors_have_offsets() {
        assert_eq!(decode(&[0x7e, 0x00, 0xff]).unwrap_err().offset, 2);
        assert_eq!(decode(&[0x55]).unwrap_err().offset, 0);
        assert_eq!(decode(&[0x7e]).unwrap_err().ie, None);
    }
}
