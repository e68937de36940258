//! The one error type of the security layer.

use thiserror::Error;

/// Why a security function refused its input. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SecError {
    /// An input has the wrong length.
    #[error("{what} must be {expected} octets, got {got}")]
    Length {
        /// Which input.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        got: usize,
    },
    /// An input is out of its range (an SQN above 2^48, a bit length beyond the data).
    #[error("{what} is out of range: {detail}")]
    Range {
        /// Which input.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// MAC-A of an AUTN does not verify: the network is not authentic (TS 33.102 §6.3.3).
    #[error("MAC failure: the AUTN's MAC-A does not verify")]
    MacFailure,
    /// MAC-S of an AUTS does not verify (TS 33.102 §6.3.5).
    #[error("MAC failure: the AUTS's MAC-S does not verify")]
    AutsMacFailure,
    /// The SUCI MAC tag does not verify (TS 33.501 §C.3.3).
    #[error("SUCI MAC tag does not verify")]
    SuciMacFailure,
    /// A public key does not parse or is not on the curve.
    #[error("invalid {what} public key")]
    PublicKey {
        /// Which key.
        what: &'static str,
    },
    /// A private key does not parse.
    #[error("invalid {what} private key")]
    PrivateKey {
        /// Which key.
        what: &'static str,
    },
    /// No home network key with this protection scheme and key identifier.
    #[error("no home network private key for protection scheme {scheme} and key id {key_id}")]
    UnknownHomeNetworkKey {
        /// The protection scheme identifier.
        scheme: u8,
        /// The home network public key identifier.
        key_id: u8,
    },
    /// A cryptographic backend failed (should not happen with valid inputs).
    #[error("crypto backend error: {0}")]
    Backend(&'static str),
}
