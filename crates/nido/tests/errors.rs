//! Failures an operator meets, through the real `nido` binary: a bad
//! `nido.toml` (syntax error, unknown key, MSIN digits not making 15), a
//! database that cannot be reached or refuses, a wrong key-encryption key,
//! a UDP port in use, a device vault that was modified or whose key file is
//! readable by others, a missing bundle. Each ends with exit code 1 and ONE
//! line on stderr, `nido: ...`, that names what is wrong; never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scratch, free_udp_port, nido, ok};

/// Runs `nido ARGS` with `env` (killed if it still runs after 30 s: a
/// `serve` that should have failed) and checks it failed the way an
/// operator can act on: exit code 1, one stderr line starting `nido: `, no
/// panic. Returns that line.
fn fails(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    fails_with(1, args, cwd, env)
}

/// As [`fails`], for a usage error: exit code 2.
fn usage_fails(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    fails_with(2, args, cwd, env)
}

fn fails_with(code: i32, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Exited or killed: the (short) output is in the pipes.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "nido {args:?} panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "nido {args:?}: {}\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "nido {args:?}: not one line:\n{stderr}");
    assert!(lines[0].starts_with("nido: "), "{stderr}");
    lines[0].to_owned()
}

/// `nido network init` in `d/net` (SQLite).
fn network_dir(d: &Path) {
    let listen = format!("127.0.0.1:{}", free_udp_port());
    ok(&["network", "init", "--dir", "net", "--listen", &listen], d);
}

/// Replaces the line of `net/nido.toml` that starts with `prefix` by `line`.
fn edit_config(d: &Path, prefix: &str, line: &str) {
    let path = d.join("net/nido.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().any(|l| l.starts_with(prefix)), "{text}");
    let edited: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
}

/// A manufacturer with one device whose vault exists (created by a run
/// against an address where no network listens); returns the bundle path.
fn device_with_vault(d: &Path) -> &'static str {
    ok(
        &["mfr", "init", "--dir", "mfr", "--name", "Acme Sensors"],
        d,
    );
    ok(
        &[
            "mfr", "issue", "--dir", "mfr", "--count", "1", "--out", "factory",
        ],
        d,
    );
    let bundle = "factory/ACMESENS-0000000001";
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let line = fails(
        &[
            "device",
            "run",
            "--bundle",
            bundle,
            "--network",
            &dead,
            "--timeout",
            "1",
        ],
        d,
        &[],
    );
    assert!(line.contains("timed out"), "{line}");
    assert!(d.join(bundle).join("vault/vault.bin").is_file());
    bundle
}

/// `device run` (against an address where no network listens) and
/// `device status` both fail; returns their lines.
fn device_fails(d: &Path, bundle: &str) -> [String; 2] {
    let dead = format!("127.0.0.1:{}", free_udp_port());
    [
        fails(
            &[
                "device",
                "run",
                "--bundle",
                bundle,
                "--network",
                &dead,
                "--timeout",
                "1",
            ],
            d,
            &[],
        ),
        fails(&["device", "status", "--bundle", bundle], d, &[]),
    ]
}

#[test]
fn a_config_with_a_syntax_error() {
    let s = Scratch::new("err-syntax");
    let d = &s.0;
    network_dir(d);
    edit_config(d, "mcc = ", "mcc = \"999");
    let line = fails(&["network", "serve", "--dir", "net"], d, &[]);
    assert!(line.contains("nido.toml"), "{line}");
}

#[test]
fn a_config_with_an_unknown_key() {
    let s = Scratch::new("err-key");
    let d = &s.0;
    network_dir(d);
    edit_config(d, "mcc = ", "mcc = \"999\"\ncolour = \"blue\"");
    let line = fails(&["network", "serve", "--dir", "net"], d, &[]);
    assert!(
        line.contains("nido.toml") && line.contains("colour"),
        "{line}"
    );
}

#[test]
fn msin_digits_that_do_not_make_15_imsi_digits() {
    let s = Scratch::new("err-msin");
    let d = &s.0;
    network_dir(d);
    edit_config(d, "msin_digits = ", "msin_digits = 9");
    let line = fails(&["network", "serve", "--dir", "net"], d, &[]);
    assert!(
        line.contains("nido.toml") && line.contains("msin_digits"),
        "{line}"
    );
}

#[test]
fn an_unreachable_database() {
    let s = Scratch::new("err-unreachable");
    let d = &s.0;
    network_dir(d);
    let line = fails(
        &[
            "network",
            "serve",
            "--dir",
            "net",
            "--db",
            "postgres://postgres@127.0.0.1:1/nope",
        ],
        d,
        &[],
    );
    assert!(line.contains("127.0.0.1:1"), "{line}");
}

#[test]
fn a_database_that_refuses() {
    let Some(admin) = nido_testkit::postgres("a_database_that_refuses") else {
        return;
    };
    let server = admin.rsplit_once('/').unwrap().0;
    let s = Scratch::new("err-refused");
    let d = &s.0;
    network_dir(d);
    let name = format!("does_not_exist_{}", std::process::id());
    let line = fails(
        &[
            "network",
            "serve",
            "--dir",
            "net",
            "--db",
            &format!("{server}/{name}"),
        ],
        d,
        &[],
    );
    assert!(line.contains(&name) && line.contains("refused"), "{line}");
}

#[test]
fn a_wrong_key_encryption_key() {
    let s = Scratch::new("err-kek");
    let d = &s.0;
    network_dir(d);
    let zeros = d.join("zeros.hex");
    std::fs::write(&zeros, "0".repeat(64)).unwrap();
    std::fs::set_permissions(&zeros, std::fs::Permissions::from_mode(0o600)).unwrap();
    for args in [
        &["network", "serve", "--dir", "net"][..],
        &["network", "subscriptions", "--dir", "net"],
    ] {
        let line = fails(args, d, &[("NIDO_KEK_FILE", zeros.to_str().unwrap())]);
        assert!(line.contains("key-encryption key"), "{line}");
    }
}

#[test]
fn a_udp_port_in_use() {
    let s = Scratch::new("err-udp");
    let d = &s.0;
    network_dir(d);
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = fails(
        &["network", "serve", "--dir", "net", "--listen", &addr],
        d,
        &[],
    );
    assert!(line.contains("UDP") && line.contains(&addr), "{line}");
    drop(taken);
}

#[test]
fn a_vault_with_a_flipped_byte() {
    let s = Scratch::new("err-vault");
    let d = &s.0;
    let bundle = device_with_vault(d);
    let path = d.join(bundle).join("vault/vault.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    for line in device_fails(d, bundle) {
        assert!(
            line.contains("vault.bin") && line.contains("corrupt"),
            "{line}"
        );
    }
}

#[test]
fn a_device_key_readable_by_others() {
    let s = Scratch::new("err-devkey");
    let d = &s.0;
    let bundle = device_with_vault(d);
    let key = d.join(bundle).join("vault/device.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    for line in device_fails(d, bundle) {
        assert!(
            line.contains("device.key") && line.contains("0644"),
            "{line}"
        );
    }
}

#[test]
fn a_missing_bundle_directory() {
    let s = Scratch::new("err-bundle");
    let d = &s.0;
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let line = fails(
        &[
            "device",
            "run",
            "--bundle",
            "no-such-bundle",
            "--network",
            &dead,
            "--timeout",
            "1",
        ],
        d,
        &[],
    );
    assert!(line.contains("no-such-bundle"), "{line}");
}

#[test]
fn the_status_of_a_missing_bundle_directory() {
    let s = Scratch::new("err-status");
    let d = &s.0;
    let line = fails(&["device", "status", "--bundle", "no-such-bundle"], d, &[]);
    assert!(line.contains("no-such-bundle"), "{line}");
    // A typo must not read as "this device has no vault yet".
    let out = nido(&["device", "status", "--bundle", "no-such-bundle"], d);
    assert!(out.stdout.is_empty());
}

#[test]
fn network_key_files_readable_by_others_are_refused() {
    let s = Scratch::new("err-keymode");
    let d = &s.0;
    network_dir(d);
    // The KEK (read at open), then the OP and the SUCI key (serve).
    for key in ["keys/kek.hex", "keys/op.hex", "keys/suci-a-1.hex"] {
        let path = d.join("net").join(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let line = fails(&["network", "serve", "--dir", "net"], d, &[]);
        assert!(
            line.contains(key) && line.contains("0640") && line.contains("chmod 600"),
            "{line}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // $NIDO_KEK_FILE follows the same rule.
    let kek = d.join("net/keys/kek.hex");
    let elsewhere = d.join("kek-copy.hex");
    std::fs::copy(&kek, &elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = fails(
        &["network", "subscriptions", "--dir", "net"],
        d,
        &[("NIDO_KEK_FILE", elsewhere.to_str().unwrap())],
    );
    assert!(
        line.contains("kek-copy.hex") && line.contains("chmod 600"),
        "{line}"
    );
}

#[test]
fn the_kek_from_a_file_and_a_warning_for_the_variable() {
    let s = Scratch::new("err-kekfile");
    let d = &s.0;
    network_dir(d);
    let kek = std::fs::read_to_string(d.join("net/keys/kek.hex")).unwrap();
    let moved = d.join("kek.hex");
    std::fs::rename(d.join("net/keys/kek.hex"), &moved).unwrap();
    // Without the configured file: $NIDO_KEK_FILE, silently.
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(["network", "subscriptions", "--dir", "net"])
        .env("NIDO_KEK_FILE", &moved)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    // $NIDO_KEK still works, but says why it should not be used.
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(["network", "subscriptions", "--dir", "net"])
        .env("NIDO_KEK", kek.trim())
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("NIDO_KEK_FILE"),
        "{stderr}"
    );
}

#[test]
fn an_owner_psk_comes_from_a_file_or_stdin_never_argv() {
    use std::io::Write;
    let s = Scratch::new("err-psk");
    let d = &s.0;
    network_dir(d);
    ok(
        &[
            "owner", "create", "--dir", "net", "--id", "acme", "--name", "Acme",
        ],
        d,
    );
    let lwm2m = [
        "owner",
        "credentials",
        "--dir",
        "net",
        "--owner",
        "acme",
        "--lwm2m",
        "coaps://lwm2m.example:5684",
        "--psk-identity",
        "acme",
    ];
    // The old flag is refused, with the way to do it.
    let mut args = lwm2m.to_vec();
    args.extend(["--psk", "00112233"]);
    let line = usage_fails(&args, d, &[]);
    assert!(line.contains("--psk-file"), "{line}");
    // From a file.
    std::fs::write(d.join("acme.psk"), "00112233\n").unwrap();
    let mut args = lwm2m.to_vec();
    args.extend(["--psk-file", "acme.psk"]);
    ok(&args, d);
    // From standard input.
    let mut args = lwm2m.to_vec();
    args.extend(["--psk-file", "-"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(&args)
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a0a1a2a3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Not hex: refused, naming the file.
    std::fs::write(d.join("bad.psk"), "not hex").unwrap();
    let mut args = lwm2m.to_vec();
    args.extend(["--psk-file", "bad.psk"]);
    let line = fails(&args, d, &[]);
    assert!(line.contains("bad.psk"), "{line}");
}
