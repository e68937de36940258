//! What a seed determines (issue #12 item 5), and one definition of every
//! figure: two `nido demo` runs with the same seed and settings give the
//! same report and traces with the same records at the same times, with any
//! number of threads; and a seeded fleet onboarded through the in-process
//! harness ([`nido_sim::Fleet`]) and through `nido demo` gets the same
//! funnel, NAS message counts and simulated latencies.
//!
//! What a seed does not determine, and these tests leave out: wall-clock,
//! CPU and memory figures; octet counts (ECDSA signatures and DER
//! encodings of random values vary in length); the network's words for an
//! expired or not-yet-valid certificate, which quote the wall-clock time of
//! the check.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Scratch;
use nido_eap::fixtures::Onboarding;
use nido_net::CountingSink;
use nido_pki::DeviceProfile;
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link};
use serde_json::Value;

/// `nido demo` with `args` in `dir`: its JSON report.
fn demo(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .arg("demo")
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nido demo {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("one JSON object")
}

/// Fields a seed does not determine (see the module doc).
const NOT_SEEDED: &[&str] = &[
    "wall_s",
    "setup_wall_s",
    "onboardings_per_s",
    "cpu_s",
    "cpu_ms_per_onboarding",
    "peak_rss_bytes",
    "memory",
    "bytes",
    "uplink_bytes",
    "downlink_bytes",
    "bytes_per_burst",
    "baseline_bytes",
    "baseline_downlink_bytes",
    "network_reason",
    "threads",
];

/// `report` without the fields a seed does not determine.
fn seeded(report: &Value) -> Value {
    match report {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !NOT_SEEDED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), seeded(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(seeded).collect()),
        other => other.clone(),
    }
}

/// One pcap record: its time (seconds, microseconds), its annotation
/// (device and direction) and the message it carries: the 5GMM message type,
/// or the 5GSM one, or "protected" (its plain inner message follows).
#[derive(Debug, PartialEq, Eq)]
struct Record {
    seconds: u32,
    micros: u32,
    annotation: String,
    message: String,
}

fn u16_be(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Reads the demo's pcap (classic, little-endian, exported PDUs): the
/// records in file order.
fn records(pcap: &Path) -> Vec<Record> {
    let b = std::fs::read(pcap).unwrap();
    assert_eq!(u32_le(&b, 0), 0xa1b2_c3d4, "pcap magic");
    assert_eq!(u32_le(&b, 20), 252, "exported PDUs");
    let mut at = 24;
    let mut out = Vec::new();
    while at < b.len() {
        let (seconds, micros, captured) = (u32_le(&b, at), u32_le(&b, at + 4), u32_le(&b, at + 8));
        let data = &b[at + 16..at + 16 + captured as usize];
        at += 16 + captured as usize;
        // Tags: type, length (big-endian), value padded to 4; then the NAS PDU.
        let (mut t, mut annotation) = (0, String::new());
        loop {
            let (tag, len) = (u16_be(data, t), u16_be(data, t + 2));
            t += 4;
            if tag == 0 {
                break;
            }
            if tag == 33 {
                annotation = String::from_utf8_lossy(&data[t..t + len])
                    .trim_end_matches('\0')
                    .to_owned();
            }
            t += len.div_ceil(4) * 4;
        }
        let nas = &data[t..];
        let message = match nas {
            [0x7e, 0x00, kind, ..] => format!("5GMM {kind:#04x}"),
            [0x7e, ..] => "protected".to_owned(),
            [0x2e, _, _, kind, ..] => format!("5GSM {kind:#04x}"),
            _ => format!("other {:02x?}", &nas[..nas.len().min(4)]),
        };
        out.push(Record {
            seconds,
            micros,
            annotation,
            message,
        });
    }
    out
}

#[test]
fn two_demo_runs_with_one_seed_agree_whatever_the_threads() {
    let d = Scratch::new("threads");
    let run = |threads: &str, pcap: &str| {
        let report = demo(
            &d.0,
            &[
                "--devices",
                "200",
                "--seed",
                "7",
                "--threads",
                threads,
                "--pcap",
                pcap,
            ],
        );
        (report, records(&d.0.join(pcap)))
    };
    let (first, first_trace) = run("2", "a.pcap");
    let (second, second_trace) = run("2", "b.pcap");
    let (third, third_trace) = run("3", "c.pcap");
    assert_eq!(first["active"], 200, "{first:#}");
    assert!(
        first_trace.len() > 200 * 20,
        "{} records",
        first_trace.len()
    );
    // The trace starts at the fixed epoch, 2026-01-01T00:00:00Z.
    assert_eq!(first_trace[0].seconds, 1_767_225_600);
    for (report, trace, what) in [
        (&second, &second_trace, "a second run"),
        (&third, &third_trace, "a run on 3 threads"),
    ] {
        assert_eq!(seeded(report), seeded(&first), "{what}: the report");
        assert_eq!(trace.len(), first_trace.len(), "{what}: the records");
        if let Some((k, (a, b))) = first_trace
            .iter()
            .zip(trace.iter())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!("{what}: record {k} differs: {a:?} and {b:?}");
        }
    }
    // On a lossy link the seed decides the faults: the same seed and
    // threads give the same run, another seed another one. (Across thread
    // counts a lossy run differs: each shard draws its own link's faults.)
    let lossy = |seed: &str| {
        seeded(&demo(
            &d.0,
            &[
                "--devices",
                "40",
                "--seed",
                seed,
                "--threads",
                "2",
                "--loss",
                "0.05",
            ],
        ))
    };
    let one = lossy("1");
    assert!(one["link"]["dropped"].as_u64().unwrap() > 0, "{one:#}");
    assert_eq!(lossy("1"), one);
    assert_ne!(lossy("2")["link"], one["link"]);
}

#[test]
fn the_harness_and_the_demo_measure_a_seeded_fleet_alike() {
    const DEVICES: u64 = 24;
    let d = Scratch::new("harness");
    let demo = demo(
        &d.0,
        &[
            "--devices",
            &DEVICES.to_string(),
            "--seed",
            "7",
            "--threads",
            "1",
            "--db",
            "memory",
            "--good-only",
        ],
    );

    // The same fleet through the in-process harness: a manufacturer, a
    // network trusting it, good devices on a perfect link, all onboarding
    // at once, then one burst each from idle.
    let now = SystemTime::now();
    let world = Onboarding::new("Acme Sensors", now).unwrap();
    let network = scenario::network(
        &world,
        &NetworkOptions::default(),
        Box::new(CountingSink::new()),
    )
    .unwrap();
    let mut fleet = Fleet::new(
        network,
        Link::new(Faults::NONE, Faults::NONE, 7).unwrap(),
        now,
        false,
    );
    for n in 1..=DEVICES {
        let id = world
            .manufacturer
            .issue_device(
                &world.manufacturer.device_serial(n),
                &DeviceProfile::standard(now),
            )
            .unwrap();
        fleet.add_device(scenario::device(&world, &id, false).unwrap());
    }
    fleet.onboard(2000, now + Duration::from_secs(3600), |_| {});
    let (sent, burst) = fleet.bursts_from_idle(
        b"t=21.5C;h=40%;batt=3.61V;seq=000017",
        Duration::from_secs(30),
        Duration::from_secs(60),
    );
    let harness = fleet.report();

    let h: Value = serde_json::to_value(&harness).unwrap();
    assert_eq!(demo["active"], DEVICES, "{demo:#}");
    assert_eq!(h["active"], DEVICES, "{h:#}");
    assert_eq!(demo["funnel"], h["funnel"]);
    assert_eq!(demo["latency_ms"], h["latency_ms"]);
    let (n, m) = (&demo["nas_per_onboarding"], &h["nas_per_onboarding"]);
    for k in ["messages", "uplink_messages", "downlink_messages"] {
        assert_eq!(n[k], m[k], "{k}: {n} {m}");
    }
    assert!(m["messages"].as_f64().unwrap() > 20.0, "{m}");
    let b = &demo["burst"];
    assert_eq!(b["sent"], sent);
    assert_eq!(b["uplink_messages"], burst.ul_messages as f64 / sent as f64);
    assert_eq!(
        b["downlink_messages"],
        burst.dl_messages as f64 / sent as f64
    );
    // Phase D is a burst from idle to its SERVICE ACCEPT: one link round
    // trip (10 ms each way) on a perfect link.
    assert_eq!(h["latency_ms"]["D"]["p50"], 20.0, "{h:#}");
}
