//! # nido-sec: the 3GPP security functions nido stands on
//!
//! MILENAGE and the AKA functions (TS 35.206, TS 33.102), the 5G key
//! hierarchy (TS 33.501 Annex A) including K_AUSF from EAP-TLS keys, the
//! NEA/NIA algorithms (Annex D), SUPI concealment (Annex C), UPU MACs, and
//! 5G-AKA end to end with SQN management and resynchronisation ([`aka`]),
//! and [`Cause`], the 5GMM cause every crate speaks of refusals in.
//!
//! Built on `oxirush-security` for the symmetric algorithms and the KDF; the
//! SUCI ECIES scheme and every public-key operation use `aws-lc-rs`.
//!
//! ## Invariants
//! - Every key is a [`secret`] type: zeroized on drop, `Debug` prints
//!   `[redacted]`, compared in constant time. No error value carries key bytes.
//! - Every function is pure and deterministic given its inputs (except key
//!   generation and SUCI concealment, which draw fresh randomness).
//! - Nothing panics on input: wrong lengths and ranges are [`SecError`]s.
//! - Every vector in `shared/vectors/{milenage,kdf_5g,suci,nas_ciphering,nas_integrity}.json`
//!   is reproduced by `tests/vectors.rs` through this crate's API.

pub mod aka;
pub mod algorithms;
mod cause;
mod error;
pub mod kdf;
pub mod milenage;
pub mod secret;
pub mod suci;
pub mod supi;
pub mod upu;

pub use cause::Cause;
pub use error::SecError;
pub use milenage::{Amf, Milenage, Sqn, SqnVerdict, SqnWindow};
pub use secret::*;
pub use supi::Supi;
