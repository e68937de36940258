//! # nido-net: the network side of onboarding, as plain logic over a store
//!
//! - [`amf`]: the AMF/SEAF, the one state machine a driver talks to: NAS
//!   termination for every UE of an access link (registration, EAP-TLS and
//!   5G-AKA, security mode, onboarding restrictions and timer, PDU sessions,
//!   CIoT data, deregistration), calling the functions below;
//! - [`ausf`]: K_AUSF/K_SEAF from EAP-TLS or 5G-AKA, the 5G-AKA session;
//! - [`dcs`]: the Default Credentials Server (EAP-TLS 1.3 per DCS realm);
//!   a realm whose manufacturer runs its own DCS is relayed instead
//!   ([`Network::relay_realm`]): the AMF carries the device's EAP to it in
//!   [`AaaRequest`]s and takes its [`AaaAnswer`]s (TS 33.501 I.9.2.3, the
//!   AAA procedure of I.2.2.2.2), the driver speaking RADIUS;
//! - [`sink`]: where uplink data goes ([`ApplicationSink`]);
//! - [`events`]: what the network reports ([`NetworkEvent`]);
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
//! - A UE context is keyed by its connection; a device identity has at most
//!   one onboarding context (clone detection) and a SUPI at most one
//!   registered context.
//! - Nothing a UE sends changes a context unless it verified (NAS MAC,
//!   replay check) and fits the context's state; a refused UE leaves no
//!   context and no subscription behind.
//! - One subscription per device identity, one per SUPI: re-provisioning
//!   replaces K in place, never adds a second subscription.
//! - A vector's SQN state is written to the store before the vector is
//!   returned: no SQN is issued twice, even across restarts.
//! - K_AUSF after onboarding is the 256 most significant bits of the EMSK
//!   when the built-in DCS ran EAP-TLS (TS 33.501 B.2.1.1), of the MSK when
//!   an external DCS did and its AAA server returned the MSK (I.9.2.3);
//!   [`nido_sec::kdf::KausfFrom`] is the one rule both ends apply, and a
//!   device's factory bundle tells it which.
//! - No I/O, no clock: `now` and randomness are the only outside inputs.

pub mod amf;
pub mod ausf;
pub mod dcs;
pub mod events;
pub mod iso8601;
pub mod pvs;
pub mod sink;
pub mod stage;
pub mod store;
pub mod udm;

pub use amf::{AaaAnswer, AaaRequest, ConnectionId, Network, NetworkConfig, Transmit};
pub use events::{CertificateSeen, EventRecord, Loudness, NetworkEvent, ResetSeen};
pub use nido_pki::DeviceId;
pub use sink::{ApplicationSink, CountingSink, Downlink, DownlinkQueue, MemorySink, Uplink};
pub use stage::Stage;

pub use store::{
    MemoryStore, Owner, SharedStore, Store, StoreError, Subscription, SubscriptionState, Write,
};
