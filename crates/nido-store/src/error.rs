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
    /// A store rule refused (conflict, not found, exhausted), as [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed (connection lost, timeout, I/O).
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
    /// [`StoreError`] has no variant for a failing database: such failures
    /// become `Conflict("database …")` (the PVS and the UDM answer #111).
    fn from(e: SqlStoreError) -> Self {
        match e {
            SqlStoreError::Store(e) => e,
            other => StoreError::Conflict(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for SqlStoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Self::Store(StoreError::Conflict(db.message().to_owned()));
            }
            if db.is_foreign_key_violation() {
                return Self::Store(StoreError::NotFound(db.message().to_owned()));
            }
        }
        Self::Database(e.to_string())
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
