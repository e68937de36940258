//! The real `serve` driver on 127.0.0.1 against an off-path injector
//! sending from a second socket, another address (issue #17, findings 4
//! and 6): it knows connection ids but holds no key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nido_access::Datagram;
use nido_access::fleet::{Control, FleetOptions, run_fleet};
use nido_access::network::{ServeOptions, ServeStats, serve};
use nido_eap::fixtures::Onboarding;
use nido_net::amf::RateLimit;
use nido_net::{MemorySink, Network, Store};
use nido_pki::DeviceProfile;
use nido_sim::injector::Injector;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Devices, Link};
use nido_store::{Kek, SqlStore};
use nido_ue::DeviceState;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "nido-adversary-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn db(&self) -> String {
        format!("sqlite://{}", self.0.join("nido.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kek() -> Kek {
    Kek::new([0x42; 32])
}

/// A network serving on 127.0.0.1 in its own thread.
struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ServeStats>,
}

impl Served {
    fn start(mut network: Network, options: ServeOptions) -> Self {
        let socket = nido_access::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            serve(&mut network, &socket, &options, &flag, |_| {}).unwrap()
        });
        Self { addr, stop, thread }
    }

    fn stop(self) -> ServeStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The attacker's socket: another port, so another address.
fn attacker() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    socket
}

fn send_nas(socket: &UdpSocket, to: SocketAddr, conn: u64, pdu: &[u8]) {
    let mut out = Vec::new();
    Datagram::nas(conn, pdu).encode(&mut out);
    socket.send_to(&out, to).unwrap();
}

/// Datagrams `socket` receives until it is quiet for its read timeout.
fn drain(socket: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        match socket.recv_from(&mut buf) {
            Ok(_) => n += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return n;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Waits until the server has been quiet a moment (it read what was sent).
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Finding 4 over UDP: with a registered device's connection id, the
/// attacker's release, plain REGISTRATION REQUEST, SECURITY MODE REJECT,
/// AUTHENTICATION FAILURE and forged protected PDU from another address
/// get no answer (nothing is sent to the attacker) and change nothing: the
/// device's bursts afterwards all arrive. Before: the release dropped the
/// device's address, the REGISTRATION REQUEST removed its context and the
/// #9 went to the attacker.
#[test]
fn another_address_cannot_release_take_over_or_tear_down_a_connection() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let sink = MemorySink::new();
    let network =
        scenario::network(&world, &NetworkOptions::default(), Box::new(sink.clone())).unwrap();
    let served = Served::start(network, ServeOptions::default());
    let addr = served.addr;

    let id = world
        .manufacturer
        .issue_device(
            &world.manufacturer.device_serial(1),
            &DeviceProfile::standard(world.now),
        )
        .unwrap();
    let device = scenario::device(&world, &id, false).unwrap();
    let conn = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    const BURSTS: usize = 6;
    let device_thread = {
        let (conn, go) = (conn.clone(), go.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut fleet = Devices::new(SystemTime::now(), 0x5eed, false);
            fleet.add(device);
            let mut sent = 0;
            let mut last = Instant::now();
            let options = FleetOptions {
                rate: None,
                timeout: Some(Duration::from_secs(60)),
                until_settled: false,
            };
            let link = Link::direct();
            run_fleet(&mut fleet, &[addr], &[socket], link, &options, |round| {
                if round.device(0).state() == DeviceState::Active
                    && conn.load(Ordering::Relaxed) == 0
                {
                    conn.store(round.devices().connection(0), Ordering::Relaxed);
                }
                // Once the attack is over, BURSTS bursts 50 ms apart.
                if go.load(Ordering::Relaxed)
                    && sent < BURSTS
                    && last.elapsed() > Duration::from_millis(50)
                    && round.send_data(0, &[sent as u8; 16]).is_ok()
                {
                    sent += 1;
                    last = Instant::now();
                }
                if sent == BURSTS && last.elapsed() > Duration::from_millis(500) {
                    return Control::Stop;
                }
                Control::Continue
            })
            .unwrap();
            fleet.get(0).state()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while conn.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the device did not become active"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    settle(); // the data session
    let conn = conn.load(Ordering::Relaxed);

    let attacker = attacker();
    let mut injector = Injector::new(4);
    let mut release = Vec::new();
    Datagram {
        kind: nido_access::Kind::Release,
        conn,
        payload: &[],
    }
    .encode(&mut release);
    attacker.send_to(&release, addr).unwrap();
    for pdu in [
        injector.registration_request().unwrap(),
        Injector::security_mode_reject().unwrap(),
        Injector::authentication_failure().unwrap(),
        injector.forged_protected(2, &[0x7e, 0x00, 0x67, 0x01, 0x00, 0x00]),
    ] {
        send_nas(&attacker, addr, conn, &pdu);
    }
    assert_eq!(drain(&attacker), 0, "the network answered the attacker");

    go.store(true, Ordering::Relaxed);
    assert_eq!(device_thread.join().unwrap(), DeviceState::Active);
    let stats = served.stop();
    assert_eq!(sink.received().len(), BURSTS, "{stats:?}");
    assert!(stats.foreign >= 5, "{stats:?}");
}

/// Finding 6 over UDP: 3,000 junk datagrams with random connection ids
/// write no audit row (before: 3,000 rows, 3,000 commits); 3,000 plain
/// REGISTRATION REQUESTs with SUCIs that do not de-conceal write at most
/// the refusal bucket's rows, in few commits.
#[test]
fn junk_writes_no_audit_rows_and_refusals_are_bounded() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let dir = TempDir::new();
    let store = SqlStore::open(&dir.db(), kek()).unwrap();
    store.set_msin_range(100).unwrap();
    let network = scenario::network_with_store(
        &world,
        &NetworkOptions::default(),
        Box::new(MemorySink::new()),
        Box::new(store) as Box<dyn Store + Send>,
    )
    .unwrap();
    let options = ServeOptions {
        refusal_audit: RateLimit {
            burst: 50,
            per_second: 1,
        },
        ..ServeOptions::default()
    };
    let served = Served::start(network, options);
    let addr = served.addr;
    let attacker = attacker();
    let mut injector = Injector::new(6);

    const N: usize = 3_000;
    for _ in 0..N {
        let conn = injector.random_conn();
        let junk = injector.junk();
        send_nas(&attacker, addr, conn, &junk);
    }
    settle();
    let rows_after_junk = SqlStore::open(&dir.db(), kek())
        .unwrap()
        .audit(1_000_000)
        .unwrap()
        .len();

    for _ in 0..N {
        let conn = injector.random_conn();
        let request = injector.registration_request().unwrap();
        send_nas(&attacker, addr, conn, &request);
        if attacker.set_nonblocking(true).is_ok() {
            let mut buf = [0u8; 512];
            while attacker.recv_from(&mut buf).is_ok() {}
            attacker.set_nonblocking(false).unwrap();
        }
    }
    settle();
    let stats = served.stop();
    let rows = SqlStore::open(&dir.db(), kek())
        .unwrap()
        .audit(1_000_000)
        .unwrap()
        .len();
    eprintln!(
        "{N} junk datagrams: {rows_after_junk} audit rows; then {N} junk SUCIs: {} rows; {stats:?}",
        rows - rows_after_junk
    );
    assert_eq!(stats.received, 2 * N as u64, "{stats:?}");
    assert_eq!(rows_after_junk, 0, "junk wrote audit rows");
    assert!(rows - rows_after_junk <= 55, "{rows} rows: {stats:?}");
    assert!(stats.unaudited > 0, "{stats:?}");
    assert!(stats.audit_commits < 100, "{stats:?}");
}
