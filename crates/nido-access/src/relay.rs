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
//! network; it never blocks.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use nido_net::{AaaAnswer, AaaRequest, ConnectionId, Network};
use nido_radius::Secret;
use nido_radius::client::{Pending, RetransmitPolicy};
use nido_radius::packet::{Code, Packet, attr};
use nido_sec::Msk;

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
}

struct Link {
    socket: UdpSocket,
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
            let source = r.source.unwrap_or(if r.server.is_ipv4() {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            });
            let socket = UdpSocket::bind(SocketAddr::new(source, 0))?;
            socket.connect(r.server)?;
            socket.set_nonblocking(true)?;
            links.insert(
                r.realm.to_ascii_lowercase(),
                Link {
                    socket,
                    secret: r.secret.clone(),
                    pending: Pending::new(RELAY_RETRANSMISSION, r.secret.clone()),
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
        if self.conversations.len() > MAX_CONVERSATIONS / 2 {
            self.conversations
                .retain(|_, c| now.saturating_sub(c.last_used) < QUIET);
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
        match link.pending.send(p, now, rand) {
            Ok((identifier, octets)) => {
                link.outstanding
                    .insert(identifier, (request.conn, authenticator));
                self.stats.requests += 1;
                // A lost send is a lost datagram: the retransmission timer
                // recovers it.
                let _ = link.socket.send(&octets);
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
            loop {
                let n = match link.socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP port unreachable of an earlier send, and the like:
                    // the retransmission timer decides.
                    Err(_) => continue,
                };
                let Ok((identifier, reply)) = link.pending.on_response(&buf[..n]) else {
                    self.stats.dropped += 1;
                    continue;
                };
                let Some((conn, authenticator)) = link.outstanding.remove(&identifier) else {
                    self.stats.dropped += 1;
                    continue;
                };
                let answer = answer(&reply, &link.secret, &authenticator);
                match &answer {
                    AaaAnswer::Challenge(_) => {
                        if let Some(c) = self.conversations.get_mut(&conn) {
                            c.state = reply.attr(attr::STATE).map(<[u8]>::to_vec);
                            c.last_used = now;
                        }
                    }
                    _ => {
                        self.conversations.remove(&conn);
                    }
                }
                network.handle_aaa(wall, conn, answer);
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
                let _ = link.socket.send(&r.octets);
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
