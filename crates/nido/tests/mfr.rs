//! `nido mfr` end to end, as a factory runs it: init, issue 20, a DCS
//! certificate, revoke one, publish a CRL; files, modes, openssl as the
//! oracle, and the DCS's own validation of what came out.
//!
//! `openssl` is required: without it the test fails (it never skips).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nido_sec::Cause;
use serde_json::Value;

fn nido(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = nido(args, cwd);
    assert!(
        out.status.success(),
        "nido {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs nido expecting `code`; returns stderr, which must be one line.
fn fails(args: &[&str], cwd: &Path, code: i32) -> String {
    let out = nido(args, cwd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "nido {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn openssl(args: &[&str], cwd: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `openssl` ({e}): the openssl CLI is a test oracle; \
                 scripts/test installs it (Debian package openssl)"
            )
        })
}

fn openssl_text(args: &[&str], cwd: &Path) -> (bool, String) {
    let o = openssl(args, cwd);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("nido-cli-mfr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn factory_run_end_to_end() {
    if nido_testkit::tool("factory_run_end_to_end", "openssl").is_none() {
        return;
    }
    let tmp = Tmp::new("e2e");
    let t = tmp.0.as_path();

    // init
    let out = ok(
        &[
            "mfr",
            "init",
            "--dir",
            "ca",
            "--name",
            "Acme Sensors",
            "--realm",
            "dcs.acme.example",
        ],
        t,
    );
    assert!(out.contains("root SHA-256:"), "{out}");
    assert_eq!(mode(&t.join("ca")), 0o700);
    assert_eq!(mode(&t.join("ca/root.key")), 0o600);
    assert_eq!(mode(&t.join("ca/issuing.key")), 0o600);
    // The printed fingerprint is openssl's.
    let (_, fp) = openssl_text(
        &[
            "x509",
            "-in",
            "ca/root.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        t,
    );
    let fp = fp.trim().rsplit('=').next().unwrap().to_owned();
    assert!(out.contains(&fp), "{out} vs {fp}");
    // Never twice.
    let e = fails(
        &["mfr", "init", "--dir", "ca", "--name", "Acme Sensors"],
        t,
        1,
    );
    assert!(
        e.starts_with("nido: ") && e.trim().lines().count() == 1,
        "{e}"
    );

    // issue 20
    let out = ok(
        &[
            "mfr", "issue", "--dir", "ca", "--count", "20", "--out", "batch", "--json",
        ],
        t,
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["count"], 20);
    assert_eq!(summary["first_serial"], "ACMESENS-0000000001");
    assert_eq!(summary["last_serial"], "ACMESENS-0000000020");
    assert_eq!(summary["dcs_realm"], "dcs.acme.example");
    let mut dirs: Vec<String> = std::fs::read_dir(t.join("batch"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "claims.csv" | "claims.csv.sig" | "issuing-ca.pem" | "labels"
            )
        })
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 20, "{dirs:?}");
    assert_eq!(dirs[0], "ACMESENS-0000000001");
    for d in &dirs {
        let b = t.join("batch").join(d);
        for f in [
            "device.key",
            "device.pem",
            "chain.pem",
            "mfr-root.pem",
            "manifest.json",
        ] {
            assert!(b.join(f).is_file(), "{d}/{f}");
        }
        assert_eq!(mode(&b.join("device.key")), 0o600, "{d}");
        assert_eq!(mode(&b.join("manifest.json")), 0o600, "{d}");
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(b.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["serial"], d.as_str());
        assert_eq!(m["manufacturer"], "Acme Sensors");
        assert_eq!(m["dcs_realm"], "dcs.acme.example");
        // The claim code is on the label (0600), not in the bundle the
        // device holds (issue #17): its flash does not give the code away.
        assert!(m.get("claim_code").is_none(), "{m}");
        let label = t.join("batch/labels").join(format!("{d}.txt"));
        assert_eq!(mode(&label), 0o600, "{d}");
        let code = nido_pki::bundle::read_label_code(&label).unwrap();
        let code = code.as_str();
        for f in std::fs::read_dir(&b).unwrap() {
            let text =
                String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
            assert!(!text.contains(code), "{d}: the bundle holds the claim code");
        }
        // The claims file has the hash of this code, never the code.
        let claims = std::fs::read_to_string(t.join("batch/claims.csv")).unwrap();
        assert!(claims.contains(&format!("{d},{}", nido_pki::claim_code_hash(code))));
        assert!(!claims.contains(code));
    }
    let claims = std::fs::read_to_string(t.join("batch/claims.csv")).unwrap();
    assert_eq!(claims.lines().count(), 21);
    assert_eq!(claims.lines().next(), Some("serial,claim_code_hash"));
    // The claims file is signed by the issuing CA: openssl checks it.
    {
        let pubkey = openssl(
            &["x509", "-in", "batch/issuing-ca.pem", "-noout", "-pubkey"],
            t,
        );
        assert!(pubkey.status.success());
        std::fs::write(t.join("issuing-pub.pem"), &pubkey.stdout).unwrap();
        let verify = |file: &str| {
            openssl_text(
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    "issuing-pub.pem",
                    "-signature",
                    "batch/claims.csv.sig",
                    file,
                ],
                t,
            )
        };
        let (good, text) = verify("batch/claims.csv");
        assert!(good && text.contains("Verified OK"), "{text}");
        std::fs::write(
            t.join("tampered.csv"),
            claims.replace("ACMESENS-0000000001,", "ACMESENS-0000000099,"),
        )
        .unwrap();
        let (good, text) = verify("tampered.csv");
        assert!(!good, "{text}");
    }

    // A bundle verifies with openssl from its own files.
    let b1 = t.join("batch/ACMESENS-0000000001");
    let (good, text) = openssl_text(
        &[
            "verify",
            "-CAfile",
            "mfr-root.pem",
            "-untrusted",
            "chain.pem",
            "device.pem",
        ],
        &b1,
    );
    assert!(good && text.contains("device.pem: OK"), "{text}");

    // Serials continue across runs.
    let out = ok(
        &[
            "mfr", "issue", "--dir", "ca", "--count", "2", "--out", "batch", "--json",
        ],
        t,
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["first_serial"], "ACMESENS-0000000021");
    assert_eq!(
        std::fs::read_to_string(t.join("batch/claims.csv"))
            .unwrap()
            .lines()
            .count(),
        23
    );
    let log = std::fs::read_to_string(t.join("ca/issued.csv")).unwrap();
    assert_eq!(log.lines().count(), 23, "{log}");

    // dcs-cert
    let out = ok(
        &[
            "mfr",
            "dcs-cert",
            "--dir",
            "ca",
            "--host",
            "dcs.acme.example",
            "--out",
            "dcs",
        ],
        t,
    );
    assert!(out.contains("dcs.pem"), "{out}");
    assert_eq!(mode(&t.join("dcs/dcs.key")), 0o600);
    let chain = std::fs::read_to_string(t.join("dcs/dcs.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    let (good, text) = openssl_text(
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "dcs.acme.example",
            "-CAfile",
            "mfr-root.pem",
            "-untrusted",
            "dcs.pem",
            "dcs.pem",
        ],
        &t.join("dcs"),
    );
    assert!(good, "{text}");

    // revoke one; an unknown serial revokes nothing.
    let e = fails(
        &[
            "mfr",
            "revoke",
            "--dir",
            "ca",
            "ACMESENS-0000000005",
            "NOPE-1",
        ],
        t,
        1,
    );
    assert!(e.contains("NOPE-1") && e.trim().lines().count() == 1, "{e}");
    let out = ok(
        &[
            "mfr",
            "revoke",
            "--dir",
            "ca",
            "--reason",
            "key-compromise",
            "ACMESENS-0000000005",
        ],
        t,
    );
    assert!(out.contains("revoked ACMESENS-0000000005"), "{out}");

    // crl
    ok(&["mfr", "crl", "--dir", "ca", "--out", "acme.crl.pem"], t);
    let (_, serial) = openssl_text(
        &[
            "x509",
            "-in",
            "batch/ACMESENS-0000000005/device.pem",
            "-noout",
            "-serial",
        ],
        t,
    );
    let serial = serial.trim().strip_prefix("serial=").unwrap().to_owned();
    let (good, text) = openssl_text(&["crl", "-in", "acme.crl.pem", "-noout", "-text"], t);
    assert!(good, "{text}");
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    let verify = |bundle: &str| {
        openssl_text(
            &[
                "verify",
                "-crl_check",
                "-CRLfile",
                "acme.crl.pem",
                "-CAfile",
                "ca/root.pem",
                "-untrusted",
                "ca/issuing.pem",
                &format!("batch/{bundle}/device.pem"),
            ],
            t,
        )
    };
    let (good, text) = verify("ACMESENS-0000000005");
    assert!(!good && text.contains("certificate revoked"), "{text}");
    let (good, text) = verify("ACMESENS-0000000006");
    assert!(good, "{text}");

    // The DCS side accepts a bundle and refuses the revoked one with #3.
    let root = nido_pki::files::read_certs(&t.join("ca/root.pem")).unwrap();
    let issuing = nido_pki::files::read_certs(&t.join("ca/issuing.pem")).unwrap();
    let crl = nido_pki::files::read_crl(&t.join("acme.crl.pem")).unwrap();
    let mut store = nido_pki::TrustStore::new();
    store
        .enroll("acme", root[0].clone(), nido_pki::Policy::default())
        .unwrap();
    store.add_crl("acme", &crl, &issuing[0]).unwrap();
    let now = nido_pki::UnixTime::now();
    let good = nido_pki::FactoryBundle::load(&t.join("batch/ACMESENS-0000000006")).unwrap();
    let info = store
        .validate(&good.identity.chain[0], &good.identity.chain[1..], now)
        .unwrap();
    assert_eq!(info.id.serial(), "ACMESENS-0000000006");
    assert_eq!(good.dcs_realm, "dcs.acme.example");
    let bad = nido_pki::FactoryBundle::load(&t.join("batch/ACMESENS-0000000005")).unwrap();
    let refusal = store
        .validate(&bad.identity.chain[0], &bad.identity.chain[1..], now)
        .unwrap_err();
    assert_eq!(refusal.reason, nido_pki::RefusalReason::Revoked);
    assert_eq!(refusal.gmm_cause(), Cause::ILLEGAL_UE);

    // manufacturer.json has the state.
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("ca/manufacturer.json")).unwrap())
            .unwrap();
    assert_eq!(state["next_serial"], 23);
    assert_eq!(state["crl_number"], 1);
    assert_eq!(state["revoked"][0]["serial"], "ACMESENS-0000000005");
    assert_eq!(state["revoked"][0]["reason"], "key-compromise");
    assert!(!t.join("ca/lock").exists());
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let tmp = Tmp::new("errors");
    let t = tmp.0.as_path();
    // Bad usage: exit 2.
    fails(
        &["mfr", "issue", "--dir", "ca", "--count", "0", "--out", "o"],
        t,
        2,
    );
    fails(
        &[
            "mfr", "issue", "--dir", "ca", "--count", "many", "--out", "o",
        ],
        t,
        2,
    );
    fails(&["mfr", "init", "--dir", "ca"], t, 2);
    fails(&["mfr", "revoke", "--dir", "ca"], t, 2);
    let e = fails(
        &[
            "mfr",
            "init",
            "--dir",
            "ca",
            "--name",
            "A",
            "--realm",
            "not a realm",
        ],
        t,
        2,
    );
    assert!(e.starts_with("nido: --realm:"), "{e}");
    assert!(
        !t.join("ca").exists(),
        "a refused init leaves nothing behind"
    );
    // The operation fails: exit 1, one line.
    let e = fails(
        &["mfr", "issue", "--dir", "ca", "--count", "1", "--out", "o"],
        t,
        1,
    );
    assert!(e.contains("nido mfr init"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    ok(&["mfr", "init", "--dir", "ca", "--name", "A"], t);
    std::fs::write(t.join("ca/lock"), "4242\n").unwrap();
    let e = fails(&["mfr", "crl", "--dir", "ca", "--out", "x.pem"], t, 1);
    assert!(e.contains("in use (pid 4242)"), "{e}");
    std::fs::remove_file(t.join("ca/lock")).unwrap();
    ok(&["mfr", "crl", "--dir", "ca", "--out", "x.pem"], t);
    // --help teaches.
    let help = ok(&["mfr", "--help"], t);
    assert!(
        help.contains("A first run:") && help.contains("issued.csv"),
        "{help}"
    );
    let help = ok(&["mfr", "issue", "--help"], t);
    assert!(
        help.contains("claims.csv") && help.contains("never repeat"),
        "{help}"
    );
}

#[test]
fn an_external_dcs_manufacturer_issues_bundles_that_say_msk() {
    let tmp = Tmp::new("external-dcs");
    let t = tmp.0.as_path();
    let out = ok(
        &[
            "mfr",
            "init",
            "--dir",
            "ca",
            "--name",
            "Acme Sensors",
            "--realm",
            "dcs.acme.example",
            "--external-dcs",
        ],
        t,
    );
    assert!(out.contains("K_AUSF from the MSK"), "{out}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("ca/manufacturer.json")).unwrap())
            .unwrap();
    assert_eq!(state["external_dcs"], true);
    let summary: Value = serde_json::from_str(&ok(
        &[
            "mfr", "issue", "--dir", "ca", "--count", "1", "--out", "out", "--json",
        ],
        t,
    ))
    .unwrap();
    assert_eq!(summary["kausf_from"], "msk");
    let serial = summary["first_serial"].as_str().unwrap();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(t.join("out").join(serial).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["kausf_from"], "msk");
    let bundle = nido_pki::FactoryBundle::load(&t.join("out").join(serial)).unwrap();
    assert_eq!(bundle.kausf_from, nido_pki::KausfFrom::Msk);

    // Without the flag: nothing written, the EMSK rule.
    ok(
        &["mfr", "init", "--dir", "ca2", "--name", "Builtin Sensors"],
        t,
    );
    let state = std::fs::read_to_string(t.join("ca2/manufacturer.json")).unwrap();
    assert!(!state.contains("external_dcs"), "{state}");
}
