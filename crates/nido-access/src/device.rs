//! What a device asks before it runs: [`system_information`], which
//! network it reaches. The device itself runs in the one fleet driver,
//! [`crate::fleet`], as a fleet of one.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::datagram::{Datagram, HEADER_LEN, Kind, MAX_PAYLOAD};
use crate::sysinfo::SystemInformation;

/// How [`system_information`] asks again when no answer comes: the first
/// wait, doubled after each unanswered request up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first request. 250 ms.
    pub first: Duration,
    /// The longest wait between two requests. 4 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

/// Asks the network at `network` which network it is (as a device reads a
/// cell's SIB1 before it registers): sends a system-information request
/// with transaction id `id` and waits for the answer from `network`
/// carrying it, asking again after each wait of `backoff`, until `deadline`
/// (`None`: until it is answered). `Ok(None)` if nobody answered in time.
///
/// What comes back is unauthenticated: a device configured with it is
/// protected by EAP-TLS and by the serving network name entering its keys,
/// not by this answer (see [`crate::sysinfo`]).
pub fn system_information(
    socket: &UdpSocket,
    network: SocketAddr,
    id: u64,
    backoff: Backoff,
    deadline: Option<Instant>,
) -> io::Result<Option<SystemInformation>> {
    let request = Datagram::system_information_request(id).to_vec();
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD + 1];
    let mut wait = backoff.first.max(Duration::from_millis(1));
    loop {
        match socket.send_to(&request, network) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e),
        }
        let until = Instant::now() + wait;
        let until = deadline.map_or(until, |d| d.min(until));
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            match socket.recv_from(&mut buf) {
                Ok((len, from)) if from == network => {
                    if let Ok(d) = Datagram::read(&buf[..len])
                        && d.kind == Kind::SystemInformation
                        && d.conn == id
                        && let Ok(info) = SystemInformation::read(d.payload)
                    {
                        return Ok(Some(info));
                    }
                }
                Ok(_) => {}
                Err(e) if crate::network::would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        wait = (wait * 2).min(backoff.max.max(backoff.first));
    }
}
