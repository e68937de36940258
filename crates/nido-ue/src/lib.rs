//! # nido-ue: the device side of onboarding, as a sans-IO state machine
//!
//! A [`Device`] is everything a UE does with the network, from factory state
//! to short data bursts (design doc phases A to D):
//!
//! - phase A: REGISTRATION REQUEST type 101 "SNPN onboarding" with the
//!   anonymous onboarding SUCI, EAP-TLS 1.3 inside NAS AUTHENTICATION
//!   messages ([`nido_eap::EapTlsPeer`]), K_AMF from the EMSK, NAS security mode;
//! - phase B: the control-plane-only onboarding PDU session and the
//!   provisioning exchange with the PVS (CoAP over CIoT user data); the
//!   sealed credential package is opened inside the [`SecureElement`];
//!   deregistration;
//! - phase C: initial registration with a SUCI concealed with the provisioned
//!   home network key, 5G-AKA answered inside the secure element, security mode;
//! - phase D: a control-plane-only PDU session, then bursts in CONTROL PLANE
//!   SERVICE REQUEST (from idle) or UL NAS TRANSPORT (connected).
//!
//! The machine is driven like `quinn-proto`: feed it received PDUs
//! ([`Device::handle_pdu`]) and expired timers ([`Device::handle_timeout`]),
//! each with `now`; collect what it wants sent ([`Device::poll_transmit`]),
//! when it next needs waking ([`Device::poll_timeout`]) and what happened
//! ([`Device::poll_event`]).
//!
//! ## Invariants
//! - No I/O, no clock, no threads: `now` is always an argument.
//! - After a security context exists, only the messages TS 24.501 §4.4.4.2
//!   allows are accepted without integrity protection; anything else is
//!   dropped and reported, never acted on.
//! - Every procedure has a timer and a bounded number of retransmissions;
//!   a device never waits forever and never retransmits forever.
//! - K and OPc never enter this crate: 5G-AKA runs in the secure element.

mod config;
mod data;
mod device;
mod events;
mod provisioning;
mod registration;

pub use config::{DeviceConfig, Timers};
pub use device::Device;
pub use events::{BurstPath, DataError, DeviceEvent, DeviceState, RejectMessage, Transmit};
pub use nido_se::{SeError, SecureElement};
pub use provisioning::{DATA_DNN, ONBOARDING_DNN};
