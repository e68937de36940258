//! A device from factory state to an active subscription and a delivered
//! burst (design doc phases A-D), through the AMF, DCS, PVS, UDM and AUSF,
//! in memory: the exact NAS sequence, equal keys at both ends, the owner's
//! credentials on the device.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::time::Duration;

use nido_net::{NetworkEvent, Owner, SubscriptionState};
use nido_prov::ThirdPartyCredential;
use nido_sim::Direction;
use nido_sim::scenario::NetworkOptions;
use nido_ue::DeviceState;

use common::{one_device, record, settle, world};

const PAYLOAD: [u8; 50] = *b"t=21.5C;h=40%;batt=3.61V;seq=000017;fw=1.2.0;ok!!!";

fn expected(eap_rounds: usize) -> Vec<(Direction, &'static str)> {
    use Direction::{Downlink as D, Uplink as U};
    let mut e = vec![(U, "RegistrationRequest"), (D, "AuthenticationRequest")];
    for _ in 0..eap_rounds {
        e.push((U, "AuthenticationResponse"));
        e.push((D, "AuthenticationRequest"));
    }
    e.extend([
        (U, "AuthenticationResponse"),
        (D, "AuthenticationResult"),
        (D, "SecurityModeCommand"),
        (U, "SecurityModeComplete"),
        (D, "RegistrationAccept"),
        (U, "RegistrationComplete"),
        // Phase B: onboarding PDU session, provisioning, confirmation, leave.
        (U, "UlNasTransport"),
        (D, "DlNasTransport"),
        (U, "UlNasTransport"),
        (D, "DlNasTransport"),
        (U, "UlNasTransport"),
        (D, "DlNasTransport"),
        (U, "DeregistrationRequestUeOriginating"),
        (D, "DeregistrationAcceptUeOriginating"),
        // Phase C: SUCI, 5G-AKA, security mode.
        (U, "RegistrationRequest"),
        (D, "AuthenticationRequest"),
        (U, "AuthenticationResponse"),
        (D, "SecurityModeCommand"),
        (U, "SecurityModeComplete"),
        (D, "RegistrationAccept"),
        (U, "RegistrationComplete"),
        // Phase D: the data session, then a burst from idle.
        (U, "UlNasTransport"),
        (D, "DlNasTransport"),
        (U, "ControlPlaneServiceRequest"),
        (D, "ServiceAccept"),
    ]);
    e
}

#[test]
fn factory_state_to_active_subscription_and_burst() {
    let world = world();
    let options = NetworkOptions {
        trace: true,
        ..NetworkOptions::default()
    };
    let (mut fleet, sink) = one_device(&world, &options, 1);
    let log = record(&mut fleet);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    fleet.advance(Duration::from_secs(30)); // the data session; then idle
    assert!(!fleet.device(0).connected(fleet.now()));
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));

    let log = log.borrow().clone();
    let rounds = log
        .iter()
        .take_while(|(_, m)| *m != "AuthenticationResult")
        .filter(|(d, m)| *d == Direction::Downlink && *m == "AuthenticationRequest")
        .count()
        - 1;
    assert!((2..=8).contains(&rounds), "{rounds} EAP-TLS rounds");
    assert_eq!(log, expected(rounds));

    // The burst reached the owner's application, attributed to the device.
    let serial = fleet.device(0).serial().to_owned();
    // The network names a device by its enrolled manufacturer and serial.
    let device = world.device_id(&serial).unwrap().to_string();
    assert_eq!(device, format!("{}/{serial}", world.manufacturer.name()));
    let public = fleet.device(0).subscription().unwrap().clone();
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].data, PAYLOAD);
    assert_eq!(received[0].device, device);
    assert_eq!(received[0].supi, public.supi);

    // Both ends hold the same K_AMF (so the same K_NAS) and SUPI.
    let conn = fleet.connection(0);
    let ue = fleet.device(0).security_context().unwrap();
    let amf = fleet.network().security_context(conn).unwrap();
    assert_eq!(ue.kamf_fingerprint(), amf.kamf_fingerprint());
    assert_eq!(ue.algorithms(), amf.algorithms());
    assert_eq!(fleet.network().supi_of(conn), Some(&public.supi));

    // K and OPc are equal: the device's confirmation MAC (keyed from them)
    // verified, and 5G-AKA with them succeeded; the subscription is active.
    let events = fleet.network_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, NetworkEvent::Provisioned { supi, .. } if *supi == public.supi))
    );
    assert!(events.iter().any(|e| matches!(
        e,
        NetworkEvent::Authenticated {
            activated: true,
            ..
        }
    )));
    let sub = fleet
        .network()
        .store()
        .subscription_by_device(&world.device_id(&serial).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(sub.state, SubscriptionState::Active);
    assert_eq!(sub.supi, public.supi);
    assert_eq!(fleet.network().store().subscriptions().unwrap().len(), 1);
}

#[test]
fn a_claimed_device_joins_its_owner_with_the_owners_credentials() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 2);
    let credentials = vec![
        ThirdPartyCredential::Lwm2m {
            server_uri: "coaps://lwm2m.acme-farms.example:5684".into(),
            psk_identity: "acme-farms".into(),
            psk: zeroize::Zeroizing::new(vec![9; 16]),
        },
        ThirdPartyCredential::Mqtt {
            broker_uri: "mqtts://broker.acme-farms.example:8883".into(),
            client_id: "sensor-1".into(),
            client_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                .into(),
            client_key_pem: zeroize::Zeroizing::new(
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".into(),
            ),
        },
    ];
    let serial = fleet.device(0).serial().to_owned();
    let store = fleet.network_mut().store_mut();
    store
        .put_owner(Owner {
            id: "acme-farms".into(),
            name: "Acme Farms".into(),
            credentials: credentials.clone(),
        })
        .unwrap();
    let id = world.device_id(&serial).unwrap();
    store.add_claimable(&id, "claim-hash-1").unwrap();
    assert_eq!(store.claim("acme-farms", "claim-hash-1").unwrap(), id);

    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    assert_eq!(fleet.device(0).state(), DeviceState::Active);
    let public = fleet.device(0).subscription().unwrap();
    assert_eq!(public.owner.as_deref(), Some("acme-farms"));
    assert_eq!(public.third_party, credentials);

    fleet.advance(Duration::from_secs(1));
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].owner.as_deref(), Some("acme-farms"));
}
