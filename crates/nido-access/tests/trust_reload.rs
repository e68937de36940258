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

use nido_access::fleet::{Control, FleetOptions, run_fleet};
use nido_access::network::{ServeOptions, serve_with};
use nido_access::trust::TrustWatch;
use nido_eap::fixtures::Onboarding;
use nido_net::{MemorySink, NetworkEvent};
use nido_pki::{DeviceId, DeviceIdentity, DeviceProfile, Policy, Revoked};
use nido_sec::Cause;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Devices, Link};
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
    let mut fleet = Devices::new(SystemTime::now(), base, false);
    fleet.add(scenario::device(world, id, false).unwrap());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    run_until(&mut fleet, &socket, network, |s| {
        matches!(
            s,
            DeviceState::Active | DeviceState::Failed | DeviceState::BackingOff
        )
    });
    fleet.get(0).state()
}

/// The operator's database in `dir`: `world`'s manufacturer and a current
/// CRL. Returns its URL, its KEK and the operator's connection.
fn operator_database(world: &Onboarding, dir: &TempDir) -> (String, Kek, SqlStore) {
    let (m, now) = (&world.manufacturer, world.now);
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
    (url, kek, operator)
}

/// A network serving on 127.0.0.1 in a thread, its trust watch on a
/// connection of its own to the database at `url`.
struct Served {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    loaded: Arc<AtomicU64>,
    /// The causes of its refusals, in order.
    refusals: Arc<Mutex<Vec<Cause>>>,
    server: std::thread::JoinHandle<()>,
}

impl Served {
    fn start(world: &Onboarding, url: &str, kek: Kek) -> Self {
        let mut network = scenario::network(
            world,
            &NetworkOptions::default(),
            Box::new(MemorySink::new()),
        )
        .unwrap();
        let mut watch = TrustWatch::new(
            SqlStore::open(url, kek).unwrap(),
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
                .unwrap();
            })
        };
        Self {
            addr,
            stop,
            loaded,
            refusals,
            server,
        }
    }

    /// Waits until the network holds the trust store of generation `g`
    /// (promptly: the watch asks every 20 ms, the driver's rounds are at
    /// most 100 ms).
    fn wait_for(&self, g: u64) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.loaded.load(Ordering::SeqCst) != g {
            assert!(Instant::now() < until, "generation {g} never loaded");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.join().unwrap();
    }
}

/// Runs the device of `fleet` (a fleet of one) on `socket` until `done`
/// says so of its state or 20 s passed; returns the events it reported.
fn run_until(
    fleet: &mut Devices,
    socket: &UdpSocket,
    network: SocketAddr,
    done: impl Fn(DeviceState) -> bool,
) -> Vec<nido_ue::DeviceEvent> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    fleet.set_events(move |_, _, e| seen.lock().unwrap().push(e.clone()));
    let options = FleetOptions {
        rate: None,
        timeout: Some(Duration::from_secs(20)),
        until_settled: false,
    };
    let link = Link::direct();
    run_fleet(
        fleet,
        &[network],
        std::slice::from_ref(socket),
        link,
        &options,
        |round| {
            if done(round.device(0).state()) {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    )
    .unwrap();
    events.lock().unwrap().clone()
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
    let (url, kek, operator) = operator_database(&world, &dir);

    let served = Served::start(&world, &url, kek);
    let addr = served.addr;
    let refusals = served.refusals.clone();
    let wait_for = |g: u64| served.wait_for(g);
    wait_for(operator.trust_generation().unwrap());
    assert_eq!(onboard(&world, &a, addr, 1), DeviceState::Active);

    // Blocked while serving: the next onboarding is refused (#3).
    let b_id = DeviceId::new(m.name(), &b.serial).unwrap();
    assert!(operator.block(&b_id, "stolen").unwrap());
    wait_for(operator.trust_generation().unwrap());
    assert_ne!(onboard(&world, &b, addr, 2), DeviceState::Active);
    assert_eq!(*refusals.lock().unwrap(), vec![Cause::ILLEGAL_UE]);

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
    assert_eq!(*refusals.lock().unwrap(), vec![Cause::ILLEGAL_UE; 2]);

    // Everyone else still onboards; unblocking is seen the same way.
    assert_eq!(onboard(&world, &d, addr, 4), DeviceState::Active);
    assert!(operator.unblock(&b_id).unwrap());
    wait_for(operator.trust_generation().unwrap());
    assert_eq!(onboard(&world, &b, addr, 5), DeviceState::Active);

    served.stop();
}

#[test]
fn a_block_made_while_serving_deregisters_an_active_device_until_it_is_unblocked() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let m = &world.manufacturer;
    let id = m
        .issue_device(&m.device_serial(1), &DeviceProfile::standard(world.now))
        .unwrap();
    let dir = TempDir::new();
    let (url, kek, operator) = operator_database(&world, &dir);
    let served = Served::start(&world, &url, kek);
    served.wait_for(operator.trust_generation().unwrap());

    let mut fleet = Devices::new(SystemTime::now(), 1, false);
    fleet.add(scenario::device(&world, &id, false).unwrap());
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    run_until(&mut fleet, &socket, served.addr, |s| {
        s == DeviceState::Active
    });
    assert_eq!(fleet.get(0).state(), DeviceState::Active);
    let supi = fleet.get(0).subscription().unwrap().supi.clone();

    // `nido network block` while the device is registered: the network
    // deregisters it (#3, protected) at its next trust poll.
    let device_id = DeviceId::new(m.name(), &id.serial).unwrap();
    assert!(operator.block(&device_id, "stolen").unwrap());
    let events = run_until(&mut fleet, &socket, served.addr, |s| {
        s == DeviceState::Failed
    });
    assert_eq!(fleet.get(0).state(), DeviceState::Failed, "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            nido_ue::DeviceEvent::Rejected {
                message: nido_ue::RejectMessage::DeregistrationRequest,
                cause: Cause::ILLEGAL_UE
            }
        )),
        "{events:?}"
    );

    // Registering again with its subscription: refused, protected (#3).
    fleet.get_mut(0).power_on(SystemTime::now());
    let events = run_until(&mut fleet, &socket, served.addr, |s| {
        matches!(
            s,
            DeviceState::Failed | DeviceState::Active | DeviceState::BackingOff
        )
    });
    assert_eq!(fleet.get(0).state(), DeviceState::Failed, "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            nido_ue::DeviceEvent::Rejected {
                message: nido_ue::RejectMessage::RegistrationReject,
                cause: Cause::ILLEGAL_UE
            }
        )),
        "{events:?}"
    );
    assert_eq!(*served.refusals.lock().unwrap(), vec![Cause::ILLEGAL_UE; 2]);

    // Unblocked: the same subscription is active again.
    assert!(operator.unblock(&device_id).unwrap());
    served.wait_for(operator.trust_generation().unwrap());
    fleet.get_mut(0).power_on(SystemTime::now());
    run_until(&mut fleet, &socket, served.addr, |s| {
        matches!(
            s,
            DeviceState::Failed | DeviceState::Active | DeviceState::BackingOff
        )
    });
    assert_eq!(fleet.get(0).state(), DeviceState::Active);
    assert_eq!(fleet.get(0).subscription().unwrap().supi, supi);
    served.stop();
}
