//! Real processes: the operator changes trust while `nido network serve`
//! runs, and the network sees it from the next onboarding on, without a
//! restart: a device blocked while serving is refused (#3); a manufacturer
//! enrolled while serving (a new DCS realm, its CRL) has its device
//! onboarded; a device blocked while it is active and sending is
//! deregistered (#3) and gives up, its next registration is refused (#3)
//! and `nido network unblock` lets the same subscription in again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Reaper, Scratch, import_crl, json_lines, manufacturer_and_network, nido, ok, serve, spawn,
};
use serde_json::Value;

/// `nido device run` of `bundle` until active, `timeout` seconds at most;
/// whether it got there.
fn onboards(d: &Path, bundle: &str, listen: &str, timeout: u64) -> bool {
    let out = nido(
        &[
            "device",
            "run",
            "--bundle",
            bundle,
            "--network",
            listen,
            "--until",
            "active",
            "--timeout",
            &timeout.to_string(),
        ],
        d,
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("state \"active\"")
}

#[test]
fn a_block_and_a_new_manufacturer_made_while_serving_take_effect() {
    let s = Scratch::new("trust-live");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 2);
    let _network = serve(d, &["--trust-poll-ms", "50"]);
    assert!(onboards(d, "factory/ACMESENS-0000000001", &listen, 60));

    // Blocked while serving: refused (#3), the network never restarted.
    ok(
        &[
            "network",
            "block",
            "--dir",
            "net",
            "--manufacturer",
            "Acme Sensors",
            "ACMESENS-0000000002",
        ],
        d,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!onboards(d, "factory/ACMESENS-0000000002", &listen, 5));
    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    assert!(
        audit.iter().any(|e| e["kind"] == "refused"
            && e["cause"] == 3
            // Refused before the device proved its key: named in the
            // detail (what its certificate said), not as the row's device.
            && e["detail"]
                .as_str()
                .is_some_and(|s| s.contains("Acme Sensors/ACMESENS-0000000002"))),
        "{audit:?}"
    );

    // A second manufacturer enrolled while serving, with its CRL.
    ok(
        &["mfr", "init", "--dir", "mfr2", "--name", "Beta Meters"],
        d,
    );
    let issued: Value = serde_json::from_str(&ok(
        &[
            "mfr", "issue", "--dir", "mfr2", "--count", "1", "--out", "factory2", "--json",
        ],
        d,
    ))
    .unwrap();
    let realm = issued["dcs_realm"].as_str().unwrap().to_owned();
    ok(
        &[
            "mfr", "dcs-cert", "--dir", "mfr2", "--host", &realm, "--out", "dcs2",
        ],
        d,
    );
    ok(&["mfr", "crl", "--dir", "mfr2", "--out", "mfr2.crl.pem"], d);
    ok(
        &[
            "network",
            "trust-manufacturer",
            "--dir",
            "net",
            "--name",
            "Beta Meters",
            "--realm",
            &realm,
            "--dcs",
            "dcs2",
        ],
        d,
    );
    ok(
        &[
            "network",
            "crl-import",
            "--dir",
            "net",
            "--manufacturer",
            "Beta Meters",
            "--issuer",
            "mfr2/issuing.pem",
            "mfr2.crl.pem",
        ],
        d,
    );
    std::thread::sleep(Duration::from_millis(300));
    let bundle = format!("factory2/{}", issued["first_serial"].as_str().unwrap());
    assert!(onboards(d, &bundle, &listen, 60));
}

/// Waits until `log` contains `needle`, `seconds` at most.
fn wait_for_text(log: &Path, needle: &str, seconds: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in {log:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_device_blocked_while_active_is_deregistered_until_it_is_unblocked() {
    let s = Scratch::new("trust-live-active");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    let _network = serve(d, &["--trust-poll-ms", "50"]);
    let id = "Acme Sensors/ACMESENS-0000000001";
    let bundle = "factory/ACMESENS-0000000001";

    // Active, a burst every second.
    let log = d.join("device.log");
    let device = sending(d, bundle, &listen, &log);

    // Blocked while it runs: the network deregisters it (#3, protected)
    // at its next trust poll, and the device gives up.
    ok(&["network", "block", "--dir", "net", id], d);
    gives_up_deregistered_with_3(device, &log);
    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    assert!(
        audit.iter().any(|e| e["kind"] == "refused"
            && e["cause"] == 3
            && e["device"] == id
            && e["detail"]
                .as_str()
                .is_some_and(|s| s.contains("deregistered"))),
        "{audit:?}"
    );

    // Registering again with its subscription: refused (#3) while blocked.
    refused_with_3(d, bundle, &listen);

    // Unblocked: the same subscription is active again.
    ok(&["network", "unblock", "--dir", "net", id], d);
    std::thread::sleep(Duration::from_millis(300));
    assert!(onboards(d, bundle, &listen, 60));
    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), 1, "{subs:?}");
}

/// Waits (20 s at most) for `device`, running with its output in `log`,
/// to give up after a protected DEREGISTRATION REQUEST #3.
fn gives_up_deregistered_with_3(mut device: Reaper, log: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = device.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the device still runs:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!status.success(), "{text}");
    assert!(
        text.contains(r#""message":"DeregistrationRequestUeTerminated""#)
            && text.contains("refused the device (#3 illegal UE)"),
        "{text}"
    );
}

/// A registration of `bundle` with its subscription is refused (#3).
fn refused_with_3(d: &Path, bundle: &str, listen: &str) {
    let out = nido(
        &[
            "device",
            "run",
            "--bundle",
            bundle,
            "--network",
            listen,
            "--until",
            "active",
            "--timeout",
            "20",
        ],
        d,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(r#""message":"RegistrationReject""#) && stdout.contains(r#""cause":3"#),
        "{stdout}"
    );
}

/// A running `nido device run` of `bundle` that sends a burst every second.
fn sending(d: &Path, bundle: &str, listen: &str, log: &Path) -> Reaper {
    let device = Reaper(spawn(
        &[
            "device",
            "run",
            "--bundle",
            bundle,
            "--network",
            listen,
            "--burst-every",
            "1",
            "--bursts",
            "600",
            "--timeout",
            "120",
        ],
        d,
        log,
    ));
    wait_for_text(log, " burst ", 60);
    device
}

/// The manufacturer revokes `serial`'s certificate and the operator
/// imports the new CRL with `--active policy`; returns the import's JSON.
fn revoke_and_import(d: &Path, serial: &str, policy: &str) -> Value {
    ok(&["mfr", "revoke", "--dir", "mfr", serial], d);
    std::fs::remove_file(d.join("mfr.crl.pem")).unwrap();
    ok(&["mfr", "crl", "--dir", "mfr", "--out", "mfr.crl.pem"], d);
    let out = import_crl(d, &["--active", policy, "--json"]);
    serde_json::from_str(&out).unwrap()
}

/// Issue #16: a CRL that revokes the certificate of devices that already
/// hold a subscription suspends them by the operator's policy: at their
/// next registration (one that is registered goes on sending until it
/// registers again, then #3), or at once (deregistered, #3, within a trust
/// poll). `unblock` resumes such a device like any block.
#[test]
fn a_crl_revoking_active_devices_suspends_them_at_once_or_at_their_next_registration() {
    let s = Scratch::new("trust-live-crl");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 2);
    let _network = serve(d, &["--trust-poll-ms", "50"]);
    let (first, second) = ("ACMESENS-0000000001", "ACMESENS-0000000002");
    let bundle = |serial: &str| format!("factory/{serial}");

    // At the next registration: the registered device goes on sending.
    let log1 = d.join("device-1.log");
    let mut device = sending(d, &bundle(first), &listen, &log1);
    let imported = revoke_and_import(d, first, "next-registration");
    assert_eq!(imported["active"], "next-registration");
    assert_eq!(
        imported["suspended"],
        serde_json::json!([format!("Acme Sensors/{first}")])
    );
    let bursts = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(" burst ")
            .count()
    };
    let before = bursts(&log1);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        device.0.try_wait().unwrap().is_none() && bursts(&log1) > before,
        "{}",
        std::fs::read_to_string(&log1).unwrap()
    );
    drop(device);
    // Its next registration: refused (#3).
    refused_with_3(d, &bundle(first), &listen);

    // At once: the registered device is deregistered (#3) and gives up.
    let log2 = d.join("device-2.log");
    let device = sending(d, &bundle(second), &listen, &log2);
    let imported = revoke_and_import(d, second, "suspend");
    assert_eq!(
        imported["suspended"],
        serde_json::json!([format!("Acme Sensors/{second}")]),
        "the first device was blocked already"
    );
    gives_up_deregistered_with_3(device, &log2);
    let audit = json_lines(&ok(
        &[
            "network", "audit", "--dir", "net", "--json", "--kind", "blocked",
        ],
        d,
    ));
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|e| {
        e["detail"]
            .as_str()
            .is_some_and(|t| t.contains("certificate revoked by the CRL"))
    }));

    // Unblocked: the subscription works again for 5G-AKA (the certificate
    // stays revoked: a new onboarding would be refused).
    ok(
        &[
            "network",
            "unblock",
            "--dir",
            "net",
            &format!("Acme Sensors/{second}"),
        ],
        d,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(onboards(d, &bundle(second), &listen, 60));
    // The manufacturer's next CRL still lists it (CRLs are cumulative): an
    // import suspends only what it newly revokes, so the unblock stands.
    let again = revoke_and_import(d, second, "suspend");
    assert_eq!(again["suspended"], serde_json::json!([]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(onboards(d, &bundle(second), &listen, 60));
}
