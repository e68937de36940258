//! The boundary between the protocol core and durable storage (issue #11).
//!
//! A [`Stage`] is the [`Store`] the network's state machines see. It never
//! makes them wait for a commit: every change they make is applied to the
//! stage's own image at once and queued as a [`Write`] with a sequence
//! number; a driver commits what accumulated in one transaction
//! ([`Stage::commit`], a *group commit*) and holds every message the
//! network produced until the writes issued before it are durable
//! ([`Stage::issued`] when the message was produced ≤ [`Stage::committed`]).
//!
//! # Invariants
//! - **No message whose meaning depends on a write leaves before the write
//!   is durable.** A driver tags each transmit with [`Stage::issued`] taken
//!   after the call that produced it, and sends it only once
//!   [`Stage::committed`] reached the tag. The tag covers every write
//!   issued before, of any UE and any shard: conservative, never late.
//! - **Groups commit in order, whole or not at all.** [`Stage::commit`]
//!   takes the pending writes and applies them with [`Store::apply`] (one
//!   transaction); a group that fails is retried by the caller or, given up
//!   ([`Stage::abandon`]), makes the stage forget its image and every write
//!   not yet durable, and advances [`Stage::failures`]: drivers then drop
//!   the messages they held and reset the network's UE contexts, which is
//!   a crash without the restart. Devices recover as from a crash: their
//!   retransmissions redo the work.
//! - **Reads see this instance's writes first**: a subscription changed by
//!   a write not yet durable is answered from the stage's image; every
//!   other read goes to the database through a second handle, `reader`
//!   (committed state), so a release, a block or a new package made by
//!   another process (an operator's `nido network release`, another
//!   instance) counts at the next read. The image holds only what is not
//!   yet durable: it is bounded by the pending writes, and it is dropped
//!   entry by entry as groups commit.
//! - **MSINs come from leases** ([`Store::lease_msins`], durable when
//!   taken): a crash leaves gaps in the IMSI range, never a number twice.
//!   Per-manufacturer counts are read once and kept; a quota is exact for
//!   one instance, and instances sharing a database may together exceed it
//!   by the allocations of the others not yet committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nido_pki::DeviceId;
use nido_sec::Supi;

use crate::events::NetworkEvent;
use crate::store::{Owner, Store, StoreError, Subscription, Write};

/// How many MSINs one lease takes.
pub const MSIN_LEASE: u64 = 256;

/// The most writes one group commit takes (the rest wait for the next).
pub const MAX_GROUP: usize = 8_192;

/// A subscription changed by a write not yet durable.
struct Entry {
    sub: Subscription,
    /// The sequence number of the write that last changed it.
    written: u64,
}

/// The most durable subscriptions (and known absences) the stage remembers
/// ([`Image::known`]); past it, it forgets them all and starts again.
pub const KNOWN_MAX: usize = 65_536;

/// What the stage knows and what waits for a commit.
#[derive(Default)]
struct Image {
    by_device: HashMap<DeviceId, Entry>,
    device_of_supi: HashMap<Supi, DeviceId>,
    /// The durable state of devices as this instance last saw it: read
    /// from the database, or written by a group commit of its own. `None`:
    /// the device had no subscription. The basis of the column-only writes
    /// ([`changes`]) and of [`Store::cached_subscription_by_device`]; never
    /// of a fresh read.
    known: HashMap<DeviceId, Option<Subscription>>,
    device_of_known_supi: HashMap<Supi, DeviceId>,
    /// MSINs allocated per manufacturer: durable count plus this
    /// instance's allocations since it was read.
    counts: HashMap<String, u64>,
    lease: core::ops::Range<u64>,
    /// Writes issued but not yet taken by a commit, with the sequence
    /// number of the last one.
    pending: Vec<Write>,
    issued: u64,
}

impl Image {
    fn push(&mut self, write: Write) -> u64 {
        self.pending.push(write);
        self.issued += 1;
        self.issued
    }

    fn forget(&mut self) {
        self.by_device.clear();
        self.device_of_supi.clear();
        self.known.clear();
        self.device_of_known_supi.clear();
        self.counts.clear();
        self.pending.clear();
    }

    /// Remembers that `device`'s durable state is `sub`.
    fn know(&mut self, device: &DeviceId, sub: Option<Subscription>) {
        if self.known.len() >= KNOWN_MAX && !self.known.contains_key(device) {
            self.known.clear();
            self.device_of_known_supi.clear();
        }
        if let Some(Some(old)) = self.known.get(device) {
            self.device_of_known_supi.remove(&old.supi);
        }
        if let Some(s) = &sub {
            self.device_of_known_supi
                .insert(s.supi.clone(), device.clone());
        }
        self.known.insert(device.clone(), sub);
    }

    /// What this instance knows of `device`: a write not yet durable, else
    /// the durable state it last saw. `None`: nothing known.
    fn latest(&self, device: &DeviceId) -> Option<Option<Subscription>> {
        if let Some(e) = self.by_device.get(device) {
            return Some(Some(e.sub.clone()));
        }
        self.known.get(device).cloned()
    }

    fn insert(&mut self, sub: Subscription, written: u64) {
        if written == 0 {
            return;
        }
        if let Some(old) = self.by_device.get(&sub.device)
            && old.sub.supi != sub.supi
        {
            self.device_of_supi.remove(&old.sub.supi);
        }
        self.device_of_supi
            .insert(sub.supi.clone(), sub.device.clone());
        self.by_device
            .insert(sub.device.clone(), Entry { sub, written });
    }
}

struct Shared {
    image: Mutex<Image>,
    /// Signalled when `committed` or `failures` moves, or writes arrive.
    moved: Condvar,
    committed: AtomicU64,
    failures: AtomicU64,
    /// The handle reads go through (committed state).
    reader: Mutex<Box<dyn Store + Send>>,
    /// The handle groups commit through; held for a whole commit, so groups
    /// apply in order.
    writer: Mutex<Box<dyn Store + Send>>,
}

/// The network's [`Store`] that stages writes for group commit. Cloning
/// makes another handle to the same stage (several AMF shards share one;
/// the driver's committer holds one too).
#[derive(Clone)]
pub struct Stage {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stage")
            .field("issued", &self.issued())
            .field("committed", &self.committed())
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

/// Locks `m`, taking over a lock a panicking thread left poisoned: the
/// image is only ever changed whole under the lock.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What a message produced by the network depends on ([`Stage::tag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// [`Stage::failures`] when the driver's round began.
    pub epoch: u64,
    /// [`Stage::issued`] after the message was produced.
    pub seq: u64,
}

/// What one [`Stage::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Committed {
    /// Writes in the group.
    pub writes: usize,
    /// The sequence number now durable.
    pub upto: u64,
}

impl Stage {
    /// A stage over two handles to one database: `reader` for reads (and
    /// MSIN leases, owners, claims), `writer` for group commits. With a
    /// store that has one handle only (memory), pass two clones of a
    /// [`crate::SharedStore`].
    pub fn new(reader: Box<dyn Store + Send>, writer: Box<dyn Store + Send>) -> Self {
        Self {
            shared: Arc::new(Shared {
                image: Mutex::new(Image::default()),
                moved: Condvar::new(),
                committed: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                reader: Mutex::new(reader),
                writer: Mutex::new(writer),
            }),
        }
    }

    /// The sequence number of the last write issued (0: none yet). A
    /// message produced after it depends on no later write.
    pub fn issued(&self) -> u64 {
        lock(&self.shared.image).issued
    }

    /// The sequence number of the last write durable.
    pub fn committed(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// How many times the stage gave up a group ([`Stage::abandon`]).
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Acquire)
    }

    /// Writes issued and not yet taken by a commit.
    pub fn pending(&self) -> usize {
        lock(&self.shared.image).pending.len()
    }

    /// Commits the writes pending now (at most [`MAX_GROUP`]) in one
    /// transaction. `Ok` with `writes: 0` when nothing was pending. On
    /// `Err` the group is put back in front of the pending writes, to be
    /// tried again, or given up with [`Stage::abandon`].
    pub fn commit(&self) -> Result<Committed, StoreError> {
        let mut writer = lock(&self.shared.writer);
        let (group, upto) = {
            let mut image = lock(&self.shared.image);
            let n = image.pending.len().min(MAX_GROUP);
            let group: Vec<Write> = image.pending.drain(..n).collect();
            let upto = image.issued - image.pending.len() as u64;
            (group, upto)
        };
        if group.is_empty() {
            return Ok(Committed {
                writes: 0,
                upto: self.committed(),
            });
        }
        match writer.apply(&group) {
            Ok(()) => {
                drop(writer);
                self.shared.committed.fetch_max(upto, Ordering::AcqRel);
                let mut image = lock(&self.shared.image);
                self.evict(&mut image);
                drop(image);
                self.shared.moved.notify_all();
                Ok(Committed {
                    writes: group.len(),
                    upto,
                })
            }
            Err(e) => {
                let mut image = lock(&self.shared.image);
                let later = core::mem::take(&mut image.pending);
                image.pending = group;
                image.pending.extend(later);
                Err(e)
            }
        }
    }

    /// Gives up the writes not yet durable: the image is forgotten (it
    /// reflected them), nothing pending is ever committed, and
    /// [`Stage::failures`] advances so drivers drop the messages they held
    /// and reset their networks' UE contexts. Returns the new failure count.
    pub fn abandon(&self) -> u64 {
        let _writer = lock(&self.shared.writer);
        let mut image = lock(&self.shared.image);
        image.forget();
        // The failure count moves first, under the image lock: a message
        // tagged before it carries the old count and is dropped.
        let n = self.shared.failures.fetch_add(1, Ordering::AcqRel) + 1;
        // Nothing pending is ever committed: `committed` catches up with
        // `issued` so later messages wait for later writes only.
        let issued = image.issued;
        self.shared.committed.fetch_max(issued, Ordering::AcqRel);
        drop(image);
        self.shared.moved.notify_all();
        n
    }

    /// The tag of a message produced now by a network whose round began
    /// with [`Stage::failures`] = `epoch`: the writes it may depend on.
    pub fn tag(&self, epoch: u64) -> Tag {
        Tag {
            epoch,
            seq: lock(&self.shared.image).issued,
        }
    }

    /// Whether a message tagged `tag` may leave: `Some(true)` once its
    /// writes are durable, `Some(false)` while they are not, `None` if the
    /// stage gave them up since ([`Stage::abandon`]): drop the message.
    pub fn release(&self, tag: Tag) -> Option<bool> {
        let committed = self.committed();
        if self.failures() != tag.epoch {
            return None;
        }
        Some(committed >= tag.seq)
    }

    /// Commits until every write issued up to `seq` is durable, or another
    /// thread's commit made it so (a group commit led by whoever comes
    /// first). For drivers that run the network and commit on one thread,
    /// such as the simulator.
    pub fn flush(&self, seq: u64) -> Result<(), StoreError> {
        while self.committed() < seq {
            self.commit()?;
        }
        Ok(())
    }

    /// Wakes a committer waiting in [`Stage::wait_for_writes`] when a write
    /// made the pending list non-empty (`wake`): it waits only while the
    /// list is empty, so a write joining others wakes no one (a futex wake
    /// per write would cost each write a system call).
    fn wake_committer(&self, wake: bool) {
        if wake {
            self.shared.moved.notify_all();
        }
    }

    /// Blocks until writes are pending (or `timeout` passed); for a
    /// committer thread.
    pub fn wait_for_writes(&self, timeout: std::time::Duration) {
        let image = lock(&self.shared.image);
        if image.pending.is_empty() {
            let _ = self.shared.moved.wait_timeout(image, timeout);
        }
    }

    /// Drops durable subscriptions from the image: reads of them go to the
    /// database again, where changes by other processes show.
    fn evict(&self, image: &mut Image) {
        let committed = self.committed();
        let Image {
            by_device,
            device_of_supi,
            ..
        } = image;
        let mut durable = Vec::new();
        by_device.retain(|_, e| {
            let keep = e.written > committed;
            if !keep {
                device_of_supi.remove(&e.sub.supi);
                durable.push(e.sub.clone());
            }
            keep
        });
        for sub in durable {
            let device = sub.device.clone();
            image.know(&device, Some(sub));
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut (dyn Store + Send)) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut reader = lock(&self.shared.reader);
        f(reader.as_mut())
    }

    /// What a read from the database returned, unless the image changed
    /// that subscription meanwhile (a write not yet durable wins); the
    /// stage remembers it as the device's durable state.
    fn loaded(&self, sub: Option<Subscription>, device: Option<&DeviceId>) -> Option<Subscription> {
        let mut image = lock(&self.shared.image);
        let key = sub.as_ref().map(|s| &s.device).or(device).cloned();
        if let Some(key) = key {
            image.know(&key, sub.clone());
            if let Some(e) = image.by_device.get(&key) {
                return Some(e.sub.clone());
            }
        }
        sub
    }

    fn stage_subscription(
        &self,
        sub: Subscription,
        at_unix: u64,
        audit: &[NetworkEvent],
    ) -> Result<(), StoreError> {
        let mut image = lock(&self.shared.image);
        if let Some(holder) = image.device_of_supi.get(&sub.supi)
            && *holder != sub.device
        {
            return Err(StoreError::Conflict(format!(
                "{} belongs to another device",
                sub.supi
            )));
        }
        let before = match image.latest(&sub.device) {
            Some(known) => known,
            None => {
                // Durable and not seen yet: what the database holds decides
                // which columns change (one read, without holding the image).
                drop(image);
                let stored = self.read(|r| r.subscription_by_device(&sub.device))?;
                image = lock(&self.shared.image);
                match image.latest(&sub.device) {
                    Some(known) => known,
                    None => stored,
                }
            }
        };
        let writes = changes(before.as_ref(), &sub, at_unix, audit);
        let wake = image.pending.is_empty();
        let mut last = image.issued;
        for w in writes {
            last = image.push(w);
        }
        image.insert(sub, last);
        drop(image);
        self.wake_committer(wake);
        Ok(())
    }
}

/// The writes that turn `before` (what the image held) into `after`: the
/// whole row when it is new or its package changed, else only the columns
/// that changed (SQN, state), so a concurrent change of another column by
/// another process is never undone.
fn changes(
    before: Option<&Subscription>,
    after: &Subscription,
    at_unix: u64,
    audit: &[NetworkEvent],
) -> Vec<Write> {
    let whole = || Write::Subscription {
        sub: after.clone(),
        at_unix,
        audit: audit.to_vec(),
    };
    let Some(before) = before else {
        return vec![whole()];
    };
    let same_row = before.supi == after.supi
        && before.package_id == after.package_id
        && before.k == after.k
        && before.opc == after.opc
        && before.amf == after.amf
        && before.owner == after.owner
        && before.not_after_unix == after.not_after_unix
        && before.suci_key_id == after.suci_key_id;
    if !same_row {
        return vec![whole()];
    }
    let mut writes = Vec::new();
    if before.sqn != after.sqn {
        writes.push(Write::Sqn {
            supi: after.supi.clone(),
            sqn: after.sqn,
        });
    }
    if before.state != after.state || !audit.is_empty() {
        writes.push(Write::State {
            supi: after.supi.clone(),
            state: after.state,
            at_unix,
            audit: audit.to_vec(),
        });
    }
    writes
}

impl Store for Stage {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        if let Some(e) = lock(&self.shared.image).by_device.get(device) {
            return Ok(Some(e.sub.clone()));
        }
        let sub = self.read(|r| r.subscription_by_device(device))?;
        Ok(self.loaded(sub, Some(device)))
    }

    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        {
            let image = lock(&self.shared.image);
            if let Some(e) = image
                .device_of_supi
                .get(supi)
                .and_then(|d| image.by_device.get(d))
            {
                return Ok(Some(e.sub.clone()));
            }
        }
        let sub = self.read(|r| r.subscription_by_supi(supi))?;
        Ok(self.loaded(sub, None))
    }

    fn cached_subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        if let Some(known) = lock(&self.shared.image).latest(device) {
            return Ok(known);
        }
        self.subscription_by_device(device)
    }

    fn cached_subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        {
            let image = lock(&self.shared.image);
            let device = image
                .device_of_supi
                .get(supi)
                .or_else(|| image.device_of_known_supi.get(supi));
            if let Some(known) = device.and_then(|d| image.latest(d))
                && let Some(sub) = known
                && sub.supi == *supi
            {
                return Ok(Some(sub));
            }
        }
        self.subscription_by_supi(supi)
    }

    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        self.stage_subscription(sub, 0, &[])
    }

    fn put_subscription_audited(
        &mut self,
        sub: Subscription,
        at_unix: u64,
        audit: &[NetworkEvent],
    ) -> Result<(), StoreError> {
        self.stage_subscription(sub, at_unix, audit)
    }

    /// Every durable subscription (what the database holds), for listings.
    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(|r| r.subscriptions())
    }

    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        let mut image = lock(&self.shared.image);
        if image.lease.is_empty() {
            image.lease = self.read(|r| r.lease_msins(MSIN_LEASE))?;
        }
        let n = image.lease.start;
        image.lease.start += 1;
        Ok(n)
    }

    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError> {
        let used = self.allocated_for(manufacturer)?;
        if used >= max {
            return Err(StoreError::QuotaReached {
                manufacturer: manufacturer.to_owned(),
                max,
            });
        }
        let n = self.allocate_msin()?;
        let mut image = lock(&self.shared.image);
        let wake = image.pending.is_empty();
        *image.counts.entry(manufacturer.to_owned()).or_insert(used) += 1;
        image.push(Write::Counted {
            manufacturer: manufacturer.to_owned(),
        });
        drop(image);
        self.wake_committer(wake);
        Ok(n)
    }

    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError> {
        if let Some(n) = lock(&self.shared.image).counts.get(manufacturer) {
            return Ok(*n);
        }
        let n = self.read(|r| r.allocated_for(manufacturer))?;
        Ok(*lock(&self.shared.image)
            .counts
            .entry(manufacturer.to_owned())
            .or_insert(n))
    }

    /// Operator actions go straight to the database (durable on return).
    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        self.read(|r| r.put_owner(owner))
    }

    /// Read from the database every time: a claim made by another process
    /// counts at once.
    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        self.read(|r| r.owner_of_device(device))
    }

    /// The owner read fresh, the subscription as
    /// [`Store::subscription_by_device`] reads it (a write not yet durable
    /// wins): one read of the database for both when the stage holds no
    /// write of the device.
    fn owner_and_subscription(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<Owner>, Option<Subscription>), StoreError> {
        let staged = lock(&self.shared.image)
            .by_device
            .get(device)
            .map(|e| e.sub.clone());
        if let Some(sub) = staged {
            return Ok((self.owner_of_device(device)?, Some(sub)));
        }
        let (owner, sub) = self.read(|r| r.owner_and_subscription(device))?;
        Ok((owner, self.loaded(sub, Some(device))))
    }

    fn add_claimable(
        &mut self,
        device: &DeviceId,
        claim_code_hash: &str,
    ) -> Result<(), StoreError> {
        self.read(|r| r.add_claimable(device, claim_code_hash))
    }

    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError> {
        self.read(|r| r.claim(owner, claim_code_hash))
    }

    fn record_event(&mut self, at_unix: u64, event: &NetworkEvent) {
        self.record_events(at_unix, core::slice::from_ref(event));
    }

    fn record_events(&mut self, at_unix: u64, events: &[NetworkEvent]) {
        if events.is_empty() {
            return;
        }
        let mut image = lock(&self.shared.image);
        let wake = image.pending.is_empty();
        image.push(Write::Audit {
            at_unix,
            events: events.to_vec(),
        });
        drop(image);
        self.wake_committer(wake);
    }

    fn enqueue_uplink(&mut self, uplink: &crate::sink::Uplink) -> Result<(), StoreError> {
        let mut image = lock(&self.shared.image);
        let wake = image.pending.is_empty();
        image.push(Write::Uplink(uplink.clone()));
        drop(image);
        self.wake_committer(wake);
        Ok(())
    }

    /// A stage is not a database: what it applies is staged like any write.
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let mut image = lock(&self.shared.image);
        let wake = image.pending.is_empty() && !writes.is_empty();
        for w in writes {
            image.push(w.clone());
        }
        drop(image);
        self.wake_committer(wake);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use nido_sec::aka::HeSqn;
    use nido_sec::milenage::Amf;
    use nido_sec::{K, Opc};

    use super::*;
    use crate::store::{MemoryStore, SharedStore, SubscriptionState};

    fn id(serial: &str) -> DeviceId {
        DeviceId::new("Acme", serial).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sub(device: &str, msin: u64) -> Subscription {
        Subscription {
            supi: Supi::imsi(&format!("99999{msin:010}")).unwrap_or_else(|e| panic!("{e}")),
            k: K::new([1; 16]),
            opc: Opc::new([2; 16]),
            amf: Amf::FIVE_G,
            sqn: HeSqn::default(),
            state: SubscriptionState::Created,
            device: id(device),
            owner: None,
            package_id: [msin as u8; 16],
            not_after_unix: None,
            suci_key_id: None,
        }
    }

    /// A stage over a memory store, and a handle to what is durable.
    fn stage() -> (Stage, SharedStore) {
        let durable = SharedStore::new(Box::new(MemoryStore::new(1_000)));
        let stage = Stage::new(Box::new(durable.clone()), Box::new(durable.clone()));
        (stage, durable)
    }

    fn ok<T>(r: Result<T, StoreError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn writes_wait_for_a_commit_and_reads_see_them_before() {
        let (stage, durable) = stage();
        let mut core = stage.clone();
        let before = stage.tag(0);
        ok(core.put_subscription(sub("dev-1", 1)));
        let after = stage.tag(0);
        // Nothing is durable yet; the core reads its own write.
        assert!(ok(durable.subscription_by_device(&id("dev-1"))).is_none());
        assert!(ok(core.subscription_by_device(&id("dev-1"))).is_some());
        assert!(ok(core.subscription_by_supi(&sub("dev-1", 1).supi)).is_some());
        // A message produced before the write may go; one after may not.
        assert_eq!(stage.release(before), Some(true));
        assert_eq!(stage.release(after), Some(false));
        let done = ok(stage.commit());
        assert_eq!(done.writes, 1);
        assert_eq!(stage.release(after), Some(true));
        assert!(ok(durable.subscription_by_device(&id("dev-1"))).is_some());
        // Durable entries leave the image: reads go to the database.
        assert_eq!(stage.pending(), 0);
        assert!(lock(&stage.shared.image).by_device.is_empty());
    }

    #[test]
    fn owner_and_subscription_see_a_staged_write_and_a_fresh_owner() {
        let (stage, mut durable) = stage();
        let mut core = stage.clone();
        let device = id("dev-1");
        // Nothing anywhere.
        let (o, s) = ok(core.owner_and_subscription(&device));
        assert!(o.is_none() && s.is_none());
        // An owner claims it in the database (another process, say).
        let acme = Owner {
            id: "acme".into(),
            name: "Acme".into(),
            credentials: Vec::new(),
        };
        ok(durable.put_owner(acme.clone()));
        ok(durable.add_claimable(&device, "h"));
        ok(durable.claim("acme", "h"));
        // A write not yet durable wins over the database; the owner is read.
        let mut staged = sub("dev-1", 1);
        staged.owner = Some("acme".into());
        ok(core.put_subscription(staged.clone()));
        let (o, s) = ok(core.owner_and_subscription(&device));
        assert_eq!(o, Some(acme.clone()));
        assert_eq!(s.map(|s| s.package_id), Some(staged.package_id));
        // Durable: read from the database in one go, and remembered.
        ok(stage.commit());
        let (o, s) = ok(core.owner_and_subscription(&device));
        assert_eq!(o, Some(acme));
        assert_eq!(s.map(|s| s.package_id), Some(staged.package_id));
        assert!(lock(&stage.shared.image).known.contains_key(&device));
    }

    #[test]
    fn only_the_changed_columns_are_written() {
        let (stage, _durable) = stage();
        let mut core = stage.clone();
        let mut s = sub("dev-1", 1);
        ok(core.put_subscription(s.clone()));
        s.sqn = HeSqn { seq: 1, ind: 1 };
        ok(core.put_subscription(s.clone()));
        s.state = SubscriptionState::Active;
        ok(core.put_subscription_audited(s.clone(), 7, &[]));
        let pending = lock(&stage.shared.image).pending.clone();
        assert!(matches!(pending[0], Write::Subscription { .. }));
        assert!(matches!(pending[1], Write::Sqn { sqn, .. } if sqn.seq == 1));
        assert!(matches!(
            pending[2],
            Write::State {
                state: SubscriptionState::Active,
                ..
            }
        ));
        assert_eq!(pending.len(), 3);
        // After a commit the row comes from the database and an SQN step
        // is still a column write, not the row.
        ok(stage.commit());
        s.sqn = HeSqn { seq: 2, ind: 2 };
        ok(core.put_subscription(s));
        let pending = lock(&stage.shared.image).pending.clone();
        assert!(matches!(pending[..], [Write::Sqn { .. }]));
    }

    #[test]
    fn cached_reads_answer_from_what_the_stage_saw_and_fresh_reads_see_other_processes() {
        let (stage, mut durable) = stage();
        let mut core = stage.clone();
        let mut s = sub("dev-1", 1);
        ok(core.put_subscription(s.clone()));
        ok(stage.commit());
        // Committed by this instance: known without a read.
        assert!(lock(&stage.shared.image).known.contains_key(&id("dev-1")));
        // Another process changes the row (an SQN step of another instance).
        let mut other = s.clone();
        other.sqn = HeSqn { seq: 9, ind: 9 };
        ok(durable.put_subscription(other));
        // Inside a procedure: what this instance saw.
        let cached = ok(core.cached_subscription_by_supi(&s.supi)).unwrap();
        assert_eq!(cached.sqn, HeSqn::default());
        let cached = ok(core.cached_subscription_by_device(&id("dev-1"))).unwrap();
        assert_eq!(cached.sqn, HeSqn::default());
        // A state change computed from it is a column write against the
        // known row, without a read: the other process's SQN stays.
        s.state = SubscriptionState::Provisioned;
        ok(core.put_subscription(s.clone()));
        let pending = lock(&stage.shared.image).pending.clone();
        assert!(matches!(pending[..], [Write::State { .. }]), "{pending:?}");
        ok(stage.commit());
        let stored = ok(durable.subscription_by_device(&id("dev-1"))).unwrap();
        assert_eq!(stored.sqn.seq, 9);
        assert_eq!(stored.state, SubscriptionState::Provisioned);
        // A fresh read (a procedure's start) sees the database, and the
        // stage knows it from then on.
        assert_eq!(ok(core.subscription_by_supi(&s.supi)).unwrap().sqn.seq, 9);
        assert_eq!(
            ok(core.cached_subscription_by_supi(&s.supi))
                .unwrap()
                .sqn
                .seq,
            9
        );
        // An unknown device is known absent after one fresh read.
        assert!(ok(core.subscription_by_device(&id("dev-2"))).is_none());
        assert!(matches!(
            lock(&stage.shared.image).known.get(&id("dev-2")),
            Some(None)
        ));
        // Abandoning forgets what it knew.
        stage.abandon();
        assert!(lock(&stage.shared.image).known.is_empty());
    }

    #[test]
    fn a_supi_of_another_device_is_a_conflict_before_any_commit() {
        let (stage, _durable) = stage();
        let mut core = stage.clone();
        ok(core.put_subscription(sub("dev-1", 1)));
        assert!(matches!(
            core.put_subscription(sub("dev-2", 1)),
            Err(StoreError::Conflict(_))
        ));
    }

    /// A store whose commits fail while `down` is set.
    struct Flaky {
        inner: SharedStore,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Store for Flaky {
        fn subscription_by_device(
            &self,
            device: &DeviceId,
        ) -> Result<Option<Subscription>, StoreError> {
            self.inner.subscription_by_device(device)
        }
        fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
            self.inner.subscription_by_supi(supi)
        }
        fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
            self.inner.put_subscription(sub)
        }
        fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
            self.inner.subscriptions()
        }
        fn allocate_msin(&mut self) -> Result<u64, StoreError> {
            self.inner.allocate_msin()
        }
        fn allocate_msin_for(&mut self, m: &str, max: u64) -> Result<u64, StoreError> {
            self.inner.allocate_msin_for(m, max)
        }
        fn allocated_for(&self, m: &str) -> Result<u64, StoreError> {
            self.inner.allocated_for(m)
        }
        fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
            self.inner.put_owner(owner)
        }
        fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
            self.inner.owner_of_device(device)
        }
        fn add_claimable(&mut self, device: &DeviceId, hash: &str) -> Result<(), StoreError> {
            self.inner.add_claimable(device, hash)
        }
        fn claim(&mut self, owner: &str, hash: &str) -> Result<DeviceId, StoreError> {
            self.inner.claim(owner, hash)
        }
        fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.inner.apply(writes)
        }
    }

    #[test]
    fn a_failed_group_is_kept_then_abandoned_with_its_messages() {
        let durable = SharedStore::new(Box::new(MemoryStore::new(1_000)));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let stage = Stage::new(
            Box::new(durable.clone()),
            Box::new(Flaky {
                inner: durable.clone(),
                down: down.clone(),
            }),
        );
        let mut core = stage.clone();
        ok(core.put_subscription(sub("dev-1", 1)));
        let first = stage.tag(0);
        assert!(stage.commit().is_err());
        // Kept for the next try, in order, with what came since.
        ok(core.put_subscription(sub("dev-2", 2)));
        assert_eq!(stage.pending(), 2);
        assert_eq!(stage.release(first), Some(false));
        down.store(false, Ordering::SeqCst);
        assert_eq!(ok(stage.commit()).writes, 2);
        assert_eq!(stage.release(first), Some(true));
        assert_eq!(ok(durable.subscriptions()).len(), 2);

        // Given up: its messages are dropped, nothing of it is ever written,
        // and messages after the failure wait for their own writes only.
        down.store(true, Ordering::SeqCst);
        ok(core.put_subscription(sub("dev-3", 3)));
        let doomed = stage.tag(stage.failures());
        assert!(stage.commit().is_err());
        assert_eq!(stage.abandon(), 1);
        assert_eq!(stage.release(doomed), None);
        assert_eq!(stage.pending(), 0);
        assert!(ok(core.subscription_by_device(&id("dev-3"))).is_none());
        down.store(false, Ordering::SeqCst);
        assert_eq!(ok(stage.commit()).writes, 0);
        assert_eq!(ok(durable.subscriptions()).len(), 2);
        assert_eq!(stage.release(stage.tag(stage.failures())), Some(true));
    }

    #[test]
    fn msins_come_from_leases_and_quotas_count_pending_allocations() {
        let (stage, durable) = stage();
        let mut core = stage.clone();
        let a = ok(core.allocate_msin_for("Acme", 2));
        let b = ok(core.allocate_msin_for("Acme", 2));
        assert_ne!(a, b);
        assert!(matches!(
            core.allocate_msin_for("Acme", 2),
            Err(StoreError::QuotaReached { max: 2, .. })
        ));
        // One lease, taken durably; the counts wait for the commit.
        assert_eq!(ok(durable.allocated_for("Acme")), 0);
        ok(stage.commit());
        assert_eq!(ok(durable.allocated_for("Acme")), 2);
        let mut other = durable.clone();
        let next = ok(other.allocate_msin());
        assert!(next > MSIN_LEASE, "the lease is durable: {next}");
    }

    #[test]
    fn flush_leads_or_follows_a_group_commit_across_threads() {
        let (stage, durable) = stage();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let stage = stage.clone();
                std::thread::spawn(move || {
                    let mut core = stage.clone();
                    for i in 0..50u64 {
                        let n = t * 100 + i + 1;
                        ok(core.put_subscription(sub(&format!("dev-{n}"), n)));
                        let tag = stage.tag(0);
                        ok(stage.flush(tag.seq));
                        assert_eq!(stage.release(tag), Some(true));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("thread"));
        }
        assert_eq!(ok(durable.subscriptions()).len(), 200);
    }
}
