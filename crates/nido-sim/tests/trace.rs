//! The harness's trace hook feeding the pcap writer: one device's phases
//! A-D as sent on the link, each protected PDU followed by its plain inner
//! message (marked as such), decoded by tshark as NAS-5GS with no
//! malformed record, in the design doc's order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use nido_sim::scenario::NetworkOptions;
use nido_trace::PcapWriter;

use common::{one_device, settle, world};

fn tshark(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_trace_of_phases_a_to_d_decodes_in_wireshark() {
    let Some(program) =
        nido_testkit::tool("the_trace_of_phases_a_to_d_decodes_in_wireshark", "tshark")
    else {
        return;
    };
    let world = world();
    let options = NetworkOptions {
        trace: true,
        ..NetworkOptions::default()
    };
    let (mut fleet, _) = one_device(&world, &options, 7);
    let pcap = Rc::new(RefCell::new(PcapWriter::new(Vec::new()).unwrap()));
    let writer = pcap.clone();
    let start = world.now;
    fleet.set_trace(move |r| {
        let at = r.at.duration_since(start).unwrap_or_default();
        let mut w = writer.borrow_mut();
        w.write_nas(at, r.pdu).unwrap();
        if let Some(plain) = r.plain {
            w.write_nas_annotated(at, plain, "nido: plain inner message of the previous PDU")
                .unwrap();
        }
    });
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    fleet.advance(Duration::from_secs(30));
    fleet.send_data(0, b"t=21.5C").unwrap();
    fleet.advance(Duration::from_secs(5));
    drop(fleet);

    let bytes = Rc::try_unwrap(pcap)
        .ok()
        .unwrap()
        .into_inner()
        .into_inner()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("nido-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("onboarding.pcap");
    std::fs::write(&file, &bytes).unwrap();
    let path = file.to_str().unwrap();

    let text = tshark(
        &program,
        &["-r", path, "-T", "fields", "-e", "_ws.col.Info"],
    );
    // Not one record malformed or in error. The protected CONTROL PLANE
    // SERVICE REQUEST, whose CIoT small data container value is ciphered
    // inside an otherwise plain message (TS 24.501 §4.4.6), is captured up
    // to its ciphertext (nido_trace::partially_ciphered_at): tshark decodes
    // its header and marks it "Packet size limited during capture".
    let malformed = tshark(
        &program,
        &[
            "-r",
            path,
            "-Y",
            "_ws.malformed || _ws.expert.severity == error",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    let protocols = tshark(
        &program,
        &["-r", path, "-T", "fields", "-e", "frame.protocols"],
    );
    let short = tshark(
        &program,
        &[
            "-r",
            path,
            "-Y",
            "_ws.short",
            "-T",
            "fields",
            "-e",
            "nas_5gs.security_header_type",
            "-e",
            "nas_5gs.mm.message_type",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(malformed.trim(), "", "malformed records:\n{text}");
    for (n, line) in protocols.lines().enumerate() {
        assert!(
            line.starts_with("exported_pdu:nas-5gs"),
            "record {} is not decoded as NAS-5GS: {line}",
            n + 1
        );
    }
    // Only the protected CPSR is cut short (one burst: one record).
    let short: Vec<&str> = short.lines().collect();
    assert_eq!(short, ["1,0\t0x4f"], "records cut short:\n{text}");

    // The plain messages, in the design doc's order (tshark's names).
    let order = [
        "Registration request",
        "Authentication request",
        "Authentication response",
        "Authentication result",
        "Security mode command",
        "Security mode complete",
        "Registration accept",
        "Registration complete",
        "UL NAS transport",
        "DL NAS transport",
        "Deregistration request (UE originating)",
        "Deregistration accept (UE originating)",
        "Registration request",
        "Authentication request",
        "Authentication response",
        "Security mode command",
        "Security mode complete",
        "Registration accept",
        "Registration complete",
        "UL NAS transport",
        "DL NAS transport",
        "Control plane service request",
        "Service accept",
    ];
    let mut at = 0;
    for name in order {
        let found = text[at..]
            .find(name)
            .unwrap_or_else(|| panic!("{name:?} missing after offset {at} in:\n{text}"));
        at += found + name.len();
    }
}
