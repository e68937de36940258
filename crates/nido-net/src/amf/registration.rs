//! Registration in the AMF: REGISTRATION REQUEST, authentication (EAP-TLS
//! with the DCS for SNPN onboarding, 5G-AKA with the UDM/AUSF for initial
//! registration), security mode control, REGISTRATION ACCEPT/COMPLETE
//! (TS 24.501 §5.5.1.2, §5.4.1, §5.4.2; design doc steps 1-6, 11-12).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use nido_eap::{ServerOutcome, ServerStep};
use nido_nas::build::{
    self, ABBA, CipheringAlgorithm, IntegrityAlgorithm, KeySetIdentifier, NasUeSecurityCapability,
    RegistrationAcceptParams, SecurityModeCommandParams,
};
use nido_nas::security::{Algorithms, Protection, Role, SecurityContext};
use nido_nas::view::{Guti5g, MobileIdentity};
use nido_sec::{Cause, KAmf, KAusf, ResStar, Supi};

use super::context::{Authentication, MmState, TimerKind, UeContext};
use super::{ConnectionId, Network, Outstanding};
use crate::ausf::{self, AkaSession};
use crate::events::NetworkEvent;
use crate::udm::UdmError;
use nido_sec::aka::HeAv;

/// The ngKSI of the onboarding context and of the 5G-AKA context.
pub(super) const NGKSI_ONBOARDING: u8 = 0;
const NGKSI_AKA: u8 = 1;

/// A copy of a vector (its secrets are zeroizing types that clone).
fn copy(av: &HeAv) -> HeAv {
    HeAv {
        rand: av.rand,
        autn: av.autn,
        xres_star: av.xres_star.clone(),
        kausf: av.kausf.clone(),
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let _ = aws_lc_rs::rand::fill(&mut out);
    out
}

/// Algorithm selection (TS 33.501 §6.7.1): 128-NIA2/128-NEA2 first, then
/// the others the UE supports, never NIA0.
fn select(capability: [u8; 2]) -> Option<Algorithms> {
    let [ea, ia] = capability;
    let nia = [2u8, 1, 3].into_iter().find(|n| ia & (0x80 >> n) != 0)?;
    let nea = [2u8, 1, 3, 0].into_iter().find(|n| ea & (0x80 >> n) != 0)?;
    Some(Algorithms { nia, nea })
}

fn ciphering(nea: u8) -> CipheringAlgorithm {
    match nea {
        1 => CipheringAlgorithm::NEA1,
        2 => CipheringAlgorithm::NEA2,
        3 => CipheringAlgorithm::NEA3,
        _ => CipheringAlgorithm::NEA0,
    }
}

fn integrity(nia: u8) -> IntegrityAlgorithm {
    match nia {
        1 => IntegrityAlgorithm::NIA1,
        3 => IntegrityAlgorithm::NIA3,
        _ => IntegrityAlgorithm::NIA2,
    }
}

impl Network {
    pub(crate) fn on_registration_request(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        pdu: &[u8],
        registration_type: u8,
        identity: MobileIdentity,
        capability: Option<[u8; 2]>,
    ) {
        // TS 24.501 §5.5.1.2.8 c): the same request again continues the
        // procedure; a different one aborts it. (A context with a secure
        // exchange never gets here: `handle_plain` discards plain messages
        // on it.)
        if self.ues.get(&conn).is_some_and(|c| c.initial == pdu) {
            return self.discard(conn, "retransmitted REGISTRATION REQUEST".into());
        }
        let Some(capability) = capability else {
            return self.reject(
                conn,
                Cause::INVALID_MANDATORY_INFORMATION,
                None,
                "no UE security capability".into(),
                None,
            );
        };
        // Admission control, before anything costly (de-concealment,
        // EAP-TLS, vectors, the store). A request that replaces the
        // procedure running on its connection is admitted like a new one,
        // counted with the one it replaces: replacing cannot start
        // procedures beyond the limit (issue #17, finding 5); a
        // retransmission never gets here.
        let starts = matches!(
            (registration_type, &identity),
            (5, MobileIdentity::SuciNai(_)) | (1, MobileIdentity::ImsiSuci(_))
        );
        if starts && !self.admit(conn, registration_type == 5) {
            return self.remove(conn);
        }
        self.remove(conn);
        match (registration_type, identity) {
            (5, MobileIdentity::SuciNai(nai)) => {
                self.start_onboarding(now, conn, pdu, capability, &nai)
            }
            (1, MobileIdentity::ImsiSuci(parts)) => {
                // SUCIs that fail cost an ECDH each and hold nothing: they
                // are paid from a bucket; while it is empty, every SUCI
                // waits (#22, T3346) rather than the ECDH being done.
                if !self.suci_budget.available(now) {
                    return self.reject(
                        conn,
                        Cause::CONGESTION,
                        None,
                        "too many SUCIs failed de-concealment recently".into(),
                        None,
                    );
                }
                let mcc_mnc = format!("{}{}", parts.mcc, parts.mnc);
                match self.udm.deconceal_imsi(
                    &mcc_mnc,
                    parts.protection_scheme_id,
                    parts.home_network_public_key_id,
                    &parts.scheme_output,
                ) {
                    Ok(supi) => {
                        let mut ctx = UeContext::new(now, pdu.to_vec(), MmState::SecurityMode);
                        ctx.ue_capability = capability;
                        ctx.ngksi = NGKSI_AKA;
                        ctx.supi = Some(supi.clone());
                        self.ues.insert(conn, ctx);
                        self.challenge(now, conn, &supi, 0, Vec::new());
                    }
                    Err(e) => {
                        self.suci_budget.take(now);
                        self.reject(conn, e.gmm_cause(), None, e.to_string(), None)
                    }
                }
            }
            (5 | 1, _) => self.reject(
                conn,
                Cause::UE_IDENTITY_CANNOT_BE_DERIVED,
                None,
                "the mobile identity is not one this registration type takes".into(),
                None,
            ),
            (other, _) => self.reject_protocol_error(
                conn,
                None,
                format!("registration type {other} is not supported"),
            ),
        }
    }

    /// Phase A: EAP-TLS with the DCS of the SUCI's realm, the built-in
    /// one or, for a relayed realm (checked first), an external one over
    /// AAA ([`Network::relay_realm`]).
    fn start_onboarding(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        pdu: &[u8],
        capability: [u8; 2],
        nai: &str,
    ) {
        let realm = nai.rsplit_once('@').map(|(_, r)| r).unwrap_or_default();
        let supi = match Supi::nai(nai) {
            Ok(s) => s,
            Err(e) => {
                return self.reject(
                    conn,
                    Cause::UE_IDENTITY_CANNOT_BE_DERIVED,
                    None,
                    e.to_string(),
                    None,
                );
            }
        };
        if let Some(manufacturer) = self.relays.get(&realm.to_ascii_lowercase()).cloned() {
            let mut ctx = UeContext::new(now, pdu.to_vec(), MmState::SecurityMode);
            ctx.onboarding = true;
            ctx.ue_capability = capability;
            ctx.ngksi = NGKSI_ONBOARDING;
            ctx.supi = Some(supi);
            return self.start_relay(now, conn, ctx, nai, realm, manufacturer);
        }
        let Some(started) = self.dcs.start(realm, now, 1) else {
            return self.reject(
                conn,
                Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
                None,
                format!("no DCS serves the realm {realm:?}"),
                None,
            );
        };
        let (server, start) = match started {
            Ok(s) => s,
            Err(e) => {
                return self.reject_protocol_error(conn, None, format!("DCS: {e}"));
            }
        };
        let request = match build::authentication_request_eap(
            KeySetIdentifier::Native(NGKSI_ONBOARDING),
            &start,
        ) {
            Ok(r) => r,
            Err(e) => {
                return self.reject_protocol_error(conn, None, e.to_string());
            }
        };
        let mut ctx = UeContext::new(
            now,
            pdu.to_vec(),
            MmState::Authenticating(Authentication::EapTls(Box::new(server))),
        );
        ctx.onboarding = true;
        ctx.ue_capability = capability;
        ctx.ngksi = NGKSI_ONBOARDING;
        ctx.supi = Some(supi);
        ctx.pending = vec![(request.clone(), None)];
        self.ues.insert(conn, ctx);
        self.send(conn, &request, None);
        self.arm(now, conn, TimerKind::T3560, 0);
    }

    /// How long an unanswered 5G-AKA challenge is sent again to new
    /// registrations of its SUPI: as long as a context may wait for its
    /// answer (T3560 and its retransmissions).
    fn challenge_lifetime(&self) -> std::time::Duration {
        self.config.t3560 * (self.config.max_retransmissions + 1)
    }

    /// The 5G-AKA vector for `supi`'s challenge. A fresh authentication
    /// (`fresh`, not after a resynchronisation) reuses an unanswered, unexpired
    /// challenge of the SUPI (TS 33.102 §6.3.2 and Annex C: an unused
    /// vector may be sent again; the USIM accepts an SQN once): replayed
    /// SUCIs then move the SQN at most once per challenge lifetime, not
    /// once per replay (issue #17, finding 5). Otherwise a new vector from
    /// the UDM (SQN stored first), which becomes the SUPI's outstanding
    /// one. Returns the vector and its shared used flag.
    fn vector_for(
        &mut self,
        now: SystemTime,
        supi: &Supi,
        fresh: bool,
    ) -> Result<(HeAv, Arc<AtomicBool>), UdmError> {
        if fresh
            && let Some(o) = self.vectors.get(supi)
            && o.expires > now
            && !o.used.load(Ordering::Acquire)
            // Nothing changed the subscription since (another AMF's vector,
            // a resynchronisation, a new K): one read, no write.
            && self.udm.still_under(self.store.as_ref(), supi, &o.under)?
        {
            return Ok((copy(&o.av), o.used.clone()));
        }
        let snn = self.config.serving_network.snn.clone();
        let (av, under) = self
            .udm
            .issue(self.store.as_mut(), supi, random(), snn.as_bytes())?;
        let used = Arc::new(AtomicBool::new(false));
        if self.vectors.len() >= self.vectors_prune_at {
            self.vectors
                .retain(|_, o| o.expires > now && !o.used.load(Ordering::Acquire));
            self.vectors_prune_at = (self.vectors.len() * 2).max(1024);
        }
        self.vectors.insert(
            supi.clone(),
            Outstanding {
                av: copy(&av),
                under,
                used: used.clone(),
                expires: now + self.challenge_lifetime(),
            },
        );
        Ok((av, used))
    }

    /// Phase C: the SUPI's 5G-AKA challenge ([`Network::vector_for`]) and
    /// the AUTHENTICATION REQUEST; `earlier_rands` are those of the
    /// challenges it replaces (see [`AkaSession::earlier_rands`]).
    fn challenge(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        supi: &Supi,
        resyncs: u32,
        earlier_rands: Vec<[u8; 16]>,
    ) {
        let (av, used) = match self.vector_for(now, supi, resyncs == 0) {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, UdmError::Unknown(_)) {
                    // A SUCI that de-conceals to no subscription costs
                    // what a failed one does.
                    self.suci_budget.take(now);
                }
                return self.reject(conn, e.gmm_cause(), None, e.to_string(), None);
            }
        };
        let session = AkaSession::new(av, resyncs, earlier_rands);
        let request = build::authentication_request_5g_aka(
            KeySetIdentifier::Native(NGKSI_AKA),
            &session.challenge.rand,
            &session.challenge.autn,
        );
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return self.reject_protocol_error(conn, None, e.to_string());
            }
        };
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.state = MmState::Authenticating(Authentication::Aka(Box::new(session)));
            ctx.pending = vec![(request.clone(), None)];
            ctx.aka_used = Some(used);
        }
        self.send(conn, &request, None);
        self.arm(now, conn, TimerKind::T3560, 0);
    }

    pub(crate) fn on_authentication_response(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        res_star: Option<[u8; 16]>,
        eap: Option<Vec<u8>>,
    ) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        match (&mut ctx.state, res_star, eap) {
            (MmState::Authenticating(Authentication::EapTls(server)), _, Some(eap)) => {
                let step = server.handle(&eap);
                self.on_eap_step(now, conn, step);
            }
            (MmState::Authenticating(Authentication::Relayed(_)), _, Some(eap)) => {
                self.relay_response(now, conn, eap);
            }
            (MmState::Authenticating(Authentication::Aka(_)), Some(res), _) => {
                let MmState::Authenticating(Authentication::Aka(session)) =
                    std::mem::replace(&mut ctx.state, MmState::SecurityMode)
                else {
                    return;
                };
                let supi = ctx.supi.clone();
                let used = ctx.aka_used.take();
                let snn = self.config.serving_network.snn.clone();
                let confirmed = session.confirm(&ResStar::new(res), snn.as_bytes());
                // The challenge may have gone to several connections (a
                // reused vector): its RES* is taken once, so one captured
                // on one connection does not authenticate another.
                let confirmed = match confirmed {
                    Ok(kseaf) if used.is_some_and(|u| u.swap(true, Ordering::AcqRel)) => {
                        drop(kseaf);
                        Err(nido_sec::aka::AkaFailure::ResStarMismatch)
                    }
                    other => other,
                };
                if confirmed.is_ok()
                    && let Some(supi) = &supi
                {
                    self.vectors.remove(supi);
                }
                match (confirmed, supi) {
                    (Ok(kseaf), Some(supi)) => {
                        let now_unix = nido_prov::unix_seconds(now);
                        let activation = NetworkEvent::Authenticated {
                            conn,
                            supi: supi.clone(),
                            activated: true,
                        };
                        match self.udm.authenticated(
                            self.store.as_mut(),
                            &supi,
                            now_unix,
                            &activation,
                        ) {
                            Ok(activated) => {
                                self.events.push_back(NetworkEvent::Authenticated {
                                    conn,
                                    supi: supi.clone(),
                                    activated,
                                });
                            }
                            // The store cannot be reached: #22 once the
                            // context is in use, protected (see
                            // `UeContext::congested`).
                            Err(e) if e.gmm_cause() == Cause::CONGESTION => {
                                if let Some(ctx) = self.ues.get_mut(&conn) {
                                    ctx.congested = Some(format!("activation: {e}"));
                                }
                            }
                            Err(e) => {
                                return self.reject(
                                    conn,
                                    e.gmm_cause(),
                                    None,
                                    format!("activation: {e}"),
                                    None,
                                );
                            }
                        }
                        match ausf::kamf(&kseaf, &supi, &ABBA) {
                            Ok(kamf) => self.start_security_mode(now, conn, kamf, Vec::new()),
                            Err(e) => self.reject_protocol_error(conn, None, e.to_string()),
                        }
                    }
                    (Err(e), _) => {
                        // TS 24.501 §5.4.1.3.5: AUTHENTICATION REJECT.
                        if let Ok(reject) = build::authentication_reject(None) {
                            self.send(conn, &reject, None);
                        }
                        let device = None;
                        self.events.push_back(NetworkEvent::Refused {
                            presented: None,
                            conn,
                            device,
                            cause: Cause(0),
                            reason: format!("5G-AKA: {e}"),
                        });
                        self.remove(conn);
                    }
                    (Ok(_), None) => self.remove(conn),
                }
            }
            _ => self.discard(conn, "AUTHENTICATION RESPONSE not expected".into()),
        }
    }

    fn on_eap_step(&mut self, now: SystemTime, conn: ConnectionId, step: ServerStep) {
        match step {
            ServerStep::Send(request) => {
                match build::authentication_request_eap(
                    KeySetIdentifier::Native(NGKSI_ONBOARDING),
                    &request,
                ) {
                    Ok(m) => {
                        if let Some(ctx) = self.ues.get_mut(&conn) {
                            ctx.pending = vec![(m.clone(), None)];
                        }
                        self.send(conn, &m, None);
                        self.arm(now, conn, TimerKind::T3560, 0);
                    }
                    Err(e) => self.reject_protocol_error(conn, None, e.to_string()),
                }
            }
            ServerStep::Done(last, ServerOutcome::Success(auth)) => {
                let device = auth.device.id.clone();
                if let Some(ctx) = self.ues.get_mut(&conn) {
                    ctx.device_cert = Some(Box::new(auth.device.clone()));
                }
                match ausf::kausf_from_eap(&auth.keys) {
                    Ok(kausf) => self.onboarding_authenticated(now, conn, device, &kausf, &last),
                    Err(e) => self.reject_protocol_error(conn, Some(device), e.to_string()),
                }
            }
            ServerStep::Done(last, ServerOutcome::Failure(reason)) => self.reject_presented(
                conn,
                reason.gmm_cause(),
                None,
                match &reason {
                    nido_eap::FailureReason::Refused(r) => r.device.clone(),
                    _ => None,
                },
                reason.to_string(),
                Some(&last),
            ),
            ServerStep::Ignored(why) => self.discard(conn, format!("EAP: {why}")),
        }
    }

    /// A device authenticated in onboarding, by the built-in DCS (K_AUSF
    /// from the EMSK) or by an external one over AAA (from the MSK): the
    /// rest is the same. Clone detection, K_AMF and K_PROV from `kausf`,
    /// PVS admission, then AUTHENTICATION RESULT with the
    /// DCS's EAP-Success (`success`) and security mode control.
    pub(crate) fn onboarding_authenticated(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        device: crate::DeviceId,
        kausf: &KAusf,
        success: &[u8],
    ) {
        self.events.push_back(NetworkEvent::DeviceAuthenticated {
            conn,
            device: device.clone(),
        });
        // Admission first. A store that cannot be reached refuses the
        // registration with #22 after security mode control, protected (see
        // `UeContext::congested`); any other refusal at once, but for an
        // identity that holds a subscription: that device may have been
        // factory reset, and its erasure receipt travels in the protected
        // provisioning exchange, where the PVS decides (#74 without one).
        let mut congested = None;
        let mut receipt_pending = false;
        match self.pvs.admits(self.store.as_ref(), &device) {
            Ok(()) => {}
            Err(crate::pvs::PvsRefusal::AlreadyProvisioned(..)) => receipt_pending = true,
            Err(refusal) if refusal.gmm_cause() != Cause::CONGESTION => {
                return self.reject(
                    conn,
                    refusal.gmm_cause(),
                    Some(device),
                    refusal.to_string(),
                    None,
                );
            }
            Err(refusal) => congested = Some(refusal.to_string()),
        }
        // Clone detection: one onboarding per device identity at a time.
        // Not for an identity waiting for its receipt: such onboardings are
        // not indexed, and the PVS's receipt check picks the one that holds
        // it, so a clone holding the index cannot keep a reset device out.
        if !receipt_pending
            && let Some(&other) = self.onboarding_index.get(&device)
            && other != conn
        {
            let active = self.ues.get(&other).is_some_and(|c| {
                now.duration_since(c.last_uplink)
                    .map_or(true, |quiet| quiet < self.config.clone_window)
            });
            if active {
                self.events.push_back(NetworkEvent::CloneSuspected {
                    device: device.clone(),
                    active: other,
                    refused: conn,
                });
                return self.reject(
                    conn,
                    Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
                    Some(device),
                    "the device identity is onboarding on another connection".into(),
                    None,
                );
            }
            self.remove(other);
        }
        let snn = self.config.serving_network.snn.clone();
        let Some(supi) = self.ues.get(&conn).and_then(|c| c.supi.clone()) else {
            return;
        };
        // K_AMF for the NAS context, and the PVS's sealing key for this
        // device's package (issue #17), from the same K_AUSF.
        let (kamf, k_prov) = match ausf::onboarding_keys(kausf, snn.as_bytes(), &supi, &ABBA) {
            Ok(k) => k,
            Err(e) => {
                return self.reject_protocol_error(conn, Some(device), e.to_string());
            }
        };
        let refused = congested.is_some();
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.device = Some(device.clone());
            ctx.k_prov = Some(k_prov);
            ctx.state = MmState::SecurityMode;
            ctx.congested = congested;
            ctx.receipt_pending = receipt_pending;
        }
        if !refused && !receipt_pending {
            self.onboarding_index.insert(device, conn);
        }
        match build::authentication_result(KeySetIdentifier::Native(NGKSI_ONBOARDING), success) {
            Ok(result) => {
                self.send(conn, &result, None);
                self.start_security_mode(now, conn, kamf, vec![(result, None)]);
            }
            Err(e) => self.reject_protocol_error(conn, None, e.to_string()),
        }
    }

    pub(crate) fn on_authentication_failure(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        cause: Cause,
        auts: Option<[u8; 14]>,
    ) {
        let Some(ctx) = self.ues.get(&conn) else {
            return;
        };
        let (MmState::Authenticating(Authentication::Aka(session)), Some(supi)) =
            (&ctx.state, ctx.supi.clone())
        else {
            return self.discard(conn, "AUTHENTICATION FAILURE not expected".into());
        };
        let (rand, resyncs) = (session.challenge.rand, session.resyncs);
        let earlier = session.earlier_rands.clone();
        // A synch failure for a challenge this authentication already
        // replaced (a delayed copy of an earlier AUTHENTICATION REQUEST
        // reached the UE after the new one was sent): its AUTS was computed
        // with the earlier RAND and has been acted on. Discarded; the UE's
        // answer to the current challenge follows.
        if let (Cause::SYNCH_FAILURE, Some(auts)) = (cause, auts)
            && !earlier.is_empty()
        {
            let stale = earlier.iter().find_map(|r| {
                match self.udm.auts_verifies(self.store.as_ref(), &supi, r, &auts) {
                    Ok(true) => Some(Ok(())),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                }
            });
            match stale {
                Some(Ok(())) => {
                    return self.discard(
                        conn,
                        "AUTHENTICATION FAILURE #21 for an earlier challenge of this authentication"
                            .into(),
                    );
                }
                Some(Err(e)) => {
                    return self.reject(
                        conn,
                        e.gmm_cause(),
                        None,
                        format!("resynchronisation: {e}"),
                        None,
                    );
                }
                None => {}
            }
        }
        match (cause, auts) {
            (Cause::SYNCH_FAILURE, Some(auts)) if resyncs < self.config.max_resyncs => {
                match self
                    .udm
                    .resynchronise(self.store.as_mut(), &supi, &rand, &auts)
                {
                    Ok(()) => {
                        self.events
                            .push_back(NetworkEvent::Resynchronised { supi: supi.clone() });
                        let mut earlier = earlier;
                        earlier.push(rand);
                        self.challenge(now, conn, &supi, resyncs + 1, earlier);
                    }
                    Err(e) => self.reject(
                        conn,
                        e.gmm_cause(),
                        None,
                        format!("resynchronisation: {e}"),
                        None,
                    ),
                }
            }
            _ => {
                // #20 MAC failure, #26 non-5G: the UE does not accept this
                // network's challenge; abort (TS 24.501 §5.4.1.3.7).
                self.events.push_back(NetworkEvent::Refused {
                    presented: None,
                    conn,
                    device: None,
                    cause,
                    reason: format!("the UE refused the challenge of {supi} ({cause})"),
                });
                self.remove(conn);
            }
        }
    }

    /// SECURITY MODE COMMAND with a new context from `kamf`; `before`
    /// holds messages re-sent ahead of it on T3560 (AUTHENTICATION RESULT).
    fn start_security_mode(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        kamf: KAmf,
        mut before: Vec<(build::Nas5gsMessage, Option<Protection>)>,
    ) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        let Some(algorithms) = select(ctx.ue_capability) else {
            let device = ctx.device.clone();
            return self.reject(
                conn,
                Cause::UE_SECURITY_CAPABILITIES_MISMATCH,
                device,
                "no common NAS algorithm".into(),
                None,
            );
        };
        let sec = match SecurityContext::new(&kamf, algorithms, ctx.ngksi, Role::Network) {
            Ok(s) => s,
            Err(e) => {
                return self.reject_protocol_error(conn, None, e.to_string());
            }
        };
        let [ea, ia] = ctx.ue_capability;
        let command = build::security_mode_command(&SecurityModeCommandParams {
            ciphering: ciphering(algorithms.nea),
            integrity: integrity(algorithms.nia),
            ngksi: KeySetIdentifier::Native(ctx.ngksi),
            replayed_ue_security_capability: NasUeSecurityCapability::from_capabilities(ea, ia),
            imeisv_request: false,
            abba: Some(ABBA.to_vec()),
            additional_security_information: None,
            eap_message: None,
        });
        let command = match command {
            Ok(c) => c,
            Err(e) => {
                return self.reject_protocol_error(conn, None, e.to_string());
            }
        };
        ctx.sec = Some(sec);
        ctx.kamf = Some(kamf);
        ctx.state = MmState::SecurityMode;
        before.push((command.clone(), Some(Protection::IntegrityNewContext)));
        ctx.pending = before;
        self.send(conn, &command, Some(Protection::IntegrityNewContext));
        self.arm(now, conn, TimerKind::T3560, 0);
    }

    pub(crate) fn on_security_mode_complete(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        container: Option<Vec<u8>>,
    ) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        match ctx.state {
            MmState::SecurityMode => {}
            // Our ACCEPT was lost and the UE answered a retransmitted command.
            MmState::AcceptSent => {
                let pending = ctx.pending.clone();
                for (m, p) in &pending {
                    self.send(conn, m, *p);
                }
                return;
            }
            _ => return self.discard(conn, "SECURITY MODE COMPLETE not expected".into()),
        }
        // TS 24.501 §4.4.6, §5.4.2.3: the REGISTRATION REQUEST came
        // without protection (every registration here starts without a
        // context), so the UE must send it complete in the NAS message
        // container of SECURITY MODE COMPLETE; TS 33.501 §6.4.6: it must
        // match the one that started the procedure.
        if container.as_deref() != Some(ctx.initial.as_slice()) {
            let device = ctx.device.clone();
            let reason = if container.is_some() {
                "the REGISTRATION REQUEST in SECURITY MODE COMPLETE differs"
            } else {
                "SECURITY MODE COMPLETE without the REGISTRATION REQUEST"
            };
            return self.reject_protocol_error(conn, device, reason.into());
        }
        if let Some(reason) = ctx.congested.take() {
            let device = ctx.device.clone();
            return self.reject(conn, Cause::CONGESTION, device, reason, None);
        }
        // A device on the operator's block list (blocked since its EAP-TLS
        // began, or whose subscription is suspended by a block) is refused
        // now that the reject can be integrity protected (an unprotected #3
        // would be believed only after several, TS 24.501 §5.3.20.2). A
        // subscription is read fresh with its vector.
        let (onboarding, supi) = (ctx.onboarding, ctx.supi.clone());
        let sub = match (onboarding, &supi) {
            (false, Some(supi)) => self.store.cached_subscription_by_supi(supi).ok().flatten(),
            _ => None,
        };
        let device = match onboarding {
            true => ctx.device.clone(),
            false => sub.as_ref().map(|sub| sub.device.clone()),
        };
        if let Some(device) = device
            && self.dcs.is_blocked(&device)
        {
            let what = match (onboarding, &supi) {
                (false, Some(supi)) => {
                    format!("the registration of its subscription {supi} is refused")
                }
                _ => "its onboarding is refused".to_owned(),
            };
            let reason = format!(
                "device {device}: on the operator block list; {what} until it is unblocked"
            );
            return self.reject(conn, Cause::ILLEGAL_UE, Some(device), reason, None);
        }
        // A package whose validity ended (issue #16 item 5) no longer
        // registers: #7 "5GS services not allowed", integrity protected,
        // which TS 24.501 §5.5.1.2.5 makes the UE hold its subscriber data
        // for this SNPN invalid. A nido device then erases the package,
        // keeping an erasure receipt, and onboards again; the PVS renews
        // the subscription in place on that receipt.
        let now_unix = nido_prov::unix_seconds(now);
        if let Some(sub) = sub.filter(|sub| sub.expired(now_unix)) {
            let reason = format!(
                "device {}: the credential package of {} ended at {} (Unix time); it renews by onboarding again with its erasure receipt",
                sub.device,
                sub.supi,
                sub.not_after_unix.unwrap_or_default()
            );
            return self.reject(
                conn,
                Cause::SERVICES_NOT_ALLOWED,
                Some(sub.device),
                reason,
                None,
            );
        }
        let (mcc, mnc) = (
            self.config.serving_network.mcc.clone(),
            self.config.serving_network.mnc.clone(),
        );
        let (region, set, pointer) = self.config.amf_id;
        self.next_tmsi = self.next_tmsi.wrapping_add(1);
        let guti = Guti5g {
            mcc,
            mnc,
            amf_region_id: region,
            amf_set_id: set,
            amf_pointer: pointer,
            tmsi: self.next_tmsi,
        };
        let accept = guti.to_wire().map_err(|e| e.to_string()).and_then(|wire| {
            build::registration_accept(&RegistrationAcceptParams {
                guti: Some(wire),
                tai_list: None,
                allowed_nssai: Vec::new(),
                t3512_seconds: None,
                cp_ciot: true,
            })
            .map_err(|e| e.to_string())
        });
        let accept = match accept {
            Ok(a) => a,
            Err(e) => return self.reject_protocol_error(conn, None, e),
        };
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.guti = Some(guti);
            ctx.state = MmState::AcceptSent;
            ctx.pending = vec![(accept.clone(), Some(Protection::IntegrityCiphered))];
        }
        self.send(conn, &accept, Some(Protection::IntegrityCiphered));
        self.arm(now, conn, TimerKind::T3550, 0);
    }

    pub(crate) fn on_registration_complete(&mut self, now: SystemTime, conn: ConnectionId) {
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        if !matches!(ctx.state, MmState::AcceptSent) {
            return; // a duplicate
        }
        if ctx.onboarding {
            ctx.pending.clear();
            ctx.state = MmState::Onboarding;
            if let Some(device) = ctx.device.clone() {
                // Blocked (at once) between its SECURITY MODE COMPLETE and now.
                if self.dcs.is_blocked_now(&device) {
                    return self.deregister_as_blocked(now, conn, device);
                }
                self.events
                    .push_back(NetworkEvent::RegisteredForOnboarding { conn, device });
            }
            self.arm(now, conn, TimerKind::Onboarding, 0);
        } else {
            let Some(supi) = ctx.supi.clone() else { return };
            // The device and owner the application sink needs. A store that
            // cannot answer now: the COMPLETE is discarded as if lost, T3550
            // re-sends the ACCEPT and the UE's next COMPLETE tries again.
            // Read fresh when the registration began (its vector).
            let sub = match self.store.cached_subscription_by_supi(&supi) {
                Ok(sub) => sub,
                Err(e) => {
                    return self.discard(conn, format!("REGISTRATION COMPLETE of {supi}: {e}"));
                }
            };
            let Some(ctx) = self.ues.get_mut(&conn) else {
                return;
            };
            ctx.pending.clear();
            ctx.state = MmState::Registered;
            ctx.timer = None;
            if let Some(sub) = sub {
                ctx.device = Some(sub.device);
                ctx.owner = sub.owner;
            }
            // Blocked (at once) between its SECURITY MODE COMPLETE and now;
            // a block deferred to the next registration lets this one finish.
            if let Some(device) = ctx.device.as_ref()
                && self.dcs.is_blocked_now(device)
            {
                let device = device.clone();
                return self.deregister_as_blocked(now, conn, device);
            }
            // Implicit deregistration of an older context of the same SUPI.
            if let Some(old) = self.registered_index.insert(supi.clone(), conn)
                && old != conn
            {
                self.remove(old);
                self.registered_index.insert(supi.clone(), conn);
            }
            self.events
                .push_back(NetworkEvent::Registered { conn, supi });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nia2_nea2_are_preferred_and_nia0_never_chosen() {
        assert_eq!(select([0xF0, 0x70]), Some(Algorithms::NIA2_NEA2));
        // A UE with only 5G-EA0 and 128-5G-IA1.
        assert_eq!(select([0x80, 0x40]), Some(Algorithms { nia: 1, nea: 0 }));
        // 128-5G-IA3 and 128-5G-EA3 only.
        assert_eq!(select([0x10, 0x10]), Some(Algorithms { nia: 3, nea: 3 }));
        // Only 5G-IA0 (bit 8): no integrity algorithm nido accepts.
        assert_eq!(select([0xF0, 0x80]), None);
        assert_eq!(select([0x00, 0x70]), None);
    }

    #[test]
    fn algorithm_enums_match_their_numbers() {
        assert_eq!(ciphering(2), CipheringAlgorithm::NEA2);
        assert_eq!(ciphering(0), CipheringAlgorithm::NEA0);
        assert_eq!(integrity(3), IntegrityAlgorithm::NIA3);
        assert_eq!(integrity(1), IntegrityAlgorithm::NIA1);
    }
}
