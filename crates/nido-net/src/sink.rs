//! Where devices' uplink data goes: the owner's application server (NIDD).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nido_sec::Supi;

/// One burst of CIoT user data from a registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The device identity, `MANUFACTURER/SERIAL` ([`crate::DeviceId`]'s
    /// text form).
    pub device: String,
    /// The owner the device's subscription is attached to.
    pub owner: Option<String>,
    /// The subscription's SUPI.
    pub supi: Supi,
    /// The PDU session.
    pub psi: u8,
    /// The data.
    pub data: Vec<u8>,
    /// When the AMF received it.
    pub at: SystemTime,
}

/// Data an owner's application sent to a device (issue #14), waiting for
/// the device to be reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    /// The application's reference (the network's downlink store row).
    pub id: i64,
    /// The data.
    pub data: Vec<u8>,
}

/// The application side of control plane data (design doc phase D): the
/// AMF hands every verified, deciphered burst to it, and takes from it
/// what the application sent the device (mobile-terminated data follows
/// mobile-originated data: a device in power saving is reachable right
/// after its burst).
pub trait ApplicationSink: Send {
    /// Delivers one burst.
    fn deliver(&mut self, uplink: Uplink);

    /// Takes the downlink data waiting for `device` (its
    /// `MANUFACTURER/SERIAL`), oldest first. The default has none.
    fn take_downlinks(&mut self, device: &str) -> Vec<Downlink> {
        let _ = device;
        Vec::new()
    }
}

/// Downlink data waiting per device, shared by the network's shards and
/// the driver that fills it (`nido network serve`'s downlink poller). As a
/// sink it keeps no uplink: `serve` takes bursts through the store's
/// outbox.
#[derive(Debug, Clone, Default)]
pub struct DownlinkQueue {
    waiting: Arc<Mutex<std::collections::HashMap<String, std::collections::VecDeque<Downlink>>>>,
}

impl DownlinkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `downlink` for `device`, unless a downlink of that id waits
    /// already.
    pub fn push(&self, device: &str, downlink: Downlink) {
        if let Ok(mut waiting) = self.waiting.lock() {
            let q = waiting.entry(device.to_owned()).or_default();
            if !q.iter().any(|d| d.id == downlink.id) {
                q.push_back(downlink);
            }
        }
    }

    /// How many downlinks wait.
    pub fn len(&self) -> usize {
        self.waiting
            .lock()
            .map(|w| w.values().map(std::collections::VecDeque::len).sum())
            .unwrap_or(0)
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ApplicationSink for DownlinkQueue {
    fn deliver(&mut self, _: Uplink) {}

    fn take_downlinks(&mut self, device: &str) -> Vec<Downlink> {
        self.waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(device))
            .map(Vec::from)
            .unwrap_or_default()
    }
}

/// A sink that keeps everything in memory, and hands the AMF the downlinks
/// queued with [`MemorySink::queue_downlink`]; clones share both.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    received: Arc<Mutex<Vec<Uplink>>>,
    downlinks: DownlinkQueue,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything delivered so far.
    pub fn received(&self) -> Vec<Uplink> {
        self.received
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }

    /// Queues downlink data for `device` (`MANUFACTURER/SERIAL`), sent
    /// after its next burst.
    pub fn queue_downlink(&self, device: &str, downlink: Downlink) {
        self.downlinks.push(device, downlink);
    }
}

impl ApplicationSink for MemorySink {
    fn deliver(&mut self, uplink: Uplink) {
        if let Ok(mut list) = self.received.lock() {
            list.push(uplink);
        }
    }

    fn take_downlinks(&mut self, device: &str) -> Vec<Downlink> {
        self.downlinks.take_downlinks(device)
    }
}

/// A sink that only counts (for the simulator's million devices).
#[derive(Debug, Clone, Default)]
pub struct CountingSink {
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl CountingSink {
    /// A sink at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bursts were delivered.
    pub fn count(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ApplicationSink for CountingSink {
    fn deliver(&mut self, _: Uplink) {
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
