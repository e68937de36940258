//! Real sockets: a network serving on 127.0.0.1 and three device threads
//! each with its own socket onboard to active and deliver a burst.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use nido_access::fleet::{Control, FleetOptions, run_fleet};
use nido_access::network::{ServeOptions, serve};
use nido_eap::fixtures::Onboarding;
use nido_net::MemorySink;
use nido_pki::DeviceProfile;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Bursts, Devices, Link};
use nido_ue::DeviceState;

/// A network of `world` serving on 127.0.0.1 in a thread until the flag
/// is set, its uplink data into `sink`.
fn serve_in_thread(
    world: &Onboarding,
    sink: &MemorySink,
) -> (
    std::net::SocketAddr,
    Arc<AtomicBool>,
    std::thread::JoinHandle<nido_access::network::ServeStats>,
) {
    let mut network =
        scenario::network(world, &NetworkOptions::default(), Box::new(sink.clone())).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            serve(
                &mut network,
                &socket,
                &ServeOptions::default(),
                &stop,
                |_| {},
            )
            .unwrap()
        })
    };
    (addr, stop, server)
}

/// Device `n` of `world`'s manufacturer, with a standard identity.
fn standard_device(world: &Onboarding, n: u64) -> nido_ue::Device {
    let id = world
        .manufacturer
        .issue_device(
            &world.manufacturer.device_serial(n),
            &DeviceProfile::standard(world.now),
        )
        .unwrap();
    scenario::device(world, &id, false).unwrap()
}

/// Waits (10 s at most) until `sink` holds `n` bursts.
fn wait_for_uplinks(sink: &MemorySink, n: usize) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while sink.received().len() < n && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn devices_onboard_over_udp_and_their_bursts_arrive() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let sink = MemorySink::new();
    let (addr, stop, server) = serve_in_thread(&world, &sink);

    let devices: Vec<_> = (1..=3u64).map(|n| standard_device(&world, n)).collect();
    let threads: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(n, device)| {
            std::thread::spawn(move || {
                // A fleet of one, as `nido device run` drives it: one
                // burst once active, done when it is accepted.
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut fleet = Devices::new(SystemTime::now(), n as u64 + 1, false);
                fleet.add(device);
                fleet.set_bursts(Bursts {
                    count: Some(1),
                    every: Duration::from_secs(1),
                    payload: b"hello over udp".to_vec(),
                    numbered: false,
                });
                let options = FleetOptions {
                    rate: None,
                    timeout: Some(Duration::from_secs(60)),
                    until_settled: true,
                };
                let link = Link::direct();
                let report = run_fleet(&mut fleet, &[addr], &[socket], link, &options, |_| {
                    Control::Continue
                })
                .unwrap();
                assert_eq!(report.burst.sent, 1, "{report:?}");
                fleet.get(0).state()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), DeviceState::Active);
    }
    // The last bursts left (UL NAS TRANSPORT, unanswered): the server
    // takes them on its own time.
    wait_for_uplinks(&sink, 3);
    stop.store(true, Ordering::Relaxed);
    let stats = server.join().unwrap();
    assert!(stats.received > 0 && stats.malformed == 0);
    let received = sink.received();
    assert_eq!(received.len(), 3, "{received:?}");
    assert!(received.iter().all(|u| u.data == b"hello over udp"));
}

/// The UDP driver with a fleet: numbered bursts on the core's schedule
/// (back to back: a zero interval still sends one burst per device and
/// round, never a loop), over two sockets; the run ends when every device
/// sent its bursts and the link sent them on, and each arrives once.
#[test]
fn a_fleet_sends_its_numbered_bursts_and_stops_once_they_left() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let sink = MemorySink::new();
    let (addr, stop, server) = serve_in_thread(&world, &sink);
    let mut fleet = Devices::new(SystemTime::now(), 0, false);
    for n in 1..=3u64 {
        fleet.add(standard_device(&world, n));
    }
    fleet.set_bursts(Bursts {
        count: Some(3),
        every: Duration::ZERO,
        payload: b"x".to_vec(),
        numbered: true,
    });
    let sockets = nido_access::fleet::fleet_sockets(addr, 2).unwrap();
    let options = FleetOptions {
        rate: None,
        timeout: Some(Duration::from_secs(60)),
        until_settled: true,
    };
    let report = run_fleet(
        &mut fleet,
        &[addr],
        &sockets,
        Link::direct(),
        &options,
        |_| Control::Continue,
    )
    .unwrap();
    assert_eq!(report.active, 3, "{report:?}");
    assert_eq!(report.burst.sent, 9, "{report:?}");
    wait_for_uplinks(&sink, 9);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let mut received: Vec<(String, Vec<u8>)> = sink
        .received()
        .into_iter()
        .map(|u| (u.supi.to_string(), u.data))
        .collect();
    received.sort();
    assert_eq!(received.len(), 9, "{received:?}");
    for chunk in received.chunks(3) {
        let data: Vec<&[u8]> = chunk.iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(data, [&b"x;n=1"[..], b"x;n=2", b"x;n=3"], "{received:?}");
        assert!(chunk.iter().all(|(supi, _)| *supi == chunk[0].0));
    }
}
