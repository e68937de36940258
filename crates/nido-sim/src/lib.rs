//! nido's deterministic simulation.
//!
//! A sans-IO, in-memory world for exercising nido's onboarding at scale without threads,
//! sockets or real time: the harness owns the clock and passes it into every call, so a run
//! is fully determined by its seed and its inputs.
//!
//! - [`link`]: an unreliable radio/access link between many devices and one network, with
//!   seeded loss, duplication, reordering, corruption, delay and jitter.

//! - [`harness`]: [`Fleet`], N devices and one network over a link, the
//!   clock, a trace hook, device and network event hooks and per-state
//!   device counts; a step costs what is due at that instant, never a walk
//!   over all devices, so a fleet of a million devices runs;
//! - [`scenario`]: a manufacturer, a network trusting it, devices from its factory;
//! - [`adversary`]: attackers on the link for tests: a man in the middle, a
//!   fake base station, forged PDUs; off-path injection is [`Fleet::inject`].

pub mod adversary;
pub mod harness;
pub mod injector;
pub mod link;
pub mod scenario;

pub use harness::{Fleet, TraceRecord, connection_id};
pub use link::{Delivery, Direction, Faults, Link, LinkError, LinkStats};
