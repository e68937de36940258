//! # nido-access: the access link over UDP
//!
//! nido's simulator plays the radio and the gNB; between it (or a real
//! device process) and the AMF, NAS PDUs travel in UDP datagrams with a
//! small header ([`datagram`], design doc "nido's own definitions"). The
//! drivers ([`network`]; [`fleet`], the one fleet core on the wall clock,
//! for a fleet of devices or one, after [`device`]'s system-information
//! request) are the thin, blocking loops that own sockets and the clock
//! and feed a sans-IO [`nido_net::Network`] or [`nido_ue::Device`]s: no
//! protocol logic lives here. [`relay`] carries
//! the network's onboarding EAP to a manufacturer's own DCS over RADIUS.
//! [`sysinfo`] is what the network announces of itself (its PLMN identity
//! and NID), which a device asks for before anything else. [`batch_io`]
//! moves the network's datagrams many to a system call.
//!
//! ## Invariants
//! - A datagram is decoded completely or refused with the field that failed;
//!   unknown kinds are kept, never a panic.
//! - A system-information request creates nothing on the network: the
//!   answer is no larger than the request, costs no allocation and no
//!   write, and is rate-limited ([`network::ServeOptions::system_information`]).
//! - The network driver remembers at most `max_connections` peers and reads
//!   a bounded number of datagrams before it runs timers, so a flood delays
//!   but never starves timers, and memory stays bounded (the socket's
//!   receive buffer is the queue; beyond it the kernel drops, as a radio would).

pub mod batch_io;
pub mod commit;
pub mod datagram;
pub mod device;
pub mod fleet;
pub mod network;
pub mod relay;
pub mod sysinfo;
pub mod trust;

pub use datagram::{Datagram, DecodeError, Kind, MAX_PAYLOAD, REQUEST_PADDING, VERSION};
pub use sysinfo::SystemInformation;

/// The receive buffer the drivers ask for (the kernel may grant less; the
/// default of about 200 KB overflows when thousands of devices arrive at once).
pub const RECEIVE_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` with a receive buffer of
/// [`RECEIVE_BUFFER`] octets (or the most the kernel allows).
pub fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only means earlier drops, as a radio has.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}
