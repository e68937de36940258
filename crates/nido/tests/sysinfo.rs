//! Issue 13, item 5: a device needs only the network's address. A network
//! whose NID is not the old default (`0000000000C`) announces itself on the
//! access link; `nido sim` without `--snpn` asks, configures its devices
//! with what it heard, and every device ends active. With a wrong `--snpn`
//! override no device gets through, and the report says why (the
//! network's SECURITY MODE COMMAND does not verify under keys bound to
//! another serving network name) instead of `failed: 0` and nothing else.
//! `nido device run` without `--snpn` asks the same way.
//! Fast tier: a few devices, well under a minute each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Reaper, Scratch, json_lines, manufacturer_and_snpn, nido, spawn, wait_for_log};
use serde_json::Value;

const DEVICES: usize = 3;
const NID: &str = "0000000000C";

/// A manufacturer and a network with NID [`NID`], serving; returns its
/// address and the serve process.
fn serving(d: &Path) -> (String, Reaper) {
    let (listen, _realm) = manufacturer_and_snpn(d, DEVICES, None, NID);
    let log = d.join("network.log");
    let serve = Reaper(spawn(&["network", "serve", "--dir", "net"], d, &log));
    wait_for_log(&log, "serving", Duration::from_secs(30));
    (listen, serve)
}

#[test]
fn sim_without_snpn_onboards_on_the_network_it_hears() {
    let s = Scratch::new("sysinfo-heard");
    let d = &s.0;
    let (listen, _serve) = serving(d);
    let out = nido(
        &[
            "sim",
            "--network",
            &listen,
            "--factory",
            "factory",
            "--devices",
            &(DEVICES - 1).to_string(),
            "--timeout",
            "50",
            "--json",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nido sim: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["active"], DEVICES - 1, "{report:#}");
    assert_eq!(report["failures"], serde_json::json!({}), "{report:#}");
    assert_eq!(report["networks"][0]["source"], "announced", "{report:#}");
    assert_eq!(
        report["networks"][0]["snn"],
        format!("5G:mnc099.mcc999.3gppnetwork.org:{NID}"),
        "{report:#}"
    );

    // The last bundle (the sim took the first ones) as a device process.
    let mut bundles: Vec<_> = std::fs::read_dir(d.join("factory"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    bundles.sort();
    let bundle = bundles.last().unwrap().to_str().unwrap().to_owned();
    let out = nido(
        &[
            "device",
            "run",
            "--bundle",
            &bundle,
            "--network",
            &listen,
            "--until",
            "active",
            "--timeout",
            "40",
            "--json",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nido device run: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&stdout);
    let network = events.iter().find(|e| e["event"] == "network").unwrap();
    assert_eq!(network["detail"]["source"], "announced", "{stdout}");
    assert_eq!(
        network["detail"]["snn"],
        format!("5G:mnc099.mcc999.3gppnetwork.org:{NID}")
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "state" && e["detail"] == "active"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_snpn_override_fails_and_the_report_says_why() {
    let s = Scratch::new("sysinfo-override");
    let d = &s.0;
    let (listen, _serve) = serving(d);
    let out = nido(
        &[
            "sim",
            "--network",
            &listen,
            "--factory",
            "factory",
            "--snpn",
            "999-99-000000000AB",
            "--timeout",
            "12",
            "--json",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody can attach: {stdout}");
    // The announcement disagreed, and the override won.
    assert!(
        stderr.contains("announces 5G:mnc099.mcc999.3gppnetwork.org:0000000000C"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not active: security mode: MAC failure"),
        "{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["active"], 0, "{report:#}");
    assert_eq!(report["networks"][0]["source"], "--snpn", "{report:#}");
    assert_eq!(
        report["failures"],
        serde_json::json!({"security mode: MAC failure": DEVICES}),
        "{report:#}"
    );

    // The human report says why too (the same device again: the network
    // may still hold its first attempt and refuse this one, so any reason).
    let out = nido(
        &[
            "sim",
            "--network",
            &listen,
            "--factory",
            "factory",
            "--devices",
            "1",
            "--snpn",
            "999-99-000000000AB",
            "--timeout",
            "8",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 of 1 devices active"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\nnot active: "), "{stdout}");
    assert!(!stdout.contains("not active: none"), "{stdout}");
}
