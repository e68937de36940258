//! Packet authentication: the Request and Response Authenticators
//! (RFC 2865 §3, RFC 2866 §3), the Message-Authenticator (RFC 3579 §3.2,
//! RFC 2869 §5.14) and User-Password hiding (RFC 2865 §5.2).
//!
//! Everything nido sends carries a Message-Authenticator, first in the
//! attribute list; every Access-Request, Status-Server, Access-Accept,
//! Access-Reject and Access-Challenge nido receives must carry exactly one
//! valid Message-Authenticator (the BlastRADIUS hardening of 2024: the MD5
//! Response Authenticator alone can be forged by a chosen-prefix collision).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::codec::{DecodeError, EncodeError, Reader};
use crate::packet::{AUTHENTICATOR_RANGE, Attribute, Code, Packet, attr, wire_length};

/// The shared secret between a RADIUS client and server (RFC 2865 §3:
/// "The secret (password shared between the client and the RADIUS server)
/// SHOULD be at least as large and unguessable as a well-chosen password").
///
/// Never empty; zeroized on drop; `Debug` prints `Secret([redacted])`.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps a secret; refuses an empty one (RFC 2865 §3: "The shared
    /// secret ... MUST NOT be empty").
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::EmptySecret);
        }
        Ok(Self(Zeroizing::new(secret.to_vec())))
    }

    pub(crate) fn octets(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Why a packet was not authenticated or could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The octets did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The packet could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An empty shared secret.
    #[error("the shared secret is empty")]
    EmptySecret,
    /// A packet that must carry a Message-Authenticator has none.
    #[error("Message-Authenticator missing")]
    MissingMessageAuthenticator,
    /// More than one Message-Authenticator (RFC 3579 §3.2: "at most one").
    #[error("Message-Authenticator present {count} times")]
    DuplicateMessageAuthenticator {
        /// How many there were.
        count: usize,
    },
    /// A Message-Authenticator whose value is not 16 octets.
    #[error("Message-Authenticator at octet {offset} has {length} octets, not 16")]
    MessageAuthenticatorLength {
        /// Offset of its Type octet.
        offset: usize,
        /// Its value's length.
        length: usize,
    },
    /// The Message-Authenticator does not verify.
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    /// An Accounting-Request's Request Authenticator does not verify.
    #[error("Request Authenticator does not verify")]
    BadRequestAuthenticator,
    /// The Response Authenticator does not verify.
    #[error("Response Authenticator does not verify")]
    BadResponseAuthenticator,
    /// The reply's Identifier is not the request's.
    #[error("Identifier {found} does not match the request's {expected}")]
    IdentifierMismatch {
        /// The request's.
        expected: u8,
        /// The reply's.
        found: u8,
    },
    /// Signing or verifying a request whose Code is not a request nido
    /// authenticates (Access-Request, Accounting-Request, Status-Server).
    #[error("{0:?} is not a request")]
    NotARequest(Code),
    /// Signing a reply whose Code is not Access-Accept/Reject/Challenge or
    /// Accounting-Response.
    #[error("{0:?} is not a reply")]
    NotAReply(Code),
    /// A reply whose Code does not answer the request's.
    #[error("{reply:?} does not answer {request:?}")]
    UnexpectedReply {
        /// The request's Code.
        request: Code,
        /// The reply's Code.
        reply: Code,
    },
    /// A User-Password of more than 128 octets, or a hidden one whose
    /// length is not a multiple of 16 in 16..=128 (RFC 2865 §5.2).
    #[error("User-Password of {length} octets")]
    PasswordLength {
        /// The length.
        length: usize,
    },
}

/// What a client remembers of a request it sent, to verify the reply
/// (RFC 2865 §3: the reply is matched by Identifier and authenticated with
/// the Request Authenticator). Take it from the octets as sent: an
/// Accounting-Request's authenticator is only known once encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestInfo {
    /// The request's Code.
    pub code: Code,
    /// The request's Identifier.
    pub identifier: u8,
    /// The Request Authenticator as sent.
    pub authenticator: [u8; 16],
}

impl RequestInfo {
    /// Reads Code, Identifier and Authenticator from an encoded request.
    pub fn from_octets(octets: &[u8]) -> Result<Self, DecodeError> {
        wire_length(octets)?;
        let mut r = Reader::new(octets);
        let code = Code::from(r.u8("Code")?);
        let identifier = r.u8("Identifier")?;
        r.u16("Length")?;
        let authenticator = r.array("Authenticator")?;
        Ok(Self {
            code,
            identifier,
            authenticator,
        })
    }
}

pub(crate) fn md5(parts: &[&[u8]]) -> Zeroizing<[u8; 16]> {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    Zeroizing::new(h.finalize().into())
}

/// HMAC-MD5 (RFC 2104) with any key length: the key is brought to the
/// block size here (hashed if longer than 64 octets, zero-padded), which is
/// what HMAC does itself, so the fixed-size (infallible) constructor is used.
pub(crate) fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > block.len() {
        block[..16].copy_from_slice(md5(&[key]).as_slice());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Md5> as KeyInit>::new(&(*block).into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The Message-Authenticator attributes of a decoded packet: (offset of the
/// Type octet, value length).
fn message_authenticators(p: &Packet) -> Vec<(usize, usize)> {
    let mut at = crate::packet::MIN_PACKET_LEN;
    let mut found = Vec::new();
    for a in &p.attributes {
        if a.typ == attr::MESSAGE_AUTHENTICATOR {
            found.push((at, a.value.len()));
        }
        at += 2 + a.value.len();
    }
    found
}

/// Checks the Message-Authenticator of `wire` (exactly the packet's Length
/// octets), computed with `authenticator` in the Authenticator field (RFC 3579
/// §3.2). Without one: `Ok` unless `required`.
fn check_message_authenticator(
    wire: &[u8],
    p: &Packet,
    secret: &Secret,
    authenticator: &[u8; 16],
    required: bool,
) -> Result<(), AuthError> {
    let found = message_authenticators(p);
    let (at, length) = match found.as_slice() {
        [] if required => return Err(AuthError::MissingMessageAuthenticator),
        [] => return Ok(()),
        [one] => *one,
        more => {
            return Err(AuthError::DuplicateMessageAuthenticator { count: more.len() });
        }
    };
    if length != 16 {
        return Err(AuthError::MessageAuthenticatorLength { offset: at, length });
    }
    let mut copy = wire.to_vec();
    copy[AUTHENTICATOR_RANGE].copy_from_slice(authenticator);
    let value = at + 2..at + 18;
    let mut got = [0u8; 16];
    got.copy_from_slice(&copy[value.clone()]);
    copy[value].fill(0);
    let expected = hmac_md5(secret.octets(), &copy);
    if bool::from(expected.ct_eq(&got)) {
        Ok(())
    } else {
        Err(AuthError::BadMessageAuthenticator)
    }
}

/// The packet with a zeroed Message-Authenticator first and no other one.
fn with_message_authenticator_first(p: &Packet) -> Packet {
    let mut out = p.clone();
    out.attributes
        .retain(|a| a.typ != attr::MESSAGE_AUTHENTICATOR);
    out.attributes.insert(
        0,
        Attribute {
            typ: attr::MESSAGE_AUTHENTICATOR,
            value: vec![0; 16],
        },
    );
    out
}

/// Where the first attribute's value starts: the Message-Authenticator that
/// [`with_message_authenticator_first`] put there.
const FIRST_VALUE: std::ops::Range<usize> = 22..38;

/// Encodes `p` (Message-Authenticator first) with `authenticator` in the
/// Authenticator field and fills in the Message-Authenticator.
fn encode_signed(
    p: &Packet,
    authenticator: &[u8; 16],
    secret: &Secret,
) -> Result<Vec<u8>, AuthError> {
    let mut p = with_message_authenticator_first(p);
    p.authenticator = *authenticator;
    let mut out = p.encode()?;
    let ma = hmac_md5(secret.octets(), &out);
    out[FIRST_VALUE].copy_from_slice(&ma);
    Ok(out)
}

/// MD5(packet with its Authenticator field replaced by `authenticator` ||
/// secret): the Response Authenticator (RFC 2865 §3) and, with 16 zero
/// octets, the Accounting-Request's Request Authenticator (RFC 2866 §3).
fn md5_authenticator(wire: &[u8], authenticator: &[u8; 16], secret: &Secret) -> [u8; 16] {
    let (head, rest) = wire.split_at(wire.len().min(4));
    let tail = rest.get(16..).unwrap_or(&[]);
    *md5(&[head, authenticator, tail, secret.octets()])
}

/// The Response Authenticator a server computes for the reply `octets`
/// (RFC 2865 §3): MD5(Code+Identifier+Length+RequestAuth+Attributes+Secret),
/// over the packet's Length octets (padding ignored).
pub fn response_authenticator(
    octets: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
) -> Result<[u8; 16], DecodeError> {
    let length = wire_length(octets)?;
    let wire = octets.get(..length).unwrap_or(octets);
    Ok(md5_authenticator(wire, request_authenticator, secret))
}

impl Packet {
    /// Encodes a request as a client sends it.
    ///
    /// - Access-Request and Status-Server (RFC 2865 §3, RFC 5997 §3):
    ///   `self.authenticator` is the Request Authenticator (the caller draws
    ///   it at random, RFC 2865 §3 "unpredictable and unique"); a
    ///   Message-Authenticator (RFC 3579 §3.2) is put first, replacing any.
    /// - Accounting-Request (RFC 2866 §3): the Message-Authenticator is
    ///   computed with a zero Authenticator field, then the Request
    ///   Authenticator is MD5(Code+Identifier+Length+16 zero octets+
    ///   Attributes+Secret); `self.authenticator` is not used.
    pub fn encode_request(&self, secret: &Secret) -> Result<Vec<u8>, AuthError> {
        match self.code {
            Code::AccessRequest | Code::StatusServer => {
                encode_signed(self, &self.authenticator, secret)
            }
            Code::AccountingRequest => {
                let mut out = encode_signed(self, &[0; 16], secret)?;
                let auth = md5_authenticator(&out, &[0; 16], secret);
                out[AUTHENTICATOR_RANGE].copy_from_slice(&auth);
                Ok(out)
            }
            other => Err(AuthError::NotARequest(other)),
        }
    }

    /// Encodes a reply as a server sends it (Access-Accept, Access-Reject,
    /// Access-Challenge, Accounting-Response).
    ///
    /// A Message-Authenticator is put first, computed with the Request
    /// Authenticator in the Authenticator field (RFC 3579 §3.2); then the
    /// Response Authenticator (RFC 2865 §3, RFC 2866 §3) replaces it.
    /// `self.authenticator` is not used.
    pub fn encode_response(
        &self,
        secret: &Secret,
        request_authenticator: &[u8; 16],
    ) -> Result<Vec<u8>, AuthError> {
        if !(self.code.is_access_reply() || self.code == Code::AccountingResponse) {
            return Err(AuthError::NotAReply(self.code));
        }
        let mut out = encode_signed(self, request_authenticator, secret)?;
        let auth = md5_authenticator(&out, request_authenticator, secret);
        out[AUTHENTICATOR_RANGE].copy_from_slice(&auth);
        Ok(out)
    }
}

/// Decodes and authenticates a request a server received.
///
/// - Access-Request and Status-Server: exactly one Message-Authenticator of
///   16 octets is required and must verify (RFC 3579 §3.2; RFC 5997 §3;
///   required even without EAP-Message as BlastRADIUS hardening).
/// - Accounting-Request: the Request Authenticator must verify (RFC 2866 §3);
///   a Message-Authenticator, if present, must be single and verify
///   (computed with a zero Authenticator field).
/// - Any other Code: [`AuthError::NotARequest`].
///
/// Comparisons are in constant time.
pub fn verify_request(octets: &[u8], secret: &Secret) -> Result<Packet, AuthError> {
    let packet = Packet::decode(octets)?;
    let wire = octets.get(..wire_length(octets)?).unwrap_or(octets);
    match packet.code {
        Code::AccessRequest | Code::StatusServer => {
            check_message_authenticator(wire, &packet, secret, &packet.authenticator, true)?;
        }
        Code::AccountingRequest => {
            let expected = md5_authenticator(wire, &[0; 16], secret);
            if !bool::from(expected.ct_eq(&packet.authenticator)) {
                return Err(AuthError::BadRequestAuthenticator);
            }
            check_message_authenticator(wire, &packet, secret, &[0; 16], false)?;
        }
        other => return Err(AuthError::NotARequest(other)),
    }
    Ok(packet)
}

/// Decodes and authenticates a reply a client received to `request`.
///
/// Checks in order: the Identifier; that the Code answers the request's
/// (Access-Request: Accept/Reject/Challenge; Accounting-Request:
/// Accounting-Response; Status-Server: Access-Accept or Accounting-Response,
/// RFC 5997 §3); the Response Authenticator (RFC 2865 §3, RFC 2866 §3); and
/// the Message-Authenticator (RFC 3579 §3.2), required on every
/// Access-Accept/Reject/Challenge, checked if present on an
/// Accounting-Response. Comparisons are in constant time.
pub fn verify_response(
    octets: &[u8],
    secret: &Secret,
    request: &RequestInfo,
) -> Result<Packet, AuthError> {
    let packet = Packet::decode(octets)?;
    let wire = octets.get(..wire_length(octets)?).unwrap_or(octets);
    if packet.identifier != request.identifier {
        return Err(AuthError::IdentifierMismatch {
            expected: request.identifier,
            found: packet.identifier,
        });
    }
    let answers = match request.code {
        Code::AccessRequest => packet.code.is_access_reply(),
        Code::AccountingRequest => packet.code == Code::AccountingResponse,
        Code::StatusServer => {
            matches!(packet.code, Code::AccessAccept | Code::AccountingResponse)
        }
        other => return Err(AuthError::NotARequest(other)),
    };
    if !answers {
        return Err(AuthError::UnexpectedReply {
            request: request.code,
            reply: packet.code,
        });
    }
    let expected = md5_authenticator(wire, &request.authenticator, secret);
    if !bool::from(expected.ct_eq(&packet.authenticator)) {
        return Err(AuthError::BadResponseAuthenticator);
    }
    check_message_authenticator(
        wire,
        &packet,
        secret,
        &request.authenticator,
        packet.code.is_access_reply(),
    )?;
    Ok(packet)
}

/// XORs `data` (a multiple of 16 octets) with the MD5 chain of RFC 2865
/// §5.2 and RFC 2548 §2.4.2: b(1) = MD5(S + iv), b(i) = MD5(S + c(i-1)),
/// where c are the ciphertext blocks.
pub(crate) fn md5_chain(secret: &Secret, iv: &[&[u8]], data: &mut [u8], encrypt: bool) {
    let mut prev: Vec<u8> = iv.concat();
    for block in data.chunks_mut(16) {
        let b = md5(&[secret.octets(), &prev]);
        let cipher_in = block.to_vec();
        for (x, k) in block.iter_mut().zip(b.iter()) {
            *x ^= k;
        }
        prev = if encrypt { block.to_vec() } else { cipher_in };
    }
    prev.zeroize();
}

/// Hides a User-Password (RFC 2865 §5.2): padded with zeros to a multiple
/// of 16 octets (at least 16), XORed with the MD5 chain seeded with the
/// Request Authenticator. Refuses more than 128 octets.
pub fn hide_password(
    password: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
) -> Result<Vec<u8>, AuthError> {
    if password.len() > 128 {
        return Err(AuthError::PasswordLength {
            length: password.len(),
        });
    }
    let padded = password.len().div_ceil(16).max(1) * 16;
    let mut out = Zeroizing::new(vec![0u8; padded]);
    out[..password.len()].copy_from_slice(password);
    md5_chain(secret, &[request_authenticator], &mut out, true);
    Ok(out.to_vec())
}

/// Reveals a hidden User-Password (RFC 2865 §5.2); trailing zero padding is
/// removed. A wrong secret yields a different password, not an error.
pub fn reveal_password(
    hidden: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    if hidden.is_empty() || hidden.len() > 128 || !hidden.len().is_multiple_of(16) {
        return Err(AuthError::PasswordLength {
            length: hidden.len(),
        });
    }
    let mut out = Zeroizing::new(hidden.to_vec());
    md5_chain(secret, &[request_authenticator], &mut out, false);
    let keep = out.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    out[keep..].zeroize();
    out.truncate(keep);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    #[test]
    fn hmac_md5_rfc2202() {
        // RFC 2202 §2 test cases 1, 2 and 6 (key longer than the block).
        assert_eq!(
            hmac_md5(&[0x0b; 16], b"Hi There").to_vec(),
            h("9294727a3638bb1c13f48ef8158bfc9d")
        );
        assert_eq!(
            hmac_md5(b"Jefe", b"what do ya want for nothing?").to_vec(),
            h("750c783e6ab0b503eaa86e310a5db738")
        );
        assert_eq!(
            hmac_md5(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .to_vec(),
            h("6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd")
        );
    }

    #[test]
    fn secret_is_redacted_and_non_empty() {
        let s = Secret::new(b"hunter2").expect("secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(Secret::new(b"").err(), Some(AuthError::EmptySecret));
    }

    #[test]
    fn password_round_trip() {
        let s = Secret::new(b"s3cret").expect("secret");
        let ra = [7u8; 16];
        for len in [0usize, 1, 15, 16, 17, 128] {
            let pw = vec![b'x'; len];
            let hidden = hide_password(&pw, &s, &ra).expect("hide");
            assert_eq!(hidden.len(), len.div_ceil(16).max(1) * 16);
            assert_eq!(*reveal_password(&hidden, &s, &ra).expect("reveal"), pw);
        }
        assert!(hide_password(&[1; 129], &s, &ra).is_err());
        assert!(reveal_password(&[1; 17], &s, &ra).is_err());
        assert!(reveal_password(&[], &s, &ra).is_err());
    }
}
