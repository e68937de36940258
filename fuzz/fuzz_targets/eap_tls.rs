//! The input is what a device may send the DCS during EAP-TLS: EAP packets.
//!
//! - `Packet::decode` and `TlsFrame::decode` never panic; what decodes
//!   re-encodes to the same octets.
//! - The input cut into frames (first octet: fragment size) goes through a
//!   `Reassembler` with small bounds: it never buffers more than the bound,
//!   and a completed message is exactly the frames' data.
//! - The input cut at its first octets into EAP responses is fed to a DCS
//!   server after its EAP-TLS Start (identifiers patched to match, so the
//!   fuzzer reaches TLS): it never panics and never reports success.

#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use nido_eap::packet::{MethodType, Packet};
use nido_eap::tls_frame::{Limits, Reassembler, TlsFrame};
use nido_eap::fixtures::Onboarding;
use nido_eap::{EapTlsServer, ServerOutcome, ServerStep, Settings};

fn dcs() -> &'static Onboarding {
    static DCS: OnceLock<Onboarding> = OnceLock::new();
    DCS.get_or_init(|| {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        Onboarding::new("Fuzz Devices", now).expect("fixture")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        assert_eq!(p.to_bytes(), data, "EAP packet re-encoding differs");
    }
    if let Ok(f) = TlsFrame::decode(data) {
        let again = TlsFrame::decode(&f.to_bytes()).expect("re-decode");
        assert_eq!(again, f);
    }

    // Reassembly with small bounds.
    let limits = Limits { max_message: 512, max_fragments: 8 };
    let mut r = Reassembler::new(limits);
    let size = usize::from(*data.first().unwrap_or(&1)).max(1);
    let mut sent = Vec::new();
    for chunk in data.get(1..).unwrap_or_default().chunks(size) {
        let Ok(frame) = TlsFrame::decode(chunk) else { break };
        sent.extend_from_slice(&frame.data);
        match r.push(&frame) {
            Ok(Some(message)) => {
                assert!(message.len() <= limits.max_message);
                assert_eq!(message, sent, "reassembled message differs from the fragments");
                sent.clear();
            }
            Ok(None) => assert!(sent.len() <= limits.max_message),
            Err(_) => break,
        }
    }

    // A DCS conversation fed with fuzzed responses.
    let world = dcs();
    let Ok((mut server, start)) = EapTlsServer::start(&world.dcs, Settings::default(), world.now, 1) else {
        return;
    };
    let mut id = start[1];
    let mut rest = data;
    while rest.len() > 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let body = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let response = Packet::response(id, MethodType::Tls, body.to_vec()).to_bytes();
        match server.handle(&response) {
            ServerStep::Send(req) => id = req[1],
            ServerStep::Done(_, outcome) => {
                assert!(!matches!(outcome, ServerOutcome::Success(_)), "fuzzed peer authenticated");
                break;
            }
            ServerStep::Ignored(_) => {}
        }
    }
});
