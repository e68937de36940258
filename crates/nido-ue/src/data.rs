//! Phase D: short data bursts over the control plane (CIoT 5GS
//! optimisation, TS 24.501 §5.6.1.2.2, TS 33.501 §6.16.1): a CONTROL PLANE
//! SERVICE REQUEST from idle, UL NAS TRANSPORT when connected.

use std::time::SystemTime;

use nido_nas::build::{self, CiotSmallDataDownlinkDataExpected, MAX_SMALL_DATA_LEN};
use nido_nas::security::Protection;

use crate::device::{PSI, Phase, Send, TimerKind};
use crate::{BurstPath, DataError, Device, DeviceEvent};

impl Device {
    /// Sends `data` to the owner's application: queued until the PDU
    /// session is up or an outstanding CONTROL PLANE SERVICE REQUEST is
    /// answered.
    pub fn send_data(&mut self, now: SystemTime, data: &[u8]) -> Result<(), DataError> {
        if data.is_empty() || data.len() > usize::from(u16::MAX) {
            return Err(DataError::Size(data.len()));
        }
        let Phase::Registered(session) = &mut self.phase else {
            return Err(DataError::NotReady);
        };
        session.queued.push_back(data.to_vec());
        if session.established && !session.service_request {
            self.flush_bursts(now);
        }
        Ok(())
    }

    /// Whether bursts wait: queued to leave, waiting for the answer to a
    /// CONTROL PLANE SERVICE REQUEST, or kept for after a registration.
    pub fn bursts_pending(&self) -> bool {
        !self.pending_bursts.is_empty()
            || matches!(&self.phase, Phase::Registered(s) if !s.queued.is_empty() || s.service_request)
    }

    /// Whether the device is connected (NAS traffic within the idle time).
    pub fn connected(&self, now: SystemTime) -> bool {
        self.last_activity.is_some_and(|at| {
            now.duration_since(at)
                .is_ok_and(|quiet| quiet < self.config.timers.idle_after)
        })
    }

    pub(crate) fn flush_bursts(&mut self, now: SystemTime) {
        loop {
            let connected = self.connected(now);
            let Phase::Registered(session) = &mut self.phase else {
                return;
            };
            if !session.established || session.service_request {
                return;
            }
            let Some(data) = session.queued.pop_front() else {
                return;
            };
            if connected {
                match build::ul_nas_transport_ciot_data(PSI, &data) {
                    Ok(m) => {
                        self.send(now, &m, Send::Protected(Protection::IntegrityCiphered));
                        self.events.push_back(DeviceEvent::BurstSent {
                            bytes: data.len(),
                            path: BurstPath::UlNasTransport,
                        });
                    }
                    Err(e) => self.discard(format!("burst: {e}")),
                }
                continue;
            }
            session.service_request = true;
            session.unacknowledged = Some(data.clone());
            let ngksi = self.ngksi();
            let request = if data.len() <= MAX_SMALL_DATA_LEN {
                build::control_plane_service_request(
                    ngksi,
                    PSI,
                    CiotSmallDataDownlinkDataExpected::NoInformationAvailable,
                    &data,
                )
            } else {
                build::control_plane_service_request_payload(ngksi, PSI, &data)
            };
            match request {
                Ok(m) => {
                    self.send_procedure(now, m, Send::Initial);
                    self.start_timer(now, TimerKind::T3517);
                    self.events.push_back(DeviceEvent::BurstSent {
                        bytes: data.len(),
                        path: BurstPath::ControlPlaneServiceRequest,
                    });
                }
                Err(e) => self.discard(format!("burst: {e}")),
            }
            return;
        }
    }

    pub(crate) fn on_service_accept(&mut self, now: SystemTime) {
        let Phase::Registered(session) = &mut self.phase else {
            return self.discard("SERVICE ACCEPT outside registration".into());
        };
        if !session.service_request {
            return;
        }
        session.service_request = false;
        session.unacknowledged = None;
        self.timer = None;
        self.last = None;
        self.events.push_back(DeviceEvent::BurstAccepted);
        self.flush_bursts(now);
    }
}
