//! Datagrams in batches: many in one system call each way (issue #11:
//! `recvmmsg(2)` through `nix`, `sendmmsg(2)` through `rustix`, both safe
//! wrappers).
//!
//! Under load the network's reader drains the socket a batch at a time,
//! and a round's replies (a shard's, or those a group commit released) go
//! out together; each datagram still costs the kernel its own trip through
//! the UDP stack, but not a system call of its own.
//!
//! # Invariants
//! - **Same semantics as one call per datagram.** A received datagram is
//!   handed over whole, with its sender, in arrival order; one longer than
//!   the buffer fills it (the buffer is one octet longer than the largest
//!   datagram the link allows, so [`crate::Datagram::read`] refuses it).
//! - **Sending never waits, and one datagram's failure is its own.**
//!   Replies go with `MSG_DONTWAIT`: what the socket's send buffer cannot
//!   take now is dropped, as a radio link drops (the protocol's timers
//!   recover), and so is a datagram the kernel refuses for its destination
//!   (port 0, an unreachable network, a firewall rule: an attacker picks
//!   its source address); the rest of the batch is still tried. Only a
//!   failure of the socket itself ends a batch.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

use crate::datagram::{HEADER_LEN, MAX_PAYLOAD};

/// Datagrams per system call: enough that a burst of arrivals or of
/// replies takes a few calls, small enough that the reader's buffers stay
/// small (this many of [`SLOT_LEN`] octets).
pub const PER_CALL: usize = 32;

/// A receive slot: one octet longer than the largest datagram the link
/// allows, so an oversized one shows as too long instead of cut short.
const SLOT_LEN: usize = HEADER_LEN + MAX_PAYLOAD + 1;

fn io_error(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// A reader's receive buffers and the datagrams of its last call.
pub struct Receiver {
    slots: Vec<Vec<u8>>,
    headers: MultiHeaders<SockaddrStorage>,
    /// (slot, length, sender) of each datagram of the last call, in order.
    got: Vec<(usize, usize, SocketAddr)>,
}

impl core::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Receiver")
            .field("received", &self.got.len())
            .finish_non_exhaustive()
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// Buffers for [`PER_CALL`] datagrams.
    pub fn new() -> Self {
        Self {
            slots: (0..PER_CALL).map(|_| vec![0u8; SLOT_LEN]).collect(),
            headers: MultiHeaders::preallocate(PER_CALL, None),
            got: Vec::with_capacity(PER_CALL),
        }
    }

    /// Receives up to `max` (at most [`PER_CALL`], at least one)
    /// datagrams in one call. With `wait`, it waits for the first as the
    /// socket's read timeout allows (then takes what else is queued
    /// without waiting: `MSG_WAITFORONE`); without, it takes only what is
    /// queued. Returns how many arrived (0: none queued, or the timeout
    /// passed); [`Receiver::get`] reads them.
    pub fn recv(&mut self, socket: &UdpSocket, wait: bool, max: usize) -> io::Result<usize> {
        self.got.clear();
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .slots
            .iter_mut()
            .take(max.clamp(1, PER_CALL))
            .map(|s| [IoSliceMut::new(s.as_mut_slice())])
            .collect();
        let results = match recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            flags,
            None,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(0),
            Err(e) => return Err(io_error(e)),
        };
        let mut arrived = 0;
        for (slot, msg) in results.enumerate() {
            arrived += 1;
            // A datagram from an address that is not IP cannot come on a
            // UDP socket; were it to, it is skipped, not answered.
            if let Some(from) = msg.address.as_ref().and_then(to_std) {
                self.got.push((slot, msg.bytes.min(SLOT_LEN), from));
            }
        }
        Ok(arrived)
    }

    /// The `i`-th datagram of the last call that came from an IP address
    /// (every one, on a UDP socket) and its sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (slot, len, from) = *self.got.get(i)?;
        Some((&self.slots[slot][..len], from))
    }
}

/// Sends each `(address, datagram)` of `out`, [`PER_CALL`] to a system
/// call, without waiting (see the module's invariants). Returns how many
/// the kernel took; a datagram it refused (a full buffer, its destination)
/// is dropped and the rest tried; only a failure of the socket itself (not
/// a socket, closed) ends the batch and is returned.
pub fn send_all<B: AsRef<[u8]>>(socket: &UdpSocket, out: &[(SocketAddr, B)]) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
    let mut sent = 0;
    let mut rest = out;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(PER_CALL)];
        let addrs: Vec<_> = chunk.iter().map(|(a, _)| a.as_any()).collect();
        let slices: Vec<[IoSlice<'_>; 1]> = chunk
            .iter()
            .map(|(_, d)| [IoSlice::new(d.as_ref())])
            .collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut messages: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&slices)
            .zip(controls.iter_mut())
            .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
            .collect();
        match sendmmsg(socket, &mut messages, SendFlags::DONTWAIT) {
            // The kernel took the first `k`; the next call starts after
            // them (and drops the one it could not take, if any).
            Ok(k) => {
                let k = k.min(chunk.len());
                sent += k;
                rest = &rest[k.max(1)..];
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(
                e @ (rustix::io::Errno::BADF
                | rustix::io::Errno::NOTSOCK
                | rustix::io::Errno::FAULT
                | rustix::io::Errno::OPNOTSUPP),
            ) => return Err(e.into()),
            // The first of the call was refused (a full buffer, or its
            // destination): it is dropped, the rest tried.
            Err(_) => rest = &rest[1..],
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = crate::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = crate::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    #[test]
    fn a_batch_arrives_whole_in_order_with_its_sender() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        // More than one call's worth each way, of varied sizes.
        let out: Vec<(SocketAddr, Vec<u8>)> = (0..PER_CALL * 2 + 5)
            .map(|i| (to, vec![i as u8; 1 + i * 7]))
            .collect();
        assert_eq!(send_all(&a, &out).unwrap(), out.len());
        let mut receiver = Receiver::new();
        let mut got = Vec::new();
        while got.len() < out.len() {
            let n = receiver.recv(&b, got.is_empty(), PER_CALL).unwrap();
            assert!(n > 0, "datagrams lost after {}", got.len());
            assert!(n <= PER_CALL);
            for i in 0..n {
                let (d, from) = receiver.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                got.push(d.to_vec());
            }
        }
        assert_eq!(got, out.into_iter().map(|(_, d)| d).collect::<Vec<_>>());
        // Nothing more queued: a call that does not wait returns none.
        assert_eq!(receiver.recv(&b, false, PER_CALL).unwrap(), 0);
        assert!(receiver.get(0).is_none());
    }

    #[test]
    fn an_oversized_datagram_fills_its_slot_and_is_refused() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let big = vec![0u8; SLOT_LEN + 100];
        assert_eq!(send_all(&a, &[(to, &big)]).unwrap(), 1);
        let mut receiver = Receiver::new();
        assert_eq!(receiver.recv(&b, true, PER_CALL).unwrap(), 1);
        let (d, _) = receiver.get(0).unwrap();
        assert_eq!(d.len(), SLOT_LEN);
        assert!(crate::Datagram::read(d).is_err());
    }

    #[test]
    fn a_wait_ends_at_the_read_timeout_with_nothing() {
        let (_, b) = pair();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(Receiver::new().recv(&b, true, PER_CALL).unwrap(), 0);
    }

    #[test]
    fn a_refused_destination_costs_only_its_own_datagram() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        // Port 0 (an attacker's source address) and the other family are
        // refused by the kernel; first in a call and in its middle.
        let port0: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let out = vec![
            (port0, vec![9u8]),
            (to, vec![1u8]),
            (v6, vec![9u8]),
            (to, vec![2u8]),
            (port0, vec![9u8]),
        ];
        assert_eq!(send_all(&a, &out).unwrap(), 2);
        let mut receiver = Receiver::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = receiver.recv(&b, true, PER_CALL).unwrap();
            assert!(n > 0);
            for i in 0..n {
                got.push(receiver.get(i).unwrap().0.to_vec());
            }
        }
        assert_eq!(got, vec![vec![1u8], vec![2u8]]);
    }

    #[test]
    fn a_call_takes_no_more_than_asked() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let out: Vec<(SocketAddr, Vec<u8>)> = (0..10u8).map(|i| (to, vec![i])).collect();
        assert_eq!(send_all(&a, &out).unwrap(), 10);
        let mut receiver = Receiver::new();
        // Wait for all ten to be queued, then take three, then the rest.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(receiver.recv(&b, true, 3).unwrap(), 3);
        assert_eq!(receiver.get(2).unwrap().0, &[2u8]);
        assert!(receiver.get(3).is_none());
        assert_eq!(receiver.recv(&b, false, PER_CALL).unwrap(), 7);
        assert_eq!(receiver.get(0).unwrap().0, &[3u8]);
    }
}
