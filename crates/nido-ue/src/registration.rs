//! Registration: phase A (SNPN onboarding with EAP-TLS) and phase C
//! (initial registration with the provisioned subscription and 5G-AKA),
//! security mode control and the reject causes (TS 24.501 §5.5.1, §5.4).

use std::time::SystemTime;

use nido_eap::{EapTlsPeer, PeerOutcome, PeerStep};
use nido_nas::build::{self, ABBA, ImsiSuciParts};
use nido_nas::security::{Algorithms, Protection, Role, SecurityContext};
use nido_nas::view::Inbound;
use nido_se::SeAkaError;
use nido_sec::aka::AkaFailure;
use nido_sec::suci::msin_to_bcd;
use nido_sec::{Cause, Supi, kdf};

use crate::device::{Phase, Send, Session, Step, TimerKind};
use crate::{Device, DeviceEvent, DeviceState, RejectMessage};

impl Device {
    /// Phase A: REGISTRATION REQUEST type 101 with the anonymous onboarding SUCI.
    pub(crate) fn start_onboarding(&mut self, now: SystemTime) {
        self.set_state(DeviceState::Onboarding);
        let realm = self.config.dcs_realm.clone();
        let outer = build::anonymous_onboarding_nai(&realm);
        let peer = match EapTlsPeer::new(&self.config.credentials, self.config.eap, &outer, now) {
            Ok(p) => p,
            Err(e) => {
                self.events.push_back(DeviceEvent::OnboardingFailed {
                    reason: e.to_string(),
                });
                return self.fail();
            }
        };
        let request = match build::registration_request_snpn_onboarding(&realm, true) {
            Ok(r) => r,
            Err(e) => {
                self.events.push_back(DeviceEvent::OnboardingFailed {
                    reason: e.to_string(),
                });
                return self.fail();
            }
        };
        self.release_connection();
        self.phase = Phase::Onboarding {
            peer: Box::new(peer),
            request: request.clone(),
            step: Step::Authenticating,
        };
        self.send_procedure(now, request, crate::device::Send::Plain);
        self.start_timer(now, TimerKind::T3510);
    }

    /// Phase C: REGISTRATION REQUEST type 001 with a SUCI concealed with the
    /// provisioned home network key.
    pub(crate) fn start_registration(&mut self, now: SystemTime) {
        self.set_state(DeviceState::Registering);
        let Some(public) = self.public.clone() else {
            return self.start_onboarding(now);
        };
        let request = match suci(&public).and_then(|parts| {
            build::registration_request_initial(&parts, true).map_err(|e| e.to_string())
        }) {
            Ok(r) => r,
            Err(e) => {
                self.events
                    .push_back(DeviceEvent::PackageRefused { reason: e });
                return self.fail();
            }
        };
        self.release_connection();
        self.phase = Phase::Registering {
            request: request.clone(),
            step: Step::Authenticating,
            supi: public.supi.clone(),
            snn: public.serving_network.snn.clone(),
        };
        self.send_procedure(now, request, Send::Plain);
        self.start_timer(now, TimerKind::T3510);
    }

    pub(crate) fn on_registration_message(
        &mut self,
        now: SystemTime,
        inbound: Inbound,
        protected: bool,
    ) {
        match inbound {
            Inbound::AuthenticationRequest {
                ngksi,
                abba,
                rand,
                autn,
                eap,
            } => self.on_authentication_request(now, ngksi, &abba, rand, autn, eap),
            Inbound::AuthenticationResult { eap, .. } => self.on_eap(now, &eap),
            Inbound::AuthenticationReject { .. } => {
                // Only an authentication in progress can be rejected; a
                // plain AUTHENTICATION REJECT at any other time is a forgery.
                let authenticating = matches!(
                    self.phase,
                    Phase::Onboarding {
                        step: Step::Authenticating,
                        ..
                    } | Phase::Registering {
                        step: Step::Authenticating | Step::SecurityMode,
                        ..
                    }
                );
                if !authenticating {
                    return self.discard("AUTHENTICATION REJECT outside an authentication".into());
                }
                self.events.push_back(DeviceEvent::AuthenticationRejected);
                // TS 24.501 §5.4.1.3.5 / §5.4.1.2.3: the UE considers its
                // credentials invalid for this network.
                self.release_connection();
                self.back_off(now, self.config.timers.t3502);
            }
            Inbound::RegistrationReject { cause, t3346, eap } => {
                if let (Some(eap), Phase::Onboarding { peer, .. }) = (eap, &mut self.phase) {
                    let _ = peer.handle(&eap);
                }
                if !matches!(
                    self.phase,
                    Phase::Onboarding { .. } | Phase::Registering { .. }
                ) {
                    return self.discard("REGISTRATION REJECT outside a registration".into());
                }
                self.events.push_back(DeviceEvent::Rejected {
                    message: RejectMessage::RegistrationReject,
                    cause,
                });
                self.release_connection();
                self.react(now, cause, t3346, protected);
            }
            Inbound::RegistrationAccept { guti, .. } => self.on_registration_accept(now, guti),
            _ => {}
        }
    }

    fn on_authentication_request(
        &mut self,
        now: SystemTime,
        ngksi: u8,
        abba: &[u8],
        rand: Option<[u8; 16]>,
        autn: Option<[u8; 16]>,
        eap: Option<Vec<u8>>,
    ) {
        let _ = ngksi;
        match (&self.phase, rand, autn, eap) {
            (Phase::Onboarding { .. }, _, _, Some(eap)) => self.on_eap(now, &eap),
            (Phase::Registering { .. }, Some(rand), Some(autn), _) => {
                self.on_aka_challenge(now, abba, &rand, &autn)
            }
            _ => self.discard("AUTHENTICATION REQUEST outside an authentication".into()),
        }
    }

    /// An EAP request (in AUTHENTICATION REQUEST) or EAP-Success/Failure (in
    /// AUTHENTICATION RESULT) for the onboarding peer.
    fn on_eap(&mut self, now: SystemTime, eap: &[u8]) {
        let Phase::Onboarding { peer, step, .. } = &mut self.phase else {
            return self.discard("EAP message outside onboarding".into());
        };
        if *step != Step::Authenticating {
            return self.discard("EAP message after authentication".into());
        }
        match peer.handle(eap) {
            PeerStep::Send(response) => match build::authentication_response_eap(&response) {
                Ok(m) => {
                    self.send(now, &m, Send::Plain);
                    self.progress(now);
                }
                Err(e) => self.discard(format!("EAP response: {e}")),
            },
            PeerStep::Done(PeerOutcome::Success(keys)) => {
                let outer = build::anonymous_onboarding_nai(&self.config.dcs_realm);
                let snn = self.config.onboarding_network.snn.clone();
                // K_AMF for the NAS context, and K_PROV (from the same
                // K_AUSF) to open the credential package in phase B: only the
                // network that ran this EAP-TLS session can seal one.
                let derived = Supi::nai(&outer)
                    .map_err(|e| e.to_string())
                    .and_then(|supi| {
                        // The EMSK for the network's own DCS, the MSK for
                        // a DCS behind an AAA relay (TS 33.501 I.9.2.3):
                        // the factory bundle says which.
                        let kausf = keys
                            .kausf(self.config.kausf_from)
                            .map_err(|e| e.to_string())?;
                        let kseaf =
                            kdf::kseaf(&kausf, snn.as_bytes()).map_err(|e| e.to_string())?;
                        let kamf = kdf::kamf(&kseaf, &supi, &ABBA).map_err(|e| e.to_string())?;
                        let k_prov = kdf::kprov(&kausf).map_err(|e| e.to_string())?;
                        Ok((kamf, k_prov))
                    });
                match derived {
                    Ok((kamf, k_prov)) => {
                        self.kamf = Some(kamf);
                        self.k_prov = Some(k_prov);
                        *step = Step::SecurityMode;
                        self.progress(now);
                    }
                    Err(e) => self.discard(format!("K_AMF: {e}")),
                }
            }
            PeerStep::Done(PeerOutcome::Failure(reason)) => {
                self.events.push_back(DeviceEvent::OnboardingFailed {
                    reason: reason.to_string(),
                });
                // The REGISTRATION REJECT (if any) carries the cause; until
                // then the device keeps T3510 running.
            }
            PeerStep::Ignored(why) => self.discard(format!("EAP: {why}")),
        }
    }

    /// 5G-AKA (TS 33.501 §6.1.3.2): the secure element checks MAC-A and SQN.
    fn on_aka_challenge(&mut self, now: SystemTime, abba: &[u8], rand: &[u8; 16], autn: &[u8; 16]) {
        let Phase::Registering {
            snn, supi, step, ..
        } = &mut self.phase
        else {
            return;
        };
        if *step == Step::Accept {
            return self.discard("AUTHENTICATION REQUEST after security mode".into());
        }
        let (snn, supi) = (snn.clone(), supi.clone());
        match self.se.authenticate(rand, autn, snn.as_bytes()) {
            Ok(aka) => {
                let kamf = kdf::kseaf(&aka.kausf, snn.as_bytes())
                    .and_then(|kseaf| kdf::kamf(&kseaf, &supi, abba));
                match kamf {
                    Ok(kamf) => {
                        self.mac_failures = 0;
                        self.kamf = Some(kamf);
                        if let Phase::Registering { step, .. } = &mut self.phase {
                            *step = Step::SecurityMode;
                        }
                        let response =
                            build::authentication_response_res_star(aka.res_star.expose());
                        self.send(now, &response, Send::Plain);
                        self.progress(now);
                    }
                    Err(e) => self.discard(format!("K_AMF: {e}")),
                }
            }
            Err(SeAkaError::Aka(AkaFailure::SynchFailure { auts })) => {
                let failure = build::authentication_failure_synch_failure(&auts);
                self.send(now, &failure, Send::Plain);
                self.progress(now);
            }
            Err(SeAkaError::Aka(AkaFailure::MacFailure)) => {
                self.mac_failures += 1;
                self.events.push_back(DeviceEvent::NetworkNotAuthentic);
                let failure = build::authentication_failure_mac_failure();
                self.send(now, &failure, Send::Plain);
                if self.mac_failures >= 3 {
                    // TS 24.501 §5.4.1.3.7: treat the network as not genuine.
                    self.mac_failures = 0;
                    self.release_connection();
                    self.back_off(now, self.config.timers.t3502);
                }
            }
            Err(SeAkaError::Aka(AkaFailure::NotFiveG)) => {
                if let Ok(failure) = build::authentication_failure(
                    build::GmmCause::NonFiveGAuthenticationUnacceptable,
                ) {
                    self.send(now, &failure, Send::Plain);
                }
            }
            Err(e) => self.discard(format!("secure element: {e}")),
        }
    }

    /// SECURITY MODE COMMAND (TS 24.501 §5.4.2.3), header type 3. Nothing
    /// changes before the MAC verified: the UE refuses null integrity
    /// (NIA0 is for unauthenticated emergency sessions only, TS 33.501
    /// §5.5.2, and nido's UE does not advertise it) and any algorithm it did
    /// not advertise (SECURITY MODE REJECT #24), then derives the context
    /// from K_AMF and verifies the MAC (a command that fails is discarded
    /// silently), then checks the replayed capabilities (#23 on a
    /// mismatch, TS 24.501 §5.4.2.5), and only then takes the context into
    /// use and moves to the REGISTRATION ACCEPT.
    pub(crate) fn on_security_mode_command(&mut self, now: SystemTime, pdu: &[u8]) {
        let request = match &self.phase {
            Phase::Onboarding { request, step, .. } | Phase::Registering { request, step, .. }
                if *step != Step::Authenticating =>
            {
                request.clone()
            }
            _ => return self.discard("SECURITY MODE COMMAND outside a registration".into()),
        };
        let Some(inner) = pdu.get(7..) else {
            return self.discard("SECURITY MODE COMMAND too short".into());
        };
        // As a receiver (TS 24.501 clause 7): optional IEs that §7.6 and
        // §7.7.1 have ignored are dropped, a faulty mandatory IE discards it.
        let command = match nido_nas::receive(inner)
            .map(|r| r.message)
            .map_err(|e| e.to_string())
            .and_then(|m| Inbound::read(&m).map_err(|e| e.to_string()))
        {
            Ok(Inbound::SecurityModeCommand {
                nea,
                nia,
                ngksi,
                replayed_ue_security_capability,
                ..
            }) => (nea, nia, ngksi, replayed_ue_security_capability),
            Ok(other) => return self.discard(format!("{} with header type 3", other.name())),
            Err(e) => return self.discard(e),
        };
        let (nea, nia, ngksi, replayed) = command;
        if let Some(reason) = unacceptable_algorithms(nia, nea) {
            return self.reject_security_mode(
                now,
                build::GmmCause::SecurityModeRejectedUnspecified,
                reason,
            );
        }
        // A retransmitted command for the context already taken into use is
        // verified with it (its COUNTs continue).
        let reuse = self
            .sec
            .as_ref()
            .is_some_and(|s| s.ngksi() == ngksi && s.algorithms() == Algorithms { nia, nea });
        let fresh = if reuse {
            match self.sec.as_mut().map(|sec| sec.unprotect(pdu)) {
                Some(Ok(_)) => None,
                Some(Err(e)) => return self.discard(format!("SECURITY MODE COMMAND: {e}")),
                None => return,
            }
        } else {
            let Some(kamf) = self.kamf.as_ref() else {
                return self
                    .discard("SECURITY MODE COMMAND before authentication completed".into());
            };
            match SecurityContext::new(kamf, Algorithms { nia, nea }, ngksi, Role::Ue) {
                Ok(mut ctx) => match ctx.unprotect(pdu) {
                    Ok(_) => Some(ctx),
                    Err(e) => {
                        // Discarded (TS 24.501 §5.4.2.5), and reported: under
                        // the keys this device derived, the network's command
                        // does not verify (another serving network name?).
                        let reason = match e {
                            nido_nas::security::NasSecError::MacFailure => "MAC failure".into(),
                            ref other => other.to_string(),
                        };
                        self.events
                            .push_back(DeviceEvent::SecurityModeFailed { reason });
                        return self.discard(format!("SECURITY MODE COMMAND: {e}"));
                    }
                },
                Err(e) => return self.discard(format!("SECURITY MODE COMMAND: {e}")),
            }
        };
        if replayed != [build::UE_EA_ALGORITHMS, build::UE_IA_ALGORITHMS] {
            // Bidding down (TS 24.501 §5.4.2.5, cause #23); the context is
            // not taken into use.
            return self.reject_security_mode(
                now,
                build::GmmCause::UeSecurityCapabilitiesMismatch,
                "replayed UE security capabilities differ".into(),
            );
        }
        if let Some(ctx) = fresh {
            self.sec = Some(ctx);
        }
        if let Phase::Onboarding { step, .. } | Phase::Registering { step, .. } = &mut self.phase {
            *step = Step::Accept;
        }
        match build::security_mode_complete(None, Some(&request)) {
            Ok(complete) => {
                self.send(
                    now,
                    &complete,
                    Send::Protected(Protection::IntegrityCipheredNewContext),
                );
                self.progress(now);
            }
            Err(e) => self.discard(format!("SECURITY MODE COMPLETE: {e}")),
        }
    }

    /// SECURITY MODE REJECT (sent without protection: no context was taken
    /// into use), reported as an event.
    fn reject_security_mode(&mut self, now: SystemTime, cause: build::GmmCause, reason: String) {
        self.events.push_back(DeviceEvent::SecurityModeRejected {
            cause: Cause(cause as u8),
            reason,
        });
        if let Ok(reject) = build::security_mode_reject(cause) {
            self.send(now, &reject, Send::Plain);
        }
    }

    fn on_registration_accept(&mut self, now: SystemTime, guti: Option<nido_nas::view::Guti5g>) {
        self.not_authorized = 0;
        self.unknown_identity = 0;
        self.unprotected_rejects = 0;
        self.refused_with = None;
        // What the registration leads to: phase B after onboarding, phase D
        // after registering with the subscription.
        let (next, state, supi) = match &self.phase {
            Phase::Onboarding {
                step: Step::Accept, ..
            } => (
                Phase::Provisioning(Box::default()),
                DeviceState::Provisioning,
                None,
            ),
            Phase::Registering {
                step: Step::Accept,
                supi,
                ..
            } => (
                Phase::Registered(Session {
                    queued: std::mem::take(&mut self.pending_bursts),
                    ..Session::default()
                }),
                DeviceState::Active,
                Some(supi.clone()),
            ),
            // A retransmitted ACCEPT (our COMPLETE was lost): complete again.
            Phase::Provisioning(_) | Phase::Registered(_) => {
                return self.send_registration_complete(now);
            }
            _ => return self.discard("REGISTRATION ACCEPT outside a registration".into()),
        };
        self.guti = guti;
        self.send_registration_complete(now);
        self.attempts = 0;
        self.last = None;
        self.timer = None;
        self.phase = next;
        self.set_state(state);
        if let Some(supi) = supi {
            self.events.push_back(DeviceEvent::Active { supi });
        }
        self.request_pdu_session(now);
    }

    fn send_registration_complete(&mut self, now: SystemTime) {
        let complete = build::registration_complete();
        self.send(
            now,
            &complete,
            Send::Protected(Protection::IntegrityCiphered),
        );
    }
}

/// The IMSI SUCI of a provisioned subscription (TS 23.003 §2.2B, TS 33.501 Annex C).
fn suci(public: &nido_prov::PublicPart) -> Result<ImsiSuciParts, String> {
    let Supi::Imsi(digits) = &public.supi else {
        return Err(format!("{} is not an IMSI", public.supi));
    };
    let sn = &public.serving_network;
    let msin = digits
        .strip_prefix(&format!("{}{}", sn.mcc, sn.mnc))
        .ok_or_else(|| format!("{digits} is not of {}{}", sn.mcc, sn.mnc))?;
    let key = &public.home_network_key;
    let bcd = msin_to_bcd(msin).map_err(|e| e.to_string())?;
    let scheme_output = key.conceal(&bcd).map_err(|e| e.to_string())?;
    Ok(ImsiSuciParts {
        mcc: sn.mcc.clone(),
        mnc: sn.mnc.clone(),
        routing_indicator: public.routing_indicator.clone(),
        protection_scheme_id: key.profile.scheme_id(),
        home_network_public_key_id: key.key_id,
        scheme_output,
    })
}

/// Why the UE cannot accept the algorithms a SECURITY MODE COMMAND selects,
/// if it cannot: null integrity (TS 33.501 §5.5.2: only for an
/// unauthenticated emergency session, which nido's UE never has), or an
/// algorithm missing from the UE security capability it sent (TS 24.501
/// §9.11.3.54: bit 8 of each octet is algorithm 0, bit 5 algorithm 3).
fn unacceptable_algorithms(nia: u8, nea: u8) -> Option<String> {
    let advertised = |octet: u8, algorithm: u8| algorithm < 4 && octet & (0x80 >> algorithm) != 0;
    if nia == 0 {
        Some("the command selects NIA0 (null integrity)".into())
    } else if !advertised(build::UE_IA_ALGORITHMS, nia) {
        Some(format!("NIA{nia} was not advertised"))
    } else if !advertised(build::UE_EA_ALGORITHMS, nea) {
        Some(format!("NEA{nea} was not advertised"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nido_prov::package::ServingNetwork;
    use nido_sec::suci::{HomeNetworkKey, Profile, Sidf, bcd_to_msin};

    fn public(supi: &str, key: &HomeNetworkKey) -> nido_prov::PublicPart {
        nido_prov::PublicPart {
            package_id: [1; 16],
            supi: Supi::parse(supi).unwrap(),
            amf: [0x80, 0],
            home_network_key: key.public_key(),
            routing_indicator: "0012".into(),
            serving_network: ServingNetwork::new("999", "99", None).unwrap(),
            third_party: Vec::new(),
            not_after_unix: u64::MAX,
            owner: None,
        }
    }

    #[test]
    fn the_suci_conceals_the_msin_for_the_home_network_key() {
        for profile in [Profile::A, Profile::B] {
            let key = HomeNetworkKey::generate(profile, 3).unwrap();
            let parts = suci(&public("imsi-999990000000042", &key)).unwrap();
            assert_eq!((parts.mcc.as_str(), parts.mnc.as_str()), ("999", "99"));
            assert_eq!(parts.routing_indicator, "0012");
            assert_eq!(parts.protection_scheme_id, profile.scheme_id());
            assert_eq!(parts.home_network_public_key_id, 3);
            let mut sidf = Sidf::new();
            sidf.insert(key);
            let bcd = sidf
                .deconceal(parts.protection_scheme_id, 3, &parts.scheme_output)
                .unwrap();
            assert_eq!(bcd_to_msin(&bcd).unwrap(), "0000000042");
        }
    }

    #[test]
    fn a_supi_of_another_network_or_a_nai_has_no_imsi_suci() {
        let key = HomeNetworkKey::generate(Profile::A, 1).unwrap();
        assert!(suci(&public("imsi-001010000000042", &key)).is_err());
        assert!(suci(&public("nai-device@example.com", &key)).is_err());
    }
}
