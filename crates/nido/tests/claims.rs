//! Issue #17, finding 7, at the command line: `nido network import-claims`
//! takes only a claims file its manufacturer signed, registers the claims
//! for that manufacturer's devices, and never gives a claimed device to a
//! later owner; `nido network block` names the manufacturer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::path::Path;

use common::{Scratch, manufacturer_and_network, nido, ok};

fn fails(args: &[&str], d: &Path) -> String {
    let out = nido(args, d);
    assert!(!out.status.success(), "nido {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn import<'a>(file: &'a str, signer: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "network",
        "import-claims",
        "--dir",
        "net",
        "--manufacturer",
        "Acme Sensors",
        "--signer",
        signer,
    ];
    v.extend_from_slice(extra);
    v.push(file);
    v
}

#[test]
fn claims_import_is_signed_and_the_first_claim_stands() {
    let s = Scratch::new("claims-signed");
    let d = &s.0;
    manufacturer_and_network(d, 2);
    let claims = std::fs::read_to_string(d.join("factory/claims.csv")).unwrap();

    // Unsigned, tampered, or signed by another manufacturer: refused.
    std::fs::copy(d.join("factory/claims.csv"), d.join("unsigned.csv")).unwrap();
    let e = fails(&import("unsigned.csv", "factory/issuing-ca.pem", &[]), d);
    assert!(e.contains("signature"), "{e}");
    std::fs::write(
        d.join("tampered.csv"),
        claims.replace("ACMESENS-0000000001,", "ACMESENS-0000000009,"),
    )
    .unwrap();
    let e = fails(
        &import(
            "tampered.csv",
            "factory/issuing-ca.pem",
            &["--signature", "factory/claims.csv.sig"],
        ),
        d,
    );
    assert!(e.contains("not signed"), "{e}");
    ok(
        &["mfr", "init", "--dir", "rogue", "--name", "Rogue Devices"],
        d,
    );
    ok(
        &[
            "mfr",
            "issue",
            "--dir",
            "rogue",
            "--count",
            "1",
            "--out",
            "rogue-out",
        ],
        d,
    );
    let e = fails(
        &import("rogue-out/claims.csv", "rogue-out/issuing-ca.pem", &[]),
        d,
    );
    assert!(e.contains("not signed"), "{e}");
    let e = fails(
        &[
            "network",
            "import-claims",
            "--dir",
            "net",
            "--manufacturer",
            "Rogue Devices",
            "--signer",
            "rogue-out/issuing-ca.pem",
            "rogue-out/claims.csv",
        ],
        d,
    );
    assert!(e.contains("not an enrolled manufacturer"), "{e}");

    // Signed by the enrolled manufacturer: imported for its devices.
    ok(
        &import("factory/claims.csv", "factory/issuing-ca.pem", &[]),
        d,
    );
    let code = nido_pki::bundle::read_label_code(&d.join("factory/labels/ACMESENS-0000000001.txt"))
        .unwrap();
    for owner in ["first", "second"] {
        ok(
            &[
                "owner", "create", "--dir", "net", "--id", owner, "--name", owner,
            ],
            d,
        );
    }
    let out = ok(
        &[
            "owner",
            "claim",
            "--dir",
            "net",
            "--owner",
            "first",
            "--claim-code",
            code.as_str(),
        ],
        d,
    );
    assert!(out.contains("Acme Sensors/ACMESENS-0000000001"), "{out}");

    // Importing the file again (or a new code for the device) does not
    // reopen the claimed device to anyone else.
    let e = fails(
        &import("factory/claims.csv", "factory/issuing-ca.pem", &[]),
        d,
    );
    assert!(e.contains("first claim stands"), "{e}");
    fails(
        &[
            "owner",
            "claim",
            "--dir",
            "net",
            "--owner",
            "second",
            "--claim-code",
            code.as_str(),
        ],
        d,
    );

    // Blocking names the manufacturer.
    let e = fails(
        &["network", "block", "--dir", "net", "ACMESENS-0000000002"],
        d,
    );
    assert!(e.contains("MANUFACTURER/SERIAL"), "{e}");
    let out = ok(
        &[
            "network",
            "block",
            "--dir",
            "net",
            "Acme Sensors/ACMESENS-0000000002",
        ],
        d,
    );
    assert!(
        out.contains("Acme Sensors/ACMESENS-0000000002 blocked"),
        "{out}"
    );
    // Unblocking lifts it once; a device that is not blocked is an error.
    let unblock = [
        "network",
        "unblock",
        "--dir",
        "net",
        "Acme Sensors/ACMESENS-0000000002",
    ];
    let out = ok(&unblock, d);
    assert!(
        out.contains("Acme Sensors/ACMESENS-0000000002 unblocked"),
        "{out}"
    );
    let e = fails(&unblock, d);
    assert!(e.contains("is not blocked"), "{e}");
}
