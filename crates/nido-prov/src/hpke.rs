//! HPKE (RFC 9180) single-shot seal and open in PSK mode (§5.1.2), for the
//! one suite a credential package uses: DHKEM(X25519, HKDF-SHA256) (§4.1,
//! KEM 0x0020), HKDF-SHA256 (KDF 0x0001) and AES-128-GCM (AEAD 0x0001),
//! on aws-lc's X25519, HMAC-SHA256 and AES-GCM.
//!
//! Why not the `hpke` crate: its X25519 is curve25519-dalek's portable
//! code, and the two X25519 operations of every package the network seals
//! took about a fifth of an AMF shard's CPU (issue #11's profile); aws-lc's
//! is about twice as fast. The `hpke` crate stays as the independent
//! implementation this one is tested against (tests/package.rs: each
//! opens what the other sealed).
//!
//! Invariants: a DH result of all zeros (a small-order public key) is
//! refused (§7.1.4); the PSK and its id are both non-empty (§5.1.2,
//! `VerifyPSKInputs`); the single-shot context seals and opens sequence
//! number 0 only, so its nonce is `base_nonce` (§5.2); secrets are
//! zeroized when dropped.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

/// `suite_id` of the KEM (§4.1): "KEM" ‖ I2OSP(0x0020, 2).
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// `suite_id` of the key schedule (§5.1): "HPKE" ‖ KEM ‖ KDF ‖ AEAD ids.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x01";
/// `mode_psk` (§5).
const MODE_PSK: u8 = 0x01;
/// Nk and Nn of AES-128-GCM (§7.3).
const NK: usize = 16;
const NN: usize = 12;

/// Why a seal or an open failed (no detail: an open that fails must not
/// say why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HpkeError {
    /// The recipient's public key is unusable (a small-order point).
    PublicKey,
    /// An empty PSK or PSK id.
    Psk,
    /// The system's random generator failed.
    Random,
    /// Authentication failed, or the encapsulated key or private key is
    /// unusable.
    Open,
}

/// `LabeledExtract(salt, label, ikm)` (§4): HKDF-Extract, i.e.
/// HMAC-SHA256 keyed with the salt (an empty salt is HashLen zeros, which
/// HMAC's zero padding makes the same key).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [b"HPKE-v1".as_slice(), suite, label, ikm] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// `LabeledExpand(prk, label, info, L)` (§4) for `L` ≤ 32: HKDF-Expand's
/// first block, T(1) = HMAC(prk, labeled_info ‖ 0x01), cut to `L`.
fn labeled_expand<const L: usize>(
    suite: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; L]> {
    const { assert!(L <= 32) };
    let key = hmac::Key::new(hmac::HMAC_SHA256, prk);
    let mut ctx = hmac::Context::with_key(&key);
    let length = u16::try_from(L).unwrap_or(u16::MAX).to_be_bytes();
    for part in [length.as_slice(), b"HPKE-v1", suite, label, info, &[1]] {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; L]);
    out.copy_from_slice(&ctx.sign().as_ref()[..L]);
    out
}

/// X25519 of `private` and `peer` (§7.1.4: an all-zero result is refused).
fn dh(private: &PrivateKey, peer: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    let peer = UnparsedPublicKey::new(&X25519, peer);
    let shared = agreement::agree(private, peer, (), |secret| {
        let mut out = Zeroizing::new([0u8; 32]);
        if secret.len() != 32 {
            return Err(());
        }
        out.copy_from_slice(secret);
        Ok(out)
    })
    .ok()?;
    (shared.iter().any(|b| *b != 0)).then_some(shared)
}

/// `ExtractAndExpand(dh, kem_context)` (§4.1): the KEM's shared secret.
fn shared_secret(dh: &[u8; 32], enc: &[u8; 32], pk_r: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh);
    let mut context = [0u8; 64];
    context[..32].copy_from_slice(enc);
    context[32..].copy_from_slice(pk_r);
    labeled_expand::<32>(KEM_SUITE, &prk, b"shared_secret", &context)
}

/// `KeySchedule(mode_psk, …)` (§5.1): the AEAD key and base nonce.
fn key_schedule(
    shared: &[u8; 32],
    info: &[u8],
    psk: &[u8],
    psk_id: &[u8],
) -> Result<(LessSafeKey, Zeroizing<[u8; NN]>), HpkeError> {
    if psk.is_empty() || psk_id.is_empty() {
        return Err(HpkeError::Psk);
    }
    let psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", psk_id);
    let info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info);
    let mut context = [0u8; 65];
    context[0] = MODE_PSK;
    context[1..33].copy_from_slice(psk_id_hash.as_ref());
    context[33..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(HPKE_SUITE, shared, b"secret", psk);
    let key = labeled_expand::<NK>(HPKE_SUITE, &secret, b"key", &context);
    let nonce = labeled_expand::<NN>(HPKE_SUITE, &secret, b"base_nonce", &context);
    let key = UnboundKey::new(&AES_128_GCM, key.as_ref()).map_err(|_| HpkeError::Psk)?;
    Ok((LessSafeKey::new(key), nonce))
}

/// The X25519 public key of `private` (§7.1.1 `SerializePublicKey`).
pub(crate) fn public_key(private: &[u8; 32]) -> Option<[u8; 32]> {
    public_of(&PrivateKey::from_private_key(&X25519, private).ok()?)
}

/// The public key of an X25519 private key, as its 32 octets.
fn public_of(private: &PrivateKey) -> Option<[u8; 32]> {
    private.compute_public_key().ok()?.as_ref().try_into().ok()
}

/// A fresh X25519 key pair from the system's generator: the private key
/// (as RFC 7748 octets) and its public key.
pub(crate) fn generate() -> Result<(Zeroizing<[u8; 32]>, [u8; 32]), HpkeError> {
    let private = PrivateKey::generate(&X25519).map_err(|_| HpkeError::Random)?;
    let seed: Curve25519SeedBin<'_> = private.as_be_bytes().map_err(|_| HpkeError::Random)?;
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(seed.as_ref());
    let public = public_of(&private).ok_or(HpkeError::Random)?;
    Ok((bytes, public))
}

/// Seals `plaintext` to `pk_r` (§6.1 `SealPSK`): the encapsulated key and
/// the ciphertext with its tag.
pub(crate) fn seal_psk(
    pk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    psk: &[u8],
    psk_id: &[u8],
) -> Result<([u8; 32], Vec<u8>), HpkeError> {
    let sk_e = PrivateKey::generate(&X25519).map_err(|_| HpkeError::Random)?;
    let enc = public_of(&sk_e).ok_or(HpkeError::Random)?;
    let dh = dh(&sk_e, pk_r).ok_or(HpkeError::PublicKey)?;
    let shared = shared_secret(&dh, &enc, pk_r);
    let (key, nonce) = key_schedule(&shared, info, psk, psk_id)?;
    let mut out = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(*nonce),
        Aad::from(aad),
        &mut out,
    )
    .map_err(|_| HpkeError::Random)?;
    Ok((enc, out))
}

/// Opens `ciphertext` sealed to the key pair of `sk_r` with encapsulated
/// key `enc` (§6.1 `OpenPSK`).
pub(crate) fn open_psk(
    enc: &[u8; 32],
    sk_r: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    psk: &[u8],
    psk_id: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let private = PrivateKey::from_private_key(&X25519, sk_r).map_err(|_| HpkeError::Open)?;
    let pk_r = public_of(&private).ok_or(HpkeError::Open)?;
    let dh = dh(&private, enc).ok_or(HpkeError::Open)?;
    let shared = shared_secret(&dh, enc, &pk_r);
    let (key, nonce) = key_schedule(&shared, info, psk, psk_id).map_err(|_| HpkeError::Open)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            buf.as_mut_slice(),
        )
        .map_err(|_| HpkeError::Open)?
        .len();
    buf.truncate(len);
    Ok(buf)
}
