//! `nido dcs serve`: the UDP driver of [`nido_dcs::RadiusDcs`]. One thread:
//! it reads what datagrams have arrived (up to a batch), hands each to the
//! state machine, appends the batch's decisions to `audit.jsonl` and syncs
//! it once (group commit), and only then sends the batch's replies. It
//! reloads clients, CRL and block list when their files change.
//!
//! With `--radsec`, the connection threads of [`super::radsec`] hand it
//! whole packets over a channel; it takes them in the same batches (its
//! UDP wait is then short), and their replies, like the UDP ones, leave
//! only after the batch's audit sync.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow};
use clap::Args;
use nido_dcs::{Decision, Dropped, Limits, Outcome, RadiusDcs};
use nido_eap::Settings;
use nido_pki::files::{read_certs, read_key};
use rustls::pki_types::PrivateKeyDer;
use std::sync::RwLock;

use super::radsec::{self, Inbound, ToConn};
use super::{Config, watched_files};
use crate::out::iso8601;

/// Most datagrams handled between two audit syncs.
const BATCH: usize = 64;

/// `serve` inputs.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The DCS directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Where to listen for RADIUS (UDP).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:1812")]
    radius: String,
    /// Also serve RadSec (RADIUS over TLS, RFC 6614; port 2083 is the
    /// standard one) at this address: TLS with dcs.pem, clients pinned by
    /// certificate (`add-client --radsec-cert`).
    #[arg(long, value_name = "ADDR")]
    radsec: Option<String>,
    /// How often to look for changed clients, CRL or block list, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    reload_ms: u64,
}

pub(crate) fn run(a: &ServeArgs) -> Result<()> {
    let config = Config::load(&a.dir)?;
    let clients = config.clients(&a.dir)?;
    let trust = Arc::new(config.trust(&a.dir)?);
    let credentials = config.credentials(&a.dir, trust)?;
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&a.radius)
        .with_context(|| format!("--radius {}", a.radius))?
        .next()
        .ok_or_else(|| anyhow!("--radius {}: no address", a.radius))?;
    let socket = UdpSocket::bind(addr).with_context(|| format!("UDP {addr}"))?;
    let wait = if a.radsec.is_some() {
        Duration::from_millis(2)
    } else {
        Duration::from_millis(100)
    };
    socket.set_read_timeout(Some(wait))?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    // Held to the end: dropping it writes the lines still queued.
    let _log = crate::log::init()?;
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let clients_n = clients.len();
    let clients_for_pins = clients.clone();
    let mut dcs = RadiusDcs::new(
        credentials,
        Settings::default(),
        clients,
        Limits::default(),
        epoch,
    );
    let mut audit = Audit::open(&a.dir.join("audit.jsonl"))?;
    let pins: radsec::Pins = Arc::new(RwLock::new(radsec::pins_of(&clients_for_pins)));
    let (radsec_tx, radsec_rx) = std::sync::mpsc::sync_channel::<Inbound>(1024);
    let radsec_addr = match &a.radsec {
        Some(text) => {
            let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(text)
                .with_context(|| format!("--radsec {text}"))?
                .next()
                .ok_or_else(|| anyhow!("--radsec {text}: no address"))?;
            let chain = read_certs(&a.dir.join("dcs.pem"))?;
            let key = read_key(&a.dir.join("dcs.key"))?;
            let config = radsec::server_config(chain, PrivateKeyDer::Pkcs8(key), pins.clone())?;
            Some(radsec::listen(addr, config, radsec_tx, stop.clone())?)
        }
        None => {
            drop(radsec_tx);
            None
        }
    };
    tracing::info!(
        radsec = ?radsec_addr,
        radsec_clients = clients_for_pins.radsec_len(),
        manufacturer = %config.manufacturer,
        realm = %config.realm,
        radius = %socket.local_addr()?,
        clients = clients_n,
        "serving (SIGTERM or Ctrl-C to stop)"
    );
    if clients_n == 0 {
        tracing::warn!(
            "no RADIUS client: every request is dropped until one is added (nido dcs add-client; serve picks it up)"
        );
    }
    let start = Instant::now();
    let mut watch = Watch::new(&a.dir, Duration::from_millis(a.reload_ms.max(10)));
    let mut last_expiry = Duration::ZERO;
    let mut buf = vec![0u8; 4096];
    let mut replies: Vec<Reply> = Vec::with_capacity(BATCH);
    let mut decisions: Vec<Decision> = Vec::new();
    let mut counts = Counts::default();
    while !stop.load(Ordering::Relaxed) {
        let mut received = 0;
        loop {
            let got = socket.recv_from(&mut buf);
            let (n, from) = match got {
                Ok(v) => v,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                // An ICMP error of an earlier send (Linux reports it on the
                // next receive): nothing to do with this datagram.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e).context("UDP receive"),
            };
            if received == 0 {
                socket.set_nonblocking(true)?;
            }
            received += 1;
            let now = start.elapsed();
            match dcs.handle(from, &buf[..n], SystemTime::now(), now) {
                Ok(out) => {
                    if let Some(d) = out.decision {
                        decisions.push(d);
                    }
                    replies.push(Reply::Udp(out.to, out.reply));
                }
                Err(dropped) => {
                    counts.dropped += 1;
                    tracing::debug!(from = %from, why = dropped.as_str(), "datagram dropped");
                }
            }
            if received == BATCH {
                break;
            }
        }
        if received > 0 {
            socket.set_nonblocking(false)?;
        }
        // RadSec packets that arrived meanwhile, in the same batch.
        for _ in 0..BATCH {
            let Ok(inbound) = radsec_rx.try_recv() else {
                break;
            };
            let now = start.elapsed();
            match dcs.handle_radsec(
                &inbound.fingerprint,
                inbound.from,
                &inbound.packet,
                SystemTime::now(),
                now,
            ) {
                Ok(out) => {
                    if let Some(d) = out.decision {
                        decisions.push(d);
                    }
                    replies.push(Reply::RadSec(inbound.reply, ToConn::Packet(out.reply)));
                }
                Err(dropped) => {
                    counts.dropped += 1;
                    if matches!(dropped, Dropped::UnknownClient | Dropped::Unauthentic) {
                        // RFC 6614 §2.5: an invalid packet closes the connection.
                        tracing::warn!(
                            from = %inbound.from,
                            fingerprint = %nido_dcs::clients::fingerprint_hex(&inbound.fingerprint),
                            why = dropped.as_str(),
                            "RadSec packet dropped: closing its connection"
                        );
                        replies.push(Reply::RadSec(
                            inbound.reply,
                            ToConn::Close(dropped.as_str()),
                        ));
                    } else {
                        tracing::debug!(from = %inbound.from, why = dropped.as_str(), "RadSec packet dropped");
                    }
                }
            }
        }
        if !decisions.is_empty() {
            // Durable before any reply of the batch leaves (crate invariant).
            audit.append(&decisions)?;
            for d in decisions.drain(..) {
                counts.count(&d);
                log(&d);
            }
        }
        for r in replies.drain(..) {
            match r {
                Reply::Udp(to, reply) => {
                    if let Err(e) = socket.send_to(&reply, to) {
                        tracing::warn!(to = %to, error = %e, "reply not sent");
                    }
                }
                // A connection that went away meanwhile: nothing to do.
                Reply::RadSec(conn, m) => {
                    let _ = conn.send(m);
                }
            }
        }
        let now = start.elapsed();
        if now.saturating_sub(last_expiry) >= Duration::from_secs(1) {
            last_expiry = now;
            dcs.expire(now);
        }
        if watch.due(now) {
            match reload(&a.dir) {
                Ok(Some((clients, trust))) => {
                    let n = clients.len();
                    if let Ok(mut p) = pins.write() {
                        *p = radsec::pins_of(&clients);
                    }
                    dcs.set_clients(clients);
                    dcs.set_trust_store(Arc::new(trust));
                    tracing::info!(clients = n, "reloaded clients, CRL and block list");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reload failed; serving with what was loaded before")
                }
            }
        }
    }
    tracing::info!(
        accepted = counts.accepted,
        refused = counts.refused,
        dropped = counts.dropped,
        "stopped"
    );
    Ok(())
}

/// A reply of the batch, sent after its audit sync.
enum Reply {
    Udp(SocketAddr, Vec<u8>),
    RadSec(std::sync::mpsc::Sender<ToConn>, ToConn),
}

#[derive(Default)]
struct Counts {
    accepted: u64,
    refused: u64,
    dropped: u64,
}

impl Counts {
    fn count(&mut self, d: &Decision) {
        if d.accepted() {
            self.accepted += 1;
        } else {
            self.refused += 1;
        }
    }
}

fn log(d: &Decision) {
    match &d.outcome {
        Outcome::Accepted(device) => tracing::info!(
            client = %d.client,
            serial = %device.id.serial(),
            "accepted"
        ),
        Outcome::Refused { reason, detail } => tracing::info!(
            client = %d.client,
            reason = %reason,
            detail = %detail,
            "refused"
        ),
    }
}

/// `audit.jsonl`, appended and synced batch by batch.
struct Audit {
    file: std::fs::File,
}

impl Audit {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("{}", path.display()))?;
        Ok(Self { file })
    }

    fn append(&mut self, decisions: &[Decision]) -> Result<()> {
        let mut text = String::new();
        for d in decisions {
            let (decision, serial, manufacturer, reason, detail) = match &d.outcome {
                Outcome::Accepted(device) => (
                    "accept",
                    Some(device.id.serial().to_owned()),
                    Some(device.id.manufacturer().to_owned()),
                    None,
                    None,
                ),
                Outcome::Refused { reason, detail } => {
                    ("reject", None, None, Some(*reason), Some(detail.clone()))
                }
            };
            let line = serde_json::json!({
                "at": iso8601(d.at),
                "decision": decision,
                "client": d.client,
                "client_addr": d.client_addr.to_string(),
                "outer_identity": d.outer_identity,
                "serial": serial,
                "manufacturer": manufacturer,
                "reason": reason,
                "detail": detail,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data().context("audit.jsonl: sync")?;
        Ok(())
    }
}

/// Notices changes to the files that configure clients and trust.
struct Watch {
    dir: PathBuf,
    every: Duration,
    last_check: Duration,
    stamps: Vec<Option<SystemTime>>,
}

impl Watch {
    fn new(dir: &Path, every: Duration) -> Self {
        let mut w = Self {
            dir: dir.to_owned(),
            every,
            last_check: Duration::ZERO,
            stamps: Vec::new(),
        };
        w.stamps = w.read();
        w
    }

    fn read(&self) -> Vec<Option<SystemTime>> {
        watched_files(&self.dir)
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Whether a check is due and found a change.
    fn due(&mut self, now: Duration) -> bool {
        if now.saturating_sub(self.last_check) < self.every {
            return false;
        }
        self.last_check = now;
        let stamps = self.read();
        if stamps != self.stamps {
            self.stamps = stamps;
            return true;
        }
        false
    }
}

fn reload(dir: &Path) -> Result<Option<(nido_dcs::Clients, nido_pki::TrustStore)>> {
    let config = Config::load(dir)?;
    Ok(Some((config.clients(dir)?, config.trust(dir)?)))
}
