//! Writes the seed corpora of the fuzz targets into `fuzz/seeds/<target>/`:
//!
//! - `nas_decode_unprotect`: every PDU of `shared/vectors/nas_examples.json`
//!   (and its inner plain message where it has one), and messages of nido's
//!   builders, plain and protected with the fuzzed contexts' fixed K_AMF so
//!   that they verify there;
//! - `suci_deconceal`: the scheme outputs of TS 33.501 C.4.3 and C.4.4 and
//!   longer ones concealed with the same keys.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds -- ../../shared/vectors/nas_examples.json`.
//! The files are committed; running it again rewrites them identically
//! (the SUCI seeds use the worked examples' ephemeral keys).

#[path = "common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use nido_nas::build::{self, KeySetIdentifier};
use nido_nas::wire::Nas5gsMessage;
use nido_nas::{Protection, Role, SecurityContext};
use nido_sec::suci::{HomeNetworkKey, Profile};

fn write(dir: &Path, name: &str, octets: &[u8]) {
    let path = dir.join(format!("{name}.bin"));
    fs::write(&path, octets).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("{:>4} octets  {}", octets.len(), path.display());
}

fn built(name: &str, message: Result<Nas5gsMessage, build::BuildError>) -> (String, Nas5gsMessage) {
    (
        name.to_owned(),
        message.unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

fn nas_seeds(dir: &Path, examples: &Path) {
    let text =
        fs::read_to_string(examples).unwrap_or_else(|e| panic!("{}: {e}", examples.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("nas_examples.json is JSON");
    for example in json["examples"].as_array().expect("examples") {
        let id = example["id"].as_str().expect("id");
        write(
            dir,
            id,
            &hex::decode(example["hex"].as_str().expect("hex")).expect("hex"),
        );
        if let Some(inner) = example.get("inner_hex").and_then(|h| h.as_str()) {
            write(
                dir,
                &format!("{id}-inner"),
                &hex::decode(inner).expect("inner hex"),
            );
        }
    }

    let ciot: Vec<u8> = (0..50).collect();
    let suci = build::ImsiSuciParts {
        mcc: "208".into(),
        mnc: "93".into(),
        routing_indicator: "0".into(),
        protection_scheme_id: 1,
        home_network_public_key_id: 1,
        scheme_output: common::unhex(common::SUCI_A_OUTPUT),
    };
    let uplink = [
        built(
            "built-ul-nas-transport-ciot",
            build::ul_nas_transport_ciot_data(1, &ciot),
        ),
        built(
            "built-registration-request-initial",
            build::registration_request_initial(&suci, true),
        ),
        built(
            "built-registration-request-onboarding",
            build::registration_request_snpn_onboarding("dcs.example.org", true),
        ),
        built(
            "built-control-plane-service-request",
            build::control_plane_service_request(
                KeySetIdentifier::Native(0),
                1,
                build::CiotSmallDataDownlinkDataExpected::NoFurtherUplinkOrDownlink,
                &ciot[..20],
            ),
        ),
        built(
            "built-security-mode-complete",
            build::security_mode_complete(Some("3530014100002100"), None),
        ),
        (
            String::from("built-registration-complete"),
            build::registration_complete(),
        ),
    ];
    let downlink = [
        built(
            "built-dl-nas-transport-ciot",
            build::dl_nas_transport_ciot_data(1, &ciot),
        ),
        built(
            "built-registration-accept",
            build::registration_accept(&build::RegistrationAcceptParams {
                guti: None,
                tai_list: None,
                allowed_nssai: vec![build::Snssai {
                    sst: 1,
                    sd: Some([0, 0, 1]),
                }],
                t3512_seconds: Some(3600),
                cp_ciot: true,
            }),
        ),
        built(
            "built-authentication-request",
            build::authentication_request_5g_aka(
                KeySetIdentifier::Native(0),
                &[0x23; 16],
                &[0x55; 16],
            ),
        ),
    ];
    for (name, message) in uplink.iter().chain(&downlink) {
        write(
            dir,
            name,
            &message.encode().unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }

    let kamf = common::kamf();
    for algorithms in common::ALGORITHMS {
        let tag = format!("nia{}-nea{}", algorithms.nia, algorithms.nea);
        let context = |role| SecurityContext::new(&kamf, algorithms, 0, role).expect("context");
        let (mut ue, mut network) = (context(Role::Ue), context(Role::Network));
        // SECURITY MODE COMPLETE goes with a new context (type 4), the others
        // alternately integrity protected (type 1) and ciphered too (type 2).
        let protection =
            |i: usize, name: &str| match (name.contains("security-mode-complete"), i % 2) {
                (true, _) => Protection::IntegrityCipheredNewContext,
                (false, 0) => Protection::IntegrityCiphered,
                (false, _) => Protection::Integrity,
            };
        for (i, (name, message)) in uplink.iter().enumerate() {
            let pdu = ue
                .protect(message, protection(i, name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            write(dir, &format!("{name}-{tag}"), &pdu);
        }
        for (i, (name, message)) in downlink.iter().enumerate() {
            let pdu = network
                .protect(message, protection(i, name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            write(dir, &format!("{name}-{tag}"), &pdu);
        }
        let (name, initial) = &uplink[1];
        let pdu = ue
            .protect_initial(initial)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        write(dir, &format!("{name}-protect-initial-{tag}"), &pdu);
    }
}

fn suci_seeds(dir: &Path) {
    write(dir, "c43-profile-a", &common::unhex(common::SUCI_A_OUTPUT));
    write(dir, "c44-profile-b", &common::unhex(common::SUCI_B_OUTPUT));
    for (profile, private, eph, name) in [
        (
            Profile::A,
            common::SUCI_A_PRIVATE,
            common::SUCI_A_EPHEMERAL,
            "profile-a",
        ),
        (
            Profile::B,
            common::SUCI_B_PRIVATE,
            common::SUCI_B_EPHEMERAL,
            "profile-b",
        ),
    ] {
        let key =
            HomeNetworkKey::from_private(profile, 1, &common::private_key(private)).expect("key");
        let eph = common::private_key(eph);
        for (input_name, input) in [
            ("nai-username", &b"verylongusername1"[..]),
            ("empty", &[][..]),
        ] {
            let out = key
                .public_key()
                .conceal_with_ephemeral(&eph, input)
                .expect("conceal");
            write(dir, &format!("{name}-{input_name}"), &out);
        }
    }
}

fn main() {
    let examples = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../../shared/vectors/nas_examples.json"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let nas = root.join("nas_decode_unprotect");
    let suci = root.join("suci_deconceal");
    for dir in [&nas, &suci] {
        fs::create_dir_all(dir).expect("seed directory");
    }
    nas_seeds(&nas, &examples);
    suci_seeds(&suci);
}
