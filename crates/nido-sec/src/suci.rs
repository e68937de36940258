//! SUPI concealment: the ECIES protection schemes of TS 33.501 Annex C.3
//! (profile A: X25519; profile B: secp256r1), on aws-lc-rs.
//!
//! oxirush-security also conceals and de-conceals SUCIs, but its profile B
//! uses pure-Rust P-256 (about 5x slower than aws-lc-rs) and it draws the
//! ephemeral key internally, so the spec's worked examples cannot be
//! reproduced with it. The SIDF is on the network's hot path; this module is
//! nido's implementation of the scheme itself (key agreement, ANSI X9.63
//! KDF, AES-128-CTR, HMAC-SHA-256/64). oxirush-nas still encodes the SUCI
//! inside the 5GS mobile identity.

use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey, X25519};
use aws_lc_rs::cipher::{
    AES_128, DecryptingKey, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::SecError;
use crate::secret::PrivateKey32;

/// The protection schemes of TS 33.501 Annex C.1 (Table C.1-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// ECIES profile A: Curve25519, scheme identifier 1.
    A,
    /// ECIES profile B: secp256r1, scheme identifier 2.
    B,
}

impl Profile {
    /// The protection scheme identifier.
    pub fn scheme_id(self) -> u8 {
        match self {
            Self::A => 1,
            Self::B => 2,
        }
    }

    /// The profile of a protection scheme identifier (0, null, has none).
    pub fn from_scheme_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::A),
            2 => Some(Self::B),
            _ => None,
        }
    }

    /// Octets of the ephemeral public key in the scheme output.
    pub fn ephemeral_len(self) -> usize {
        match self {
            Self::A => 32,
            Self::B => 33,
        }
    }

    fn alg(self) -> &'static agreement::Algorithm {
        match self {
            Self::A => &X25519,
            Self::B => &ECDH_P256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::A => "X25519",
            Self::B => "P-256",
        }
    }
}

/// The MAC tag length (64 bits, Annex C.3.4).
pub const MAC_TAG_LEN: usize = 8;

/// A home network private key for one protection scheme, with its identifier.
pub struct HomeNetworkKey {
    /// The home network public key identifier (0-255) it answers to.
    pub key_id: u8,
    profile: Profile,
    private: agreement::PrivateKey,
    public: Vec<u8>,
}

impl core::fmt::Debug for HomeNetworkKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HomeNetworkKey")
            .field("key_id", &self.key_id)
            .field("profile", &self.profile)
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl HomeNetworkKey {
    /// A key from its 32-octet private scalar.
    pub fn from_private(
        profile: Profile,
        key_id: u8,
        private: &PrivateKey32,
    ) -> Result<Self, SecError> {
        let private = agreement::PrivateKey::from_private_key(profile.alg(), private.expose())
            .map_err(|_| SecError::PrivateKey {
                what: profile.name(),
            })?;
        let public = public_octets(profile, &private)?;
        Ok(Self {
            key_id,
            profile,
            private,
            public,
        })
    }

    /// A fresh random key.
    pub fn generate(profile: Profile, key_id: u8) -> Result<Self, SecError> {
        let private = agreement::PrivateKey::generate(profile.alg())
            .map_err(|_| SecError::Backend("keygen"))?;
        let public = public_octets(profile, &private)?;
        Ok(Self {
            key_id,
            profile,
            private,
            public,
        })
    }

    /// The private scalar, to store it (encrypted) or hand it to the SIDF.
    pub fn private_octets(&self) -> Result<PrivateKey32, SecError> {
        let bytes: Zeroizing<Vec<u8>> = match self.profile {
            Profile::A => {
                let b: aws_lc_rs::encoding::Curve25519SeedBin<'_> = self
                    .private
                    .as_be_bytes()
                    .map_err(|_| SecError::Backend("export"))?;
                Zeroizing::new(b.as_ref().to_vec())
            }
            Profile::B => {
                let b: aws_lc_rs::encoding::EcPrivateKeyBin<'_> = self
                    .private
                    .as_be_bytes()
                    .map_err(|_| SecError::Backend("export"))?;
                Zeroizing::new(b.as_ref().to_vec())
            }
        };
        PrivateKey32::from_slice(&bytes)
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The public key as provisioned to UEs: 32 octets (A) or compressed SEC1, 33 octets (B).
    pub fn public_key(&self) -> HomeNetworkPublicKey {
        HomeNetworkPublicKey {
            key_id: self.key_id,
            profile: self.profile,
            octets: self.public.clone(),
        }
    }

    /// De-conceals a scheme output (ephemeral public key || ciphertext || MAC tag)
    /// into the scheme input (the BCD MSIN, or the NAI username). The MAC tag is
    /// checked, in constant time, before anything is deciphered.
    pub fn deconceal(&self, scheme_output: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecError> {
        let eph_len = self.profile.ephemeral_len();
        if scheme_output.len() < eph_len + MAC_TAG_LEN {
            return Err(SecError::Length {
                what: "SUCI scheme output",
                expected: eph_len + MAC_TAG_LEN,
                got: scheme_output.len(),
            });
        }
        let (eph, rest) = scheme_output.split_at(eph_len);
        let (ciphertext, tag) = rest.split_at(rest.len() - MAC_TAG_LEN);
        let peer = UnparsedPublicKey::new(self.profile.alg(), eph);
        let keys = agreement::agree(
            &self.private,
            peer,
            SecError::PublicKey { what: "ephemeral" },
            |z| Ok(x963_kdf(z, eph)),
        )?;
        let expected = mac_tag(&keys[32..], ciphertext);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(SecError::SuciMacFailure);
        }
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        aes_ctr(&keys[..16], &keys[16..32], &mut plain, false)?;
        Ok(plain)
    }
}

fn public_octets(profile: Profile, private: &agreement::PrivateKey) -> Result<Vec<u8>, SecError> {
    let public = private
        .compute_public_key()
        .map_err(|_| SecError::Backend("public key"))?;
    Ok(match profile {
        Profile::A => public.as_ref().to_vec(),
        Profile::B => {
            let c: EcPublicKeyCompressedBin<'_> = public
                .as_be_bytes()
                .map_err(|_| SecError::Backend("compress"))?;
            c.as_ref().to_vec()
        }
    })
}

/// A home network public key as a UE holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeNetworkPublicKey {
    /// Its identifier, sent in the SUCI.
    pub key_id: u8,
    /// The profile.
    pub profile: Profile,
    /// 32 octets (A) or SEC1, compressed or uncompressed (B).
    pub octets: Vec<u8>,
}

impl HomeNetworkPublicKey {
    /// Conceals a scheme input with a fresh ephemeral key.
    pub fn conceal(&self, scheme_input: &[u8]) -> Result<Vec<u8>, SecError> {
        let eph = agreement::PrivateKey::generate(self.profile.alg())
            .map_err(|_| SecError::Backend("keygen"))?;
        self.conceal_with(&eph, scheme_input)
    }

    /// Conceals with a given ephemeral private key: only for reproducing the
    /// worked examples of Annex C.4. Reusing an ephemeral key breaks privacy.
    pub fn conceal_with_ephemeral(
        &self,
        ephemeral: &PrivateKey32,
        scheme_input: &[u8],
    ) -> Result<Vec<u8>, SecError> {
        let eph = agreement::PrivateKey::from_private_key(self.profile.alg(), ephemeral.expose())
            .map_err(|_| SecError::PrivateKey { what: "ephemeral" })?;
        self.conceal_with(&eph, scheme_input)
    }

    fn conceal_with(
        &self,
        eph: &agreement::PrivateKey,
        scheme_input: &[u8],
    ) -> Result<Vec<u8>, SecError> {
        let eph_pub = public_octets(self.profile, eph)?;
        let peer = UnparsedPublicKey::new(self.profile.alg(), &self.octets);
        let keys = agreement::agree(
            eph,
            peer,
            SecError::PublicKey {
                what: "home network",
            },
            |z| Ok(x963_kdf(z, &eph_pub)),
        )?;
        let mut out = Vec::with_capacity(eph_pub.len() + scheme_input.len() + MAC_TAG_LEN);
        out.extend_from_slice(&eph_pub);
        let start = out.len();
        out.extend_from_slice(scheme_input);
        aes_ctr(&keys[..16], &keys[16..32], &mut out[start..], true)?;
        let tag = mac_tag(&keys[32..], &out[start..]);
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

/// ANSI X9.63 KDF with SHA-256 (SEC 1 §3.6.1), SharedInfo1 = the ephemeral
/// public key: 64 octets = enc key (16) || ICB (16) || MAC key (32).
fn x963_kdf(z: &[u8], shared_info: &[u8]) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(z);
        ctx.update(&(i as u32 + 1).to_be_bytes());
        ctx.update(shared_info);
        chunk.copy_from_slice(ctx.finish().as_ref());
    }
    out
}

fn mac_tag(key: &[u8], ciphertext: &[u8]) -> [u8; MAC_TAG_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), ciphertext);
    let mut out = [0u8; MAC_TAG_LEN];
    out.copy_from_slice(&tag.as_ref()[..MAC_TAG_LEN]);
    out
}

fn aes_ctr(key: &[u8], icb: &[u8], data: &mut [u8], encrypt: bool) -> Result<(), SecError> {
    if data.is_empty() {
        return Ok(());
    }
    let iv: [u8; 16] = icb.try_into().map_err(|_| SecError::Backend("icb"))?;
    let unbound = || UnboundCipherKey::new(&AES_128, key).map_err(|_| SecError::Backend("aes key"));
    let context = EncryptionContext::Iv128(iv.into());
    if encrypt {
        let k = EncryptingKey::ctr(unbound()?).map_err(|_| SecError::Backend("aes-ctr"))?;
        k.less_safe_encrypt(data, context)
            .map_err(|_| SecError::Backend("aes-ctr"))?;
    } else {
        let k = DecryptingKey::ctr(unbound()?).map_err(|_| SecError::Backend("aes-ctr"))?;
        k.decrypt(data, context.into())
            .map_err(|_| SecError::Backend("aes-ctr"))?;
    }
    Ok(())
}

/// The SIDF: de-conceals SUCIs with whichever home network key the SUCI names
/// (protection scheme + home network public key identifier, TS 33.501 §6.12.2).
#[derive(Debug, Default)]
pub struct Sidf {
    keys: Vec<HomeNetworkKey>,
}

impl Sidf {
    /// An SIDF with no keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key, replacing any with the same scheme and identifier.
    pub fn insert(&mut self, key: HomeNetworkKey) {
        self.keys
            .retain(|k| !(k.profile == key.profile && k.key_id == key.key_id));
        self.keys.push(key);
    }

    /// The key for a scheme identifier and key identifier.
    pub fn key(&self, scheme: u8, key_id: u8) -> Option<&HomeNetworkKey> {
        let profile = Profile::from_scheme_id(scheme)?;
        self.keys
            .iter()
            .find(|k| k.profile == profile && k.key_id == key_id)
    }

    /// De-conceals a scheme output with the named key.
    pub fn deconceal(
        &self,
        scheme: u8,
        key_id: u8,
        scheme_output: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecError> {
        self.key(scheme, key_id)
            .ok_or(SecError::UnknownHomeNetworkKey { scheme, key_id })?
            .deconceal(scheme_output)
    }
}

/// Encodes MSIN digits as the scheme input of an IMSI SUCI: BCD, low nibble
/// first, an odd count padded with 0xF (TS 33.501 C.3.2 / TS 24.501 9.11.3.4).
pub fn msin_to_bcd(msin: &str) -> Result<Vec<u8>, SecError> {
    if msin.is_empty() || msin.len() > 10 || !msin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SecError::Range {
            what: "MSIN",
            detail: format!("{msin:?} is not 1 to 10 digits"),
        });
    }
    Ok(msin
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let lo = pair[0] - b'0';
            let hi = pair.get(1).map_or(0xF, |d| d - b'0');
            (hi << 4) | lo
        })
        .collect())
}

/// Decodes a BCD scheme input back into MSIN digits.
pub fn bcd_to_msin(bcd: &[u8]) -> Result<String, SecError> {
    let mut out = String::with_capacity(bcd.len() * 2);
    for (i, b) in bcd.iter().enumerate() {
        for (n, nibble) in [b & 0x0F, b >> 4].into_iter().enumerate() {
            match nibble {
                0..=9 => out.push(char::from(b'0' + nibble)),
                0xF if i == bcd.len() - 1 && n == 1 => {}
                _ => {
                    return Err(SecError::Range {
                        what: "MSIN",
                        detail: format!("BCD octet {b:#04x} is not a digit pair"),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_round_trip() {
        assert_eq!(
            msin_to_bcd("001002086").unwrap(),
            hex::decode("00012080f6").unwrap()
        );
        assert_eq!(
            bcd_to_msin(&hex::decode("00012080f6").unwrap()).unwrap(),
            "001002086"
        );
        assert!(bcd_to_msin(&[0xAB]).is_err());
    }

    #[test]
    fn sidf_picks_the_named_key() {
        let mut sidf = Sidf::new();
        sidf.insert(HomeNetworkKey::generate(Profile::A, 1).unwrap());
        sidf.insert(HomeNetworkKey::generate(Profile::B, 1).unwrap());
        sidf.insert(HomeNetworkKey::generate(Profile::A, 7).unwrap());
        let public = sidf.key(1, 7).unwrap().public_key();
        let out = public.conceal(b"\x21\x43").unwrap();
        assert_eq!(&*sidf.deconceal(1, 7, &out).unwrap(), b"\x21\x43");
        assert_eq!(sidf.deconceal(1, 1, &out), Err(SecError::SuciMacFailure));
        assert!(matches!(
            sidf.deconceal(2, 9, &out),
            Err(SecError::UnknownHomeNetworkKey { .. })
        ));
    }
}
