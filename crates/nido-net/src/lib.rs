//! # nido-net: the network side of onboarding, as plain logic over a store
//!
//! - [`store`]: the [`Store`] trait (subscriptions, owners, claims) and
//!   [`MemoryStore`]; SQLite and PostgreSQL implement the same trait.
//! - [`pvs`]: the Provisioning Server: creates, attaches or re-provisions
//!   the subscription of an authenticated device identity and seals its
//!   credential package; marks it provisioned on the device's confirmation.
//! - [`udm`]: the UDM/ARPF with its SIDF: SUCI de-concealment with several
//!   home network keys, 5G-AKA vectors with SQN management, resynchronisation,
//!   activation of a subscription on its first successful 5G-AKA.
//!
//! ## Invariants
//! - One subscription per device identity, one per SUPI: re-provisioning
//!   replaces K in place, never adds a second subscription.
//! - A vector's SQN state is written to the store before the vector is
//!   returned: no SQN is issued twice, even across restarts.
//! - No I/O, no clock: `now` and randomness are the only outside inputs.

pub mod pvs;
pub mod store;
pub mod udm;

pub use store::{MemoryStore, Owner, Store, StoreError, Subscription, SubscriptionState};
