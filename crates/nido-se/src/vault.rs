//! The vault file format of [`crate::FileSe`], version 2 (version 1, the
//! same without record 5, is still read).
//!
//! ```text
//! vault.bin = MAGIC (8) ‖ version (u16 BE) ‖ nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16)
//! AAD       = MAGIC ‖ version
//! plaintext = record*, each tag (u8) ‖ length (u32 BE) ‖ value, tags strictly ascending:
//!   1 IDevID private key: kind (0 PKCS#8, 1 SEC1, 2 PKCS#1) ‖ DER     (required)
//!   2 provisioning X25519 private key, 32 octets                       (optional)
//!   3 credential package, version-1 CBOR with K and OPc (nido-prov)   (with 4)
//!   4 SQN window: 32 × SEQ (u64 BE) ‖ Δ (u64 BE)                       (with 3)
//!   5 resets: count of factory resets (u64 BE) ‖ the last erasure
//!     receipt's CBOR (nido-prov), empty if none                         (optional)
//! ```
//!
//! The key is the 32-octet device storage key; the nonce is fresh random
//! for every write (at most a few writes per authentication: far below the
//! 2^32 random nonces one GCM key tolerates). Every plaintext buffer is
//! zeroized.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use nido_sec::{PrivateKey32, SqnWindow};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use zeroize::Zeroizing;

/// The first octets of every vault file.
pub(crate) const MAGIC: &[u8; 8] = b"nido-se\0";
/// The format version this build writes (and the newest it reads).
pub(crate) const VERSION: u16 = 2;
/// The oldest format version this build reads.
pub(crate) const OLDEST: u16 = 1;
const HEADER_LEN: usize = MAGIC.len() + 2;
const TAG_LEN: usize = 16;

const T_IDEVID: u8 = 1;
const T_PROVISIONING: u8 = 2;
const T_PACKAGE: u8 = 3;
const T_WINDOW: u8 = 4;
const T_RESETS: u8 = 5;

const WINDOW_SLOTS: usize = 32;
const WINDOW_LEN: usize = WINDOW_SLOTS * 8 + 8;

/// What a vault holds, borrowed for writing.
pub(crate) struct VaultRef<'a> {
    /// The IDevID private key.
    pub(crate) idevid: &'a PrivateKeyDer<'static>,
    /// The provisioning private key, if one was generated and not yet used.
    pub(crate) provisioning: Option<&'a PrivateKey32>,
    /// The subscription: the package's CBOR (with K and OPc) and the SQN window.
    pub(crate) subscription: Option<(&'a [u8], &'a SqnWindow)>,
    /// How many factory resets the element did, and the last one's receipt
    /// (CBOR) if no package was installed since.
    pub(crate) resets: (u64, Option<&'a [u8]>),
}

/// What a vault holds, decoded.
pub(crate) struct VaultContent {
    pub(crate) idevid: PrivateKeyDer<'static>,
    pub(crate) provisioning: Option<PrivateKey32>,
    pub(crate) subscription: Option<(Zeroizing<Vec<u8>>, SqnWindow)>,
    pub(crate) resets: (u64, Option<Vec<u8>>),
}

/// Why a vault file was refused (the caller adds the path).
#[derive(Debug)]
pub(crate) enum VaultError {
    /// Another format version.
    Version(u16),
    /// Does not decrypt or does not parse.
    Corrupt(String),
}

fn record(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) -> Result<(), String> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| format!("vault record {tag} too large"))?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(())
}

fn key(storage_key: &[u8; 32]) -> Result<LessSafeKey, VaultError> {
    UnboundKey::new(&AES_256_GCM, storage_key)
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::Corrupt("storage key refused by AES-256-GCM".into()))
}

fn header(version: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..MAGIC.len()].copy_from_slice(MAGIC);
    h[MAGIC.len()..].copy_from_slice(&version.to_be_bytes());
    h
}

/// Encodes and encrypts a vault.
pub(crate) fn seal(storage_key: &[u8; 32], v: &VaultRef<'_>) -> Result<Vec<u8>, String> {
    seal_version(storage_key, v, VERSION)
}

fn seal_version(storage_key: &[u8; 32], v: &VaultRef<'_>, version: u16) -> Result<Vec<u8>, String> {
    let mut plain = Zeroizing::new(Vec::with_capacity(2048));
    let (kind, der): (u8, &[u8]) = match v.idevid {
        PrivateKeyDer::Pkcs8(k) => (0, k.secret_pkcs8_der()),
        PrivateKeyDer::Sec1(k) => (1, k.secret_sec1_der()),
        PrivateKeyDer::Pkcs1(k) => (2, k.secret_pkcs1_der()),
        _ => return Err("unsupported IDevID key encoding".into()),
    };
    record(&mut plain, T_IDEVID, &[&[kind], der])?;
    if let Some(p) = v.provisioning {
        record(&mut plain, T_PROVISIONING, &[p.expose()])?;
    }
    if let Some((package, window)) = v.subscription {
        record(&mut plain, T_PACKAGE, &[package])?;
        let mut w = Vec::with_capacity(WINDOW_LEN);
        for seq in window.seqs() {
            w.extend_from_slice(&seq.to_be_bytes());
        }
        w.extend_from_slice(&window.delta.to_be_bytes());
        record(&mut plain, T_WINDOW, &[&w])?;
    }
    let (count, receipt) = v.resets;
    if count > 0 || receipt.is_some() {
        record(
            &mut plain,
            T_RESETS,
            &[&count.to_be_bytes(), receipt.unwrap_or_default()],
        )?;
    }

    let key = key(storage_key).map_err(|_| "storage key refused".to_string())?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for the nonce".to_string())?;
    let header = header(version);
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    out.extend_from_slice(&plain);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header),
            &mut out[body_start..],
        )
        .map_err(|_| "AES-256-GCM seal failed".to_string())?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts and decodes a vault file.
pub(crate) fn open(storage_key: &[u8; 32], file: &[u8]) -> Result<VaultContent, VaultError> {
    if file.len() < HEADER_LEN || &file[..MAGIC.len()] != MAGIC {
        return Err(VaultError::Corrupt("not a nido-se vault (no magic)".into()));
    }
    let version = u16::from_be_bytes([file[MAGIC.len()], file[MAGIC.len() + 1]]);
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(VaultError::Version(version));
    }
    if file.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
        return Err(VaultError::Corrupt(format!(
            "truncated ({} octets)",
            file.len()
        )));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&file[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
    let mut body = Zeroizing::new(file[HEADER_LEN + NONCE_LEN..].to_vec());
    let key = key(storage_key)?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&file[..HEADER_LEN]),
            body.as_mut_slice(),
        )
        .map_err(|_| {
            VaultError::Corrupt(
                "does not decrypt with this device's storage key (modified, truncated, or another device's)"
                    .into(),
            )
        })?;
    decode(plain, version)
}

fn corrupt(what: &str) -> VaultError {
    VaultError::Corrupt(format!("decrypted but malformed: {what}"))
}

fn decode(mut plain: &[u8], version: u16) -> Result<VaultContent, VaultError> {
    let mut resets = (0, None);
    let mut idevid = None;
    let mut provisioning = None;
    let mut package = None;
    let mut window = None;
    let mut last_tag = 0u8;
    while !plain.is_empty() {
        if plain.len() < 5 {
            return Err(corrupt("record header"));
        }
        let tag = plain[0];
        let len = u32::from_be_bytes([plain[1], plain[2], plain[3], plain[4]]) as usize;
        let rest = &plain[5..];
        if rest.len() < len {
            return Err(corrupt("record length"));
        }
        if tag <= last_tag {
            return Err(corrupt("records out of order or repeated"));
        }
        last_tag = tag;
        let value = &rest[..len];
        plain = &rest[len..];
        match tag {
            T_IDEVID => {
                let (&kind, der) = value.split_first().ok_or_else(|| corrupt("IDevID key"))?;
                let der = der.to_vec();
                idevid = Some(match kind {
                    0 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
                    1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
                    2 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
                    _ => return Err(corrupt("IDevID key kind")),
                });
            }
            T_PROVISIONING => {
                provisioning =
                    Some(PrivateKey32::from_slice(value).map_err(|_| corrupt("provisioning key"))?);
            }
            T_PACKAGE => package = Some(Zeroizing::new(value.to_vec())),
            T_WINDOW => {
                if value.len() != WINDOW_LEN {
                    return Err(corrupt("SQN window length"));
                }
                let mut seqs = [0u64; WINDOW_SLOTS];
                for (seq, chunk) in seqs.iter_mut().zip(value.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    *seq = u64::from_be_bytes(b);
                }
                let mut d = [0u8; 8];
                d.copy_from_slice(&value[WINDOW_SLOTS * 8..]);
                window = Some(SqnWindow::from_seqs(seqs, u64::from_be_bytes(d)));
            }
            T_RESETS if version >= 2 => {
                let (count, receipt) = value
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("resets record"))?;
                resets = (
                    u64::from_be_bytes(*count),
                    (!receipt.is_empty()).then(|| receipt.to_vec()),
                );
            }
            _ => return Err(corrupt("unknown record")),
        }
    }
    let idevid = idevid.ok_or_else(|| corrupt("no IDevID key"))?;
    let subscription = match (package, window) {
        (Some(p), Some(w)) => Some((p, w)),
        (None, None) => None,
        _ => return Err(corrupt("package without SQN window or the reverse")),
    };
    Ok(VaultContent {
        idevid,
        provisioning,
        subscription,
        resets,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> (PrivateKeyDer<'static>, PrivateKey32, Vec<u8>, SqnWindow) {
        let mut seqs = [0u64; 32];
        seqs[3] = 77;
        (
            PrivateKeyDer::Pkcs8(vec![0x30, 1, 2, 3].into()),
            PrivateKey32::new([9; 32]),
            b"package".to_vec(),
            SqnWindow::from_seqs(seqs, 1 << 20),
        )
    }

    #[test]
    fn round_trip_and_fresh_nonce() {
        let (idevid, prov, package, window) = sample();
        let k = [5u8; 32];
        let v = VaultRef {
            idevid: &idevid,
            provisioning: Some(&prov),
            subscription: Some((&package, &window)),
            resets: (3, Some(b"receipt")),
        };
        let a = seal(&k, &v).unwrap();
        let b = seal(&k, &v).unwrap();
        assert_ne!(a, b, "a nonce per write");
        let c = open(&k, &a).unwrap();
        assert_eq!(c.idevid, idevid);
        assert_eq!(c.provisioning, Some(prov));
        let (p, w) = c.subscription.unwrap();
        assert_eq!(p.as_slice(), package.as_slice());
        assert_eq!(w, window);
        assert_eq!(c.resets, (3, Some(b"receipt".to_vec())));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let (idevid, _, package, window) = sample();
        let k = [5u8; 32];
        let file = seal(
            &k,
            &VaultRef {
                idevid: &idevid,
                provisioning: None,
                subscription: Some((&package, &window)),
                resets: (1, None),
            },
        )
        .unwrap();
        for i in 0..file.len() * 8 {
            let mut f = file.clone();
            f[i / 8] ^= 1 << (i % 8);
            assert!(open(&k, &f).is_err(), "bit {i}");
        }
        for n in 0..file.len() {
            assert!(open(&k, &file[..n]).is_err(), "length {n}");
        }
        assert!(open(&[6u8; 32], &file).is_err(), "another key");
        // A version 1 vault (an older build's) still opens; record 5 is
        // not part of version 1.
        let old = seal_version(
            &k,
            &VaultRef {
                idevid: &idevid,
                provisioning: None,
                subscription: Some((&package, &window)),
                resets: (0, None),
            },
            1,
        )
        .unwrap();
        assert_eq!(open(&k, &old).unwrap().resets, (0, None));
        let with_resets = seal_version(
            &k,
            &VaultRef {
                idevid: &idevid,
                provisioning: None,
                subscription: None,
                resets: (2, None),
            },
            1,
        )
        .unwrap();
        assert!(matches!(
            open(&k, &with_resets),
            Err(VaultError::Corrupt(_))
        ));
        let mut v3 = file.clone();
        v3[9] = 3;
        assert!(matches!(open(&k, &v3), Err(VaultError::Version(3))));
    }
}
