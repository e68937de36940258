//! Issue #11's group commit in simulated time: the network writes through
//! a `Stage` committed in groups (the rule that no message leaves before
//! its writes are durable is tested in `nido_net::stage` and, with real
//! kills, in the `nido` binary's `commit_crash` tests). Here: onboarding
//! works through groups, far fewer commits than writes; and a group the
//! store refuses is abandoned with the messages that waited for it and the
//! network's UE contexts (a crash without the restart), after which every
//! device recovers on its own and ends active with exactly one durable
//! subscription.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nido_net::{
    MemorySink, MemoryStore, Owner, SharedStore, Stage, Store, StoreError, Subscription,
    SubscriptionState, Write,
};
use nido_pki::{DeviceId, DeviceProfile};
use nido_sec::Supi;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link};
use nido_ue::DeviceState;

use common::world;

const DEVICES: usize = 40;

/// A durable store whose group commits fail while `refuse` counts down
/// past `after` successful groups: the n-th group is refused.
struct Refusing {
    inner: SharedStore,
    groups: Arc<AtomicU64>,
    refuse: Vec<u64>,
}

impl Store for Refusing {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.inner.subscription_by_device(device)
    }
    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        self.inner.subscription_by_supi(supi)
    }
    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        self.inner.put_subscription(sub)
    }
    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.inner.subscriptions()
    }
    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        self.inner.allocate_msin()
    }
    fn allocate_msin_for(&mut self, m: &str, max: u64) -> Result<u64, StoreError> {
        self.inner.allocate_msin_for(m, max)
    }
    fn allocated_for(&self, m: &str) -> Result<u64, StoreError> {
        self.inner.allocated_for(m)
    }
    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        self.inner.put_owner(owner)
    }
    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        self.inner.owner_of_device(device)
    }
    fn add_claimable(&mut self, device: &DeviceId, hash: &str) -> Result<(), StoreError> {
        self.inner.add_claimable(device, hash)
    }
    fn claim(&mut self, owner: &str, hash: &str) -> Result<DeviceId, StoreError> {
        self.inner.claim(owner, hash)
    }
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let n = self.groups.fetch_add(1, Ordering::SeqCst) + 1;
        if self.refuse.contains(&n) {
            return Err(StoreError::Unavailable(format!("group {n} refused")));
        }
        self.inner.apply(writes)
    }
}

/// `DEVICES` devices on a link with some loss, over a stage whose groups
/// listed in `refuse` fail; runs until all are active (or a simulated day).
fn run(refuse: Vec<u64>) -> (Fleet, SharedStore, Stage, u64) {
    let world = world();
    let options = NetworkOptions::default();
    let durable = SharedStore::new(Box::new(MemoryStore::new(options.msins)));
    let groups = Arc::new(AtomicU64::new(0));
    let stage = Stage::new(
        Box::new(durable.clone()),
        Box::new(Refusing {
            inner: durable.clone(),
            groups: groups.clone(),
            refuse,
        }),
    );
    let network = scenario::network_with_store(
        &world,
        &options,
        Box::new(MemorySink::new()),
        Box::new(stage.clone()),
    )
    .unwrap();
    let faults = Faults {
        loss: 0.05,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(10),
        ..Faults::NONE
    };
    let link = Link::new(faults, faults, 0x00c0_ffee).unwrap();
    let mut fleet = Fleet::new(network, link, world.now, true);
    fleet.set_group_commit(stage.clone(), Duration::from_millis(2));
    for n in 0..DEVICES {
        let id = world
            .manufacturer
            .issue_device(
                &world.manufacturer.device_serial(n as u64 + 1),
                &DeviceProfile::standard(world.now),
            )
            .unwrap();
        fleet.add_device(scenario::device(&world, &id, false).unwrap());
        fleet.power_on(n);
    }
    let deadline = fleet.now() + Duration::from_secs(24 * 3600);
    fleet.run_until(deadline, |f| {
        f.devices().iter().all(|d| d.state() == DeviceState::Active)
    });
    let n = groups.load(Ordering::SeqCst);
    (fleet, durable, stage, n)
}

/// Every device active, one durable subscription each, all active, SUPIs
/// distinct, nothing left pending.
fn assert_settled(fleet: &Fleet, durable: &SharedStore, stage: &Stage) {
    let stuck: Vec<_> = fleet
        .devices()
        .iter()
        .enumerate()
        .filter(|(_, d)| d.state() != DeviceState::Active)
        .map(|(i, d)| (i, d.state()))
        .collect();
    assert!(stuck.is_empty(), "not active: {stuck:?}");
    let subs = durable.subscriptions().unwrap();
    assert_eq!(subs.len(), DEVICES, "one subscription per device");
    assert!(subs.iter().all(|s| s.state == SubscriptionState::Active));
    let supis: HashSet<_> = subs.iter().map(|s| s.supi.to_string()).collect();
    assert_eq!(supis.len(), DEVICES, "no SUPI twice");
    let devices: HashSet<_> = subs.iter().map(|s| s.device.to_string()).collect();
    assert_eq!(devices.len(), DEVICES, "no device twice");
    assert_eq!(stage.pending(), 0);
}

#[test]
fn devices_onboard_through_group_commits() {
    let (fleet, durable, stage, groups) = run(Vec::new());
    assert_settled(&fleet, &durable, &stage);
    assert_eq!(stage.failures(), 0);
    // Groups, not one commit per write: far fewer groups than writes.
    assert!(fleet.group_commits() > 0);
    assert!(
        groups < (DEVICES as u64) * 4,
        "{groups} groups for {DEVICES} devices"
    );
}

#[test]
fn an_abandoned_group_takes_its_replies_and_devices_recover() {
    // Groups 3 and 9 are refused: somewhere in provisioning and validation.
    let (fleet, durable, stage, _) = run(vec![3, 9]);
    assert_eq!(stage.failures(), 2, "both refused groups were abandoned");
    assert_settled(&fleet, &durable, &stage);
}
