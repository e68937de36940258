//! A deterministic, sans-IO model of an unreliable radio/access link between many devices and
//! one network.
//!
//! The [`Link`] owns no clock and no thread: the caller (the in-memory harness) passes the
//! current time into every call, [`Link::send`]s datagrams, asks [`Link::next_delivery`] when
//! to wake up next, and drains due datagrams with [`Link::poll_delivery`]. Every fault
//! decision is drawn from one seeded pseudo-random generator, so the same seed and the same
//! call sequence give the same deliveries, on every platform and every run.
//!
//! Pending datagrams live in a binary heap ordered by due time (ties broken by the order they
//! were enqueued), so each datagram costs `O(log n)` and memory is proportional to the
//! datagrams in flight, not to the number of devices or connections.
//!
//! Ordering: with [`Faults::jitter`] non-zero, two datagrams of the same connection and
//! direction may be delivered out of send order even when [`Faults::reorder`] is zero, exactly
//! as on a real link with variable delay. Only with zero jitter and zero reorder probability is
//! the send order of one direction preserved.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a device to the network.
    Uplink,
    /// From the network to a device.
    Downlink,
}

/// Fault probabilities and delays, applied per datagram independently.
///
/// For each [`Link::send`], the link first decides whether the datagram is lost (then nothing
/// is delivered), then whether it is duplicated. Each delivered copy then independently gets
/// its delay (`delay` plus uniform jitter), may be held back by `reorder_delay`, and may have
/// one bit flipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is delivered twice; the copy gets its own delay, reorder
    /// and corruption decisions.
    pub duplicate: f64,
    /// Probability that a delivered copy is held back by an extra [`Faults::reorder_delay`],
    /// so that later datagrams overtake it.
    pub reorder: f64,
    /// Probability that one random bit of a delivered copy is flipped. Empty datagrams have
    /// no bit to flip and are never corrupted.
    pub corrupt: f64,
    /// Base one-way delay.
    pub delay: Duration,
    /// Upper bound of the uniform extra delay in `[0, jitter]` added to every copy.
    pub jitter: Duration,
    /// Extra delay of a reordered copy.
    pub reorder_delay: Duration,
}

impl Faults {
    /// A perfect link: 10 ms one-way delay, no loss, duplication, reordering, corruption or
    /// jitter.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        corrupt: 0.0,
        delay: Duration::from_millis(10),
        jitter: Duration::ZERO,
        reorder_delay: Duration::ZERO,
    };

    /// Checks that every probability is finite and in `[0, 1]`, and that the longest possible
    /// delay (`delay + jitter + reorder_delay`) fits in a [`Duration`].
    pub fn validate(&self) -> Result<(), LinkError> {
        for (field, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&value) {
                // NaN is not contained in any range, so it lands here too.
                return Err(LinkError::InvalidProbability { field, value });
            }
        }
        self.delay
            .checked_add(self.jitter)
            .and_then(|d| d.checked_add(self.reorder_delay))
            .map(|_| ())
            .ok_or(LinkError::DelayOverflow)
    }
}

impl Default for Faults {
    /// [`Faults::NONE`].
    fn default() -> Self {
        Self::NONE
    }
}

/// A datagram the link delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Which way it travelled.
    pub direction: Direction,
    /// The connection it was sent on, as given to [`Link::send`].
    pub conn: u64,
    /// Its bytes, possibly with one bit flipped.
    pub pdu: Vec<u8>,
    /// When it was due; never later than the `now` of the [`Link::poll_delivery`] that
    /// returned it.
    pub at: SystemTime,
}

/// What the link did, for reports and tests.
///
/// Once every datagram has been polled, `delivered == sent - dropped + duplicated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Calls to [`Link::send`].
    pub sent: u64,
    /// Datagrams returned by [`Link::poll_delivery`], duplicates included.
    pub delivered: u64,
    /// Datagrams lost, plus copies whose due time is not representable as a
    /// [`SystemTime`].
    pub dropped: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies held back by the reorder delay.
    pub reordered: u64,
    /// Copies with one bit flipped.
    pub corrupted: u64,
}

/// Why a [`Link`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LinkError {
    /// A fault probability is NaN, infinite or outside `[0, 1]`.
    #[error("fault probability `{field}` = {value} is not in [0, 1]")]
    InvalidProbability {
        /// The name of the [`Faults`] field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// `delay + jitter + reorder_delay` overflows a [`Duration`].
    #[error("delay + jitter + reorder_delay overflows a Duration")]
    DelayOverflow,
}

/// A datagram in flight, ordered so that the max-heap pops the earliest `(due, seq)` first.
#[derive(Debug, Clone)]
struct Pending {
    due: SystemTime,
    seq: u64,
    direction: Direction,
    conn: u64,
    pdu: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first. `seq` is unique,
        // so this is a total order consistent with `eq`.
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// An unreliable link between many devices and one network, with independent [`Faults`] for
/// each [`Direction`].
///
/// See the [module documentation](self) for the model.
#[derive(Debug, Clone)]
pub struct Link {
    uplink: Faults,
    downlink: Faults,
    rng: Xoshiro256PlusPlus,
    pending: BinaryHeap<Pending>,
    next_seq: u64,
    stats: LinkStats,
}

impl Link {
    /// A link with `uplink` and `downlink` faults whose random decisions are drawn from a
    /// generator seeded with `seed`.
    ///
    /// The generator is xoshiro256++, whose output for a given seed is fixed by its
    /// specification, so runs are reproducible across platforms and `rand` releases.
    pub fn new(uplink: Faults, downlink: Faults, seed: u64) -> Result<Self, LinkError> {
        uplink.validate()?;
        downlink.validate()?;
        Ok(Self {
            uplink,
            downlink,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            pending: BinaryHeap::new(),
            next_seq: 0,
            stats: LinkStats::default(),
        })
    }

    /// A link that only carries: no fault and no delay either way (for a
    /// driver whose real link is a socket).
    pub fn direct() -> Self {
        let direct = Faults {
            delay: Duration::ZERO,
            ..Faults::NONE
        };
        Self {
            uplink: direct,
            downlink: direct,
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            pending: BinaryHeap::new(),
            next_seq: 0,
            stats: LinkStats::default(),
        }
    }

    /// Sends `pdu` on connection `conn` in `direction` at `now`.
    ///
    /// The datagram may be lost, duplicated, delayed, held back or corrupted according to the
    /// [`Faults`] of `direction`; the surviving copies become due at `now` plus their delay.
    /// `now` need not be monotonic across calls, but a copy due before the `now` of a later
    /// [`Link::poll_delivery`] is delivered at that poll.
    pub fn send(&mut self, now: SystemTime, direction: Direction, conn: u64, pdu: Vec<u8>) {
        self.stats.sent += 1;
        let faults = match direction {
            Direction::Uplink => self.uplink,
            Direction::Downlink => self.downlink,
        };
        if self.chance(faults.loss) {
            self.stats.dropped += 1;
            return;
        }
        if self.chance(faults.duplicate) {
            self.stats.duplicated += 1;
            let copy = pdu.clone();
            self.enqueue(&faults, now, direction, conn, pdu);
            self.enqueue(&faults, now, direction, conn, copy);
        } else {
            self.enqueue(&faults, now, direction, conn, pdu);
        }
    }

    /// The next datagram due at or before `now`, earliest first (ties: send order).
    pub fn poll_delivery(&mut self, now: SystemTime) -> Option<Delivery> {
        if self.pending.peek()?.due > now {
            return None;
        }
        let p = self.pending.pop()?;
        self.stats.delivered += 1;
        Some(Delivery {
            direction: p.direction,
            conn: p.conn,
            pdu: p.pdu,
            at: p.due,
        })
    }

    /// When the next datagram is due, or `None` if nothing is in flight.
    pub fn next_delivery(&self) -> Option<SystemTime> {
        self.pending.peek().map(|p| p.due)
    }

    /// How many datagrams (copies included) are waiting to be delivered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// What the link has done so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Draws a decision with probability `p`, without consuming randomness when `p` is 0.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.rng.random_bool(p)
        }
    }

    /// Applies the per-copy faults to `pdu` and queues it.
    fn enqueue(
        &mut self,
        faults: &Faults,
        now: SystemTime,
        direction: Direction,
        conn: u64,
        mut pdu: Vec<u8>,
    ) {
        // `validate` guarantees that none of these additions overflows a Duration.
        let mut delay = faults.delay;
        if !faults.jitter.is_zero() {
            delay += self.rng.random_range(Duration::ZERO..=faults.jitter);
        }
        if self.chance(faults.reorder) {
            self.stats.reordered += 1;
            delay += faults.reorder_delay;
        }
        if !pdu.is_empty() && self.chance(faults.corrupt) {
            self.stats.corrupted += 1;
            let bit = self.rng.random_range(0..pdu.len() * 8);
            if let Some(byte) = pdu.get_mut(bit / 8) {
                *byte ^= 1 << (bit % 8);
            }
        }
        let Some(due) = now.checked_add(delay) else {
            // Due beyond the end of representable time: it would never arrive.
            self.stats.dropped += 1;
            return;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(Pending {
            due,
            seq,
            direction,
            conn,
            pdu,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drains everything, advancing the clock to each due time.
    fn drain(link: &mut Link) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(at) = link.next_delivery() {
            while let Some(d) = link.poll_delivery(at) {
                out.push(d);
            }
        }
        out
    }

    fn numbered(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn number(pdu: &[u8]) -> u32 {
        u32::from_be_bytes(pdu.try_into().unwrap())
    }

    fn send_n(link: &mut Link, n: u32, direction: Direction) {
        for i in 0..n {
            link.send(
                t0() + Duration::from_micros(u64::from(i)),
                direction,
                u64::from(i % 7),
                numbered(i),
            );
        }
    }

    fn ratio(count: u64, of: u64) -> f64 {
        count as f64 / of as f64
    }

    #[test]
    fn none_delivers_everything_once_in_order_after_delay() {
        let mut link = Link::new(Faults::NONE, Faults::default(), 1).unwrap();
        for i in 0..100u32 {
            let dir = if i % 2 == 0 {
                Direction::Uplink
            } else {
                Direction::Downlink
            };
            link.send(t0() + ms(u64::from(i)), dir, u64::from(i % 3), numbered(i));
        }
        assert_eq!(link.in_flight(), 100);
        // Nothing is due before the delay has elapsed.
        assert_eq!(link.poll_delivery(t0() + ms(9)), None);
        assert_eq!(link.next_delivery(), Some(t0() + ms(10)));

        let got = drain(&mut link);
        assert_eq!(got.len(), 100);
        for (i, d) in got.iter().enumerate() {
            let i = u32::try_from(i).unwrap();
            assert_eq!(number(&d.pdu), i);
            assert_eq!(d.at, t0() + ms(u64::from(i)) + ms(10));
            assert_eq!(d.conn, u64::from(i % 3));
            let dir = if i % 2 == 0 {
                Direction::Uplink
            } else {
                Direction::Downlink
            };
            assert_eq!(d.direction, dir);
        }
        assert_eq!(link.in_flight(), 0);
        assert_eq!(link.next_delivery(), None);
        let s = link.stats();
        assert_eq!(
            s,
            LinkStats {
                sent: 100,
                delivered: 100,
                ..LinkStats::default()
            }
        );
    }

    #[test]
    fn ties_are_delivered_in_send_order() {
        let mut link = Link::new(Faults::NONE, Faults::NONE, 0).unwrap();
        for i in 0..10 {
            link.send(t0(), Direction::Uplink, 0, numbered(i));
        }
        let got: Vec<u32> = drain(&mut link).iter().map(|d| number(&d.pdu)).collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    fn lossy() -> Faults {
        Faults {
            loss: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            corrupt: 0.1,
            delay: ms(5),
            jitter: ms(20),
            reorder_delay: ms(50),
        }
    }

    #[test]
    fn same_seed_same_deliveries_different_seed_differs() {
        let run = |seed| {
            let mut link = Link::new(lossy(), lossy(), seed).unwrap();
            send_n(&mut link, 1_000, Direction::Uplink);
            send_n(&mut link, 1_000, Direction::Downlink);
            (drain(&mut link), link.stats())
        };
        let a = run(42);
        let b = run(42);
        let c = run(43);
        assert!(!a.0.is_empty());
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn loss_rate_is_respected() {
        let faults = Faults {
            loss: 0.2,
            ..Faults::NONE
        };
        let mut link = Link::new(faults, faults, 7).unwrap();
        send_n(&mut link, 10_000, Direction::Uplink);
        let got = drain(&mut link);
        let s = link.stats();
        let rate = ratio(s.dropped, s.sent);
        assert!((0.17..=0.23).contains(&rate), "loss rate {rate}");
        assert_eq!(got.len() as u64, s.sent - s.dropped);
    }

    #[test]
    fn duplicate_rate_is_respected() {
        let faults = Faults {
            duplicate: 0.05,
            jitter: ms(3),
            ..Faults::NONE
        };
        let mut link = Link::new(faults, faults, 8).unwrap();
        send_n(&mut link, 10_000, Direction::Downlink);
        let got = drain(&mut link);
        let extra = got.len() as u64 - 10_000;
        assert_eq!(extra, link.stats().duplicated);
        let rate = ratio(extra, 10_000);
        assert!((0.04..=0.06).contains(&rate), "duplicate rate {rate}");
        // Every duplicate is a copy of a datagram that was sent.
        let mut counts = std::collections::HashMap::<u32, u32>::new();
        for d in &got {
            *counts.entry(number(&d.pdu)).or_default() += 1;
        }
        assert_eq!(counts.len(), 10_000);
        assert!(counts.values().all(|&c| c == 1 || c == 2));
    }

    #[test]
    fn reorder_lets_later_datagrams_overtake() {
        let faults = Faults {
            reorder: 0.1,
            reorder_delay: ms(50),
            ..Faults::NONE
        };
        let mut link = Link::new(faults, faults, 9).unwrap();
        for i in 0..200u32 {
            link.send(t0() + ms(u64::from(i)), Direction::Uplink, 1, numbered(i));
        }
        let got: Vec<u32> = drain(&mut link).iter().map(|d| number(&d.pdu)).collect();
        assert_eq!(got.len(), 200);
        let overtakings = got.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtakings >= 1);
        assert!(link.stats().reordered >= 1);
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let faults = Faults {
            corrupt: 1.0,
            ..Faults::NONE
        };
        let mut link = Link::new(faults, faults, 10).unwrap();
        let original: Vec<Vec<u8>> = (0..500u32)
            .map(|i| {
                let len = 1 + usize::try_from(i % 64).unwrap();
                (0..len)
                    .map(|j| (j as u8).wrapping_mul(31) ^ i as u8)
                    .collect()
            })
            .collect();
        for (i, pdu) in original.iter().enumerate() {
            link.send(t0(), Direction::Uplink, i as u64, pdu.clone());
        }
        // An empty datagram has no bit to flip.
        link.send(t0(), Direction::Uplink, 999, Vec::new());
        let got = drain(&mut link);
        assert_eq!(got.len(), original.len() + 1);
        for d in &got[..original.len()] {
            let orig = &original[usize::try_from(d.conn).unwrap()];
            assert_eq!(d.pdu.len(), orig.len());
            let flipped: u32 = d
                .pdu
                .iter()
                .zip(orig)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
        }
        assert!(got[original.len()].pdu.is_empty());
        assert_eq!(link.stats().corrupted, original.len() as u64);
    }

    #[test]
    fn validate_refuses_bad_probabilities() {
        for bad in [1.5, -0.1, f64::NAN, f64::INFINITY] {
            let faults = Faults {
                loss: bad,
                ..Faults::NONE
            };
            assert!(matches!(
                faults.validate(),
                Err(LinkError::InvalidProbability { field: "loss", .. })
            ));
            let faults = Faults {
                corrupt: bad,
                ..Faults::NONE
            };
            assert!(faults.validate().is_err());
            assert!(Link::new(Faults::NONE, faults, 0).is_err());
        }
        let overflow = Faults {
            delay: Duration::MAX,
            jitter: ms(1),
            ..Faults::NONE
        };
        assert_eq!(overflow.validate(), Err(LinkError::DelayOverflow));
        assert_eq!(Faults::NONE.validate(), Ok(()));
        assert_eq!(
            Faults {
                loss: 1.0,
                duplicate: 0.0,
                ..Faults::NONE
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn stats_add_up() {
        let mut link = Link::new(lossy(), lossy(), 11).unwrap();
        send_n(&mut link, 5_000, Direction::Uplink);
        send_n(&mut link, 5_000, Direction::Downlink);
        // A partial drain leaves some in flight; the books balance with them counted.
        while link.poll_delivery(t0() + ms(10)).is_some() {}
        let s = link.stats();
        assert_eq!(
            s.delivered + link.in_flight() as u64,
            s.sent - s.dropped + s.duplicated
        );
        assert!(link.in_flight() > 0);
        drain(&mut link);
        let s = link.stats();
        assert_eq!(s.sent, 10_000);
        assert_eq!(s.delivered, s.sent - s.dropped + s.duplicated);
        assert!(s.dropped > 0 && s.duplicated > 0 && s.reordered > 0 && s.corrupted > 0);
        assert_eq!(link.in_flight(), 0);
    }

    #[test]
    fn total_loss_and_unrepresentable_due_times_are_dropped() {
        let all_lost = Faults {
            loss: 1.0,
            ..Faults::NONE
        };
        let mut link = Link::new(all_lost, Faults::NONE, 0).unwrap();
        link.send(t0(), Direction::Uplink, 0, vec![1]);
        link.send(t0(), Direction::Downlink, 0, vec![2]);
        let got = drain(&mut link);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].direction, Direction::Downlink);

        let far = Faults {
            delay: Duration::MAX,
            ..Faults::NONE
        };
        let mut link = Link::new(far, far, 0).unwrap();
        link.send(t0(), Direction::Uplink, 0, vec![1]);
        assert_eq!(link.in_flight(), 0);
        assert_eq!(link.stats().dropped, 1);
    }

    #[test]
    fn poll_respects_now() {
        let faults = Faults {
            jitter: ms(10),
            ..Faults::NONE
        };
        let mut link = Link::new(faults, faults, 12).unwrap();
        send_n(&mut link, 1_000, Direction::Uplink);
        let mut last = t0();
        let mut now = t0();
        let mut count = 0;
        while link.in_flight() > 0 {
            now += ms(1);
            while let Some(d) = link.poll_delivery(now) {
                assert!(d.at <= now);
                assert!(d.at >= last);
                last = d.at;
                count += 1;
            }
            if let Some(next) = link.next_delivery() {
                assert!(next > now);
            }
        }
        assert_eq!(count, 1_000);
    }
}
