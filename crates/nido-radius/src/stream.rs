//! RADIUS packets on a byte stream (RadSec, RFC 6614 §2.5): packets follow
//! each other back to back on the TLS stream, each delimited by its own
//! Length field (RFC 2865 §3). [`StreamFramer`] is the sans-IO reassembler:
//! push the plaintext octets as they arrive, pop whole packets.
//!
//! ## Invariants
//! - A popped packet is exactly `Length` octets, `MIN_PACKET_LEN ..=
//!   MAX_PACKET_LEN`; nothing of the next packet is in it.
//! - A Length outside that range is a [`FrameError`]: on a stream there is
//!   no way to find the next packet, so the connection must be closed (RFC
//!   6614 §2.5: a malformed packet closes the connection). The framer stays
//!   in error from then on.
//! - The buffer never holds more than [`StreamFramer::capacity`] octets
//!   (one largest packet plus what one read adds); a push beyond it is
//!   refused with [`FrameError::Overflow`] rather than grown.
//! - No panic on any input.

use thiserror::Error;

use crate::packet::{MAX_PACKET_LEN, MIN_PACKET_LEN};

/// Why a stream cannot be framed any further: close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A packet header announces a Length outside 20..=4096.
    #[error("RADIUS Length {0} outside 20..=4096: the stream cannot be framed")]
    BadLength(usize),
    /// More octets were pushed than the buffer holds: the reader is not
    /// popping packets.
    #[error("stream buffer full ({0} octets)")]
    Overflow(usize),
}

/// Reassembles RADIUS packets from a byte stream.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    capacity: usize,
    failed: Option<FrameError>,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamFramer {
    /// A framer that buffers up to two largest packets (4096 octets each).
    pub fn new() -> Self {
        Self::with_capacity(2 * MAX_PACKET_LEN)
    }

    /// A framer that buffers up to `capacity` octets (at least one largest
    /// packet).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::new(),
            capacity: capacity.max(MAX_PACKET_LEN),
            failed: None,
        }
    }

    /// The most octets it buffers.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Octets buffered, not yet popped.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more octets a push may bring.
    pub fn room(&self) -> usize {
        self.capacity - self.buf.len()
    }

    /// Appends received octets. Refuses (and keeps nothing of) a push
    /// beyond [`Self::room`]; pop packets first.
    pub fn push(&mut self, octets: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if octets.len() > self.room() {
            let e = FrameError::Overflow(self.capacity);
            self.failed = Some(e);
            return Err(e);
        }
        self.buf.extend_from_slice(octets);
        Ok(())
    }

    /// The next whole packet, `None` while it is incomplete; an error (for
    /// good) once a header carries an impossible Length.
    pub fn pop(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(header) = self.buf.get(..4) else {
            return Ok(None);
        };
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if !(MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&length) {
            let e = FrameError::BadLength(length);
            self.failed = Some(e);
            return Err(e);
        }
        if self.buf.len() < length {
            return Ok(None);
        }
        let rest = self.buf.split_off(length);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn packet(identifier: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 1;
        p[1] = identifier;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        for (i, b) in p.iter_mut().enumerate().skip(20) {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn a_packet_split_across_reads() {
        let p = packet(7, 300);
        let mut f = StreamFramer::new();
        for chunk in p.chunks(7) {
            assert_eq!(f.pop(), Ok(None));
            f.push(chunk).unwrap();
        }
        assert_eq!(f.pop(), Ok(Some(p)));
        assert_eq!(f.pop(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn several_packets_in_one_read() {
        let (a, b, c) = (packet(1, 20), packet(2, 4096), packet(3, 100));
        let mut stream = [a.clone(), b.clone(), c.clone()].concat();
        let tail = stream.split_off(stream.len() - 10);
        let mut f = StreamFramer::with_capacity(3 * MAX_PACKET_LEN);
        f.push(&stream).unwrap();
        assert_eq!(f.pop(), Ok(Some(a)));
        assert_eq!(f.pop(), Ok(Some(b)));
        assert_eq!(f.pop(), Ok(None));
        f.push(&tail).unwrap();
        assert_eq!(f.pop(), Ok(Some(c)));
        assert_eq!(f.pop(), Ok(None));
    }

    #[test]
    fn a_bad_length_closes_the_stream() {
        for bad in [0usize, 19, 4097, 65535] {
            let mut f = StreamFramer::new();
            let mut p = packet(1, 20);
            p[2..4].copy_from_slice(&(bad as u16).to_be_bytes());
            f.push(&p).unwrap();
            assert_eq!(f.pop(), Err(FrameError::BadLength(bad)));
            // For good: even a valid packet after it is not framed.
            assert_eq!(f.push(&packet(2, 20)), Err(FrameError::BadLength(bad)));
            assert_eq!(f.pop(), Err(FrameError::BadLength(bad)));
        }
        // The header alone decides, before the packet is complete.
        let mut f = StreamFramer::new();
        f.push(&[1, 1, 0x20, 0x00]).unwrap();
        assert_eq!(f.pop(), Err(FrameError::BadLength(0x2000)));
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut f = StreamFramer::new();
        assert_eq!(f.capacity(), 8192);
        f.push(&packet(1, 4096)).unwrap();
        f.push(&packet(2, 4096)).unwrap();
        assert_eq!(f.push(&[0]), Err(FrameError::Overflow(8192)));
        assert_eq!(f.pop(), Err(FrameError::Overflow(8192)));
    }
}
