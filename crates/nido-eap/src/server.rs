//! The EAP-TLS 1.3 server: the DCS side (RFC 9190 §2.1), sans-IO.
//!
//! ```text
//!  new()            -> Request/TLS Start
//!  handle(response) -> Request (next TLS flight or fragment, an ack, an alert,
//!                      the protected success indication 0x00)
//!                   |  Done(EAP-Success + keys | EAP-Failure + reason)
//!                   |  Ignored (wrong identifier, not a response)
//! ```

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use nido_pki::DeviceInfo;
use rustls::pki_types::UnixTime;

use crate::conversation::Conversation;
use crate::keys::EapTlsKeys;
use crate::packet::{Code, MethodType, Packet};
use crate::tls::{DcsCredentials, VerdictSlot, server_connection};
use crate::tls_frame::TlsFrame;
use crate::{EapError, FailureReason, Settings};

/// What the server does with a response.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this EAP-Request.
    Send(Vec<u8>),
    /// Send this EAP-Success or EAP-Failure; the conversation is over.
    Done(Vec<u8>, ServerOutcome),
    /// The response was discarded (RFC 3748 §4.1); nothing changes.
    Ignored(&'static str),
}

/// What the DCS knows once a device is authenticated.
#[derive(Debug)]
pub struct Authenticated {
    /// MSK, EMSK, Method-Id.
    pub keys: EapTlsKeys,
    /// What the DCS validated: serial, manufacturer, hardware module.
    pub device: DeviceInfo,
}

/// How the conversation ended.
#[derive(Debug)]
pub enum ServerOutcome {
    /// The device is authenticated: its keys and its certificate's verdict.
    Success(Box<Authenticated>),
    /// The device is not authenticated, and why.
    Failure(FailureReason),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Exchanging TLS handshake messages.
    Handshake,
    /// Sent the protected success indication; waiting for the final empty response.
    Committed,
    /// Sent a TLS alert; waiting for its acknowledgement before EAP-Failure.
    Alerting,
    /// Over.
    Done,
}

/// One EAP-TLS 1.3 conversation on the DCS.
pub struct EapTlsServer {
    conv: Conversation,
    verdict: VerdictSlot,
    state: State,
    identifier: u8,
    last_request: Vec<u8>,
    failure: Option<FailureReason>,
    discarded: usize,
}

impl core::fmt::Debug for EapTlsServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EapTlsServer")
            .field("state", &self.state)
            .field("identifier", &self.identifier)
            .field("rounds", &self.conv.rounds)
            .finish_non_exhaustive()
    }
}

fn unix(now: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl EapTlsServer {
    /// Starts a conversation at `now` with the first request identifier;
    /// returns the server and the EAP-Request/EAP-TLS Start to send.
    pub fn start(
        creds: &DcsCredentials,
        settings: Settings,
        now: SystemTime,
        first_identifier: u8,
    ) -> Result<(Self, Vec<u8>), EapError> {
        settings.validate()?;
        let (conn, verdict) = server_connection(creds, unix(now))?;
        let mut server = Self {
            conv: Conversation::new(conn.into(), settings),
            verdict,
            state: State::Handshake,
            identifier: first_identifier.wrapping_sub(1),
            last_request: Vec::new(),
            failure: None,
            discarded: 0,
        };
        let start = server.request(TlsFrame::start());
        Ok((server, start))
    }

    /// The last request sent, to retransmit on a timeout.
    pub fn last_request(&self) -> &[u8] {
        &self.last_request
    }

    /// The identifier of the last request.
    pub fn identifier(&self) -> u8 {
        self.identifier
    }

    fn request(&mut self, frame: TlsFrame) -> Vec<u8> {
        self.identifier = self.identifier.wrapping_add(1);
        let packet = Packet::request(self.identifier, MethodType::Tls, frame.to_bytes()).to_bytes();
        self.last_request.clone_from(&packet);
        packet
    }

    /// EAP-Success or EAP-Failure, with the Identifier of the response it
    /// answers (RFC 3748 §4.2).
    fn finish(&mut self, outcome: ServerOutcome) -> ServerStep {
        self.state = State::Done;
        self.conv.outbox.clear();
        let packet = match outcome {
            ServerOutcome::Success(_) => Packet::success(self.identifier),
            ServerOutcome::Failure(_) => Packet::failure(self.identifier),
        };
        ServerStep::Done(packet.to_bytes(), outcome)
    }

    /// A failure: if a TLS error left an alert, send it first and answer
    /// EAP-Failure to its acknowledgement (RFC 9190 §2.1.3); else answer
    /// EAP-Failure at once. Fragments still owed are dropped.
    fn fail(&mut self, reason: FailureReason) -> ServerStep {
        let reason = match (&reason, self.verdict.lock().ok().and_then(|mut v| v.take())) {
            (FailureReason::Tls(_), Some(Err(refusal))) => FailureReason::Refused(refusal),
            _ => reason,
        };
        match self.conv.take_alert() {
            Some(alert) if self.state == State::Handshake => {
                self.failure = Some(reason);
                self.state = State::Alerting;
                ServerStep::Send(self.request(alert))
            }
            _ => self.finish(ServerOutcome::Failure(reason)),
        }
    }

    /// Discards a packet (RFC 3748 §4.1); too many discards end the conversation.
    fn discard(&mut self, why: &'static str) -> ServerStep {
        self.discarded += 1;
        if self.discarded > self.conv.settings.max_discards {
            let detail = format!("{} packets discarded (last: {why})", self.discarded);
            return self.fail(FailureReason::Protocol(detail));
        }
        ServerStep::Ignored(why)
    }

    /// Handles one EAP packet from the peer.
    pub fn handle(&mut self, response: &[u8]) -> ServerStep {
        if self.state == State::Done {
            return ServerStep::Ignored("conversation is over");
        }
        let Ok(packet) = Packet::decode(response) else {
            return self.discard("EAP packet does not decode");
        };
        if packet.code != Code::Response {
            return self.discard("not an EAP-Response");
        }
        if packet.identifier != self.identifier {
            return self.discard("identifier does not match the last request");
        }
        if let Err(reason) = self.conv.round() {
            return self.fail(reason);
        }
        let frame = match packet.method {
            Some((MethodType::Tls, data)) => match TlsFrame::decode(&data) {
                Ok(f) => f,
                Err(e) => return self.fail(e.into()),
            },
            Some((MethodType::Nak, _)) => {
                return self.fail(FailureReason::Protocol("peer refused EAP-TLS (Nak)".into()));
            }
            Some((other, _)) => {
                return self.fail(FailureReason::Protocol(format!(
                    "unexpected method {other:?}"
                )));
            }
            None => return self.fail(FailureReason::Protocol("response without a method".into())),
        };
        match self.state {
            State::Alerting => {
                let reason = self
                    .failure
                    .take()
                    .unwrap_or(FailureReason::Protocol("alert".into()));
                self.finish(ServerOutcome::Failure(reason))
            }
            State::Committed => self.on_final_response(&frame),
            State::Handshake => self.on_handshake_frame(&frame),
            State::Done => ServerStep::Ignored("conversation is over"),
        }
    }

    fn on_handshake_frame(&mut self, frame: &TlsFrame) -> ServerStep {
        // While fragments are owed, only an acknowledgement may come (RFC 5216 §2.1.5).
        if !self.conv.outbox.is_empty() {
            if !Conversation::is_ack(frame) {
                return self.fail(FailureReason::Protocol(
                    "data instead of an acknowledgement of our fragment".into(),
                ));
            }
            return match self.conv.outbox.pop_front() {
                Some(next) => ServerStep::Send(self.request(next)),
                None => self.fail(FailureReason::Protocol("nothing to send".into())),
            };
        }
        if frame.data.is_empty() && !frame.more() {
            return self.fail(FailureReason::Protocol(
                "empty EAP-TLS response during the handshake".into(),
            ));
        }
        let message = match self.conv.reassembler.push(frame) {
            Ok(Some(m)) => m,
            Ok(None) => return ServerStep::Send(self.request(TlsFrame::ack())),
            Err(e) => return self.fail(e.into()),
        };
        if let Err(reason) = self.conv.feed(&message) {
            return self.fail(reason);
        }
        if !self.conv.conn.is_handshaking() {
            return self.commit();
        }
        self.conv.queue_output();
        match self.conv.outbox.pop_front() {
            Some(next) => ServerStep::Send(self.request(next)),
            None => self.fail(FailureReason::Protocol(
                "handshake stalled: nothing to send".into(),
            )),
        }
    }

    /// The handshake is complete: send the protected success indication
    /// (one application-data octet 0x00, RFC 9190 §2.1.1).
    fn commit(&mut self) -> ServerStep {
        match self.verdict.lock().ok().and_then(|v| v.clone()) {
            Some(Ok(_)) => {}
            Some(Err(refusal)) => return self.fail(FailureReason::Refused(refusal)),
            None => {
                return self.fail(FailureReason::Protocol(
                    "handshake completed without a client certificate".into(),
                ));
            }
        }
        if let Err(e) = self.conv.conn.writer().write_all(&[0x00]) {
            return self.fail(FailureReason::Tls(e.to_string()));
        }
        self.conv.queue_output();
        self.state = State::Committed;
        match self.conv.outbox.pop_front() {
            Some(next) => ServerStep::Send(self.request(next)),
            None => self.fail(FailureReason::Protocol(
                "no protected success indication".into(),
            )),
        }
    }

    fn on_final_response(&mut self, frame: &TlsFrame) -> ServerStep {
        // Acknowledgement of a fragmented commitment flight.
        if Conversation::is_ack(frame) && !self.conv.outbox.is_empty() {
            return match self.conv.outbox.pop_front() {
                Some(next) => ServerStep::Send(self.request(next)),
                None => self.fail(FailureReason::Protocol("nothing to send".into())),
            };
        }
        if !frame.data.is_empty() {
            // The peer aborts after our indication: it sends an alert.
            let reason = match self.conv.feed(&frame.data) {
                Err(r) => r,
                Ok(()) => {
                    FailureReason::Protocol("data after the protected success indication".into())
                }
            };
            self.conv.outbox.clear();
            return self.finish(ServerOutcome::Failure(reason));
        }
        let device = match self.verdict.lock().ok().and_then(|v| v.clone()) {
            Some(Ok(device)) => device,
            _ => {
                return self.finish(ServerOutcome::Failure(FailureReason::Protocol(
                    "no verdict".into(),
                )));
            }
        };
        match self.conv.export() {
            Ok(keys) => self.finish(ServerOutcome::Success(Box::new(Authenticated {
                keys,
                device,
            }))),
            Err(reason) => self.finish(ServerOutcome::Failure(reason)),
        }
    }
}
