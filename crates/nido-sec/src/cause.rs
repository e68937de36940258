//! The 5GMM cause (TS 24.501 §9.11.3.2): why the network refused a
//! registration, a service or a message, and why a UE refused the network.
//! One type for every crate (the AMF's rejects, the UE's reactions, the
//! audit trail), named constants for the values nido sends or reacts to,
//! and every other octet kept as it came (a UE acts on a value it does not
//! know as on #111, TS 24.501 Annex A.5, which `nido_ue`'s reaction does by
//! matching the values it knows), so what was received is reported as
//! received.

use core::fmt;

/// A 5GMM cause value (TS 24.501 §9.11.3.2, Table 9.11.3.2.1). Ordered and
/// hashed by its octet; Display gives `#22 congestion`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cause(pub u8);

impl Cause {
    /// #3 Illegal UE.
    pub const ILLEGAL_UE: Self = Self(3);
    /// #6 Illegal ME.
    pub const ILLEGAL_ME: Self = Self(6);
    /// #7 5GS services not allowed.
    pub const SERVICES_NOT_ALLOWED: Self = Self(7);
    /// #9 UE identity cannot be derived by the network.
    pub const UE_IDENTITY_CANNOT_BE_DERIVED: Self = Self(9);
    /// #20 MAC failure (AUTHENTICATION FAILURE).
    pub const MAC_FAILURE: Self = Self(20);
    /// #21 Synch failure (AUTHENTICATION FAILURE).
    pub const SYNCH_FAILURE: Self = Self(21);
    /// #22 Congestion.
    pub const CONGESTION: Self = Self(22);
    /// #23 UE security capabilities mismatch (SECURITY MODE REJECT).
    pub const UE_SECURITY_CAPABILITIES_MISMATCH: Self = Self(23);
    /// #24 Security mode rejected, unspecified.
    pub const SECURITY_MODE_REJECTED: Self = Self(24);
    /// #26 Non-5G authentication unacceptable.
    pub const NON_5G_AUTHENTICATION_UNACCEPTABLE: Self = Self(26);
    /// #74 Temporarily not authorized for this SNPN.
    pub const TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN: Self = Self(74);
    /// #75 Permanently not authorized for this SNPN.
    pub const PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN: Self = Self(75);
    /// #90 Payload was not forwarded.
    pub const PAYLOAD_NOT_FORWARDED: Self = Self(90);
    /// #93 Onboarding services terminated.
    pub const ONBOARDING_SERVICES_TERMINATED: Self = Self(93);
    /// #96 Invalid mandatory information.
    pub const INVALID_MANDATORY_INFORMATION: Self = Self(96);
    /// #111 Protocol error, unspecified.
    pub const PROTOCOL_ERROR_UNSPECIFIED: Self = Self(111);

    /// The octet on the wire.
    pub const fn octet(self) -> u8 {
        self.0
    }

    /// TS 24.501's name of the values nido knows, `None` for the others.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            3 => "illegal UE",
            5 => "PEI not accepted",
            6 => "illegal ME",
            7 => "5GS services not allowed",
            9 => "UE identity cannot be derived by the network",
            10 => "implicitly deregistered",
            11 => "PLMN not allowed",
            20 => "MAC failure",
            21 => "synch failure",
            22 => "congestion",
            23 => "UE security capabilities mismatch",
            24 => "security mode rejected, unspecified",
            26 => "non-5G authentication unacceptable",
            27 => "N1 mode not allowed",
            62 => "no network slices available",
            72 => "non-3GPP access to 5GCN not allowed",
            74 => "temporarily not authorized for this SNPN",
            75 => "permanently not authorized for this SNPN",
            90 => "payload was not forwarded",
            91 => "DNN not supported or not subscribed in the slice",
            93 => "onboarding services terminated",
            95 => "semantically incorrect message",
            96 => "invalid mandatory information",
            97 => "message type non-existent or not implemented",
            98 => "message type not compatible with the protocol state",
            99 => "information element non-existent or not implemented",
            100 => "conditional IE error",
            101 => "message not compatible with the protocol state",
            111 => "protocol error, unspecified",
            _ => return None,
        })
    }
}

impl From<u8> for Cause {
    fn from(octet: u8) -> Self {
        Self(octet)
    }
}

impl From<Cause> for u8 {
    fn from(cause: Cause) -> Self {
        cause.0
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "#{} {name}", self.0),
            None => write!(f, "#{}", self.0),
        }
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cause({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_unknown_values() {
        assert_eq!(Cause::CONGESTION.to_string(), "#22 congestion");
        assert_eq!(
            format!("{:?}", Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN),
            "Cause(#74 temporarily not authorized for this SNPN)"
        );
        assert_eq!(Cause(200).to_string(), "#200");
        assert_eq!(u8::from(Cause::ONBOARDING_SERVICES_TERMINATED), 93);
        assert_eq!(Cause::from(75), Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN);
    }
}
