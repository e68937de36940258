//! Short data bursts (design doc phase D, TS 33.501 §6.16.1): one CONTROL
//! PLANE SERVICE REQUEST with a CIoT small data container, protected with
//! the stored NAS security context, against a baseline of re-registering
//! with 5G-AKA and re-establishing the PDU session for every burst.
//! Integrity, ciphering and replay protection are checked on that path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use nido_nas::build::{self, *};
use nido_nas::security::{Algorithms, NasSecError, Protection, Role, SecurityContext};
use nido_nas::wire::{CiotSmallDataContainerContents, Nas5gmmMessage};
use nido_sec::KAmf;

const PAYLOAD: [u8; 50] = *b"t=21.5C;h=40%;batt=3.61V;seq=000017;fw=1.2.0;ok!!!";

fn contexts(seed: u8) -> (SecurityContext, SecurityContext) {
    let kamf = KAmf::new([seed; 32]);
    (
        SecurityContext::new(&kamf, Algorithms::NIA2_NEA2, 1, Role::Ue).unwrap(),
        SecurityContext::new(&kamf, Algorithms::NIA2_NEA2, 1, Role::Network).unwrap(),
    )
}

fn burst(ue: &mut SecurityContext) -> Vec<u8> {
    let ddx = CiotSmallDataDownlinkDataExpected::NoInformationAvailable;
    let cpsr = build::control_plane_service_request(KeySetIdentifier::Native(1), 1, ddx, &PAYLOAD)
        .unwrap();
    ue.protect_initial(&cpsr).unwrap()
}

fn delivered(message: &Nas5gsMessage) -> Vec<u8> {
    let Nas5gsMessage::Gmm(_, Nas5gmmMessage::ControlPlaneServiceRequest(cpsr)) = message else {
        panic!("not a control plane service request: {message}")
    };
    let container = cpsr
        .ciot_small_data_container
        .as_ref()
        .expect("small data container");
    match container.parse().expect("parses") {
        CiotSmallDataContainerContents::ControlPlaneUserData {
            data,
            pdu_session_id,
            ..
        } => {
            assert_eq!(pdu_session_id, 1);
            data
        }
        other => panic!("{other:?}"),
    }
}

struct Cost {
    uplink_messages: usize,
    uplink_bytes: usize,
    downlink_messages: usize,
    downlink_bytes: usize,
}

/// The baseline: a full registration with 5G-AKA, security mode, the
/// PDU session, then the data in UL NAS TRANSPORT (every message as nido
/// builds and protects it).
fn baseline() -> Cost {
    let ksi = KeySetIdentifier::Native(1);
    let (mut ue, mut amf) = contexts(0x33);
    let suci = ImsiSuciParts {
        mcc: "001".into(),
        mnc: "01".into(),
        routing_indicator: "0".into(),
        protection_scheme_id: 1,
        home_network_public_key_id: 1,
        scheme_output: vec![0x5a; 32 + 5 + 8], // profile A: key, 5-octet MSIN, tag
    };
    let registration = build::registration_request_initial(&suci, true).unwrap();
    let smc = SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA2,
        integrity: IntegrityAlgorithm::NIA2,
        ngksi: ksi,
        replayed_ue_security_capability: ue_security_capability(),
        imeisv_request: false,
        abba: None,
        additional_security_information: None,
        eap_message: None,
    };
    let plmn = Plmn::new("001", "01").unwrap();
    let accept = RegistrationAcceptParams {
        guti: Some(Guti::new(plmn, 1, 1, 1, 0x1234_5678).unwrap()),
        tai_list: Some(TaiList {
            plmn,
            tacs: vec![1],
        }),
        allowed_nssai: vec![Snssai { sst: 1, sd: None }],
        t3512_seconds: Some(3600),
        cp_ciot: true,
    };
    let session = PduSessionEstablishmentRequestParams {
        psi: 1,
        pti: 1,
        session_type: PduSessionTypeValue::Unstructured,
        ssc_mode: Some(SscModeValue::Ssc1),
        dnn: Some("iot".into()),
        s_nssai: None,
        request_pvs_information: false,
    };
    let session_accept = PduSessionEstablishmentAcceptParams {
        psi: 1,
        pti: 1,
        session_type: PduSessionTypeValue::Unstructured,
        ssc_mode: SscModeValue::Ssc1,
        qfi: 1,
        session_ambr_dl_kbps: 100,
        session_ambr_ul_kbps: 100,
        dnn: Some("iot".into()),
        s_nssai: None,
        control_plane_only: true,
        pvs_ipv4: None,
        pvs_name: None,
    };
    let enc = |m: &Nas5gsMessage| m.encode().unwrap();
    let uplink = [
        enc(&registration),
        enc(&build::authentication_response_res_star(&[0x11; 16])),
        ue.protect(
            &build::security_mode_complete(None, Some(&registration)).unwrap(),
            Protection::IntegrityCipheredNewContext,
        )
        .unwrap(),
        ue.protect(
            &build::registration_complete(),
            Protection::IntegrityCiphered,
        )
        .unwrap(),
        ue.protect(
            &build::ul_nas_transport_pdu_session_establishment_request(&session).unwrap(),
            Protection::IntegrityCiphered,
        )
        .unwrap(),
        ue.protect(
            &build::ul_nas_transport_ciot_data(1, &PAYLOAD).unwrap(),
            Protection::IntegrityCiphered,
        )
        .unwrap(),
    ];
    let downlink = [
        enc(&build::authentication_request_5g_aka(ksi, &[0x22; 16], &[0x44; 16]).unwrap()),
        amf.protect(
            &build::security_mode_command(&smc).unwrap(),
            Protection::IntegrityNewContext,
        )
        .unwrap(),
        amf.protect(
            &build::registration_accept(&accept).unwrap(),
            Protection::IntegrityCiphered,
        )
        .unwrap(),
        amf.protect(
            &build::dl_nas_transport_pdu_session_establishment_accept(&session_accept).unwrap(),
            Protection::IntegrityCiphered,
        )
        .unwrap(),
    ];
    Cost {
        uplink_messages: uplink.len(),
        uplink_bytes: uplink.iter().map(Vec::len).sum(),
        downlink_messages: downlink.len(),
        downlink_bytes: downlink.iter().map(Vec::len).sum(),
    }
}

#[test]
fn a_burst_is_one_uplink_message_and_far_cheaper_than_re_registering() {
    let (mut ue, mut amf) = contexts(0x42);
    let pdu = burst(&mut ue);
    let verified = amf.unprotect(&pdu).unwrap();
    assert_eq!(delivered(&verified.message), PAYLOAD);
    let base = baseline();
    eprintln!(
        "burst of {} B: 1 uplink message, {} B (0 downlink); baseline re-registration: {} uplink messages, {} B, {} downlink messages, {} B",
        PAYLOAD.len(),
        pdu.len(),
        base.uplink_messages,
        base.uplink_bytes,
        base.downlink_messages,
        base.downlink_bytes
    );
    assert_eq!(base.uplink_messages, 6);
    assert!(
        pdu.len() < PAYLOAD.len() + 20,
        "burst overhead {} B",
        pdu.len() - PAYLOAD.len()
    );
    assert!(pdu.len() * 4 < base.uplink_bytes + base.downlink_bytes);
}

#[test]
fn bursts_are_ciphered_integrity_protected_and_replay_protected() {
    let (mut ue, mut amf) = contexts(0x42);
    // Confidentiality: the payload is not on the air in clear.
    let first = burst(&mut ue);
    assert!(
        !first.windows(8).any(|w| PAYLOAD.windows(8).any(|p| p == w)),
        "payload in clear"
    );
    // Integrity: any flipped bit is refused, and the COUNT does not move.
    for i in 2..first.len() {
        let mut forged = first.clone();
        forged[i] ^= 0x01;
        let before = amf.counts();
        assert!(amf.unprotect(&forged).is_err(), "octet {i}");
        assert_eq!(amf.counts(), before);
    }
    assert_eq!(delivered(&amf.unprotect(&first).unwrap().message), PAYLOAD);
    // Replay protection: the same burst again is refused and named.
    assert!(matches!(
        amf.unprotect(&first),
        Err(NasSecError::Replay { .. })
    ));
    // The next burst has the next COUNT and is accepted.
    let second = burst(&mut ue);
    assert_eq!(amf.unprotect(&second).unwrap().count, 1);
}
