//! `nido device reset` (issue #16) against `nido network serve`, real
//! processes: a device onboarded to active is factory reset (file vault,
//! and PKCS#11 token in SoftHSM2), its next run onboards again and gets a
//! new K in the same subscription without the operator releasing it; the
//! audit trail says the erasure receipt was verified.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::process::Command;

use common::{Scratch, json_lines, manufacturer_and_network, ok, serve, softhsm_token};
use serde_json::Value;

const BUNDLE: &str = "factory/ACMESENS-0000000001";

/// `nido device ARGS` with the token's environment when `token` is set.
fn device(d: &Path, args: &[&str], token: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nido"));
    cmd.env("NIDO_API", "127.0.0.1:0")
        .arg("device")
        .args(args)
        .current_dir(d);
    if let Some(conf) = token {
        cmd.env("SOFTHSM2_CONF", conf)
            .env("NIDO_TOKEN_PIN", "1234")
            .args(["--token-label", "device-1"]);
    }
    cmd.output().unwrap()
}

fn run_until_active(d: &Path, listen: &str, token: Option<&Path>) -> Vec<Value> {
    let out = device(
        d,
        &[
            "run",
            "--bundle",
            BUNDLE,
            "--network",
            listen,
            "--until",
            "active",
            "--timeout",
            "120",
            "--json",
        ],
        token,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&stdout)
}

fn subscriptions(d: &Path) -> Vec<Value> {
    json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ))
}

fn reset_and_onboard_again(tag: &str, token: bool) {
    let s = Scratch::new(tag);
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    let _network = serve(d, &[]);
    let conf = token.then(|| softhsm_token(d, "device-1"));
    let token = conf.as_deref();

    let first = run_until_active(d, &listen, token);
    let provisioned = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["event"] == "provisioned")
            .map(|l| l["detail"]["supi"].as_str().unwrap().to_owned())
            .collect()
    };
    let supi = provisioned(&first).pop().expect("provisioned");
    let before = subscriptions(d);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["state"], "active");

    // Nothing to reset twice; the first reset prints its receipt.
    let out = device(
        d,
        &[
            "reset",
            "--bundle",
            BUNDLE,
            "--json",
            "--receipt-out",
            "receipt.cbor",
        ],
        token,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let receipt: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(receipt["serial"], "ACMESENS-0000000001");
    assert_eq!(receipt["reset"], 1);
    let cbor = std::fs::read(d.join("receipt.cbor")).unwrap();
    assert_eq!(
        receipt["receipt_sha256"],
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cbor).as_ref())
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&hex::encode(&cbor)));
    openssl_verifies(d, &cbor);
    let again = device(d, &["reset", "--bundle", BUNDLE], token);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no subscription to erase"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    if token.is_none() {
        let status = ok(&["device", "status", "--bundle", BUNDLE], d);
        assert!(status.contains("\"subscription\":false"), "{status}");
    }

    // The next run onboards again: the same SUPI, a new package, no
    // operator action, one subscription.
    let second = run_until_active(d, &listen, token);
    assert_eq!(provisioned(&second), std::slice::from_ref(&supi));
    let after = subscriptions(d);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["supi"], supi);
    assert_eq!(after[0]["state"], "active");
    let audit = json_lines(&ok(
        &[
            "network",
            "audit",
            "--dir",
            "net",
            "--json",
            "--kind",
            "package_delivered",
        ],
        d,
    ));
    assert!(
        audit.iter().any(|e| e["detail"]
            .as_str()
            .is_some_and(|t| t.contains("after a factory reset")
                && t.contains("reset #1")
                && t.contains("signed by its IDevID key"))),
        "{audit:?}"
    );
}

/// An independent check of the receipt's signature: OpenSSL verifies it
/// (ECDSA P-256 SHA-256, DER) over the signed octets with the public key
/// of the device certificate in the factory bundle.
fn openssl_verifies(d: &Path, cbor: &[u8]) {
    let Some(openssl) = nido_testkit::tool("receipt signature checked by openssl", "openssl")
    else {
        return;
    };
    let receipt = nido_prov::ErasureReceipt::decode(cbor).unwrap();
    let dir = d.join("receipt-check");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("signed.bin"), receipt.signed_octets()).unwrap();
    std::fs::write(dir.join("signature.der"), &receipt.signature).unwrap();
    let pubkey = Command::new(&openssl)
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(d.join(BUNDLE).join("device.pem"))
        .output()
        .unwrap();
    assert!(pubkey.status.success());
    std::fs::write(dir.join("device-pub.pem"), &pubkey.stdout).unwrap();
    let verify = |signed: &str| {
        Command::new(&openssl)
            .args(["dgst", "-sha256", "-verify", "device-pub.pem"])
            .args(["-signature", "signature.der", signed])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = verify("signed.bin");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One octet changed (the count of resets): OpenSSL refuses it.
    let mut changed = receipt.clone();
    changed.counter += 1;
    std::fs::write(dir.join("changed.bin"), changed.signed_octets()).unwrap();
    assert!(!verify("changed.bin").status.success());
}

#[test]
fn a_file_vault_device_reset_onboards_again_with_a_new_k() {
    reset_and_onboard_again("reset-vault", false);
}

#[test]
fn a_token_device_reset_onboards_again_with_a_new_k() {
    if nido_testkit::softhsm2("a_token_device_reset_onboards_again_with_a_new_k").is_none() {
        return;
    }
    reset_and_onboard_again("reset-token", true);
}
