//! Group commit (issue #11): [`nido_net::Store::apply`] writes a batch of
//! [`Write`]s in one database transaction, committed once; the
//! subscription writes of the single-write methods
//! ([`nido_net::Store::put_subscription`],
//! [`nido_net::Store::put_subscription_audited`]), the audit batches and
//! [`nido_net::Store::count_allocation`] go through the same code as a batch
//! of one. [`nido_net::Store::lease_msins`] takes a run of MSINs at once.
//!
//! # Order
//! A batch has the effect of its writes applied one after the other, in
//! order (what the trait's default `apply` does), with fewer statements:
//! - `Subscription` writes (whole rows) wait in a buffer and go out as one
//!   upsert while they commute: a row naming a device or SUPI a waiting
//!   row names (as its own, or as the SUPI its device leaves) writes the
//!   waiting rows first, and the rows are written before any buffered
//!   column write (below: those of a row's SUPI came after it, the others
//!   commute with it). With each upsert, the
//!   claims of the devices whose package it delivers are locked before it
//!   and their owners settled after it, one statement each. Who holds a
//!   SUPI and what a device held before (the conflict check, the
//!   `provisioning` log) are read once for the whole batch at its start
//!   and followed write by write in memory (the rows a batch reads are the
//!   ones its own writes change);
//! - `Sqn` and `State` writes wait in a buffer, one entry per SUPI and
//!   column (a later write of the same SUPI replaces an earlier one: the
//!   last one wins), and are written as one statement per column
//!   (`UPDATE … FROM UNNEST` on PostgreSQL, `UPDATE … FROM json_each` on
//!   SQLite, whose batch goes as one JSON parameter). The
//!   buffer is written before a `Subscription` write that names one of its
//!   SUPIs (as its SUPI or as the SUPI its device leaves), so a state after
//!   a subscription applies after it and one before it applies before it;
//!   the others commute with it (another row). A buffered write whose SUPI
//!   has no subscription fails the batch ([`StoreError::NotFound`]);
//! - the `provisioning` log rows, the manufacturers' counts (`Counted`,
//!   summed per manufacturer) and the audit trail (entries in write order,
//!   so their ids follow it; one `devices` row per device, its first and
//!   last sighting) are order-free and written at the end, one statement
//!   each.
//!
//! A `Registered` event names a SUPI, not a device: its `devices` row goes
//! to the device that holds the SUPI at that point of the batch (a
//! subscription written earlier in the batch, else the stored one, read in
//! the transaction).
//!
//! Rows are updated in SUPI order and counted in manufacturer order, so two
//! processes committing batches on one PostgreSQL database lock them in the
//! same order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use nido_net::{NetworkEvent, StoreError, Subscription, Write};
use sqlx::{PgConnection, SqliteConnection};

use crate::error::SqlStoreError;
use crate::records::AuditEntry;
use crate::sql::{SqlStore, now_unix, state_text, to_i64, to_u64};

/// A subscription row as stored: K and OPc sealed under the KEK.
pub(crate) struct SealedSub {
    supi: String,
    device: String,
    k_enc: Vec<u8>,
    opc_enc: Vec<u8>,
    amf: [u8; 2],
    seq: i64,
    ind: i64,
    state: &'static str,
    owner: Option<String>,
    package_id: [u8; 16],
    not_after: Option<i64>,
    suci_key_id: Option<i64>,
}

/// One write, ready for the database (secrets sealed, numbers checked).
pub(crate) enum Op<'a> {
    /// [`Write::Subscription`].
    Subscription {
        row: SealedSub,
        at: u64,
        audit: &'a [NetworkEvent],
    },
    /// [`Write::Sqn`].
    Sqn { supi: String, seq: i64, ind: i64 },
    /// [`Write::State`].
    State {
        supi: String,
        state: &'static str,
        at: u64,
        audit: &'a [NetworkEvent],
    },
    /// [`Write::Counted`].
    Counted(&'a str),
    /// [`Write::Audit`].
    Audit { at: u64, events: &'a [NetworkEvent] },
    /// [`Write::Uplink`].
    Uplink(&'a nido_net::Uplink),
}

/// A device seen: the `devices` row to insert or update.
pub(crate) struct DeviceSeen {
    serial: String,
    state: &'static str,
    first: i64,
    last: i64,
    /// The certificate it onboarded with, if this batch delivered it a
    /// package (`Some(None)`: through a relayed realm, none known); the
    /// row keeps the one it has otherwise.
    cert: Option<Option<nido_net::CertificateSeen>>,
}

/// Audit entries and the devices they name, to write in a transaction.
#[derive(Default)]
pub(crate) struct AuditBatch {
    entries: Vec<AuditEntry>,
    devices: Vec<DeviceSeen>,
    index: HashMap<String, usize>,
}

impl AuditBatch {
    /// Appends an entry (entries keep their order).
    pub(crate) fn entry(&mut self, entry: AuditEntry) {
        self.entries.push(entry);
    }

    /// Where the next entry goes: a place [`AuditBatch::entries_at`] puts
    /// entries known only later (a settled owner, once its row is written).
    fn mark(&self) -> usize {
        self.entries.len()
    }

    /// Puts each `(mark, entry)` where its mark was taken, before what was
    /// appended since (marks in any order).
    fn entries_at(&mut self, mut placed: Vec<(usize, AuditEntry)>) {
        // From the last place to the first: an insertion moves only what
        // follows it, so earlier marks stay valid; equal marks keep their
        // order.
        placed.sort_by_key(|(at, _)| *at);
        for (at, entry) in placed.into_iter().rev() {
            self.entries.insert(at.min(self.entries.len()), entry);
        }
    }

    /// Device `serial` seen at `at` in `state`: its first sighting in the
    /// batch is its `first_seen` if it is new, its last one its state.
    pub(crate) fn seen(
        &mut self,
        serial: String,
        state: &'static str,
        at: u64,
    ) -> Result<(), SqlStoreError> {
        self.seen_with(serial, state, at, None)
    }

    /// [`AuditBatch::seen`], with the certificate of a device that got a
    /// package.
    fn seen_with(
        &mut self,
        serial: String,
        state: &'static str,
        at: u64,
        cert: Option<Option<nido_net::CertificateSeen>>,
    ) -> Result<(), SqlStoreError> {
        let at = to_i64(at, "time")?;
        match self.index.get(&serial) {
            Some(&i) => {
                let d = &mut self.devices[i];
                d.state = state;
                d.last = at;
                if cert.is_some() {
                    d.cert = cert;
                }
            }
            None => {
                self.index.insert(serial.clone(), self.devices.len());
                self.devices.push(DeviceSeen {
                    serial,
                    state,
                    first: at,
                    last: at,
                    cert,
                });
            }
        }
        Ok(())
    }

    /// The entries of `events` observed at `at` and the devices they name;
    /// `holder` tells which device holds a SUPI (for `Registered`).
    fn events(
        &mut self,
        at: u64,
        events: &[NetworkEvent],
        holder: impl Fn(&str) -> Option<String>,
    ) -> Result<(), SqlStoreError> {
        for event in events {
            self.entry(AuditEntry::from_event(at, event));
            let cert = match event {
                NetworkEvent::PackageDelivered { certificate, .. } => Some(certificate.clone()),
                _ => None,
            };
            match seen(event) {
                Some(Seen::Device(device, state)) => {
                    self.seen_with(device, state, at, cert)?;
                }
                Some(Seen::Supi(supi)) => {
                    if let Some(device) = holder(&supi) {
                        self.seen(device, "active", at)?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Writes the entries and the devices.
    pub(crate) async fn write<C: AuditConn>(&self, c: &mut C) -> Result<(), SqlStoreError> {
        c.append_audit(&self.entries).await?;
        c.touch_devices(&self.devices).await?;
        // The certificate of each device that got a package (rare: one
        // statement each, in the same transaction).
        for d in &self.devices {
            if let Some(cert) = &d.cert {
                c.set_certificate(&d.serial, cert.as_ref()).await?;
            }
        }
        Ok(())
    }
}

/// What an event says of a device.
enum Seen {
    /// This device, in this state.
    Device(String, &'static str),
    /// The device that holds this SUPI, active.
    Supi(String),
}

/// The `devices` row an event updates, if any.
fn seen(event: &NetworkEvent) -> Option<Seen> {
    use NetworkEvent as E;
    let device = |d: &nido_net::DeviceId, state| Some(Seen::Device(d.to_string(), state));
    match event {
        E::DeviceAuthenticated { device: d, .. } => device(d, "authenticated"),
        E::RegisteredForOnboarding { device: d, .. } => device(d, "onboarding"),
        E::PackageDelivered { device: d, .. } => device(d, "provisioning"),
        E::Provisioned { device: d, .. } => device(d, "provisioned"),
        E::Released { device: d, .. } => device(d, "released"),
        E::Refused {
            device: Some(d), ..
        } => device(d, "refused"),
        E::Refused {
            device: None,
            presented: Some(d),
            ..
        } => device(d, "refused"),
        E::Registered { supi, .. } => Some(Seen::Supi(supi.to_string())),
        _ => None,
    }
}

/// Who holds what, as the batch goes: read once at its start for the keys
/// it names, then changed by its `Subscription` writes.
#[derive(Default)]
struct Holders {
    /// SUPI → the device holding it (`None`: free).
    device_of: HashMap<String, Option<String>>,
    /// Device → its SUPI and package id (`None`: no subscription).
    row_of: HashMap<String, Option<(String, [u8; 16])>>,
}

impl Holders {
    fn holder(&self, supi: &str) -> Option<String> {
        self.device_of.get(supi).cloned().flatten()
    }

    /// Checks and follows a `Subscription` write; returns what its device
    /// held before (its SUPI and package id).
    fn put(&mut self, row: &SealedSub) -> Result<Option<(String, [u8; 16])>, SqlStoreError> {
        if let Some(Some(holder)) = self.device_of.get(&row.supi)
            && *holder != row.device
        {
            return Err(
                StoreError::Conflict(format!("{} belongs to another device", row.supi)).into(),
            );
        }
        let old = self.row_of.get(&row.device).cloned().flatten();
        if let Some((old_supi, _)) = &old
            && *old_supi != row.supi
        {
            self.device_of.insert(old_supi.clone(), None);
        }
        self.device_of
            .insert(row.supi.clone(), Some(row.device.clone()));
        self.row_of
            .insert(row.device.clone(), Some((row.supi.clone(), row.package_id)));
        Ok(old)
    }
}

/// `Sqn` and `State` writes not yet written: the last value per SUPI.
#[derive(Default)]
struct Pending {
    /// SUPIs in the order of their first write (the first that has no
    /// subscription is the one the batch fails on).
    order: Vec<String>,
    sqn: HashMap<String, (i64, i64)>,
    state: HashMap<String, (&'static str, i64)>,
}

impl Pending {
    fn touches(&self, supi: &str) -> bool {
        self.sqn.contains_key(supi) || self.state.contains_key(supi)
    }

    fn note(&mut self, supi: &str) {
        if !self.touches(supi) {
            self.order.push(supi.to_owned());
        }
    }

    /// Writes the buffer; a SUPI without a subscription is `NotFound`.
    async fn flush<C: Conn>(&mut self, c: &mut C, now: i64) -> Result<(), SqlStoreError> {
        if self.order.is_empty() {
            return Ok(());
        }
        let mut sqn: Vec<(&str, i64, i64)> = self
            .sqn
            .iter()
            .map(|(s, &(seq, ind))| (s.as_str(), seq, ind))
            .collect();
        sqn.sort_unstable_by_key(|r| r.0);
        let mut state: Vec<(&str, &'static str, i64)> = self
            .state
            .iter()
            .map(|(s, &(state, at))| (s.as_str(), state, at))
            .collect();
        state.sort_unstable_by_key(|r| r.0);
        let sqn_found = c.set_sqn(&sqn, now).await?;
        let state_found = c.set_state(&state).await?;
        if let Some(missing) = self.order.iter().find(|s| {
            (self.sqn.contains_key(*s) && !sqn_found.contains(*s))
                || (self.state.contains_key(*s) && !state_found.contains(*s))
        }) {
            return Err(StoreError::NotFound(format!("subscription of {missing}")).into());
        }
        self.order.clear();
        self.sqn.clear();
        self.state.clear();
        Ok(())
    }
}

/// Whole-row writes (`Subscription`) waiting to be written together, in
/// one upsert: rows that name distinct devices and SUPIs commute, so a row
/// that names a device or SUPI one of them names (as its own or as the
/// SUPI its device leaves) first writes the rows waiting.
#[derive(Default)]
struct Rows<'a> {
    rows: Vec<&'a SealedSub>,
    /// The devices whose package these rows deliver (a new package id),
    /// with where the audit trail stood after the row's own entries
    /// ([`AuditBatch::mark`]): a `PackageEnded` goes there.
    delivered: Vec<(&'a str, usize)>,
    /// Every device and SUPI the waiting rows name.
    keys: HashSet<String>,
}

impl<'a> Rows<'a> {
    /// Whether `row` (whose device held `old_supi`) names a key of a
    /// waiting row.
    fn names(&self, row: &SealedSub, old_supi: Option<&str>) -> bool {
        self.keys.contains(row.device.as_str())
            || self.keys.contains(row.supi.as_str())
            || old_supi.is_some_and(|s| self.keys.contains(s))
    }

    fn push(&mut self, row: &'a SealedSub, old_supi: Option<&str>, delivered: Option<usize>) {
        self.keys.insert(row.device.clone());
        self.keys.insert(row.supi.clone());
        if let Some(s) = old_supi {
            self.keys.insert(s.to_owned());
        }
        if let Some(mark) = delivered {
            self.delivered.push((&row.device, mark));
        }
        self.rows.push(row);
    }

    /// Writes the waiting rows: the delivered devices' claims locked, the
    /// rows upserted, the owners settled (each device whose package's
    /// owner is no longer its owner gets a `PackageEnded` audit entry,
    /// right after its row's own entries, as if settled in its place).
    async fn flush<C: Conn>(
        &mut self,
        c: &mut C,
        now: i64,
        audit: &mut AuditBatch,
    ) -> Result<(), SqlStoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        // In SUPI order, as every other write: two processes lock rows in
        // the same order.
        self.rows.sort_unstable_by(|a, b| a.supi.cmp(&b.supi));
        let mut devices: Vec<&str> = self.delivered.iter().map(|(d, _)| *d).collect();
        devices.sort_unstable();
        c.lock_claims(&devices).await?;
        c.upsert_subscriptions(&self.rows, now).await?;
        let settled = c.settle_owners(&devices, now - 1).await?;
        let mut placed = Vec::with_capacity(settled.len());
        for device in settled {
            let (Some(row), Some(&(_, mark))) = (
                self.rows.iter().find(|r| r.device == device),
                self.delivered.iter().find(|(d, _)| *d == device),
            ) else {
                continue;
            };
            let event = nido_net::NetworkEvent::PackageEnded {
                device: crate::sql::device_id(&row.device)?,
                supi: nido_sec::Supi::parse(&row.supi)
                    .map_err(|e| SqlStoreError::Corrupt(format!("SUPI {}: {e}", row.supi)))?,
                reason: "delivered for an owner the device no longer has (a release \
                         or a claim came first): its owner's access ends and the \
                         device renews it"
                    .to_owned(),
            };
            placed.push((
                mark,
                AuditEntry::from_event(u64::try_from(now).unwrap_or(0), &event),
            ));
        }
        audit.entries_at(placed);
        self.rows.clear();
        self.delivered.clear();
        self.keys.clear();
        Ok(())
    }
}

/// Applies `ops` with `c`, inside the caller's transaction (see the module
/// documentation for the order).
///
/// Every database error is returned, never caught and worked around: on
/// PostgreSQL a failed statement aborts the transaction, and the `COMMIT`
/// after it would be answered with a rollback that looks like success.
async fn apply_ops<C: Conn>(
    c: &mut C,
    ops: &[Op<'_>],
    now: i64,
    outbox_limit: u64,
) -> Result<(), SqlStoreError> {
    let mut holders = Holders::default();
    let mut supis: Vec<&str> = Vec::new();
    let mut devices: Vec<&str> = Vec::new();
    // The keys the batch reads: its subscriptions' SUPIs and devices, and
    // the SUPIs of its `Registered` events.
    let mut registered_supis: Vec<String> = Vec::new();
    for op in ops {
        match op {
            Op::Subscription { row, audit, .. } => {
                supis.push(&row.supi);
                devices.push(&row.device);
                collect_registered(audit, &mut registered_supis);
            }
            Op::State { audit, .. } => collect_registered(audit, &mut registered_supis),
            Op::Audit { events, .. } => collect_registered(events, &mut registered_supis),
            Op::Sqn { .. } | Op::Counted(_) | Op::Uplink(_) => {}
        }
    }
    supis.extend(registered_supis.iter().map(String::as_str));
    supis.sort_unstable();
    supis.dedup();
    devices.sort_unstable();
    devices.dedup();
    for s in &supis {
        holders.device_of.insert((*s).to_owned(), None);
    }
    for d in &devices {
        holders.row_of.insert((*d).to_owned(), None);
    }
    if !supis.is_empty() || !devices.is_empty() {
        for (supi, device, package) in c.rows_of(&supis, &devices).await? {
            let package: [u8; 16] = package
                .as_slice()
                .try_into()
                .map_err(|_| SqlStoreError::Corrupt(format!("package id of {supi}")))?;
            holders.device_of.insert(supi.clone(), Some(device.clone()));
            holders.row_of.insert(device, Some((supi, package)));
        }
    }

    let mut pending = Pending::default();
    let mut rows = Rows::default();
    let mut audit = AuditBatch::default();
    let mut packages: Vec<(&SealedSub, bool)> = Vec::new();
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    let mut uplinks: Vec<&nido_net::Uplink> = Vec::new();
    for op in ops {
        match op {
            Op::Subscription {
                row,
                at,
                audit: events,
            } => {
                let old = holders.put(row)?;
                let old_supi = old.as_ref().map(|(s, _)| s.as_str());
                // The waiting rows go first if this row does not commute
                // with them, and always before the buffered column writes
                // (some may follow rows of their SUPIs; the others commute
                // with the rows).
                if rows.names(row, old_supi) {
                    rows.flush(c, now, &mut audit).await?;
                }
                if pending.touches(&row.supi) || old_supi.is_some_and(|s| pending.touches(s)) {
                    rows.flush(c, now, &mut audit).await?;
                    pending.flush(c, now).await?;
                }
                let delivered = old.as_ref().map(|(_, p)| p) != Some(&row.package_id);
                if delivered {
                    packages.push((row, old.is_some()));
                }
                audit.events(*at, events, |s| holders.holder(s))?;
                rows.push(row, old_supi, delivered.then(|| audit.mark()));
            }
            Op::Sqn { supi, seq, ind } => {
                pending.note(supi);
                pending.sqn.insert(supi.clone(), (*seq, *ind));
            }
            Op::State {
                supi,
                state,
                at,
                audit: events,
            } => {
                pending.note(supi);
                pending
                    .state
                    .insert(supi.clone(), (*state, to_i64(*at, "time")?));
                audit.events(*at, events, |s| holders.holder(s))?;
            }
            Op::Counted(manufacturer) => *counts.entry(manufacturer).or_insert(0) += 1,
            Op::Audit { at, events } => audit.events(*at, events, |s| holders.holder(s))?,
            Op::Uplink(uplink) => uplinks.push(uplink),
        }
    }
    rows.flush(c, now, &mut audit).await?;
    pending.flush(c, now).await?;
    c.log_packages(&packages, now).await?;
    c.add_allocations(&counts).await?;
    if !uplinks.is_empty() {
        for entry in crate::outbox::append(c, &uplinks, outbox_limit).await? {
            audit.entry(entry);
        }
    }
    audit.write(c).await
}

/// Adds the SUPI of every `Registered` event of `events` to `out`.
fn collect_registered(events: &[NetworkEvent], out: &mut Vec<String>) {
    for e in events {
        if let Some(Seen::Supi(s)) = seen(e) {
            out.push(s);
        }
    }
}

/// The statements of a batch on one backend: the same SQL where the
/// backends agree (written once, [`shared_audit_ops`] and [`shared_ops`]),
/// and each kind of multi-row write one statement on either (`UNNEST` of
/// array parameters on PostgreSQL, where a statement is a network round
/// trip; `json_each` of one JSON parameter on SQLite, where each statement
/// costs its parse). [`AuditConn`] is what the operator's commands write
/// in their own transactions too (audit entries, device rows, owners'
/// events), so every connection has it, SQLite's sqlx connection included;
/// [`Conn`] the rest of a group commit.
pub(crate) trait AuditConn {
    /// Appends audit entries, in order.
    async fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), SqlStoreError>;
    /// Inserts or updates `devices` rows (one per serial).
    async fn touch_devices(&mut self, devices: &[DeviceSeen]) -> Result<(), SqlStoreError>;
    /// The certificate device `serial` onboarded with (`None`: unknown).
    async fn set_certificate(
        &mut self,
        serial: &str,
        cert: Option<&nido_net::CertificateSeen>,
    ) -> Result<(), SqlStoreError>;
    /// Appends an event about `device` for its owner at this point of the
    /// transaction (the read side's [`crate::query::owner_of`]; `""`:
    /// none, the operator's default destination), delivered like a burst
    /// and numbered with the device's bursts: `data` is the JSON object
    /// `{"event": event, "reason": reason}` (issue #16 item 1: the owner is
    /// told of a block, an unblock, a release).
    async fn append_event(
        &mut self,
        device: &str,
        event: &str,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), SqlStoreError>;
    /// Whether owner account `owner` exists.
    async fn owner_exists(&mut self, owner: &str) -> Result<bool, SqlStoreError>;
}

/// The statements of a group commit (beyond [`AuditConn`]'s): PostgreSQL's
/// sqlx connection, and SQLite's writing connection
/// ([`crate::direct::WriteTx`]).
pub(crate) trait Conn: AuditConn {
    /// The rows (SUPI, device, package id) holding one of `supis` or
    /// belonging to one of `devices`.
    async fn rows_of(
        &mut self,
        supis: &[&str],
        devices: &[&str],
    ) -> Result<Vec<(String, String, Vec<u8>)>, SqlStoreError>;
    /// Inserts or replaces the row of each `rows[i].device`, in one
    /// statement (the rows name distinct devices and SUPIs: [`Rows`]).
    async fn upsert_subscriptions(
        &mut self,
        rows: &[&SealedSub],
        now: i64,
    ) -> Result<(), SqlStoreError>;
    /// After packages of `devices` were written: for each device that has
    /// claim codes (a release leaves one, unused) and whose package names
    /// an owner that is not its owner by them at this commit (the first
    /// claim with an owner; none after a release), the owner column takes
    /// the claims' owner and the package ends at `ended` (Unix seconds):
    /// the package was built for an owner the device no longer has (a
    /// release or a claim raced the delivery), so its owner's access ends
    /// now and the device renews it with the right credentials. Returns
    /// the devices it did that to (and advances the trust generation once
    /// if any), in one statement.
    async fn settle_owners(
        &mut self,
        devices: &[&str],
        ended: i64,
    ) -> Result<Vec<String>, SqlStoreError>;
    /// Locks the claim rows of `devices` until the commit (PostgreSQL:
    /// `FOR UPDATE`, in device order; SQLite's write transactions are
    /// serialised already), taken before packages of the devices are
    /// written: a release or a claim of a device (which lock its claims,
    /// then its subscription, in that order too) then waits for this
    /// commit and sees the row, or commits first and
    /// [`Conn::settle_owners`] sees its change.
    async fn lock_claims(&mut self, devices: &[&str]) -> Result<(), SqlStoreError>;
    /// Logs packages delivered (row, re-provisioned), in order.
    async fn log_packages(
        &mut self,
        rows: &[(&SealedSub, bool)],
        now: i64,
    ) -> Result<(), SqlStoreError>;
    /// Sets (SUPI, SQN SEQ, IND), one per SUPI; returns the SUPIs found.
    async fn set_sqn(
        &mut self,
        rows: &[(&str, i64, i64)],
        now: i64,
    ) -> Result<HashSet<String>, SqlStoreError>;
    /// Sets (SUPI, state, at), one per SUPI; returns the SUPIs found.
    async fn set_state(
        &mut self,
        rows: &[(&str, &'static str, i64)],
    ) -> Result<HashSet<String>, SqlStoreError>;
    /// Adds `n` to each manufacturer's count.
    async fn add_allocations(&mut self, counts: &BTreeMap<&str, i64>) -> Result<(), SqlStoreError>;
    /// Takes up to `n` MSINs: (allocated before, allocated after), or
    /// `None` when the range is used up. Inside a write transaction.
    async fn lease(&mut self, n: i64) -> Result<Option<(i64, i64)>, SqlStoreError>;
    /// Appends one burst to the outbox with the device's next sequence
    /// number, for the device's owner at this commit (the read side's
    /// definition, [`crate::query::owner_of`]: an owner released by a
    /// transfer gets nothing more, whatever the serving network last saw;
    /// `""`: none); returns that number and that owner.
    async fn append_uplink(
        &mut self,
        row: &crate::outbox::UplinkRow<'_>,
    ) -> Result<(i64, String), SqlStoreError>;
    /// How many bursts of `owner` are pending.
    async fn pending_of(&mut self, owner: &str) -> Result<i64, SqlStoreError>;
    /// Marks the `n` oldest pending bursts of `owner` dropped; returns
    /// their (device, seq).
    async fn drop_oldest(
        &mut self,
        owner: &str,
        n: i64,
    ) -> Result<Vec<(String, i64)>, SqlStoreError>;
}

/// The device's next outbox number (its bursts and events together).
const NEXT_SEQ: &str = "INSERT INTO uplink_seq (device, last) VALUES ($1, 1) \
                        ON CONFLICT (device) DO UPDATE SET last = uplink_seq.last + 1 \
                        RETURNING last";

/// The one-row insert of an audit entry.
const INSERT_AUDIT: &str = "INSERT INTO audit (at, kind, device, supi, cause, detail) \
                            VALUES ($1, $2, $3, $4, $5, $6)";

/// [`Conn::set_certificate`].
const SET_CERTIFICATE: &str =
    "UPDATE devices SET cert_serial = $2, cert_issuer = $3 WHERE serial = $1";

/// [`Conn::append_uplink`]'s row, for the device's owner at this commit.
static INSERT_UPLINK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO outbox (device, owner, supi, psi, seq, data, at_ms) \
         VALUES ($1, COALESCE({}, ''), $2, $3, $4, $5, $6) RETURNING owner",
        crate::query::owner_of("$1")
    )
});

/// [`Conn::append_event`]'s row, for the device's owner at this point.
static INSERT_EVENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO outbox (device, owner, supi, psi, seq, data, at_ms, kind) \
         VALUES ($1, COALESCE({}, ''), \
         COALESCE((SELECT s.supi FROM subscriptions s WHERE s.device = $1), ''), \
         0, $2, $3, $4, 'event')",
        crate::query::owner_of("$1")
    )
});

/// [`Conn::append_event`]'s data: `{"event": event, "reason": reason}`.
fn event_data(event: &str, reason: &str) -> Result<Vec<u8>, SqlStoreError> {
    serde_json::to_vec(&serde_json::json!({"event": event, "reason": reason}))
        .map_err(|e| SqlStoreError::Invalid(format!("event {event}: {e}")))
}

/// [`Conn::owner_exists`].
const OWNER_EXISTS: &str = "SELECT id FROM owners WHERE id = $1";

/// [`Conn::pending_of`].
const PENDING_OF: &str = "SELECT COUNT(*) FROM outbox WHERE owner = $1 AND status = 'pending'";

/// [`Conn::drop_oldest`].
const DROP_OLDEST: &str = "UPDATE outbox SET status = 'dropped' WHERE id IN \
     (SELECT id FROM outbox WHERE owner = $1 AND status = 'pending' \
     ORDER BY id LIMIT $2) RETURNING device, seq";

/// One manufacturer's count in [`Conn::add_allocations`].
const ADD_ALLOCATIONS: &str = "INSERT INTO manufacturer_allocations (manufacturer, allocated) \
     VALUES ($1, $2) ON CONFLICT (manufacturer) DO UPDATE \
     SET allocated = manufacturer_allocations.allocated + excluded.allocated";

/// [`Conn::lease`]'s move of the MSIN counter, guarded on what was read.
const MOVE_COUNTER: &str = "UPDATE msin_counter SET allocated = $1 WHERE id = 1 AND allocated = $2";

/// The settling of owners ([`Conn::settle_owners`]) for the devices that
/// `$in` selects (the backend's list parameter `$1`); `$2` is the end.
macro_rules! settle_owners_sql {
    ($in:literal) => {
        concat!(
            "UPDATE subscriptions SET owner = (SELECT c.owner FROM claims c \
             WHERE c.device = subscriptions.device AND c.owner IS NOT NULL \
             ORDER BY c.claim_seq LIMIT 1), \
             not_after = CASE WHEN not_after IS NULL OR not_after > $2 THEN $2 \
             ELSE not_after END \
             WHERE device ",
            $in,
            " AND COALESCE(owner, '') <> COALESCE((SELECT c.owner \
             FROM claims c WHERE c.device = subscriptions.device AND c.owner IS NOT NULL \
             ORDER BY c.claim_seq LIMIT 1), '') \
             AND EXISTS (SELECT 1 FROM claims c2 WHERE c2.device = subscriptions.device) \
             RETURNING device"
        )
    };
}

/// The columns an upsert of whole subscription rows writes, in the order
/// of its values (both backends).
const UPSERT_INTO: &str = "INSERT INTO subscriptions (supi, device, k_enc, opc_enc, amf, \
     sqn_seq, sqn_ind, state, owner, package_id, updated_at, not_after, suci_key_id)";

/// What an upsert of whole subscription rows sets when the device has a
/// row already (every column but the device).
const UPSERT_SET: &str = "ON CONFLICT (device) DO UPDATE SET supi = excluded.supi, \
     k_enc = excluded.k_enc, opc_enc = excluded.opc_enc, amf = excluded.amf, \
     sqn_seq = excluded.sqn_seq, sqn_ind = excluded.sqn_ind, \
     state = excluded.state, owner = excluded.owner, \
     package_id = excluded.package_id, updated_at = excluded.updated_at, \
     not_after = excluded.not_after, suci_key_id = excluded.suci_key_id";

/// The methods of [`AuditConn`] whose SQL every connection takes as it
/// is.
macro_rules! shared_audit_ops {
    () => {
        async fn set_certificate(
            &mut self,
            serial: &str,
            cert: Option<&nido_net::CertificateSeen>,
        ) -> Result<(), SqlStoreError> {
            sqlx::query(SET_CERTIFICATE)
                .bind(serial)
                .bind(cert.map(|c| c.serial.as_slice()))
                .bind(cert.map(|c| c.issuer.as_slice()))
                .execute(&mut *self)
                .await?;
            Ok(())
        }

        async fn append_event(
            &mut self,
            device: &str,
            event: &str,
            reason: &str,
            at_ms: i64,
        ) -> Result<(), SqlStoreError> {
            let (seq,): (i64,) = sqlx::query_as(NEXT_SEQ)
                .bind(device)
                .fetch_one(&mut *self)
                .await?;
            let data = event_data(event, reason)?;
            sqlx::query(sqlx::AssertSqlSafe(INSERT_EVENT.as_str()))
                .bind(device)
                .bind(seq)
                .bind(data)
                .bind(at_ms)
                .execute(&mut *self)
                .await?;
            Ok(())
        }

        async fn owner_exists(&mut self, owner: &str) -> Result<bool, SqlStoreError> {
            let id: Option<String> = sqlx::query_scalar(OWNER_EXISTS)
                .bind(owner)
                .fetch_optional(&mut *self)
                .await?;
            Ok(id.is_some())
        }
    };
}

/// The methods of [`Conn`] whose SQL both backends take as it is, but for
/// the statement that reads the MSIN counter locked (`$lock_counter`) and
/// the settling of owners (`$settle`, [`settle_owners_sql`]: how a list of
/// devices is a parameter, with `$devices`, which makes the parameter of a
/// `&[&str]`).
macro_rules! shared_ops {
    ($lock_counter:expr, $settle:expr, $devices:expr) => {
        async fn settle_owners(
            &mut self,
            devices: &[&str],
            ended: i64,
        ) -> Result<Vec<String>, SqlStoreError> {
            if devices.is_empty() {
                return Ok(Vec::new());
            }
            let settled: Vec<String> = sqlx::query_scalar($settle)
                .bind($devices(devices)?)
                .bind(ended)
                .fetch_all(&mut *self)
                .await?;
            if !settled.is_empty() {
                sqlx::query(crate::extras::BUMP_TRUST_GENERATION)
                    .execute(&mut *self)
                    .await?;
            }
            Ok(settled)
        }

        async fn append_uplink(
            &mut self,
            row: &crate::outbox::UplinkRow<'_>,
        ) -> Result<(i64, String), SqlStoreError> {
            let (seq,): (i64,) = sqlx::query_as(NEXT_SEQ)
                .bind(row.device)
                .fetch_one(&mut *self)
                .await?;
            let owner: String = sqlx::query_scalar(sqlx::AssertSqlSafe(INSERT_UPLINK.as_str()))
                .bind(row.device)
                .bind(&row.supi)
                .bind(row.psi)
                .bind(seq)
                .bind(row.data)
                .bind(row.at_ms)
                .fetch_one(&mut *self)
                .await?;
            Ok((seq, owner))
        }

        async fn pending_of(&mut self, owner: &str) -> Result<i64, SqlStoreError> {
            let (n,): (i64,) = sqlx::query_as(PENDING_OF)
                .bind(owner)
                .fetch_one(&mut *self)
                .await?;
            Ok(n)
        }

        async fn drop_oldest(
            &mut self,
            owner: &str,
            n: i64,
        ) -> Result<Vec<(String, i64)>, SqlStoreError> {
            Ok(sqlx::query_as(DROP_OLDEST)
                .bind(owner)
                .bind(n)
                .fetch_all(&mut *self)
                .await?)
        }

        async fn add_allocations(
            &mut self,
            counts: &BTreeMap<&str, i64>,
        ) -> Result<(), SqlStoreError> {
            // A handful of manufacturers: one statement each.
            for (manufacturer, n) in counts {
                sqlx::query(ADD_ALLOCATIONS)
                    .bind(*manufacturer)
                    .bind(*n)
                    .execute(&mut *self)
                    .await?;
            }
            Ok(())
        }

        async fn lease(&mut self, n: i64) -> Result<Option<(i64, i64)>, SqlStoreError> {
            // Neither SQLite's RETURNING nor PostgreSQL's before 18 returns
            // the value a row had before the update: read it (locked: the
            // write transaction on SQLite, FOR UPDATE on PostgreSQL), then
            // move it, guarded on what was read.
            let (allocated, size): (i64, i64) =
                sqlx::query_as($lock_counter).fetch_one(&mut *self).await?;
            if allocated >= size {
                return Ok(None);
            }
            let upto = allocated.saturating_add(n).min(size);
            let moved = sqlx::query(MOVE_COUNTER)
                .bind(upto)
                .bind(allocated)
                .execute(&mut *self)
                .await?
                .rows_affected();
            if moved != 1 {
                return Err(StoreError::Unavailable(
                    "the MSIN counter moved under its lock; try again".into(),
                )
                .into());
            }
            Ok(Some((allocated, upto)))
        }
    };
}

impl AuditConn for SqliteConnection {
    shared_audit_ops!();

    async fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), SqlStoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        sqlx::query(lite::APPEND_AUDIT)
            .bind(lite::audit(entries)?)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn touch_devices(&mut self, devices: &[DeviceSeen]) -> Result<(), SqlStoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        sqlx::query(lite::TOUCH_DEVICES)
            .bind(lite::devices(devices)?)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

/// `rows` (serialized) as one JSON array, the parameter SQLite's `json_each` turns
/// back into rows: a batch is one statement on SQLite too, as `UNNEST`
/// makes it one on PostgreSQL.
fn json(rows: serde_json::Result<String>) -> Result<String, SqlStoreError> {
    rows.map_err(|e| SqlStoreError::Corrupt(format!("batch as JSON: {e}")))
}

/// SQLite's batch statements and their one JSON parameter: the group
/// commits' ([`crate::direct::WriteTx`]), and the audit writes of sqlx's
/// connection in the operator's transactions ([`AuditConn`]).
mod lite {
    use super::{AuditEntry, DeviceSeen, SealedSub, SqlStoreError, UPSERT_INTO, UPSERT_SET, json};
    use crate::sql::to_i64;

    /// [`super::Conn::upsert_subscriptions`]: `$1` the rows
    /// ([`upsert_rows`]), `$2` the time.
    pub(super) static UPSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{UPSERT_INTO} SELECT value ->> 0, value ->> 1, unhex(value ->> 2), \
             unhex(value ->> 3), unhex(value ->> 4), value ->> 5, value ->> 6, value ->> 7, \
             value ->> 8, unhex(value ->> 9), $2, value ->> 10, value ->> 11 \
             FROM json_each($1) WHERE true ORDER BY key {UPSERT_SET}"
        )
    });

    /// The rows of an upsert, octets as hex (`unhex` back), so the batch
    /// is plain JSON.
    pub(super) fn upsert_rows(rows: &[&SealedSub]) -> Result<String, SqlStoreError> {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.supi.as_str(),
                    r.device.as_str(),
                    hex::encode(&r.k_enc),
                    hex::encode(&r.opc_enc),
                    hex::encode(r.amf),
                    r.seq,
                    r.ind,
                    r.state,
                    r.owner.as_deref(),
                    hex::encode(r.package_id),
                    r.not_after,
                    r.suci_key_id,
                )
            })
            .collect();
        json(serde_json::to_string(&rows))
    }

    /// [`super::Conn::rows_of`]: `$1` the SUPIs, `$2` the devices (JSON
    /// arrays).
    pub(super) const ROWS_OF: &str = "SELECT supi, device, package_id FROM subscriptions \
         WHERE supi IN (SELECT value FROM json_each($1)) \
         OR device IN (SELECT value FROM json_each($2))";

    /// [`super::Conn::log_packages`]: `$1` the rows ([`packages`]), `$2`
    /// the time.
    pub(super) const LOG_PACKAGES: &str = "INSERT INTO provisioning (package_id, device, supi, at, reprovisioned) \
         SELECT unhex(value ->> 0), value ->> 1, value ->> 2, $2, value ->> 3 \
         FROM json_each($1) ORDER BY key";

    pub(super) fn packages(rows: &[(&SealedSub, bool)]) -> Result<String, SqlStoreError> {
        let rows: Vec<(String, &str, &str, bool)> = rows
            .iter()
            .map(|(r, again)| {
                (
                    hex::encode(r.package_id),
                    r.device.as_str(),
                    r.supi.as_str(),
                    *again,
                )
            })
            .collect();
        json(serde_json::to_string(&rows))
    }

    /// [`super::Conn::set_sqn`]: `$1` the (SUPI, SEQ, IND) rows, `$2` the
    /// time; returns the SUPIs found.
    pub(super) const SET_SQN: &str = "UPDATE subscriptions SET sqn_seq = u.value ->> 1, sqn_ind = u.value ->> 2, \
         updated_at = $2 FROM json_each($1) AS u \
         WHERE subscriptions.supi = u.value ->> 0 RETURNING supi";

    /// [`super::Conn::set_state`]: `$1` the (SUPI, state, at) rows;
    /// returns the SUPIs found.
    pub(super) const SET_STATE: &str = "UPDATE subscriptions SET state = u.value ->> 1, updated_at = u.value ->> 2 \
         FROM json_each($1) AS u \
         WHERE subscriptions.supi = u.value ->> 0 RETURNING supi";

    /// [`super::Conn::append_audit`]: `$1` the entries ([`audit`]), in
    /// array order (`key`): the ids follow the batch's order.
    pub(super) const APPEND_AUDIT: &str = "INSERT INTO audit (at, kind, device, supi, cause, detail) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 \
         FROM json_each($1) ORDER BY key";

    pub(super) fn audit(entries: &[AuditEntry]) -> Result<String, SqlStoreError> {
        let rows = entries
            .iter()
            .map(|e| {
                Ok((
                    to_i64(e.at, "time")?,
                    e.kind.as_str(),
                    e.device.as_deref(),
                    e.supi.as_deref(),
                    e.cause,
                    e.detail.as_str(),
                ))
            })
            .collect::<Result<Vec<_>, SqlStoreError>>()?;
        json(serde_json::to_string(&rows))
    }

    /// [`super::Conn::touch_devices`]: `$1` the rows ([`devices`]), one per
    /// serial (the batch merged them). `WHERE true`: SQLite reads an ON
    /// CONFLICT after a SELECT only past a WHERE.
    pub(super) const TOUCH_DEVICES: &str = "INSERT INTO devices (serial, state, first_seen, last_seen) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 \
         FROM json_each($1) WHERE true \
         ON CONFLICT (serial) DO UPDATE SET state = excluded.state, \
         last_seen = excluded.last_seen";

    pub(super) fn devices(devices: &[DeviceSeen]) -> Result<String, SqlStoreError> {
        let rows: Vec<(&str, &str, i64, i64)> = devices
            .iter()
            .map(|d| (d.serial.as_str(), d.state, d.first, d.last))
            .collect();
        json(serde_json::to_string(&rows))
    }

    /// The MSIN counter, read inside the write transaction (which holds
    /// SQLite's one write lock).
    pub(super) const LOCK_COUNTER: &str =
        "SELECT allocated, range_size FROM msin_counter WHERE id = 1";

    /// [`super::Conn::settle_owners`]: `$1` the devices (a JSON array),
    /// `$2` the end.
    pub(super) const SETTLE_OWNERS: &str =
        settle_owners_sql!("IN (SELECT value FROM json_each($1))");
}

/// SQLite's group commits on [`crate::direct::DirectWriter`]'s connection:
/// the statements (and parameters) of the sqlx connection's methods, run
/// in place ([`lite`] and the constants above).
impl AuditConn for crate::direct::WriteTx<'_> {
    async fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), SqlStoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.execute(
            lite::APPEND_AUDIT,
            rusqlite::named_params! { "$1": lite::audit(entries)? },
        )?;
        Ok(())
    }

    async fn touch_devices(&mut self, devices: &[DeviceSeen]) -> Result<(), SqlStoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        self.execute(
            lite::TOUCH_DEVICES,
            rusqlite::named_params! { "$1": lite::devices(devices)? },
        )?;
        Ok(())
    }

    async fn set_certificate(
        &mut self,
        serial: &str,
        cert: Option<&nido_net::CertificateSeen>,
    ) -> Result<(), SqlStoreError> {
        self.execute(
            SET_CERTIFICATE,
            rusqlite::named_params! {
                "$1": serial,
                "$2": cert.map(|c| c.serial.as_slice()),
                "$3": cert.map(|c| c.issuer.as_slice()),
            },
        )?;
        Ok(())
    }

    async fn append_event(
        &mut self,
        device: &str,
        event: &str,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), SqlStoreError> {
        let seq = self.next_seq(device)?;
        self.execute(
            INSERT_EVENT.as_str(),
            rusqlite::named_params! {
                "$1": device,
                "$2": seq,
                "$3": event_data(event, reason)?,
                "$4": at_ms,
            },
        )?;
        Ok(())
    }

    async fn owner_exists(&mut self, owner: &str) -> Result<bool, SqlStoreError> {
        Ok(self
            .row(OWNER_EXISTS, rusqlite::named_params! { "$1": owner }, |r| {
                r.get::<_, String>(0)
            })?
            .is_some())
    }
}

impl Conn for crate::direct::WriteTx<'_> {
    async fn rows_of(
        &mut self,
        supis: &[&str],
        devices: &[&str],
    ) -> Result<Vec<(String, String, Vec<u8>)>, SqlStoreError> {
        self.rows(
            lite::ROWS_OF,
            rusqlite::named_params! {
                "$1": json(serde_json::to_string(supis))?,
                "$2": json(serde_json::to_string(devices))?,
            },
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    async fn upsert_subscriptions(
        &mut self,
        rows: &[&SealedSub],
        now: i64,
    ) -> Result<(), SqlStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.execute(
            lite::UPSERT.as_str(),
            rusqlite::named_params! { "$1": lite::upsert_rows(rows)?, "$2": now },
        )?;
        Ok(())
    }

    async fn settle_owners(
        &mut self,
        devices: &[&str],
        ended: i64,
    ) -> Result<Vec<String>, SqlStoreError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let settled: Vec<String> = self.rows(
            lite::SETTLE_OWNERS,
            rusqlite::named_params! {
                "$1": json(serde_json::to_string(devices))?,
                "$2": ended,
            },
            |r| r.get(0),
        )?;
        if !settled.is_empty() {
            self.execute(crate::extras::BUMP_TRUST_GENERATION, &[])?;
        }
        Ok(settled)
    }

    async fn lock_claims(&mut self, _devices: &[&str]) -> Result<(), SqlStoreError> {
        // The transaction began IMMEDIATE: it holds SQLite's one write
        // lock, and no release or claim runs until it ends.
        Ok(())
    }

    async fn log_packages(
        &mut self,
        rows: &[(&SealedSub, bool)],
        now: i64,
    ) -> Result<(), SqlStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.execute(
            lite::LOG_PACKAGES,
            rusqlite::named_params! { "$1": lite::packages(rows)?, "$2": now },
        )?;
        Ok(())
    }

    async fn set_sqn(
        &mut self,
        rows: &[(&str, i64, i64)],
        now: i64,
    ) -> Result<HashSet<String>, SqlStoreError> {
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let found: Vec<String> = self.rows(
            lite::SET_SQN,
            rusqlite::named_params! { "$1": json(serde_json::to_string(rows))?, "$2": now },
            |r| r.get(0),
        )?;
        Ok(found.into_iter().collect())
    }

    async fn set_state(
        &mut self,
        rows: &[(&str, &'static str, i64)],
    ) -> Result<HashSet<String>, SqlStoreError> {
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let found: Vec<String> = self.rows(
            lite::SET_STATE,
            rusqlite::named_params! { "$1": json(serde_json::to_string(rows))? },
            |r| r.get(0),
        )?;
        Ok(found.into_iter().collect())
    }

    async fn add_allocations(&mut self, counts: &BTreeMap<&str, i64>) -> Result<(), SqlStoreError> {
        for (manufacturer, n) in counts {
            self.execute(
                ADD_ALLOCATIONS,
                rusqlite::named_params! { "$1": manufacturer, "$2": n },
            )?;
        }
        Ok(())
    }

    async fn lease(&mut self, n: i64) -> Result<Option<(i64, i64)>, SqlStoreError> {
        // As the sqlx connections do (`shared_ops`): read, then move guarded.
        let (allocated, size): (i64, i64) = self
            .row(lite::LOCK_COUNTER, &[], |r| Ok((r.get(0)?, r.get(1)?)))?
            .ok_or_else(|| SqlStoreError::Corrupt("no MSIN counter".into()))?;
        if allocated >= size {
            return Ok(None);
        }
        let upto = allocated.saturating_add(n).min(size);
        let moved = self.execute(
            MOVE_COUNTER,
            rusqlite::named_params! { "$1": upto, "$2": allocated },
        )?;
        if moved != 1 {
            return Err(StoreError::Unavailable(
                "the MSIN counter moved under its lock; try again".into(),
            )
            .into());
        }
        Ok(Some((allocated, upto)))
    }

    async fn append_uplink(
        &mut self,
        row: &crate::outbox::UplinkRow<'_>,
    ) -> Result<(i64, String), SqlStoreError> {
        let seq = self.next_seq(row.device)?;
        let owner: String = self
            .row(
                INSERT_UPLINK.as_str(),
                rusqlite::named_params! {
                    "$1": row.device,
                    "$2": row.supi,
                    "$3": row.psi,
                    "$4": seq,
                    "$5": row.data,
                    "$6": row.at_ms,
                },
                |r| r.get(0),
            )?
            .ok_or_else(|| SqlStoreError::Database("an outbox insert returned no row".into()))?;
        Ok((seq, owner))
    }

    async fn pending_of(&mut self, owner: &str) -> Result<i64, SqlStoreError> {
        Ok(self
            .row(PENDING_OF, rusqlite::named_params! { "$1": owner }, |r| {
                r.get(0)
            })?
            .unwrap_or(0))
    }

    async fn drop_oldest(
        &mut self,
        owner: &str,
        n: i64,
    ) -> Result<Vec<(String, i64)>, SqlStoreError> {
        self.rows(
            DROP_OLDEST,
            rusqlite::named_params! { "$1": owner, "$2": n },
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}

impl crate::direct::WriteTx<'_> {
    /// The device's next outbox number ([`NEXT_SEQ`]).
    fn next_seq(&self, device: &str) -> Result<i64, SqlStoreError> {
        self.row(NEXT_SEQ, rusqlite::named_params! { "$1": device }, |r| {
            r.get(0)
        })?
        .ok_or_else(|| SqlStoreError::Database("the outbox sequence returned no row".into()))
    }
}

impl AuditConn for PgConnection {
    shared_audit_ops!();

    async fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), SqlStoreError> {
        match entries {
            [] => return Ok(()),
            // One row: the plain insert, whose statement is shared with
            // every single-row append.
            [entry] => {
                sqlx::query(INSERT_AUDIT)
                    .bind(to_i64(entry.at, "time")?)
                    .bind(&entry.kind)
                    .bind(entry.device.as_deref())
                    .bind(entry.supi.as_deref())
                    .bind(entry.cause.map(i64::from))
                    .bind(&entry.detail)
                    .execute(&mut *self)
                    .await?;
                return Ok(());
            }
            _ => {}
        }
        let ats = entries
            .iter()
            .map(|e| to_i64(e.at, "time"))
            .collect::<Result<Vec<i64>, _>>()?;
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
        let devices: Vec<Option<&str>> = entries.iter().map(|e| e.device.as_deref()).collect();
        let supis: Vec<Option<&str>> = entries.iter().map(|e| e.supi.as_deref()).collect();
        let causes: Vec<Option<i64>> = entries.iter().map(|e| e.cause.map(i64::from)).collect();
        let details: Vec<&str> = entries.iter().map(|e| e.detail.as_str()).collect();
        // WITH ORDINALITY … ORDER BY: the ids follow the batch's order.
        sqlx::query(
            "INSERT INTO audit (at, kind, device, supi, cause, detail) \
             SELECT at, kind, device, supi, cause, detail \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
             $6::text[]) WITH ORDINALITY AS u(at, kind, device, supi, cause, detail, n) \
             ORDER BY n",
        )
        .bind(ats)
        .bind(kinds)
        .bind(devices)
        .bind(supis)
        .bind(causes)
        .bind(details)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn touch_devices(&mut self, devices: &[DeviceSeen]) -> Result<(), SqlStoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        // One row per serial (the batch merged them): ON CONFLICT never
        // meets the same row twice. Serial order: the lock order.
        let mut sorted: Vec<&DeviceSeen> = devices.iter().collect();
        sorted.sort_unstable_by(|a, b| a.serial.cmp(&b.serial));
        let serials: Vec<&str> = sorted.iter().map(|d| d.serial.as_str()).collect();
        let states: Vec<&str> = sorted.iter().map(|d| d.state).collect();
        let firsts: Vec<i64> = sorted.iter().map(|d| d.first).collect();
        let lasts: Vec<i64> = sorted.iter().map(|d| d.last).collect();
        sqlx::query(
            "INSERT INTO devices (serial, state, first_seen, last_seen) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
             ON CONFLICT (serial) DO UPDATE SET state = excluded.state, \
             last_seen = excluded.last_seen",
        )
        .bind(serials)
        .bind(states)
        .bind(firsts)
        .bind(lasts)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

impl Conn for PgConnection {
    shared_ops!(
        "SELECT allocated, range_size FROM msin_counter WHERE id = 1 FOR UPDATE",
        settle_owners_sql!("= ANY($1)"),
        |d: &[&str]| Ok::<Vec<String>, SqlStoreError>(d.iter().map(|x| (*x).to_owned()).collect())
    );

    async fn lock_claims(&mut self, devices: &[&str]) -> Result<(), SqlStoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT 1 FROM claims WHERE device = ANY($1) ORDER BY device FOR UPDATE")
            .bind(devices)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn upsert_subscriptions(
        &mut self,
        rows: &[&SealedSub],
        now: i64,
    ) -> Result<(), SqlStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let supis: Vec<&str> = rows.iter().map(|r| r.supi.as_str()).collect();
        let devices: Vec<&str> = rows.iter().map(|r| r.device.as_str()).collect();
        let ks: Vec<&[u8]> = rows.iter().map(|r| r.k_enc.as_slice()).collect();
        let opcs: Vec<&[u8]> = rows.iter().map(|r| r.opc_enc.as_slice()).collect();
        let amfs: Vec<&[u8]> = rows.iter().map(|r| r.amf.as_slice()).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let inds: Vec<i64> = rows.iter().map(|r| r.ind).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state).collect();
        let owners: Vec<Option<&str>> = rows.iter().map(|r| r.owner.as_deref()).collect();
        let packages: Vec<&[u8]> = rows.iter().map(|r| r.package_id.as_slice()).collect();
        let ends: Vec<Option<i64>> = rows.iter().map(|r| r.not_after).collect();
        let keys: Vec<Option<i64>> = rows.iter().map(|r| r.suci_key_id).collect();
        let sql = format!(
            "{UPSERT_INTO} SELECT s, d, k, o, a, q, i, st, ow, p, $13, e, sk FROM UNNEST($1::text[], \
             $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::int8[], $7::int8[], \
             $8::text[], $9::text[], $10::bytea[], $11::int8[], $12::int8[]) \
             WITH ORDINALITY AS u(s, d, k, o, a, q, i, st, ow, p, e, sk, n) ORDER BY n \
             {UPSERT_SET}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(supis)
            .bind(devices)
            .bind(ks)
            .bind(opcs)
            .bind(amfs)
            .bind(seqs)
            .bind(inds)
            .bind(states)
            .bind(owners)
            .bind(packages)
            .bind(ends)
            .bind(keys)
            .bind(now)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn rows_of(
        &mut self,
        supis: &[&str],
        devices: &[&str],
    ) -> Result<Vec<(String, String, Vec<u8>)>, SqlStoreError> {
        Ok(sqlx::query_as(
            "SELECT supi, device, package_id FROM subscriptions \
             WHERE supi = ANY($1) OR device = ANY($2)",
        )
        .bind(supis)
        .bind(devices)
        .fetch_all(&mut *self)
        .await?)
    }

    async fn log_packages(
        &mut self,
        rows: &[(&SealedSub, bool)],
        now: i64,
    ) -> Result<(), SqlStoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let packages: Vec<&[u8]> = rows.iter().map(|(r, _)| r.package_id.as_slice()).collect();
        let devices: Vec<&str> = rows.iter().map(|(r, _)| r.device.as_str()).collect();
        let supis: Vec<&str> = rows.iter().map(|(r, _)| r.supi.as_str()).collect();
        let again: Vec<bool> = rows.iter().map(|(_, again)| *again).collect();
        sqlx::query(
            "INSERT INTO provisioning (package_id, device, supi, at, reprovisioned) \
             SELECT p, d, s, $4, r FROM UNNEST($1::bytea[], $2::text[], $3::text[], $5::bool[]) \
             WITH ORDINALITY AS u(p, d, s, r, n) ORDER BY n",
        )
        .bind(packages)
        .bind(devices)
        .bind(supis)
        .bind(now)
        .bind(again)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn set_sqn(
        &mut self,
        rows: &[(&str, i64, i64)],
        now: i64,
    ) -> Result<HashSet<String>, SqlStoreError> {
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let supis: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let inds: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let found: Vec<String> = sqlx::query_scalar(
            "UPDATE subscriptions AS s SET sqn_seq = u.seq, sqn_ind = u.ind, updated_at = $4 \
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS u(supi, seq, ind) \
             WHERE s.supi = u.supi RETURNING s.supi",
        )
        .bind(supis)
        .bind(seqs)
        .bind(inds)
        .bind(now)
        .fetch_all(&mut *self)
        .await?;
        Ok(found.into_iter().collect())
    }

    async fn set_state(
        &mut self,
        rows: &[(&str, &'static str, i64)],
    ) -> Result<HashSet<String>, SqlStoreError> {
        if rows.is_empty() {
            return Ok(HashSet::new());
        }
        let supis: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let ats: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let found: Vec<String> = sqlx::query_scalar(
            "UPDATE subscriptions AS s SET state = u.state, updated_at = u.at \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(supi, state, at) \
             WHERE s.supi = u.supi RETURNING s.supi",
        )
        .bind(supis)
        .bind(states)
        .bind(ats)
        .fetch_all(&mut *self)
        .await?;
        Ok(found.into_iter().collect())
    }
}

impl SqlStore {
    /// `sub` as stored: K and OPc sealed, numbers checked.
    pub(crate) fn sealed(&self, sub: &Subscription) -> Result<SealedSub, SqlStoreError> {
        let supi = sub.supi.to_string();
        Ok(SealedSub {
            k_enc: self.sealer.seal("k", &supi, sub.k.expose())?,
            opc_enc: self.sealer.seal("opc", &supi, sub.opc.expose())?,
            supi,
            device: sub.device.to_string(),
            amf: sub.amf.0,
            seq: to_i64(sub.sqn.seq, "SQN SEQ")?,
            ind: i64::from(sub.sqn.ind),
            state: state_text(sub.state),
            owner: sub.owner.clone(),
            package_id: sub.package_id,
            not_after: sub
                .not_after_unix
                .map(|t| to_i64(t, "package end"))
                .transpose()?,
            suci_key_id: sub.suci_key_id.map(i64::from),
        })
    }

    /// `writes` ready for [`SqlStore::try_apply`].
    pub(crate) fn prepare<'a>(&self, writes: &'a [Write]) -> Result<Vec<Op<'a>>, SqlStoreError> {
        writes
            .iter()
            .map(|w| {
                Ok(match w {
                    Write::Subscription {
                        sub,
                        at_unix,
                        audit,
                    } => Op::Subscription {
                        row: self.sealed(sub)?,
                        at: *at_unix,
                        audit,
                    },
                    Write::Sqn { supi, sqn } => Op::Sqn {
                        supi: supi.to_string(),
                        seq: to_i64(sqn.seq, "SQN SEQ")?,
                        ind: i64::from(sqn.ind),
                    },
                    Write::State {
                        supi,
                        state,
                        at_unix,
                        audit,
                    } => Op::State {
                        supi: supi.to_string(),
                        state: state_text(*state),
                        at: *at_unix,
                        audit,
                    },
                    Write::Counted { manufacturer } => Op::Counted(manufacturer),
                    Write::Audit { at_unix, events } => Op::Audit {
                        at: *at_unix,
                        events,
                    },
                    Write::Uplink(uplink) => Op::Uplink(uplink),
                })
            })
            .collect()
    }

    /// Applies `ops` in one write transaction (`BEGIN IMMEDIATE` on
    /// SQLite), committed once: `Ok` once the commit returned; a failure
    /// before the commit rolls it back and nothing is written. A commit
    /// whose answer was lost (the connection broke) may or may not have
    /// committed, as with any database client; the caller's retry of the
    /// same group then finds its rows (the writes are upserts and column
    /// updates). No ops, no transaction.
    pub(crate) fn try_apply(&self, ops: &[Op<'_>]) -> Result<(), SqlStoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let now = to_i64(now_unix(), "time")?;
        let group = self
            .applies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let whole_rows = ops
            .iter()
            .filter(|op| matches!(op, Op::Subscription { .. }))
            .count() as u64;
        let before = self
            .deliveries
            .fetch_add(whole_rows, std::sync::atomic::Ordering::Relaxed);
        let crash = self
            .crash
            .filter(|c| c.hits(group, before..before + whole_rows));
        let abort_if = |when: crate::sql::CrashWhen| {
            if let Some(point) = crash.filter(|c| c.when == when) {
                eprintln!("nido: crash point {point} (group {group}): aborting");
                std::process::abort();
            }
        };
        let pg = match self.writing()? {
            Writing::Sqlite(writer) => {
                return writer.transaction(
                    |tx| self.run(apply_ops(tx, ops, now, self.outbox_limit)),
                    || abort_if(crate::sql::CrashWhen::BeforeCommit),
                    || abort_if(crate::sql::CrashWhen::AfterCommit),
                );
            }
            Writing::Postgres(pg) => pg,
        };
        self.run(async {
            let mut conn = pg.begin().await?;
            // A failure here drops the connection: closed, its transaction
            // rolled back by the server; nothing of the group is committed.
            apply_ops(&mut *conn, ops, now, self.outbox_limit).await?;
            abort_if(crate::sql::CrashWhen::BeforeCommit);
            pg.commit(conn).await?;
            abort_if(crate::sql::CrashWhen::AfterCommit);
            Ok(())
        })
    }

    /// Takes up to `n` (at least one) MSINs of the range in one
    /// transaction: the numbers `old + 1 .. new + 1`, or `Exhausted`.
    pub(crate) fn try_lease_msins(&self, n: u64) -> Result<Range<u64>, SqlStoreError> {
        let n = to_i64(n.max(1), "lease size")?;
        let leased: Option<(i64, i64)> = match self.writing()? {
            Writing::Sqlite(writer) => {
                writer.transaction(|tx| self.run(tx.lease(n)), || {}, || {})?
            }
            Writing::Postgres(pg) => self.run(async {
                let mut conn = pg.begin().await?;
                let leased = conn.lease(n).await?;
                pg.commit(conn).await?;
                Ok(leased)
            })?,
        };
        let (old, new) = leased.ok_or(StoreError::Exhausted)?;
        Ok(to_u64(old, "MSIN")? + 1..to_u64(new, "MSIN")? + 1)
    }
}

/// Where a store's group commits and leases are written.
enum Writing<'a> {
    /// SQLite: the writing connection, on the caller's thread.
    Sqlite(&'a crate::direct::DirectWriter),
    /// PostgreSQL: a transaction on a kept connection.
    Postgres(&'a crate::direct::PgKept),
}

impl SqlStore {
    /// Where this store writes its groups: refused at once inside a runtime
    /// (before any lock is taken), as [`SqlStore::run`] would refuse it.
    fn writing(&self) -> Result<Writing<'_>, SqlStoreError> {
        match (&self.writer, &self.pool) {
            (Some(writer), _) => {
                if tokio::runtime::Handle::try_current().is_ok() {
                    return Err(SqlStoreError::InsideRuntime);
                }
                Ok(Writing::Sqlite(writer))
            }
            (None, crate::open::Pool::Postgres(_)) => match &self.reads {
                Some(crate::sql::Reads::Postgres(kept)) => Ok(Writing::Postgres(kept)),
                _ => Err(SqlStoreError::Database(
                    "a PostgreSQL store without its kept connections".into(),
                )),
            },
            // A SQLite store always has its writing connection
            // (`SqlStore::open`).
            (None, crate::open::Pool::Sqlite(_)) => Err(SqlStoreError::Database(
                "a SQLite store without its writing connection".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(device: &str, supi: &str, package: u8) -> SealedSub {
        SealedSub {
            supi: supi.into(),
            device: device.into(),
            k_enc: Vec::new(),
            opc_enc: Vec::new(),
            amf: [0x80, 0],
            seq: 0,
            ind: 0,
            state: "created",
            owner: None,
            package_id: [package; 16],
            not_after: None,
            suci_key_id: None,
        }
    }

    #[test]
    fn holders_follow_the_batch_in_order() {
        let mut h = Holders::default();
        for s in ["imsi-1", "imsi-2"] {
            h.device_of.insert(s.into(), None);
        }
        h.device_of.insert("imsi-9".into(), Some("A/9".into()));
        h.row_of
            .insert("A/9".into(), Some(("imsi-9".into(), [9; 16])));
        h.row_of.insert("A/1".into(), None);
        // A new device takes a free SUPI.
        assert_eq!(h.put(&row("A/1", "imsi-1", 1)).ok(), Some(None));
        assert_eq!(h.holder("imsi-1").as_deref(), Some("A/1"));
        // A SUPI another device holds is a conflict, and changes nothing.
        assert!(matches!(
            h.put(&row("A/1", "imsi-9", 2)),
            Err(SqlStoreError::Store(StoreError::Conflict(_)))
        ));
        assert_eq!(h.holder("imsi-1").as_deref(), Some("A/1"));
        // Moving frees the old SUPI, which another device may then take.
        let old = h.put(&row("A/9", "imsi-2", 3)).ok().flatten();
        assert_eq!(old, Some(("imsi-9".into(), [9; 16])));
        assert_eq!(h.holder("imsi-9"), None);
        assert!(h.put(&row("A/1", "imsi-9", 4)).is_ok());
        assert_eq!(h.holder("imsi-1"), None);
    }

    #[test]
    fn a_device_seen_twice_keeps_its_first_sighting_and_last_state() {
        let mut b = AuditBatch::default();
        b.seen("A/1".into(), "onboarding", 10)
            .unwrap_or_else(|e| panic!("{e}"));
        b.seen("A/2".into(), "refused", 11)
            .unwrap_or_else(|e| panic!("{e}"));
        b.seen("A/1".into(), "provisioned", 12)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.devices.len(), 2);
        let d = &b.devices[0];
        assert_eq!(
            (d.serial.as_str(), d.state, d.first, d.last),
            ("A/1", "provisioned", 10, 12)
        );
    }
}
