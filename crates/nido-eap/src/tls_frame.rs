//! EAP-TLS type data (RFC 5216 §3.1, unchanged by RFC 9190): a flags octet,
//! the TLS message length when L is set, and TLS record octets; and the
//! fragmentation and reassembly of TLS messages across EAP packets.

use thiserror::Error;

use crate::codec::{DecodeError, Reader};

/// L: the TLS Message Length field is present.
pub const FLAG_LENGTH: u8 = 0x80;
/// M: more fragments follow.
pub const FLAG_MORE: u8 = 0x40;
/// S: EAP-TLS start (server to peer only).
pub const FLAG_START: u8 = 0x20;

/// The octets an EAP-TLS packet spends before its TLS data: EAP header (4),
/// type (1), flags (1), TLS message length (4).
pub const OVERHEAD: usize = 10;

/// The largest EAP message the NAS EAP message IE carries (TS 24.501 §9.11.2.2: 1500 octets).
pub const NAS_EAP_MESSAGE_MAX: usize = 1500;

/// Default TLS octets per fragment: the most that fits the NAS EAP message IE.
pub const DEFAULT_FRAGMENT: usize = NAS_EAP_MESSAGE_MAX - OVERHEAD;

/// One EAP-TLS type-data field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFrame {
    /// The flags octet as received, reserved bits kept, without L (which
    /// `message_length` stands for).
    pub flags: u8,
    /// TLS Message Length: the total length of the fragmented TLS message.
    pub message_length: Option<u32>,
    /// TLS data.
    pub data: Vec<u8>,
}

impl TlsFrame {
    /// An EAP-TLS Start (S flag, no data).
    pub fn start() -> Self {
        Self {
            flags: FLAG_START,
            message_length: None,
            data: Vec::new(),
        }
    }

    /// An empty frame: a fragment acknowledgement, or the peer's final response.
    pub fn ack() -> Self {
        Self {
            flags: 0,
            message_length: None,
            data: Vec::new(),
        }
    }

    /// Whether S is set.
    pub fn is_start(&self) -> bool {
        self.flags & FLAG_START != 0
    }

    /// Whether M is set.
    pub fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    /// Decodes EAP-TLS type data (no trailing octets possible: data runs to the end).
    pub fn decode(type_data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(type_data);
        let flags = r.u8("EAP-TLS flags")?;
        let message_length = if flags & FLAG_LENGTH != 0 {
            Some(r.u32("EAP-TLS message length")?)
        } else {
            None
        };
        Ok(Self {
            flags: flags & !FLAG_LENGTH,
            message_length,
            data: r.rest().to_vec(),
        })
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let flags = match self.message_length {
            Some(_) => self.flags | FLAG_LENGTH,
            None => self.flags & !FLAG_LENGTH,
        };
        out.push(flags);
        if let Some(l) = self.message_length {
            out.extend_from_slice(&l.to_be_bytes());
        }
        out.extend_from_slice(&self.data);
    }

    /// The encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.data.len());
        self.encode(&mut out);
        out
    }
}

/// Splits a TLS message into frames of at most `fragment` TLS octets. A
/// message that fits is one frame without L; otherwise every fragment has M
/// but the last, and the first has L with the total length.
pub fn fragment(message: &[u8], fragment: usize) -> Vec<TlsFrame> {
    let fragment = fragment.max(1);
    if message.len() <= fragment {
        return vec![TlsFrame {
            flags: 0,
            message_length: None,
            data: message.to_vec(),
        }];
    }
    let total = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let count = message.len().div_ceil(fragment);
    message
        .chunks(fragment)
        .enumerate()
        .map(|(i, chunk)| TlsFrame {
            flags: if i + 1 < count { FLAG_MORE } else { 0 },
            message_length: (i == 0).then_some(total),
            data: chunk.to_vec(),
        })
        .collect()
}

/// Bounds on what a peer may make us buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest reassembled TLS message, octets.
    pub max_message: usize,
    /// Most fragments in one message.
    pub max_fragments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: 64 * 1024,
            max_fragments: 64,
        }
    }
}

/// Why a fragment was refused. Any of these ends the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The announced or accumulated length exceeds [`Limits::max_message`].
    #[error("TLS message of {0} octets exceeds the limit")]
    Oversize(usize),
    /// More than [`Limits::max_fragments`] fragments.
    #[error("more than {0} fragments")]
    TooManyFragments(usize),
    /// The fragments carry more octets than the TLS message length announced.
    #[error("fragments carry {got} octets, more than the announced {announced}")]
    Overflow {
        /// Octets received so far.
        got: usize,
        /// The announced length.
        announced: usize,
    },
    /// The last fragment arrived before the announced length was reached.
    #[error("last fragment leaves the message at {got} of {announced} octets")]
    Truncated {
        /// Octets received.
        got: usize,
        /// The announced length.
        announced: usize,
    },
    /// A later fragment announced a different total length.
    #[error("TLS message length changed from {first} to {later}")]
    LengthChanged {
        /// The first announcement.
        first: usize,
        /// The later one.
        later: usize,
    },
    /// A fragmented message's first fragment lacks the L flag (RFC 5216 §3.1).
    #[error("first fragment of a fragmented message has no TLS message length")]
    MissingLength,
}

/// Reassembles one TLS message from frames, within [`Limits`].
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
    announced: Option<usize>,
    fragments: usize,
    limits: Limits,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Whether a message is partly received.
    pub fn in_progress(&self) -> bool {
        self.fragments > 0
    }

    /// Adds a frame; returns the whole message when the last fragment came.
    pub fn push(&mut self, frame: &TlsFrame) -> Result<Option<Vec<u8>>, FragmentError> {
        self.fragments += 1;
        if self.fragments > self.limits.max_fragments {
            return Err(FragmentError::TooManyFragments(self.limits.max_fragments));
        }
        if let Some(l) = frame.message_length {
            let l = l as usize;
            if l > self.limits.max_message {
                return Err(FragmentError::Oversize(l));
            }
            match self.announced {
                Some(first) if first != l => {
                    return Err(FragmentError::LengthChanged { first, later: l });
                }
                _ => self.announced = Some(l),
            }
        } else if self.fragments == 1 && frame.more() {
            return Err(FragmentError::MissingLength);
        }
        let got = self.buf.len() + frame.data.len();
        if got > self.limits.max_message {
            return Err(FragmentError::Oversize(got));
        }
        if let Some(announced) = self.announced
            && got > announced
        {
            return Err(FragmentError::Overflow { got, announced });
        }
        self.buf.extend_from_slice(&frame.data);
        if frame.more() {
            return Ok(None);
        }
        if let Some(announced) = self.announced
            && got < announced
        {
            return Err(FragmentError::Truncated { got, announced });
        }
        let message = std::mem::take(&mut self.buf);
        self.announced = None;
        self.fragments = 0;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = TlsFrame {
            flags: FLAG_MORE,
            message_length: Some(3000),
            data: vec![1, 2, 3],
        };
        let bytes = f.to_bytes();
        assert_eq!(bytes, [0xC0, 0, 0, 0x0B, 0xB8, 1, 2, 3]);
        assert_eq!(TlsFrame::decode(&bytes).unwrap(), f);
        assert!(TlsFrame::decode(&[0x80, 0, 0]).is_err());
        assert!(TlsFrame::decode(&[]).is_err());
    }

    #[test]
    fn fragment_then_reassemble_at_many_sizes() {
        let message: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        for size in [64, 100, 1400, 1490, 2999, 3000, 5000] {
            let frames = fragment(&message, size);
            let mut r = Reassembler::new(Limits::default());
            let mut out = None;
            for (i, f) in frames.iter().enumerate() {
                let decoded = TlsFrame::decode(&f.to_bytes()).unwrap();
                let got = r.push(&decoded).unwrap();
                assert_eq!(got.is_some(), i + 1 == frames.len());
                out = got.or(out);
            }
            assert_eq!(out.unwrap(), message, "size {size}");
        }
    }

    #[test]
    fn bounds_hold() {
        let mut r = Reassembler::new(Limits {
            max_message: 100,
            max_fragments: 3,
        });
        let big = TlsFrame {
            flags: FLAG_MORE,
            message_length: Some(101),
            data: vec![0; 10],
        };
        assert_eq!(r.push(&big), Err(FragmentError::Oversize(101)));

        let mut r = Reassembler::new(Limits {
            max_message: 100,
            max_fragments: 3,
        });
        let first = TlsFrame {
            flags: FLAG_MORE,
            message_length: Some(20),
            data: vec![0; 10],
        };
        let more = TlsFrame {
            flags: FLAG_MORE,
            message_length: None,
            data: vec![0; 5],
        };
        r.push(&first).unwrap();
        r.push(&more).unwrap();
        r.push(&more).unwrap();
        assert_eq!(r.push(&more), Err(FragmentError::TooManyFragments(3)));

        let mut r = Reassembler::new(Limits::default());
        r.push(&first).unwrap();
        let last_short = TlsFrame {
            flags: 0,
            message_length: None,
            data: vec![0; 5],
        };
        assert_eq!(
            r.push(&last_short),
            Err(FragmentError::Truncated {
                got: 15,
                announced: 20
            })
        );

        let mut r = Reassembler::new(Limits::default());
        r.push(&first).unwrap();
        let overflow = TlsFrame {
            flags: 0,
            message_length: None,
            data: vec![0; 11],
        };
        assert_eq!(
            r.push(&overflow),
            Err(FragmentError::Overflow {
                got: 21,
                announced: 20
            })
        );

        let mut r = Reassembler::new(Limits::default());
        assert_eq!(r.push(&more), Err(FragmentError::MissingLength));

        let mut r = Reassembler::new(Limits::default());
        r.push(&first).unwrap();
        let changed = TlsFrame {
            flags: FLAG_MORE,
            message_length: Some(30),
            data: vec![],
        };
        assert_eq!(
            r.push(&changed),
            Err(FragmentError::LengthChanged {
                first: 20,
                later: 30
            })
        );
    }
}
