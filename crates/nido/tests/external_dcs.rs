//! A manufacturer runs its own DCS and every operator uses it (issue 13,
//! TS 33.501 I.9.2.3): networks relay onboarding EAP over RADIUS, derive
//! K_AUSF from the MSK, and take the device identity from User-Name.
//!
//! - Two networks (their own SNPN ids, databases and RADIUS secrets, from
//!   their own source addresses) and one `nido dcs serve`: devices of one
//!   factory onboard into whichever network they are pointed at, each
//!   network holds only its own devices' subscriptions, and the DCS's audit
//!   names both operators.
//! - FreeRADIUS, configured for EAP-TLS 1.3 with the manufacturer's CA and
//!   a DCS certificate from `nido mfr dcs-cert`, as the external DCS of a
//!   nido network: nido devices onboard through it end to end.
//! - A DCS that does not answer: devices are refused with #22 (retry
//!   later), never left hanging, and `nido sim` says why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Scratch, free_udp_port, json_lines, ok, spawn, wait_for_log};
use serde_json::Value;

struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A manufacturer that runs its own DCS, with `per_network` devices in
/// each of `factories`.
fn manufacturer(d: &Path, factories: &[&str], per_network: usize) {
    ok(
        &[
            "mfr",
            "init",
            "--dir",
            "mfr",
            "--name",
            "Acme Sensors",
            "--realm",
            "dcs.acme.example",
            "--external-dcs",
        ],
        d,
    );
    for f in factories {
        ok(
            &[
                "mfr",
                "issue",
                "--dir",
                "mfr",
                "--count",
                &per_network.to_string(),
                "--out",
                f,
            ],
            d,
        );
    }
}

/// A network `dir` with SNPN NID `nid` whose onboarding for the realm goes
/// to `radius` with `secret` from `source`; serving on a port of its own.
fn network(
    d: &Path,
    dir: &str,
    nid: &str,
    radius: &str,
    secret: &str,
    source: &str,
) -> (Reaper, String) {
    let listen = format!("127.0.0.1:{}", free_udp_port());
    ok(
        &[
            "network", "init", "--dir", dir, "--nid", nid, "--listen", &listen,
        ],
        d,
    );
    ok(
        &[
            "network",
            "trust-manufacturer",
            "--dir",
            dir,
            "--name",
            "Acme Sensors",
            "--realm",
            "dcs.acme.example",
            "--radius",
            radius,
            "--secret",
            secret,
            "--source",
            source,
        ],
        d,
    );
    let log = d.join(format!("{dir}.log"));
    let serve = Reaper(spawn(&["network", "serve", "--dir", dir], d, &log));
    wait_for_log(&log, "serving", Duration::from_secs(30));
    (serve, listen)
}

fn sim(d: &Path, listen: &str, factory: &str, snpn: &str, timeout: &str) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args([
            "sim",
            "--network",
            listen,
            "--factory",
            factory,
            "--snpn",
            snpn,
            "--timeout",
            timeout,
            "--json",
        ])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn subscribed_devices(d: &Path, dir: &str) -> BTreeSet<String> {
    json_lines(&ok(
        &["network", "subscriptions", "--dir", dir, "--json"],
        d,
    ))
    .iter()
    .filter(|s| s["state"] == "active")
    .map(|s| s["device"].as_str().unwrap().to_owned())
    .collect()
}

fn logs(d: &Path, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "--- {n} ---\n{}",
                std::fs::read_to_string(d.join(n)).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn two_operators_onboard_one_factory_through_one_manufacturer_dcs() {
    let scratch = Scratch::new("external-dcs-two-operators");
    let d = &scratch.0;
    manufacturer(d, &["factory-a", "factory-b"], 3);
    ok(
        &[
            "dcs",
            "init",
            "--dir",
            "dcs",
            "--mfr",
            "mfr",
            "--host",
            "dcs.acme.example",
        ],
        d,
    );
    for (name, addr, secret) in [
        ("operator-a", "127.0.0.2", "secret-of-operator-a"),
        ("operator-b", "127.0.0.3", "secret-of-operator-b"),
    ] {
        ok(
            &[
                "dcs",
                "add-client",
                "--dir",
                "dcs",
                "--name",
                name,
                "--address",
                addr,
                "--secret",
                secret,
            ],
            d,
        );
    }
    let radius = format!("127.0.0.1:{}", free_udp_port());
    let dcs_log = d.join("dcs.log");
    let _dcs = Reaper(spawn(
        &["dcs", "serve", "--dir", "dcs", "--radius", &radius],
        d,
        &dcs_log,
    ));
    wait_for_log(&dcs_log, "serving", Duration::from_secs(20));

    let (_a, listen_a) = network(
        d,
        "net-a",
        "000000000AA",
        &radius,
        "secret-of-operator-a",
        "127.0.0.2",
    );
    let (_b, listen_b) = network(
        d,
        "net-b",
        "000000000BB",
        &radius,
        "secret-of-operator-b",
        "127.0.0.3",
    );

    for (listen, factory, snpn) in [
        (&listen_a, "factory-a", "999-99-000000000AA"),
        (&listen_b, "factory-b", "999-99-000000000BB"),
    ] {
        let (success, report, stderr) = sim(d, listen, factory, snpn, "60");
        assert!(
            success && report["active"] == 3 && report["refused"]["total"] == 0,
            "{factory}: {report:#}\n{stderr}\n{}",
            logs(d, &["dcs.log", "net-a.log", "net-b.log"])
        );
    }

    // Each network holds its own devices' subscriptions, and only those.
    let a = subscribed_devices(d, "net-a");
    let b = subscribed_devices(d, "net-b");
    let expect = |range: std::ops::RangeInclusive<u32>| -> BTreeSet<String> {
        range
            .map(|n| format!("Acme Sensors/ACMESENS-{n:010}"))
            .collect()
    };
    assert_eq!(a, expect(1..=3));
    assert_eq!(b, expect(4..=6));

    // The DCS decided for both operators, each device once accepted.
    let audit = json_lines(&ok(&["dcs", "audit", "--dir", "dcs", "--json"], d));
    let by = |client: &str| -> BTreeSet<String> {
        audit
            .iter()
            .filter(|r| r["client"] == client && r["decision"] == "accept")
            .map(|r| r["serial"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(by("operator-a").len(), 3, "{audit:#?}");
    assert_eq!(by("operator-b").len(), 3, "{audit:#?}");
}

#[test]
fn freeradius_as_the_external_dcs_of_a_nido_network() {
    let Some(program) = nido_testkit::tool("freeradius_as_the_external_dcs", "freeradius") else {
        return;
    };
    let scratch = Scratch::new("external-dcs-freeradius");
    let d = &scratch.0;
    manufacturer(d, &["factory"], 3);
    ok(
        &[
            "mfr",
            "dcs-cert",
            "--dir",
            "mfr",
            "--host",
            "dcs.acme.example",
            "--out",
            "dcs-cert",
        ],
        d,
    );
    let port = free_udp_port();
    let _radius = common::freeradius::start(
        &program,
        &common::freeradius::Setup {
            dir: &d.join("freeradius"),
            port,
            client: "operator",
            secret: "secret-of-the-operator",
            cert: &d.join("dcs-cert/dcs.pem"),
            key: &d.join("dcs-cert/dcs.key"),
            cas: &[&d.join("mfr/root.pem"), &d.join("mfr/issuing.pem")],
        },
    );
    let radius = format!("127.0.0.1:{port}");
    let (_net, listen) = network(
        d,
        "net",
        "000000000AB",
        &radius,
        "secret-of-the-operator",
        "127.0.0.1",
    );
    let (success, report, stderr) = sim(d, &listen, "factory", "999-99-000000000AB", "60");
    assert!(
        success && report["active"] == 3 && report["refused"]["total"] == 0,
        "{report:#}\n{stderr}\n{}\n--- freeradius ---\n{}",
        logs(d, &["net.log"]),
        std::fs::read_to_string(d.join("freeradius/freeradius.log")).unwrap_or_default()
    );
    assert_eq!(subscribed_devices(d, "net").len(), 3);
}

#[test]
fn a_silent_dcs_refuses_devices_with_22_instead_of_leaving_them_hanging() {
    let scratch = Scratch::new("external-dcs-silent");
    let d = &scratch.0;
    manufacturer(d, &["factory"], 1);
    // Nothing listens there: every Access-Request goes unanswered.
    let radius = format!("127.0.0.1:{}", free_udp_port());
    let (_net, listen) = network(
        d,
        "net",
        "000000000AB",
        &radius,
        "secret-of-the-operator",
        "127.0.0.1",
    );
    let (_, report, stderr) = sim(d, &listen, "factory", "999-99-000000000AB", "20");
    assert_eq!(report["active"], 0, "{report:#}\n{stderr}");
    let text = std::fs::read_to_string(d.join("net.log")).unwrap();
    assert!(
        text.contains("unreachable"),
        "the network does not say the DCS was unreachable:\n{text}"
    );
    assert!(
        report["congestion_rejects"].as_u64().unwrap_or(0) >= 1,
        "no #22: {report:#}\n{stderr}"
    );
}
