//! The protocol core's reads on SQLite, on the caller's own thread
//! (issue #11).
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
//! - **Read-only.** The connections are opened read-only
//!   (`SQLITE_OPEN_READ_ONLY`): nothing written here can bypass the
//!   store's transactions, its sealing or its group commit.
//! - **One connection per concurrent reader.** A read takes an idle
//!   connection (or opens one) and gives it back (a connection whose read
//!   failed is closed instead), so threads reading through one store at
//!   once never wait for each other; statements are prepared once per
//!   connection. (The network reads through a `Stage`, which takes one
//!   read at a time: there the pool holds one connection.)

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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

impl From<rusqlite::Error> for SqlStoreError {
    /// A busy, locked or failing file is [`nido_net::StoreError::Unavailable`]
    /// (as for sqlx's SQLite errors); a value of the wrong type a
    /// [`SqlStoreError::Corrupt`]; anything else [`SqlStoreError::Database`].
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match &e {
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
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        Ok(conn)
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
