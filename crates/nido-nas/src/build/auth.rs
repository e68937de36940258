//! Primary authentication and NAS security mode control (TS 24.501 §8.2.1
//! to §8.2.5, §8.2.25, §8.2.26).

use oxirush_nas::nas_5gs::{
    CipheringAlgorithm, GmmCause, IntegrityAlgorithm, KeySetIdentifier, Nas5gsMessage, NasAbba,
    NasAdditional5gSecurityInformation, NasAuthenticationFailure,
    NasAuthenticationFailureParameter, NasAuthenticationParameterAutn,
    NasAuthenticationParameterRand, NasAuthenticationReject, NasAuthenticationRequest,
    NasAuthenticationResponse, NasAuthenticationResponseParameter, NasAuthenticationResult,
    NasFGmmCause, NasFGsMobileIdentity, NasImeisvRequest, NasMessageContainer,
    NasSecurityAlgorithms, NasSecurityModeCommand, NasSecurityModeComplete, NasSecurityModeReject,
    NasUeSecurityCapability,
};

use super::{ABBA, BuildError, eap_ie, ngksi_ie};

/// EAP code of a Success packet (RFC 3748 §4.2).
const EAP_CODE_SUCCESS: u8 = 3;
/// EAP code of a Failure packet (RFC 3748 §4.2).
const EAP_CODE_FAILURE: u8 = 4;

/// The EAP-Success packet with `identifier` (RFC 3748 §4.2): code 3, the
/// identifier, length 4.
pub fn eap_success(identifier: u8) -> [u8; 4] {
    [EAP_CODE_SUCCESS, identifier, 0x00, 0x04]
}

/// The EAP-Failure packet with `identifier` (RFC 3748 §4.2): code 4, the
/// identifier, length 4.
pub fn eap_failure(identifier: u8) -> [u8; 4] {
    [EAP_CODE_FAILURE, identifier, 0x00, 0x04]
}

fn abba_ie() -> NasAbba {
    NasAbba::new(ABBA.to_vec())
}

/// AUTHENTICATION REQUEST (TS 24.501 §8.2.1) of EAP based primary
/// authentication (§5.4.1.2.2): `ngksi`, ABBA [`ABBA`] (§9.11.3.10) and the
/// EAP message IE (§9.11.2.2) with the EAP-Request `eap` (EAP-TLS in nido's
/// onboarding).
///
/// # Errors
///
/// `eap` is no EAP packet of 4 to 1500 octets with its own length, or the
/// ngKSI is above 6.
pub fn authentication_request_eap(
    ngksi: KeySetIdentifier,
    eap: &[u8],
) -> Result<Nas5gsMessage, BuildError> {
    let request =
        NasAuthenticationRequest::new(ngksi_ie(ngksi)?, abba_ie()).with_eap_message(eap_ie(eap)?);
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// AUTHENTICATION REQUEST (TS 24.501 §8.2.1) of 5G AKA (§5.4.1.3):
/// `ngksi`, ABBA [`ABBA`], the authentication parameter RAND (§9.11.3.16)
/// and AUTN (§9.11.3.15).
///
/// # Errors
///
/// The ngKSI is above 6.
pub fn authentication_request_5g_aka(
    ngksi: KeySetIdentifier,
    rand: &[u8; 16],
    autn: &[u8; 16],
) -> Result<Nas5gsMessage, BuildError> {
    let request = NasAuthenticationRequest::new(ngksi_ie(ngksi)?, abba_ie())
        .with_authentication_parameter_rand(NasAuthenticationParameterRand::from_rand(*rand))
        .with_authentication_parameter_autn(NasAuthenticationParameterAutn::from_autn(*autn));
    Ok(Nas5gsMessage::new_5gmm(request))
}

/// AUTHENTICATION RESPONSE (TS 24.501 §8.2.2) of EAP based primary
/// authentication: the EAP message IE (§9.11.2.2) with the EAP-Response
/// `eap`.
///
/// # Errors
///
/// `eap` is no EAP packet of 4 to 1500 octets with its own length.
pub fn authentication_response_eap(eap: &[u8]) -> Result<Nas5gsMessage, BuildError> {
    let response = NasAuthenticationResponse::new().with_eap_message(eap_ie(eap)?);
    Ok(Nas5gsMessage::new_5gmm(response))
}

/// AUTHENTICATION RESPONSE (TS 24.501 §8.2.2) of 5G AKA: the authentication
/// response parameter (§9.11.3.17) with RES* (TS 33.501 A.4).
pub fn authentication_response_res_star(res_star: &[u8; 16]) -> Nas5gsMessage {
    let parameter = NasAuthenticationResponseParameter::from_res_star(*res_star);
    Nas5gsMessage::new_5gmm(
        NasAuthenticationResponse::new().with_authentication_response_parameter(parameter),
    )
}

/// AUTHENTICATION RESULT (TS 24.501 §8.2.3): `ngksi`, the EAP message IE
/// with `eap` (an EAP-Success or EAP-Failure) and ABBA [`ABBA`]
/// (§8.2.3.2: sent with an EAP-Success).
///
/// # Errors
///
/// `eap` is no EAP packet of 4 to 1500 octets with its own length, or the
/// ngKSI is above 6.
pub fn authentication_result(
    ngksi: KeySetIdentifier,
    eap: &[u8],
) -> Result<Nas5gsMessage, BuildError> {
    let mut result = NasAuthenticationResult::new(ngksi_ie(ngksi)?, eap_ie(eap)?);
    if eap.first() == Some(&EAP_CODE_SUCCESS) {
        result = result.with_abba(abba_ie());
    }
    Ok(Nas5gsMessage::new_5gmm(result))
}

/// AUTHENTICATION RESULT (TS 24.501 §8.2.3) that ends a successful EAP
/// authentication: `ngksi`, EAP-Success with `eap_identifier`
/// ([`eap_success`]) and ABBA [`ABBA`].
///
/// # Errors
///
/// The ngKSI is above 6.
pub fn authentication_result_eap_success(
    ngksi: KeySetIdentifier,
    eap_identifier: u8,
) -> Result<Nas5gsMessage, BuildError> {
    authentication_result(ngksi, &eap_success(eap_identifier))
}

/// AUTHENTICATION FAILURE (TS 24.501 §8.2.4) with 5GMM cause #21 "synch
/// failure" and the authentication failure parameter (§9.11.3.14) with
/// `auts` (TS 33.102 §6.3.3: SQN_MS xor AK*, MAC-S).
pub fn authentication_failure_synch_failure(auts: &[u8; 14]) -> Nas5gsMessage {
    let failure = NasAuthenticationFailure::new(NasFGmmCause::from_cause(GmmCause::SynchFailure))
        .with_authentication_failure_parameter(NasAuthenticationFailureParameter::from_auts(*auts));
    Nas5gsMessage::new_5gmm(failure)
}

/// AUTHENTICATION FAILURE (TS 24.501 §8.2.4) with 5GMM cause #20 "MAC
/// failure" (§5.4.1.3.7: the AUTN did not verify).
pub fn authentication_failure_mac_failure() -> Nas5gsMessage {
    Nas5gsMessage::new_5gmm(NasAuthenticationFailure::new(NasFGmmCause::from_cause(
        GmmCause::MacFailure,
    )))
}

/// AUTHENTICATION FAILURE (TS 24.501 §8.2.4) with a 5GMM cause other than
/// #21, which needs AUTS ([`authentication_failure_synch_failure`]): #20
/// "MAC failure", #26 "non-5G authentication unacceptable", #71 "ngKSI
/// already in use" (§5.4.1.3.7).
///
/// # Errors
///
/// `cause` is #21 "synch failure".
pub fn authentication_failure(cause: GmmCause) -> Result<Nas5gsMessage, BuildError> {
    if cause == GmmCause::SynchFailure {
        return Err(BuildError::invalid(
            "5gmm-cause",
            "#21 synch failure carries AUTS: use authentication_failure_synch_failure",
        ));
    }
    Ok(Nas5gsMessage::new_5gmm(NasAuthenticationFailure::new(
        NasFGmmCause::from_cause(cause),
    )))
}

/// AUTHENTICATION REJECT (TS 24.501 §8.2.5), with the EAP message IE
/// carrying `eap` (an EAP-Failure, §5.4.1.2.2.5) when given.
///
/// # Errors
///
/// `eap` is no EAP packet of 4 to 1500 octets with its own length.
pub fn authentication_reject(eap: Option<&[u8]>) -> Result<Nas5gsMessage, BuildError> {
    let mut reject = NasAuthenticationReject::new();
    if let Some(eap) = eap {
        reject = reject.with_eap_message(eap_ie(eap)?);
    }
    Ok(Nas5gsMessage::new_5gmm(reject))
}

/// The additional 5G security information IE (TS 24.501 §9.11.3.12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdditionalSecurityInformation {
    /// RINMR: the UE shall send the whole initial NAS message in the NAS
    /// message container of SECURITY MODE COMPLETE.
    pub retransmission_of_initial_nas_message: bool,
    /// HDP: K_AMF is derived anew (horizontal derivation).
    pub horizontal_derivation: bool,
}

/// The content of a SECURITY MODE COMMAND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityModeCommandParams {
    /// Selected 5G NAS ciphering algorithm (nido prefers 128-NEA2).
    pub ciphering: CipheringAlgorithm,
    /// Selected 5G NAS integrity algorithm (nido prefers 128-NIA2).
    pub integrity: IntegrityAlgorithm,
    /// ngKSI of the NAS security context being taken into use.
    pub ngksi: KeySetIdentifier,
    /// The UE security capability exactly as the UE sent it (replayed).
    pub replayed_ue_security_capability: NasUeSecurityCapability,
    /// Ask the UE for its IMEISV (§9.11.3.28).
    pub imeisv_request: bool,
    /// The ABBA to include (§9.11.3.10), if any; nido's is [`ABBA`].
    pub abba: Option<Vec<u8>>,
    /// Additional 5G security information (§9.11.3.12), if any.
    pub additional_security_information: Option<AdditionalSecurityInformation>,
    /// An EAP-Success (§9.11.2.2) when the authentication result travels in
    /// the SECURITY MODE COMMAND (§5.4.1.2.2.8), if any.
    pub eap_message: Option<Vec<u8>>,
}

/// SECURITY MODE COMMAND (TS 24.501 §8.2.25): the selected NAS security
/// algorithms (§9.11.3.34), `ngksi`, the replayed UE security capabilities
/// (§9.11.3.54), then the optional IMEISV request, additional 5G security
/// information, EAP message and ABBA that `params` set. The caller protects
/// it with security header type 3 (integrity protected with new 5G NAS
/// security context).
///
/// # Errors
///
/// The ngKSI is above 6, the ABBA is not 2 to 255 octets, or the EAP message
/// is no EAP packet with its own length.
pub fn security_mode_command(
    params: &SecurityModeCommandParams,
) -> Result<Nas5gsMessage, BuildError> {
    let algorithms = NasSecurityAlgorithms::from_algorithms(params.ciphering, params.integrity);
    let mut command = NasSecurityModeCommand::new(
        algorithms,
        ngksi_ie(params.ngksi)?,
        params.replayed_ue_security_capability.clone(),
    );
    if params.imeisv_request {
        command = command.with_imeisv_request(NasImeisvRequest::from_requested(true));
    }
    if let Some(info) = params.additional_security_information {
        command = command.with_additional_5g_security_information(
            NasAdditional5gSecurityInformation::from_flags(
                info.retransmission_of_initial_nas_message,
                info.horizontal_derivation,
            ),
        );
    }
    if let Some(eap) = &params.eap_message {
        command = command.with_eap_message(eap_ie(eap)?);
    }
    if let Some(abba) = &params.abba {
        if !(2..=255).contains(&abba.len()) {
            return Err(BuildError::invalid(
                "abba",
                format!("2 to 255 octets, got {}", abba.len()),
            ));
        }
        command = command.with_abba(NasAbba::new(abba.clone()));
    }
    Ok(Nas5gsMessage::new_5gmm(command))
}

/// SECURITY MODE COMPLETE (TS 24.501 §8.2.26): the IMEISV (§9.11.3.4, 16
/// digits) when the command asked for it, and the NAS message container
/// (§9.11.3.33) with the whole initial NAS message when the UE must resend
/// it (§5.4.2.3). The caller protects it with security header type 4
/// (integrity protected and ciphered with new 5G NAS security context).
///
/// # Errors
///
/// `imeisv` is not 16 digits, or the initial message does not encode.
pub fn security_mode_complete(
    imeisv: Option<&str>,
    initial_message: Option<&Nas5gsMessage>,
) -> Result<Nas5gsMessage, BuildError> {
    let mut complete = NasSecurityModeComplete::new();
    if let Some(imeisv) = imeisv {
        complete = complete.with_imeisv(NasFGsMobileIdentity::from_imeisv(imeisv)?);
    }
    if let Some(message) = initial_message {
        complete =
            complete.with_nas_message_container(NasMessageContainer::from_nas_message(message)?);
    }
    Ok(Nas5gsMessage::new_5gmm(complete))
}

/// SECURITY MODE REJECT (TS 24.501 §8.2.27) with `cause`, e.g. #23 "UE
/// security capabilities mismatch" when the replayed capabilities differ
/// from the UE's own (§5.4.2.5).
///
/// # Errors
///
/// None today; the signature leaves room for cause validation.
pub fn security_mode_reject(cause: GmmCause) -> Result<Nas5gsMessage, BuildError> {
    Ok(Nas5gsMessage::new_5gmm(NasSecurityModeReject::new(
        NasFGmmCause::from_cause(cause),
    )))
}
