//! A RADIUS client's outstanding requests to one server (RFC 5080 §2.2.1):
//! Identifier allocation, retransmission of the same octets with exponential
//! back-off, giving up, and matching replies.
//!
//! Sans-IO: `now` is a [`Duration`] since an epoch of the caller's choosing;
//! the back-off's random factor (RAND in RFC 5080 §2.2.1, within ±0.1) is a
//! parameter. Use one [`Pending`] per server: Identifiers are per server
//! (RFC 2865 §3 matches replies by source address, port and Identifier).

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

use crate::auth::{AuthError, RequestInfo, Secret, verify_response};
use crate::packet::Packet;

/// The retransmission parameters of RFC 5080 §2.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitPolicy {
    /// IRT: the first timeout (2 s).
    pub initial: Duration,
    /// MRT: the longest timeout (16 s).
    pub max_timeout: Duration,
    /// MRC: the most transmissions, the first one included (5).
    pub max_count: u32,
    /// MRD: how long after the first transmission the client gives up (30 s).
    pub max_duration: Duration,
}

impl Default for RetransmitPolicy {
    /// RFC 5080 §2.2.1: IRT 2 s, MRC 5, MRT 16 s, MRD 30 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max_timeout: Duration::from_secs(16),
            max_count: 5,
            max_duration: Duration::from_secs(30),
        }
    }
}

/// Why a request could not be sent or a reply was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// All 256 Identifiers are in flight to this server.
    #[error("all 256 identifiers are in flight")]
    IdentifiersExhausted,
    /// The request could not be signed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A reply whose Identifier matches no outstanding request (late,
    /// duplicate or forged): discard it.
    #[error("no outstanding request with identifier {identifier}")]
    NoSuchRequest {
        /// Its Identifier.
        identifier: u8,
    },
    /// A reply shorter than a header.
    #[error("reply too short to hold an identifier")]
    Truncated,
}

#[derive(Debug)]
struct Outstanding {
    octets: Vec<u8>,
    info: RequestInfo,
    first_sent: Duration,
    due: Duration,
    timeout: Duration,
    transmissions: u32,
}

/// A retransmission due: send `octets` again (same Identifier, same
/// authenticators: RFC 5080 §2.2.1 "the same ID and Request Authenticator").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retransmit {
    /// The request's Identifier.
    pub identifier: u8,
    /// The octets to send.
    pub octets: Vec<u8>,
}

/// A request given up on (MRC transmissions or MRD elapsed without a valid
/// reply); its Identifier is free again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// The request's Identifier.
    pub identifier: u8,
    /// How many times it was sent.
    pub transmissions: u32,
}

/// What [`Pending::on_timeout`] found due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Requests to send again.
    pub retransmit: Vec<Retransmit>,
    /// Requests given up on.
    pub failed: Vec<Failed>,
}

/// The requests outstanding to one server.
#[derive(Debug)]
pub struct Pending {
    policy: RetransmitPolicy,
    secret: Secret,
    outstanding: BTreeMap<u8, Outstanding>,
    next_identifier: u8,
}

/// `base` scaled by (1 + rand), rand clamped to ±0.1 (NaN counts as 0).
fn jittered(base: Duration, rand: f64) -> Duration {
    let rand = if rand.is_nan() {
        0.0
    } else {
        rand.clamp(-0.1, 0.1)
    };
    base.mul_f64(1.0 + rand)
}

impl Pending {
    /// No requests outstanding to a server sharing `secret`.
    pub fn new(policy: RetransmitPolicy, secret: Secret) -> Self {
        Self {
            policy,
            secret,
            outstanding: BTreeMap::new(),
            next_identifier: 0,
        }
    }

    /// How many requests are outstanding.
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// When [`Pending::on_timeout`] next has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.outstanding.values().map(|o| o.due).min()
    }

    /// Allocates an Identifier not outstanding (cycling, so a freed one is
    /// reused as late as possible), sets it on `packet`, signs the request
    /// ([`Packet::encode_request`]: the caller has put a fresh random
    /// Request Authenticator in `packet.authenticator`) and remembers it.
    /// Returns the Identifier and the octets to send now. `rand` is RAND of
    /// RFC 5080 §2.2.1 for the first timeout.
    pub fn send(
        &mut self,
        mut packet: Packet,
        now: Duration,
        rand: f64,
    ) -> Result<(u8, Vec<u8>), ClientError> {
        let identifier = (0..=u8::MAX)
            .map(|i| self.next_identifier.wrapping_add(i))
            .find(|id| !self.outstanding.contains_key(id))
            .ok_or(ClientError::IdentifiersExhausted)?;
        packet.identifier = identifier;
        let octets = packet.encode_request(&self.secret)?;
        let info = RequestInfo::from_octets(&octets).map_err(AuthError::from)?;
        let timeout = jittered(self.policy.initial, rand);
        self.outstanding.insert(
            identifier,
            Outstanding {
                octets: octets.clone(),
                info,
                first_sent: now,
                due: self.cap(now, now.saturating_add(timeout)),
                timeout,
                transmissions: 1,
            },
        );
        self.next_identifier = identifier.wrapping_add(1);
        Ok((identifier, octets))
    }

    /// A deadline no later than the first transmission plus MRD.
    fn cap(&self, first_sent: Duration, due: Duration) -> Duration {
        due.min(first_sent.saturating_add(self.policy.max_duration))
    }

    /// The retransmissions due at `now`, and the requests given up on (MRC
    /// transmissions made, or MRD elapsed). The next timeout is RT = 2·RTprev
    /// + RAND·RTprev, and MRT + RAND·MRT once over MRT (RFC 5080 §2.2.1).
    pub fn on_timeout(&mut self, now: Duration, rand: f64) -> Timeouts {
        let mut out = Timeouts::default();
        let policy = self.policy;
        let mut gone = Vec::new();
        for (&identifier, o) in self.outstanding.iter_mut().filter(|(_, o)| o.due <= now) {
            let elapsed = now.saturating_sub(o.first_sent);
            if o.transmissions >= policy.max_count || elapsed >= policy.max_duration {
                gone.push(identifier);
                out.failed.push(Failed {
                    identifier,
                    transmissions: o.transmissions,
                });
                continue;
            }
            let doubled = o.timeout.saturating_mul(2);
            o.timeout = if doubled > policy.max_timeout {
                jittered(policy.max_timeout, rand)
            } else {
                jittered(doubled, rand)
            };
            o.transmissions += 1;
            o.due = now
                .saturating_add(o.timeout)
                .min(o.first_sent.saturating_add(policy.max_duration));
            out.retransmit.push(Retransmit {
                identifier,
                octets: o.octets.clone(),
            });
        }
        for id in gone {
            self.outstanding.remove(&id);
        }
        out
    }

    /// Matches a reply by Identifier and verifies it ([`verify_response`]).
    /// A valid reply ends the request and is returned with its Identifier;
    /// an invalid one is an error and leaves the request outstanding (RFC
    /// 2865 §3: invalid replies are silently discarded).
    pub fn on_response(&mut self, octets: &[u8]) -> Result<(u8, Packet), ClientError> {
        let identifier = *octets.get(1).ok_or(ClientError::Truncated)?;
        let o = self
            .outstanding
            .get(&identifier)
            .ok_or(ClientError::NoSuchRequest { identifier })?;
        let reply = verify_response(octets, &self.secret, &o.info)?;
        self.outstanding.remove(&identifier);
        Ok((identifier, reply))
    }

    /// Forgets a request (e.g. the caller gave up); `true` if it was there.
    pub fn cancel(&mut self, identifier: u8) -> bool {
        self.outstanding.remove(&identifier).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Code, attr};

    fn secret() -> Secret {
        Secret::new(b"testing123").expect("secret")
    }

    fn request() -> Packet {
        let mut p = Packet::new(Code::AccessRequest, 0, [0x5a; 16]);
        p.push(attr::USER_NAME, b"dev").expect("push");
        p
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn rfc5080_schedule_without_jitter() {
        let mut c = Pending::new(RetransmitPolicy::default(), secret());
        let (id, first) = c.send(request(), S(100), 0.0).expect("sends");
        assert_eq!(c.next_deadline(), Some(S(102)));
        assert_eq!(c.on_timeout(S(101), 0.0), Timeouts::default());
        let mut sent_at = vec![];
        let mut t = S(100);
        while let Some(due) = c.next_deadline() {
            t = due;
            let out = c.on_timeout(t, 0.0);
            for r in &out.retransmit {
                assert_eq!((r.identifier, &r.octets), (id, &first));
                sent_at.push(t.as_secs() - 100);
            }
            if let Some(f) = out.failed.first() {
                assert_eq!(f.identifier, id);
                assert_eq!(f.transmissions, 4);
            }
        }
        // IRT 2, then 4, 8, 16 (MRT); MRD 30 ends it at t = 30.
        assert_eq!(sent_at, [2, 6, 14]);
        assert_eq!(t, S(130));
        assert!(c.is_empty());
    }

    #[test]
    fn max_count_ends_it() {
        let policy = RetransmitPolicy {
            max_count: 2,
            ..RetransmitPolicy::default()
        };
        let mut c = Pending::new(policy, secret());
        c.send(request(), S(0), 0.1).expect("sends");
        assert_eq!(c.next_deadline(), Some(Duration::from_millis(2200)));
        assert_eq!(c.on_timeout(S(3), 0.0).retransmit.len(), 1);
        let out = c.on_timeout(S(60), 0.0);
        assert_eq!(
            out.failed,
            [Failed {
                identifier: 0,
                transmissions: 2
            }]
        );
    }

    #[test]
    fn jitter_is_clamped() {
        assert_eq!(jittered(S(10), 5.0), S(11));
        assert_eq!(jittered(S(10), -5.0), S(9));
        assert_eq!(jittered(S(10), f64::NAN), S(10));
    }

    #[test]
    fn identifiers_unique_until_exhausted() {
        let mut c = Pending::new(RetransmitPolicy::default(), secret());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..256 {
            let (id, _) = c.send(request(), S(0), 0.0).expect("sends");
            assert!(seen.insert(id));
        }
        assert_eq!(
            c.send(request(), S(0), 0.0),
            Err(ClientError::IdentifiersExhausted)
        );
        assert!(c.cancel(17));
        assert_eq!(c.send(request(), S(0), 0.0).expect("sends").0, 17);
    }

    #[test]
    fn reply_matching() {
        let mut c = Pending::new(RetransmitPolicy::default(), secret());
        let (id, sent) = c.send(request(), S(0), 0.0).expect("sends");
        let req = RequestInfo::from_octets(&sent).expect("info");
        let accept = Packet::new(Code::AccessAccept, id, [0; 16]);
        let good = accept
            .encode_response(&secret(), &req.authenticator)
            .expect("signs");
        let bad = accept.encode_response(&Secret::new(b"other").expect("s"), &req.authenticator);
        let bad = bad.expect("signs");
        assert!(matches!(
            c.on_response(&bad),
            Err(ClientError::Auth(AuthError::BadResponseAuthenticator))
        ));
        assert_eq!(c.len(), 1);
        let (got, reply) = c.on_response(&good).expect("accepted");
        assert_eq!((got, reply.code), (id, Code::AccessAccept));
        assert!(c.is_empty());
        assert_eq!(
            c.on_response(&good),
            Err(ClientError::NoSuchRequest { identifier: id })
        );
        assert_eq!(c.on_response(&[2]), Err(ClientError::Truncated));
    }
}
