//! The demo's report from what the fleet and [`Stats`] measured, and the
//! verdict: every good device active with the right owner binding, every
//! bad device refused with its cause.

use std::time::Duration;

use anyhow::{Result, bail};
use nido_sim::{Fleet, LinkStats};
use nido_ue::DeviceState;

use super::PAYLOAD;
use super::population::{Kind, OWNER};
use super::stats::{self, Stats};
use crate::cmd::report::{self, Percentiles, Report};

/// What one shard's devices ended as (summed over shards by
/// [`Tally::absorb`]).
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) good: u64,
    pub(super) active: u64,
    pub(super) claimed_ok: u64,
    pub(super) incomplete: u64,
    pub(super) refused: Vec<report::RefusedDevice>,
    pub(super) network_contexts: u64,
    pub(super) link: LinkStats,
}

impl Tally {
    /// Adds another shard's tally.
    pub(super) fn absorb(&mut self, other: Tally) {
        self.good += other.good;
        self.active += other.active;
        self.claimed_ok += other.claimed_ok;
        self.incomplete += other.incomplete;
        self.refused.extend(other.refused);
        self.network_contexts += other.network_contexts;
        let (l, o) = (&mut self.link, other.link);
        l.sent += o.sent;
        l.delivered += o.delivered;
        l.dropped += o.dropped;
        l.duplicated += o.duplicated;
        l.reordered += o.reordered;
        l.corrupted += o.corrupted;
    }
}

/// Where each device of one shard ended, against what it must be.
pub(super) fn tally(
    fleet: &Fleet,
    stats: &Stats,
    kinds: &[Kind],
    credentials: &[nido_prov::ThirdPartyCredential],
) -> Result<Tally> {
    let mut t = Tally {
        network_contexts: fleet.network().contexts() as u64,
        link: fleet.link_stats(),
        ..Tally::default()
    };
    for (i, kind) in kinds.iter().enumerate() {
        let device = fleet.device(i);
        let state = device.state();
        if matches!(kind, Kind::Good { .. }) {
            t.good += 1;
        }
        if state == DeviceState::Active {
            t.active += 1;
            if let (Kind::Good { claimed: true }, Some(public)) = (kind, device.subscription())
                && public.owner.as_deref() == Some(OWNER)
                && public.third_party == credentials
            {
                t.claimed_ok += 1;
            }
            continue;
        }
        let refusal = stats.refusals.get(&i);
        let refused =
            matches!(state, DeviceState::Failed | DeviceState::BackingOff) && refusal.is_some();
        if !refused {
            t.incomplete += 1;
            continue;
        }
        let (reason, expected) = match kind {
            Kind::Bad(b) => (b.reason, Some(b.cause)),
            Kind::Good { .. } => ("unexpected", None),
        };
        t.refused.push(report::RefusedDevice {
            device: device.serial().to_owned(),
            reason: reason.to_owned(),
            cause: refusal.map(|x| x.cause),
            expected_cause: expected,
            network_reason: refusal.map(|x| x.reason.clone()).unwrap_or_default(),
            state: format!("{state:?}"),
        });
    }
    Ok(t)
}

/// What the driver measured besides the shards' tallies.
pub(super) struct Measured {
    pub(super) kind: &'static str,
    pub(super) devices: u64,
    pub(super) subscriptions: u64,
    pub(super) threads: u64,
    pub(super) wall: Duration,
    pub(super) cpu: Duration,
    pub(super) setup_wall: Duration,
    pub(super) simulated: Duration,
    pub(super) concurrency: u64,
    /// Phase latencies of every shard, µs: A, B, C, D, overall.
    pub(super) phases: [Vec<u32>; 5],
    pub(super) onboarding: stats::Meter,
    pub(super) burst: stats::Meter,
    pub(super) baseline: stats::Meter,
    pub(super) bursts: u64,
    pub(super) delivered: u64,
    /// RSS at start, before the devices, after the devices, after onboarding.
    pub(super) rss: (u64, u64, u64, u64),
}

fn percentiles(samples: &[u32]) -> Percentiles {
    let mut ms: Vec<f64> = samples.iter().map(|&us| f64::from(us) / 1000.0).collect();
    Percentiles::of(&mut ms)
}

pub(super) fn build_report(t: Tally, m: Measured) -> Report {
    let mut r = Report {
        devices: m.devices,
        active: t.active,
        incomplete: t.incomplete,
        good_devices: t.good,
        claimed_with_owner_credentials: t.claimed_ok,
        subscriptions: m.subscriptions,
        store: m.kind.to_owned(),
        wall_s: m.wall.as_secs_f64(),
        setup_wall_s: m.setup_wall.as_secs_f64(),
        simulated_s: m.simulated.as_secs_f64(),
        concurrency: m.concurrency,
        threads: m.threads,
        cpu_s: m.cpu.as_secs_f64(),
        ..Report::default()
    };
    for d in t.refused {
        r.refused.total += 1;
        *r.refused.by_reason.entry(d.reason.clone()).or_default() += 1;
        r.refused.devices.push(d);
    }
    r.onboardings_per_s = r.active as f64 / m.wall.as_secs_f64().max(1e-9);
    r.cpu_ms_per_onboarding = m.cpu.as_secs_f64() * 1000.0 / r.active.max(1) as f64;
    r.latency_ms = report::Latency {
        a: percentiles(&m.phases[0]),
        b: percentiles(&m.phases[1]),
        c: percentiles(&m.phases[2]),
        d: percentiles(&m.phases[3]),
        overall: percentiles(&m.phases[4]),
    };
    let per = r.active.max(1) as f64;
    let o = m.onboarding;
    r.nas_per_onboarding = report::NasCost {
        messages: (o.ul_messages + o.dl_messages) as f64 / per,
        bytes: (o.ul_bytes + o.dl_bytes) as f64 / per,
        uplink_messages: o.ul_messages as f64 / per,
        uplink_bytes: o.ul_bytes as f64 / per,
        downlink_messages: o.dl_messages as f64 / per,
        downlink_bytes: o.dl_bytes as f64 / per,
    };
    let sent = m.bursts.max(1) as f64;
    let b = m.baseline;
    r.burst = report::Burst {
        payload_bytes: PAYLOAD.len() as u64,
        sent: m.bursts,
        delivered: m.delivered,
        uplink_messages: m.burst.ul_messages as f64 / sent,
        bytes_per_burst: m.burst.ul_bytes as f64 / sent,
        downlink_messages: m.burst.dl_messages as f64 / sent,
        baseline_messages: b.ul_messages,
        baseline_bytes: b.ul_bytes,
        baseline_downlink_messages: b.dl_messages,
        baseline_downlink_bytes: b.dl_bytes,
    };
    let (_, before, devices, onboarded) = m.rss;
    let n = r.devices.max(1) as f64;
    r.memory = report::Memory {
        per_device_bytes: devices.saturating_sub(before) as f64 / n,
        per_onboarded_device_bytes: onboarded.saturating_sub(devices) as f64 / n,
        network_contexts: t.network_contexts,
    };
    r.peak_rss_bytes = report::memory_now().1;
    let l = t.link;
    r.link = report::LinkReport {
        sent: l.sent,
        dropped: l.dropped,
        duplicated: l.duplicated,
        reordered: l.reordered,
        corrupted: l.corrupted,
        delivered: l.delivered,
    };
    r
}

/// Fails the command unless every good device is active with the right
/// owner binding and every bad device was refused with its cause.
pub(super) fn check(r: &Report) -> Result<()> {
    let mut wrong = Vec::new();
    if !r.consistent() {
        wrong.push("the counts do not add up".to_owned());
    }
    if r.active != r.good_devices {
        wrong.push(format!(
            "{} of {} good devices active",
            r.active, r.good_devices
        ));
    }
    for d in &r.refused.devices {
        if d.cause.is_none() || d.cause != d.expected_cause {
            wrong.push(format!(
                "{} ({}): cause {:?}, expected {:?}",
                d.device, d.reason, d.cause, d.expected_cause
            ));
        }
    }
    let claimed = r.good_devices / 4;
    if r.claimed_with_owner_credentials != claimed {
        wrong.push(format!(
            "{} of {claimed} claimed devices hold the owner's credentials",
            r.claimed_with_owner_credentials
        ));
    }
    if r.burst.delivered < r.burst.sent {
        wrong.push(format!(
            "{} of {} bursts delivered",
            r.burst.delivered, r.burst.sent
        ));
    }
    if !wrong.is_empty() {
        bail!("demo: {}", wrong.join("; "));
    }
    Ok(())
}
