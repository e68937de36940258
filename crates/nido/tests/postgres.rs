//! The end-to-end on PostgreSQL: two `nido network serve` processes share
//! one fresh database (`nido_e2e_<pid>`, dropped at the end, also when the
//! test fails). Six devices, three on each instance, all end active: six
//! subscriptions of six devices with six distinct SUPIs, a `provisioned`
//! audit entry for each. With one instance SIGKILLed, one of its devices
//! registers on the other instance, whose burst reaches `uplink.jsonl`.
//!
//! A slow-tier test (`NIDO_TEST_TIER=slow`). Needs `psql` and a PostgreSQL
//! server where the user of `NIDO_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) may create databases; without
//! them it prints one SKIPPED line (`nido_testkit`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    PgDb, Reaper, Scratch, free_udp_port, import_claims, json_lines, manufacturer_and_network_on,
    ok, spawn,
};

const DEVICES: usize = 6;

/// Waits until `log` contains `needle`.
fn wait_for(log: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {log:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_network_instances_share_one_postgres_database() {
    if !nido_testkit::slow_tier("two_network_instances_share_one_postgres_database") {
        return;
    }
    let started = Instant::now();
    // Dropped last: the processes below are gone when the database is dropped.
    let Some(db) = PgDb::new("two_network_instances_share_one_postgres_database") else {
        return;
    };
    let s = Scratch::new("postgres");
    let d = &s.0;

    let url = db.url();
    let (first, _realm) = manufacturer_and_network_on(d, DEVICES, Some(&url));
    let listen = [first, format!("127.0.0.1:{}", free_udp_port())];
    import_claims(d);
    assert!(
        !d.join("net/nido.db").exists(),
        "the network made a SQLite database"
    );

    let mut instances: Vec<Reaper> = listen
        .iter()
        .enumerate()
        .map(|(n, addr)| {
            let log = d.join(format!("network-{n}.log"));
            let child = spawn(
                &["network", "serve", "--dir", "net", "--listen", addr],
                d,
                &log,
            );
            wait_for(&log, "serving");
            Reaper(child)
        })
        .collect();

    // Three devices on each instance, all at once.
    let serials: Vec<String> = (1..=DEVICES).map(|n| format!("ACMESENS-{n:010}")).collect();
    let mut devices: Vec<Reaper> = serials
        .iter()
        .enumerate()
        .map(|(n, serial)| {
            Reaper(spawn(
                &[
                    "device",
                    "run",
                    "--bundle",
                    &format!("factory/{serial}"),
                    "--network",
                    &listen[n % 2],
                    "--until",
                    "active",
                    "--timeout",
                    "120",
                ],
                d,
                &d.join(format!("{serial}.log")),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(150);
    for (serial, device) in serials.iter().zip(devices.iter_mut()) {
        let status = loop {
            if let Some(status) = device.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{serial} did not finish");
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = std::fs::read_to_string(d.join(format!("{serial}.log"))).unwrap();
        assert!(status.success(), "{serial}: {status}\n{out}");
        assert!(out.contains("state \"active\""), "{serial}:\n{out}");
    }

    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), DEVICES, "{subs:?}");
    assert!(subs.iter().all(|s| s["state"] == "active"), "{subs:?}");
    let devs: BTreeSet<&str> = subs.iter().map(|s| s["device"].as_str().unwrap()).collect();
    // The network names a device by its enrolled manufacturer and serial.
    let ids: Vec<String> = serials
        .iter()
        .map(|s| format!("Acme Sensors/{s}"))
        .collect();
    assert_eq!(
        devs,
        ids.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    let supis: BTreeSet<&str> = subs.iter().map(|s| s["supi"].as_str().unwrap()).collect();
    assert_eq!(supis.len(), DEVICES, "{subs:?}");

    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    for serial in &ids {
        assert!(
            audit
                .iter()
                .any(|e| e["kind"] == "provisioned" && e["device"] == serial.as_str()),
            "no provisioned entry for {serial} in the audit trail"
        );
    }

    // SIGKILL the first instance; one of its devices moves to the second.
    instances[0].0.kill().unwrap();
    instances[0].0.wait().unwrap();
    let payload = format!("moved-{}", std::process::id());
    ok(
        &[
            "device",
            "run",
            "--bundle",
            &format!("factory/{}", serials[0]),
            "--network",
            &listen[1],
            "--burst-every",
            "1",
            "--bursts",
            "1",
            "--payload",
            &payload,
            "--timeout",
            "60",
        ],
        d,
    );
    assert!(
        instances[1].0.try_wait().unwrap().is_none(),
        "the second instance stopped"
    );
    // Acknowledged once in the outbox; a delivery worker (either
    // instance's) appends it to uplink.jsonl right after.
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        payload.as_bytes(),
    );
    common::wait_for_log(&d.join("net/uplink.jsonl"), &data, Duration::from_secs(30));
    let uplink = json_lines(&std::fs::read_to_string(d.join("net/uplink.jsonl")).unwrap());
    assert!(
        uplink
            .iter()
            .any(|u| u["device"] == ids[0].as_str() && u["data"] == data.as_str()),
        "{uplink:?}"
    );
    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), DEVICES, "{subs:?}");
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
}
