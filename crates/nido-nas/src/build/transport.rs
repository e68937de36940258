//! Transport of session management messages and of CIoT user data
//! (TS 24.501 §8.2.10, §8.2.11, §8.2.30, §8.3.1, §8.3.2).

use std::net::Ipv4Addr;

use oxirush_nas::nas_5gs::{
    CiotSmallDataContainerContents, CiotSmallDataDownlinkDataExpected, ControlPlaneServiceType,
    GsmCause, KeySetIdentifier, MaxDataRate, Nas5gsMessage, NasCiotSmallDataContainer,
    NasControlPlaneOnlyIndication, NasControlPlaneServiceRequest, NasControlPlaneServiceType,
    NasDlNasTransport, NasDnn, NasExtendedProtocolConfigurationOptions, NasFGsmCause,
    NasIntegrityProtectionMaximumDataRate, NasPayloadContainer, NasPayloadContainerType,
    NasPduSessionEstablishmentAccept, NasPduSessionEstablishmentReject,
    NasPduSessionEstablishmentRequest, NasPduSessionIdentity2, NasPduSessionType, NasQosRules,
    NasRequestType, NasSessionAmbr, NasSscMode, NasUlNasTransport, PayloadContainerKind, Pco,
    PcoDirection, PcoEntry, PduSessionTypeValue, QosPacketFilter, QosPacketFilterComponent,
    QosPacketFilterDirection, QosRule, QosRuleOpCode, RequestTypeValue, SscModeValue,
};

use super::{BuildError, Snssai, check_psi, ngksi_ie};

/// The longest user data a CIoT small data container carries: its value
/// has 255 octets at most, one of which is the data type, DDX and PDU
/// session identity octet (TS 24.501 §9.11.3.48).
pub const MAX_SMALL_DATA_LEN: usize = 254;

/// The longest CIoT user data a payload container carries (TS 24.501
/// §9.11.3.39: 65535 octets of contents).
pub const MAX_CIOT_USER_DATA_LEN: usize = 65_535;

/// ePCO container identifiers of TS 24.008 Table 10.5.154 for the PVS
/// (Rel-17, SNPN onboarding; checked against pycrate 0.8.1 and oxirush-nas).
pub mod pco_container {
    /// MS to network: PVS information request (no contents).
    pub const PVS_INFORMATION_REQUEST: u16 = 0x0036;
    /// Network to MS: PVS IPv4 address (4 octets).
    pub const PVS_IPV4_ADDRESS: u16 = 0x0036;
    /// Network to MS: PVS name (an FQDN).
    pub const PVS_NAME: u16 = 0x0038;
}

/// The payload container type IE of CIoT user data (TS 24.501 §9.11.3.40,
/// value 8 "CIoT user data container").
fn ciot_type() -> NasPayloadContainerType {
    NasPayloadContainerType::from_kind(PayloadContainerKind::CIoT)
}

/// The payload container type IE of a 5GSM message (value 1 "N1 SM
/// information").
fn n1_sm_type() -> NasPayloadContainerType {
    NasPayloadContainerType::from_kind(PayloadContainerKind::N1SmInformation)
}

/// A payload container of CIoT user data (§9.11.3.39): the data as they are.
fn ciot_payload(data: &[u8]) -> Result<NasPayloadContainer, BuildError> {
    if data.is_empty() || data.len() > MAX_CIOT_USER_DATA_LEN {
        return Err(BuildError::invalid(
            "ciot-user-data",
            format!("1 to 65535 octets, got {}", data.len()),
        ));
    }
    Ok(NasPayloadContainer::from_ciot_user_data_container(data))
}

/// UL NAS TRANSPORT (TS 24.501 §8.2.10) with CIoT user data: payload
/// container type 8 "CIoT user data container" (§9.11.3.40), the payload
/// container (§9.11.3.39) with `data`, and the PDU session ID (§9.11.3.41)
/// of the control-plane-only PDU session the data belong to.
///
/// # Errors
///
/// `psi` is not 1 to 15, or `data` is empty or longer than 65535 octets.
pub fn ul_nas_transport_ciot_data(psi: u8, data: &[u8]) -> Result<Nas5gsMessage, BuildError> {
    let transport = NasUlNasTransport::new(ciot_type(), ciot_payload(data)?)
        .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(check_psi(psi)?));
    Ok(Nas5gsMessage::new_5gmm(transport))
}

/// DL NAS TRANSPORT (TS 24.501 §8.2.11) with CIoT user data: payload
/// container type 8, the payload container with `data` and the PDU session
/// ID.
///
/// # Errors
///
/// `psi` is not 1 to 15, or `data` is empty or longer than 65535 octets.
pub fn dl_nas_transport_ciot_data(psi: u8, data: &[u8]) -> Result<Nas5gsMessage, BuildError> {
    let transport = NasDlNasTransport::new(ciot_type(), ciot_payload(data)?)
        .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(check_psi(psi)?));
    Ok(Nas5gsMessage::new_5gmm(transport))
}

/// A procedure transaction identity (TS 24.007 §11.2.3.1a): 255 is reserved.
fn check_pti(pti: u8) -> Result<u8, BuildError> {
    if pti == 255 {
        return Err(BuildError::invalid("pti", "255 is reserved"));
    }
    Ok(pti)
}

/// The content of a PDU SESSION ESTABLISHMENT REQUEST and of the UL NAS
/// TRANSPORT that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduSessionEstablishmentRequestParams {
    /// PDU session identity, 1 to 15 (1 to 7 if the session carries CIoT
    /// small data in CONTROL PLANE SERVICE REQUEST).
    pub psi: u8,
    /// Procedure transaction identity the UE allocated, 1 to 254.
    pub pti: u8,
    /// Requested PDU session type; nido's control-plane-only sessions are
    /// `Unstructured` (non-IP).
    pub session_type: PduSessionTypeValue,
    /// Requested SSC mode, if any.
    pub ssc_mode: Option<SscModeValue>,
    /// DNN, carried in the UL NAS TRANSPORT (§9.11.2.1B), if any.
    pub dnn: Option<String>,
    /// S-NSSAI, carried in the UL NAS TRANSPORT, if any.
    pub s_nssai: Option<Snssai>,
    /// Ask for the PVS address or name in the ePCO (container 0x0036), as a
    /// UE does for the onboarding PDU session.
    pub request_pvs_information: bool,
}

/// PDU SESSION ESTABLISHMENT REQUEST (TS 24.501 §8.3.1), a 5GSM message
/// of `params.psi` and `params.pti`: the integrity protection maximum data
/// rate (§9.11.4.7, 64 kbps both ways: nido's sessions carry no user plane),
/// the PDU session type (§9.11.4.11), the SSC mode (§9.11.4.16) if set, and
/// an ePCO (§9.11.4.6) with the PVS information request if asked.
///
/// # Errors
///
/// `psi` is not 1 to 15, or `pti` is not 1 to 254.
pub fn pdu_session_establishment_request(
    params: &PduSessionEstablishmentRequestParams,
) -> Result<Nas5gsMessage, BuildError> {
    let psi = check_psi(params.psi)?;
    let pti = check_pti(params.pti)?;
    if pti == 0 {
        return Err(BuildError::invalid(
            "pti",
            "a UE requested procedure has a PTI of 1 to 254",
        ));
    }
    let rate =
        NasIntegrityProtectionMaximumDataRate::from_rates(MaxDataRate::Kbps64, MaxDataRate::Kbps64);
    let mut request = NasPduSessionEstablishmentRequest::new(rate)
        .with_pdu_session_type(NasPduSessionType::from_session_type(params.session_type));
    if let Some(mode) = params.ssc_mode {
        request = request.with_ssc_mode(NasSscMode::from_mode(mode));
    }
    if params.request_pvs_information {
        let pco = Pco::new(
            0,
            vec![PcoEntry {
                identifier: pco_container::PVS_INFORMATION_REQUEST,
                contents: Vec::new(),
            }],
        );
        request = request.with_extended_protocol_configuration_options(
            NasExtendedProtocolConfigurationOptions::from_pco(&pco, PcoDirection::Uplink)?,
        );
    }
    Ok(Nas5gsMessage::new_5gsm(request, psi, pti))
}

/// UL NAS TRANSPORT (TS 24.501 §8.2.10) carrying a PDU SESSION
/// ESTABLISHMENT REQUEST ([`pdu_session_establishment_request`]): payload
/// container type 1 "N1 SM information", the PDU session ID, request type
/// "initial request" (§9.11.3.47), and the S-NSSAI and DNN of `params` when
/// set.
///
/// # Errors
///
/// As [`pdu_session_establishment_request`], or a DNN that is no valid APN
/// label sequence (§9.11.2.1B).
pub fn ul_nas_transport_pdu_session_establishment_request(
    params: &PduSessionEstablishmentRequestParams,
) -> Result<Nas5gsMessage, BuildError> {
    let request = pdu_session_establishment_request(params)?;
    let mut transport = NasUlNasTransport::new(
        n1_sm_type(),
        NasPayloadContainer::from_n1_sm_message(&request)?,
    )
    .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(params.psi))
    .with_request_type(NasRequestType::from_request_type(
        RequestTypeValue::InitialRequest,
    ));
    if let Some(s_nssai) = params.s_nssai {
        transport = transport.with_s_nssai(s_nssai.to_ie());
    }
    if let Some(dnn) = &params.dnn {
        transport = transport.with_dnn(NasDnn::from_string(dnn)?);
    }
    Ok(Nas5gsMessage::new_5gmm(transport))
}

/// The content of a PDU SESSION ESTABLISHMENT ACCEPT and of the DL NAS
/// TRANSPORT that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduSessionEstablishmentAcceptParams {
    /// PDU session identity of the request, 1 to 15.
    pub psi: u8,
    /// Procedure transaction identity of the request.
    pub pti: u8,
    /// Selected PDU session type: `Unstructured` or `Ethernet` (an IP type
    /// needs a PDU address, which this builder does not set).
    pub session_type: PduSessionTypeValue,
    /// Selected SSC mode.
    pub ssc_mode: SscModeValue,
    /// QoS flow identifier of the default QoS rule, 1 to 63.
    pub qfi: u8,
    /// Session AMBR downlink, kbps.
    pub session_ambr_dl_kbps: u64,
    /// Session AMBR uplink, kbps.
    pub session_ambr_ul_kbps: u64,
    /// DNN of the session (§9.11.2.1B), if sent.
    pub dnn: Option<String>,
    /// S-NSSAI of the session, if sent.
    pub s_nssai: Option<Snssai>,
    /// Control plane only indication (§9.11.4.23): the session is for
    /// control plane CIoT 5GS optimization only.
    pub control_plane_only: bool,
    /// PVS IPv4 address for the onboarding session (ePCO 0x0036), if any.
    pub pvs_ipv4: Option<Ipv4Addr>,
    /// PVS name (an FQDN, ePCO 0x0038, encoded as DNS labels), if any.
    pub pvs_name: Option<String>,
}

/// The default QoS rule of a session: rule 1, create, DQR set, one
/// bidirectional match-all packet filter, precedence 255, `qfi`
/// (TS 24.501 §9.11.4.13).
fn default_qos_rules(qfi: u8) -> Result<NasQosRules, BuildError> {
    if !(1..=63).contains(&qfi) {
        return Err(BuildError::invalid("qfi", format!("1 to 63, got {qfi}")));
    }
    let filter = QosPacketFilter::Match {
        direction: QosPacketFilterDirection::Bidirectional,
        identifier: 1,
        components: vec![QosPacketFilterComponent::MatchAll],
    };
    let rule = QosRule::new(1, QosRuleOpCode::Create)
        .with_default_rule(true)
        .with_packet_filters(vec![filter])
        .with_precedence(255)
        .with_qfi(qfi);
    Ok(NasQosRules::from_rules(&[rule])?)
}

/// An FQDN as DNS labels (RFC 1035 §3.1 without the root label), as
/// TS 23.003 §19.4.2 writes names in NAS.
fn fqdn_labels(name: &str) -> Result<Vec<u8>, BuildError> {
    let mut octets = Vec::with_capacity(name.len() + 1);
    for label in name.split('.') {
        let length = u8::try_from(label.len())
            .ok()
            .filter(|length| (1..=63).contains(length))
            .ok_or_else(|| BuildError::invalid("pvs-name", "labels of 1 to 63 octets"))?;
        octets.push(length);
        octets.extend_from_slice(label.as_bytes());
    }
    if octets.len() > 255 {
        return Err(BuildError::invalid("pvs-name", "255 octets at most"));
    }
    Ok(octets)
}

/// PDU SESSION ESTABLISHMENT ACCEPT (TS 24.501 §8.3.2), a 5GSM message of
/// `params.psi` and `params.pti`: the selected PDU session type and SSC mode,
/// the authorized QoS rules (§9.11.4.13, one default rule of `params.qfi`),
/// the session AMBR (§9.11.4.14), then the S-NSSAI, DNN, control plane only
/// indication and ePCO with the PVS address/name that `params` set.
///
/// # Errors
///
/// `psi` is not 1 to 15, `pti` is 255, the session type is an IP type, the
/// QFI is not 1 to 63, an AMBR the IE cannot encode, or an invalid DNN or PVS
/// name.
pub fn pdu_session_establishment_accept(
    params: &PduSessionEstablishmentAcceptParams,
) -> Result<Nas5gsMessage, BuildError> {
    let psi = check_psi(params.psi)?;
    let pti = check_pti(params.pti)?;
    if matches!(
        params.session_type,
        PduSessionTypeValue::Ipv4 | PduSessionTypeValue::Ipv6 | PduSessionTypeValue::Ipv4v6
    ) {
        return Err(BuildError::invalid(
            "session-type",
            "an IP PDU session needs a PDU address, which this builder does not set",
        ));
    }
    let mut accept = NasPduSessionEstablishmentAccept::new(
        NasPduSessionType::from_session_type(params.session_type),
        NasSscMode::from_mode(params.ssc_mode),
        default_qos_rules(params.qfi)?,
        NasSessionAmbr::from_kbps(params.session_ambr_dl_kbps, params.session_ambr_ul_kbps)?,
    );
    if let Some(s_nssai) = params.s_nssai {
        accept = accept.with_s_nssai(s_nssai.to_ie());
    }
    if let Some(dnn) = &params.dnn {
        accept = accept.with_dnn(NasDnn::from_string(dnn)?);
    }
    if params.control_plane_only {
        accept =
            accept.with_control_plane_only_indication(
                NasControlPlaneOnlyIndication::control_plane_only(),
            );
    }
    let mut entries = Vec::new();
    if let Some(address) = params.pvs_ipv4 {
        entries.push(PcoEntry {
            identifier: pco_container::PVS_IPV4_ADDRESS,
            contents: address.octets().to_vec(),
        });
    }
    if let Some(name) = &params.pvs_name {
        entries.push(PcoEntry {
            identifier: pco_container::PVS_NAME,
            contents: fqdn_labels(name)?,
        });
    }
    if !entries.is_empty() {
        let pco = Pco::new(0, entries);
        accept = accept.with_extended_protocol_configuration_options(
            NasExtendedProtocolConfigurationOptions::from_pco(&pco, PcoDirection::Downlink)?,
        );
    }
    Ok(Nas5gsMessage::new_5gsm(accept, psi, pti))
}

/// DL NAS TRANSPORT (TS 24.501 §8.2.11) carrying a PDU SESSION
/// ESTABLISHMENT ACCEPT ([`pdu_session_establishment_accept`]): payload
/// container type 1 "N1 SM information" and the PDU session ID.
///
/// # Errors
///
/// As [`pdu_session_establishment_accept`].
pub fn dl_nas_transport_pdu_session_establishment_accept(
    params: &PduSessionEstablishmentAcceptParams,
) -> Result<Nas5gsMessage, BuildError> {
    let accept = pdu_session_establishment_accept(params)?;
    let transport = NasDlNasTransport::new(
        n1_sm_type(),
        NasPayloadContainer::from_n1_sm_message(&accept)?,
    )
    .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(params.psi));
    Ok(Nas5gsMessage::new_5gmm(transport))
}

/// CONTROL PLANE SERVICE REQUEST (TS 24.501 §8.2.30, message type 0x4F) of a
/// UE in 5GMM-IDLE with CIoT user data: control plane service type "mobile
/// originating request" (§9.11.3.18D), `ngksi`, and the CIoT small data
/// container (§9.11.3.48) with data type "control plane user data", the
/// downlink data expected `ddx`, the PDU session identity `psi` and `data`.
/// The caller sends it integrity protected and partially ciphered
/// (§4.4.6: the container is a non-cleartext IE).
///
/// # Errors
///
/// `psi` is not 1 to 7 (the container has three bits for it), `data` is
/// empty or longer than [`MAX_SMALL_DATA_LEN`] (use
/// [`control_plane_service_request_payload`]), `ddx` is the reserved
/// value, or the ngKSI is above 6.
pub fn control_plane_service_request(
    ngksi: KeySetIdentifier,
    psi: u8,
    ddx: CiotSmallDataDownlinkDataExpected,
    data: &[u8],
) -> Result<Nas5gsMessage, BuildError> {
    if !(1..=7).contains(&psi) {
        return Err(BuildError::invalid(
            "pdu-session-identity",
            format!("1 to 7 in a CIoT small data container, got {psi}"),
        ));
    }
    if data.is_empty() || data.len() > MAX_SMALL_DATA_LEN {
        return Err(BuildError::invalid(
            "ciot-small-data",
            format!("1 to 254 octets, got {}", data.len()),
        ));
    }
    let contents = CiotSmallDataContainerContents::ControlPlaneUserData {
        downlink_data_expected: ddx,
        pdu_session_id: psi,
        data: data.to_vec(),
    };
    let request = NasControlPlaneServiceRequest::new(cp_mo_service_type(), ngksi_ie(ngksi)?)
        .with_ciot_small_data_container(NasCiotSmallDataContainer::from_parsed(&contents)?);
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// CONTROL PLANE SERVICE REQUEST (TS 24.501 §8.2.30) with CIoT user data too
/// long for the small data container: control plane service type "mobile
/// originating request", `ngksi`, payload container type 8 "CIoT user data
/// container", the payload container with `data` and the PDU session ID
/// (§5.6.1.2.2).
///
/// # Errors
///
/// `psi` is not 1 to 15, `data` is empty or longer than 65535 octets, or
/// the ngKSI is above 6.
pub fn control_plane_service_request_payload(
    ngksi: KeySetIdentifier,
    psi: u8,
    data: &[u8],
) -> Result<Nas5gsMessage, BuildError> {
    let request = NasControlPlaneServiceRequest::new(cp_mo_service_type(), ngksi_ie(ngksi)?)
        .with_payload_container_type(ciot_type())
        .with_payload_container(ciot_payload(data)?)
        .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(check_psi(psi)?));
    Ok(Nas5gsMessage::new_5gmm(request))
}

fn cp_mo_service_type() -> NasControlPlaneServiceType {
    NasControlPlaneServiceType::from_service_type(ControlPlaneServiceType::MobileOriginatingRequest)
}

/// DL NAS TRANSPORT (TS 24.501 §8.2.11) carrying a PDU SESSION
/// ESTABLISHMENT REJECT (§8.3.3) of PDU session `psi` and transaction `pti`
/// with 5GSM `cause` (§9.11.4.2), e.g. #27 "missing or unknown DNN" for a
/// data network an onboarding UE may not reach.
///
/// # Errors
///
/// `psi` is not 1 to 15 or `pti` is 255.
pub fn dl_nas_transport_pdu_session_establishment_reject(
    psi: u8,
    pti: u8,
    cause: GsmCause,
) -> Result<Nas5gsMessage, BuildError> {
    let psi = check_psi(psi)?;
    let pti = check_pti(pti)?;
    let reject = Nas5gsMessage::new_5gsm(
        NasPduSessionEstablishmentReject::new(NasFGsmCause::from_cause(cause)),
        psi,
        pti,
    );
    let transport = NasDlNasTransport::new(
        n1_sm_type(),
        NasPayloadContainer::from_n1_sm_message(&reject)?,
    )
    .with_pdu_session_id(NasPduSessionIdentity2::from_pdu_session_id(psi));
    Ok(Nas5gsMessage::new_5gmm(transport))
}
