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
use nido_sim::{Bursts, Devices, Faults, Link};
use nido_ue::DeviceState;

#[test]
fn devices_onboard_over_udp_and_their_bursts_arrive() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let sink = MemorySink::new();
    let mut network =
        scenario::network(&world, &NetworkOptions::default(), Box::new(sink.clone())).unwrap();
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

    let devices: Vec<_> = (1..=3u64)
        .map(|n| {
            let id = world
                .manufacturer
                .issue_device(
                    &world.manufacturer.device_serial(n),
                    &DeviceProfile::standard(world.now),
                )
                .unwrap();
            scenario::device(&world, &id, false).unwrap()
        })
        .collect();
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
                let link = Link::new(Faults::NONE, Faults::NONE, 0).unwrap();
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
    stop.store(true, Ordering::Relaxed);
    let stats = server.join().unwrap();
    assert!(stats.received > 0 && stats.malformed == 0);
    let received = sink.received();
    assert_eq!(received.len(), 3, "{received:?}");
    assert!(received.iter().all(|u| u.data == b"hello over udp"));
}
