//! The EAP-TLS 1.3 exchange as it travels in NAS (AUTHENTICATION REQUEST /
//! RESPONSE / RESULT), written to a pcap and decoded by tshark: EAP-TLS
//! carrying TLS 1.3 handshake records, no malformed frame.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nido_eap::fixtures::Onboarding;
use nido_eap::{EapTlsPeer, EapTlsServer, PeerStep, ServerStep, Settings};
use nido_nas::build::{self, KeySetIdentifier};
use nido_pki::DeviceProfile;
use nido_trace::PcapWriter;

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
fn tshark_decodes_eap_tls_1_3_inside_nas() {
    let Some(program) = nido_testkit::tool("tshark_decodes_eap_tls_1_3_inside_nas", "tshark")
    else {
        return;
    };
    let world = Onboarding::new("Trace Devices", SystemTime::now()).unwrap();
    let (now, dcs) = (world.now, &world.dcs);
    let (_, creds) = world.device(1, &DeviceProfile::standard(now)).unwrap();

    // Small fragments, so tshark has to reassemble EAP-TLS too.
    let settings = Settings {
        fragment_size: 400,
        ..Settings::default()
    };
    let (mut server, start) = EapTlsServer::start(dcs, settings, now, 1).unwrap();
    let mut peer = EapTlsPeer::new(&creds, settings, "anonymous@trace", now).unwrap();
    let ksi = KeySetIdentifier::Native(0);
    let mut nas = vec![
        build::authentication_request_eap(ksi, &start)
            .unwrap()
            .encode()
            .unwrap(),
    ];
    let mut request = start;
    loop {
        let PeerStep::Send(resp) = peer.handle(&request) else {
            panic!("peer stopped early")
        };
        nas.push(
            build::authentication_response_eap(&resp)
                .unwrap()
                .encode()
                .unwrap(),
        );
        match server.handle(&resp) {
            ServerStep::Send(req) => {
                nas.push(
                    build::authentication_request_eap(ksi, &req)
                        .unwrap()
                        .encode()
                        .unwrap(),
                );
                request = req;
            }
            ServerStep::Done(last, _) => {
                nas.push(
                    build::authentication_result(ksi, &last)
                        .unwrap()
                        .encode()
                        .unwrap(),
                );
                assert!(matches!(
                    peer.handle(&last),
                    PeerStep::Done(nido_eap::PeerOutcome::Success(_))
                ));
                break;
            }
            ServerStep::Ignored(w) => panic!("{w}"),
        }
    }

    let path: PathBuf =
        std::env::temp_dir().join(format!("nido-eap-trace-{}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, pdu) in nas.iter().enumerate() {
        w.write_nas(Duration::from_millis(1_700_000_000_000 + i as u64), pdu)
            .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let p = path.to_str().unwrap();

    let verbose = tshark(&program, &["-r", p, "-V"]);
    assert!(!verbose.contains("Malformed"), "malformed frame in {p}");
    assert!(
        !verbose.contains("[Expert Info (Error"),
        "expert error in {p}"
    );

    let fields = tshark(
        &program,
        &[
            "-r",
            p,
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "nas_5gs.mm.message_type",
            "-e",
            "eap.code",
            "-e",
            "eap.type",
            "-e",
            "tls.handshake.type",
            "-e",
            "tls.handshake.extensions.supported_version",
        ],
    );
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split(';').collect()).collect();
    assert_eq!(rows.len(), nas.len());
    // NAS message types: 0x56 request, 0x57 response, 0x5a result (last).
    for (i, r) in rows.iter().enumerate() {
        let expected = if i + 1 == rows.len() {
            "0x5a"
        } else if i % 2 == 0 {
            "0x56"
        } else {
            "0x57"
        };
        assert_eq!(r[0], expected, "frame {} of {p}", i + 1);
    }
    // EAP-TLS (type 13) in every request and response.
    assert!(
        rows[..rows.len() - 1].iter().all(|r| r[2] == "13"),
        "{fields}"
    );
    // TLS handshake records: ClientHello (1) and ServerHello (2), TLS 1.3 negotiated.
    let handshake_types: Vec<&str> = rows.iter().flat_map(|r| r[3].split(',')).collect();
    assert!(
        handshake_types.contains(&"1"),
        "no ClientHello decoded: {fields}"
    );
    assert!(
        handshake_types.contains(&"2"),
        "no ServerHello decoded: {fields}"
    );
    assert!(
        rows.iter().any(|r| r[4].contains("0x0304")),
        "TLS 1.3 not negotiated: {fields}"
    );
    // The last frame carries EAP-Success.
    assert_eq!(rows.last().unwrap()[1], "3");
    std::fs::remove_file(&path).ok();
}
