//! The network's system information on the access link: which network
//! this is, as a cell broadcasts it (TS 38.331 SIB1: the PLMN identity and,
//! for an SNPN, the NID in `NPN-IdentityInfoList`; TS 23.501 §5.30.2.2,
//! an SNPN is identified by PLMN ID and NID). nido's link has no broadcast
//! channel, so a device asks ([`crate::Kind::SystemInformationRequest`])
//! and the network answers ([`crate::Kind::SystemInformation`]) with this
//! payload (nido's own definition):
//!
//! ```text
//!  0           1           2           3        4                     10
//! +-----------+-----------+-----------+--------+---------------------+
//! | MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 | flags  | NID (if flags & 1)  |
//! +-----------+-----------+-----------+--------+---------------------+
//! ```
//!
//! - PLMN identity: BCD digits in the order of TS 24.008 §10.5.1.3 (each
//!   octet's low nibble first); MNC digit 3 is `F` for a 2-digit MNC.
//! - flags: bit 0, a NID follows; the other bits are 0.
//! - NID: 11 hexadecimal digits (TS 23.003 §12.7, 44 bits) in 6 octets,
//!   the first nibble 0.
//!
//! Nothing else: a payload is decoded completely or refused with the field
//! and offset at fault, trailing octets included. Everything the device
//! needs to build the serving network name
//! (`5G:mnc<MNC>.mcc<MCC>.3gppnetwork.org:<NID>`, TS 33.501 §6.1.1.4,
//! [`nido_sec::kdf::serving_network_name`]) is in it.
//!
//! ## Trust
//! System information is unauthenticated, as on a real radio: anyone on the
//! link can answer, and a fake network can announce anything. What protects
//! the device is not this message but EAP-TLS (it accepts only a DCS
//! certified by its manufacturer) and the binding of K_SEAF (and so K_AMF)
//! to the serving network name: a lie only makes the attach fail (the
//! network's SECURITY MODE COMMAND does not verify under the device's keys).

use nido_prov::package::ServingNetwork;
use thiserror::Error;

use crate::datagram::{DecodeError, error};

/// The payload's length without a NID.
pub const PLMN_ONLY_LEN: usize = 4;

/// The payload's length with a NID: the longest.
pub const MAX_LEN: usize = PLMN_ONLY_LEN + NID_LEN;

const NID_LEN: usize = 6;
const FLAG_NID: u8 = 0x01;

/// A network identity that cannot be announced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("system information: {field}: {reason}")]
pub struct IdentityError {
    /// `mcc`, `mnc` or `nid`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Which network this is: PLMN identity (MCC, MNC) and, for an SNPN, the
/// NID. The digits are checked when it is made, so it always encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInformation {
    mcc: String,
    mnc: String,
    nid: Option<String>,
}

impl SystemInformation {
    /// From the digits: MCC 3 decimal digits, MNC 2 or 3, NID 11
    /// hexadecimal digits (kept in upper case).
    pub fn new(mcc: &str, mnc: &str, nid: Option<&str>) -> Result<Self, IdentityError> {
        let decimal = |s: &str, lens: &[usize]| {
            lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        if !decimal(mcc, &[3]) {
            return Err(IdentityError {
                field: "mcc",
                reason: format!("{mcc:?} is not 3 digits"),
            });
        }
        if !decimal(mnc, &[2, 3]) {
            return Err(IdentityError {
                field: "mnc",
                reason: format!("{mnc:?} is not 2 or 3 digits"),
            });
        }
        if let Some(nid) = nid
            && (nid.len() != 11 || !nid.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(IdentityError {
                field: "nid",
                reason: format!("{nid:?} is not 11 hexadecimal digits"),
            });
        }
        Ok(Self {
            mcc: mcc.to_owned(),
            mnc: mnc.to_owned(),
            nid: nid.map(str::to_ascii_uppercase),
        })
    }

    /// What a network with `network` as its serving network announces.
    pub fn of(network: &ServingNetwork) -> Result<Self, IdentityError> {
        Self::new(&network.mcc, &network.mnc, network.nid.as_deref())
    }

    /// The mobile country code.
    pub fn mcc(&self) -> &str {
        &self.mcc
    }

    /// The mobile network code (2 or 3 digits, as announced).
    pub fn mnc(&self) -> &str {
        &self.mnc
    }

    /// The NID, for an SNPN.
    pub fn nid(&self) -> Option<&str> {
        self.nid.as_deref()
    }

    /// The serving network this announces, with its serving network name.
    pub fn serving_network(&self) -> Result<ServingNetwork, IdentityError> {
        ServingNetwork::new(&self.mcc, &self.mnc, self.nid.as_deref()).map_err(|e| IdentityError {
            field: "mcc/mnc/nid",
            reason: e.to_string(),
        })
    }

    /// Appends the payload to `out` (at most [`MAX_LEN`] octets).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let d = |s: &str, i: usize| s.as_bytes().get(i).map_or(0x0f, |b| b - b'0');
        let (mcc, mnc) = (self.mcc.as_str(), self.mnc.as_str());
        out.push((d(mcc, 1) << 4) | d(mcc, 0));
        out.push((d(mnc, 2) << 4) | d(mcc, 2));
        out.push((d(mnc, 1) << 4) | d(mnc, 0));
        match &self.nid {
            None => out.push(0),
            Some(nid) => {
                out.push(FLAG_NID);
                // 11 digits after a 0 nibble: 12 nibbles, 6 octets.
                let nibbles: Vec<u8> = std::iter::once(0)
                    .chain(nid.bytes().map(hex_value))
                    .collect();
                out.extend(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]));
            }
        }
    }

    /// Reads a whole payload: every digit checked, no octet left over.
    pub fn read(payload: &[u8]) -> Result<Self, DecodeError> {
        let Some((plmn, rest)) = payload.split_first_chunk::<3>() else {
            return Err(error(
                "plmn",
                0,
                format!("{} octets, a PLMN identity has 3", payload.len()),
            ));
        };
        let digit = |octet: usize, high: bool| {
            let v = if high {
                plmn[octet] >> 4
            } else {
                plmn[octet] & 0x0f
            };
            if v > 9 {
                Err(error(
                    "plmn",
                    octet,
                    format!("nibble {v:#x} is not a digit"),
                ))
            } else {
                Ok(char::from(b'0' + v))
            }
        };
        let mcc: String = [digit(0, false)?, digit(0, true)?, digit(1, false)?]
            .into_iter()
            .collect();
        let mut mnc: String = [digit(2, false)?, digit(2, true)?].into_iter().collect();
        // MNC digit 3, or the filler of a 2-digit MNC.
        if plmn[1] >> 4 != 0x0f {
            mnc.push(digit(1, true)?);
        }
        let Some((&flags, rest)) = rest.split_first() else {
            return Err(error("flags", 3, "missing"));
        };
        if flags & !FLAG_NID != 0 {
            return Err(error(
                "flags",
                3,
                format!("{flags:#04x}: bits other than bit 0 are reserved (0)"),
            ));
        }
        let (nid, rest) = if flags & FLAG_NID != 0 {
            let Some((nid, rest)) = rest.split_first_chunk::<NID_LEN>() else {
                return Err(error(
                    "nid",
                    PLMN_ONLY_LEN,
                    format!("{} octets, a NID has {NID_LEN}", rest.len()),
                ));
            };
            if nid[0] >> 4 != 0 {
                return Err(error("nid", PLMN_ONLY_LEN, "the first nibble is not 0"));
            }
            let text: String = nid
                .iter()
                .flat_map(|b| [b >> 4, b & 0x0f])
                .skip(1)
                .map(|v| char::from(b"0123456789ABCDEF"[usize::from(v)]))
                .collect();
            (Some(text), rest)
        } else {
            (None, rest)
        };
        if !rest.is_empty() {
            return Err(error(
                "trailing",
                payload.len() - rest.len(),
                format!("{} octets after the system information", rest.len()),
            ));
        }
        Ok(Self { mcc, mnc, nid })
    }
}

/// The value of a hexadecimal digit ([`SystemInformation::new`] checked it).
fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_encoding() {
        let info = SystemInformation::new("999", "99", Some("000000000ab")).unwrap();
        let mut out = Vec::new();
        info.encode(&mut out);
        assert_eq!(out, [0x99, 0xf9, 0x99, 1, 0, 0, 0, 0, 0, 0xab]);
        assert_eq!(SystemInformation::read(&out).unwrap(), info);
        assert_eq!(info.nid(), Some("000000000AB"));
        let snn = info.serving_network().unwrap().snn;
        assert_eq!(snn, "5G:mnc099.mcc999.3gppnetwork.org:000000000AB");

        let info = SystemInformation::new("001", "012", None).unwrap();
        let mut out = Vec::new();
        info.encode(&mut out);
        assert_eq!(out, [0x00, 0x21, 0x10, 0]);
        let back = SystemInformation::read(&out).unwrap();
        assert_eq!((back.mcc(), back.mnc(), back.nid()), ("001", "012", None));
        assert_eq!(
            back.serving_network().unwrap().snn,
            "5G:mnc012.mcc001.3gppnetwork.org"
        );
    }

    #[test]
    fn truncation_and_trailing_octets_are_refused_where_they_are() {
        let mut full = Vec::new();
        SystemInformation::new("999", "99", Some("0000000000C"))
            .unwrap()
            .encode(&mut full);
        assert_eq!(full.len(), MAX_LEN);
        for cut in 0..full.len() {
            let e = SystemInformation::read(&full[..cut]).unwrap_err();
            let expected = match cut {
                0..3 => ("plmn", 0),
                3 => ("flags", 3),
                _ => ("nid", 4),
            };
            assert_eq!((e.field, e.offset), expected, "cut at {cut}");
        }
        let e = SystemInformation::read(&[&full[..], &[0]].concat()).unwrap_err();
        assert_eq!((e.field, e.offset), ("trailing", MAX_LEN));
        // Without a NID, the NID's octets are trailing.
        let e = SystemInformation::read(&[0x99, 0xf9, 0x99, 0, 0]).unwrap_err();
        assert_eq!((e.field, e.offset), ("trailing", 4));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = SystemInformation::read(&[0x9a, 0xf9, 0x99, 0]).unwrap_err();
        assert_eq!((e.field, e.offset), ("plmn", 0));
        // A filler where a digit must be (MNC digit 1).
        let e = SystemInformation::read(&[0x99, 0xf9, 0x9f, 0]).unwrap_err();
        assert_eq!((e.field, e.offset), ("plmn", 2));
        let e = SystemInformation::read(&[0x99, 0xf9, 0x99, 2]).unwrap_err();
        assert_eq!((e.field, e.offset), ("flags", 3));
        let e = SystemInformation::read(&[0x99, 0xf9, 0x99, 1, 0x10, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!((e.field, e.offset), ("nid", 4));
        assert_eq!(
            SystemInformation::new("99", "99", None).unwrap_err().field,
            "mcc"
        );
        assert_eq!(
            SystemInformation::new("999", "9", None).unwrap_err().field,
            "mnc"
        );
        assert_eq!(
            SystemInformation::new("999", "99", Some("00000000G0A"))
                .unwrap_err()
                .field,
            "nid"
        );
    }

    proptest! {
        #[test]
        fn read_encode_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(info) = SystemInformation::read(&bytes) {
                let mut out = Vec::new();
                info.encode(&mut out);
                prop_assert_eq!(out, bytes);
            }
        }

        #[test]
        fn round_trip(mcc in "[0-9]{3}", mnc in "[0-9]{2,3}", nid in proptest::option::of("[0-9a-fA-F]{11}")) {
            let info = SystemInformation::new(&mcc, &mnc, nid.as_deref()).unwrap();
            let mut out = Vec::new();
            info.encode(&mut out);
            prop_assert!(out.len() <= MAX_LEN);
            prop_assert_eq!(SystemInformation::read(&out).unwrap(), info);
        }
    }
}
