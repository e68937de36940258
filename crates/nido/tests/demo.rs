//! `nido demo` end to end, as a newcomer runs it: the real binary with 200
//! good devices and the bad ones, a pcap and the JSON report. The counts add
//! up, every good device ends active, every bad device is refused with its
//! cause; tshark decodes every record of the trace as NAS-5GS with no
//! malformed packet, and each device's records carry phases A-D of the
//! design doc in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::Scratch;
use serde_json::Value;

fn tshark(pcap: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The cause each kind of bad device must get.
const EXPECTED: [(&str, u64); 7] = [
    ("blocked", 3),
    ("clone", 74),
    ("expired", 3),
    ("foreign_manufacturer", 75),
    ("not_yet_valid", 74),
    ("revoked", 3),
    ("server_auth_only", 3),
];

const GOOD: u64 = 200;

/// One record of the trace, as tshark decoded it.
#[derive(Debug, Clone)]
struct Rec {
    frame: u64,
    ue: usize,
    serial: String,
    uplink: bool,
    /// The plain inner message of the previous (protected) record.
    inner: bool,
    /// Security header type of the outermost header.
    sht: u64,
    /// The 5GMM message type of the outermost plain message.
    mm: Option<u64>,
    /// Every 5GSM message type inside.
    sm: Vec<u64>,
    reg_type: Option<u64>,
    cause: Option<u64>,
    eap: bool,
    rand: bool,
    payload_container_types: Vec<u64>,
}

fn hex_or_dec(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn list(v: &str) -> Vec<u64> {
    v.split(',').filter_map(hex_or_dec).collect()
}

fn records(pcap: &Path) -> Vec<Rec> {
    let fields = [
        "frame.number",
        "frame.protocols",
        "exported_pdu.col_proto_str",
        "nas_5gs.security_header_type",
        "nas_5gs.mm.message_type",
        "nas_5gs.sm.message_type",
        "nas_5gs.mm.5gs_reg_type",
        "nas_5gs.mm.5gmm_cause",
        "eap.code",
        "gsm_a.dtap.rand",
        "nas_5gs.mm.pld_cont_type",
    ];
    let mut args = vec!["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"];
    for f in &fields {
        args.push("-e");
        args.push(f);
    }
    let text = tshark(pcap, &args);
    text.lines()
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), fields.len(), "{line}");
            assert!(
                c[1].split(':').any(|p| p == "nas-5gs"),
                "frame {} is not decoded as NAS-5GS: {}",
                c[0],
                c[1]
            );
            // "nido UE <index> <serial> UL|DL[ plain inner message ...]"
            let words: Vec<&str> = c[2].split(' ').collect();
            assert!(
                words.len() >= 5 && words[0] == "nido" && words[1] == "UE",
                "frame {}: annotation {:?}",
                c[0],
                c[2]
            );
            Rec {
                frame: c[0].parse().unwrap(),
                ue: words[2].parse().unwrap(),
                serial: words[3].to_owned(),
                uplink: match words[4] {
                    "UL" => true,
                    "DL" => false,
                    other => panic!("direction {other}"),
                },
                inner: c[2].contains("plain inner message"),
                sht: list(c[3]).first().copied().unwrap(),
                mm: list(c[4]).first().copied(),
                sm: list(c[5]),
                reg_type: list(c[6]).first().copied(),
                cause: list(c[7]).first().copied(),
                eap: !c[8].is_empty(),
                rand: !c[9].is_empty(),
                payload_container_types: list(c[10]),
            }
        })
        .collect()
}

/// A step of the expected sequence: direction, 5GMM message type, and a
/// condition on the record.
type Step = (bool, u64, &'static str, fn(&Rec) -> bool);

fn any(_: &Rec) -> bool {
    true
}

/// Phases A-D of the design doc, on the plain view of one device's records.
fn phases() -> Vec<Step> {
    const UL: bool = true;
    const DL: bool = false;
    vec![
        // A: onboarding registration with EAP-TLS, security mode, accept.
        (UL, 0x41, "REGISTRATION REQUEST type onboarding", |r| {
            r.reg_type == Some(5)
        }),
        (DL, 0x56, "AUTHENTICATION REQUEST (EAP)", |r| r.eap),
        (UL, 0x57, "AUTHENTICATION RESPONSE (EAP)", |r| r.eap),
        (DL, 0x5a, "AUTHENTICATION RESULT (EAP-Success)", |r| r.eap),
        (DL, 0x5d, "SECURITY MODE COMMAND", any),
        (UL, 0x5e, "SECURITY MODE COMPLETE", any),
        (DL, 0x42, "REGISTRATION ACCEPT", any),
        (UL, 0x43, "REGISTRATION COMPLETE", any),
        // B: onboarding PDU session, provisioning over CIoT data, leave.
        (
            UL,
            0x67,
            "UL NAS TRANSPORT (PDU SESSION ESTABLISHMENT REQUEST)",
            |r| r.sm.contains(&0xc1),
        ),
        (
            DL,
            0x68,
            "DL NAS TRANSPORT (PDU SESSION ESTABLISHMENT ACCEPT)",
            |r| r.sm.contains(&0xc2),
        ),
        (
            UL,
            0x67,
            "UL NAS TRANSPORT (provisioning request, CIoT data)",
            |r| r.payload_container_types.contains(&8),
        ),
        (
            DL,
            0x68,
            "DL NAS TRANSPORT (credential package, CIoT data)",
            |r| r.payload_container_types.contains(&8),
        ),
        (
            UL,
            0x67,
            "UL NAS TRANSPORT (confirmation, CIoT data)",
            |r| r.payload_container_types.contains(&8),
        ),
        (
            DL,
            0x68,
            "DL NAS TRANSPORT (acknowledgement, CIoT data)",
            |r| r.payload_container_types.contains(&8),
        ),
        (UL, 0x45, "DEREGISTRATION REQUEST", any),
        (DL, 0x46, "DEREGISTRATION ACCEPT", any),
        // C: registration with the SUCI, 5G-AKA, security mode, accept.
        (UL, 0x41, "REGISTRATION REQUEST type initial", |r| {
            r.reg_type == Some(1)
        }),
        (
            DL,
            0x56,
            "AUTHENTICATION REQUEST (5G-AKA: RAND, AUTN)",
            |r| r.rand && !r.eap,
        ),
        (UL, 0x57, "AUTHENTICATION RESPONSE (RES*)", |r| !r.eap),
        (DL, 0x5d, "SECURITY MODE COMMAND", any),
        (UL, 0x5e, "SECURITY MODE COMPLETE", any),
        (DL, 0x42, "REGISTRATION ACCEPT", any),
        (UL, 0x43, "REGISTRATION COMPLETE", any),
        // D: the data session, then a burst from idle.
        (
            UL,
            0x67,
            "UL NAS TRANSPORT (PDU SESSION ESTABLISHMENT REQUEST)",
            |r| r.sm.contains(&0xc1),
        ),
        (
            DL,
            0x68,
            "DL NAS TRANSPORT (PDU SESSION ESTABLISHMENT ACCEPT)",
            |r| r.sm.contains(&0xc2),
        ),
        (UL, 0x4f, "CONTROL PLANE SERVICE REQUEST", any),
        (DL, 0x4e, "SERVICE ACCEPT", any),
    ]
}

/// The first step of `steps` that `plain` (one device's plain view, in
/// order) does not contain in order, if any.
fn missing(plain: &[&Rec], steps: &[Step]) -> Option<&'static str> {
    let mut at = 0;
    for (uplink, mm, name, ok) in steps {
        let found = plain[at..]
            .iter()
            .position(|r| r.uplink == *uplink && r.mm == Some(*mm) && ok(r));
        match found {
            Some(p) => at += p + 1,
            None => return Some(name),
        }
    }
    None
}

#[test]
fn the_demo_onboards_200_devices_refuses_the_bad_ones_and_its_trace_decodes() {
    let d = Scratch::new("200");
    let pcap = d.0.join("t.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        // Two shards (threads) whatever the machine: the trace and the
        // report are merged from both.
        .args(["demo", "--devices", &GOOD.to_string(), "--threads", "2"])
        .arg("--pcap")
        .arg(&pcap)
        .arg("--json")
        .current_dir(&d.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nido demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");

    // The counts add up; every good device is active, every bad one refused
    // with its cause.
    let n = |v: &Value| v.as_u64().unwrap();
    let devices = n(&report["devices"]);
    assert_eq!(devices, GOOD + EXPECTED.len() as u64);
    assert_eq!(n(&report["good_devices"]), GOOD);
    assert_eq!(n(&report["active"]), GOOD);
    assert_eq!(n(&report["incomplete"]), 0);
    let refused = &report["refused"];
    assert_eq!(n(&report["active"]) + n(&refused["total"]), devices);
    let by_reason: BTreeMap<String, u64> = refused["by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), n(v)))
        .collect();
    assert_eq!(
        by_reason,
        EXPECTED.iter().map(|(r, _)| ((*r).to_owned(), 1)).collect()
    );
    assert_eq!(by_reason.values().sum::<u64>(), n(&refused["total"]));
    let expected: BTreeMap<&str, u64> = EXPECTED.into_iter().collect();
    let mut bad = BTreeMap::new();
    for r in refused["devices"].as_array().unwrap() {
        let reason = r["reason"].as_str().unwrap();
        assert_eq!(r["cause"].as_u64(), Some(expected[reason]), "{r}");
        assert_eq!(r["expected_cause"].as_u64(), Some(expected[reason]), "{r}");
        bad.insert(r["device"].as_str().unwrap().to_owned(), expected[reason]);
    }
    assert_eq!(bad.len(), EXPECTED.len());
    // Every fourth good device is the owner's, with its credentials.
    assert_eq!(n(&report["claimed_with_owner_credentials"]), GOOD / 4);
    assert_eq!(n(&report["subscriptions"]), GOOD);
    assert_eq!(report["store"], "sqlite");
    assert_eq!(n(&report["threads"]), 2);
    assert!(report["cpu_ms_per_onboarding"].as_f64().unwrap() > 0.0);

    // The report's documented fields are there.
    for phase in ["A", "B", "C", "D", "overall"] {
        let p = &report["latency_ms"][phase];
        for k in ["p50", "p95", "p99"] {
            assert!(p[k].as_f64().unwrap() > 0.0, "latency_ms.{phase}.{k}: {p}");
        }
        assert!(p["p50"].as_f64() <= p["p95"].as_f64() && p["p95"].as_f64() <= p["p99"].as_f64());
    }
    let nas = &report["nas_per_onboarding"];
    for k in [
        "messages",
        "bytes",
        "uplink_messages",
        "uplink_bytes",
        "downlink_messages",
        "downlink_bytes",
    ] {
        assert!(nas[k].as_f64().unwrap() > 0.0, "nas_per_onboarding.{k}");
    }
    let burst = &report["burst"];
    assert_eq!(burst["uplink_messages"].as_f64(), Some(1.0));
    assert_eq!(n(&burst["sent"]), GOOD);
    assert_eq!(n(&burst["delivered"]), GOOD);
    assert!(n(&burst["baseline_messages"]) >= 5, "{burst}");
    assert!(
        burst["bytes_per_burst"].as_f64().unwrap() * 4.0
            < burst["baseline_bytes"].as_f64().unwrap()
    );
    assert!(n(&report["peak_rss_bytes"]) > 0);
    assert!(report["onboardings_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["wall_s"].as_f64().unwrap() > 0.0);
    assert!(report["simulated_s"].as_f64().unwrap() > 0.0);
    assert!(report["link"]["sent"].as_u64().unwrap() > 0);

    // The trace checks need tshark; the rest ran without it.
    if nido_testkit::tool(
        "the_demo_onboards_200_devices_refuses_the_bad_ones_and_its_trace_decodes (its trace checks)",
        "tshark",
    )
    .is_none()
    {
        return;
    }

    // No malformed record, no error.
    let malformed = tshark(
        &pcap,
        &[
            "-Y",
            "_ws.malformed || _ws.expert.severity == error",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert_eq!(malformed.trim(), "", "malformed records");

    // Every record decodes as NAS-5GS and names its device.
    let recs = records(&pcap);
    assert!(!recs.is_empty());
    let mut by_ue: BTreeMap<usize, Vec<&Rec>> = BTreeMap::new();
    for r in &recs {
        by_ue.entry(r.ue).or_default().push(r);
    }
    // Each protected record is followed by its plain inner message.
    for w in recs.windows(2) {
        if w[0].sht != 0 {
            assert!(
                w[1].inner && w[1].sht == 0 && w[1].ue == w[0].ue,
                "frame {}",
                w[0].frame
            );
        }
    }
    assert_eq!(by_ue.len() as u64, devices, "every device is in the trace");

    let steps = phases();
    let mut complete = BTreeSet::new();
    for (ue, rs) in &by_ue {
        let plain: Vec<&Rec> = rs.iter().copied().filter(|r| r.sht == 0).collect();
        let serial = &rs[0].serial;
        match missing(&plain, &steps) {
            None => {
                assert!(
                    complete.insert(serial.clone()),
                    "two complete devices {serial}"
                );
            }
            Some(step) => {
                // A refused device: REGISTRATION REJECT with its cause.
                let cause = bad.get(serial).unwrap_or_else(|| {
                    panic!("UE {ue} ({serial}), a good device, lacks {step} in its trace")
                });
                assert!(
                    plain
                        .iter()
                        .any(|r| !r.uplink && r.mm == Some(0x44) && r.cause == Some(*cause)),
                    "UE {ue} ({serial}) has no REGISTRATION REJECT #{cause}"
                );
            }
        }
    }
    // The good devices (the clone's twin among them) all completed A-D.
    assert_eq!(complete.len() as u64, GOOD);
}
