//! [`SqlStore`]: the [`Store`] on SQLite or PostgreSQL.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use nido_net::{DeviceId, Owner, Store, StoreError, Subscription, SubscriptionState, Write};
use nido_sec::aka::HeSqn;
use nido_sec::milenage::Amf;
use nido_sec::{K, Opc, Supi};
use tokio::runtime::{Builder, Handle, Runtime};

use crate::batch::{AuditConn, Op};
use crate::credentials;
use crate::direct::{DirectReads, DirectWriter, PgKept};
use crate::error::{SqlStoreError, StoreOpenError};
use crate::kek::{Kek, Sealer};
use crate::open::{self, Backend, Pool, Target};

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool, and
/// `$begin` to the statement that opens a write transaction (`BEGIN
/// IMMEDIATE` on SQLite, so two writers queue on the busy timeout instead of
/// failing on a lock upgrade). The body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $begin:ident| $body:block) => {
        match &$store.pool {
            $crate::open::Pool::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $begin: &'static str = "BEGIN IMMEDIATE";
                $body
            }
            $crate::open::Pool::Postgres($pool) => {
                #[allow(unused_variables)]
                let $begin: &'static str = "BEGIN";
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// The network's [`Store`] on SQLite or PostgreSQL (sqlx).
///
/// K and OPc (and every owner's third-party credentials) are stored sealed
/// with AES-256-GCM under the [`Kek`], never in clear. Every [`Store`]
/// method is one database transaction; [`Store::apply`] writes a whole
/// batch of [`Write`]s in one, committed once (group commit, issue #11).
///
/// # Threads
/// The [`Store`] trait is synchronous (the network is a sans-IO state
/// machine), so a `SqlStore` owns a tokio current-thread runtime and blocks
/// on it. Use it from a plain thread (the network driver's thread), never
/// from inside a tokio runtime: there every call fails with
/// [`SqlStoreError::InsideRuntime`] (and `open` with
/// [`StoreOpenError::InsideRuntime`]).
///
/// # Failures behind the trait
/// Every [`Store`] method but `record_event` and `record_events` reports
/// its failure:
/// - a database that cannot be reached or failed (connection lost or
///   refused, database dropped, I/O, pool or lock timeout) is
///   [`StoreError::Unavailable`], never "absent";
/// - a uniqueness violation is [`StoreError::Conflict`];
/// - a row that does not open under the KEK or does not decode, and a
///   statement the database refuses otherwise, are [`StoreError::Conflict`]
///   with a `stored data: …` / `database: …` message.
///
/// `record_event` and `record_events` are best effort and return nothing:
/// their failure is kept for [`SqlStore::take_error`].
pub struct SqlStore {
    // Field order is drop order: the pool goes before the runtime.
    pub(crate) pool: Pool,
    pub(crate) sealer: Sealer,
    last_error: Mutex<Option<SqlStoreError>>,
    /// Where the process dies in a group commit, for the durability tests.
    pub(crate) crash: Option<CrashPoint>,
    /// Group commits ([`nido_net::Store::apply`]) started so far.
    pub(crate) applies: std::sync::atomic::AtomicU64,
    /// Whole subscription rows (package deliveries) applied so far.
    pub(crate) deliveries: std::sync::atomic::AtomicU64,
    /// How many pending bursts an owner's outbox holds.
    pub(crate) outbox_limit: u64,
    /// The core's reads: on SQLite on the caller's thread
    /// ([`DirectReads`]), on PostgreSQL on connections kept between uses
    /// ([`PgKept`]), which also carry PostgreSQL's group commits and MSIN
    /// leases. `None` only while the store opens.
    pub(crate) reads: Option<Reads>,
    /// On SQLite, the connection of [`Store::apply`] (group commits and the
    /// single writes that go through it), on the caller's thread
    /// ([`DirectWriter`]).
    pub(crate) writer: Option<DirectWriter>,
    rt: Runtime,
}

/// Where the core's reads run: on SQLite on the caller's thread, on PostgreSQL on kept
/// connections (those of the group commits too).
#[derive(Debug)]
pub(crate) enum Reads {
    Sqlite(DirectReads),
    Postgres(PgKept),
}

/// A test hook (issue #11's durability tests): the process aborts, as if
/// killed, at a point of one group commit ([`nido_net::Store::apply`] with
/// writes) of this store handle. `nido network serve` sets it from
/// `NIDO_CRASH_POINT`: `before-commit:N` / `after-commit:N` name the n-th
/// group; `before-delivery:N` / `after-delivery:N` the group that holds the
/// n-th whole subscription row (a package delivery) this handle writes,
/// which, unlike a group's number, does not depend on how the committer
/// happened to batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPoint {
    /// Before the COMMIT (after every statement of the group ran: nothing
    /// of the group is durable) or after it (the group is durable; none of
    /// the replies that waited for it leave).
    pub when: CrashWhen,
    /// Which group.
    pub group: CrashGroup,
}

/// Where in its group commit a [`CrashPoint`] aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashWhen {
    /// After every statement of the group ran, before its COMMIT.
    BeforeCommit,
    /// After the COMMIT returned, before any reply that waited for it.
    AfterCommit,
}

/// Which group commit a [`CrashPoint`] hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashGroup {
    /// The n-th group commit (1-based).
    Nth(u64),
    /// The group holding the n-th whole subscription row (1-based).
    Delivery(u64),
}

impl CrashPoint {
    /// Whether a group is the one: `group` is its number, `deliveries` the
    /// whole subscription rows written before it and in it.
    pub(crate) fn hits(&self, group: u64, deliveries: core::ops::Range<u64>) -> bool {
        match self.group {
            CrashGroup::Nth(n) => group == n,
            CrashGroup::Delivery(n) => deliveries.start < n && n <= deliveries.end,
        }
    }
}

impl core::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let when = match self.when {
            CrashWhen::BeforeCommit => "before",
            CrashWhen::AfterCommit => "after",
        };
        match self.group {
            CrashGroup::Nth(n) => write!(f, "{when}-commit:{n}"),
            CrashGroup::Delivery(n) => write!(f, "{when}-delivery:{n}"),
        }
    }
}

impl core::str::FromStr for CrashPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "{s:?}: expected before-commit:N, after-commit:N, before-delivery:N or after-delivery:N"
            )
        };
        let (point, n) = s.split_once(':').ok_or_else(expected)?;
        let n: u64 = n.parse().map_err(|e| format!("{s:?}: the number: {e}"))?;
        if n == 0 {
            return Err(format!("{s:?}: the number counts from 1"));
        }
        let (when, group) = match point {
            "before-commit" => (CrashWhen::BeforeCommit, CrashGroup::Nth(n)),
            "after-commit" => (CrashWhen::AfterCommit, CrashGroup::Nth(n)),
            "before-delivery" => (CrashWhen::BeforeCommit, CrashGroup::Delivery(n)),
            "after-delivery" => (CrashWhen::AfterCommit, CrashGroup::Delivery(n)),
            _ => return Err(expected()),
        };
        Ok(Self { when, group })
    }
}

impl core::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        if Handle::try_current().is_err() {
            let close = async {
                if let Some(Reads::Postgres(reads)) = &self.reads {
                    reads.close().await;
                }
                match &self.pool {
                    Pool::Sqlite(p) => p.close().await,
                    Pool::Postgres(p) => p.close().await,
                }
            };
            self.rt.block_on(close);
        }
    }
}

/// Unix seconds now (the store's own clock, for `at` columns the trait does not give).
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, SqlStoreError> {
    i64::try_from(value).map_err(|_| SqlStoreError::Invalid(format!("{what} {value}")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, SqlStoreError> {
    u64::try_from(value).map_err(|_| SqlStoreError::Corrupt(format!("{what} {value}")))
}

pub(crate) fn state_text(state: SubscriptionState) -> &'static str {
    match state {
        SubscriptionState::Created => "created",
        SubscriptionState::Provisioned => "provisioned",
        SubscriptionState::Active => "active",
        SubscriptionState::Released => "released",
    }
}

/// A stored device key (`MANUFACTURER/SERIAL`).
pub(crate) fn device_id(text: &str) -> Result<DeviceId, SqlStoreError> {
    text.parse()
        .map_err(|e| SqlStoreError::Corrupt(format!("device identity {text:?}: {e}")))
}

fn state_of(text: &str) -> Result<SubscriptionState, SqlStoreError> {
    match text {
        "created" => Ok(SubscriptionState::Created),
        "provisioned" => Ok(SubscriptionState::Provisioned),
        "active" => Ok(SubscriptionState::Active),
        "released" => Ok(SubscriptionState::Released),
        other => Err(SqlStoreError::Corrupt(format!(
            "unknown subscription state {other:?}"
        ))),
    }
}

/// The statement that reads [`SubRow`]s, followed by `$rest` (a WHERE or
/// ORDER BY clause): the one place that lists their columns.
macro_rules! select_sub_rows {
    ($rest:literal) => {
        concat!(
            "SELECT supi, device, k_enc, opc_enc, amf, sqn_seq, sqn_ind, state, owner, \
             package_id, not_after, suci_key_id FROM subscriptions ",
            $rest
        )
    };
}

/// A `subscriptions` row: supi, device, k_enc, opc_enc, amf, sqn_seq,
/// sqn_ind, state, owner, package_id, not_after, suci_key_id.
type SubRow = (
    String,
    String,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    i64,
    i64,
    String,
    Option<String>,
    Vec<u8>,
    Option<i64>,
    Option<i64>,
);

/// An `owners` row: id, name, sealed credentials.
type OwnerRow = (String, String, Vec<u8>);

/// [`OWNER_AND_SUBSCRIPTION`]'s one row: a [`SubRow`] whose columns are all
/// NULL when the device has no subscription, then an [`OwnerRow`] likewise.
type OwnerAndSubRow = (
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// A device's subscription and the first owner that claimed it
/// ([`nido_net::Store::owner_and_subscription`]) in one statement of
/// exactly one row, on both backends: the columns of `select_sub_rows!`,
/// then those of the owner query of `try_owner_of_device`.
const OWNER_AND_SUBSCRIPTION: &str = "SELECT s.supi, s.device, s.k_enc, s.opc_enc, s.amf, \
     s.sqn_seq, s.sqn_ind, s.state, s.owner, s.package_id, s.not_after, s.suci_key_id, \
     o.id, o.name, o.credentials_enc \
     FROM (SELECT CAST($1 AS TEXT) AS device) d \
     LEFT JOIN subscriptions s ON s.device = d.device \
     LEFT JOIN owners o ON o.id = (SELECT o1.id FROM claims c JOIN owners o1 ON o1.id = c.owner \
     WHERE c.device = d.device AND c.owner IS NOT NULL ORDER BY c.claim_seq ASC LIMIT 1)";

/// The subscription and owner rows of an [`OwnerAndSubRow`]; a row present
/// in part (a NOT NULL column NULL) is corrupt.
fn split_owner_and_sub(
    row: OwnerAndSubRow,
) -> Result<(Option<OwnerRow>, Option<SubRow>), SqlStoreError> {
    let (
        supi,
        device,
        k,
        opc,
        amf,
        seq,
        ind,
        state,
        owner,
        package,
        not_after,
        key_id,
        o_id,
        o_name,
        o_creds,
    ) = row;
    let sub = match supi {
        None => None,
        Some(supi) => {
            let missing = |what: &str| SqlStoreError::Corrupt(format!("{what} of {supi} is NULL"));
            Some((
                supi.clone(),
                device.ok_or_else(|| missing("device"))?,
                k.ok_or_else(|| missing("k_enc"))?,
                opc.ok_or_else(|| missing("opc_enc"))?,
                amf.ok_or_else(|| missing("amf"))?,
                seq.ok_or_else(|| missing("sqn_seq"))?,
                ind.ok_or_else(|| missing("sqn_ind"))?,
                state.ok_or_else(|| missing("state"))?,
                owner,
                package.ok_or_else(|| missing("package_id"))?,
                not_after,
                key_id,
            ))
        }
    };
    let owner = match o_id {
        None => None,
        Some(id) => {
            let missing =
                |what: &str| SqlStoreError::Corrupt(format!("{what} of owner {id} is NULL"));
            Some((
                id.clone(),
                o_name.ok_or_else(|| missing("name"))?,
                o_creds.ok_or_else(|| missing("credentials"))?,
            ))
        }
    };
    Ok((owner, sub))
}

impl SqlStore {
    /// Opens (and on first start creates) the store at `url`:
    /// - `sqlite:///path/nido.db` or a plain path: the file is created (mode
    ///   0600) and migrated on first start; WAL journal, synchronous FULL,
    ///   foreign keys on, a 10 s busy timeout;
    /// - `postgres://user[:password]@host[:port]/db`: migrated on start
    ///   under an advisory lock, so two processes may start at once.
    ///
    /// The KEK is checked against the check value stored at first start: a
    /// wrong KEK fails here. The IMSI range starts empty: see
    /// [`SqlStore::set_msin_range`].
    pub fn open(url: &str, kek: Kek) -> Result<Self, StoreOpenError> {
        if Handle::try_current().is_ok() {
            return Err(StoreOpenError::InsideRuntime);
        }
        let target = Target::parse(url)?;
        let sealer = Sealer::new(&kek).map_err(|e| StoreOpenError::Other(e.to_string()))?;
        drop(kek);
        let rt = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreOpenError::Other(format!("tokio runtime: {e}")))?;
        let pool = rt.block_on(open::connect(&target))?;
        let mut store = Self {
            pool,
            sealer,
            last_error: Mutex::new(None),
            crash: None,
            applies: std::sync::atomic::AtomicU64::new(0),
            deliveries: std::sync::atomic::AtomicU64::new(0),
            outbox_limit: crate::outbox::OUTBOX_LIMIT,
            reads: None,
            writer: None,
            rt,
        };
        store.rt.block_on(open::migrate(&store.pool))?;
        store
            .rt
            .block_on(open::check_kek(&store.pool, &store.sealer))?;
        store
            .rekey_claims()
            .map_err(|e| StoreOpenError::Other(format!("re-keying claim code hashes: {e}")))?;
        match &target {
            Target::Sqlite(path) => {
                let reads = DirectReads::open(path).map_err(|e| StoreOpenError::Unreachable {
                    target: target.describe(),
                    reason: e.to_string(),
                })?;
                store.reads = Some(Reads::Sqlite(reads));
                store.writer = Some(DirectWriter::new(path));
            }
            Target::Postgres(options) => {
                store.reads = Some(Reads::Postgres(PgKept::new(options.clone())));
            }
        }
        Ok(store)
    }

    /// Makes this handle abort the process at `point` (a test hook:
    /// [`CrashPoint`]).
    pub fn set_crash_point(&mut self, point: CrashPoint) {
        self.crash = Some(point);
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The last failure of [`Store::record_event`] (the only [`Store`]
    /// method that cannot report one), cleared by this call.
    pub fn take_error(&self) -> Option<SqlStoreError> {
        self.errors().take()
    }

    fn errors(&self) -> MutexGuard<'_, Option<SqlStoreError>> {
        match self.last_error.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Keeps `e` for [`SqlStore::take_error`].
    fn remember(&self, e: SqlStoreError) {
        *self.errors() = Some(e);
    }

    /// `Ok` value, or `None` with the failure kept (for `record_event` only).
    fn kept<T>(&self, r: Result<T, SqlStoreError>) -> Option<T> {
        r.map_err(|e| self.remember(e)).ok()
    }

    /// Runs a future on the store's runtime.
    pub(crate) fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, SqlStoreError>>,
    ) -> Result<T, SqlStoreError> {
        if Handle::try_current().is_ok() {
            return Err(SqlStoreError::InsideRuntime);
        }
        self.rt.block_on(fut)
    }

    /// Claim code hashes stored before schema 4 are plain SHA-256: keeps
    /// them under the claim key instead ([`crate::kek`]), once, at open.
    fn rekey_claims(&self) -> Result<(), SqlStoreError> {
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                let plain: Vec<String> =
                    sqlx::query_scalar("SELECT claim_code_hash FROM claims WHERE keyed = FALSE")
                        .fetch_all(&mut *tx)
                        .await?;
                for hash in plain {
                    sqlx::query(
                        "UPDATE claims SET claim_code_hash = $1, keyed = TRUE \
                         WHERE claim_code_hash = $2 AND keyed = FALSE",
                    )
                    .bind(self.sealer.claim_mac(&hash))
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn subscription_of(&self, row: SubRow) -> Result<Subscription, SqlStoreError> {
        let (
            supi_text,
            device,
            k_enc,
            opc_enc,
            amf,
            seq,
            ind,
            state,
            owner,
            package_id,
            not_after,
            suci_key_id,
        ) = row;
        let supi = Supi::parse(&supi_text)
            .map_err(|e| SqlStoreError::Corrupt(format!("SUPI {supi_text:?}: {e}")))?;
        let k = K::from_slice(&self.sealer.open("k", &supi_text, &k_enc)?)
            .map_err(|e| SqlStoreError::Corrupt(format!("K of {supi_text}: {e}")))?;
        let opc = Opc::from_slice(&self.sealer.open("opc", &supi_text, &opc_enc)?)
            .map_err(|e| SqlStoreError::Corrupt(format!("OPc of {supi_text}: {e}")))?;
        let amf: [u8; 2] = amf
            .as_slice()
            .try_into()
            .map_err(|_| SqlStoreError::Corrupt(format!("AMF of {supi_text}")))?;
        let package_id: [u8; 16] = package_id
            .as_slice()
            .try_into()
            .map_err(|_| SqlStoreError::Corrupt(format!("package id of {supi_text}")))?;
        let sqn = HeSqn {
            seq: to_u64(seq, "SQN SEQ")?,
            ind: u8::try_from(ind).map_err(|_| SqlStoreError::Corrupt(format!("SQN IND {ind}")))?,
        };
        let device = device_id(&device)?;
        Ok(Subscription {
            supi,
            k,
            opc,
            amf: Amf(amf),
            sqn,
            state: state_of(&state)?,
            device,
            owner,
            package_id,
            not_after_unix: not_after.map(|t| to_u64(t, "package end")).transpose()?,
            suci_key_id: suci_key_id
                .map(|id| {
                    u8::try_from(id)
                        .map_err(|_| SqlStoreError::Corrupt(format!("SUCI key id {id}")))
                })
                .transpose()?,
        })
    }

    fn owner_of(&self, row: OwnerRow) -> Result<Owner, SqlStoreError> {
        let (id, name, sealed) = row;
        let plain = self.sealer.open("owner-credentials", &id, &sealed)?;
        let credentials = credentials::decode(&plain)
            .map_err(|e| SqlStoreError::Corrupt(format!("credentials of owner {id}: {e}")))?;
        Ok(Owner {
            id,
            name,
            credentials,
        })
    }

    pub(crate) fn try_subscription_where(
        &self,
        by_supi: bool,
        key: &str,
    ) -> Result<Option<Subscription>, SqlStoreError> {
        let sql = if by_supi {
            select_sub_rows!("WHERE supi = $1")
        } else {
            select_sub_rows!("WHERE device = $1")
        };
        let row: Option<SubRow> = match &self.reads {
            Some(Reads::Postgres(reads)) => self.run(reads.optional(sql, key))?,
            Some(Reads::Sqlite(direct)) => direct.optional(sql, key, |r| SubRow::try_from(r))?,
            None => self.run(async {
                on_pool!(self, |p, _begin| {
                    Ok(sqlx::query_as(sql).bind(key).fetch_optional(p).await?)
                })
            })?,
        };
        row.map(|r| self.subscription_of(r)).transpose()
    }

    fn try_subscriptions(&self) -> Result<Vec<Subscription>, SqlStoreError> {
        let rows: Vec<SubRow> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(select_sub_rows!("ORDER BY device"))
                    .fetch_all(p)
                    .await?)
            })
        })?;
        // A row that does not open fails the listing: a partial list would
        // pass for the whole.
        rows.into_iter().map(|r| self.subscription_of(r)).collect()
    }

    fn try_allocate_msin(&self) -> Result<u64, SqlStoreError> {
        let n: Option<i64> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_scalar(
                    "UPDATE msin_counter SET allocated = allocated + 1 \
                     WHERE id = 1 AND allocated < range_size RETURNING allocated",
                )
                .fetch_optional(p)
                .await?)
            })
        })?;
        match n {
            Some(n) => to_u64(n, "MSIN"),
            None => Err(StoreError::Exhausted.into()),
        }
    }

    /// MSINs allocated for `manufacturer`'s devices (0 if none).
    fn try_allocated_for(&self, manufacturer: &str) -> Result<u64, SqlStoreError> {
        let n: Option<i64> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_scalar(
                    "SELECT allocated FROM manufacturer_allocations WHERE manufacturer = $1",
                )
                .bind(manufacturer)
                .fetch_optional(p)
                .await?)
            })
        })?;
        to_u64(n.unwrap_or(0), "allocated")
    }

    /// An MSIN for a device of `manufacturer` within its quota `max`: the
    /// manufacturer's count and the range's counter advance in one
    /// transaction, or neither does.
    fn try_allocate_msin_for(&self, manufacturer: &str, max: u64) -> Result<u64, SqlStoreError> {
        let max_i = to_i64(max, "quota")?;
        let n: Result<i64, StoreError> = self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                sqlx::query(
                    "INSERT INTO manufacturer_allocations (manufacturer, allocated) \
                     VALUES ($1, 0) ON CONFLICT (manufacturer) DO NOTHING",
                )
                .bind(manufacturer)
                .execute(&mut *tx)
                .await?;
                let counted = sqlx::query(
                    "UPDATE manufacturer_allocations SET allocated = allocated + 1 \
                     WHERE manufacturer = $1 AND allocated < $2",
                )
                .bind(manufacturer)
                .bind(max_i)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if counted == 0 {
                    tx.rollback().await?;
                    return Ok(Err(StoreError::QuotaReached {
                        manufacturer: manufacturer.to_owned(),
                        max,
                    }));
                }
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE msin_counter SET allocated = allocated + 1 \
                     WHERE id = 1 AND allocated < range_size RETURNING allocated",
                )
                .fetch_optional(&mut *tx)
                .await?;
                let Some(n) = n else {
                    tx.rollback().await?;
                    return Ok(Err(StoreError::Exhausted));
                };
                tx.commit().await?;
                Ok(Ok(n))
            })
        })?;
        to_u64(n?, "MSIN")
    }

    fn try_put_owner(&self, owner: &Owner) -> Result<(), SqlStoreError> {
        let plain = credentials::encode(&owner.credentials).map_err(SqlStoreError::Invalid)?;
        let sealed = self.sealer.seal("owner-credentials", &owner.id, &plain)?;
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "INSERT INTO owners (id, name, credentials_enc) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                     credentials_enc = excluded.credentials_enc",
                )
                .bind(&owner.id)
                .bind(&owner.name)
                .bind(&sealed)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// The owner with `id`, credentials decrypted.
    pub fn owner(&self, id: &str) -> Result<Option<Owner>, SqlStoreError> {
        let row: Option<OwnerRow> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(
                    sqlx::query_as("SELECT id, name, credentials_enc FROM owners WHERE id = $1")
                        .bind(id)
                        .fetch_optional(p)
                        .await?,
                )
            })
        })?;
        row.map(|r| self.owner_of(r)).transpose()
    }

    fn try_owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, SqlStoreError> {
        // The first claim stands (a database written before schema 4 may
        // hold later ones: they never took the device).
        const SQL: &str = "SELECT o.id, o.name, o.credentials_enc FROM claims c \
                           JOIN owners o ON o.id = c.owner \
                           WHERE c.device = $1 AND c.owner IS NOT NULL \
                           ORDER BY c.claim_seq ASC LIMIT 1";
        let device = device.to_string();
        let row: Option<OwnerRow> = match &self.reads {
            Some(Reads::Postgres(reads)) => self.run(reads.optional(SQL, &device))?,
            Some(Reads::Sqlite(direct)) => {
                direct.optional(SQL, &device, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            }
            None => self.run(async {
                on_pool!(self, |p, _begin| {
                    Ok(sqlx::query_as(SQL).bind(&device).fetch_optional(p).await?)
                })
            })?,
        };
        row.map(|r| self.owner_of(r)).transpose()
    }

    fn try_owner_and_subscription(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<Owner>, Option<Subscription>), SqlStoreError> {
        let device = device.to_string();
        let row: Option<OwnerAndSubRow> = match &self.reads {
            Some(Reads::Postgres(reads)) => {
                self.run(reads.optional(OWNER_AND_SUBSCRIPTION, &device))?
            }
            Some(Reads::Sqlite(direct)) => {
                direct.optional(OWNER_AND_SUBSCRIPTION, &device, |r| {
                    OwnerAndSubRow::try_from(r)
                })?
            }
            None => self.run(async {
                on_pool!(self, |p, _begin| {
                    Ok(sqlx::query_as(OWNER_AND_SUBSCRIPTION)
                        .bind(&device)
                        .fetch_optional(p)
                        .await?)
                })
            })?,
        };
        let Some(row) = row else {
            return Err(SqlStoreError::Database(
                "the owner and subscription query returned no row".into(),
            ));
        };
        let (owner, sub) = split_owner_and_sub(row)?;
        Ok((
            owner.map(|r| self.owner_of(r)).transpose()?,
            sub.map(|r| self.subscription_of(r)).transpose()?,
        ))
    }

    fn try_add_claimable(&self, device: &DeviceId, hash: &str) -> Result<(), SqlStoreError> {
        let id = device.to_string();
        let mac = self.sealer.claim_mac(hash);
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                // A device an owner claimed stays claimed: an import cannot
                // give it a new code for someone else to claim it with.
                let first: Option<String> = sqlx::query_scalar(
                    "SELECT owner FROM claims WHERE device = $1 AND owner IS NOT NULL \
                     ORDER BY claim_seq ASC LIMIT 1",
                )
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(owner) = first {
                    return Err(nido_net::store::already_claimed(device, &owner).into());
                }
                // A code revoked by a transfer stays revoked: the old
                // owner, who knows it from the box, never claims with it.
                let revoked: Option<String> = sqlx::query_scalar(
                    "SELECT device FROM revoked_claims WHERE claim_code_hash = $1",
                )
                .bind(&mac)
                .fetch_optional(&mut *tx)
                .await?;
                if revoked.is_some() {
                    tx.commit().await?;
                    return Ok(());
                }
                // A used code stays used, and a code stays with its device:
                // re-importing the same row changes nothing, the same code for
                // another device is refused.
                sqlx::query(
                    "INSERT INTO claims (claim_code_hash, device, keyed) VALUES ($1, $2, TRUE) \
                     ON CONFLICT (claim_code_hash) DO NOTHING",
                )
                .bind(&mac)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                let holder: Option<String> =
                    sqlx::query_scalar("SELECT device FROM claims WHERE claim_code_hash = $1")
                        .bind(&mac)
                        .fetch_optional(&mut *tx)
                        .await?;
                if holder.as_deref() != Some(id.as_str()) {
                    return Err(StoreError::Conflict(format!(
                        "this claim code is registered for another device, not {id}"
                    ))
                    .into());
                }
                tx.commit().await?;
                Ok(())
            })
        })
    }

    fn try_claim(&self, owner: &str, hash: &str) -> Result<DeviceId, SqlStoreError> {
        let now = to_i64(now_unix(), "time")?;
        let mac = self.sealer.claim_mac(hash);
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                if !(*tx).owner_exists(owner).await? {
                    return Err(StoreError::NotFound(format!("owner {owner}")).into());
                }
                // The first claim of a device stands: an unused second code
                // of a claimed device (an older import) does not move it.
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT c.device FROM claims c \
                     JOIN claims mine ON mine.device = c.device \
                     WHERE mine.claim_code_hash = $1 AND mine.owner IS NULL \
                     AND c.owner IS NOT NULL LIMIT 1",
                )
                .bind(&mac)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(device) = taken {
                    return Err(StoreError::Conflict(format!(
                        "device {device} is already claimed; the first claim stands"
                    ))
                    .into());
                }
                // `owner IS NULL` in the WHERE makes the code one-time even
                // for two concurrent claims (the second sees it taken).
                let device: Option<String> = sqlx::query_scalar(
                    "UPDATE claims SET owner = $1, claimed_at = $2, \
                     claim_seq = (SELECT COALESCE(MAX(claim_seq), 0) + 1 FROM claims) \
                     WHERE claim_code_hash = $3 AND owner IS NULL RETURNING device",
                )
                .bind(owner)
                .bind(now)
                .bind(&mac)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(device) = device else {
                    return Err(
                        StoreError::NotFound("no unused claim code with this hash".into()).into(),
                    );
                };
                // A device that already holds a subscription without this
                // owner (onboarded unclaimed, or released for a transfer)
                // gets the owner's credentials in a new package: its
                // package ends now and it renews at its next registration.
                let renews = sqlx::query(
                    "UPDATE subscriptions SET not_after = $2, updated_at = $3 \
                     WHERE device = $1 AND (owner IS NULL OR owner <> $4) \
                     AND (not_after IS NULL OR not_after > $2)",
                )
                .bind(&device)
                .bind(crate::extras::ended_at(now))
                .bind(now)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if renews {
                    sqlx::query(crate::extras::BUMP_TRUST_GENERATION)
                        .execute(&mut *tx)
                        .await?;
                }
                let detail = if renews {
                    format!("by owner {owner}; its package ends: the owner's credentials at its next registration")
                } else {
                    format!("by owner {owner}")
                };
                let mut entry = crate::AuditEntry::new(now_unix(), "claimed", detail);
                entry.device = Some(device.clone());
                (*tx).append_audit(core::slice::from_ref(&entry)).await?;
                let device = device_id(&device)?;
                tx.commit().await?;
                Ok(device)
            })
        })
    }
}

impl Store for SqlStore {
    fn subscription_by_device(
        &self,
        device: &DeviceId,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(self.try_subscription_where(false, &device.to_string())?)
    }

    fn subscription_by_supi(&self, supi: &Supi) -> Result<Option<Subscription>, StoreError> {
        Ok(self.try_subscription_where(true, &supi.to_string())?)
    }

    fn put_subscription(&mut self, sub: Subscription) -> Result<(), StoreError> {
        // A batch of one (crate::batch): the conflict check, the upsert and
        // the provisioning log in one transaction.
        let ops = [Op::Subscription {
            row: self.sealed(&sub)?,
            at: now_unix(),
            audit: &[],
        }];
        Ok(self.try_apply(&ops)?)
    }

    fn put_subscription_audited(
        &mut self,
        sub: Subscription,
        at_unix: u64,
        audit: &[nido_net::NetworkEvent],
    ) -> Result<(), StoreError> {
        let ops = [Op::Subscription {
            row: self.sealed(&sub)?,
            at: at_unix,
            audit,
        }];
        Ok(self.try_apply(&ops)?)
    }

    /// All of `writes` in one transaction, committed once
    /// ([`crate::batch`] says in which order the statements go).
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let ops = self.prepare(writes)?;
        Ok(self.try_apply(&ops)?)
    }

    /// One transaction: reads the counter (locked) and moves it by up to
    /// `n`, never past the range.
    fn lease_msins(&mut self, n: u64) -> Result<core::ops::Range<u64>, StoreError> {
        Ok(self.try_lease_msins(n)?)
    }

    fn enqueue_uplink(&mut self, uplink: &nido_net::Uplink) -> Result<(), StoreError> {
        Ok(self.try_apply(&[Op::Uplink(uplink)])?)
    }

    fn count_allocation(&mut self, manufacturer: &str) -> Result<(), StoreError> {
        Ok(self.try_apply(&[Op::Counted(manufacturer)])?)
    }

    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        Ok(self.try_subscriptions()?)
    }

    fn allocate_msin(&mut self) -> Result<u64, StoreError> {
        Ok(self.try_allocate_msin()?)
    }

    fn allocate_msin_for(&mut self, manufacturer: &str, max: u64) -> Result<u64, StoreError> {
        Ok(self.try_allocate_msin_for(manufacturer, max)?)
    }

    fn allocated_for(&self, manufacturer: &str) -> Result<u64, StoreError> {
        Ok(self.try_allocated_for(manufacturer)?)
    }

    fn put_owner(&mut self, owner: Owner) -> Result<(), StoreError> {
        Ok(self.try_put_owner(&owner)?)
    }

    fn owner_of_device(&self, device: &DeviceId) -> Result<Option<Owner>, StoreError> {
        Ok(self.try_owner_of_device(device)?)
    }

    fn owner_and_subscription(
        &self,
        device: &DeviceId,
    ) -> Result<(Option<Owner>, Option<Subscription>), StoreError> {
        Ok(self.try_owner_and_subscription(device)?)
    }

    fn add_claimable(
        &mut self,
        device: &DeviceId,
        claim_code_hash: &str,
    ) -> Result<(), StoreError> {
        Ok(self.try_add_claimable(device, claim_code_hash)?)
    }

    fn claim(&mut self, owner: &str, claim_code_hash: &str) -> Result<DeviceId, StoreError> {
        Ok(self.try_claim(owner, claim_code_hash)?)
    }

    fn record_event(&mut self, at_unix: u64, event: &nido_net::NetworkEvent) {
        // The entry and the devices table, as for a batch of one.
        self.record_events(at_unix, core::slice::from_ref(event));
    }

    fn record_events(&mut self, at_unix: u64, events: &[nido_net::NetworkEvent]) {
        let r = self.append_audit_batch(at_unix, events);
        self.kept(r);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{CrashGroup, CrashPoint, CrashWhen};

    #[test]
    fn a_crash_point_names_a_group_by_number_or_by_delivery() {
        for text in [
            "before-commit:3",
            "after-commit:3",
            "before-delivery:10",
            "after-delivery:10",
        ] {
            let point: CrashPoint = text.parse().unwrap();
            assert_eq!(point.to_string(), text);
        }
        let nth: CrashPoint = "after-commit:3".parse().unwrap();
        assert_eq!(nth.when, CrashWhen::AfterCommit);
        assert!(nth.hits(3, 0..0) && !nth.hits(2, 0..40));
        // The group holding the 10th whole row: rows 9..12 are the 10th to
        // the 12th; 0..9 end just before it; 10..30 start just after.
        let delivery: CrashPoint = "before-delivery:10".parse().unwrap();
        assert_eq!(delivery.group, CrashGroup::Delivery(10));
        assert!(delivery.hits(7, 9..12) && delivery.hits(1, 0..30));
        assert!(!delivery.hits(7, 0..9) && !delivery.hits(7, 10..30));
        for bad in [
            "before-commit",
            "during-commit:1",
            "after-delivery:x",
            "before-delivery:0",
        ] {
            assert!(bad.parse::<CrashPoint>().is_err(), "{bad}");
        }
    }
}
