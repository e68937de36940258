//! Real processes: a manufacturer's factory output, `nido network serve`
//! (SQLite) and several `nido device run` processes over UDP. The network
//! is killed with SIGKILL mid-onboarding and restarted; every device still
//! ends active with exactly one subscription, the audit trail records each
//! step, and no secret the test knows appears in the database or the logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{Scratch, json_lines, manufacturer_and_network, nido, ok, spawn};

const DEVICES: usize = 4;

#[test]
fn devices_onboard_through_a_network_killed_and_restarted() {
    let s = Scratch::new("e2e");
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network(d, DEVICES);
    ok(
        &[
            "network",
            "import-claims",
            "--dir",
            "net",
            "factory/claims.csv",
        ],
        d,
    );

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
    assert_eq!(devs, serials);

    let uplink = std::fs::read_to_string(d.join("net/uplink.jsonl")).unwrap();
    assert!(uplink.contains(&hex_of(b"t=21.5C")), "{uplink}");

    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    for serial in &serials {
        for kind in ["device_authenticated", "package_delivered", "provisioned"] {
            assert!(
                audit
                    .iter()
                    .any(|e| e["kind"] == kind && e["device"] == serial.as_str()),
                "no {kind} for {serial} in the audit trail"
            );
        }
    }
    assert!(
        audit
            .iter()
            .filter(|e| e["kind"] == "authenticated")
            .count()
            >= DEVICES
    );

    // No secret the test can know is in the database or the logs: OP, the
    // key-encryption key, the SUCI private key, the device keys.
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for f in [
        "net/keys/op.hex",
        "net/keys/kek.hex",
        "net/keys/suci-a-1.hex",
    ] {
        let hex_text = std::fs::read_to_string(d.join(f)).unwrap();
        secrets.push(hex::decode(hex_text.trim()).unwrap());
        secrets.push(hex_text.trim().as_bytes().to_vec());
    }
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(d.join("net")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("nido.db") {
            haystack.extend(std::fs::read(&p).unwrap());
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

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
