//! Shared fixtures of the harness tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use nido_eap::fixtures::Onboarding;
use nido_nas::view::message_name;
use nido_net::MemorySink;
use nido_pki::DeviceProfile;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Faults, Fleet, Link};
use nido_ue::DeviceState;

/// A fleet of devices from `world`'s factory, each with `profile`.
pub(crate) fn fleet(
    world: &Onboarding,
    options: &NetworkOptions,
    profiles: &[DeviceProfile],
    faults: Faults,
    seed: u64,
) -> (Fleet, MemorySink) {
    let sink = MemorySink::new();
    let network = scenario::network(world, options, Box::new(sink.clone())).unwrap();
    let link = Link::new(faults, faults, seed).unwrap();
    let mut fleet = Fleet::new(network, link, world.now, true);
    for (n, profile) in profiles.iter().enumerate() {
        let id = world
            .manufacturer
            .issue_device(&world.manufacturer.device_serial(n as u64 + 1), profile)
            .unwrap();
        fleet.add_device(scenario::device(world, &id, options.trace).unwrap());
    }
    (fleet, sink)
}

/// A fleet of one standard device on a perfect link.
pub(crate) fn one_device(
    world: &Onboarding,
    options: &NetworkOptions,
    seed: u64,
) -> (Fleet, MemorySink) {
    fleet(
        world,
        options,
        &[DeviceProfile::standard(world.now)],
        Faults::NONE,
        seed,
    )
}

/// A trust store as `world`'s (its manufacturer enrolled with `policy`, a
/// current CRL listing nothing), which `adjust` may change (block a device):
/// what an operator's change hands a running network.
pub(crate) fn trust_store(
    world: &Onboarding,
    policy: nido_pki::Policy,
    adjust: impl FnOnce(&mut nido_pki::TrustStore),
) -> nido_pki::TrustStore {
    let m = &world.manufacturer;
    let mut trust = nido_pki::TrustStore::new();
    trust
        .enroll(m.name(), m.root_der().clone(), policy)
        .unwrap();
    let crl = m
        .crl(
            &[],
            world.now - Duration::from_secs(60),
            world.now + Duration::from_secs(86_400),
            1,
        )
        .unwrap();
    trust.add_crl(m.name(), &crl, m.issuing_der()).unwrap();
    adjust(&mut trust);
    trust
}

pub(crate) fn world() -> Onboarding {
    Onboarding::new("Acme Sensors", SystemTime::now()).unwrap()
}

/// Runs until every device in `which` is in a final state (or an hour passed).
pub(crate) fn settle(fleet: &mut Fleet, which: &[usize]) -> bool {
    let deadline = fleet.now() + Duration::from_secs(3600);
    let which = which.to_vec();
    fleet.run_until(deadline, move |f| {
        which.iter().all(|&i| {
            matches!(
                f.device(i).state(),
                DeviceState::Active | DeviceState::Failed | DeviceState::BackingOff
            )
        })
    })
}

/// Records (direction, plain message name) of every PDU.
pub(crate) fn record(fleet: &mut Fleet) -> Rc<RefCell<Vec<(Direction, &'static str)>>> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let sink = log.clone();
    fleet.set_trace(move |r| {
        let name = match r.plain {
            Some(plain) => nido_nas::decode(plain)
                .map(|m| message_name(&m))
                .unwrap_or("undecodable"),
            None => r.message,
        };
        sink.borrow_mut().push((r.direction, name));
    });
    log
}

/// A device in factory state holding `id` in the secure element that
/// `wrap` makes of a [`nido_se::MemorySe`]: [`scenario::device`] with
/// another element (e.g. one that misbehaves).
pub(crate) fn device_with_se(
    world: &Onboarding,
    id: &nido_pki::DeviceIdentity,
    wrap: impl FnOnce(nido_se::MemorySe) -> Box<dyn nido_se::SecureElement>,
) -> nido_ue::Device {
    device_with(world, id, nido_ue::Timers::default(), wrap)
}

/// [`device_with_se`] with `timers`.
pub(crate) fn device_with(
    world: &Onboarding,
    id: &nido_pki::DeviceIdentity,
    timers: nido_ue::Timers,
    wrap: impl FnOnce(nido_se::MemorySe) -> Box<dyn nido_se::SecureElement>,
) -> nido_ue::Device {
    use rustls::pki_types::PrivateKeyDer;
    let se = nido_se::MemorySe::new(&PrivateKeyDer::Pkcs8(id.key.clone_key())).unwrap();
    let credentials = nido_eap::DeviceCredentials::new(
        id.chain.clone(),
        nido_se::SecureElement::idevid_signer(&se),
        world.manufacturer.root_der().clone(),
        world.manufacturer.dcs_realm(),
    )
    .unwrap();
    let config = nido_ue::DeviceConfig {
        timers,
        ..nido_ue::DeviceConfig::new(
            id.serial.clone(),
            credentials,
            world.manufacturer.dcs_realm().to_owned(),
            scenario::serving_network(),
            world.manufacturer.kausf_from(),
        )
    };
    nido_ue::Device::new(config, wrap(se), None)
}

/// Every link connection device `i` has used so far.
pub(crate) fn connections(fleet: &Fleet, i: usize) -> Vec<nido_net::ConnectionId> {
    (0..=fleet.device(i).connection())
        .map(|g| nido_net::ConnectionId(nido_sim::connection_id(i as u64, g)))
        .collect()
}

/// The network's refusals of device `i`: (connection, 5GMM cause, reason).
pub(crate) fn refusals(
    fleet: &Fleet,
    i: usize,
) -> Vec<(nido_net::ConnectionId, nido_sec::Cause, String)> {
    let conns = connections(fleet, i);
    fleet
        .network_events()
        .iter()
        .filter_map(|e| match e {
            nido_net::NetworkEvent::Refused {
                conn,
                cause,
                reason,
                ..
            } if conns.contains(conn) => Some((*conn, *cause, reason.clone())),
            _ => None,
        })
        .collect()
}

/// The causes device `i` received, with the message that carried each.
pub(crate) fn rejections(
    fleet: &Fleet,
    i: usize,
) -> Vec<(nido_ue::RejectMessage, nido_sec::Cause)> {
    fleet
        .device_events(i)
        .iter()
        .filter_map(|e| match e {
            nido_ue::DeviceEvent::Rejected { message, cause } => Some((*message, *cause)),
            _ => None,
        })
        .collect()
}
