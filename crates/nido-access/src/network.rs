//! The network's driver: one UDP socket for every device, the clock, and a
//! [`Network`] fed from it.
//!
//! Connection ids travel in clear, so the driver does not trust them alone
//! (issue #17, finding 4): a connection is bound to the address of its
//! first datagram, and moves to another address only with a PDU that
//! passed NAS integrity from there ([`PduVerdict::Verified`]); a plain PDU
//! from another address never reaches the network; a release is honoured
//! only from the bound address. What an unauthenticated sender
//! causes costs no durable write (finding 6): discarded PDUs are counted,
//! never audited; refusals of identities nobody authenticated (#22, a SUCI
//! that does not de-conceal, a failed authentication, an abandoned
//! procedure) are audited from a token bucket at the end of the round.
//!
//! A system-information request ([`Kind::SystemInformationRequest`]) is
//! answered at once with the network's identity ([`SystemInformation`]):
//! it reaches no [`Network`], binds no address, allocates nothing (the
//! answer is encoded once) and writes nothing; the answer is no larger than
//! the request, and the answers a driver sends are bounded by a token
//! bucket ([`ServeOptions::system_information`]), so the network is no
//! amplifier and a flood of requests costs at most that many sends.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use nido_net::amf::{PduVerdict, RateLimit, TokenBucket};
use nido_net::{ConnectionId, Network, NetworkEvent};

use crate::commit::Gate;
use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};
use crate::sysinfo::SystemInformation;

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
    /// How many audit entries events without an authenticated identity
    /// may write ([`unauthenticated`]: congestion rejects, refusals before
    /// any identity was authenticated, abandoned procedures): anyone can
    /// cause them, so their rows are bounded (the rest are counted in
    /// [`ServeStats::unaudited`]). The trade-off: a flood hides the
    /// refusals of honest devices in it from the audit trail (they still
    /// reach `on_event`). 5,000 at once, then 5 per second.
    pub refusal_audit: RateLimit,
    /// How many system-information requests the driver answers: anyone can
    /// send them from any (spoofed) address, so the answers are bounded
    /// (the rest are counted in [`ServeStats::system_information_dropped`];
    /// a device asks again after its back-off). 10,000 at once, then 2,000
    /// per second.
    pub system_information: RateLimit,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 1 << 20,
            batch: 256,
            tick: Duration::from_millis(100),
            refusal_audit: RateLimit {
                burst: 5_000,
                per_second: 5,
            },
            system_information: RateLimit {
                burst: 10_000,
                per_second: 2_000,
            },
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
    /// PDUs the network discarded without effect (undecodable, unknown
    /// connection, failed integrity, replayed, not allowed): counted, never
    /// audited.
    pub discarded: u64,
    /// Datagrams for a connection bound to another address that did not
    /// move it (no NAS integrity), and releases from another address.
    pub foreign: u64,
    /// Events without an authenticated identity not written to the audit
    /// trail because [`ServeOptions::refusal_audit`] was spent.
    pub unaudited: u64,
    /// Transactions the driver made to append to the audit trail.
    pub audit_commits: u64,
    /// System-information requests answered.
    pub system_information: u64,
    /// System-information requests not answered because
    /// [`ServeOptions::system_information`] was spent.
    pub system_information_dropped: u64,
}

impl ServeStats {
    /// Adds `other`'s counts (shards of one server).
    pub fn add(&mut self, other: &Self) {
        self.received += other.received;
        self.malformed += other.malformed;
        self.sent += other.sent;
        self.over_capacity += other.over_capacity;
        self.congested += other.congested;
        self.discarded += other.discarded;
        self.foreign += other.foreign;
        self.unaudited += other.unaudited;
        self.audit_commits += other.audit_commits;
        self.system_information += other.system_information;
        self.system_information_dropped += other.system_information_dropped;
    }
}

/// Whether `event` names no identity anyone authenticated, so that anyone
/// able to send a datagram can cause it: congestion rejects, refusals
/// before an identity was authenticated (a SUCI that does not de-conceal,
/// EAP-TLS or 5G-AKA failing, the UE refusing a challenge), abandoned
/// procedures. Their audit entries are bounded by
/// [`ServeOptions::refusal_audit`]. [`NetworkEvent::Discarded`] is never
/// audited at all.
pub fn unauthenticated(event: &NetworkEvent) -> bool {
    matches!(
        event,
        NetworkEvent::Congested { .. }
            | NetworkEvent::Refused { device: None, .. }
            | NetworkEvent::ProcedureAbandoned { .. }
    )
}

/// The driver's answer to system-information requests: the datagram
/// encoded once (only the transaction id changes), and the token bucket
/// that bounds how many go out.
struct Beacon {
    reply: Vec<u8>,
    bucket: TokenBucket,
}

impl Beacon {
    /// The answer of `network`; `None` (requests are then counted as
    /// malformed) if its identity cannot be announced, which a
    /// [`nido_prov::package::ServingNetwork`] built by its constructor
    /// always can.
    fn new(network: &Network, limit: RateLimit) -> Option<Self> {
        let info = SystemInformation::of(network.serving_network()).ok()?;
        let mut payload = Vec::with_capacity(crate::sysinfo::MAX_LEN);
        info.encode(&mut payload);
        let reply = Datagram {
            kind: Kind::SystemInformation,
            conn: 0,
            payload: &payload,
        }
        .to_vec();
        Some(Self {
            reply,
            bucket: TokenBucket::new(limit),
        })
    }

    /// Answers the request with transaction id `conn` from `from` (a
    /// datagram [`Datagram::read`] accepted, so of the padded size).
    fn answer(
        &mut self,
        socket: &UdpSocket,
        from: SocketAddr,
        conn: u64,
        stats: &mut ServeStats,
    ) -> io::Result<()> {
        if !self.bucket.take(SystemTime::now()) {
            stats.system_information_dropped += 1;
            return Ok(());
        }
        self.reply[2..HEADER_LEN].copy_from_slice(&conn.to_be_bytes());
        stats.system_information += 1;
        stats.sent += 1;
        crate::batch_io::send_all(socket, &[(from, &self.reply)]).map(|_| ())
    }
}

/// Whether a socket call only found nothing to do (no datagram before the
/// timeout, or a signal): every driver loops on.
pub(crate) fn would_block(e: &io::Error) -> bool {
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
/// The network's store commits every write at once: use
/// [`serve_staged`] for a network over a [`nido_net::Stage`].
pub fn serve_with(
    network: &mut Network,
    socket: &UdpSocket,
    options: &ServeOptions,
    stop: &AtomicBool,
    on_event: impl FnMut(&NetworkEvent),
    on_round: impl FnMut(&mut Network),
) -> io::Result<ServeStats> {
    run(
        network,
        Source::socket(socket)?,
        Replies { socket, gate: None },
        options,
        stop,
        on_event,
        on_round,
    )
}

/// [`serve_with`] for a network whose store is `gate`'s [`nido_net::Stage`]
/// (issue #11): its writes are committed in groups by a
/// [`crate::commit::Committer`] the caller runs, and every reply goes
/// through `gate`, which sends it once the writes issued before it are
/// durable. When the committer abandons a group, the network forgets its
/// UE contexts at the next round (what a crash would lose).
pub fn serve_staged(
    network: &mut Network,
    socket: &UdpSocket,
    options: &ServeOptions,
    stop: &AtomicBool,
    gate: &Gate,
    on_event: impl FnMut(&NetworkEvent),
    on_round: impl FnMut(&mut Network),
) -> io::Result<ServeStats> {
    run(
        network,
        Source::socket(socket)?,
        Replies {
            socket,
            gate: Some(gate),
        },
        options,
        stop,
        on_event,
        on_round,
    )
}

/// One AMF shard of [`serve_sharded`]: its network and its hooks.
pub struct Shard<'a> {
    /// The network (over a clone of the one [`nido_net::Stage`]).
    pub network: Network,
    /// Called with every event the shard's network reports.
    pub on_event: Box<dyn FnMut(&NetworkEvent) + Send + 'a>,
    /// Called with the network before each of the shard's rounds.
    pub on_round: Box<dyn FnMut(&mut Network) + Send + 'a>,
}

/// The shard of a connection: a connection's datagrams always reach the
/// same AMF shard (as a RAN keeps a UE on one AMF of a set).
pub fn shard_of(conn: u64, shards: usize) -> usize {
    // Fibonacci hashing: device numbers that share low bits still spread.
    let mixed = conn.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    (mixed % shards.max(1) as u64) as usize
}

/// [`serve_staged`] on every core: one thread reads the socket and hands
/// each datagram to the shard of its connection ([`shard_of`]); each shard
/// thread runs its own [`Network`] (its own UE contexts, timers and
/// address bindings) over the one stage, and sends its replies through
/// `gate`; the caller's committer commits for all of them. Returns the
/// shards' counts added up (a datagram dropped because its shard's queue
/// was full counts as `over_capacity`). With one shard it is
/// [`serve_staged`] on this thread.
pub fn serve_sharded(
    mut shards: Vec<Shard<'_>>,
    socket: &UdpSocket,
    options: &ServeOptions,
    stop: &AtomicBool,
    gate: &Gate,
) -> io::Result<ServeStats> {
    if shards.len() == 1
        && let Some(shard) = shards.pop()
    {
        let Shard {
            mut network,
            on_event,
            on_round,
        } = shard;
        return serve_staged(
            &mut network,
            socket,
            options,
            stop,
            gate,
            on_event,
            on_round,
        );
    }
    let n = shards.len();
    let beacon = shards
        .first()
        .and_then(|s| Beacon::new(&s.network, options.system_information));
    let per_shard = ServeOptions {
        max_connections: options.max_connections.div_ceil(n.max(1)),
        ..*options
    };
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for (i, shard) in shards.into_iter().enumerate() {
            // Datagrams travel in bundles: one hand-off (and at most one
            // wake-up of the shard) per socket drain, not per datagram.
            let (tx, rx) = mpsc::channel::<Bundle>();
            let queued = Arc::new(AtomicUsize::new(0));
            senders.push((tx, queued.clone()));
            let handle = std::thread::Builder::new()
                .name(format!("nido-amf-{i}"))
                .spawn_scoped(scope, move || {
                    let Shard {
                        mut network,
                        on_event,
                        on_round,
                    } = shard;
                    run(
                        &mut network,
                        Source::Channel(&rx, &queued, VecDeque::new()),
                        Replies {
                            socket,
                            gate: Some(gate),
                        },
                        &per_shard,
                        stop,
                        on_event,
                        on_round,
                    )
                })?;
            handles.push(handle);
        }
        let mut reader = ServeStats::default();
        // The shards are instances of one network: the reader answers
        // system information itself, so a request never crosses threads.
        let mut beacon = beacon;
        let mut receiver = crate::batch_io::Receiver::new();
        let mut bundles: Vec<Bundle> = (0..n).map(|_| Vec::new()).collect();
        let mut failed = None;
        let mut published = (0, 0);
        // Blocking, with the tick as timeout: the first call of a round
        // waits for a datagram (`MSG_WAITFORONE`), the others take what is
        // queued (`MSG_DONTWAIT`); the socket's flags never change.
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(options.tick))?;
        while !stop.load(Ordering::Relaxed) {
            publish(gate, &reader, &mut published);
            let mut taken = 0;
            while taken < options.batch {
                let max = (options.batch - taken).min(crate::batch_io::PER_CALL);
                let got = match receiver.recv(socket, taken == 0, max) {
                    Ok(got) => got,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                if got == 0 {
                    break;
                }
                taken += got;
                for i in 0..got {
                    let Some((datagram_bytes, from)) = receiver.get(i) else {
                        continue;
                    };
                    let Ok(datagram) = Datagram::read(datagram_bytes) else {
                        reader.received += 1;
                        reader.malformed += 1;
                        continue;
                    };
                    if datagram.kind == Kind::SystemInformationRequest {
                        reader.received += 1;
                        match beacon.as_mut() {
                            Some(b) => {
                                if let Err(e) = b.answer(socket, from, datagram.conn, &mut reader) {
                                    failed = Some(e);
                                    break;
                                }
                            }
                            None => reader.malformed += 1,
                        }
                        continue;
                    }
                    bundles[shard_of(datagram.conn, n)].push((from, datagram_bytes.to_vec()));
                }
                if failed.is_some() || got < max {
                    break;
                }
            }
            for (shard, bundle) in bundles.iter_mut().enumerate() {
                if bundle.is_empty() {
                    continue;
                }
                let count = bundle.len();
                let (tx, queued) = &senders[shard];
                // Bounded in datagrams, not hand-offs: a burst of arrivals
                // queues (the shard catches up; admission control refuses
                // with #22 what it cannot finish in time), a flood beyond
                // SHARD_QUEUE_DATAGRAMS is dropped.
                if queued.load(Ordering::Relaxed) + count > SHARD_QUEUE_DATAGRAMS {
                    bundle.clear();
                    reader.received += count as u64;
                    reader.over_capacity += count as u64;
                    continue;
                }
                queued.fetch_add(count, Ordering::Relaxed);
                if tx.send(std::mem::take(bundle)).is_err() {
                    queued.fetch_sub(count, Ordering::Relaxed);
                    reader.received += count as u64;
                    reader.over_capacity += count as u64;
                }
            }
            if failed.is_some() {
                break;
            }
        }
        // The shards stop on the same flag; dropping the senders ends a
        // shard waiting on an empty queue at its next tick.
        drop(senders);
        let mut total = reader;
        for handle in handles {
            let stats = handle
                .join()
                .map_err(|_| io::Error::other("an AMF shard panicked"))??;
            total.add(&stats);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(total),
        }
    })
}

/// Datagrams (with their senders) the reader thread of [`serve_sharded`]
/// hands to one shard at once.
type Bundle = Vec<(SocketAddr, Vec<u8>)>;

/// Datagrams a shard's queue holds before the reader drops what arrives
/// for it (counted as `over_capacity`): a few seconds of a shard's work,
/// so a fleet arriving at once waits instead of losing datagrams to
/// retransmission timers, and a flood stays bounded (NAS PDUs of a few
/// hundred octets: a few MB; datagrams of the largest size, 9 KB: 148 MB
/// per shard at most).
const SHARD_QUEUE_DATAGRAMS: usize = 16_384;

/// Where a round's datagrams come from: the socket itself, or (for a shard
/// of [`serve_sharded`]) the channel its reader thread fills, with the rest
/// of the bundle last taken from it.
enum Source<'a> {
    /// The socket, with the datagrams of its last `recvmmsg` and the next
    /// one to hand over.
    Socket(&'a UdpSocket, crate::batch_io::Receiver, usize),
    Channel(
        &'a mpsc::Receiver<Bundle>,
        &'a AtomicUsize,
        VecDeque<(SocketAddr, Vec<u8>)>,
    ),
}

impl<'a> Source<'a> {
    /// The socket as a source: blocking (its read timeout bounds a
    /// round's wait, `MSG_DONTWAIT` the rest), set once.
    fn socket(socket: &'a UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        Ok(Self::Socket(socket, crate::batch_io::Receiver::new(), 0))
    }

    /// The next datagram into `buf`: the first of a round waits up to
    /// `wait`, the others only take what is there.
    fn next(
        &mut self,
        first: bool,
        wait: Duration,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        match self {
            Self::Socket(socket, receiver, next) => {
                // What the last call received, then another call: the
                // first of a round waits up to `wait`.
                if receiver.get(*next).is_none() {
                    if first {
                        socket.set_read_timeout(Some(wait))?;
                    }
                    *next = 0;
                    if receiver.recv(socket, first, crate::batch_io::PER_CALL)? == 0 {
                        return Ok(None);
                    }
                }
                let datagram = receiver.get(*next).map(|(datagram, from)| {
                    let len = datagram.len().min(buf.len());
                    buf[..len].copy_from_slice(&datagram[..len]);
                    (len, from)
                });
                *next += 1;
                Ok(datagram)
            }
            Self::Channel(rx, queued, rest) => {
                if rest.is_empty() {
                    let bundle = if first {
                        rx.recv_timeout(wait).ok()
                    } else {
                        rx.try_recv().ok()
                    };
                    if let Some(bundle) = bundle {
                        queued.fetch_sub(bundle.len(), Ordering::Relaxed);
                        rest.extend(bundle);
                    }
                }
                Ok(rest.pop_front().map(|(from, datagram)| {
                    let len = datagram.len().min(buf.len());
                    buf[..len].copy_from_slice(&datagram[..len]);
                    (len, from)
                }))
            }
        }
    }
}

/// Where a round's replies go: the socket, through the gate when the
/// network's store is a stage.
#[derive(Clone, Copy)]
struct Replies<'a> {
    socket: &'a UdpSocket,
    gate: Option<&'a Gate>,
}

/// Adds what `stats` counted since `published` to `gate`'s live counts.
fn publish(gate: &Gate, stats: &ServeStats, published: &mut (u64, u64)) {
    gate.count_traffic(stats.received - published.0, stats.sent - published.1);
    *published = (stats.received, stats.sent);
}

fn run(
    network: &mut Network,
    mut source: Source<'_>,
    replies: Replies<'_>,
    options: &ServeOptions,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&NetworkEvent),
    mut on_round: impl FnMut(&mut Network),
) -> io::Result<ServeStats> {
    let Replies { socket, gate } = replies;
    let mut peers: HashMap<ConnectionId, SocketAddr> = HashMap::new();
    let mut stats = ServeStats::default();
    let mut audit = TokenBucket::new(options.refusal_audit);
    let mut beacon = Beacon::new(network, options.system_information);
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    let mut deferred = Vec::new();
    let mut epoch = gate.map_or(0, |g| g.stage().failures());
    let mut published = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        if let Some(g) = gate {
            publish(g, &stats, &mut published);
            let now_epoch = g.stage().failures();
            if now_epoch != epoch {
                // A group was abandoned: what the contexts believe was
                // never made durable. Forget them, as a restart would.
                network.forget_contexts();
                peers.clear();
                deferred.clear();
                epoch = now_epoch;
            }
        }
        on_round(network);
        let now = SystemTime::now();
        let wait = network
            .poll_timeout()
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
            .unwrap_or(options.tick)
            .clamp(Duration::from_millis(1), options.tick);
        for n in 0..options.batch {
            let Some((len, from)) = source.next(n == 0, wait, &mut buf)? else {
                break;
            };
            stats.received += 1;
            let Ok(datagram) = Datagram::read(&buf[..len]) else {
                stats.malformed += 1;
                continue;
            };
            let conn = ConnectionId(datagram.conn);
            match datagram.kind {
                Kind::Nas => {
                    let bound = peers.get(&conn).copied();
                    if bound.is_none() && peers.len() >= options.max_connections {
                        peers.retain(|c, _| network.state_of(*c).is_some());
                        if peers.len() >= options.max_connections {
                            stats.over_capacity += 1;
                            continue;
                        }
                    }
                    if !reaches_network(bound, from, datagram.payload) {
                        stats.foreign += 1;
                        continue;
                    }
                    // A new connection is bound to the address of its
                    // first datagram.
                    if bound.is_none() {
                        peers.insert(conn, from);
                    }
                    let verdict = network.handle_pdu(SystemTime::now(), conn, datagram.payload);
                    match bound {
                        // Moved only by a PDU that passed NAS integrity
                        // (NAT rebinding of a device holding the keys).
                        Some(addr) if addr != from => {
                            if verdict == PduVerdict::Verified {
                                peers.insert(conn, from);
                            } else {
                                stats.foreign += 1;
                            }
                        }
                        // Junk for an unknown connection leaves nothing.
                        None if verdict == PduVerdict::Discarded
                            && network.state_of(conn).is_none() =>
                        {
                            peers.remove(&conn);
                        }
                        _ => {}
                    }
                    // The audit trail right after the datagram, one commit:
                    // changes of subscriptions were written with their
                    // entries; a kill here loses at most the entries of
                    // events that changed nothing stored.
                    record(
                        network,
                        &mut on_event,
                        &mut deferred,
                        &mut audit,
                        &mut stats,
                        false,
                    );
                }
                Kind::Release => {
                    // Only the bound address may release (the id is no secret).
                    if peers.get(&conn) == Some(&from) {
                        peers.remove(&conn);
                    } else {
                        stats.foreign += 1;
                    }
                }
                Kind::SystemInformationRequest => match beacon.as_mut() {
                    Some(b) => b.answer(socket, from, datagram.conn, &mut stats)?,
                    None => stats.malformed += 1,
                },
                // The network's own kind, coming from a device.
                Kind::SystemInformation | Kind::Unknown(_) => stats.malformed += 1,
            }
        }
        network.handle_timeout(SystemTime::now());
        record(
            network,
            &mut on_event,
            &mut deferred,
            &mut audit,
            &mut stats,
            true,
        );
        // Every reply of the round waits for the writes issued before it;
        // the round's replies leave together (one system call per
        // `batch_io::PER_CALL`).
        while let Some(t) = network.poll_transmit() {
            if let Some(addr) = peers.get(&t.conn) {
                let mut datagram = Vec::with_capacity(HEADER_LEN + t.pdu.len());
                Datagram::nas(t.conn.0, &t.pdu).encode(&mut datagram);
                stats.sent += 1;
                out.push((*addr, datagram));
            }
        }
        if !out.is_empty() {
            match gate {
                Some(g) => {
                    g.send_all(g.stage().tag(epoch), std::mem::take(&mut out));
                }
                // What the socket cannot take now the link drops; timers
                // recover.
                None => {
                    crate::batch_io::send_all(socket, &out)?;
                    out.clear();
                }
            }
        }
    }
    Ok(stats)
}

/// Appends the events the network reported to the store's audit trail (one
/// transaction) and hands them all to `on_event`. Events the store already
/// wrote with the change they report
/// ([`NetworkEvent::recorded_with_change`]) are not written again;
/// [`NetworkEvent::Discarded`] is only counted: a PDU without effect from
/// anyone costs no row and no commit.
///
/// Events without an authenticated identity ([`unauthenticated`]) changed
/// nothing and come in storms: they take a token of `audit` each (the
/// rest are counted, `unaudited`) and wait in `deferred` for the next
/// transaction (the next datagram with another event, or the end of the
/// round, `flush`), so shedding load costs no durable commit per datagram.
fn record(
    network: &mut Network,
    on_event: &mut impl FnMut(&NetworkEvent),
    deferred: &mut Vec<NetworkEvent>,
    audit: &mut TokenBucket,
    stats: &mut ServeStats,
    flush: bool,
) {
    let mut events = Vec::new();
    let mut urgent = false;
    let now = SystemTime::now();
    while let Some(event) = network.poll_event() {
        stats.congested += u64::from(matches!(event, NetworkEvent::Congested { .. }));
        if matches!(event, NetworkEvent::Discarded { .. }) {
            stats.discarded += 1;
        } else if event.recorded_with_change() {
            // written with its change
        } else if unauthenticated(&event) {
            if audit.take(now) {
                deferred.push(event.clone());
            } else {
                stats.unaudited += 1;
            }
        } else {
            urgent = true;
            deferred.push(event.clone());
        }
        events.push(event);
    }
    if !deferred.is_empty() && (urgent || flush) {
        let at_unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        network.store_mut().record_events(at_unix, deferred);
        stats.audit_commits += 1;
        deferred.clear();
    }
    events.iter().for_each(on_event);
}

/// Whether a NAS PDU for a connection bound to `bound`, arriving from
/// `from`, goes to the network. From the bound address (or for a new
/// connection) every PDU does; from another address only an integrity
/// protected one, which moves the binding if it verifies. A plain PDU from
/// elsewhere is what an off-path sender who knows the connection id forges
/// to abort a procedure before security exists (an AUTHENTICATION FAILURE
/// or SECURITY MODE REJECT, which TS 24.501 4.4.4.3 lets the network take
/// unprotected): it is dropped before the network sees it, as a RAN would
/// never deliver it on another UE's radio bearer.
fn reaches_network(bound: Option<SocketAddr>, from: SocketAddr, pdu: &[u8]) -> bool {
    match bound {
        Some(addr) if addr != from => {
            matches!(nido_nas::security::split_header(pdu), Ok((sht, ..)) if sht != 0)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_protected_pdus_come_from_another_address() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap_or_else(|_| unreachable!());
        // AUTHENTICATION FAILURE #21, plain; and under an integrity header.
        let plain = [0x7e, 0x00, 0x59, 0x15];
        let protected = [0x7e, 0x02, 1, 2, 3, 4, 7, 0x7e, 0x00, 0x59, 0x15];
        for pdu in [&plain[..], &protected[..]] {
            assert!(reaches_network(None, b, pdu));
            assert!(reaches_network(Some(a), a, pdu));
        }
        assert!(!reaches_network(Some(a), b, &plain));
        assert!(reaches_network(Some(a), b, &protected));
        // Nothing that does not parse as a protected header gets through.
        for junk in [
            &[][..],
            &[0x7e][..],
            &[0x7e, 0x05, 0, 0, 0, 0, 0, 0][..],
            &[0x2e, 1, 2][..],
        ] {
            assert!(!reaches_network(Some(a), b, junk));
        }
    }
}
