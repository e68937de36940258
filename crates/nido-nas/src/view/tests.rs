//! Every variant: build with `crate::build` (or by hand where nido has no
//! builder), encode, decode the octets, read the view, and compare each
//! field with the builder's input.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::build::*;
use crate::wire::{
    GsmCause, NasAuthenticationParameterAutn, NasAuthenticationRequest,
    NasConfigurationUpdateComplete, NasFGmmCause, NasFGsmCause, NasKeySetIdentifier,
    NasPduSessionEstablishmentReject, NasSecurityModeReject, NasServiceAccept,
};

/// Encode `message`, decode the octets (as a received PDU is), read the view.
fn view(message: &Nas5gsMessage) -> Inbound {
    let octets = message.encode().expect("encodes");
    let decoded = crate::decode(&octets).expect("decodes");
    Inbound::read(&decoded).expect("reads")
}

/// As [`view`], for a message that the view refuses.
fn view_error(message: &Nas5gsMessage) -> ViewError {
    let octets = message.encode().expect("encodes");
    let decoded = crate::decode(&octets).expect("decodes");
    Inbound::read(&decoded).expect_err("refused")
}

fn guti5g() -> Guti5g {
    Guti5g {
        mcc: "001".into(),
        mnc: "01".into(),
        amf_region_id: 0xca,
        amf_set_id: 0x3fe,
        amf_pointer: 0x21,
        tmsi: 0x1234_5678,
    }
}

fn suci_profile_a() -> ImsiSuciParts {
    ImsiSuciParts {
        mcc: "001".into(),
        mnc: "01".into(),
        routing_indicator: "0".into(),
        protection_scheme_id: 1,
        home_network_public_key_id: 1,
        scheme_output: (0u8..45).collect(),
    }
}

/// EAP-Request/EAP-TLS Start, identifier 1 (RFC 5216 §3.1).
const EAP_TLS_START: [u8; 6] = [0x01, 0x01, 0x00, 0x06, 0x0d, 0x20];

fn request_params() -> PduSessionEstablishmentRequestParams {
    PduSessionEstablishmentRequestParams {
        psi: 1,
        pti: 7,
        session_type: PduSessionTypeValue::Unstructured,
        ssc_mode: Some(SscModeValue::Ssc1),
        dnn: Some("onboarding".into()),
        s_nssai: Some(Snssai { sst: 1, sd: None }),
        request_pvs_information: true,
    }
}

fn accept_params() -> PduSessionEstablishmentAcceptParams {
    PduSessionEstablishmentAcceptParams {
        psi: 1,
        pti: 7,
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
fn reads_registration_request_snpn_onboarding() {
    for follow_on_request in [true, false] {
        let message =
            registration_request_snpn_onboarding("dcs.example", follow_on_request).expect("builds");
        let inbound = view(&message);
        assert_eq!(inbound.name(), "RegistrationRequest");
        assert_eq!(
            inbound,
            Inbound::RegistrationRequest {
                registration_type: 5,
                follow_on_request,
                ngksi: 7,
                identity: MobileIdentity::SuciNai(
                    "type1.rid0.schid0.useridanonymous@dcs.example".into()
                ),
                ue_security_capability: Some([0xf0, 0x70]),
                cp_ciot: true,
            }
        );
        let Inbound::RegistrationRequest { identity, .. } = inbound else {
            unreachable!()
        };
        assert_eq!(
            identity,
            MobileIdentity::SuciNai(anonymous_onboarding_nai("dcs.example"))
        );
    }
}

#[test]
fn reads_registration_request_initial_imsi_suci() {
    let mut null_scheme = suci_profile_a();
    null_scheme.protection_scheme_id = 0;
    null_scheme.home_network_public_key_id = 0;
    null_scheme.scheme_output = b"0000000001".to_vec();
    let mut three_digit_mnc = suci_profile_a();
    three_digit_mnc.mnc = "001".into();
    three_digit_mnc.routing_indicator = "1234".into();
    for parts in [suci_profile_a(), null_scheme, three_digit_mnc] {
        let message = registration_request_initial(&parts, true).expect("builds");
        assert_eq!(
            view(&message),
            Inbound::RegistrationRequest {
                registration_type: 1,
                follow_on_request: true,
                ngksi: 7,
                identity: MobileIdentity::ImsiSuci(parts),
                ue_security_capability: Some([UE_EA_ALGORITHMS, UE_IA_ALGORITHMS]),
                cp_ciot: true,
            }
        );
    }
}

#[test]
fn reads_registration_request_other_identities() {
    use crate::wire::{NasFGsMobileIdentity, NasFGsRegistrationType, NasRegistrationRequest};
    let request = |identity| {
        let kind = NasFGsRegistrationType::from_registration_type(
            crate::wire::RegistrationType::MobilityRegistrationUpdating,
        );
        Nas5gsMessage::new_5gmm(NasRegistrationRequest::new(
            kind,
            NasKeySetIdentifier::from_key_set_identifier(KeySetIdentifier::Native(3))
                .expect("ngksi"),
            identity,
        ))
    };
    let guti = guti5g().to_wire().expect("guti");
    assert_eq!(
        view(&request(NasFGsMobileIdentity::from_guti(guti))),
        Inbound::RegistrationRequest {
            registration_type: 2,
            follow_on_request: false,
            ngksi: 3,
            identity: MobileIdentity::Guti(guti5g()),
            ue_security_capability: None,
            cp_ciot: false,
        }
    );
    let imei = NasFGsMobileIdentity::from_imei("490154203237518").expect("imei");
    let Inbound::RegistrationRequest { identity, .. } = view(&request(imei)) else {
        panic!("not a registration request")
    };
    assert_eq!(identity, MobileIdentity::Other(3));
    // A SUCI type whose NAI is no NAI (no realm) is refused, naming the IE
    let bad = NasFGsMobileIdentity::new(b"\x11type1.rid0.schid0.useridanonymous".to_vec());
    let error = Inbound::read(&request(bad)).expect_err("refused");
    assert_eq!(error.field, "5GS mobile identity");
    assert_eq!(error.message, "RegistrationRequest");
}

#[test]
fn reads_registration_accept_guti_round_trip() {
    let guti = guti5g();
    let params = RegistrationAcceptParams {
        guti: Some(guti.to_wire().expect("to_wire")),
        tai_list: Some(TaiList {
            plmn: Plmn::new("001", "01").expect("plmn"),
            tacs: vec![1],
        }),
        allowed_nssai: vec![Snssai { sst: 1, sd: None }],
        t3512_seconds: Some(3600),
        cp_ciot: true,
    };
    let inbound = view(&registration_accept(&params).expect("builds"));
    assert_eq!(inbound.name(), "RegistrationAccept");
    assert_eq!(
        inbound,
        Inbound::RegistrationAccept {
            guti: Some(guti.clone()),
            cp_ciot: true,
        }
    );
    let minimal = RegistrationAcceptParams {
        guti: None,
        tai_list: None,
        allowed_nssai: vec![],
        t3512_seconds: None,
        cp_ciot: false,
    };
    assert_eq!(
        view(&registration_accept(&minimal).expect("builds")),
        Inbound::RegistrationAccept {
            guti: None,
            cp_ciot: false,
        }
    );
    assert_eq!(Guti5g::from_wire(&guti.to_wire().expect("to_wire")), guti);
}

#[test]
fn reads_guti_to_wire_refusals() {
    let mut guti = guti5g();
    guti.amf_set_id = 1024;
    assert!(guti.to_wire().is_err());
    let mut guti = guti5g();
    guti.amf_pointer = 64;
    assert!(guti.to_wire().is_err());
    let mut guti = guti5g();
    guti.mcc = "01".into();
    assert!(guti.to_wire().is_err());
}

#[test]
fn reads_registration_complete() {
    let inbound = view(&crate::build::registration_complete());
    assert_eq!(inbound, Inbound::RegistrationComplete);
    assert_eq!(inbound.name(), "RegistrationComplete");
}

#[test]
fn reads_registration_reject_with_t3346_and_eap() {
    let message = registration_reject(GmmCause::Congestion, Some(600)).expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "RegistrationReject");
    assert_eq!(
        inbound,
        Inbound::RegistrationReject {
            cause: Cause::CONGESTION,
            t3346: Some(Duration::from_secs(600)),
            eap: None,
        }
    );
    for cause in REGISTRATION_REJECT_CAUSES {
        assert_eq!(
            view(&registration_reject(cause, None).expect("builds")),
            Inbound::RegistrationReject {
                cause: Cause(cause as u8),
                t3346: None,
                eap: None,
            }
        );
    }
    let message =
        registration_reject_with_eap(GmmCause::IllegalUe, &eap_failure(7)).expect("builds");
    assert_eq!(
        view(&message),
        Inbound::RegistrationReject {
            cause: Cause::ILLEGAL_UE,
            t3346: None,
            eap: Some(eap_failure(7).to_vec()),
        }
    );
}

// ── Authentication ──────────────────────────────────────────────────────────

#[test]
fn reads_authentication_request_eap() {
    let message =
        crate::build::authentication_request_eap(KeySetIdentifier::Native(2), &EAP_TLS_START)
            .expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "AuthenticationRequest");
    assert_eq!(
        inbound,
        Inbound::AuthenticationRequest {
            ngksi: 2,
            abba: ABBA.to_vec(),
            rand: None,
            autn: None,
            eap: Some(EAP_TLS_START.to_vec()),
        }
    );
}

#[test]
fn reads_authentication_request_5g_aka() {
    let (rand, autn) = ([0x11; 16], [0x22; 16]);
    let message =
        crate::build::authentication_request_5g_aka(KeySetIdentifier::Native(1), &rand, &autn)
            .expect("builds");
    assert_eq!(
        view(&message),
        Inbound::AuthenticationRequest {
            ngksi: 1,
            abba: ABBA.to_vec(),
            rand: Some(rand),
            autn: Some(autn),
            eap: None,
        }
    );
}

#[test]
fn reads_authentication_request_autn_of_wrong_length_is_refused() {
    // Not encodable (the codec refuses an AUTN of 15 octets), so read directly
    let ngksi =
        NasKeySetIdentifier::from_key_set_identifier(KeySetIdentifier::Native(1)).expect("ngksi");
    let request = NasAuthenticationRequest::new(ngksi, crate::wire::NasAbba::new(ABBA.to_vec()))
        .with_authentication_parameter_autn(NasAuthenticationParameterAutn::new(vec![0x22; 15]));
    let error = Inbound::read(&Nas5gsMessage::new_5gmm(request)).expect_err("refused");
    assert_eq!(error.message, "AuthenticationRequest");
    assert_eq!(error.field, "authentication parameter AUTN");
    assert_eq!(
        error.to_string(),
        "AuthenticationRequest: authentication parameter AUTN: 16 octets, got 15"
    );
}

#[test]
fn reads_authentication_responses() {
    let eap = [0x02, 0x01, 0x00, 0x06, 0x0d, 0x00];
    let inbound = view(&crate::build::authentication_response_eap(&eap).expect("builds"));
    assert_eq!(inbound.name(), "AuthenticationResponse");
    assert_eq!(
        inbound,
        Inbound::AuthenticationResponse {
            res_star: None,
            eap: Some(eap.to_vec()),
        }
    );
    let res_star = [0x33; 16];
    assert_eq!(
        view(&authentication_response_res_star(&res_star)),
        Inbound::AuthenticationResponse {
            res_star: Some(res_star),
            eap: None,
        }
    );
}

#[test]
fn reads_authentication_result() {
    let message =
        authentication_result_eap_success(KeySetIdentifier::Native(0), 9).expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "AuthenticationResult");
    assert_eq!(
        inbound,
        Inbound::AuthenticationResult {
            ngksi: 0,
            eap: eap_success(9).to_vec(),
        }
    );
    let failure = crate::build::authentication_result(KeySetIdentifier::Native(4), &eap_failure(2))
        .expect("builds");
    assert_eq!(
        view(&failure),
        Inbound::AuthenticationResult {
            ngksi: 4,
            eap: eap_failure(2).to_vec(),
        }
    );
}

#[test]
fn reads_authentication_failure_with_auts() {
    let auts = [0x44; 14];
    let inbound = view(&authentication_failure_synch_failure(&auts));
    assert_eq!(inbound.name(), "AuthenticationFailure");
    assert_eq!(
        inbound,
        Inbound::AuthenticationFailure {
            cause: Cause::SYNCH_FAILURE,
            auts: Some(auts),
        }
    );
    assert_eq!(
        view(&authentication_failure_mac_failure()),
        Inbound::AuthenticationFailure {
            cause: Cause::MAC_FAILURE,
            auts: None,
        }
    );
    let message =
        crate::build::authentication_failure(GmmCause::NgKsiAlreadyInUse).expect("builds");
    assert_eq!(
        view(&message),
        Inbound::AuthenticationFailure {
            cause: Cause(71),
            auts: None,
        }
    );
}

#[test]
fn reads_authentication_reject() {
    let inbound = view(&crate::build::authentication_reject(None).expect("builds"));
    assert_eq!(inbound.name(), "AuthenticationReject");
    assert_eq!(inbound, Inbound::AuthenticationReject { eap: None });
    let failure = eap_failure(3);
    assert_eq!(
        view(&crate::build::authentication_reject(Some(&failure)).expect("builds")),
        Inbound::AuthenticationReject {
            eap: Some(failure.to_vec()),
        }
    );
}

// ── Security mode control ───────────────────────────────────────────────────

fn smc_params() -> SecurityModeCommandParams {
    SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA2,
        integrity: IntegrityAlgorithm::NIA2,
        ngksi: KeySetIdentifier::Native(1),
        replayed_ue_security_capability: ue_security_capability(),
        imeisv_request: false,
        abba: None,
        additional_security_information: None,
        eap_message: None,
    }
}

#[test]
fn reads_security_mode_command() {
    let inbound = view(&crate::build::security_mode_command(&smc_params()).expect("builds"));
    assert_eq!(inbound.name(), "SecurityModeCommand");
    assert_eq!(
        inbound,
        Inbound::SecurityModeCommand {
            nea: 2,
            nia: 2,
            ngksi: 1,
            replayed_ue_security_capability: [0xf0, 0x70],
            imeisv_request: false,
            abba: None,
            eap: None,
        }
    );
    let full = SecurityModeCommandParams {
        ciphering: CipheringAlgorithm::NEA0,
        integrity: IntegrityAlgorithm::NIA1,
        replayed_ue_security_capability: NasUeSecurityCapability::from_capabilities(0xa0, 0x20),
        imeisv_request: true,
        abba: Some(ABBA.to_vec()),
        additional_security_information: Some(AdditionalSecurityInformation {
            retransmission_of_initial_nas_message: true,
            horizontal_derivation: false,
        }),
        eap_message: Some(eap_success(5).to_vec()),
        ..smc_params()
    };
    assert_eq!(
        view(&crate::build::security_mode_command(&full).expect("builds")),
        Inbound::SecurityModeCommand {
            nea: 0,
            nia: 1,
            ngksi: 1,
            replayed_ue_security_capability: [0xa0, 0x20],
            imeisv_request: true,
            abba: Some(ABBA.to_vec()),
            eap: Some(eap_success(5).to_vec()),
        }
    );
}

#[test]
fn reads_security_mode_complete() {
    let inbound = view(&crate::build::security_mode_complete(None, None).expect("builds"));
    assert_eq!(inbound.name(), "SecurityModeComplete");
    assert_eq!(
        inbound,
        Inbound::SecurityModeComplete {
            nas_message_container: None,
        }
    );
    let initial = registration_request_snpn_onboarding("dcs.example", false).expect("builds");
    let message = crate::build::security_mode_complete(Some("4901542032375181"), Some(&initial))
        .expect("builds");
    let Inbound::SecurityModeComplete {
        nas_message_container: Some(container),
    } = view(&message)
    else {
        panic!("no container")
    };
    assert_eq!(container, initial.encode().expect("encodes"));
    // and the container is the initial message, whose view is that of the request
    assert_eq!(
        view(&initial),
        view(&crate::decode(&container).expect("decodes"))
    );
}

#[test]
fn reads_security_mode_reject() {
    let reject = NasSecurityModeReject::new(NasFGmmCause::from_cause(
        GmmCause::UeSecurityCapabilitiesMismatch,
    ));
    let inbound = view(&Nas5gsMessage::new_5gmm(reject));
    assert_eq!(inbound.name(), "SecurityModeReject");
    assert_eq!(
        inbound,
        Inbound::SecurityModeReject {
            cause: Cause::UE_SECURITY_CAPABILITIES_MISMATCH
        }
    );
}

// ── De-registration, service, status ────────────────────────────────────────

#[test]
fn reads_deregistration_ue_originating() {
    let guti = NasFGsMobileIdentity::from_guti(guti5g().to_wire().expect("guti"));
    let message = deregistration_request_ue_originating(true, KeySetIdentifier::Native(0), &guti)
        .expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "DeregistrationRequestUeOriginating");
    assert_eq!(
        inbound,
        Inbound::DeregistrationRequestUeOriginating {
            switch_off: true,
            ngksi: 0,
        }
    );
    let suci = onboarding_identity("dcs.example").expect("identity");
    let message = deregistration_request_ue_originating(false, KeySetIdentifier::Native(5), &suci)
        .expect("builds");
    assert_eq!(
        view(&message),
        Inbound::DeregistrationRequestUeOriginating {
            switch_off: false,
            ngksi: 5,
        }
    );
    let accept = view(&deregistration_accept_ue_originating());
    assert_eq!(accept, Inbound::DeregistrationAcceptUeOriginating);
    assert_eq!(accept.name(), "DeregistrationAcceptUeOriginating");
}

#[test]
fn reads_deregistration_ue_terminated() {
    let inbound = view(&deregistration_request_onboarding_terminated());
    assert_eq!(inbound.name(), "DeregistrationRequestUeTerminated");
    assert_eq!(
        inbound,
        Inbound::DeregistrationRequestUeTerminated {
            reregistration_required: false,
            cause: Some(Cause::ONBOARDING_SERVICES_TERMINATED),
            t3346: None,
        }
    );
    let message = deregistration_request_ue_terminated(true, Some(GmmCause::Congestion), Some(60))
        .expect("builds");
    assert_eq!(
        view(&message),
        Inbound::DeregistrationRequestUeTerminated {
            reregistration_required: true,
            cause: Some(Cause::CONGESTION),
            t3346: Some(Duration::from_secs(60)),
        }
    );
    let plain = deregistration_request_ue_terminated(false, None, None).expect("builds");
    assert_eq!(
        view(&plain),
        Inbound::DeregistrationRequestUeTerminated {
            reregistration_required: false,
            cause: None,
            t3346: None,
        }
    );
    let accept = view(&deregistration_accept_ue_terminated());
    assert_eq!(accept, Inbound::DeregistrationAcceptUeTerminated);
    assert_eq!(accept.name(), "DeregistrationAcceptUeTerminated");
}

#[test]
fn reads_service_accept() {
    let inbound = view(&Nas5gsMessage::new_5gmm(NasServiceAccept::new()));
    assert_eq!(inbound, Inbound::ServiceAccept);
    assert_eq!(inbound.name(), "ServiceAccept");
}

#[test]
fn reads_fgmm_status() {
    let inbound = view(&crate::build::fgmm_status(
        GmmCause::MessageTypeNonExistentOrNotImplemented,
    ));
    assert_eq!(inbound, Inbound::Status { cause: Cause(97) });
    assert_eq!(inbound.name(), "FiveGmmStatus");
    assert_eq!(
        view(&crate::build::fgmm_status(
            GmmCause::ProtocolErrorUnspecified
        )),
        Inbound::Status {
            cause: Cause::PROTOCOL_ERROR_UNSPECIFIED
        }
    );
}

// ── Transport ───────────────────────────────────────────────────────────────

#[test]
fn reads_ul_nas_transport_pdu_session_establishment_request() {
    let message =
        ul_nas_transport_pdu_session_establishment_request(&request_params()).expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "UlNasTransport");
    assert_eq!(
        inbound,
        Inbound::UlNasTransport(Transport::PduSessionEstablishmentRequest {
            psi: 1,
            pti: 7,
            dnn: Some("onboarding".into()),
            request_pvs_information: true,
        })
    );
    let plain = PduSessionEstablishmentRequestParams {
        psi: 3,
        pti: 254,
        dnn: None,
        s_nssai: None,
        ssc_mode: None,
        request_pvs_information: false,
        ..request_params()
    };
    assert_eq!(
        view(&ul_nas_transport_pdu_session_establishment_request(&plain).expect("builds")),
        Inbound::UlNasTransport(Transport::PduSessionEstablishmentRequest {
            psi: 3,
            pti: 254,
            dnn: None,
            request_pvs_information: false,
        })
    );
    let dotted = PduSessionEstablishmentRequestParams {
        dnn: Some("iot.nido.example".into()),
        ..request_params()
    };
    let Inbound::UlNasTransport(Transport::PduSessionEstablishmentRequest { dnn, .. }) =
        view(&ul_nas_transport_pdu_session_establishment_request(&dotted).expect("builds"))
    else {
        panic!("not a request")
    };
    assert_eq!(dnn.as_deref(), Some("iot.nido.example"));
}

#[test]
fn reads_dl_nas_transport_pdu_session_establishment_accept() {
    let message =
        dl_nas_transport_pdu_session_establishment_accept(&accept_params()).expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "DlNasTransport");
    assert_eq!(
        inbound,
        Inbound::DlNasTransport {
            payload: Transport::PduSessionEstablishmentAccept {
                psi: 1,
                pti: 7,
                control_plane_only: true,
                pvs_name: Some("pvs.nido.example".into()),
            },
            cause: None,
        }
    );
    let plain = PduSessionEstablishmentAcceptParams {
        psi: 2,
        pti: 0,
        control_plane_only: false,
        pvs_ipv4: None,
        pvs_name: None,
        dnn: None,
        s_nssai: None,
        ..accept_params()
    };
    assert_eq!(
        view(&dl_nas_transport_pdu_session_establishment_accept(&plain).expect("builds")),
        Inbound::DlNasTransport {
            payload: Transport::PduSessionEstablishmentAccept {
                psi: 2,
                pti: 0,
                control_plane_only: false,
                pvs_name: None,
            },
            cause: None,
        }
    );
    // The PVS address alone is no name
    let address_only = PduSessionEstablishmentAcceptParams {
        pvs_name: None,
        ..accept_params()
    };
    let Inbound::DlNasTransport {
        payload: Transport::PduSessionEstablishmentAccept { pvs_name, .. },
        ..
    } = view(&dl_nas_transport_pdu_session_establishment_accept(&address_only).expect("builds"))
    else {
        panic!("not an accept")
    };
    assert_eq!(pvs_name, None);
}

/// A DL NAS TRANSPORT with a PDU SESSION ESTABLISHMENT REJECT and a 5GMM
/// cause (nido has no builder for it).
fn dl_transport_with_reject(cause: Option<GmmCause>) -> Nas5gsMessage {
    use crate::wire::{
        NasDlNasTransport, NasPayloadContainer, NasPayloadContainerType, NasPduSessionIdentity2,
        PayloadContainerKind,
    };
    let reject = NasPduSessionEstablishmentReject::new(NasFGsmCause::from_cause(
        GsmCause::MissingOrUnknownDnn,
    ));
    let reject = Nas5gsMessage::new_5gsm(reject, 4, 9);
    let mut transport = NasDlNasTransport::new(
        NasPayloadContainerType::from_kind(PayloadContainerKind::N1SmInformation),
        NasPayloadContainer::from_n1_sm_message(&reject).expect("container"),
    )
    .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(4));
    if let Some(cause) = cause {
        transport = transport.with_fgmm_cause(NasFGmmCause::from_cause(cause));
    }
    Nas5gsMessage::new_5gmm(transport)
}

#[test]
fn reads_dl_nas_transport_pdu_session_establishment_reject() {
    assert_eq!(
        view(&dl_transport_with_reject(None)),
        Inbound::DlNasTransport {
            payload: Transport::PduSessionEstablishmentReject {
                psi: 4,
                pti: 9,
                cause: 27,
            },
            cause: None,
        }
    );
    let Inbound::DlNasTransport { cause, .. } = view(&dl_transport_with_reject(Some(
        GmmCause::PayloadWasNotForwarded,
    ))) else {
        panic!("not a DL NAS transport")
    };
    assert_eq!(cause, Some(Cause(GmmCause::PayloadWasNotForwarded as u8)));
}

#[test]
fn reads_nas_transport_ciot_data() {
    let inbound = view(&ul_nas_transport_ciot_data(1, b"t=21.5C").expect("builds"));
    assert_eq!(
        inbound,
        Inbound::UlNasTransport(Transport::CiotData {
            psi: 1,
            data: b"t=21.5C".to_vec(),
        })
    );
    let data = vec![0x5a; 1000];
    assert_eq!(
        view(&dl_nas_transport_ciot_data(15, &data).expect("builds")),
        Inbound::DlNasTransport {
            payload: Transport::CiotData { psi: 15, data },
            cause: None,
        }
    );
}

#[test]
fn reads_nas_transport_errors_and_other_payloads() {
    use crate::wire::{
        NasPayloadContainer, NasPayloadContainerType, NasUlNasTransport, PayloadContainerKind,
    };
    let transport = |kind, octets: Vec<u8>| {
        Nas5gsMessage::new_5gmm(NasUlNasTransport::new(
            NasPayloadContainerType::from_kind(kind),
            NasPayloadContainer::new(octets),
        ))
    };
    // N1 SM information that is no 5GSM message
    let error = view_error(&transport(
        PayloadContainerKind::N1SmInformation,
        vec![0x2e, 0x01],
    ));
    assert_eq!(
        (error.message, error.field),
        ("UlNasTransport", "payload container")
    );
    let error = view_error(&transport(
        PayloadContainerKind::N1SmInformation,
        crate::build::registration_complete()
            .encode()
            .expect("encodes"),
    ));
    assert_eq!(error.field, "payload container");
    // CIoT user data without the PDU session ID
    let error = view_error(&transport(PayloadContainerKind::CIoT, b"x".to_vec()));
    assert_eq!(error.field, "PDU session ID");
    // SMS: another container type
    assert_eq!(
        view(&transport(PayloadContainerKind::Sms, vec![0x09, 0x01])),
        Inbound::UlNasTransport(Transport::Other { container_type: 2 })
    );
    // Another 5GSM message in N1 SM information
    let release = Nas5gsMessage::new_5gsm(crate::wire::NasPduSessionReleaseComplete::new(), 1, 3);
    assert_eq!(
        view(&transport(
            PayloadContainerKind::N1SmInformation,
            release.encode().expect("encodes"),
        )),
        Inbound::UlNasTransport(Transport::Other { container_type: 1 })
    );
}

#[test]
fn reads_control_plane_service_request_small_data() {
    let ddx = CiotSmallDataDownlinkDataExpected::NoFurtherUplinkOrDownlink;
    let message =
        crate::build::control_plane_service_request(KeySetIdentifier::Native(2), 5, ddx, b"hello")
            .expect("builds");
    let inbound = view(&message);
    assert_eq!(inbound.name(), "ControlPlaneServiceRequest");
    assert_eq!(
        inbound,
        Inbound::ControlPlaneServiceRequest {
            ngksi: 2,
            psi: 5,
            data: b"hello".to_vec(),
        }
    );
}

#[test]
fn reads_control_plane_service_request_payload_container() {
    let data = vec![0xab; 300];
    let message = control_plane_service_request_payload(KeySetIdentifier::Native(6), 9, &data)
        .expect("builds");
    assert_eq!(
        view(&message),
        Inbound::ControlPlaneServiceRequest {
            ngksi: 6,
            psi: 9,
            data,
        }
    );
    // Without any user data: refused, naming the container
    use crate::wire::{
        ControlPlaneServiceType, NasControlPlaneServiceRequest, NasControlPlaneServiceType,
    };
    let bare = NasControlPlaneServiceRequest::new(
        NasControlPlaneServiceType::from_service_type(
            ControlPlaneServiceType::MobileOriginatingRequest,
        ),
        NasKeySetIdentifier::from_key_set_identifier(KeySetIdentifier::Native(1)).expect("ngksi"),
    );
    let error = view_error(&Nas5gsMessage::new_5gmm(bare));
    assert_eq!(
        (error.message, error.field),
        ("ControlPlaneServiceRequest", "CIoT small data container")
    );
}

// ── Protected messages, other messages ──────────────────────────────────────

#[test]
fn reads_protected_envelope_is_refused() {
    use crate::wire::Nas5gsSecurityHeaderType;
    let plain = crate::build::security_mode_command(&smc_params()).expect("builds");
    let protected = Nas5gsMessage::protect(
        plain,
        Nas5gsSecurityHeaderType::IntegrityProtectedWithNewFiveGNasSecurityContext,
        0x0102_0304,
        0,
    )
    .expect("protects");
    let error = view_error(&protected);
    assert_eq!(error.field, "security header");
    assert_eq!(error.message, "SecurityProtected5gsNasMessage");

    // Ciphered: the decoder keeps the ciphertext opaque
    let mut ciphered = vec![0x7e, 0x02, 0x01, 0x02, 0x03, 0x04, 0x00];
    ciphered.extend_from_slice(&[0xaa; 8]);
    let decoded = crate::decode(&ciphered).expect("decodes");
    let error = Inbound::read(&decoded).expect_err("refused");
    assert_eq!(error.field, "security header");
    if let Nas5gsMessage::SecurityProtected(_, inner) = &decoded {
        assert_eq!(
            Inbound::read(inner).expect_err("refused").field,
            "security header"
        );
    }

    // A 5GMM header that says protected, around a plain body
    let Nas5gsMessage::Gmm(mut header, body) = crate::build::registration_complete() else {
        panic!("not 5GMM")
    };
    header.security_header_type = Nas5gsSecurityHeaderType::IntegrityProtected;
    let error = Inbound::read(&Nas5gsMessage::Gmm(header, body)).expect_err("refused");
    assert_eq!(
        (error.message, error.field),
        ("RegistrationComplete", "security header")
    );
}

#[test]
fn reads_other_messages() {
    let inbound = view(&Nas5gsMessage::new_5gmm(
        NasConfigurationUpdateComplete::new(),
    ));
    assert_eq!(
        inbound,
        Inbound::Other {
            message_type: 0x55,
            name: "ConfigurationUpdateComplete",
        }
    );
    assert_eq!(inbound.name(), "ConfigurationUpdateComplete");
    // A 5GSM message outside a NAS transport
    let request = pdu_session_establishment_request(&request_params()).expect("builds");
    assert_eq!(
        view(&request),
        Inbound::Other {
            message_type: 0xc1,
            name: "PduSessionEstablishmentRequest",
        }
    );
}

// ── Never a panic ───────────────────────────────────────────────────────────

/// The octets of a message of every kind the view reads.
fn corpus() -> Vec<Vec<u8>> {
    let ddx = CiotSmallDataDownlinkDataExpected::NoInformationAvailable;
    let messages = [
        registration_request_snpn_onboarding("dcs.example", true).expect("builds"),
        registration_request_initial(&suci_profile_a(), false).expect("builds"),
        registration_accept(&RegistrationAcceptParams {
            guti: Some(guti5g().to_wire().expect("guti")),
            tai_list: None,
            allowed_nssai: vec![],
            t3512_seconds: None,
            cp_ciot: true,
        })
        .expect("builds"),
        registration_reject(GmmCause::Congestion, Some(600)).expect("builds"),
        crate::build::authentication_request_5g_aka(
            KeySetIdentifier::Native(1),
            &[1; 16],
            &[2; 16],
        )
        .expect("builds"),
        authentication_failure_synch_failure(&[3; 14]),
        crate::build::security_mode_command(&smc_params()).expect("builds"),
        deregistration_request_ue_terminated(true, Some(GmmCause::Congestion), Some(60))
            .expect("builds"),
        ul_nas_transport_pdu_session_establishment_request(&request_params()).expect("builds"),
        dl_nas_transport_pdu_session_establishment_accept(&accept_params()).expect("builds"),
        dl_transport_with_reject(Some(GmmCause::Congestion)),
        crate::build::control_plane_service_request(KeySetIdentifier::Native(1), 1, ddx, b"x")
            .expect("builds"),
    ];
    messages
        .iter()
        .map(|m| m.encode().expect("encodes"))
        .collect()
}

proptest! {
    /// Mutated octets of every kind of message: whatever decodes, the view
    /// reads or refuses, and never panics.
    #[test]
    fn read_never_panics(
        which in 0usize..12,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let corpus = corpus();
        let mut octets = corpus[which % corpus.len()].clone();
        for (at, value) in flips {
            let at = at % octets.len();
            octets[at] = value;
        }
        let keep = octets.len() - cut % 3;
        octets.truncate(keep);
        if let Ok(message) = Nas5gsMessage::decode(&octets) {
            let _ = Inbound::read(&message);
        }
        if let Ok((message, _)) = Nas5gsMessage::decode_lenient(&octets) {
            let _ = Inbound::read(&message);
        }
    }
}
