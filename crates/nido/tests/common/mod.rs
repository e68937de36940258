//! Helpers of the process-level tests: run the `nido` binary, scratch
//! directories, free ports, a manufacturer and a network set up from the CLI.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) mod freeradius;

pub(crate) fn nido(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

pub(crate) fn ok(args: &[&str], cwd: &Path) -> String {
    let out = nido(args, cwd);
    assert!(
        out.status.success(),
        "nido {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn spawn(args: &[&str], cwd: &Path, log: &Path) -> Child {
    spawn_with_env(args, cwd, log, &[])
}

/// As [`spawn`], with the variables `env` set for the child (on top of the
/// test's environment).
pub(crate) fn spawn_with_env(args: &[&str], cwd: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap()
}

/// Polls `probe` every 50 ms until it answers `Ok`; panics with its last
/// `Err` after `within`.
pub(crate) fn eventually<T>(within: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(t) => return t,
            Err(why) => assert!(Instant::now() < deadline, "after {within:?}: {why}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to end; panics after `within` with `context()` (a
/// log, say).
pub(crate) fn wait_for_exit(
    child: &mut Child,
    within: Duration,
    context: impl Fn() -> String,
) -> std::process::ExitStatus {
    eventually(within, || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| format!("still running:\n{}", context()))
    })
}

/// Waits until the file `log` contains `needle`; panics with the log after
/// `within`.
pub(crate) fn wait_for_log(log: &Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {log:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("nido-net-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Imports the manufacturer's signed `factory/claims.csv` into `net` (set up
/// by [`manufacturer_and_network`]).
pub(crate) fn import_claims(d: &Path) {
    ok(
        &[
            "network",
            "import-claims",
            "--dir",
            "net",
            "--manufacturer",
            "Acme Sensors",
            "--signer",
            "factory/issuing-ca.pem",
            "factory/claims.csv",
        ],
        d,
    );
}

/// The claim code in a file with a `claim code: ...` line: a device's
/// label (`nido mfr issue`) or a transfer's code (`nido owner release`).
pub(crate) fn claim_code_in(path: &Path) -> String {
    nido_pki::bundle::read_label_code(path)
        .unwrap()
        .as_str()
        .to_owned()
}

/// `nido owner claim` by `owner` with `code`.
pub(crate) fn claim(d: &Path, owner: &str, code: &str) {
    ok(
        &[
            "owner",
            "claim",
            "--dir",
            "net",
            "--owner",
            owner,
            "--claim-code",
            code,
        ],
        d,
    );
}

/// A manufacturer with `devices` bundles and a network (SQLite) that trusts
/// it, listening on a free port; returns (listen address, DCS realm).
pub(crate) fn manufacturer_and_network(d: &Path, devices: usize) -> (String, String) {
    manufacturer_and_network_on(d, devices, None)
}

/// As [`manufacturer_and_network`], with the network's database at `db`
/// (a `postgres://` URL) instead of the default SQLite file.
pub(crate) fn manufacturer_and_network_on(
    d: &Path,
    devices: usize,
    db: Option<&str>,
) -> (String, String) {
    manufacturer_and_snpn(d, devices, db, "000000000AB")
}

/// As [`manufacturer_and_network_on`], the network an SNPN with NID `nid`
/// (MCC 999, MNC 99).
pub(crate) fn manufacturer_and_snpn(
    d: &Path,
    devices: usize,
    db: Option<&str>,
    nid: &str,
) -> (String, String) {
    ok(
        &["mfr", "init", "--dir", "mfr", "--name", "Acme Sensors"],
        d,
    );
    let issued: Value = serde_json::from_str(&ok(
        &[
            "mfr",
            "issue",
            "--dir",
            "mfr",
            "--count",
            &devices.to_string(),
            "--out",
            "factory",
            "--json",
        ],
        d,
    ))
    .unwrap();
    let realm = issued["dcs_realm"].as_str().unwrap().to_owned();
    ok(
        &[
            "mfr", "dcs-cert", "--dir", "mfr", "--host", &realm, "--out", "dcs",
        ],
        d,
    );
    let listen = format!("127.0.0.1:{}", free_udp_port());
    let mut init = vec![
        "network", "init", "--dir", "net", "--nid", nid, "--listen", &listen,
    ];
    if let Some(db) = db {
        init.extend(["--db", db]);
    }
    ok(&init, d);
    ok(
        &[
            "network",
            "trust-manufacturer",
            "--dir",
            "net",
            "--name",
            "Acme Sensors",
            "--realm",
            &realm,
            "--dcs",
            "dcs",
        ],
        d,
    );
    // The manufacturer's CRL: without one the network refuses its devices
    // (revocation status unknown, #74).
    ok(&["mfr", "crl", "--dir", "mfr", "--out", "mfr.crl.pem"], d);
    import_crl(d, &[]);
    (listen, realm)
}

/// The network's database behind `net` (set up by
/// [`manufacturer_and_network_on`] with `db`), opened with its
/// key-encryption key `net/keys/kek.hex`, to read what the CLI does not
/// list.
pub(crate) fn open_network_store(d: &Path, db: Option<&str>) -> nido_store::SqlStore {
    let kek = nido_store::Kek::from_hex(
        std::fs::read_to_string(d.join("net/keys/kek.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let url = match db {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", d.join("net/nido.db").display()),
    };
    nido_store::SqlStore::open(&url, kek).unwrap()
}

/// Kills a child process when dropped (a failing test leaves none behind).
pub(crate) struct Reaper(pub(crate) Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// PostgreSQL: the server nido-testkit finds (`NIDO_TEST_POSTGRES`, else
// `postgres://postgres@127.0.0.1:5432/test`, trust authentication), and
// `psql`, which creates and drops the tests' databases.

/// Runs one SQL statement on the database of `url` with `psql` at `program`.
pub(crate) fn psql(program: &Path, url: &str, sql: &str) -> Output {
    Command::new(program)
        .args(["-d", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql")
}

/// A fresh database, dropped when the guard is (even when the test fails).
pub(crate) struct PgDb {
    name: String,
    /// The server's administration database, as a URL.
    admin: String,
    psql: PathBuf,
}

impl PgDb {
    /// A fresh database for `test`; `None`, after one SKIPPED line, when
    /// `psql` or the PostgreSQL server is missing (`nido_testkit`).
    pub(crate) fn new(test: &str) -> Option<Self> {
        let psql_program = nido_testkit::tool(test, "psql")?;
        let admin = nido_testkit::postgres(test)?;
        let name = format!("nido_e2e_{}", std::process::id());
        let _ = psql(
            &psql_program,
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        let out = psql(&psql_program, &admin, &format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self {
            name,
            admin,
            psql: psql_program,
        })
    }

    /// The URL of this database: the administration URL's server and user.
    pub(crate) fn url(&self) -> String {
        let (server, _) = self.admin.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.psql,
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A SoftHSM2 token store in `d/tokens` with one token `label` (user PIN
/// 1234, SO PIN 5678) initialised; returns the `SOFTHSM2_CONF` file to run
/// with.
pub(crate) fn softhsm_token(d: &Path, label: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(d.join("tokens")).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("tokens").display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", "1234", "--so-pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    conf
}

/// `nido network crl-import` of the manufacturer's `mfr.crl.pem` into `net`
/// with the `extra` options; its output.
pub(crate) fn import_crl(d: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "network",
        "crl-import",
        "--dir",
        "net",
        "--manufacturer",
        "Acme Sensors",
        "--issuer",
        "mfr/issuing.pem",
    ];
    args.extend_from_slice(extra);
    args.push("mfr.crl.pem");
    ok(&args, d)
}

/// `nido network serve --dir net` with the `extra` options, logging to
/// `d/network.log`, given 300 ms to bind its sockets.
pub(crate) fn serve(d: &Path, extra: &[&str]) -> Reaper {
    let mut args = vec!["network", "serve", "--dir", "net"];
    args.extend_from_slice(extra);
    let network = Reaper(spawn(&args, d, &d.join("network.log")));
    std::thread::sleep(Duration::from_millis(300));
    network
}
