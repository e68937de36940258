#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One behaviour suite for the `Store` trait, written once against
//! `&mut dyn Store` and run on `MemoryStore` (the reference), on `SqlStore`
//! over a temporary SQLite file, and on `SqlStore` over a fresh PostgreSQL
//! database; then what only `SqlStore` has: persistence, the KEK,
//! concurrency, no secret in clear, the operator tables.
//!
//! PostgreSQL: `NIDO_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) names a database to connect
//! to; each test creates its own `nido_test_<pid>_<n>` and drops it at the end.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use nido_net::{DeviceId, Owner, Store, StoreError, Subscription, SubscriptionState, Write};
use nido_prov::ThirdPartyCredential;
use nido_sec::aka::HeSqn;
use nido_sec::milenage::Amf;
use nido_sec::{Cause, K, Opc, Supi};
use nido_store::{AuditEntry, Backend, Kek, SqlStore, SqlStoreError, StoreOpenError};
use zeroize::Zeroizing;

/// Every store in the suite has an IMSI range of this many MSINs.
const MSINS: u64 = 3;

const KEY_K: u8 = 0xa1;
const KEY_OPC: u8 = 0xb2;
const PSK: &[u8] = b"\x5e\xc7\x3d\x91\x22\x8f\x4a\x0b\x6c\xe5\x17\xd3\x88\x2a\x9f\x40";

fn supi(n: u64) -> Supi {
    Supi::imsi(&format!("99999{n:010}")).unwrap()
}

fn k(seed: u8) -> K {
    K::new(core::array::from_fn(|i| seed ^ (i as u8)))
}

fn opc(seed: u8) -> Opc {
    Opc::new(core::array::from_fn(|i| seed ^ (i as u8).rotate_left(3)))
}

/// Device `serial` of the manufacturer enrolled as "Acme".
fn id(serial: &str) -> DeviceId {
    DeviceId::new("Acme", serial).unwrap()
}

fn sub(device: &str, n: u64, seed: u8) -> Subscription {
    Subscription {
        supi: supi(n),
        k: k(seed),
        opc: opc(seed.wrapping_add(1)),
        amf: Amf::FIVE_G,
        sqn: HeSqn::default(),
        state: SubscriptionState::Created,
        device: id(device),
        owner: None,
        package_id: [seed; 16],
        // Half with a package end (schema 8), half without (a package
        // delivered before the store kept it).
        not_after_unix: (seed % 2 == 1).then_some(1_900_000_000 + u64::from(seed)),
        suci_key_id: (seed % 2 == 1).then_some(seed),
    }
}

fn owner(id: &str) -> Owner {
    Owner {
        id: id.to_owned(),
        name: format!("{id} Ltd"),
        credentials: vec![
            ThirdPartyCredential::Lwm2m {
                server_uri: "coaps://lwm2m.example:5684".into(),
                psk_identity: format!("{id}-psk"),
                psk: Zeroizing::new(PSK.to_vec()),
            },
            ThirdPartyCredential::Mqtt {
                broker_uri: "mqtts://broker.example:8883".into(),
                client_id: "c1".into(),
                client_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n".into(),
                client_key_pem: Zeroizing::new("-----BEGIN PRIVATE KEY-----\nMIIE\n".into()),
            },
        ],
    }
}

/// Compares what the Debug of a subscription hides too.
fn assert_same(a: &Subscription, b: &Subscription) {
    assert_eq!(a.supi, b.supi);
    assert!(a.k == b.k, "K differs");
    assert!(a.opc == b.opc, "OPc differs");
    assert_eq!(a.amf, b.amf);
    assert_eq!(a.sqn, b.sqn);
    assert_eq!(a.state, b.state);
    assert_eq!(a.device, b.device);
    assert_eq!(a.owner, b.owner);
    assert_eq!(a.package_id, b.package_id);
    assert_eq!(a.not_after_unix, b.not_after_unix);
    assert_eq!(a.suci_key_id, b.suci_key_id);
}

// ---------------------------------------------------------------------------
// The suite: written once, for every Store.

fn put_and_get_by_device_and_supi(s: &mut dyn Store) {
    assert!(s.subscription_by_device(&id("DEV-1")).unwrap().is_none());
    assert!(s.subscription_by_supi(&supi(1)).unwrap().is_none());
    let mut a = sub("DEV-1", 1, KEY_K);
    a.sqn = HeSqn { seq: 41, ind: 9 };
    a.state = SubscriptionState::Active;
    a.owner = Some("acme".into());
    a.amf = Amf([0x80, 0x01]);
    s.put_subscription(a.clone()).unwrap();
    assert_same(
        &s.subscription_by_device(&id("DEV-1")).unwrap().unwrap(),
        &a,
    );
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &a);
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().is_none());
    assert!(s.subscription_by_supi(&supi(2)).unwrap().is_none());
    // A NAI SUPI works the same.
    let mut n = sub("DEV-2", 0, 7);
    n.supi = Supi::nai("dev2@iot.example").unwrap();
    s.put_subscription(n.clone()).unwrap();
    assert_same(&s.subscription_by_supi(&n.supi).unwrap().unwrap(), &n);
}

fn conflict_on_a_supi_of_another_device(s: &mut dyn Store) {
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    let err = s.put_subscription(sub("DEV-2", 1, 2)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Nothing changed: DEV-2 has nothing, SUPI 1 is still DEV-1's with its K.
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().is_none());
    let kept = s.subscription_by_supi(&supi(1)).unwrap().unwrap();
    assert_eq!(kept.device, id("DEV-1"));
    assert!(kept.k == k(1));
    assert_eq!(s.subscriptions().unwrap().len(), 1);
}

fn reprovision_replaces_k_in_place(s: &mut dyn Store) {
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    let mut again = sub("DEV-1", 1, 9);
    again.sqn = HeSqn { seq: 5, ind: 5 };
    s.put_subscription(again.clone()).unwrap();
    assert_eq!(s.subscriptions().unwrap().len(), 1, "one row per device");
    let got = s.subscription_by_device(&id("DEV-1")).unwrap().unwrap();
    assert_same(&got, &again);
    assert!(got.k != k(1));
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &again);
    // State-only updates (what the UDM and the PVS confirmation do).
    let mut active = got.clone();
    active.state = SubscriptionState::Active;
    active.sqn = HeSqn { seq: 6, ind: 6 };
    s.put_subscription(active.clone()).unwrap();
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &active);
    // Released by the operator (schema version 2 allows the state).
    let mut released = active;
    released.state = SubscriptionState::Released;
    s.put_subscription(released.clone()).unwrap();
    assert_same(
        &s.subscription_by_supi(&supi(1)).unwrap().unwrap(),
        &released,
    );
}

fn a_device_moving_to_another_supi_frees_the_old_one(s: &mut dyn Store) {
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    s.put_subscription(sub("DEV-1", 2, 2)).unwrap();
    assert!(s.subscription_by_supi(&supi(1)).unwrap().is_none());
    assert_eq!(
        s.subscription_by_supi(&supi(2)).unwrap().unwrap().device,
        id("DEV-1")
    );
    assert_eq!(s.subscriptions().unwrap().len(), 1);
    // The freed SUPI can go to another device.
    s.put_subscription(sub("DEV-2", 1, 3)).unwrap();
    assert_eq!(
        s.subscription_by_supi(&supi(1)).unwrap().unwrap().device,
        id("DEV-2")
    );
}

fn allocate_msin_until_exhausted(s: &mut dyn Store) {
    let got: Vec<u64> = (0..MSINS).map(|_| s.allocate_msin().unwrap()).collect();
    assert_eq!(got, (1..=MSINS).collect::<Vec<_>>());
    assert_eq!(s.allocate_msin(), Err(StoreError::Exhausted));
    assert_eq!(s.allocate_msin(), Err(StoreError::Exhausted));
}

fn owners_and_one_time_claims(s: &mut dyn Store) {
    s.add_claimable(&id("DEV-1"), "hash-1").unwrap();
    s.add_claimable(&id("DEV-2"), "hash-2").unwrap();
    assert!(s.owner_of_device(&id("DEV-1")).unwrap().is_none());
    // An unknown owner cannot claim, and does not use up the code.
    assert!(matches!(
        s.claim("nobody", "hash-1"),
        Err(StoreError::NotFound(_))
    ));
    s.put_owner(owner("acme")).unwrap();
    s.put_owner(owner("globex")).unwrap();
    assert_eq!(s.claim("acme", "hash-1").unwrap(), id("DEV-1"));
    assert_eq!(
        s.owner_of_device(&id("DEV-1")).unwrap().unwrap(),
        owner("acme")
    );
    // One-time: neither the same nor another owner claims it again.
    assert!(matches!(
        s.claim("acme", "hash-1"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.claim("globex", "hash-1"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.owner_of_device(&id("DEV-1")).unwrap().unwrap().id, "acme");
    assert!(matches!(
        s.claim("acme", "no-such-hash"),
        Err(StoreError::NotFound(_))
    ));
    assert!(s.owner_of_device(&id("DEV-2")).unwrap().is_none());
    // put_owner replaces: the claimed device sees the new name and credentials.
    let mut renamed = owner("acme");
    renamed.name = "ACME Corporation".into();
    renamed.credentials.truncate(1);
    s.put_owner(renamed.clone()).unwrap();
    assert_eq!(s.owner_of_device(&id("DEV-1")).unwrap().unwrap(), renamed);
    // The first claim stands (issue #17): a claimed device gets no new
    // code from a later import, and a second code of it does not move it.
    assert!(matches!(
        s.add_claimable(&id("DEV-1"), "hash-1b"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.claim("globex", "hash-1b"),
        Err(StoreError::NotFound(_))
    ));
    s.add_claimable(&id("DEV-2"), "hash-2b").unwrap();
    assert_eq!(s.claim("globex", "hash-2").unwrap(), id("DEV-2"));
    assert!(matches!(
        s.claim("acme", "hash-2b"),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.owner_of_device(&id("DEV-1")).unwrap().unwrap().id, "acme");
    assert_eq!(
        s.owner_of_device(&id("DEV-2")).unwrap().unwrap().id,
        "globex"
    );
    // The same serial of another manufacturer is another device.
    let other = DeviceId::new("Other", "DEV-1").unwrap();
    assert!(s.owner_of_device(&other).unwrap().is_none());
    s.add_claimable(&other, "hash-o").unwrap();
    assert_eq!(s.claim("globex", "hash-o").unwrap(), other);
    assert_eq!(s.owner_of_device(&id("DEV-1")).unwrap().unwrap().id, "acme");
}

/// `owner_and_subscription` (one statement on a database) answers what
/// `owner_of_device` and `subscription_by_device` answer, in every
/// combination: neither, an owner alone, both, a subscription alone; and a
/// device of the same serial under another manufacturer has neither.
fn owner_and_subscription_agree_with_the_single_reads(s: &mut dyn Store) {
    let check = |s: &dyn Store, device: &DeviceId| {
        let (o, sub) = s.owner_and_subscription(device).unwrap();
        assert_eq!(o, s.owner_of_device(device).unwrap(), "owner of {device}");
        match (sub, s.subscription_by_device(device).unwrap()) {
            (None, None) => {}
            (Some(a), Some(b)) => assert_same(&a, &b),
            (a, b) => panic!("{device}: {:?} against {:?}", a.is_some(), b.is_some()),
        }
    };
    check(s, &id("DEV-1"));
    assert_eq!(s.owner_and_subscription(&id("DEV-1")).unwrap().0, None);
    s.put_owner(owner("acme")).unwrap();
    s.add_claimable(&id("DEV-1"), "hash-1").unwrap();
    s.claim("acme", "hash-1").unwrap();
    check(s, &id("DEV-1"));
    let (o, sub) = s.owner_and_subscription(&id("DEV-1")).unwrap();
    assert_eq!(o, Some(owner("acme")));
    assert!(sub.is_none());
    let mut a = sub_of("DEV-1", s, 1);
    a.owner = Some("acme".into());
    s.put_subscription(a.clone()).unwrap();
    check(s, &id("DEV-1"));
    let (o, sub) = s.owner_and_subscription(&id("DEV-1")).unwrap();
    assert_eq!(o, Some(owner("acme")));
    assert_same(&sub.unwrap(), &a);
    let b = sub_of("DEV-2", s, 2);
    s.put_subscription(b.clone()).unwrap();
    check(s, &id("DEV-2"));
    let (o, sub) = s.owner_and_subscription(&id("DEV-2")).unwrap();
    assert_eq!(o, None);
    assert_same(&sub.unwrap(), &b);
    let other = DeviceId::new("Other", "DEV-1").unwrap();
    check(s, &other);
    let (o, sub) = s.owner_and_subscription(&other).unwrap();
    assert!(o.is_none() && sub.is_none());
}

/// A subscription of `device` on a freshly allocated MSIN, keys from `seed`.
fn sub_of(device: &str, s: &mut dyn Store, seed: u8) -> Subscription {
    let n = s.allocate_msin().unwrap();
    sub(device, n, seed)
}

fn subscriptions_lists_every_one(s: &mut dyn Store) {
    assert!(s.subscriptions().unwrap().is_empty());
    for (i, d) in ["DEV-C", "DEV-A", "DEV-B"].iter().enumerate() {
        s.put_subscription(sub(d, i as u64 + 1, i as u8)).unwrap();
    }
    s.put_subscription(sub("DEV-A", 2, 7)).unwrap();
    let mut listed: Vec<(String, Supi)> = s
        .subscriptions()
        .unwrap()
        .into_iter()
        .map(|x| (x.device.serial().to_owned(), x.supi))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("DEV-A".into(), supi(2)),
            ("DEV-B".into(), supi(3)),
            ("DEV-C".into(), supi(1)),
        ]
    );
}

// ---------------------------------------------------------------------------
// Stores to run it on.

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn kek() -> Kek {
    Kek::new([0x42; 32])
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "nido-store-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn db(&self) -> String {
        format!("sqlite://{}", self.0.join("nido.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server's administration database: `NIDO_TEST_POSTGRES`, else
/// nido-testkit's default (`postgres://postgres@127.0.0.1:5432/test`).
fn pg_base() -> String {
    std::env::var("NIDO_TEST_POSTGRES").unwrap_or_else(|_| nido_testkit::DEFAULT_POSTGRES.into())
}

/// Runs `sql` on the administration database.
fn pg_admin(sql: String) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&pg_base()).await?;
        c.execute(sqlx::AssertSqlSafe(sql)).await?;
        c.close().await
    })
}

/// A fresh PostgreSQL database, dropped (even when the test fails) with the guard.
struct PgDb {
    name: String,
}

impl PgDb {
    /// A fresh database for `test`; `None` (and one SKIPPED line) when no
    /// PostgreSQL server answers (`nido_testkit::postgres`).
    fn new(test: &str) -> Option<Self> {
        nido_testkit::postgres(test)?;
        let name = format!(
            "nido_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        pg_admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        pg_admin(format!("CREATE DATABASE {name}"))
            .expect("PostgreSQL at NIDO_TEST_POSTGRES (default 127.0.0.1:5432/test)");
        Some(Self { name })
    }

    fn url(&self) -> String {
        let base = pg_base();
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }

    /// Runs SQL in this database and returns the first column of every row as text.
    fn query_text(&self, sql: &str) -> Vec<String> {
        use sqlx::Connection;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.url()).await.unwrap();
            let rows: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
            rows.into_iter().map(|r| r.0.unwrap_or_default()).collect()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = pg_admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn open_sql(url: &str) -> SqlStore {
    let s = SqlStore::open(url, kek()).unwrap();
    s.set_msin_range(MSINS).unwrap();
    s
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $name() {
                    let mut s = nido_net::MemoryStore::new(super::MSINS);
                    super::$name(&mut s);
                }
            )*
        }
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = super::TempDir::new();
                    let mut s = super::open_sql(&dir.db());
                    super::$name(&mut s);
                    assert_eq!(s.take_error(), None);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = super::PgDb::new(concat!("postgres::", stringify!($name))) else {
                        return;
                    };
                    let mut s = super::open_sql(&db.url());
                    super::$name(&mut s);
                    assert_eq!(s.take_error(), None);
                }
            )*
        }
    };
}

suite!(
    put_and_get_by_device_and_supi,
    conflict_on_a_supi_of_another_device,
    reprovision_replaces_k_in_place,
    a_device_moving_to_another_supi_frees_the_old_one,
    allocate_msin_until_exhausted,
    owners_and_one_time_claims,
    owner_and_subscription_agree_with_the_single_reads,
    subscriptions_lists_every_one,
);

// ---------------------------------------------------------------------------
// SqlStore only.

/// Fills a store with secrets to look for.
fn fill(s: &mut dyn Store) {
    s.put_owner(owner("acme")).unwrap();
    s.add_claimable(&id("DEV-1"), "hash-1").unwrap();
    s.claim("acme", "hash-1").unwrap();
    let mut a = sub("DEV-1", s.allocate_msin().unwrap(), KEY_K);
    a.opc = Opc::new([KEY_OPC; 16]);
    a.k = K::new([KEY_K; 16]);
    a.owner = Some("acme".into());
    a.package_id = [0x11; 16];
    s.put_subscription(a).unwrap();
}

fn check_filled(s: &dyn Store) {
    let a = s.subscription_by_device(&id("DEV-1")).unwrap().unwrap();
    assert!(a.k == K::new([KEY_K; 16]));
    assert!(a.opc == Opc::new([KEY_OPC; 16]));
    assert_eq!(
        s.owner_of_device(&id("DEV-1")).unwrap().unwrap(),
        owner("acme")
    );
}

#[test]
fn sqlite_persists_across_close_and_reopen() {
    let dir = TempDir::new();
    {
        let mut s = open_sql(&dir.db());
        fill(&mut s);
        s.append_audit(AuditEntry::new(100, "note", "before restart"))
            .unwrap();
    }
    let mut s = SqlStore::open(&dir.db(), kek()).unwrap();
    check_filled(&s);
    assert_eq!(s.msin_range().unwrap(), (1, MSINS));
    assert_eq!(s.allocate_msin().unwrap(), 2, "the counter continues");
    assert!(
        s.audit(10)
            .unwrap()
            .iter()
            .any(|e| e.detail == "before restart")
    );
    // A plain path opens the same file.
    drop(s);
    let plain = dir.0.join("nido.db");
    let s = SqlStore::open(plain.to_str().unwrap(), kek()).unwrap();
    check_filled(&s);
}

#[cfg(unix)]
#[test]
fn sqlite_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let _s = open_sql(&dir.db());
    let mode = std::fs::metadata(dir.0.join("nido.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

#[test]
fn wrong_kek_is_refused_at_open_sqlite() {
    let dir = TempDir::new();
    drop(open_sql(&dir.db()));
    let err = SqlStore::open(&dir.db(), Kek::new([0x43; 32])).unwrap_err();
    assert_eq!(err, StoreOpenError::WrongKek);
    // The right one still opens.
    SqlStore::open(&dir.db(), kek()).unwrap();
}

#[test]
fn wrong_kek_is_refused_at_open_postgres() {
    let Some(db) = PgDb::new("wrong_kek_is_refused_at_open_postgres") else {
        return;
    };
    drop(open_sql(&db.url()));
    let err = SqlStore::open(&db.url(), Kek::new([0x43; 32])).unwrap_err();
    assert_eq!(err, StoreOpenError::WrongKek);
    assert_eq!(
        err.to_string(),
        "wrong key-encryption key: this database was created with another one"
    );
}

#[test]
fn postgres_persists_across_reopen() {
    let Some(db) = PgDb::new("postgres_persists_across_reopen") else {
        return;
    };
    {
        let mut s = open_sql(&db.url());
        assert_eq!(s.backend(), Backend::Postgres);
        fill(&mut s);
    }
    let s = SqlStore::open(&db.url(), kek()).unwrap();
    check_filled(&s);
    assert_eq!(
        db.query_text("SELECT version::text FROM schema_migrations ORDER BY version"),
        vec!["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
}

/// The core's reads and the group commits keep their PostgreSQL
/// connections between uses (issue #11). A kept connection the server ended while it was idle (a
/// restart, an administrator, a proxy's idle timeout) costs no failed read:
/// the read finds it broken and runs again on a fresh one. Without the retry
/// the read after the termination is `Unavailable`.
#[test]
fn postgres_reads_survive_their_idle_connection_ending() {
    let Some(db) = PgDb::new("postgres_reads_survive_their_idle_connection_ending") else {
        return;
    };
    let mut s = open_sql(&db.url());
    fill(&mut s);
    check_filled(&s);
    // Every other session of this database: the kept read connection, the
    // pool's, anything idle.
    let ended = db.query_text(
        "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(
        ended.iter().any(|t| t == "true"),
        "the store kept a connection to end: {ended:?}"
    );
    check_filled(&s);
    assert!(s.subscription_by_device(&id("NO-SUCH")).unwrap().is_none());
    // Group commits run on kept connections too: ended again, the next
    // group begins on a fresh one.
    let ended = db.query_text(
        "SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(ended.iter().any(|t| t == "true"), "{ended:?}");
    let n = s.allocate_msin().unwrap();
    s.put_subscription(sub("DEV-2", n, 2)).unwrap();
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().is_some());
    check_filled(&s);
}

#[test]
fn two_stores_on_one_postgres_database_never_share_an_msin() {
    const PER_THREAD: usize = 150;
    const RANGE: u64 = 250;
    let Some(db) = PgDb::new("two_stores_on_one_postgres_database_never_share_an_msin") else {
        return;
    };
    let url = db.url();
    // Two processes' worth of stores, opened at the same moment: both migrate safely.
    let opened: Vec<SqlStore> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| SqlStore::open(&url, kek()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    opened[0].set_msin_range(RANGE).unwrap();
    let results: Vec<Vec<Result<u64, StoreError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = opened
            .into_iter()
            .map(|mut s| {
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|_| s.allocate_msin())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = BTreeSet::new();
    let mut exhausted = 0;
    for r in results.into_iter().flatten() {
        match r {
            Ok(n) => assert!(seen.insert(n), "MSIN {n} handed out twice"),
            Err(StoreError::Exhausted) => exhausted += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(seen, (1..=RANGE).collect::<BTreeSet<_>>());
    assert_eq!(exhausted, 2 * PER_THREAD - RANGE as usize);
}

#[test]
fn two_sqlite_stores_on_one_file_never_share_an_msin() {
    const PER_THREAD: usize = 100;
    let dir = TempDir::new();
    let url = dir.db();
    let first = open_sql(&url);
    first.set_msin_range(1_000).unwrap();
    let second = SqlStore::open(&url, kek()).unwrap();
    let all: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = [first, second]
            .into_iter()
            .map(|mut s| {
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|_| s.allocate_msin().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 2 * PER_THREAD);
}

/// On SQLite the core's reads run on the caller's thread, on read-only
/// connections of their own (issue #11): they must still see every commit
/// of another handle (another process) at once, only committed state, and
/// never wait for a writer.
#[test]
fn sqlite_reads_see_other_handles_commits_and_never_wait_for_a_writer() {
    let dir = TempDir::new();
    let url = dir.db();
    let mut writer = open_sql(&url);
    let reader = SqlStore::open(&url, kek()).unwrap();
    assert!(
        reader
            .subscription_by_device(&id("DEV-1"))
            .unwrap()
            .is_none()
    );
    writer.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    assert_same(
        &reader
            .subscription_by_device(&id("DEV-1"))
            .unwrap()
            .unwrap(),
        &sub("DEV-1", 1, 1),
    );
    // A new K for the same device and SUPI: seen by SUPI at once.
    writer.put_subscription(sub("DEV-1", 1, 2)).unwrap();
    assert_same(
        &reader.subscription_by_supi(&supi(1)).unwrap().unwrap(),
        &sub("DEV-1", 1, 2),
    );
    // A claim made through another handle counts at the next read.
    assert!(reader.owner_of_device(&id("DEV-1")).unwrap().is_none());
    writer.put_owner(owner("acme")).unwrap();
    writer.add_claimable(&id("DEV-1"), "hash-1").unwrap();
    writer.claim("acme", "hash-1").unwrap();
    assert_eq!(
        reader.owner_of_device(&id("DEV-1")).unwrap().map(|o| o.id),
        Some("acme".to_owned())
    );
    // A writer holding its transaction open (another process releasing the
    // subscription): reads answer at once with the committed state, then
    // see the release as soon as it commits.
    let path = url.strip_prefix("sqlite://").unwrap_or(&url);
    let other = rusqlite::Connection::open(path).unwrap();
    other.busy_timeout(Duration::from_secs(10)).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let changed = other
        .execute(
            "UPDATE subscriptions SET state = 'released' WHERE device = ?1",
            [id("DEV-1").to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    // (Were the file not in WAL mode, the read would wait out the busy
    // timeout and fail as unavailable.)
    let seen = reader
        .subscription_by_device(&id("DEV-1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        seen.state,
        sub("DEV-1", 1, 2).state,
        "uncommitted state was read"
    );
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(
        reader
            .subscription_by_device(&id("DEV-1"))
            .unwrap()
            .unwrap()
            .state,
        SubscriptionState::Released
    );
    // Many threads reading at once each get an answer.
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..50 {
                    assert!(reader.subscription_by_supi(&supi(1)).unwrap().is_some());
                }
            });
        }
    });
    assert_eq!(reader.take_error(), None);
}

/// The secrets `fill` stored, in the forms they could leak in.
fn secret_patterns() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for secret in [vec![KEY_K; 16], vec![KEY_OPC; 16], PSK.to_vec()] {
        out.push(hex::encode(&secret).into_bytes());
        out.push(hex::encode_upper(&secret).into_bytes());
        out.push(secret);
    }
    out.push(b"BEGIN PRIVATE KEY".to_vec());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_secret_in_clear_in_the_sqlite_file() {
    let dir = TempDir::new();
    {
        let mut s = open_sql(&dir.db());
        fill(&mut s);
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 4096);
    // The test would see them: the device serial and SUPI are in clear.
    assert!(contains(&bytes, b"DEV-1"));
    assert!(contains(&bytes, supi(1).to_string().as_bytes()));
    for p in secret_patterns() {
        assert!(
            !contains(&bytes, &p),
            "{:?} found in clear",
            String::from_utf8_lossy(&p)
        );
    }
}

#[test]
fn no_secret_in_clear_in_the_postgres_tables() {
    let Some(db) = PgDb::new("no_secret_in_clear_in_the_postgres_tables") else {
        return;
    };
    {
        let mut s = open_sql(&db.url());
        fill(&mut s);
    }
    let tables = db
        .query_text("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    assert!(tables.contains(&"subscriptions".to_owned()), "{tables:?}");
    // Every row of every table as text (bytea as \x hex), and as its raw tuple octets.
    let mut dump = Vec::new();
    for t in &tables {
        for row in db.query_text(&format!("SELECT t::text FROM {t} t")) {
            dump.extend(row.into_bytes());
        }
        for row in db.query_text(&format!(
            "SELECT encode(textsend(t::text), 'hex') FROM {t} t"
        )) {
            dump.extend(hex::decode(row).unwrap());
        }
    }
    // The heap files themselves, when the server is on this machine and readable.
    db.query_text("CHECKPOINT");
    let data_dir = db.query_text("SELECT current_setting('data_directory')");
    let mut files_read = 0;
    for t in &tables {
        let rel = db.query_text(&format!("SELECT pg_relation_filepath('{t}')::text"));
        if let Ok(bytes) = std::fs::read(PathBuf::from(&data_dir[0]).join(&rel[0])) {
            files_read += 1;
            dump.extend(bytes);
        }
    }
    eprintln!("read {files_read} heap files of {} tables", tables.len());
    assert!(contains(&dump, b"DEV-1"));
    for p in secret_patterns() {
        assert!(
            !contains(&dump, &p),
            "{:?} found in clear",
            String::from_utf8_lossy(&p)
        );
    }
}

#[test]
fn the_provisioning_log_follows_package_ids() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    let mut same = sub("DEV-1", 1, 1);
    same.state = SubscriptionState::Active;
    s.put_subscription(same).unwrap();
    s.put_subscription(sub("DEV-1", 1, 2)).unwrap();
    let log = s.provisioning_log(&id("DEV-1")).unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].package_id, [1; 16]);
    assert!(!log[0].reprovisioned);
    assert_eq!(log[1].package_id, [2; 16]);
    assert!(log[1].reprovisioned);
    assert_eq!(log[1].supi, "imsi-999990000000001");
}

#[test]
fn audit_devices_and_trust_data() {
    use nido_net::{ConnectionId, NetworkEvent};
    use nido_pki::{Manufacturer, Policy};

    let dir = TempDir::new();
    let s = open_sql(&dir.db());
    for i in 0..5 {
        s.append_audit(AuditEntry::from_event(
            1000 + i,
            &NetworkEvent::Refused {
                presented: None,
                conn: ConnectionId(i),
                device: Some(id(&format!("DEV-{i}"))),
                cause: Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
                reason: "not claimed".into(),
            },
        ))
        .unwrap();
    }
    // The trait's audit hook lands in the same table.
    let mut s = s;
    s.record_event(
        1004,
        &NetworkEvent::PackageDelivered {
            device: id("DEV-9"),
            supi: supi(9),
            reprovisioned: true,
            after_reset: None,
            certificate: None,
        },
    );
    assert_eq!(s.take_error(), None);
    let last = s.audit(2).unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[0].at, 1004);
    assert_eq!(last[0].device.as_deref(), Some("Acme/DEV-4"));
    assert_eq!(last[0].cause, Some(75));
    assert_eq!(last[0].kind, "refused");
    assert_eq!(last[1].kind, "package_delivered");
    assert_eq!(last[1].supi.as_deref(), Some("imsi-999990000000009"));
    assert_eq!(last[1].device.as_deref(), Some("Acme/DEV-9"));
    assert_eq!(s.audit(100).unwrap().len(), 6);

    s.touch_device("DEV-1", "onboarding", 10).unwrap();
    s.touch_device("DEV-1", "active", 20).unwrap();
    s.touch_device("DEV-0", "refused", 15).unwrap();
    let devices = s.devices().unwrap();
    let dev1 = devices.iter().find(|d| d.serial == "DEV-1").unwrap();
    assert_eq!((dev1.first_seen, dev1.last_seen), (10, 20));
    assert_eq!(dev1.state, "active");
    // record_event keeps the devices table too.
    let dev9 = devices.iter().find(|d| d.serial == "Acme/DEV-9").unwrap();
    assert_eq!(
        (dev9.state.as_str(), dev9.last_seen),
        ("provisioning", 1004)
    );
    assert_eq!(devices.len(), 3);

    let now = SystemTime::now();
    let m = Manufacturer::generate("acme", now).unwrap();
    let policy = Policy::for_manufacturer(&m);
    s.put_manufacturer("acme", m.root_der(), &policy).unwrap();
    let listed = s.manufacturers().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].policy, policy);
    assert_eq!(listed[0].root_der, m.root_der().to_vec());
    // A CRL of an unknown manufacturer is refused by the foreign key.
    let crl = m
        .crl(&[], now, now + Duration::from_secs(86_400), 1)
        .unwrap();
    assert!(matches!(
        s.add_crl("nobody", &crl, m.issuing_der(), 1),
        Err(SqlStoreError::Store(StoreError::NotFound(_)))
    ));
    s.add_crl("acme", &crl, m.issuing_der(), 100).unwrap();
    let newer = m
        .crl(&[], now, now + Duration::from_secs(86_400), 2)
        .unwrap();
    s.add_crl("acme", &newer, m.issuing_der(), 200).unwrap();
    // An older one does not replace the newer.
    s.add_crl("acme", &crl, m.issuing_der(), 150).unwrap();
    let crls = s.crls().unwrap();
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].crl_der, newer.to_vec());

    let stolen = DeviceId::new("acme", "ACME-000007").unwrap();
    assert!(s.block(&stolen, "stolen").unwrap());
    assert!(!s.block(&stolen, "again").unwrap());
    assert_eq!(s.blocked().unwrap()[0].reason, "stolen");
    let trust = s.trust_store().unwrap();
    assert_eq!(trust.manufacturers().collect::<Vec<_>>(), vec!["acme"]);
    assert!(trust.is_blocked(&stolen));
    // Blocking names the manufacturer: another's device of that serial is not blocked.
    assert!(!trust.is_blocked(&DeviceId::new("other", "ACME-000007").unwrap()));
    assert_eq!(s.blocked().unwrap()[0].serial, "acme/ACME-000007");
    assert!(s.unblock(&stolen).unwrap());
    assert!(!s.unblock(&stolen).unwrap());

    // A serial blocked before schema 4 while no manufacturer was enrolled
    // (the migration left it bare) blocks it under every manufacturer; it
    // does not stop the trust store from loading.
    {
        use sqlx::{Connection, Executor};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = sqlx::SqliteConnection::connect(&dir.db()).await.unwrap();
            c.execute("INSERT INTO blocked (serial, reason, at) VALUES ('ACME-000008', 'old', 1)")
                .await
                .unwrap();
            c.close().await.unwrap();
        });
    }
    let trust = s.trust_store().unwrap();
    assert!(trust.is_blocked(&DeviceId::new("acme", "ACME-000008").unwrap()));
    assert!(!trust.is_blocked(&stolen));
}

#[test]
fn the_audit_trail_is_append_only() {
    let Some(db) = PgDb::new("the_audit_trail_is_append_only") else {
        return;
    };
    let s = open_sql(&db.url());
    s.append_audit(AuditEntry::new(1, "note", "x")).unwrap();
    drop(s);
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
        for sql in [
            "UPDATE audit SET detail = 'y'",
            "DELETE FROM audit",
            "TRUNCATE audit",
        ] {
            let err = sqlx::query(sql).execute(&mut c).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    });
    // SQLite's triggers too.
    let dir = TempDir::new();
    let s = open_sql(&dir.db());
    s.append_audit(AuditEntry::new(1, "note", "x")).unwrap();
    drop(s);
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&dir.db()).await.unwrap();
        for sql in ["UPDATE audit SET detail = 'y'", "DELETE FROM audit"] {
            let err = sqlx::query(sql).execute(&mut c).await.unwrap_err();
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
    });
}

#[test]
fn msin_range_cannot_shrink_below_what_is_allocated() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    s.allocate_msin().unwrap();
    s.allocate_msin().unwrap();
    assert!(matches!(
        s.set_msin_range(1),
        Err(SqlStoreError::Store(StoreError::Conflict(_)))
    ));
    s.set_msin_range(2).unwrap();
    assert_eq!(s.allocate_msin(), Err(StoreError::Exhausted));
    s.set_msin_range(10).unwrap();
    assert_eq!(s.allocate_msin(), Ok(3));
}

#[test]
fn a_claimed_device_is_not_taken_by_a_later_import() {
    // Issue #17: a second import (or a second code) must not give a claimed
    // device to another owner; the first claim stands.
    let dir = TempDir::new();
    let mut sql = open_sql(&dir.db());
    let mut memory = nido_net::MemoryStore::new(MSINS);
    for s in [&mut sql as &mut dyn Store, &mut memory] {
        s.put_owner(owner("acme")).unwrap();
        s.put_owner(owner("globex")).unwrap();
        s.add_claimable(&id("DEV-1"), "hash-1").unwrap();
        s.claim("acme", "hash-1").unwrap();
        // Importing the same row again, or a new code, is refused.
        for hash in ["hash-1", "hash-evil"] {
            let e = s.add_claimable(&id("DEV-1"), hash).unwrap_err();
            assert!(
                matches!(&e, StoreError::Conflict(m) if m.contains("first claim stands")),
                "{e:?}"
            );
        }
        assert!(matches!(
            s.claim("globex", "hash-1"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.claim("globex", "hash-evil"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.owner_of_device(&id("DEV-1")).unwrap().unwrap().id, "acme");
        // A code already registered for one device is not moved to another.
        s.add_claimable(&id("DEV-2"), "hash-2").unwrap();
        if let Err(e) = s.add_claimable(&id("DEV-3"), "hash-2") {
            assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        }
    }
    // The SQL store refuses moving a code outright.
    assert!(matches!(
        sql.add_claimable(&id("DEV-3"), "hash-2"),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(sql.claim("globex", "hash-2").unwrap(), id("DEV-2"));
}

#[test]
fn claim_code_hashes_are_stored_keyed() {
    // Issue #17: a dump of the claims table is no dictionary: what is stored
    // is an HMAC under a key derived from the KEK, not the SHA-256 the
    // claims file and the owner give.
    let code_hash = nido_pki::claim_code_hash("7K3M-QX2T-9HZD-0WFA");
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    s.add_claimable(&id("DEV-1"), &code_hash).unwrap();
    let stored = sqlite_text(&dir.db(), "SELECT claim_code_hash FROM claims");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], code_hash);
    assert!(!stored[0].contains(&code_hash[..16]));
    // Another KEK gives another value: the key is the store's own.
    let dir2 = TempDir::new();
    let mut other = SqlStore::open(&dir2.db(), Kek::new([0x17; 32])).unwrap();
    other.add_claimable(&id("DEV-1"), &code_hash).unwrap();
    assert_ne!(
        sqlite_text(&dir2.db(), "SELECT claim_code_hash FROM claims"),
        stored
    );
    s.put_owner(owner("acme")).unwrap();
    assert_eq!(s.claim("acme", &code_hash).unwrap(), id("DEV-1"));

    // A row written before schema 4 (plain SHA-256, `keyed` false) is
    // re-keyed when the store opens, and still claims.
    let legacy = nido_pki::claim_code_hash("0000-1111-2222-3333");
    sqlite_exec(
        &dir.db(),
        &format!(
            "INSERT INTO claims (claim_code_hash, device, keyed) \
             VALUES ('{legacy}', 'Acme/DEV-7', FALSE)"
        ),
    );
    drop(s);
    let mut s = SqlStore::open(&dir.db(), kek()).unwrap();
    let stored = sqlite_text(&dir.db(), "SELECT claim_code_hash FROM claims");
    assert!(!stored.contains(&legacy), "{stored:?}");
    assert_eq!(s.claim("acme", &legacy).unwrap(), id("DEV-7"));
}

fn sqlite_text(url: &str, sql: &str) -> Vec<String> {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        rows
    })
}

fn sqlite_exec(url: &str, sql: &str) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
}

#[test]
fn open_errors_are_clear() {
    assert!(matches!(
        SqlStore::open("mysql://localhost/nido", kek()),
        Err(StoreOpenError::BadUrl(_))
    ));
    assert!(matches!(
        SqlStore::open("postgres://nido:pw@127.0.0.1:1/nido", kek()),
        Err(StoreOpenError::Unreachable { .. })
    ));
    let err = SqlStore::open("postgres://nido:s3cret@127.0.0.1:1/nido", kek()).unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(matches!(
        SqlStore::open("/nonexistent-dir/sub/nido.db", kek()),
        Err(StoreOpenError::Unreachable { .. })
    ));
    if nido_testkit::postgres("open_errors_are_clear (a database that refuses)").is_some() {
        let missing = format!(
            "{}/nido_no_such_database_{}",
            pg_base().rsplit_once('/').unwrap().0,
            std::process::id()
        );
        let err = SqlStore::open(&missing, kek()).unwrap_err();
        assert!(matches!(err, StoreOpenError::Refused { .. }), "{err}");
    }
    // From inside a tokio runtime: refused, not a panic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = TempDir::new();
    let inside = rt.block_on(async { SqlStore::open(&dir.db(), kek()).map(|_| ()) });
    assert_eq!(inside, Err(StoreOpenError::InsideRuntime));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    drop(open_sql(&dir.db()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&dir.db()).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', TRUE, x'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    });
    let err = SqlStore::open(&dir.db(), kek()).unwrap_err();
    assert!(
        matches!(&err, StoreOpenError::Migration(m) if m.contains("99")),
        "{err}"
    );
}

#[test]
fn a_lost_database_is_reported_not_panicked() {
    let Some(db) = PgDb::new("a_lost_database_is_reported_not_panicked") else {
        return;
    };
    let mut s = open_sql(&db.url());
    s.put_owner(owner("acme")).unwrap();
    s.add_claimable(&id("DEV-1"), "hash-1").unwrap();
    s.claim("acme", "hash-1").unwrap();
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    pg_admin(format!("DROP DATABASE {} WITH (FORCE)", db.name)).unwrap();
    let unavailable = |what: &str, r: Result<(), StoreError>| {
        let err = r.expect_err(what);
        assert!(
            matches!(&err, StoreError::Unavailable(m) if !m.is_empty()),
            "{what}: {err:?}"
        );
    };
    // Reads: an error, never "absent" (the subscription and the owner exist).
    unavailable(
        "subscription_by_device",
        s.subscription_by_device(&id("DEV-1")).map(drop),
    );
    unavailable(
        "subscription_by_supi",
        s.subscription_by_supi(&supi(1)).map(drop),
    );
    unavailable("subscriptions", s.subscriptions().map(drop));
    unavailable("owner_of_device", s.owner_of_device(&id("DEV-1")).map(drop));
    // Writes.
    unavailable("put_owner", s.put_owner(owner("globex")));
    unavailable("add_claimable", s.add_claimable(&id("DEV-2"), "hash-2"));
    unavailable("put_subscription", s.put_subscription(sub("DEV-2", 2, 2)));
    unavailable("allocate_msin", s.allocate_msin().map(drop));
    unavailable("claim", s.claim("acme", "hash-2").map(drop));
    // Nothing was kept behind the caller's back; only the best-effort audit
    // hook keeps its failure.
    assert_eq!(s.take_error(), None);
    s.record_event(
        1,
        &nido_net::NetworkEvent::Deregistered {
            conn: nido_net::ConnectionId(1),
        },
    );
    assert!(
        matches!(
            s.take_error(),
            Some(SqlStoreError::Store(StoreError::Unavailable(_)))
        ),
        "record_event keeps its failure"
    );
}

#[test]
fn a_sealed_key_moved_to_another_row_does_not_open() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    s.put_subscription(sub("DEV-2", 2, 2)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&dir.db()).await.unwrap();
        sqlx::query(
            "UPDATE subscriptions SET k_enc = (SELECT k_enc FROM subscriptions WHERE device = 'Acme/DEV-2') \
             WHERE device = 'Acme/DEV-1'",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    });
    // Reported, not taken for "absent" (and not for "unavailable").
    let err = s.subscription_by_device(&id("DEV-1")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.starts_with("stored data")),
        "{err:?}"
    );
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().unwrap().k == k(2));
    // A listing with a row that does not open fails as a whole.
    assert!(matches!(
        s.subscriptions(),
        Err(StoreError::Conflict(m)) if m.starts_with("stored data")
    ));
    assert_eq!(s.take_error(), None);
}

#[test]
fn sql_store_can_move_to_the_driver_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SqlStore>();
}

/// A change of a subscription and the audit entry reporting it commit in
/// one transaction: both are there, or (the change refused) neither.
fn a_change_and_its_audit_entry_commit_together(s: &mut SqlStore) {
    use nido_net::NetworkEvent;

    let delivered = |device: &str, n: u64| NetworkEvent::PackageDelivered {
        device: id(device),
        supi: supi(n),
        reprovisioned: false,
        after_reset: None,
        certificate: None,
    };
    assert!(delivered("DEV-1", 1).recorded_with_change());
    s.put_subscription_audited(sub("DEV-1", 1, 1), 2000, &[delivered("DEV-1", 1)])
        .unwrap();
    let trail = s.audit(10).unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].kind, "package_delivered");
    assert_eq!(trail[0].device.as_deref(), Some("Acme/DEV-1"));
    assert_eq!(trail[0].at, 2000);
    let dev = s.devices().unwrap();
    assert_eq!(dev.len(), 1);
    assert_eq!(dev[0].state, "provisioning");

    // DEV-2 asking for DEV-1's SUPI is refused: no subscription, no entry,
    // no device row.
    let refused = s.put_subscription_audited(sub("DEV-2", 1, 2), 2001, &[delivered("DEV-2", 1)]);
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(s.audit(10).unwrap().len(), 1);
    assert_eq!(s.devices().unwrap().len(), 1);
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().is_none());
    assert_eq!(s.take_error(), None);
}

#[test]
fn a_change_and_its_audit_entry_commit_together_sqlite() {
    let dir = TempDir::new();
    a_change_and_its_audit_entry_commit_together(&mut open_sql(&dir.db()));
}

#[test]
fn a_change_and_its_audit_entry_commit_together_postgres() {
    let Some(db) = PgDb::new("a_change_and_its_audit_entry_commit_together_postgres") else {
        return;
    };
    a_change_and_its_audit_entry_commit_together(&mut open_sql(&db.url()));
}

/// Every change of the trust data advances the trust generation in its own
/// transaction (schema 3's triggers), a change that changes nothing does
/// not, and another connection (a serving network) sees it at once.
fn every_trust_change_advances_the_generation(s: &SqlStore, watcher: &SqlStore) {
    use nido_pki::{Manufacturer, Policy};
    let now = SystemTime::now();
    let m = Manufacturer::generate("acme", now).unwrap();
    let mut last = watcher.trust_generation().unwrap();
    let mut moved = |what: &str, expect: bool| {
        let g = watcher.trust_generation().unwrap();
        assert_eq!(g != last, expect, "{what}: generation {last} -> {g}");
        assert!(g >= last, "{what}: went back");
        last = g;
    };
    s.put_manufacturer("acme", m.root_der(), &Policy::for_manufacturer(&m))
        .unwrap();
    moved("enrolment", true);
    let mut p = Policy::for_manufacturer(&m);
    p.allow_without_crl = true;
    s.put_manufacturer("acme", m.root_der(), &p).unwrap();
    moved("policy change", true);
    let crl = m
        .crl(&[], now, now + Duration::from_secs(86_400), 1)
        .unwrap();
    s.add_crl("acme", &crl, m.issuing_der(), 100).unwrap();
    moved("CRL import", true);
    s.add_crl("acme", &crl, m.issuing_der(), 50).unwrap();
    moved("an older CRL (kept out)", false);
    let stolen = nido_pki::DeviceId::new("acme", "ACME-000007").unwrap();
    assert!(s.block(&stolen, "stolen").unwrap());
    moved("block", true);
    assert!(!s.block(&stolen, "again").unwrap());
    moved("a block already there", false);
    assert!(s.unblock(&stolen).unwrap());
    moved("unblock", true);
    // Neither subscriptions nor the audit trail are trust data.
    s.append_audit(AuditEntry::new(1, "note", "x")).unwrap();
    moved("audit entry", false);
}

#[test]
fn every_trust_change_advances_the_generation_sqlite() {
    let dir = TempDir::new();
    let s = open_sql(&dir.db());
    every_trust_change_advances_the_generation(&s, &open_sql(&dir.db()));
}

#[test]
fn every_trust_change_advances_the_generation_postgres() {
    let Some(db) = PgDb::new("every_trust_change_advances_the_generation_postgres") else {
        return;
    };
    let s = open_sql(&db.url());
    every_trust_change_advances_the_generation(&s, &open_sql(&db.url()));
}

/// A manufacturer's quota is checked and counted with the allocation, in
/// one transaction: beyond it nothing is allocated (the range's counter
/// stays), other manufacturers still get MSINs.
fn allocation_within_a_manufacturers_quota(s: &mut SqlStore) {
    s.set_msin_range(10).unwrap();
    assert_eq!(s.allocate_msin_for("acme", 2).unwrap(), 1);
    assert_eq!(s.allocate_msin_for("acme", 2).unwrap(), 2);
    assert!(matches!(
        s.allocate_msin_for("acme", 2),
        Err(StoreError::QuotaReached { ref manufacturer, max: 2 }) if manufacturer == "acme"
    ));
    assert_eq!(s.msin_range().unwrap(), (2, 10), "nothing allocated");
    assert_eq!(s.allocated_for("acme").unwrap(), 2);
    assert_eq!(s.allocated_for("nobody").unwrap(), 0);
    assert_eq!(s.allocate_msin_for("other", 2).unwrap(), 3);
    // A raised quota lets it go on.
    assert_eq!(s.allocate_msin_for("acme", 3).unwrap(), 4);
    // An exhausted range counts nothing against the quota.
    s.set_msin_range(4).unwrap();
    assert_eq!(s.allocate_msin_for("new", 5), Err(StoreError::Exhausted));
    s.set_msin_range(5).unwrap();
    assert_eq!(s.allocate_msin_for("new", 1).unwrap(), 5);
}

#[test]
fn allocation_within_a_manufacturers_quota_sqlite() {
    let dir = TempDir::new();
    allocation_within_a_manufacturers_quota(&mut open_sql(&dir.db()));
}

#[test]
fn allocation_within_a_manufacturers_quota_postgres() {
    let Some(db) = PgDb::new("allocation_within_a_manufacturers_quota_postgres") else {
        return;
    };
    allocation_within_a_manufacturers_quota(&mut open_sql(&db.url()));
}

// ---------------------------------------------------------------------------
// Group commit (issue #11): `Store::apply`, `lease_msins`, `count_allocation`.

fn delivered(device: &str, n: u64) -> nido_net::NetworkEvent {
    nido_net::NetworkEvent::PackageDelivered {
        device: id(device),
        supi: supi(n),
        reprovisioned: false,
        after_reset: None,
        certificate: None,
    }
}

fn sqn_write(n: u64, seq: u64) -> Write {
    Write::Sqn {
        supi: supi(n),
        sqn: HeSqn {
            seq,
            ind: (seq % 32) as u8,
        },
    }
}

fn state_write(n: u64, state: SubscriptionState, at_unix: u64) -> Write {
    Write::State {
        supi: supi(n),
        state,
        at_unix,
        audit: vec![],
    }
}

fn sub_write(s: Subscription, at_unix: u64, audit: Vec<nido_net::NetworkEvent>) -> Write {
    Write::Subscription {
        sub: s,
        at_unix,
        audit,
    }
}

/// One batch of every kind of write: all of it is there after `apply`, the
/// audit entries in the batch's order, a `Registered` event's device found
/// through the subscription written earlier in the same batch.
fn a_batch_commits_every_kind_of_write(s: &mut SqlStore) {
    use nido_net::{ConnectionId, NetworkEvent};

    let mut a = sub("DEV-1", 1, KEY_K);
    a.package_id = [0x31; 16];
    let counted = || Write::Counted {
        manufacturer: "acme".into(),
    };
    let batch = vec![
        sub_write(a.clone(), 3000, vec![delivered("DEV-1", 1)]),
        Write::Sqn {
            supi: supi(1),
            sqn: HeSqn { seq: 33, ind: 3 },
        },
        Write::State {
            supi: supi(1),
            state: SubscriptionState::Provisioned,
            at_unix: 3001,
            audit: vec![NetworkEvent::Provisioned {
                device: id("DEV-1"),
                supi: supi(1),
            }],
        },
        counted(),
        counted(),
        counted(),
        Write::Audit {
            at_unix: 3002,
            events: vec![
                NetworkEvent::Registered {
                    conn: ConnectionId(7),
                    supi: supi(1),
                },
                NetworkEvent::DeviceAuthenticated {
                    conn: ConnectionId(8),
                    device: id("DEV-2"),
                },
            ],
        },
    ];
    s.apply(&batch).unwrap();

    let mut want = a;
    want.sqn = HeSqn { seq: 33, ind: 3 };
    want.state = SubscriptionState::Provisioned;
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &want);
    assert_eq!(s.allocated_for("acme").unwrap(), 3);
    assert_eq!(s.allocated_for("other").unwrap(), 0);
    let trail: Vec<(String, u64)> = s
        .audit(10)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.at))
        .collect();
    assert_eq!(
        trail,
        vec![
            ("package_delivered".into(), 3000),
            ("provisioned".into(), 3001),
            ("registered".into(), 3002),
            ("device_authenticated".into(), 3002),
        ]
    );
    let devices: Vec<(String, String, u64, u64)> = s
        .devices()
        .unwrap()
        .into_iter()
        .map(|d| (d.serial, d.state, d.first_seen, d.last_seen))
        .collect();
    assert_eq!(
        devices,
        vec![
            ("Acme/DEV-1".into(), "active".into(), 3000, 3002),
            ("Acme/DEV-2".into(), "authenticated".into(), 3002, 3002),
        ]
    );
    let log = s.provisioning_log(&id("DEV-1")).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].package_id, [0x31; 16]);
    assert!(!log[0].reprovisioned);

    // `count_allocation` counts one, alone.
    s.count_allocation("acme").unwrap();
    assert_eq!(s.allocated_for("acme").unwrap(), 4);
    // An empty batch writes nothing.
    s.apply(&[]).unwrap();
    assert_eq!(s.audit(10).unwrap().len(), 4);
    assert_eq!(s.take_error(), None);
}

#[test]
fn a_batch_commits_every_kind_of_write_sqlite() {
    let dir = TempDir::new();
    a_batch_commits_every_kind_of_write(&mut open_sql(&dir.db()));
}

#[test]
fn a_batch_commits_every_kind_of_write_postgres() {
    let Some(db) = PgDb::new("a_batch_commits_every_kind_of_write_postgres") else {
        return;
    };
    a_batch_commits_every_kind_of_write(&mut open_sql(&db.url()));
}

/// What the writes of `a_batch_that_fails_writes_nothing` before the
/// failing one would have left: none of it is there.
fn assert_nothing_of_dev1(s: &SqlStore) {
    assert!(s.subscription_by_device(&id("DEV-1")).unwrap().is_none());
    assert!(s.subscription_by_supi(&supi(1)).unwrap().is_none());
    assert_eq!(s.allocated_for("acme").unwrap(), 0);
    assert!(s.audit(10).unwrap().is_empty());
    assert!(s.devices().unwrap().is_empty());
    assert!(s.provisioning_log(&id("DEV-1")).unwrap().is_empty());
    // The subscription already there is as it was.
    let kept = s.subscription_by_supi(&supi(9)).unwrap().unwrap();
    assert_eq!(kept.device, id("DEV-9"));
    assert!(kept.k == k(9));
    assert_eq!(kept.sqn, HeSqn::default());
}

/// A batch whose third write fails (a SUPI of another device, a SUPI
/// without a subscription) writes none of its writes.
fn a_batch_that_fails_writes_nothing(s: &mut SqlStore) {
    use nido_net::{ConnectionId, NetworkEvent};

    s.put_subscription(sub("DEV-9", 9, 9)).unwrap();
    let first_two = || {
        vec![
            sub_write(sub("DEV-1", 1, 1), 10, vec![delivered("DEV-1", 1)]),
            Write::Counted {
                manufacturer: "acme".into(),
            },
        ]
    };

    let mut conflict = first_two();
    conflict.push(sub_write(sub("DEV-2", 9, 2), 10, vec![]));
    let err = s.apply(&conflict).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_nothing_of_dev1(s);
    assert!(s.subscription_by_device(&id("DEV-2")).unwrap().is_none());

    for third in [
        sqn_write(5, 7),
        state_write(5, SubscriptionState::Active, 11),
        Write::State {
            supi: supi(5),
            state: SubscriptionState::Active,
            at_unix: 11,
            audit: vec![NetworkEvent::Registered {
                conn: ConnectionId(1),
                supi: supi(5),
            }],
        },
    ] {
        let mut batch = first_two();
        batch.push(third.clone());
        // Writes after the failing one change nothing either.
        batch.push(sqn_write(9, 99));
        let err = s.apply(&batch).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{third:?}: {err:?}");
        assert_nothing_of_dev1(s);
    }

    // A SUPI its device left earlier in the batch has no subscription by
    // the time of the third write.
    let moved = vec![
        sub_write(sub("DEV-9", 8, 9), 10, vec![]),
        Write::Audit {
            at_unix: 10,
            events: vec![delivered("DEV-9", 8)],
        },
        sqn_write(9, 4),
    ];
    let err = s.apply(&moved).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert!(s.subscription_by_supi(&supi(8)).unwrap().is_none());
    assert_nothing_of_dev1(s);
    // In the other order the batch goes through.
    s.apply(&[moved[2].clone(), moved[0].clone(), moved[1].clone()])
        .unwrap();
    let now = s.subscription_by_device(&id("DEV-9")).unwrap().unwrap();
    assert_eq!(now.supi, supi(8));
    assert_eq!(
        now.sqn,
        HeSqn::default(),
        "the subscription came after the SQN"
    );
    assert!(s.subscription_by_supi(&supi(9)).unwrap().is_none());
    assert_eq!(s.take_error(), None);
}

#[test]
fn a_batch_that_fails_writes_nothing_sqlite() {
    let dir = TempDir::new();
    a_batch_that_fails_writes_nothing(&mut open_sql(&dir.db()));
}

#[test]
fn a_batch_that_fails_writes_nothing_postgres() {
    let Some(db) = PgDb::new("a_batch_that_fails_writes_nothing_postgres") else {
        return;
    };
    a_batch_that_fails_writes_nothing(&mut open_sql(&db.url()));
}

/// An SQN write changes the SQN alone (an operator's release made since
/// stands), a state write the state alone (K, OPc, the package, the SQN
/// stay): issue #11 item 4.
fn an_sqn_or_state_write_changes_only_its_column(s: &mut SqlStore) {
    let mut a = sub("DEV-1", 1, KEY_K);
    a.state = SubscriptionState::Active;
    a.sqn = HeSqn { seq: 5, ind: 1 };
    a.package_id = [0x44; 16];
    a.owner = Some("acme".into());
    s.put_subscription(a.clone()).unwrap();
    assert!(matches!(
        s.release(&id("DEV-1"), 100, "factory reset").unwrap(),
        nido_store::Release::Released { .. }
    ));
    s.apply(&[Write::Sqn {
        supi: supi(1),
        sqn: HeSqn { seq: 6, ind: 2 },
    }])
    .unwrap();
    let mut want = a;
    want.state = SubscriptionState::Released;
    want.sqn = HeSqn { seq: 6, ind: 2 };
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &want);

    s.apply(&[state_write(1, SubscriptionState::Active, 101)])
        .unwrap();
    want.state = SubscriptionState::Active;
    assert_same(&s.subscription_by_supi(&supi(1)).unwrap().unwrap(), &want);
    // Neither wrote a package.
    assert_eq!(s.provisioning_log(&id("DEV-1")).unwrap().len(), 1);
    assert_eq!(s.take_error(), None);
}

#[test]
fn an_sqn_or_state_write_changes_only_its_column_sqlite() {
    let dir = TempDir::new();
    an_sqn_or_state_write_changes_only_its_column(&mut open_sql(&dir.db()));
}

#[test]
fn an_sqn_or_state_write_changes_only_its_column_postgres() {
    let Some(db) = PgDb::new("an_sqn_or_state_write_changes_only_its_column_postgres") else {
        return;
    };
    an_sqn_or_state_write_changes_only_its_column(&mut open_sql(&db.url()));
}

/// Leases never overlap (with each other nor with single allocations),
/// take at least one, stop at the end of the range, then `Exhausted`.
fn msin_leases_never_overlap(s: &mut SqlStore) {
    s.set_msin_range(10).unwrap();
    assert_eq!(s.lease_msins(4).unwrap(), 1..5);
    assert_eq!(s.allocate_msin().unwrap(), 5);
    assert_eq!(s.lease_msins(3).unwrap(), 6..9);
    assert_eq!(s.lease_msins(0).unwrap(), 9..10, "at least one");
    assert_eq!(s.lease_msins(5).unwrap(), 10..11, "clipped at the end");
    assert_eq!(s.msin_range().unwrap(), (10, 10));
    assert_eq!(s.lease_msins(1), Err(StoreError::Exhausted));
    assert_eq!(s.allocate_msin(), Err(StoreError::Exhausted));
    assert_eq!(s.msin_range().unwrap(), (10, 10));
    // A wider range: leases go on where they stopped.
    s.set_msin_range(12).unwrap();
    assert_eq!(s.lease_msins(100).unwrap(), 11..13);
    assert_eq!(s.lease_msins(100), Err(StoreError::Exhausted));
}

#[test]
fn msin_leases_never_overlap_sqlite() {
    let dir = TempDir::new();
    msin_leases_never_overlap(&mut open_sql(&dir.db()));
}

#[test]
fn msin_leases_never_overlap_postgres() {
    let Some(db) = PgDb::new("msin_leases_never_overlap_postgres") else {
        return;
    };
    msin_leases_never_overlap(&mut open_sql(&db.url()));
}

/// Two stores on one database leasing at once: every MSIN of the range
/// is leased exactly once.
fn two_stores_lease_disjoint_msins(url: &str) {
    const RANGE: u64 = 500;
    let stores = [open_sql(url), open_sql(url)];
    stores[0].set_msin_range(RANGE).unwrap();
    let leased: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .into_iter()
            .map(|mut s| {
                scope.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match s.lease_msins(7) {
                            Ok(r) => got.extend(r),
                            Err(StoreError::Exhausted) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<u64> = leased.iter().copied().collect();
    assert_eq!(unique.len(), leased.len(), "an MSIN leased twice");
    assert_eq!(unique, (1..=RANGE).collect::<BTreeSet<_>>());
}

#[test]
fn two_stores_lease_disjoint_msins_sqlite() {
    let dir = TempDir::new();
    two_stores_lease_disjoint_msins(&dir.db());
}

#[test]
fn two_stores_lease_disjoint_msins_postgres() {
    let Some(db) = PgDb::new("two_stores_lease_disjoint_msins_postgres") else {
        return;
    };
    two_stores_lease_disjoint_msins(&db.url());
}

/// Writes of one SUPI in one batch apply in order: the last one wins, and
/// a subscription write replaces what came before it, not after.
fn the_last_write_of_a_supi_in_a_batch_wins(s: &mut SqlStore) {
    s.put_subscription(sub("DEV-1", 1, 1)).unwrap();
    let stored = |s: &SqlStore| s.subscription_by_supi(&supi(1)).unwrap().unwrap();
    s.apply(&[sqn_write(1, 10), sqn_write(1, 30), sqn_write(1, 20)])
        .unwrap();
    assert_eq!(stored(s).sqn, HeSqn { seq: 20, ind: 20 });
    s.apply(&[
        state_write(1, SubscriptionState::Provisioned, 1),
        state_write(1, SubscriptionState::Active, 2),
        sqn_write(1, 21),
        state_write(1, SubscriptionState::Provisioned, 3),
    ])
    .unwrap();
    assert_eq!(stored(s).state, SubscriptionState::Provisioned);
    assert_eq!(stored(s).sqn, HeSqn { seq: 21, ind: 21 });

    // SQN, then a new package: the package's row (its SQN) stands.
    s.apply(&[sqn_write(1, 40), sub_write(sub("DEV-1", 1, 7), 4, vec![])])
        .unwrap();
    let got = stored(s);
    assert!(got.k == k(7));
    assert_eq!(got.sqn, HeSqn::default());
    assert_eq!(got.state, SubscriptionState::Created);
    // A new package, then its SQN and state: they apply to it.
    s.apply(&[
        sub_write(sub("DEV-1", 1, 8), 5, vec![]),
        sqn_write(1, 41),
        state_write(1, SubscriptionState::Active, 5),
    ])
    .unwrap();
    let got = stored(s);
    assert!(got.k == k(8));
    assert_eq!(got.sqn, HeSqn { seq: 41, ind: 9 });
    assert_eq!(got.state, SubscriptionState::Active);
    assert_eq!(s.provisioning_log(&id("DEV-1")).unwrap().len(), 3);
    assert_eq!(s.take_error(), None);
}

/// Whole rows of one batch go to the database together (one upsert for
/// rows that commute); a batch whose rows and column writes interleave on
/// shared devices and SUPIs (a device moving to another SUPI, another
/// device taking the one it left, SQN and state writes before and after
/// rows of their SUPI) ends as the same writes applied one by one: the
/// reference, `MemoryStore`'s `apply`.
fn interleaved_rows_end_as_written_one_by_one(s: &mut SqlStore) {
    let mut reference = nido_net::MemoryStore::new(MSINS * 10);
    let seeded = [sub("DEV-1", 1, 1), sub("DEV-2", 2, 2)];
    for sub in &seeded {
        s.put_subscription(sub.clone()).unwrap();
        reference.put_subscription(sub.clone()).unwrap();
    }
    let mut moved = sub("DEV-1", 5, 11);
    moved.package_id = [0x51; 16];
    let mut taken = sub("DEV-4", 1, 14);
    taken.package_id = [0x41; 16];
    let mut third = sub("DEV-3", 3, 13);
    third.package_id = [0x33; 16];
    let batch = vec![
        sqn_write(2, 7),
        sub_write(third.clone(), 10, vec![]),
        sub_write(sub("DEV-6", 6, 16), 10, vec![]),
        sub_write(sub("DEV-7", 7, 17), 10, vec![]),
        sqn_write(1, 8),
        state_write(3, SubscriptionState::Provisioned, 11),
        sub_write(moved, 12, vec![]),
        sub_write(taken, 13, vec![]),
        sqn_write(1, 9),
        state_write(2, SubscriptionState::Active, 14),
        sub_write(sub("DEV-2", 2, 22), 15, vec![]),
        sqn_write(3, 10),
        sub_write(sub("DEV-8", 8, 18), 16, vec![]),
        sqn_write(5, 12),
        sqn_write(6, 13),
        sub_write(sub("DEV-9", 9, 19), 17, vec![]),
        state_write(9, SubscriptionState::Provisioned, 18),
    ];
    s.apply(&batch).unwrap();
    reference.apply(&batch).unwrap();
    let mut ours = s.subscriptions().unwrap();
    let mut theirs = reference.subscriptions().unwrap();
    ours.sort_by_key(|x| x.device.to_string());
    theirs.sort_by_key(|x| x.device.to_string());
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_same(a, b);
    }
    // Every new package logged once, in the batch's order.
    assert_eq!(s.provisioning_log(&id("DEV-1")).unwrap().len(), 2);
    assert_eq!(s.provisioning_log(&id("DEV-4")).unwrap().len(), 1);
    assert_eq!(s.take_error(), None);
}

#[test]
fn interleaved_rows_end_as_written_one_by_one_sqlite() {
    let dir = TempDir::new();
    interleaved_rows_end_as_written_one_by_one(&mut open_sql(&dir.db()));
}

#[test]
fn interleaved_rows_end_as_written_one_by_one_postgres() {
    let Some(db) = PgDb::new("interleaved_rows_end_as_written_one_by_one_postgres") else {
        return;
    };
    interleaved_rows_end_as_written_one_by_one(&mut open_sql(&db.url()));
}

#[test]
fn the_last_write_of_a_supi_in_a_batch_wins_sqlite() {
    let dir = TempDir::new();
    the_last_write_of_a_supi_in_a_batch_wins(&mut open_sql(&dir.db()));
}

#[test]
fn the_last_write_of_a_supi_in_a_batch_wins_postgres() {
    let Some(db) = PgDb::new("the_last_write_of_a_supi_in_a_batch_wins_postgres") else {
        return;
    };
    the_last_write_of_a_supi_in_a_batch_wins(&mut open_sql(&db.url()));
}

/// How long a batch of 1,000 onboardings takes (1,000 subscription writes
/// with their audit entry and 1,000 audit writes; then 1,000 SQN and 1,000
/// state writes), against the same writes one transaction each. A
/// measurement, printed; nothing is asserted of the time.
fn time_group_commit(s: &mut SqlStore, backend: &str) {
    use nido_net::{ConnectionId, NetworkEvent};
    use std::time::Instant;

    const N: u64 = 1_000;
    let onboard = |first: u64| -> Vec<Write> {
        (first..first + N)
            .flat_map(|i| {
                let device = format!("DEV-{i}");
                let mut row = sub(&device, i, i as u8);
                row.package_id[..8].copy_from_slice(&i.to_be_bytes());
                [
                    sub_write(row, 1, vec![delivered(&device, i)]),
                    Write::Audit {
                        at_unix: 1,
                        events: vec![NetworkEvent::Registered {
                            conn: ConnectionId(i),
                            supi: supi(i),
                        }],
                    },
                ]
            })
            .collect()
    };
    let batch = onboard(1);
    let t = Instant::now();
    s.apply(&batch).unwrap();
    let grouped = t.elapsed();
    let updates: Vec<Write> = (1..=N)
        .flat_map(|i| {
            [
                sqn_write(i, 100 + i),
                state_write(i, SubscriptionState::Active, 2),
            ]
        })
        .collect();
    let t = Instant::now();
    s.apply(&updates).unwrap();
    let updated = t.elapsed();

    let singles = onboard(N + 1);
    let t = Instant::now();
    for w in &singles {
        s.apply(core::slice::from_ref(w)).unwrap();
    }
    let one_by_one = t.elapsed();
    assert_eq!(s.subscriptions().unwrap().len(), 2 * N as usize);
    assert_eq!(s.audit(usize::MAX >> 1).unwrap().len(), 4 * N as usize);
    eprintln!(
        "{backend}: {N} subscription + {N} audit writes: one batch {grouped:?}, \
         one transaction each {one_by_one:?}; {N} SQN + {N} state writes, one batch {updated:?}"
    );
}

#[test]
#[ignore = "a measurement: cargo test -p nido-store --test store time_group_commit -- --ignored --nocapture"]
fn time_group_commit_sqlite() {
    let dir = TempDir::new();
    time_group_commit(&mut open_sql(&dir.db()), "SQLite");
}

#[test]
#[ignore = "a measurement: cargo test -p nido-store --test store time_group_commit -- --ignored --nocapture"]
fn time_group_commit_postgres() {
    let Some(db) = PgDb::new("time_group_commit_postgres") else {
        return;
    };
    time_group_commit(&mut open_sql(&db.url()), "PostgreSQL");
}

// ---------------------------------------------------------------------------
// The outbox (issue #14), on both SQL backends.

fn uplink(device: &str, owner: Option<&str>, n: u8) -> nido_net::Uplink {
    nido_net::Uplink {
        device: format!("Acme/{device}"),
        owner: owner.map(str::to_owned),
        supi: supi(u64::from(n)),
        psi: 1,
        data: vec![n; 3],
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + u64::from(n)),
    }
}

/// Bursts are numbered per device in the transaction that stores them, an
/// owner's outbox drops its oldest pending bursts past the bound (with an
/// audit entry each), delivery marks entries and the status counts them.
fn outbox_numbers_bounds_and_delivers(s: &mut SqlStore) {
    s.set_outbox_limit(3);
    // The owners the store knows (a burst is kept for the device's owner
    // at its commit, whatever the serving network saw).
    for (serial, n, owner) in [
        ("A", 11, Some("acme")),
        ("B", 12, Some("acme")),
        ("C", 13, None),
    ] {
        let mut row = sub(serial, n, n as u8);
        row.owner = owner.map(Into::into);
        s.put_subscription(row).unwrap();
    }
    // One group: two devices of acme, one unclaimed device.
    s.apply(&[
        Write::Uplink(uplink("A", Some("acme"), 1)),
        Write::Uplink(uplink("B", Some("acme"), 2)),
        Write::Uplink(uplink("A", Some("acme"), 3)),
        Write::Uplink(uplink("C", None, 4)),
    ])
    .unwrap();
    let acme = s.pending_uplinks(Some("acme"), 10).unwrap();
    let seqs: Vec<(&str, u64)> = acme.iter().map(|e| (e.device.as_str(), e.seq)).collect();
    assert_eq!(seqs, [("Acme/A", 1), ("Acme/B", 1), ("Acme/A", 2)]);
    assert_eq!(acme[0].data, [1, 1, 1]);
    assert_eq!(acme[0].at_ms, 1_001_000);
    assert_eq!(acme[0].supi, supi(1).to_string());
    assert_eq!(s.pending_owners().unwrap(), [None, Some("acme".to_owned())]);
    // A fourth pending burst of acme: its oldest gives way, audited.
    s.enqueue_uplink(&uplink("B", Some("acme"), 5)).unwrap();
    let acme = s.pending_uplinks(Some("acme"), 10).unwrap();
    let seqs: Vec<(&str, u64)> = acme.iter().map(|e| (e.device.as_str(), e.seq)).collect();
    assert_eq!(seqs, [("Acme/B", 1), ("Acme/A", 2), ("Acme/B", 2)]);
    let dropped: Vec<AuditEntry> = s
        .audit(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "uplink_dropped")
        .collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].device.as_deref(), Some("Acme/A"));
    assert!(dropped[0].detail.contains("burst 1"), "{dropped:?}");
    // Delivered entries leave the pending list; a failure is noted.
    s.mark_delivered(&[acme[0].id]).unwrap();
    s.note_delivery_failure(acme[1].id, "connection refused")
        .unwrap();
    let acme = s.pending_uplinks(Some("acme"), 10).unwrap();
    assert_eq!(acme.len(), 2);
    assert_eq!(acme[0].attempts, 1);
    let status = s.delivery_status().unwrap();
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(status[0].owner, None);
    assert_eq!(status[0].pending, 1);
    let a = &status[1];
    assert_eq!(a.owner.as_deref(), Some("acme"));
    assert_eq!((a.pending, a.delivered, a.dropped), (2, 1, 1), "{a:?}");
    assert_eq!(a.oldest_pending, Some(1_003_000));
    assert_eq!(a.last_error.as_deref(), Some("connection refused"));
    // Numbers are never reused, whatever was delivered or dropped.
    s.enqueue_uplink(&uplink("A", Some("acme"), 6)).unwrap();
    let last = s.pending_uplinks(Some("acme"), 10).unwrap();
    assert_eq!(last.last().map(|e| e.seq), Some(3));
    // A released for a transfer: its next burst, though the serving
    // network still names acme (its registration predates the release),
    // is no longer acme's.
    s.release_owner(
        &id("A"),
        Some("acme"),
        &"ab".repeat(32),
        1_800_000_000,
        "sold",
    )
    .unwrap();
    s.enqueue_uplink(&uplink("A", Some("acme"), 7)).unwrap();
    // acme's last word about A is the release event, no burst after it.
    let acme = s.pending_uplinks(Some("acme"), 10).unwrap();
    assert_eq!(acme[..last.len()], last[..]);
    assert_eq!(acme.len(), last.len() + 1);
    let released = &acme[last.len()];
    assert_eq!(released.kind, nido_store::EntryKind::Event);
    assert_eq!((released.device.as_str(), released.seq), ("Acme/A", 4));
    let unowned = s.pending_uplinks(None, 10).unwrap();
    assert_eq!(
        unowned.last().map(|e| (e.device.as_str(), e.seq)),
        Some(("Acme/A", 5))
    );
}

/// Where owners' data goes: set, replaced, the password sealed and never
/// in Debug.
fn delivery_configs_are_kept_sealed(s: &mut SqlStore) {
    use nido_store::{DeliveryConfig, DeliveryTarget};
    let mqtt = |prefix: &str| DeliveryTarget::Mqtt {
        url: "mqtt://127.0.0.1:1883".into(),
        topic_prefix: prefix.into(),
        username: None,
        password: None,
        tls_ca: None,
    };
    let mut default = DeliveryConfig {
        owner: None,
        target: mqtt("nido"),
    };
    s.set_delivery(&default).unwrap();
    let acme = DeliveryConfig {
        owner: Some("acme".into()),
        target: DeliveryTarget::Mqtt {
            url: "mqtts://broker.acme:8883".into(),
            topic_prefix: "acme/devices".into(),
            username: Some("acme".into()),
            password: Some(Zeroizing::new("hunter2-secret".into())),
            tls_ca: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        },
    };
    s.set_delivery(&acme).unwrap();
    let beta = DeliveryConfig {
        owner: Some("beta".into()),
        target: DeliveryTarget::Webhook {
            url: "https://beta.example/nidd".into(),
            secret: Some(Zeroizing::new("webhook-key-7".into())),
        },
    };
    s.set_delivery(&beta).unwrap();
    default.target = mqtt("ops");
    s.set_delivery(&default).unwrap();
    let got = s.deliveries().unwrap();
    assert_eq!(got, [default, acme.clone(), beta]);
    let shown = format!("{got:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("webhook-key"),
        "{shown}"
    );
}

/// Downlinks: a serial names the device (LIKE's wildcards taken
/// literally), kept until marked sent, listed after an id.
fn downlinks_wait_until_sent(s: &mut SqlStore) {
    let mut a = sub("DEV-1", 1, 1);
    a.owner = Some("acme".into());
    s.put_subscription(a).unwrap();
    s.put_subscription(sub("DEVX1", 2, 2)).unwrap();
    assert_eq!(
        s.devices_with_serial("DEV-1").unwrap(),
        [("Acme/DEV-1".to_owned(), Some("acme".to_owned()))]
    );
    // A topic is an attacker's input: its wildcards are literal.
    assert!(s.devices_with_serial("DEV_1").unwrap().is_empty());
    assert_eq!(
        s.devices_with_serial("DEVX1").unwrap(),
        [("Acme/DEVX1".to_owned(), None)]
    );
    assert!(s.devices_with_serial("DEV%").unwrap().is_empty());
    let one = s
        .enqueue_downlink("Acme/DEV-1", Some("acme"), b"led=on")
        .unwrap();
    let two = s.enqueue_downlink("Acme/DEVX1", None, b"reboot").unwrap();
    let pending = s.pending_downlinks(0, 10).unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].data, b"led=on");
    assert_eq!(s.pending_downlinks(one, 10).unwrap()[0].id, two);
    let sent = s.mark_downlinks_sent(&[one, one]).unwrap();
    assert_eq!(
        sent,
        [(one, "Acme/DEV-1".to_owned(), Some("acme".to_owned()))]
    );
    let left: Vec<i64> = s
        .pending_downlinks(0, 10)
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [two]);
}

#[test]
fn outbox_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    outbox_numbers_bounds_and_delivers(&mut s);
    delivery_configs_are_kept_sealed(&mut s);
    downlinks_wait_until_sent(&mut s);
}

#[test]
fn outbox_on_postgres() {
    let Some(db) = PgDb::new("outbox_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    outbox_numbers_bounds_and_delivers(&mut s);
    delivery_configs_are_kept_sealed(&mut s);
    downlinks_wait_until_sent(&mut s);
}

/// The API's read side (issue #15) and its tokens, on one backend: owners'
/// devices by claim or subscription, filters (LIKE wildcards literal),
/// keyset paging, the funnel, refusals by cause, audit pages per owner,
/// subscriptions without keys, token lookup refusing revoked and expired.
fn read_side_and_tokens(s: &mut SqlStore) {
    use nido_store::{AuditFilter, DeviceFilter, TokenRecord};
    s.put_owner(owner("acme")).unwrap();
    s.put_owner(owner("globex")).unwrap();
    for (serial, code, who) in [
        ("D1", "c1", Some("acme")),
        ("D2", "c2", Some("globex")),
        ("D.3", "c3", Some("acme")),
    ] {
        s.add_claimable(&id(serial), code).unwrap();
        if let Some(o) = who {
            s.claim(o, code).unwrap();
        }
    }
    let mut d1 = sub("D1", 1, 0x31);
    d1.owner = Some("acme".into());
    s.put_subscription(d1).unwrap();
    let conn = nido_net::ConnectionId(1);
    s.append_audit_batch(
        1_000,
        &[
            nido_net::NetworkEvent::DeviceAuthenticated {
                conn,
                device: id("D1"),
            },
            nido_net::NetworkEvent::Refused {
                presented: None,
                conn,
                device: Some(id("D2")),
                cause: Cause(74),
                reason: "clone".into(),
            },
            nido_net::NetworkEvent::Refused {
                presented: None,
                conn,
                device: Some(id("D2")),
                cause: Cause::ILLEGAL_UE,
                reason: "blocked".into(),
            },
        ],
    )
    .unwrap();
    let all = |f: DeviceFilter| {
        s.list_devices(&DeviceFilter { limit: 100, ..f })
            .unwrap()
            .into_iter()
            .map(|d| d.device)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        all(DeviceFilter::default()),
        ["Acme/D.3", "Acme/D1", "Acme/D2"]
    );
    assert_eq!(
        all(DeviceFilter {
            owner: Some("acme".into()),
            ..Default::default()
        }),
        ["Acme/D.3", "Acme/D1"]
    );
    // LIKE's wildcards are literal: "D_" would match D1 and D2.
    assert!(
        all(DeviceFilter {
            search: Some("D_".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert!(
        all(DeviceFilter {
            search: Some("%".into()),
            ..Default::default()
        })
        .is_empty()
    );
    assert_eq!(
        all(DeviceFilter {
            search: Some("D.".into()),
            ..Default::default()
        }),
        ["Acme/D.3"]
    );
    // Exact and case-sensitive on both backends.
    for f in [
        DeviceFilter {
            search: Some("d1".into()),
            ..Default::default()
        },
        DeviceFilter {
            manufacturer: Some("acme".into()),
            ..Default::default()
        },
        DeviceFilter {
            manufacturer: Some("Acm".into()),
            ..Default::default()
        },
    ] {
        assert!(all(f).is_empty());
    }
    assert_eq!(
        all(DeviceFilter {
            state: Some("claimed".into()),
            ..Default::default()
        }),
        ["Acme/D.3"]
    );
    assert_eq!(
        all(DeviceFilter {
            manufacturer: Some("Acme".into()),
            after: Some("Acme/D.3".into()),
            ..Default::default()
        }),
        ["Acme/D1", "Acme/D2"]
    );
    // The last refusal's cause, not the first.
    assert_eq!(
        all(DeviceFilter {
            cause: Some(3),
            ..Default::default()
        }),
        ["Acme/D2"]
    );
    assert!(
        all(DeviceFilter {
            cause: Some(74),
            ..Default::default()
        })
        .is_empty()
    );
    let d2 = s.device_view("Acme/D2", None).unwrap().unwrap();
    assert_eq!(
        (d2.state.as_str(), d2.cause, d2.owner.as_deref()),
        ("refused", Some(3), Some("globex"))
    );
    assert!(s.device_view("Acme/D2", Some("acme")).unwrap().is_none());
    let f = s.funnel(None).unwrap();
    assert_eq!((f.attached, f.authenticated, f.refused), (2, 1, 1));
    assert_eq!(s.funnel(Some("acme")).unwrap().attached, 1);
    assert_eq!(s.refusals_by_cause(None).unwrap(), [(Some(3), 1)]);
    assert!(s.refusals_by_cause(Some("acme")).unwrap().is_empty());
    let page = s
        .audit_page(&AuditFilter {
            owner: Some("globex".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    // Its claim and its two refusals.
    assert_eq!(page.len(), 3);
    assert!(page[0].0 > page[1].0, "newest first");
    assert_eq!(page[2].1.kind, "claimed");
    let older = s
        .audit_page(&AuditFilter {
            before: Some(page[0].0),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(older.iter().all(|(i, _)| *i < page[0].0));
    let subs = s.subscription_views(Some("acme"), None, 10).unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].package_id, hex::encode([0x31; 16]));
    assert!(
        s.subscription_views(Some("globex"), None, 10)
            .unwrap()
            .is_empty()
    );
    // Tokens: by hash, live only.
    let record = |id: &str, owner: Option<&str>, expires: Option<u64>| TokenRecord {
        id: id.into(),
        role: if owner.is_some() { "owner" } else { "operator" }.into(),
        owner: owner.map(str::to_owned),
        label: String::new(),
        created_at: 100,
        expires_at: expires,
        revoked_at: None,
    };
    s.create_token(&record("t1", None, None), "h1").unwrap();
    s.create_token(&record("t2", Some("acme"), Some(200)), "h2")
        .unwrap();
    assert!(
        s.create_token(&record("t3", Some("nobody"), None), "h3")
            .is_err()
    );
    assert!(
        s.create_token(&record("t4", None, None), "h1").is_err(),
        "hash unique"
    );
    assert_eq!(s.token_by_hash("h1", 150).unwrap().unwrap().id, "t1");
    assert_eq!(
        s.token_by_hash("h2", 150)
            .unwrap()
            .unwrap()
            .owner
            .as_deref(),
        Some("acme")
    );
    assert!(s.token_by_hash("h2", 200).unwrap().is_none(), "expired");
    assert!(s.revoke_token("t1", 160).unwrap());
    assert!(!s.revoke_token("t1", 161).unwrap());
    assert!(s.token_by_hash("h1", 170).unwrap().is_none(), "revoked");
    assert_eq!(s.tokens().unwrap().len(), 2);
}

#[test]
fn read_side_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    read_side_and_tokens(&mut s);
}

#[test]
fn read_side_on_postgres() {
    let Some(db) = PgDb::new("read_side_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    read_side_and_tokens(&mut s);
}

/// Issue #16: the certificate of the device that got a package is kept
/// (other sightings keep it; a package through a relayed realm clears it);
/// a CRL's issuer and serials find the devices of that manufacturer whose
/// subscription is not released; a block deferred to the next
/// registration is kept, loaded as one, and a block at once replaces it.
fn revocation(s: &mut SqlStore) {
    for (n, serial) in ["D1", "D2", "D3", "D4"].into_iter().enumerate() {
        s.put_subscription(sub(serial, n as u64 + 1, n as u8 + 1))
            .unwrap();
    }
    let mut released = sub("D4", 4, 4);
    released.state = SubscriptionState::Released;
    s.put_subscription(released).unwrap();
    let conn = nido_net::ConnectionId(1);
    let ca = b"issuing CA".to_vec();
    let delivered = |serial: &str, cert: Option<&[u8]>| nido_net::NetworkEvent::PackageDelivered {
        device: id(serial),
        supi: supi(1),
        reprovisioned: false,
        after_reset: None,
        certificate: cert.map(|c| nido_net::CertificateSeen {
            issuer: ca.clone(),
            serial: c.to_vec(),
        }),
    };
    s.append_audit_batch(
        1_000,
        &[
            delivered("D1", Some(&[1, 2])),
            delivered("D2", Some(&[3])),
            delivered("D3", Some(&[5])),
            delivered("D4", Some(&[6])),
            delivered("D5", Some(&[4])),
        ],
    )
    .unwrap();
    // Another sighting keeps the certificate; a relayed-realm package clears it.
    s.append_audit_batch(
        1_001,
        &[
            nido_net::NetworkEvent::DeviceAuthenticated {
                conn,
                device: id("D1"),
            },
            delivered("D3", None),
        ],
    )
    .unwrap();
    // D3: no certificate known; D4: released; D5: no subscription; 9: nobody's.
    assert_eq!(
        s.subscribed_devices_with_certs(
            "Acme",
            &ca,
            &[vec![1, 2], vec![4], vec![5], vec![6], vec![9]]
        )
        .unwrap(),
        [id("D1")]
    );
    assert!(
        s.subscribed_devices_with_certs("Acme", b"another CA", &[vec![1, 2]])
            .unwrap()
            .is_empty(),
        "the CRL's issuer must be the certificate's"
    );
    assert!(
        s.subscribed_devices_with_certs("Acm", &ca, &[vec![1, 2]])
            .unwrap()
            .is_empty(),
        "the manufacturer is matched exactly"
    );
    assert!(s.block_with(&id("D1"), "revoked", true).unwrap());
    assert!(!s.block_with(&id("D1"), "revoked again", true).unwrap());
    assert!(s.block(&id("D2"), "stolen").unwrap());
    let blocked = s.blocked().unwrap();
    assert_eq!(
        blocked
            .iter()
            .map(|b| (b.serial.as_str(), b.deferred))
            .collect::<Vec<_>>(),
        [("Acme/D1", true), ("Acme/D2", false)]
    );
    let trust = s.trust_store().unwrap();
    assert!(trust.is_blocked(&id("D1")) && !trust.is_blocked_now(&id("D1")));
    assert!(trust.is_blocked(&id("D2")) && trust.is_blocked_now(&id("D2")));
    // A block at once replaces the deferred one.
    assert!(s.block(&id("D1"), "stolen").unwrap());
    assert!(!s.block(&id("D1"), "stolen").unwrap());
    assert!(s.trust_store().unwrap().is_blocked_now(&id("D1")));
}

#[test]
fn revocation_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    revocation(&mut s);
}

#[test]
fn revocation_on_postgres() {
    let Some(db) = PgDb::new("revocation_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    revocation(&mut s);
}

/// `end_packages` (`nido network rekey`): one device, then every other
/// one; only the end column changes, a package that already ended is left
/// alone, each change has its audit entry.
fn rekey(s: &mut SqlStore) {
    // seed 1 and 3: an end in 2030; seed 2: no end recorded.
    for (n, serial) in ["D1", "D2", "D3"].into_iter().enumerate() {
        let mut row = sub(serial, n as u64 + 1, n as u8 + 1);
        row.state = SubscriptionState::Active;
        row.sqn = HeSqn { seq: 40, ind: 2 };
        s.put_subscription(row).unwrap();
    }
    let at = 1_800_000_000;
    let one = s
        .end_packages(nido_store::Packages::Of(&id("D1")), at, "key audit")
        .unwrap();
    assert_eq!(
        one,
        [nido_store::PackageEnd {
            device: "Acme/D1".into(),
            supi: supi(1).to_string()
        }]
    );
    let d1 = s.subscription_by_device(&id("D1")).unwrap().unwrap();
    assert_eq!(d1.not_after_unix, Some(at - 1));
    assert!(d1.expired(at) && !d1.expired(at - 1));
    assert_eq!(d1.state, SubscriptionState::Active, "the state is kept");
    assert_eq!(d1.sqn, HeSqn { seq: 40, ind: 2 }, "the SQN is kept");
    assert!(d1.k == k(1), "K is kept until the device renews");
    assert!(
        s.end_packages(nido_store::Packages::Of(&id("D1")), at + 5, "again")
            .unwrap()
            .is_empty(),
        "already ended"
    );
    assert!(
        s.end_packages(nido_store::Packages::Of(&id("NONE")), at, "x")
            .unwrap()
            .is_empty()
    );
    let mut all: Vec<String> = s
        .end_packages(nido_store::Packages::All, at + 10, "SUCI key rotation")
        .unwrap()
        .into_iter()
        .map(|e| e.device)
        .collect();
    all.sort();
    assert_eq!(all, ["Acme/D2", "Acme/D3"], "D1 had ended already");
    assert_eq!(
        s.subscription_by_device(&id("D2"))
            .unwrap()
            .unwrap()
            .not_after_unix,
        Some(at + 9)
    );
    let audit = s
        .audit_page(&nido_store::AuditFilter {
            kind: Some("package_ended".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(audit.len(), 3);
    assert!(
        audit
            .iter()
            .any(|(_, e)| e.detail.contains("key audit") && e.device.as_deref() == Some("Acme/D1"))
    );
    // What a serving network polls: the packages that ended in a range of
    // seconds, both ends included (D1 at at-1, D2 and D3 at at+9).
    let ended = |from, to| -> Vec<String> {
        s.packages_ended(from, to)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(ended(at - 1, at - 1), [supi(1).to_string()]);
    assert!(ended(at, at + 8).is_empty());
    assert_eq!(
        ended(at - 1, at + 9),
        [supi(1), supi(2), supi(3)].map(|s| s.to_string())
    );
    assert!(ended(0, at - 2).is_empty());
}

#[test]
fn rekey_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    rekey(&mut s);
}

#[test]
fn rekey_on_postgres() {
    let Some(db) = PgDb::new("rekey_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    rekey(&mut s);
}

/// An owner reads its device's whole audit trail, but after a transfer
/// (release, then a claim by the next owner) the next owner sees it from
/// the release on, not what happened under the one before, and the one
/// before sees nothing of the device any more.
fn audit_of_a_transferred_device(s: &mut SqlStore) {
    s.put_owner(owner("acme")).unwrap();
    s.put_owner(owner("globex")).unwrap();
    s.add_claimable(&id("DEV-7"), "hash-7").unwrap();
    s.claim("acme", "hash-7").unwrap();
    let now = unix_now();
    let entry = |at: u64, detail: &str| AuditEntry {
        device: Some("Acme/DEV-7".into()),
        ..AuditEntry::new(at, "data_delivered", detail)
    };
    s.append_audit(entry(now - 200, "acme's data")).unwrap();
    let trail = |s: &SqlStore, o: &str| -> Vec<String> {
        s.audit_page(&nido_store::AuditFilter {
            owner: Some(o.into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .rev()
        .map(|(_, e)| format!("{} {}", e.kind, e.detail))
        .filter(|e| !e.starts_with("claimed"))
        .collect()
    };
    assert_eq!(trail(s, "acme"), ["data_delivered acme's data"]);
    s.release_owner(&id("DEV-7"), Some("acme"), "hash-7b", now - 100, "sold")
        .unwrap();
    assert!(trail(s, "acme").is_empty(), "acme's access ended");
    s.claim("globex", "hash-7b").unwrap();
    s.append_audit(entry(now + 200, "globex's data")).unwrap();
    assert_eq!(trail(s, "globex"), ["data_delivered globex's data"]);
    assert!(trail(s, "acme").is_empty());
    // The operator still reads the whole trail.
    let all: Vec<String> = s
        .audit(100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "data_delivered")
        .map(|e| e.detail)
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
}

#[test]
fn audit_of_a_transferred_device_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    audit_of_a_transferred_device(&mut s);
}

#[test]
fn audit_of_a_transferred_device_on_postgres() {
    let Some(db) = PgDb::new("audit_of_a_transferred_device_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    audit_of_a_transferred_device(&mut s);
}

/// A package delivered while its device changed owners (the PVS read the
/// owner, then a release committed before the package did) does not undo
/// the release: at its commit the owner column takes the claims' owner and
/// the package ends, audited, so the device renews with the right
/// credentials. A delivery for the device's owner stands.
fn a_delivery_racing_a_release_ends_at_its_commit(s: &mut SqlStore) {
    s.put_owner(owner("acme")).unwrap();
    s.put_owner(owner("globex")).unwrap();
    s.add_claimable(&id("DEV-8"), "hash-8").unwrap();
    s.claim("acme", "hash-8").unwrap();
    let far = 4_000_000_000;
    let delivery = |owner: &str, package: u8| {
        let mut row = sub("DEV-8", 8, 8);
        row.owner = Some(owner.into());
        row.package_id = [package; 16];
        row.not_after_unix = Some(far);
        row
    };
    s.put_subscription(delivery("acme", 1)).unwrap();
    let now = unix_now;
    let got = s.subscription_by_device(&id("DEV-8")).unwrap().unwrap();
    assert_eq!(
        (got.owner.as_deref(), got.not_after_unix),
        (Some("acme"), Some(far))
    );
    s.release_owner(&id("DEV-8"), Some("acme"), "hash-8b", now(), "sold")
        .unwrap();
    // The stale delivery, built for acme before the release, in a group
    // commit with another device's write and an entry after it.
    s.apply(&[
        sub_write(delivery("acme", 2), now(), vec![delivered("DEV-8", 8)]),
        sub_write(sub("DEV-9", 9, 9), now(), vec![]),
        Write::Audit {
            at_unix: now(),
            events: vec![nido_net::NetworkEvent::Deregistered {
                conn: nido_net::ConnectionId(9),
            }],
        },
    ])
    .unwrap();
    let got = s.subscription_by_device(&id("DEV-8")).unwrap().unwrap();
    assert_eq!(got.owner, None, "the release stands");
    assert_eq!(got.package_id, [2; 16]);
    assert!(got.expired(now()), "{:?}", got.not_after_unix);
    let trail = s.audit(100).unwrap();
    let ended: Vec<&AuditEntry> = trail
        .iter()
        .filter(|e| e.kind == "package_ended" && e.detail.contains("no longer has"))
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    // In the batch's order: the package's own entry, its end, then what
    // the batch wrote after it.
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["package_delivered", "package_ended", "deregistered"],
        "{kinds:?}"
    );
    // The next owner's delivery stands.
    s.claim("globex", "hash-8b").unwrap();
    s.put_subscription(delivery("globex", 3)).unwrap();
    let got = s.subscription_by_device(&id("DEV-8")).unwrap().unwrap();
    assert_eq!(
        (got.owner.as_deref(), got.not_after_unix),
        (Some("globex"), Some(far))
    );
}

/// The wall clock, Unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_delivery_racing_a_release_ends_at_its_commit_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    a_delivery_racing_a_release_ends_at_its_commit(&mut s);
}

#[test]
fn a_delivery_racing_a_release_ends_at_its_commit_on_postgres() {
    let Some(db) = PgDb::new("a_delivery_racing_a_release_ends_at_its_commit_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    a_delivery_racing_a_release_ends_at_its_commit(&mut s);
}

/// Issue #16 item 1: a block, an unblock and a release each leave an event
/// for the device's owner in the outbox (the operator's default for a
/// device without one), in the transaction of the change, numbered with
/// the device's bursts; a release's goes to the owner it releases.
fn owners_hear_of_blocks_and_releases(s: &mut SqlStore) {
    use nido_store::EntryKind;
    s.put_owner(owner("acme")).unwrap();
    s.add_claimable(&id("DEV-9"), "hash-9").unwrap();
    s.claim("acme", "hash-9").unwrap();
    let mut row = sub("DEV-9", 9, 9);
    row.owner = Some("acme".into());
    s.put_subscription(row).unwrap();
    let events = |s: &SqlStore, owner: Option<&str>| -> Vec<(String, String, u64)> {
        s.pending_uplinks(owner, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Event)
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
                (
                    v["event"].as_str().unwrap().to_owned(),
                    v["reason"].as_str().unwrap().to_owned(),
                    e.seq,
                )
            })
            .collect()
    };
    assert!(s.block(&id("DEV-9"), "stolen").unwrap());
    assert!(
        !s.block(&id("DEV-9"), "again").unwrap(),
        "no change, no event"
    );
    assert!(s.unblock(&id("DEV-9")).unwrap());
    s.release_owner(&id("DEV-9"), Some("acme"), "hash-9b", unix_now(), "sold")
        .unwrap();
    assert_eq!(
        events(s, Some("acme")),
        [
            ("blocked".to_owned(), "stolen (at once)".to_owned(), 1),
            (
                "unblocked".to_owned(),
                "the operator lifted the block".to_owned(),
                2
            ),
            ("released".to_owned(), "sold".to_owned(), 3),
        ]
    );
    let pending = s.pending_uplinks(Some("acme"), 100).unwrap();
    assert!(
        pending
            .iter()
            .all(|e| e.psi == 0 && e.supi == supi(9).to_string())
    );
    // Without an owner now: the next event goes to the operator's default.
    assert!(s.block_with(&id("DEV-9"), "audit", true).unwrap());
    assert_eq!(
        events(s, None),
        [(
            "blocked".to_owned(),
            "audit (from its next registration)".to_owned(),
            4
        )]
    );
}

#[test]
fn owners_hear_of_blocks_and_releases_on_sqlite() {
    let dir = TempDir::new();
    let mut s = open_sql(&dir.db());
    owners_hear_of_blocks_and_releases(&mut s);
}

#[test]
fn owners_hear_of_blocks_and_releases_on_postgres() {
    let Some(db) = PgDb::new("owners_hear_of_blocks_and_releases_on_postgres") else {
        return;
    };
    let mut s = open_sql(&db.url());
    owners_hear_of_blocks_and_releases(&mut s);
}
