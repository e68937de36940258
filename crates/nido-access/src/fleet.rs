//! Devices over a few UDP sockets against a separately running network,
//! on the wall clock: the one fleet core ([`Devices`]) configured with a
//! real clock and UDP. `nido sim` runs a fleet of thousands with it, `nido
//! device run` a fleet of one; a [`Link`] model may add faults in both
//! directions.
//!
//! The network may be several `serve` instances of one network (one
//! database): device `i` always talks to instance `i mod n`, as a RAN keeps
//! a UE with the AMF of a set that serves it, and a datagram from any other
//! address is dropped.
//!
//! It measures with the core's [`nido_sim::Metrics`] and reports in the
//! one fleet [`Report`]: every figure means what it means in `nido demo`.
//!
//! The loop waits for the first of: a datagram, a device timer, a burst,
//! a link delivery, an arrival, or 100 ms (the driver's `tick` runs at
//! least that often). With one socket it blocks on it; with several it
//! polls them every 500 µs while idle.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use nido_sim::devices::{Devices, arrival};
use nido_sim::report::Report;
use nido_sim::{Direction, Link};
use nido_ue::{DataError, Device, DeviceState, Transmit};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Device arrivals per second (all at once if `None`).
    pub rate: Option<f64>,
    /// Give up after this long (`None`: run until settled or stopped).
    pub timeout: Option<Duration>,
    /// Return once every device is settled ([`Devices::settled`]: with a
    /// burst schedule, an active device has sent its bursts and had them
    /// accepted); without it only `timeout` or the driver's tick end the
    /// run.
    pub until_settled: bool,
}

/// What the driver's tick says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep running.
    Continue,
    /// Return now.
    Stop,
}

/// The fleet as the driver's tick sees it: the time, the devices, and a
/// way to make one send.
pub struct Round<'a> {
    /// The wall clock at this round.
    pub now: SystemTime,
    devices: &'a mut Devices,
    link: &'a mut Link,
}

impl Round<'_> {
    /// The devices.
    pub fn devices(&self) -> &Devices {
        self.devices
    }

    /// Device `i`.
    pub fn device(&self, i: usize) -> &Device {
        self.devices.get(i)
    }

    /// Device `i` sends `data` now.
    ///
    /// # Errors
    /// What [`Device::send_data`] refuses.
    pub fn send_data(&mut self, i: usize, data: &[u8]) -> Result<(), DataError> {
        let now = self.now;
        self.devices.send_data(i, now, data, uplink(now, self.link))
    }
}

/// UDP sockets for a fleet reaching `network`: `n` of them (at least one)
/// on unspecified addresses of its family.
///
/// # Errors
/// Socket errors.
pub fn fleet_sockets(network: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    let bind: SocketAddr = if network.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    (0..n.max(1)).map(|_| crate::bind_udp(bind)).collect()
}

/// Sends one NAS PDU on link connection `conn` to `to`, encoded into
/// `out` (the driver's one buffer; a full socket buffer drops the
/// datagram, as a radio would).
fn send_nas(
    socket: &UdpSocket,
    to: SocketAddr,
    conn: u64,
    pdu: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    out.clear();
    Datagram::nas(conn, pdu).encode(out);
    match socket.send_to(out, to) {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(()),
    }
}

/// Where the devices send: into the link, uplink.
fn uplink(now: SystemTime, link: &mut Link) -> impl FnMut(u64, Transmit) + '_ {
    move |conn, t| link.send(now, Direction::Uplink, conn, t.pdu)
}

/// Runs `devices` (their connection ids as [`Devices::new`] set them)
/// against `networks` (device `i` against instance `i mod networks.len()`)
/// over `sockets` (device `i` on socket `i mod sockets.len()`; a network
/// answers a device at the address it last heard it from, so a driver
/// that runs a device again keeps its socket). Devices arrive at
/// `options.rate`: one that is off powers on, one already on (a driver
/// ran it before, or powered it on again) sends what it has to send.
/// The run lasts until every device is settled and the link has sent on
/// all it holds (with `options.until_settled`), `tick`
/// says stop, or `options.timeout` passes. `tick` runs after every round,
/// at least every 100 ms: a progress display, or a driver's own schedule
/// and stop rule. The report's latencies are wall-clock (`clock: "wall"`);
/// its `refused` devices are the settled ones that are not active.
///
/// # Errors
/// `networks` empty or mixing IPv4 and IPv6 (`InvalidInput`), and socket
/// errors.
pub fn run_fleet(
    devices: &mut Devices,
    networks: &[SocketAddr],
    sockets: &[UdpSocket],
    mut link: Link,
    options: &FleetOptions,
    mut tick: impl FnMut(&mut Round<'_>) -> Control,
) -> io::Result<Report> {
    let n = devices.len();
    let Some(first) = networks.first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no network address",
        ));
    };
    if networks.iter().any(|a| a.is_ipv4() != first.is_ipv4()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "network addresses mix IPv4 and IPv6",
        ));
    }
    let network_of = |i: usize| networks[i % networks.len()];
    if sockets.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no socket"));
    }
    for socket in sockets {
        socket.set_nonblocking(true)?;
    }
    let start = Instant::now();
    let wall_start = SystemTime::now();
    let mut powered = 0usize;
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_PAYLOAD);
    // Device `i`'s uplink PDU leaves on its socket for its network.
    let mut send_uplink = |i: usize, conn: u64, pdu: &[u8]| {
        send_nas(
            &sockets[i % sockets.len()],
            network_of(i),
            conn,
            pdu,
            &mut out,
        )
    };
    loop {
        let now = SystemTime::now();
        let elapsed = start.elapsed();
        // Arrivals.
        while powered < n && arrival(powered, options.rate) <= elapsed {
            if devices.get(powered).state() == DeviceState::Off {
                devices.power_on(powered, now, uplink(now, &mut link));
            } else {
                devices.pump(powered, now, uplink(now, &mut link));
            }
            powered += 1;
        }
        // The link: uplink datagrams due go out, downlink ones reach devices.
        while let Some(d) = link.poll_delivery(now) {
            match d.direction {
                Direction::Uplink => {
                    if let Some(i) = devices.index_of(d.conn) {
                        send_uplink(i, d.conn, &d.pdu)?;
                    }
                }
                Direction::Downlink => {
                    devices.deliver(d.conn, now, &d.pdu, uplink(now, &mut link));
                }
            }
        }
        // Datagrams from the network enter the link (downlink faults).
        let mut received = 0;
        for socket in sockets {
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        // Only the device's own instance speaks for it.
                        if let Ok(d) = Datagram::read(&buf[..len])
                            && d.kind == Kind::Nas
                            && let Some(i) = devices.index_of(d.conn)
                            && from == network_of(i)
                        {
                            devices
                                .metrics_mut()
                                .pdu(Direction::Downlink, i, d.payload.len());
                            link.send(now, Direction::Downlink, d.conn, d.payload.to_vec());
                            received += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Device timers and bursts due.
        devices.fire_due(now, uplink(now, &mut link));
        let mut round = Round {
            now,
            devices: &mut *devices,
            link: &mut link,
        };
        if tick(&mut round) == Control::Stop
            || (options.until_settled && devices.settled() == n && link.in_flight() == 0)
            || options.timeout.is_some_and(|t| start.elapsed() > t)
        {
            break;
        }
        if received > 0 {
            continue;
        }
        // Nothing came: wait for what is due first (at most 100 ms).
        let now = SystemTime::now();
        let next_arrival = (powered < n).then(|| wall_start + arrival(powered, options.rate));
        let next = [devices.next_due(), link.next_delivery(), next_arrival]
            .into_iter()
            .flatten()
            .min();
        let wait = next
            .map_or(Duration::from_millis(100), |at| {
                at.duration_since(now).unwrap_or_default()
            })
            .min(Duration::from_millis(100));
        if wait < Duration::from_millis(1) {
            continue;
        }
        if let [socket] = sockets {
            // Blocks until a datagram or the wait ends; it is read in the
            // next round.
            socket.set_nonblocking(false)?;
            socket.set_read_timeout(Some(wait))?;
            let peeked = socket.peek_from(&mut buf);
            socket.set_nonblocking(true)?;
            match peeked {
                Err(e) if !crate::network::would_block(&e) => return Err(e),
                _ => {}
            }
        } else {
            std::thread::sleep(wait.min(Duration::from_micros(500)));
        }
    }
    // What the devices sent last (a REGISTRATION COMPLETE, a burst) and
    // the link still holds goes out now, whatever its delay.
    let end = SystemTime::now() + Duration::from_secs(24 * 3600);
    while let Some(d) = link.poll_delivery(end) {
        if d.direction == Direction::Uplink
            && let Some(i) = devices.index_of(d.conn)
        {
            send_uplink(i, d.conn, &d.pdu)?;
        }
    }
    let wall = start.elapsed();
    let mut r = Report {
        clock: "wall".to_owned(),
        store: "remote".to_owned(),
        wall_s: wall.as_secs_f64(),
        threads: 1,
        link: link.stats().into(),
        ..Report::default()
    };
    devices.fill_report(&mut r);
    r.onboardings_per_s = r.active as f64 / wall.as_secs_f64().max(1e-9);
    r.burst.sent = devices.metrics().bursts_sent;
    Ok(r)
}
