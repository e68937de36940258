//! The key-encryption key and the sealing of secret columns.
//!
//! Every secret column (K, OPc, an owner's third-party credentials) is
//! `0x01 || nonce (12) || AES-256-GCM(KEK, nonce, plaintext, AAD) || tag (16)`
//! with a random nonce per value and an AAD that names the column and the
//! row's key (`nido-store/v1/<label>\0<row key>`): a value copied into another
//! row or another column does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Format version of a sealed value (its first octet).
const SEALED_V1: u8 = 1;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// A 32-octet key-encryption key (AES-256-GCM). Zeroized on drop; `Debug`
/// prints `Kek([redacted])`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Kek([u8; 32]);

impl core::fmt::Debug for Kek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

/// A KEK could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KekError {
    /// The environment variable is not set (or not Unicode).
    #[error("the key-encryption key variable {0} is not set")]
    MissingVariable(String),
    /// Not 64 hexadecimal digits.
    #[error("the key-encryption key must be 64 hexadecimal digits (32 octets)")]
    Malformed,
    /// The system's random generator failed.
    #[error("no randomness for a key-encryption key")]
    NoRandomness,
}

impl Kek {
    /// Wraps 32 octets.
    pub fn new(octets: [u8; 32]) -> Self {
        Self(octets)
    }

    /// From 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KekError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| KekError::Malformed)?);
        let octets: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KekError::Malformed)?;
        Ok(Self(octets))
    }

    /// From the environment variable `var`, as 64 hexadecimal digits.
    pub fn from_env(var: &str) -> Result<Self, KekError> {
        let text = Zeroizing::new(
            std::env::var(var).map_err(|_| KekError::MissingVariable(var.to_owned()))?,
        );
        Self::from_hex(&text)
    }

    /// A fresh random key (for `init`-style commands).
    pub fn generate() -> Result<Self, KekError> {
        let mut octets = [0u8; 32];
        aws_lc_rs::rand::fill(&mut octets).map_err(|_| KekError::NoRandomness)?;
        Ok(Self(octets))
    }

    /// The key as 64 lowercase hexadecimal digits, to hand to an operator
    /// once. Callers must not log it.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }
}

/// A sealed value did not open, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum SealError {
    #[error(
        "{0} does not open with this key-encryption key (wrong key, or a value moved between rows)"
    )]
    Open(String),
    #[error("{0}: unknown sealed-value format")]
    Format(String),
    #[error("no randomness for a nonce")]
    Randomness,
    #[error("AES-256-GCM refused the key-encryption key")]
    Key,
}

/// AES-256-GCM under the KEK.
pub(crate) struct Sealer {
    key: LessSafeKey,
    /// The key claim code hashes are kept under ([`Sealer::claim_mac`]).
    claim_key: zeroize::Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

fn aad(label: &str, row: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + label.len() + row.len());
    out.extend_from_slice(b"nido-store/v1/");
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    out.extend_from_slice(row.as_bytes());
    out
}

impl Sealer {
    pub(crate) fn new(kek: &Kek) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, &kek.0).map_err(|_| SealError::Key)?;
        // A key of its own for claim codes, derived from the KEK with
        // HMAC-SHA-256 as the PRF (RFC 5869 §2.3's Expand, one block): the
        // KEK itself is used only for AES-GCM.
        let prk = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &kek.0);
        let okm = aws_lc_rs::hmac::sign(&prk, b"nido-store/v1/claim-code-key\x01");
        let mut claim_key = zeroize::Zeroizing::new([0u8; 32]);
        claim_key.copy_from_slice(okm.as_ref());
        Ok(Self {
            key: LessSafeKey::new(key),
            claim_key,
        })
    }

    /// What the `claims` table keeps of a claim code hash: HMAC-SHA-256
    /// under the claim key (lower-case hex), so a dump of the database
    /// without the KEK is no dictionary of claim codes.
    pub(crate) fn claim_mac(&self, claim_code_hash: &str) -> String {
        hex::encode(nido_net::store::claim_code_mac(
            &self.claim_key,
            claim_code_hash,
        ))
    }

    /// Seals `plaintext` for column `label` of the row keyed `row`.
    pub(crate) fn seal(
        &self,
        label: &str,
        row: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Randomness)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        body.extend_from_slice(plaintext);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(label, row).as_slice()),
                &mut *body,
            )
            .map_err(|_| SealError::Randomness)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value sealed for column `label` of the row keyed `row`.
    pub(crate) fn open(
        &self,
        label: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let what = || format!("{label} of {row}");
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(SealError::Format(what()));
        };
        if version != SEALED_V1 || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Format(what()));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Format(what()))?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(label, row).as_slice()),
                &mut buf,
            )
            .map_err(|_| SealError::Open(what()))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seals_and_binds_to_the_row_and_column() {
        let s = Sealer::new(&Kek::new([7; 32])).unwrap();
        let sealed = s
            .seal("k", "imsi-001010000000001", b"0123456789abcdef")
            .unwrap();
        assert_eq!(sealed.len(), 1 + 12 + 16 + 16);
        assert_eq!(
            &*s.open("k", "imsi-001010000000001", &sealed).unwrap(),
            b"0123456789abcdef"
        );
        assert!(s.open("k", "imsi-001010000000002", &sealed).is_err());
        assert!(s.open("opc", "imsi-001010000000001", &sealed).is_err());
        let other = Sealer::new(&Kek::new([8; 32])).unwrap();
        assert!(other.open("k", "imsi-001010000000001", &sealed).is_err());
        let again = s
            .seal("k", "imsi-001010000000001", b"0123456789abcdef")
            .unwrap();
        assert_ne!(sealed, again, "a fresh nonce per value");
    }

    #[test]
    fn kek_parsing_and_debug() {
        let hex = "00".repeat(31) + "ff";
        let kek = Kek::from_hex(&format!(" {hex}\n")).unwrap();
        assert_eq!(*kek.to_hex(), hex);
        assert_eq!(format!("{kek:?}"), "Kek([redacted])");
        assert_eq!(Kek::from_hex("abcd").unwrap_err(), KekError::Malformed);
        assert_eq!(
            Kek::from_hex(&"zz".repeat(32)).unwrap_err(),
            KekError::Malformed
        );
        assert!(matches!(
            Kek::from_env("NIDO_STORE_TEST_SURELY_UNSET_VARIABLE"),
            Err(KekError::MissingVariable(_))
        ));
    }
}
