//! The demo's pcap trace: every PDU entering a shard's link (and the plain
//! inner message of a protected one), kept per shard as it happens and
//! written once every shard is done, in simulated-time order (shards in
//! their order at one instant, each shard's records in the order they
//! happened), with times counted from a fixed epoch ([`EPOCH`]). Two runs
//! with the same seed and settings thus write records with the same times
//! and message types in the same order (what cryptographic randomness
//! changes, such as signature lengths, aside). The records stay in memory
//! until the run ends (each PDU, and the plain copy of a protected one):
//! a trace costs about its file's size in memory, and a run that fails
//! writes none.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use nido_sim::{Direction, TraceRecord};
use nido_trace::PcapWriter;

/// The time of a run's start in its trace: 2026-01-01T00:00:00Z.
pub(super) const EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// One PDU as it entered the link.
struct Entry {
    /// Simulated time since the run's start.
    at: Duration,
    /// The demo's index of the device.
    device: usize,
    direction: Direction,
    pdu: Vec<u8>,
    plain: Option<Vec<u8>>,
}

/// One shard's records.
pub(super) struct ShardTrace {
    start: SystemTime,
    /// The demo's index of the shard's device 0.
    offset: usize,
    entries: Vec<Entry>,
}

impl ShardTrace {
    pub(super) fn new(start: SystemTime, offset: usize) -> Self {
        Self {
            start,
            offset,
            entries: Vec::new(),
        }
    }

    /// Keeps `r` (its device index is the shard's own).
    pub(super) fn record(&mut self, r: &TraceRecord<'_>) {
        self.entries.push(Entry {
            at: r.at.duration_since(self.start).unwrap_or_default(),
            device: self.offset + r.device,
            direction: r.direction,
            pdu: r.pdu.to_vec(),
            plain: r.plain.map(<[u8]>::to_vec),
        });
    }
}

/// Writes the shards' records (in shard order) to `path`: each PDU as
/// sent, then its plain inner message when protected; both records name
/// the device and the direction in their annotation (`nido UE <index>
/// <serial> UL|DL ...`).
pub(super) fn write(path: &Path, shards: Vec<ShardTrace>, serials: &[String]) -> Result<()> {
    let mut entries: Vec<Entry> = shards.into_iter().flat_map(|s| s.entries).collect();
    // Stable: at one instant, shard order, then each shard's own order.
    entries.sort_by_key(|e| e.at);
    let file = File::create(path).with_context(|| path.display().to_string())?;
    let mut writer = PcapWriter::new(BufWriter::new(file))?;
    for e in &entries {
        let at = EPOCH + e.at;
        let serial = serials.get(e.device).map_or("?", String::as_str);
        let dir = match e.direction {
            Direction::Uplink => "UL",
            Direction::Downlink => "DL",
        };
        let who = format!("nido UE {} {serial} {dir}", e.device);
        writer
            .write_nas_annotated(at, &e.pdu, &who)
            .with_context(|| path.display().to_string())?;
        if let Some(plain) = &e.plain {
            writer
                .write_nas_annotated(
                    at,
                    plain,
                    &format!("{who} plain inner message of the previous PDU"),
                )
                .with_context(|| path.display().to_string())?;
        }
    }
    writer
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| path.display().to_string())?;
    Ok(())
}
