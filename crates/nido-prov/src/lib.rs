//! nido's provisioning layer (phase B of `onboarding.md`): the PVS
//! application protocol and the credential package.
//!
//! - [`package`]: the [`CredentialPackage`] (versioned CBOR), sealed with
//!   HPKE (RFC 9180 PSK mode, X25519-HKDF-SHA256, HKDF-SHA256,
//!   AES-128-GCM) to the key the device's secure element generated and
//!   authenticated by K_PROV, a key both ends derive from the onboarding
//!   EAP-TLS session's K_AUSF, split
//!   into [`PackageSecrets`] (K, OPc) and [`PublicPart`], and the
//!   confirmation MAC.
//! - [`messages`]: the request, response, confirmation and acknowledgement,
//!   versioned CBOR maps.
//! - [`receipt`]: the [`ErasureReceipt`] a factory-reset device presents
//!   in its next provisioning request: a MILENAGE-keyed proof that it held
//!   the package it erased, signed with its IDevID key.
//! - [`coap`]: their CoAP framing (`POST /prov/v1/request`, `POST /prov/v1/confirm`).
//!
//! # Invariants
//!
//! - **No I/O.** Functions take octets (and `now` as a number where time
//!   matters) and return octets or values; no sockets, files or clock. The
//!   only ambient input is the system random number generator, for the HPKE
//!   ephemeral key and device key generation.
//! - **Secrets are zeroized and redacted.** K and OPc are `nido_sec` secret
//!   types; third-party PSKs and private keys are `Zeroizing`; decoded CBOR
//!   trees and plaintext buffers are wiped. `Debug` never prints them.
//! - **A sealed package opens only with the device's private key, the
//!   binding** (device identity and request nonce, in the HPKE `info`) **and
//!   the K_PROV of the device's EAP-TLS session** (the HPKE PSK): only the
//!   network that authenticated the device can seal one it opens. Any other
//!   key, K_PROV, binding or modified octet is [`ProvError::Open`], never a
//!   panic; a package of another format version is [`ProvError::Version`].
//! - **Decoding is strict**: one CBOR item, no trailing octets, known version,
//!   exact lengths, closed maps; errors name the structure and the field.

mod cbor;
pub mod coap;
mod error;
mod hpke;
pub mod messages;
pub mod package;
pub mod receipt;

pub use error::ProvError;
pub use messages::{Confirmation, ConfirmationAck, ProvisioningRequest, ProvisioningResponse};
pub use package::{
    Binding, CredentialPackage, PackageSecrets, PublicPart, SealedPackage, ServingNetwork,
    ThirdPartyCredential,
};
pub use receipt::{ErasureReceipt, ReceiptRefusal};

/// `t` in whole seconds since the Unix epoch (0 before it): the time base
/// of a package's `not_after_unix` and a receipt's `erased_at_unix`, which
/// the device and the network compare `now` with.
pub fn unix_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
