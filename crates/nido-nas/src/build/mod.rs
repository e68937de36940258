//! Builders of every NAS message nido sends (TS 24.501 clause 8).
//!
//! Each function is pure: it takes typed inputs and returns a plain
//! [`Nas5gsMessage`] (5GMM, or 5GSM for the session messages), or a
//! [`BuildError`] when an input cannot be encoded as the clause requires. No
//! function protects a message: the caller's NAS security context does that
//! (integrity, ciphering, and the partial ciphering of a CONTROL PLANE SERVICE
//! REQUEST, TS 24.501 §4.4.6).
//!
//! The functions are grouped by procedure:
//!
//! - registration, de-registration and 5GMM STATUS (`mm`): REGISTRATION
//!   REQUEST for SNPN onboarding and for initial registration, ACCEPT,
//!   COMPLETE, REJECT; DEREGISTRATION REQUEST and ACCEPT in both directions;
//!   5GMM STATUS;
//! - authentication and NAS security mode control (`auth`): AUTHENTICATION
//!   REQUEST, RESPONSE, RESULT, FAILURE, REJECT for EAP and for 5G AKA;
//!   SECURITY MODE COMMAND and COMPLETE;
//! - transport of session management and of CIoT user data (`transport`): UL
//!   and DL NAS TRANSPORT with a 5GSM message or CIoT user data, PDU SESSION
//!   ESTABLISHMENT REQUEST and ACCEPT, CONTROL PLANE SERVICE REQUEST.
//!
//! Every builder is re-exported here, so callers write `build::registration_complete()`.

mod auth;
mod mm;
mod transport;

pub use auth::*;
pub use mm::*;
pub use transport::*;

pub use oxirush_nas::nas_5gs::{
    CiotSmallDataDownlinkDataExpected, CipheringAlgorithm, GmmCause, GsmCause, Guti,
    IntegrityAlgorithm, KeySetIdentifier, Nas5gsMessage, NasFGsMobileIdentity,
    NasUeSecurityCapability, PduSessionTypeValue, Plmn, SscModeValue,
};

use oxirush_nas::nas_5gs::{NasEapMessage, NasKeySetIdentifier, NasSNssai};

/// The ABBA parameter nido sends in AUTHENTICATION REQUEST and RESULT and
/// uses in the K_AMF derivation (TS 24.501 §9.11.3.10, TS 33.501 A.7.1): the
/// value 0x0000 of the features of TS 33.501 Rel-15 onwards.
pub const ABBA: [u8; 2] = [0x00, 0x00];

/// The largest EAP packet an EAP message IE carries (TS 24.501 §9.11.2.2).
pub const MAX_EAP_MESSAGE_LEN: usize = 1500;

/// The 5GS encryption algorithms nido's UE supports, as octet 3 of the UE
/// security capability IE (TS 24.501 §9.11.3.54): bit 8 is 5G-EA0, bit 7
/// 128-5G-EA1, bit 6 128-5G-EA2, bit 5 128-5G-EA3.
pub const UE_EA_ALGORITHMS: u8 = 0b1111_0000;

/// The 5GS integrity algorithms nido's UE supports, as octet 4 of the UE
/// security capability IE (TS 24.501 §9.11.3.54): bit 8 (5G-IA0) clear, as
/// the null integrity algorithm is for unauthenticated emergency sessions
/// only (TS 33.501 §5.5.2); bits 7 to 5 are 128-5G-IA1 to 128-5G-IA3.
pub const UE_IA_ALGORITHMS: u8 = 0b0111_0000;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An input is outside what the IE can carry or what the clause allows.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input or IE at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// oxirush-nas refused a value of an IE.
    #[error("IE value refused: {0}")]
    Value(#[from] oxirush_nas::ValueError),
    /// oxirush-utils refused an identity (SUCI, 5G-GUTI, PLMN, routing indicator).
    #[error("identity refused: {0}")]
    Identity(#[from] oxirush_nas::identity::Error),
    /// oxirush-nas could not encode a message that is carried in a container.
    #[error("NAS encoding failed: {0}")]
    Nas(#[from] oxirush_nas::nas_5gs::NasError),
}

impl BuildError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// An S-NSSAI: slice/service type and optional slice differentiator
/// (TS 24.501 §9.11.2.8; no mapped values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snssai {
    /// Slice/service type (SST).
    pub sst: u8,
    /// Slice differentiator (SD), if any.
    pub sd: Option<[u8; 3]>,
}

impl Snssai {
    fn to_ie(self) -> NasSNssai {
        NasSNssai::from_sst_sd(self.sst, self.sd)
    }
}

/// The UE security capability nido's UE sends (TS 24.501 §9.11.3.54): the
/// two-octet form with [`UE_EA_ALGORITHMS`] and [`UE_IA_ALGORITHMS`], no EPS
/// algorithms (nido's UE has no S1 mode).
pub fn ue_security_capability() -> NasUeSecurityCapability {
    NasUeSecurityCapability::from_capabilities(UE_EA_ALGORITHMS, UE_IA_ALGORITHMS)
}

/// The NAS key set identifier IE of `ksi` (TS 24.501 §9.11.3.32).
fn ngksi_ie(ksi: KeySetIdentifier) -> Result<NasKeySetIdentifier, BuildError> {
    Ok(NasKeySetIdentifier::from_key_set_identifier(ksi)?)
}

/// The EAP message IE of `eap` (TS 24.501 §9.11.2.2): an EAP packet of 4 to
/// 1500 octets whose own length field (RFC 3748 §4) matches its length.
fn eap_ie(eap: &[u8]) -> Result<NasEapMessage, BuildError> {
    if !(4..=MAX_EAP_MESSAGE_LEN).contains(&eap.len()) {
        return Err(BuildError::invalid(
            "eap-message",
            format!("an EAP packet has 4 to 1500 octets, got {}", eap.len()),
        ));
    }
    let declared = usize::from(u16::from_be_bytes([eap[2], eap[3]]));
    if declared != eap.len() {
        return Err(BuildError::invalid(
            "eap-message",
            format!(
                "the EAP length field says {declared} octets, the packet has {}",
                eap.len()
            ),
        ));
    }
    Ok(NasEapMessage::new(eap.to_vec()))
}

/// A PDU session identity of a 5GSM message or NAS transport: 1 to 15
/// (TS 24.007 §11.2.3.1b; 0 is "no PDU session identity assigned").
fn check_psi(psi: u8) -> Result<u8, BuildError> {
    if (1..=15).contains(&psi) {
        Ok(psi)
    } else {
        Err(BuildError::invalid(
            "pdu-session-identity",
            format!("1 to 15, got {psi}"),
        ))
    }
}

#[cfg(test)]
mod tests;
