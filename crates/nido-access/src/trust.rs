//! Keeping a serving network's trust current: the operator blocks a
//! device, imports a CRL, enrolls or removes a manufacturer while `serve`
//! runs, and the next onboarding sees it, without a restart.
//!
//! [`TrustWatch`] asks a [`TrustSource`] for its trust generation at most
//! once per period (one small read) and loads the whole trust store only
//! when the generation moved; the [`Network`] takes the new store as an
//! input ([`Network::set_trust_store`]): the sans-IO machine never reads
//! the database for it. The generation is read before the store, so a
//! change made between the two reads is loaded again at the next poll,
//! never missed. A source that cannot answer leaves the current store in
//! place (the caller logs it) and is asked again at the next period.
//!
//! At the same pace it asks which credential packages ended since it last
//! asked ([`TrustSource::packages_ended`]) and hands them to
//! [`Network::end_registrations`]: a device registered with a package that
//! ended is deregistered (#7) and renews it. A package ends by its
//! validity (its end passes on the clock: the window starts one second
//! before the last question's end) or by the operator (a rekey, a release,
//! a claim: the end is the second before the change began, and the
//! transaction moves the trust generation; when the generation moved the
//! window starts [`ENDED_LOOKBACK`] before the last question, so a long
//! transaction or a clock a little off is not missed). The first question
//! covers from the watch's first poll on: a package that ended before
//! holds no registration of this network.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nido_net::Network;
use nido_net::dcs::TrustSource;
use nido_pki::TrustStore;

/// A trust store [`TrustWatch::poll`] handed to the network.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// Its generation.
    pub generation: u64,
    /// The store (the network holds it too), for a driver that builds more
    /// from it (the DCS credentials of a realm enrolled since).
    pub trust: Arc<TrustStore>,
}

/// How far back the watch looks for ended packages when the trust
/// generation moved: the operator's rekey, release or claim moves it in
/// the transaction that ends packages, at the second before that
/// transaction began, which may be long before it commits (a rekey of a
/// whole fleet) or on a clock a little off this one.
pub const ENDED_LOOKBACK: Duration = Duration::from_secs(300);

/// How often `nido network serve` asks for the trust generation by default.
pub const DEFAULT_TRUST_POLL: Duration = Duration::from_millis(500);

/// Polls a [`TrustSource`] and hands a changed trust store to the network.
#[derive(Debug)]
pub struct TrustWatch<S> {
    source: S,
    every: Duration,
    next: Option<Instant>,
    generation: Option<u64>,
    /// Up to when (Unix seconds) ended packages were asked for.
    ended_asked: Option<u64>,
}

impl<S: TrustSource> TrustWatch<S> {
    /// Watches `source`, asking at most once per `every`. `loaded` is the
    /// generation the network's current trust store was built at (read
    /// *before* that store was loaded), or `None` to load at the first poll.
    pub fn new(source: S, every: Duration, loaded: Option<u64>) -> Self {
        Self {
            source,
            every,
            next: None,
            generation: loaded,
            ended_asked: None,
        }
    }

    /// The generation of the trust store the network holds, if known.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    /// At `now`: if a period has passed since the last question, ends the
    /// registrations of the packages that ended since the last question
    /// (see the module doc), then asks the generation and, when it moved,
    /// loads the trust store and gives it to `network`. Returns what was
    /// loaded when the store was replaced. On an error the network keeps
    /// its store (and the ended packages are asked for again next time).
    pub fn poll(
        &mut self,
        now: Instant,
        network: &mut Network,
    ) -> Result<Option<Reloaded>, S::Error> {
        if self.next.is_some_and(|next| now < next) {
            return Ok(None);
        }
        self.next = Some(now + self.every);
        let generation = self.source.trust_generation()?;
        let wall = SystemTime::now();
        let to = nido_prov::unix_seconds(wall);
        let back = if self.generation == Some(generation) {
            1
        } else {
            ENDED_LOOKBACK.as_secs()
        };
        let from = self.ended_asked.unwrap_or(to).saturating_sub(back);
        let ended = self.source.packages_ended(from, to)?;
        self.ended_asked = Some(to);
        if !ended.is_empty() {
            network.end_registrations(wall, &ended);
        }
        if self.generation == Some(generation) {
            return Ok(None);
        }
        let trust = Arc::new(self.source.trust_store()?);
        network.set_trust_store(std::time::SystemTime::now(), trust.clone());
        self.generation = Some(generation);
        Ok(Some(Reloaded { generation, trust }))
    }
}
