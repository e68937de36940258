//! A device's EAP-TLS 1.3 peer behind a RADIUS client, as hostapd's
//! eapol_test is one: what `nido bench radius` runs by the hundred against
//! a DCS (nido's or FreeRADIUS), and what the tests drive [`crate::RadiusDcs`]
//! with. Sans-IO: it builds Access-Requests (unsigned; the caller's
//! [`nido_radius::client::Pending`] gives each its Identifier, Request
//! Authenticator and Message-Authenticator) and reads verified replies.
//!
//! At the end it checks what eapol_test checks: the MSK the DCS sent in
//! MS-MPPE-Recv-Key || MS-MPPE-Send-Key (RFC 2548) equals the MSK the peer
//! exported itself (RFC 9190 §2.3).

use std::time::SystemTime;

use nido_eap::packet::{MethodType, Packet as EapPacket};
use nido_eap::{DeviceCredentials, EapError, EapTlsPeer, PeerOutcome, PeerStep, Settings};
use nido_radius::Secret;
use nido_radius::packet::{Code, Packet, attr};

/// What to do after a reply.
#[derive(Debug)]
pub enum SupplicantStep {
    /// Send this Access-Request (unsigned).
    Send(Packet),
    /// The conversation is over.
    Done(Finished),
    /// The reply was not for this conversation's current state; nothing changed.
    Ignored(&'static str),
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// Access-Accept with EAP-Success, and the MPPE keys equal the peer's MSK.
    Accepted {
        /// The User-Name of the Access-Accept (the device serial, for a DCS).
        user_name: Option<String>,
    },
    /// Access-Accept whose MPPE keys are missing or differ from the peer's MSK.
    KeyMismatch,
    /// Access-Reject, or the peer refused the DCS.
    Refused(String),
}

/// One device's conversation.
pub struct Supplicant {
    peer: EapTlsPeer,
    state: Option<Vec<u8>>,
    accepted_user_name: Option<Option<String>>,
}

impl core::fmt::Debug for Supplicant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Supplicant").finish_non_exhaustive()
    }
}

impl Supplicant {
    /// Starts a conversation of the device holding `credentials`, whose
    /// outer identity is `outer` (anonymous@realm): the supplicant and the
    /// first Access-Request (EAP-Response/Identity, RFC 3579 §2.1).
    pub fn start(
        credentials: &DeviceCredentials,
        outer: &str,
        now: SystemTime,
    ) -> Result<(Self, Packet), EapError> {
        let peer = EapTlsPeer::new(credentials, Settings::default(), outer, now)?;
        let identity = EapPacket::response(0, MethodType::Identity, outer.as_bytes().to_vec());
        let s = Self {
            peer,
            state: None,
            accepted_user_name: None,
        };
        let request = s.request(&identity.to_bytes());
        Ok((s, request))
    }

    fn request(&self, eap: &[u8]) -> Packet {
        let mut p = Packet::new(Code::AccessRequest, 0, [0; 16]);
        // Calling-Station-Id and NAS-Port-Type as a NAS would send them
        // (RFC 3580 §3.20, §3.21: 15 = Ethernet; a DCS ignores them).
        let _ = p.push(attr::NAS_PORT_TYPE, &15u32.to_be_bytes());
        p.push_eap_message(eap);
        if let Some(state) = &self.state {
            let _ = p.push(attr::STATE, state);
        }
        p
    }

    /// Handles a reply that `Pending::on_response` verified;
    /// `request_authenticator` is that of the Access-Request it answers (the
    /// MPPE keys are encrypted with it).
    pub fn handle(
        &mut self,
        reply: &Packet,
        secret: &Secret,
        request_authenticator: &[u8; 16],
    ) -> SupplicantStep {
        let Some(eap) = reply.eap_message() else {
            return match reply.code {
                Code::AccessReject => {
                    SupplicantStep::Done(Finished::Refused("Access-Reject".into()))
                }
                _ => SupplicantStep::Ignored("a reply without EAP-Message"),
            };
        };
        if let Some(state) = reply.attr(attr::STATE) {
            self.state = Some(state.to_vec());
        }
        if reply.code == Code::AccessAccept {
            self.accepted_user_name = Some(
                reply
                    .attr(attr::USER_NAME)
                    .map(|u| String::from_utf8_lossy(u).into_owned()),
            );
        }
        match self.peer.handle(&eap) {
            PeerStep::Send(response) => SupplicantStep::Send(self.request(&response)),
            PeerStep::Ignored(why) => SupplicantStep::Ignored(why),
            PeerStep::Done(PeerOutcome::Failure(reason)) => {
                SupplicantStep::Done(Finished::Refused(reason.to_string()))
            }
            PeerStep::Done(PeerOutcome::Success(keys)) => {
                let Some(user_name) = self.accepted_user_name.take() else {
                    return SupplicantStep::Done(Finished::Refused(
                        "EAP-Success outside an Access-Accept".into(),
                    ));
                };
                match reply.msk(secret, request_authenticator) {
                    Ok(Some(msk)) if msk[..] == keys.msk.expose()[..] => {
                        SupplicantStep::Done(Finished::Accepted { user_name })
                    }
                    _ => SupplicantStep::Done(Finished::KeyMismatch),
                }
            }
        }
    }
}
