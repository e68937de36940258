//! A device's driver: its socket to the network, the clock, and a
//! [`Device`] fed from it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use nido_ue::{Device, DeviceEvent};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};

/// Bits of the connection id that carry the device's connection number;
/// the rest is the device's random base.
pub const GENERATION_BITS: u32 = 20;

/// The link connection id of the device's NAS connection `generation`.
pub fn connection_id(base: u64, generation: u32) -> u64 {
    (base << GENERATION_BITS) | u64::from(generation & ((1 << GENERATION_BITS) - 1))
}

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
