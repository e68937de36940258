//! The serving network's Prometheus metrics: the one definition of what
//! `nido network serve` counts while it runs, served at `/metrics` in the
//! OpenMetrics text format. Every name starts with `nido_`.
//!
//! The driver feeds it: [`Metrics::observe`] with every
//! [`NetworkEvent`] of every shard, [`Metrics::commit`] after each group
//! commit, [`Metrics::admission`] with each shard's procedures in progress;
//! datagram counts and the delivery queue are read when scraped.
//!
//! Invariant: no label carries an identity (device, SUPI, connection,
//! address): a label's values are a small fixed set (phases, causes,
//! directions, shards), so a scrape's size does not grow with the fleet and
//! shows nothing of any one device.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nido_net::NetworkEvent;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A phase of onboarding.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Phase {
    /// `authenticated`, `registered_for_onboarding`, `package_delivered`,
    /// `provisioned`, `active`; for durations: `provisioning` (EAP-TLS
    /// success to package confirmed), `activation` (package confirmed to
    /// registered with 5G-AKA), `onboarding` (the two).
    pub phase: String,
}

/// A network event's kind ([`NetworkEvent::kind`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// A 5GMM cause.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    /// Its number.
    pub cause: String,
    /// Its name.
    pub name: String,
}

/// A direction on the access link.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    /// `in` or `out`.
    pub direction: String,
}

/// An AMF shard.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabel {
    /// Its number.
    pub shard: String,
}

/// An API response class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The HTTP status code.
    pub status: String,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Starts of phases still running, for their durations; bounded.
#[derive(Default)]
struct Starts {
    /// Device → when EAP-TLS succeeded.
    authenticated: HashMap<String, Instant>,
    /// SUPI → (when its package was confirmed, when its device authenticated).
    provisioned: HashMap<String, (Instant, Option<Instant>)>,
}

/// The most phase starts remembered (a fleet that never finishes cannot
/// grow the map without bound; past it, the oldest half is forgotten).
const STARTS_MAX: usize = 200_000;

fn bound<V>(map: &mut HashMap<String, V>, at: impl Fn(&V) -> Instant) {
    if map.len() >= STARTS_MAX {
        let mut times: Vec<Instant> = map.values().map(&at).collect();
        times.sort();
        let cut = times[times.len() / 2];
        map.retain(|_, v| at(v) > cut);
    }
}

/// The metrics of one serving network.
pub struct Metrics {
    registry: Registry,
    events: Family<KindLabel, Counter>,
    phases: Family<Phase, Counter>,
    durations: Family<Phase, Histogram, fn() -> Histogram>,
    refusals: Family<CauseLabel, Counter>,
    congested: Counter,
    clones: Counter,
    uplink: Counter,
    downlink: Counter,
    abandoned: Counter,
    admission: Family<ShardLabel, Gauge>,
    admission_limit: Gauge,
    commit_seconds: Histogram,
    commit_writes: Histogram,
    datagrams: Family<Direction, Counter>,
    delivery_pending: Gauge,
    api_responses: Family<StatusLabel, Counter>,
    /// The datagram counts last published (the driver's are cumulative).
    traffic_seen: (AtomicU64, AtomicU64),
    starts: Mutex<Starts>,
}

impl core::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nido");
        let events = Family::<KindLabel, Counter>::default();
        registry.register(
            "network_events",
            "Events of the network, by kind (the audit trail's kinds)",
            events.clone(),
        );
        let phases = Family::<Phase, Counter>::default();
        registry.register(
            "onboarding_phase",
            "Devices that reached an onboarding phase (a device renewing its package counts again)",
            phases.clone(),
        );
        let durations =
            Family::<Phase, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "procedure_duration_seconds",
            "Time a device spent in an onboarding phase",
            durations.clone(),
        );
        let refusals = Family::<CauseLabel, Counter>::default();
        registry.register(
            "refusals",
            "Registrations refused, by 5GMM cause (admission's #22 included)",
            refusals.clone(),
        );
        let congested = Counter::default();
        registry.register(
            "admission_congestion",
            "Registrations refused with #22 by admission control",
            congested.clone(),
        );
        let clones = Counter::default();
        registry.register(
            "clone_suspected",
            "A device identity onboarding on a second connection while active on a first",
            clones.clone(),
        );
        let uplink = Counter::default();
        registry.register(
            "uplink_bursts",
            "Uplink data bursts accepted (control-plane CIoT)",
            uplink.clone(),
        );
        let downlink = Counter::default();
        registry.register(
            "downlinks_sent",
            "Downlink messages sent to devices",
            downlink.clone(),
        );
        let abandoned = Counter::default();
        registry.register(
            "procedures_abandoned",
            "Procedures abandoned after their retransmissions ran out",
            abandoned.clone(),
        );
        let admission = Family::<ShardLabel, Gauge>::default();
        registry.register(
            "admission_procedures",
            "Registration procedures in progress, per AMF shard",
            admission.clone(),
        );
        let admission_limit = Gauge::default();
        registry.register(
            "admission_limit",
            "Registration procedures admitted at once (0: unlimited)",
            admission_limit.clone(),
        );
        let commit_seconds = duration_histogram();
        registry.register(
            "store_commit_duration_seconds",
            "Duration of a group commit",
            commit_seconds.clone(),
        );
        let commit_writes = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "store_commit_batch_writes",
            "Writes in one group commit",
            commit_writes.clone(),
        );
        let datagrams = Family::<Direction, Counter>::default();
        registry.register(
            "datagrams",
            "Datagrams on the access link",
            datagrams.clone(),
        );
        let delivery_pending = Gauge::default();
        registry.register(
            "delivery_queue_depth",
            "Uplink bursts waiting for delivery to owners' applications",
            delivery_pending.clone(),
        );
        let api_responses = Family::<StatusLabel, Counter>::default();
        registry.register(
            "api_responses",
            "HTTP API and console responses, by status",
            api_responses.clone(),
        );
        Self {
            registry,
            events,
            phases,
            durations,
            refusals,
            congested,
            clones,
            uplink,
            downlink,
            abandoned,
            admission,
            admission_limit,
            commit_seconds,
            commit_writes,
            datagrams,
            delivery_pending,
            api_responses,
            traffic_seen: (AtomicU64::new(0), AtomicU64::new(0)),
            starts: Mutex::new(Starts::default()),
        }
    }

    fn phase(&self, phase: &str) {
        self.phases
            .get_or_create(&Phase {
                phase: phase.into(),
            })
            .inc();
    }

    fn took(&self, phase: &str, d: Duration) {
        self.durations
            .get_or_create(&Phase {
                phase: phase.into(),
            })
            .observe(d.as_secs_f64());
    }

    /// Counts an event of the network, observed at `now`.
    pub fn observe(&self, event: &NetworkEvent, now: Instant) {
        use NetworkEvent as E;
        self.events
            .get_or_create(&KindLabel {
                kind: event.kind().into(),
            })
            .inc();
        let mut starts = match self.starts.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match event {
            E::DeviceAuthenticated { device, .. } => {
                self.phase("authenticated");
                bound(&mut starts.authenticated, |t| *t);
                starts.authenticated.insert(device.to_string(), now);
            }
            E::RegisteredForOnboarding { .. } => self.phase("registered_for_onboarding"),
            E::PackageDelivered { .. } => self.phase("package_delivered"),
            E::Provisioned { device, supi } => {
                self.phase("provisioned");
                let began = starts.authenticated.remove(&device.to_string());
                if let Some(t) = began {
                    self.took("provisioning", now.saturating_duration_since(t));
                }
                bound(&mut starts.provisioned, |v| v.0);
                starts.provisioned.insert(supi.to_string(), (now, began));
            }
            E::Authenticated {
                supi,
                activated: true,
                ..
            } => {
                self.phase("active");
                if let Some((t, began)) = starts.provisioned.remove(&supi.to_string()) {
                    self.took("activation", now.saturating_duration_since(t));
                    if let Some(b) = began {
                        self.took("onboarding", now.saturating_duration_since(b));
                    }
                }
            }
            E::Refused { cause, device, .. } => {
                self.refusals
                    .get_or_create(&CauseLabel {
                        cause: cause.octet().to_string(),
                        name: cause.name().unwrap_or("unknown").into(),
                    })
                    .inc();
                if let Some(d) = device {
                    starts.authenticated.remove(&d.to_string());
                }
            }
            E::Congested { .. } => {
                self.congested.inc();
                self.refusals
                    .get_or_create(&CauseLabel {
                        cause: "22".into(),
                        name: nido_sec::Cause::CONGESTION
                            .name()
                            .unwrap_or("congestion")
                            .into(),
                    })
                    .inc();
            }
            E::CloneSuspected { .. } => {
                self.clones.inc();
            }
            E::DataDelivered { .. } => {
                self.uplink.inc();
            }
            E::DownlinkSent { .. } => {
                self.downlink.inc();
            }
            E::ProcedureAbandoned { .. } => {
                self.abandoned.inc();
            }
            _ => {}
        }
    }

    /// Records a group commit.
    pub fn commit(&self, took: Duration, writes: usize) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_writes.observe(writes as f64);
    }

    /// Sets shard `shard`'s procedures in progress.
    pub fn admission(&self, shard: usize, procedures: usize) {
        self.admission
            .get_or_create(&ShardLabel {
                shard: shard.to_string(),
            })
            .set(i64::try_from(procedures).unwrap_or(i64::MAX));
    }

    /// Sets the admission limit (none: unlimited).
    pub fn admission_limit(&self, limit: Option<usize>) {
        self.admission_limit
            .set(limit.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    /// Brings the datagram counters to the driver's cumulative counts.
    pub fn traffic(&self, received: u64, sent: u64) {
        let inc = |seen: &AtomicU64, now: u64, dir: &str| {
            let before = seen.swap(now, Ordering::Relaxed);
            self.datagrams
                .get_or_create(&Direction {
                    direction: dir.into(),
                })
                .inc_by(now.saturating_sub(before));
        };
        inc(&self.traffic_seen.0, received, "in");
        inc(&self.traffic_seen.1, sent, "out");
    }

    /// Sets the delivery queue's depth.
    pub fn delivery_pending(&self, pending: u64) {
        self.delivery_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Counts an API response.
    pub fn api_response(&self, status: u16) {
        self.api_responses
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nido_net::{ConnectionId, DeviceId};
    use nido_sec::Supi;

    #[test]
    fn events_feed_the_funnel_and_phase_durations() {
        let m = Metrics::new();
        let t = Instant::now();
        let device = DeviceId::new("ACME", "S1").unwrap();
        let supi: Supi = "imsi-001010000000001".parse().unwrap();
        let conn = ConnectionId(1);
        m.observe(
            &NetworkEvent::DeviceAuthenticated {
                conn,
                device: device.clone(),
            },
            t,
        );
        m.observe(
            &NetworkEvent::Provisioned {
                device: device.clone(),
                supi: supi.clone(),
            },
            t + Duration::from_millis(300),
        );
        m.observe(
            &NetworkEvent::Authenticated {
                conn,
                supi,
                activated: true,
            },
            t + Duration::from_millis(500),
        );
        m.commit(Duration::from_millis(3), 12);
        m.traffic(10, 8);
        m.traffic(15, 9);
        let text = m.render();
        assert!(
            text.contains("nido_onboarding_phase_total{phase=\"active\"} 1"),
            "{text}"
        );
        assert!(text.contains("nido_procedure_duration_seconds_count{phase=\"onboarding\"} 1"));
        assert!(text.contains("nido_procedure_duration_seconds_sum{phase=\"provisioning\"} 0.3"));
        assert!(text.contains("nido_datagrams_total{direction=\"in\"} 15"));
        assert!(text.contains("nido_network_events_total{kind=\"provisioned\"} 1"));
        assert!(text.contains("nido_store_commit_batch_writes_count 1"));
        assert!(
            !text.contains("S1") && !text.contains("imsi"),
            "no identity in labels"
        );
    }
}
