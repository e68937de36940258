//! What a device tells its driver: PDUs to send, events, its state.

use nido_sec::{Cause, Supi};
use thiserror::Error;

/// A NAS PDU the device wants sent uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The PDU as it goes on the link (protected once a context exists).
    pub pdu: Vec<u8>,
    /// The plain message's name, e.g. `"RegistrationRequest"`.
    pub message: &'static str,
    /// The plain message's encoding when the PDU is protected and the
    /// device was configured with `trace`.
    pub plain: Option<Vec<u8>>,
    /// The device's NAS signalling connection (see [`crate::Device::connection`]).
    pub connection: u32,
}

/// The message that carried a network's refusal ([`DeviceEvent::Rejected`]),
/// so drivers and tests match a kind, not a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectMessage {
    /// REGISTRATION REJECT (TS 24.501 §8.2.9).
    RegistrationReject,
    /// DEREGISTRATION REQUEST, UE terminated (TS 24.501 §8.2.14).
    DeregistrationRequest,
    /// DL NAS TRANSPORT with a 5GMM cause (TS 24.501 §8.2.11).
    DlNasTransport,
    /// 5GMM STATUS (TS 24.501 §8.2.29).
    Status,
}

impl RejectMessage {
    /// The message's name as logs, traces and `--json` output give it
    /// (`nido_nas::view::message_name`'s spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::RegistrationReject => "RegistrationReject",
            Self::DeregistrationRequest => "DeregistrationRequestUeTerminated",
            Self::DlNasTransport => "DlNasTransport",
            Self::Status => "5GMMStatus",
        }
    }
}

impl std::fmt::Display for RejectMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Powered off, or not started.
    Off,
    /// Phase A: onboarding registration with EAP-TLS.
    Onboarding,
    /// Phase B: registered for onboarding, getting its subscription.
    Provisioning,
    /// Leaving the onboarding registration.
    Deregistering,
    /// Phase C: registering with its own subscription (5G-AKA).
    Registering,
    /// Phase D: registered with an active subscription.
    Active,
    /// Waiting before the next attempt (a reject cause or repeated failures).
    BackingOff,
    /// Gave up: the network refused it for good (#3, #75) or the device
    /// cannot continue; only a power cycle or operator action helps.
    Failed,
}

/// How a burst left the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstPath {
    /// From idle: CONTROL PLANE SERVICE REQUEST with the data.
    ControlPlaneServiceRequest,
    /// Connected: UL NAS TRANSPORT, payload container type 8.
    UlNasTransport,
}

/// Something that happened, for the driver, logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// The state changed.
    State {
        /// Before.
        from: DeviceState,
        /// After.
        to: DeviceState,
    },
    /// The credential package was installed in the secure element.
    Provisioned {
        /// The new subscription's SUPI.
        supi: Supi,
        /// The owner the subscription belongs to, if any.
        owner: Option<String>,
        /// How many third-party credentials came with it.
        third_party: usize,
    },
    /// The device erased its credential package (keeping an erasure
    /// receipt) to renew it by onboarding again (issue #16 item 5):
    /// because it ends within `Timers::renew_before`, or because the
    /// network refused it as ended (#7, integrity protected).
    Renewing {
        /// The id of the package erased.
        package_id: [u8; 16],
        /// When its validity ends (or ended), seconds since the Unix epoch.
        not_after_unix: u64,
        /// Whether the network refused it as ended (`false`: the device
        /// renewed it before).
        refused: bool,
    },
    /// 5G-AKA with the new subscription succeeded and the device is registered.
    Active {
        /// The SUPI.
        supi: Supi,
    },
    /// A burst left the device.
    BurstSent {
        /// Its length.
        bytes: usize,
        /// How.
        path: BurstPath,
    },
    /// SERVICE ACCEPT (TS 24.501 §5.6.1.4.1) answered the CONTROL PLANE
    /// SERVICE REQUEST that carried a burst from idle: the network took
    /// the data (the end of phase D).
    BurstAccepted,
    /// Downlink CIoT user data arrived.
    Downlink {
        /// The PDU session.
        psi: u8,
        /// The data.
        data: Vec<u8>,
    },
    /// The network rejected a procedure.
    Rejected {
        /// The message that carried the cause.
        message: RejectMessage,
        /// The 5GMM cause it carried.
        cause: Cause,
    },
    /// AUTHENTICATION REJECT (TS 24.501 §8.2.5, no cause): the network
    /// did not accept the device's authentication.
    AuthenticationRejected,
    /// PDU SESSION ESTABLISHMENT REJECT (TS 24.501 §8.3.3).
    SessionRejected {
        /// The PDU session identity.
        psi: u8,
        /// The 5GSM cause (TS 24.501 §9.11.4.2).
        cause: u8,
    },
    /// A reject that would take the credentials out of use arrived without
    /// integrity protection (maybe forged): the device keeps its
    /// credentials and tries again after `wait` (T3247, TS 24.501 §5.3.20.2).
    UnprotectedReject {
        /// The 5GMM cause.
        cause: Cause,
        /// The T3247 value drawn.
        wait: std::time::Duration,
    },
    /// REGISTRATION REJECT #22 "congestion" with a T3346 value (TS 24.501
    /// §5.5.1.2.5): the device backs off for `wait` and its registration
    /// attempt counter starts again. `wait` is `t3346` when the reject was
    /// integrity protected, a value drawn from `Timers::t3346_default`
    /// when it was not (a forged reject must not choose how long the
    /// device stays away).
    Congestion {
        /// The T3346 value the reject carried.
        t3346: std::time::Duration,
        /// Whether the reject was integrity protected.
        protected: bool,
        /// How long the device waits.
        wait: std::time::Duration,
    },
    /// The device refused a SECURITY MODE COMMAND (TS 24.501 §5.4.2.5) and
    /// answered SECURITY MODE REJECT with `cause` (#23 or #24).
    SecurityModeRejected {
        /// The 5GMM cause sent.
        cause: Cause,
        /// Why.
        reason: String,
    },
    /// A SECURITY MODE COMMAND did not verify under the keys the device
    /// derived (TS 24.501 §5.4.2.5: it is discarded): typically the network
    /// is not the one the device took it for, so K_SEAF, bound to the
    /// serving network name, differs on the two sides (a wrong `--snpn`, a
    /// network announcing another identity). T3510 then ends the attempt.
    SecurityModeFailed {
        /// Why (`"MAC failure"` for a MAC that does not verify).
        reason: String,
    },
    /// The network failed authentication (MAC failure): it is not the
    /// network the subscription belongs to.
    NetworkNotAuthentic,
    /// The EAP-TLS exchange failed on the device's side (e.g. the DCS
    /// certificate did not verify).
    OnboardingFailed {
        /// Why.
        reason: String,
    },
    /// The credential package did not open or install.
    PackageRefused {
        /// Why.
        reason: String,
    },
    /// A received PDU was discarded.
    Discarded {
        /// Why.
        reason: String,
    },
    /// A timer expired and the message was sent again.
    Retransmitted {
        /// The timer.
        timer: &'static str,
    },
}

impl DeviceEvent {
    /// Why the device failed to get through, if this event says so, in a
    /// few words fit to count devices by (drivers keep each device's last
    /// one and report a device that did not end active under it):
    /// `"reject #22"` (a REGISTRATION REJECT's 5GMM cause),
    /// `"authentication reject"`, `"deregistered #N"`, `"security mode:
    /// MAC failure"` ([`DeviceEvent::SecurityModeFailed`]), `"security
    /// mode reject #N"` (the device refused the command), `"authentication:
    /// network not authentic"` (5G-AKA MAC failure), `"EAP-TLS: ..."`,
    /// `"package: ..."`. `None` for events that are no failure.
    pub fn failure(&self) -> Option<String> {
        match self {
            Self::Rejected {
                message: RejectMessage::RegistrationReject,
                cause,
            } => Some(format!("reject #{}", cause.octet())),
            Self::AuthenticationRejected => Some("authentication reject".into()),
            Self::Rejected {
                message: RejectMessage::DeregistrationRequest,
                cause,
            } => Some(format!("deregistered #{}", cause.octet())),
            Self::SecurityModeFailed { reason } => Some(format!("security mode: {reason}")),
            Self::SecurityModeRejected { cause, .. } => {
                Some(format!("security mode reject #{}", cause.octet()))
            }
            Self::NetworkNotAuthentic => Some("authentication: network not authentic".into()),
            Self::OnboardingFailed { reason } => Some(format!("EAP-TLS: {reason}")),
            Self::PackageRefused { reason } => Some(format!("package: {reason}")),
            _ => None,
        }
    }
}

/// Why [`crate::Device::send_data`] refused a burst.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The device is not registered with an established PDU session yet.
    #[error("not active with a PDU session")]
    NotReady,
    /// The data is empty or longer than a payload container carries.
    #[error("data of {0} octets: 1 to 65535 allowed")]
    Size(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_named_for_counting() {
        let failure = |e: DeviceEvent| e.failure();
        assert_eq!(
            failure(DeviceEvent::Rejected {
                message: RejectMessage::RegistrationReject,
                cause: Cause::CONGESTION
            }),
            Some("reject #22".into())
        );
        assert_eq!(
            failure(DeviceEvent::AuthenticationRejected),
            Some("authentication reject".into())
        );
        assert_eq!(
            failure(DeviceEvent::SecurityModeFailed {
                reason: "MAC failure".into()
            }),
            Some("security mode: MAC failure".into())
        );
        assert_eq!(
            failure(DeviceEvent::OnboardingFailed {
                reason: "EAP-Failure received".into()
            }),
            Some("EAP-TLS: EAP-Failure received".into())
        );
        assert_eq!(
            failure(DeviceEvent::NetworkNotAuthentic).as_deref(),
            Some("authentication: network not authentic")
        );
        assert_eq!(
            failure(DeviceEvent::Rejected {
                message: RejectMessage::Status,
                cause: Cause::INVALID_MANDATORY_INFORMATION
            }),
            None
        );
        assert_eq!(failure(DeviceEvent::Retransmitted { timer: "T3510" }), None);
    }
}
