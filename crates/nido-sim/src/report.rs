//! The one fleet report: what `nido demo`, `nido sim` and the in-process
//! harness ([`crate::Fleet::report`]) say about a run: what happened to
//! every device, how fast, at what cost in NAS messages and memory.
//!
//! One [`Report`] prints either as one JSON object (`--json`) whose field
//! names are stable and documented here field by field, or as a summary
//! table with the same content. Every figure is measured by
//! [`crate::metrics::Metrics`] and defined there once. Counts add up:
//! `active + refused.total + incomplete == devices`, and `failures` adds
//! up to `devices - active`.
//!
//! Times: `latency_ms` is on the run's `clock`: `simulated` in `nido demo`
//! and the harness (the link model's delays: 10 ms each way on a perfect
//! link, plus retransmission timers on a lossy one), `wall` in `nido sim`
//! (real devices' view of a real server); `wall_s` and
//! `onboardings_per_s` are real time on this machine. A driver leaves a
//! figure it does not measure at zero (the harness measures no memory or
//! CPU; `nido sim` has no owner's view).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The report of one fleet run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Devices in the fleet: the good ones and the ones that must be refused.
    pub devices: u64,
    /// Devices that ended active: provisioned, validated by 5G-AKA,
    /// registered with their own subscription.
    pub active: u64,
    /// How many devices got how far: `attached`, `authenticated`
    /// (EAP-TLS, phase A), `provisioned` (a package installed), `active`
    /// (phase C; a device that became active once and lost it later still
    /// counts), `refused` (a reject with a cause other than #22, at least
    /// once). Each device counts once per step.
    pub funnel: crate::metrics::Funnel,
    /// Devices the network refused (a REGISTRATION REJECT), by reason.
    pub refused: Refused,
    /// Devices neither active nor refused when the run ended (0 in a good
    /// run).
    pub incomplete: u64,
    /// Devices not active at the end, by why
    /// ([`crate::metrics::failure_reason`]): the last failure each
    /// reported (`"reject #22"`, `"security mode: MAC failure"`,
    /// `"EAP-TLS: ..."`), else `"no answer"` when the network never sent it
    /// a PDU, else `"incomplete (<state>)"`. Adds up to `devices - active`.
    pub failures: BTreeMap<String, u64>,
    /// REGISTRATION REJECTs with #22 (congestion) the devices received: the
    /// network's admission control sent them away for T3346.
    pub congestion_rejects: u64,
    /// Downlink data the devices received from their owners' applications
    /// (DL NAS TRANSPORT or the downlink of a SERVICE ACCEPT).
    pub downlinks_received: u64,
    /// What `latency_ms` is measured on: `simulated` (the harness's clock)
    /// or `wall` (real time, `nido sim` against a running server).
    pub clock: String,
    /// The onboarding network(s) the devices were configured with, one per
    /// network address (`nido sim`; empty in-process).
    pub networks: Vec<OnboardingNetwork>,
    /// Good devices (those expected to end active).
    pub good_devices: u64,
    /// Active devices whose subscription came from an owner's claim, and
    /// that hold the owner's third-party credentials (checked on the
    /// device side).
    pub claimed_with_owner_credentials: u64,
    /// Subscriptions in the network's store at the end.
    pub subscriptions: u64,
    /// Full onboardings (power-on to active) per second of wall time.
    pub onboardings_per_s: f64,
    /// Wall time of the onboarding phase (power-on of the first device to
    /// the last device settled), seconds.
    pub wall_s: f64,
    /// Wall time spent making the world: manufacturer, identities (one
    /// IDevID certificate per device), network, store, owner.
    pub setup_wall_s: f64,
    /// Simulated time of the onboarding phase, seconds.
    pub simulated_s: f64,
    /// How many devices onboarded at once at most (devices are powered on
    /// as earlier ones settle): the sum of each shard's peak.
    pub concurrency: u64,
    /// Worker threads: the fleet is split into this many shards, each with
    /// its own devices, link and network instance (one AMF of a set) over the
    /// one shared store.
    pub threads: u64,
    /// CPU time (user + system, all threads) of the onboarding phase,
    /// seconds.
    pub cpu_s: f64,
    /// `cpu_s` per active device, milliseconds: what one full onboarding
    /// costs both sides together (devices and network).
    pub cpu_ms_per_onboarding: f64,
    /// The network's store: `memory`, `sqlite` or `postgres` (`remote`:
    /// a running server's, `nido sim`).
    pub store: String,
    /// Latency percentiles per phase of the design doc, milliseconds of
    /// simulated time.
    pub latency_ms: Latency,
    /// NAS cost of onboarding ([`crate::metrics::Metrics::onboarding`]):
    /// every PDU of a device until its first burst (A to C, and the data
    /// session set-up of D), divided by the active devices.
    pub nas_per_onboarding: NasCost,
    /// One burst from idle against the re-registration baseline.
    pub burst: Burst,
    /// Peak resident memory of the process (`VmHWM` of
    /// `/proc/self/status`), octets; 0 where unavailable.
    pub peak_rss_bytes: u64,
    /// Memory per device and per network context.
    pub memory: Memory,
    /// What the simulated link did.
    pub link: LinkReport,
}

/// An onboarding network the devices were configured with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OnboardingNetwork {
    /// Its serving network name (TS 24.501 §9.12.1).
    pub snn: String,
    /// Where it came from: `announced` (its system information) or
    /// `--snpn`.
    pub source: String,
}

/// Refused devices.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Refused {
    /// How many.
    pub total: u64,
    /// Reason (the kind of bad device, e.g. `revoked`) to count.
    pub by_reason: BTreeMap<String, u64>,
    /// Every refused device.
    pub devices: Vec<RefusedDevice>,
}

/// One refused device.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefusedDevice {
    /// Its IDevID serial.
    pub device: String,
    /// Why it was made to be refused (`revoked`, `expired`,
    /// `foreign_manufacturer`, `clone`, `not_yet_valid`,
    /// `server_auth_only`, `blocked`), or `unexpected` for a good device.
    pub reason: String,
    /// The 5GMM cause the network sent in its REGISTRATION REJECT.
    pub cause: Option<u8>,
    /// The cause this kind of device must get.
    pub expected_cause: Option<u8>,
    /// The network's own words for the refusal (the audit reason) where
    /// the driver heard them (in-process); else why the device itself says
    /// it stopped (`nido_sim::Metrics::failure`).
    pub network_reason: String,
    /// The device's state at the end (`Failed` or `BackingOff`).
    pub state: String,
}

/// Percentiles of one latency distribution, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub samples: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Latency per phase of the design doc (`../shared/design/onboarding.md`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Phase A, onboarding registration: power-on to registered for
    /// onboarding (EAP-TLS, security mode, accept).
    #[serde(rename = "A")]
    pub a: Percentiles,
    /// Phase B, provisioning: registered for onboarding to the start of
    /// the registration with the new subscription (PDU session, credential
    /// package, confirmation, deregistration).
    #[serde(rename = "B")]
    pub b: Percentiles,
    /// Phase C, validation: REGISTRATION REQUEST with the SUCI to
    /// registered (5G-AKA, security mode, accept).
    #[serde(rename = "C")]
    pub c: Percentiles,
    /// Phase D, one burst from idle: CONTROL PLANE SERVICE REQUEST sent to
    /// its SERVICE ACCEPT received (the network took the data).
    #[serde(rename = "D")]
    pub d: Percentiles,
    /// Power-on to active (phases A to C).
    pub overall: Percentiles,
}

/// NAS messages and octets (of the PDUs entering the link, both ways).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NasCost {
    /// Messages, both ways.
    pub messages: f64,
    /// Octets, both ways.
    pub bytes: f64,
    /// Messages from the devices.
    pub uplink_messages: f64,
    /// Octets from the devices.
    pub uplink_bytes: f64,
    /// Messages to the devices.
    pub downlink_messages: f64,
    /// Octets to the devices.
    pub downlink_bytes: f64,
}

/// One burst of `payload_bytes` from idle against the baseline.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Burst {
    /// The application payload of a burst, octets.
    pub payload_bytes: u64,
    /// Bursts sent (one per active device).
    pub sent: u64,
    /// Bursts the owner's application received.
    pub delivered: u64,
    /// Uplink NAS messages per burst (CONTROL PLANE SERVICE REQUEST).
    pub uplink_messages: f64,
    /// Uplink NAS octets per burst.
    pub bytes_per_burst: f64,
    /// Downlink NAS messages per burst (SERVICE ACCEPT).
    pub downlink_messages: f64,
    /// Uplink messages of the baseline, measured in this run: one active
    /// device registers again (SUCI, 5G-AKA, security mode, PDU session)
    /// and sends the same payload connected.
    pub baseline_messages: u64,
    /// Uplink octets of that baseline.
    pub baseline_bytes: u64,
    /// Downlink messages of that baseline.
    pub baseline_downlink_messages: u64,
    /// Downlink octets of that baseline.
    pub baseline_downlink_bytes: u64,
}

/// Memory, measured from the resident set (`VmRSS`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    /// Resident set growth while the simulated devices were made, divided
    /// by the devices: one simulated device in factory state (certificate
    /// chain, IDevID key, secure element), octets.
    pub per_device_bytes: f64,
    /// Resident set growth over the onboarding phase divided by the
    /// devices: what onboarding adds on both sides (the device's
    /// subscription and security context, the network's registered context
    /// and stored subscription), octets.
    pub per_onboarded_device_bytes: f64,
    /// Network contexts (registered UEs) at the end.
    pub network_contexts: u64,
}

/// What the simulated link did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LinkReport {
    /// Datagrams sent into the link.
    pub sent: u64,
    /// Datagrams it dropped.
    pub dropped: u64,
    /// Extra copies it made.
    pub duplicated: u64,
    /// Copies it held back (reordered).
    pub reordered: u64,
    /// Copies with a bit flipped.
    pub corrupted: u64,
    /// Copies delivered.
    pub delivered: u64,
}

impl From<crate::LinkStats> for LinkReport {
    fn from(l: crate::LinkStats) -> Self {
        Self {
            sent: l.sent,
            dropped: l.dropped,
            duplicated: l.duplicated,
            reordered: l.reordered,
            corrupted: l.corrupted,
            delivered: l.delivered,
        }
    }
}

/// Failures by reason as one line, the most frequent first:
/// `security mode: MAC failure 3, reject #22 1`; `none` when empty.
pub fn failures_line(failures: &BTreeMap<String, u64>) -> String {
    if failures.is_empty() {
        return "none".to_owned();
    }
    let mut by_count: Vec<(&String, &u64)> = failures.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    by_count
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `p`-th percentile (0..=100) of `samples` (nearest rank), sorting
/// them; 0 for none.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

impl Percentiles {
    /// p50, p95, p99 and the maximum of `samples` (sorted in place).
    pub fn of(samples: &mut [f64]) -> Self {
        Self {
            samples: samples.len() as u64,
            p50: percentile(samples, 50.0),
            p95: percentile(samples, 95.0),
            p99: percentile(samples, 99.0),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }
}

impl Report {
    /// Whether the counts add up.
    pub fn consistent(&self) -> bool {
        self.active + self.refused.total + self.incomplete == self.devices
            && self.refused.by_reason.values().sum::<u64>() == self.refused.total
            && self.refused.devices.len() as u64 == self.refused.total
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let _ = writeln!(t, "devices                 {:>12}", self.devices);
        let _ = writeln!(
            t,
            "  active                {:>12}   (of {} good; {} claimed by the owner, with its credentials)",
            self.active, self.good_devices, self.claimed_with_owner_credentials
        );
        let _ = writeln!(t, "  refused               {:>12}", self.refused.total);
        for (reason, n) in &self.refused.by_reason {
            let _ = writeln!(t, "    {reason:<20}{n:>12}");
        }
        let _ = writeln!(t, "  incomplete            {:>12}", self.incomplete);
        let _ = writeln!(t, "subscriptions           {:>12}", self.subscriptions);
        let _ = writeln!(t, "store                   {:>12}", self.store);
        let _ = writeln!(
            t,
            "onboardings per second  {:>12.1}   ({:.2} s wall on {} threads, {:.2} s simulated, up to {} at once; setup {:.2} s)",
            self.onboardings_per_s,
            self.wall_s,
            self.threads,
            self.simulated_s,
            self.concurrency,
            self.setup_wall_s
        );
        let _ = writeln!(
            t,
            "CPU per onboarding      {:>9.2} ms   ({:.2} s CPU, both sides)",
            self.cpu_ms_per_onboarding, self.cpu_s
        );
        let _ = writeln!(
            t,
            "latency (simulated ms)         p50        p95        p99        max    samples"
        );
        let l = &self.latency_ms;
        for (name, p) in [
            ("A onboarding", l.a),
            ("B provisioning", l.b),
            ("C validation", l.c),
            ("D burst", l.d),
            ("overall (A-C)", l.overall),
        ] {
            let _ = writeln!(
                t,
                "  {name:<20}{:>11.1}{:>11.1}{:>11.1}{:>11.1}{:>11}",
                p.p50, p.p95, p.p99, p.max, p.samples
            );
        }
        let n = &self.nas_per_onboarding;
        let _ = writeln!(
            t,
            "NAS per onboarding      {:>8.1} messages {:>9.0} octets   (uplink {:.1} / {:.0}, downlink {:.1} / {:.0})",
            n.messages,
            n.bytes,
            n.uplink_messages,
            n.uplink_bytes,
            n.downlink_messages,
            n.downlink_bytes
        );
        let b = &self.burst;
        let _ = writeln!(
            t,
            "burst of {} octets       {:>8.1} uplink messages {:>6.0} octets   ({} sent, {} delivered)",
            b.payload_bytes, b.uplink_messages, b.bytes_per_burst, b.sent, b.delivered
        );
        let _ = writeln!(
            t,
            "  re-registration       {:>8} uplink messages {:>6} octets   (downlink {} / {})",
            b.baseline_messages,
            b.baseline_bytes,
            b.baseline_downlink_messages,
            b.baseline_downlink_bytes
        );
        let m = &self.memory;
        let _ = writeln!(
            t,
            "memory                  peak {:.1} MiB; {:.0} octets per simulated device, {:.0} more per onboarded device; {} network contexts",
            mib(self.peak_rss_bytes as f64),
            m.per_device_bytes,
            m.per_onboarded_device_bytes,
            m.network_contexts
        );
        let k = &self.link;
        let _ = writeln!(
            t,
            "link                    {} sent, {} dropped, {} duplicated, {} reordered, {} corrupted, {} delivered",
            k.sent, k.dropped, k.duplicated, k.reordered, k.corrupted, k.delivered
        );
        for r in &self.refused.devices {
            let cause = r.cause.map_or("none".to_owned(), |c| format!("#{c}"));
            let expected = r.expected_cause.map_or("-".to_owned(), |c| format!("#{c}"));
            let _ = writeln!(
                t,
                "refused {} ({}): 5GMM cause {cause} (expected {expected}), {}: {}",
                r.device, r.reason, r.state, r.network_reason
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_line_puts_the_most_frequent_first() {
        assert_eq!(failures_line(&BTreeMap::new()), "none");
        let failures = BTreeMap::from([
            ("reject #22".to_owned(), 2),
            ("security mode: MAC failure".to_owned(), 5),
            ("no answer".to_owned(), 2),
        ]);
        assert_eq!(
            failures_line(&failures),
            "security mode: MAC failure 5, no answer 2, reject #22 2"
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 95.0), 95.0);
        assert_eq!(percentile(&mut v, 99.0), 99.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
        let mut one = [7.0];
        let p = Percentiles::of(&mut one);
        assert_eq!((p.p50, p.p99, p.max, p.samples), (7.0, 7.0, 7.0, 1));
    }
}
