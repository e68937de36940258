//! Opening a store: the URL, the connection pool, the migrations, the KEK check.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlSafeStr};

use crate::error::StoreOpenError;
use crate::kek::Sealer;

/// How long a connection may take to be established or handed out.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits for another process's write lock.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema migrations, in order: (version, description, SQLite, PostgreSQL).
/// Never edit one that shipped; append.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "released",
        include_str!("../migrations/sqlite/0002_released.sql"),
        include_str!("../migrations/postgres/0002_released.sql"),
    ),
    (
        3,
        "trust generation",
        include_str!("../migrations/sqlite/0003_trust_generation.sql"),
        include_str!("../migrations/postgres/0003_trust_generation.sql"),
    ),
    (
        4,
        "device identity",
        include_str!("../migrations/sqlite/0004_device_identity.sql"),
        include_str!("../migrations/postgres/0004_device_identity.sql"),
    ),
    (
        5,
        "outbox",
        include_str!("../migrations/sqlite/0005_outbox.sql"),
        include_str!("../migrations/postgres/0005_outbox.sql"),
    ),
    (
        6,
        "api",
        include_str!("../migrations/sqlite/0006_api.sql"),
        include_str!("../migrations/postgres/0006_api.sql"),
    ),
    (
        7,
        "revocation",
        include_str!("../migrations/sqlite/0007_revocation.sql"),
        include_str!("../migrations/postgres/0007_revocation.sql"),
    ),
    (
        8,
        "expiry",
        include_str!("../migrations/sqlite/0008_expiry.sql"),
        include_str!("../migrations/postgres/0008_expiry.sql"),
    ),
    (
        9,
        "lifecycle",
        include_str!("../migrations/sqlite/0009_lifecycle.sql"),
        include_str!("../migrations/postgres/0009_lifecycle.sql"),
    ),
];

/// The latest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 9;

/// The table that records applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "schema_migrations";

/// The plaintext of the KEK check value.
const KEK_CHECK: &[u8] = b"nido-store key-encryption key check";

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A parsed database URL.
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres(Box<PgConnectOptions>),
}

impl Target {
    /// `sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:path`, a plain path,
    /// or `postgres://…` / `postgresql://…`.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreOpenError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreOpenError::BadUrl(format!("{}: {e}", redact(url))))?;
            return Ok(Self::Postgres(Box::new(opts.application_name("nido"))));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            // Drop a query string (`?mode=rwc`): the options are ours.
            rest.split('?').next().unwrap_or(rest)
        } else if url.contains("://") {
            return Err(StoreOpenError::BadUrl(format!(
                "{}: use sqlite:///path/nido.db, a plain path, or postgres://user@host/db",
                redact(url)
            )));
        } else {
            url
        };
        if path.is_empty() || path == ":memory:" {
            return Err(StoreOpenError::BadUrl(
                "a SQLite store needs a file path (sqlite:///path/nido.db)".into(),
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// Where, for messages: never a password.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
        }
    }
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The pools a store runs on.
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

fn classify(target: &Target, e: sqlx::Error) -> StoreOpenError {
    let target = target.describe();
    match e {
        sqlx::Error::Database(db) => StoreOpenError::Refused {
            target,
            reason: db.message().to_owned(),
        },
        sqlx::Error::Configuration(e) => StoreOpenError::BadUrl(e.to_string()),
        other => StoreOpenError::Unreachable {
            target,
            reason: other.to_string(),
        },
    }
}

/// Creates the SQLite file readable by its owner only (it holds sealed keys
/// and the audit trail); SQLite gives its -wal and -shm files the same mode.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Connects: one connection per store (the store is used from one thread at
/// a time; a second connection would only add SQLite lock contention).
pub(crate) async fn connect(target: &Target) -> Result<Pool, StoreOpenError> {
    match target {
        Target::Sqlite(path) => {
            if !path.exists() {
                create_private_file(path).map_err(|e| StoreOpenError::Unreachable {
                    target: target.describe(),
                    reason: e.to_string(),
                })?;
            }
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(opts)
                .await
                .map_err(|e| classify(target, e))?;
            Ok(Pool::Sqlite(pool))
        }
        Target::Postgres(opts) => {
            // One direct connection first: the pool retries a refused
            // connection until its timeout and then only says "timed out".
            let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, opts.connect())
                .await
                .map_err(|_| StoreOpenError::Unreachable {
                    target: target.describe(),
                    reason: format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs()),
                })?
                .map_err(|e| classify(target, e))?;
            // Closing is a courtesy to the server; a failure here changes nothing.
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with((**opts).clone())
                .await
                .map_err(|e| classify(target, e))?;
            Ok(Pool::Postgres(pool))
        }
    }
}

fn migrator(backend: Backend) -> Migrator {
    migrator_of(backend, MIGRATIONS)
}

fn migrator_of(
    backend: Backend,
    migrations: &[(i64, &'static str, &'static str, &'static str)],
) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|&(version, description, sqlite, postgres)| {
            let sql = match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            };
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// Applies the pending migrations, each in its own transaction. On
/// PostgreSQL sqlx holds a session advisory lock (keyed by the database
/// name) around the whole run, so two processes starting at once migrate
/// one after the other. Refuses a database that has a migration this build
/// does not know (a newer nido migrated it) or whose applied migration was edited.
pub(crate) async fn migrate(pool: &Pool) -> Result<(), StoreOpenError> {
    let result = match pool {
        Pool::Sqlite(p) => migrator(Backend::Sqlite).run(p).await,
        Pool::Postgres(p) => migrator(Backend::Postgres).run(p).await,
    };
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => StoreOpenError::Migration(format!(
            "the database has schema migration {v}, which this nido does not know \
             (it knows up to {SCHEMA_VERSION}): was it migrated by a newer nido?"
        )),
        other => StoreOpenError::Migration(other.to_string()),
    })
}

/// Stores the KEK check value at first start, then verifies it: a wrong KEK
/// fails here, at open, not at the first subscription read.
pub(crate) async fn check_kek(pool: &Pool, sealer: &Sealer) -> Result<(), StoreOpenError> {
    let fresh = sealer
        .seal("kek-check", "", KEK_CHECK)
        .map_err(|e| StoreOpenError::Other(e.to_string()))?;
    let insert = "INSERT INTO store_meta (name, value) VALUES ('kek_check', $1) \
                  ON CONFLICT (name) DO NOTHING";
    let select = "SELECT value FROM store_meta WHERE name = 'kek_check'";
    let db = |e: sqlx::Error| StoreOpenError::Other(format!("KEK check: {e}"));
    let stored: Vec<u8> = match pool {
        Pool::Sqlite(p) => {
            sqlx::query(insert)
                .bind(&fresh)
                .execute(p)
                .await
                .map_err(db)?;
            sqlx::query_scalar(select).fetch_one(p).await.map_err(db)?
        }
        Pool::Postgres(p) => {
            sqlx::query(insert)
                .bind(&fresh)
                .execute(p)
                .await
                .map_err(db)?;
            sqlx::query_scalar(select).fetch_one(p).await.map_err(db)?
        }
    };
    match sealer.open("kek-check", "", &stored) {
        Ok(plain) if plain.as_slice() == KEK_CHECK => Ok(()),
        _ => Err(StoreOpenError::WrongKek),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A SQLite database at schema version 1 holding a subscription is
    /// migrated to the latest version with the row intact (no manufacturer
    /// is enrolled, so version 4 leaves its device key as it was), and then
    /// takes the `released` state (version 2 rebuilds the table).
    #[test]
    fn sqlite_upgrades_from_version_1_keeping_subscriptions() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = std::env::temp_dir().join(format!(
            "nido-upgrade-{}-{}.db",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let target = Target::Sqlite(path.clone());
        rt.block_on(async {
            let Pool::Sqlite(pool) = connect(&target).await.unwrap() else {
                panic!("not sqlite")
            };
            migrator_of(Backend::Sqlite, &MIGRATIONS[..1])
                .run(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO subscriptions (supi, device, k_enc, opc_enc, amf, sqn_seq, sqn_ind, \
                 state, owner, package_id, updated_at) \
                 VALUES ('imsi-999990000000001', 'DEV-1', x'01', x'02', x'8000', 5, 3, 'active', \
                 NULL, zeroblob(16), 7)",
            )
            .execute(&pool)
            .await
            .unwrap();
            let refused = sqlx::query("UPDATE subscriptions SET state = 'released'")
                .execute(&pool)
                .await;
            assert!(refused.is_err(), "version 1 refuses the new state");
            migrator(Backend::Sqlite).run(&pool).await.unwrap();
            let row: (String, String, i64, String) =
                sqlx::query_as("SELECT supi, device, sqn_seq, state FROM subscriptions")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            assert_eq!(
                row,
                (
                    "imsi-999990000000001".into(),
                    "DEV-1".into(),
                    5,
                    "active".into()
                )
            );
            sqlx::query("UPDATE subscriptions SET state = 'released'")
                .execute(&pool)
                .await
                .unwrap();
            let bad = sqlx::query("UPDATE subscriptions SET state = 'bogus'")
                .execute(&pool)
                .await;
            assert!(bad.is_err(), "the CHECK still holds");
            let versions: Vec<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations ORDER BY version")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let every: Vec<(i64,)> = MIGRATIONS.iter().map(|m| (m.0,)).collect();
            assert_eq!(versions, every);
            pool.close().await;
        });
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn path_of(url: &str) -> String {
        match Target::parse(url).unwrap() {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(_) => panic!("not sqlite"),
        }
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            path_of("sqlite:///var/lib/nido/nido.db"),
            "/var/lib/nido/nido.db"
        );
        assert_eq!(path_of("sqlite://nido.db"), "nido.db");
        assert_eq!(path_of("sqlite:nido.db?mode=rwc"), "nido.db");
        assert_eq!(path_of("/tmp/x.db"), "/tmp/x.db");
        assert_eq!(path_of("x.db"), "x.db");
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreOpenError::BadUrl(_))
        ));
        assert!(matches!(
            Target::parse("sqlite::memory:"),
            Err(StoreOpenError::BadUrl(_))
        ));
        let pg = Target::parse("postgres://nido:pw@db.example:5433/nido").unwrap();
        assert_eq!(pg.describe(), "postgres://nido@db.example:5433/nido");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://nido:s3cret@h:5432/db"),
            "postgres://nido:***@h:5432/db"
        );
        assert_eq!(redact("postgres://nido@h/db"), "postgres://nido@h/db");
        assert_eq!(redact("postgres://h/db?x=@"), "postgres://h/db?x=@");
    }
}
