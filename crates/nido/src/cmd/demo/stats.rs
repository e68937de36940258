//! What the demo measures while the fleet runs, fed by the fleet's hooks
//! (device events, network events, every PDU on the link): the funnel,
//! per-phase latencies, NAS cost, refusals, and the pcap trace. Per device
//! it keeps two timestamps and a flag octet; nothing walks the fleet.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nido_net::NetworkEvent;
use nido_sim::{Direction, TraceRecord};
use nido_trace::PcapWriter;
use nido_ue::{DeviceEvent, DeviceState};

/// The device sent its first REGISTRATION REQUEST.
const ATTACHED: u8 = 1;
/// EAP-TLS succeeded: registered for onboarding (phase A done).
const AUTHENTICATED: u8 = 2;
/// The credential package is installed.
const PROVISIONED: u8 = 4;
/// Phase B done (registering with its own subscription).
const VALIDATING: u8 = 8;
/// Phase C done: active.
const ACTIVE: u8 = 16;
/// Refused at least once.
const REFUSED: u8 = 32;
/// A burst from idle is waiting for its SERVICE ACCEPT.
const BURST: u8 = 64;

/// Message and octet counters of one direction pair.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Meter {
    pub ul_messages: u64,
    pub ul_bytes: u64,
    pub dl_messages: u64,
    pub dl_bytes: u64,
}

impl Meter {
    /// Adds `other`'s counts (another shard's).
    pub(super) fn absorb(&mut self, other: Meter) {
        self.ul_messages += other.ul_messages;
        self.ul_bytes += other.ul_bytes;
        self.dl_messages += other.dl_messages;
        self.dl_bytes += other.dl_bytes;
    }

    fn add(&mut self, direction: Direction, bytes: usize) {
        match direction {
            Direction::Uplink => {
                self.ul_messages += 1;
                self.ul_bytes += bytes as u64;
            }
            Direction::Downlink => {
                self.dl_messages += 1;
                self.dl_bytes += bytes as u64;
            }
        }
    }
}

/// The funnel, as the progress display shows it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Funnel {
    pub attached: u64,
    pub authenticated: u64,
    pub provisioned: u64,
    pub active: u64,
    pub refused: u64,
}

impl Funnel {
    /// Adds `other`'s counts (another shard's).
    pub(super) fn absorb(&mut self, other: Funnel) {
        self.attached += other.attached;
        self.authenticated += other.authenticated;
        self.provisioned += other.provisioned;
        self.active += other.active;
        self.refused += other.refused;
    }
}

/// A refusal the network reported.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub cause: u8,
    pub reason: String,
}

/// The pcap trace and what it needs to name devices.
pub(super) struct Trace {
    pub writer: PcapWriter<BufWriter<File>>,
    pub serials: Vec<String>,
    pub error: Option<std::io::Error>,
}

/// Everything measured on one shard of the fleet (device indices are the
/// shard's own; `offset` turns them into the demo's).
pub(super) struct Stats {
    start: SystemTime,
    /// The demo's index of the shard's device 0.
    offset: usize,
    /// Per device: power-on time, µs since `start`.
    on: Vec<u64>,
    /// Per device: the last phase boundary (or the burst), µs since `start`.
    mark: Vec<u64>,
    flags: Vec<u8>,
    /// Phase latencies, µs: A, B, C, D, overall.
    pub phases: [Vec<u32>; 5],
    pub funnel: Funnel,
    /// Traffic counted now (reset between stages by the shard).
    pub meter: Meter,
    /// Count only the traffic of devices that reached active (the bursts:
    /// a bad device backing off and trying again is not part of them).
    pub meter_active_only: bool,
    /// The device whose traffic also goes to `baseline`.
    pub baseline_device: Option<usize>,
    pub baseline: Meter,
    /// The network's refusals by device (first one).
    pub refusals: HashMap<usize, Refusal>,
    /// The trace, shared by every shard (records of one device stay in
    /// order; shards run on their own clocks, so the file interleaves them).
    pub trace: Option<Arc<Mutex<Trace>>>,
}

fn micros(start: SystemTime, at: SystemTime) -> u64 {
    at.duration_since(start)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn span(from: u64, to: u64) -> u32 {
    u32::try_from(to.saturating_sub(from)).unwrap_or(u32::MAX)
}

impl Stats {
    pub(super) fn new(
        start: SystemTime,
        offset: usize,
        devices: usize,
        trace: Option<Arc<Mutex<Trace>>>,
    ) -> Self {
        Self {
            start,
            offset,
            on: vec![0; devices],
            mark: vec![0; devices],
            flags: vec![0; devices],
            phases: Default::default(),
            funnel: Funnel::default(),
            meter: Meter::default(),
            meter_active_only: false,
            baseline_device: None,
            baseline: Meter::default(),
            refusals: HashMap::new(),
            trace,
        }
    }

    fn first(&mut self, i: usize, flag: u8) -> bool {
        let fresh = self.flags[i] & flag == 0;
        self.flags[i] |= flag;
        fresh
    }

    /// Whether device `i` was refused at least once.
    pub(super) fn refused(&self, i: usize) -> bool {
        self.flags[i] & REFUSED != 0
    }

    /// A device event.
    pub(super) fn device_event(&mut self, now: SystemTime, i: usize, e: &DeviceEvent) {
        let t = micros(self.start, now);
        match e {
            DeviceEvent::State { from, to } => match (from, to) {
                (DeviceState::Off, DeviceState::Onboarding) if self.first(i, ATTACHED) => {
                    self.funnel.attached += 1;
                    self.on[i] = t;
                    self.mark[i] = t;
                }
                (DeviceState::Onboarding, DeviceState::Provisioning)
                    if self.first(i, AUTHENTICATED) =>
                {
                    self.funnel.authenticated += 1;
                    self.phases[0].push(span(self.mark[i], t));
                    self.mark[i] = t;
                }
                (_, DeviceState::Registering)
                    if self.flags[i] & AUTHENTICATED != 0 && self.first(i, VALIDATING) =>
                {
                    self.phases[1].push(span(self.mark[i], t));
                    self.mark[i] = t;
                }
                (DeviceState::Registering, DeviceState::Active)
                    if self.flags[i] & VALIDATING != 0 && self.first(i, ACTIVE) =>
                {
                    self.funnel.active += 1;
                    self.phases[2].push(span(self.mark[i], t));
                    self.phases[4].push(span(self.on[i], t));
                }
                _ => {}
            },
            DeviceEvent::Provisioned { .. } if self.first(i, PROVISIONED) => {
                self.funnel.provisioned += 1;
            }
            DeviceEvent::Rejected { .. } if self.first(i, REFUSED) => {
                self.funnel.refused += 1;
            }
            DeviceEvent::BurstSent {
                path: nido_ue::BurstPath::ControlPlaneServiceRequest,
                ..
            } => {
                self.flags[i] |= BURST;
                self.mark[i] = t;
            }
            _ => {}
        }
    }

    /// A network event.
    pub(super) fn network_event(&mut self, e: &NetworkEvent) {
        if let NetworkEvent::Refused {
            conn,
            cause,
            reason,
            ..
        } = e
        {
            let i = usize::try_from(conn.0 >> 20).unwrap_or(usize::MAX);
            self.refusals.entry(i).or_insert_with(|| Refusal {
                cause: cause.octet(),
                reason: reason.clone(),
            });
        }
    }

    /// A PDU entering the link.
    pub(super) fn pdu(&mut self, r: &TraceRecord<'_>) {
        let active = self.flags.get(r.device).is_some_and(|f| f & ACTIVE != 0);
        if active || !self.meter_active_only {
            self.meter.add(r.direction, r.pdu.len());
        }
        if self.baseline_device == Some(r.device) {
            self.baseline.add(r.direction, r.pdu.len());
        }
        if r.direction == Direction::Downlink
            && r.message == "ServiceAccept"
            && self.flags.get(r.device).is_some_and(|f| f & BURST != 0)
        {
            self.flags[r.device] &= !BURST;
            let t = micros(self.start, r.at);
            self.phases[3].push(span(self.mark[r.device], t));
        }
        let poisoned = match &self.trace {
            Some(trace) => match trace.lock() {
                Ok(mut t) => {
                    t.record(r, self.offset + r.device);
                    false
                }
                Err(_) => true,
            },
            None => false,
        };
        if poisoned {
            // Another shard panicked while writing (it reports the panic as
            // its error): this shard stops tracing.
            self.trace = None;
        }
    }
}

impl Trace {
    /// Writes the PDU as sent, then its plain inner message when protected.
    /// Both records name the device and the direction in the record's
    /// annotation (`nido UE <index> <serial> UL|DL ...`); `device` is the
    /// demo's index.
    fn record(&mut self, r: &TraceRecord<'_>, device: usize) {
        if self.error.is_some() {
            return;
        }
        let at =
            r.at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
        let serial = self.serials.get(device).map_or("?", String::as_str);
        let dir = match r.direction {
            Direction::Uplink => "UL",
            Direction::Downlink => "DL",
        };
        let who = format!("nido UE {device} {serial} {dir}");
        let mut result = self.writer.write_nas_annotated(at, r.pdu, &who);
        if let (Ok(()), Some(plain)) = (&result, r.plain) {
            result = self.writer.write_nas_annotated(
                at,
                plain,
                &format!("{who} plain inner message of the previous PDU"),
            );
        }
        if let Err(e) = result {
            self.error = Some(e);
        }
    }
}
