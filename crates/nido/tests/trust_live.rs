//! Real processes: the operator changes trust while `nido network serve`
//! runs, and the network sees it from the next onboarding on, without a
//! restart: a device blocked while serving is refused (#3); a manufacturer
//! enrolled while serving (a new DCS realm, its CRL) has its device
//! onboarded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Reaper, Scratch, json_lines, manufacturer_and_network, nido, ok, spawn};
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
    let _network = Reaper(spawn(
        &["network", "serve", "--dir", "net", "--trust-poll-ms", "50"],
        d,
        &d.join("network.log"),
    ));
    std::thread::sleep(Duration::from_millis(300));
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
