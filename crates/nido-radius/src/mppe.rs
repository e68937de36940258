//! MS-MPPE-Send-Key and MS-MPPE-Recv-Key (RFC 2548 §2.4.2, §2.4.3): the
//! keys an EAP server hands the NAS in an Access-Accept, encrypted with the
//! shared secret, the Request Authenticator and a salt.
//!
//! Each key is a Vendor-Specific attribute (RFC 2865 §5.26) whose value is:
//! Vendor-Id 311 (4 octets), Vendor-Type (16 Send, 17 Recv), Vendor-Length
//! (counting Vendor-Type, Vendor-Length, Salt and String), Salt (2 octets,
//! high bit set), String: (key-length octet || key || zero padding to a
//! multiple of 16) XORed with b(1) = MD5(secret + Request Authenticator +
//! Salt), b(i) = MD5(secret + c(i-1)).
//!
//! The EAP MSK (RFC 5216 §2.3, 64 octets) travels as MS-MPPE-Recv-Key =
//! MSK[0..32] and MS-MPPE-Send-Key = MSK[32..64], the split FreeRADIUS and
//! hostapd use ("MSK is MS-MPPE-Recv-Key followed by MS-MPPE-Send-Key").
//!
//! There is no integrity check in this encryption: a wrong secret or Request
//! Authenticator decrypts to other octets. [`decrypt_key`] then refuses the
//! key-length octet if it exceeds the String (for a 32-octet key in a
//! 48-octet String, with probability 1 - 48/256, about 81%) and otherwise
//! returns a different key; [`Packet::msk`] also requires 32-octet keys, so
//! it refuses a wrong secret with probability about 1 - 1/256 per key. The
//! packet's authenticators are the integrity check: verify the reply first.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::auth::{Secret, md5_chain};
use crate::codec::{DecodeError, EncodeError, Reader};
use crate::packet::{Packet, attr};

/// Microsoft's SMI Network Management Private Enterprise Code (RFC 2548 §2).
pub const MICROSOFT_VENDOR_ID: u32 = 311;
/// The longest key that fits one attribute: 4 + 4 + 16·⌈(1 + key)/16⌉ ≤ 253.
pub const MAX_KEY_LEN: usize = 239;

/// Which MPPE key (RFC 2548 §2.4.2 Send, §2.4.3 Recv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MppeKey {
    /// MS-MPPE-Send-Key, Vendor-Type 16 (RFC 2548 §2.4.2).
    Send,
    /// MS-MPPE-Recv-Key, Vendor-Type 17 (RFC 2548 §2.4.3).
    Recv,
}

impl MppeKey {
    /// The Vendor-Type octet.
    pub const fn vendor_type(self) -> u8 {
        match self {
            Self::Send => 16,
            Self::Recv => 17,
        }
    }
}

/// Why an MPPE key could not be encrypted, decrypted or assembled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MppeError {
    /// The Vendor-Specific value did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An attribute could not be added.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A salt without its most significant bit (RFC 2548 §2.4.2: "The most
    /// significant bit (leftmost) of the Salt field MUST be set (1)").
    #[error("salt {salt:#06x} does not have its high bit set")]
    SaltHighBitClear {
        /// The salt.
        salt: u16,
    },
    /// The Recv and Send keys of one packet got the same salt (RFC 2548
    /// §2.4.2: the salt of each key in a packet must be unique).
    #[error("the Recv and Send keys need different salts")]
    SameSalt,
    /// A key longer than [`MAX_KEY_LEN`].
    #[error("key of {length} octets exceeds {MAX_KEY_LEN}")]
    KeyTooLong {
        /// Its length.
        length: usize,
    },
    /// Not a Microsoft Vendor-Specific attribute.
    #[error("Vendor-Id {vendor_id} at octet 0 is not Microsoft (311)")]
    NotMicrosoft {
        /// The Vendor-Id found.
        vendor_id: u32,
    },
    /// Not the MPPE key asked for.
    #[error("Vendor-Type {found} at octet 4, expected {expected}")]
    WrongVendorType {
        /// The one asked for.
        expected: u8,
        /// The one found.
        found: u8,
    },
    /// The encrypted String is empty or not a multiple of 16 octets.
    #[error("encrypted String at octet 8 of {length} octets is not a positive multiple of 16")]
    StringLength {
        /// Its length.
        length: usize,
    },
    /// The decrypted key-length octet claims more than the String holds
    /// (typically: wrong secret or Request Authenticator).
    #[error("decrypted key length {claimed} exceeds the {available} octets after it")]
    KeyLength {
        /// The key-length octet.
        claimed: usize,
        /// Octets after it.
        available: usize,
    },
    /// One of the two MSK halves is missing.
    #[error("{0:?} key missing")]
    Missing(MppeKey),
    /// A key present more than once.
    #[error("{0:?} key present more than once")]
    Duplicate(MppeKey),
    /// An MSK half that is not 32 octets.
    #[error("{kind:?} key of {length} octets, an MSK half is 32")]
    MskHalfLength {
        /// Which key.
        kind: MppeKey,
        /// Its length.
        length: usize,
    },
}

/// Encrypts `key` as the value of a Vendor-Specific attribute (RFC 2548
/// §2.4.2/§2.4.3). `salt` must have its high bit set and differ from the
/// salt of any other key in the packet; the caller draws it at random.
pub fn encrypt_key(
    kind: MppeKey,
    key: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
    salt: u16,
) -> Result<Vec<u8>, MppeError> {
    if salt & 0x8000 == 0 {
        return Err(MppeError::SaltHighBitClear { salt });
    }
    if key.len() > MAX_KEY_LEN {
        return Err(MppeError::KeyTooLong { length: key.len() });
    }
    let padded = (1 + key.len()).div_ceil(16) * 16;
    let mut string = Zeroizing::new(vec![0u8; padded]);
    // key.len() <= 239 was checked above.
    string[0] = u8::try_from(key.len()).unwrap_or(u8::MAX);
    string[1..=key.len()].copy_from_slice(key);
    let salt = salt.to_be_bytes();
    md5_chain(secret, &[request_authenticator, &salt], &mut string, true);
    let mut out = Vec::with_capacity(8 + padded);
    out.extend_from_slice(&MICROSOFT_VENDOR_ID.to_be_bytes());
    out.push(kind.vendor_type());
    out.push(u8::try_from(4 + padded).unwrap_or(u8::MAX));
    out.extend_from_slice(&salt);
    out.extend_from_slice(&string);
    Ok(out)
}

/// Decrypts the value of an MS-MPPE-Send-Key or -Recv-Key Vendor-Specific
/// attribute (RFC 2548 §2.4.2/§2.4.3). The value must hold exactly this one
/// sub-attribute. Offsets in errors are from the start of the value.
pub fn decrypt_key(
    kind: MppeKey,
    vsa_value: &[u8],
    secret: &Secret,
    request_authenticator: &[u8; 16],
) -> Result<Zeroizing<Vec<u8>>, MppeError> {
    let mut r = Reader::new(vsa_value);
    let vendor_id = r.u32("Vendor-Id")?;
    if vendor_id != MICROSOFT_VENDOR_ID {
        return Err(MppeError::NotMicrosoft { vendor_id });
    }
    let found = r.u8("Vendor-Type")?;
    if found != kind.vendor_type() {
        return Err(MppeError::WrongVendorType {
            expected: kind.vendor_type(),
            found,
        });
    }
    let at = r.offset();
    let vendor_length = usize::from(r.u8("Vendor-Length")?);
    if vendor_length < 4 {
        return Err(DecodeError::BadLength {
            field: "Vendor-Length",
            offset: at,
            length: vendor_length,
            reason: "is below 4 (Vendor-Type, Vendor-Length, Salt)",
        }
        .into());
    }
    let salt = r.u16("Salt")?;
    let encrypted = r.take(vendor_length - 4, "MPPE String")?;
    r.expect_end("Vendor-Specific")?;
    if salt & 0x8000 == 0 {
        return Err(MppeError::SaltHighBitClear { salt });
    }
    if encrypted.is_empty() || !encrypted.len().is_multiple_of(16) {
        return Err(MppeError::StringLength {
            length: encrypted.len(),
        });
    }
    let mut plain = Zeroizing::new(encrypted.to_vec());
    md5_chain(
        secret,
        &[request_authenticator, &salt.to_be_bytes()],
        &mut plain,
        false,
    );
    let claimed = usize::from(plain[0]);
    let available = plain.len() - 1;
    if claimed > available {
        return Err(MppeError::KeyLength { claimed, available });
    }
    Ok(Zeroizing::new(plain[1..=claimed].to_vec()))
}

fn is_mppe(value: &[u8], kind: MppeKey) -> bool {
    value.get(..5).is_some_and(|head| {
        head[..4] == MICROSOFT_VENDOR_ID.to_be_bytes() && head[4] == kind.vendor_type()
    })
}

impl Packet {
    /// Adds the MSK as MS-MPPE-Recv-Key = `msk[0..32]` (salt `salts[0]`)
    /// and MS-MPPE-Send-Key = `msk[32..64]` (salt `salts[1]`), encrypted for
    /// the reply to the request whose authenticator is given (RFC 2548
    /// §2.4.2/§2.4.3). The salts need their high bit set and must differ.
    pub fn push_msk(
        &mut self,
        msk: &[u8; 64],
        secret: &Secret,
        request_authenticator: &[u8; 16],
        salts: [u16; 2],
    ) -> Result<(), MppeError> {
        if salts[0] == salts[1] {
            return Err(MppeError::SameSalt);
        }
        let (recv, send) = msk.split_at(32);
        let recv = encrypt_key(MppeKey::Recv, recv, secret, request_authenticator, salts[0])?;
        let send = encrypt_key(MppeKey::Send, send, secret, request_authenticator, salts[1])?;
        self.push(attr::VENDOR_SPECIFIC, &recv)?;
        self.push(attr::VENDOR_SPECIFIC, &send)?;
        Ok(())
    }

    /// The MSK from MS-MPPE-Recv-Key || MS-MPPE-Send-Key (32 octets each),
    /// decrypted with the Request Authenticator of the request this packet
    /// answers. `Ok(None)` when neither key is present; one without the
    /// other, either twice, or a half that is not 32 octets is an error.
    /// Verify the packet ([`crate::verify_response`]) first.
    pub fn msk(
        &self,
        secret: &Secret,
        request_authenticator: &[u8; 16],
    ) -> Result<Option<Zeroizing<[u8; 64]>>, MppeError> {
        let find = |kind: MppeKey| -> Result<Option<&[u8]>, MppeError> {
            let mut found = self
                .attrs(attr::VENDOR_SPECIFIC)
                .filter(|v| is_mppe(v, kind));
            let first = found.next();
            match found.next() {
                Some(_) => Err(MppeError::Duplicate(kind)),
                None => Ok(first),
            }
        };
        let (recv, send) = match (find(MppeKey::Recv)?, find(MppeKey::Send)?) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(MppeError::Missing(MppeKey::Send)),
            (None, Some(_)) => return Err(MppeError::Missing(MppeKey::Recv)),
            (Some(r), Some(s)) => (r, s),
        };
        let mut msk = Zeroizing::new([0u8; 64]);
        for (kind, value, half) in [(MppeKey::Recv, recv, 0..32), (MppeKey::Send, send, 32..64)] {
            let key = decrypt_key(kind, value, secret, request_authenticator)?;
            if key.len() != 32 {
                return Err(MppeError::MskHalfLength {
                    kind,
                    length: key.len(),
                });
            }
            msk[half].copy_from_slice(&key);
        }
        Ok(Some(msk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let s = Secret::new(b"secret").expect("secret");
        let v = encrypt_key(MppeKey::Send, &[1; 32], &s, &[2; 16], 0x8001).expect("encrypts");
        assert_eq!(v.len(), 4 + 4 + 48);
        assert_eq!(v[..8], [0, 0, 1, 0x37, 16, 52, 0x80, 0x01]);
        let v = encrypt_key(MppeKey::Recv, &[], &s, &[2; 16], 0xffff).expect("encrypts");
        assert_eq!(v.len(), 8 + 16);
        assert_eq!(v[4], 17);
        assert!(
            decrypt_key(MppeKey::Recv, &v, &s, &[2; 16])
                .expect("decrypts")
                .is_empty()
        );
        let v = encrypt_key(MppeKey::Recv, &[9; MAX_KEY_LEN], &s, &[2; 16], 0x8000).expect("fits");
        assert_eq!(v.len(), 248);
        assert_eq!(
            encrypt_key(MppeKey::Recv, &[9; MAX_KEY_LEN + 1], &s, &[2; 16], 0x8000),
            Err(MppeError::KeyTooLong { length: 240 })
        );
    }
}
