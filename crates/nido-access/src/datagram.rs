//! The access link's datagram (nido's own definition; the design doc asks
//! for "version, connection id"):
//!
//! ```text
//!  0        1        2                                   10
//! +--------+--------+-----------------------------------+-------------
//! |version | kind   | connection id (64 bits, big end.) | payload ...
//! +--------+--------+-----------------------------------+-------------
//! ```
//!
//! - version: 1.
//! - kind: 0 NAS PDU (payload = one NAS PDU), 1 release (the device
//!   released this connection; no payload), 2 system-information request
//!   (a device asks which network this is; payload = [`REQUEST_PADDING`]
//!   zero octets), 3 system information (the network's answer: its PLMN
//!   identity and NID, see [`crate::sysinfo`]). Other values are kept as
//!   [`Kind::Unknown`] so a newer peer's datagrams are recognised and dropped.
//! - connection id: the device side's NAS signalling connection; the AMF
//!   keys its UE contexts by it and answers to the address it came from.
//!   In a system-information request it is the device's transaction id,
//!   echoed in the answer; no connection is created by it.

use thiserror::Error;

use crate::sysinfo::{MAX_LEN as SYSINFO_MAX_LEN, SystemInformation};

/// The header version this build writes and reads.
pub const VERSION: u8 = 1;

/// The header's length.
pub const HEADER_LEN: usize = 10;

/// The largest payload: a NAS PDU with a full EAP message IE fits easily.
pub const MAX_PAYLOAD: usize = 9_000;

/// The payload of a system-information request: zero octets, as many as
/// the largest answer's payload, so that answering never sends more than
/// was received (no amplification; the padding rule of QUIC's Initial
/// packets, RFC 9000 §8.1, for the same reason).
pub const REQUEST_PADDING: usize = SYSINFO_MAX_LEN;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One NAS PDU.
    Nas,
    /// The device released the connection.
    Release,
    /// A device asks for the network's system information (the cell's
    /// broadcast, TS 38.331 SIB1, which nido's link has no channel for):
    /// no NAS, no connection state on the network. The payload is
    /// [`REQUEST_PADDING`] zero octets.
    SystemInformationRequest,
    /// The network's system information ([`SystemInformation`]): its PLMN
    /// identity and, for an SNPN, its NID (TS 23.501 §5.30.2.2;
    /// SIB1's `NPN-IdentityInfoList`). Unauthenticated, as on a radio.
    SystemInformation,
    /// A kind this build does not know.
    Unknown(u8),
}

impl Kind {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Nas,
            1 => Self::Release,
            2 => Self::SystemInformationRequest,
            3 => Self::SystemInformation,
            other => Self::Unknown(other),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Nas => 0,
            Self::Release => 1,
            Self::SystemInformationRequest => 2,
            Self::SystemInformation => 3,
            Self::Unknown(v) => v,
        }
    }
}

/// A datagram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("access datagram: {field} at octet {offset}: {reason}")]
pub struct DecodeError {
    /// The field at fault.
    pub field: &'static str,
    /// Where the field starts, in octets from the start of the datagram.
    pub offset: usize,
    /// What is wrong with it.
    pub reason: String,
}

pub(crate) fn error(field: &'static str, offset: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        field,
        offset,
        reason: reason.into(),
    }
}

/// One datagram, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// What it carries.
    pub kind: Kind,
    /// The connection.
    pub conn: u64,
    /// The payload (a NAS PDU for [`Kind::Nas`]).
    pub payload: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// A NAS PDU on `conn`.
    pub fn nas(conn: u64, pdu: &'a [u8]) -> Self {
        Self {
            kind: Kind::Nas,
            conn,
            payload: pdu,
        }
    }

    /// A system-information request with transaction id `conn`.
    pub fn system_information_request(conn: u64) -> Self {
        Self {
            kind: Kind::SystemInformationRequest,
            conn,
            payload: &[0; REQUEST_PADDING],
        }
    }

    /// Reads a whole datagram. The payload of a system-information request
    /// and of system information is checked in full ([`SystemInformation::read`]).
    pub fn read(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(error(
                "header",
                0,
                format!("{} octets, a header has {HEADER_LEN}", bytes.len()),
            ));
        };
        if header[0] != VERSION {
            return Err(error(
                "version",
                0,
                format!("{}, this build reads {VERSION}", header[0]),
            ));
        }
        let kind = Kind::from_u8(header[1]);
        let mut conn = [0u8; 8];
        conn.copy_from_slice(&header[2..]);
        let conn = u64::from_be_bytes(conn);
        match kind {
            Kind::Nas if payload.is_empty() => {
                return Err(error("payload", HEADER_LEN, "a NAS datagram without a PDU"));
            }
            Kind::Release if !payload.is_empty() => {
                return Err(error("payload", HEADER_LEN, "a release carries nothing"));
            }
            Kind::SystemInformationRequest => {
                if payload.len() != REQUEST_PADDING {
                    return Err(error(
                        "padding",
                        HEADER_LEN,
                        format!(
                            "{} octets, a system-information request has {REQUEST_PADDING}",
                            payload.len()
                        ),
                    ));
                }
                if let Some(at) = payload.iter().position(|b| *b != 0) {
                    return Err(error("padding", HEADER_LEN + at, "not zero"));
                }
            }
            Kind::SystemInformation => {
                SystemInformation::read(payload).map_err(|mut e| {
                    e.offset += HEADER_LEN;
                    e
                })?;
            }
            _ => {}
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(error(
                "payload",
                HEADER_LEN,
                format!("{} octets, at most {MAX_PAYLOAD}", payload.len()),
            ));
        }
        Ok(Self {
            kind,
            conn,
            payload,
        })
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + self.payload.len());
        out.push(VERSION);
        out.push(self.kind.to_u8());
        out.extend_from_slice(&self.conn.to_be_bytes());
        out.extend_from_slice(self.payload);
    }

    /// The encoding.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_encoding() {
        let d = Datagram::nas(0x0102_0304_0506_0708, &[0x7e, 0x00, 0x41]);
        assert_eq!(d.to_vec(), [1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7e, 0x00, 0x41]);
        let bytes = d.to_vec();
        assert_eq!(Datagram::read(&bytes).unwrap(), d);
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(Datagram::read(&[1, 0, 0]).unwrap_err().field, "header");
        assert_eq!(
            Datagram::read(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
                .unwrap_err()
                .field,
            "version"
        );
        assert_eq!(
            Datagram::read(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .unwrap_err()
                .field,
            "payload"
        );
        assert_eq!(
            Datagram::read(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9])
                .unwrap_err()
                .field,
            "payload"
        );
        let big = [&[1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], &[0; MAX_PAYLOAD + 1]].concat();
        assert_eq!(Datagram::read(&big).unwrap_err().field, "payload");
    }

    #[test]
    fn system_information_request() {
        let d = Datagram::system_information_request(7);
        let bytes = d.to_vec();
        assert_eq!(bytes.len(), HEADER_LEN + REQUEST_PADDING);
        assert_eq!(&bytes[..10], &[1, 2, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(Datagram::read(&bytes).unwrap(), d);
        // Truncated, oversized, or with something in the padding: refused.
        let e = Datagram::read(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!((e.field, e.offset), ("padding", HEADER_LEN));
        let e = Datagram::read(&[&bytes[..], &[0]].concat()).unwrap_err();
        assert_eq!((e.field, e.offset), ("padding", HEADER_LEN));
        let mut junk = bytes.clone();
        junk[HEADER_LEN + 3] = 1;
        let e = Datagram::read(&junk).unwrap_err();
        assert_eq!((e.field, e.offset), ("padding", HEADER_LEN + 3));
    }

    #[test]
    fn system_information_is_checked_in_the_datagram() {
        let info = SystemInformation::new("001", "01", None).unwrap();
        let mut payload = Vec::new();
        info.encode(&mut payload);
        let d = Datagram {
            kind: Kind::SystemInformation,
            conn: 9,
            payload: &payload,
        };
        let bytes = d.to_vec();
        assert_eq!(Datagram::read(&bytes).unwrap(), d);
        let e = Datagram::read(&[&bytes[..], &[0]].concat()).unwrap_err();
        assert_eq!((e.field, e.offset), ("trailing", HEADER_LEN + 4));
        let e = Datagram::read(&bytes[..HEADER_LEN + 2]).unwrap_err();
        assert_eq!((e.field, e.offset), ("plmn", HEADER_LEN));
    }

    #[test]
    fn unknown_kinds_are_kept() {
        let d = Datagram::read(&[1, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0xaa]).unwrap();
        assert_eq!(d.kind, Kind::Unknown(9));
        assert_eq!(d.to_vec(), [1, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0xaa]);
    }

    proptest! {
        #[test]
        fn round_trip_and_no_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(d) = Datagram::read(&bytes) {
                prop_assert_eq!(d.to_vec(), bytes);
            }
        }

        #[test]
        fn encode_read(kind in 0u8..6, conn in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 1..32)) {
            let kind = Kind::from_u8(kind);
            let payload = match kind {
                Kind::Release => Vec::new(),
                Kind::SystemInformationRequest => vec![0; REQUEST_PADDING],
                Kind::SystemInformation => {
                    let mut out = Vec::new();
                    SystemInformation::new("999", "99", Some("000000000AB")).unwrap().encode(&mut out);
                    out
                }
                _ => payload,
            };
            let d = Datagram { kind, conn, payload: &payload };
            let bytes = d.to_vec();
            prop_assert_eq!(Datagram::read(&bytes).unwrap(), d);
        }
    }
}
