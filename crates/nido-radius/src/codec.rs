//! A rustls-style reader over received octets, and the typed errors of
//! decoding and encoding. Every error names the field and the octet offset.

use thiserror::Error;

/// Why octets did not decode (RFC 2865 §3 and §5 framing).
///
/// `field` names what was being read; `offset` is the octet offset of that
/// field from the start of the input handed to the decoder (the datagram for
/// [`crate::Packet::decode`], the attribute value for the Vendor-Specific
/// decoders in [`crate::mppe`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("{field} at octet {offset}: truncated ({needed} octets needed, {available} available)")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its octet offset.
        offset: usize,
        /// Octets the field needs.
        needed: usize,
        /// Octets that were left.
        available: usize,
    },
    /// Octets remain after the last field of a structure that must end.
    #[error("{field} ends at octet {offset} but {count} trailing octets follow")]
    Trailing {
        /// The structure that ended.
        field: &'static str,
        /// Where it ended.
        offset: usize,
        /// How many octets remained.
        count: usize,
    },
    /// A length field has a value the format forbids.
    #[error("{field} at octet {offset}: length {length} {reason}")]
    BadLength {
        /// The length field.
        field: &'static str,
        /// Its octet offset.
        offset: usize,
        /// The value it holds.
        length: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The packet's Length field (RFC 2865 §3) claims more octets than the
    /// datagram holds: the packet "MUST be silently discarded".
    #[error("Length at octet 2: {length} exceeds the {datagram}-octet datagram")]
    LengthExceedsDatagram {
        /// The Length field.
        length: usize,
        /// The datagram's size.
        datagram: usize,
    },
}

/// Why a value could not be encoded: the limits of RFC 2865 §3 (packet at
/// most 4096 octets) and §5 (attribute value at most 253 octets).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An attribute value longer than 253 octets.
    #[error("attribute {index} (type {typ}): value of {length} octets exceeds 253")]
    AttributeTooLong {
        /// Its position in the attribute list.
        index: usize,
        /// Its type.
        typ: u8,
        /// Its value's length.
        length: usize,
    },
    /// The encoded packet would exceed 4096 octets.
    #[error("packet of {length} octets exceeds 4096")]
    PacketTooLong {
        /// The length it would have.
        length: usize,
    },
}

/// Reads fields in order from a slice; never panics. Offsets in errors are
/// from the start of the slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The offset of the next octet to read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Octets not yet read.
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// Takes `n` octets.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(DecodeError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                available: self.left(),
            })?;
        self.pos += n;
        Ok(out)
    }

    /// Takes `N` octets as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Takes one octet.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(field)?;
        Ok(b)
    }

    /// Takes a big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Takes a big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Refuses octets left after the structure `field`.
    pub fn expect_end(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            count => Err(DecodeError::Trailing {
                field,
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_field_and_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(
            r.u32("b"),
            Err(DecodeError::Truncated {
                field: "b",
                offset: 1,
                needed: 4,
                available: 2
            })
        );
        assert_eq!(r.u16("c"), Ok(0x0203));
        assert!(r.is_empty());
        assert_eq!(r.expect_end("x"), Ok(()));
        assert!(matches!(
            r.take(usize::MAX, "huge"),
            Err(DecodeError::Truncated { offset: 3, .. })
        ));
    }

    #[test]
    fn trailing_is_reported() {
        let mut r = Reader::new(&[1, 2, 3]);
        let _ = r.u8("a");
        assert_eq!(
            r.expect_end("s"),
            Err(DecodeError::Trailing {
                field: "s",
                offset: 1,
                count: 2
            })
        );
    }
}
