//! EAP-TLS 1.3 over RADIUS (RFC 3579 §2): the DCS's AAA server, sans-IO.
//!
//! ```text
//!  Access-Request, EAP-Response/Identity, no State
//!        -> Access-Challenge, EAP-Request/EAP-TLS Start, State (a new conversation)
//!  Access-Request, EAP-Response, State
//!        -> Access-Challenge, the next EAP-Request, same State
//!         | Access-Accept, EAP-Success, MS-MPPE-Recv-Key, MS-MPPE-Send-Key,
//!           User-Name = device serial                      + Decision (accepted)
//!         | Access-Reject, EAP-Failure                      + Decision (refused)
//!  the same Access-Request again (Identifier, Request Authenticator)
//!        -> the same reply, from the reply cache (RFC 5080 §2.2.2)
//! ```
//!
//! The MSK split follows RFC 2548 as FreeRADIUS and hostapd use it: its
//! first 32 octets are MS-MPPE-Recv-Key, the last 32 MS-MPPE-Send-Key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nido_eap::packet::{Code as EapCode, MethodType, Packet as EapPacket};
use nido_eap::{DcsCredentials, EapTlsServer, FailureReason, ServerOutcome, ServerStep, Settings};
use nido_pki::TrustStore;
use nido_radius::dedup::{DedupKey, ReplyCache};
use nido_radius::packet::{Code, Packet, attr};
use nido_radius::verify_request;

use crate::audit::{Decision, Outcome};
use crate::clients::{Client, Clients};

/// Bounds on what the DCS keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most conversations in progress; a new one beyond it is refused
    /// (Access-Reject, reason `busy`).
    pub max_conversations: usize,
    /// A conversation idle this long is forgotten ([`RadiusDcs::expire`]).
    pub idle: Duration,
    /// Most replies kept for retransmitted requests.
    pub reply_cache: usize,
    /// How long a reply is kept (RFC 5080 §2.2.2 suggests a few seconds
    /// beyond the client's retransmission window).
    pub reply_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_conversations: 100_000,
            idle: Duration::from_secs(60),
            reply_cache: 100_000,
            reply_ttl: Duration::from_secs(30),
        }
    }
}

/// What to send for one datagram.
#[derive(Debug)]
pub struct Output {
    /// Where the reply goes (the request's source).
    pub to: SocketAddr,
    /// The encoded reply.
    pub reply: Vec<u8>,
    /// A decision to make durable before `reply` (and any later reply) is
    /// sent.
    pub decision: Option<Decision>,
}

/// Why a datagram got no reply (RFC 2865 §3 and RFC 3579 §3.2: silently
/// discarded). For counting; an attacker learns nothing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its source address is no client's.
    UnknownClient,
    /// It does not decode, lacks a Message-Authenticator, or one of its
    /// authenticators is wrong.
    Unauthentic,
    /// A code the DCS does not answer (only Access-Request is).
    Code,
    /// The EAP state machine discarded its EAP packet (RFC 3748 §4.1).
    Ignored(&'static str),
    /// The reply could not be encoded (a bug: every attribute is bounded).
    Unencodable,
}

impl Dropped {
    /// A stable kebab-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown-client",
            Self::Unauthentic => "unauthentic",
            Self::Code => "code",
            Self::Ignored(_) => "eap-ignored",
            Self::Unencodable => "unencodable",
        }
    }
}

struct Conversation {
    server: EapTlsServer,
    outer_identity: String,
    last_seen: Duration,
}

/// The DCS's RADIUS server.
pub struct RadiusDcs {
    credentials: DcsCredentials,
    settings: Settings,
    clients: Clients,
    limits: Limits,
    /// Keyed by (client name, State).
    conversations: HashMap<(String, [u8; 16]), Conversation>,
    replies: ReplyCache<SocketAddr>,
    /// Makes State values of this instance differ from a previous one's.
    epoch: u64,
    next_state: u64,
    next_salt: u16,
}

impl core::fmt::Debug for RadiusDcs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RadiusDcs")
            .field("clients", &self.clients.len())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl RadiusDcs {
    /// A DCS with its TLS credentials and trust store, its clients and
    /// bounds. `epoch` (any value that differs between runs, such as the
    /// start time) goes into every State, so a State from an earlier run
    /// never names a conversation of this one.
    pub fn new(
        credentials: DcsCredentials,
        settings: Settings,
        clients: Clients,
        limits: Limits,
        epoch: u64,
    ) -> Self {
        Self {
            credentials,
            settings,
            clients,
            limits,
            conversations: HashMap::new(),
            replies: ReplyCache::new(limits.reply_cache, limits.reply_ttl),
            epoch,
            next_state: 0,
            next_salt: 0,
        }
    }

    /// Conversations started after this validate against `trust` (a new
    /// CRL, a block); one in progress keeps the store it started with.
    pub fn set_trust_store(&mut self, trust: Arc<TrustStore>) {
        self.credentials.trust = trust;
    }

    /// Replaces the clients; conversations of a removed client end at
    /// their next datagram (it is dropped) or when they expire.
    pub fn set_clients(&mut self, clients: Clients) {
        self.clients = clients;
    }

    /// Conversations in progress.
    pub fn conversations(&self) -> usize {
        self.conversations.len()
    }

    /// Forgets conversations idle for [`Limits::idle`] and expired replies;
    /// returns how many conversations ended.
    pub fn expire(&mut self, now: Duration) -> usize {
        let before = self.conversations.len();
        let idle = self.limits.idle;
        self.conversations
            .retain(|_, c| now.saturating_sub(c.last_seen) < idle);
        self.replies.expire(now);
        before - self.conversations.len()
    }

    /// Handles one datagram from `from`, at wall time `wall` (certificate
    /// validity, the audit) and monotonic time `now` (expiry). The client
    /// is the one configured for `from`'s address (RADIUS over UDP).
    pub fn handle(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        wall: SystemTime,
        now: Duration,
    ) -> Result<Output, Dropped> {
        let client = self
            .clients
            .get(from.ip())
            .cloned()
            .ok_or(Dropped::UnknownClient)?;
        self.handle_from(&client, from, datagram, wall, now)
    }

    /// Handles one packet of a RadSec connection (RFC 6614) from `from`
    /// whose TLS client certificate has SHA-256 `fingerprint`. The client
    /// is looked up at every packet, so one removed from the configuration
    /// is refused at its next packet even on an open connection. The
    /// caller closes the connection on any [`Dropped::UnknownClient`] or
    /// [`Dropped::Unauthentic`] (RFC 6614 §2.5).
    pub fn handle_radsec(
        &mut self,
        fingerprint: &[u8; 32],
        from: SocketAddr,
        packet: &[u8],
        wall: SystemTime,
        now: Duration,
    ) -> Result<Output, Dropped> {
        let client = self
            .clients
            .radsec(fingerprint)
            .ok_or(Dropped::UnknownClient)?
            .as_client(from.ip());
        self.handle_from(&client, from, packet, wall, now)
    }

    /// Handles one packet of `client`, however the transport identified it
    /// (source address for UDP, certificate for RadSec): the shared part
    /// of [`Self::handle`] and [`Self::handle_radsec`]. `from` keys the
    /// reply cache and goes into the audit.
    pub fn handle_from(
        &mut self,
        client: &Client,
        from: SocketAddr,
        datagram: &[u8],
        wall: SystemTime,
        now: Duration,
    ) -> Result<Output, Dropped> {
        let request = verify_request(datagram, &client.secret).map_err(|_| Dropped::Unauthentic)?;
        if request.code != Code::AccessRequest {
            return Err(Dropped::Code);
        }
        let key = DedupKey {
            client: from,
            identifier: request.identifier,
            authenticator: request.authenticator,
        };
        if let Some(reply) = self.replies.lookup(&key, now) {
            return Ok(Output {
                to: from,
                reply: reply.to_vec(),
                decision: None,
            });
        }
        let (reply, decision) = self.answer(client, from, &request, wall, now)?;
        // Every attribute is bounded by construction (EAP-Message split,
        // fixed-size State, MPPE, User-Name of a checked serial), so this
        // fails only on a bug; drop rather than answer with half a reply.
        let octets = reply
            .encode_response(&client.secret, &request.authenticator)
            .map_err(|_| Dropped::Unencodable)?;
        self.replies.insert(key, octets.clone(), now);
        Ok(Output {
            to: from,
            reply: octets,
            decision,
        })
    }

    fn answer(
        &mut self,
        client: &Client,
        from: SocketAddr,
        request: &Packet,
        wall: SystemTime,
        now: Duration,
    ) -> Result<(Packet, Option<Decision>), Dropped> {
        let decision = |outer_identity: &str, outcome: Outcome| Decision {
            at: wall,
            client: client.name.clone(),
            client_addr: from,
            outer_identity: outer_identity.to_owned(),
            outcome,
        };
        let Some(eap) = request.eap_message() else {
            // Not an EAP request (PAP, CHAP, ...): this server speaks only EAP.
            return Ok((reply(Code::AccessReject, request), None));
        };
        let Some(state) = request.attr(attr::STATE) else {
            return Ok(self.start(client, request, &eap, wall, now, decision));
        };
        let key = (
            client.name.clone(),
            <[u8; 16]>::try_from(state).unwrap_or([0; 16]),
        );
        let Some(conversation) = self.conversations.get_mut(&key) else {
            // Unknown or expired State (RFC 3579 §2.6.1 leaves it to us):
            // refuse, so the client stops retransmitting.
            let mut r = reply(Code::AccessReject, request);
            if let Ok(p) = EapPacket::decode(&eap) {
                push_eap(&mut r, &EapPacket::failure(p.identifier).to_bytes());
            }
            return Ok((r, None));
        };
        conversation.last_seen = now;
        match conversation.server.handle(&eap) {
            ServerStep::Send(next) => {
                let mut r = reply(Code::AccessChallenge, request);
                push_eap(&mut r, &next);
                let _ = r.push(attr::STATE, &key.1);
                Ok((r, None))
            }
            ServerStep::Ignored(why) => Err(Dropped::Ignored(why)),
            ServerStep::Done(last, outcome) => {
                let Some(conversation) = self.conversations.remove(&key) else {
                    return Err(Dropped::Ignored("conversation is over"));
                };
                let outer = conversation.outer_identity;
                match outcome {
                    ServerOutcome::Success(auth) => {
                        let mut r = reply(Code::AccessAccept, request);
                        push_eap(&mut r, &last);
                        let _ = r.push(attr::USER_NAME, auth.device.id.serial().as_bytes());
                        let salts = self.salts();
                        if r.push_msk(
                            auth.keys.msk.expose(),
                            &client.secret,
                            &request.authenticator,
                            salts,
                        )
                        .is_err()
                        {
                            return Err(Dropped::Unencodable);
                        }
                        Ok((r, Some(decision(&outer, Outcome::Accepted(auth.device)))))
                    }
                    ServerOutcome::Failure(reason) => {
                        let mut r = reply(Code::AccessReject, request);
                        push_eap(&mut r, &last);
                        let (name, detail) = failure_reason(&reason);
                        Ok((
                            r,
                            Some(decision(
                                &outer,
                                Outcome::Refused {
                                    reason: name,
                                    detail,
                                },
                            )),
                        ))
                    }
                }
            }
        }
    }

    /// A request without State: it must carry EAP-Response/Identity (RFC
    /// 3579 §2.1); the DCS answers with EAP-TLS Start.
    fn start(
        &mut self,
        client: &Client,
        request: &Packet,
        eap: &[u8],
        wall: SystemTime,
        now: Duration,
        decision: impl Fn(&str, Outcome) -> Decision,
    ) -> (Packet, Option<Decision>) {
        let refuse = |identifier: Option<u8>, outer: &str, reason: &'static str, detail: String| {
            let mut r = reply(Code::AccessReject, request);
            if let Some(id) = identifier {
                push_eap(&mut r, &EapPacket::failure(id).to_bytes());
            }
            (
                r,
                Some(decision(outer, Outcome::Refused { reason, detail })),
            )
        };
        let identity = match EapPacket::decode(eap) {
            Ok(EapPacket {
                code: EapCode::Response,
                identifier,
                method: Some((MethodType::Identity, data)),
            }) => (identifier, String::from_utf8_lossy(&data).into_owned()),
            Ok(p) => {
                return refuse(
                    Some(p.identifier),
                    "",
                    "protocol",
                    "a conversation must start with EAP-Response/Identity".into(),
                );
            }
            Err(e) => return refuse(None, "", "protocol", format!("EAP-Message: {e}")),
        };
        let (identifier, outer) = identity;
        // The identity is the device's choice: keep it printable and short.
        let outer: String = outer
            .chars()
            .take(253)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if self.conversations.len() >= self.limits.max_conversations {
            self.expire(now);
            if self.conversations.len() >= self.limits.max_conversations {
                return refuse(
                    Some(identifier),
                    &outer,
                    "busy",
                    format!("{} conversations in progress", self.conversations.len()),
                );
            }
        }
        let (server, start) = match EapTlsServer::start(
            &self.credentials,
            self.settings,
            wall,
            identifier.wrapping_add(1),
        ) {
            Ok(s) => s,
            Err(e) => return refuse(Some(identifier), &outer, "config", e.to_string()),
        };
        let state = self.state();
        self.conversations.insert(
            (client.name.clone(), state),
            Conversation {
                server,
                outer_identity: outer,
                last_seen: now,
            },
        );
        let mut r = reply(Code::AccessChallenge, request);
        push_eap(&mut r, &start);
        let _ = r.push(attr::STATE, &state);
        (r, None)
    }

    fn state(&mut self) -> [u8; 16] {
        self.next_state += 1;
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&self.epoch.to_be_bytes());
        s[8..].copy_from_slice(&self.next_state.to_be_bytes());
        s
    }

    /// Two distinct salts with the high bit set (RFC 2548 §2.4.2).
    fn salts(&mut self) -> [u16; 2] {
        let a = 0x8000 | (self.next_salt & 0x7fff);
        let b = 0x8000 | (self.next_salt.wrapping_add(1) & 0x7fff);
        self.next_salt = self.next_salt.wrapping_add(2);
        [a, b]
    }
}

/// A reply skeleton for `request`: same Identifier; Proxy-State copied in
/// order (RFC 2865 §5.33).
fn reply(code: Code, request: &Packet) -> Packet {
    let mut r = Packet::new(code, request.identifier, [0; 16]);
    for p in request.attrs(attr::PROXY_STATE) {
        let _ = r.push(attr::PROXY_STATE, p);
    }
    r
}

fn push_eap(r: &mut Packet, eap: &[u8]) {
    r.push_eap_message(eap);
}

/// A refusal's stable name and its detail.
fn failure_reason(reason: &FailureReason) -> (&'static str, String) {
    match reason {
        FailureReason::Refused(r) => (r.reason.as_str(), r.detail.clone()),
        FailureReason::Tls(_) | FailureReason::Alert(_) => ("tls", reason.to_string()),
        _ => ("protocol", reason.to_string()),
    }
}
