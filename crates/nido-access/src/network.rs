//! The network's driver: one UDP socket for every device, the clock, and a
//! [`Network`] fed from it.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use nido_net::{ConnectionId, Network, NetworkEvent};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};

/// How the driver bounds its work and memory.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Peers (connections) remembered at most; datagrams of new
    /// connections beyond it are dropped until contexts end.
    pub max_connections: usize,
    /// Datagrams read before timers run and replies go out.
    pub batch: usize,
    /// The longest the driver sleeps waiting for a datagram.
    pub tick: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 1 << 20,
            batch: 256,
            tick: Duration::from_millis(100),
        }
    }
}

/// What the driver did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams dropped because `max_connections` peers were known.
    pub over_capacity: u64,
    /// Registrations refused by admission control (#22, congestion).
    pub congested: u64,
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Serves `network` on `socket` until `stop` is set; returns the counts.
/// Stopping abandons the procedures in flight cleanly: the store holds only
/// committed state, devices time out and register again elsewhere or later.
pub fn serve(
    network: &mut Network,
    socket: &UdpSocket,
    options: &ServeOptions,
    stop: &AtomicBool,
    on_event: impl FnMut(&NetworkEvent),
) -> io::Result<ServeStats> {
    serve_with(network, socket, options, stop, on_event, |_| {})
}

/// [`serve`], calling `on_round` with the network before each round (at
/// least every `options.tick`): where a driver feeds it inputs other than
/// datagrams, such as a new trust store ([`crate::trust::TrustWatch`]).
pub fn serve_with(
    network: &mut Network,
    socket: &UdpSocket,
    options: &ServeOptions,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&NetworkEvent),
    mut on_round: impl FnMut(&mut Network),
) -> io::Result<ServeStats> {
    let mut peers: HashMap<ConnectionId, SocketAddr> = HashMap::new();
    let mut stats = ServeStats::default();
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out = Vec::with_capacity(2048);
    let mut deferred = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        on_round(network);
        let now = SystemTime::now();
        let wait = network
            .poll_timeout()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
            .unwrap_or(options.tick)
            .clamp(Duration::from_millis(1), options.tick);
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(wait))?;
        for n in 0..options.batch {
            if n == 1 {
                socket.set_nonblocking(true)?;
            }
            let (len, from) = match socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e),
            };
            stats.received += 1;
            let Ok(datagram) = Datagram::read(&buf[..len]) else {
                stats.malformed += 1;
                continue;
            };
            let conn = ConnectionId(datagram.conn);
            match datagram.kind {
                Kind::Nas => {
                    if !peers.contains_key(&conn) && peers.len() >= options.max_connections {
                        peers.retain(|c, _| network.state_of(*c).is_some());
                        if peers.len() >= options.max_connections {
                            stats.over_capacity += 1;
                            continue;
                        }
                    }
                    peers.insert(conn, from);
                    network.handle_pdu(SystemTime::now(), conn, datagram.payload);
                    // The audit trail right after the datagram, one commit:
                    // changes of subscriptions were written with their
                    // entries; a kill here loses at most the entries of
                    // events that changed nothing stored.
                    record(network, &mut on_event, &mut deferred, &mut stats, false);
                }
                Kind::Release => {
                    peers.remove(&conn);
                }
                Kind::Unknown(_) => stats.malformed += 1,
            }
        }
        network.handle_timeout(SystemTime::now());
        record(network, &mut on_event, &mut deferred, &mut stats, true);
        while let Some(t) = network.poll_transmit() {
            if let Some(addr) = peers.get(&t.conn) {
                out.clear();
                Datagram::nas(t.conn.0, &t.pdu).encode(&mut out);
                match socket.send_to(&out, addr) {
                    Ok(_) => stats.sent += 1,
                    Err(e) if would_block(&e) => {} // the link drops it; timers recover
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(stats)
}

/// Appends the events the network reported to the store's audit trail (one
/// transaction) and hands them to `on_event`. Events the store already
/// wrote with the change they report
/// ([`NetworkEvent::recorded_with_change`]) are not written again.
///
/// Congestion rejects ([`NetworkEvent::Congested`]) changed nothing and
/// come in storms: they wait in `deferred` for the next transaction (the
/// next datagram with another event, or the end of the round, `flush`),
/// so shedding load costs no durable commit per refused datagram.
fn record(
    network: &mut Network,
    on_event: &mut impl FnMut(&NetworkEvent),
    deferred: &mut Vec<NetworkEvent>,
    stats: &mut ServeStats,
    flush: bool,
) {
    let mut events = Vec::new();
    let mut urgent = false;
    while let Some(event) = network.poll_event() {
        let congested = matches!(event, NetworkEvent::Congested { .. });
        stats.congested += u64::from(congested);
        if !event.recorded_with_change() {
            urgent |= !congested;
            deferred.push(event.clone());
        }
        events.push(event);
    }
    if !deferred.is_empty() && (urgent || flush) {
        let at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        network.store_mut().record_events(at_unix, deferred);
        deferred.clear();
    }
    events.iter().for_each(on_event);
}
