//! # nido-store: the network's persistent [`nido_net::Store`]
//!
//! [`SqlStore`] keeps what the network remembers in SQLite (one file) or
//! PostgreSQL (shared by several network processes), through sqlx:
//!
//! - the [`nido_net::Store`] trait: subscriptions (one per device, one per
//!   SUPI), the IMSI range, owners and their third-party credentials,
//!   one-time claim codes; batches of writes committed in one transaction
//!   ([`nido_net::Store::apply`], group commit) and MSIN leases;
//! - what the network process needs besides: the IMSI range's size, the
//!   append-only audit trail ([`AuditEntry`], from any
//!   [`nido_net::NetworkEvent`]), devices seen, the DCS's manufacturers,
//!   CRLs and block list (and a [`nido_pki::TrustStore`] built from them),
//!   the log of packages delivered, the outbox of devices' uplink data and
//!   where each owner wants it delivered (issue #14);
//! - the read side operators and owners see (devices, subscriptions without
//!   keys, the audit trail, the funnel: `query`) and the HTTP API's hashed
//!   bearer tokens (issue #15).
//!
//! ## Secrets
//! K, OPc and owners' credentials are sealed with AES-256-GCM under a
//! 32-octet key-encryption key ([`Kek`]) with a random nonce per value and
//! the row's key (SUPI, owner id) as associated data, so a value copied to
//! another row does not open. A check value sealed at first start makes a
//! wrong KEK fail at [`SqlStore::open`].
//!
//! ## Schema
//! Versioned migrations embedded in the binary (`migrations/sqlite/*.sql`,
//! `migrations/postgres/*.sql`, one pair per version), applied at open by
//! sqlx's migrator, each in one transaction, recorded in
//! `schema_migrations`; on PostgreSQL under an advisory lock.
//!
//! ## Threads
//! The trait is synchronous: a [`SqlStore`] owns a tokio current-thread
//! runtime and blocks on it. Use it from a plain thread, never from inside a
//! tokio runtime. On SQLite, the protocol core's per-datagram reads (a
//! subscription by device or SUPI, a device's owner) skip sqlx's worker
//! thread: they run on the caller's thread on read-only connections of the
//! same file (`direct`), still seeing only committed state; and
//! [`nido_net::Store::apply`] (group commits, and the trait's single
//! writes, groups of one) runs on the caller's thread on one writing
//! connection of the file (same durability settings as sqlx's, one
//! transaction per group).

mod batch;
mod credentials;
mod direct;
mod error;
mod extras;
mod kek;
mod open;
mod outbox;
mod policy;
mod query;
mod records;
mod sql;
mod tokens;

pub use error::{SqlStoreError, StoreOpenError};
pub use extras::{PackageEnd, Packages, Release};
pub use kek::{Kek, KekError};
pub use open::{Backend, SCHEMA_VERSION};
pub use outbox::{
    DELIVERED_KEPT_S, DeliveryConfig, DeliveryStatus, DeliveryTarget, EntryKind, MAX_DOWNLINK,
    OUTBOX_LIMIT, OutboxEntry, PendingDownlink,
};
pub use query::{AuditFilter, DeviceFilter, DeviceView, Funnel, PAGE_MAX, SubscriptionView};
pub use records::{
    AuditEntry, BlockedRecord, CrlRecord, DeviceRecord, ManufacturerRecord, ProvisioningRecord,
    iso8601, iso8601_unix,
};
pub use sql::{CrashGroup, CrashPoint, CrashWhen, SqlStore};
pub use tokens::TokenRecord;
