//! What can go wrong opening and using a [`crate::SqlStore`].

use nido_net::StoreError;
use thiserror::Error;

use crate::kek::SealError;

/// [`crate::SqlStore::open`] failed. Each variant is one sentence for the
/// operator; none carries key material or a password.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreOpenError {
    /// The URL is neither `sqlite://…`, a path, nor `postgres://…`, or does not parse.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// The database server cannot be reached, or the SQLite file cannot be opened or created.
    #[error("cannot open the database {target}: {reason}")]
    Unreachable {
        /// Where (host:port/database or the file path; never a password).
        target: String,
        /// What the driver said.
        reason: String,
    },
    /// The server refused (authentication, unknown database, permissions).
    #[error("the database {target} refused: {reason}")]
    Refused {
        /// Where.
        target: String,
        /// What the server said.
        reason: String,
    },
    /// The schema could not be brought to this version (including a database
    /// migrated by a newer nido, or an edited migration).
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The key-encryption key is not the one the store was created with.
    #[error("wrong key-encryption key: this database was created with another one")]
    WrongKek,
    /// `open` was called from inside a tokio runtime.
    #[error(
        "nido-store must be opened and used from a plain thread, not from inside a tokio runtime"
    )]
    InsideRuntime,
    /// Anything else (runtime creation, randomness).
    #[error("cannot open the store: {0}")]
    Other(String),
}

/// A [`crate::SqlStore`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SqlStoreError {
    /// A store rule refused (conflict, not found, exhausted), or the
    /// database cannot be reached or failed
    /// ([`StoreError::Unavailable`]: connection lost or refused, database
    /// gone, I/O, timeout, lock wait), as [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database refused a statement for another reason than a
    /// constraint or its availability (a schema that does not match, a
    /// value it cannot decode).
    #[error("database: {0}")]
    Database(String),
    /// A stored value does not decode or does not open with the KEK.
    #[error("stored data: {0}")]
    Corrupt(String),
    /// A value does not fit the database (e.g. a number above 2^63).
    #[error("value out of range: {0}")]
    Invalid(String),
    /// Sealing a secret failed (no randomness).
    #[error("encryption: {0}")]
    Crypto(String),
    /// Called from inside a tokio runtime.
    #[error("nido-store must be used from a plain thread, not from inside a tokio runtime")]
    InsideRuntime,
}

impl From<SqlStoreError> for StoreError {
    /// A store rule or an unavailable database passes through as it is
    /// (the PVS and the UDM answer #22 for [`StoreError::Unavailable`]);
    /// data that does not open or a statement the database refuses become
    /// `Conflict("stored data: …")` / `Conflict("database: …")` (#111).
    fn from(e: SqlStoreError) -> Self {
        match e {
            SqlStoreError::Store(e) => e,
            other => StoreError::Conflict(other.to_string()),
        }
    }
}

/// PostgreSQL SQLSTATEs (Appendix A of its manual) that mean the database
/// cannot be reached or cannot serve now, by class or by code.
const PG_UNAVAILABLE_CLASSES: [&str; 4] = [
    "08", // connection exception
    "53", // insufficient resources (disk full, out of memory, too many connections)
    "57", // operator intervention (admin shutdown, crash shutdown, cannot connect now, canceled by timeout)
    "58", // system error (I/O error)
];
const PG_UNAVAILABLE_CODES: [&str; 5] = [
    "3D000", // invalid_catalog_name: the database was dropped
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available
    "25P03", // idle_in_transaction_session_timeout
];

/// SQLite primary result codes that mean the file cannot be used now:
/// PERM, BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, CORRUPT, FULL,
/// CANTOPEN, PROTOCOL, NOTADB.
pub(crate) const SQLITE_UNAVAILABLE: [i32; 12] = [3, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26];

/// Whether a database error means "cannot be reached or failed, try again
/// later" rather than a statement the database refuses.
fn unavailable(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return PG_UNAVAILABLE_CODES.contains(&code.as_ref())
            || PG_UNAVAILABLE_CLASSES
                .iter()
                .any(|class| code.starts_with(class));
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes keep the primary code in the low byte.
        return code
            .parse::<i32>()
            .is_ok_and(|c| SQLITE_UNAVAILABLE.contains(&(c & 0xff)));
    }
    false
}

impl From<sqlx::Error> for SqlStoreError {
    /// Uniqueness violations are [`StoreError::Conflict`], foreign keys
    /// [`StoreError::NotFound`]; a connection, pool, I/O or timeout failure
    /// (and a database error that says the same) is
    /// [`StoreError::Unavailable`]; anything else is [`SqlStoreError::Database`].
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::Database(db) if db.is_unique_violation() => {
                Self::Store(StoreError::Conflict(db.message().to_owned()))
            }
            E::Database(db) if db.is_foreign_key_violation() => {
                Self::Store(StoreError::NotFound(db.message().to_owned()))
            }
            E::Database(db) if unavailable(db.as_ref()) => {
                Self::Store(StoreError::Unavailable(db.message().to_owned()))
            }
            E::Io(_)
            | E::Tls(_)
            | E::Protocol(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed => Self::Store(StoreError::Unavailable(e.to_string())),
            _ => Self::Database(e.to_string()),
        }
    }
}

impl From<SealError> for SqlStoreError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Open(_) | SealError::Format(_) => Self::Corrupt(e.to_string()),
            SealError::Randomness | SealError::Key => Self::Crypto(e.to_string()),
        }
    }
}
