//! Phase A's secure association: EAP-TLS 1.3 between the device and the DCS,
//! K_AUSF from the EMSK (TS 33.501 B.2.1.1), K_SEAF and K_AMF for the
//! onboarding SUPI, and 5G NAS security that both ends agree on: the UE
//! verifies the AMF's SECURITY MODE COMMAND, the AMF the UE's COMPLETE.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::time::SystemTime;

use nido_eap::fixtures::Onboarding;
use nido_eap::{
    EapTlsPeer, EapTlsServer, PeerOutcome, PeerStep, ServerOutcome, ServerStep, Settings,
};
use nido_nas::build::{self, *};
use nido_nas::security::{Algorithms, Protection, Role, SecurityContext};
use nido_pki::DeviceProfile;
use nido_sec::{Supi, kdf};

#[test]
fn eap_tls_keys_give_both_ends_the_same_nas_security() {
    let world = Onboarding::new("Acme Sensors", SystemTime::now()).unwrap();
    let (_, creds) = world
        .device(1, &DeviceProfile::standard(world.now))
        .unwrap();
    let realm = world.manufacturer.dcs_realm().to_owned();

    let (mut server, mut request) =
        EapTlsServer::start(&world.dcs, Settings::default(), world.now, 1).unwrap();
    let outer = build::anonymous_onboarding_nai(&realm);
    let mut peer = EapTlsPeer::new(&creds, Settings::default(), &outer, world.now).unwrap();
    let (network_keys, ue_keys, device) = loop {
        let PeerStep::Send(resp) = peer.handle(&request) else {
            panic!("peer stopped")
        };
        match server.handle(&resp) {
            ServerStep::Send(next) => request = next,
            ServerStep::Done(last, ServerOutcome::Success(auth)) => {
                let PeerStep::Done(PeerOutcome::Success(ue_keys)) = peer.handle(&last) else {
                    panic!()
                };
                assert_eq!(auth.keys, *ue_keys);
                break (auth.keys, *ue_keys, auth.device);
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(device.id.serial(), world.manufacturer.device_serial(1));
    assert_eq!(device.id.manufacturer(), world.manufacturer.name());

    // Both ends derive the chain from their own copy of the EMSK.
    let snn = kdf::serving_network_name("999", "99", Some("000000000AB")).unwrap();
    let onboarding_supi = Supi::nai(&outer).unwrap();
    let derive = |emsk| {
        let kausf = kdf::kausf_from_emsk(emsk);
        let kseaf = kdf::kseaf(&kausf, snn.as_bytes()).unwrap();
        kdf::kamf(&kseaf, &onboarding_supi, &build::ABBA).unwrap()
    };
    let kamf_network = derive(&network_keys.emsk);
    let mut amf =
        SecurityContext::new(&kamf_network, Algorithms::NIA2_NEA2, 0, Role::Network).unwrap();
    let mut ue =
        SecurityContext::new(&derive(&ue_keys.emsk), Algorithms::NIA2_NEA2, 0, Role::Ue).unwrap();

    let smc = build::security_mode_command(&SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA2,
        integrity: IntegrityAlgorithm::NIA2,
        ngksi: KeySetIdentifier::Native(0),
        replayed_ue_security_capability: ue_security_capability(),
        imeisv_request: false,
        abba: Some(ABBA.to_vec()),
        additional_security_information: None,
        eap_message: None,
    })
    .unwrap();
    let pdu = amf.protect(&smc, Protection::IntegrityNewContext).unwrap();
    assert_eq!(ue.unprotect(&pdu).unwrap().message, smc);
    let registration = build::registration_request_snpn_onboarding(&realm, true).unwrap();
    let complete = build::security_mode_complete(None, Some(&registration)).unwrap();
    let pdu = ue
        .protect(&complete, Protection::IntegrityCipheredNewContext)
        .unwrap();
    assert_eq!(amf.unprotect(&pdu).unwrap().message, complete);

    // A K_AMF from any other EAP session does not verify.
    let mut stranger = SecurityContext::new(
        &derive(&nido_sec::Emsk::new([7; 64])),
        Algorithms::NIA2_NEA2,
        0,
        Role::Ue,
    )
    .unwrap();
    let pdu = amf.protect(&smc, Protection::IntegrityNewContext).unwrap();
    assert!(stranger.unprotect(&pdu).is_err());
}
