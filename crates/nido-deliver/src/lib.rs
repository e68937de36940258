//! # nido-deliver: devices' data to their owners' applications (issue #14)
//!
//! `nido network serve` acknowledges a burst of uplink data only once it is
//! durable in the network's outbox (nido-store); a [`Worker`] drains that
//! outbox to each owner's destination ([`nido_store::DeliveryConfig`]):
//!
//! - an MQTT broker: topic `PREFIX/<device serial>/up`, QoS 1, one JSON body
//!   per burst ([`body`]);
//! - a webhook: one POST per burst, a TS 29.122 NIDD uplink data
//!   notification ([`notification`]), HMAC-signed with the owner's secret;
//! - without any delivery set, `uplink.jsonl` in the network directory (one
//!   JSON body per line), where the network put data before issue #14.
//!
//! And back: [`downlink`] takes what applications publish to
//! `PREFIX/<serial>/down` to the devices.
//!
//! # Invariants
//! - **At least once.** An entry is marked delivered only once its
//!   destination confirmed it: the broker's PUBACK for that very publish
//!   (matched by packet id), a 2xx answer of the webhook, or the file's
//!   `fsync`. Anything else (a
//!   refused connection, a timeout, a crash between the PUBACK and the
//!   mark) leaves it pending, and it is sent again: a receiver may see a
//!   burst twice (same `seq`), never miss one.
//! - **In order per device.** Entries leave in outbox order (the order the
//!   network committed them) on one connection per destination; a batch
//!   that fails is retried from its first unconfirmed entry, after every
//!   entry before it was confirmed.
//! - **One owner's trouble is its own.** A destination that fails is
//!   backed off (doubling from [`WorkerOptions::backoff_min`] to
//!   [`WorkerOptions::backoff_max`]); other owners' data keeps flowing.
//! - A destination that starts failing, and one that recovers, is an audit
//!   entry (`delivery_failed`, `delivery_resumed`), once per change.
//! - Secrets (an MQTT password, a webhook key) never reach a log line or
//!   `Debug`.

mod body;
pub mod downlink;
mod mqtt;
mod webhook;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nido_store::{DeliveryTarget, OutboxEntry, SqlStore, SqlStoreError};

pub use body::{body, iso8601, topic};
pub use mqtt::{check_target, check_url};
pub use webhook::{check_webhook_url, notification, signature};

/// What can go wrong delivering.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The network's store.
    #[error("store: {0}")]
    Store(#[from] SqlStoreError),
    /// A store handle could not be opened.
    #[error("store: {0}")]
    Open(String),
    /// A delivery URL nido cannot use.
    #[error("delivery URL {url:?}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

/// How a [`Worker`] paces itself.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How long an idle worker waits before it looks at the outbox again.
    pub poll: Duration,
    /// The most entries of one owner sent in one batch.
    pub batch: usize,
    /// How long a batch may wait for its PUBACKs.
    pub ack_timeout: Duration,
    /// The first back-off of a failing destination.
    pub backoff_min: Duration,
    /// The longest back-off.
    pub backoff_max: Duration,
    /// The MQTT client id (one per network process).
    pub client_id: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(50),
            batch: 256,
            ack_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            client_id: "nido-network".into(),
        }
    }
}

/// Where one owner's entries go.
#[derive(Debug, Clone)]
enum Destination {
    Target(DeliveryTarget),
    File(PathBuf),
}

impl Destination {
    /// The key its connection and back-off are kept under.
    fn key(&self) -> String {
        match self {
            Self::Target(DeliveryTarget::Mqtt { url, username, .. }) => format!(
                "mqtt {url} as {}",
                username.as_deref().unwrap_or("(anonymous)")
            ),
            Self::Target(DeliveryTarget::Webhook { url, .. }) => format!("webhook {url}"),
            Self::File(p) => format!("file {}", p.display()),
        }
    }
}

/// A destination that failed: when it may be tried again.
struct Backoff {
    until: Instant,
    next: Duration,
}

/// What one [`Worker::round`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Entries confirmed by their destination.
    pub delivered: usize,
    /// Batches that failed (their destination is backed off).
    pub failed: usize,
}

/// Drains the outbox of one network store to each owner's destination.
pub struct Worker {
    store: SqlStore,
    default_file: PathBuf,
    options: WorkerOptions,
    links: HashMap<String, mqtt::Link>,
    hook: webhook::Hook,
    backoff: HashMap<String, Backoff>,
    last_prune: Option<Instant>,
}

impl core::fmt::Debug for Worker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("default_file", &self.default_file)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker on its own store handle; `default_file` takes the data when
    /// no delivery is set at all.
    pub fn new(store: SqlStore, default_file: PathBuf, options: WorkerOptions) -> Self {
        Self {
            store,
            default_file,
            hook: webhook::Hook::new(options.ack_timeout),
            options,
            links: HashMap::new(),
            backoff: HashMap::new(),
            last_prune: None,
        }
    }

    /// Runs rounds until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.round() {
                Ok(r) if r.delivered > 0 => {}
                Ok(_) => std::thread::sleep(self.options.poll),
                Err(e) => {
                    tracing::warn!("delivery: {e}");
                    std::thread::sleep(self.options.backoff_min);
                }
            }
        }
    }

    /// One pass over the owners with pending entries: one batch each.
    pub fn round(&mut self) -> Result<Round, DeliverError> {
        let now = Instant::now();
        if self
            .last_prune
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(600))
        {
            self.last_prune = Some(now);
            self.store.prune_delivered()?;
        }
        // Idle connections close rather than miss their keep-alive.
        self.links.retain(|_, l| !l.idle_for(mqtt::IDLE));
        let configs = self.store.deliveries()?;
        let default = configs.iter().find(|c| c.owner.is_none()).cloned();
        let mut round = Round::default();
        for owner in self.store.pending_owners()? {
            let destination = owner
                .as_deref()
                .and_then(|o| configs.iter().find(|c| c.owner.as_deref() == Some(o)))
                .cloned()
                .or_else(|| default.clone())
                .map_or_else(
                    || Destination::File(self.default_file.clone()),
                    |c| Destination::Target(c.target),
                );
            let key = destination.key();
            if self.backoff.get(&key).is_some_and(|b| b.until > now) {
                continue;
            }
            let entries = self
                .store
                .pending_uplinks(owner.as_deref(), self.options.batch)?;
            if entries.is_empty() {
                continue;
            }
            let (confirmed, failure) = self.send(&key, &destination, &entries);
            self.store.mark_delivered(&confirmed)?;
            round.delivered += confirmed.len();
            match failure {
                None => {
                    if self.backoff.remove(&key).is_some() {
                        tracing::info!(destination = %key, "delivery resumed");
                        self.audit("delivery_resumed", owner.as_deref(), &key, None)?;
                    }
                }
                Some(why) => {
                    round.failed += 1;
                    self.links.remove(&key);
                    if let Some(first) = entries.iter().find(|e| !confirmed.contains(&e.id)) {
                        self.store.note_delivery_failure(first.id, &why)?;
                    }
                    let next = self
                        .backoff
                        .get(&key)
                        .map_or(self.options.backoff_min, |b| {
                            (b.next * 2).min(self.options.backoff_max)
                        });
                    if !self.backoff.contains_key(&key) {
                        self.audit("delivery_failed", owner.as_deref(), &key, Some(&why))?;
                    }
                    tracing::warn!(
                        destination = %key,
                        owner = owner.as_deref().unwrap_or("(unclaimed devices)"),
                        retry_in_ms = next.as_millis() as u64,
                        "delivery failed: {why}"
                    );
                    self.backoff.insert(
                        key,
                        Backoff {
                            until: now + next,
                            next,
                        },
                    );
                }
            }
        }
        Ok(round)
    }

    /// An audit entry for a destination that starts failing or recovers
    /// (once per change, not per retry).
    fn audit(
        &self,
        kind: &str,
        owner: Option<&str>,
        destination: &str,
        why: Option<&str>,
    ) -> Result<(), SqlStoreError> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let owner = owner.map_or_else(|| "unclaimed devices".to_owned(), |o| format!("owner {o}"));
        let detail = match why {
            Some(why) => format!("{owner}: {destination}: {why} (retrying with back-off)"),
            None => format!("{owner}: {destination}"),
        };
        self.store
            .append_audit(nido_store::AuditEntry::new(at, kind, &detail))
    }

    /// Sends `entries` in order; returns the ids confirmed and, if the
    /// batch stopped early, why.
    fn send(
        &mut self,
        key: &str,
        destination: &Destination,
        entries: &[OutboxEntry],
    ) -> (Vec<i64>, Option<String>) {
        match destination {
            Destination::File(path) => match append_lines(path, entries) {
                Ok(()) => (entries.iter().map(|e| e.id).collect(), None),
                Err(e) => (Vec::new(), Some(format!("{}: {e}", path.display()))),
            },
            Destination::Target(DeliveryTarget::Webhook { url, secret }) => {
                self.hook
                    .post(url, secret.as_deref().map(|s| s.as_str()), entries)
            }
            Destination::Target(target @ DeliveryTarget::Mqtt { topic_prefix, .. }) => {
                if !self.links.contains_key(key) {
                    match mqtt::Link::connect(target, &self.options) {
                        Ok(link) => {
                            self.links.insert(key.to_owned(), link);
                        }
                        Err(e) => return (Vec::new(), Some(e.to_string())),
                    }
                }
                let Some(link) = self.links.get_mut(key) else {
                    return (Vec::new(), Some("no connection".into()));
                };
                link.publish(topic_prefix, entries, self.options.ack_timeout)
            }
        }
    }
}

/// Appends one JSON body per entry to `path` and syncs it to disk.
fn append_lines(path: &std::path::Path, entries: &[OutboxEntry]) -> std::io::Result<()> {
    let mut text = Vec::new();
    for e in entries {
        text.extend_from_slice(body(e).to_string().as_bytes());
        text.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&text)?;
    f.sync_data()
}
