//! `nido dcs serve` meets an EAP-TLS peer and RADIUS client it never
//! shared code with: hostapd's `eapol_test` (Debian package `eapoltest`).
//! A genuine device's IDevID completes EAP-TLS 1.3 and eapol_test checks
//! that the MSK in the Access-Accept's MS-MPPE keys equals the one it
//! derived itself ("MPPE keys OK"); a revoked, a blocked, a foreign and
//! an expired device get Access-Reject; a client with the wrong secret gets nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::{Scratch, free_udp_port, ok, spawn, wait_for_log};
use serde_json::Value;

const SECRET: &str = "operator-a-shared-secret";

struct Serving {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A manufacturer with `devices` devices and a CRL, a second manufacturer
/// with one device, a DCS for the first with client 127.0.0.1, serving.
fn setup(d: &Path) -> Serving {
    ok(
        &[
            "mfr",
            "init",
            "--dir",
            "mfr",
            "--name",
            "Acme Sensors",
            "--realm",
            "dcs.acme.example",
        ],
        d,
    );
    ok(
        &[
            "mfr", "issue", "--dir", "mfr", "--count", "3", "--out", "factory",
        ],
        d,
    );
    ok(
        &[
            "mfr",
            "init",
            "--dir",
            "other",
            "--name",
            "Other Corp",
            "--realm",
            "dcs.other.example",
        ],
        d,
    );
    ok(
        &[
            "mfr",
            "issue",
            "--dir",
            "other",
            "--count",
            "1",
            "--out",
            "other-factory",
        ],
        d,
    );
    ok(&["mfr", "revoke", "--dir", "mfr", "ACMESENS-0000000002"], d);
    ok(
        &[
            "dcs",
            "init",
            "--dir",
            "dcs",
            "--mfr",
            "mfr",
            "--host",
            "dcs.acme.example",
        ],
        d,
    );
    ok(
        &[
            "dcs",
            "add-client",
            "--dir",
            "dcs",
            "--name",
            "operator-a",
            "--address",
            "127.0.0.1",
            "--secret",
            SECRET,
        ],
        d,
    );
    ok(&["dcs", "block", "--dir", "dcs", "ACMESENS-0000000003"], d);
    let port = free_udp_port();
    let log = d.join("dcs.log");
    let child = spawn(
        &[
            "dcs",
            "serve",
            "--dir",
            "dcs",
            "--radius",
            &format!("127.0.0.1:{port}"),
        ],
        d,
        &log,
    );
    wait_for_log(&log, "serving", Duration::from_secs(20));
    Serving { child, port, log }
}

/// Runs eapol_test as device `bundle` (chain.pem, device.key) trusting
/// the manufacturer root `ca`, against the DCS with `secret`.
fn eapol_test(
    program: &Path,
    d: &Path,
    bundle: &Path,
    ca: &Path,
    port: u16,
    secret: &str,
    timeout_s: u32,
) -> Output {
    let conf = d.join(format!(
        "{}.conf",
        bundle.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &conf,
        format!(
            "network={{\n  key_mgmt=IEEE8021X\n  eap=TLS\n  identity=\"anonymous@dcs.acme.example\"\n  \
             ca_cert=\"{}\"\n  client_cert=\"{}\"\n  private_key=\"{}\"\n  \
             phase1=\"tls_disable_tlsv1_0=1 tls_disable_tlsv1_1=1 tls_disable_tlsv1_2=1 tls_disable_tlsv1_3=0\"\n  \
             eapol_flags=0\n}}\n",
            ca.display(),
            bundle.join("chain.pem").display(),
            bundle.join("device.key").display()
        ),
    )
    .unwrap();
    Command::new(program)
        .args(["-c"])
        .arg(&conf)
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-s",
            secret,
            "-t",
            &timeout_s.to_string(),
            "-r",
            "0",
        ])
        .output()
        .unwrap()
}

fn audit(d: &Path) -> Vec<Value> {
    let text = ok(&["dcs", "audit", "--dir", "dcs", "--json"], d);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn eapol_test_authenticates_a_genuine_device_and_is_refused_the_others() {
    let Some(program) = nido_testkit::tool("dcs_eapol_test", "eapol_test") else {
        return;
    };
    let scratch = Scratch::new("dcs-eapol-test");
    let d = &scratch.0;
    let serving = setup(d);
    let root = d.join("mfr/root.pem");

    // A genuine device: EAP-TLS 1.3 succeeds and the MPPE keys match.
    let good = eapol_test(
        &program,
        d,
        &d.join("factory/ACMESENS-0000000001"),
        &root,
        serving.port,
        SECRET,
        10,
    );
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success() && text.contains("MPPE keys OK") && text.contains("SUCCESS"),
        "eapol_test did not succeed:\n{text}\n--- dcs log:\n{}",
        std::fs::read_to_string(&serving.log).unwrap_or_default()
    );
    assert!(text.contains("TLSv1.3"), "not TLS 1.3:\n{text}");
    let records = audit(d);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"], "accept");
    assert_eq!(records[0]["serial"], "ACMESENS-0000000001");
    assert_eq!(records[0]["client"], "operator-a");

    // Revoked (in the CRL `dcs init` took from the manufacturer after the
    // revocation), blocked, and another manufacturer's device.
    for (bundle, ca, reason) in [
        ("factory/ACMESENS-0000000002", "mfr/root.pem", "revoked"),
        ("factory/ACMESENS-0000000003", "mfr/root.pem", "blocked"),
        (
            "other-factory/OTHERCOR-0000000001",
            "mfr/root.pem",
            "unknown-manufacturer",
        ),
    ] {
        let out = eapol_test(
            &program,
            d,
            &d.join(bundle),
            &d.join(ca),
            serving.port,
            SECRET,
            10,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{bundle} was accepted:\n{text}");
        assert!(
            text.contains("Access-Reject")
                || text.contains("EAP: Received EAP-Failure")
                || text.contains("CTRL-EVENT-EAP-FAILURE"),
            "{bundle}: no Access-Reject:\n{text}"
        );
        let last = audit(d).pop().unwrap();
        assert_eq!(last["decision"], "reject", "{bundle}: {last}");
        assert_eq!(last["reason"], reason, "{bundle}: {last}");
    }

    // An expired IDevID of the genuine manufacturer (not in any CRL).
    let m = nido_pki::Manufacturer::load(&d.join("mfr")).unwrap();
    let now = std::time::SystemTime::now();
    let id = m
        .issue_device(&m.device_serial(9), &nido_pki::DeviceProfile::expired(now))
        .unwrap();
    let expired = d.join("expired-device");
    std::fs::create_dir_all(&expired).unwrap();
    let mut chain = String::new();
    for c in &id.chain {
        chain.push_str(&nido_pki::files::pem("CERTIFICATE", c));
    }
    std::fs::write(expired.join("chain.pem"), chain).unwrap();
    std::fs::write(
        expired.join("device.key"),
        nido_pki::files::pem("PRIVATE KEY", id.key.secret_pkcs8_der()),
    )
    .unwrap();
    let out = eapol_test(&program, d, &expired, &root, serving.port, SECRET, 10);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "an expired IDevID was accepted:\n{text}"
    );
    let last = audit(d).pop().unwrap();
    assert_eq!(last["decision"], "reject", "{last}");
    assert_eq!(last["reason"], "expired", "{last}");

    // A client that does not know the secret: every request is dropped
    // (the Message-Authenticator does not verify); eapol_test times out.
    let before = audit(d).len();
    let wrong = eapol_test(
        &program,
        d,
        &d.join("factory/ACMESENS-0000000001"),
        &root,
        serving.port,
        "not-the-shared-secret",
        3,
    );
    assert!(!wrong.status.success());
    assert_eq!(
        audit(d).len(),
        before,
        "a request with a wrong secret reached the EAP layer"
    );
}
