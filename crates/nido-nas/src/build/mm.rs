//! Registration, de-registration and 5GMM STATUS (TS 24.501 §8.2.6 to
//! §8.2.15, §8.2.29).

use oxirush_nas::identity::{ImsiSuci, NaiSuci, ProtectionScheme, RoutingIndicator, SupiType};
use oxirush_nas::nas_5gs::{
    GmmCause, Guti, KeySetIdentifier, MobileIdentityType, Nas5gsMessage, NasDeRegistrationType,
    NasDeregistrationAcceptUeOriginating, NasDeregistrationAcceptUeTerminated,
    NasDeregistrationRequestUeOriginating, NasDeregistrationRequestUeTerminated, NasFGmmCapability,
    NasFGmmCause, NasFGmmStatus, NasFGsMobileIdentity, NasFGsNetworkFeatureSupport,
    NasFGsRegistrationResult, NasFGsRegistrationType, NasFGsTrackingAreaIdentityList,
    NasGprsTimer2, NasNssai, NasRegistrationAccept, NasRegistrationComplete, NasRegistrationReject,
    NasRegistrationRequest, NasServiceAccept, NasT3512Value, Plmn, RegistrationResult,
    RegistrationType, Suci,
};

use super::{BuildError, Snssai, eap_ie, ngksi_ie, ue_security_capability};

/// The username of the anonymous onboarding SUCI (TS 23.003 §28.7.3,
/// TS 33.501 I.9.2.2).
pub const ANONYMOUS_USERNAME: &str = "anonymous";

/// The NAI of the anonymous SUCI a UE onboards with, for the realm of the
/// DCS: `type1.rid0.schid0.useridanonymous@<realm>` (TS 23.003 §28.7.3: SUPI
/// type 1 network specific identifier, routing indicator 0, null scheme,
/// username "anonymous").
pub fn anonymous_onboarding_nai(realm: &str) -> String {
    format!("type1.rid0.schid0.userid{ANONYMOUS_USERNAME}@{realm}")
}

/// The 5GS mobile identity (TS 24.501 §9.11.3.4, figure 9.11.3.4.3b) of the
/// anonymous onboarding SUCI in NAI form for `realm`: SUPI format 001
/// (network specific identifier), type of identity SUCI, then the NAI of
/// [`anonymous_onboarding_nai`].
///
/// # Errors
///
/// `realm` is not the realm of a NAI (RFC 7542).
pub fn onboarding_identity(realm: &str) -> Result<NasFGsMobileIdentity, BuildError> {
    let suci = NaiSuci::null(
        SupiType::NetworkSpecific,
        RoutingIndicator::default(),
        ANONYMOUS_USERNAME,
        realm,
    )?;
    Ok(NasFGsMobileIdentity::from_suci(&Suci::Nai(suci))?)
}

/// The parts of the SUCI of an IMSI (TS 23.003 §2.2B), as the UE computed
/// them: the caller runs the protection scheme (nido-sec) and passes its
/// output here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImsiSuciParts {
    /// Mobile country code: three digits.
    pub mcc: String,
    /// Mobile network code: two or three digits.
    pub mnc: String,
    /// Routing indicator: one to four digits ("0" when none is provisioned).
    pub routing_indicator: String,
    /// Protection scheme identifier: 0 null scheme, 1 ECIES profile A,
    /// 2 ECIES profile B, 12 to 15 schemes of the home operator.
    pub protection_scheme_id: u8,
    /// Home network public key identifier: 0 with the null scheme, 1 to 254
    /// otherwise.
    pub home_network_public_key_id: u8,
    /// Scheme output. For profile A and B: the ephemeral public key (32
    /// octets for A, 33 compressed for B), the ciphertext of the MSIN and the
    /// 8-octet MAC tag, concatenated (TS 33.501 C.3.4). For the null scheme:
    /// the MSIN as ASCII digits.
    pub scheme_output: Vec<u8>,
}

/// The 5GS mobile identity (TS 24.501 §9.11.3.4, figure 9.11.3.4.3) of the
/// SUCI of an IMSI: SUPI format IMSI, PLMN, routing indicator, protection
/// scheme, home network public key identifier, scheme output.
///
/// # Errors
///
/// A part is refused: MCC/MNC/routing indicator not digits of their lengths,
/// a reserved scheme, a key identifier that does not fit the scheme, a scheme
/// output that has not the length of its profile, or a null-scheme MSIN that
/// is not digits.
pub fn imsi_suci_identity(parts: &ImsiSuciParts) -> Result<NasFGsMobileIdentity, BuildError> {
    let plmn = Plmn::new(&parts.mcc, &parts.mnc)?;
    let routing = RoutingIndicator::new(&parts.routing_indicator)?;
    let scheme = ProtectionScheme::new(parts.protection_scheme_id)?;
    let suci = if scheme.is_null() {
        if parts.home_network_public_key_id != 0 {
            return Err(BuildError::invalid(
                "home-network-public-key-id",
                "0 with the null scheme (TS 23.003 §2.2B)",
            ));
        }
        let msin = core::str::from_utf8(&parts.scheme_output)
            .map_err(|_| BuildError::invalid("scheme-output", "the MSIN in ASCII digits"))?;
        ImsiSuci::null(plmn, routing, msin)?
    } else {
        ImsiSuci::concealed(
            plmn,
            routing,
            scheme,
            parts.home_network_public_key_id,
            parts.scheme_output.clone(),
        )?
    };
    Ok(NasFGsMobileIdentity::from_suci(&Suci::Imsi(suci))?)
}

/// The 5GMM capability nido's UE sends (TS 24.501 §9.11.3.1): one octet with
/// 5G-CP CIoT (octet 3 bit 5) set and every other capability clear.
pub fn ue_fgmm_capability() -> NasFGmmCapability {
    NasFGmmCapability::from_flags(false, false, false, true, false, false, false, false)
}

/// REGISTRATION REQUEST (TS 24.501 §8.2.6) for SNPN onboarding, phase A of
/// nido's flow: 5GS registration type 101 "SNPN onboarding registration"
/// (§9.11.3.7), follow-on request as given, ngKSI 111 "no key is available"
/// (§9.11.3.32), the anonymous onboarding SUCI of `realm`
/// ([`onboarding_identity`]), the 5GMM capability with 5G-CP CIoT
/// ([`ue_fgmm_capability`]) and the UE security capability
/// ([`super::ue_security_capability`]).
///
/// # Errors
///
/// `realm` is not the realm of a NAI.
pub fn registration_request_snpn_onboarding(
    realm: &str,
    follow_on_request: bool,
) -> Result<Nas5gsMessage, BuildError> {
    registration_request(
        RegistrationType::SnpnOnboardingRegistration,
        follow_on_request,
        onboarding_identity(realm)?,
    )
}

/// REGISTRATION REQUEST (TS 24.501 §8.2.6) for initial registration with a
/// provisioned subscription, phase C of nido's flow: 5GS registration type
/// 001 "initial registration" (§9.11.3.7), follow-on request as given, ngKSI
/// "no key is available", the SUCI of an IMSI ([`imsi_suci_identity`]), the
/// 5GMM capability with 5G-CP CIoT and the UE security capability.
///
/// # Errors
///
/// A part of the SUCI is refused, as by [`imsi_suci_identity`].
pub fn registration_request_initial(
    suci: &ImsiSuciParts,
    follow_on_request: bool,
) -> Result<Nas5gsMessage, BuildError> {
    registration_request(
        RegistrationType::InitialRegistration,
        follow_on_request,
        imsi_suci_identity(suci)?,
    )
}

/// The REGISTRATION REQUEST of `kind` with nido's UE capabilities.
fn registration_request(
    kind: RegistrationType,
    follow_on_request: bool,
    identity: NasFGsMobileIdentity,
) -> Result<Nas5gsMessage, BuildError> {
    let kind = NasFGsRegistrationType::from_registration_type(kind)
        .with_follow_on_request(follow_on_request);
    let request = NasRegistrationRequest::new(kind, ngksi_ie(KeySetIdentifier::NoKey)?, identity)
        .with_fgmm_capability(ue_fgmm_capability())
        .with_ue_security_capability(ue_security_capability());
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// A tracking area identity list of one PLMN and its tracking area codes
/// (TS 24.501 §9.11.3.9, type of list 00: non-consecutive TACs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaiList {
    /// The PLMN (for an SNPN: the PLMN ID part of the SNPN identity).
    pub plmn: Plmn,
    /// The tracking area codes: 1 to 16 of 24 bits each.
    pub tacs: Vec<u32>,
}

/// The content of a REGISTRATION ACCEPT nido's AMF sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationAcceptParams {
    /// The 5G-GUTI assigned to the UE (§9.11.3.4), if one is assigned.
    pub guti: Option<Guti>,
    /// The registration area (§9.11.3.9), if sent.
    pub tai_list: Option<TaiList>,
    /// The allowed NSSAI (§9.11.3.37); empty leaves the IE out.
    pub allowed_nssai: Vec<Snssai>,
    /// T3512, the periodic registration update timer, in seconds
    /// (§9.11.2.5, GPRS timer 3 units), if sent.
    pub t3512_seconds: Option<u64>,
    /// Whether the 5GS network feature support IE (§9.11.3.5) says 5G-CP
    /// CIoT is supported (octet 4 bit 1); `false` leaves the IE out.
    pub cp_ciot: bool,
}

/// REGISTRATION ACCEPT (TS 24.501 §8.2.7): 5GS registration result "3GPP
/// access" (§9.11.3.6), then the optional IEs of `params` that are set.
///
/// # Errors
///
/// The TAI list has no TAC, more than 16, or a TAC above 24 bits; an S-NSSAI
/// list longer than the IE carries; a T3512 value GPRS timer 3 cannot encode
/// exactly.
pub fn registration_accept(params: &RegistrationAcceptParams) -> Result<Nas5gsMessage, BuildError> {
    let result = NasFGsRegistrationResult::from_result(RegistrationResult::ThreeGppAccess);
    let mut accept = NasRegistrationAccept::new(result);
    if let Some(guti) = params.guti {
        accept = accept.with_fg_guti(NasFGsMobileIdentity::from_guti(guti));
    }
    if let Some(list) = &params.tai_list {
        if list.tacs.is_empty() || list.tacs.len() > 16 {
            return Err(BuildError::invalid(
                "tai-list",
                format!("1 to 16 TACs, got {}", list.tacs.len()),
            ));
        }
        if let Some(tac) = list.tacs.iter().find(|tac| **tac > 0x00ff_ffff) {
            // oxirush-nas 0.5.0 keeps the low 24 bits of a larger TAC: refuse it here.
            return Err(BuildError::invalid(
                "tai-list",
                format!("a TAC has 24 bits, got {tac:#x}"),
            ));
        }
        accept = accept.with_tai_list(NasFGsTrackingAreaIdentityList::from_plmn_tacs(
            &list.plmn, &list.tacs,
        )?);
    }
    if !params.allowed_nssai.is_empty() {
        let snssais: Vec<_> = params.allowed_nssai.iter().map(|s| s.to_ie()).collect();
        accept = accept.with_allowed_nssai(NasNssai::from_snssais(&snssais)?);
    }
    if params.cp_ciot {
        accept = accept.with_fgs_network_feature_support(
            NasFGsNetworkFeatureSupport::default().with_cp_ciot(true),
        );
    }
    if let Some(seconds) = params.t3512_seconds {
        let t3512 = NasT3512Value::from_seconds(seconds)?;
        if t3512.to_seconds() != Some(seconds) {
            return Err(BuildError::invalid(
                "t3512",
                format!("{seconds} s is no exact GPRS timer 3 value"),
            ));
        }
        accept = accept.with_t3512_value(t3512);
    }
    Ok(Nas5gsMessage::new_5gmm(accept))
}

/// REGISTRATION COMPLETE (TS 24.501 §8.2.8), without SOR transparent
/// container.
pub fn registration_complete() -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasRegistrationComplete::new())
}

/// The causes nido's AMF rejects a registration with (TS 24.501 §9.11.3.2).
pub const REGISTRATION_REJECT_CAUSES: [GmmCause; 8] = [
    GmmCause::IllegalUe,
    GmmCause::FiveGsServicesNotAllowed,
    GmmCause::UeIdentityCannotBeDerivedByTheNetwork,
    GmmCause::Congestion,
    GmmCause::TemporarilyNotAuthorizedForThisSnpn,
    GmmCause::PermanentlyNotAuthorizedForThisSnpn,
    GmmCause::OnboardingServicesTerminated,
    GmmCause::ProtocolErrorUnspecified,
];

/// The longest duration GPRS timer 2 encodes (TS 24.008 §10.5.7.4): the
/// timer value is 5 bits (at most 31) and the largest unit is the
/// decihour (6 minutes), so 31 × 6 min = 186 min = 11 160 s. (The other
/// units: 2 s, up to 62 s; 1 min, up to 31 min.)
pub const GPRS_TIMER2_MAX_SECONDS: u64 = 31 * 6 * 60;

/// A GPRS timer 2 value (TS 24.008 §10.5.7.4) of exactly `seconds`: at
/// most [`GPRS_TIMER2_MAX_SECONDS`], and a multiple of a unit that
/// reaches it (2 s steps to 62 s, whole minutes to 31 min, 6-minute steps
/// to 186 min).
fn gprs_timer2(field: &'static str, seconds: u64) -> Result<NasGprsTimer2, BuildError> {
    if seconds > GPRS_TIMER2_MAX_SECONDS {
        return Err(BuildError::invalid(
            field,
            format!(
                "{seconds} s is above GPRS timer 2's maximum of \
                 {GPRS_TIMER2_MAX_SECONDS} s (31 x 6 min, TS 24.008 §10.5.7.4)"
            ),
        ));
    }
    let timer = NasGprsTimer2::from_seconds(seconds)?;
    if timer.to_seconds() != Some(seconds) {
        return Err(BuildError::invalid(
            field,
            format!("{seconds} s is no exact GPRS timer 2 value"),
        ));
    }
    Ok(timer)
}

/// REGISTRATION REJECT (TS 24.501 §8.2.9) with the 5GMM `cause` (§9.11.3.2)
/// and, for #22 "congestion", the optional back-off timer T3346
/// (§8.2.9.2, GPRS timer 2) of `t3346_seconds`. nido uses #3, #7, #9, #22,
/// #74, #75, #93 and #111 ([`REGISTRATION_REJECT_CAUSES`]); any cause is
/// encoded.
///
/// # Errors
///
/// T3346 with another cause than #22, or a T3346 value GPRS timer 2 cannot
/// encode exactly (2 s steps to 62 s, minutes to 31 min, decihours to 186
/// min, [`GPRS_TIMER2_MAX_SECONDS`]).
pub fn registration_reject(
    cause: GmmCause,
    t3346_seconds: Option<u64>,
) -> Result<Nas5gsMessage, BuildError> {
    let mut reject = NasRegistrationReject::new(NasFGmmCause::from_cause(cause));
    if let Some(seconds) = t3346_seconds {
        if cause != GmmCause::Congestion {
            return Err(BuildError::invalid(
                "t3346",
                "T3346 is sent with cause #22 congestion only",
            ));
        }
        reject = reject.with_t3346_value(gprs_timer2("t3346", seconds)?);
    }
    Ok(Nas5gsMessage::new_5gmm(reject))
}

/// REGISTRATION REJECT (TS 24.501 §8.2.9) that also carries an EAP message
/// (§9.11.2.2), e.g. the EAP-Failure of a failed EAP authentication when the
/// network ends the registration with a 5GMM cause.
///
/// # Errors
///
/// `eap` is no EAP packet of 4 to 1500 octets with its own length.
pub fn registration_reject_with_eap(
    cause: GmmCause,
    eap: &[u8],
) -> Result<Nas5gsMessage, BuildError> {
    let reject =
        NasRegistrationReject::new(NasFGmmCause::from_cause(cause)).with_eap_message(eap_ie(eap)?);
    Ok(Nas5gsMessage::new_5gmm(reject))
}

/// DEREGISTRATION REQUEST (UE originating de-registration, TS 24.501
/// §8.2.12, message type 0x45): de-registration type (§9.11.3.20) with
/// switch-off as given and access type "3GPP access", `ngksi`, and the
/// mobile identity, a 5G-GUTI or a SUCI (build it with
/// [`NasFGsMobileIdentity::from_guti`], [`onboarding_identity`] or
/// [`imsi_suci_identity`]).
///
/// # Errors
///
/// `identity` is neither a 5G-GUTI nor a SUCI, or the ngKSI is above 6.
pub fn deregistration_request_ue_originating(
    switch_off: bool,
    ngksi: KeySetIdentifier,
    identity: &NasFGsMobileIdentity,
) -> Result<Nas5gsMessage, BuildError> {
    match identity.identity_type() {
        Some(MobileIdentityType::Guti | MobileIdentityType::Suci) => {}
        other => {
            return Err(BuildError::invalid(
                "5gs-mobile-identity",
                format!("a 5G-GUTI or a SUCI, got {other:?}"),
            ));
        }
    }
    let kind = NasDeRegistrationType::default().with_switch_off(switch_off);
    let request =
        NasDeregistrationRequestUeOriginating::new(kind, ngksi_ie(ngksi)?, identity.clone());
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// DEREGISTRATION ACCEPT (UE originating de-registration, TS 24.501
/// §8.2.13, message type 0x46), sent by the network.
pub fn deregistration_accept_ue_originating() -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasDeregistrationAcceptUeOriginating::new())
}

/// DEREGISTRATION REQUEST (UE terminated de-registration, TS 24.501 §8.2.14,
/// message type 0x47), sent by the network: de-registration type (§9.11.3.20)
/// with "re-registration required" as given and access type "3GPP access",
/// the optional 5GMM cause (§9.11.3.2; nido ends onboarding with #93
/// "onboarding services terminated", [`deregistration_request_onboarding_terminated`])
/// and, with cause #22, the optional T3346 value.
///
/// # Errors
///
/// T3346 without cause #22, or a T3346 value GPRS timer 2 cannot encode
/// exactly (above [`GPRS_TIMER2_MAX_SECONDS`] or between its steps).
pub fn deregistration_request_ue_terminated(
    re_registration_required: bool,
    cause: Option<GmmCause>,
    t3346_seconds: Option<u64>,
) -> Result<Nas5gsMessage, BuildError> {
    let kind =
        NasDeRegistrationType::default().with_re_registration_required(re_registration_required);
    let mut request = NasDeregistrationRequestUeTerminated::new(kind);
    if let Some(cause) = cause {
        request = request.with_fgmm_cause(NasFGmmCause::from_cause(cause));
    }
    if let Some(seconds) = t3346_seconds {
        if cause != Some(GmmCause::Congestion) {
            return Err(BuildError::invalid(
                "t3346",
                "T3346 is sent with cause #22 congestion only",
            ));
        }
        request = request.with_t3346_value(gprs_timer2("t3346", seconds)?);
    }
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// The network's DEREGISTRATION REQUEST (TS 24.501 §8.2.14) that ends an
/// onboarding registration when the onboarding timer expires: cause #93
/// "onboarding services terminated" (§5.5.1.2.4, §9.11.3.2), no
/// re-registration required.
pub fn deregistration_request_onboarding_terminated() -> Nas5gsMessage {
    let kind = NasDeRegistrationType::default();
    let request = NasDeregistrationRequestUeTerminated::new(kind).with_fgmm_cause(
        NasFGmmCause::from_cause(GmmCause::OnboardingServicesTerminated),
    );
    Nas5gsMessage::new_5gmm(request)
}

/// DEREGISTRATION ACCEPT (UE terminated de-registration, TS 24.501 §8.2.15,
/// message type 0x48), sent by the UE.
pub fn deregistration_accept_ue_terminated() -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasDeregistrationAcceptUeTerminated::new())
}

/// 5GMM STATUS (TS 24.501 §8.2.29) with the 5GMM `cause` (§9.11.3.2).
pub fn fgmm_status(cause: GmmCause) -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasFGmmStatus::new(NasFGmmCause::from_cause(cause)))
}

/// SERVICE ACCEPT (TS 24.501 §8.2.17), with no optional IE: the AMF's
/// answer to a CONTROL PLANE SERVICE REQUEST whose data it forwarded
/// (§5.6.1.4.2).
pub fn service_accept() -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasServiceAccept::new())
}
