//! `nido sim`: a fleet of simulated devices (their radio included) against
//! a separately running `nido network serve`, over a few UDP sockets, with
//! faults on the link; prints a report (`--json`: `devices`, `active`,
//! `failed`, `elapsed_s`, `onboardings_per_s`, `latency_ms` per phase A–D
//! and `overall` in wall-clock milliseconds, `nas_per_onboarding`,
//! `bursts_sent`, `downlinks_received` (data owners' applications sent
//! the devices), `congestion_rejects` (REGISTRATION REJECTs with #22 the
//! devices got: the network's admission control turning them away for
//! T3346, see `nido network serve --max-procedures`), `failures` (the
//! devices not active at the end, by why: the last failure each reported,
//! e.g. `"reject #22"`, `"security mode: MAC failure"`, `"EAP-TLS: ..."`,
//! else `"no answer"`; they add up to `devices - active`), `network` (the
//! onboarding network the devices were configured with: `snn` and
//! `source`, `announced` or `--snpn`), `peak_rss_bytes`, the field names
//! of `nido demo`'s report where they mean the same).
//!
//! Without `--snpn` the simulator first asks each network address for its
//! system information (the cell's broadcast: PLMN identity and NID),
//! again with a bounded back-off until `--timeout`, and configures the
//! devices of that instance with it; with `--snpn` that is an override.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nido_access::fleet::{FleetOptions, run_fleet};
use nido_eap::{DeviceCredentials, Settings};
use nido_pki::FactoryBundle;
use nido_se::{MemorySe, SecureElement};
use nido_sim::{Faults, Link};
use nido_ue::{Device, DeviceConfig};
use rustls::pki_types::PrivateKeyDer;

use super::device::{Source, onboarding_network};

/// Arguments of `nido sim`.
#[derive(Args)]
pub(crate) struct SimArgs {
    /// The network's UDP access link address. Give it once per `serve`
    /// instance to spread the fleet over several instances of one network
    /// (one database): device i always talks to instance i mod n, as a RAN
    /// keeps a UE with one AMF of a set.
    #[arg(long, required = true, value_name = "ADDR")]
    network: Vec<String>,
    /// The factory output (`nido mfr issue --out`): one bundle per device.
    #[arg(long)]
    factory: PathBuf,
    /// Use only the first N bundles.
    #[arg(long)]
    devices: Option<usize>,
    /// Arrivals per second (default: all at once).
    #[arg(long)]
    rate: Option<f64>,
    /// Loss probability on the link, each way.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Duplication probability.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// Reordering probability.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Extra one-way delay in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Bursts per device once active.
    #[arg(long, default_value_t = 1)]
    bursts: u32,
    /// Seconds between a device's bursts.
    #[arg(long, default_value_t = 1)]
    burst_every: u64,
    /// UDP sockets the devices share.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// The onboarding network as MCC-MNC[-NID]. Without it the simulator
    /// asks each network address which network it is (its system
    /// information) and configures the devices with what it hears; with
    /// it, this overrides the announcement (a wrong one makes every attach
    /// fail: the serving network name enters the keys).
    #[arg(long, value_name = "MCC-MNC[-NID]")]
    snpn: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seed of the link's faults and of the devices' back-off draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten, next_help_heading = "Device timers")]
    timers: crate::args::DeviceTimerArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `samples`, `p50`, `p95`, `p99`, `max` of sorted milliseconds.
fn percentiles(sorted: &[f64]) -> serde_json::Value {
    serde_json::json!({
        "samples": sorted.len(),
        "p50": percentile(sorted, 0.5),
        "p95": percentile(sorted, 0.95),
        "p99": percentile(sorted, 0.99),
        "max": sorted.last().copied().unwrap_or(0.0),
    })
}

/// The onboarding network(s) the devices were configured with: one object
/// (`snn`, `source`) when every instance is the same network, else one per
/// `--network`.
fn network_json(snpns: &[(nido_prov::package::ServingNetwork, Source)]) -> serde_json::Value {
    let one = |(sn, source): &(nido_prov::package::ServingNetwork, Source)| serde_json::json!({"snn": sn.snn, "source": source.name()});
    match snpns {
        [first, rest @ ..] if rest.iter().all(|s| s.0.snn == first.0.snn) => one(first),
        all => all.iter().map(one).collect(),
    }
}

pub(crate) fn run(a: &SimArgs) -> Result<()> {
    let networks = a
        .network
        .iter()
        .map(|text| {
            text.to_socket_addrs()
                .with_context(|| format!("--network {text}"))?
                .next()
                .ok_or_else(|| anyhow::anyhow!("--network {text}: no address"))
        })
        .collect::<Result<Vec<SocketAddr>>>()?;
    let dirs = super::bundle_dirs(&a.factory, a.devices)?;
    let timers = a.timers.timers()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.timeout);
    // Which network each instance is: its system information (asked once
    // per address; every device of the instance hears the same broadcast),
    // or --snpn.
    let mut snpns = Vec::with_capacity(networks.len());
    for (k, network) in networks.iter().enumerate() {
        let socket = UdpSocket::bind(if network.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })?;
        let id = (u64::from(std::process::id()) << 16) ^ k as u64 ^ a.seed.rotate_left(40);
        match onboarding_network(a.snpn.as_deref(), &socket, *network, id, Some(deadline))? {
            Some(found) => snpns.push(found),
            None => {
                // Nothing to configure the devices with: none can attach.
                let json = serde_json::json!({
                    "devices": dirs.len(),
                    "active": 0,
                    "failed": 0,
                    "failures": {"no answer": dirs.len()},
                    "elapsed_s": started.elapsed().as_secs_f64(),
                });
                if a.json {
                    outln!("{json:#}");
                } else {
                    outln!(
                        "0 of {} devices active; not active: {}",
                        dirs.len(),
                        super::report::failures_line(&BTreeMap::from([(
                            "no answer".to_owned(),
                            dirs.len() as u64
                        )]))
                    );
                }
                bail!("timed out: no answer from {network} to the system-information request");
            }
        }
    }
    let bar = ProgressBar::new(dirs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<12} [{bar:30}] {pos}/{len}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    bar.set_message("loading");
    let mut devices = Vec::with_capacity(dirs.len());
    for (i, dir) in dirs.iter().enumerate() {
        let bundle = FactoryBundle::load(dir).with_context(|| dir.display().to_string())?;
        let se = MemorySe::new(&PrivateKeyDer::Pkcs8(bundle.identity.key.clone_key()))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        let credentials = DeviceCredentials::new(
            bundle.identity.chain.clone(),
            se.idevid_signer(),
            bundle.root.clone(),
            &bundle.dcs_realm,
        )?;
        let config = DeviceConfig {
            serial: bundle.identity.serial.clone(),
            credentials,
            dcs_realm: bundle.dcs_realm.clone(),
            onboarding_network: snpns[i % snpns.len()].0.clone(),
            eap: Settings::default(),
            kausf_from: bundle.kausf_from,
            timers,
            claim_hint: None,
            trace: false,
        };
        let mut device = Device::new(config, Box::new(se), None);
        device.seed_backoff(a.seed);
        devices.push(device);
        bar.inc(1);
    }
    let faults = Faults {
        loss: a.loss,
        duplicate: a.dup,
        reorder: a.reorder,
        delay: Duration::from_millis(a.delay_ms),
        ..Faults::NONE
    };
    let link = Link::new(faults, faults, a.seed)
        .map_err(|e| anyhow::anyhow!("--loss/--dup/--reorder: {e}"))?;
    let options = FleetOptions {
        sockets: a.sockets,
        rate: a.rate,
        bursts: a.bursts,
        burst_every: Duration::from_secs(a.burst_every),
        payload: b"t=21.5C;h=40%".to_vec(),
        timeout: deadline.saturating_duration_since(Instant::now()),
    };
    bar.set_position(0);
    bar.set_message("onboarding");
    let report = run_fleet(devices, &networks, link, &options, |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let mut latencies: Vec<f64> = report
        .time_to_active
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let phase = |p: usize| {
        let mut ms: Vec<f64> = report
            .phases
            .iter()
            .filter_map(|ph| ph[p])
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        percentiles(&ms)
    };
    let active = report.active.max(1) as u64;
    let json = serde_json::json!({
        "devices": report.devices,
        "active": report.active,
        "failed": report.failed,
        "elapsed_s": report.elapsed.as_secs_f64(),
        "onboardings_per_s": report.active as f64 / report.elapsed.as_secs_f64().max(1e-9),
        "latency_ms": {"A": phase(0), "B": phase(1), "C": phase(2), "D": phase(3), "overall": percentiles(&latencies)},
        "nas_per_onboarding": {"uplink_messages": report.uplink.0 / active, "uplink_bytes": report.uplink.1 / active,
                               "downlink_messages": report.downlink.0 / active, "downlink_bytes": report.downlink.1 / active},
        "bursts_sent": report.bursts_sent,
        "downlinks_received": report.downlinks_received,
        "congestion_rejects": report.congestion_rejects,
        "failures": report.failures,
        "network": network_json(&snpns),
        "peak_rss_bytes": super::report::memory_now().1,
    });
    if a.json {
        outln!("{json:#}");
    } else {
        outln!(
            "{} of {} devices active, {} failed, in {:.1} s ({:.0}/s); time to active p50 {:.0} ms, p99 {:.0} ms; {} congestion rejects (#22)",
            report.active,
            report.devices,
            report.failed,
            report.elapsed.as_secs_f64(),
            json["onboardings_per_s"].as_f64().unwrap_or(0.0),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            report.congestion_rejects
        );
        if !report.failures.is_empty() {
            outln!(
                "not active: {}",
                super::report::failures_line(&report.failures)
            );
        }
    }
    if report.active + report.failed < report.devices {
        bail!(
            "timed out: {} of {} devices active; not active: {}",
            report.active,
            report.devices,
            super::report::failures_line(&report.failures)
        );
    }
    Ok(())
}
