//! Onboarding EAP relayed to an external DCS (TS 33.501 I.9.2.3): the
//! device maker runs its own DCS behind an AAA server, and the onboarding
//! network only carries the device's EAP to it, as the AUSF/NSSAAF does in
//! the AAA procedure of I.2.2.2.2.
//!
//! For a realm given to [`Network::relay_realm`], a REGISTRATION REQUEST
//! for SNPN onboarding makes the AMF queue an [`AaaRequest`] carrying an
//! EAP-Response/Identity (identifier 0, the anonymous SUCI NAI as its
//! data) for the driver, which sends it to the DCS (over RADIUS: nido-net
//! does no I/O) and hands back what the DCS answered as an [`AaaAnswer`]
//! ([`Network::handle_aaa`]). A challenge goes to the UE in an
//! AUTHENTICATION REQUEST (ngKSI and T3560 retransmission as for the
//! built-in DCS); the UE's EAP-Response goes back to the DCS in the next
//! [`AaaRequest`]. On Access-Accept, the device identity is
//! `DeviceId(manufacturer of the realm, User-Name)` and **K_AUSF is the 256
//! most significant bits of the MSK** ([`crate::ausf::kausf_from_relayed_msk`];
//! the built-in DCS takes them from the EMSK, TS 33.501 B.2.1.1). From
//! there on the registration is the built-in path's: clone detection, the
//! operator's block list, PVS admission, AUTHENTICATION RESULT
//! with the EAP-Success, security mode control with K_AMF, and K_PROV for
//! the PVS. The device must know in advance which rule applies: its factory
//! bundle says `"kausf_from": "msk"`; a device that derives from the EMSK
//! holds another K_AMF and fails security mode control.
//!
//! ## Invariants
//! - A relayed realm is relayed even if the built-in DCS serves it too:
//!   [`Network::relay_realm`] is checked first.
//! - Lock-step, as RADIUS is (RFC 3579 §2.6.3): at most one [`AaaRequest`]
//!   per UE context awaits an answer. A UE's EAP-Response is forwarded
//!   only when no answer is awaited and only if it answers the EAP-Request
//!   relayed last (same identifier, RFC 3748 §4.1); anything else (a
//!   duplicate delivered by the link, a retransmission, a response to an
//!   older request) is absorbed and reported as
//!   [`crate::NetworkEvent::Discarded`], never forwarded twice.
//! - An answer nobody awaits (late, duplicated, for a context that is
//!   gone or no longer relayed) changes nothing.
//! - A context never waits for the driver for ever: while an answer is
//!   awaited the AAA timer ([`crate::NetworkConfig::aaa_timeout`]) runs in
//!   place of T3560; on expiry the registration is refused as if the
//!   driver had answered [`AaaAnswer::Unreachable`].
//! - An unreachable DCS refuses the registration with #22 (congestion) and
//!   a T3346 drawn from [`crate::amf::Admission::t3346`] (spread, so the
//!   refused devices do not return all at once when the DCS is back); the
//!   reject is plain (no NAS security exists yet), so the UE may use its
//!   own back-off instead.
//! - A relayed exchange is bounded in rounds ([`MAX_RELAY_ROUNDS`]).

use std::time::SystemTime;

use nido_eap::packet::{Code, MethodType, Packet};
use nido_nas::build::{self, GmmCause, KeySetIdentifier};
use nido_sec::{Cause, Msk};

use super::context::{Authentication, MmState, TimerKind, UeContext};
use super::registration::NGKSI_ONBOARDING;
use super::{ConnectionId, Network};
use crate::events::NetworkEvent;

/// The most EAP-Requests one relayed conversation may bring (an EAP-TLS
/// 1.3 handshake takes a handful, a fragmented chain a dozen or so).
pub const MAX_RELAY_ROUNDS: u32 = 50;

/// An EAP packet for the external DCS of `realm`, on behalf of the UE on `conn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AaaRequest {
    /// The UE's connection: the answer goes back with it
    /// ([`Network::handle_aaa`]).
    pub conn: ConnectionId,
    /// The realm of the UE's onboarding SUCI (which DCS).
    pub realm: String,
    /// The EAP packet (an EAP-Response) to carry in RADIUS EAP-Message.
    pub eap: Vec<u8>,
}

/// What the external DCS answered (the driver turns RADIUS into this).
#[derive(Debug)]
pub enum AaaAnswer {
    /// Access-Challenge: the EAP-Request to relay to the UE.
    Challenge(Vec<u8>),
    /// Access-Accept: the EAP-Success, the MSK (from the MS-MPPE keys) and
    /// the device identity (User-Name: the device serial).
    Accept {
        /// The EAP-Success.
        eap: Vec<u8>,
        /// The MSK of the EAP session.
        msk: Msk,
        /// The device serial.
        identity: String,
    },
    /// Access-Reject, with the EAP-Failure if it carried one.
    Reject {
        /// The EAP-Failure.
        eap: Option<Vec<u8>>,
    },
    /// No answer: the driver's retransmissions ran out (RFC 5080 §2.2.1).
    Unreachable,
}

/// A UE's relayed authentication in progress.
#[derive(Debug)]
pub(crate) struct Relay {
    /// The realm (lower case) and the manufacturer whose devices its DCS
    /// authenticates, as when the relay started.
    pub(crate) realm: String,
    pub(crate) manufacturer: String,
    /// The identifier of the EAP-Request relayed to the UE last.
    pub(crate) request_id: Option<u8>,
    /// An [`AaaRequest`] went out and its answer has not come.
    pub(crate) awaiting: bool,
    /// EAP-Requests relayed so far.
    pub(crate) rounds: u32,
}

/// The EAP-Response/Identity the AMF sends first on the UE's behalf.
fn identity_response(nai: &str) -> Vec<u8> {
    Packet::response(0, MethodType::Identity, nai.as_bytes().to_vec()).to_bytes()
}

impl Network {
    /// Onboarding EAP for `realm` goes to an external DCS (TS 33.501
    /// I.9.2.3); devices it accepts are `DeviceId(manufacturer, User-Name)`.
    /// Realms compare case-insensitively. Takes precedence over the
    /// built-in DCS for the same realm ([`Network::serves_realm`]); a
    /// manufacturer name that is not a valid one refuses every device of
    /// the realm (#3) at Access-Accept.
    pub fn relay_realm(&mut self, realm: &str, manufacturer: &str) {
        self.relays
            .insert(realm.to_ascii_lowercase(), manufacturer.to_owned());
    }

    /// Whether onboarding EAP for `realm` is relayed to an external DCS.
    pub fn relays_realm(&self, realm: &str) -> bool {
        self.relays.contains_key(&realm.to_ascii_lowercase())
    }

    /// The next EAP packet to carry to an external DCS.
    pub fn poll_aaa(&mut self) -> Option<AaaRequest> {
        self.aaa_outbox.pop_front()
    }

    /// The external DCS's answer to the [`AaaRequest`] of `conn`. An answer
    /// nobody awaits is discarded (see the module invariants).
    pub fn handle_aaa(&mut self, now: SystemTime, conn: ConnectionId, answer: AaaAnswer) {
        self.on_aaa(now, conn, answer);
        self.recount(conn);
    }

    /// Phase A for a relayed realm: the context waits for the DCS's first
    /// answer to the EAP-Response/Identity.
    pub(crate) fn start_relay(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        initial: UeContext,
        nai: &str,
        realm: &str,
        manufacturer: String,
    ) {
        let realm = realm.to_ascii_lowercase();
        let mut ctx = initial;
        ctx.state = MmState::Authenticating(Authentication::Relayed(Box::new(Relay {
            realm: realm.clone(),
            manufacturer,
            request_id: None,
            awaiting: true,
            rounds: 0,
        })));
        self.ues.insert(conn, ctx);
        self.aaa_outbox.push_back(AaaRequest {
            conn,
            realm,
            eap: identity_response(nai),
        });
        self.arm(now, conn, TimerKind::Aaa, 0);
    }

    /// The UE's EAP-Response in a relayed authentication: forwarded if it
    /// answers the last relayed request and no answer is awaited.
    pub(crate) fn relay_response(&mut self, now: SystemTime, conn: ConnectionId, eap: Vec<u8>) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        let MmState::Authenticating(Authentication::Relayed(relay)) = &mut ctx.state else {
            return;
        };
        if relay.awaiting {
            let realm = relay.realm.clone();
            return self.discard(
                conn,
                format!("EAP response while the DCS of realm {realm} has not answered: absorbed"),
            );
        }
        let answers_last = match (Packet::decode(&eap), relay.request_id) {
            (Ok(p), Some(id)) => p.code == Code::Response && p.identifier == id,
            _ => false,
        };
        if !answers_last {
            return self.discard(
                conn,
                "EAP message that answers no request relayed to the UE".into(),
            );
        }
        relay.awaiting = true;
        let realm = relay.realm.clone();
        self.aaa_outbox.push_back(AaaRequest { conn, realm, eap });
        self.arm(now, conn, TimerKind::Aaa, 0);
    }

    /// The AAA timer ran out: the driver never answered.
    pub(crate) fn aaa_timed_out(&mut self, conn: ConnectionId) {
        let realm = match self.ues.get(&conn).map(|c| &c.state) {
            Some(MmState::Authenticating(Authentication::Relayed(relay))) => relay.realm.clone(),
            _ => return,
        };
        let waited = self.config.aaa_timeout.as_secs();
        self.refuse_unreachable(
            conn,
            format!("DCS of realm {realm} unreachable: no answer within {waited} s"),
        );
    }

    fn on_aaa(&mut self, now: SystemTime, conn: ConnectionId, answer: AaaAnswer) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return self.discard(conn, "AAA answer for no UE context".into());
        };
        let MmState::Authenticating(Authentication::Relayed(relay)) = &mut ctx.state else {
            return self.discard(conn, "AAA answer outside a relayed authentication".into());
        };
        if !relay.awaiting {
            return self.discard(conn, "AAA answer that nothing awaits".into());
        }
        relay.awaiting = false;
        let realm = relay.realm.clone();
        let dcs = format!("DCS of realm {realm}");
        match answer {
            AaaAnswer::Challenge(eap) => {
                let request = match Packet::decode(&eap) {
                    Ok(p) if p.code == Code::Request => p,
                    _ => {
                        return self.reject_protocol_error(
                            conn,
                            None,
                            format!("{dcs} challenged with no EAP-Request"),
                        );
                    }
                };
                relay.rounds += 1;
                if relay.rounds > MAX_RELAY_ROUNDS {
                    return self.reject_protocol_error(
                        conn,
                        None,
                        format!("{dcs} went on beyond {MAX_RELAY_ROUNDS} EAP requests"),
                    );
                }
                relay.request_id = Some(request.identifier);
                match build::authentication_request_eap(
                    KeySetIdentifier::Native(NGKSI_ONBOARDING),
                    &eap,
                ) {
                    Ok(m) => {
                        ctx.pending = vec![(m.clone(), None)];
                        self.send(conn, &m, None);
                        self.arm(now, conn, TimerKind::T3560, 0);
                    }
                    Err(e) => self.reject_protocol_error(conn, None, format!("{dcs}: {e}")),
                }
            }
            AaaAnswer::Accept { eap, msk, identity } => {
                let manufacturer = relay.manufacturer.clone();
                // What the UE is told if the network refuses after all: an
                // EAP-Failure in place of the DCS's EAP-Success.
                let success = Packet::decode(&eap)
                    .ok()
                    .filter(|p| p.code == Code::Success);
                let failure = Packet::failure(
                    success
                        .as_ref()
                        .map_or(relay.request_id.unwrap_or(0), |p| p.identifier),
                )
                .to_bytes();
                if success.is_none() {
                    return self.reject(
                        conn,
                        Cause::PROTOCOL_ERROR_UNSPECIFIED,
                        None,
                        format!("{dcs} accepted without an EAP-Success"),
                        Some(&failure),
                    );
                }
                let device = match crate::DeviceId::new(&manufacturer, &identity) {
                    Ok(d) => d,
                    Err(e) => {
                        let shown: String = identity
                            .chars()
                            .take(80)
                            .map(|c| if c.is_control() { '?' } else { c })
                            .collect();
                        return self.reject(
                            conn,
                            Cause::ILLEGAL_UE,
                            None,
                            format!(
                                "{dcs} accepted the invalid device identity {shown:?} \
                                 (manufacturer {manufacturer:?}): {e}"
                            ),
                            Some(&failure),
                        );
                    }
                };
                // The operator's own block list applies to devices that
                // another DCS authenticated too (the built-in DCS checks it
                // in certificate validation, nido_pki::TrustStore).
                if self.dcs.is_blocked(&device) {
                    return self.reject(
                        conn,
                        Cause::ILLEGAL_UE,
                        Some(device.clone()),
                        format!("device {device}: on the operator block list ({dcs} accepted it)"),
                        Some(&failure),
                    );
                }
                let kausf = match crate::ausf::kausf_from_relayed_msk(&msk) {
                    Ok(k) => k,
                    Err(e) => {
                        return self.reject(
                            conn,
                            Cause::PROTOCOL_ERROR_UNSPECIFIED,
                            Some(device),
                            e.to_string(),
                            Some(&failure),
                        );
                    }
                };
                self.onboarding_authenticated(now, conn, device, &kausf, &eap);
            }
            AaaAnswer::Reject { eap } => {
                // Only an EAP-Failure goes to the UE.
                let eap = eap.filter(|e| Packet::decode(e).is_ok_and(|p| p.code == Code::Failure));
                self.reject(
                    conn,
                    Cause::ILLEGAL_UE,
                    None,
                    format!("{dcs} rejected the device (Access-Reject)"),
                    eap.as_deref(),
                );
            }
            AaaAnswer::Unreachable => self.refuse_unreachable(conn, format!("{dcs} unreachable")),
        }
    }

    /// REGISTRATION REJECT #22 with a T3346 drawn from the admission range,
    /// and the context forgotten.
    fn refuse_unreachable(&mut self, conn: ConnectionId, reason: String) {
        let t3346 = self.draw_t3346();
        match build::registration_reject(GmmCause::Congestion, Some(t3346.as_secs())) {
            Ok(m) => self.send(conn, &m, None),
            Err(e) => self.discard(conn, format!("REGISTRATION REJECT: {e}")),
        }
        self.events.push_back(NetworkEvent::Refused {
            presented: None,
            conn,
            device: None,
            cause: Cause::CONGESTION,
            reason: format!("{reason} (T3346 {} s)", t3346.as_secs()),
        });
        self.remove(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_response_carries_the_nai() {
        let eap = identity_response("type5.rid0.schid0.userid0@dcs.acme.example");
        let p = Packet::decode(&eap).unwrap();
        assert_eq!(p.code, Code::Response);
        assert_eq!(p.identifier, 0);
        assert_eq!(
            p.method,
            Some((
                MethodType::Identity,
                b"type5.rid0.schid0.userid0@dcs.acme.example".to_vec()
            ))
        );
    }
}
