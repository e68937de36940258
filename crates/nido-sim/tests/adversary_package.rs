//! The credential package against a forger (issue #17 finding 1, second
//! half): whoever sees the provisioning request in clear and can put octets
//! into the device's DL NAS TRANSPORT (the serving AMF, anything between it
//! and the PVS, a fake base station that got past NAS security) knows the
//! device's provisioning public key and the request nonce, and the serial
//! is printed on the device. With HPKE base mode (package format 1) that was
//! enough to seal a package of its own (its K, OPc, SUPI, home network key
//! and owner credentials) that the device installed: the forger became the
//! device's network. Since format 2 the package is sealed in HPKE PSK mode
//! under K_PROV, which only the device and the network whose DCS completed
//! EAP-TLS with it derive (from K_AUSF); a forged package does not open and
//! leaves nothing in the secure element. Simulated time throughout.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use nido_nas::view::{Inbound, Transport};
use nido_net::ConnectionId;
use nido_prov::coap::{self, CoapRequest, Path, ResponseBody};
use nido_prov::package::{self, Binding, CredentialPackage};
use nido_prov::{ProvisioningRequest, ProvisioningResponse, ThirdPartyCredential};
use nido_sec::suci::{HomeNetworkPublicKey, Profile};
use nido_sec::{K, KAusf, KProv, Opc, Supi};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Direction, Fleet};
use nido_ue::{DeviceEvent, DeviceState};
use zeroize::Zeroizing;

use common::{one_device, world};

/// The SUPI the forger provisions.
const FORGED_SUPI: &str = "imsi-999990000066666";

/// What the forger saw and did.
#[derive(Default)]
struct Forger {
    /// Provisioning requests seen in clear: (connection, CoAP request, body).
    seen: Vec<(u64, CoapRequest, ProvisioningRequest)>,
    /// Genuine PVS responses still to be suppressed (one per forgery).
    suppress: usize,
    /// A request whose genuine answer was suppressed, awaiting a forgery.
    pending: Option<(u64, CoapRequest, ProvisioningRequest)>,
    /// Set while the genuine answer to `pending` has yet to be dropped.
    drop_next: bool,
}

fn plain_message(plain: Option<&[u8]>) -> Option<Inbound> {
    Inbound::read(&nido_nas::decode(plain?).ok()?).ok()
}

/// The forger's own subscription: nothing of it comes from the network.
fn forged_package(package_id: u8) -> CredentialPackage {
    CredentialPackage {
        package_id: [package_id; 16],
        supi: Supi::parse(FORGED_SUPI).unwrap(),
        k: K::new([0x66; 16]),
        opc: Opc::new([0x99; 16]),
        amf: [0x80, 0x00],
        home_network_key: HomeNetworkPublicKey {
            key_id: 1,
            profile: Profile::A,
            octets: vec![0x09; 32],
        },
        routing_indicator: "0".into(),
        serving_network: scenario::serving_network(),
        third_party: vec![ThirdPartyCredential::Lwm2m {
            server_uri: "coaps://lwm2m.forger.example:5684".into(),
            psk_identity: "victim".into(),
            psk: Zeroizing::new(vec![0x42; 16]),
        }],
        not_after_unix: u64::MAX,
        owner: Some("mallory".into()),
    }
}

/// Puts the forger in the AMF's position: it reads the plain NAS the
/// network traces (the provisioning request) and drops the genuine PVS
/// answer the first `forgeries` times.
fn install_forger(fleet: &mut Fleet, forgeries: usize) -> Rc<RefCell<Forger>> {
    let forger = Rc::new(RefCell::new(Forger {
        suppress: forgeries,
        ..Forger::default()
    }));
    let seen = forger.clone();
    fleet.set_trace(move |r| {
        if r.direction != Direction::Uplink {
            return;
        }
        let Some(Inbound::UlNasTransport(Transport::CiotData { data, .. })) =
            plain_message(r.plain)
        else {
            return;
        };
        let Ok(request) = coap::parse_request(&data) else {
            return;
        };
        if request.path != Path::Request {
            return;
        }
        let body = ProvisioningRequest::decode(&request.payload).unwrap();
        let mut f = seen.borrow_mut();
        f.seen.push((r.conn, request.clone(), body.clone()));
        if f.suppress > 0 && f.pending.is_none() {
            f.suppress -= 1;
            f.pending = Some((r.conn, request, body));
            f.drop_next = true;
        }
    });
    let filter = forger.clone();
    fleet.set_downlink_filter(move |t| {
        let mut f = filter.borrow_mut();
        if !f.drop_next {
            return true;
        }
        let pvs_answer = matches!(
            plain_message(t.plain.as_deref()),
            Some(Inbound::DlNasTransport {
                payload: Transport::CiotData { .. },
                ..
            })
        );
        if pvs_answer {
            f.drop_next = false;
            return false;
        }
        true
    });
    forger
}

/// Runs until the forger holds a request whose genuine answer it dropped.
fn await_request(
    fleet: &mut Fleet,
    forger: &Rc<RefCell<Forger>>,
) -> (u64, CoapRequest, ProvisioningRequest) {
    let deadline = fleet.now() + Duration::from_secs(600);
    let f = forger.clone();
    assert!(
        fleet.run_until(deadline, move |_| {
            let f = f.borrow();
            f.pending.is_some() && !f.drop_next
        }),
        "no provisioning request: {:?}",
        fleet.device_events(0)
    );
    forger.borrow_mut().pending.take().unwrap()
}

/// Answers `request` with `sealed` through the AMF, as the PVS would.
fn deliver_forgery(
    fleet: &mut Fleet,
    conn: u64,
    request: &CoapRequest,
    sealed: nido_prov::SealedPackage,
) {
    let body = ResponseBody::Changed(ProvisioningResponse::Provisioned(sealed).encode());
    let response = coap::response(request.message_id, &request.token, &body).unwrap();
    fleet
        .network_mut()
        .send_downlink_data(ConnectionId(conn), &response)
        .unwrap();
    fleet.pump();
    let before = refusals(fleet).len();
    let deadline = fleet.now() + Duration::from_secs(60);
    assert!(
        fleet.run_until(deadline, |f| refusals(f).len() > before),
        "the device did not answer the forgery: {:?}",
        fleet.device_events(0)
    );
}

fn refusals(fleet: &Fleet) -> Vec<String> {
    fleet
        .device_events(0)
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::PackageRefused { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn forged_installed(fleet: &Fleet) -> bool {
    fleet.device_events(0).iter().any(
        |e| matches!(e, DeviceEvent::Provisioned { supi, .. } if supi.to_string() == FORGED_SUPI),
    ) || fleet
        .device(0)
        .secure_element()
        .installed()
        .is_some_and(|p| p.supi.to_string() == FORGED_SUPI)
}

/// A forger that saw the request (device key, nonce) and knows the serial
/// seals its own subscription to the device, bound to exactly that serial
/// and nonce, twice: under a K_PROV of its own making (from a K_AUSF it
/// chose: it never ran EAP-TLS with this device) and under a random guess.
/// The device refuses both packages inside the secure element, installs
/// nothing of them, sends nothing protected under the forged K/OPc (no
/// confirmation of a forged package id), and with the third, genuine,
/// package becomes active on the network that authenticated it.
#[test]
fn a_package_not_sealed_by_the_authenticating_network_is_refused() {
    let world = world();
    let options = NetworkOptions {
        trace: true,
        ..NetworkOptions::default()
    };
    let (mut fleet, _) = one_device(&world, &options, 31);
    let forger = install_forger(&mut fleet, 2);
    fleet.power_on(0);
    let serial = fleet.device(0).serial().to_owned();

    let guesses = [
        nido_sec::kdf::kprov(&KAusf::new([0xa5; 32])).unwrap(),
        KProv::new([0x5a; 32]),
    ];
    for (n, guess) in guesses.iter().enumerate() {
        let (conn, coap_request, request) = await_request(&mut fleet, &forger);
        // Nothing installed so far (after forgery 1: nothing kept of it).
        assert_eq!(fleet.device(0).state(), DeviceState::Provisioning);
        assert!(!fleet.device(0).secure_element().has_subscription());
        assert!(fleet.device(0).subscription().is_none());
        let binding = Binding {
            device_identity: serial.clone(),
            nonce: request.nonce,
        };
        let sealed = package::seal(
            &forged_package(0xf0 + n as u8),
            &request.device_public_key,
            &binding,
            guess,
        )
        .unwrap();
        deliver_forgery(&mut fleet, conn, &coap_request, sealed);

        let refused = refusals(&fleet);
        assert_eq!(refused.len(), n + 1, "{:?}", fleet.device_events(0));
        assert!(
            refused[n].contains("does not open"),
            "refused for another reason: {}",
            refused[n]
        );
        assert!(
            !forged_installed(&fleet),
            "the forged package was installed"
        );
    }

    // The genuine package, sealed under this session's K_PROV, opens.
    let deadline = fleet.now() + Duration::from_secs(3600);
    assert!(
        fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active),
        "{:?}",
        fleet.device_events(0)
    );
    assert_eq!(
        forger.borrow().seen.len(),
        3,
        "three requests, one genuine answer"
    );
    assert!(!forged_installed(&fleet));
    let supi = fleet.device(0).subscription().unwrap().supi.clone();
    assert_ne!(supi.to_string(), FORGED_SUPI);
    let provisioned: Vec<_> = fleet
        .device_events(0)
        .iter()
        .filter_map(|e| match e {
            DeviceEvent::Provisioned { supi, .. } => Some(supi.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        provisioned,
        vec![supi.clone()],
        "only the genuine package installed"
    );
    // The subscription the device holds is the network's, confirmed (the
    // confirmation MAC over the genuine package id, keyed from its K and
    // OPc, verified) and validated by 5G-AKA.
    let sub = fleet
        .network()
        .store()
        .subscription_by_supi(&supi)
        .unwrap()
        .expect("the network's subscription");
    assert_eq!(sub.state, nido_net::SubscriptionState::Active);
    assert_eq!(
        Some(sub.package_id),
        fleet.device(0).subscription().map(|p| p.package_id)
    );
}
