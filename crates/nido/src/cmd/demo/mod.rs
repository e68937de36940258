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
mod stats;
mod summary;

use std::cell::RefCell;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nido_net::{CountingSink, MemoryStore, Store};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link};
use nido_trace::PcapWriter;
use nido_ue::DeviceState;

use super::report;
use population::{Kind, Population};
use stats::{Stats, Trace};
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
    /// Devices onboarding at once at most: the next one powers on when
    /// one settles (active or refused).
    #[arg(long, default_value_t = 2000)]
    concurrency: u64,
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
    /// names its device).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// The payload of every burst.
pub(super) const PAYLOAD: &[u8] = b"t=21.5C;h=40%;batt=3.61V;seq=000017";

/// The network's store, its kind, and the temporary directory that holds
/// its file (removed when dropped).
type OpenedStore = (
    Box<dyn Store + Send>,
    &'static str,
    Option<tempfile::TempDir>,
);

fn open_store(db: Option<&str>, msins: u64) -> Result<OpenedStore> {
    if db == Some("memory") {
        return Ok((Box::new(MemoryStore::new(msins)), "memory", None));
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
    let store = nido_store::SqlStore::open(&url, kek)
        .with_context(|| format!("--db {url} (the demo needs a new, empty database)"))?;
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
    Ok((Box::new(store), kind, dir))
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
    let (rss_start, _) = report::memory_now();
    let bar = progress_bar(a.devices + 7)?;
    bar.set_message("manufacturing identities");
    let population = Population::new(a.devices, now, || bar.inc(1))?;
    let total = population.plan.len();

    let faults = Faults {
        loss: a.loss,
        duplicate: a.dup,
        reorder: a.reorder,
        ..Faults::NONE
    };
    let link = Link::new(faults, faults, a.seed)
        .map_err(|e| anyhow::anyhow!("--loss/--dup/--reorder: {e}"))?;
    let sink = CountingSink::new();
    let msins = (total as u64 * 2).max(10_000_000);
    let options = NetworkOptions {
        trace: a.pcap.is_some(),
        msins,
        ..NetworkOptions::default()
    };
    bar.set_message("opening the store");
    let (mut store, store_kind, _store_dir) = open_store(a.db.as_deref(), msins)?;
    population.enroll_owner(store.as_mut())?;
    let network =
        scenario::network_with_store(&population.world, &options, Box::new(sink.clone()), store)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let start = population.world.now;
    let mut fleet = Fleet::new(network, link, start, false);

    // The devices, in arrival order; their identities are dropped as they go in.
    bar.set_position(0);
    bar.set_message("building devices");
    let (rss_before_devices, _) = report::memory_now();
    let Population {
        world,
        credentials,
        plan,
        ..
    } = population;
    let mut kinds = Vec::with_capacity(total);
    let mut serials = Vec::new();
    for (id, kind) in plan {
        let device =
            scenario::device(&world, &id, a.pcap.is_some()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if a.pcap.is_some() {
            serials.push(id.serial.clone());
        }
        fleet.add_device(device);
        kinds.push(kind);
        bar.inc(1);
    }
    let (rss_devices, _) = report::memory_now();

    let trace = match &a.pcap {
        Some(path) => {
            let file = File::create(path).with_context(|| path.display().to_string())?;
            Some(Trace {
                writer: PcapWriter::new(BufWriter::new(file))?,
                serials,
                error: None,
            })
        }
        None => None,
    };
    let stats = Rc::new(RefCell::new(Stats::new(start, total, trace)));
    {
        let s = stats.clone();
        fleet.set_device_events(move |now, i, e| s.borrow_mut().device_event(now, i, e));
        let s = stats.clone();
        fleet.set_network_events(move |_, e| s.borrow_mut().network_event(e));
        let s = stats.clone();
        fleet.set_trace(move |r| s.borrow_mut().pdu(r));
    }
    let setup_wall = setup.elapsed();

    // Onboarding: devices power on as earlier ones settle.
    bar.set_position(0);
    bar.set_length(total as u64);
    let started = Instant::now();
    let deadline = fleet.now() + Duration::from_secs(7 * 24 * 3600);
    let settled = |f: &Fleet| {
        f.count(DeviceState::Active)
            + f.count(DeviceState::Failed)
            + f.count(DeviceState::BackingOff)
    };
    // The clone and its twin onboard at the same time; the network refuses
    // whichever completes EAP-TLS second (on a lossy link that may be
    // either: the network cannot tell which is genuine, so the refused one
    // is the clone). The clone tries once: it is switched off after its
    // refusal. (Were it to keep trying, it would get through once its twin
    // has finished onboarding, and the PVS would re-provision the
    // subscription under the twin.)
    let mut twins = kinds
        .iter()
        .position(|k| *k == Kind::Bad(population::CLONE))
        .and_then(|c| Some((c.checked_sub(1)?, c)));
    let mut next = 0;
    let mut last_draw = Instant::now();
    let mut concurrency = 0;
    loop {
        let in_flight = (total - fleet.count(DeviceState::Off)).saturating_sub(settled(&fleet));
        let mut room = (a.concurrency.max(1) as usize).saturating_sub(in_flight);
        while room > 0 && next < total {
            fleet.power_on(next);
            next += 1;
            room -= 1;
        }
        concurrency = concurrency
            .max((total - fleet.count(DeviceState::Off)).saturating_sub(settled(&fleet)));
        if next == total && settled(&fleet) == total {
            break;
        }
        if !fleet.step(deadline) {
            break;
        }
        if let Some((twin, clone)) = twins {
            let refused = stats.borrow().refused(twin) || stats.borrow().refused(clone);
            if refused {
                if stats.borrow().refused(twin) {
                    kinds.swap(twin, clone);
                    fleet.power_off(twin);
                } else {
                    fleet.power_off(clone);
                }
                twins = None;
            }
        }
        // Redraw at most ten times a second (an instant of a large fleet
        // can take a while: thousands of devices move in lockstep).
        if last_draw.elapsed() >= Duration::from_millis(100) {
            last_draw = Instant::now();
            let f = stats.borrow().funnel;
            let rate = f.active as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(settled(&fleet) as u64);
            bar.set_message(format!(
                "attached {} authenticated {} provisioned {} active {} refused {} | {rate:.0}/s",
                f.attached, f.authenticated, f.provisioned, f.active, f.refused
            ));
        }
    }
    // The data sessions come up right after each registration.
    fleet.advance(Duration::from_secs(1));
    let wall = started.elapsed();
    let simulated = fleet.now().duration_since(start).unwrap_or_default();
    let (rss_onboarded, _) = report::memory_now();
    let onboarding = std::mem::take(&mut stats.borrow_mut().meter);

    // Phase D: every active device, idle by now, sends one burst.
    bar.set_message("bursts");
    fleet.advance(Duration::from_secs(30));
    {
        let mut s = stats.borrow_mut();
        s.meter = stats::Meter::default();
        s.meter_active_only = true;
    }
    let mut bursts = 0u64;
    for i in 0..total {
        if fleet.device(i).state() == DeviceState::Active && fleet.send_data(i, PAYLOAD).is_ok() {
            bursts += 1;
        }
    }
    fleet.advance(Duration::from_secs(60));
    let burst = std::mem::take(&mut stats.borrow_mut().meter);
    let delivered = sink.count();

    // The baseline: one active device registers again and sends the same
    // payload connected.
    bar.set_message("baseline");
    let baseline_device = (0..total).find(|&i| {
        matches!(kinds[i], Kind::Good { .. }) && fleet.device(i).state() == DeviceState::Active
    });
    if let Some(b) = baseline_device {
        stats.borrow_mut().baseline_device = Some(b);
        fleet.power_on(b);
        let until = fleet.now() + Duration::from_secs(600);
        while fleet.send_data(b, PAYLOAD).is_err() {
            if !fleet.step(until) {
                bail!("the baseline device did not register again");
            }
        }
        fleet.advance(Duration::from_secs(5));
        stats.borrow_mut().baseline_device = None;
    }
    bar.finish_and_clear();

    let report = build_report(
        &fleet,
        &stats.borrow(),
        &kinds,
        &credentials,
        Measured {
            kind: store_kind,
            wall,
            setup_wall,
            simulated,
            concurrency: concurrency as u64,
            onboarding,
            burst,
            bursts,
            delivered,
            rss: (rss_start, rss_before_devices, rss_devices, rss_onboarded),
        },
    )?;
    drop(fleet);
    let trace = stats.borrow_mut().trace.take();
    if let (Some(path), Some(t)) = (&a.pcap, trace) {
        if let Some(e) = t.error {
            return Err(e).with_context(|| path.display().to_string());
        }
        t.writer
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| path.display().to_string())?;
    }
    report.print(a.json)?;
    check(&report)
}
