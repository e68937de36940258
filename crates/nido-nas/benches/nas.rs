//! Benchmarks of nido-nas's per-message paths: decoding, encoding and the
//! field view of a REGISTRATION REQUEST and of an UL NAS TRANSPORT, the
//! decoding error path, protecting and unprotecting an UL NAS TRANSPORT with
//! 50 octets of CIoT user data through a [`SecurityContext`] (NIA2/NEA2,
//! nido's choice, and NIA1/NEA1, NIA3/NEA3), and the stateless
//! `verify_and_decipher`.
//!
//! Every measured unprotect is a real verification: the setup protects PDUs
//! in order with the UE's context, and the AMF's context receives each of
//! them once, in the same order. `cargo bench -p nido-nas`.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use nido_nas::build::{self, ImsiSuciParts};
use nido_nas::security::{StatelessKeys, verify_and_decipher};
use nido_nas::wire::Nas5gsMessage;
use nido_nas::{Algorithms, Protection, Role, SecurityContext, decode, fields};
use nido_sec::{KAmf, kdf};

/// REGISTRATION REQUEST of pycrate's tests (`shared/vectors/nas_examples.json`,
/// "pycrate-5gmm-reg-req"): initial registration, null-scheme SUCI.
const REGISTRATION_REQUEST: &str = "7e004179000d0100f1100000000022222222222e02e0e0";

/// Profile A scheme output of TS 33.501 C.4.3, for a concealed SUCI.
const SUCI_A_OUTPUT: &str =
    "b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd9e730ef3fa87";

/// Octets of CIoT user data in the UL NAS TRANSPORT.
const CIOT_LEN: usize = 50;

/// The uplink COUNT after which the benchmark starts a fresh pair of
/// contexts, far below exhaustion (2^24).
const COUNT_LIMIT: u32 = 1 << 23;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn kamf() -> KAmf {
    KAmf::new([0x5a; 32])
}

fn context(algorithms: Algorithms, role: Role) -> SecurityContext {
    SecurityContext::new(&kamf(), algorithms, 0, role).expect("context")
}

fn ul_ciot() -> Nas5gsMessage {
    let data: Vec<u8> = (0..CIOT_LEN as u8).collect();
    build::ul_nas_transport_ciot_data(1, &data).expect("UL NAS TRANSPORT")
}

fn codec(c: &mut Criterion) {
    let pycrate = hex::decode(REGISTRATION_REQUEST).expect("hex");
    // The REGISTRATION REQUEST nido's UE sends: profile A SUCI, 5GMM capability.
    let built = build::registration_request_initial(
        &ImsiSuciParts {
            mcc: "001".into(),
            mnc: "01".into(),
            routing_indicator: "0".into(),
            protection_scheme_id: 1,
            home_network_public_key_id: 1,
            scheme_output: hex::decode(SUCI_A_OUTPUT).expect("hex"),
        },
        true,
    )
    .expect("REGISTRATION REQUEST")
    .encode()
    .expect("encodes");
    let ciot = ul_ciot().encode().expect("encodes");
    // pdu.rs's test PDU: a REGISTRATION REQUEST whose 5G-GUTI is one octet short.
    let short_guti = hex::decode("7e004179000af202f839cafe001122332e02a020").expect("hex");

    let mut g = c.benchmark_group("nas_codec");
    for (name, pdu) in [
        ("registration_request_pycrate", &pycrate),
        ("registration_request_suci_a", &built),
        ("ul_nas_transport_ciot_50B", &ciot),
    ] {
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(pdu)).expect("decodes"))
        });
        let message = decode(pdu).expect("decodes");
        assert_eq!(
            &message.encode().expect("encodes"),
            pdu,
            "{name} re-encodes byte for byte"
        );
        g.bench_function(format!("fields/{name}"), |b| {
            b.iter(|| fields(black_box(&message), black_box(pdu)))
        });
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(&message).encode().expect("encodes"))
        });
    }
    // The error path locates the failing IE: a lenient decode and the field view.
    g.bench_function("decode_error/registration_request_short_guti", |b| {
        b.iter(|| decode(black_box(&short_guti)).expect_err("malformed"))
    });
    g.finish();
}

/// A UE context that protects and the AMF context that receives what it protected.
struct Link {
    algorithms: Algorithms,
    ue: SecurityContext,
    network: Rc<RefCell<SecurityContext>>,
}

impl Link {
    fn new(algorithms: Algorithms) -> Self {
        Self {
            algorithms,
            ue: context(algorithms, Role::Ue),
            network: Rc::new(RefCell::new(context(algorithms, Role::Network))),
        }
    }

    /// The next PDU, with the receiving context that is to verify it.
    fn next(&mut self, message: &Nas5gsMessage) -> (Rc<RefCell<SecurityContext>>, Vec<u8>) {
        if self.ue.counts().uplink.is_none_or(|c| c >= COUNT_LIMIT) {
            // Inputs already handed out keep the receiving context they were made for.
            *self = Self::new(self.algorithms);
        }
        let pdu = self
            .ue
            .protect(message, Protection::IntegrityCiphered)
            .expect("protects");
        (Rc::clone(&self.network), pdu)
    }
}

fn security(c: &mut Criterion) {
    let message = ul_ciot();
    let mut g = c.benchmark_group("nas_security");
    for (algorithms, name) in [
        (Algorithms::NIA2_NEA2, "nia2_nea2"),
        (Algorithms { nia: 1, nea: 1 }, "nia1_nea1"),
        (Algorithms { nia: 3, nea: 3 }, "nia3_nea3"),
    ] {
        // A fresh context per iteration (its key derivation is setup, not
        // measured), so the COUNT never runs out however many iterations
        // criterion picks.
        g.bench_function(format!("protect_ul_ciot_50B/{name}"), |b| {
            b.iter_batched_ref(
                || context(algorithms, Role::Ue),
                |ue| {
                    ue.protect(black_box(&message), Protection::IntegrityCiphered)
                        .expect("protects")
                },
                BatchSize::SmallInput,
            )
        });

        let mut link = Link::new(algorithms);
        g.bench_function(format!("unprotect_ul_ciot_50B/{name}"), |b| {
            b.iter_batched(
                || link.next(&message),
                |(network, pdu)| {
                    let verified = network
                        .borrow_mut()
                        .unprotect(black_box(&pdu))
                        .expect("verifies in order");
                    // Dropped outside the measurement.
                    (verified, pdu, network)
                },
                BatchSize::SmallInput,
            )
        });

        // The stateless verifier of debugging tools: MAC and deciphering, no decoding.
        let amf_kamf = kamf();
        let keys = StatelessKeys {
            knas_int: kdf::knas_int(&amf_kamf, algorithms.nia).expect("K_NASint"),
            knas_enc: Some(kdf::knas_enc(&amf_kamf, algorithms.nea).expect("K_NASenc")),
            algorithms,
            count: Some(0),
            direction: 0,
        };
        let pdu = context(algorithms, Role::Ue)
            .protect(&message, Protection::IntegrityCiphered)
            .expect("protects");
        g.bench_function(format!("verify_and_decipher_ul_ciot_50B/{name}"), |b| {
            b.iter(|| verify_and_decipher(black_box(&pdu), &keys).expect("verifies"))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec, security
}
criterion_main!(benches);
