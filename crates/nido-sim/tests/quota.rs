//! A manufacturer's subscription quota: under the `standalone` claim
//! policy any valid IDevID of an enrolled manufacturer gets a SUPI, so the
//! PVS counts them per manufacturer and refuses the one beyond the quota
//! before it allocates a SUPI: REGISTRATION REJECT #74 (temporary: the
//! device backs off) and an audit entry that names the quota; raising the
//! quota (a new trust store) lets the device in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::sync::Arc;
use std::time::Duration;

use nido_net::NetworkEvent;
use nido_net::pvs::Quotas;
use nido_pki::{DeviceProfile, Policy, TrustStore};
use nido_sec::Cause;
use nido_sim::Faults;
use nido_sim::scenario::NetworkOptions;
use nido_ue::DeviceState;

use common::{fleet, world};

/// The trust store of `world` with a quota of `max` for its manufacturer.
fn trust(world: &nido_eap::fixtures::Onboarding, max: u64) -> TrustStore {
    let policy = Policy {
        max_subscriptions: Some(max),
        ..Policy::for_manufacturer(&world.manufacturer)
    };
    common::trust_store(world, policy, |_| {})
}

#[test]
fn a_manufacturer_beyond_its_quota_gets_no_supi_until_it_is_raised() {
    let world = world();
    let (mut fleet, _) = fleet(
        &world,
        &NetworkOptions::default(),
        &vec![DeviceProfile::standard(world.now); 3],
        Faults::NONE,
        7,
    );
    let two = trust(&world, 2);
    let quotas = Quotas::from_trust(&two, 1_000);
    assert_eq!(quotas.of(world.manufacturer.name()), 2);
    fleet.network_mut().set_quotas(Some(quotas));
    let now = fleet.now();
    fleet.network_mut().set_trust_store(now, Arc::new(two));
    for i in 0..3 {
        fleet.power_on(i);
    }
    let quota_refused = |f: &nido_sim::Fleet| {
        f.network_events().iter().any(
            |e| matches!(e, NetworkEvent::Refused { reason, .. } if reason.contains("quota of 2")),
        )
    };
    // Two get a subscription; the third is refused (at the latest once two
    // SUPIs are counted, before its registration is accepted) and backs off.
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(fleet.run_until(deadline, |f| {
        let states: Vec<_> = (0..3).map(|i| f.device(i).state()).collect();
        quota_refused(f)
            && states.iter().filter(|s| **s == DeviceState::Active).count() == 2
            && states.contains(&DeviceState::BackingOff)
    }));
    let states: Vec<_> = (0..3).map(|i| fleet.device(i).state()).collect();
    let active = states.iter().filter(|s| **s == DeviceState::Active).count();
    assert_eq!(active, 2, "{states:?}");
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 2);
    // The third was refused before any SUPI was allocated: #74 (it comes
    // back later), reported for the audit trail with the quota.
    let refused: Vec<_> = fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::Refused { cause, reason, .. } if reason.contains("quota of 2") => {
                Some(*cause)
            }
            _ => None,
        })
        .collect();
    assert!(
        !refused.is_empty()
            && refused
                .iter()
                .all(|c| *c == Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN),
        "{refused:?}"
    );
    let waiting = (0..3)
        .find(|i| fleet.device(*i).state() != DeviceState::Active)
        .unwrap();
    assert!(
        fleet
            .device_events(waiting)
            .contains(&nido_ue::DeviceEvent::Rejected {
                message: nido_ue::RejectMessage::RegistrationReject,
                cause: Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
            }),
        "{:?}",
        fleet.device_events(waiting)
    );

    // The operator raises the quota (trust-manufacturer, seen by serve's
    // trust watch): the device that waited gets its subscription.
    let now = fleet.now();
    fleet
        .network_mut()
        .set_trust_store(now, Arc::new(trust(&world, 3)));
    let deadline = fleet.now() + Duration::from_secs(4 * 3600);
    assert!(fleet.run_until(deadline, |f| f.device(waiting).state()
        == DeviceState::Active));
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 3);
}
