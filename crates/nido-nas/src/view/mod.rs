//! The typed view of a received plain NAS message (TS 24.501 clause 8):
//! what the UE and AMF procedures act on, with the IEs as plain values, so
//! that the state machines never touch the codec's API.
//!
//! [`Inbound::read`] takes a message that is already unprotected (the NAS
//! security context checked and deciphered it, TS 24.501 §4.4) and returns
//! the [`Inbound`] of its type, or a [`ViewError`] naming the IE that is
//! missing or cannot be read. It never panics. The view is the inverse of
//! [`crate::build`]: every builder's inputs come back out of the view of the
//! message it builds.

use std::time::Duration;

use oxirush_nas::nas_5gs::{
    CiotSmallDataContainerContents, MobileIdentityType, Nas5gmmMessage, Nas5gmmMessageType,
    Nas5gsMessage, Nas5gsSecurityHeaderType, Nas5gsmMessage, Nas5gsmMessageType,
    NasControlPlaneServiceRequest, NasDlNasTransport, NasDnn, NasEapMessage,
    NasExtendedProtocolConfigurationOptions, NasFGsMobileIdentity, NasGprsTimer2,
    NasPayloadContainer, NasPayloadContainerType, NasPduSessionIdentity2, NasUeSecurityCapability,
    NasUlNasTransport, PayloadContainerKind, PcoDirection, Suci,
};

use nido_sec::Cause;

use crate::build::{self, BuildError, ImsiSuciParts, pco_container};

/// Why a received message could not be read as the view of its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {field}: {reason}")]
pub struct ViewError {
    /// The message being read, as [`Inbound::name`] names it (or
    /// "SecurityProtected5gsNasMessage" for a protected envelope, TS 24.501
    /// §8.2.28).
    pub message: &'static str,
    /// The IE (or header part) that is missing or cannot be read, by its
    /// TS 24.501 name.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ViewError {
    fn new(message: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            message,
            field,
            reason: reason.into(),
        }
    }
}

/// A 5G-GUTI (TS 23.003 §2.10; TS 24.501 §9.11.3.4, figure 9.11.3.4.1) in
/// plain numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guti5g {
    /// Mobile country code: three digits.
    pub mcc: String,
    /// Mobile network code: two or three digits.
    pub mnc: String,
    /// AMF Region ID (8 bits).
    pub amf_region_id: u8,
    /// AMF Set ID (10 bits, 0 to 1023).
    pub amf_set_id: u16,
    /// AMF Pointer (6 bits, 0 to 63).
    pub amf_pointer: u8,
    /// 5G-TMSI (32 bits).
    pub tmsi: u32,
}

impl Guti5g {
    /// The oxirush `Guti` (as `build::RegistrationAcceptParams::guti` takes).
    ///
    /// # Errors
    ///
    /// The MCC or MNC is not digits of their lengths, the AMF Set ID is
    /// above 1023 or the AMF Pointer above 63 ([`BuildError::Identity`]).
    pub fn to_wire(&self) -> Result<build::Guti, BuildError> {
        let plmn = build::Plmn::new(&self.mcc, &self.mnc)?;
        Ok(build::Guti::new(
            plmn,
            self.amf_region_id,
            self.amf_set_id,
            self.amf_pointer,
            self.tmsi,
        )?)
    }

    /// The plain numbers of an oxirush `Guti` (the inverse of
    /// [`Self::to_wire`]).
    pub fn from_wire(guti: &build::Guti) -> Self {
        let plmn = guti.plmn();
        Self {
            mcc: plmn.mcc().to_owned(),
            mnc: plmn.mnc().to_owned(),
            amf_region_id: guti.amf_region_id(),
            amf_set_id: guti.amf_set_id(),
            amf_pointer: guti.amf_pointer(),
            tmsi: guti.tmsi(),
        }
    }
}

/// The 5GS mobile identity of a REGISTRATION REQUEST (TS 24.501 §9.11.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MobileIdentity {
    /// A SUCI in NAI format (figure 9.11.3.4.3b; e.g. the anonymous
    /// onboarding SUCI "type1.rid0.schid0.useridanonymous@realm",
    /// TS 23.003 §28.7.3): the NAI text as received.
    SuciNai(String),
    /// An IMSI-type SUCI (figure 9.11.3.4.3; TS 23.003 §2.2B). For the null
    /// scheme, `scheme_output` is the MSIN as ASCII digits, as
    /// [`build::imsi_suci_identity`] takes it.
    ImsiSuci(ImsiSuciParts),
    /// A 5G-GUTI (figure 9.11.3.4.1).
    Guti(Guti5g),
    /// Any other identity type (table 9.11.3.4.1): the type-of-identity
    /// value, bits 3 to 1 of the first octet.
    Other(u8),
}

/// A received NAS message the procedures act on, with its IEs as plain
/// values (TS 24.501 clause 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// REGISTRATION REQUEST (TS 24.501 §8.2.6).
    RegistrationRequest {
        /// 5GS registration type value (§9.11.3.7, 3 bits): 1 initial
        /// registration, 2 mobility, 3 periodic, 4 emergency, 5 SNPN
        /// onboarding registration, 6 and 7 disaster roaming.
        registration_type: u8,
        /// Follow-on request pending (FOR bit of §9.11.3.7).
        follow_on_request: bool,
        /// NAS key set identifier (§9.11.3.32, 3 bits): 7 = no key is
        /// available.
        ngksi: u8,
        /// The 5GS mobile identity (§9.11.3.4).
        identity: MobileIdentity,
        /// UE security capability (§9.11.3.54), if present: [5G-EA octet,
        /// 5G-IA octet].
        ue_security_capability: Option<[u8; 2]>,
        /// 5GMM capability (§9.11.3.1) bit 5G-CP CIoT (octet 3 bit 5);
        /// `false` if the IE is absent.
        cp_ciot: bool,
    },
    /// REGISTRATION ACCEPT (TS 24.501 §8.2.7).
    RegistrationAccept {
        /// The 5G-GUTI assigned (§9.11.3.4), if any.
        guti: Option<Guti5g>,
        /// 5GS network feature support (§9.11.3.5) bit 5G-CP CIoT (octet 4
        /// bit 5); `false` if the IE is absent.
        cp_ciot: bool,
    },
    /// REGISTRATION COMPLETE (TS 24.501 §8.2.8).
    RegistrationComplete,
    /// REGISTRATION REJECT (TS 24.501 §8.2.9).
    RegistrationReject {
        /// 5GMM cause value (§9.11.3.2).
        cause: Cause,
        /// T3346 value (§9.11.2.4, GPRS timer 2), if present and not
        /// "deactivated" (§5.5.1.2.5: a deactivated timer is not started).
        t3346: Option<Duration>,
        /// The EAP message (§9.11.2.2), e.g. an EAP-Failure, if present.
        eap: Option<Vec<u8>>,
    },
    /// AUTHENTICATION REQUEST (TS 24.501 §8.2.1).
    AuthenticationRequest {
        /// ngKSI (§9.11.3.32, 3 bits).
        ngksi: u8,
        /// ABBA (§9.11.3.10).
        abba: Vec<u8>,
        /// Authentication parameter RAND (§9.11.3.16), of 5G AKA.
        rand: Option<[u8; 16]>,
        /// Authentication parameter AUTN (§9.11.3.15), of 5G AKA.
        autn: Option<[u8; 16]>,
        /// EAP message (§9.11.2.2), of EAP based primary authentication.
        eap: Option<Vec<u8>>,
    },
    /// AUTHENTICATION RESPONSE (TS 24.501 §8.2.2).
    AuthenticationResponse {
        /// Authentication response parameter (§9.11.3.17): RES* of 5G AKA.
        res_star: Option<[u8; 16]>,
        /// EAP message (§9.11.2.2): the EAP-Response.
        eap: Option<Vec<u8>>,
    },
    /// AUTHENTICATION RESULT (TS 24.501 §8.2.3).
    AuthenticationResult {
        /// ngKSI (§9.11.3.32, 3 bits).
        ngksi: u8,
        /// EAP message (§9.11.2.2): the EAP-Success or EAP-Failure.
        eap: Vec<u8>,
    },
    /// AUTHENTICATION FAILURE (TS 24.501 §8.2.4).
    AuthenticationFailure {
        /// 5GMM cause value (§9.11.3.2): #20, #21, #26, #71.
        cause: Cause,
        /// AUTS of the authentication failure parameter (§9.11.3.14), with
        /// cause #21 "synch failure".
        auts: Option<[u8; 14]>,
    },
    /// AUTHENTICATION REJECT (TS 24.501 §8.2.5).
    AuthenticationReject {
        /// EAP message (§9.11.2.2): an EAP-Failure, if present.
        eap: Option<Vec<u8>>,
    },
    /// SECURITY MODE COMMAND (TS 24.501 §8.2.25).
    SecurityModeCommand {
        /// Selected 5G NAS ciphering algorithm (§9.11.3.34, type of
        /// ciphering algorithm: 0 = 5G-EA0, 2 = 128-5G-EA2...).
        nea: u8,
        /// Selected 5G NAS integrity algorithm (§9.11.3.34, type of
        /// integrity protection algorithm: 2 = 128-5G-IA2...).
        nia: u8,
        /// ngKSI (§9.11.3.32, 3 bits).
        ngksi: u8,
        /// Replayed UE security capabilities (§9.11.3.54): [5G-EA octet,
        /// 5G-IA octet] (any EPS octets are not in the view).
        replayed_ue_security_capability: [u8; 2],
        /// IMEISV request (§9.11.3.28): the IMEISV is requested.
        imeisv_request: bool,
        /// ABBA (§9.11.3.10), if present.
        abba: Option<Vec<u8>>,
        /// EAP message (§9.11.2.2): an EAP-Success, if present.
        eap: Option<Vec<u8>>,
    },
    /// SECURITY MODE COMPLETE (TS 24.501 §8.2.26).
    SecurityModeComplete {
        /// NAS message container (§9.11.3.33): the whole initial NAS message,
        /// as octets, if present.
        nas_message_container: Option<Vec<u8>>,
    },
    /// SECURITY MODE REJECT (TS 24.501 §8.2.27).
    SecurityModeReject {
        /// 5GMM cause value (§9.11.3.2).
        cause: Cause,
    },
    /// DEREGISTRATION REQUEST, UE originating de-registration (TS 24.501
    /// §8.2.12).
    DeregistrationRequestUeOriginating {
        /// De-registration type (§9.11.3.20) switch off bit.
        switch_off: bool,
        /// ngKSI (§9.11.3.32, 3 bits).
        ngksi: u8,
    },
    /// DEREGISTRATION ACCEPT, UE originating de-registration (TS 24.501
    /// §8.2.13).
    DeregistrationAcceptUeOriginating,
    /// DEREGISTRATION REQUEST, UE terminated de-registration (TS 24.501
    /// §8.2.14).
    DeregistrationRequestUeTerminated {
        /// De-registration type (§9.11.3.20) re-registration required bit.
        reregistration_required: bool,
        /// 5GMM cause value (§9.11.3.2), if present; #93 ends onboarding.
        cause: Option<Cause>,
        /// T3346 value (§9.11.2.4, GPRS timer 2), if present and not
        /// "deactivated".
        t3346: Option<Duration>,
    },
    /// DEREGISTRATION ACCEPT, UE terminated de-registration (TS 24.501
    /// §8.2.15).
    DeregistrationAcceptUeTerminated,
    /// UL NAS TRANSPORT (TS 24.501 §8.2.10).
    UlNasTransport(Transport),
    /// DL NAS TRANSPORT (TS 24.501 §8.2.11).
    DlNasTransport {
        /// What the payload container carries.
        payload: Transport,
        /// 5GMM cause value (§9.11.3.2), if present (e.g. the 5GSM message
        /// could not be forwarded, §5.4.5.3.3).
        cause: Option<Cause>,
    },
    /// CONTROL PLANE SERVICE REQUEST (TS 24.501 §8.2.30) with CIoT user
    /// data: in the CIoT small data container (§9.11.3.48, data type
    /// "control plane user data"), or in a payload container of type 8
    /// "CIoT user data container" with the PDU session ID (§5.6.1.2.2).
    ControlPlaneServiceRequest {
        /// ngKSI (§9.11.3.32, 3 bits).
        ngksi: u8,
        /// PDU session identity the data belong to.
        psi: u8,
        /// The user data.
        data: Vec<u8>,
    },
    /// SERVICE ACCEPT (TS 24.501 §8.2.17).
    ServiceAccept,
    /// 5GMM STATUS (TS 24.501 §8.2.29).
    Status {
        /// 5GMM cause value (§9.11.3.2).
        cause: Cause,
    },
    /// A 5GMM or 5GSM message the procedures do not act on (a 5GSM message
    /// outside a NAS transport included): its message type octet (§9.7) and
    /// name.
    Other {
        /// The message type octet (TS 24.501 §9.7).
        message_type: u8,
        /// The message's name, e.g. "IdentityRequest".
        name: &'static str,
    },
}

/// What a UL or DL NAS TRANSPORT carries (payload container type, TS 24.501
/// §9.11.3.40).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Payload container type 1 "N1 SM information" with a PDU SESSION
    /// ESTABLISHMENT REQUEST (TS 24.501 §8.3.1).
    PduSessionEstablishmentRequest {
        /// PDU session identity of the 5GSM header (TS 24.007 §11.2.3.1b).
        psi: u8,
        /// Procedure transaction identity of the 5GSM header (TS 24.007
        /// §11.2.3.1a).
        pti: u8,
        /// DNN of the UL NAS TRANSPORT (§9.11.2.1B), dot-separated, if
        /// present (a DL NAS TRANSPORT has none).
        dnn: Option<String>,
        /// The ePCO (§9.11.4.6) has the "PVS information request" container
        /// (0036H, TS 24.008 Table 10.5.154).
        request_pvs_information: bool,
    },
    /// Payload container type 1 with a PDU SESSION ESTABLISHMENT ACCEPT
    /// (TS 24.501 §8.3.2).
    PduSessionEstablishmentAccept {
        /// PDU session identity of the 5GSM header.
        psi: u8,
        /// Procedure transaction identity of the 5GSM header.
        pti: u8,
        /// Control plane only indication (§9.11.4.23) with CPOI set.
        control_plane_only: bool,
        /// PVS name of the ePCO (§9.11.4.6, container 0038H, an FQDN written
        /// as DNS labels), dot-separated, if present.
        pvs_name: Option<String>,
    },
    /// Payload container type 1 with a PDU SESSION ESTABLISHMENT REJECT
    /// (TS 24.501 §8.3.3).
    PduSessionEstablishmentReject {
        /// PDU session identity of the 5GSM header.
        psi: u8,
        /// Procedure transaction identity of the 5GSM header.
        pti: u8,
        /// 5GSM cause value (§9.11.4.2).
        cause: u8,
    },
    /// Payload container type 8, CIoT user data, of PDU session `psi`
    /// (PDU session ID IE, §9.11.3.41).
    CiotData {
        /// PDU session identity.
        psi: u8,
        /// The user data (payload container, §9.11.3.39).
        data: Vec<u8>,
    },
    /// Any other payload (another container type, or another 5GSM message
    /// in N1 SM information): its container type.
    Other {
        /// Payload container type value (§9.11.3.40, 4 bits).
        container_type: u8,
    },
}

impl Inbound {
    /// The view of a plain (already unprotected) message.
    ///
    /// # Errors
    ///
    /// The message is security protected (a security-protected 5GS NAS
    /// message, TS 24.501 §8.2.28, or ciphertext): field "security header";
    /// or an IE the view needs is missing or cannot be read (a 5GS mobile
    /// identity that is not one of its type, an AUTN of the wrong length, a
    /// payload container whose N1 SM message does not decode...): the field
    /// names the IE.
    pub fn read(message: &Nas5gsMessage) -> Result<Self, ViewError> {
        match message {
            Nas5gsMessage::Gmm(header, body) => {
                if header.security_header_type
                    != Nas5gsSecurityHeaderType::PlainFiveGsNasMessageNotSecurityProtected
                {
                    return Err(ViewError::new(
                        gmm_name(body.message_type()),
                        "security header",
                        format!(
                            "security header type {:?}: unprotect the message first",
                            header.security_header_type
                        ),
                    ));
                }
                read_gmm(body)
            }
            Nas5gsMessage::Gsm(_, body) => {
                let kind = body.message_type();
                Ok(Self::Other {
                    message_type: kind.as_u8(),
                    name: gsm_name(kind),
                })
            }
            Nas5gsMessage::SecurityProtected(header, _) => Err(ViewError::new(
                PROTECTED,
                "security header",
                format!(
                    "security header type {:?}: unprotect the message first",
                    header.security_header_type
                ),
            )),
            Nas5gsMessage::Opaque(_) => Err(ViewError::new(
                PROTECTED,
                "security header",
                "ciphertext: unprotect the message first",
            )),
            _ => Err(ViewError::new(
                "Unknown",
                "extended protocol discriminator",
                "neither 5GMM nor 5GSM",
            )),
        }
    }

    /// The message's name (e.g. "RegistrationRequest"), for events and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegistrationRequest { .. } => "RegistrationRequest",
            Self::RegistrationAccept { .. } => "RegistrationAccept",
            Self::RegistrationComplete => "RegistrationComplete",
            Self::RegistrationReject { .. } => "RegistrationReject",
            Self::AuthenticationRequest { .. } => "AuthenticationRequest",
            Self::AuthenticationResponse { .. } => "AuthenticationResponse",
            Self::AuthenticationResult { .. } => "AuthenticationResult",
            Self::AuthenticationFailure { .. } => "AuthenticationFailure",
            Self::AuthenticationReject { .. } => "AuthenticationReject",
            Self::SecurityModeCommand { .. } => "SecurityModeCommand",
            Self::SecurityModeComplete { .. } => "SecurityModeComplete",
            Self::SecurityModeReject { .. } => "SecurityModeReject",
            Self::DeregistrationRequestUeOriginating { .. } => "DeregistrationRequestUeOriginating",
            Self::DeregistrationAcceptUeOriginating => "DeregistrationAcceptUeOriginating",
            Self::DeregistrationRequestUeTerminated { .. } => "DeregistrationRequestUeTerminated",
            Self::DeregistrationAcceptUeTerminated => "DeregistrationAcceptUeTerminated",
            Self::UlNasTransport(_) => "UlNasTransport",
            Self::DlNasTransport { .. } => "DlNasTransport",
            Self::ControlPlaneServiceRequest { .. } => "ControlPlaneServiceRequest",
            Self::ServiceAccept => "ServiceAccept",
            Self::Status { .. } => "FiveGmmStatus",
            Self::Other { name, .. } => name,
        }
    }
}

/// The name of any message, plain or protected (e.g. "RegistrationRequest",
/// "SecurityProtected5gsNasMessage"), without reading its IEs: for traces
/// and events of messages being sent.
pub fn message_name(message: &Nas5gsMessage) -> &'static str {
    match message {
        Nas5gsMessage::Gmm(_, body) => gmm_name(body.message_type()),
        Nas5gsMessage::Gsm(_, body) => gsm_name(body.message_type()),
        Nas5gsMessage::SecurityProtected(..) | Nas5gsMessage::Opaque(_) => PROTECTED,
        _ => "Unknown",
    }
}

/// The name of a security-protected 5GS NAS message (TS 24.501 §8.2.28).
const PROTECTED: &str = "SecurityProtected5gsNasMessage";

/// The view of a plain 5GMM message.
fn read_gmm(body: &Nas5gmmMessage) -> Result<Inbound, ViewError> {
    let name = gmm_name(body.message_type());
    let fail = |field: &'static str, reason: &str| ViewError::new(name, field, reason);
    Ok(match body {
        Nas5gmmMessage::RegistrationRequest(m) => Inbound::RegistrationRequest {
            registration_type: m.fgs_registration_type.value & 0x07,
            follow_on_request: m.fgs_registration_type.follow_on_request(),
            ngksi: m.ngksi.ksi(),
            identity: mobile_identity(name, &m.fgs_mobile_identity)?,
            ue_security_capability: m
                .ue_security_capability
                .as_ref()
                .map(|c| security_capability(name, "UE security capability", c))
                .transpose()?,
            cp_ciot: m.fgmm_capability.as_ref().is_some_and(|c| c.cp_ciot()),
        },
        Nas5gmmMessage::RegistrationAccept(m) => Inbound::RegistrationAccept {
            guti: m
                .fg_guti
                .as_ref()
                .map(|identity| {
                    identity
                        .as_guti()
                        .map(|guti| Guti5g::from_wire(&guti))
                        .ok_or_else(|| fail("5G-GUTI", "not a 5G-GUTI (figure 9.11.3.4.1)"))
                })
                .transpose()?,
            cp_ciot: m
                .fgs_network_feature_support
                .as_ref()
                .is_some_and(|f| f.cp_ciot()),
        },
        Nas5gmmMessage::RegistrationComplete(_) => Inbound::RegistrationComplete,
        Nas5gmmMessage::RegistrationReject(m) => Inbound::RegistrationReject {
            cause: Cause(m.fgmm_cause.cause_raw()),
            t3346: m.t3346_value.as_ref().and_then(timer2),
            eap: m.eap_message.as_ref().map(eap),
        },
        Nas5gmmMessage::AuthenticationRequest(m) => Inbound::AuthenticationRequest {
            ngksi: m.ngksi.ksi(),
            abba: m.abba.abba().to_vec(),
            rand: m
                .authentication_parameter_rand
                .as_ref()
                .map(|p| {
                    p.rand()
                        .copied()
                        .ok_or_else(|| fail("authentication parameter RAND", "16 octets"))
                })
                .transpose()?,
            autn: m
                .authentication_parameter_autn
                .as_ref()
                .map(|p| {
                    p.autn().copied().ok_or_else(|| {
                        let got = format!("16 octets, got {}", p.value.len());
                        fail("authentication parameter AUTN", &got)
                    })
                })
                .transpose()?,
            eap: m.eap_message.as_ref().map(eap),
        },
        Nas5gmmMessage::AuthenticationResponse(m) => Inbound::AuthenticationResponse {
            res_star: m
                .authentication_response_parameter
                .as_ref()
                .map(|p| {
                    p.res_star().copied().ok_or_else(|| {
                        let got = format!("RES* has 16 octets, got {}", p.value.len());
                        fail("authentication response parameter", &got)
                    })
                })
                .transpose()?,
            eap: m.eap_message.as_ref().map(eap),
        },
        Nas5gmmMessage::AuthenticationResult(m) => Inbound::AuthenticationResult {
            ngksi: m.ngksi.ksi(),
            eap: eap(&m.eap_message),
        },
        Nas5gmmMessage::AuthenticationFailure(m) => Inbound::AuthenticationFailure {
            cause: Cause(m.fgmm_cause.cause_raw()),
            auts: m
                .authentication_failure_parameter
                .as_ref()
                .map(|p| {
                    p.auts().copied().ok_or_else(|| {
                        let got = format!("AUTS has 14 octets, got {}", p.value.len());
                        fail("authentication failure parameter", &got)
                    })
                })
                .transpose()?,
        },
        Nas5gmmMessage::AuthenticationReject(m) => Inbound::AuthenticationReject {
            eap: m.eap_message.as_ref().map(eap),
        },
        Nas5gmmMessage::SecurityModeCommand(m) => Inbound::SecurityModeCommand {
            nea: m.selected_nas_security_algorithms.ciphering_raw(),
            nia: m.selected_nas_security_algorithms.integrity_raw(),
            ngksi: m.ngksi.ksi(),
            replayed_ue_security_capability: security_capability(
                name,
                "replayed UE security capabilities",
                &m.replayed_ue_security_capabilities,
            )?,
            imeisv_request: m.imeisv_request.as_ref().is_some_and(|r| r.is_requested()),
            abba: m.abba.as_ref().map(|a| a.abba().to_vec()),
            eap: m.eap_message.as_ref().map(eap),
        },
        Nas5gmmMessage::SecurityModeComplete(m) => Inbound::SecurityModeComplete {
            nas_message_container: m.nas_message_container.as_ref().map(|c| c.value.to_vec()),
        },
        Nas5gmmMessage::SecurityModeReject(m) => Inbound::SecurityModeReject {
            cause: Cause(m.fgmm_cause.cause_raw()),
        },
        Nas5gmmMessage::DeregistrationRequestUeOriginating(m) => {
            Inbound::DeregistrationRequestUeOriginating {
                switch_off: m.de_registration_type.switch_off(),
                ngksi: m.ngksi.ksi(),
            }
        }
        Nas5gmmMessage::DeregistrationAcceptUeOriginating(_) => {
            Inbound::DeregistrationAcceptUeOriginating
        }
        Nas5gmmMessage::DeregistrationRequestUeTerminated(m) => {
            Inbound::DeregistrationRequestUeTerminated {
                reregistration_required: m.de_registration_type.re_registration_required(),
                cause: m.fgmm_cause.as_ref().map(|c| Cause(c.cause_raw())),
                t3346: m.t3346_value.as_ref().and_then(timer2),
            }
        }
        Nas5gmmMessage::DeregistrationAcceptUeTerminated(_) => {
            Inbound::DeregistrationAcceptUeTerminated
        }
        Nas5gmmMessage::UlNasTransport(m) => Inbound::UlNasTransport(ul_transport(name, m)?),
        Nas5gmmMessage::DlNasTransport(m) => Inbound::DlNasTransport {
            payload: dl_transport(name, m)?,
            cause: m.fgmm_cause.as_ref().map(|c| Cause(c.cause_raw())),
        },
        Nas5gmmMessage::ControlPlaneServiceRequest(m) => {
            let (psi, data) = match m.ciot_small_data_container.as_ref() {
                Some(container) => match container.parse() {
                    Some(CiotSmallDataContainerContents::ControlPlaneUserData {
                        pdu_session_id,
                        data,
                        ..
                    }) => (pdu_session_id, data),
                    Some(_) => {
                        return Err(fail(
                            "CIoT small data container",
                            "the data type is not control plane user data",
                        ));
                    }
                    None => {
                        return Err(fail(
                            "CIoT small data container",
                            "does not decode (§9.11.3.48)",
                        ));
                    }
                },
                None => cpsr_payload(name, m)?,
            };
            Inbound::ControlPlaneServiceRequest {
                ngksi: m.ngksi.ksi(),
                psi,
                data,
            }
        }
        Nas5gmmMessage::ServiceAccept(_) => Inbound::ServiceAccept,
        Nas5gmmMessage::FiveGmmStatus(m) => Inbound::Status {
            cause: Cause(m.fgmm_cause.cause_raw()),
        },
        other => {
            let kind = other.message_type();
            Inbound::Other {
                message_type: kind.as_u8(),
                name: gmm_name(kind),
            }
        }
    })
}

/// The PDU session ID and CIoT user data of a CONTROL PLANE SERVICE REQUEST
/// without a CIoT small data container: payload container type 8, the
/// payload container and the PDU session ID (TS 24.501 §5.6.1.2.2).
fn cpsr_payload(
    name: &'static str,
    m: &NasControlPlaneServiceRequest,
) -> Result<(u8, Vec<u8>), ViewError> {
    let missing = |field: &'static str, reason: &str| ViewError::new(name, field, reason);
    let Some(container_type) = m.payload_container_type.as_ref() else {
        return Err(missing(
            "CIoT small data container",
            "neither a CIoT small data container nor a payload container of CIoT user data",
        ));
    };
    if container_type.kind() != Some(PayloadContainerKind::CIoT) {
        return Err(missing(
            "payload container type",
            &format!(
                "8 (CIoT user data container), got {}",
                container_type.value & 0x0f
            ),
        ));
    }
    let container = m
        .payload_container
        .as_ref()
        .ok_or_else(|| missing("payload container", "absent with payload container type 8"))?;
    let psi = m
        .pdu_session_id
        .as_ref()
        .ok_or_else(|| missing("PDU session ID", "absent with CIoT user data"))?;
    Ok((psi.pdu_session_id(), container.value.to_vec()))
}

/// The view of a UL NAS TRANSPORT's payload.
fn ul_transport(name: &'static str, m: &NasUlNasTransport) -> Result<Transport, ViewError> {
    transport(
        name,
        &m.payload_container_type,
        &m.payload_container,
        m.pdu_session_id.as_ref(),
        m.dnn.as_ref(),
    )
}

/// The view of a DL NAS TRANSPORT's payload.
fn dl_transport(name: &'static str, m: &NasDlNasTransport) -> Result<Transport, ViewError> {
    transport(
        name,
        &m.payload_container_type,
        &m.payload_container,
        m.pdu_session_id.as_ref(),
        None,
    )
}

/// The view of a payload container of the type `container_type` (TS 24.501
/// §9.11.3.39, §9.11.3.40).
fn transport(
    name: &'static str,
    container_type: &NasPayloadContainerType,
    container: &NasPayloadContainer,
    pdu_session_id: Option<&NasPduSessionIdentity2>,
    dnn: Option<&NasDnn>,
) -> Result<Transport, ViewError> {
    let fail = |field: &'static str, reason: String| ViewError::new(name, field, reason);
    let kind = container_type.value & 0x0f;
    if kind == PayloadContainerKind::CIoT as u8 {
        let psi = pdu_session_id.ok_or_else(|| {
            fail(
                "PDU session ID",
                "absent with CIoT user data (§8.2.10.2)".into(),
            )
        })?;
        return Ok(Transport::CiotData {
            psi: psi.pdu_session_id(),
            data: container.value.to_vec(),
        });
    }
    if kind != PayloadContainerKind::N1SmInformation as u8 {
        return Ok(Transport::Other {
            container_type: kind,
        });
    }
    let message = container
        .decode_as_n1_sm_message()
        .map_err(|e| fail("payload container", format!("N1 SM information: {e}")))?;
    let Nas5gsMessage::Gsm(header, body) = &message else {
        return Err(fail(
            "payload container",
            "N1 SM information that is not a 5GSM message".into(),
        ));
    };
    let (psi, pti) = (
        header.pdu_session_identity,
        header.procedure_transaction_identity,
    );
    Ok(match body {
        Nas5gsmMessage::PduSessionEstablishmentRequest(request) => {
            let epco = pco(
                name,
                request.extended_protocol_configuration_options.as_ref(),
                PcoDirection::Uplink,
            )?;
            Transport::PduSessionEstablishmentRequest {
                psi,
                pti,
                dnn: dnn.map(|dnn| dnn_text(name, dnn)).transpose()?,
                request_pvs_information: epco.is_some_and(|pco| {
                    pco.entries
                        .iter()
                        .any(|entry| entry.identifier == pco_container::PVS_INFORMATION_REQUEST)
                }),
            }
        }
        Nas5gsmMessage::PduSessionEstablishmentAccept(accept) => {
            let epco = pco(
                name,
                accept.extended_protocol_configuration_options.as_ref(),
                PcoDirection::Downlink,
            )?;
            let pvs_name = epco
                .as_ref()
                .and_then(|pco| pco.entry(pco_container::PVS_NAME))
                .map(|entry| {
                    fqdn(&entry.contents).ok_or_else(|| {
                        fail(
                            "extended protocol configuration options",
                            "the PVS name (0038H) is no FQDN of DNS labels".into(),
                        )
                    })
                })
                .transpose()?;
            Transport::PduSessionEstablishmentAccept {
                psi,
                pti,
                control_plane_only: accept
                    .control_plane_only_indication
                    .as_ref()
                    .is_some_and(|i| i.cpoi()),
                pvs_name,
            }
        }
        Nas5gsmMessage::PduSessionEstablishmentReject(reject) => {
            Transport::PduSessionEstablishmentReject {
                psi,
                pti,
                cause: reject.fgsm_cause.cause_raw(),
            }
        }
        _ => Transport::Other {
            container_type: kind,
        },
    })
}

/// The units of an ePCO (TS 24.008 §10.5.6.3A) sent in `direction`, if the
/// IE is present.
fn pco(
    name: &'static str,
    epco: Option<&NasExtendedProtocolConfigurationOptions>,
    direction: PcoDirection,
) -> Result<Option<oxirush_nas::nas_5gs::Pco>, ViewError> {
    epco.map(|epco| {
        epco.pco(direction).ok_or_else(|| {
            ViewError::new(
                name,
                "extended protocol configuration options",
                "a unit overruns the IE (TS 24.008 §10.5.6.3A)",
            )
        })
    })
    .transpose()
}

/// A DNN as dot-separated labels (TS 24.501 §9.11.2.1B, TS 23.003 §9.1).
fn dnn_text(name: &'static str, dnn: &NasDnn) -> Result<String, ViewError> {
    let labels = dnn
        .labels()
        .ok_or_else(|| ViewError::new(name, "DNN", "a label length overruns the IE"))?;
    let labels = labels
        .into_iter()
        .map(|label| core::str::from_utf8(label).map_err(|_| ()))
        .collect::<Result<Vec<_>, ()>>()
        .map_err(|()| ViewError::new(name, "DNN", "a label is not text"))?;
    Ok(labels.join("."))
}

/// An FQDN written as DNS labels (RFC 1035 §3.1 without the root label, as
/// TS 23.003 §19.4.2 writes names in NAS), dot-separated; `None` if it is
/// not one.
fn fqdn(octets: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    let mut rest = octets;
    while let Some((&length, tail)) = rest.split_first() {
        let length = usize::from(length);
        if !(1..=63).contains(&length) || tail.len() < length {
            return None;
        }
        let (label, tail) = tail.split_at(length);
        labels.push(core::str::from_utf8(label).ok()?);
        rest = tail;
    }
    (!labels.is_empty()).then(|| labels.join("."))
}

/// The 5G-EA and 5G-IA octets of a UE security capability (TS 24.501
/// §9.11.3.54).
fn security_capability(
    name: &'static str,
    field: &'static str,
    capability: &NasUeSecurityCapability,
) -> Result<[u8; 2], ViewError> {
    match capability.value.get(..2) {
        Some(&[ea, ia]) => Ok([ea, ia]),
        _ => Err(ViewError::new(
            name,
            field,
            format!("2 octets at least, got {}", capability.value.len()),
        )),
    }
}

/// The value of a GPRS timer 2 (TS 24.008 §10.5.7.4); `None` if deactivated.
fn timer2(timer: &NasGprsTimer2) -> Option<Duration> {
    timer.to_seconds().map(Duration::from_secs)
}

/// The EAP packet of an EAP message IE (TS 24.501 §9.11.2.2).
fn eap(message: &NasEapMessage) -> Vec<u8> {
    message.value.to_vec()
}

/// The view of a 5GS mobile identity (TS 24.501 §9.11.3.4).
fn mobile_identity(
    name: &'static str,
    identity: &NasFGsMobileIdentity,
) -> Result<MobileIdentity, ViewError> {
    const FIELD: &str = "5GS mobile identity";
    let fail = |reason: &str| ViewError::new(name, FIELD, reason);
    let Some(&first) = identity.value.first() else {
        return Err(fail("empty"));
    };
    match identity.identity_type() {
        Some(MobileIdentityType::Suci) => match identity.as_suci() {
            Some(Suci::Nai(_)) => identity
                .suci_nai()
                .map(|(_, nai)| MobileIdentity::SuciNai(nai.to_owned()))
                .ok_or_else(|| fail("a SUCI in NAI format that is not text")),
            Some(Suci::Imsi(suci)) => {
                let plmn = suci.plmn();
                let scheme = suci.protection_scheme();
                let scheme_output = if scheme.is_null() {
                    suci.msin().map(|msin| msin.as_bytes().to_vec())
                } else {
                    suci.concealed_output().map(<[u8]>::to_vec)
                }
                .ok_or_else(|| fail("a SUCI without scheme output"))?;
                Ok(MobileIdentity::ImsiSuci(ImsiSuciParts {
                    mcc: plmn.mcc().to_owned(),
                    mnc: plmn.mnc().to_owned(),
                    routing_indicator: suci.routing_indicator().as_str().to_owned(),
                    protection_scheme_id: scheme.identifier(),
                    home_network_public_key_id: suci.home_network_public_key_identifier(),
                    scheme_output,
                }))
            }
            None => Err(fail(
                "a SUCI whose parts TS 23.003 §2.2B and §28.7.3 refuse",
            )),
        },
        Some(MobileIdentityType::Guti) => identity
            .as_guti()
            .map(|guti| MobileIdentity::Guti(Guti5g::from_wire(&guti)))
            .ok_or_else(|| fail("a 5G-GUTI that is not one (figure 9.11.3.4.1)")),
        _ => Ok(MobileIdentity::Other(first & 0x07)),
    }
}

/// The name of a 5GMM message type (TS 24.501 §9.7, table 9.7.1).
fn gmm_name(kind: Nas5gmmMessageType) -> &'static str {
    use Nas5gmmMessageType as T;
    match kind {
        T::RegistrationRequest => "RegistrationRequest",
        T::RegistrationAccept => "RegistrationAccept",
        T::RegistrationComplete => "RegistrationComplete",
        T::RegistrationReject => "RegistrationReject",
        T::DeregistrationRequestUeOriginating => "DeregistrationRequestUeOriginating",
        T::DeregistrationAcceptUeOriginating => "DeregistrationAcceptUeOriginating",
        T::DeregistrationRequestUeTerminated => "DeregistrationRequestUeTerminated",
        T::DeregistrationAcceptUeTerminated => "DeregistrationAcceptUeTerminated",
        T::ServiceRequest => "ServiceRequest",
        T::ServiceReject => "ServiceReject",
        T::ServiceAccept => "ServiceAccept",
        T::ControlPlaneServiceRequest => "ControlPlaneServiceRequest",
        T::NetworkSliceSpecificAuthenticationCommand => "NetworkSliceSpecificAuthenticationCommand",
        T::NetworkSliceSpecificAuthenticationComplete => {
            "NetworkSliceSpecificAuthenticationComplete"
        }
        T::NetworkSliceSpecificAuthenticationResult => "NetworkSliceSpecificAuthenticationResult",
        T::ConfigurationUpdateCommand => "ConfigurationUpdateCommand",
        T::ConfigurationUpdateComplete => "ConfigurationUpdateComplete",
        T::AuthenticationRequest => "AuthenticationRequest",
        T::AuthenticationResponse => "AuthenticationResponse",
        T::AuthenticationReject => "AuthenticationReject",
        T::AuthenticationFailure => "AuthenticationFailure",
        T::AuthenticationResult => "AuthenticationResult",
        T::IdentityRequest => "IdentityRequest",
        T::IdentityResponse => "IdentityResponse",
        T::SecurityModeCommand => "SecurityModeCommand",
        T::SecurityModeComplete => "SecurityModeComplete",
        T::SecurityModeReject => "SecurityModeReject",
        T::FiveGmmStatus => "FiveGmmStatus",
        T::Notification => "Notification",
        T::NotificationResponse => "NotificationResponse",
        T::UlNasTransport => "UlNasTransport",
        T::DlNasTransport => "DlNasTransport",
        T::RelayKeyRequest => "RelayKeyRequest",
        T::RelayKeyAccept => "RelayKeyAccept",
        T::RelayKeyReject => "RelayKeyReject",
        T::RelayAuthenticationRequest => "RelayAuthenticationRequest",
        T::RelayAuthenticationResponse => "RelayAuthenticationResponse",
        _ => "Unknown5gmmMessage",
    }
}

/// The name of a 5GSM message type (TS 24.501 §9.7, table 9.7.2).
fn gsm_name(kind: Nas5gsmMessageType) -> &'static str {
    use Nas5gsmMessageType as T;
    match kind {
        T::PduSessionEstablishmentRequest => "PduSessionEstablishmentRequest",
        T::PduSessionEstablishmentAccept => "PduSessionEstablishmentAccept",
        T::PduSessionEstablishmentReject => "PduSessionEstablishmentReject",
        T::PduSessionAuthenticationCommand => "PduSessionAuthenticationCommand",
        T::PduSessionAuthenticationComplete => "PduSessionAuthenticationComplete",
        T::PduSessionAuthenticationResult => "PduSessionAuthenticationResult",
        T::PduSessionModificationRequest => "PduSessionModificationRequest",
        T::PduSessionModificationReject => "PduSessionModificationReject",
        T::PduSessionModificationCommand => "PduSessionModificationCommand",
        T::PduSessionModificationComplete => "PduSessionModificationComplete",
        T::PduSessionModificationCommandReject => "PduSessionModificationCommandReject",
        T::PduSessionReleaseRequest => "PduSessionReleaseRequest",
        T::PduSessionReleaseReject => "PduSessionReleaseReject",
        T::PduSessionReleaseCommand => "PduSessionReleaseCommand",
        T::PduSessionReleaseComplete => "PduSessionReleaseComplete",
        T::FiveGsmStatus => "FiveGsmStatus",
        T::ServiceLevelAuthenticationCommand => "ServiceLevelAuthenticationCommand",
        T::ServiceLevelAuthenticationComplete => "ServiceLevelAuthenticationComplete",
        T::RemoteUeReport => "RemoteUeReport",
        T::RemoteUeReportResponse => "RemoteUeReportResponse",
        _ => "Unknown5gsmMessage",
    }
}

#[cfg(test)]
mod tests;
