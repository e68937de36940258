//! What this machine can onboard per second, estimated at start from its
//! public-key speed: the default admission limit of `serve` (issue #11).
//!
//! One onboarding costs both sides together 2 ECDSA P-256 signatures, 6
//! verifications and 11 X25519 operations (EAP-TLS 1.3 with certificates
//! both ways, the HPKE-sealed package, SUCI concealment); the machine's
//! *public-key bound* is its cores divided by that time, the same bound
//! `benches/serve.sh` measures with `openssl speed`. The admission limit
//! is the number of registrations the server can finish within one
//! procedure guard timer (T3560, 6 s) at that rate: a fleet arriving
//! below capacity never meets it, and a fleet beyond capacity queues at
//! most a guard timer's worth of work before #22 sends the rest away.

use std::time::{Duration, Instant};

use aws_lc_rs::agreement::{self, X25519};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey};

/// The guard timer the limit is sized for (T3560, TS 24.501 §10.2).
pub(crate) const GUARD: Duration = Duration::from_secs(6);

/// The public-key bound of this machine, onboardings per second, measured
/// over about `budget` of CPU; `None` if a primitive failed.
pub(crate) fn public_key_bound(budget: Duration) -> Option<f64> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).ok()?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).ok()?;
    let message = [0x5a; 64];
    let per = budget / 3;
    let sign = time_per_op(per, || pair.sign(&rng, &message).is_ok())?;
    let sig = pair.sign(&rng, &message).ok()?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pair.public_key().as_ref().to_vec());
    let verify = time_per_op(per, || public.verify(&message, sig.as_ref()).is_ok())?;
    let peer = agreement::PrivateKey::generate(&X25519).ok()?;
    let peer_public = peer.compute_public_key().ok()?;
    let x25519 = time_per_op(per, || {
        agreement::PrivateKey::generate(&X25519).is_ok_and(|k| {
            agreement::agree(
                &k,
                agreement::UnparsedPublicKey::new(&X25519, peer_public.as_ref()),
                (),
                |_| Ok(()),
            )
            .is_ok()
        })
    })? / 2.0; // a key generation and an agreement: two operations
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Some(cores / (2.0 * sign + 6.0 * verify + 11.0 * x25519))
}

/// Seconds per call of `op`, over about `budget` (at least 8 calls).
fn time_per_op(budget: Duration, mut op: impl FnMut() -> bool) -> Option<f64> {
    let start = Instant::now();
    let mut n = 0u32;
    while n < 8 || start.elapsed() < budget {
        if !op() {
            return None;
        }
        n += 1;
    }
    Some(start.elapsed().as_secs_f64() / f64::from(n))
}

/// The admission limit for a machine whose bound is `bound` per second:
/// what it finishes within [`GUARD`].
pub(crate) fn limit_for(bound: f64) -> usize {
    ((bound * GUARD.as_secs_f64()).round() as usize).max(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_measured_and_the_limit_follows_it() {
        let bound = public_key_bound(Duration::from_millis(30));
        assert!(bound.is_some_and(|b| b.is_finite() && b > 0.0), "{bound:?}");
        assert_eq!(limit_for(1_000.0), 6_000);
        assert_eq!(limit_for(2_400.5), 14_403);
        assert_eq!(limit_for(1.0), 100, "never below 100");
    }
}
