//! Fixed keys the fuzz targets and the seed generator share.
//!
//! K_AMF is that of the chain the "constructed" examples of
//! `shared/vectors/nas_examples.json` were protected with (TS 35.208 set 19's
//! CK/IK and SQN xor AK, as RFC 5448 case 1 in `kdf_5g.json` has them, SNN
//! 5G:mnc093.mcc208.3gppnetwork.org, SUPI imsi-208930000000001; see
//! crates/nido-nas/tests/nas_examples.rs), so those published PDUs verify
//! under the fuzzed contexts and mutations of their unprotected header octets
//! reach the code after the MAC check. The SUCI keys are the home network
//! keys of TS 33.501 Annex C.4.3 and C.4.4.

#![allow(dead_code)]

use nido_nas::Algorithms;
use nido_sec::{Ck, Ik, KAmf, PrivateKey32, Supi, kdf};

const CK: &str = "5349fbe098649f948f5d2e973a81c00f";
const IK: &str = "9744871ad32bf9bbd1dd5ce54e3e2e5a";
const SQN_XOR_AK: &str = "bb52e91c747a";
const SNN: &str = "5G:mnc093.mcc208.3gppnetwork.org";
const SUPI: &str = "imsi-208930000000001";

/// Every algorithm pair a context is fuzzed with: NIA0/NEA0 checks no MAC,
/// so arbitrary octets reach deciphering, decoding and the initial message
/// container; the others stop at the MAC unless the input is a seed.
pub const ALGORITHMS: [Algorithms; 4] = [
    Algorithms { nia: 2, nea: 2 },
    Algorithms { nia: 1, nea: 1 },
    Algorithms { nia: 3, nea: 3 },
    Algorithms { nia: 0, nea: 0 },
];

/// Profile A home network private key (TS 33.501 C.4.3).
pub const SUCI_A_PRIVATE: &str = "c53c22208b61860b06c62e5406a7b330c2b577aa5558981510d128247d38bd1d";
/// Profile A ephemeral private key of the worked example.
pub const SUCI_A_EPHEMERAL: &str =
    "c80949f13ebe61af4ebdbd293ea4f942696b9e815d7e8f0096bbf6ed7de62256";
/// Profile A scheme output of the worked example.
pub const SUCI_A_OUTPUT: &str =
    "b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd9e730ef3fa87";
/// Profile B home network private key (TS 33.501 C.4.4).
pub const SUCI_B_PRIVATE: &str = "f1ab1074477ebcc7f554ea1c5fc368b1616730155e0041ac447d6301975fecda";
/// Profile B ephemeral private key of the worked example.
pub const SUCI_B_EPHEMERAL: &str =
    "99798858a1dc6a2c68637149a4b1dbfd1fdff5addd62a2142f06699ed7602529";
/// Profile B scheme output of the worked example.
pub const SUCI_B_OUTPUT: &str =
    "039aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d146a33fc2716ac7dae96aa30a4d";

/// Decodes a hex constant of this file.
pub fn unhex(h: &str) -> Vec<u8> {
    hex::decode(h).expect("hex constant")
}

/// A 32-octet private key from a hex constant of this file.
pub fn private_key(h: &str) -> PrivateKey32 {
    PrivateKey32::from_slice(&unhex(h)).expect("32-octet key")
}

/// The fixed K_AMF.
pub fn kamf() -> KAmf {
    let ck = Ck::from_slice(&unhex(CK)).expect("CK");
    let ik = Ik::from_slice(&unhex(IK)).expect("IK");
    let sqn_xor_ak: [u8; 6] = unhex(SQN_XOR_AK).try_into().expect("SQN xor AK");
    let kausf = kdf::kausf_5g_aka(&ck, &ik, SNN.as_bytes(), &sqn_xor_ak).expect("K_AUSF");
    let kseaf = kdf::kseaf(&kausf, SNN.as_bytes()).expect("K_SEAF");
    kdf::kamf(&kseaf, &Supi::parse(SUPI).expect("SUPI"), &[0, 0]).expect("K_AMF")
}
