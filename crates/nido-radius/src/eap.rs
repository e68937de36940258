//! EAP over RADIUS (RFC 3579 §3.1): an EAP packet travels in one or more
//! EAP-Message attributes, concatenated in order.

use crate::codec::{DecodeError, Reader};
use crate::packet::{Attribute, MAX_ATTRIBUTE_VALUE, Packet, attr};

impl Packet {
    /// The EAP packet carried by the EAP-Message attributes, concatenated in
    /// order (RFC 3579 §3.1); `None` without any. Check it with
    /// [`check_eap_length`] or use [`Packet::eap_packet`].
    pub fn eap_message(&self) -> Option<Vec<u8>> {
        let mut parts = self.attrs(attr::EAP_MESSAGE).peekable();
        parts.peek()?;
        Some(parts.flatten().copied().collect())
    }

    /// The reassembled EAP packet, checked with [`check_eap_length`].
    pub fn eap_packet(&self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.eap_message() {
            Some(eap) => check_eap_length(&eap).map(|()| Some(eap)),
            None => Ok(None),
        }
    }

    /// Appends `eap` as EAP-Message attributes of at most 253 octets each
    /// (RFC 3579 §3.1). An empty `eap` appends one empty EAP-Message (the
    /// EAP-Start of RFC 3579 §3.1). The packet's 4096-octet limit is checked
    /// when encoding.
    pub fn push_eap_message(&mut self, eap: &[u8]) {
        if eap.is_empty() {
            self.attributes.push(Attribute {
                typ: attr::EAP_MESSAGE,
                value: Vec::new(),
            });
        }
        for chunk in eap.chunks(MAX_ATTRIBUTE_VALUE) {
            self.attributes.push(Attribute {
                typ: attr::EAP_MESSAGE,
                value: chunk.to_vec(),
            });
        }
    }
}

/// Checks that a reassembled EAP packet's Length field (RFC 3748 §4: octets
/// 2..4, counting the whole packet, at least 4) equals its size: a missing or
/// extra EAP-Message fragment shows here.
pub fn check_eap_length(eap: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(eap);
    r.u8("EAP Code")?;
    r.u8("EAP Identifier")?;
    let length = usize::from(r.u16("EAP Length")?);
    if length < 4 {
        return Err(DecodeError::BadLength {
            field: "EAP Length",
            offset: 2,
            length,
            reason: "is below the minimum of 4",
        });
    }
    if length > eap.len() {
        return Err(DecodeError::Truncated {
            field: "EAP packet",
            offset: 0,
            needed: length,
            available: eap.len(),
        });
    }
    r.take(length - 4, "EAP Data")?;
    r.expect_end("EAP packet")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Code;

    fn eap(len: usize) -> Vec<u8> {
        let mut v = vec![2, 9];
        v.extend_from_slice(&u16::try_from(len).expect("small").to_be_bytes());
        v.extend((4..len).map(|i| i as u8));
        v
    }

    #[test]
    fn split_and_reassemble() {
        for len in [4usize, 253, 254, 506, 1000, 1400] {
            let e = eap(len);
            let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
            p.push(attr::USER_NAME, b"anonymous@nido").expect("push");
            p.push_eap_message(&e);
            p.push(attr::STATE, b"st").expect("push");
            let n = p.attrs(attr::EAP_MESSAGE).count();
            assert_eq!(n, len.div_ceil(253));
            assert!(
                p.attrs(attr::EAP_MESSAGE)
                    .all(|v| !v.is_empty() && v.len() <= 253)
            );
            let again = Packet::decode(&p.encode().expect("encodes")).expect("decodes");
            assert_eq!(again.eap_message(), Some(e.clone()));
            assert_eq!(again.eap_packet(), Ok(Some(e)));
        }
    }

    #[test]
    fn none_and_start() {
        let mut p = Packet::new(Code::AccessRequest, 1, [0; 16]);
        assert_eq!(p.eap_message(), None);
        assert_eq!(p.eap_packet(), Ok(None));
        p.push_eap_message(&[]);
        assert_eq!(p.attributes.len(), 1);
        assert_eq!(p.eap_message(), Some(Vec::new()));
        assert!(p.eap_packet().is_err());
    }

    #[test]
    fn length_mismatch() {
        let e = eap(600);
        assert_eq!(check_eap_length(&e), Ok(()));
        assert!(matches!(
            check_eap_length(&e[..500]),
            Err(DecodeError::Truncated {
                field: "EAP packet",
                needed: 600,
                available: 500,
                ..
            })
        ));
        let mut long = e.clone();
        long.push(0);
        assert_eq!(
            check_eap_length(&long),
            Err(DecodeError::Trailing {
                field: "EAP packet",
                offset: 600,
                count: 1
            })
        );
        assert!(matches!(
            check_eap_length(&[1, 2, 0, 3]),
            Err(DecodeError::BadLength {
                field: "EAP Length",
                length: 3,
                ..
            })
        ));
        assert!(check_eap_length(&[1, 2, 0]).is_err());
    }
}
