//! `nido sim`: a fleet of simulated devices (their radio included) against
//! a separately running `nido network serve`, over a few UDP sockets, with
//! faults on the link; prints the one fleet report of `nido demo` and the
//! harness ([`nido_sim::report`], every figure defined once in
//! [`nido_sim::metrics`]) with `clock: "wall"`: the latencies are real
//! time as the devices saw it, `refused` the devices that settled without
//! becoming active, `failures` why each device not active is not,
//! `congestion_rejects` the #22 rejects of the network's admission control
//! (`nido network serve --max-procedures`), `networks` the onboarding
//! network the devices of each address were configured with (`snn`,
//! `source`: `announced` or `--snpn`).
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
use nido_access::fleet::{Control, FleetOptions, fleet_sockets, run_fleet};
use nido_eap::DeviceCredentials;
use nido_pki::FactoryBundle;
use nido_se::{MemorySe, SecureElement};
use nido_sim::report::{OnboardingNetwork, Report, failures_line};
use nido_sim::{Bursts, Devices, Faults, Link};
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
    /// Seconds between a device's bursts (at least 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
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

/// The onboarding network of each `--network`.
fn onboarding_networks(
    snpns: &[(nido_prov::package::ServingNetwork, Source)],
) -> Vec<OnboardingNetwork> {
    snpns
        .iter()
        .map(|(sn, source)| OnboardingNetwork {
            snn: sn.snn.clone(),
            source: source.name().to_owned(),
        })
        .collect()
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
                let report = Report {
                    devices: dirs.len() as u64,
                    incomplete: dirs.len() as u64,
                    failures: BTreeMap::from([("no answer".to_owned(), dirs.len() as u64)]),
                    wall_s: started.elapsed().as_secs_f64(),
                    clock: "wall".to_owned(),
                    store: "remote".to_owned(),
                    networks: onboarding_networks(&snpns),
                    ..Report::default()
                };
                print(&report, a.json)?;
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
            timers,
            ..DeviceConfig::new(
                bundle.identity.serial.clone(),
                credentials,
                bundle.dcs_realm.clone(),
                snpns[i % snpns.len()].0.clone(),
                bundle.kausf_from,
            )
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
    let first = networks
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no --network"))?;
    let sockets = fleet_sockets(first, a.sockets)?;
    let options = FleetOptions {
        rate: a.rate,
        timeout: Some(deadline.saturating_duration_since(Instant::now())),
        until_settled: true,
    };
    let payload = b"t=21.5C;h=40%".to_vec();
    let mut fleet = Devices::new(std::time::SystemTime::now(), 0, false);
    fleet.set_bursts(Bursts {
        count: Some(a.bursts),
        every: Duration::from_secs(a.burst_every),
        payload: payload.clone(),
        numbered: true,
    });
    for device in devices {
        fleet.add(device);
    }
    bar.set_position(0);
    bar.set_message("onboarding");
    let mut report = run_fleet(&mut fleet, &networks, &sockets, link, &options, |round| {
        bar.set_position(round.devices().settled() as u64);
        Control::Continue
    })?;
    bar.finish_and_clear();
    report.burst.payload_bytes = payload.len() as u64;
    report.networks = onboarding_networks(&snpns);
    report.peak_rss_bytes = super::measure::memory_now().1;
    print(&report, a.json)?;
    if report.active + report.refused.total < report.devices {
        bail!(
            "timed out: {} of {} devices active; not active: {}",
            report.active,
            report.devices,
            failures_line(&report.failures)
        );
    }
    Ok(())
}

/// Prints `report`: one JSON object, or a few lines.
fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let overall = &report.latency_ms.overall;
    outln!(
        "{} of {} devices active, {} refused, in {:.1} s ({:.0}/s); time to active p50 {:.0} ms, p99 {:.0} ms (wall); {} congestion rejects (#22)",
        report.active,
        report.devices,
        report.refused.total,
        report.wall_s,
        report.onboardings_per_s,
        overall.p50,
        overall.p99,
        report.congestion_rejects
    );
    if !report.failures.is_empty() {
        outln!("not active: {}", failures_line(&report.failures));
    }
    Ok(())
}
