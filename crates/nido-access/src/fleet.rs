//! Many devices over a few UDP sockets against a separately running
//! network: the simulator's radio side. Each device is a sans-IO
//! [`Device`]; this loop owns the real clock, the sockets, a [`Link`] model
//! that adds faults in both directions, and the arrival schedule.
//!
//! The network may be several `serve` instances of one network (one
//! database): device `i` always talks to instance `i mod n`, as a RAN keeps
//! a UE with the AMF of a set that serves it, and a datagram from any other
//! address is dropped.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use nido_sec::Cause;
use nido_sim::{Direction, Link};
use nido_ue::{Device, DeviceEvent, DeviceState, RejectMessage};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};
use crate::device::{GENERATION_BITS, connection_id};

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

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    /// Devices.
    pub devices: usize,
    /// Devices active at the end.
    pub active: usize,
    /// Devices refused: given up, or waiting T3247 after an unprotected
    /// refusal (`Device::refusal`).
    pub failed: usize,
    /// Bursts sent.
    pub bursts_sent: u64,
    /// Downlink data the devices received from their owners' applications
    /// (DL NAS TRANSPORT after a burst).
    pub downlinks_received: u64,
    /// Wall time until every device was active or failed (or the timeout).
    pub elapsed: Duration,
    /// Per-device time from power-on to active, in arrival order.
    pub time_to_active: Vec<Option<Duration>>,
    /// Per device, how long each phase of the design doc took the first
    /// time through: A (power-on to registered for onboarding), B
    /// (provisioning and leaving the onboarding registration), C
    /// (registration with 5G-AKA, to active), D (the data session, to the
    /// first burst sent).
    pub phases: Vec<[Option<Duration>; 4]>,
    /// Uplink NAS messages and octets sent by all devices.
    pub uplink: (u64, u64),
    /// Downlink NAS messages and octets received by all devices.
    pub downlink: (u64, u64),
    /// REGISTRATION REJECTs with #22 (congestion) the devices received:
    /// the network's admission control (or an unreachable store) sent
    /// them away for T3346.
    pub congestion_rejects: u64,
    /// Devices not active at the end, by why ([`failure_reason`]): the last
    /// failure each heard ([`DeviceEvent::failure`], e.g. `"reject #22"`,
    /// `"security mode: MAC failure"`), else `"no answer"` if the network
    /// never sent it anything, else `"incomplete (<state>)"`. The counts
    /// add up to `devices - active`.
    pub failures: BTreeMap<String, u64>,
}

/// Why a device that is not active at the end of a run did not get there:
/// the `last` failure it heard, else `"no answer"` when nothing ever came
/// from the network (`heard` false), else `"incomplete (<state>)"`.
pub fn failure_reason(last: Option<&str>, heard: bool, state: DeviceState) -> String {
    match (last, heard) {
        (Some(reason), _) => reason.to_owned(),
        (None, false) => "no answer".to_owned(),
        (None, true) => format!("incomplete ({state:?})"),
    }
}

/// Runs `devices` against `networks` (device `i` against instance
/// `i mod networks.len()`) until every device is active (and has sent its
/// bursts) or failed, or `options.timeout` passes.
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
) -> io::Result<FleetReport> {
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
    let mut powered_at = vec![None; n];
    let mut report = FleetReport {
        devices: n,
        time_to_active: vec![None; n],
        phases: vec![[None; 4]; n],
        ..FleetReport::default()
    };
    let mut bursts_left = vec![options.bursts; n];
    // Bursts due, by time; a device is in it at most once.
    let mut bursts_due: BinaryHeap<Reverse<(SystemTime, usize)>> = BinaryHeap::new();
    let mut burst_scheduled = vec![false; n];
    let mut next_burst = vec![None::<SystemTime>; n];
    // Bookkeeping is per device touched, never a walk over the fleet.
    let mut touched: Vec<usize> = Vec::new();
    let mut settled_flag = vec![false; n];
    let mut settled = 0usize;
    // When each phase ended, per device (the first time).
    let mut phase_end: Vec<[Option<Instant>; 4]> = vec![[None; 4]; n];
    // Per device, the last failure it reported and whether the network
    // ever answered it.
    let mut last_failure: Vec<Option<String>> = vec![None; n];
    let mut heard = vec![false; n];
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::with_capacity(2048);
    let pump = |i: usize,
                device: &mut Device,
                link: &mut Link,
                timers: &mut BinaryHeap<Reverse<(SystemTime, usize)>>,
                report: &mut FleetReport,
                touched: &mut Vec<usize>,
                phase_end: &mut [[Option<Instant>; 4]],
                last_failure: &mut [Option<String>],
                now: SystemTime| {
        while let Some(t) = device.poll_transmit() {
            report.uplink.0 += 1;
            report.uplink.1 += t.pdu.len() as u64;
            link.send(
                now,
                Direction::Uplink,
                connection_id(i as u64, t.connection),
                t.pdu,
            );
        }
        while let Some(event) = device.poll_event() {
            if let Some(reason) = event.failure() {
                last_failure[i] = Some(reason);
            }
            let ended = match event {
                DeviceEvent::State {
                    to: DeviceState::Provisioning,
                    ..
                } => Some(0),
                DeviceEvent::State {
                    to: DeviceState::Registering,
                    ..
                } => Some(1),
                DeviceEvent::State {
                    to: DeviceState::Active,
                    ..
                } => Some(2),
                DeviceEvent::BurstSent { .. } => Some(3),
                DeviceEvent::Downlink { .. } => {
                    report.downlinks_received += 1;
                    None
                }
                DeviceEvent::Rejected {
                    message: RejectMessage::RegistrationReject,
                    cause: Cause::CONGESTION,
                } => {
                    report.congestion_rejects += 1;
                    None
                }
                _ => None,
            };
            if let Some(p) = ended {
                phase_end[i][p].get_or_insert_with(Instant::now);
            }
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
            powered_at[powered] = Some(Instant::now());
            pump(
                powered,
                &mut devices[powered],
                &mut link,
                &mut timers,
                &mut report,
                &mut touched,
                &mut phase_end,
                &mut last_failure,
                now,
            );
            powered += 1;
        }
        // The link: uplink datagrams due go out, downlink ones reach devices.
        while let Some(d) = link.poll_delivery(now) {
            let i = usize::try_from(d.conn >> GENERATION_BITS).unwrap_or(usize::MAX);
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
                        heard[i] = true;
                        report.downlink.0 += 1;
                        report.downlink.1 += d.pdu.len() as u64;
                        device.handle_pdu(now, &d.pdu);
                        pump(
                            i,
                            device,
                            &mut link,
                            &mut timers,
                            &mut report,
                            &mut touched,
                            &mut phase_end,
                            &mut last_failure,
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
                        if let Ok(d) = Datagram::read(&buf[..len])
                            && d.kind == Kind::Nas
                            && usize::try_from(d.conn >> GENERATION_BITS)
                                .is_ok_and(|i| i < n && from == network_of(i))
                        {
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
                    &mut report,
                    &mut touched,
                    &mut phase_end,
                    &mut last_failure,
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
                report.bursts_sent += 1;
                next_burst[i] = Some(now + options.burst_every);
                pump(
                    i,
                    device,
                    &mut link,
                    &mut timers,
                    &mut report,
                    &mut touched,
                    &mut phase_end,
                    &mut last_failure,
                    now,
                );
            }
        }
        // Bookkeeping of the devices touched in this round.
        touched.sort_unstable();
        touched.dedup();
        for i in touched.drain(..) {
            let state = devices[i].state();
            if state == DeviceState::Active {
                if report.time_to_active[i].is_none() {
                    report.time_to_active[i] = powered_at[i].map(|t| t.elapsed());
                }
                if bursts_left[i] > 0 && !burst_scheduled[i] {
                    let at = next_burst[i].map_or(now, |t| t.max(now));
                    bursts_due.push(Reverse((at, i)));
                    burst_scheduled[i] = true;
                }
            }
            // Done once its last burst left and was answered (a CONTROL
            // PLANE SERVICE REQUEST's SERVICE ACCEPT).
            let is_settled = (state == DeviceState::Active
                && bursts_left[i] == 0
                && !devices[i].bursts_pending())
                || state == DeviceState::Failed
                || devices[i].refusal().is_some();
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
    report.elapsed = start.elapsed();
    for (i, ends) in phase_end.iter().enumerate() {
        let mut from = powered_at[i];
        for (p, end) in ends.iter().enumerate() {
            report.phases[i][p] = match (from, *end) {
                (Some(a), Some(b)) if b >= a => Some(b - a),
                _ => None,
            };
            from = *end;
        }
    }
    report.active = devices
        .iter()
        .filter(|d| d.state() == DeviceState::Active)
        .count();
    report.failed = devices
        .iter()
        .filter(|d| d.state() == DeviceState::Failed || d.refusal().is_some())
        .count();
    for (i, device) in devices.iter().enumerate() {
        if device.state() != DeviceState::Active {
            let reason = failure_reason(last_failure[i].as_deref(), heard[i], device.state());
            *report.failures.entry(reason).or_default() += 1;
        }
    }
    Ok(report)
}
