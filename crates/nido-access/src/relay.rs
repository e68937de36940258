//! The network's RADIUS client to external DCSes (TS 33.501 I.9.2.3 over
//! the AAA procedure of I.2.2.2.2, RFC 3579): carries the
//! [`AaaRequest`]s a [`Network`] queues to the DCS of their realm, and
//! turns each RADIUS reply into the [`AaaAnswer`] the network takes.
//!
//! - One UDP socket per route (bound to the operator's source address, so
//!   the DCS recognises the client), one [`Pending`] table: Identifiers,
//!   Message-Authenticator on every request, RFC 5080 retransmission
//!   ([`RELAY_RETRANSMISSION`]); a request whose retries run out answers
//!   [`AaaAnswer::Unreachable`].
//! - Or, for a route with [`RadSecRoute`], RADIUS over TLS (RFC 6614): one
//!   non-blocking TCP connection with a rustls client per route, opened
//!   when a request needs it, reopened after a failure with back-off
//!   ([`RADSEC_BACKOFF`]). Packets go back to back on the stream, replies
//!   are framed by [`StreamFramer`]; the secret is `radsec`. Each request
//!   is sent once ([`RADSEC_TIMEOUT`]: TCP is reliable, RFC 6614 §2.5 has
//!   no retransmission on a connection); one unanswered within it, or in
//!   flight when the connection breaks, answers Unreachable, and so does a
//!   request that comes while the route is backing off. An unverifiable
//!   reply closes the connection.
//! - Replies are verified (Response Authenticator, Message-Authenticator)
//!   before anything in them is read; an unverifiable one is dropped.
//! - Per connection it keeps the DCS's State (RFC 2865 §5.24) and the
//!   User-Name, bounded in number and forgotten when the conversation ends
//!   or goes quiet.
//! - The MSK comes from MS-MPPE-Recv-Key || MS-MPPE-Send-Key (RFC 2548),
//!   decrypted with the Request Authenticator of the request answered; the
//!   device identity from the Access-Accept's User-Name.
//!
//! [`Relay::exchange`] is called by the driver once per round, with the
//! network; it never blocks (the RadSec connect, handshake, reads and
//! writes are all non-blocking and pumped from there).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_net::{AaaAnswer, AaaRequest, ConnectionId, Network};
use nido_radius::Secret;
use nido_radius::client::{Pending, RetransmitPolicy};
use nido_radius::packet::{Code, Packet, attr};
use nido_radius::stream::StreamFramer;
use nido_sec::Msk;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Where onboarding EAP of one realm goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The realm (of the anonymous SUCI NAI).
    pub realm: String,
    /// The DCS's RADIUS server.
    pub server: SocketAddr,
    /// The shared secret with it.
    pub secret: Secret,
    /// The address to send from (the one the DCS has as this client);
    /// any address of the right family when `None`.
    pub source: Option<IpAddr>,
    /// RADIUS over TLS (RFC 6614) to `server` instead of UDP; `secret` is
    /// then `radsec`.
    pub radsec: Option<RadSecRoute>,
}

/// The TLS side of a RadSec route: the DCS's trust anchor and name, the
/// network's client certificate.
#[derive(Clone)]
pub struct RadSecRoute {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl core::fmt::Debug for RadSecRoute {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RadSecRoute")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl RadSecRoute {
    /// A route whose DCS certificate must chain to one of `roots` (the
    /// manufacturer's root) and name `host` (dNSName), and which presents
    /// `chain` with `key` as its client certificate. TLS 1.3, or 1.2 when
    /// the build has it.
    pub fn new(
        roots: &[CertificateDer<'static>],
        host: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).map_err(|e| format!("DCS root: {e}"))?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(store)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("RadSec client certificate: {e}"))?;
        config.resumption = rustls::client::Resumption::disabled();
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|e| format!("DCS host {host:?}: {e}"))?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// What the relay did (for the operator's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Access-Requests sent (first transmissions).
    pub requests: u64,
    /// Retransmissions.
    pub retransmissions: u64,
    /// Requests given up on (answered Unreachable).
    pub unreachable: u64,
    /// Replies dropped (unverifiable, unknown Identifier).
    pub dropped: u64,
    /// Requests for a realm with no route (answered Unreachable).
    pub unrouted: u64,
    /// RadSec connections that failed or broke (connect, TLS, framing,
    /// an unverifiable reply, the peer closing).
    pub radsec_failures: u64,
}

/// How a route's requests travel.
enum Transport {
    Udp(UdpSocket),
    RadSec(Box<RadSecLink>),
}

/// A RadSec route's connection.
struct RadSecLink {
    server: SocketAddr,
    route: RadSecRoute,
    state: RadSecState,
    /// The next failure waits this long before a new connection.
    backoff: Duration,
}

enum RadSecState {
    /// No connection; a request opens one from `retry_at` on.
    Down { retry_at: Duration },
    /// TCP connecting or TLS handshaking, or up; writes made before the
    /// handshake ends are buffered by rustls.
    Open {
        stream: TcpStream,
        tls: Box<rustls::ClientConnection>,
        framer: StreamFramer,
        connected: bool,
        since: Duration,
    },
}

/// The first wait before a RadSec connection is tried again; it doubles
/// at each failure up to [`RADSEC_BACKOFF_MAX`] and is reset by a
/// completed handshake.
pub const RADSEC_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between RadSec connection attempts.
pub const RADSEC_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A RadSec request unanswered this long answers Unreachable (within the
/// device's T3510, like [`RELAY_RETRANSMISSION`]'s MRD).
pub const RADSEC_TIMEOUT: Duration = Duration::from_secs(10);
/// A RadSec connection must be up (TCP and TLS) within this.
const RADSEC_CONNECT: Duration = Duration::from_secs(5);

/// One transmission, given up after [`RADSEC_TIMEOUT`].
const RADSEC_POLICY: RetransmitPolicy = RetransmitPolicy {
    initial: RADSEC_TIMEOUT,
    max_timeout: RADSEC_TIMEOUT,
    max_count: 1,
    max_duration: RADSEC_TIMEOUT,
};

struct Link {
    transport: Transport,
    secret: Secret,
    pending: Pending,
    /// Identifier → the connection and the Request Authenticator.
    outstanding: HashMap<u8, (ConnectionId, [u8; 16])>,
    /// Requests waiting for a free Identifier.
    waiting: VecDeque<AaaRequest>,
}

struct Conversation {
    state: Option<Vec<u8>>,
    user_name: Vec<u8>,
    last_used: Duration,
}

/// The relay's retransmission (RFC 5080 §2.2.1 with shorter bounds): the
/// whole of it must end before the device's T3510 (15 s, TS 24.501
/// 10.2) does, so that a silent DCS gets the device a #22 it can act on
/// rather than a registration that times out. IRT 1 s, MRT 4 s, MRC 4,
/// MRD 10 s: sends at 0, 1, 3 and 7 s, gives up at 10 s.
pub const RELAY_RETRANSMISSION: RetransmitPolicy = RetransmitPolicy {
    initial: Duration::from_secs(1),
    max_timeout: Duration::from_secs(4),
    max_count: 4,
    max_duration: Duration::from_secs(10),
};

/// Conversations remembered at most (a driver's bound, not the network's).
const MAX_CONVERSATIONS: usize = 1 << 20;
/// A conversation quiet this long is forgotten.
const QUIET: Duration = Duration::from_secs(120);

/// The network's RADIUS client.
pub struct Relay {
    links: HashMap<String, Link>,
    conversations: HashMap<ConnectionId, Conversation>,
    nas_identifier: String,
    stats: RelayStats,
    rand_state: u64,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Relay")
            .field("realms", &self.links.keys().collect::<Vec<_>>())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay for `routes`, naming itself `nas_identifier` in every request
    /// (RFC 2865 §4.1 wants NAS-IP-Address or NAS-Identifier).
    pub fn new(routes: &[Route], nas_identifier: &str) -> io::Result<Self> {
        let mut links = HashMap::new();
        for r in routes {
            let (transport, policy) = match &r.radsec {
                Some(radsec) => (
                    Transport::RadSec(Box::new(RadSecLink {
                        server: r.server,
                        route: radsec.clone(),
                        state: RadSecState::Down {
                            retry_at: Duration::ZERO,
                        },
                        backoff: RADSEC_BACKOFF,
                    })),
                    RADSEC_POLICY,
                ),
                None => {
                    let source = r.source.unwrap_or(if r.server.is_ipv4() {
                        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                    } else {
                        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                    });
                    let socket = UdpSocket::bind(SocketAddr::new(source, 0))?;
                    socket.connect(r.server)?;
                    socket.set_nonblocking(true)?;
                    (Transport::Udp(socket), RELAY_RETRANSMISSION)
                }
            };
            links.insert(
                r.realm.to_ascii_lowercase(),
                Link {
                    transport,
                    secret: r.secret.clone(),
                    pending: Pending::new(policy, r.secret.clone()),
                    outstanding: HashMap::new(),
                    waiting: VecDeque::new(),
                },
            );
        }
        Ok(Self {
            links,
            conversations: HashMap::new(),
            nas_identifier: nas_identifier.to_owned(),
            stats: RelayStats::default(),
            rand_state: 0x9e37_79b9_7f4a_7c15,
        })
    }

    /// The realms it routes.
    pub fn realms(&self) -> impl Iterator<Item = &str> {
        self.links.keys().map(String::as_str)
    }

    /// What it did so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Whether requests are in flight (the driver then rounds often).
    pub fn busy(&self) -> bool {
        self.links
            .values()
            .any(|l| !l.outstanding.is_empty() || !l.waiting.is_empty())
    }

    /// One exchange: replies in (answers to the network), retransmissions
    /// and give-ups, then the network's new requests out. `now` is a
    /// monotonic time (retransmission), `wall` the network's clock.
    pub fn exchange(&mut self, network: &mut Network, now: Duration, wall: SystemTime) {
        self.pump(network, now, wall);
        self.receive(network, now, wall);
        self.timeouts(network, now, wall);
        while let Some(request) = network.poll_aaa() {
            self.send(network, request, now, wall);
        }
        let realms: Vec<String> = self.links.keys().cloned().collect();
        for realm in realms {
            while let Some(link) = self.links.get_mut(&realm)
                && link.outstanding.len() < 256
                && let Some(request) = link.waiting.pop_front()
            {
                self.send(network, request, now, wall);
            }
        }
        // What the new requests wrote goes out now, not a round later.
        self.pump(network, now, wall);
        if self.conversations.len() > MAX_CONVERSATIONS / 2 {
            self.conversations
                .retain(|_, c| now.saturating_sub(c.last_used) < QUIET);
        }
    }

    /// Drives every RadSec connection: connect completion, TLS records out
    /// and in, whole replies handled; a connection that fails answers its
    /// requests Unreachable and backs off.
    fn pump(&mut self, network: &mut Network, now: Duration, wall: SystemTime) {
        for link in self.links.values_mut() {
            let Transport::RadSec(rs) = &mut link.transport else {
                continue;
            };
            let mut replies = Vec::new();
            let result = rs.pump(now, &mut replies);
            let mut broken = result.err();
            for octets in replies {
                if !on_reply(
                    link,
                    &mut self.conversations,
                    &mut self.stats,
                    network,
                    &octets,
                    now,
                    wall,
                ) && broken.is_none()
                {
                    broken = Some("an unverifiable reply".into());
                }
            }
            if let Some(why) = broken {
                fail_radsec(
                    link,
                    &mut self.conversations,
                    &mut self.stats,
                    network,
                    now,
                    wall,
                    &why,
                );
            }
        }
    }

    /// RAND of RFC 5080 §2.2.1 in [-0.1, 0.1]: spreads retransmissions;
    /// no secret, so a small generator of its own.
    fn rand(&mut self) -> f64 {
        self.rand_state ^= self.rand_state << 13;
        self.rand_state ^= self.rand_state >> 7;
        self.rand_state ^= self.rand_state << 17;
        (self.rand_state % 2001) as f64 / 10_000.0 - 0.1
    }

    fn send(
        &mut self,
        network: &mut Network,
        request: AaaRequest,
        now: Duration,
        wall: SystemTime,
    ) {
        let rand = self.rand();
        let Some(link) = self.links.get_mut(&request.realm.to_ascii_lowercase()) else {
            self.stats.unrouted += 1;
            network.handle_aaa(wall, request.conn, AaaAnswer::Unreachable);
            return;
        };
        if link.outstanding.len() >= 256 {
            link.waiting.push_back(request);
            return;
        }
        let conversation = self
            .conversations
            .entry(request.conn)
            .or_insert_with(|| Conversation {
                state: None,
                user_name: Vec::new(),
                last_used: now,
            });
        conversation.last_used = now;
        // The first EAP message is EAP-Response/Identity: its identity is
        // the User-Name of every request of the conversation (RFC 3579 §2.1).
        if conversation.user_name.is_empty()
            && request.eap.len() > 5
            && request.eap[0] == 2
            && request.eap[4] == 1
        {
            conversation.user_name = request.eap[5..].iter().take(253).copied().collect();
        }
        let mut p = Packet::new(Code::AccessRequest, 0, [0; 16]);
        if aws_lc_rs::rand::fill(&mut p.authenticator).is_err() {
            network.handle_aaa(wall, request.conn, AaaAnswer::Unreachable);
            return;
        }
        if !conversation.user_name.is_empty() {
            let _ = p.push(attr::USER_NAME, &conversation.user_name);
        }
        let _ = p.push(
            attr::NAS_IDENTIFIER,
            &self.nas_identifier.as_bytes()[..self.nas_identifier.len().min(253)],
        );
        // Service-Type Framed (RFC 3580 §3.17) and the connection as
        // Calling-Station-Id, as an 802.1X authenticator sends them.
        let _ = p.push(attr::SERVICE_TYPE, &2u32.to_be_bytes());
        let _ = p.push(
            attr::CALLING_STATION_ID,
            format!("nido-conn-{:x}", request.conn.0).as_bytes(),
        );
        p.push_eap_message(&request.eap);
        if let Some(state) = &conversation.state {
            let _ = p.push(attr::STATE, state);
        }
        let authenticator = p.authenticator;
        if let Transport::RadSec(rs) = &mut link.transport
            && !rs.ready(now)
        {
            // Backing off after a failure: the DCS is unreachable for now.
            self.stats.unreachable += 1;
            self.conversations.remove(&request.conn);
            network.handle_aaa(wall, request.conn, AaaAnswer::Unreachable);
            return;
        }
        match link.pending.send(p, now, rand) {
            Ok((identifier, octets)) => {
                link.outstanding
                    .insert(identifier, (request.conn, authenticator));
                self.stats.requests += 1;
                match &mut link.transport {
                    // A lost send is a lost datagram: the retransmission
                    // timer recovers it.
                    Transport::Udp(socket) => {
                        let _ = socket.send(&octets);
                    }
                    // Buffered by rustls until the handshake is done; a
                    // connection that breaks answers it Unreachable.
                    Transport::RadSec(rs) => rs.write(&octets, now),
                }
            }
            Err(_) => {
                self.stats.unreachable += 1;
                self.conversations.remove(&request.conn);
                network.handle_aaa(wall, request.conn, AaaAnswer::Unreachable);
            }
        }
    }

    fn receive(&mut self, network: &mut Network, now: Duration, wall: SystemTime) {
        let mut buf = [0u8; 4096];
        for link in self.links.values_mut() {
            while let Transport::Udp(socket) = &link.transport {
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP port unreachable of an earlier send, and the like:
                    // the retransmission timer decides.
                    Err(_) => continue,
                };
                on_reply(
                    link,
                    &mut self.conversations,
                    &mut self.stats,
                    network,
                    &buf[..n],
                    now,
                    wall,
                );
            }
        }
    }

    fn timeouts(&mut self, network: &mut Network, now: Duration, wall: SystemTime) {
        let rand = self.rand();
        for link in self.links.values_mut() {
            if link.outstanding.is_empty() {
                continue;
            }
            let t = link.pending.on_timeout(now, rand);
            for r in t.retransmit {
                self.stats.retransmissions += 1;
                // RadSec's policy never retransmits (one transmission).
                if let Transport::Udp(socket) = &link.transport {
                    let _ = socket.send(&r.octets);
                }
            }
            for f in t.failed {
                if let Some((conn, _)) = link.outstanding.remove(&f.identifier) {
                    self.stats.unreachable += 1;
                    self.conversations.remove(&conn);
                    network.handle_aaa(wall, conn, AaaAnswer::Unreachable);
                }
            }
        }
    }
}

/// One reply of `link`: verified, matched, answered to the network.
/// Returns `false` for a reply that does not verify (a wrong
/// authenticator, a truncated packet), which closes a RadSec connection;
/// a reply to no outstanding request (late, after its request timed out)
/// is only dropped.
fn on_reply(
    link: &mut Link,
    conversations: &mut HashMap<ConnectionId, Conversation>,
    stats: &mut RelayStats,
    network: &mut Network,
    octets: &[u8],
    now: Duration,
    wall: SystemTime,
) -> bool {
    let (identifier, reply) = match link.pending.on_response(octets) {
        Ok(v) => v,
        Err(e) => {
            stats.dropped += 1;
            return matches!(e, nido_radius::client::ClientError::NoSuchRequest { .. });
        }
    };
    let Some((conn, authenticator)) = link.outstanding.remove(&identifier) else {
        stats.dropped += 1;
        return true;
    };
    let answer = answer(&reply, &link.secret, &authenticator);
    match &answer {
        AaaAnswer::Challenge(_) => {
            if let Some(c) = conversations.get_mut(&conn) {
                c.state = reply.attr(attr::STATE).map(<[u8]>::to_vec);
                c.last_used = now;
            }
        }
        _ => {
            conversations.remove(&conn);
        }
    }
    network.handle_aaa(wall, conn, answer);
    true
}

/// A RadSec connection broke: every request in flight on it answers
/// Unreachable (no retransmission on another connection: the device's
/// own retry, after #22, is the retry), and the link backs off.
fn fail_radsec(
    link: &mut Link,
    conversations: &mut HashMap<ConnectionId, Conversation>,
    stats: &mut RelayStats,
    network: &mut Network,
    now: Duration,
    wall: SystemTime,
    why: &str,
) {
    stats.radsec_failures += 1;
    let Transport::RadSec(rs) = &mut link.transport else {
        return;
    };
    let wait = rs.backoff;
    rs.backoff = (rs.backoff * 2).min(RADSEC_BACKOFF_MAX);
    rs.state = RadSecState::Down {
        retry_at: now + wait,
    };
    tracing::warn!(
        server = %rs.server,
        in_flight = link.outstanding.len(),
        retry_in_s = wait.as_secs_f32(),
        why,
        "RadSec connection to the DCS failed: requests in flight answered unreachable"
    );
    for (identifier, (conn, _)) in link.outstanding.drain() {
        link.pending.cancel(identifier);
        stats.unreachable += 1;
        conversations.remove(&conn);
        network.handle_aaa(wall, conn, AaaAnswer::Unreachable);
    }
}

impl RadSecLink {
    /// Whether a request may be sent now: the connection is open, or may
    /// be opened (not backing off). Opens it if it is down.
    fn ready(&mut self, now: Duration) -> bool {
        match self.state {
            RadSecState::Open { .. } => true,
            RadSecState::Down { retry_at } if now < retry_at => false,
            RadSecState::Down { .. } => match self.open(now) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(server = %self.server, error = %e, "RadSec connection to the DCS failed");
                    let wait = self.backoff;
                    self.backoff = (self.backoff * 2).min(RADSEC_BACKOFF_MAX);
                    self.state = RadSecState::Down {
                        retry_at: now + wait,
                    };
                    false
                }
            },
        }
    }

    /// Starts a non-blocking TCP connect and a TLS client.
    fn open(&mut self, now: Duration) -> Result<(), String> {
        let domain = socket2::Domain::for_address(self.server);
        let socket =
            socket2::Socket::new(domain, socket2::Type::STREAM, None).map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = socket.set_tcp_nodelay(true);
        match socket.connect(&self.server.into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(115) // EINPROGRESS
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("connect {}: {e}", self.server)),
        }
        let tls = rustls::ClientConnection::new(
            self.route.config.clone(),
            self.route.server_name.clone(),
        )
        .map_err(|e| e.to_string())?;
        self.state = RadSecState::Open {
            stream: socket.into(),
            tls: Box::new(tls),
            framer: StreamFramer::new(),
            connected: false,
            since: now,
        };
        Ok(())
    }

    /// Queues a packet on the connection (sent by the next pump).
    fn write(&mut self, octets: &[u8], _now: Duration) {
        if let RadSecState::Open { tls, .. } = &mut self.state {
            // rustls buffers plaintext until the handshake is done; an
            // error here is a closed connection, which the pump notices.
            let _ = tls.writer().write_all(octets);
        }
    }

    /// Moves octets both ways without blocking; whole replies go to
    /// `replies`. An error is a broken connection.
    fn pump(&mut self, now: Duration, replies: &mut Vec<Vec<u8>>) -> Result<(), String> {
        let RadSecState::Open {
            stream,
            tls,
            framer,
            connected,
            since,
        } = &mut self.state
        else {
            return Ok(());
        };
        if !*connected {
            if let Ok(Some(e)) | Err(e) = stream.take_error() {
                return Err(format!("connect {}: {e}", self.server));
            }
            if stream.peer_addr().is_err() {
                if now.saturating_sub(*since) > RADSEC_CONNECT {
                    return Err(format!("connect {}: timed out", self.server));
                }
                return Ok(());
            }
            *connected = true;
        }
        let was_handshaking = tls.is_handshaking();
        loop {
            match tls.read_tls(stream) {
                Ok(0) => return Err("the DCS closed the connection".into()),
                Ok(_) => {
                    tls.process_new_packets().map_err(|e| {
                        // Tell the DCS why, if the socket takes it.
                        let _ = tls.write_tls(stream);
                        format!("TLS: {e}")
                    })?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        if tls.is_handshaking() {
            if now.saturating_sub(*since) > RADSEC_CONNECT {
                return Err("TLS handshake timed out".into());
            }
        } else {
            if was_handshaking {
                self.backoff = RADSEC_BACKOFF;
                tracing::info!(
                    server = %self.server,
                    version = ?tls.protocol_version(),
                    "RadSec connection to the DCS up"
                );
            }
            let mut buf = [0u8; 4096];
            loop {
                let room = framer.room().min(buf.len());
                match tls.reader().read(&mut buf[..room]) {
                    Ok(0) => return Err("the DCS closed the connection (close_notify)".into()),
                    Ok(n) => {
                        framer.push(&buf[..n]).map_err(|e| e.to_string())?;
                        while let Some(p) = framer.pop().map_err(|e| e.to_string())? {
                            replies.push(p);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("TLS receive: {e}")),
                }
            }
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        Ok(())
    }
}

/// The network's reading of a verified reply.
fn answer(reply: &Packet, secret: &Secret, request_authenticator: &[u8; 16]) -> AaaAnswer {
    let eap = reply.eap_message();
    match reply.code {
        Code::AccessChallenge => match eap {
            Some(eap) => AaaAnswer::Challenge(eap),
            None => AaaAnswer::Reject { eap: None },
        },
        Code::AccessAccept => {
            let msk = reply.msk(secret, request_authenticator);
            let identity = reply
                .attr(attr::USER_NAME)
                .and_then(|u| std::str::from_utf8(u).ok())
                .map(str::to_owned);
            match (eap, msk, identity) {
                (Some(eap), Ok(Some(msk)), Some(identity)) => AaaAnswer::Accept {
                    eap,
                    msk: Msk::new(*msk),
                    identity,
                },
                // An Access-Accept without the keys or the identity the
                // network needs cannot onboard anyone (its EAP-Success is
                // not relayed: the device must not believe it succeeded).
                (_, msk, identity) => {
                    tracing::warn!(
                        mppe_keys = msk.as_ref().is_ok_and(Option::is_some),
                        user_name = identity.is_some(),
                        "Access-Accept without MS-MPPE keys or User-Name: refused"
                    );
                    AaaAnswer::Reject { eap: None }
                }
            }
        }
        _ => AaaAnswer::Reject { eap },
    }
}
