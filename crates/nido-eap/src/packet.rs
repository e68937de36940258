//! EAP packets (RFC 3748 §4, §5).

use crate::codec::{DecodeError, Reader};

/// The EAP Code field (RFC 3748 §4). Unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1: Request.
    Request,
    /// 2: Response.
    Response,
    /// 3: Success.
    Success,
    /// 4: Failure.
    Failure,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Success,
            4 => Self::Failure,
            other => Self::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> Self {
        match c {
            Code::Request => 1,
            Code::Response => 2,
            Code::Success => 3,
            Code::Failure => 4,
            Code::Unknown(v) => v,
        }
    }
}

/// The EAP method Type field (RFC 3748 §5, IANA). Unknown types are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodType {
    /// 1: Identity.
    Identity,
    /// 2: Notification.
    Notification,
    /// 3: Legacy Nak.
    Nak,
    /// 13: EAP-TLS (RFC 5216, RFC 9190).
    Tls,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for MethodType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Identity,
            2 => Self::Notification,
            3 => Self::Nak,
            13 => Self::Tls,
            other => Self::Unknown(other),
        }
    }
}

impl From<MethodType> for u8 {
    fn from(t: MethodType) -> Self {
        match t {
            MethodType::Identity => 1,
            MethodType::Notification => 2,
            MethodType::Nak => 3,
            MethodType::Tls => 13,
            MethodType::Unknown(v) => v,
        }
    }
}

/// An EAP packet (RFC 3748 §4): Code, Identifier, Length, and for Request
/// and Response a Type and type data. Success and Failure have no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Code.
    pub code: Code,
    /// Identifier: matches a Response to its Request.
    pub identifier: u8,
    /// For Request/Response: the method type and its data.
    pub method: Option<(MethodType, Vec<u8>)>,
}

/// The largest EAP packet: the Length field is 16 bits.
pub const MAX_PACKET: usize = u16::MAX as usize;

impl Packet {
    /// A Request of `method` with `data`.
    pub fn request(identifier: u8, method: MethodType, data: Vec<u8>) -> Self {
        Self {
            code: Code::Request,
            identifier,
            method: Some((method, data)),
        }
    }

    /// A Response of `method` with `data`.
    pub fn response(identifier: u8, method: MethodType, data: Vec<u8>) -> Self {
        Self {
            code: Code::Response,
            identifier,
            method: Some((method, data)),
        }
    }

    /// EAP-Success.
    pub fn success(identifier: u8) -> Self {
        Self {
            code: Code::Success,
            identifier,
            method: None,
        }
    }

    /// EAP-Failure.
    pub fn failure(identifier: u8) -> Self {
        Self {
            code: Code::Failure,
            identifier,
            method: None,
        }
    }

    /// Decodes one packet occupying all of `bytes`: the Length field must
    /// equal the input length (RFC 3748 §4.1 lets a link pad; NAS does not).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let p = Self::read(&mut r)?;
        r.expect_end("EAP packet")?;
        Ok(p)
    }

    /// Reads one packet from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = Code::from(r.u8("EAP code")?);
        let identifier = r.u8("EAP identifier")?;
        let length = usize::from(r.u16("EAP length")?);
        if length < 4 {
            return Err(DecodeError::Invalid {
                field: "EAP length",
                detail: format!("{length} < 4"),
            });
        }
        let body = r.take(length - 4, "EAP data")?;
        let method = match code {
            Code::Request | Code::Response => {
                let mut b = Reader::new(body);
                let t = MethodType::from(b.u8("EAP type")?);
                Some((t, b.rest().to_vec()))
            }
            Code::Success | Code::Failure if !body.is_empty() => {
                return Err(DecodeError::Trailing {
                    field: "EAP success/failure",
                    extra: body.len(),
                });
            }
            Code::Success | Code::Failure => None,
            Code::Unknown(_) => Some((MethodType::Unknown(0), body.to_vec())),
        };
        Ok(Self {
            code,
            identifier,
            method,
        })
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let type_octet = usize::from(!matches!(self.code, Code::Unknown(_)));
        let data_len = self
            .method
            .as_ref()
            .map_or(0, |(_, d)| type_octet + d.len());
        let length = (4 + data_len).min(MAX_PACKET) as u16;
        out.push(self.code.into());
        out.push(self.identifier);
        out.extend_from_slice(&length.to_be_bytes());
        if let Some((t, d)) = &self.method {
            if !matches!(self.code, Code::Unknown(_)) {
                out.push((*t).into());
            }
            out.extend_from_slice(d);
        }
    }

    /// The encoding as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_tls_start_and_success() {
        let start = Packet::request(7, MethodType::Tls, vec![0x20]);
        assert_eq!(start.to_bytes(), [1, 7, 0, 6, 13, 0x20]);
        assert_eq!(Packet::decode(&[1, 7, 0, 6, 13, 0x20]).unwrap(), start);
        assert_eq!(Packet::success(9).to_bytes(), [3, 9, 0, 4]);
        assert_eq!(Packet::decode(&[4, 9, 0, 4]).unwrap(), Packet::failure(9));
    }

    #[test]
    fn rejects_bad_lengths_and_trailing() {
        assert!(matches!(
            Packet::decode(&[1, 1, 0, 3]),
            Err(DecodeError::Invalid {
                field: "EAP length",
                ..
            })
        ));
        assert!(matches!(
            Packet::decode(&[1, 1, 0, 9, 13]),
            Err(DecodeError::Truncated {
                field: "EAP data",
                ..
            })
        ));
        assert!(matches!(
            Packet::decode(&[3, 1, 0, 4, 0]),
            Err(DecodeError::Trailing { .. })
        ));
        assert!(matches!(
            Packet::decode(&[3, 1, 0, 5, 0]),
            Err(DecodeError::Trailing { .. })
        ));
        assert!(matches!(
            Packet::decode(&[1, 1, 0, 4]),
            Err(DecodeError::Truncated {
                field: "EAP type",
                ..
            })
        ));
    }

    #[test]
    fn unknown_codes_and_types_are_kept() {
        let p = Packet::decode(&[2, 3, 0, 6, 99, 0xAA]).unwrap();
        assert_eq!(p.method, Some((MethodType::Unknown(99), vec![0xAA])));
        assert_eq!(p.to_bytes(), [2, 3, 0, 6, 99, 0xAA]);
        let u = Packet::decode(&[9, 3, 0, 6, 1, 2]).unwrap();
        assert_eq!(u.code, Code::Unknown(9));
        assert_eq!(u.to_bytes(), [9, 3, 0, 6, 1, 2]);
    }
}
