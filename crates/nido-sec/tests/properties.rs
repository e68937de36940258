//! Property tests of nido-sec's public API: SUCI conceal/de-conceal round trips and
//! tamper refusal (profiles A and B, fresh keys per case), NEA round trips, NIA's
//! sensitivity to every message bit, and the SQN window never moving backwards.

use nido_sec::algorithms::{AlgInput, nea, nia};
use nido_sec::milenage::IND_BITS;
use nido_sec::suci::{HomeNetworkKey, MAC_TAG_LEN, Profile};
use nido_sec::{SecError, Sqn, SqnVerdict, SqnWindow};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn profile() -> impl Strategy<Value = Profile> {
    prop_oneof![Just(Profile::A), Just(Profile::B)]
}

/// COUNT, BEARER (5 bits), DIRECTION (1 bit) and an algorithm 1, 2 or 3.
fn alg_input() -> impl Strategy<Value = AlgInput> {
    (1u8..=3, any::<u32>(), 0u8..32, 0u8..2).prop_map(|(alg, count, bearer, direction)| AlgInput {
        alg,
        count,
        bearer,
        direction,
    })
}

/// A bit string of `min..=max` bits: its length and the octets that hold it (the
/// unused trailing bits of the last octet are random too).
fn bit_string(min: u64, max: u64) -> impl Strategy<Value = (u64, Vec<u8>)> {
    (min..=max).prop_flat_map(|bits| {
        let octets = usize::try_from(bits.div_ceil(8)).expect("length");
        (Just(bits), vec(any::<u8>(), octets))
    })
}

fn first_bits_equal(a: &[u8], b: &[u8], bits: u64) -> bool {
    let whole = usize::try_from(bits / 8).expect("length");
    let rest = bits % 8;
    let mask = if rest == 0 { 0 } else { 0xffu8 << (8 - rest) };
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) & mask == 0)
}

fn flip(data: &mut [u8], bit: usize) {
    data[bit / 8] ^= 0x80 >> (bit % 8);
}

/// A SQN around the start of the sequence, so that replays, other IND slots and
/// jumps beyond Δ all occur; now and then any 48-bit SQN.
fn sqn() -> impl Strategy<Value = Sqn> {
    prop_oneof![
        4 => (0u64..48, 0u64..1 << IND_BITS)
            .prop_map(|(seq, ind)| Sqn::new((seq << IND_BITS) | ind).expect("48 bits")),
        1 => (0..=Sqn::MAX).prop_map(|v| Sqn::new(v).expect("48 bits")),
    ]
}

proptest! {
    // Key generation costs: a modest number of cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn suci_conceal_deconceal_round_trip(
        profile in profile(),
        key_id in any::<u8>(),
        input in vec(any::<u8>(), 0..64),
    ) {
        let hn = HomeNetworkKey::generate(profile, key_id).unwrap();
        let public = hn.public_key();
        prop_assert_eq!(public.key_id, key_id);
        prop_assert_eq!(public.profile, profile);

        let out = public.conceal(&input).unwrap();
        prop_assert_eq!(out.len(), profile.ephemeral_len() + input.len() + MAC_TAG_LEN);
        prop_assert_eq!(&*hn.deconceal(&out).unwrap(), input.as_slice());

        // A fresh ephemeral key each time: another output, the same input back.
        let again = public.conceal(&input).unwrap();
        prop_assert_ne!(&again, &out);
        prop_assert_eq!(&*hn.deconceal(&again).unwrap(), input.as_slice());

        // The exported private key is the same key.
        let private = hn.private_octets().unwrap();
        let restored = HomeNetworkKey::from_private(profile, key_id, &private).unwrap();
        prop_assert_eq!(restored.public_key(), public);
        prop_assert_eq!(&*restored.deconceal(&out).unwrap(), input.as_slice());
    }

    #[test]
    fn suci_deconceal_rejects_every_single_bit_flip(
        profile in profile(),
        input in vec(any::<u8>(), 0..24),
    ) {
        let hn = HomeNetworkKey::generate(profile, 0).unwrap();
        let out = hn.public_key().conceal(&input).unwrap();
        for bit in 0..8 * out.len() {
            let mut bad = out.clone();
            flip(&mut bad, bit);
            let verdict = hn.deconceal(&bad).map(|p| p.to_vec());
            if bit / 8 < profile.ephemeral_len() {
                // A flipped ephemeral key may not even be a valid public key.
                prop_assert!(
                    matches!(verdict, Err(SecError::SuciMacFailure | SecError::PublicKey { .. })),
                    "ephemeral key bit {}: {:?}", bit, verdict
                );
            } else {
                prop_assert_eq!(verdict, Err(SecError::SuciMacFailure), "bit {}", bit);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nea_cipher_then_decipher_restores_the_bits(
        input in alg_input(),
        key in any::<[u8; 16]>(),
        (bits, data) in bit_string(0, 4096),
    ) {
        let mut buf = data.clone();
        nea(input, &key, &mut buf, bits).unwrap();
        if bits >= 128 {
            // Ciphering changes the data (128 equal bits: chance 2^-128).
            prop_assert!(!first_bits_equal(&buf, &data, bits));
        }
        nea(input, &key, &mut buf, bits).unwrap();
        prop_assert!(first_bits_equal(&buf, &data, bits));
        prop_assert_eq!(buf.len(), data.len());
    }

    #[test]
    fn nia_mac_changes_when_any_message_bit_flips(
        input in alg_input(),
        key in any::<[u8; 16]>(),
        (bits, message) in bit_string(1, 4096),
        bit in any::<Index>(),
    ) {
        let mac = nia(input, &key, &message, bits).unwrap();
        let bit = bit.index(usize::try_from(bits).unwrap());
        let mut flipped = message.clone();
        flip(&mut flipped, bit);
        prop_assert_ne!(nia(input, &key, &flipped, bits).unwrap(), mac, "bit {} of {}", bit, bits);
    }

    #[test]
    fn sqn_window_never_moves_backwards(
        start in prop::array::uniform32(0u64..48),
        delta in prop_oneof![Just(1u64 << 28), 1u64..8],
        sqns in vec(sqn(), 0..200),
    ) {
        let mut window = SqnWindow::from_seqs(start, delta);
        for sqn in sqns {
            let before = window.clone();
            let verdict = window.check(sqn);
            let result = window.accept(sqn);
            prop_assert!(window.sqn_ms() >= before.sqn_ms(), "sqn_ms went back");
            prop_assert!(
                window.seqs().iter().zip(before.seqs()).all(|(now, then)| now >= then),
                "a SEQ slot went back"
            );
            match result {
                Ok(()) => {
                    prop_assert_eq!(verdict, SqnVerdict::Fresh);
                    prop_assert_eq!(window.seqs()[usize::from(sqn.ind())], sqn.seq());
                    prop_assert!(window.sqn_ms() >= sqn);
                    // Accepted once, refused as a replay ever after.
                    let replay = window.check(sqn);
                    prop_assert_eq!(replay, SqnVerdict::Stale { sqn_ms: window.sqn_ms() });
                }
                Err(stale) => {
                    prop_assert_eq!(stale, SqnVerdict::Stale { sqn_ms: before.sqn_ms() });
                    prop_assert_eq!(verdict, stale);
                    prop_assert_eq!(&window, &before, "a refused SQN changed the window");
                }
            }
        }
    }
}
