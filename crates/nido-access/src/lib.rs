//! # nido-access: the access link over UDP
//!
//! nido's simulator plays the radio and the gNB; between it (or a real
//! device process) and the AMF, NAS PDUs travel in UDP datagrams with a
//! small header ([`datagram`], design doc "nido's own definitions"). The
//! drivers ([`network`], [`device`]) are the thin, blocking loops that own a
//! socket and the clock and feed a sans-IO [`nido_net::Network`] or
//! [`nido_ue::Device`]: no protocol logic lives here.
//!
//! ## Invariants
//! - A datagram is decoded completely or refused with the field that failed;
//!   unknown kinds are kept, never a panic.
//! - The network driver remembers at most `max_connections` peers and reads
//!   a bounded number of datagrams before it runs timers, so a flood delays
//!   but never starves timers, and memory stays bounded (the socket's
//!   receive buffer is the queue; beyond it the kernel drops, as a radio would).

pub mod datagram;
pub mod device;
pub mod fleet;
pub mod network;

pub use datagram::{Datagram, DecodeError, Kind, MAX_PAYLOAD, VERSION};
