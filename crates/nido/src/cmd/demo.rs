//! `nido demo`: the whole system in one process: a manufacturer, a network
//! trusting it, a fleet of devices (some that must be refused) over a
//! simulated lossy link; every good device onboards, provisions, validates
//! and sends a burst. Prints what happened.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nido_eap::fixtures::Onboarding;
use nido_net::{CountingSink, NetworkEvent};
use nido_pki::{DeviceProfile, Revoked};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Faults, Fleet, Link};
use nido_trace::PcapWriter;
use nido_ue::DeviceState;

/// Arguments of `nido demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Good devices (besides the five that must be refused).
    #[arg(long, default_value_t = 20)]
    devices: usize,
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
    /// followed by its plain inner message, marked as such).
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
}

/// The devices that must be refused, and the 5GMM cause each must get.
fn refused_profiles(now: SystemTime) -> Vec<(&'static str, DeviceProfile, u8)> {
    vec![
        ("expired certificate", DeviceProfile::expired(now), 3),
        (
            "certificate not yet valid",
            DeviceProfile::not_yet_valid(now),
            74,
        ),
        (
            "serverAuth-only certificate",
            DeviceProfile::server_auth_only(now),
            3,
        ),
        ("revoked (CRL)", DeviceProfile::standard(now), 3),
        ("blocked by the operator", DeviceProfile::standard(now), 3),
    ]
}

type Trace = Rc<RefCell<(PcapWriter<Vec<u8>>, u64, u64)>>;

pub(crate) fn run(a: &DemoArgs) -> Result<()> {
    let now = SystemTime::now();
    let refused = refused_profiles(now);
    let good = a.devices;
    let total = good + refused.len();
    let revoked_serial_n = (good + 4) as u64;
    let blocked_serial_n = (good + 5) as u64;
    let mut revoked_id = None;
    let world = Onboarding::with_trust("Acme Sensors", now, |m, trust| {
        let revoked = m.issue_device(
            &m.device_serial(revoked_serial_n),
            &DeviceProfile::standard(now),
        )?;
        let crl = m.crl(
            &[Revoked::of(&revoked, now - Duration::from_secs(60))],
            now - Duration::from_secs(30),
            now + Duration::from_secs(86_400),
            1,
        )?;
        trust.add_crl(m.name(), &crl, m.issuing_der())?;
        trust.block(&m.device_serial(blocked_serial_n));
        revoked_id = Some(revoked);
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("manufacturer: {e}"))?;

    let faults = Faults {
        loss: a.loss,
        duplicate: a.dup,
        reorder: a.reorder,
        ..Faults::NONE
    };
    let link = Link::new(faults, faults, a.seed)
        .map_err(|e| anyhow::anyhow!("--loss/--dup/--reorder: {e}"))?;
    let sink = CountingSink::new();
    let options = NetworkOptions {
        trace: a.pcap.is_some(),
        ..NetworkOptions::default()
    };
    let network = scenario::network(&world, &options, Box::new(sink.clone()))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut fleet = Fleet::new(network, link, world.now, true);

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<22} [{bar:30}] {pos}/{len}")
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .progress_chars("=> "),
    );
    bar.set_message("issuing identities");
    let mut expected = BTreeMap::new();
    for n in 1..=total as u64 {
        let profile = if n as usize <= good {
            DeviceProfile::standard(now)
        } else {
            refused[n as usize - good - 1].1.clone()
        };
        let id = match (n == revoked_serial_n, revoked_id.take()) {
            (true, Some(id)) => id,
            (_, kept) => {
                revoked_id = kept;
                world
                    .manufacturer
                    .issue_device(&world.manufacturer.device_serial(n), &profile)
                    .map_err(|e| anyhow::anyhow!("issuing: {e}"))?
            }
        };
        let device =
            scenario::device(&world, &id, a.pcap.is_some()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let i = fleet.add_device(device);
        if n as usize > good {
            expected.insert(i, refused[n as usize - good - 1].clone());
        }
        bar.inc(1);
    }

    let trace: Option<Trace> = match &a.pcap {
        Some(_) => Some(Rc::new(RefCell::new((PcapWriter::new(Vec::new())?, 0, 0)))),
        None => None,
    };
    let counts = Rc::new(RefCell::new((0u64, 0u64, 0u64, 0u64)));
    {
        let trace = trace.clone();
        let counts = counts.clone();
        let start = world.now;
        fleet.set_trace(move |r| {
            let mut c = counts.borrow_mut();
            match r.direction {
                Direction::Uplink => {
                    c.0 += 1;
                    c.1 += r.pdu.len() as u64;
                }
                Direction::Downlink => {
                    c.2 += 1;
                    c.3 += r.pdu.len() as u64;
                }
            }
            if let Some(t) = &trace {
                let mut t = t.borrow_mut();
                let at = r.at.duration_since(start).unwrap_or_default();
                let _ = t.0.write_nas(at, r.pdu);
                if let Some(plain) = r.plain {
                    let _ = t.0.write_nas_annotated(
                        at,
                        plain,
                        "nido: plain inner message of the previous PDU",
                    );
                }
            }
        });
    }

    bar.set_position(0);
    bar.set_message("onboarding");
    let started = Instant::now();
    for i in 0..total {
        fleet.power_on(i);
    }
    let deadline = fleet.now() + Duration::from_secs(24 * 3600);
    let settled = |f: &Fleet| {
        f.devices().iter().all(|d| {
            matches!(
                d.state(),
                DeviceState::Active | DeviceState::Failed | DeviceState::BackingOff
            )
        })
    };
    while !settled(&fleet) && fleet.step(deadline) {
        let done = fleet
            .devices()
            .iter()
            .filter(|d| {
                matches!(
                    d.state(),
                    DeviceState::Active | DeviceState::Failed | DeviceState::BackingOff
                )
            })
            .count();
        bar.set_position(done as u64);
    }
    let onboarding_time = fleet.now().duration_since(world.now).unwrap_or_default();
    let onboarding_wall = started.elapsed();
    let (ul_msgs, ul_bytes, dl_msgs, dl_bytes) = *counts.borrow();

    // Every active device sends one burst once it is idle.
    bar.set_message("bursts");
    fleet.advance(Duration::from_secs(30));
    *counts.borrow_mut() = (0, 0, 0, 0);
    let mut bursts = 0u64;
    for i in 0..total {
        if fleet.device(i).state() == DeviceState::Active
            && fleet.send_data(i, b"t=21.5C;h=40%").is_ok()
        {
            bursts += 1;
        }
    }
    fleet.advance(Duration::from_secs(30));
    let (burst_ul, burst_ul_bytes, _, _) = *counts.borrow();
    bar.finish_and_clear();

    // What happened to each device.
    let mut causes: BTreeMap<usize, u8> = BTreeMap::new();
    for e in fleet.network_events() {
        if let NetworkEvent::Refused { conn, cause, .. } = e {
            causes.entry((conn.0 >> 20) as usize).or_insert(*cause);
        }
    }
    let active = fleet
        .devices()
        .iter()
        .filter(|d| d.state() == DeviceState::Active)
        .count();
    let mut refusals = Vec::new();
    let mut wrong = Vec::new();
    for (i, (what, _, cause)) in &expected {
        let got = causes.get(i).copied();
        if got != Some(*cause) || fleet.device(*i).state() == DeviceState::Active {
            wrong.push(format!(
                "{} ({what}): expected #{cause}, got {got:?}",
                fleet.device(*i).serial()
            ));
        }
        refusals.push(serde_json::json!({
            "device": fleet.device(*i).serial(), "why": what, "cause": got, "state": format!("{:?}", fleet.device(*i).state()),
        }));
    }
    let subscriptions = fleet
        .network()
        .store()
        .subscriptions()
        .map_err(|e| anyhow::anyhow!("subscriptions: {e}"))?;
    let onboarded = active.max(1) as u64;
    let report = serde_json::json!({
        "devices": total,
        "active": active,
        "refused": refusals,
        "subscriptions": subscriptions.len(),
        "bursts_sent": bursts,
        "bursts_delivered": sink.count(),
        "simulated_seconds": onboarding_time.as_secs_f64(),
        "wall_seconds": onboarding_wall.as_secs_f64(),
        "onboardings_per_second": active as f64 / onboarding_wall.as_secs_f64().max(1e-9),
        "nas_per_onboarding": {
            "uplink_messages": ul_msgs / onboarded, "uplink_bytes": ul_bytes / onboarded,
            "downlink_messages": dl_msgs / onboarded, "downlink_bytes": dl_bytes / onboarded,
        },
        "burst": { "uplink_messages": burst_ul / bursts.max(1), "uplink_bytes": burst_ul_bytes / bursts.max(1) },
        "link": format!("{:?}", fleet.link_stats()),
    });
    drop(fleet);
    if let (Some(path), Some(t)) = (&a.pcap, trace) {
        let bytes = Rc::try_unwrap(t)
            .map_err(|_| anyhow::anyhow!("trace still in use"))?
            .into_inner()
            .0
            .into_inner()?;
        std::fs::write(path, bytes).with_context(|| path.display().to_string())?;
    }
    if a.json {
        println!("{report:#}");
    } else {
        println!(
            "{active} of {good} good devices active ({} subscriptions), {} bursts delivered; \
             {:.2} s wall, {:.0} onboardings/s; per onboarding {} uplink / {} downlink NAS messages; \
             a burst is {} uplink message(s)",
            subscriptions.len(),
            sink.count(),
            onboarding_wall.as_secs_f64(),
            report["onboardings_per_second"].as_f64().unwrap_or(0.0),
            ul_msgs / onboarded,
            dl_msgs / onboarded,
            burst_ul / bursts.max(1),
        );
        for r in &refusals {
            println!(
                "refused: {} ({}): 5GMM cause #{}",
                r["device"],
                r["why"].as_str().unwrap_or(""),
                r["cause"]
            );
        }
    }
    if active != good || !wrong.is_empty() {
        bail!(
            "demo: {} of {good} good devices active; {}",
            active,
            wrong.join("; ")
        );
    }
    Ok(())
}
