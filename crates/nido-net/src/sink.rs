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

/// The application side of control plane data (design doc phase D): the
/// AMF hands every verified, deciphered burst to it.
pub trait ApplicationSink: Send {
    /// Delivers one burst.
    fn deliver(&mut self, uplink: Uplink);
}

/// A sink that keeps everything in memory; clones share the same list.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    received: Arc<Mutex<Vec<Uplink>>>,
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
}

impl ApplicationSink for MemorySink {
    fn deliver(&mut self, uplink: Uplink) {
        if let Ok(mut list) = self.received.lock() {
            list.push(uplink);
        }
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
