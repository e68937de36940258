//! A device whose IDevID key and K live in a PKCS#11 token (SoftHSM2)
//! onboards end to end against `nido network serve`: TLS signing and
//! MILENAGE run in the token. (That the token refuses to export either key
//! is tested in crates/nido-se/tests/softhsm.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::process::Command;

use common::{Scratch, json_lines, manufacturer_and_network, ok, serve, softhsm_token};

#[test]
fn a_device_with_its_keys_in_softhsm2_onboards_to_active() {
    if nido_testkit::softhsm2("a_device_with_its_keys_in_softhsm2_onboards_to_active").is_none() {
        return;
    }
    let s = Scratch::new("pkcs11");
    let d = &s.0;
    let (listen, _) = manufacturer_and_network(d, 1);
    let _network = serve(d, &[]);

    let conf = softhsm_token(d, "device-1");

    let out = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args([
            "device",
            "run",
            "--bundle",
            "factory/ACMESENS-0000000001",
            "--network",
            &listen,
            "--token-label",
            "device-1",
            "--until",
            "active",
            "--timeout",
            "120",
            "--json",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .env("NIDO_TOKEN_PIN", "1234")
        .current_dir(d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"active\""), "{stdout}");
    // No file vault was written: the subscription is in the token.
    assert!(!d.join("factory/ACMESENS-0000000001/vault").exists());

    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["state"], "active");
}
