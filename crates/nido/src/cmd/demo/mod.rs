//! `nido demo`: the whole system in one process. A manufacturer, a network
//! trusting it (SQLite in a temporary directory unless `--db` says
//! otherwise), an owner with third-party credentials who claimed every
//! fourth device, a fleet of good devices and the devices that must be
//! refused (revoked, expired, foreign manufacturer, clone, not yet valid,
//! serverAuth only, blocked) over a simulated link. Every good device
//! onboards (A), is provisioned (B), validates its subscription by 5G-AKA
//! (C) and sends a burst from idle (D); the report ([`super::report`]) says
//! what happened, how fast and at what cost.

mod population;
mod shard;
mod summary;
mod trace;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nido_net::{CountingSink, MemoryStore, SharedStore, Store};
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_sim::Faults;
use nido_sim::metrics::Meter;
use nido_sim::scenario::NetworkOptions;

use super::measure;
use population::{Kind, Population};
use shard::{Shard, Stage};
use summary::{Measured, build_report, check};

/// Arguments of `nido demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Good devices (the seven that must be refused come on top).
    #[arg(long, default_value_t = 1000)]
    devices: u64,
    /// The network's database: `memory` (in-process, nothing written),
    /// `sqlite:///path/nido.db` (created if missing) or
    /// `postgres://user@host/db`, new and empty (the demo makes its own
    /// manufacturer and key-encryption key). Default: SQLite in a temporary
    /// directory, removed at the end.
    #[arg(long)]
    db: Option<String>,
    /// Devices onboarding at once at most, split evenly over the threads
    /// (rounded up): the next one powers on when one settles (active or
    /// refused).
    #[arg(long, default_value_t = 2000)]
    concurrency: u64,
    /// Worker threads (default: one per core). The fleet is split into
    /// this many shards, each with its own devices, link and network
    /// instance (one AMF of a set) over the one store; the clone and its twin
    /// share a shard, since clone detection is per AMF.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: Option<u64>,
    /// Probability a datagram is lost on the simulated link (each way).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability a datagram is duplicated.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// Probability a datagram is held back (reordered).
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Seed of the link's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the NAS trace (Wireshark-readable; each protected PDU is
    /// followed by its plain inner message, marked as such; every record
    /// names its device), in simulated-time order from 2026-01-01T00:00:00Z.
    /// It is kept in memory until the run ends: about the file's size.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Leave out the seven devices that must be refused: good devices
    /// only (the owner still claims every fourth), as in the simulator's
    /// own scenarios.
    #[arg(long)]
    good_only: bool,
}

/// The payload of every burst.
pub(super) const PAYLOAD: &[u8] = b"t=21.5C;h=40%;batt=3.61V;seq=000017";

/// The network's store, its kind, and the temporary directory that holds
/// its file (removed when dropped).
type OpenedStore = (
    Box<dyn Store + Send>,
    &'static str,
    Option<tempfile::TempDir>,
    Option<Box<dyn Store + Send>>,
);

/// How long (simulated) a group of the network's messages gathers, and
/// then how long its commit takes: the first message that waits starts
/// the window, everything written until it closes commits together, and
/// its messages leave one window later ([`nido_sim::Fleet::set_group_commit`]).
pub(super) const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// How long (real time) the demo's committer lets writes gather before it
/// commits them: not at all, since the fleets gather their groups
/// themselves (`GROUP_COMMIT_WINDOW`) and wait for them only one window
/// later.
const COMMIT_GATHER: Duration = Duration::ZERO;

fn open_store(db: Option<&str>, msins: u64) -> Result<OpenedStore> {
    if db == Some("memory") {
        return Ok((Box::new(MemoryStore::new(msins)), "memory", None, None));
    }
    let (url, dir) = match db {
        Some(url) => (url.to_owned(), None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("nido-demo-")
                .tempdir()
                .context("temporary directory")?;
            let url = format!("sqlite://{}", dir.path().join("nido.db").display());
            (url, Some(dir))
        }
    };
    let kek = nido_store::Kek::generate().map_err(|e| anyhow::anyhow!("KEK: {e}"))?;
    let store = nido_store::SqlStore::open(&url, kek.clone())
        .with_context(|| format!("--db {url} (the demo needs a new, empty database)"))?;
    // The second connection: the group committer's (issue #11).
    let writer = nido_store::SqlStore::open(&url, kek).with_context(|| format!("--db {url}"))?;
    let kind = match store.backend() {
        nido_store::Backend::Sqlite => "sqlite",
        nido_store::Backend::Postgres => "postgres",
    };
    let existing = store
        .subscriptions()
        .map_err(|e| anyhow::anyhow!("--db {url}: {e}"))?;
    if !existing.is_empty() {
        bail!(
            "--db {url} holds {} subscriptions: the demo needs a new, empty database",
            existing.len()
        );
    }
    store
        .set_msin_range(msins)
        .map_err(|e| anyhow::anyhow!("IMSI range: {e}"))?;
    Ok((Box::new(store), kind, dir, Some(Box::new(writer))))
}

fn progress_bar(len: u64) -> Result<ProgressBar> {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    Ok(bar)
}

pub(crate) fn run(a: &DemoArgs) -> Result<()> {
    let setup = Instant::now();
    let now = SystemTime::now();
    let (rss_start, _) = measure::memory_now();
    let bar = progress_bar(a.devices + 7)?;
    bar.set_message("manufacturing identities");
    let threads = a
        .threads
        .map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
        .max(1);
    let mut population = Population::new(a.devices, now, threads, &|| bar.inc(1))?;
    if a.good_only {
        population
            .plan
            .retain(|(_, kind)| matches!(kind, Kind::Good { .. }));
    }
    let total = population.plan.len();

    let faults = Faults {
        loss: a.loss,
        duplicate: a.dup,
        reorder: a.reorder,
        ..Faults::NONE
    };
    faults
        .validate()
        .map_err(|e| anyhow::anyhow!("--loss/--dup/--reorder: {e}"))?;
    let sink = CountingSink::new();
    let msins = (total as u64 * 2).max(10_000_000);
    let options = NetworkOptions {
        trace: a.pcap.is_some(),
        msins,
        ..NetworkOptions::default()
    };
    bar.set_message("opening the store");
    let (mut store, store_kind, _store_dir, writer) = open_store(a.db.as_deref(), msins)?;
    population.enroll_owner(store.as_mut())?;
    let store = SharedStore::new(store);
    // On a database, the networks write through one stage, committed in
    // groups (the server's commit path); in memory, straight to the store.
    let stage = writer.map(|w| nido_net::Stage::new(Box::new(store.clone()), w));
    // Its committer commits while the shards simulate, so the database's
    // time overlaps theirs: a shard waits only when a group it releases is
    // not durable yet (stopped, after what is pending, when dropped).
    let _committer = stage
        .as_ref()
        .map(|s| {
            let options = nido_access::commit::CommitOptions {
                gather: COMMIT_GATHER,
                ..Default::default()
            };
            nido_access::commit::Committer::start(
                nido_access::commit::Gate::detached(s.clone()),
                options,
            )
        })
        .transpose()
        .context("the committer thread")?;
    let home_network_key = HomeNetworkKey::generate(Profile::A, 1)
        .and_then(|k| k.private_octets())
        .map_err(|e| anyhow::anyhow!("home network key: {e}"))?;
    let start = population.world.now;

    let Population {
        world,
        credentials,
        plan,
        ..
    } = population;
    let serials: Vec<String> = match &a.pcap {
        Some(_) => plan.iter().map(|(id, _)| id.serial.clone()).collect(),
        None => Vec::new(),
    };
    // The shards: contiguous runs of the plan, the clone with its twin.
    let clone = plan
        .iter()
        .position(|(_, k)| *k == Kind::Bad(population::CLONE));
    let ranges = shard::split(total, threads, clone);
    let twin_shard = clone
        .and_then(|c| ranges.iter().position(|r| r.contains(&c)))
        .unwrap_or(0);
    let mut plan = plan.into_iter();
    let shards: Vec<Shard> = ranges
        .iter()
        .enumerate()
        .map(|(index, r)| Shard {
            index,
            offset: r.start,
            plan: plan.by_ref().take(r.len()).collect(),
            baseline: index == twin_shard,
        })
        .collect();
    let progress = shard::Progress::new(shards.len());
    let common = shard::Common {
        world: &world,
        options: &options,
        store: store.clone(),
        stage: stage.clone(),
        home_network_key: &home_network_key,
        sink: sink.clone(),
        faults,
        seed: a.seed,
        concurrency: (a.concurrency.max(1) as usize).div_ceil(shards.len()),
        pcap: a.pcap.is_some(),
        start,
        progress: &progress,
        bar: &bar,
        credentials: &credentials,
    };

    bar.set_position(0);
    bar.set_message("building devices");
    let (rss_before_devices, _) = measure::memory_now();
    let shard_count = shards.len();
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .map(|shard| {
                let common = &common;
                scope.spawn(move || shard::run(common, shard))
            })
            .collect();
        let idle = |_, _| {};
        progress.wait_for(Stage::Built, idle);
        let (rss_devices, _) = measure::memory_now();
        let setup_wall = setup.elapsed();
        // Onboarding: devices power on as earlier ones settle.
        bar.set_position(0);
        bar.set_length(total as u64);
        let started = Instant::now();
        let cpu_before = measure::cpu_time();
        progress.release();
        progress.wait_for(Stage::Onboarded, |f, settled| {
            let rate = f.active as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(settled as u64);
            bar.set_message(format!(
                "attached {} authenticated {} provisioned {} active {} refused {} | {rate:.0}/s",
                f.attached, f.authenticated, f.provisioned, f.active, f.refused
            ));
        });
        let wall = started.elapsed();
        let cpu = measure::cpu_time().saturating_sub(cpu_before);
        let (rss_onboarded, _) = measure::memory_now();
        bar.set_message("bursts");
        progress.release();
        progress.wait_for(Stage::Bursts, idle);
        let delivered = sink.count();
        bar.set_message("baseline");
        progress.release();
        progress.wait_for(Stage::Baseline, idle);
        progress.release();
        let outcomes: Vec<Result<shard::Outcome>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a shard panicked")))
            })
            .collect();
        (
            outcomes,
            (setup_wall, wall, cpu, delivered),
            (rss_devices, rss_onboarded),
        )
    });
    bar.finish_and_clear();
    let (outcomes, (setup_wall, wall, cpu, delivered), (rss_devices, rss_onboarded)) = outcomes;

    let mut tally = summary::Tally::default();
    let mut m = Measured {
        kind: store_kind,
        devices: total as u64,
        subscriptions: store
            .subscriptions()
            .map_err(|e| anyhow::anyhow!("subscriptions: {e}"))?
            .len() as u64,
        threads: shard_count as u64,
        wall,
        cpu,
        setup_wall,
        simulated: Duration::ZERO,
        concurrency: 0,
        funnel: Default::default(),
        phases: Default::default(),
        onboarding: Meter::default(),
        burst: Meter::default(),
        baseline: Meter::default(),
        bursts: 0,
        delivered,
        rss: (rss_start, rss_before_devices, rss_devices, rss_onboarded),
    };
    let mut traces = Vec::new();
    for outcome in outcomes {
        let o = outcome?;
        tally.absorb(o.tally);
        m.phases.absorb(&o.phases);
        m.funnel.absorb(o.funnel);
        traces.extend(o.trace);
        m.onboarding.absorb(o.onboarding);
        m.burst.absorb(o.burst);
        m.baseline.absorb(o.baseline);
        m.bursts += o.bursts;
        m.simulated = m.simulated.max(o.simulated);
        m.concurrency += o.concurrency as u64;
    }
    let report = build_report(tally, m);
    drop(common);
    if let Some(path) = &a.pcap {
        trace::write(path, traces, &serials)?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.table());
    }
    check(&report)
}
