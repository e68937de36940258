//! Benchmarks of nido-sec's hot paths: MILENAGE (per function and as the
//! home network and the USIM use it), the 5G key derivations of a 5G-AKA run,
//! the NEA/NIA algorithms on a 100-octet message, and SUCI concealment and
//! de-concealment (ECIES profiles A and B on aws-lc-rs).
//!
//! Short measurement windows keep the suite to a few minutes on 2 cores:
//! `cargo bench -p nido-sec`. Inputs are TS 35.207 test set 1 (MILENAGE) and
//! the worked examples of TS 33.501 Annex C.4 (SUCI).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nido_sec::algorithms::{AlgInput, nea, nia};
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_sec::{Amf, Ck, Ik, K, Milenage, Opc, PrivateKey32, Sqn, Supi, kdf};
use oxirush_security::Rand;
use oxirush_security::milenage as ox;

/// Decodes a hex constant of this file.
fn unhex<const N: usize>(h: &str) -> [u8; N] {
    hex::decode(h)
        .expect("hex constant")
        .try_into()
        .expect("length of the constant")
}

// TS 35.207 test set 1.
const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OPC_HEX: &str = "cd63cb71954a9f4e48a5994e37a02baf";
const RAND_HEX: &str = "23553cbe9637a89d218ae64dae47bf35";
const SQN_HEX: &str = "ff9bb4d0b607";
const AMF_HEX: &str = "b9b9";

const SNN: &[u8] = b"5G:mnc001.mcc001.3gppnetwork.org";

// TS 33.501 C.4.3 (profile A) and C.4.4 (profile B).
const SUCI_A_PRIVATE: &str = "c53c22208b61860b06c62e5406a7b330c2b577aa5558981510d128247d38bd1d";
const SUCI_A_OUTPUT: &str =
    "b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd9e730ef3fa87";
const SUCI_B_PRIVATE: &str = "f1ab1074477ebcc7f554ea1c5fc368b1616730155e0041ac447d6301975fecda";
const SUCI_B_OUTPUT: &str =
    "039aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d146a33fc2716ac7dae96aa30a4d";
/// The scheme input of both worked examples: MSIN 001002086 in BCD.
const MSIN_BCD: [u8; 5] = [0x00, 0x01, 0x20, 0x80, 0xf6];

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn milenage(c: &mut Criterion) {
    let k = K::new(unhex(K_HEX));
    let opc = Opc::new(unhex(OPC_HEX));
    let rand: [u8; 16] = unhex(RAND_HEX);
    let sqn = Sqn::from_octets(unhex(SQN_HEX));
    let amf = Amf(unhex(AMF_HEX));
    let m = Milenage::new(&k, &opc);

    // The single functions, on oxirush-security's MILENAGE that nido-sec wraps.
    let inner = ox::Milenage::new(&ox::K::new(k.expose()), &ox::Opc::new(opc.expose()));
    let ox_rand = Rand::new(&rand);
    let ox_sqn = ox::Sqn::new(&sqn.octets());
    let ox_amf = ox::Amf::new(&amf.0);

    let mut g = c.benchmark_group("milenage");
    g.bench_function("f1", |b| {
        b.iter(|| inner.f1(black_box(&ox_rand), &ox_sqn, &ox_amf))
    });
    g.bench_function("f1star", |b| {
        b.iter(|| inner.f1_star(black_box(&ox_rand), &ox_sqn, &ox_amf))
    });
    g.bench_function("f2345", |b| b.iter(|| inner.f2345(black_box(&ox_rand))));
    g.bench_function("outputs_all_f", |b| {
        b.iter(|| m.outputs(black_box(&rand), sqn, amf))
    });
    g.bench_function("vector", |b| {
        b.iter(|| m.vector(black_box(&rand), sqn, amf))
    });
    let autn = m.vector(&rand, sqn, amf).autn;
    g.bench_function("check_autn", |b| {
        b.iter(|| {
            m.check_autn(black_box(&rand), black_box(&autn))
                .expect("AUTN verifies")
        })
    });
    g.finish();
}

fn key_derivations(c: &mut Criterion) {
    let m = Milenage::new(&K::new(unhex(K_HEX)), &Opc::new(unhex(OPC_HEX)));
    let rand: [u8; 16] = unhex(RAND_HEX);
    let av = m.vector(&rand, Sqn::from_octets(unhex(SQN_HEX)), Amf::FIVE_G);
    let (ck, ik): (Ck, Ik) = (av.ck.clone(), av.ik.clone());
    let sqn_xor_ak: [u8; 6] = av.autn[..6].try_into().expect("6 octets");
    let supi = Supi::parse("imsi-001010000000001").expect("SUPI");
    let kausf = kdf::kausf_5g_aka(&ck, &ik, SNN, &sqn_xor_ak).expect("K_AUSF");
    let kseaf = kdf::kseaf(&kausf, SNN).expect("K_SEAF");
    let kamf = kdf::kamf(&kseaf, &supi, &[0, 0]).expect("K_AMF");

    let mut g = c.benchmark_group("kdf");
    g.bench_function("res_star", |b| {
        b.iter(|| kdf::res_star(black_box(&ck), &ik, SNN, &rand, &av.xres).expect("RES*"))
    });
    g.bench_function("kausf", |b| {
        b.iter(|| kdf::kausf_5g_aka(black_box(&ck), &ik, SNN, &sqn_xor_ak).expect("K_AUSF"))
    });
    g.bench_function("kseaf", |b| {
        b.iter(|| kdf::kseaf(black_box(&kausf), SNN).expect("K_SEAF"))
    });
    g.bench_function("kamf", |b| {
        b.iter(|| kdf::kamf(black_box(&kseaf), &supi, &[0, 0]).expect("K_AMF"))
    });
    g.bench_function("knas_int_nia2", |b| {
        b.iter(|| kdf::knas_int(black_box(&kamf), 2).expect("K_NASint"))
    });
    g.bench_function("knas_enc_nea2", |b| {
        b.iter(|| kdf::knas_enc(black_box(&kamf), 2).expect("K_NASenc"))
    });
    // What an AMF runs per successful 5G-AKA, from CK/IK to both NAS keys.
    g.bench_function("chain_ck_ik_to_knas", |b| {
        b.iter(|| {
            let res_star = kdf::res_star(black_box(&ck), &ik, SNN, &rand, &av.xres).expect("RES*");
            let kausf = kdf::kausf_5g_aka(&ck, &ik, SNN, &sqn_xor_ak).expect("K_AUSF");
            let kseaf = kdf::kseaf(&kausf, SNN).expect("K_SEAF");
            let kamf = kdf::kamf(&kseaf, &supi, &[0, 0]).expect("K_AMF");
            let int = kdf::knas_int(&kamf, 2).expect("K_NASint");
            let enc = kdf::knas_enc(&kamf, 2).expect("K_NASenc");
            (res_star, int, enc)
        })
    });
    g.finish();
}

fn nas_algorithms(c: &mut Criterion) {
    let key = [0x2b; 16];
    let message: Vec<u8> = (0..100u8).collect();
    let bits = message.len() as u64 * 8;
    let mut g = c.benchmark_group("nas_alg_100B");
    for (alg, name) in [(1u8, "snow3g"), (2, "aes"), (3, "zuc")] {
        let input = AlgInput {
            alg,
            count: 0x0000_0102,
            bearer: 1,
            direction: 0,
        };
        g.bench_function(format!("nia{alg}_{name}"), |b| {
            b.iter(|| nia(black_box(input), &key, black_box(&message), bits).expect("NIA"))
        });
        let mut data = message.clone();
        g.bench_function(format!("nea{alg}_{name}"), |b| {
            b.iter(|| nea(black_box(input), &key, black_box(&mut data), bits).expect("NEA"))
        });
    }
    g.finish();
}

fn suci(c: &mut Criterion) {
    let key = |profile, private| {
        let private = PrivateKey32::new(unhex(private));
        HomeNetworkKey::from_private(profile, 1, &private).expect("C.4 key")
    };
    let a = key(Profile::A, SUCI_A_PRIVATE);
    let b_key = key(Profile::B, SUCI_B_PRIVATE);
    let out_a = hex::decode(SUCI_A_OUTPUT).expect("hex");
    let out_b = hex::decode(SUCI_B_OUTPUT).expect("hex");
    let (pub_a, pub_b) = (a.public_key(), b_key.public_key());

    let mut g = c.benchmark_group("suci");
    g.bench_function("deconceal_profile_a", |b| {
        b.iter(|| a.deconceal(black_box(&out_a)).expect("C.4.3 de-conceals"))
    });
    g.bench_function("deconceal_profile_b", |b| {
        b.iter(|| {
            b_key
                .deconceal(black_box(&out_b))
                .expect("C.4.4 de-conceals")
        })
    });
    g.bench_function("conceal_profile_a", |b| {
        b.iter(|| pub_a.conceal(black_box(&MSIN_BCD)).expect("conceals"))
    });
    g.bench_function("conceal_profile_b", |b| {
        b.iter(|| pub_b.conceal(black_box(&MSIN_BCD)).expect("conceals"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = milenage, key_derivations, nas_algorithms, suci
}
criterion_main!(benches);
