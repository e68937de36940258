//! The [`Device`]: its state, the driver-facing API, timers and the
//! dispatch of received PDUs to the procedure they belong to.

use std::collections::VecDeque;
use std::time::SystemTime;

use nido_eap::EapTlsPeer;
use nido_nas::build::{self, KeySetIdentifier, Nas5gsMessage, NasFGsMobileIdentity};
use nido_nas::security::{Protection, SecurityContext, split_header};
use nido_nas::view::{Guti5g, Inbound};
use nido_prov::PublicPart;
use nido_sec::{Cause, KAmf, KProv, Supi};

use crate::provisioning::Provisioning;
use crate::{DeviceConfig, DeviceEvent, DeviceState, RejectMessage, SecureElement, Transmit};

/// The device's timers (TS 24.501 §10.2), one running at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    T3510,
    T3517,
    T3521,
    T3580,
    Coap,
    Backoff,
}

impl TimerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::T3510 => "T3510",
            Self::T3517 => "T3517",
            Self::T3521 => "T3521",
            Self::T3580 => "T3580",
            Self::Coap => "CoAP",
            Self::Backoff => "back-off",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    pub(crate) kind: TimerKind,
    pub(crate) at: SystemTime,
    pub(crate) retransmissions: u32,
}

/// How an uplink message is sent (and re-sent on a timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Send {
    /// Without protection (no context yet).
    Plain,
    /// Protected with the current context.
    Protected(Protection),
    /// An initial NAS message with the current context (TS 24.501 §4.4.6).
    Initial,
}

/// Where a registration procedure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Authenticating,
    SecurityMode,
    Accept,
}

pub(crate) enum Phase {
    Idle,
    /// Phase A.
    Onboarding {
        peer: Box<EapTlsPeer>,
        request: Nas5gsMessage,
        step: Step,
    },
    /// Phase B.
    Provisioning(Box<Provisioning>),
    /// Leaving the onboarding registration; phase C follows.
    Deregistering,
    /// Phase C.
    Registering {
        request: Nas5gsMessage,
        step: Step,
        supi: Supi,
        snn: String,
    },
    /// Phase D.
    Registered(Session),
    Backoff,
    Failed,
}

/// The phase D PDU session and bursts.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) established: bool,
    /// Bursts waiting for the session or for a SERVICE ACCEPT.
    pub(crate) queued: VecDeque<Vec<u8>>,
    /// A CONTROL PLANE SERVICE REQUEST awaiting its SERVICE ACCEPT.
    pub(crate) service_request: bool,
    /// The burst that request carries, until it is acknowledged.
    pub(crate) unacknowledged: Option<Vec<u8>>,
}

/// A device: the UE side of every procedure, over a secure element.
pub struct Device {
    pub(crate) config: DeviceConfig,
    pub(crate) se: Box<dyn SecureElement>,
    pub(crate) state: DeviceState,
    pub(crate) phase: Phase,
    pub(crate) sec: Option<SecurityContext>,
    /// K_AMF of a successful authentication, for the SECURITY MODE COMMAND.
    pub(crate) kamf: Option<KAmf>,
    /// K_PROV of the onboarding EAP-TLS session (from K_AUSF), kept from
    /// phase A into phase B to open the credential package (HPKE PSK);
    /// forgotten with the connection.
    pub(crate) k_prov: Option<KProv>,
    pub(crate) timer: Option<Timer>,
    /// The last uplink message of the running procedure, for retransmission.
    pub(crate) last: Option<(Nas5gsMessage, Send)>,
    pub(crate) attempts: u32,
    /// #74 rejects in a row (reset once a registration is accepted).
    pub(crate) not_authorized: u32,
    /// #9 rejects in a row (reset once a registration is accepted).
    pub(crate) unknown_identity: u32,
    /// Rejects without integrity protection that would have taken the
    /// credentials out of use (#3, #6, #7, #75), in a row: TS 24.501
    /// §5.3.20.2's counter (reset by an accepted registration and at power-on).
    pub(crate) unprotected_rejects: u32,
    /// Onboarding again while keeping the installed subscription (after #7
    /// or repeated #9): the subscription stays in use until a new package
    /// replaces it, and a refused onboarding returns to it.
    pub(crate) reonboarding: bool,
    /// The package installed since this device was made and when (Unix
    /// seconds; in memory, not in the element): renewed early only once
    /// held for `renew_before`, so a network whose validity is shorter
    /// than that window cannot have it renew at every registration (it
    /// renews when the network refuses the ended package).
    pub(crate) fresh_package: Option<([u8; 16], u64)>,
    /// The cause of the last reject that took the credentials out of use
    /// (believed, or suspected and waiting T3247), until a registration is
    /// accepted or the device is powered on again.
    pub(crate) refused_with: Option<Cause>,
    pub(crate) mac_failures: u32,
    /// The state of the device's back-off draws (splitmix64): the T3346
    /// values it picks for unprotected congestion rejects. Seeded from the
    /// serial, or by the driver ([`Device::seed_backoff`]); never the
    /// system's random source, so a simulation is reproducible.
    pub(crate) backoff_rng: u64,
    pub(crate) connection: u32,
    pub(crate) outbox: VecDeque<Transmit>,
    pub(crate) events: VecDeque<DeviceEvent>,
    pub(crate) guti: Option<Guti5g>,
    pub(crate) public: Option<PublicPart>,
    pub(crate) last_activity: Option<SystemTime>,
    /// Bursts carried over a re-registration, sent once the session is up.
    pub(crate) pending_bursts: VecDeque<Vec<u8>>,
}

impl core::fmt::Debug for Device {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device")
            .field("serial", &self.config.serial)
            .field("state", &self.state)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// The PDU session nido's UE uses for the onboarding session and for data.
pub(crate) const PSI: u8 = 1;

impl Device {
    /// A device in factory state (or with a subscription, if the secure
    /// element holds one: then `public` must be its public part).
    pub fn new(
        config: DeviceConfig,
        se: Box<dyn SecureElement>,
        public: Option<PublicPart>,
    ) -> Self {
        let backoff_rng = fnv1a(config.serial.as_bytes());
        Self {
            config,
            se,
            state: DeviceState::Off,
            phase: Phase::Idle,
            sec: None,
            kamf: None,
            k_prov: None,
            timer: None,
            last: None,
            attempts: 0,
            not_authorized: 0,
            unknown_identity: 0,
            unprotected_rejects: 0,
            reonboarding: false,
            fresh_package: None,
            refused_with: None,
            mac_failures: 0,
            backoff_rng,
            connection: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            guti: None,
            public,
            last_activity: None,
            pending_bursts: VecDeque::new(),
        }
    }

    /// Seeds the device's back-off draws (the T3346 it picks when a
    /// congestion reject arrives without integrity protection, TS 24.501
    /// §5.5.1.2.5). Without a seed they follow the serial; a simulator
    /// seeds each device from its own seed so runs differ by seed and
    /// repeat with it.
    pub fn seed_backoff(&mut self, seed: u64) {
        self.backoff_rng = fnv1a(&seed.to_be_bytes()) ^ fnv1a(self.config.serial.as_bytes());
    }

    /// Powers the device on: it onboards, or registers if its secure
    /// element already holds a subscription.
    pub fn power_on(&mut self, now: SystemTime) {
        self.attempts = 0;
        self.unprotected_rejects = 0;
        self.refused_with = None;
        self.start(now);
    }

    /// Factory reset with proof of erasure (issue #16): the secure element
    /// erases the subscription and the owner's third-party credentials and
    /// keeps an erasure receipt ([`SecureElement::reset`]); the device
    /// forgets what it knew of the network (security context, GUTI, the
    /// subscription's public part, unsent bursts) and is off. Powered on,
    /// it onboards again and presents the receipt in its provisioning
    /// request, so the network re-provisions it in place. Without a
    /// subscription: [`crate::SeError::NoSubscription`], nothing changes.
    pub fn factory_reset(
        &mut self,
        now: SystemTime,
    ) -> Result<nido_prov::ErasureReceipt, crate::SeError> {
        let receipt = self
            .se
            .reset(&self.config.serial, nido_prov::unix_seconds(now))?;
        self.release_connection();
        self.set_state(DeviceState::Off);
        self.phase = Phase::Idle;
        self.guti = None;
        self.public = None;
        self.reonboarding = false;
        self.refused_with = None;
        self.attempts = 0;
        self.not_authorized = 0;
        self.unknown_identity = 0;
        self.pending_bursts.clear();
        Ok(receipt)
    }

    /// The device's state.
    pub fn state(&self) -> DeviceState {
        self.state
    }

    /// The cause of a refusal that stopped the device (#3, #6, #7, #75):
    /// `Failed`, or backing off for T3247 because the reject came
    /// unprotected. `None` once a registration is accepted. Drivers count
    /// such a device as settled (refused), not as still trying.
    pub fn refusal(&self) -> Option<Cause> {
        match self.state {
            DeviceState::Failed | DeviceState::BackingOff => self.refused_with,
            _ => None,
        }
    }

    /// The IDevID serial.
    pub fn serial(&self) -> &str {
        &self.config.serial
    }

    /// The NAS signalling connection the device is on: it changes whenever
    /// the device releases its connection and starts afresh (after a
    /// failed attempt, a reject, a deregistration), as a new RRC connection
    /// would. Drivers map it to a link connection.
    pub fn connection(&self) -> u32 {
        self.connection
    }

    /// The provisioned subscription's public part (SUPI, home network key,
    /// third-party credentials), once provisioned.
    pub fn subscription(&self) -> Option<&PublicPart> {
        self.public.as_ref()
    }

    /// The current NAS security context.
    pub fn security_context(&self) -> Option<&SecurityContext> {
        self.sec.as_ref()
    }

    /// The secure element.
    pub fn secure_element(&self) -> &dyn SecureElement {
        self.se.as_ref()
    }

    /// Sends any message, protected with the current context (integrity
    /// and ciphering; plain without one), outside every procedure: for
    /// conformance tests and fault injection, e.g. a device that tries to
    /// reach something else than the PVS while onboarding. Normal operation
    /// never needs it.
    pub fn send_raw(&mut self, now: SystemTime, message: &Nas5gsMessage) {
        let how = if self.sec.is_some() {
            Send::Protected(Protection::IntegrityCiphered)
        } else {
            Send::Plain
        };
        self.send(now, message, how);
    }

    /// The next PDU to send uplink.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// When [`Device::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.timer.map(|t| t.at)
    }

    /// A received downlink PDU.
    pub fn handle_pdu(&mut self, now: SystemTime, pdu: &[u8]) {
        let sht = match split_header(pdu) {
            Ok((sht, _, _)) => sht,
            Err(e) => return self.discard(format!("header: {e}")),
        };
        if sht == 3 {
            return self.on_security_mode_command(now, pdu);
        }
        let protected = sht != 0;
        // TS 24.501 clause 7: a plain message with a faulty mandatory IE is
        // ignored (§7.5.1; the device sends no 5GMM STATUS #96 for it), and
        // the optional IEs a receiver ignores (§7.6, §7.7.1) are dropped by
        // the decoder, the message processed without them.
        let message = if sht == 0 {
            match nido_nas::receive(pdu) {
                Ok(r) => r.message,
                Err(e) => return self.discard(e.to_string()),
            }
        } else {
            let Some(sec) = self.sec.as_mut() else {
                return self.discard("protected PDU without a security context".into());
            };
            match sec.unprotect(pdu) {
                Ok(v) => v.message,
                Err(e) => return self.discard(format!("NAS security: {e}")),
            }
        };
        let inbound = match Inbound::read(&message) {
            Ok(i) => i,
            Err(e) => return self.discard(e.to_string()),
        };
        // With or without a security context, only the messages TS 24.501
        // §4.4.4.2 lists are processed unprotected: a plain REGISTRATION
        // ACCEPT, DEREGISTRATION REQUEST or DL NAS TRANSPORT can come from
        // anyone on the link.
        if !protected && !allowed_plain(&inbound) {
            return self.discard(format!(
                "{} without integrity protection (TS 24.501 §4.4.4.2)",
                inbound.name()
            ));
        }
        self.last_activity = Some(now);
        self.dispatch(now, inbound, protected);
    }

    fn dispatch(&mut self, now: SystemTime, inbound: Inbound, protected: bool) {
        match inbound {
            Inbound::AuthenticationRequest { .. }
            | Inbound::AuthenticationResult { .. }
            | Inbound::AuthenticationReject { .. }
            | Inbound::RegistrationAccept { .. }
            | Inbound::RegistrationReject { .. } => {
                self.on_registration_message(now, inbound, protected)
            }
            Inbound::DeregistrationAcceptUeOriginating => self.on_deregistration_accept(now),
            Inbound::DeregistrationRequestUeTerminated {
                reregistration_required,
                cause,
                t3346,
            } => self.on_network_deregistration(now, reregistration_required, cause, t3346),
            Inbound::DlNasTransport { payload, cause } => self.on_dl_transport(now, payload, cause),
            Inbound::ServiceAccept => self.on_service_accept(now),
            Inbound::Status { cause } => self.events.push_back(DeviceEvent::Rejected {
                message: RejectMessage::Status,
                cause,
            }),
            other => self.discard(format!("{} is not for a UE", other.name())),
        }
    }

    /// A timer expired (call at or after [`Device::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: SystemTime) {
        let Some(timer) = self.timer else { return };
        if now < timer.at {
            return;
        }
        self.timer = None;
        if timer.kind == TimerKind::Backoff {
            return self.start(now);
        }
        if timer.retransmissions >= self.config.timers.max_retransmissions
            || timer.kind == TimerKind::T3510
        {
            return self.procedure_failed(now, timer.kind);
        }
        self.events.push_back(DeviceEvent::Retransmitted {
            timer: timer.kind.name(),
        });
        self.retransmit(now, timer);
    }

    fn retransmit(&mut self, now: SystemTime, timer: Timer) {
        if let Some((message, how)) = self.last.clone() {
            self.send(now, &message, how);
        }
        self.timer = Some(Timer {
            kind: timer.kind,
            at: now + self.duration(timer.kind),
            retransmissions: timer.retransmissions + 1,
        });
    }

    /// A procedure gave up: release the connection and try again from the
    /// start, backing off after too many attempts (TS 24.501 §5.5.1.2.7).
    fn procedure_failed(&mut self, now: SystemTime, timer: TimerKind) {
        if timer == TimerKind::T3521 {
            // Abort the deregistration and deregister locally.
            return self.deregistered(now);
        }
        if timer == TimerKind::T3517
            && let Phase::Registered(session) = &mut self.phase
        {
            // No SERVICE ACCEPT after every retransmission: the network
            // has lost this context (a restart, an implicit deregistration).
            // Register again; the bursts not yet acknowledged stay queued and
            // go out once the new data session is up (at-least-once).
            session.service_request = false;
            let mut queued = std::mem::take(&mut session.queued);
            if let Some(burst) = session.unacknowledged.take() {
                queued.push_front(burst);
            }
            self.pending_bursts = queued;
            self.attempts += 1;
            self.release_connection();
            return self.start(now);
        }
        self.attempts += 1;
        self.release_connection();
        if self.attempts >= self.config.timers.max_attempts {
            self.attempts = 0;
            self.back_off(now, self.config.timers.t3502);
        } else {
            self.start(now);
        }
    }

    pub(crate) fn duration(&self, kind: TimerKind) -> std::time::Duration {
        let t = &self.config.timers;
        match kind {
            TimerKind::T3510 => t.t3510,
            TimerKind::T3517 => t.t3517,
            TimerKind::T3521 => t.t3521,
            TimerKind::T3580 => t.t3580,
            TimerKind::Coap => t.coap,
            TimerKind::Backoff => t.t3502,
        }
    }

    pub(crate) fn start_timer(&mut self, now: SystemTime, kind: TimerKind) {
        self.timer = Some(Timer {
            kind,
            at: now + self.duration(kind),
            retransmissions: 0,
        });
    }

    /// Restarts the running timer with its retransmission count cleared
    /// (the procedure made progress).
    pub(crate) fn progress(&mut self, now: SystemTime) {
        if let Some(t) = self.timer {
            self.start_timer(now, t.kind);
        }
    }

    pub(crate) fn back_off(&mut self, now: SystemTime, wait: std::time::Duration) {
        self.phase = Phase::Backoff;
        self.set_state(DeviceState::BackingOff);
        self.timer = Some(Timer {
            kind: TimerKind::Backoff,
            at: now + wait,
            retransmissions: 0,
        });
    }

    pub(crate) fn fail(&mut self) {
        self.release_connection();
        self.phase = Phase::Failed;
        self.timer = None;
        self.set_state(DeviceState::Failed);
    }

    /// Releases the NAS signalling connection: the security context of a
    /// procedure that did not complete is forgotten. What was queued before
    /// still goes out on the old connection (each [`Transmit`] names it).
    pub(crate) fn release_connection(&mut self) {
        self.connection = self.connection.wrapping_add(1);
        self.sec = None;
        self.kamf = None;
        self.k_prov = None;
        self.last = None;
        self.timer = None;
    }

    /// Starts the next thing to do: onboarding without a subscription,
    /// registration with one.
    pub(crate) fn start(&mut self, now: SystemTime) {
        if self.se.has_subscription() && self.public.is_some() && !self.reonboarding {
            let now_unix = nido_prov::unix_seconds(now);
            let window = self.config.timers.renew_before.as_secs();
            let held_long_enough = |p: &PublicPart| match self.fresh_package {
                Some((id, at)) if id == p.package_id => now_unix >= at.saturating_add(window),
                _ => true,
            };
            if self.public.as_ref().is_some_and(|p| {
                now_unix.saturating_add(window) >= p.not_after_unix && held_long_enough(p)
            }) {
                return self.renew(now, false);
            }
            self.start_registration(now);
        } else {
            self.start_onboarding(now);
        }
    }

    /// Renews the credential package (issue #16 item 5): the secure
    /// element erases it and keeps an erasure receipt, as a factory reset
    /// does, and the device onboards again; its provisioning request
    /// carries the receipt, so the PVS re-provisions the subscription in
    /// place (same SUPI, new K, a new validity). `refused`: the network
    /// refused the package as ended (#7, integrity protected). Bursts not
    /// yet sent wait for the new package.
    fn renew(&mut self, now: SystemTime, refused: bool) {
        let at = nido_prov::unix_seconds(now);
        let not_after_unix = self.public.as_ref().map_or(0, |p| p.not_after_unix);
        match self.se.reset(&self.config.serial, at) {
            Ok(receipt) => self.events.push_back(DeviceEvent::Renewing {
                package_id: receipt.package_id,
                not_after_unix,
                refused,
            }),
            Err(e) => {
                self.events.push_back(DeviceEvent::PackageRefused {
                    reason: format!("cannot erase the package to renew it: {e}"),
                });
                return self.fail();
            }
        }
        self.guti = None;
        self.public = None;
        self.reonboarding = false;
        self.phase = Phase::Idle;
        self.start_onboarding(now);
    }

    pub(crate) fn set_state(&mut self, to: DeviceState) {
        if self.state != to {
            self.events.push_back(DeviceEvent::State {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    pub(crate) fn discard(&mut self, reason: String) {
        self.events.push_back(DeviceEvent::Discarded { reason });
    }

    /// Sends `message` as `how` and remembers it for retransmission.
    pub(crate) fn send_procedure(&mut self, now: SystemTime, message: Nas5gsMessage, how: Send) {
        self.send(now, &message, how);
        self.last = Some((message, how));
    }

    /// Protects (as `how`) and queues one uplink message.
    pub(crate) fn send(&mut self, now: SystemTime, message: &Nas5gsMessage, how: Send) {
        let name = nido_nas::view::message_name(message);
        let pdu = match (how, self.sec.as_mut()) {
            (Send::Plain, _) => message.encode().map_err(|e| e.to_string()),
            (Send::Protected(p), Some(sec)) => sec.protect(message, p).map_err(|e| e.to_string()),
            (Send::Initial, Some(sec)) => sec.protect_initial(message).map_err(|e| e.to_string()),
            (_, None) => Err("no security context".into()),
        };
        let pdu = match pdu {
            Ok(pdu) => pdu,
            Err(e) => {
                return self.discard(format!("cannot send {name}: {e}"));
            }
        };
        let plain = (self.config.trace && how != Send::Plain)
            .then(|| message.encode().ok())
            .flatten();
        self.last_activity = Some(now);
        self.outbox.push_back(Transmit {
            pdu,
            message: name,
            plain,
            connection: self.connection,
        });
    }

    /// The 5G-GUTI as a mobile identity, else the onboarding SUCI.
    pub(crate) fn identity(&self) -> Option<NasFGsMobileIdentity> {
        let guti = self.guti.as_ref()?.to_wire().ok()?;
        Some(NasFGsMobileIdentity::from_guti(guti))
    }

    pub(crate) fn ngksi(&self) -> KeySetIdentifier {
        match self.sec.as_ref().map(SecurityContext::ngksi) {
            Some(k) if k < 7 => KeySetIdentifier::Native(k),
            _ => KeySetIdentifier::NoKey,
        }
    }

    /// Leaves the registration (UE-initiated, not switch-off).
    pub(crate) fn deregister(&mut self, now: SystemTime) {
        let Some(identity) = self.identity() else {
            return self.deregistered(now);
        };
        match build::deregistration_request_ue_originating(false, self.ngksi(), &identity) {
            Ok(request) => {
                self.phase = Phase::Deregistering;
                self.set_state(DeviceState::Deregistering);
                self.send_procedure(now, request, Send::Initial);
                self.start_timer(now, TimerKind::T3521);
            }
            Err(e) => {
                self.discard(format!("deregistration: {e}"));
                self.deregistered(now);
            }
        }
    }

    fn on_deregistration_accept(&mut self, now: SystemTime) {
        if matches!(self.phase, Phase::Deregistering) {
            self.deregistered(now);
        } else {
            self.discard("DEREGISTRATION ACCEPT outside a deregistration".into());
        }
    }

    /// Deregistered: the next registration uses the provisioned subscription.
    fn deregistered(&mut self, now: SystemTime) {
        self.release_connection();
        self.guti = None;
        self.phase = Phase::Idle;
        self.attempts = 0;
        self.start(now);
    }

    fn on_network_deregistration(
        &mut self,
        now: SystemTime,
        _reregistration_required: bool,
        cause: Option<Cause>,
        t3346: Option<std::time::Duration>,
    ) {
        if let Some(sec) = self.sec.as_mut()
            && let Ok(pdu) = sec.protect(
                &build::deregistration_accept_ue_terminated(),
                Protection::IntegrityCiphered,
            )
        {
            self.outbox.push_back(Transmit {
                pdu,
                message: "DeregistrationAcceptUeTerminated",
                plain: None,
                connection: self.connection,
            });
        }
        if let Some(cause) = cause {
            self.events.push_back(DeviceEvent::Rejected {
                message: RejectMessage::DeregistrationRequest,
                cause,
            });
        }
        self.guti = None;
        self.release_connection();
        // Only ever reached integrity protected (not in `allowed_plain`).
        // Without a cause it counts as a failed attempt, as #111 does.
        self.react(
            now,
            cause.unwrap_or(Cause::PROTOCOL_ERROR_UNSPECIFIED),
            t3346,
            true,
        );
    }

    /// The reaction to a reject cause (TS 24.501 §5.5.1.2.5, §5.5.2.3.2),
    /// `protected` telling whether it came integrity protected. An
    /// unprotected reject may be forged by anyone on the link: it never
    /// erases the subscription, and one that would take the credentials
    /// out of use is believed only after `max_unprotected_rejects` in a row,
    /// each followed by T3247 (TS 24.501 §5.3.20.2).
    pub(crate) fn react(
        &mut self,
        now: SystemTime,
        cause: Cause,
        t3346: Option<std::time::Duration>,
        protected: bool,
    ) {
        let timers = self.config.timers;
        if self.reonboarding && cause != Cause::CONGESTION {
            // The onboarding of a device that kept its subscription was
            // refused (typically #74: the network still holds that
            // subscription, so it was never lost): use it again.
            self.reonboarding = false;
        }
        if DISABLING_CAUSES.contains(&cause) {
            self.refused_with = Some(cause);
        }
        if !protected && DISABLING_CAUSES.contains(&cause) {
            self.unprotected_rejects = self.unprotected_rejects.saturating_add(1);
            if self.unprotected_rejects < timers.max_unprotected_rejects {
                let wait = self.t3247();
                self.events
                    .push_back(DeviceEvent::UnprotectedReject { cause, wait });
                return self.back_off(now, wait);
            }
            self.unprotected_rejects = 0;
        }
        match cause {
            // 5GS services not allowed, integrity protected with the
            // subscription's own 5G-AKA context (a registration with it, or
            // registered): the network holding K says its subscriber data
            // is invalid here (TS 24.501 §5.5.1.2.5; for nido's network,
            // the package ended): renew it. A #7 protected only by an
            // onboarding context comes from whichever network ran EAP-TLS
            // with the manufacturer's DCS, which does not hold the
            // subscription: it erases nothing (the arm below).
            Cause::SERVICES_NOT_ALLOWED
                if protected
                    && self.se.has_subscription()
                    && matches!(self.phase, Phase::Registering { .. } | Phase::Registered(_)) =>
            {
                self.renew(now, true)
            }
            // Illegal UE, illegal ME, permanently not authorized for this
            // SNPN: give up until powered on again (credentials kept).
            Cause::ILLEGAL_UE | Cause::ILLEGAL_ME | Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN => {
                self.fail()
            }
            // Temporarily not authorized for this SNPN (for nido's network:
            // the identity is onboarding on another connection): a short
            // wait first, doubled for each #74 in a row.
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN => {
                let wait = timers
                    .not_authorized_retry
                    .saturating_mul(1 << self.not_authorized.min(16))
                    .min(timers.temporarily_not_authorized);
                self.not_authorized = self.not_authorized.saturating_add(1);
                self.back_off(now, wait);
            }
            // Congestion (TS 24.501 §5.5.1.2.5): with a T3346 value that is
            // neither zero nor deactivated, the registration attempt counter
            // is reset (earlier failures do not count on towards T3502 across
            // back-offs) and T3346 runs: with the value sent if the reject
            // was integrity protected, else with one drawn from the default
            // range (an unprotected value may be forged). Without a usable
            // T3346 the clause makes it an abnormal case (§5.5.1.2.7); nido
            // then waits T3502 rather than retrying at once into a
            // congested network, and T3502 starts the count again too.
            Cause::CONGESTION => {
                self.attempts = 0;
                match t3346.filter(|t| !t.is_zero()) {
                    Some(sent) => {
                        let wait = if protected {
                            sent
                        } else {
                            self.t3346_default()
                        };
                        self.events.push_back(DeviceEvent::Congestion {
                            t3346: sent,
                            protected,
                            wait,
                        });
                        self.back_off(now, wait);
                    }
                    None => self.back_off(now, timers.t3502),
                }
            }
            // Onboarding services terminated: start over.
            Cause::ONBOARDING_SERVICES_TERMINATED => {
                self.phase = Phase::Idle;
                self.start(now);
            }
            // UE identity cannot be derived: the network could not read the
            // SUCI (a corrupted datagram, a forged reject: it comes
            // unprotected) or does not know the subscription. TS 24.501
            // §5.5.1.2.5 asks for a new registration, which conceals afresh.
            Cause::UE_IDENTITY_CANNOT_BE_DERIVED
                if self.unknown_identity + 1 < UNKNOWN_IDENTITY_TRIES =>
            {
                self.unknown_identity += 1;
                self.back_off(now, timers.not_authorized_retry);
            }
            // 5GS services not allowed, or #9 again and again: the network
            // may have lost or refused the subscription; onboard again, but
            // keep the subscription until a new package replaces it (these
            // rejects come unprotected, and a network that still holds the
            // subscription refuses the onboarding, #74, which returns the
            // device to it).
            Cause::SERVICES_NOT_ALLOWED | Cause::UE_IDENTITY_CANNOT_BE_DERIVED => {
                self.unknown_identity = 0;
                self.reonboarding = self.se.has_subscription();
                self.phase = Phase::Idle;
                self.start(now);
            }
            _ => {
                self.attempts += 1;
                if self.attempts >= timers.max_attempts {
                    self.attempts = 0;
                    self.back_off(now, timers.t3502);
                } else {
                    self.start(now);
                }
            }
        }
    }

    /// A T3346 value for an unprotected congestion reject: uniform in
    /// `Timers::t3346_default`, whole milliseconds, from the device's
    /// back-off source.
    fn t3346_default(&mut self) -> std::time::Duration {
        let (min, max) = self.config.timers.t3346_default;
        let span = max.saturating_sub(min).as_millis() as u64;
        if span == 0 {
            return min;
        }
        min + std::time::Duration::from_millis(splitmix64(&mut self.backoff_rng) % (span + 1))
    }

    /// A T3247 value, uniform in `Timers::t3247`: spread over the fleet by
    /// the serial and over the tries by the counter (not cryptographic; it
    /// only has to keep refused devices from returning together).
    fn t3247(&self) -> std::time::Duration {
        let (min, max) = self.config.timers.t3247;
        let span = max.saturating_sub(min).as_millis() as u64;
        if span == 0 {
            return min;
        }
        // FNV-1a over the serial and the counter, then a splitmix64 finaliser.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self
            .config
            .serial
            .as_bytes()
            .iter()
            .chain(&self.unprotected_rejects.to_be_bytes())
        {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        min + std::time::Duration::from_millis(h % (span + 1))
    }
}

/// FNV-1a of `bytes` (spreads a seed or a serial over 64 bits).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64: the next value of a small seedable generator (back-off
/// spreading only, nothing secret).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The causes that take a UE's credentials out of use (TS 24.501
/// §5.5.1.2.5, §5.3.20.2): without integrity protection they are
/// suspected and counted, not believed at once.
const DISABLING_CAUSES: [Cause; 4] = [
    Cause::ILLEGAL_UE,
    Cause::ILLEGAL_ME,
    Cause::SERVICES_NOT_ALLOWED,
    Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
];

/// How many #9 rejects in a row a device takes before it onboards again
/// (keeping its subscription until a new package replaces it).
pub(crate) const UNKNOWN_IDENTITY_TRIES: u32 = 3;

/// The messages a UE accepts without integrity protection once it has a
/// security context (TS 24.501 §4.4.4.2).
fn allowed_plain(inbound: &Inbound) -> bool {
    matches!(
        inbound,
        Inbound::AuthenticationRequest { .. }
            | Inbound::AuthenticationResult { .. }
            | Inbound::AuthenticationReject { .. }
            | Inbound::RegistrationReject { .. }
            | Inbound::DeregistrationAcceptUeOriginating
    )
}
