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
//!   released this connection; no payload). Other values are kept as
//!   [`Kind::Unknown`] so a newer peer's datagrams are recognised and dropped.
//! - connection id: the device side's NAS signalling connection; the AMF
//!   keys its UE contexts by it and answers to the address it came from.

use thiserror::Error;

/// The header version this build writes and reads.
pub const VERSION: u8 = 1;

/// The header's length.
pub const HEADER_LEN: usize = 10;

/// The largest payload: a NAS PDU with a full EAP message IE fits easily.
pub const MAX_PAYLOAD: usize = 9_000;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One NAS PDU.
    Nas,
    /// The device released the connection.
    Release,
    /// A kind this build does not know.
    Unknown(u8),
}

impl Kind {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Nas,
            1 => Self::Release,
            other => Self::Unknown(other),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Nas => 0,
            Self::Release => 1,
            Self::Unknown(v) => v,
        }
    }
}

/// A datagram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("access datagram: {field}: {reason}")]
pub struct DecodeError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn error(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError {
        field,
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

    /// Reads a whole datagram.
    pub fn read(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(error(
                "header",
                format!("{} octets, a header has {HEADER_LEN}", bytes.len()),
            ));
        };
        if header[0] != VERSION {
            return Err(error(
                "version",
                format!("{}, this build reads {VERSION}", header[0]),
            ));
        }
        let kind = Kind::from_u8(header[1]);
        let mut conn = [0u8; 8];
        conn.copy_from_slice(&header[2..]);
        let conn = u64::from_be_bytes(conn);
        match kind {
            Kind::Nas if payload.is_empty() => {
                return Err(error("payload", "a NAS datagram without a PDU"));
            }
            Kind::Release if !payload.is_empty() => {
                return Err(error("payload", "a release carries nothing"));
            }
            _ => {}
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(error(
                "payload",
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
        fn encode_read(kind in 0u8..4, conn in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 1..32)) {
            let kind = Kind::from_u8(kind);
            let payload = if kind == Kind::Release { Vec::new() } else { payload };
            let d = Datagram { kind, conn, payload: &payload };
            let bytes = d.to_vec();
            prop_assert_eq!(Datagram::read(&bytes).unwrap(), d);
        }
    }
}
