//! Phase B: the onboarding PDU session (control plane only) and the
//! provisioning exchange with the PVS, CoAP over CIoT user data in UL/DL
//! NAS TRANSPORT (design doc steps 7-10).

use std::time::SystemTime;

use nido_nas::build::{self, PduSessionEstablishmentRequestParams, PduSessionTypeValue};
use nido_nas::security::Protection;
use nido_nas::view::Transport;
use nido_prov::coap::{self, Path, ResponseBody, Token};
use nido_prov::package::Binding;
use nido_prov::{Confirmation, ConfirmationAck, ProvisioningRequest, ProvisioningResponse};
use nido_sec::Cause;
use nido_sec::suci::Profile;

use crate::device::{PSI, Phase, Send, TimerKind};
use crate::{Device, DeviceEvent, RejectMessage};

/// The DNN of the onboarding PDU session.
pub const ONBOARDING_DNN: &str = "onboarding";
/// The DNN of the data PDU session to the owner's application.
pub const DATA_DNN: &str = "iot";
/// Provisioning attempts (a refused package, a failed confirmation) before
/// the device gives up on this onboarding.
const MAX_PACKAGE_ATTEMPTS: u32 = 3;

/// Where the provisioning exchange is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ProvStep {
    /// Waiting for the onboarding PDU session.
    #[default]
    Session,
    /// The provisioning request is out.
    Request,
    /// The confirmation is out.
    Confirm,
}

/// Phase B's state.
#[derive(Debug, Default)]
pub(crate) struct Provisioning {
    pub(crate) step: ProvStep,
    nonce: [u8; 16],
    /// The outstanding CoAP request's message id and token.
    exchange: Option<(u16, Token)>,
    pvs_name: Option<String>,
    attempts: u32,
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // aws-lc's RNG does not fail on supported platforms; a failure leaves
    // zeros, which the PVS treats as any other nonce.
    let _ = aws_lc_rs::rand::fill(&mut out);
    out
}

impl Device {
    /// PDU SESSION ESTABLISHMENT REQUEST in UL NAS TRANSPORT: the onboarding
    /// session (asking for the PVS information) or the data session.
    pub(crate) fn request_pdu_session(&mut self, now: SystemTime) {
        let onboarding = matches!(self.phase, Phase::Provisioning(_));
        let params = PduSessionEstablishmentRequestParams {
            psi: PSI,
            pti: 1,
            session_type: PduSessionTypeValue::Unstructured,
            ssc_mode: None,
            dnn: Some(if onboarding { ONBOARDING_DNN } else { DATA_DNN }.into()),
            s_nssai: None,
            request_pvs_information: onboarding,
        };
        match build::ul_nas_transport_pdu_session_establishment_request(&params) {
            Ok(m) => {
                self.send_procedure(now, m, Send::Protected(Protection::IntegrityCiphered));
                self.start_timer(now, TimerKind::T3580);
            }
            Err(e) => self.discard(format!("PDU session request: {e}")),
        }
    }

    pub(crate) fn on_dl_transport(
        &mut self,
        now: SystemTime,
        payload: Transport,
        cause: Option<Cause>,
    ) {
        if let Some(cause) = cause {
            self.events.push_back(DeviceEvent::Rejected {
                message: RejectMessage::DlNasTransport,
                cause,
            });
        }
        match payload {
            Transport::PduSessionEstablishmentAccept { psi, pvs_name, .. } if psi == PSI => {
                self.on_session_accept(now, pvs_name)
            }
            Transport::PduSessionEstablishmentReject { psi, cause, .. } => {
                self.events
                    .push_back(DeviceEvent::SessionRejected { psi, cause });
                // Only the reject of the session the device is asking for
                // ends that procedure; others leave everything as it is.
                let pending = psi == PSI
                    && self.timer.is_some_and(|t| t.kind == TimerKind::T3580)
                    && matches!(
                        &self.phase,
                        Phase::Provisioning(p) if p.step == ProvStep::Session
                    );
                let pending_data =
                    psi == PSI && matches!(&self.phase, Phase::Registered(s) if !s.established);
                if pending {
                    self.timer = None;
                    self.last = None;
                    self.deregister(now);
                } else if pending_data {
                    self.timer = None;
                    self.last = None;
                }
            }
            Transport::CiotData { psi, data } if psi == PSI => match self.phase {
                Phase::Provisioning(_) => self.on_pvs_response(now, &data),
                Phase::Registered(_) => self.events.push_back(DeviceEvent::Downlink { psi, data }),
                _ => self.discard("downlink data outside a registration".into()),
            },
            other => self.discard(format!("DL NAS TRANSPORT payload {other:?} not expected")),
        }
    }

    fn on_session_accept(&mut self, now: SystemTime, pvs_name: Option<String>) {
        match &mut self.phase {
            Phase::Provisioning(p) if p.step == ProvStep::Session => {
                p.pvs_name = pvs_name;
                self.send_provisioning_request(now);
            }
            Phase::Registered(session) if !session.established => {
                session.established = true;
                self.timer = None;
                self.last = None;
                self.flush_bursts(now);
            }
            _ => {} // a retransmitted ACCEPT
        }
    }

    /// POST /prov/v1/request with a fresh provisioning key and nonce.
    fn send_provisioning_request(&mut self, now: SystemTime) {
        let key = match self.se.new_provisioning_key() {
            Ok(k) => k,
            Err(e) => {
                self.events.push_back(DeviceEvent::PackageRefused {
                    reason: e.to_string(),
                });
                return self.fail();
            }
        };
        let nonce = random::<16>();
        let request = ProvisioningRequest {
            device_public_key: key,
            nonce,
            suci_profiles: vec![Profile::A, Profile::B],
            claim_hint: self.config.claim_hint.clone(),
            // After a factory reset (and only then: the element keeps no
            // receipt while it holds a subscription), the proof that the
            // last package was erased: the PVS re-provisions in place.
            erasure_receipt: self.se.erasure_receipt(),
        };
        if let Phase::Provisioning(p) = &mut self.phase {
            p.step = ProvStep::Request;
            p.nonce = nonce;
        }
        self.coap_post(now, Path::Request, &request.encode());
    }

    fn coap_post(&mut self, now: SystemTime, path: Path, body: &[u8]) {
        let mid = u16::from_be_bytes(random::<2>());
        let token = match Token::new(&random::<8>()) {
            Ok(t) => t,
            Err(e) => return self.discard(e.to_string()),
        };
        let message = coap::request(path, mid, &token, body)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                build::ul_nas_transport_ciot_data(PSI, &bytes).map_err(|e| e.to_string())
            });
        match message {
            Ok(m) => {
                if let Phase::Provisioning(p) = &mut self.phase {
                    p.exchange = Some((mid, token));
                }
                self.send_procedure(now, m, Send::Protected(Protection::IntegrityCiphered));
                self.start_timer(now, TimerKind::Coap);
            }
            Err(e) => self.discard(format!("provisioning request: {e}")),
        }
    }

    fn on_pvs_response(&mut self, now: SystemTime, data: &[u8]) {
        let Phase::Provisioning(p) = &mut self.phase else {
            return;
        };
        let response = match coap::parse_response(data) {
            Ok(r) => r,
            Err(e) => return self.discard(format!("PVS response: {e}")),
        };
        // A response to an earlier request (a retransmission's answer) is stale.
        if p.exchange.as_ref() != Some(&(response.message_id, response.token.clone())) {
            return self.discard("PVS response to another request".into());
        }
        p.exchange = None;
        let (step, nonce) = (p.step, p.nonce);
        self.timer = None;
        self.last = None;
        match (step, response.body) {
            (ProvStep::Request, ResponseBody::Changed(body)) => {
                match ProvisioningResponse::decode(&body) {
                    Ok(ProvisioningResponse::Provisioned(sealed)) => {
                        self.install(now, &sealed, nonce)
                    }
                    Ok(ProvisioningResponse::Rejected { reason }) => {
                        self.events
                            .push_back(DeviceEvent::PackageRefused { reason });
                        self.fail();
                    }
                    Ok(ProvisioningResponse::RetryLater { reason }) => {
                        self.events
                            .push_back(DeviceEvent::PackageRefused { reason });
                        self.deregister(now);
                    }
                    Err(e) => self.package_failed(now, e.to_string()),
                }
            }
            (ProvStep::Confirm, ResponseBody::Changed(body)) => {
                match ConfirmationAck::decode(&body) {
                    Ok(_) => self.deregister(now),
                    Err(e) => self.package_failed(now, e.to_string()),
                }
            }
            (_, ResponseBody::Error { code, diagnostic }) => {
                self.package_failed(now, format!("PVS {}: {diagnostic}", code.dotted()))
            }
            (ProvStep::Session, _) => {}
        }
    }

    /// Opens the package inside the secure element and confirms.
    fn install(
        &mut self,
        now: SystemTime,
        sealed: &nido_prov::package::SealedPackage,
        nonce: [u8; 16],
    ) {
        let binding = Binding {
            device_identity: self.config.serial.clone(),
            nonce,
        };
        // K_PROV of this onboarding's EAP-TLS session: a package not sealed
        // with it (a network that did not authenticate this device) does not
        // open, and nothing of it is kept.
        let Some(k_prov) = self.k_prov.clone() else {
            return self.package_failed(now, "no K_PROV from the onboarding authentication".into());
        };
        match self.se.install_package(sealed, &binding, &k_prov) {
            Ok(installed) => {
                self.events.push_back(DeviceEvent::Provisioned {
                    supi: installed.public.supi.clone(),
                    owner: installed.public.owner.clone(),
                    third_party: installed.public.third_party.len(),
                });
                let confirmation = Confirmation {
                    package_id: installed.public.package_id,
                    mac: installed.confirmation_mac,
                };
                self.fresh_package =
                    Some((installed.public.package_id, nido_prov::unix_seconds(now)));
                self.public = Some(installed.public);
                self.reonboarding = false;
                if let Phase::Provisioning(p) = &mut self.phase {
                    p.step = ProvStep::Confirm;
                }
                self.coap_post(now, Path::Confirm, &confirmation.encode());
            }
            Err(e) => self.package_failed(now, e.to_string()),
        }
    }

    /// The package or its confirmation failed: ask again with a fresh key,
    /// a bounded number of times.
    fn package_failed(&mut self, now: SystemTime, reason: String) {
        self.events
            .push_back(DeviceEvent::PackageRefused { reason });
        let Phase::Provisioning(p) = &mut self.phase else {
            return;
        };
        p.attempts += 1;
        if p.attempts >= MAX_PACKAGE_ATTEMPTS {
            // Nothing is erased: a package that did not open left the
            // element as it was (a subscription kept from before stays
            // usable), and one installed but not confirmed is a `created`
            // subscription the network validates by 5G-AKA.
            self.reonboarding = false;
            self.deregister(now);
        } else {
            self.send_provisioning_request(now);
        }
    }
}
