//! A store that cannot be reached is not a store that says "absent": while
//! every store call fails with `StoreError::Unavailable`, a device is
//! refused with #22 (congestion) and T3346, backs off and keeps what it
//! has; nothing is created, no MSIN is used up; once the store is back and
//! T3346 has passed, the device ends Active with exactly one subscription.
//!
//! How long it backs off depends on whether the reject could be protected
//! (TS 24.501 §5.5.1.2.5): a device that authenticated before the store
//! failed gets its #22 after security mode control, integrity protected,
//! and waits the T3346 sent; one refused before authentication (no context
//! yet) gets it plain and waits a value from its default range.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nido_eap::fixtures::Onboarding;
use nido_nas::view::Inbound;
use nido_net::pvs::ClaimPolicy;
use nido_net::{
    MemorySink, MemoryStore, NetworkEvent, Owner, Store, StoreError, Subscription,
    SubscriptionState,
};
use nido_pki::{DeviceId, DeviceProfile};
use nido_sec::{Cause, Supi};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Faults, Fleet, Link, TraceRecord};
use nido_ue::{DeviceEvent, DeviceState};

use common::{settle, world};

/// The back-off the network's REGISTRATION REJECT #22 carries (the
/// `NetworkConfig::t3346` default).
const T3346: Duration = Duration::from_secs(60);

/// A [`MemoryStore`] behind a switch: while `down` is set, every call
/// fails with [`StoreError::Unavailable`], as a lost database does.
struct OutageStore {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl OutageStore {
    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

impl Store for OutageStore {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.up()?;
        self.inner.subscription_by_device(device)
    }

    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        self.up()?;
        self.inner.subscription_by_supi(supi)
    }

    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        self.up()?;
        self.inner.put_subscription(sub)
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.up()?;
        self.inner.subscriptions()
    }

    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        self.up()?;
        self.inner.allocate_msin()
    }

    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError> {
        self.up()?;
        self.inner.allocate_msin_for(manufacturer, max)
    }

    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError> {
        self.up()?;
        self.inner.allocated_for(manufacturer)
    }

    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        self.up()?;
        self.inner.put_owner(owner)
    }

    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        self.up()?;
        self.inner.owner_of_device(device)
    }

    fn add_claimable(
        &mut self,
        device: &DeviceId,
        claim_code_hash: &str,
    ) -> Result<(), StoreError> {
        self.up()?;
        self.inner.add_claimable(device, claim_code_hash)
    }

    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError> {
        self.up()?;
        self.inner.claim(owner, claim_code_hash)
    }
}

/// One standard device on a perfect link to a network over an
/// [`OutageStore`]; returns the fleet and the store's switch (up).
fn fleet(world: &Onboarding, policy: ClaimPolicy, seed: u64) -> (Fleet, Arc<AtomicBool>) {
    let options = NetworkOptions {
        policy,
        trace: true,
        ..NetworkOptions::default()
    };
    let down = Arc::new(AtomicBool::new(false));
    let store = OutageStore {
        inner: MemoryStore::new(options.msins),
        down: down.clone(),
    };
    let network = scenario::network_with_store(
        world,
        &options,
        Box::new(MemorySink::new()),
        Box::new(store),
    )
    .unwrap();
    let link = Link::new(Faults::NONE, Faults::NONE, seed).unwrap();
    let mut fleet = Fleet::new(network, link, world.now, true);
    let id = world
        .manufacturer
        .issue_device(
            &world.manufacturer.device_serial(1),
            &DeviceProfile::standard(world.now),
        )
        .unwrap();
    fleet.add_device(scenario::device(world, &id, false).unwrap());
    (fleet, down)
}

/// (cause, T3346, integrity protected) of every REGISTRATION REJECT sent
/// downlink.
type Rejects = Rc<RefCell<Vec<(Cause, Option<Duration>, bool)>>>;

/// Adds `r` to `log` if it is a REGISTRATION REJECT sent downlink (the
/// network traces: a protected PDU comes with its plain encoding).
fn note_reject(log: &Rejects, r: &TraceRecord<'_>) {
    if r.direction == Direction::Downlink
        && let Ok(m) = nido_nas::decode(r.plain.unwrap_or(r.pdu))
        && let Ok(Inbound::RegistrationReject { cause, t3346, .. }) = Inbound::read(&m)
    {
        log.borrow_mut().push((cause, t3346, r.plain.is_some()));
    }
}

/// Records every REGISTRATION REJECT sent downlink.
fn record_rejects(fleet: &mut Fleet) -> Rejects {
    let log = Rejects::default();
    let sink = log.clone();
    fleet.set_trace(move |r| note_reject(&sink, r));
    log
}

/// The device was refused with #22 and T3346, `protected` or not, and
/// waits exactly T3346 if it was, a value of its default range if not.
fn assert_backing_off_for_t3346(
    fleet: &Fleet,
    rejects: &[(Cause, Option<Duration>, bool)],
    protected: bool,
) {
    assert_eq!(fleet.device(0).state(), DeviceState::BackingOff);
    assert_eq!(
        rejects,
        &[(Cause::CONGESTION, Some(T3346), protected)],
        "REGISTRATION REJECT #22 with T3346"
    );
    assert!(
        fleet.device_events(0).contains(&DeviceEvent::Rejected {
            message: nido_ue::RejectMessage::RegistrationReject,
            cause: Cause::CONGESTION,
        }),
        "{:?}",
        fleet.device_events(0)
    );
    let wake = fleet
        .device(0)
        .poll_timeout()
        .map(|at| at.duration_since(fleet.now()).unwrap());
    if protected {
        assert_eq!(wake, Some(T3346), "the device waits T3346, not T3502");
    } else {
        let (min, max) = nido_ue::Timers::default().t3346_default;
        assert!(
            wake.is_some_and(|w| (min..=max).contains(&w)),
            "an unprotected T3346 is not used: {wake:?}"
        );
    }
    assert!(
        fleet.network_events().iter().any(|e| matches!(
            e,
            NetworkEvent::Refused {
                cause: Cause::CONGESTION,
                ..
            }
        )),
        "{:?}",
        fleet.network_events()
    );
    // Never a cause that makes the device give up or erase its credentials.
    assert!(
        !fleet.network_events().iter().any(|e| matches!(
            e,
            NetworkEvent::Refused {
                cause: Cause::ILLEGAL_UE
                    | Cause::SERVICES_NOT_ALLOWED
                    | Cause::UE_IDENTITY_CANNOT_BE_DERIVED
                    | Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
                ..
            }
        )),
        "{:?}",
        fleet.network_events()
    );
}

/// After the outage: T3346 passes, the device registers again and ends
/// Active with exactly one subscription, the first MSIN of the range.
fn assert_recovers(fleet: &mut Fleet, down: &AtomicBool) {
    let refused_at = fleet.now();
    down.store(false, Ordering::SeqCst);
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    assert!(fleet.now().duration_since(refused_at).unwrap() >= T3346);
    let subs = fleet.network().store().subscriptions().unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0].device.serial(), fleet.device(0).serial());
    assert_eq!(subs[0].state, SubscriptionState::Active);
    assert_eq!(
        subs[0].supi.to_string(),
        "imsi-999990000000001",
        "no MSIN used up during the outage"
    );
    assert_eq!(
        Some(&subs[0].supi),
        fleet.device(0).subscription().map(|p| &p.supi)
    );
}

#[test]
fn an_onboarding_device_backs_off_while_the_store_is_down_then_onboards_once() {
    let world = world();
    for (seed, policy) in [(1, ClaimPolicy::Standalone), (2, ClaimPolicy::RequireClaim)] {
        let (mut fleet, down) = fleet(&world, policy, seed);
        let rejects = record_rejects(&mut fleet);
        if policy == ClaimPolicy::RequireClaim {
            // Claimed while the store was up: the outage must not turn that
            // into "not claimed" (#75, the device would give up for good).
            let serial = fleet.device(0).serial().to_owned();
            let store = fleet.network_mut().store_mut();
            store
                .put_owner(Owner {
                    id: "acme-farms".into(),
                    name: "Acme Farms".into(),
                    credentials: Vec::new(),
                })
                .unwrap();
            store
                .add_claimable(&world.device_id(&serial).unwrap(), "claim-hash-1")
                .unwrap();
            store.claim("acme-farms", "claim-hash-1").unwrap();
        }
        down.store(true, Ordering::SeqCst);

        fleet.power_on(0);
        assert!(settle(&mut fleet, &[0]), "{policy:?}");
        // Refused after EAP-TLS: protected, T3346 as sent.
        assert_backing_off_for_t3346(&fleet, &rejects.borrow(), true);
        assert!(fleet.device(0).subscription().is_none());
        // Nothing was created.
        down.store(false, Ordering::SeqCst);
        assert!(
            fleet.network().store().subscriptions().unwrap().is_empty(),
            "{policy:?}"
        );
        assert!(!fleet.network_events().iter().any(|e| matches!(
            e,
            NetworkEvent::RegisteredForOnboarding { .. } | NetworkEvent::PackageDelivered { .. }
        )));
        down.store(true, Ordering::SeqCst);

        assert_recovers(&mut fleet, &down);
        assert_eq!(rejects.borrow().len(), 1, "{policy:?}");
    }
}

#[test]
fn a_provisioned_device_keeps_its_credentials_while_the_store_is_down() {
    let world = world();
    let (mut fleet, down) = fleet(&world, ClaimPolicy::Standalone, 3);
    let rejects = Rejects::default();
    // The store goes down the moment the provisioned device leaves its
    // onboarding registration: its 5G-AKA registration finds no store.
    let switch = down.clone();
    let rejects_log = rejects.clone();
    fleet.set_trace(move |r| {
        if r.direction == Direction::Uplink && r.message == "DeregistrationRequestUeOriginating" {
            switch.store(true, Ordering::SeqCst);
        }
        note_reject(&rejects_log, r);
    });

    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert!(down.load(Ordering::SeqCst), "the device deregistered");
    // Refused before 5G-AKA (no vector without the store): plain.
    assert_backing_off_for_t3346(&fleet, &rejects.borrow(), false);
    // Not #9: the device keeps the subscription it installed.
    let supi = fleet.device(0).subscription().map(|p| p.supi.clone());
    assert!(supi.is_some());
    assert!(!fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::Authenticated { .. } | NetworkEvent::Registered { .. }
    )));

    assert_recovers(&mut fleet, &down);
    assert_eq!(fleet.device(0).subscription().map(|p| p.supi.clone()), supi);
    // It came back with the credentials it had: no second onboarding.
    let packages = fleet
        .network_events()
        .iter()
        .filter(|e| matches!(e, NetworkEvent::PackageDelivered { .. }))
        .count();
    assert_eq!(packages, 1);
}

/// The store goes down while the provisioned device authenticates (after
/// its challenge, before its RES*): the network cannot record the
/// validation, runs security mode control and refuses with #22 integrity
/// protected; the device waits exactly T3346 and keeps its credentials.
#[test]
fn a_store_lost_during_5g_aka_refuses_with_a_protected_t3346() {
    let world = world();
    let (mut fleet, down) = fleet(&world, ClaimPolicy::Standalone, 5);
    let rejects = Rejects::default();
    let switch = down.clone();
    let rejects_log = rejects.clone();
    // Onboarding left, then the first RES*: the store goes down once.
    let (mut left_onboarding, mut switched) = (false, false);
    fleet.set_trace(move |r| {
        if r.direction == Direction::Uplink {
            if r.message == "DeregistrationRequestUeOriginating" {
                left_onboarding = true;
            }
            if left_onboarding && !switched && r.message == "AuthenticationResponse" {
                switched = true;
                switch.store(true, Ordering::SeqCst);
            }
        }
        note_reject(&rejects_log, r);
    });

    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert!(
        down.load(Ordering::SeqCst),
        "the device answered its challenge"
    );
    assert_backing_off_for_t3346(&fleet, &rejects.borrow(), true);
    let supi = fleet.device(0).subscription().map(|p| p.supi.clone());
    assert!(supi.is_some());
    assert!(!fleet.network_events().iter().any(|e| matches!(
        e,
        NetworkEvent::Authenticated { .. } | NetworkEvent::Registered { .. }
    )));

    assert_recovers(&mut fleet, &down);
    assert_eq!(fleet.device(0).subscription().map(|p| p.supi.clone()), supi);
}
