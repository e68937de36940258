//! The input is one NAS PDU, as it would come from the radio or from N2.
//!
//! - `nido_nas::decode` (strict), `nido_nas::receive` (as a receiver),
//!   `nido_nas::fields` and the procedures' view `Inbound::read` must not
//!   panic; a decoding error names an offset inside the PDU; anything that
//!   decodes re-encodes, and the encoding decodes in the same mode to an
//!   equal message; what decodes strictly is received with nothing dropped
//!   but well-framed unknown IEs.
//! - Every `SecurityContext` (both roles, four algorithm pairs, one fixed
//!   K_AMF, fresh COUNTs) must not panic in `unprotect`. A refused PDU leaves
//!   the COUNTs unchanged (except an authentic but invalid one, whose COUNT is
//!   used); an accepted one advances the receive COUNT past it, leaves the send
//!   COUNT alone, is refused as a replay the second time (NIA1-3), and its
//!   message passes the round trip above. The context and the stateless
//!   verifier agree on whether the MAC verifies.
//! - `verify_and_decipher` with the same keys (both directions, several
//!   COUNTs) must not panic; what it returns has the PDU's length less the
//!   header and a COUNT that ends in the PDU's sequence number.

#![no_main]

#[path = "../common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nido_nas::security::{StatelessKeys, split_header, verify_and_decipher};
use nido_nas::wire::Nas5gsMessage;
use nido_nas::{
    Algorithms, Counts, DropReason, Mode, NasSecError, Role, SecurityContext, decode, decode_with,
    fields,
};
use nido_sec::{KAmf, kdf};

struct Fixed {
    kamf: KAmf,
    /// One per algorithm pair of `common::ALGORITHMS` and direction (0, 1).
    stateless: Vec<StatelessKeys>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let kamf = common::kamf();
        let mut stateless = Vec::new();
        for algorithms in common::ALGORITHMS {
            for direction in [0, 1] {
                stateless.push(StatelessKeys {
                    knas_int: kdf::knas_int(&kamf, algorithms.nia).expect("K_NASint"),
                    knas_enc: Some(kdf::knas_enc(&kamf, algorithms.nea).expect("K_NASenc")),
                    algorithms,
                    count: None,
                    direction,
                });
            }
        }
        Fixed { kamf, stateless }
    })
}

/// Re-encodes a decoded message and decodes the encoding again in `mode`.
fn round_trip(message: &Nas5gsMessage, what: &str, mode: Mode) {
    let octets = message
        .encode()
        .unwrap_or_else(|e| panic!("{what}: a decoded message does not encode: {e}\n{message:?}"));
    let again = decode_with(&octets, mode)
        .map(|r| r.message)
        .unwrap_or_else(|e| {
            panic!(
                "{what}: the re-encoding {} does not decode: {e}",
                hex::encode(&octets)
            )
        });
    assert_eq!(
        &again,
        message,
        "{what}: the re-encoding {} decodes to another message",
        hex::encode(&octets)
    );
}

fn decode_checked(pdu: &[u8], what: &str) {
    match decode(pdu) {
        Ok(message) => {
            let _ = fields(&message, pdu);
            // The procedures' typed view must not panic on anything that decodes.
            if let Ok(view) = nido_nas::Inbound::read(&message) {
                let _ = view.name();
            }
            let _ = nido_nas::message_name(&message);
            let _ = message.to_string();
            round_trip(&message, what, Mode::Strict);
            let received = nido_nas::receive(pdu)
                .unwrap_or_else(|e| panic!("{what}: decodes strictly but is not received: {e}"));
            assert!(
                received
                    .dropped
                    .iter()
                    .all(|d| d.reason == DropReason::Unknown && d.offset < pdu.len()),
                "{what}: decodes strictly but drops {:?}",
                received.dropped
            );
        }
        Err(e) => {
            assert!(
                e.offset <= pdu.len(),
                "{what}: error offset {} beyond the {}-octet PDU: {e}",
                e.offset,
                pdu.len()
            );
            let _ = e.to_string();
            // What a receiver keeps of it round-trips as a receiver reads it.
            if let Ok(received) = nido_nas::receive(pdu) {
                assert!(
                    received.dropped.iter().all(|d| d.offset < pdu.len()),
                    "{what}: {:?}",
                    received.dropped
                );
                round_trip(&received.message, what, Mode::Receiver);
            }
        }
    }
}

fn receive_count(role: Role, counts: Counts) -> Option<u32> {
    match role {
        Role::Ue => counts.downlink,
        Role::Network => counts.uplink,
    }
}

fn send_count(role: Role, counts: Counts) -> Option<u32> {
    match role {
        Role::Ue => counts.uplink,
        Role::Network => counts.downlink,
    }
}

fn stateless_keys(algorithms: Algorithms, direction: u8) -> &'static StatelessKeys {
    fixed()
        .stateless
        .iter()
        .find(|k| k.algorithms == algorithms && k.direction == direction)
        .expect("keys of every pair and direction")
}

fn unprotect_checked(pdu: &[u8], algorithms: Algorithms, role: Role) {
    let Ok(mut context) = SecurityContext::new(&fixed().kamf, algorithms, 0, role) else {
        panic!("no context for {algorithms:?}");
    };
    let before = context.counts();
    let result = context.unprotect(pdu);
    let after = context.counts();
    let what = format!("unprotect {algorithms:?} {role:?}");
    assert_eq!(
        send_count(role, after),
        send_count(role, before),
        "{what}: the send COUNT moved"
    );

    // The stateless verifier at the COUNT a fresh context estimates (overflow 0, the SN).
    let direction = match role {
        Role::Ue => 1,
        Role::Network => 0,
    };
    let stateless = verify_and_decipher(pdu, stateless_keys(algorithms, direction));

    match &result {
        Ok(verified) => {
            assert_eq!(
                receive_count(role, after),
                Some(verified.count + 1),
                "{what}: receive COUNT after accepting COUNT {}",
                verified.count
            );
            let (sht, _, _) = split_header(pdu).expect("an accepted PDU has a header");
            assert_eq!(
                verified.ciphered,
                matches!(sht, 2 | 4),
                "{what}: ciphered flag"
            );
            // The context decodes the plaintext as oxirush does, which keeps
            // IEs a receiver refuses (an unknown comprehension-required IE,
            // TS 24.007 §11.2.5): the accepted message must encode, and the
            // plaintext as a receiver reads it must round-trip.
            if let Err(e) = verified.message.encode() {
                panic!("{what}: an accepted message does not encode: {e}");
            }
            if let Ok((plain, _)) = &stateless
                && let Ok(received) = nido_nas::receive(plain)
            {
                round_trip(
                    &received.message,
                    &format!("{what}: accepted message as received"),
                    Mode::Receiver,
                );
            }
            match &stateless {
                Ok((_, count)) => assert_eq!(*count, verified.count, "{what}: stateless COUNT"),
                Err(e) => panic!(
                    "{what}: the context accepted COUNT {} but the stateless verifier says {e}",
                    verified.count
                ),
            }
            if algorithms.nia != 0 {
                let again = context.unprotect(pdu);
                assert!(
                    matches!(again, Err(NasSecError::Replay { .. })),
                    "{what}: the same PDU a second time is not a replay: {again:?}"
                );
                assert_eq!(context.counts(), after, "{what}: a replay moved the COUNTs");
            }
        }
        Err(NasSecError::AuthenticButInvalid { .. }) => {
            assert!(
                receive_count(role, after) > receive_count(role, before),
                "{what}: an authentic PDU must use its COUNT"
            );
            assert!(
                stateless.is_ok(),
                "{what}: authentic for the context, not for the stateless verifier: {stateless:?}"
            );
        }
        Err(e) => {
            assert_eq!(after, before, "{what}: refused ({e}) but the COUNTs moved");
            let _ = e.gmm_cause();
            if algorithms.nia != 0 {
                assert_eq!(
                    matches!(e, NasSecError::MacFailure),
                    matches!(stateless, Err(NasSecError::MacFailure)),
                    "{what}: the context says {e}, the stateless verifier {stateless:?}"
                );
            }
        }
    }
}

fn stateless_checked(pdu: &[u8]) {
    let Ok((_, _, sn)) = split_header(pdu) else {
        return;
    };
    for keys in &fixed().stateless {
        for count in [
            None,
            Some(0x0001_0000 | u32::from(sn)),
            Some(u32::from(sn) ^ 0x01),
        ] {
            let keys = StatelessKeys {
                knas_int: keys.knas_int.clone(),
                knas_enc: keys.knas_enc.clone(),
                algorithms: keys.algorithms,
                count,
                direction: keys.direction,
            };
            match verify_and_decipher(pdu, &keys) {
                Ok((plain, count)) => {
                    assert_eq!(plain.len(), pdu.len() - 7, "stateless: plain length");
                    assert_eq!(count & 0xff, u32::from(sn), "stateless: COUNT and SN");
                    if keys.algorithms.nia == 0 {
                        decode_checked(&plain, "stateless NIA0: plain octets");
                    }
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
}

fuzz_target!(|pdu: &[u8]| {
    decode_checked(pdu, "decode");
    for algorithms in common::ALGORITHMS {
        for role in [Role::Ue, Role::Network] {
            unprotect_checked(pdu, algorithms, role);
        }
    }
    stateless_checked(pdu);
});
