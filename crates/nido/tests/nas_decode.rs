//! `nido nas decode` on cut PDUs (issue #12 item 6): strict by default,
//! every truncated PDU of the shared NAS examples exits 1 with one error
//! line naming an IE (or the header) and its offset; `--lenient` shows what
//! a receiver keeps (TS 24.501 clause 7) and which IEs it dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

use std::process::{Command, Output};

use serde_json::Value;

fn nido(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .output()
        .unwrap()
}

/// Every example's hex, and the plain message inside each null-ciphered one.
fn examples() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(nido_testkit::vectors_dir().join("nas_examples.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for e in doc["examples"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap().to_owned();
        out.push((id.clone(), e["hex"].as_str().unwrap().to_owned()));
        if let Some(inner) = e["inner_hex"].as_str() {
            out.push((format!("{id} (inner)"), inner.to_owned()));
        }
    }
    out
}

/// The IE names `nido nas decode --lenient --json` prints for a whole PDU,
/// dropped ones included (srsRAN's REGISTRATION ACCEPT has an empty Allowed
/// NSSAI, which TS 24.501 table 8.2.7.1 does not allow: strict decoding
/// refuses it, a receiver drops it, §7.7.1).
fn ie_names(hex: &str) -> Vec<String> {
    let out = nido(&["nas", "decode", hex, "--lenient", "--json"]);
    assert!(out.status.success(), "{hex}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    ["fields", "dropped"]
        .iter()
        .flat_map(|k| report[k].as_array().unwrap().clone())
        .map(|f| f["ie"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_example_cut_by_three_octets_exits_1_naming_the_ie() {
    let mut runs = 0;
    for (id, hex) in examples() {
        let octets = hex.len() / 2;
        let ciphered = matches!(&hex[2..4], "02" | "04") && hex.starts_with("7e");
        // A ciphered PDU's octets after its header are not checked without keys.
        if ciphered || octets < 4 {
            continue;
        }
        let names = ie_names(&hex);
        for cut in 1..=3 {
            let short = &hex[..hex.len() - 2 * cut];
            let out = nido(&["nas", "decode", short]);
            let err = String::from_utf8_lossy(&out.stderr);
            // A cut that falls between two optional IEs leaves a sound message.
            if out.status.success() {
                continue;
            }
            runs += 1;
            assert_eq!(out.status.code(), Some(1), "{id} -{cut}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{id} -{cut}: {err}");
            assert!(err.contains("at offset "), "{id} -{cut}: {err}");
            let named = names
                .iter()
                .chain([&"message-type".to_owned()])
                .any(|n| err.contains(&format!(": {n} ")));
            assert!(
                named || err.contains("header at offset"),
                "{id} -{cut}: {err}"
            );
            assert!(out.stdout.is_empty(), "{id} -{cut}: printed a message");
        }
    }
    assert!(runs >= 40, "{runs} refused cuts");
}

#[test]
fn the_issue_s_registration_request_cut_by_three() {
    let out = nido(&["nas", "decode", "7e004179000d0100f1100000000022222222222e"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ue-security-capability (IEI 0x2e) at offset 19"),
        "{err}"
    );
    // Lenient: what a receiver keeps, and the IE it dropped.
    let out = nido(&[
        "nas",
        "decode",
        "7e004179000d0100f1100000000022222222222e",
        "--lenient",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5gs-mobile-identity"), "{text}");
    assert!(
        text.contains("dropped ue-security-capability (IEI 0x2e"),
        "{text}"
    );
    assert!(text.contains("§7.7.1"), "{text}");
    let out = nido(&[
        "nas",
        "decode",
        "7e004179000d0100f1100000000022222222222e",
        "--lenient",
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dropped"][0]["ie"], "ue-security-capability");
    assert_eq!(report["dropped"][0]["offset"], 19);
    assert!(
        report["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["ie"] != "ue-security-capability")
    );
}

#[test]
fn lenient_still_refuses_a_cut_mandatory_ie() {
    let out = nido(&[
        "nas",
        "decode",
        "7e004179000af202f839cafe001122332e02a020",
        "--lenient",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5gs-mobile-identity at offset 6"), "{err}");
}
