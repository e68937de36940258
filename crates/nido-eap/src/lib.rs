//! # nido-eap: EAP and EAP-TLS 1.3 for 5G primary authentication
//!
//! - [`packet`]: EAP packets (RFC 3748).
//! - [`tls_frame`]: EAP-TLS framing, fragmentation and bounded reassembly (RFC 5216 §3).
//! - [`peer`] and [`server`]: EAP-TLS 1.3 (RFC 9190) as sans-IO state machines:
//!   EAP octets in, EAP octets out, an outcome at the end. rustls runs the
//!   TLS 1.3 handshake on in-memory records.
//! - [`tls`]: the rustls configurations: TLS 1.3 only, no tickets, client
//!   certificate required, the DCS's certificate validation from nido-pki.
//!
//! ## Invariants
//! - No I/O, no clock: `now` is an input (it fixes certificate validity).
//! - No panic on any input octets; every refusal ends in EAP-Failure (server)
//!   or an abort (peer) with a typed [`FailureReason`].
//! - Keys ([`EapTlsKeys`]) exist only after the server's protected success
//!   indication and the peer's final response (server) or EAP-Success after
//!   the indication (peer); they are zeroized and never printed.
//! - Reassembly is bounded in octets and fragments; conversations in rounds.
//! - The device's identity travels only inside TLS: the EAP-Response/Identity
//!   carries the anonymous outer identity.

pub mod codec;
mod conversation;
pub mod fixtures;
pub mod keys;
pub mod packet;
pub mod peer;
pub mod server;
pub mod tls;
pub mod tls_frame;

use nido_sec::Cause;
use thiserror::Error;

pub use keys::EapTlsKeys;
pub use peer::{EapTlsPeer, PeerOutcome, PeerStep};
pub use server::{Authenticated, EapTlsServer, ServerOutcome, ServerStep};
pub use tls::{DcsCredentials, DeviceCredentials};

/// Knobs shared by peer and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// TLS octets per EAP-TLS fragment (default fits the NAS EAP message IE).
    pub fragment_size: usize,
    /// Reassembly bounds.
    pub limits: tls_frame::Limits,
    /// Most EAP requests in one conversation.
    pub max_rounds: usize,
    /// Most packets silently discarded (undecodable, wrong identifier) before
    /// the server gives up on the conversation.
    pub max_discards: usize,
}

impl Settings {
    /// The smallest fragment size accepted (a TLS alert record must fit).
    pub const MIN_FRAGMENT: usize = 64;

    /// Refuses settings that would break framing: a fragment outside
    /// [`Self::MIN_FRAGMENT`]..=[`tls_frame::DEFAULT_FRAGMENT`] (the NAS EAP
    /// message IE limit).
    pub fn validate(&self) -> Result<(), EapError> {
        if !(Self::MIN_FRAGMENT..=tls_frame::DEFAULT_FRAGMENT).contains(&self.fragment_size) {
            return Err(EapError::Config(format!(
                "fragment size {} is outside {}..={}",
                self.fragment_size,
                Self::MIN_FRAGMENT,
                tls_frame::DEFAULT_FRAGMENT
            )));
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fragment_size: tls_frame::DEFAULT_FRAGMENT,
            limits: tls_frame::Limits::default(),
            max_rounds: 50,
            max_discards: 16,
        }
    }
}

/// Setting up a peer or server failed (bad certificates or keys).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EapError {
    /// The TLS configuration could not be built.
    #[error("EAP-TLS configuration: {0}")]
    Config(String),
}

/// Why an EAP-TLS conversation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FailureReason {
    /// The DCS refused the device certificate (nido-pki's verdict).
    #[error("device certificate refused: {0}")]
    Refused(nido_pki::Refusal),
    /// The TLS handshake failed on this side.
    #[error("TLS: {0}")]
    Tls(String),
    /// The other side sent a TLS alert.
    #[error("peer sent TLS alert: {0}")]
    Alert(String),
    /// An EAP packet did not decode.
    #[error("EAP decode: {0}")]
    Decode(#[from] codec::DecodeError),
    /// A fragment broke the framing rules or bounds.
    #[error("EAP-TLS fragment: {0}")]
    Fragment(#[from] tls_frame::FragmentError),
    /// An EAP packet the state machine does not accept now.
    #[error("EAP protocol: {0}")]
    Protocol(String),
    /// The conversation exceeded [`Settings::max_rounds`].
    #[error("more than {0} EAP rounds")]
    TooManyRounds(usize),
    /// The network answered EAP-Failure.
    #[error("EAP-Failure received")]
    FailureReceived,
}

impl FailureReason {
    /// The 5GMM cause a network answers this failure with (design doc):
    /// the certificate verdict's cause, #3 illegal UE for a peer whose TLS or
    /// EAP misbehaves, #111 protocol error for malformed traffic.
    pub fn gmm_cause(&self) -> Cause {
        match self {
            Self::Refused(r) => r.gmm_cause(),
            Self::Tls(_) | Self::Alert(_) => Cause::ILLEGAL_UE,
            _ => Cause::PROTOCOL_ERROR_UNSPECIFIED,
        }
    }
}
