//! `nido sim` against `nido network serve` (SQLite), as separate processes
//! over UDP: a fleet of devices from a factory's output onboards through a
//! link that loses 10%, duplicates 2% and reorders 5% of the datagrams
//! each way. Every device ends active, the network holds exactly one
//! subscription per device (distinct SUPIs), and the report's counts add
//! up.
//!
//! The network runs with a small admission limit (`--max-procedures 500`,
//! T3346 5-20 s): 100 arrivals a second over that link need more
//! registrations at once than that on any machine (a lost message stalls
//! a registration for the 6 s of T3560; at 10% loss each way one lasts
//! about 18 s on average), so devices are refused with #22 and back off.
//! The test asserts that this happened (the sim's `congestion_rejects`,
//! the audit's `congested` entries) and that every device still ends
//! active. Those rejects precede authentication, so they come without
//! integrity protection and the devices do not use their T3346 but draw
//! their own (TS 24.501 §5.5.1.2.5): the sim gets the same 5-20 s range
//! (`--unprotected-t3346-min/max`; the default is 15-30 min).
//! 500 is above what a debug network on SQLite completes
//! concurrently, and the back-offs are short, so the limit barely slows
//! the run down; a device is refused about once (each refusal on a lossy
//! link risks a lost request, and five failed attempts in a row send a
//! device into its 12-minute T3502, so much shorter back-offs, or a much
//! lower limit, would make the run long).
//!
//! `NIDO_SIM_DEVICES` sets the fleet size: 1,000 by default (about 800
//! registrations at once after the 10 s of arrivals, well over the limit),
//! which the debug build runs in about a minute and a half; `NIDO_SIM_DEVICES=10000` is the
//! issue's figure (the note of the session that wrote this reports that run,
//! on the release build).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Reaper, Scratch, json_lines, manufacturer_and_network, nido, ok, spawn};
use serde_json::Value;

#[test]
fn sim_onboards_a_fleet_through_a_lossy_link() {
    if !nido_testkit::slow_tier("sim_onboards_a_fleet_through_a_lossy_link") {
        return;
    }
    let devices: usize = std::env::var("NIDO_SIM_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let s = Scratch::new("sim");
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network(d, devices);
    let log = d.join("network.log");
    let _network = Reaper(spawn(
        &[
            "network",
            "serve",
            "--dir",
            "net",
            "--max-procedures",
            "500",
            "--t3346-min",
            "5",
            "--t3346-max",
            "20",
        ],
        d,
        &log,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving")
    {
        assert!(Instant::now() < deadline, "the network did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let started = Instant::now();
    let out = nido(
        &[
            "sim",
            "--network",
            &listen,
            "--factory",
            "factory",
            "--rate",
            "100",
            "--loss",
            "0.1",
            "--dup",
            "0.02",
            "--reorder",
            "0.05",
            "--timeout",
            "1500",
            "--unprotected-t3346-min",
            "5",
            "--unprotected-t3346-max",
            "20",
            // A device the 10% loss fails five times in a row waits T3502:
            // 30 s here, not the spec's 12 min (the run would wait on it).
            // (T3510 stays 15 s: at 5 s the lossy link restarts so many
            // registrations that the run meets the limit four times as
            // often and takes twice as long.)
            "--t3502",
            "30",
            "--json",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "nido sim: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "{devices} devices in {:.1} s: {report:#}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report["devices"], devices);
    assert_eq!(report["active"], devices, "{report:#}");
    // Admission control turned devices away, and they still got through.
    let rejects = report["congestion_rejects"].as_u64().unwrap();
    assert!(rejects > 0, "no congestion: {report:#}");
    let congested = json_lines(&ok(
        &[
            "network", "audit", "--dir", "net", "--json", "--limit", "10000000",
        ],
        d,
    ))
    .into_iter()
    .filter(|e| e["kind"] == "congested")
    .inspect(|e| assert_eq!(e["cause"], 22, "{e}"))
    .count() as u64;
    // Each reject a device got was sent (and audited) by the network; some
    // sent were lost on the link.
    assert!(
        congested >= rejects,
        "{congested} audited, {rejects} received"
    );

    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), devices, "one subscription per device");
    assert!(subs.iter().all(|s| s["state"] == "active"));
    let owners: BTreeSet<&str> = subs.iter().map(|s| s["device"].as_str().unwrap()).collect();
    assert_eq!(owners.len(), devices, "a device with two subscriptions");
    let supis: BTreeSet<&str> = subs.iter().map(|s| s["supi"].as_str().unwrap()).collect();
    assert_eq!(supis.len(), devices, "a SUPI given twice");
}
