//! The demo's report from what the fleets measured (the one
//! [`nido_sim::report`], each figure defined by [`nido_sim::metrics`]),
//! and the verdict: every good device active with the right owner binding, every
//! bad device refused with its cause.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use nido_sim::metrics::{Funnel, Meter, Phases};
use nido_sim::report::{self, Report};
use nido_sim::{Fleet, LinkStats};
use nido_ue::DeviceState;

use super::PAYLOAD;
use super::population::{Kind, OWNER};

/// What one shard's devices ended as (summed over shards by
/// [`Tally::absorb`]).
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) good: u64,
    pub(super) active: u64,
    pub(super) claimed_ok: u64,
    pub(super) incomplete: u64,
    pub(super) refused: Vec<report::RefusedDevice>,
    pub(super) failures: BTreeMap<String, u64>,
    pub(super) congestion_rejects: u64,
    pub(super) downlinks_received: u64,
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
        for (why, n) in other.failures {
            *self.failures.entry(why).or_default() += n;
        }
        self.congestion_rejects += other.congestion_rejects;
        self.downlinks_received += other.downlinks_received;
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
    kinds: &[Kind],
    credentials: &[nido_prov::ThirdPartyCredential],
) -> Result<Tally> {
    let metrics = fleet.metrics();
    let mut t = Tally {
        network_contexts: fleet.network().contexts() as u64,
        link: fleet.link_stats(),
        failures: metrics.failures(fleet.devices().iter().map(|d| d.state()).enumerate()),
        congestion_rejects: metrics.congestion_rejects,
        downlinks_received: metrics.downlinks_received,
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
        let refusal = metrics.refusal(i);
        let refused = metrics.settled(i, device) && refusal.is_some();
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
            cause: refusal.map(|x| x.cause.octet()),
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
    pub(super) funnel: Funnel,
    /// Phase latencies of every shard.
    pub(super) phases: Phases,
    pub(super) onboarding: Meter,
    pub(super) burst: Meter,
    pub(super) baseline: Meter,
    pub(super) bursts: u64,
    pub(super) delivered: u64,
    /// RSS at start, before the devices, after the devices, after onboarding.
    pub(super) rss: (u64, u64, u64, u64),
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
        clock: "simulated".to_owned(),
        failures: t.failures,
        congestion_rejects: t.congestion_rejects,
        downlinks_received: t.downlinks_received,
        latency_ms: m.phases.latency(),
        funnel: m.funnel,
        nas_per_onboarding: m.onboarding.per(t.active),
        link: t.link.into(),
        ..Report::default()
    };
    for d in t.refused {
        r.refused.total += 1;
        *r.refused.by_reason.entry(d.reason.clone()).or_default() += 1;
        r.refused.devices.push(d);
    }
    r.onboardings_per_s = r.active as f64 / m.wall.as_secs_f64().max(1e-9);
    r.cpu_ms_per_onboarding = m.cpu.as_secs_f64() * 1000.0 / r.active.max(1) as f64;
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
    r.peak_rss_bytes = crate::cmd::measure::memory_now().1;
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
