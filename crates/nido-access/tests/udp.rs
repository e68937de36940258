//! Real sockets: a network serving on 127.0.0.1 and three device threads
//! each with its own socket onboard to active and deliver a burst.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use nido_access::device::{self, Control};
use nido_access::network::{ServeOptions, serve};
use nido_eap::fixtures::Onboarding;
use nido_net::MemorySink;
use nido_pki::DeviceProfile;
use nido_sim::scenario::{self, NetworkOptions};
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
        .map(|(n, mut device)| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                device.power_on(SystemTime::now());
                let deadline = SystemTime::now() + Duration::from_secs(60);
                let mut sent = false;
                let mut settled_at = None;
                device::run(
                    &mut device,
                    &socket,
                    addr,
                    n as u64 + 1,
                    |d, now| {
                        if now > deadline {
                            return Control::Stop;
                        }
                        if d.state() == DeviceState::Active
                            && !sent
                            && d.send_data(now, b"hello over udp").is_ok()
                        {
                            sent = true;
                            settled_at = Some(now);
                        }
                        match settled_at {
                            Some(at)
                                if now.duration_since(at).unwrap_or_default()
                                    > Duration::from_millis(500) =>
                            {
                                Control::Stop
                            }
                            _ => Control::Continue,
                        }
                    },
                    |_| {},
                )
                .unwrap();
                device.state()
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
