//! # nido-nas: 5GS NAS messages for nido
//!
//! The codec is `oxirush-nas` (TS 24.501 Rel-19): every message and IE,
//! strict decoding, open enums for unknown values, re-encoding byte for
//! byte. This crate is nido's layer over it:
//!
//! - [`build`]: one builder per message nido sends, with typed inputs;
//! - [`security`]: the per-UE NAS security context (COUNTs, replay
//!   detection, persistence) and a stateless verifier for tools;
//! - [`pdu`]: one decoder in two modes: strict (every octet accounted
//!   for; `nido nas decode`) and receiver (TS 24.501 clause 7: the optional
//!   IEs a receiver ignores are dropped and listed); each IE with its
//!   offset, and errors that name the IE and offset that failed, with the
//!   5GMM cause a receiver answers;
//! - [`view`]: the typed view of a received plain message ([`Inbound`]),
//!   which the UE and AMF procedures act on without the codec's API.
//!
//! ## Invariants
//! - No function panics on any input octets (fuzzed: `fuzz/`).
//! - A security context's COUNTs only move forward, and only when a MAC
//!   verifies; a replayed or forged PDU leaves the context unchanged.
//! - No key is reachable through `Debug` or an error.
//! - The crate does no I/O: no sockets, clocks, files or databases.

pub mod build;
pub mod pdu;
pub mod security;
pub mod view;

pub use nido_sec::Cause;
pub use oxirush_nas::nas_5gs as wire;
pub use pdu::{
    DecodeError, DropReason, Dropped, Fault, Field, Mode, Received, decode, decode_with, fields,
    receive,
};
pub use security::{Algorithms, Counts, NasSecError, Protection, Role, SecurityContext, Verified};
pub use view::{Guti5g, Inbound, MobileIdentity, Transport, ViewError, message_name};
