//! Issue #11, past one machine: two `nido network serve` instances of one
//! network on one PostgreSQL database serve one fleet together
//! (ARCHITECTURE.md, "Past one machine"). `nido sim` is given both
//! addresses and keeps device i with instance i mod 2, as a RAN keeps a UE
//! with the AMF of a set that serves it; each instance keeps its own UE
//! contexts and leases its own runs of MSINs, and everything durable is in
//! the shared database.
//!
//! Then: every device active, exactly one subscription per device, no SUPI
//! twice (the instances' MSIN leases never overlap), one activation entry
//! per subscription in the audit trail, and both instances did part of the
//! work.
//!
//! Needs `psql` and a PostgreSQL server (`nido_testkit::postgres`): without
//! them it prints one SKIPPED line. Fast tier: 40 devices, a few seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    PgDb, Reaper, Scratch, free_udp_port, json_lines, manufacturer_and_network_on, ok, spawn,
    wait_for_log,
};
use serde_json::Value;

/// The fleet: small, this is the debug build; even, so each instance
/// serves half.
const DEVICES: usize = 40;

#[test]
fn two_serve_instances_on_one_postgres_database_onboard_one_fleet() {
    // Dropped last: the processes are gone when the database is dropped.
    let Some(db) = PgDb::new("two_serve_instances_on_one_postgres_database_onboard_one_fleet")
    else {
        return;
    };
    let url = db.url();
    let s = Scratch::new("two-instances");
    let d = &s.0;
    let (first, _realm) = manufacturer_and_network_on(d, DEVICES, Some(&url));
    let second = format!("127.0.0.1:{}", free_udp_port());

    let logs = [d.join("serve-1.log"), d.join("serve-2.log")];
    let _serves: Vec<Reaper> = [&first, &second]
        .iter()
        .zip(&logs)
        .map(|(listen, log)| {
            let serve = Reaper(spawn(
                &["network", "serve", "--dir", "net", "--listen", listen],
                d,
                log,
            ));
            wait_for_log(log, "serving", Duration::from_secs(30));
            serve
        })
        .collect();

    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args([
            "sim",
            "--network",
            &first,
            "--network",
            &second,
            "--factory",
            "factory",
            "--timeout",
            "150",
            "--unprotected-t3346-min",
            "5",
            "--unprotected-t3346-max",
            "20",
            "--json",
        ])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "nido sim: {}\n{}\n--- serve 1 ---\n{}\n--- serve 2 ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        said[0],
        said[1]
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "two instances: {DEVICES} devices in {:.1} s, {} onboardings/s",
        started.elapsed().as_secs_f64(),
        report["onboardings_per_s"]
    );
    assert_eq!(report["active"], DEVICES, "{report:#}");
    assert_eq!(report["refused"]["total"], 0, "{report:#}");

    // Both instances activated devices: the fleet was really shared.
    for (n, text) in said.iter().enumerate() {
        let activated = text
            .lines()
            .filter(|l| l.contains("detail=\"activated\""))
            .count();
        assert!(
            activated > 0,
            "serve {} activated no device:\n{text}",
            n + 1
        );
    }

    // One subscription per device, each active, no SUPI twice.
    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(
        subs.len(),
        DEVICES,
        "one subscription per device: {subs:#?}"
    );
    assert!(subs.iter().all(|s| s["state"] == "active"), "{subs:#?}");
    let devices: BTreeSet<&str> = subs.iter().map(|s| s["device"].as_str().unwrap()).collect();
    let expected: BTreeSet<String> = (1..=DEVICES)
        .map(|n| format!("Acme Sensors/ACMESENS-{n:010}"))
        .collect();
    assert_eq!(
        devices,
        expected.iter().map(String::as_str).collect(),
        "{subs:#?}"
    );
    let supis: BTreeSet<&str> = subs.iter().map(|s| s["supi"].as_str().unwrap()).collect();
    assert_eq!(supis.len(), DEVICES, "a SUPI given twice: {subs:#?}");

    // One activation per subscription in the shared audit trail.
    let trail = json_lines(&ok(
        &[
            "network", "audit", "--dir", "net", "--json", "--limit", "10000000",
        ],
        d,
    ));
    for supi in &supis {
        let activations = trail
            .iter()
            .filter(|e| {
                e["kind"] == "authenticated"
                    && e["supi"] == *supi
                    && e["detail"].as_str().unwrap().ends_with(": activated")
            })
            .count();
        assert_eq!(activations, 1, "{supi}: {activations} activation entries");
    }
}
