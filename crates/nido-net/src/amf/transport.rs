//! After registration: control-plane-only PDU sessions, CIoT user data in
//! UL NAS TRANSPORT and CONTROL PLANE SERVICE REQUEST, the onboarding
//! restrictions (only the PVS is reachable), the provisioning exchange,
//! and deregistration (TS 24.501 §5.4.5, §5.6.1, §6.4.1; design doc steps
//! 7-10, 13-14).

use std::time::SystemTime;

use nido_nas::build::{
    self, GmmCause, GsmCause, PduSessionEstablishmentAcceptParams, PduSessionTypeValue,
    SscModeValue,
};
use nido_nas::security::Protection;
use nido_nas::view::Transport;
use nido_prov::coap::{self, ErrorCode, Path, ResponseBody};
use nido_prov::{Confirmation, ConfirmationAck, ProvisioningRequest, ProvisioningResponse};
use nido_sec::Cause;

use super::context::{CoapCache, MmState, PduSession, TimerKind};
use super::{ConnectionId, DownlinkError, Network};
use crate::events::NetworkEvent;
use crate::pvs::PvsRefusal;
use crate::sink::Uplink;
use crate::store::StoreError;

impl Network {
    pub(crate) fn on_ul_transport(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        payload: Transport,
    ) {
        let Some(ctx) = self.ues.get(&conn) else {
            return;
        };
        let onboarding = match ctx.state {
            MmState::Onboarding => true,
            MmState::Registered => false,
            _ => return self.discard(conn, "UL NAS TRANSPORT before registration".into()),
        };
        match payload {
            Transport::PduSessionEstablishmentRequest { psi, pti, dnn, .. } => {
                self.on_session_request(conn, onboarding, psi, pti, dnn)
            }
            Transport::CiotData { psi, data } => {
                let session = ctx.session;
                if session.is_none_or(|s| s.psi != psi) {
                    return self.refuse_data(
                        conn,
                        onboarding,
                        format!("CIoT data on PDU session {psi} without a session"),
                    );
                }
                if onboarding {
                    self.pvs_exchange(now, conn, &data);
                } else if self.deliver(now, conn, psi, data) {
                    self.send_downlinks(conn, psi);
                }
            }
            other => self.discard(
                conn,
                format!("UL NAS TRANSPORT payload {other:?} not handled"),
            ),
        }
    }

    /// Data an onboarding UE may not send, or data without a session: the
    /// payload is not forwarded (5GMM #90, TS 24.501 §5.4.5.2.5).
    fn refuse_data(&mut self, conn: ConnectionId, onboarding: bool, what: String) {
        if onboarding {
            self.events
                .push_back(NetworkEvent::RestrictedTrafficRefused { conn, what });
        } else {
            self.discard(conn, what);
        }
        self.send(
            conn,
            &build::fgmm_status(GmmCause::PayloadWasNotForwarded),
            Some(Protection::IntegrityCiphered),
        );
    }

    fn on_session_request(
        &mut self,
        conn: ConnectionId,
        onboarding: bool,
        psi: u8,
        pti: u8,
        dnn: Option<String>,
    ) {
        let allowed = if onboarding {
            dnn.as_deref()
                .is_none_or(|d| d.eq_ignore_ascii_case(&self.config.onboarding_dnn))
        } else {
            dnn.as_deref().is_none_or(|d| {
                self.config
                    .data_dnns
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(d))
            })
        };
        if !allowed {
            let what = format!("PDU session to DNN {dnn:?}");
            if onboarding {
                self.events
                    .push_back(NetworkEvent::RestrictedTrafficRefused { conn, what });
            } else {
                self.discard(conn, what);
            }
            match build::dl_nas_transport_pdu_session_establishment_reject(
                psi,
                pti,
                GsmCause::MissingOrUnknownDnn,
            ) {
                Ok(m) => self.send(conn, &m, Some(Protection::IntegrityCiphered)),
                Err(e) => self.discard(conn, e.to_string()),
            }
            return;
        }
        let dnn = dnn.unwrap_or_else(|| {
            if onboarding {
                self.config.onboarding_dnn.clone()
            } else {
                self.config.data_dnns.first().cloned().unwrap_or_default()
            }
        });
        let accept = build::dl_nas_transport_pdu_session_establishment_accept(
            &PduSessionEstablishmentAcceptParams {
                psi,
                pti,
                session_type: PduSessionTypeValue::Unstructured,
                ssc_mode: SscModeValue::Ssc1,
                qfi: 1,
                session_ambr_dl_kbps: 100,
                session_ambr_ul_kbps: 100,
                dnn: Some(dnn),
                s_nssai: None,
                control_plane_only: true,
                pvs_ipv4: None,
                pvs_name: onboarding.then(|| self.config.pvs_name.clone()),
            },
        );
        match accept {
            Ok(m) => {
                if let Some(ctx) = self.ues.get_mut(&conn) {
                    ctx.session = Some(PduSession { psi, pti });
                }
                self.send(conn, &m, Some(Protection::IntegrityCiphered));
            }
            Err(e) => self.discard(conn, e.to_string()),
        }
    }

    /// The provisioning exchange: CoAP requests to the PVS, answered in DL
    /// NAS TRANSPORT; a retransmitted request gets the cached answer.
    fn pvs_exchange(&mut self, now: SystemTime, conn: ConnectionId, data: &[u8]) {
        let request = match coap::parse_request(data) {
            Ok(r) => r,
            Err(e) => {
                return self.refuse_data(conn, true, format!("not a PVS request: {e}"));
            }
        };
        let Some(ctx) = self.ues.get(&conn) else {
            return;
        };
        let psi = ctx.session.map_or(1, |s| s.psi);
        if let Some(cache) = &ctx.coap
            && cache.message_id == request.message_id
            && cache.token == request.token.as_bytes()
        {
            let response = cache.response.clone();
            return self.send_ciot(conn, psi, &response);
        }
        let Some(device) = ctx.device.clone() else {
            return;
        };
        // K_PROV of the EAP-TLS session that authenticated this device: the
        // package is sealed with it, so only this device opens it and it
        // knows the package comes from the network that authenticated it.
        let Some(k_prov) = ctx.k_prov.clone() else {
            return self.discard(conn, "PVS request without an onboarding K_PROV".into());
        };
        let device_cert = ctx.device_cert.clone();
        let receipt_pending = ctx.receipt_pending;
        let now_unix = nido_prov::unix_seconds(now);
        let body = match request.path {
            Path::Request => match ProvisioningRequest::decode(&request.payload) {
                Ok(req) => {
                    if receipt_pending
                        && req.erasure_receipt.is_some()
                        && let Some(reason) = self.registered_elsewhere(now, &device)
                    {
                        // A receipt while the subscription is in use: made by
                        // a copy of the whole element (K and the IDevID key),
                        // not by a device that erased its only copy.
                        self.events.push_back(NetworkEvent::CloneSuspected {
                            device: device.clone(),
                            active: reason,
                            refused: conn,
                        });
                        return self.deregister_refused(
                            now,
                            conn,
                            Some(device),
                            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
                            format!(
                                "erasure receipt refused: the subscription is registered and in use on {reason}"
                            ),
                        );
                    }
                    match self.pvs.provision(
                        self.store.as_mut(),
                        &device,
                        device_cert.as_deref(),
                        &req,
                        &k_prov,
                        now_unix,
                    ) {
                        Ok(done) => {
                            if let Some(ctx) = self.ues.get_mut(&conn) {
                                ctx.receipt_pending = false;
                            }
                            // A context still registered with the erased K
                            // (abandoned, or it would have been refused
                            // above) has nothing left to do.
                            if done.after_reset.is_some()
                                && let Some(&old) = self.registered_index.get(&done.supi)
                                && old != conn
                            {
                                self.remove(old);
                            }
                            self.events.push_back(done.event());
                            ResponseBody::Changed(
                                ProvisioningResponse::Provisioned(done.sealed).encode(),
                            )
                        }
                        Err(refusal) if refusal.holds_subscription() => {
                            // An identity that holds a subscription, with no
                            // receipt or one that does not verify: a clone,
                            // or a device that kept its credentials. #74 as
                            // at admission, now protected: the registration
                            // ends here (no PVS answer; the procedure is over).
                            return self.deregister_refused(
                                now,
                                conn,
                                Some(device),
                                refusal.gmm_cause(),
                                refusal.to_string(),
                            );
                        }
                        Err(refusal) => {
                            self.events.push_back(NetworkEvent::Refused {
                                presented: None,
                                conn,
                                device: Some(device.clone()),
                                cause: refusal.gmm_cause(),
                                reason: refusal.to_string(),
                            });
                            let reason = refusal.to_string();
                            // An exhausted range or a store that cannot be
                            // reached: the device comes back later, it does
                            // not give up.
                            let response = if refusal.is_temporary() {
                                ProvisioningResponse::RetryLater { reason }
                            } else {
                                ProvisioningResponse::Rejected { reason }
                            };
                            ResponseBody::Changed(response.encode())
                        }
                    }
                }
                Err(e) => ResponseBody::Error {
                    code: ErrorCode::BadRequest,
                    diagnostic: e.to_string(),
                },
            },
            Path::Confirm if receipt_pending => {
                // No package was delivered on this registration: the
                // identity holds a subscription and only a verified receipt
                // opens provisioning.
                return self.deregister_refused(
                    now,
                    conn,
                    Some(device),
                    Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
                    "a confirmation before a provisioning request with an erasure receipt \
                     (the identity holds a subscription)"
                        .into(),
                );
            }
            Path::Confirm => match Confirmation::decode(&request.payload) {
                Ok(confirmation) => {
                    match self
                        .pvs
                        .confirm(self.store.as_mut(), &device, &confirmation, now_unix)
                    {
                        Ok(supi) => {
                            self.events.push_back(NetworkEvent::Provisioned {
                                device: device.clone(),
                                supi,
                            });
                            ResponseBody::Changed(
                                ConfirmationAck {
                                    package_id: confirmation.package_id,
                                }
                                .encode(),
                            )
                        }
                        Err(e @ PvsRefusal::Store(StoreError::Unavailable(_))) => {
                            self.discard(conn, format!("PVS confirmation of {device}: {e}"));
                            ResponseBody::Error {
                                code: ErrorCode::ServiceUnavailable,
                                diagnostic: e.to_string(),
                            }
                        }
                        Err(e) => ResponseBody::Error {
                            code: ErrorCode::Forbidden,
                            diagnostic: e.to_string(),
                        },
                    }
                }
                Err(e) => ResponseBody::Error {
                    code: ErrorCode::BadRequest,
                    diagnostic: e.to_string(),
                },
            },
        };
        let response = match coap::response(request.message_id, &request.token, &body) {
            Ok(r) => r,
            Err(e) => return self.discard(conn, format!("PVS response: {e}")),
        };
        if let Some(ctx) = self.ues.get_mut(&conn) {
            ctx.coap = Some(CoapCache {
                message_id: request.message_id,
                token: request.token.as_bytes().to_vec(),
                response: response.clone(),
            });
        }
        self.send_ciot(conn, psi, &response);
    }

    /// The connection on which `device`'s subscription is registered and
    /// in use (uplink within the clone window), if any.
    fn registered_elsewhere(
        &self,
        now: SystemTime,
        device: &crate::DeviceId,
    ) -> Option<ConnectionId> {
        let sub = self.store.cached_subscription_by_device(device).ok()??;
        let &conn = self.registered_index.get(&sub.supi)?;
        let ctx = self.ues.get(&conn)?;
        let live = !matches!(ctx.state, MmState::Deregistered | MmState::Deregistering);
        let recent = now
            .duration_since(ctx.last_uplink)
            .map_or(true, |quiet| quiet < self.config.clone_window);
        (live && recent).then_some(conn)
    }

    fn send_ciot(&mut self, conn: ConnectionId, psi: u8, data: &[u8]) {
        match build::dl_nas_transport_ciot_data(psi, data) {
            Ok(m) => self.send(conn, &m, Some(Protection::IntegrityCiphered)),
            Err(e) => self.discard(conn, e.to_string()),
        }
    }

    /// Hands a verified burst to its owner's application: into the store's
    /// outbox (the SERVICE ACCEPT sent next waits for that write to be
    /// durable, issue #14) and to the in-process sink. `false`: the store
    /// could not take it, and the burst is not acknowledged (the device
    /// sends it again).
    fn deliver(&mut self, now: SystemTime, conn: ConnectionId, psi: u8, data: Vec<u8>) -> bool {
        let Some(ctx) = self.ues.get(&conn) else {
            return false;
        };
        let Some(supi) = ctx.supi.clone() else {
            return false;
        };
        let uplink = Uplink {
            device: ctx
                .device
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            owner: ctx.owner.clone(),
            supi: supi.clone(),
            psi,
            data,
            at: now,
        };
        if let Err(e) = self.store.enqueue_uplink(&uplink) {
            self.discard(conn, format!("uplink data of {supi}: {e}"));
            return false;
        }
        self.events.push_back(NetworkEvent::DataDelivered {
            supi,
            bytes: uplink.data.len(),
        });
        self.sink.deliver(uplink);
        true
    }

    /// Sends the device what its owner's application left for it (issue
    /// #14), now that a burst showed it reachable: one DL NAS TRANSPORT
    /// per downlink, protected like every message after the security mode.
    fn send_downlinks(&mut self, conn: ConnectionId, psi: u8) {
        let Some(ctx) = self.ues.get(&conn) else {
            return;
        };
        let (Some(device), Some(supi)) = (ctx.device.as_ref(), ctx.supi.clone()) else {
            return;
        };
        let device = device.to_string();
        for d in self.sink.take_downlinks(&device) {
            self.send_ciot(conn, psi, &d.data);
            self.events.push_back(NetworkEvent::DownlinkSent {
                supi: supi.clone(),
                device: device.clone(),
                id: d.id,
                bytes: d.data.len(),
            });
        }
    }

    pub(crate) fn on_control_plane_service_request(
        &mut self,
        now: SystemTime,
        conn: ConnectionId,
        psi: u8,
        data: Vec<u8>,
    ) {
        let Some(ctx) = self.ues.get(&conn) else {
            return;
        };
        match ctx.state {
            MmState::Registered if ctx.session.is_some_and(|s| s.psi == psi) => {
                if !self.deliver(now, conn, psi, data) {
                    return;
                }
                self.send(
                    conn,
                    &build::service_accept(),
                    Some(Protection::IntegrityCiphered),
                );
                self.send_downlinks(conn, psi);
            }
            MmState::Registered => self.refuse_data(
                conn,
                false,
                format!("CIoT data on PDU session {psi} without a session"),
            ),
            MmState::Onboarding => self.refuse_data(
                conn,
                true,
                "CONTROL PLANE SERVICE REQUEST during onboarding".into(),
            ),
            _ => self.discard(
                conn,
                "CONTROL PLANE SERVICE REQUEST before registration".into(),
            ),
        }
    }

    /// UE-originating deregistration (TS 24.501 §5.5.2.2): accept, forget
    /// the registration, keep the context briefly for retransmissions.
    pub(crate) fn on_deregistration(&mut self, now: SystemTime, conn: ConnectionId) {
        let accept = build::deregistration_accept_ue_originating();
        self.send(conn, &accept, Some(Protection::IntegrityCiphered));
        let Some(ctx) = self.ues.get_mut(&conn) else {
            return;
        };
        if matches!(ctx.state, MmState::Deregistered) {
            return;
        }
        ctx.state = MmState::Deregistered;
        ctx.session = None;
        ctx.pending.clear();
        let (device, supi) = (ctx.device.clone(), ctx.supi.clone());
        self.unindex(conn, device.as_ref(), supi.as_ref());
        self.events.push_back(NetworkEvent::Deregistered { conn });
        self.arm(now, conn, TimerKind::Tombstone, 0);
    }

    /// Network-originated CIoT user data to a registered UE's PDU session
    /// (NIDD downlink; also how tests inject arbitrary downlink data).
    pub fn send_downlink_data(
        &mut self,
        conn: ConnectionId,
        data: &[u8],
    ) -> Result<(), DownlinkError> {
        let psi = self
            .ues
            .get(&conn)
            .filter(|c| matches!(c.state, MmState::Registered | MmState::Onboarding))
            .and_then(|c| c.session)
            .map(|s| s.psi)
            .ok_or(DownlinkError::NoSession(conn))?;
        let message = build::dl_nas_transport_ciot_data(psi, data)
            .map_err(|e| DownlinkError::Build(e.to_string()))?;
        self.send(conn, &message, Some(Protection::IntegrityCiphered));
        Ok(())
    }
}
