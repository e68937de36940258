//! Every builder: encode, decode back, equal, nothing for `validate()` to
//! find; golden octets for some, derived by hand from the clauses cited.

use super::*;
use oxirush_nas::Validate;
use oxirush_nas::nas_5gs::{Nas5gmmMessage, Nas5gsmMessage, NasFGsMobileIdentity};

/// Encode `message`, decode the octets, compare, re-encode, check that
/// `validate()` finds nothing; return the octets.
fn roundtrip(message: &Nas5gsMessage) -> Vec<u8> {
    let octets = message.encode().expect("encodes");
    let decoded = Nas5gsMessage::decode(&octets).expect("decodes");
    assert_eq!(
        &decoded,
        message,
        "decoded differs: {}",
        hex::encode(&octets)
    );
    assert_eq!(decoded.encode().expect("re-encodes"), octets);
    let findings = message.validate();
    assert!(findings.is_empty(), "{message}: {findings:?}");
    octets
}

fn kamf_ngksi() -> KeySetIdentifier {
    KeySetIdentifier::Native(0)
}

fn plmn() -> Plmn {
    Plmn::new("001", "01").expect("plmn")
}

fn guti() -> Guti {
    Guti::new(plmn(), 0x01, 0x001, 0x01, 0x1234_5678).expect("guti")
}

fn suci_profile_a() -> ImsiSuciParts {
    // 32 octets of ephemeral key, 5 of ciphertext (MSIN of 10 digits), 8 of MAC
    ImsiSuciParts {
        mcc: "001".into(),
        mnc: "01".into(),
        routing_indicator: "0".into(),
        protection_scheme_id: 1,
        home_network_public_key_id: 1,
        scheme_output: (0u8..45).collect(),
    }
}

fn onboarding_request_params() -> PduSessionEstablishmentRequestParams {
    PduSessionEstablishmentRequestParams {
        psi: 1,
        pti: 1,
        session_type: PduSessionTypeValue::Unstructured,
        ssc_mode: Some(SscModeValue::Ssc1),
        dnn: Some("onboarding".into()),
        s_nssai: Some(Snssai { sst: 1, sd: None }),
        request_pvs_information: true,
    }
}

fn onboarding_accept_params() -> PduSessionEstablishmentAcceptParams {
    PduSessionEstablishmentAcceptParams {
        psi: 1,
        pti: 1,
        session_type: PduSessionTypeValue::Unstructured,
        ssc_mode: SscModeValue::Ssc1,
        qfi: 1,
        session_ambr_dl_kbps: 1000,
        session_ambr_ul_kbps: 1000,
        dnn: Some("onboarding".into()),
        s_nssai: Some(Snssai { sst: 1, sd: None }),
        control_plane_only: true,
        pvs_ipv4: Some(std::net::Ipv4Addr::new(192, 0, 2, 10)),
        pvs_name: Some("pvs.nido.example".into()),
    }
}

// ── Registration ────────────────────────────────────────────────────────────

#[test]
fn registration_request_snpn_onboarding_golden() {
    let message = registration_request_snpn_onboarding("dcs.example", false).unwrap();
    let octets = roundtrip(&message);
    let nai = b"type1.rid0.schid0.useridanonymous@dcs.example";
    let mut expected = vec![0x7e, 0x00, 0x41];
    // ngKSI 7 "no key" (bits 8-5), registration type 101, FOR 0 (bits 4-1)
    expected.push(0x75);
    // 5GS mobile identity, LV-E: SUPI format 001 NSI, type 001 SUCI, then the NAI
    let length = u16::try_from(1 + nai.len()).unwrap();
    expected.extend_from_slice(&length.to_be_bytes());
    expected.push(0x11);
    expected.extend_from_slice(nai);
    // 5GMM capability: 5G-CP CIoT (octet 3 bit 5)
    expected.extend_from_slice(&[0x10, 0x01, 0x10]);
    // UE security capability: 5G-EA0..3, 5G-IA1..3
    expected.extend_from_slice(&[0x2e, 0x02, 0xf0, 0x70]);
    assert_eq!(hex::encode(octets), hex::encode(expected));

    let Nas5gsMessage::Gmm(_, Nas5gmmMessage::RegistrationRequest(request)) = &message else {
        panic!("not a registration request")
    };
    assert_eq!(
        request.fgs_registration_type.registration_type(),
        Some(RegistrationTypeAlias::SnpnOnboardingRegistration)
    );
    assert_eq!(
        request
            .fgs_mobile_identity
            .suci_nai()
            .map(|(_, nai)| nai.to_owned()),
        Some(anonymous_onboarding_nai("dcs.example"))
    );
}

use oxirush_nas::nas_5gs::RegistrationType as RegistrationTypeAlias;

#[test]
fn registration_request_snpn_onboarding_follow_on() {
    let octets = roundtrip(&registration_request_snpn_onboarding("dcs.example", true).unwrap());
    assert_eq!(octets[3], 0x7d);
}

#[test]
fn onboarding_identity_refuses_bad_realm() {
    assert!(onboarding_identity("not a realm").is_err());
    assert!(registration_request_snpn_onboarding("", false).is_err());
}

#[test]
fn registration_request_initial_profile_a() {
    let message = registration_request_initial(&suci_profile_a(), true).unwrap();
    let octets = roundtrip(&message);
    // 7e 00 41, ngKSI 7 + FOR + type 001 = 0x79, LV-E length 8 + 45
    assert_eq!(hex::encode(&octets[..6]), "7e0041790035");
    // SUCI: format IMSI/type SUCI, PLMN 001-01, RI 0 (f0 ff), scheme 1, key 1
    assert_eq!(hex::encode(&octets[6..14]), "0100f110f0ff0101");
    assert_eq!(&octets[14..59], &(0u8..45).collect::<Vec<_>>()[..]);
}

#[test]
fn registration_request_initial_null_scheme_and_refusals() {
    let mut parts = suci_profile_a();
    parts.protection_scheme_id = 0;
    parts.home_network_public_key_id = 0;
    parts.scheme_output = b"0000000001".to_vec();
    let octets = roundtrip(&registration_request_initial(&parts, false).unwrap());
    // PLMN, RI, null scheme, key 0, MSIN in TBCD, then the capabilities
    let expected = ["0100f110f0ff", "0000", "0000000010", "100110", "2e02f070"].concat();
    assert_eq!(hex::encode(&octets[6..]), expected);

    let mut wrong_key = suci_profile_a();
    wrong_key.home_network_public_key_id = 0;
    assert!(registration_request_initial(&wrong_key, false).is_err());
    let mut short = suci_profile_a();
    short.scheme_output.truncate(20);
    assert!(registration_request_initial(&short, false).is_err());
    let mut reserved = suci_profile_a();
    reserved.protection_scheme_id = 5;
    assert!(registration_request_initial(&reserved, false).is_err());
    let mut bad_mcc = suci_profile_a();
    bad_mcc.mcc = "0a1".into();
    assert!(registration_request_initial(&bad_mcc, false).is_err());
}

#[test]
fn registration_accept_onboarding() {
    let params = RegistrationAcceptParams {
        guti: Some(guti()),
        tai_list: Some(TaiList {
            plmn: plmn(),
            tacs: vec![1],
        }),
        allowed_nssai: vec![Snssai { sst: 1, sd: None }],
        t3512_seconds: Some(3600),
        cp_ciot: true,
    };
    let octets = roundtrip(&registration_accept(&params).unwrap());
    // result: 3GPP access; 5G-GUTI f2 00f110 01 0040 12345678
    assert_eq!(
        hex::encode(&octets[..19]),
        "7e0042010177000bf200f110010041 12345678"
            .replace(' ', "")
            .as_str()
    );
    let minimal = RegistrationAcceptParams {
        guti: None,
        tai_list: None,
        allowed_nssai: vec![],
        t3512_seconds: None,
        cp_ciot: false,
    };
    assert_eq!(
        roundtrip(&registration_accept(&minimal).unwrap()),
        [0x7e, 0x00, 0x42, 0x01, 0x01]
    );
}

#[test]
fn registration_accept_refusals() {
    let mut params = RegistrationAcceptParams {
        guti: None,
        tai_list: Some(TaiList {
            plmn: plmn(),
            tacs: vec![],
        }),
        allowed_nssai: vec![],
        t3512_seconds: None,
        cp_ciot: false,
    };
    assert!(registration_accept(&params).is_err());
    params.tai_list = Some(TaiList {
        plmn: plmn(),
        tacs: vec![0x0100_0000],
    });
    assert!(registration_accept(&params).is_err());
    params.tai_list = None;
    params.t3512_seconds = Some(7);
    assert!(registration_accept(&params).is_err());
}

#[test]
fn registration_complete_golden() {
    assert_eq!(roundtrip(&registration_complete()), [0x7e, 0x00, 0x43]);
}

#[test]
fn registration_reject_every_cause() {
    for cause in REGISTRATION_REJECT_CAUSES {
        let octets = roundtrip(&registration_reject(cause, None).unwrap());
        assert_eq!(octets, [0x7e, 0x00, 0x44, cause as u8]);
    }
    // #22 with T3346 of ten minutes: GPRS timer 2, unit minutes (001), value 10
    let octets = roundtrip(&registration_reject(GmmCause::Congestion, Some(600)).unwrap());
    assert_eq!(hex::encode(octets), "7e0044165f012a");
    // #93 onboarding services terminated is 0x5d, #74 0x4a, #75 0x4b
    assert_eq!(GmmCause::OnboardingServicesTerminated as u8, 0x5d);
    assert_eq!(GmmCause::TemporarilyNotAuthorizedForThisSnpn as u8, 74);
    assert_eq!(GmmCause::PermanentlyNotAuthorizedForThisSnpn as u8, 75);
}

#[test]
fn registration_reject_refusals_and_eap() {
    assert!(registration_reject(GmmCause::IllegalUe, Some(600)).is_err());
    assert!(registration_reject(GmmCause::Congestion, Some(601)).is_err());
    let octets =
        roundtrip(&registration_reject_with_eap(GmmCause::IllegalUe, &eap_failure(7)).unwrap());
    assert_eq!(hex::encode(octets), "7e00440378000404070004");
}

// ── De-registration and status ───────────────────────────────────────────────

#[test]
fn deregistration_request_ue_originating_guti_and_suci() {
    let identity = NasFGsMobileIdentity::from_guti(guti());
    let octets =
        roundtrip(&deregistration_request_ue_originating(true, kamf_ngksi(), &identity).unwrap());
    // ngKSI 0 (bits 8-5), switch off (bit 4), 3GPP access (01)
    assert_eq!(hex::encode(&octets[..4]), "7e004509");
    assert_eq!(
        hex::encode(&octets[4..]),
        "000bf200f110010041 12345678".replace(' ', "")
    );

    let suci = onboarding_identity("dcs.example").unwrap();
    let octets =
        roundtrip(&deregistration_request_ue_originating(false, kamf_ngksi(), &suci).unwrap());
    assert_eq!(octets[3], 0x01);
    let imei = NasFGsMobileIdentity::from_imei("490154203237518").unwrap();
    assert!(deregistration_request_ue_originating(false, kamf_ngksi(), &imei).is_err());
}

#[test]
fn deregistration_accepts_golden() {
    assert_eq!(
        roundtrip(&deregistration_accept_ue_originating()),
        [0x7e, 0x00, 0x46]
    );
    assert_eq!(
        roundtrip(&deregistration_accept_ue_terminated()),
        [0x7e, 0x00, 0x48]
    );
}

#[test]
fn deregistration_request_ue_terminated_golden() {
    // #93 onboarding services terminated: 3GPP access, then IEI 58, cause 5d
    assert_eq!(
        hex::encode(roundtrip(&deregistration_request_onboarding_terminated())),
        "7e004701585d"
    );
    let message =
        deregistration_request_ue_terminated(true, Some(GmmCause::Congestion), Some(60)).unwrap();
    // re-registration required (bit 3) + 3GPP access; #22; T3346 60 s = 30 x 2 s (unit 000)
    assert_eq!(hex::encode(roundtrip(&message)), "7e00470558165f011e");
    let plain = deregistration_request_ue_terminated(false, None, None).unwrap();
    assert_eq!(roundtrip(&plain), [0x7e, 0x00, 0x47, 0x01]);
    assert!(deregistration_request_ue_terminated(false, None, Some(60)).is_err());
}

#[test]
fn fgmm_status_golden() {
    assert_eq!(
        roundtrip(&fgmm_status(GmmCause::ProtocolErrorUnspecified)),
        [0x7e, 0x00, 0x64, 0x6f]
    );
}

// ── Authentication ──────────────────────────────────────────────────────────

/// EAP-Request/EAP-TLS Start, identifier 1 (RFC 5216 §3.1, type 13, S flag).
const EAP_TLS_START: [u8; 6] = [0x01, 0x01, 0x00, 0x06, 0x0d, 0x20];

#[test]
fn authentication_request_eap_golden() {
    let message = authentication_request_eap(kamf_ngksi(), &EAP_TLS_START).unwrap();
    // ngKSI 0 + spare, ABBA LV 02 0000, EAP message TLV-E 78 0006 ...
    assert_eq!(
        hex::encode(roundtrip(&message)),
        "7e005600020000780006010100060d20"
    );
}

#[test]
fn eap_message_refusals() {
    assert!(authentication_request_eap(kamf_ngksi(), &[0x01, 0x01, 0x00]).is_err());
    assert!(
        authentication_request_eap(kamf_ngksi(), &[0x01, 0x01, 0x00, 0x07, 0x0d, 0x20]).is_err()
    );
    let mut long = vec![0x02, 0x01, 0x05, 0xdd];
    long.resize(1501, 0);
    assert!(authentication_response_eap(&long).is_err());
    let mut largest = vec![0x02, 0x01, 0x05, 0xdc, 0x0d];
    largest.resize(1500, 0);
    roundtrip(&authentication_response_eap(&largest).unwrap());
    assert!(authentication_request_eap(KeySetIdentifier::Native(7), &EAP_TLS_START).is_err());
}

#[test]
fn authentication_request_5g_aka_golden() {
    let rand = [0x11; 16];
    let autn = [0x22; 16];
    let message = authentication_request_5g_aka(KeySetIdentifier::Native(1), &rand, &autn).unwrap();
    // RAND is TV (IEI 21, 16 octets), AUTN TLV (IEI 20, length 16)
    let expected = format!("7e00560102000021{}2010{}", "11".repeat(16), "22".repeat(16));
    assert_eq!(hex::encode(roundtrip(&message)), expected);
}

#[test]
fn authentication_responses() {
    // EAP-Response/EAP-TLS with no data (the ack of RFC 9190 §2.5)
    let eap = [0x02, 0x01, 0x00, 0x06, 0x0d, 0x00];
    assert_eq!(
        hex::encode(roundtrip(&authentication_response_eap(&eap).unwrap())),
        "7e0057780006020100060d00"
    );
    let res_star = [0x33; 16];
    assert_eq!(
        hex::encode(roundtrip(&authentication_response_res_star(&res_star))),
        format!("7e00572d10{}", "33".repeat(16))
    );
}

#[test]
fn authentication_result_golden() {
    let message = authentication_result_eap_success(kamf_ngksi(), 9).unwrap();
    // ngKSI, EAP LV-E 0004 03 09 0004, ABBA TLV 38 02 0000
    assert_eq!(
        hex::encode(roundtrip(&message)),
        "7e005a00000403090004380200 00".replace(' ', "")
    );
    // An EAP-Failure in the result has no ABBA
    let failure = authentication_result(kamf_ngksi(), &eap_failure(9)).unwrap();
    assert_eq!(
        hex::encode(roundtrip(&failure)),
        "7e005a0000040409 0004".replace(' ', "")
    );
}

#[test]
fn authentication_failures_golden() {
    let auts = [0x44; 14];
    assert_eq!(
        hex::encode(roundtrip(&authentication_failure_synch_failure(&auts))),
        format!("7e0059153 00e{}", "44".repeat(14)).replace(' ', "")
    );
    assert_eq!(
        roundtrip(&authentication_failure_mac_failure()),
        [0x7e, 0x00, 0x59, 0x14]
    );
    assert_eq!(
        roundtrip(&authentication_failure(GmmCause::NonFiveGAuthenticationUnacceptable).unwrap()),
        [0x7e, 0x00, 0x59, 0x1a]
    );
    assert!(authentication_failure(GmmCause::SynchFailure).is_err());
}

#[test]
fn authentication_reject_golden() {
    assert_eq!(
        roundtrip(&authentication_reject(None).unwrap()),
        [0x7e, 0x00, 0x58]
    );
    assert_eq!(
        hex::encode(roundtrip(
            &authentication_reject(Some(&eap_failure(3))).unwrap()
        )),
        "7e0058780004040300 04".replace(' ', "")
    );
}

// ── Security mode control ───────────────────────────────────────────────────

fn smc_params() -> SecurityModeCommandParams {
    SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA2,
        integrity: IntegrityAlgorithm::NIA2,
        ngksi: kamf_ngksi(),
        replayed_ue_security_capability: ue_security_capability(),
        imeisv_request: false,
        abba: None,
        additional_security_information: None,
        eap_message: None,
    }
}

#[test]
fn security_mode_command_golden() {
    // NEA2 (bits 7-5) NIA2 (bits 3-1): 0x22; ngKSI 0; replayed LV 02 f0 70
    assert_eq!(
        hex::encode(roundtrip(&security_mode_command(&smc_params()).unwrap())),
        "7e005d220002f070"
    );
    let full = SecurityModeCommandParams {
        imeisv_request: true,
        abba: Some(ABBA.to_vec()),
        additional_security_information: Some(AdditionalSecurityInformation {
            retransmission_of_initial_nas_message: true,
            horizontal_derivation: false,
        }),
        eap_message: Some(eap_success(5).to_vec()),
        ..smc_params()
    };
    let octets = roundtrip(&security_mode_command(&full).unwrap());
    assert_eq!(hex::encode(&octets[..8]), "7e005d220002f070");
    // IMEISV request E1, additional 5G security information 36 01 02,
    // EAP message 78 0004 03 05 0004, ABBA 38 02 0000 (in the order of §8.2.25)
    assert_eq!(
        hex::encode(&octets[8..]),
        "e1360102780004030500043802 0000".replace(' ', "")
    );
    let bad_abba = SecurityModeCommandParams {
        abba: Some(vec![0]),
        ..smc_params()
    };
    assert!(security_mode_command(&bad_abba).is_err());
}

#[test]
fn security_mode_complete_with_container() {
    assert_eq!(
        roundtrip(&security_mode_complete(None, None).unwrap()),
        [0x7e, 0x00, 0x5e]
    );
    let initial = registration_request_snpn_onboarding("dcs.example", false).unwrap();
    let message = security_mode_complete(Some("4901542032375181"), Some(&initial)).unwrap();
    let octets = roundtrip(&message);
    let Nas5gsMessage::Gmm(_, Nas5gmmMessage::SecurityModeComplete(complete)) = &message else {
        panic!("not a security mode complete")
    };
    let container = complete.nas_message_container.as_ref().unwrap();
    assert_eq!(container.decode_as_nas_message().unwrap(), initial);
    // IMEISV TLV-E 77 0009 ..., then the container 71
    assert_eq!(hex::encode(&octets[3..6]), "770009");
    assert_eq!(octets[15], 0x71);
    assert!(security_mode_complete(Some("123"), None).is_err());
}

// ── Transport, sessions, CIoT data ──────────────────────────────────────────

#[test]
fn ul_nas_transport_ciot_data_golden() {
    let message = ul_nas_transport_ciot_data(1, b"hi").unwrap();
    // payload container type 8 (spare half + 1000), LV-E 0002 "hi", PDU session ID 12 01
    assert_eq!(
        hex::encode(roundtrip(&message)),
        "7e0067080002686912 01".replace(' ', "")
    );
    assert!(ul_nas_transport_ciot_data(0, b"hi").is_err());
    assert!(ul_nas_transport_ciot_data(16, b"hi").is_err());
    assert!(ul_nas_transport_ciot_data(1, b"").is_err());
}

#[test]
fn dl_nas_transport_ciot_data_golden() {
    let message = dl_nas_transport_ciot_data(5, &[0xca, 0xfe]).unwrap();
    assert_eq!(hex::encode(roundtrip(&message)), "7e0068080002cafe1205");
}

#[test]
fn pdu_session_establishment_request_and_transport() {
    let params = onboarding_request_params();
    let request = pdu_session_establishment_request(&params).unwrap();
    let octets = roundtrip(&request);
    // 2e PSI 1, PTI 1, c1; max data rate 00 00; PDU session type 9-4 (unstructured);
    // SSC mode A-1; ePCO 7b 0004 80 0036 00
    assert_eq!(
        hex::encode(&octets),
        "2e0101c1000094a17b0004800036 00".replace(' ', "")
    );
    let Nas5gsMessage::Gsm(header, Nas5gsmMessage::PduSessionEstablishmentRequest(_)) = &request
    else {
        panic!("not a PDU session establishment request")
    };
    assert_eq!(
        (
            header.pdu_session_identity,
            header.procedure_transaction_identity
        ),
        (1, 1)
    );

    let transport = ul_nas_transport_pdu_session_establishment_request(&params).unwrap();
    let outer = roundtrip(&transport);
    let length = u16::try_from(octets.len()).unwrap().to_be_bytes();
    let mut expected = vec![0x7e, 0x00, 0x67, 0x01, length[0], length[1]];
    expected.extend_from_slice(&octets);
    // PDU session ID, request type initial (8-1), S-NSSAI 22 01 01, DNN 25 0b 0a "onboarding"
    expected.extend_from_slice(&[0x12, 0x01, 0x81, 0x22, 0x01, 0x01, 0x25, 0x0b, 0x0a]);
    expected.extend_from_slice(b"onboarding");
    assert_eq!(hex::encode(outer), hex::encode(expected));

    let mut bad = onboarding_request_params();
    bad.pti = 0;
    assert!(pdu_session_establishment_request(&bad).is_err());
    bad.pti = 255;
    assert!(pdu_session_establishment_request(&bad).is_err());
    let mut bad_dnn = onboarding_request_params();
    bad_dnn.dnn = Some(String::new());
    assert!(ul_nas_transport_pdu_session_establishment_request(&bad_dnn).is_err());
}

#[test]
fn pdu_session_establishment_accept_and_transport() {
    let params = onboarding_accept_params();
    let accept = pdu_session_establishment_accept(&params).unwrap();
    let octets = roundtrip(&accept);
    // header; SSC mode 1 (bits 8-5) + unstructured (bits 4-1); QoS rules LV-E:
    // rule 1, length 6, create + DQR + 1 filter (31), bidirectional filter 1 (31),
    // length 1, match-all (01), precedence ff, QFI 1
    assert_eq!(hex::encode(&octets[..5]), "2e0101c2 14".replace(' ', ""));
    assert_eq!(hex::encode(&octets[5..16]), "000901000631310101ff01");
    let Nas5gsMessage::Gsm(_, Nas5gsmMessage::PduSessionEstablishmentAccept(body)) = &accept else {
        panic!("not a PDU session establishment accept")
    };
    assert!(
        body.control_plane_only_indication
            .as_ref()
            .is_some_and(|indication| indication.cpoi())
    );
    let epco = body
        .extended_protocol_configuration_options
        .as_ref()
        .unwrap();
    assert_eq!(
        hex::encode(&epco.value),
        "80003604c000020a00381103707673046e69646f076578616d706c65"
    );

    let transport = dl_nas_transport_pdu_session_establishment_accept(&params).unwrap();
    let outer = roundtrip(&transport);
    assert_eq!(hex::encode(&outer[..4]), "7e006801");
    assert_eq!(&outer[6..6 + octets.len()], &octets[..]);
    assert_eq!(hex::encode(&outer[6 + octets.len()..]), "1201");

    let mut ip = onboarding_accept_params();
    ip.session_type = PduSessionTypeValue::Ipv4;
    assert!(pdu_session_establishment_accept(&ip).is_err());
    let mut qfi = onboarding_accept_params();
    qfi.qfi = 64;
    assert!(pdu_session_establishment_accept(&qfi).is_err());
    let mut name = onboarding_accept_params();
    name.pvs_name = Some("a..b".into());
    assert!(pdu_session_establishment_accept(&name).is_err());
}

#[test]
fn control_plane_service_request_golden() {
    let message = control_plane_service_request(
        KeySetIdentifier::Native(2),
        1,
        CiotSmallDataDownlinkDataExpected::NoFurtherUplinkOrDownlink,
        b"hello",
    )
    .unwrap();
    // ngKSI 2 (bits 8-5), service type 000 MO request; CIoT small data container
    // 6f 06: data type 000, DDX 01, PSI 001 = 0x09, then the data
    assert_eq!(
        hex::encode(roundtrip(&message)),
        format!("7e004f206f0609{}", hex::encode(b"hello"))
    );
    let largest = vec![0xab; MAX_SMALL_DATA_LEN];
    roundtrip(
        &control_plane_service_request(
            kamf_ngksi(),
            7,
            CiotSmallDataDownlinkDataExpected::NoInformationAvailable,
            &largest,
        )
        .unwrap(),
    );
    let ddx = CiotSmallDataDownlinkDataExpected::NoInformationAvailable;
    assert!(control_plane_service_request(kamf_ngksi(), 8, ddx, b"x").is_err());
    assert!(control_plane_service_request(kamf_ngksi(), 0, ddx, b"x").is_err());
    assert!(control_plane_service_request(kamf_ngksi(), 1, ddx, &[0; 255]).is_err());
    assert!(control_plane_service_request(kamf_ngksi(), 1, ddx, b"").is_err());
    let reserved = CiotSmallDataDownlinkDataExpected::Reserved;
    assert!(control_plane_service_request(kamf_ngksi(), 1, reserved, b"x").is_err());
}

#[test]
fn control_plane_service_request_payload_golden() {
    let data = vec![0x5a; 300];
    let message = control_plane_service_request_payload(kamf_ngksi(), 9, &data).unwrap();
    let octets = roundtrip(&message);
    // type 8 (TV-1 IEI 8), payload container 7b 012c ..., PDU session ID 12 09
    assert_eq!(hex::encode(&octets[..8]), "7e004f00887b012c");
    assert_eq!(hex::encode(&octets[octets.len() - 2..]), "1209");
}

#[test]
fn ue_capabilities() {
    let capability = ue_security_capability();
    for ea in 0..=3 {
        assert!(capability.supports_ea(ea));
    }
    assert!(!capability.supports_ia(0));
    for ia in 1..=3 {
        assert!(capability.supports_ia(ia));
    }
    assert!(ue_fgmm_capability().cp_ciot());
}

/// GPRS timer 2 (TS 24.008 §10.5.7.4) tops out at 31 decihours, 186 min:
/// T3346 values up to it encode with the largest unit they need; one step
/// beyond it is an error naming T3346, not a value silently cut.
#[test]
fn t3346_up_to_the_gprs_timer2_maximum_and_not_beyond() {
    assert_eq!(GPRS_TIMER2_MAX_SECONDS, 186 * 60);
    for (seconds, octet) in [
        (62, 0x1f),                      // 31 x 2 s (unit 000)
        (1860, 0x3f),                    // 31 x 1 min (unit 001)
        (GPRS_TIMER2_MAX_SECONDS, 0x5f), // 31 x 6 min (unit 010)
    ] {
        let reject = registration_reject(GmmCause::Congestion, Some(seconds)).unwrap();
        assert_eq!(
            roundtrip(&reject),
            [0x7e, 0x00, 0x44, 22, 0x5f, 0x01, octet]
        );
        let request =
            deregistration_request_ue_terminated(true, Some(GmmCause::Congestion), Some(seconds))
                .unwrap();
        assert_eq!(roundtrip(&request).last(), Some(&octet));
    }
    for seconds in [
        GPRS_TIMER2_MAX_SECONDS + 1,
        GPRS_TIMER2_MAX_SECONDS + 360,
        310 * 60,
    ] {
        let err = registration_reject(GmmCause::Congestion, Some(seconds)).unwrap_err();
        assert!(
            matches!(&err, BuildError::Invalid { field: "t3346", reason } if reason.contains("maximum")),
            "{seconds} s: {err}"
        );
        let err =
            deregistration_request_ue_terminated(true, Some(GmmCause::Congestion), Some(seconds))
                .unwrap_err();
        assert!(
            matches!(err, BuildError::Invalid { field: "t3346", .. }),
            "{err}"
        );
    }
    // Below the maximum but between two steps of the unit it needs.
    assert!(registration_reject(GmmCause::Congestion, Some(63)).is_err());
    assert!(registration_reject(GmmCause::Congestion, Some(1861 + 59)).is_err());
}
