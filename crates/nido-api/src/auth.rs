//! Bearer tokens and who a request speaks for.
//!
//! A token is `nido_` followed by 32 random octets in base64url: it cannot
//! be guessed, so its SHA-256 is all the store keeps (no salt or slow hash
//! needed; the database alone lets no one in). A token has a role,
//! `operator` or `owner`; an owner's token is bound to one owner.
//!
//! Invariants:
//! - a token is shown once, when it is created, and never logged;
//! - a request is either authenticated by a live token or refused (401);
//! - failed authentications are rate limited per client address
//!   ([`FailureLimiter`]): past the burst, no store lookup and a failure
//!   is 429; a token verified in the last seconds still gets in, so a
//!   proxy's clients (one address) cannot lock a live token out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use nido_store::TokenRecord;
use zeroize::Zeroizing;

/// The prefix of every token (lets secret scanners find leaked ones).
pub const TOKEN_PREFIX: &str = "nido_";

/// Who a request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The network's operator: every device, every owner.
    Operator,
    /// One owner: its own devices, subscriptions and credentials only.
    Owner(String),
}

impl Caller {
    /// The owner a query is limited to (none for the operator).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Owner(id) => Some(id),
        }
    }

    /// The caller a stored token speaks for.
    pub fn of(record: &TokenRecord) -> Option<Self> {
        match (record.role.as_str(), &record.owner) {
            ("operator", None) => Some(Self::Operator),
            ("owner", Some(owner)) => Some(Self::Owner(owner.clone())),
            _ => None,
        }
    }
}

/// A new token: the token itself (shown once) and the record to store with
/// [`hash`] of it.
pub fn new_token(
    role: &str,
    owner: Option<String>,
    label: &str,
    now: u64,
    expires_at: Option<u64>,
) -> Result<(Zeroizing<String>, TokenRecord), aws_lc_rs::error::Unspecified> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut secret = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::SecureRandom::fill(&rng, secret.as_mut())?;
    let mut id = [0u8; 6];
    aws_lc_rs::rand::SecureRandom::fill(&rng, &mut id)?;
    let token = Zeroizing::new(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_ref())
    ));
    Ok((
        token,
        TokenRecord {
            id: format!("tok-{}", hex::encode(id)),
            role: role.to_owned(),
            owner,
            label: label.to_owned(),
            created_at: now,
            expires_at,
            revoked_at: None,
        },
    ))
}

/// What the store keeps of `token`: its SHA-256, hex.
pub fn hash(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Whether `token` has a token's shape (checked before any store lookup).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Failed authentications per client address: a token bucket of `burst`
/// failures refilled at one per `refill`. An address with an empty bucket
/// gets no store lookup ([`crate::AppState::authenticate`]). At most `max_addresses` are
/// tracked; when full, the full buckets (addresses that behaved) go first.
#[derive(Debug)]
pub struct FailureLimiter {
    burst: f64,
    refill: Duration,
    max_addresses: usize,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl FailureLimiter {
    /// A limiter of `burst` failures, refilled at one per `refill`.
    pub fn new(burst: u32, refill: Duration, max_addresses: usize) -> Self {
        Self {
            burst: f64::from(burst),
            refill,
            max_addresses,
            buckets: HashMap::new(),
        }
    }

    fn level(&self, addr: &IpAddr, now: Instant) -> f64 {
        match self.buckets.get(addr) {
            None => self.burst,
            Some(&(level, at)) => (level
                + now.saturating_duration_since(at).as_secs_f64() / self.refill.as_secs_f64())
            .min(self.burst),
        }
    }

    /// Whether `addr` may try to authenticate now; if not, how long until
    /// it may.
    pub fn check(&self, addr: &IpAddr, now: Instant) -> Result<(), Duration> {
        let level = self.level(addr, now);
        if level >= 1.0 {
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - level))
        }
    }

    /// Counts a failed authentication of `addr`.
    pub fn failed(&mut self, addr: IpAddr, now: Instant) {
        let level = self.level(&addr, now) - 1.0;
        if self.buckets.len() >= self.max_addresses && !self.buckets.contains_key(&addr) {
            let burst = self.burst;
            let refill = self.refill;
            self.buckets.retain(|_, (l, at)| {
                *l + now.saturating_duration_since(*at).as_secs_f64() / refill.as_secs_f64() < burst
            });
            if self.buckets.len() >= self.max_addresses {
                // Still full of misbehaving addresses: forget the oldest half.
                let mut ages: Vec<_> = self.buckets.iter().map(|(a, (_, t))| (*t, *a)).collect();
                ages.sort();
                for (_, a) in ages.iter().take(ages.len() / 2) {
                    self.buckets.remove(a);
                }
            }
        }
        self.buckets.insert(addr, (level.max(0.0), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_and_hashed() {
        let (token, record) = new_token("owner", Some("acme".into()), "t", 1, None).unwrap();
        assert!(well_formed(&token));
        assert!(!well_formed(&token[..token.len() - 1]));
        assert!(!well_formed("nido_../../../../etc/passwd"));
        assert_eq!(hash(&token).len(), 64);
        assert_ne!(hash(&token), hash("nido_x"));
        assert_eq!(Caller::of(&record), Some(Caller::Owner("acme".into())));
        let (other, _) = new_token("operator", None, "t", 1, None).unwrap();
        assert_ne!(*token, *other);
    }

    #[test]
    fn failures_are_limited_per_address_and_refill() {
        let mut l = FailureLimiter::new(3, Duration::from_secs(1), 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(&a, t).is_ok());
            l.failed(a, t);
        }
        let wait = l.check(&a, t).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(l.check(&b, t).is_ok(), "another address is not limited");
        assert!(l.check(&a, t + Duration::from_secs(1)).is_ok(), "refilled");
        // A third address when two are tracked: bounded memory.
        l.failed(b, t);
        l.failed("192.0.2.3".parse().unwrap(), t);
        assert!(l.buckets.len() <= 2);
    }
}
