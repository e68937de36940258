//! A device's driver: its socket to the network, the clock, and a
//! [`Device`] fed from it; and [`system_information`], which a driver
//! calls first to learn which network it reaches.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use nido_ue::{Device, DeviceEvent};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};
use crate::sysinfo::SystemInformation;

/// How [`system_information`] asks again when no answer comes: the first
/// wait, doubled after each unanswered request up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first request. 250 ms.
    pub first: Duration,
    /// The longest wait between two requests. 4 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

/// Asks the network at `network` which network it is (as a device reads a
/// cell's SIB1 before it registers): sends a system-information request
/// with transaction id `id` and waits for the answer from `network`
/// carrying it, asking again after each wait of `backoff`, until `deadline`
/// (`None`: until it is answered). `Ok(None)` if nobody answered in time.
///
/// What comes back is unauthenticated: a device configured with it is
/// protected by EAP-TLS and by the serving network name entering its keys,
/// not by this answer (see [`crate::sysinfo`]).
pub fn system_information(
    socket: &UdpSocket,
    network: SocketAddr,
    id: u64,
    backoff: Backoff,
    deadline: Option<Instant>,
) -> io::Result<Option<SystemInformation>> {
    let request = Datagram::system_information_request(id).to_vec();
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut wait = backoff.first.max(Duration::from_millis(1));
    loop {
        match socket.send_to(&request, network) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e),
        }
        let until = Instant::now() + wait;
        let until = deadline.map_or(until, |d| d.min(until));
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv_from(&mut buf) {
                Ok((len, from)) if from == network => {
                    if let Ok(d) = Datagram::read(&buf[..len])
                        && d.kind == Kind::SystemInformation
                        && d.conn == id
                        && let Ok(info) = SystemInformation::read(d.payload)
                    {
                        return Ok(Some(info));
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        wait = (wait * 2).min(backoff.max.max(backoff.first));
    }
}

pub use nido_sim::connection::connection_id;

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep running.
    Continue,
    /// Return.
    Stop,
}

/// Runs `device` against the network at `network` over `socket`. `base`
/// (random per device process) makes its connection ids unique on a shared
/// network. `tick` is called at least every 100 ms with the device and the
/// time (to send bursts, to decide to stop); events go to `on_event`.
pub fn run(
    device: &mut Device,
    socket: &UdpSocket,
    network: SocketAddr,
    base: u64,
    mut tick: impl FnMut(&mut Device, SystemTime) -> Control,
    mut on_event: impl FnMut(&DeviceEvent),
) -> io::Result<()> {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::with_capacity(2048);
    loop {
        while let Some(t) = device.poll_transmit() {
            out.clear();
            Datagram::nas(connection_id(base, t.connection), &t.pdu).encode(&mut out);
            match socket.send_to(&out, network) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
        while let Some(event) = device.poll_event() {
            on_event(&event);
        }
        let now = SystemTime::now();
        if tick(device, now) == Control::Stop {
            return Ok(());
        }
        let wait = device
            .poll_timeout()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        socket.set_read_timeout(Some(wait))?;
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if from == network => {
                if let Ok(d) = Datagram::read(&buf[..len])
                    && d.kind == Kind::Nas
                    && d.conn == connection_id(base, device.connection())
                {
                    device.handle_pdu(SystemTime::now(), d.payload);
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        let now = SystemTime::now();
        if device.poll_timeout().is_some_and(|at| at <= now) {
            device.handle_timeout(now);
        }
    }
}
