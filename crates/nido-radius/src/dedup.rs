//! A server's duplicate detection (RFC 5080 §2.2.2): a retransmitted
//! request (same client, Identifier and Request Authenticator) gets the
//! reply already sent, instead of being processed again.
//!
//! Sans-IO: `now` is a [`Duration`] since an epoch of the caller's choosing
//! (it should not go backwards; if it does, entries just look younger).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

/// What identifies a request for duplicate detection (RFC 5080 §2.2.2:
/// the client's address and port, the Identifier and the Request
/// Authenticator). `A` is the caller's client key, e.g. a socket address,
/// or a socket address and a client name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey<A> {
    /// The client.
    pub client: A,
    /// The request's Identifier.
    pub identifier: u8,
    /// The request's Request Authenticator.
    pub authenticator: [u8; 16],
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    stored_at: Duration,
    reply: Vec<u8>,
}

/// Encoded replies kept for `lifetime` after they were stored, at most
/// `capacity` of them; when full, the oldest is evicted (RFC 5080 §2.2.2).
///
/// The lifetime should cover the client's retransmissions: with the RFC 5080
/// §2.2.1 defaults a client gives up after 30 s ([`DEFAULT_LIFETIME`]).
#[derive(Debug)]
pub struct ReplyCache<A> {
    capacity: usize,
    lifetime: Duration,
    next_seq: u64,
    entries: HashMap<DedupKey<A>, Entry>,
    order: BTreeMap<u64, DedupKey<A>>,
}

/// A lifetime matching a client's maximum retransmission duration (MRD, RFC
/// 5080 §2.2.1).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30);

impl<A: Clone + Eq + Hash> ReplyCache<A> {
    /// An empty cache of at most `capacity` replies, each kept `lifetime`.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        Self {
            capacity,
            lifetime,
            next_seq: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// How many replies are stored (expired ones included until the next
    /// [`ReplyCache::insert`] or [`ReplyCache::expire`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn fresh(&self, stored_at: Duration, now: Duration) -> bool {
        now.saturating_sub(stored_at) < self.lifetime
    }

    /// The reply stored for `key`, if stored less than `lifetime` before `now`.
    pub fn lookup(&self, key: &DedupKey<A>, now: Duration) -> Option<&[u8]> {
        self.entries
            .get(key)
            .filter(|e| self.fresh(e.stored_at, now))
            .map(|e| e.reply.as_slice())
    }

    /// Stores the encoded `reply` to the request `key` at `now`, replacing
    /// one stored for the same key; drops expired replies, then the oldest
    /// ones while over capacity.
    pub fn insert(&mut self, key: DedupKey<A>, reply: Vec<u8>, now: Duration) {
        self.expire(now);
        if self.capacity == 0 {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.seq);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(
            key,
            Entry {
                seq,
                stored_at: now,
                reply,
            },
        );
    }

    /// Drops the replies stored `lifetime` or more before `now`.
    pub fn expire(&mut self, now: Duration) {
        while let Some((&seq, key)) = self.order.first_key_value() {
            let stale = self
                .entries
                .get(key)
                .is_none_or(|e| !self.fresh(e.stored_at, now));
            if !stale {
                break;
            }
            if let Some(key) = self.order.remove(&seq) {
                self.entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &'static str, identifier: u8) -> DedupKey<&'static str> {
        DedupKey {
            client,
            identifier,
            authenticator: [identifier; 16],
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn hit_miss_and_expiry() {
        let mut c = ReplyCache::new(4, S(5));
        c.insert(key("a", 1), vec![1], S(0));
        assert_eq!(c.lookup(&key("a", 1), S(4)), Some(&[1u8][..]));
        assert_eq!(c.lookup(&key("b", 1), S(4)), None);
        let mut other_auth = key("a", 1);
        other_auth.authenticator[0] ^= 1;
        assert_eq!(c.lookup(&other_auth, S(1)), None);
        assert_eq!(c.lookup(&key("a", 1), S(5)), None);
        c.expire(S(5));
        assert!(c.is_empty());
    }

    #[test]
    fn oldest_evicted_at_capacity() {
        let mut c = ReplyCache::new(2, S(60));
        c.insert(key("a", 1), vec![1], S(0));
        c.insert(key("a", 2), vec![2], S(1));
        c.insert(key("a", 1), vec![11], S(2)); // refreshed: now the newest
        c.insert(key("a", 3), vec![3], S(3));
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup(&key("a", 2), S(3)), None);
        assert_eq!(c.lookup(&key("a", 1), S(3)), Some(&[11u8][..]));
        assert_eq!(c.lookup(&key("a", 3), S(3)), Some(&[3u8][..]));
        let mut z = ReplyCache::new(0, S(60));
        z.insert(key("a", 1), vec![1], S(0));
        assert!(z.is_empty());
    }

    #[test]
    fn bounded_under_churn() {
        let mut c = ReplyCache::new(10, S(60));
        for i in 0..1000u32 {
            c.insert(
                key("a", (i % 37) as u8),
                vec![0],
                Duration::from_millis(u64::from(i)),
            );
            assert!(c.len() <= 10);
            assert_eq!(c.order.len(), c.entries.len());
        }
    }
}
