//! `nido bench ...`: load generators that measure a server from outside,
//! the same way for nido's and for a peer implementation.
//!
//! `nido bench radius` runs full EAP-TLS 1.3 authentications of factory
//! devices over RADIUS (nido-dcs's supplicant behind nido-radius's client
//! table) against any RADIUS server: `nido dcs serve` or FreeRADIUS. With
//! `--server-pid` it reads the server's CPU time (every thread's, from
//! /proc) before and after, so the report gives server CPU per
//! authentication for both servers under one load generator.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use nido_dcs::{Finished, Supplicant, SupplicantStep};
use nido_eap::DeviceCredentials;
use nido_pki::FactoryBundle;
use nido_radius::Secret;
use nido_radius::client::{Pending, RetransmitPolicy};
use rustls::pki_types::PrivateKeyDer;

use crate::args::{UsageError, number_in};

/// Benchmarks.
#[derive(Subcommand)]
pub(crate) enum Bench {
    /// Full EAP-TLS 1.3 authentications over RADIUS against a server (`nido
    /// dcs serve`, FreeRADIUS, ...): authentications/s, and with
    /// --server-pid the server's CPU per authentication.
    ///
    /// Each of N concurrent conversations takes the next device of the
    /// factory, runs EAP-TLS to the end and checks that the MSK in the
    /// Access-Accept's MPPE keys equals its own (as eapol_test does).
    /// Requests are retransmitted as RFC 5080 says (2 s first timeout).
    Radius(RadiusArgs),
}

/// `bench radius` inputs.
#[derive(Args)]
pub(crate) struct RadiusArgs {
    /// The RADIUS server (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    target: String,
    /// The shared secret (visible in the process list: prefer --secret-file).
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file whose first line is the shared secret.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// Factory bundle directories (`nido mfr issue --out`); devices are
    /// used in turn.
    #[arg(long, value_name = "DIR")]
    factory: PathBuf,
    /// Use at most this many devices of the factory.
    #[arg(long, value_name = "N")]
    devices: Option<usize>,
    /// Conversations in flight (1 to 255: one RADIUS Identifier each).
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: u64,
    /// How long to run, in seconds (after a one-second warm-up).
    #[arg(long, value_name = "S", default_value_t = 10)]
    seconds: u64,
    /// The server's process id: report its CPU time per authentication.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs a benchmark.
pub(crate) fn run(b: Bench) -> Result<()> {
    match b {
        Bench::Radius(a) => radius(&a),
    }
}

struct Device {
    credentials: DeviceCredentials,
    outer: String,
}

struct Slot {
    supplicant: Supplicant,
    /// The outstanding request: its Identifier and Request Authenticator.
    outstanding: Option<(u8, [u8; 16])>,
    started: Instant,
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    refused: u64,
    mismatched: u64,
    timed_out: u64,
    latencies_ms: Vec<f64>,
}

fn radius(a: &RadiusArgs) -> Result<()> {
    let concurrency = number_in("--concurrency", a.concurrency, 1..=255)? as usize;
    let seconds = number_in("--seconds", a.seconds, 1..=3_600)?;
    let secret = match (&a.secret, &a.secret_file) {
        (Some(s), None) => Secret::new(s.as_bytes()),
        (None, Some(f)) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?,
            );
            Secret::new(text.lines().next().unwrap_or("").as_bytes())
        }
        _ => return Err(UsageError::new("--secret", "give --secret or --secret-file").into()),
    }
    .map_err(|e| UsageError::new("--secret", e.to_string()))?;
    let target: SocketAddr = a
        .target
        .to_socket_addrs()
        .with_context(|| format!("--target {}", a.target))?
        .next()
        .ok_or_else(|| anyhow!("--target {}: no address", a.target))?;
    let devices = load(&a.factory, a.devices)?;
    let socket = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;

    let mut pending = Pending::new(RetransmitPolicy::default(), secret.clone());
    let mut slots: Vec<Option<Slot>> = (0..concurrency).map(|_| None).collect();
    let mut by_identifier: [Option<usize>; 256] = [None; 256];
    let mut next_device = 0usize;
    let start = Instant::now();
    let warm_up = Duration::from_secs(1);
    let end = warm_up + Duration::from_secs(seconds);
    let mut measuring: Option<(Instant, Option<Duration>, Duration)> = None;
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 4096];

    // Sends `packet` for `slot`: a fresh Request Authenticator, an Identifier.
    let send = |pending: &mut Pending,
                by_identifier: &mut [Option<usize>; 256],
                slot_index: usize,
                slot: &mut Slot,
                mut packet: nido_radius::Packet|
     -> Result<()> {
        aws_lc_rs::rand::fill(&mut packet.authenticator).map_err(|_| anyhow!("no randomness"))?;
        let authenticator = packet.authenticator;
        let (identifier, octets) = pending
            .send(packet, start.elapsed(), 0.0)
            .map_err(|e| anyhow!("RADIUS request: {e}"))?;
        by_identifier[usize::from(identifier)] = Some(slot_index);
        slot.outstanding = Some((identifier, authenticator));
        match socket.send(&octets) {
            Ok(_) => Ok(()),
            // Nobody listens (yet): the retransmission timer handles it.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e).context("UDP send"),
        }
    };

    loop {
        let elapsed = start.elapsed();
        if elapsed >= end {
            break;
        }
        if measuring.is_none() && elapsed >= warm_up {
            measuring = Some((
                Instant::now(),
                a.server_pid.map(cpu_of).transpose()?,
                own_cpu()?,
            ));
            tally = Tally::default();
        }
        // Every empty slot starts its next device.
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() {
                let d = &devices[next_device % devices.len()];
                next_device += 1;
                let (supplicant, first) =
                    Supplicant::start(&d.credentials, &d.outer, SystemTime::now())?;
                let mut s = Slot {
                    supplicant,
                    outstanding: None,
                    started: Instant::now(),
                };
                send(&mut pending, &mut by_identifier, i, &mut s, first)?;
                *slot = Some(s);
            }
        }
        match socket.recv(&mut buf) {
            Ok(n) => {
                let Ok((identifier, reply)) = pending.on_response(&buf[..n]) else {
                    continue;
                };
                let Some(i) = by_identifier[usize::from(identifier)].take() else {
                    continue;
                };
                let Some(mut slot) = slots[i].take() else {
                    continue;
                };
                let Some((_, authenticator)) = slot.outstanding.take() else {
                    continue;
                };
                match slot.supplicant.handle(&reply, &secret, &authenticator) {
                    SupplicantStep::Send(next) => {
                        send(&mut pending, &mut by_identifier, i, &mut slot, next)?;
                        slots[i] = Some(slot);
                    }
                    SupplicantStep::Done(f) => {
                        tally
                            .latencies_ms
                            .push(slot.started.elapsed().as_secs_f64() * 1e3);
                        match f {
                            Finished::Accepted { .. } => tally.accepted += 1,
                            Finished::KeyMismatch => tally.mismatched += 1,
                            Finished::Refused(_) => tally.refused += 1,
                        }
                    }
                    SupplicantStep::Ignored(_) => slots[i] = Some(slot),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(e).context("UDP receive"),
        }
        let timeouts = pending.on_timeout(start.elapsed(), 0.0);
        for r in timeouts.retransmit {
            let _ = socket.send(&r.octets);
        }
        for f in timeouts.failed {
            if let Some(i) = by_identifier[usize::from(f.identifier)].take() {
                slots[i] = None;
                tally.timed_out += 1;
            }
        }
    }
    let Some((since, server_before, own_before)) = measuring else {
        bail!("the run ended before the warm-up did");
    };
    let wall = since.elapsed().as_secs_f64();
    let server_cpu = match (a.server_pid, server_before) {
        (Some(pid), Some(before)) => Some(cpu_of(pid)?.saturating_sub(before)),
        _ => None,
    };
    let own_cpu = own_cpu()?.saturating_sub(own_before);
    report(
        a,
        concurrency,
        devices.len(),
        wall,
        &mut tally,
        server_cpu,
        own_cpu,
    );
    if tally.accepted == 0 {
        bail!("no authentication succeeded");
    }
    Ok(())
}

fn report(
    a: &RadiusArgs,
    concurrency: usize,
    devices: usize,
    wall: f64,
    tally: &mut Tally,
    server_cpu: Option<Duration>,
    own_cpu: Duration,
) {
    let finished = tally.accepted + tally.refused + tally.mismatched;
    let per_s = tally.accepted as f64 / wall.max(1e-9);
    let per_auth = |cpu: Duration| cpu.as_secs_f64() * 1e3 / finished.max(1) as f64;
    tally.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if tally.latencies_ms.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (tally.latencies_ms.len() - 1) as f64).round() as usize;
        tally.latencies_ms[i]
    };
    if a.json {
        outln!(
            "{}",
            serde_json::json!({
                "target": a.target,
                "concurrency": concurrency,
                "devices": devices,
                "seconds": wall,
                "accepted": tally.accepted,
                "refused": tally.refused,
                "key_mismatch": tally.mismatched,
                "timed_out": tally.timed_out,
                "authentications_per_s": per_s,
                "latency_ms": {"p50": pct(50.0), "p99": pct(99.0)},
                "server_cpu_ms_per_auth": server_cpu.map(per_auth),
                "client_cpu_ms_per_auth": per_auth(own_cpu),
            })
        );
        return;
    }
    outln!(
        "{} EAP-TLS 1.3 authentications over RADIUS to {} in {wall:.1} s: {per_s:.0}/s \
         ({} refused, {} MPPE key mismatches, {} timed out); latency p50 {:.1} ms, p99 {:.1} ms",
        tally.accepted,
        a.target,
        tally.refused,
        tally.mismatched,
        tally.timed_out,
        pct(50.0),
        pct(99.0)
    );
    match server_cpu {
        Some(cpu) => outln!(
            "server CPU {:.3} ms per authentication; this load generator {:.3} ms",
            per_auth(cpu),
            per_auth(own_cpu)
        ),
        None => outln!(
            "this load generator: {:.3} ms CPU per authentication (--server-pid for the server's)",
            per_auth(own_cpu)
        ),
    }
}

fn load(factory: &Path, limit: Option<usize>) -> Result<Vec<Device>> {
    super::bundle_dirs(factory, limit)?
        .iter()
        .map(|dir| {
            let b = FactoryBundle::load(dir).with_context(|| dir.display().to_string())?;
            let credentials = DeviceCredentials::with_software_key(
                b.identity.chain.clone(),
                &PrivateKeyDer::Pkcs8(b.identity.key.clone_key()),
                b.root.clone(),
                &b.dcs_realm,
            )?;
            Ok(Device {
                credentials,
                outer: format!("anonymous@{}", b.dcs_realm),
            })
        })
        .collect()
}

/// The CPU time of every thread of process `pid` so far (the first field
/// of each /proc/PID/task/TID/schedstat: nanoseconds on a CPU).
fn cpu_of(pid: u32) -> Result<Duration> {
    cpu_in(Path::new(&format!("/proc/{pid}/task")))
        .with_context(|| format!("--server-pid {pid}: its CPU time"))
}

fn own_cpu() -> Result<Duration> {
    cpu_in(Path::new("/proc/self/task"))
}

fn cpu_in(tasks: &Path) -> Result<Duration> {
    let mut total = 0u64;
    for t in std::fs::read_dir(tasks)? {
        let path = t?.path().join("schedstat");
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("{}: unexpected content", path.display()))?;
    }
    Ok(Duration::from_nanos(total))
}
