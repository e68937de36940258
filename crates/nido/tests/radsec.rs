//! RadSec (RADIUS over TLS, RFC 6614) between a network and a
//! manufacturer's own DCS:
//!
//! - the network creates its client certificate (`nido network
//!   radsec-cert`), the manufacturer pins it (`nido dcs add-client
//!   --radsec-cert`), `nido dcs serve --radsec` and `nido network
//!   trust-manufacturer --radsec` do the rest: three devices onboard to
//!   active through the TLS connection, and the DCS's audit names the
//!   operator;
//! - a network whose certificate the manufacturer did not pin is refused
//!   at the TLS handshake: its devices do not become active, and the DCS's
//!   log says why (the certificate is not a configured client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
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

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A network `dir` (SNPN NID `nid`) with its RadSec certificate, trusting
/// the manufacturer's DCS at `radsec`; returns its access address.
fn network(d: &Path, dir: &str, nid: &str, radsec: &str) -> String {
    let listen = format!("127.0.0.1:{}", free_udp_port());
    ok(
        &[
            "network", "init", "--dir", dir, "--nid", nid, "--listen", &listen,
        ],
        d,
    );
    let out = ok(&["network", "radsec-cert", "--dir", dir], d);
    assert!(out.contains("SHA-256 "), "{out}");
    // Once: a second run keeps the same certificate.
    let again = ok(&["network", "radsec-cert", "--dir", dir], d);
    assert!(again.starts_with("existing"), "{again}");
    assert_eq!(
        out.lines().nth(1),
        again.lines().nth(1),
        "the fingerprint changed"
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
            "--radsec",
            radsec,
            "--dcs-root",
            "mfr/root.pem",
            "--dcs-host",
            "dcs.acme.example",
        ],
        d,
    );
    listen
}

fn serve(d: &Path, dir: &str) -> Reaper {
    let log = d.join(format!("{dir}.log"));
    let serve = Reaper(spawn(&["network", "serve", "--dir", dir], d, &log));
    wait_for_log(&log, "serving", Duration::from_secs(30));
    serve
}

fn sim(d: &Path, listen: &str, factory: &str, snpn: &str, timeout: &str) -> (Value, String) {
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
    (
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
fn devices_onboard_over_radsec_and_an_unpinned_network_is_refused() {
    let scratch = Scratch::new("radsec");
    let d = &scratch.0;
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
    for (factory, count) in [("factory", "3"), ("factory-x", "1")] {
        ok(
            &[
                "mfr", "issue", "--dir", "mfr", "--count", count, "--out", factory,
            ],
            d,
        );
    }
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
    let radsec = format!("127.0.0.1:{}", free_tcp_port());
    let listen = network(d, "net", "000000000AB", &radsec);
    let out = ok(
        &[
            "dcs",
            "add-client",
            "--dir",
            "dcs",
            "--name",
            "operator-a",
            "--radsec-cert",
            "net/keys/radsec.pem",
        ],
        d,
    );
    assert!(out.contains("RadSec client operator-a"), "{out}");
    // The network that nobody pinned.
    let listen_x = network(d, "net-x", "000000000CD", &radsec);

    let dcs_log = d.join("dcs.log");
    let _dcs = Reaper(spawn(
        &[
            "dcs",
            "serve",
            "--dir",
            "dcs",
            "--radius",
            &format!("127.0.0.1:{}", free_udp_port()),
            "--radsec",
            &radsec,
        ],
        d,
        &dcs_log,
    ));
    wait_for_log(&dcs_log, "serving", Duration::from_secs(20));
    let _net = serve(d, "net");
    let _net_x = serve(d, "net-x");

    let (report, stderr) = sim(d, &listen, "factory", "999-99-000000000AB", "40");
    assert!(
        report["active"] == 3 && report["refused"]["total"] == 0,
        "{report:#}\n{stderr}\n{}",
        logs(d, &["dcs.log", "net.log"])
    );
    let audit = json_lines(&ok(&["dcs", "audit", "--dir", "dcs", "--json"], d));
    let accepted = audit
        .iter()
        .filter(|r| r["client"] == "operator-a" && r["decision"] == "accept")
        .count();
    assert_eq!(accepted, 3, "{audit:#?}");

    let (report, stderr) = sim(d, &listen_x, "factory-x", "999-99-000000000CD", "8");
    assert_eq!(
        report["active"],
        0,
        "{report:#}\n{stderr}\n{}",
        logs(d, &["dcs.log", "net-x.log"])
    );
    let text = std::fs::read_to_string(&dcs_log).unwrap();
    assert!(
        text.contains("not a configured client"),
        "the DCS does not say why:\n{text}"
    );
    // Nothing was decided for the unpinned network.
    let audit = json_lines(&ok(&["dcs", "audit", "--dir", "dcs", "--json"], d));
    assert_eq!(audit.len(), 3, "{audit:#?}");
}
