//! Phases B and C without the radio: a device's secure element asks the PVS
//! for a subscription, installs the sealed package inside, confirms; then
//! conceals its SUPI, and 5G-AKA with the UDM/AUSF validates the subscription.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::time::Duration;

use nido_net::pvs::{ClaimPolicy, Pvs, PvsConfig, PvsRefusal};
use nido_net::udm::Udm;
use nido_net::{
    ConnectionId, DeviceId, MemoryStore, NetworkEvent, Owner, Store, SubscriptionState,
};
use nido_prov::package::{Binding, ServingNetwork};
use nido_prov::{Confirmation, ProvisioningRequest, ProvisioningResponse, ThirdPartyCredential};
use nido_se::{MemorySe, SeAkaError, SecureElement};
use nido_sec::aka::{AkaFailure, AusfChallenge};
use nido_sec::suci::{HomeNetworkKey, Profile, msin_to_bcd};
use nido_sec::{Cause, Op, Supi};
use rustls::pki_types::PrivateKeyDer;

const NOW: u64 = 1_800_000_000;

struct Network {
    store: MemoryStore,
    pvs: Pvs,
    udm: Udm,
    snn: String,
}

fn network(policy: ClaimPolicy) -> Network {
    let hn = HomeNetworkKey::generate(Profile::A, 7).unwrap();
    let serving_network = ServingNetwork::new("001", "01", None).unwrap();
    let snn = serving_network.snn.clone();
    let pvs = Pvs::new(PvsConfig {
        op: Op::new([0x5a; 16]),
        serving_network,
        msin_digits: 10,
        home_network_key: hn.public_key(),
        routing_indicator: "0000".into(),
        policy,
        validity: Duration::from_secs(365 * 86_400),
    });
    let mut udm = Udm::default();
    udm.sidf.insert(hn);
    let mut store = MemoryStore::new(1_000);
    store
        .put_owner(Owner {
            id: "acme-farms".into(),
            name: "Acme Farms".into(),
            credentials: vec![ThirdPartyCredential::Lwm2m {
                server_uri: "coaps://lwm2m.acme.example:5684".into(),
                psk_identity: "acme".into(),
                psk: zeroize::Zeroizing::new(vec![1, 2, 3, 4]),
            }],
        })
        .unwrap();
    Network {
        store,
        pvs,
        udm,
        snn,
    }
}

fn device() -> MemorySe {
    let key = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap();
    MemorySe::new(&PrivateKeyDer::Pkcs8(
        key.to_pkcs8v1().unwrap().as_ref().to_vec().into(),
    ))
    .unwrap()
}

/// K_PROV of the (pretend) onboarding EAP-TLS session, the same at both ends.
fn k_prov() -> nido_sec::KProv {
    nido_sec::kdf::kprov(&nido_sec::KAusf::new([0x2e; 32])).unwrap()
}

/// Device `serial` of the manufacturer enrolled as "Acme".
fn acme(serial: &str) -> DeviceId {
    DeviceId::new("Acme", serial).unwrap()
}

/// Phase B over the real message encodings; returns the SUPI the device got.
fn provision(
    net: &mut Network,
    se: &mut MemorySe,
    serial: &str,
) -> Result<nido_prov::PublicPart, PvsRefusal> {
    let request = ProvisioningRequest {
        device_public_key: se.new_provisioning_key().unwrap(),
        nonce: [serial.len() as u8; 16],
        suci_profiles: vec![Profile::A, Profile::B],
        claim_hint: None,
        erasure_receipt: None,
    };
    let request = ProvisioningRequest::decode(&request.encode()).unwrap();
    let done = net.pvs.provision(
        &mut net.store,
        &acme(serial),
        None,
        &request,
        &k_prov(),
        NOW,
    )?;
    let response =
        ProvisioningResponse::decode(&ProvisioningResponse::Provisioned(done.sealed).encode())
            .unwrap();
    let ProvisioningResponse::Provisioned(sealed) = response else {
        panic!("{response:?}")
    };
    let installed = se
        .install_package(
            &sealed,
            &Binding {
                device_identity: serial.into(),
                nonce: request.nonce,
            },
            &k_prov(),
        )
        .unwrap();
    let confirmation = Confirmation {
        package_id: installed.public.package_id,
        mac: installed.confirmation_mac,
    };
    let confirmation = Confirmation::decode(&confirmation.encode()).unwrap();
    net.pvs
        .confirm(&mut net.store, &acme(serial), &confirmation, NOW)?;
    Ok(installed.public)
}

/// Phase C: SUCI, 5G-AKA; returns the SUPI the network derived.
fn validate(
    net: &mut Network,
    se: &mut MemorySe,
    public: &nido_prov::PublicPart,
    rand: u8,
) -> Result<Supi, SeAkaError> {
    let Supi::Imsi(digits) = &public.supi else {
        panic!()
    };
    let msin = &digits[5..];
    let scheme_output = public
        .home_network_key
        .conceal(&msin_to_bcd(msin).unwrap())
        .unwrap();
    let supi = net
        .udm
        .deconceal_imsi("00101", 1, public.home_network_key.key_id, &scheme_output)
        .unwrap();
    assert_eq!(supi, public.supi);
    let snn = net.snn.clone();
    let av = net
        .udm
        .vector(&mut net.store, &supi, [rand; 16], snn.as_bytes())
        .unwrap();
    let challenge = AusfChallenge::new(av);
    let ue = se.authenticate(&challenge.rand, &challenge.autn, snn.as_bytes())?;
    assert!(challenge.seaf_accepts(&ue.res_star));
    let (_kseaf, kausf) = challenge.confirm(&ue.res_star, snn.as_bytes()).unwrap();
    assert_eq!(kausf, ue.kausf);
    let activation = NetworkEvent::Authenticated {
        conn: ConnectionId(1),
        supi: supi.clone(),
        activated: true,
    };
    net.udm
        .authenticated(&mut net.store, &supi, NOW, &activation)
        .unwrap();
    Ok(supi)
}

#[test]
fn claimed_and_standalone_devices_are_provisioned_and_validated() {
    let mut net = network(ClaimPolicy::Standalone);
    net.store
        .add_claimable(&acme("ACME-1"), "hash-of-claim-code-1")
        .unwrap();
    assert_eq!(
        net.store
            .claim("acme-farms", "hash-of-claim-code-1")
            .unwrap(),
        acme("ACME-1")
    );
    assert!(
        net.store
            .claim("acme-farms", "hash-of-claim-code-1")
            .is_err(),
        "claim codes are one-time"
    );

    let (mut a, mut b) = (device(), device());
    let pa = provision(&mut net, &mut a, "ACME-1").unwrap();
    let pb = provision(&mut net, &mut b, "ACME-2").unwrap();
    assert_eq!(pa.owner.as_deref(), Some("acme-farms"));
    assert_eq!(
        pa.third_party.len(),
        1,
        "the owner's credentials reach the claimed device"
    );
    assert!(pb.owner.is_none() && pb.third_party.is_empty());
    assert_ne!(pa.supi, pb.supi);
    assert_eq!(
        net.store
            .subscription_by_device(&acme("ACME-1"))
            .unwrap()
            .unwrap()
            .state,
        SubscriptionState::Provisioned
    );

    for (se, public) in [(&mut a, &pa), (&mut b, &pb)] {
        let supi = validate(&mut net, se, public, 1).unwrap();
        assert_eq!(
            net.store
                .subscription_by_supi(&supi)
                .unwrap()
                .unwrap()
                .state,
            SubscriptionState::Active
        );
    }
    assert_eq!(net.store.len(), 2);
}

#[test]
fn reprovisioning_replaces_k_and_never_adds_a_subscription() {
    let mut net = network(ClaimPolicy::Standalone);
    let mut old = device();
    let first = provision(&mut net, &mut old, "ACME-9").unwrap();
    validate(&mut net, &mut old, &first, 1).unwrap();
    // Factory reset: a new element, same identity. The network cannot tell
    // it from a clone: an active subscription is not re-provisioned...
    let mut fresh = device();
    let refused = provision(&mut net, &mut fresh, "ACME-9").unwrap_err();
    assert_eq!(
        refused.gmm_cause(),
        Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
        "{refused}"
    );
    assert!(matches!(
        refused,
        PvsRefusal::AlreadyProvisioned(_, "active")
    ));
    assert!(net.pvs.admits(&net.store, &acme("ACME-9")).is_err());
    let kept = net
        .store
        .subscription_by_device(&acme("ACME-9"))
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, SubscriptionState::Active, "nothing changed");
    // ...until the operator releases it (`nido network release`).
    let mut released = kept;
    released.state = SubscriptionState::Released;
    net.store.put_subscription(released).unwrap();
    net.pvs.admits(&net.store, &acme("ACME-9")).unwrap();
    let second = provision(&mut net, &mut fresh, "ACME-9").unwrap();
    assert_eq!(second.supi, first.supi, "same subscription");
    assert_eq!(net.store.len(), 1);
    // The old element's K is gone from the network: its MAC check fails.
    let snn = net.snn.clone();
    let av = net
        .udm
        .vector(&mut net.store, &first.supi, [3; 16], snn.as_bytes())
        .unwrap();
    assert!(matches!(
        old.authenticate(&av.rand, &av.autn, snn.as_bytes()),
        Err(SeAkaError::Aka(AkaFailure::MacFailure))
    ));
    validate(&mut net, &mut fresh, &second, 4).unwrap();
}

#[test]
fn an_unconfirmed_package_is_replaced_a_confirmed_one_is_not() {
    let mut net = network(ClaimPolicy::Standalone);
    let request = |se: &mut MemorySe| ProvisioningRequest {
        device_public_key: se.new_provisioning_key().unwrap(),
        nonce: [7; 16],
        suci_profiles: vec![Profile::A],
        claim_hint: None,
        erasure_receipt: None,
    };
    // A device died before installing its package: the subscription is
    // still `created`, and its next onboarding gets a new K in place.
    let mut first = device();
    let lost = net
        .pvs
        .provision(
            &mut net.store,
            &acme("ACME-8"),
            None,
            &request(&mut first),
            &k_prov(),
            NOW,
        )
        .unwrap();
    assert_eq!(
        net.store
            .subscription_by_device(&acme("ACME-8"))
            .unwrap()
            .unwrap()
            .state,
        SubscriptionState::Created
    );
    let mut again = device();
    let public = provision(&mut net, &mut again, "ACME-8").unwrap();
    assert_eq!(public.supi, lost.supi, "same subscription, new K");
    assert_eq!(net.store.len(), 1);
    // Confirmed (provisioned, not yet validated): another onboarding of the
    // identity is refused with #74 and changes nothing.
    let state = |net: &Network| {
        let s = net
            .store
            .subscription_by_device(&acme("ACME-8"))
            .unwrap()
            .unwrap();
        (s.state, s.package_id)
    };
    let before = state(&net);
    assert_eq!(before.0, SubscriptionState::Provisioned);
    let mut clone = device();
    let refused = net
        .pvs
        .provision(
            &mut net.store,
            &acme("ACME-8"),
            None,
            &request(&mut clone),
            &k_prov(),
            NOW,
        )
        .unwrap_err();
    assert!(
        matches!(refused, PvsRefusal::AlreadyProvisioned(_, "provisioned")),
        "{refused}"
    );
    assert_eq!(
        refused.gmm_cause(),
        Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
    );
    assert_eq!(state(&net), before);
    // The genuine device validates with the K it holds.
    validate(&mut net, &mut again, &public, 1).unwrap();
}

#[test]
fn unclaimed_device_under_claim_required_policy_gets_75() {
    let mut net = network(ClaimPolicy::RequireClaim);
    let mut se = device();
    let err = provision(&mut net, &mut se, "ACME-3").unwrap_err();
    assert_eq!(err.gmm_cause(), Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN);
    assert_eq!(net.store.len(), 0);
}

#[test]
fn sqn_out_of_range_resynchronises_then_succeeds() {
    let mut net = network(ClaimPolicy::Standalone);
    let mut se = device();
    let public = provision(&mut net, &mut se, "ACME-4").unwrap();
    validate(&mut net, &mut se, &public, 1).unwrap();
    // The UDM loses its SQN state (restored from an old backup).
    let mut sub = net
        .store
        .subscription_by_supi(&public.supi)
        .unwrap()
        .unwrap();
    sub.sqn = Default::default();
    net.store.put_subscription(sub).unwrap();
    let snn = net.snn.clone();
    let av = net
        .udm
        .vector(&mut net.store, &public.supi, [5; 16], snn.as_bytes())
        .unwrap();
    let Err(SeAkaError::Aka(AkaFailure::SynchFailure { auts })) =
        se.authenticate(&av.rand, &av.autn, snn.as_bytes())
    else {
        panic!("expected a synch failure")
    };
    net.udm
        .resynchronise(&mut net.store, &public.supi, &av.rand, &auts)
        .unwrap();
    validate(&mut net, &mut se, &public, 6).unwrap();
}

#[test]
fn a_wrong_confirmation_is_refused() {
    let mut net = network(ClaimPolicy::Standalone);
    let mut se = device();
    let request = ProvisioningRequest {
        device_public_key: se.new_provisioning_key().unwrap(),
        nonce: [1; 16],
        suci_profiles: vec![Profile::A],
        claim_hint: None,
        erasure_receipt: None,
    };
    let done = net
        .pvs
        .provision(
            &mut net.store,
            &acme("ACME-5"),
            None,
            &request,
            &k_prov(),
            NOW,
        )
        .unwrap();
    let bogus = Confirmation {
        package_id: done.package_id,
        mac: [0; 32],
    };
    assert_eq!(
        net.pvs
            .confirm(&mut net.store, &acme("ACME-5"), &bogus, NOW),
        Err(PvsRefusal::BadConfirmation)
    );
    assert_eq!(
        net.store
            .subscription_by_device(&acme("ACME-5"))
            .unwrap()
            .unwrap()
            .state,
        SubscriptionState::Created
    );
}
