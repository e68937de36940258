//! The network driver answers a system-information request with its
//! identity (PLMN and NID), never with more octets than it received, never
//! to a malformed or oversized request, and at most as often as its token
//! bucket allows; a device's driver asks again until it is answered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nido_access::device::{Backoff, system_information};
use nido_access::network::{ServeOptions, ServeStats, serve};
use nido_access::{Datagram, Kind, REQUEST_PADDING, SystemInformation};
use nido_eap::fixtures::Onboarding;
use nido_net::MemorySink;
use nido_net::amf::RateLimit;
use nido_sim::scenario::{self, NetworkOptions};

struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ServeStats>,
}

fn start(socket: UdpSocket, options: ServeOptions) -> Served {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let mut network = scenario::network(
        &world,
        &NetworkOptions::default(),
        Box::new(MemorySink::new()),
    )
    .unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread =
        std::thread::spawn(move || serve(&mut network, &socket, &options, &flag, |_| {}).unwrap());
    Served { addr, stop, thread }
}

impl Served {
    fn stop(self) -> ServeStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket
}

/// Every datagram `socket` receives until it is quiet for its read timeout.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, _)) => got.push(buf[..len].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return got;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn the_network_announces_its_identity_and_ignores_junk() {
    let served = start(
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        ServeOptions::default(),
    );
    let c = client();
    let request = Datagram::system_information_request(0xfeed).to_vec();
    assert_eq!(request.len(), 10 + REQUEST_PADDING);
    c.send_to(&request, served.addr).unwrap();
    let got = drain(&c);
    assert_eq!(got.len(), 1, "{got:?}");
    let reply = Datagram::read(&got[0]).unwrap();
    assert_eq!(reply.kind, Kind::SystemInformation);
    assert_eq!(reply.conn, 0xfeed, "the transaction id is echoed");
    assert!(
        got[0].len() <= request.len(),
        "an answer larger than its request"
    );
    let info = SystemInformation::read(reply.payload).unwrap();
    let expected = scenario::serving_network();
    assert_eq!(info.serving_network().unwrap().snn, expected.snn);
    assert_eq!((info.mcc(), info.mnc()), ("999", "99"));
    assert_eq!(info.nid(), Some("000000000AB"));

    // Junk gets nothing: oversized, truncated, something in the padding,
    // the network's own kind sent to it, a header alone.
    let oversized = [&request[..], &[0u8; 64][..]].concat();
    let truncated = &request[..request.len() - 1];
    let mut dirty = request.clone();
    dirty[12] = 0xff;
    let mut answer_kind = got[0].clone();
    answer_kind[2..10].copy_from_slice(&7u64.to_be_bytes());
    for junk in [
        &oversized[..],
        truncated,
        &dirty[..],
        &answer_kind[..],
        &request[..10],
        &[0u8; 9000][..],
    ] {
        c.send_to(junk, served.addr).unwrap();
    }
    assert_eq!(drain(&c), Vec::<Vec<u8>>::new());
    let stats = served.stop();
    assert_eq!(stats.system_information, 1, "{stats:?}");
    assert_eq!(stats.malformed, 6, "{stats:?}");
}

#[test]
fn answers_are_bounded_by_the_token_bucket() {
    let options = ServeOptions {
        system_information: RateLimit {
            burst: 3,
            per_second: 0,
        },
        ..ServeOptions::default()
    };
    let served = start(UdpSocket::bind("127.0.0.1:0").unwrap(), options);
    let c = client();
    for id in 0..5 {
        c.send_to(
            &Datagram::system_information_request(id).to_vec(),
            served.addr,
        )
        .unwrap();
    }
    assert_eq!(drain(&c).len(), 3);
    let stats = served.stop();
    assert_eq!(
        (stats.system_information, stats.system_information_dropped),
        (3, 2),
        "{stats:?}"
    );
}

#[test]
fn a_device_asks_again_until_the_network_answers() {
    // The network's socket exists (so nothing is refused) but nobody serves
    // it for a while: the first requests go unanswered.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        start(socket, ServeOptions::default())
    });
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let began = Instant::now();
    let info = system_information(
        &c,
        addr,
        42,
        Backoff::default(),
        Some(Instant::now() + Duration::from_secs(20)),
    )
    .unwrap()
    .expect("answered once the network serves");
    assert!(began.elapsed() >= Duration::from_millis(700));
    assert_eq!(info.nid(), Some("000000000AB"));
    let served = late.join().unwrap();
    let stats = served.stop();
    // The requests queued in the socket meanwhile were answered too.
    assert!(stats.system_information >= 1, "{stats:?}");

    // Nobody at all: `None` at the deadline, not an error or a hang.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let began = Instant::now();
    let none = system_information(
        &c,
        silent.local_addr().unwrap(),
        43,
        Backoff::default(),
        Some(Instant::now() + Duration::from_millis(800)),
    )
    .unwrap();
    assert!(none.is_none());
    assert!(began.elapsed() < Duration::from_secs(3));
}
