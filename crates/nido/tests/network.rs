//! Real processes: a manufacturer's factory output, `nido network serve`
//! and several `nido device run` processes over UDP, once on the default
//! SQLite file and once on PostgreSQL. The network is killed with SIGKILL
//! mid-onboarding and restarted; every device still ends active with
//! exactly one subscription, the audit trail records each step, and no
//! secret appears in the database or the logs: not OP, the key-encryption
//! key or the SUCI private key, not any subscription's K or OPc (read back
//! through the store with the KEK), not a device's IDevID private key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{
    PgDb, Scratch, import_claims, json_lines, manufacturer_and_network_on, nido, ok, spawn,
    wait_for_log,
};
use nido_net::Store;
use nido_store::{Kek, SqlStore};

const DEVICES: usize = 4;

#[test]
fn devices_onboard_through_a_network_killed_and_restarted() {
    if !nido_testkit::slow_tier("devices_onboard_through_a_network_killed_and_restarted") {
        return;
    }
    kill_and_restart("e2e", None);
}

#[test]
fn devices_onboard_through_a_network_killed_and_restarted_on_postgres() {
    if !nido_testkit::slow_tier(
        "devices_onboard_through_a_network_killed_and_restarted_on_postgres",
    ) {
        return;
    }
    // Dropped last: the processes are gone when the database is dropped.
    let Some(db) = PgDb::new("devices_onboard_through_a_network_killed_and_restarted_on_postgres")
    else {
        return;
    };
    kill_and_restart("e2e-pg", Some(&db.url()));
}

fn kill_and_restart(name: &str, db: Option<&str>) {
    let s = Scratch::new(name);
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network_on(d, DEVICES, db);
    import_claims(d);

    let log = d.join("network.log");
    let mut network = spawn(&["network", "serve", "--dir", "net"], d, &log);
    std::thread::sleep(Duration::from_millis(300));

    let serials: Vec<String> = (1..=DEVICES).map(|n| format!("ACMESENS-{n:010}")).collect();
    let mut devices: Vec<Child> = serials
        .iter()
        .map(|serial| {
            spawn(
                &[
                    "device",
                    "run",
                    "--bundle",
                    &format!("factory/{serial}"),
                    "--network",
                    &listen,
                    "--until",
                    "active",
                    "--timeout",
                    "240",
                ],
                d,
                &d.join(format!("{serial}.log")),
            )
        })
        .collect();

    // Mid-onboarding: SIGKILL the network, then start it again.
    std::thread::sleep(Duration::from_millis(150));
    network.kill().unwrap();
    network.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut network = spawn(&["network", "serve", "--dir", "net"], d, &log);

    let deadline = Instant::now() + Duration::from_secs(300);
    for (serial, device) in serials.iter().zip(devices.iter_mut()) {
        loop {
            if let Some(status) = device.try_wait().unwrap() {
                let out = std::fs::read_to_string(d.join(format!("{serial}.log"))).unwrap();
                assert!(status.success(), "{serial}: {status}\n{out}");
                assert!(out.contains("state \"active\""), "{serial}:\n{out}");
                break;
            }
            assert!(Instant::now() < deadline, "{serial} did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // A burst from one device reaches the owner's application (uplink.jsonl).
    let out = nido(
        &[
            "device",
            "run",
            "--bundle",
            &format!("factory/{}", serials[0]),
            "--network",
            &listen,
            "--burst-every",
            "1",
            "--bursts",
            "1",
            "--payload",
            "t=21.5C",
            "--timeout",
            "120",
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The burst was acknowledged once durable in the outbox; the delivery
    // worker appends it to uplink.jsonl (no delivery set) right after.
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"t=21.5C");
    wait_for_log(&d.join("net/uplink.jsonl"), &data, Duration::from_secs(30));
    // The worker marks the entry delivered after appending it: killed in
    // between, it would deliver it again at the next start (at least
    // once), and the status below would still count it pending.
    let started = Instant::now();
    loop {
        let status = json_lines(&ok(
            &["network", "delivery", "status", "--dir", "net", "--json"],
            d,
        ));
        if status.first().is_some_and(|s| s["delivered"] == 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the burst was never marked delivered: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    network.kill().unwrap();
    network.wait().unwrap();

    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), DEVICES, "{subs:?}");
    assert!(subs.iter().all(|s| s["state"] == "active"), "{subs:?}");
    let mut devs: Vec<_> = subs
        .iter()
        .map(|s| s["device"].as_str().unwrap().to_owned())
        .collect();
    devs.sort();
    // The network names a device by its enrolled manufacturer and serial.
    let ids: Vec<String> = serials
        .iter()
        .map(|s| format!("Acme Sensors/{s}"))
        .collect();
    assert_eq!(devs, ids);

    let uplink = json_lines(&std::fs::read_to_string(d.join("net/uplink.jsonl")).unwrap());
    assert!(
        uplink
            .iter()
            .any(|u| u["data"] == data.as_str() && u["device"] == ids[0].as_str() && u["seq"] == 1),
        "{uplink:?}"
    );
    let status = json_lines(&ok(
        &["network", "delivery", "status", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0]["pending"], 0, "{status:?}");
    assert_eq!(status[0]["delivered"], 1, "{status:?}");

    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    for serial in &ids {
        for kind in ["device_authenticated", "package_delivered"] {
            assert!(
                audit
                    .iter()
                    .any(|e| e["kind"] == kind && e["device"] == serial.as_str()),
                "no {kind} for {serial} in the audit trail"
            );
        }
        // Provisioned by its confirmation, or, when the network was killed
        // before the confirmation reached it, validated directly: the
        // device registers with the package it installed and 5G-AKA
        // activates the subscription (an `authenticated` entry of its SUPI).
        let supi = subs
            .iter()
            .find(|s| s["device"] == serial.as_str())
            .map(|s| s["supi"].clone())
            .unwrap();
        assert!(
            audit.iter().any(
                |e| (e["kind"] == "provisioned" && e["device"] == serial.as_str())
                    || (e["kind"] == "authenticated" && e["supi"] == supi)
            ),
            "neither provisioned nor validated: {serial} in the audit trail"
        );
    }
    assert!(
        audit
            .iter()
            .filter(|e| e["kind"] == "authenticated")
            .count()
            >= DEVICES
    );

    // The operator releases one subscription (the device was reset): the
    // state says so and the audit trail names who and why.
    let said = ok(
        &[
            "network",
            "release",
            "--dir",
            "net",
            "--reason",
            "reset by the owner",
            &ids[0],
        ],
        d,
    );
    assert!(said.contains("released"), "{said}");
    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    let state_of = |serial: &str| {
        subs.iter()
            .find(|s| s["device"] == serial)
            .map(|s| s["state"].clone())
    };
    assert_eq!(state_of(&ids[0]), Some("released".into()));
    assert_eq!(state_of(&ids[1]), Some("active".into()));
    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    assert!(
        audit.iter().any(|e| e["kind"] == "released"
            && e["device"] == ids[0].as_str()
            && e["detail"] == "reset by the owner"),
        "no released entry"
    );
    let unknown = nido(
        &[
            "network",
            "release",
            "--dir",
            "net",
            "Acme Sensors/NOSUCH-0001",
        ],
        d,
    );
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no subscription"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    // No secret is in the database or the logs.
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let secret = |secrets: &mut Vec<Vec<u8>>, bytes: &[u8]| {
        secrets.push(bytes.to_vec());
        secrets.push(hex_of(bytes).into_bytes());
        secrets.push(hex_of(bytes).to_uppercase().into_bytes());
    };
    // The operator's: OP, the key-encryption key, the SUCI private key.
    for f in [
        "net/keys/op.hex",
        "net/keys/kek.hex",
        "net/keys/suci-a-1.hex",
    ] {
        let hex_text = std::fs::read_to_string(d.join(f)).unwrap();
        secret(&mut secrets, &hex::decode(hex_text.trim()).unwrap());
    }
    // Every subscription's K and OPc, as the store opens them with the KEK.
    let kek = Kek::from_hex(
        std::fs::read_to_string(d.join("net/keys/kek.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let url = match db {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", d.join("net/nido.db").display()),
    };
    let store = SqlStore::open(&url, kek).unwrap();
    let opened = store.subscriptions().unwrap();
    assert_eq!(opened.len(), DEVICES);
    for sub in &opened {
        secret(&mut secrets, sub.k.expose());
        secret(&mut secrets, sub.opc.expose());
    }
    drop(store);
    // The devices': each IDevID private key (the PEM body, and its DER).
    for serial in &serials {
        let pem = std::fs::read_to_string(d.join(format!("factory/{serial}/device.key"))).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        secret(&mut secrets, &base64_decode(&body));
        secrets.push(body.into_bytes());
    }

    let mut haystack = Vec::new();
    match db {
        None => {
            for entry in std::fs::read_dir(d.join("net")).unwrap() {
                let p = entry.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("nido.db") {
                    haystack.extend(std::fs::read(&p).unwrap());
                }
            }
        }
        Some(url) => {
            let dump = std::process::Command::new("pg_dump")
                .args(["--data-only", url])
                .output()
                .unwrap();
            assert!(
                dump.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            assert!(dump.stdout.len() > 1000, "the dump is empty");
            haystack.extend(dump.stdout);
        }
    }
    for entry in std::fs::read_dir(d).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            haystack.extend(std::fs::read(&p).unwrap());
        }
    }
    for s in &secrets {
        assert!(
            !haystack.windows(s.len()).any(|w| w == s.as_slice()),
            "a secret is in the database or the logs"
        );
    }
}

/// Standard base64 (the PEM body), without a dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
