//! Many devices over a few UDP sockets against a separately running
//! network: the simulator's radio side. Each device is a sans-IO
//! [`Device`]; this loop owns the real clock, the sockets, a [`Link`] model
//! that adds faults in both directions, and the arrival schedule.
//!
//! The network may be several `serve` instances of one network (one
//! database): device `i` always talks to instance `i mod n`, as a RAN keeps
//! a UE with the AMF of a set that serves it, and a datagram from any other
//! address is dropped.
//!
//! It measures with the harness's [`Metrics`] (on the wall clock) and
//! reports in the one fleet [`Report`]: every figure means what it means
//! in `nido demo`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use nido_sim::metrics::Metrics;
use nido_sim::report::{self, Report};
use nido_sim::{Direction, Link, connection_id, device_of};
use nido_ue::{Device, DeviceState};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// UDP sockets the devices are spread over.
    pub sockets: usize,
    /// Device arrivals per second (all at once if `None`).
    pub rate: Option<f64>,
    /// Bursts each device sends once active (one per `burst_every`).
    pub bursts: u32,
    /// Time between a device's bursts.
    pub burst_every: Duration,
    /// The burst payload; each burst appends `;n=K`, its number from 1,
    /// so a receiver tells a device's retransmission (same K) from its
    /// next burst.
    pub payload: Vec<u8>,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Runs `devices` against `networks` (device `i` against instance
/// `i mod networks.len()`) until every device is settled
/// ([`Metrics::settled`]) with its bursts sent, or `options.timeout`
/// passes. The report's latencies are wall-clock (`clock: "wall"`); its
/// `refused` devices are the settled ones that are not active (one entry
/// per device: serial, the reason it reported, state).
///
/// # Errors
/// `networks` empty or mixing IPv4 and IPv6 (`InvalidInput`), and socket
/// errors.
pub fn run_fleet(
    mut devices: Vec<Device>,
    networks: &[SocketAddr],
    mut link: Link,
    options: &FleetOptions,
    mut progress: impl FnMut(usize, usize),
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
    let bind: SocketAddr = if first.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sockets: Vec<UdpSocket> = (0..options.sockets.max(1))
        .map(|_| {
            let s = crate::bind_udp(bind)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<io::Result<_>>()?;
    let start = Instant::now();
    let arrival = |i: usize| match options.rate {
        Some(r) if r > 0.0 => Duration::from_secs_f64(i as f64 / r),
        _ => Duration::ZERO,
    };
    let mut timers: BinaryHeap<Reverse<(SystemTime, usize)>> = BinaryHeap::new();
    let mut powered = 0usize;
    let mut metrics = Metrics::new(SystemTime::now());
    metrics.add_devices(n);
    let mut bursts_left = vec![options.bursts; n];
    // Bursts due, by time; a device is in it at most once.
    let mut bursts_due: BinaryHeap<Reverse<(SystemTime, usize)>> = BinaryHeap::new();
    let mut burst_scheduled = vec![false; n];
    let mut next_burst = vec![None::<SystemTime>; n];
    // Bookkeeping is per device touched, never a walk over the fleet.
    let mut touched: Vec<usize> = Vec::new();
    let mut settled_flag = vec![false; n];
    let mut settled = 0usize;
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::with_capacity(2048);
    // Moves what device `i` wants sent into the link, its events into the
    // metrics, and its timer into the heap.
    let pump = |i: usize,
                device: &mut Device,
                link: &mut Link,
                timers: &mut BinaryHeap<Reverse<(SystemTime, usize)>>,
                metrics: &mut Metrics,
                touched: &mut Vec<usize>,
                now: SystemTime| {
        // Events first: what they say (a burst left) decides how the PDUs
        // that went with them count.
        while let Some(event) = device.poll_event() {
            metrics.device_event(now, i, &event);
        }
        while let Some(t) = device.poll_transmit() {
            metrics.pdu(Direction::Uplink, i, t.pdu.len());
            link.send(
                now,
                Direction::Uplink,
                connection_id(i as u64, t.connection),
                t.pdu,
            );
        }
        if let Some(at) = device.poll_timeout() {
            timers.push(Reverse((at, i)));
        }
        touched.push(i);
    };
    loop {
        let now = SystemTime::now();
        let elapsed = start.elapsed();
        // Arrivals.
        while powered < n && arrival(powered) <= elapsed {
            devices[powered].power_on(now);
            pump(
                powered,
                &mut devices[powered],
                &mut link,
                &mut timers,
                &mut metrics,
                &mut touched,
                now,
            );
            powered += 1;
        }
        // The link: uplink datagrams due go out, downlink ones reach devices.
        while let Some(d) = link.poll_delivery(now) {
            let i = device_of(d.conn);
            match d.direction {
                Direction::Uplink => {
                    out.clear();
                    Datagram::nas(d.conn, &d.pdu).encode(&mut out);
                    let socket = &sockets[i % sockets.len()];
                    if let Err(e) = socket.send_to(&out, network_of(i))
                        && e.kind() != io::ErrorKind::WouldBlock
                    {
                        return Err(e);
                    }
                }
                Direction::Downlink => {
                    if let Some(device) = devices.get_mut(i)
                        && connection_id(i as u64, device.connection()) == d.conn
                    {
                        device.handle_pdu(now, &d.pdu);
                        pump(
                            i,
                            device,
                            &mut link,
                            &mut timers,
                            &mut metrics,
                            &mut touched,
                            now,
                        );
                    }
                }
            }
        }
        // Datagrams from the network enter the link (downlink faults).
        let mut received = 0;
        for socket in &sockets {
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        // Only the device's own instance speaks for it.
                        let i = Datagram::read(&buf[..len])
                            .ok()
                            .filter(|d| d.kind == Kind::Nas)
                            .map(|d| (device_of(d.conn), d));
                        if let Some((i, d)) = i
                            && i < n
                            && from == network_of(i)
                        {
                            metrics.pdu(Direction::Downlink, i, d.payload.len());
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
        // Device timers.
        while let Some(Reverse((at, i))) = timers.peek().copied() {
            if at > now {
                break;
            }
            timers.pop();
            if devices[i].poll_timeout() == Some(at) {
                devices[i].handle_timeout(now);
                pump(
                    i,
                    &mut devices[i],
                    &mut link,
                    &mut timers,
                    &mut metrics,
                    &mut touched,
                    now,
                );
            }
        }
        // Bursts due (a device that left `Active` meanwhile is scheduled
        // again when it is back).
        while let Some(Reverse((at, i))) = bursts_due.peek().copied() {
            if at > now {
                break;
            }
            bursts_due.pop();
            burst_scheduled[i] = false;
            let device = &mut devices[i];
            let mut payload = options.payload.clone();
            payload.extend_from_slice(
                format!(";n={}", options.bursts - bursts_left[i] + 1).as_bytes(),
            );
            if device.state() == DeviceState::Active
                && bursts_left[i] > 0
                && device.send_data(now, &payload).is_ok()
            {
                bursts_left[i] -= 1;
                next_burst[i] = Some(now + options.burst_every);
                pump(
                    i,
                    device,
                    &mut link,
                    &mut timers,
                    &mut metrics,
                    &mut touched,
                    now,
                );
            }
        }
        // Bookkeeping of the devices touched in this round.
        touched.sort_unstable();
        touched.dedup();
        for i in touched.drain(..) {
            let state = devices[i].state();
            if state == DeviceState::Active && bursts_left[i] > 0 && !burst_scheduled[i] {
                let at = next_burst[i].map_or(now, |t| t.max(now));
                bursts_due.push(Reverse((at, i)));
                burst_scheduled[i] = true;
            }
            // Done once settled with its last burst sent and answered.
            let is_settled = metrics.settled(i, &devices[i])
                && (state != DeviceState::Active || bursts_left[i] == 0);
            if is_settled != settled_flag[i] {
                settled_flag[i] = is_settled;
                if is_settled {
                    settled += 1;
                } else {
                    settled -= 1;
                }
            }
        }
        progress(settled, n);
        if settled == n || start.elapsed() > options.timeout {
            break;
        }
        let next_burst_due = bursts_due.peek().is_some_and(|Reverse((t, _))| *t <= now);
        if received == 0
            && !next_burst_due
            && link.next_delivery().is_none_or(|t| t > SystemTime::now())
        {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let wall = start.elapsed();
    let mut r = Report {
        devices: n as u64,
        clock: "wall".to_owned(),
        store: "remote".to_owned(),
        wall_s: wall.as_secs_f64(),
        threads: 1,
        link: link.stats().into(),
        failures: metrics.failures(devices.iter().map(Device::state).enumerate()),
        ..Report::default()
    };
    for (i, device) in devices.iter().enumerate() {
        let state = device.state();
        if state == DeviceState::Active {
            r.active += 1;
        } else if metrics.settled(i, device) {
            let reason = metrics.failure(i, state);
            r.refused.total += 1;
            *r.refused.by_reason.entry("refused".to_owned()).or_default() += 1;
            r.refused.devices.push(report::RefusedDevice {
                device: device.serial().to_owned(),
                reason: "refused".to_owned(),
                cause: None,
                expected_cause: None,
                network_reason: reason,
                state: format!("{state:?}"),
            });
        } else {
            r.incomplete += 1;
        }
    }
    r.good_devices = r.active;
    r.onboardings_per_s = r.active as f64 / wall.as_secs_f64().max(1e-9);
    metrics.fill(&mut r);
    r.burst.sent = metrics.bursts_sent;
    r.burst.payload_bytes = options.payload.len() as u64;
    Ok(r)
}
