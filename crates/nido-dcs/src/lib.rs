//! # nido-dcs: a manufacturer's DCS that any operator's network reaches over RADIUS
//!
//! TS 33.501 I.9.2.3 lets a device maker run its own Default Credentials
//! Server: the onboarding network relays the device's EAP to the DCS's AAA
//! server (the AAA procedure of I.2.2.2.2), which authenticates the device's
//! IDevID with EAP-TLS 1.3 and returns the MSK and the device's identity.
//! This crate is that AAA server as a sans-IO state machine ([`RadiusDcs`]):
//! RADIUS datagrams in, RADIUS datagrams and audit decisions out.
//!
//! - [`clients`]: the operators allowed to ask (RADIUS clients, keyed by
//!   source address, each with its own shared secret; RadSec clients,
//!   keyed by their TLS certificate's SHA-256 fingerprint).
//! - [`server`]: the EAP-TLS 1.3 conversations over RADIUS (RFC 3579):
//!   Access-Challenge per EAP round, Access-Accept with EAP-Success, the MSK
//!   in MS-MPPE-Recv-Key || MS-MPPE-Send-Key (RFC 2548) and the device
//!   serial in User-Name; Access-Reject with EAP-Failure otherwise.
//! - [`audit`]: what the DCS decided, for whom, asked by which operator.
//! - [`supplicant`]: the other end, a device's EAP-TLS peer behind a RADIUS
//!   client (as eapol_test is): the load generator's and the tests' client.
//!
//! ## Invariants
//! - No I/O, no clock: `now` is an input (wall time for certificate validity,
//!   a monotonic duration for retransmission and expiry).
//! - A datagram from an address that is no client, or without a valid
//!   Message-Authenticator (required on every Access-Request, the BlastRADIUS
//!   hardening), is dropped before anything else is looked at and costs one
//!   HMAC at most.
//! - A conversation is keyed by (client, State): one operator cannot reach
//!   another's conversation.
//! - A retransmitted request (same client, Identifier and Request
//!   Authenticator, RFC 5080 §2.2.2) gets the cached reply; the EAP state
//!   machine never sees it twice.
//! - The driver sends no reply before every [`audit::Decision`] returned with
//!   it or before it is durable: an Access-Accept that the audit trail could
//!   lose never leaves.
//! - Conversations and the reply cache are bounded in number and in idle time.
//! - A RadSec client (RFC 6614) is identified by its TLS certificate's
//!   SHA-256 fingerprint, looked up at every packet
//!   ([`RadiusDcs::handle_radsec`]); past that lookup its packets take the
//!   UDP path's checks ([`RadiusDcs::handle_from`]) with the secret
//!   `radsec`. The TLS and the stream framing are the driver's.
//! - The device validation is nido-pki's, the same as the network's built-in
//!   DCS (chain to an enrolled root, validity, CRL, key usage, block list).

pub mod audit;
pub mod clients;
pub mod server;
pub mod supplicant;

pub use audit::{Decision, Outcome};
pub use clients::{Client, Clients, RadSecClient};
pub use server::{Dropped, Limits, Output, RadiusDcs};
pub use supplicant::{Finished, Supplicant, SupplicantStep};
