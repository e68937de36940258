//! RADIUS packets and attributes (RFC 2865 §3 and §5).

use crate::codec::{DecodeError, EncodeError, Reader};

/// The smallest packet: Code, Identifier, Length, Authenticator (RFC 2865 §3).
pub const MIN_PACKET_LEN: usize = 20;
/// The largest packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// The longest attribute value: the one-octet Length counts Type and Length
/// too (RFC 2865 §5).
pub const MAX_ATTRIBUTE_VALUE: usize = 253;
/// Offset of the Authenticator field (RFC 2865 §3).
pub(crate) const AUTHENTICATOR_RANGE: std::ops::Range<usize> = 4..20;

/// Attribute types used by nido (RFC 2865 §5, RFC 2866 §5, RFC 2869 §5,
/// RFC 3579 §3, RFC 3162 §2).
pub mod attr {
    /// User-Name (RFC 2865 §5.1).
    pub const USER_NAME: u8 = 1;
    /// User-Password (RFC 2865 §5.2), hidden with [`crate::auth::hide_password`].
    pub const USER_PASSWORD: u8 = 2;
    /// CHAP-Password (RFC 2865 §5.3).
    pub const CHAP_PASSWORD: u8 = 3;
    /// NAS-IP-Address (RFC 2865 §5.4).
    pub const NAS_IP_ADDRESS: u8 = 4;
    /// NAS-Port (RFC 2865 §5.5).
    pub const NAS_PORT: u8 = 5;
    /// Service-Type (RFC 2865 §5.6).
    pub const SERVICE_TYPE: u8 = 6;
    /// Framed-Protocol (RFC 2865 §5.7).
    pub const FRAMED_PROTOCOL: u8 = 7;
    /// Framed-IP-Address (RFC 2865 §5.8).
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    /// Framed-MTU (RFC 2865 §5.12).
    pub const FRAMED_MTU: u8 = 12;
    /// Login-IP-Host (RFC 2865 §5.14).
    pub const LOGIN_IP_HOST: u8 = 14;
    /// Login-Service (RFC 2865 §5.15).
    pub const LOGIN_SERVICE: u8 = 15;
    /// Reply-Message (RFC 2865 §5.18).
    pub const REPLY_MESSAGE: u8 = 18;
    /// State (RFC 2865 §5.24).
    pub const STATE: u8 = 24;
    /// Class (RFC 2865 §5.25).
    pub const CLASS: u8 = 25;
    /// Vendor-Specific (RFC 2865 §5.26).
    pub const VENDOR_SPECIFIC: u8 = 26;
    /// Session-Timeout (RFC 2865 §5.27).
    pub const SESSION_TIMEOUT: u8 = 27;
    /// Idle-Timeout (RFC 2865 §5.28).
    pub const IDLE_TIMEOUT: u8 = 28;
    /// Called-Station-Id (RFC 2865 §5.30).
    pub const CALLED_STATION_ID: u8 = 30;
    /// Calling-Station-Id (RFC 2865 §5.31).
    pub const CALLING_STATION_ID: u8 = 31;
    /// NAS-Identifier (RFC 2865 §5.32).
    pub const NAS_IDENTIFIER: u8 = 32;
    /// Proxy-State (RFC 2865 §5.33).
    pub const PROXY_STATE: u8 = 33;
    /// Acct-Status-Type (RFC 2866 §5.1).
    pub const ACCT_STATUS_TYPE: u8 = 40;
    /// Acct-Session-Id (RFC 2866 §5.5).
    pub const ACCT_SESSION_ID: u8 = 44;
    /// NAS-Port-Type (RFC 2865 §5.41).
    pub const NAS_PORT_TYPE: u8 = 61;
    /// EAP-Message (RFC 3579 §3.1).
    pub const EAP_MESSAGE: u8 = 79;
    /// Message-Authenticator (RFC 3579 §3.2, RFC 2869 §5.14).
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    /// NAS-IPv6-Address (RFC 3162 §2.1).
    pub const NAS_IPV6_ADDRESS: u8 = 95;
}

/// The packet type (RFC 2865 §3 "Code", RFC 2866 §3, RFC 5997 for
/// Status-Server). Codes nido does not know are kept as [`Code::Unknown`];
/// `Code::from(u8)` never produces `Unknown` for a known value, so
/// `u8 -> Code -> u8` is the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// Access-Request (1).
    AccessRequest,
    /// Access-Accept (2).
    AccessAccept,
    /// Access-Reject (3).
    AccessReject,
    /// Accounting-Request (4, RFC 2866).
    AccountingRequest,
    /// Accounting-Response (5, RFC 2866).
    AccountingResponse,
    /// Access-Challenge (11).
    AccessChallenge,
    /// Status-Server (12, experimental in RFC 2865, RFC 5997).
    StatusServer,
    /// Status-Client (13, experimental in RFC 2865).
    StatusClient,
    /// Any other code, kept as received.
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::AccessRequest,
            2 => Self::AccessAccept,
            3 => Self::AccessReject,
            4 => Self::AccountingRequest,
            5 => Self::AccountingResponse,
            11 => Self::AccessChallenge,
            12 => Self::StatusServer,
            13 => Self::StatusClient,
            other => Self::Unknown(other),
        }
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> Self {
        match c {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::StatusClient => 13,
            Code::Unknown(v) => v,
        }
    }
}

impl Code {
    /// Access-Accept, Access-Reject or Access-Challenge: the replies that
    /// must carry a Message-Authenticator (RFC 3579 §3.2, BlastRADIUS).
    pub fn is_access_reply(self) -> bool {
        matches!(
            self,
            Self::AccessAccept | Self::AccessReject | Self::AccessChallenge
        )
    }
}

/// One attribute (RFC 2865 §5): Type, Length (2 + value), Value.
///
/// The codec is type-agnostic: unknown types are kept, and a value of 0..=253
/// octets is accepted (§5 says "zero or more octets"; the EAP-Start of RFC 3579
/// §3.1 is an empty EAP-Message). A received Length below 2, or one running
/// past the packet's Length, is a [`DecodeError`]. Values over 253 octets
/// cannot be encoded ([`EncodeError::AttributeTooLong`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The Type octet.
    pub typ: u8,
    /// The Value octets.
    pub value: Vec<u8>,
}

impl Attribute {
    /// Reads one attribute.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let typ = r.u8("Attribute Type")?;
        let at = r.offset();
        let len = usize::from(r.u8("Attribute Length")?);
        if len < 2 {
            return Err(DecodeError::BadLength {
                field: "Attribute Length",
                offset: at,
                length: len,
                reason: "is below 2",
            });
        }
        let value = r.take(len - 2, "Attribute Value")?.to_vec();
        Ok(Self { typ, value })
    }

    /// Appends the attribute's octets; refuses a value over 253 octets.
    /// `index` is only used to name the attribute in the error.
    pub(crate) fn encode_into(&self, index: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = u8::try_from(self.value.len() + 2)
            .ok()
            .filter(|_| self.value.len() <= MAX_ATTRIBUTE_VALUE)
            .ok_or(EncodeError::AttributeTooLong {
                index,
                typ: self.typ,
                length: self.value.len(),
            })?;
        out.push(self.typ);
        out.push(len);
        out.extend_from_slice(&self.value);
        Ok(())
    }
}

/// A RADIUS packet (RFC 2865 §3): Code, Identifier, Authenticator and the
/// attributes in order. The Length field is derived when encoding.
///
/// [`Packet::encode`] writes the fields as they are; the authenticated forms
/// are [`Packet::encode_request`] and [`Packet::encode_response`] in
/// [`crate::auth`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// The Code field.
    pub code: Code,
    /// The Identifier field (RFC 2865 §3: matches replies to requests).
    pub identifier: u8,
    /// The Authenticator field: for an Access-Request the (random) Request
    /// Authenticator the caller supplies.
    pub authenticator: [u8; 16],
    /// The attributes, in order; duplicates and unknown types kept.
    pub attributes: Vec<Attribute>,
}

impl Packet {
    /// A packet without attributes.
    pub fn new(code: Code, identifier: u8, authenticator: [u8; 16]) -> Self {
        Self {
            code,
            identifier,
            authenticator,
            attributes: Vec::new(),
        }
    }

    /// Decodes one datagram (RFC 2865 §3).
    ///
    /// The Length field must be 20..=4096 and at most the datagram's size.
    /// Octets of the datagram beyond Length are padding and are ignored, as
    /// §3 says ("Octets outside the range of the Length field MUST be treated
    /// as padding and ignored on reception"), so `encode(decode(d))` is the
    /// first Length octets of `d`. Inside Length, the attributes must fill
    /// the packet exactly.
    pub fn decode(octets: &[u8]) -> Result<Self, DecodeError> {
        let length = wire_length(octets)?;
        let mut r = Reader::new(octets.get(..length).unwrap_or(octets));
        let code = Code::from(r.u8("Code")?);
        let identifier = r.u8("Identifier")?;
        r.u16("Length")?;
        let authenticator = r.array("Authenticator")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            attributes.push(Attribute::read(&mut r)?);
        }
        Ok(Self {
            code,
            identifier,
            authenticator,
            attributes,
        })
    }

    /// Encodes the packet as it is (no authenticator computed). Refuses an
    /// attribute value over 253 octets or a packet over 4096 octets.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let length = self.encoded_len();
        if length > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong { length });
        }
        let mut out = Vec::with_capacity(length);
        out.push(u8::from(self.code));
        out.push(self.identifier);
        // length <= 4096 was checked above.
        out.extend_from_slice(&u16::try_from(length).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&self.authenticator);
        for (index, a) in self.attributes.iter().enumerate() {
            a.encode_into(index, &mut out)?;
        }
        Ok(out)
    }

    /// The length [`Packet::encode`] would write.
    pub fn encoded_len(&self) -> usize {
        self.attributes.iter().fold(MIN_PACKET_LEN, |n, a| {
            n.saturating_add(2).saturating_add(a.value.len())
        })
    }

    /// The value of the first attribute of type `typ`.
    pub fn attr(&self, typ: u8) -> Option<&[u8]> {
        self.attrs(typ).next()
    }

    /// The values of every attribute of type `typ`, in order.
    pub fn attrs(&self, typ: u8) -> impl Iterator<Item = &[u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |a| a.typ == typ)
            .map(|a| a.value.as_slice())
    }

    /// Appends an attribute; refuses a value over 253 octets (RFC 2865 §5).
    pub fn push(&mut self, typ: u8, value: &[u8]) -> Result<(), EncodeError> {
        if value.len() > MAX_ATTRIBUTE_VALUE {
            return Err(EncodeError::AttributeTooLong {
                index: self.attributes.len(),
                typ,
                length: value.len(),
            });
        }
        self.attributes.push(Attribute {
            typ,
            value: value.to_vec(),
        });
        Ok(())
    }
}

/// Checks the header's Length field against RFC 2865 §3 and the datagram,
/// and returns it.
pub(crate) fn wire_length(octets: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader::new(octets);
    r.u8("Code")?;
    r.u8("Identifier")?;
    let length = usize::from(r.u16("Length")?);
    if length < MIN_PACKET_LEN {
        return Err(DecodeError::BadLength {
            field: "Length",
            offset: 2,
            length,
            reason: "is below the minimum of 20",
        });
    }
    if length > MAX_PACKET_LEN {
        return Err(DecodeError::BadLength {
            field: "Length",
            offset: 2,
            length,
            reason: "is above the maximum of 4096",
        });
    }
    if length > octets.len() {
        return Err(DecodeError::LengthExceedsDatagram {
            length,
            datagram: octets.len(),
        });
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(code: u8, len: u16) -> Vec<u8> {
        let mut v = vec![code, 7];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[0xaa; 16]);
        v
    }

    #[test]
    fn code_round_trips_every_octet() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(Code::from(v)), v);
        }
        assert_eq!(Code::from(40), Code::Unknown(40));
    }

    #[test]
    fn minimal_packet() {
        let p = Packet::decode(&header(1, 20)).expect("decodes");
        assert_eq!(p, Packet::new(Code::AccessRequest, 7, [0xaa; 16]));
        assert_eq!(p.encode().expect("encodes"), header(1, 20));
    }

    #[test]
    fn length_limits() {
        assert!(matches!(
            Packet::decode(&header(1, 19)),
            Err(DecodeError::BadLength {
                field: "Length",
                offset: 2,
                length: 19,
                ..
            })
        ));
        let mut big = header(1, 4097);
        big.resize(5000, 0);
        assert!(matches!(
            Packet::decode(&big),
            Err(DecodeError::BadLength { length: 4097, .. })
        ));
        assert_eq!(
            Packet::decode(&header(1, 24)),
            Err(DecodeError::LengthExceedsDatagram {
                length: 24,
                datagram: 20
            })
        );
        assert!(matches!(
            Packet::decode(&[1, 2, 0]),
            Err(DecodeError::Truncated {
                field: "Length",
                offset: 2,
                ..
            })
        ));
        assert!(Packet::decode(&[]).is_err());
    }

    #[test]
    fn padding_beyond_length_is_ignored() {
        let mut d = header(2, 23);
        d.extend_from_slice(&[99, 3, 5]);
        d.extend_from_slice(&[0xff; 9]);
        let p = Packet::decode(&d).expect("decodes");
        assert_eq!(p.attr(99), Some(&[5u8][..]));
        assert_eq!(p.encode().expect("encodes"), d[..23]);
    }

    #[test]
    fn attribute_errors_name_offsets() {
        let mut d = header(1, 22);
        d.extend_from_slice(&[1, 1]);
        assert_eq!(
            Packet::decode(&d),
            Err(DecodeError::BadLength {
                field: "Attribute Length",
                offset: 21,
                length: 1,
                reason: "is below 2"
            })
        );
        let mut d = header(1, 24);
        d.extend_from_slice(&[1, 6, 0, 0]);
        assert_eq!(
            Packet::decode(&d),
            Err(DecodeError::Truncated {
                field: "Attribute Value",
                offset: 22,
                needed: 4,
                available: 2
            })
        );
        let mut d = header(1, 21);
        d.push(1);
        assert!(matches!(
            Packet::decode(&d),
            Err(DecodeError::Truncated {
                field: "Attribute Length",
                offset: 21,
                ..
            })
        ));
    }

    #[test]
    fn unknown_and_empty_attributes_are_kept() {
        let mut d = header(1, 27);
        d.extend_from_slice(&[200, 3, 9, attr::EAP_MESSAGE, 2, 241, 2]);
        let p = Packet::decode(&d).expect("decodes");
        assert_eq!(p.attributes.len(), 3);
        assert_eq!(p.attr(200), Some(&[9u8][..]));
        assert_eq!(p.attr(attr::EAP_MESSAGE), Some(&[][..]));
        assert_eq!(p.encode().expect("encodes"), d);
    }

    #[test]
    fn encode_limits() {
        let mut p = Packet::new(Code::AccessRequest, 0, [0; 16]);
        assert!(p.push(1, &[0; 253]).is_ok());
        assert_eq!(
            p.push(1, &[0; 254]),
            Err(EncodeError::AttributeTooLong {
                index: 1,
                typ: 1,
                length: 254
            })
        );
        p.attributes.push(Attribute {
            typ: 5,
            value: vec![0; 300],
        });
        assert_eq!(
            p.encode(),
            Err(EncodeError::AttributeTooLong {
                index: 1,
                typ: 5,
                length: 300
            })
        );
        let mut p = Packet::new(Code::AccessRequest, 0, [0; 16]);
        for _ in 0..16 {
            p.push(1, &[0; 253]).expect("fits");
        }
        assert_eq!(
            p.encode(),
            Err(EncodeError::PacketTooLong {
                length: 20 + 16 * 255
            })
        );
        p.attributes.pop();
        let d = p.encode().expect("fits");
        assert_eq!(Packet::decode(&d), Ok(p));
    }

    #[test]
    fn attrs_in_order() {
        let mut p = Packet::new(Code::AccessAccept, 0, [0; 16]);
        p.push(attr::CLASS, b"a").expect("push");
        p.push(attr::STATE, b"s").expect("push");
        p.push(attr::CLASS, b"b").expect("push");
        assert_eq!(p.attrs(attr::CLASS).collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(p.attr(attr::CLASS), Some(&b"a"[..]));
        assert_eq!(p.attr(attr::USER_NAME), None);
    }
}
