//! Issue #17, finding 2: one enrolled manufacturer must not be able to
//! impersonate another's devices. A device's identity is the enrolled
//! manufacturer together with its serial (`DeviceId`), so a rogue
//! manufacturer's certificate carrying the serial of a claimed device of
//! another manufacturer is a different device: it gets neither that
//! device's subscription nor its owner's credentials, the genuine device
//! onboards normally, and every event names the manufacturer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::time::SystemTime;

use nido_eap::fixtures::{Onboarding, RogueManufacturer};
use nido_net::{MemorySink, MemoryStore, NetworkEvent, Owner};
use nido_pki::DeviceProfile;
use nido_prov::ThirdPartyCredential;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link};
use nido_ue::DeviceState;

use common::settle;

const OWNER: &str = "acme-farms";

/// A network that enrolled Acme and the rogue; Acme's device 1 is claimed
/// by an owner whose LwM2M PSK goes into its package. Device 0 of the fleet
/// is the genuine one, device 1 the rogue's copy of its serial.
fn world(
    seed: u64,
) -> (
    Fleet,
    Onboarding,
    RogueManufacturer,
    Vec<ThirdPartyCredential>,
) {
    let (world, rogue) =
        Onboarding::with_rogue("Acme Sensors", "Rogue Devices", SystemTime::now()).unwrap();
    let sink = MemorySink::new();
    let network = scenario::network_with_rogue(
        &world,
        &rogue,
        &NetworkOptions::default(),
        Box::new(sink),
        Box::new(MemoryStore::new(1_000)),
    )
    .unwrap();
    let link = Link::new(Faults::NONE, Faults::NONE, seed).unwrap();
    let mut fleet = Fleet::new(network, link, world.now, true);

    let serial = world.manufacturer.device_serial(1);
    let profile = DeviceProfile::standard(world.now);
    let genuine = world.manufacturer.issue_device(&serial, &profile).unwrap();
    fleet.add_device(scenario::device(&world, &genuine, false).unwrap());
    let (copy, _) = rogue.issue_device(&serial, &profile).unwrap();
    fleet.add_device(scenario::device_of(&rogue.manufacturer, &copy, false).unwrap());

    let credentials = vec![ThirdPartyCredential::Lwm2m {
        server_uri: "coaps://lwm2m.acme-farms.example:5684".into(),
        psk_identity: "acme-farms".into(),
        psk: zeroize::Zeroizing::new(vec![0x5a; 16]),
    }];
    let store = fleet.network_mut().store_mut();
    store
        .put_owner(Owner {
            id: OWNER.into(),
            name: "Acme Farms".into(),
            credentials: credentials.clone(),
        })
        .unwrap();
    let id = world.device_id(&serial).unwrap();
    store.add_claimable(&id, "claim-hash-1").unwrap();
    assert_eq!(store.claim(OWNER, "claim-hash-1").unwrap(), id);
    (fleet, world, rogue, credentials)
}

/// What must hold once both devices settled, whatever the order.
fn check(
    fleet: &Fleet,
    world: &Onboarding,
    rogue: &RogueManufacturer,
    creds: &[ThirdPartyCredential],
) {
    let serial = world.manufacturer.device_serial(1);
    let genuine_id = world.device_id(&serial).unwrap();
    let rogue_id = rogue.device_id(&serial).unwrap();
    assert_ne!(genuine_id, rogue_id);

    // The genuine device onboarded into its owner's subscription.
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let genuine = fleet.device(0).subscription().unwrap();
    assert_eq!(genuine.owner.as_deref(), Some(OWNER));
    assert_eq!(genuine.third_party, creds);

    // The rogue's copy is another device: no owner, no owner's credentials,
    // not the genuine device's SUPI.
    let copy = fleet.device(1).subscription();
    if let Some(copy) = copy {
        assert_eq!(copy.owner, None, "the rogue got the owner");
        assert!(copy.third_party.is_empty(), "the rogue got the owner's PSK");
        assert_ne!(
            copy.supi, genuine.supi,
            "the rogue got the device's subscription"
        );
    }
    let store = fleet.network().store();
    let sub = store.subscription_by_device(&genuine_id).unwrap().unwrap();
    assert_eq!(sub.supi, genuine.supi);
    assert_eq!(sub.owner.as_deref(), Some(OWNER));
    assert!(store.owner_of_device(&rogue_id).unwrap().is_none());
    if let Some(rogue_sub) = store.subscription_by_device(&rogue_id).unwrap() {
        assert_eq!(rogue_sub.owner, None);
        assert_ne!(rogue_sub.supi, genuine.supi);
    }

    // Nothing refused the genuine device, nothing took it for a clone, and
    // the events (the audit trail) name each device's manufacturer.
    let events = fleet.network_events();
    assert!(
        !events.iter().any(|e| matches!(
            e,
            NetworkEvent::Refused { device: Some(d), .. } | NetworkEvent::CloneSuspected { device: d, .. }
                if *d == genuine_id
        )),
        "{events:#?}"
    );
    let authenticated: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::DeviceAuthenticated { device, .. } => Some(device.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        authenticated.contains(&format!("Acme Sensors/{serial}")),
        "{authenticated:?}"
    );
    assert!(
        authenticated.contains(&format!("Rogue Devices/{serial}")),
        "{authenticated:?}"
    );
    assert!(events.iter().any(|e| matches!(
        e,
        NetworkEvent::PackageDelivered { device, .. }
            if device.manufacturer() == "Rogue Devices" && device.serial() == serial
    )));
}

#[test]
fn a_rogue_manufacturer_onboarding_first_does_not_take_a_claimed_device() {
    let (mut fleet, world, rogue, creds) = world(17);
    // The rogue's copy goes first (the reported attack), then the genuine
    // device arrives.
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[1]));
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    check(&fleet, &world, &rogue, &creds);
}

#[test]
fn a_rogue_manufacturer_onboarding_alongside_is_no_clone_of_the_device() {
    let (mut fleet, world, rogue, creds) = world(18);
    // Both at once: the AMF's clone index keys identities by manufacturer
    // too, so the genuine device is not refused as a clone (#74).
    fleet.power_on(0);
    fleet.power_on(1);
    assert!(settle(&mut fleet, &[0, 1]));
    check(&fleet, &world, &rogue, &creds);
}
