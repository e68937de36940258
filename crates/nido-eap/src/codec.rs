//! A rustls-style reader over a byte slice, and the decoding error that
//! names the field that failed.

use thiserror::Error;

/// Why octets did not decode. `field` names what was being read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("{field}: input ends early (needed {needed} more octets)")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// How many more octets it needed.
        needed: usize,
    },
    /// Octets remain after the last field.
    #[error("{field}: {extra} trailing octets")]
    Trailing {
        /// The structure that ended.
        field: &'static str,
        /// How many octets remained.
        extra: usize,
    },
    /// A field has a value the format forbids.
    #[error("{field}: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Reads fields in order from a slice; never panics.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Octets not yet read.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes `n` octets.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.left() < n {
            return Err(DecodeError::Truncated {
                field,
                needed: n - self.left(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes one octet.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// Takes a big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Takes a big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Takes everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Fails if octets remain.
    pub fn expect_end(&self, field: &'static str) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { field, extra }),
        }
    }
}
