//! nido's deterministic simulation.
//!
//! A sans-IO, in-memory world for exercising nido's onboarding at scale without threads,
//! sockets or real time: the harness owns the clock and passes it into every call.
//!
//! **What a seed determines.** The link's faults (loss, duplication,
//! reordering, corruption, jitter), the devices' back-off draws
//! (`Device::seed_backoff`) and the AMF's T3346 spread and first 5G-TMSI
//! (`Admission::seed`) come from seeded streams; with the same seed and
//! settings (`nido demo`'s `--threads` included) a run has the same
//! messages in the same order at the same simulated times, the same
//! funnel, latencies and NAS message counts; on a perfect link with every
//! device onboarding at once the thread count does not matter either
//! (`crates/nido/tests/demo_seed.rs`), while on a lossy one it does (each
//! shard draws its own link's faults from the seed and its index).
//! Cryptographic randomness stays with the crypto library and is not
//! seeded: keys, RAND, nonces, the ECDSA signatures whose lengths vary,
//! so octet counts differ from run to run by a few octets; so do the
//! wall-clock, CPU and memory figures, and the identifiers a shared store
//! hands out (MSINs) when several threads share it.
//!
//! - [`link`]: an unreliable radio/access link between many devices and one network, with
//!   seeded loss, duplication, reordering, corruption, delay and jitter.

//! - [`devices`]: [`Devices`], the one fleet core every driver is a
//!   configuration of: the devices, their connection ids, one timer heap,
//!   the arrival and burst schedules, per-state and settled counts and the
//!   one [`Metrics`]; what a driver adds is a clock and a transport;
//! - [`harness`]: [`Fleet`], that core with a simulated clock and one
//!   in-process network over a link, a trace hook and network event hooks;
//!   a step costs what is due at that instant, never a walk over all
//!   devices, so a fleet of a million devices runs (`nido demo`'s shards
//!   are fleets; `nido_access::fleet` is the same core on the wall clock
//!   over UDP, for `nido sim` and `nido device run`);
//! - [`connection`]: the one connection-id scheme of every fleet driver;
//! - [`metrics`]: every figure a fleet run reports, defined once, and
//!   [`report`]: the one report they go into (`nido demo`, `nido sim`, the
//!   harness);
//! - [`scenario`]: a manufacturer, a network trusting it, devices from its factory;
//! - [`adversary`]: attackers on the link for tests: a man in the middle, a
//!   fake base station, forged PDUs; off-path injection is [`Fleet::inject`].

pub mod adversary;
pub mod connection;
pub mod devices;
pub mod harness;
pub mod injector;
pub mod link;
pub mod metrics;
pub mod report;
pub mod scenario;

pub use connection::{connection_id, device_of};
pub use devices::{Bursts, Devices};
pub use harness::{Fleet, TraceRecord};
pub use link::{Delivery, Direction, Faults, Link, LinkError, LinkStats};
pub use metrics::Metrics;
pub use report::Report;
