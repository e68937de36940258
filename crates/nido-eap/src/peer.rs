//! The EAP-TLS 1.3 peer: the device side (RFC 9190 §2.1), sans-IO.
//!
//! ```text
//!  handle(request) -> Send(response)   TLS flight, fragment, ack, final empty response
//!                  |  Done(outcome)    on EAP-Success (with keys) or EAP-Failure
//!                  |  Ignored          a stale request
//! ```
//! The peer accepts EAP-Success only after the server's protected success
//! indication, and never after it aborted.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::UnixTime;

use crate::conversation::Conversation;
use crate::keys::EapTlsKeys;
use crate::packet::{Code, MethodType, Packet};
use crate::tls::{DeviceCredentials, client_config};
use crate::tls_frame::TlsFrame;
use crate::{EapError, FailureReason, Settings};

/// What the peer does with a request.
#[derive(Debug)]
pub enum PeerStep {
    /// Send this EAP-Response.
    Send(Vec<u8>),
    /// The conversation is over.
    Done(PeerOutcome),
    /// The request was discarded; nothing changes.
    Ignored(&'static str),
}

/// How the conversation ended for the device.
#[derive(Debug)]
pub enum PeerOutcome {
    /// The network (a DCS of the device's manufacturer) authenticated it.
    Success(Box<EapTlsKeys>),
    /// It did not, or the device refused it.
    Failure(FailureReason),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Before EAP-TLS Start.
    Idle,
    /// Exchanging handshake messages.
    Handshake,
    /// Received the protected success indication and answered; waiting for EAP-Success.
    AwaitSuccess,
    /// Aborted (sent an alert); waiting for EAP-Failure.
    Aborted,
    /// Over.
    Done,
}

/// One EAP-TLS 1.3 conversation on the device.
pub struct EapTlsPeer {
    config: Arc<rustls::ClientConfig>,
    dcs_name: rustls::pki_types::ServerName<'static>,
    outer_identity: String,
    settings: Settings,
    conv: Option<Conversation>,
    state: State,
    last: Option<(u8, Vec<u8>, Vec<u8>)>,
    failure: Option<FailureReason>,
}

impl core::fmt::Debug for EapTlsPeer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EapTlsPeer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl EapTlsPeer {
    /// A peer for a device with `creds`, at time `now` (which decides whether
    /// the DCS certificate is valid). `outer_identity` is the anonymous NAI
    /// sent in EAP-Response/Identity, e.g. `anonymous@dcs.example`.
    pub fn new(
        creds: &DeviceCredentials,
        settings: Settings,
        outer_identity: &str,
        now: SystemTime,
    ) -> Result<Self, EapError> {
        settings.validate()?;
        let now = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
        Ok(Self {
            config: client_config(creds, now)?,
            dcs_name: creds.dcs_name.clone(),
            outer_identity: outer_identity.to_owned(),
            settings,
            conv: None,
            state: State::Idle,
            last: None,
            failure: None,
        })
    }

    /// Handles one EAP packet from the network.
    pub fn handle(&mut self, request: &[u8]) -> PeerStep {
        if self.state == State::Done {
            return PeerStep::Ignored("conversation is over");
        }
        let Ok(packet) = Packet::decode(request) else {
            return PeerStep::Ignored("EAP packet does not decode");
        };
        // Success and Failure answer our last response: same Identifier (RFC 3748 §4.2).
        if matches!(packet.code, Code::Success | Code::Failure)
            && self
                .last
                .as_ref()
                .is_some_and(|(id, _, _)| *id != packet.identifier)
        {
            return PeerStep::Ignored(
                "EAP-Success/Failure identifier does not match our last response",
            );
        }
        match packet.code {
            Code::Success => return self.on_success(),
            Code::Failure => {
                let reason = self
                    .failure
                    .take()
                    .unwrap_or(FailureReason::FailureReceived);
                return self.done(PeerOutcome::Failure(reason));
            }
            Code::Request => {}
            _ => return PeerStep::Ignored("not an EAP-Request"),
        }
        // A retransmitted request gets the same response (RFC 3748 §4.1).
        if let Some((id, req, resp)) = &self.last
            && *id == packet.identifier
        {
            return if req.as_slice() == request {
                PeerStep::Send(resp.clone())
            } else {
                PeerStep::Ignored("different request with the identifier of the last one")
            };
        }
        let id = packet.identifier;
        let response = match packet.method {
            Some((MethodType::Identity, _)) => Packet::response(
                id,
                MethodType::Identity,
                self.outer_identity.as_bytes().to_vec(),
            ),
            Some((MethodType::Tls, data)) => match TlsFrame::decode(&data) {
                Ok(frame) => match self.on_tls(&frame) {
                    Ok(frame) => Packet::response(id, MethodType::Tls, frame.to_bytes()),
                    Err(reason) => return self.abort(id, request, reason),
                },
                Err(e) => return self.abort(id, request, e.into()),
            },
            Some((MethodType::Notification, _)) => {
                Packet::response(id, MethodType::Notification, Vec::new())
            }
            // Any other method: Nak, desiring EAP-TLS (RFC 3748 §5.3.1).
            _ => Packet::response(id, MethodType::Nak, vec![u8::from(MethodType::Tls)]),
        };
        self.reply(id, request, response.to_bytes())
    }

    fn reply(&mut self, id: u8, request: &[u8], response: Vec<u8>) -> PeerStep {
        self.last = Some((id, request.to_vec(), response.clone()));
        PeerStep::Send(response)
    }

    fn done(&mut self, outcome: PeerOutcome) -> PeerStep {
        self.state = State::Done;
        PeerStep::Done(outcome)
    }

    fn done_failure(&mut self, reason: FailureReason) -> PeerStep {
        self.done(PeerOutcome::Failure(reason))
    }

    /// The device refuses the network: send the TLS alert rustls queued (if
    /// any) and wait for EAP-Failure; never accept a later EAP-Success.
    fn abort(&mut self, id: u8, request: &[u8], reason: FailureReason) -> PeerStep {
        let alert = self.conv.as_mut().and_then(|c| {
            let alert = c.take_alert();
            c.outbox.clear();
            alert
        });
        self.failure = Some(reason);
        self.state = State::Aborted;
        let frame = alert.unwrap_or_else(TlsFrame::ack);
        let response = Packet::response(id, MethodType::Tls, frame.to_bytes()).to_bytes();
        self.reply(id, request, response)
    }

    fn on_success(&mut self) -> PeerStep {
        if self.state != State::AwaitSuccess {
            let reason = self.failure.take().unwrap_or_else(|| {
                FailureReason::Protocol(
                    "EAP-Success before the protected success indication".into(),
                )
            });
            return self.done_failure(reason);
        }
        match self.conv.as_ref().map(Conversation::export) {
            Some(Ok(keys)) => self.done(PeerOutcome::Success(Box::new(keys))),
            Some(Err(reason)) => self.done_failure(reason),
            None => self.done_failure(FailureReason::Protocol("no TLS session".into())),
        }
    }

    fn on_tls(&mut self, frame: &TlsFrame) -> Result<TlsFrame, FailureReason> {
        match self.state {
            State::Aborted => return Ok(TlsFrame::ack()),
            State::AwaitSuccess => {
                return Err(FailureReason::Protocol(
                    "EAP-TLS request after the success indication".into(),
                ));
            }
            _ => {}
        }
        if frame.is_start() {
            if self.state != State::Idle {
                return Err(FailureReason::Protocol("second EAP-TLS Start".into()));
            }
            let conn = rustls::ClientConnection::new(self.config.clone(), self.dcs_name.clone())
                .map_err(|e| FailureReason::Tls(e.to_string()))?;
            let mut conv = Conversation::new(conn.into(), self.settings);
            conv.queue_output();
            let first = conv
                .outbox
                .pop_front()
                .ok_or_else(|| FailureReason::Tls("no ClientHello".into()))?;
            self.conv = Some(conv);
            self.state = State::Handshake;
            return Ok(first);
        }
        let conv = self
            .conv
            .as_mut()
            .ok_or_else(|| FailureReason::Protocol("EAP-TLS data before Start".into()))?;
        conv.round()?;
        // While fragments are owed, only an acknowledgement may come (RFC 5216 §2.1.5).
        if !conv.outbox.is_empty() {
            if !Conversation::is_ack(frame) {
                return Err(FailureReason::Protocol(
                    "data instead of an acknowledgement of our fragment".into(),
                ));
            }
            return conv
                .outbox
                .pop_front()
                .ok_or_else(|| FailureReason::Protocol("nothing to send".into()));
        }
        if frame.data.is_empty() {
            return Err(FailureReason::Protocol(
                "empty EAP-TLS request with nothing to acknowledge".into(),
            ));
        }
        let Some(message) = conv.reassembler.push(frame)? else {
            return Ok(TlsFrame::ack());
        };
        conv.feed(&message)?;
        let plaintext = conv.read_plaintext();
        conv.queue_output();
        if !plaintext.is_empty() {
            // The indication counts only after our Finished went out: nothing
            // of the handshake may still be owed (RFC 9190 §2.1.1, §2.5).
            if conv.conn.is_handshaking() || !conv.outbox.is_empty() || plaintext != [0x00] {
                return Err(FailureReason::Protocol(format!(
                    "application data {plaintext:02x?} is not the protected success indication"
                )));
            }
            self.state = State::AwaitSuccess;
            // The final response is empty (RFC 9190 §2.1.1).
            return Ok(TlsFrame::ack());
        }
        Ok(conv.outbox.pop_front().unwrap_or_else(TlsFrame::ack))
    }
}
