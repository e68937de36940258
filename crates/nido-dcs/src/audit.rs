//! What the DCS decided about a device, and for which operator: one
//! [`Decision`] per finished EAP-TLS conversation. A driver makes each
//! durable before it sends the reply that carries it (crate invariants).

use std::net::SocketAddr;
use std::time::SystemTime;

use nido_pki::DeviceInfo;

/// How a conversation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Access-Accept: the IDevID validated and the handshake completed.
    Accepted(DeviceInfo),
    /// Access-Reject, and why: nido-pki's refusal reason name
    /// (`revoked`, `unknown-manufacturer`, ...) when the certificate was
    /// refused, else `tls`, `protocol` or `busy`.
    Refused {
        /// A stable kebab-case reason name (for counting).
        reason: &'static str,
        /// The details (never key material).
        detail: String,
    },
}

/// One decision of the DCS.
#[derive(Debug, Clone)]
pub struct Decision {
    /// When it was taken (the `now` of the datagram that ended it).
    pub at: SystemTime,
    /// The operator (RADIUS client name) that relayed the conversation.
    pub client: String,
    /// Where its request came from.
    pub client_addr: SocketAddr,
    /// The outer EAP identity the device gave (anonymous@realm).
    pub outer_identity: String,
    /// Accepted or refused.
    pub outcome: Outcome,
}

impl Decision {
    /// The device serial, when the certificate got far enough to name one.
    pub fn serial(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Accepted(d) => Some(d.id.serial()),
            Outcome::Refused { .. } => None,
        }
    }

    /// Whether the device was accepted.
    pub fn accepted(&self) -> bool {
        matches!(self.outcome, Outcome::Accepted(_))
    }
}
