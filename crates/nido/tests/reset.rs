//! `nido device reset` (issue #16) against `nido network serve`, real
//! processes: a device onboarded to active is factory reset (file vault,
//! and PKCS#11 token in SoftHSM2), its next run onboards again and gets a
//! new K in the same subscription without the operator releasing it; the
//! audit trail says the erasure receipt was verified. `nido network rekey`
//! (issue #16 item 4): the device's next registration is refused (#7) and
//! it renews its package the same way; a device registered when its
//! package ends is deregistered (#7) and renews at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    Reaper, Scratch, claim, claim_code_in, eventually, json_lines, manufacturer_and_network, nido,
    ok, serve, softhsm_token, spawn, wait_for_log,
};
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

/// The network's audit entries of `kind`.
fn audit(d: &Path, kind: &str) -> Vec<Value> {
    json_lines(&ok(
        &["network", "audit", "--dir", "net", "--json", "--kind", kind],
        d,
    ))
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
    let audit = audit(d, "package_delivered");
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

/// `nido network rekey`: the package of an active device ends at once; the
/// device's next run is refused with #7, erases its package (receipt) and
/// onboards again: the same SUPI, a new package with a new validity, one
/// subscription, the change in the audit trail. A device without a
/// subscription, or one re-keyed twice before renewing, is refused.
#[test]
fn a_rekeyed_device_gets_a_new_k_at_its_next_registration() {
    let s = Scratch::new("rekey");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 2);
    let _network = serve(d, &[]);
    let first = run_until_active(d, &listen, None);
    assert!(first.iter().all(|l| l["event"] != "renewing"), "{first:?}");
    let before = subscriptions(d);
    assert_eq!(before.len(), 1);
    let end = before[0]["not_after"]
        .as_str()
        .expect("a package end")
        .to_owned();

    let device = "Acme Sensors/ACMESENS-0000000001";
    let out = nido(
        &[
            "network",
            "rekey",
            "--dir",
            "net",
            "Acme Sensors/ACMESENS-0000000002",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no subscription"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = json_lines(&ok(
        &[
            "network",
            "rekey",
            "--dir",
            "net",
            "--json",
            "--reason",
            "key audit",
            device,
        ],
        d,
    ));
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["device"], device);
    assert_eq!(done[0]["changed"], true);
    let ended = subscriptions(d);
    assert!(
        ended[0]["not_after"].as_str().unwrap() < end.as_str(),
        "{ended:?}"
    );
    // Twice: the package has already ended.
    assert!(
        !nido(&["network", "rekey", "--dir", "net", device], d)
            .status
            .success()
    );

    let second = run_until_active(d, &listen, None);
    assert!(
        second
            .iter()
            .any(|l| l["event"] == "rejected" && l["detail"]["cause"] == 7),
        "{second:?}"
    );
    let renewing: Vec<_> = second.iter().filter(|l| l["event"] == "renewing").collect();
    assert_eq!(renewing.len(), 1, "{second:?}");
    assert_eq!(renewing[0]["detail"]["package_id"], before[0]["package_id"]);
    assert_eq!(renewing[0]["detail"]["refused_as_ended"], true);
    let after = subscriptions(d);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["supi"], before[0]["supi"]);
    assert_eq!(after[0]["state"], "active");
    assert_ne!(after[0]["package_id"], before[0]["package_id"]);
    assert!(
        after[0]["not_after"].as_str().unwrap() >= end.as_str(),
        "{after:?}"
    );
    let audit = audit(d, "package_ended");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0]["detail"].as_str().unwrap().contains("key audit"),
        "{audit:?}"
    );
}

/// A device registered (a running `nido device run`) when the operator
/// ends its package is deregistered at the network's next poll, without a
/// registration of its own: a protected DEREGISTRATION REQUEST #7, on
/// which it erases the package with its receipt and renews it at once
/// (the same SUPI, a new package, still one subscription).
#[test]
fn a_registered_device_is_deregistered_when_its_package_ends_and_renews() {
    let s = Scratch::new("rekey-live");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    let _network = serve(d, &["--trust-poll-ms", "100"]);
    let log = d.join("device.log");
    let _device = Reaper(spawn(
        &[
            "device",
            "run",
            "--bundle",
            BUNDLE,
            "--network",
            &listen,
            "--json",
            "--timeout",
            "300",
        ],
        d,
        &log,
    ));
    wait_for_log(&log, "\"active\"", std::time::Duration::from_secs(120));
    let before = subscriptions(d);
    assert_eq!(before.len(), 1, "{before:?}");
    ok(
        &[
            "network",
            "rekey",
            "--dir",
            "net",
            "Acme Sensors/ACMESENS-0000000001",
        ],
        d,
    );
    wait_for_log(&log, "\"renewing\"", std::time::Duration::from_secs(60));
    let after = eventually(std::time::Duration::from_secs(120), || {
        let after = subscriptions(d);
        match after.as_slice() {
            [one] if one["package_id"] != before[0]["package_id"] && one["state"] == "active" => {
                Ok(after)
            }
            _ => Err(format!("{after:?}")),
        }
    });
    assert_eq!(after[0]["supi"], before[0]["supi"]);
    let lines = json_lines(&std::fs::read_to_string(&log).unwrap());
    let rejected: Vec<_> = lines.iter().filter(|l| l["event"] == "rejected").collect();
    assert_eq!(rejected.len(), 1, "{lines:?}");
    assert_eq!(rejected[0]["detail"]["cause"], 7, "{lines:?}");
    assert_eq!(
        rejected[0]["detail"]["message"], "DeregistrationRequestUeTerminated",
        "{lines:?}"
    );
    let renewing: Vec<_> = lines.iter().filter(|l| l["event"] == "renewing").collect();
    assert_eq!(renewing[0]["detail"]["refused_as_ended"], true, "{lines:?}");
}

/// `nido network suci-key` while `serve` runs (issue #16 item 4): a key
/// added is handed to devices in the next package; the old key cannot be
/// retired while a package carries it; `rekey --suci-key 1` renews the
/// device onto key 2; then key 1 is retired (entry and file gone) and the
/// device still registers, on key 2, with the serving network reloaded.
#[test]
fn a_suci_key_rotation_leaves_no_device_behind() {
    let s = Scratch::new("suci-rotation");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    let _network = serve(d, &["--trust-poll-ms", "100"]);
    run_until_active(d, &listen, None);
    let keys = |d: &Path| {
        json_lines(&ok(
            &["network", "suci-key", "list", "--dir", "net", "--json"],
            d,
        ))
    };
    let k = keys(d);
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(
        (k[0]["id"].as_u64(), k[0]["packages"].as_u64()),
        (Some(1), Some(1))
    );

    let added = ok(
        &[
            "network",
            "suci-key",
            "add",
            "--dir",
            "net",
            "--profile",
            "b",
        ],
        d,
    );
    assert!(added.contains("SUCI key 2 (profile B) added"), "{added}");
    let k = keys(d);
    assert_eq!(k.len(), 2, "{k:?}");
    assert_eq!(
        (k[0]["id"].as_u64(), k[0]["current"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(k[1]["packages"], 1);
    let refused = nido(&["network", "suci-key", "retire", "--dir", "net", "1"], d);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still carried by 1 packages"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !nido(&["network", "suci-key", "retire", "--dir", "net", "2"], d)
            .status
            .success(),
        "the current key is never retired"
    );

    let done = json_lines(&ok(
        &[
            "network",
            "rekey",
            "--dir",
            "net",
            "--json",
            "--suci-key",
            "1",
        ],
        d,
    ));
    assert_eq!(done.len(), 1, "{done:?}");
    std::thread::sleep(std::time::Duration::from_millis(500)); // serve's poll (100 ms)
    let renewed = run_until_active(d, &listen, None);
    assert!(
        renewed.iter().any(|l| l["event"] == "renewing"),
        "{renewed:?}"
    );
    let k = keys(d);
    assert_eq!(
        (k[0]["packages"].as_u64(), k[1]["packages"].as_u64()),
        (Some(1), Some(0))
    );

    let retired = ok(&["network", "suci-key", "retire", "--dir", "net", "1"], d);
    assert!(retired.contains("SUCI key 1 retired"), "{retired}");
    assert!(!d.join("net/keys/suci-a-1.hex").exists());
    let config = std::fs::read_to_string(d.join("net/nido.toml")).unwrap();
    assert!(
        !config.contains("suci-a-1.hex") && config.contains("suci-b-2.hex"),
        "{config}"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let again = run_until_active(d, &listen, None);
    assert!(
        again
            .iter()
            .all(|l| l["event"] != "renewing" && l["event"] != "rejected"),
        "{again:?}"
    );
    let log = std::fs::read_to_string(d.join("network.log")).unwrap();
    assert!(log.contains("trust store reloaded"), "{log}");
}

/// An owner `id` with LwM2M credentials whose PSK identity is `id`.
fn owner_with_credentials(d: &Path, id: &str) {
    ok(
        &["owner", "create", "--dir", "net", "--id", id, "--name", id],
        d,
    );
    std::fs::write(d.join(format!("{id}.psk")), "00112233\n").unwrap();
    let psk = format!("{id}.psk");
    ok(
        &[
            "owner",
            "credentials",
            "--dir",
            "net",
            "--owner",
            id,
            "--lwm2m",
            "coaps://lwm2m.example:5684",
            "--psk-identity",
            id,
            "--psk-file",
            &psk,
        ],
        d,
    );
}

/// Transfer to a new owner (issue #16 item 3), real processes: owner A's
/// device is released by A (never by B) with a new claim code; A's old
/// code no longer claims it, A no longer sees it, B claims it with the new
/// code, and at its next registration the device erases A's credentials
/// (its erasure receipt) and gets B's, in its one subscription.
#[test]
fn a_device_transferred_from_owner_a_to_b_ends_with_bs_credentials_only() {
    let s = Scratch::new("transfer");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    common::import_claims(d);
    owner_with_credentials(d, "owner-a");
    owner_with_credentials(d, "owner-b");
    let label = claim_code_in(&d.join("factory/labels/ACMESENS-0000000001.txt"));
    claim(d, "owner-a", &label);
    let _network = serve(d, &[]);
    let first = run_until_active(d, &listen, None);
    let owner_of = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["event"] == "provisioned")
            .map(|l| l["detail"]["owner"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    assert_eq!(owner_of(&first), ["owner-a"], "{first:?}");
    let devices_of = |owner: &str| {
        json_lines(&ok(
            &[
                "network", "devices", "--dir", "net", "--owner", owner, "--json",
            ],
            d,
        ))
    };
    assert_eq!(devices_of("owner-a").len(), 1);

    let device = "Acme Sensors/ACMESENS-0000000001";
    let not_theirs = nido(
        &[
            "owner",
            "release",
            "--dir",
            "net",
            "--owner",
            "owner-b",
            "--code-out",
            "b.txt",
            device,
        ],
        d,
    );
    assert!(!not_theirs.status.success(), "B cannot release A's device");
    assert!(!d.join("b.txt").exists());
    let released = ok(
        &[
            "owner",
            "release",
            "--dir",
            "net",
            "--owner",
            "owner-a",
            "--code-out",
            "transfer.txt",
            device,
        ],
        d,
    );
    assert!(
        released.contains("released from owner owner-a"),
        "{released}"
    );
    assert!(
        !released.contains(&claim_code_in(&d.join("transfer.txt"))),
        "the code only in the file"
    );
    assert!(
        devices_of("owner-a").is_empty(),
        "A's access ended at the transfer"
    );
    // A cannot take it back with the code from the box, even once the
    // manufacturer's claims file is imported again (new devices shipped).
    common::import_claims(d);
    assert!(
        !nido(
            &[
                "owner",
                "claim",
                "--dir",
                "net",
                "--owner",
                "owner-a",
                "--claim-code",
                &label
            ],
            d
        )
        .status
        .success()
    );
    let code = claim_code_in(&d.join("transfer.txt"));
    claim(d, "owner-b", &code);
    assert_eq!(devices_of("owner-b").len(), 1);
    assert!(devices_of("owner-a").is_empty());

    let second = run_until_active(d, &listen, None);
    assert!(
        second.iter().any(|l| l["event"] == "renewing"),
        "the device renews: {second:?}"
    );
    assert_eq!(owner_of(&second), ["owner-b"], "{second:?}");
    let provisioned = second.iter().find(|l| l["event"] == "provisioned").unwrap();
    assert_eq!(
        provisioned["detail"]["third_party"], 1,
        "B's credentials only (A's were erased with the old package)"
    );
    let subs = subscriptions(d);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["owner"], "owner-b");
    let audit = audit(d, "owner_released");
    assert_eq!(audit.len(), 1, "{audit:?}");
}
