//! The protocol core's reads on SQLite, on the caller's own thread, and
//! the writing connection of its group commits ([`DirectWriter`], also on
//! the caller's thread: the committer's), issue #11.
//!
//! sqlx runs each SQLite connection on a worker thread of its own: every
//! statement is a command sent to it and an answer sent back, two thread
//! wake-ups and a runtime turn on the caller's side. For the few reads the
//! network's state machines make per datagram (a subscription by device or
//! SUPI, a device's owner: [`nido_net::Store`]), that hand-off cost more
//! than the read (a quarter of the machine in a profile of `nido demo` on
//! SQLite). [`DirectReads`] answers them with SQLite's own library, linked
//! once for both, on read-only connections of the same file.
//!
//! # Invariants
//! - **Committed state only, at once.** Each read is one statement in its
//!   own implicit transaction on a connection in WAL mode: it sees every
//!   transaction committed before it began, by this process or another
//!   (an operator's `nido network release`), exactly as the sqlx
//!   connection would, and never waits for a writer.
//! - **Read-only reads.** [`DirectReads`]' connections are opened
//!   read-only (`SQLITE_OPEN_READ_ONLY`): nothing written through them can
//!   bypass the store's transactions, its sealing or its group commit.
//!   [`DirectWriter`] writes only what `batch.rs` hands it (sealed rows, in
//!   one transaction per group).
//! - **One connection per concurrent reader.** A read takes an idle
//!   connection (or opens one) and gives it back (a connection whose read
//!   failed is closed instead), so threads reading through one store at
//!   once never wait for each other; statements are prepared once per
//!   connection. (The network reads through a `Stage`, which takes one
//!   read at a time: there the pool holds one connection.)
//!
//! On PostgreSQL the same reads, and the group commits and MSIN leases,
//! go through [`PgKept`]: connections of their own, kept between uses.
//! sqlx's pool checks a connection with a round trip when it lends it and
//! another when it takes it back, so each read through the pool cost three
//! round trips to the server, each a wake-up of its backend; kept
//! connections make it one (and a group commit two fewer). A group's
//! connection is given back only after its `COMMIT` answered; one whose
//! transaction failed is closed (the server rolls it back). The invariants
//! above hold for the reads too: each read is one statement in its own
//! implicit transaction (committed state only, at once), and a connection
//! whose read failed is closed, not lent again. The writes on these
//! connections are only `batch.rs`'s, in one transaction per group or
//! lease. A connection is kept at most [`PG_MAX_AGE`], as sqlx's pool
//! keeps one, then replaced.
//! A connection that broke while idle (the server restarted, a proxy timed
//! it out) is found by the read itself, which then runs once more on a
//! fresh connection: a read changes nothing, so running it again is safe.
//! Each attempt of a read or a `BEGIN` waits at most the pool's acquire
//! timeout for its answer (a connection whose peer vanished silently is
//! then treated as broken). The statements of a group and its `COMMIT`
//! have no timeout of their own, as in the pool before.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgRow};
use sqlx::{ConnectOptions, Connection as _, PgConnection};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::error::SqlStoreError;
use crate::open::SQLITE_BUSY_TIMEOUT;

/// Idle connections kept at most (more readers at once open more, and
/// close them when done).
const IDLE_MAX: usize = 16;

/// Read-only connections to one SQLite file.
pub(crate) struct DirectReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl core::fmt::Debug for DirectReads {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DirectReads")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A connection to the store's SQLite file at `path`, opened `mode`
/// (read-only or read-write; never created here: the store did), with the
/// store's busy timeout.
fn open(path: &Path, mode: OpenFlags) -> Result<Connection, SqlStoreError> {
    let conn = Connection::open_with_flags(
        path,
        mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    Ok(conn)
}

impl From<rusqlite::Error> for SqlStoreError {
    /// As for sqlx's SQLite errors: a uniqueness violation is
    /// [`nido_net::StoreError::Conflict`], a foreign key
    /// [`nido_net::StoreError::NotFound`], a busy, locked or failing file
    /// [`nido_net::StoreError::Unavailable`]; a value of the wrong type is
    /// a [`SqlStoreError::Corrupt`]; anything else [`SqlStoreError::Database`].
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match &e {
            // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY.
            E::SqliteFailure(f, _) if matches!(f.extended_code, 2067 | 1555) => {
                Self::Store(nido_net::StoreError::Conflict(e.to_string()))
            }
            // SQLITE_CONSTRAINT_FOREIGNKEY.
            E::SqliteFailure(f, _) if f.extended_code == 787 => {
                Self::Store(nido_net::StoreError::NotFound(e.to_string()))
            }
            E::SqliteFailure(f, _)
                if crate::error::SQLITE_UNAVAILABLE.contains(&(f.extended_code & 0xff)) =>
            {
                Self::Store(nido_net::StoreError::Unavailable(e.to_string()))
            }
            E::InvalidColumnType(..)
            | E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..) => Self::Corrupt(e.to_string()),
            _ => Self::Database(e.to_string()),
        }
    }
}

impl DirectReads {
    /// Reads of the SQLite file at `path` (opened by the store already, so
    /// it exists and is in WAL mode). Opens one connection now, so a file
    /// that cannot be read fails at open, not at the first datagram.
    pub(crate) fn open(path: &Path) -> Result<Self, SqlStoreError> {
        let reads = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let first = reads.connect()?;
        lock(&reads.idle).push(first);
        Ok(reads)
    }

    fn connect(&self) -> Result<Connection, SqlStoreError> {
        open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    /// Runs `read` on an idle connection (a new one if none is idle) and
    /// gives the connection back.
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, SqlStoreError>,
    ) -> Result<T, SqlStoreError> {
        let conn = match lock(&self.idle).pop() {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = read(&conn);
        // A connection that failed (busy, I/O, a file gone bad) is closed,
        // not lent again: the next read opens a fresh one.
        if out.is_ok() {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_MAX {
                idle.push(conn);
            }
        }
        out
    }

    /// The first row `sql` returns for `key` (its one parameter), mapped by
    /// `map`, if any.
    pub(crate) fn optional<T>(
        &self,
        sql: &str,
        key: &str,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, SqlStoreError> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            Ok(statement.query_row([key], map).optional()?)
        })
    }
}

/// The protocol core's reads and the group commits on PostgreSQL, on
/// connections kept between uses (see the module documentation).
pub(crate) struct PgKept {
    options: Box<PgConnectOptions>,
    idle: Mutex<Vec<Kept>>,
}

/// A connection of [`PgKept`], with the time it was opened; used as the
/// connection it holds.
pub(crate) struct Kept {
    conn: PgConnection,
    opened: Instant,
}

impl core::ops::Deref for Kept {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl core::ops::DerefMut for Kept {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// How long a PostgreSQL connection is kept at most (sqlx's pool's default
/// `max_lifetime`): an old one is closed and replaced at its next use, so
/// the server's per-session memory and a changed address (a failover) do
/// not live on forever.
pub(crate) const PG_MAX_AGE: Duration = Duration::from_secs(30 * 60);

impl core::fmt::Debug for PgKept {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PgKept")
            .field("host", &self.options.get_host())
            .field("database", &self.options.get_database())
            .finish_non_exhaustive()
    }
}

impl PgKept {
    /// Connections to the database `options` names, opened at the first
    /// use (the store's pool has reached the server already).
    pub(crate) fn new(options: Box<PgConnectOptions>) -> Self {
        Self {
            options,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A new connection, or [`nido_net::StoreError::Unavailable`] when the
    /// server does not answer within the pool's acquire timeout.
    async fn connect(&self) -> Result<Kept, SqlStoreError> {
        let conn = timed(self.options.connect())
            .await
            .map_err(Failed::into_error)?;
        Ok(Kept {
            conn,
            opened: Instant::now(),
        })
    }

    /// The first row `sql` (a `SELECT` with one text parameter) returns for
    /// `key`, if any.
    pub(crate) async fn optional<T>(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<T>, SqlStoreError>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        let (conn, row) = self
            .attempt(async |c: &mut PgConnection| {
                timed(sqlx::query_as(sql).bind(key).fetch_optional(c)).await
            })
            .await?;
        // Only a connection that answered is lent again.
        self.give_back(conn);
        Ok(row)
    }

    /// A connection in a transaction just begun, for a group commit or a
    /// lease: the caller commits it ([`PgKept::commit`]) or drops it (the
    /// server then rolls the transaction back).
    pub(crate) async fn begin(&self) -> Result<Kept, SqlStoreError> {
        let (conn, _) = self
            .attempt(async |c: &mut PgConnection| timed(sqlx::query("BEGIN").execute(c)).await)
            .await?;
        Ok(conn)
    }

    /// Commits the transaction of `conn` ([`PgKept::begin`]) and keeps the
    /// connection once the `COMMIT` answered; a failed commit drops it.
    pub(crate) async fn commit(&self, mut conn: Kept) -> Result<(), SqlStoreError> {
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        self.give_back(conn);
        Ok(())
    }

    /// Runs `op` (a first statement, which changes nothing by itself: a
    /// read, a `BEGIN`) on a kept connection, and once more on a fresh one
    /// if the kept one turns out broken (it broke while idle); the
    /// connection and what `op` returned.
    async fn attempt<T>(
        &self,
        op: impl AsyncFn(&mut PgConnection) -> Result<T, Failed>,
    ) -> Result<(Kept, T), SqlStoreError> {
        let (mut conn, reused) = self.take().await?;
        let mut out = op(&mut conn).await;
        if reused && out.as_ref().is_err_and(Failed::broken) {
            drop(conn);
            conn = self.connect().await?;
            out = op(&mut conn).await;
        }
        let value = out.map_err(Failed::into_error)?;
        Ok((conn, value))
    }

    /// An idle connection (`true`) younger than [`PG_MAX_AGE`], or a new
    /// one, with the time it was opened.
    async fn take(&self) -> Result<(Kept, bool), SqlStoreError> {
        let idle = lock(&self.idle).pop();
        match idle {
            Some(kept) if kept.opened.elapsed() < PG_MAX_AGE => Ok((kept, true)),
            Some(old) => {
                let _ = old.conn.close().await;
                Ok((self.connect().await?, false))
            }
            None => Ok((self.connect().await?, false)),
        }
    }

    /// Keeps `conn` (outside any transaction, its last statement answered)
    /// for the next use, unless [`IDLE_MAX`] are kept already.
    fn give_back(&self, conn: Kept) {
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE_MAX {
            idle.push(conn);
        }
    }

    /// Closes the idle connections (a courtesy to the server: it ends their
    /// backends now rather than when it notices the sockets closed).
    pub(crate) async fn close(&self) {
        let idle = std::mem::take(&mut *lock(&self.idle));
        for kept in idle {
            let _ = kept.conn.close().await;
        }
    }
}

/// How a connect, a read or a `BEGIN` on a kept connection failed.
enum Failed {
    Sqlx(sqlx::Error),
    /// No answer within the pool's acquire timeout: a connection whose peer
    /// vanished without a word (a NAT or firewall dropped its state) would
    /// otherwise wait for TCP to give up, minutes, with the core's reader.
    TimedOut,
}

impl Failed {
    fn into_error(self) -> SqlStoreError {
        match self {
            Failed::Sqlx(e) => e.into(),
            Failed::TimedOut => SqlStoreError::Store(nido_net::StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                crate::open::ACQUIRE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Whether the connection itself failed, rather than the statement:
    /// the socket broke or went silent, or the server ended the session
    /// (SQLSTATE class 08, connection exception; 57P01-57P03, shut down or
    /// not accepting; 57P05 and 25P03, an idle session or transaction
    /// timed out). A statement's own failure on a healthy connection (a
    /// statement timeout, a serialization failure, a missing database) is
    /// not retried: it would fail again.
    fn broken(&self) -> bool {
        use sqlx::Error as E;
        match self {
            Failed::TimedOut => true,
            Failed::Sqlx(E::Io(_) | E::Tls(_) | E::Protocol(_)) => true,
            Failed::Sqlx(E::Database(db)) => db.code().is_some_and(|c| {
                c.starts_with("08")
                    || ["57P01", "57P02", "57P03", "57P05", "25P03"].contains(&c.as_ref())
            }),
            Failed::Sqlx(_) => false,
        }
    }
}

/// `work` (a connect, a read, a `BEGIN`), given the pool's acquire timeout
/// to answer.
async fn timed<T>(work: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, Failed> {
    match tokio::time::timeout(crate::open::ACQUIRE_TIMEOUT, work).await {
        Ok(out) => out.map_err(Failed::Sqlx),
        Err(_) => Err(Failed::TimedOut),
    }
}

/// The connection of [`nido_net::Store::apply`] on SQLite (issue #11):
/// group commits, and the single writes of the trait, which are groups of
/// one. One read-write connection of the same file, used on the caller's
/// thread (the committer's, in `serve`), so a group's statements run where
/// it runs instead of a round trip each to sqlx's SQLite thread.
///
/// # Invariants
/// - **The same durability as sqlx's connection.** WAL, `synchronous =
///   FULL`, foreign keys on, the same busy timeout; each group is one
///   `BEGIN IMMEDIATE` transaction, committed once or rolled back whole.
/// - **One writer at a time.** The connection is behind a lock; a second
///   caller waits for the first's transaction to end. Other connections
///   (this store's sqlx pool, other processes) wait on SQLite's write lock
///   as they would for any writer.
/// - **A failed connection is not reused.** A transaction that failed
///   (busy past the timeout, I/O) closes the connection; the next group
///   opens a fresh one.
pub(crate) struct DirectWriter {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl core::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DirectWriter {
    /// Writes to the SQLite file at `path` (opened by the store already:
    /// it exists, in WAL mode, with its schema); connects at the first
    /// transaction.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            conn: Mutex::new(None),
        }
    }

    fn connect(&self) -> Result<Connection, SqlStoreError> {
        let conn = open(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        // What sqlx's connection sets (`open::connect`); journal_mode is the
        // file's (WAL since the store created it), asked again all the same.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Every statement a group can run stays prepared.
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction; `before_commit`
    /// and `after_commit` run around the commit (the durability tests'
    /// hooks). Any failure rolls back and is returned; nothing is written.
    pub(crate) fn transaction<T>(
        &self,
        body: impl FnOnce(&mut WriteTx<'_>) -> Result<T, SqlStoreError>,
        before_commit: impl FnOnce(),
        after_commit: impl FnOnce(),
    ) -> Result<T, SqlStoreError> {
        let mut slot = lock(&self.conn);
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(self.connect()?),
        };
        let outcome = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = body(&mut WriteTx(&tx))?;
            before_commit();
            tx.commit()?;
            Ok(out)
        })();
        // Rolled back on the way out if it failed (the transaction's drop);
        // the connection is not lent again.
        if outcome.is_err() {
            *slot = None;
        } else {
            after_commit();
        }
        outcome
    }
}

/// A statement runner inside [`DirectWriter::transaction`], for
/// [`crate::batch::Conn`].
pub(crate) struct WriteTx<'a>(&'a Connection);

impl WriteTx<'_> {
    /// Runs `sql` (prepared once per connection) with named parameters
    /// (`$1`, `$2`, … as the statements have them); returns the rows
    /// changed.
    pub(crate) fn execute(
        &self,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
    ) -> Result<usize, SqlStoreError> {
        Ok(self.0.prepare_cached(sql)?.execute(params)?)
    }

    /// Every row `sql` returns, mapped by `map`.
    pub(crate) fn rows<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, SqlStoreError> {
        let mut statement = self.0.prepare_cached(sql)?;
        let rows = statement.query_map(params, map)?;
        Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
    }

    /// The first row `sql` returns, mapped by `map`, if any.
    pub(crate) fn row<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn rusqlite::ToSql)],
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, SqlStoreError> {
        let mut statement = self.0.prepare_cached(sql)?;
        Ok(statement.query_row(params, map).optional()?)
    }
}
