//! Attackers on the simulated access link, for tests (issue #17's threat
//! model, ARCHITECTURE.md "Threat model").
//!
//! The access link stands for the radio: whoever is on it sees every PDU
//! (connection ids travel in clear) and can send its own. Two positions:
//!
//! - **on path** (a fake base station, a relay): an [`Adversary`] set with
//!   [`crate::Fleet::set_adversary`] sees every datagram before it is
//!   delivered and decides what is delivered instead ([`Verdict`]): pass,
//!   drop, rewrite; it can also send datagrams of its own
//!   ([`Injection`]). [`Mitm`] is one driven by a closure;
//!   [`FakeBaseStation`] relays one device's onboarding until the network's
//!   SECURITY MODE COMMAND and then impersonates the network with null
//!   integrity (finding 1);
//! - **off path**: knows connection ids (from an earlier capture) and
//!   sends datagrams, but sees nothing live: [`crate::Fleet::inject`].
//!
//! [`forge`] builds the PDUs such attackers send.
//!
//! Invariant: an adversary only ever handles octets; it holds no key of
//! the device or the network, so anything it makes is what a real
//! attacker in that position could make.

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::link::Direction;

/// A datagram the adversary sees on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// When it would be delivered.
    pub at: SystemTime,
    /// Which way it travels.
    pub direction: Direction,
    /// The link connection it names.
    pub conn: u64,
    /// The PDU.
    pub pdu: Vec<u8>,
}

/// What the adversary lets through in place of a datagram it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver these octets (the original, or a rewrite).
    Deliver(Vec<u8>),
    /// Deliver nothing.
    Drop,
}

/// A datagram the adversary sends itself, delivered at once to the
/// network (uplink) or to the device the connection belongs to (downlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Which way.
    pub direction: Direction,
    /// The connection it names.
    pub conn: u64,
    /// The PDU.
    pub pdu: Vec<u8>,
}

/// An attacker on the path between the devices and the network.
pub trait Adversary {
    /// A datagram about to be delivered: what is delivered instead.
    fn intercept(&mut self, seen: Seen) -> Verdict;
    /// The next datagram the adversary sends of its own accord (asked
    /// after every delivery and every instant).
    fn poll_injection(&mut self) -> Option<Injection> {
        None
    }
}

/// The closure a [`Mitm`] runs on every datagram: it may queue injections.
pub type MitmRule = Box<dyn FnMut(&Seen, &mut VecDeque<Injection>) -> Verdict>;

/// A man in the middle driven by a closure; it keeps what it saw.
pub struct Mitm {
    rule: MitmRule,
    queue: VecDeque<Injection>,
    /// Every datagram seen, in order (a capture, for replays).
    pub captured: Vec<Seen>,
}

impl core::fmt::Debug for Mitm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mitm")
            .field("captured", &self.captured.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Mitm {
    /// A man in the middle running `rule` on every datagram.
    pub fn new(rule: impl FnMut(&Seen, &mut VecDeque<Injection>) -> Verdict + 'static) -> Self {
        Self {
            rule: Box::new(rule),
            queue: VecDeque::new(),
            captured: Vec::new(),
        }
    }

    /// One that passes everything and records it (a passive eavesdropper).
    pub fn eavesdropper() -> Self {
        Self::new(|seen, _| Verdict::Deliver(seen.pdu.clone()))
    }
}

impl Adversary for Mitm {
    fn intercept(&mut self, seen: Seen) -> Verdict {
        let verdict = (self.rule)(&seen, &mut self.queue);
        self.captured.push(seen);
        verdict
    }

    fn poll_injection(&mut self) -> Option<Injection> {
        self.queue.pop_front()
    }
}

impl<A: Adversary + ?Sized> Adversary for std::rc::Rc<std::cell::RefCell<A>> {
    fn intercept(&mut self, seen: Seen) -> Verdict {
        self.borrow_mut().intercept(seen)
    }

    fn poll_injection(&mut self) -> Option<Injection> {
        self.borrow_mut().poll_injection()
    }
}

/// A fake base station against one device (finding 1 of issue #17): it
/// relays the device's onboarding to the genuine network (so EAP-TLS
/// succeeds, which it cannot fake), replaces the network's SECURITY MODE
/// COMMAND with one of its own selecting NIA0/NEA0 with a zero MAC, keeps
/// the network's later downlink for that connection from the device, and
/// answers the device's SECURITY MODE COMPLETE with a REGISTRATION ACCEPT
/// protected with NIA0 and a plain one. A device that accepts either is
/// under the attacker's control.
#[derive(Debug)]
pub struct FakeBaseStation {
    conn_of: fn(u64) -> bool,
    /// Connections on which the command was replaced.
    hijacked: Vec<u64>,
    queue: VecDeque<Injection>,
    /// Uplink PDUs the device sent on a hijacked connection after the
    /// forged command (what the device told the fake network).
    pub uplink_after: Vec<Vec<u8>>,
}

impl FakeBaseStation {
    /// One attacking the connections for which `targets` holds.
    pub fn new(targets: fn(u64) -> bool) -> Self {
        Self {
            conn_of: targets,
            hijacked: Vec::new(),
            queue: VecDeque::new(),
            uplink_after: Vec::new(),
        }
    }

    /// Whether a command was replaced (the attack got that far).
    pub fn hijacked(&self) -> bool {
        !self.hijacked.is_empty()
    }
}

impl Adversary for FakeBaseStation {
    fn intercept(&mut self, seen: Seen) -> Verdict {
        if !(self.conn_of)(seen.conn) {
            return Verdict::Deliver(seen.pdu);
        }
        let hijacked = self.hijacked.contains(&seen.conn);
        match seen.direction {
            Direction::Downlink if hijacked => Verdict::Drop,
            Direction::Downlink if forge::security_header_type(&seen.pdu) == Some(3) => {
                self.hijacked.push(seen.conn);
                match forge::security_mode_command_nia0() {
                    Some(pdu) => Verdict::Deliver(pdu),
                    None => Verdict::Drop,
                }
            }
            Direction::Downlink => Verdict::Deliver(seen.pdu),
            Direction::Uplink if hijacked => {
                // Whatever the device sends goes to the fake network alone;
                // it answers the first one with the accepts.
                if self.uplink_after.is_empty() {
                    for pdu in [
                        forge::registration_accept_nia0(),
                        forge::registration_accept_plain(),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        self.queue.push_back(Injection {
                            direction: Direction::Downlink,
                            conn: seen.conn,
                            pdu,
                        });
                    }
                }
                self.uplink_after.push(seen.pdu);
                Verdict::Drop
            }
            Direction::Uplink => Verdict::Deliver(seen.pdu),
        }
    }

    fn poll_injection(&mut self) -> Option<Injection> {
        self.queue.pop_front()
    }
}

/// PDUs an attacker without keys can make.
pub mod forge {
    use nido_nas::build::{self, CipheringAlgorithm, IntegrityAlgorithm, KeySetIdentifier};

    /// The security header type of a 5GMM PDU (TS 24.501 §9.3), if it is one.
    pub fn security_header_type(pdu: &[u8]) -> Option<u8> {
        match pdu {
            [0x7e, sht, ..] => Some(sht & 0x0f),
            _ => None,
        }
    }

    /// `inner` under a security header of type `sht` with a zero MAC and
    /// sequence number `sqn`: what "protection" with NIA0 looks like
    /// (TS 24.501 §9.1.1, TS 33.501 D.1: NIA0's MAC is 32 zero bits).
    pub fn with_null_mac(sht: u8, sqn: u8, inner: &[u8]) -> Vec<u8> {
        let mut pdu = vec![0x7e, sht, 0, 0, 0, 0, sqn];
        pdu.extend_from_slice(inner);
        pdu
    }

    /// A SECURITY MODE COMMAND selecting 128-NIA0/NEA0 with the capabilities
    /// nido's UE sends replayed correctly (an attacker read them in the
    /// plain REGISTRATION REQUEST), header type 3, zero MAC.
    pub fn security_mode_command_nia0() -> Option<Vec<u8>> {
        let command = build::security_mode_command(&build::SecurityModeCommandParams {
            ciphering: CipheringAlgorithm::NEA0,
            integrity: IntegrityAlgorithm::NIA0,
            ngksi: KeySetIdentifier::Native(0),
            replayed_ue_security_capability: build::ue_security_capability(),
            imeisv_request: false,
            abba: Some(build::ABBA.to_vec()),
            additional_security_information: None,
            eap_message: None,
        })
        .ok()?;
        Some(with_null_mac(3, 0, &command.encode().ok()?))
    }

    fn registration_accept() -> Option<Vec<u8>> {
        build::registration_accept(&build::RegistrationAcceptParams {
            guti: None,
            tai_list: None,
            allowed_nssai: Vec::new(),
            t3512_seconds: None,
            cp_ciot: true,
        })
        .ok()?
        .encode()
        .ok()
    }

    /// A REGISTRATION ACCEPT "protected" with NIA0 (header type 2, zero MAC).
    pub fn registration_accept_nia0() -> Option<Vec<u8>> {
        Some(with_null_mac(2, 1, &registration_accept()?))
    }

    /// A plain REGISTRATION ACCEPT (header type 0).
    pub fn registration_accept_plain() -> Option<Vec<u8>> {
        registration_accept()
    }

    /// A plain REGISTRATION REJECT with `cause` (TS 24.501 §8.2.9): four
    /// octets, `7e 00 44 cause`, the finding 3 datagram.
    pub fn registration_reject(cause: u8) -> Vec<u8> {
        vec![0x7e, 0x00, 0x44, cause]
    }

    /// A plain network-initiated DEREGISTRATION REQUEST with `cause`
    /// (TS 24.501 §8.2.14: de-registration type "re-registration not
    /// required", 3GPP access, then the 5GMM cause IE, IEI 0x58).
    pub fn deregistration_request(cause: u8) -> Vec<u8> {
        vec![0x7e, 0x00, 0x47, 0x01, 0x58, cause]
    }
}
