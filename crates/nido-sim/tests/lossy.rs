//! 1,000 devices onboard over a bad link (20% loss, 5% duplication, 5%
//! reordering, jitter, both directions): every one ends active, and the
//! store holds exactly one subscription per device, none half-created.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::collections::HashSet;
use std::time::Duration;

use nido_net::SubscriptionState;
use nido_pki::DeviceProfile;
use nido_sim::Faults;
use nido_sim::scenario::NetworkOptions;
use nido_ue::DeviceState;

use common::{fleet, world};

const DEVICES: usize = 1_000;

#[test]
fn a_thousand_devices_reach_active_over_a_lossy_link() {
    let world = world();
    let faults = Faults {
        loss: 0.2,
        duplicate: 0.05,
        reorder: 0.05,
        corrupt: 0.0,
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
        reorder_delay: Duration::from_millis(500),
    };
    let profiles = vec![DeviceProfile::standard(world.now); DEVICES];
    let (mut fleet, _sink) = fleet(
        &world,
        &NetworkOptions::default(),
        &profiles,
        faults,
        0x5eed,
    );
    for i in 0..DEVICES {
        fleet.power_on(i);
    }
    let deadline = fleet.now() + Duration::from_secs(24 * 3600);
    let all_active = fleet.run_until(deadline, |f| {
        f.devices().iter().all(|d| d.state() == DeviceState::Active)
    });
    let stuck: Vec<_> = fleet
        .devices()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.state() != DeviceState::Active)
        .map(|(i, d)| (i, d.state()))
        .collect();
    assert!(
        all_active,
        "{} devices not active: {:?}",
        stuck.len(),
        &stuck[..stuck.len().min(10)]
    );

    let stats = fleet.link_stats();
    assert!(stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0);

    // One subscription per device, all active, SUPIs unique, and each
    // device holds the SUPI the store has for it.
    let subscriptions = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subscriptions.len(), DEVICES);
    assert!(
        subscriptions
            .iter()
            .all(|s| s.state == SubscriptionState::Active)
    );
    let supis: HashSet<_> = subscriptions.iter().map(|s| s.supi.clone()).collect();
    assert_eq!(supis.len(), DEVICES);
    for device in fleet.devices() {
        let sub = fleet
            .network()
            .store()
            .subscription_by_device(&world.device_id(device.serial()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(Some(&sub.supi), device.subscription().map(|p| &p.supi));
    }
    eprintln!(
        "simulated {:?}; link {stats:?}",
        fleet.now().duration_since(world.now).unwrap()
    );
}
