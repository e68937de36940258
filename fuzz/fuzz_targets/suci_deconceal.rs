//! The input is a SUCI scheme output (ephemeral public key || ciphertext ||
//! MAC tag), as an SIDF receives it from any UE.
//!
//! - `HomeNetworkKey::deconceal` with the profile A and profile B keys of
//!   TS 33.501 C.4 must not panic, must refuse with a length, public key or
//!   MAC error (never a backend error), and what it accepts has the length of
//!   the ciphertext.
//! - `Sidf::deconceal` with the first two octets as scheme and key id.
//! - The input as a scheme input: concealed with the fixed ephemeral keys, it
//!   de-conceals to itself.
//! - The input as a home network public key (its first 32 octets for A, 33 or 65 for B):
//!   concealing with it succeeds or refuses the key, and never panics.

#![no_main]

#[path = "../common.rs"]
mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nido_sec::SecError;
use nido_sec::suci::{HomeNetworkKey, HomeNetworkPublicKey, MAC_TAG_LEN, Profile, Sidf};

struct Fixed {
    keys: [HomeNetworkKey; 2],
    sidf: Sidf,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let make = |profile, private| {
            HomeNetworkKey::from_private(profile, 1, &common::private_key(private))
                .expect("C.4 key")
        };
        let mut sidf = Sidf::new();
        sidf.insert(make(Profile::A, common::SUCI_A_PRIVATE));
        sidf.insert(make(Profile::B, common::SUCI_B_PRIVATE));
        Fixed {
            keys: [
                make(Profile::A, common::SUCI_A_PRIVATE),
                make(Profile::B, common::SUCI_B_PRIVATE),
            ],
            sidf,
        }
    })
}

fn ephemeral(profile: Profile) -> &'static str {
    match profile {
        Profile::A => common::SUCI_A_EPHEMERAL,
        Profile::B => common::SUCI_B_EPHEMERAL,
    }
}

fuzz_target!(|data: &[u8]| {
    let fixed = fixed();
    for key in &fixed.keys {
        let profile = key.profile();
        match key.deconceal(data) {
            Ok(plain) => assert_eq!(
                plain.len(),
                data.len() - profile.ephemeral_len() - MAC_TAG_LEN,
                "{profile:?}: de-concealed length"
            ),
            Err(
                SecError::Length { .. } | SecError::PublicKey { .. } | SecError::SuciMacFailure,
            ) => {}
            Err(e) => panic!("{profile:?}: unexpected refusal of a scheme output: {e:?}"),
        }

        // The input as a scheme input, with the worked example's ephemeral key.
        let public = key.public_key();
        let eph = common::private_key(ephemeral(profile));
        let output = public
            .conceal_with_ephemeral(&eph, data)
            .expect("conceal with a valid key");
        assert_eq!(
            output.len(),
            profile.ephemeral_len() + data.len() + MAC_TAG_LEN
        );
        let back = key
            .deconceal(&output)
            .expect("a concealed input de-conceals");
        assert_eq!(
            &back[..],
            data,
            "{profile:?}: conceal/de-conceal round trip"
        );

        // The input as a home network public key: 32 octets (A), compressed
        // or uncompressed SEC1 (B).
        let lens: &[usize] = match profile {
            Profile::A => &[32],
            Profile::B => &[33, 65],
        };
        for &len in lens.iter().filter(|&&len| data.len() >= len) {
            let forged = HomeNetworkPublicKey {
                key_id: 1,
                profile,
                octets: data[..len].to_vec(),
            };
            match forged.conceal_with_ephemeral(&eph, &data[len..]) {
                Ok(out) => assert_eq!(
                    out.len(),
                    profile.ephemeral_len() + data.len() - len + MAC_TAG_LEN
                ),
                Err(SecError::PublicKey { .. }) => {}
                Err(e) => panic!("{profile:?}: unexpected refusal of a public key: {e:?}"),
            }
        }
    }
    if let [scheme, key_id, output @ ..] = data {
        let _ = fixed.sidf.deconceal(*scheme, *key_id, output);
    }
});
