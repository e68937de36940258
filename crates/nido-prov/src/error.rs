//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in the PVS protocol and the credential package.
///
/// Decoding errors name the message (`what`) and the field; they never carry
/// secret material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProvError {
    /// The octets are not one well-formed CBOR item.
    #[error("{what}: malformed CBOR: {detail}")]
    Cbor {
        /// The message or structure being decoded.
        what: &'static str,
        /// What the CBOR decoder said.
        detail: String,
    },
    /// Octets follow the CBOR item.
    #[error("{what}: {count} trailing octets after the CBOR item")]
    TrailingBytes {
        /// The message or structure being decoded.
        what: &'static str,
        /// How many.
        count: usize,
    },
    /// The `version` field is not one this build speaks.
    #[error("{what}: unsupported version {got} (this build speaks {expected})")]
    Version {
        /// The message or structure being decoded.
        what: &'static str,
        /// The version found.
        got: u64,
        /// The version this build speaks.
        expected: u64,
    },
    /// A required field is absent.
    #[error("{what}.{field}: missing")]
    Missing {
        /// The message or structure being decoded.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A byte string has the wrong length.
    #[error("{what}.{field}: expected {expected} octets, got {got}")]
    Length {
        /// The message or structure.
        what: &'static str,
        /// The field.
        field: &'static str,
        /// The required length.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A field has the wrong type or an invalid value.
    #[error("{what}.{field}: {reason}")]
    Invalid {
        /// The message or structure.
        what: &'static str,
        /// The field.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// A field this version does not define (maps are closed: a new field is a new version).
    #[error("{what}: unknown field {field:?}")]
    UnknownField {
        /// The message or structure.
        what: &'static str,
        /// The field name found.
        field: String,
    },
    /// The device public key is not a usable X25519 public key.
    #[error("the device public key is not a usable X25519 public key")]
    DevicePublicKey,
    /// HPKE refused to seal (other than for the recipient key).
    #[error("HPKE seal failed: {0}")]
    Seal(String),
    /// The sealed package does not open: wrong device key, not sealed under
    /// this device's K_PROV (a sender that did not authenticate the device,
    /// or base mode), wrong binding (identity or nonce), or a modified `enc`
    /// or ciphertext. Deliberately not more specific.
    #[error(
        "the sealed package does not open (wrong key, not sealed by the network that authenticated the device, wrong binding or tampered)"
    )]
    Open,
    /// The confirmation MAC does not verify.
    #[error("the confirmation MAC does not verify")]
    ConfirmationMac,
    /// The package's validity has ended.
    #[error("the package expired at {not_after_unix} (now {now_unix})")]
    Expired {
        /// The package's `not_after_unix`.
        not_after_unix: u64,
        /// The `now` given.
        now_unix: u64,
    },
    /// The system random number generator failed.
    #[error("the random number generator failed")]
    Random,
    /// CoAP framing.
    #[error(transparent)]
    Coap(#[from] crate::coap::CoapError),
}
