//! nido's test tiers: a dev-dependency of the test suites, never of a
//! library or of the binary.
//! It also finds the public test vectors ([`vectors_dir`]) for every suite.
//!
//! * **Fast tier** — plain `cargo test --workspace`: simulated time, small
//!   fleets. A test whose external tool (tshark, pycrate, openssl,
//!   SoftHSM2, psql, a PostgreSQL server) is missing prints exactly one line
//!   `SKIPPED <test>: <tool> not installed` and passes. Tests marked slow
//!   print `SKIPPED <test>: slow tier (NIDO_TEST_TIER=slow)` and pass.
//! * **Slow tier** — `NIDO_TEST_TIER=slow` (or `all`): real processes, real
//!   timers, large fleets. `scripts/test` runs it on the test binaries that
//!   hold slow tests.
//!
//! Invariants:
//!
//! * A check looks at the machine, never at a list: a tool is there when
//!   its binary runs (a file on `PATH` that can be started), pycrate when
//!   `python3` imports it, PostgreSQL when its server answers a startup
//!   message with an authentication request.
//! * One SKIPPED line per skipped test, written in one `write` straight to
//!   the process's standard error, which libtest does not capture: whoever
//!   runs plain `cargo test` sees it. A test checks its tools one after the
//!   other and returns at the first missing one.
//! * `NIDO_REQUIRE_TOOLS=1` (CI) turns every missing tool into a panic: a
//!   skip there is a failure. It never turns a slow-tier skip into one.
//! * `NIDO_TOOLS_MISSING=tshark,pycrate,…` (or `all`) makes the named
//!   tools look missing, to run the fast tier as a machine without them
//!   does.
//! * Nothing here is a stub of a tool: a test that runs its body runs the
//!   real tool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where Debian's `softhsm2` package installs the PKCS#11 module (the same
/// path as `nido_se::pkcs11::SOFTHSM2_MODULE`, which nido-se's tests check).
pub const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The PostgreSQL the tests use when `NIDO_TEST_POSTGRES` is not set: the
/// server on this machine, user `postgres` (trust authentication), its
/// `test` database (which `scripts/test` creates).
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long [`postgres`] waits for the server to connect and answer.
const POSTGRES_TIMEOUT: Duration = Duration::from_secs(2);

/// The tier being run, from `NIDO_TEST_TIER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// `fast` (the default): the fast tests only.
    Fast,
    /// `slow`: the slow tests only (fast tests in the same binaries run too).
    Slow,
    /// `all`: both.
    All,
}

/// The public test vectors (`shared/vectors`): `NIDO_VECTORS` when set
/// (it must be a directory), else the first `shared/vectors` directory
/// above the test's crate (`CARGO_MANIFEST_DIR`, which `cargo test` sets).
///
/// # Panics
/// When `NIDO_VECTORS` is not a directory or no `shared/vectors` is found:
/// the vectors are fixtures, never an optional tool.
pub fn vectors_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NIDO_VECTORS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "NIDO_VECTORS={} is not a directory",
            dir.display()
        );
        return dir;
    }
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .ancestors()
        .map(|a| a.join("shared").join("vectors"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "test vectors not found: set NIDO_VECTORS to the vectors directory, or place a \
                 `shared/vectors` directory in an ancestor of {}",
                manifest.display()
            )
        })
}

/// The tier of this run: `NIDO_TEST_TIER` (`fast`, `slow` or `all`;
/// `fast` when unset). Panics on any other value, so a typo in CI is no
/// silent fast run.
pub fn tier() -> Tier {
    match std::env::var("NIDO_TEST_TIER").as_deref() {
        Err(_) | Ok("" | "fast") => Tier::Fast,
        Ok("slow") => Tier::Slow,
        Ok("all") => Tier::All,
        Ok(other) => panic!("NIDO_TEST_TIER={other:?}: expected fast, slow or all"),
    }
}

/// Whether the slow test `test` runs its body: in the slow tier (and
/// `all`) it does; in the fast tier it prints `SKIPPED <test>: slow tier
/// (NIDO_TEST_TIER=slow)` and the test returns.
///
/// ```no_run
/// #[test]
/// fn a_thousand_devices_through_real_sockets() {
///     if !nido_testkit::slow_tier("a_thousand_devices_through_real_sockets") {
///         return;
///     }
///     // …
/// }
/// ```
pub fn slow_tier(test: &str) -> bool {
    match tier() {
        Tier::Slow | Tier::All => true,
        Tier::Fast => {
            say(&format!("SKIPPED {test}: slow tier (NIDO_TEST_TIER=slow)"));
            false
        }
    }
}

/// Whether `NIDO_REQUIRE_TOOLS` asks for every tool (any value but empty
/// and `0`).
pub fn tools_required() -> bool {
    std::env::var("NIDO_REQUIRE_TOOLS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether `NIDO_TOOLS_MISSING` (a comma-separated list of tool names, or
/// `all`) makes `tool` look missing.
fn simulated_missing(tool: &str) -> bool {
    std::env::var("NIDO_TOOLS_MISSING").is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|name| name == "all" || name.eq_ignore_ascii_case(tool))
    })
}

/// Reports that `test` cannot run because `tool` is missing: one SKIPPED
/// line, or a panic when [`tools_required`].
fn missing(test: &str, tool: &str) {
    if tools_required() {
        panic!(
            "{test}: {tool} not installed, and NIDO_REQUIRE_TOOLS is set \
             (scripts/test installs the tools on Debian)"
        );
    }
    say(&format!("SKIPPED {test}: {tool} not installed"));
}

/// Writes `line` to the process's standard error in one write. Not
/// `eprintln!`: libtest captures that and shows it only for a failing test.
fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(format!("{line}\n").as_bytes());
    let _ = stderr.flush();
}

/// The file `name` on `PATH`, if any.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether `program` can be started (`program --version`, its output
/// dropped; the exit status does not matter: it ran).
fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The program `name` (e.g. `tshark`, `openssl`, `psql`, `softhsm2-util`)
/// that `test` runs: its path on `PATH` when it runs, else `None` after
/// one SKIPPED line (a panic under `NIDO_REQUIRE_TOOLS`).
pub fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = if simulated_missing(name) {
        None
    } else {
        on_path(name).filter(|path| runs(path))
    };
    if found.is_none() {
        missing(test, name);
    }
    found
}

/// Whether `python3` imports pycrate's 5GS NAS module (`pip install
/// pycrate==0.8.1`); else `false` after one SKIPPED line (a panic under
/// `NIDO_REQUIRE_TOOLS`).
pub fn pycrate(test: &str) -> bool {
    let found = !simulated_missing("pycrate")
        && Command::new("python3")
            .args(["-c", "import pycrate_mobile.NAS5G"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    if !found {
        missing(test, "pycrate");
    }
    found
}

/// SoftHSM2's PKCS#11 module ([`SOFTHSM2_MODULE`]) when it is installed
/// and `softhsm2-util`, which makes its tokens, runs; else `None` after one
/// SKIPPED line (a panic under `NIDO_REQUIRE_TOOLS`).
pub fn softhsm2(test: &str) -> Option<PathBuf> {
    let module = PathBuf::from(SOFTHSM2_MODULE);
    let found = !simulated_missing("softhsm2")
        && module.is_file()
        && on_path("softhsm2-util").is_some_and(|util| runs(&util));
    if !found {
        missing(test, "softhsm2");
        return None;
    }
    Some(module)
}

/// The URL of the PostgreSQL server `test` uses (`NIDO_TEST_POSTGRES`, else
/// [`DEFAULT_POSTGRES`]) when it answers within two seconds; else `None`
/// after one SKIPPED line (a panic under `NIDO_REQUIRE_TOOLS`).
///
/// The check is the start of the PostgreSQL protocol (a StartupMessage,
/// protocol 3.0): the server answers with an authentication request, or
/// with an error (no such database, role refused), which counts as absent.
pub fn postgres(test: &str) -> Option<String> {
    let url = std::env::var("NIDO_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let found = !simulated_missing("postgresql") && answers(&url);
    if !found {
        missing(test, &format!("PostgreSQL ({})", redact(&url)));
        return None;
    }
    Some(url)
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The parts of a `postgres://user[:password]@host[:port]/database` URL the
/// check needs.
#[derive(Debug, PartialEq, Eq)]
struct PgTarget {
    user: String,
    host: String,
    port: u16,
    database: String,
}

fn parse_url(url: &str) -> Option<PgTarget> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let database = path.split('?').next().unwrap_or_default();
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = userinfo.split(':').next().unwrap_or_default();
    let user = if user.is_empty() { "postgres" } else { user };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (hostport, 5432),
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Some(PgTarget {
        user: user.to_owned(),
        host: host.to_owned(),
        port,
        database: if database.is_empty() { user } else { database }.to_owned(),
    })
}

/// The StartupMessage of protocol 3.0 (PostgreSQL frontend/backend
/// protocol, "Message Formats"): length, version 196608, then `user` and
/// `database` as NUL-terminated pairs and a final NUL.
fn startup_message(target: &PgTarget) -> Vec<u8> {
    let mut body = 196_608_u32.to_be_bytes().to_vec();
    for (key, value) in [("user", &target.user), ("database", &target.database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let length = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    let mut message = length.to_be_bytes().to_vec();
    message.extend(body);
    message
}

/// Whether the server of `url` answers a StartupMessage with an
/// authentication request (`R`); an error response (`E`), a refused or
/// silent connection is `false`.
fn answers(url: &str) -> bool {
    let Some(target) = parse_url(url) else {
        return false;
    };
    let Ok(addresses) = (target.host.as_str(), target.port).to_socket_addrs() else {
        return false;
    };
    let addresses: Vec<SocketAddr> = addresses.collect();
    addresses.iter().any(|address| {
        let Ok(mut stream) = TcpStream::connect_timeout(address, POSTGRES_TIMEOUT) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(POSTGRES_TIMEOUT));
        let _ = stream.set_write_timeout(Some(POSTGRES_TIMEOUT));
        let mut tag = [0_u8; 1];
        stream.write_all(&startup_message(&target)).is_ok()
            && stream.read_exact(&mut tag).is_ok()
            && tag[0] == b'R'
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn postgres_urls_are_read_as_libpq_reads_them() {
        assert_eq!(
            parse_url("postgres://postgres@127.0.0.1:5432/test"),
            Some(PgTarget {
                user: "postgres".into(),
                host: "127.0.0.1".into(),
                port: 5432,
                database: "test".into(),
            })
        );
        assert_eq!(
            parse_url("postgresql://nido:pw@db.example/nido?sslmode=disable"),
            Some(PgTarget {
                user: "nido".into(),
                host: "db.example".into(),
                port: 5432,
                database: "nido".into(),
            })
        );
        assert_eq!(parse_url("postgres://h:notaport/x"), None);
        assert_eq!(parse_url("sqlite://x.db"), None);
    }

    #[test]
    fn the_startup_message_has_its_length_version_and_parameters() {
        let target = parse_url("postgres://u@h/d").unwrap();
        let message = startup_message(&target);
        assert_eq!(
            &message[..4],
            &u32::try_from(message.len()).unwrap().to_be_bytes()
        );
        assert_eq!(&message[4..8], &[0, 3, 0, 0]);
        assert_eq!(&message[8..], b"user\0u\0database\0d\0\0");
    }

    #[test]
    fn a_password_is_not_printed() {
        assert_eq!(
            redact("postgres://nido:s3cret@127.0.0.1:5432/nido"),
            "postgres://nido@127.0.0.1:5432/nido"
        );
        assert_eq!(redact("postgres://127.0.0.1/x"), "postgres://127.0.0.1/x");
    }

    #[test]
    fn a_closed_port_is_no_postgres() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(!answers(&format!(
            "postgres://postgres@127.0.0.1:{port}/test"
        )));
    }

    #[test]
    fn a_server_that_does_not_speak_postgres_is_no_postgres() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(b"SSH-2.0-x\r\n");
        });
        assert!(!answers(&format!(
            "postgres://postgres@127.0.0.1:{port}/test"
        )));
        server.join().unwrap();
    }

    #[test]
    fn a_server_asking_for_authentication_is_postgres() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut length = [0_u8; 4];
            stream.read_exact(&mut length).unwrap();
            let mut rest = vec![0_u8; usize::try_from(u32::from_be_bytes(length)).unwrap() - 4];
            stream.read_exact(&mut rest).unwrap();
            // AuthenticationOk: 'R', length 8, code 0.
            stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]).unwrap();
            rest
        });
        assert!(answers(&format!(
            "postgres://postgres@127.0.0.1:{port}/test"
        )));
        let startup = server.join().unwrap();
        assert!(startup.ends_with(b"user\0postgres\0database\0test\0\0"));
    }

    #[test]
    fn tools_are_found_by_running_them() {
        // `sh` is on every machine these tests run on; a name that is no
        // file on PATH is not.
        assert!(on_path("sh").is_some_and(|sh| runs(&sh)));
        assert!(on_path("nido-no-such-tool-7f3a").is_none());
    }
}
