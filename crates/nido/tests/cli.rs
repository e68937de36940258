//! The `nido` binary, run as a user runs it: outputs checked against the
//! vectors in `shared/vectors`, exit codes and error lines checked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

use std::process::{Command, Output};

use serde_json::Value;

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(nido_testkit::vectors_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn nido(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(args)
        .output()
        .unwrap()
}

fn json_ok(args: &[&str]) -> Value {
    let out = nido(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn milenage_matches_every_test_set() {
    let file = load("milenage.json");
    let sets = file["test_sets"].as_array().unwrap();
    for t in sets {
        for (flag, key) in [("--op", "op"), ("--opc", "opc")] {
            let out = json_ok(&[
                "crypto",
                "milenage",
                "--k",
                s(&t["k"]),
                flag,
                s(&t[key]),
                "--rand",
                s(&t["rand"]),
                "--sqn",
                s(&t["sqn"]),
                "--amf",
                s(&t["amf"]),
            ]);
            for field in [
                "opc",
                "f1_mac_a",
                "f1star_mac_s",
                "f2_res",
                "f3_ck",
                "f4_ik",
                "f5_ak",
                "f5star_ak",
            ] {
                assert_eq!(out[field], t[field], "{} {field}", t["id"]);
            }
            assert_eq!(out["autn"], t["autn_derived"], "{}", t["id"]);
        }
    }
    assert_eq!(sets.len() as u64, file["count"].as_u64().unwrap());
}

#[test]
fn uppercase_hex_is_accepted() {
    let t = &load("milenage.json")["test_sets"][0];
    let up = |k: &str| s(&t[k]).to_uppercase();
    let out = json_ok(&[
        "crypto",
        "milenage",
        "--k",
        &up("k"),
        "--opc",
        &up("opc"),
        "--rand",
        &up("rand"),
        "--sqn",
        &up("sqn"),
        "--amf",
        &up("amf"),
    ]);
    assert_eq!(out["f2_res"], t["f2_res"]);
}

#[test]
fn kdf_5g_matches_the_computed_chain() {
    let file = load("kdf_5g.json");
    let v = file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "5g-chain-computed-milenage-01")
        .unwrap();
    let i = &v["inputs"];
    let supi = format!("imsi-{}", s(&i["supi_imsi_string"]));
    let out = json_ok(&[
        "crypto",
        "kdf-5g",
        "--k",
        s(&i["k"]),
        "--opc",
        s(&i["opc"]),
        "--rand",
        s(&i["rand"]),
        "--sqn",
        s(&i["sqn"]),
        "--amf",
        s(&i["amf"]),
        "--snn",
        s(&i["serving_network_name"]),
        "--supi",
        &supi,
        "--abba",
        s(&i["abba"]),
    ]);
    let required = [
        "xres_star",
        "hxres_star",
        "kausf",
        "kseaf",
        "kamf",
        "knas_enc_128_nea1",
        "knas_int_128_nia1",
        "knas_enc_128_nea2",
        "knas_int_128_nia2",
        "knas_enc_128_nea3",
        "knas_int_128_nia3",
        "kgnb_3gpp_access",
    ];
    for key in required {
        assert_eq!(out[key], v["outputs"][key], "{key}");
    }
    // Every other output of the vector that the tool prints matches too.
    let mut compared = 0;
    for (key, value) in v["outputs"].as_object().unwrap() {
        if let Some(got) = out.get(key) {
            assert_eq!(got, value, "{key}");
            compared += 1;
        }
    }
    assert!(compared >= 14, "{compared}");
    assert_eq!(out["autn"], v["milenage"]["autn"]);
    // Plain IMSI digits are the same SUPI.
    let plain = json_ok(&[
        "crypto",
        "kdf-5g",
        "--k",
        s(&i["k"]),
        "--opc",
        s(&i["opc"]),
        "--rand",
        s(&i["rand"]),
        "--sqn",
        s(&i["sqn"]),
        "--amf",
        s(&i["amf"]),
        "--snn",
        s(&i["serving_network_name"]),
        "--supi",
        s(&i["supi_imsi_string"]),
    ]);
    assert_eq!(plain["kamf"], out["kamf"]);
}

fn alg_args<'a>(v: &'a Value, alg: &'a str, data_key: &str) -> Vec<String> {
    let count = s(&v["count"]).to_owned();
    [
        "--alg",
        alg,
        "--key",
        s(&v["key"]),
        "--count",
        &count,
        "--bearer",
        &v["bearer"].to_string(),
        "--direction",
        &v["direction"].to_string(),
        "--length-bits",
        &v["length_bits"].to_string(),
        "--data",
        s(&v[data_key]),
    ]
    .iter()
    .map(|x| (*x).to_owned())
    .collect()
}

fn alg_number(v: &Value) -> &'static str {
    let a = s(&v["algorithm"]);
    if a.contains("EA1") || a.contains("IA1") {
        "1"
    } else if a.contains("EA2") || a.contains("IA2") {
        "2"
    } else {
        "3"
    }
}

fn masked(hex_text: &str, bits: u64) -> String {
    let mut b = hex::decode(hex_text).unwrap();
    if !bits.is_multiple_of(8) {
        let last = b.len() - 1;
        b[last] &= 0xffu8 << (8 - bits % 8);
    }
    hex::encode(b)
}

#[test]
fn nea_and_nia_match_every_vector() {
    for v in load("nas_ciphering.json")["vectors"].as_array().unwrap() {
        let mut args = vec!["crypto".to_owned(), "nea".to_owned()];
        args.extend(alg_args(v, alg_number(v), "plaintext"));
        let out = json_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let bits = v["length_bits"].as_u64().unwrap();
        assert_eq!(
            masked(s(&out["output"]), bits),
            masked(s(&v["ciphertext"]), bits),
            "{}",
            v["id"]
        );
    }
    for v in load("nas_integrity.json")["vectors"].as_array().unwrap() {
        let mut args = vec!["crypto".to_owned(), "nia".to_owned()];
        args.extend(alg_args(v, alg_number(v), "message"));
        let out = json_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out["mac"], v["mac"], "{}", v["id"]);
        // --mac verifies; a wrong MAC is exit code 1 with a clear message.
        args.extend(["--mac".to_owned(), s(&v["mac"]).to_owned()]);
        let ok = json_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(ok["verified"], true);
        let last = args.len() - 1;
        args[last] = "00000000".into();
        let bad = nido(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(bad.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&bad.stderr).contains("MAC does not verify"));
    }
}

#[test]
fn suci_deconceal_matches_profiles_a_and_b() {
    for v in load("suci.json")["vectors"].as_array().unwrap() {
        let profile = match v["protection_scheme_id"].as_u64().unwrap() {
            1 => "A",
            2 => "b",
            _ => continue,
        };
        let args = [
            "crypto",
            "suci-deconceal",
            "--profile",
            profile,
            "--hn-private-key",
            s(&v["home_network_private_key"]),
            "--scheme-output",
            s(&v["scheme_output"]),
        ];
        let out = json_ok(&args);
        assert_eq!(out["scheme_input"], v["plaintext_block"], "{}", v["id"]);
        assert_eq!(out["msin_if_imsi"], v["msin"]);
        // One flipped bit in the MAC tag: exit code 1.
        let mut flipped = hex::decode(s(&v["scheme_output"])).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let flipped = hex::encode(flipped);
        let mut bad = args;
        bad[7] = &flipped;
        let out = nido(&bad);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("MAC tag does not verify"));
    }
}

#[test]
fn bad_input_is_one_line_naming_the_argument_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "crypto", "milenage", "--k", "00", "--opc", "00", "--rand", "00", "--sqn", "00",
                "--amf", "0000",
            ],
            "--k: expected 32 hex digits (16 octets), got 2",
        ),
        (
            &[
                "crypto",
                "milenage",
                "--k",
                "465b5ce8b199b49faa5f0a2ee238a6bg",
                "--opc",
                "00",
                "--rand",
                "00",
                "--sqn",
                "00",
                "--amf",
                "00",
            ],
            "--k: 'g' at position 31 is not a hex digit",
        ),
        (
            &[
                "crypto",
                "nea",
                "--alg",
                "4",
                "--key",
                "00",
                "--count",
                "00",
                "--bearer",
                "0",
                "--direction",
                "0",
                "--length-bits",
                "8",
                "--data",
                "00",
            ],
            "--alg: 4 is not in 1..=3",
        ),
        (
            &[
                "crypto",
                "nia",
                "--alg",
                "2",
                "--key",
                "00000000000000000000000000000000",
                "--count",
                "00000000",
                "--bearer",
                "1",
                "--direction",
                "0",
                "--length-bits",
                "9",
                "--data",
                "00",
            ],
            "--length-bits: 9 bits need 2 octets of --data, got 1",
        ),
        (
            &[
                "crypto",
                "suci-deconceal",
                "--profile",
                "A",
                "--hn-private-key",
                "00",
                "--scheme-output",
                "00",
            ],
            "--hn-private-key: expected 64 hex digits",
        ),
        (
            &["nas", "decode", "7e0"],
            "PDU: odd number of hex digits (3)",
        ),
    ];
    for (args, expected) in cases {
        let out = nido(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: {err:?} lacks {expected:?}"
        );
    }
}

#[test]
fn nas_decode_verifies_and_deciphers() {
    // SECURITY MODE COMPLETE of nas_examples.json, with the keys of its chain
    // (see crates/nido-nas/tests/nas_examples.rs for how they are derived).
    let e = load("nas_examples.json");
    let smp = e["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "constructed-security-mode-complete-nea2-nia2")
        .unwrap();
    let knas_int = "f491468573450742c8e7d0b2c9e115a3";
    let knas_enc = "932507596d6acddc53e921596bed9d7b";
    let args = [
        "nas",
        "decode",
        s(&smp["hex"]),
        "--knas-int",
        knas_int,
        "--knas-enc",
        knas_enc,
        "--alg",
        "2",
        "--direction",
        "0",
        "--json",
    ];
    let out = json_ok(&args);
    assert_eq!(out["verified"]["mac"], "ok");
    assert_eq!(out["verified"]["count"], 0);
    assert!(s(&smp["verified"]).ends_with(s(&out["verified"]["plain"])));
    assert!(s(&out["verified"]["message"]).contains("SecurityModeComplete"));
    // Text form names the fields with offsets.
    let text = nido(&args[..11]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("MAC verified at NAS COUNT 0"), "{text}");
    assert!(text.contains("imeisv"), "{text}");
    // The wrong direction: the MAC does not verify, exit code 1.
    let mut wrong = args;
    wrong[10] = "1";
    let out = nido(&wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAS MAC does not verify"));
}

#[test]
fn nas_decode_malformed_names_ie_and_offset_exit_1() {
    let out = nido(&["nas", "decode", "7e004179000af202f839cafe001122332e02a020"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5gs-mobile-identity at offset 6"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
    let out = nido(&["nas", "decode", "7e00ff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("message-type at offset 2"));
}

#[test]
fn nas_decode_json_lists_fields_with_offsets() {
    let out = json_ok(&[
        "nas",
        "decode",
        "7e004179000d0100f1100000000022222222222e02e0e0",
        "--json",
    ]);
    let fields = out["fields"].as_array().unwrap();
    let mi = fields
        .iter()
        .find(|f| f["ie"] == "5gs-mobile-identity")
        .unwrap();
    assert_eq!(mi["offset"], 6);
    assert_eq!(mi["octets"], "0100f110000000002222222222");
    assert_eq!(out["octets"], 23);
}
