//! A network serving on 127.0.0.1 sees the operator's changes of trust
//! made in its database while it runs (a block, a CRL), from the next
//! onboarding on, without a restart: the driver's [`TrustWatch`] polls the
//! trust generation and hands the new trust store to the network.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nido_access::device::{self, Control};
use nido_access::network::{ServeOptions, serve_with};
use nido_access::trust::TrustWatch;
use nido_eap::fixtures::Onboarding;
use nido_net::{MemorySink, NetworkEvent};
use nido_pki::{DeviceId, DeviceIdentity, DeviceProfile, Policy, Revoked};
use nido_sim::scenario::{self, NetworkOptions};
use nido_store::{Kek, SqlStore};
use nido_ue::DeviceState;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "nido-trust-reload-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs one device until it is active, refused (it backs off: an
/// unprotected #3 starts T3247, TS 24.501 §5.3.20) or gave up, 20 s at most.
fn onboard(world: &Onboarding, id: &DeviceIdentity, network: SocketAddr, base: u64) -> DeviceState {
    let mut device = scenario::device(world, id, false).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    device.power_on(SystemTime::now());
    let deadline = SystemTime::now() + Duration::from_secs(20);
    device::run(
        &mut device,
        &socket,
        network,
        base,
        |d, now| match d.state() {
            DeviceState::Active | DeviceState::Failed | DeviceState::BackingOff => Control::Stop,
            _ if now > deadline => Control::Stop,
            _ => Control::Continue,
        },
        |_| {},
    )
    .unwrap();
    device.state()
}

#[test]
fn a_block_and_a_crl_made_while_serving_apply_to_the_next_onboarding() {
    let now = SystemTime::now();
    let world = Onboarding::new("Acme Sensors", now).unwrap();
    let m = &world.manufacturer;
    let issue = |n: u64| {
        m.issue_device(&m.device_serial(n), &DeviceProfile::standard(now))
            .unwrap()
    };
    let (a, b, c, d) = (issue(1), issue(2), issue(3), issue(4));

    // The operator's database: the manufacturer and a current CRL.
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("net.db").display());
    let kek = Kek::new([0x4b; 32]);
    let operator = SqlStore::open(&url, kek.clone()).unwrap();
    operator
        .put_manufacturer(m.name(), m.root_der(), &Policy::for_manufacturer(m))
        .unwrap();
    let crl = m
        .crl(
            &[],
            now - Duration::from_secs(60),
            now + Duration::from_secs(86_400),
            1,
        )
        .unwrap();
    operator
        .add_crl(m.name(), &crl, m.issuing_der(), 1)
        .unwrap();

    // The network, its trust watch on a connection of its own.
    let mut network = scenario::network(
        &world,
        &NetworkOptions::default(),
        Box::new(MemorySink::new()),
    )
    .unwrap();
    let mut watch = TrustWatch::new(
        SqlStore::open(&url, kek).unwrap(),
        Duration::from_millis(20),
        None,
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let loaded = Arc::new(AtomicU64::new(u64::MAX));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let (stop, loaded, refusals) = (stop.clone(), loaded.clone(), refusals.clone());
        std::thread::spawn(move || {
            serve_with(
                &mut network,
                &socket,
                &ServeOptions::default(),
                &stop,
                |e| {
                    if let NetworkEvent::Refused { cause, .. } = e {
                        refusals.lock().unwrap().push(*cause);
                    }
                },
                |n| {
                    if let Some(r) = watch.poll(Instant::now(), n).unwrap() {
                        loaded.store(r.generation, Ordering::SeqCst);
                    }
                },
            )
            .unwrap()
        })
    };
    // The network holds the trust store of generation `g` (promptly: the
    // watch asks every 20 ms, the driver's rounds are at most 100 ms).
    let wait_for = |g: u64| {
        let until = Instant::now() + Duration::from_secs(5);
        while loaded.load(Ordering::SeqCst) != g {
            assert!(Instant::now() < until, "generation {g} never loaded");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(operator.trust_generation().unwrap());
    assert_eq!(onboard(&world, &a, addr, 1), DeviceState::Active);

    // Blocked while serving: the next onboarding is refused (#3).
    let b_id = DeviceId::new(m.name(), &b.serial).unwrap();
    assert!(operator.block(&b_id, "stolen").unwrap());
    wait_for(operator.trust_generation().unwrap());
    assert_ne!(onboard(&world, &b, addr, 2), DeviceState::Active);
    assert_eq!(*refusals.lock().unwrap(), vec![3]);

    // A CRL revoking another device, imported while serving: refused (#3).
    let crl = m
        .crl(
            &[Revoked::of(&c, now - Duration::from_secs(30))],
            now - Duration::from_secs(10),
            now + Duration::from_secs(86_400),
            2,
        )
        .unwrap();
    operator
        .add_crl(m.name(), &crl, m.issuing_der(), 2)
        .unwrap();
    wait_for(operator.trust_generation().unwrap());
    assert_ne!(onboard(&world, &c, addr, 3), DeviceState::Active);
    assert_eq!(*refusals.lock().unwrap(), vec![3, 3]);

    // Everyone else still onboards; unblocking is seen the same way.
    assert_eq!(onboard(&world, &d, addr, 4), DeviceState::Active);
    assert!(operator.unblock(&b_id).unwrap());
    wait_for(operator.trust_generation().unwrap());
    assert_eq!(onboard(&world, &b, addr, 5), DeviceState::Active);

    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}
