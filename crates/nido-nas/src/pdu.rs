//! Decoding NAS PDUs: the message, each IE with its offset and octets, and
//! errors that name the IE and the offset where decoding failed.
//!
//! One decoder, two [`Mode`]s. The codec is oxirush-nas
//! (`Nas5gsMessage::decode`), which reads a message as a receiver of
//! TS 24.501 clause 7 does: a faulty mandatory IE is an error (§7.5), and
//! an optional IE that is unknown (§7.6.1), out of sequence (§7.6.2),
//! repeated (§7.6.3) or syntactically incorrect (§7.7.1, a truncated one
//! included) is kept aside as if absent. This module finds what was kept
//! aside, names it and locates it: [`Mode::Receiver`] returns it beside the
//! message ([`Received::dropped`]), and [`Mode::Strict`] refuses it, so that
//! every octet of a strictly decoded PDU is accounted for.

use oxirush_nas::nas_5gs::{GmmCause, Nas5gsMessage, NasError};
use serde_json::Value;
use thiserror::Error;

/// How [`decode_with`] reads a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every octet accounted for: an optional IE that is truncated,
    /// syntactically incorrect, repeated or out of sequence is an error, as
    /// are a faulty mandatory IE and an unknown IE encoded as "comprehension
    /// required". A well-framed IE unknown in the message (TS 24.501
    /// §7.6.1, e.g. one of a later release) is accepted and reported in
    /// [`Received::dropped`]. For tools (`nido nas decode`) and tests.
    Strict,
    /// What a receiver keeps (TS 24.501 clause 7): the errors of §7.2 to
    /// §7.5 (a message too short, an unknown message type, a faulty
    /// mandatory IE, an unknown IE encoded as "comprehension required") are
    /// errors, with the cause [`DecodeError::cause`] gives; the optional IEs
    /// that §7.6 and §7.7.1 have a receiver ignore are dropped and listed in
    /// [`Received::dropped`]. For the AMF and the device.
    Receiver,
}

/// What a fault is, for the answer a receiver gives (TS 24.501 clause 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Too short to hold a complete message type (§7.2.1): the message is
    /// ignored.
    TooShort,
    /// An extended protocol discriminator or security header type that is
    /// unknown or reserved (TS 24.007 §11.2.3.1.1, TS 24.501 §9.3): ignored.
    Header,
    /// A message type that does not exist or is not implemented (§7.4).
    MessageType,
    /// A reserved PDU session identity in a 5GSM message (§7.3.2).
    SessionIdentity,
    /// A mandatory IE missing, cut short or syntactically incorrect, or an
    /// unknown IE encoded as "comprehension required" (§7.5.1).
    MandatoryIe,
    /// An optional IE that a receiver treats as not present (§7.6, §7.7.1):
    /// an error of [`Mode::Strict`] only.
    OptionalIe,
    /// Any other fault of the codec.
    Other,
}

/// A PDU that does not decode: which IE, at which offset, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "malformed NAS PDU: {}{} at offset {offset}: {reason}",
    ie.as_deref().unwrap_or("header"),
    iei.map(|i| format!(" (IEI {i:#04x})")).unwrap_or_default()
)]
pub struct DecodeError {
    /// The IE that failed (its TS 24.501 name, lower-case), or `None` for the header.
    pub ie: Option<String>,
    /// The IEI of an optional IE that failed.
    pub iei: Option<u8>,
    /// Offset in octets from the start of the PDU (of the IEI, for an
    /// optional IE; of the value, for a mandatory one).
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
    /// What kind of fault it is.
    pub fault: Fault,
}

impl DecodeError {
    /// The 5GMM cause a receiver of the message answers with, where
    /// TS 24.501 clause 7 names one: #96 "invalid mandatory information"
    /// for a faulty mandatory IE or an unknown "comprehension required" IE
    /// (§7.5.1; a REGISTRATION REQUEST is answered by REGISTRATION REJECT,
    /// another message by 5GMM STATUS), #97 "message type non-existent or
    /// not implemented" (§7.4). `None` where the message is ignored
    /// (§7.2.1, a header fault) or, for [`Fault::OptionalIe`], where a
    /// receiver does not refuse it at all (§7.7.1). (#95 "semantically
    /// incorrect message", §7.8, is a procedure's finding, not the
    /// decoder's.)
    pub fn cause(&self) -> Option<GmmCause> {
        match self.fault {
            Fault::MandatoryIe => Some(GmmCause::InvalidMandatoryInformation),
            Fault::MessageType => Some(GmmCause::MessageTypeNonExistentOrNotImplemented),
            _ => None,
        }
    }
}

/// Why an optional IE was not kept (TS 24.501 §7.6, §7.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// An IEI the message does not have (§7.6.1): skipped by the format
    /// rule of TS 24.007 §11.2.4. Not an error of [`Mode::Strict`].
    Unknown,
    /// Cut short: its length runs past the end of the PDU (syntactically
    /// incorrect, §7.7.1).
    Truncated,
    /// Its value is not one of its type (syntactically incorrect, TS 24.007
    /// §11.4.2; §7.7.1).
    Malformed,
    /// A repetition of an IE already in the message (§7.6.3).
    Repeated,
    /// Out of the order of the message table (§7.6.2).
    OutOfSequence,
}

impl DropReason {
    /// What it means, with the clause of TS 24.501.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unknown => "IEI unknown in the message, ignored (TS 24.501 §7.6.1)",
            Self::Truncated => {
                "cut short: its length runs past the end of the PDU (TS 24.501 §7.7.1)"
            }
            Self::Malformed => "syntactically incorrect (TS 24.007 §11.4.2, TS 24.501 §7.7.1)",
            Self::Repeated => "repeated, only the first is handled (TS 24.501 §7.6.3)",
            Self::OutOfSequence => "out of sequence, ignored (TS 24.501 §7.6.2)",
        }
    }
}

/// An IE of the non-imperative part that a receiver did not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its TS 24.501 name as [`fields`] names IEs, or "unknown IE 0x..".
    pub ie: String,
    /// Its IEI as received.
    pub iei: u8,
    /// Offset of its IEI in the PDU.
    pub offset: usize,
    /// Its octets, IEI included (to the end of the PDU for one that could
    /// not be framed).
    pub len: usize,
    /// Why it was not kept.
    pub reason: DropReason,
}

/// A decoded PDU: the message a receiver acts on, and what it dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The message, without the dropped IEs (a well-framed unknown or
    /// dropped IE is kept in its unknown IEs, for re-encoding).
    pub message: Nas5gsMessage,
    /// The optional IEs that are not in the message's fields, in PDU order.
    pub dropped: Vec<Dropped>,
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

/// Decodes a plain or protected 5GS NAS PDU strictly ([`Mode::Strict`]).
pub fn decode(pdu: &[u8]) -> Result<Nas5gsMessage, DecodeError> {
    decode_with(pdu, Mode::Strict).map(|r| r.message)
}

/// Decodes a PDU as a receiver does ([`Mode::Receiver`]).
pub fn receive(pdu: &[u8]) -> Result<Received, DecodeError> {
    decode_with(pdu, Mode::Receiver)
}

/// Decodes a plain or protected 5GS NAS PDU in `mode`. The message of a
/// ciphered PDU is its octets: what they hold is read once deciphered.
///
/// # Errors
///
/// A [`DecodeError`] naming the IE (and, for an optional IE, its IEI) and
/// its offset: in both modes, the faults of TS 24.501 §7.2 to §7.5; in
/// [`Mode::Strict`], any optional IE in [`Received::dropped`] that is not a
/// well-framed unknown IE.
pub fn decode_with(pdu: &[u8], mode: Mode) -> Result<Received, DecodeError> {
    let message = Nas5gsMessage::decode(pdu).map_err(|e| locate(pdu, &e))?;
    let dropped = dropped(&message, pdu)?;
    if mode == Mode::Strict
        && let Some(d) = dropped.iter().find(|d| d.reason != DropReason::Unknown)
    {
        return Err(DecodeError {
            ie: Some(d.ie.clone()),
            iei: Some(d.iei),
            offset: d.offset,
            reason: d.reason.describe().into(),
            fault: Fault::OptionalIe,
        });
    }
    Ok(Received { message, dropped })
}

/// PDUs longer than this are not probed for the names of their dropped IEs
/// (the probe decodes each prefix of the imperative part): those are named
/// by their IEI.
const PROBE_LIMIT: usize = 4096;

/// At most this many distinct IEIs are probed for a name in one PDU.
const PROBED_IEIS: usize = 8;

/// The IEs the codec kept aside, named and located; an unknown IE encoded
/// as "comprehension required" is an error (§7.5.1).
fn dropped(message: &Nas5gsMessage, pdu: &[u8]) -> Result<Vec<Dropped>, DecodeError> {
    let unknown: Vec<_> = message.unknown_ies().iter().collect();
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let start = optional_start(pdu);
    let floor = start.unwrap_or_else(|| header_len(pdu) + 1);
    // Unknown IEs are kept in PDU order: each is found before the next.
    let mut offsets = vec![floor; unknown.len()];
    let mut end = pdu.len();
    for (at, ie) in unknown.iter().enumerate().rev() {
        let mut raw = vec![ie.iei];
        raw.extend_from_slice(ie.data);
        if let Some(found) = pdu
            .get(floor..end)
            .and_then(|hay| rfind(hay, &raw))
            .map(|o| o + floor)
        {
            offsets[at] = found;
            end = found;
        }
    }
    let view = present(message);
    let kept = fields(message, pdu);
    let mut names: Vec<(u8, Option<String>)> = Vec::new();
    let mut out = Vec::new();
    for (ie, offset) in unknown.iter().zip(offsets) {
        let iei = if ie.iei >= 0x80 {
            ie.iei & 0xf0
        } else {
            ie.iei
        };
        let len = 1 + ie.data.len();
        let probed = match names.iter().find(|(i, _)| *i == iei) {
            // The same IEI again: its name, and its length by the format.
            Some((_, name)) => name.clone().map(|n| (n, framed_len(ie.iei, ie.data))),
            None => {
                let probed = match start {
                    Some(start) if names.len() < PROBED_IEIS => {
                        name_of(pdu, start, ie.iei, ie.data)
                    }
                    _ => None,
                };
                names.push((iei, probed.as_ref().map(|(n, _)| n.clone())));
                probed
            }
        };
        let Some((name, full)) = probed else {
            let short = framed_len(ie.iei, ie.data).is_none_or(|n| n > len);
            if ie.is_comprehension_required() {
                return Err(DecodeError {
                    ie: Some(format!("unknown IE {:#04x}", ie.iei)),
                    iei: Some(ie.iei),
                    offset,
                    reason: "IE unknown in the message encoded as \"comprehension required\" \
                             (TS 24.007 §11.2.5, TS 24.501 §7.5.1)"
                        .into(),
                    fault: Fault::MandatoryIe,
                });
            }
            out.push(Dropped {
                ie: format!("unknown IE {:#04x}", ie.iei),
                iei: ie.iei,
                offset,
                len,
                reason: if short {
                    DropReason::Truncated
                } else {
                    DropReason::Unknown
                },
            });
            continue;
        };
        let short = full.is_none_or(|n| n > len);
        let place = |n: &str| view.iter().position(|(v, _)| v == n);
        let reason = if view.iter().any(|(v, kept)| *kept && *v == name) {
            DropReason::Repeated
        } else if short && offset + len == pdu.len() {
            DropReason::Truncated
        } else if kept
            .iter()
            .any(|f| f.offset.is_some_and(|o| o < offset) && place(&f.name) > place(&name))
        {
            DropReason::OutOfSequence
        } else {
            DropReason::Malformed
        };
        out.push(Dropped {
            ie: name,
            iei: ie.iei,
            offset,
            len,
            reason,
        });
    }
    Ok(out)
}

/// The length of an IE by the format rule of TS 24.007 §11.2.4 (type 1 or
/// 2 of one octet, type 6 TLV-E from IEI 0x70, type 4 TLV otherwise), if
/// its length octets are there. A type 3 IE (TV) has no length octet: this
/// reads its first value octet as one.
fn framed_len(iei: u8, data: &[u8]) -> Option<usize> {
    match iei {
        0x80.. => Some(1),
        0x70.. => {
            let [hi, lo, ..] = data else { return None };
            Some(3 + usize::from(u16::from_be_bytes([*hi, *lo])))
        }
        _ => data.first().map(|l| 2 + usize::from(*l)),
    }
}

/// Where the non-imperative part of `pdu` starts: the shortest prefix that
/// decodes (every shorter one lacks a mandatory IE). `None` for a PDU whose
/// imperative part is longer than [`PROBE_LIMIT`].
fn optional_start(pdu: &[u8]) -> Option<usize> {
    let from = header_len(pdu) + 1;
    (from..=pdu.len().min(PROBE_LIMIT)).find(|k| Nas5gsMessage::decode(&pdu[..*k]).is_ok())
}

/// The IE names of a message's view in table order, each with whether the
/// message has it.
fn present(message: &Nas5gsMessage) -> Vec<(String, bool)> {
    match serde_json::to_value(message.to_view()) {
        // The view's entry "unknown-ies" holds what is not a field.
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(n, _)| n != "unknown-ies")
            .map(|(n, v)| (n, !v.is_null()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The name of the IE of IEI `iei` in the message whose imperative part is
/// `pdu[..start]`, and the length its IE has in full, where the probe says
/// it: that part is decoded with a well-formed IE of that IEI after it, and
/// the name is that of the IE the message then has. The probes are the IE
/// itself (taken: it is well formed, and was dropped as repeated or out of
/// sequence), then IEs of format T (type 1 and 2), TLV-E, TLV and TV (type
/// 3) of value lengths up to 32, of a few fillers. `None` if no probe is
/// taken: the IEI is not one of the message.
fn name_of(pdu: &[u8], start: usize, iei: u8, data: &[u8]) -> Option<(String, Option<usize>)> {
    let head = pdu.get(..start)?;
    let before = present(&Nas5gsMessage::decode(head).ok()?);
    let had = |n: &String| before.iter().any(|(b, kept)| *kept && b == n);
    let try_probe = |ie: &[u8]| -> Option<String> {
        let mut probe = head.to_vec();
        probe.extend_from_slice(ie);
        let message = Nas5gsMessage::decode(&probe).ok()?;
        present(&message)
            .into_iter()
            .find(|(n, kept)| *kept && !had(n))
            .map(|(n, _)| n)
    };
    let itself = [&[iei][..], data].concat();
    if let Some(name) = try_probe(&itself) {
        return Some((name, Some(itself.len())));
    }
    if iei >= 0x80 {
        return (0..16)
            .find_map(|v| try_probe(&[iei & 0xf0 | v]))
            .map(|name| (name, Some(1)));
    }
    for n in 0..=32_u8 {
        for fill in [0x01, 0x00, 0xff] {
            let value = vec![fill; usize::from(n)];
            if iei >= 0x70
                && let Some(name) = try_probe(&[&[iei, 0, n][..], &value].concat())
            {
                return Some((name, framed_len(iei, data)));
            }
            if let Some(name) = try_probe(&[&[iei, n][..], &value].concat()) {
                return Some((name, framed_len(iei, data)));
            }
            if let Some(name) = try_probe(&[&[iei][..], &value].concat()) {
                return Some((name, Some(1 + usize::from(n))));
            }
        }
    }
    None
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The IEs of a message in wire order, located in `pdu`: each IE's value
/// octets are searched for after the previous IE's; a half-octet IE (a value
/// of one nibble) is matched against the low, then the high nibble of the
/// octet at the cursor (a low nibble taken once). The view's unknown IEs
/// are not fields: [`decode_with`] lists them.
pub fn fields(message: &Nas5gsMessage, pdu: &[u8]) -> Vec<Field> {
    let view = serde_json::to_value(message.to_view()).unwrap_or(Value::Null);
    let Value::Object(map) = view else {
        return Vec::new();
    };
    // IEs start after the message type octet.
    let mut cursor = (header_len(pdu) + 1).min(pdu.len());
    let mut half = None;
    let mut out = Vec::new();
    for (name, ie) in map {
        // The unknown and dropped IEs are no fields ([`Received::dropped`]).
        if ie.is_null() || name == "unknown-ies" {
            continue;
        }
        let octets = ie.get("octets").and_then(Value::as_str).map(str::to_owned);
        let offset = octets
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|bytes| locate_value(pdu, &mut cursor, &mut half, &bytes));
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

fn locate_value(
    pdu: &[u8],
    cursor: &mut usize,
    half: &mut Option<usize>,
    bytes: &[u8],
) -> Option<usize> {
    if let [nibble] = bytes
        && *nibble <= 0x0f
    {
        // An octet whose low nibble was taken holds another IE's value in
        // its high nibble (two V half-octets, TS 24.007 §11.2.1.1.1), or is
        // done: a type 1 IE has its IEI there, and the next IE follows.
        for _ in 0..2 {
            let here = *pdu.get(*cursor)?;
            if *half != Some(*cursor) && here & 0x0f == *nibble {
                *half = Some(*cursor);
                return Some(*cursor); // low nibble: the high one belongs to the next IE
            }
            if here >> 4 == *nibble {
                *cursor += 1;
                return Some(*cursor - 1);
            }
            if *half != Some(*cursor) {
                break;
            }
            *cursor += 1;
        }
    }
    if *half == Some(*cursor) {
        *cursor += 1;
    }
    let at = find(pdu.get(*cursor..)?, bytes)? + *cursor;
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
    let at = |ie: Option<String>, iei: Option<u8>, offset: usize, fault: Fault| DecodeError {
        ie,
        iei,
        offset: offset.min(pdu.len()),
        reason: reason.clone(),
        fault,
    };
    match error {
        NasError::InvalidMandatoryIe { ie, .. } => {
            let name = ie.to_string();
            let offset = Nas5gsMessage::decode_lenient(pdu)
                .ok()
                .and_then(|(m, _)| fields(&m, pdu).into_iter().find(|f| f.name == name))
                .and_then(|f| f.offset)
                .unwrap_or_else(|| first_unlocated(pdu));
            at(Some(name), None, offset, Fault::MandatoryIe)
        }
        NasError::UnknownIeCutShort { iei, octets } => at(
            Some(format!("unknown IE {iei:#04x}")),
            Some(*iei),
            pdu.len().saturating_sub(*octets),
            Fault::MandatoryIe,
        ),
        NasError::UnknownMessageType(_) | NasError::UnknownSessionMessageType { .. } => at(
            Some("message-type".into()),
            None,
            header_len(pdu),
            Fault::MessageType,
        ),
        NasError::ReservedPduSessionIdentity { .. } => at(
            Some("pdu-session-identity".into()),
            None,
            1,
            Fault::SessionIdentity,
        ),
        NasError::UnknownProtocolDiscriminator(_) => at(
            Some("extended-protocol-discriminator".into()),
            None,
            0,
            Fault::Header,
        ),
        NasError::ReservedSecurityHeaderType(_) => {
            at(Some("security-header-type".into()), None, 1, Fault::Header)
        }
        NasError::MessageTooShort | NasError::BufferTooShort => {
            at(None, None, pdu.len(), Fault::TooShort)
        }
        _ => at(None, None, first_unlocated(pdu), Fault::Other),
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
