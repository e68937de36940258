//! What the network remembers, behind a trait.

use std::collections::HashMap;

use nido_pki::DeviceId;
use nido_prov::ThirdPartyCredential;
use nido_sec::aka::HeSqn;
use nido_sec::milenage::Amf;
use nido_sec::{K, Opc, Supi};
use thiserror::Error;

/// Where a subscription is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Created by the PVS; the package is on its way.
    Created,
    /// The device confirmed it installed the package.
    Provisioned,
    /// The device authenticated with it (5G-AKA): validated.
    Active,
    /// The operator released it for re-provisioning (a device that lost
    /// its credentials, say to a factory reset): the next onboarding of its
    /// device identity gets a new K in place. Until then the old K still
    /// authenticates (and makes it active again).
    Released,
}

impl SubscriptionState {
    /// Whether an authenticated onboarding of its device identity may
    /// re-provision it without more proof. A device that confirmed its
    /// package (provisioned) or validated it (active) holds working
    /// credentials: another device onboarding with the same identity is a
    /// clone, or the same device after a reset, and the identity alone
    /// cannot tell which. So only a subscription whose package was never
    /// confirmed (`Created`: the device may have died before installing
    /// it) or one the operator released is re-provisioned on the identity
    /// alone; a provisioned or active one needs the device's erasure
    /// receipt for its package (a factory reset, [`nido_prov::receipt`]).
    pub fn reprovisionable(self) -> bool {
        matches!(self, Self::Created | Self::Released)
    }
}

/// A subscription as the UDM/ARPF keeps it.
#[derive(Clone)]
pub struct Subscription {
    /// The SUPI.
    pub supi: Supi,
    /// K.
    pub k: K,
    /// OPc.
    pub opc: Opc,
    /// The AMF field of its vectors.
    pub amf: Amf,
    /// The home network's SQN state.
    pub sqn: HeSqn,
    /// Its state.
    pub state: SubscriptionState,
    /// The device identity (enrolled manufacturer and IDevID serial) it
    /// belongs to.
    pub device: DeviceId,
    /// The owner account it is attached to, if any.
    pub owner: Option<String>,
    /// The id of the last package delivered.
    pub package_id: [u8; 16],
    /// When that package's validity ends (its `not_after_unix`, seconds
    /// since the Unix epoch; issue #16 item 5): from then on the AMF
    /// refuses a registration with it (#7, integrity protected), and the
    /// device renews by onboarding again with its erasure receipt. `None`
    /// for a package delivered before the store kept it (schema 8): never
    /// refused for expiry.
    pub not_after_unix: Option<u64>,
    /// The id of the SUCI home network key that package carried (the key
    /// the device conceals its SUPI with; issue #16 item 4). `None` for a
    /// package delivered before the store kept it (schema 8).
    pub suci_key_id: Option<u8>,
}

impl core::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Subscription")
            .field("supi", &self.supi)
            .field("state", &self.state)
            .field("device", &self.device)
            .field("owner", &self.owner)
            .field("not_after_unix", &self.not_after_unix)
            .field("suci_key_id", &self.suci_key_id)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Whether its package's validity has ended at `now_unix` (TS 33.501
    /// leaves credential lifetimes to the credentials holder; nido's PVS
    /// sets one per package). A package without a recorded end never
    /// expires.
    pub fn expired(&self, now_unix: u64) -> bool {
        self.not_after_unix.is_some_and(|end| now_unix > end)
    }
}

/// An owner: an account with third-party credentials for its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Credentials delivered to every device the owner claimed.
    pub credentials: Vec<ThirdPartyCredential>,
}

/// A store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule would break (a second subscription for a device or SUPI).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Something named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The IMSI range is used up.
    #[error("IMSI range exhausted")]
    Exhausted,
    /// The store cannot be reached or failed (connection lost, database
    /// gone, I/O error, timeout); try again later. Never means "absent".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The manufacturer's devices already hold `max` subscriptions (its
    /// quota, [`Store::allocate_msin_for`]).
    #[error("manufacturer {manufacturer:?} reached its quota of {max} subscriptions")]
    QuotaReached {
        /// The enrolled manufacturer's name.
        manufacturer: String,
        /// Its quota.
        max: u64,
    },
}

/// One change of the network's persistent state, as it leaves the
/// protocol core (issue #11): the core never waits for a database; its
/// writes are collected by a [`crate::stage::Stage`] and committed by the
/// driver in groups ([`Store::apply`]), and no message that depends on a
/// write leaves before the group holding it is durable.
///
/// Each variant touches only what it names, so a write of one column never
/// undoes a concurrent change of another (an operator's release of the
/// state while the UDM advances the SQN, say).
#[derive(Debug, Clone)]
pub enum Write {
    /// A subscription created, or given a new package (new K and OPc, a
    /// new package id): the whole row, inserted or replacing the row of
    /// `sub.device`, with the audit entries of the events that report it.
    /// A SUPI that belongs to another device is a [`StoreError::Conflict`].
    Subscription {
        /// The row.
        sub: Subscription,
        /// When (seconds since the Unix epoch), for the audit entries.
        at_unix: u64,
        /// The events this change reports ([`crate::NetworkEvent::recorded_with_change`]).
        audit: Vec<crate::NetworkEvent>,
    },
    /// The home network's SQN state of `supi`, alone (the UDM issuing a
    /// vector or resynchronising): no other column changes. A SUPI without
    /// a subscription is a [`StoreError::NotFound`].
    Sqn {
        /// The SUPI.
        supi: Supi,
        /// Its new SQN state.
        sqn: HeSqn,
    },
    /// The state alone of the subscription of `supi` (the PVS marking it
    /// provisioned, the UDM activating it), with the audit entries of the
    /// events that report it. A SUPI without a subscription is a
    /// [`StoreError::NotFound`].
    State {
        /// The SUPI.
        supi: Supi,
        /// The new state.
        state: SubscriptionState,
        /// When (seconds since the Unix epoch), for the audit entries.
        at_unix: u64,
        /// The events this change reports.
        audit: Vec<crate::NetworkEvent>,
    },
    /// One more MSIN counted against `manufacturer`'s quota (its number came
    /// from a lease, [`Store::lease_msins`]).
    Counted {
        /// The enrolled manufacturer's name.
        manufacturer: String,
    },
    /// Audit entries of events that changed nothing else.
    Audit {
        /// When (seconds since the Unix epoch).
        at_unix: u64,
        /// The events.
        events: Vec<crate::NetworkEvent>,
    },
    /// A burst of uplink data for its owner's application, into the
    /// network's outbox (issue #14): the SERVICE ACCEPT that acknowledges
    /// it waits for this write, and a delivery worker drains the outbox.
    Uplink(crate::sink::Uplink),
}

/// The network's persistent state.
///
/// Every read returns `Err` when the store cannot answer
/// ([`StoreError::Unavailable`] for a database that cannot be reached or
/// failed): `Ok(None)` and an empty list mean "absent", never "unknown".
pub trait Store {
    /// The subscription of a device identity.
    fn subscription_by_device(&self, device: &DeviceId)
    -> Result<Option<Subscription>, StoreError>;
    /// The subscription of a SUPI.
    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError>;
    /// Inserts or replaces the subscription of `sub.device`, atomically;
    /// refuses a SUPI that belongs to another device.
    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError>;
    /// Every subscription (for listings and consistency checks).
    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;
    /// [`Store::subscription_by_device`] inside a procedure whose first
    /// read of this device was fresh: a store that remembers may answer
    /// from what this instance last read or wrote (a
    /// [`crate::stage::Stage`], without a database round trip); state that
    /// other processes change (a release) counts at the procedure's next
    /// fresh read. The default reads.
    fn cached_subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.subscription_by_device(device)
    }
    /// [`Store::subscription_by_supi`] inside a procedure, as
    /// [`Store::cached_subscription_by_device`].
    fn cached_subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        self.subscription_by_supi(supi)
    }
    /// The next unused MSIN number of the IMSI range.
    fn allocate_msin(&mut self) -> Result<u64, StoreError>;
    /// [`Store::allocate_msin`] for a device of `manufacturer`, counted
    /// against its quota in the same step (one transaction): refused with
    /// [`StoreError::QuotaReached`] once `max` MSINs were allocated for its
    /// devices, so one manufacturer cannot drain the range. The count never
    /// goes down (neither does the range).
    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError>;
    /// How many MSINs [`Store::allocate_msin_for`] allocated for
    /// `manufacturer`'s devices (the PVS's admission check: a device beyond
    /// the quota is refused before its registration is accepted).
    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError>;
    /// Adds or replaces an owner.
    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError>;
    /// The owner that claimed a device.
    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError>;
    /// [`Store::owner_of_device`] and [`Store::subscription_by_device`]
    /// together, both read fresh (the PVS's provisioning needs both). A
    /// database store answers them with one statement (one round trip to
    /// PostgreSQL instead of two, issue #11); the default asks for each.
    fn owner_and_subscription(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<Owner>, Option<Subscription>), StoreError> {
        Ok((
            self.owner_of_device(device)?,
            self.subscription_by_device(device)?,
        ))
    }
    /// Registers a device's claim code hash (from the manufacturer's
    /// claims file, whose signature the caller verified against the
    /// manufacturer of `device`). A device an owner already claimed is
    /// refused ([`StoreError::Conflict`]): the first claim stands, a later
    /// import cannot take the device. Stores keep the hash keyed
    /// ([`claim_code_mac`]), never as given, so a dump of the store is no
    /// dictionary of claim codes.
    fn add_claimable(&mut self, device: &DeviceId, claim_code_hash: &str)
    -> Result<(), StoreError>;
    /// An owner claims a device by the hash of its claim code; one-time.
    /// A device already claimed stays with its first owner
    /// ([`StoreError::Conflict`]).
    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError>;
    /// [`Store::put_subscription`] and the audit entries of `audit` (the
    /// events that report this very change), in one transaction: the trail
    /// never misses a change that was made nor reports one that was not.
    /// Events it takes are the ones [`crate::NetworkEvent::recorded_with_change`]
    /// names; drivers do not record those again. The default writes the
    /// subscription, then records the events (a store without an audit
    /// trail, or one that cannot do better).
    fn put_subscription_audited(
        &mut self,
        sub: Subscription,
        at_unix: u64,
        audit: &[crate::NetworkEvent],
    ) -> Result<(), StoreError> {
        self.put_subscription(sub)?;
        self.record_events(at_unix, audit);
        Ok(())
    }

    /// Takes `n` MSINs of the IMSI range at once, durably (a lease: numbers
    /// a crash leaves unused are gaps, never handed out twice), for a
    /// [`crate::stage::Stage`] to hand out without a database round trip.
    /// Returns fewer than `n` (never none) near the end of the range, and
    /// [`StoreError::Exhausted`] when it is used up. The default takes one.
    fn lease_msins(&mut self, n: u64) -> Result<core::ops::Range<u64>, StoreError> {
        let _ = n;
        let first = self.allocate_msin()?;
        Ok(first..first + 1)
    }

    /// Applies `writes` in order, in one transaction where the store has
    /// them: all of them are durable when it returns `Ok`, none of them
    /// when it returns `Err`. The default applies them one by one through
    /// the methods above (a store without transactions).
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        for write in writes {
            match write {
                Write::Subscription {
                    sub,
                    at_unix,
                    audit,
                } => self.put_subscription_audited(sub.clone(), *at_unix, audit)?,
                Write::Sqn { supi, sqn } => {
                    let mut sub = self
                        .subscription_by_supi(supi)?
                        .ok_or_else(|| StoreError::NotFound(format!("subscription of {supi}")))?;
                    sub.sqn = *sqn;
                    self.put_subscription(sub)?;
                }
                Write::State {
                    supi,
                    state,
                    at_unix,
                    audit,
                } => {
                    let mut sub = self
                        .subscription_by_supi(supi)?
                        .ok_or_else(|| StoreError::NotFound(format!("subscription of {supi}")))?;
                    sub.state = *state;
                    self.put_subscription_audited(sub, *at_unix, audit)?;
                }
                Write::Counted { manufacturer } => self.count_allocation(manufacturer)?,
                Write::Audit { at_unix, events } => self.record_events(*at_unix, events),
                Write::Uplink(uplink) => self.enqueue_uplink(uplink)?,
            }
        }
        Ok(())
    }

    /// Puts a burst of uplink data into the outbox for its owner's
    /// application ([`Write::Uplink`]). The default keeps nothing: a store
    /// without an outbox (in-memory networks hand bursts to their
    /// [`crate::ApplicationSink`] alone).
    fn enqueue_uplink(&mut self, uplink: &crate::sink::Uplink) -> Result<(), StoreError> {
        let _ = uplink;
        Ok(())
    }

    /// Counts one more MSIN against `manufacturer`'s quota without
    /// allocating one ([`Write::Counted`]). The default does nothing (a
    /// store that keeps no counts).
    fn count_allocation(&mut self, manufacturer: &str) -> Result<(), StoreError> {
        let _ = manufacturer;
        Ok(())
    }

    /// Appends `event` to the audit trail (who onboarded, what was refused
    /// and why). Drivers call it for every event the network reports; a
    /// store without an audit trail ignores it. Best effort: a store that
    /// cannot record keeps the failure its own way.
    fn record_event(&mut self, at_unix: u64, event: &crate::NetworkEvent) {
        let _ = (at_unix, event);
    }

    /// Appends several events at once (a driver's batch): stores with a
    /// durable commit per write make this one commit.
    fn record_events(&mut self, at_unix: u64, events: &[crate::NetworkEvent]) {
        for event in events {
            self.record_event(at_unix, event);
        }
    }
}

/// What a store keeps of a claim code hash: HMAC-SHA-256 under the
/// store's claim key (RFC 2104), so the table of claims is no dictionary
/// for someone who dumps it without the key (a SHA-256 of a code is
/// computed by anyone who guesses the code). The hash is taken as the
/// manufacturer's claims file and the owner give it (lower-case hex), upper
/// case folded.
pub fn claim_code_mac(key: &[u8; 32], claim_code_hash: &str) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, claim_code_hash.to_ascii_lowercase().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// The refusal of a claim or claims import for a device an owner already
/// claimed: the first claim stands (moving a device to another owner is an
/// operator's transfer, not a claim).
pub fn already_claimed(device: &DeviceId, owner: &str) -> StoreError {
    StoreError::Conflict(format!(
        "device {device} is already claimed by owner {owner}; the first claim stands"
    ))
}

/// A [`Store`] in memory, for the harness and tests. It never answers
/// [`StoreError::Unavailable`].
#[derive(Default)]
pub struct MemoryStore {
    by_device: HashMap<DeviceId, Subscription>,
    device_of_supi: HashMap<Supi, DeviceId>,
    owners: HashMap<String, Owner>,
    /// [`claim_code_mac`] of a claim code hash → device.
    claimable: HashMap<[u8; 32], DeviceId>,
    claimed: HashMap<DeviceId, String>,
    claim_key: [u8; 32],
    next_msin: u64,
    msin_limit: u64,
    /// MSINs allocated per manufacturer (quotas).
    per_manufacturer: HashMap<String, u64>,
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("subscriptions", &self.by_device.len())
            .field("owners", &self.owners.len())
            .field("claimable", &self.claimable.len())
            .field("claimed", &self.claimed.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store whose IMSI range holds `msin_count` MSINs, with a fresh
    /// random claim key ([`claim_code_mac`]).
    pub fn new(msin_count: u64) -> Self {
        let mut claim_key = [0u8; 32];
        // Without randomness the key stays zero: claims still work, only
        // a dump of this in-memory store (which has none) would be weaker.
        let _ = aws_lc_rs::rand::fill(&mut claim_key);
        Self {
            msin_limit: msin_count,
            claim_key,
            ..Self::default()
        }
    }

    /// How many subscriptions exist.
    pub fn len(&self) -> usize {
        self.by_device.len()
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

impl Store for MemoryStore {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(self.by_device.get(device).cloned())
    }

    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .device_of_supi
            .get(supi)
            .and_then(|d| self.by_device.get(d))
            .cloned())
    }

    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        if let Some(owner) = self.device_of_supi.get(&sub.supi)
            && *owner != sub.device
        {
            return Err(StoreError::Conflict(format!(
                "{} belongs to another device",
                sub.supi
            )));
        }
        if let Some(old) = self.by_device.get(&sub.device)
            && old.supi != sub.supi
        {
            self.device_of_supi.remove(&old.supi);
        }
        self.device_of_supi
            .insert(sub.supi.clone(), sub.device.clone());
        self.by_device.insert(sub.device.clone(), sub);
        Ok(())
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.by_device.values().cloned().collect())
    }

    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        if self.next_msin >= self.msin_limit {
            return Err(StoreError::Exhausted);
        }
        self.next_msin += 1;
        Ok(self.next_msin)
    }

    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError> {
        let used = self
            .per_manufacturer
            .get(manufacturer)
            .copied()
            .unwrap_or(0);
        if used >= max {
            return Err(StoreError::QuotaReached {
                manufacturer: manufacturer.to_owned(),
                max,
            });
        }
        let n = self.allocate_msin()?;
        self.per_manufacturer
            .insert(manufacturer.to_owned(), used + 1);
        Ok(n)
    }

    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError> {
        Ok(self
            .per_manufacturer
            .get(manufacturer)
            .copied()
            .unwrap_or(0))
    }

    fn lease_msins(&mut self, n: u64) -> Result<core::ops::Range<u64>, StoreError> {
        if self.next_msin >= self.msin_limit {
            return Err(StoreError::Exhausted);
        }
        let first = self.next_msin + 1;
        self.next_msin = (self.next_msin + n.max(1)).min(self.msin_limit);
        Ok(first..self.next_msin + 1)
    }

    fn count_allocation(&mut self, manufacturer: &str) -> Result<(), StoreError> {
        *self
            .per_manufacturer
            .entry(manufacturer.to_owned())
            .or_insert(0) += 1;
        Ok(())
    }

    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        self.owners.insert(owner.id.clone(), owner);
        Ok(())
    }

    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        Ok(self
            .claimed
            .get(device)
            .and_then(|o| self.owners.get(o))
            .cloned())
    }

    fn add_claimable(
        &mut self,
        device: &DeviceId,
        claim_code_hash: &str,
    ) -> Result<(), StoreError> {
        if let Some(owner) = self.claimed.get(device) {
            return Err(already_claimed(device, owner));
        }
        self.claimable.insert(
            claim_code_mac(&self.claim_key, claim_code_hash),
            device.clone(),
        );
        Ok(())
    }

    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError> {
        if !self.owners.contains_key(owner) {
            return Err(StoreError::NotFound(format!("owner {owner}")));
        }
        let mac = claim_code_mac(&self.claim_key, claim_code_hash);
        let device =
            self.claimable.get(&mac).cloned().ok_or_else(|| {
                StoreError::NotFound("no unused claim code with this hash".into())
            })?;
        if self.claimed.contains_key(&device) {
            return Err(StoreError::Conflict(format!(
                "device {device} is already claimed; the first claim stands"
            )));
        }
        self.claimable.remove(&mac);
        self.claimed.insert(device.clone(), owner.to_owned());
        Ok(device)
    }
}

/// One store behind several networks (an AMF set sharing its UDR): every
/// handle is a [`Store`] and every call takes the one lock, so each call is
/// as atomic as the inner store makes it. A sequence of calls is not: two
/// networks reading and writing the same subscription (an SQN read, then
/// written) may interleave. Give each device to one network (the demo's
/// shards do). Cloning makes another handle to the same store.
///
/// A handle whose lock was poisoned (a thread panicked holding it) answers
/// [`StoreError::Unavailable`] and records nothing.
pub struct SharedStore {
    inner: std::sync::Arc<std::sync::Mutex<Box<dyn Store + Send>>>,
}

impl core::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedStore")
            .field("handles", &std::sync::Arc::strong_count(&self.inner))
            .finish_non_exhaustive()
    }
}

impl Clone for SharedStore {
    fn clone(&self) -> Self {
        Self {
            inner: std::sync::Arc::clone(&self.inner),
        }
    }
}

impl SharedStore {
    /// Shares `store`.
    pub fn new(store: Box<dyn Store + Send>) -> Self {
        Self {
            inner: std::sync::Arc::new(std::sync::Mutex::new(store)),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut (dyn Store + Send)) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("shared store poisoned".into()))?;
        f(guard.as_mut())
    }
}

impl Store for SharedStore {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.with(|s| s.subscription_by_device(device))
    }

    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        self.with(|s| s.subscription_by_supi(supi))
    }

    fn cached_subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.with(|s| s.cached_subscription_by_device(device))
    }

    fn cached_subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        self.with(|s| s.cached_subscription_by_supi(supi))
    }

    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        self.with(|s| s.put_subscription(sub))
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.with(|s| s.subscriptions())
    }

    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        self.with(|s| s.allocate_msin())
    }

    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError> {
        self.with(|s| s.allocate_msin_for(manufacturer, max))
    }

    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError> {
        self.with(|s| s.allocated_for(manufacturer))
    }

    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        self.with(|s| s.put_owner(owner))
    }

    fn lease_msins(&mut self, n: u64) -> Result<core::ops::Range<u64>, StoreError> {
        self.with(|s| s.lease_msins(n))
    }

    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        self.with(|s| s.apply(writes))
    }

    fn count_allocation(&mut self, manufacturer: &str) -> Result<(), StoreError> {
        self.with(|s| s.count_allocation(manufacturer))
    }

    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        self.with(|s| s.owner_of_device(device))
    }

    fn owner_and_subscription(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<Owner>, Option<Subscription>), StoreError> {
        self.with(|s| s.owner_and_subscription(device))
    }

    fn add_claimable(
        &mut self,
        device: &DeviceId,
        claim_code_hash: &str,
    ) -> Result<(), StoreError> {
        self.with(|s| s.add_claimable(device, claim_code_hash))
    }

    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError> {
        self.with(|s| s.claim(owner, claim_code_hash))
    }

    fn put_subscription_audited(
        &mut self,
        sub: Subscription,
        at_unix: u64,
        audit: &[crate::NetworkEvent],
    ) -> Result<(), StoreError> {
        self.with(|s| s.put_subscription_audited(sub, at_unix, audit))
    }

    fn record_event(&mut self, at_unix: u64, event: &crate::NetworkEvent) {
        let _ = self.with(|s| {
            s.record_event(at_unix, event);
            Ok(())
        });
    }

    fn record_events(&mut self, at_unix: u64, events: &[crate::NetworkEvent]) {
        let _ = self.with(|s| {
            s.record_events(at_unix, events);
            Ok(())
        });
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    fn id(serial: &str) -> DeviceId {
        DeviceId::new("Acme", serial).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sub(device: &str, supi: &str) -> Subscription {
        Subscription {
            supi: Supi::imsi(supi).unwrap_or_else(|e| panic!("{e}")),
            k: K::new([1; 16]),
            opc: Opc::new([2; 16]),
            amf: Amf::FIVE_G,
            sqn: HeSqn::default(),
            state: SubscriptionState::Created,
            device: id(device),
            owner: None,
            package_id: [0; 16],
            not_after_unix: None,
            suci_key_id: None,
        }
    }

    #[test]
    fn handles_see_one_store_across_threads() {
        let shared = SharedStore::new(Box::new(MemoryStore::new(1_000)));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let mut h = shared.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| h.allocate_msin().unwrap_or_else(|e| panic!("{e}")))
                        .collect::<Vec<_>>()
                        .into_iter()
                        .map(move |n| (t, n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| panic!("thread")))
            .map(|(_, n)| n)
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 200, "every MSIN handed out once");

        let mut a = shared.clone();
        a.put_subscription(sub("dev-1", "999990000000001"))
            .unwrap_or_else(|e| panic!("{e}"));
        let b = shared.clone();
        let seen = b
            .subscription_by_device(&id("dev-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen.map(|s| s.supi.to_string()),
            Some("imsi-999990000000001".into())
        );
        let mut c = shared.clone();
        assert!(matches!(
            c.put_subscription(sub("dev-2", "999990000000001")),
            Err(StoreError::Conflict(_))
        ));
    }

    #[test]
    fn a_poisoned_handle_is_unavailable_not_absent() {
        let shared = SharedStore::new(Box::new(MemoryStore::new(10)));
        let poison = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poison.inner.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(matches!(
            shared.subscription_by_device(&id("dev-1")),
            Err(StoreError::Unavailable(_))
        ));
    }
}
