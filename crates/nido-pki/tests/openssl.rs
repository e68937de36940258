//! The `openssl` CLI as an independent oracle for what nido-pki issues:
//! chains verify, the IDevID profile shows in `x509 -text` and
//! `asn1parse`, CRLs list revoked serials and make `verify -crl_check` fail,
//! the negative fixtures fail for the reason they were made for.
//!
//! Without `openssl` each test skips with one SKIPPED line (`nido_testkit`;
//! under `NIDO_REQUIRE_TOOLS=1`, as in CI, it fails).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use nido_pki::{
    ClaimCode, DeviceIdentity, DeviceProfile, FactoryBundle, Manufacturer, Revoked, Validity,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Fails the test when the oracle, found at its start, cannot run.
fn missing_openssl(e: std::io::Error) -> ! {
    panic!(
        "cannot run `openssl` ({e}): the openssl CLI is a test oracle of nido-pki; \
         scripts/test installs it (Debian package openssl)"
    )
}

fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| missing_openssl(e))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str], dir: &Path) -> String {
    let o = openssl(args, dir);
    assert!(o.status.success(), "openssl {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn fails(args: &[&str], dir: &Path) -> String {
    let o = openssl(args, dir);
    assert!(
        !o.status.success(),
        "openssl {args:?} should fail:\n{}",
        text(&o)
    );
    text(&o)
}

fn pem(der: &[u8]) -> String {
    let o = openssl_stdin(&["x509", "-inform", "DER"], der);
    String::from_utf8(o).unwrap()
}

fn openssl_stdin(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing_openssl(e));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "openssl {args:?}");
    o.stdout
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("nido-pki-openssl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes root.pem, issuing.pem and `<name>.pem` (the leaf) into `dir`.
fn write_chain(dir: &Path, m: &Manufacturer, name: &str, d: &DeviceIdentity) {
    std::fs::write(dir.join("root.pem"), pem(m.root_der())).unwrap();
    std::fs::write(dir.join("issuing.pem"), pem(m.issuing_der())).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), pem(&d.chain[0])).unwrap();
}

#[test]
fn device_certificate_verifies_and_shows_the_idevid_profile() {
    if nido_testkit::tool(
        "device_certificate_verifies_and_shows_the_idevid_profile",
        "openssl",
    )
    .is_none()
    {
        return;
    }
    let dir = Dir::new("profile");
    let now = SystemTime::now();
    let m = Manufacturer::generate("Acme Sensors", now).unwrap();
    let d = m
        .issue_device("ACMESENS-0000000001", &DeviceProfile::standard(now))
        .unwrap();
    write_chain(&dir.0, &m, "device", &d);

    let out = ok(
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "device.pem",
        ],
        &dir.0,
    );
    assert!(out.contains("device.pem: OK"), "{out}");
    // As a TLS client certificate, and not as a server one.
    ok(
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "device.pem",
        ],
        &dir.0,
    );
    let out = fails(
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "device.pem",
        ],
        &dir.0,
    );
    assert!(out.contains("unsuitable certificate purpose"), "{out}");

    let t = ok(&["x509", "-in", "device.pem", "-noout", "-text"], &dir.0);
    let serial_colons = d
        .cert_serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    for want in [
        serial_colons.as_str(),
        "Issuer: O = Acme Sensors, CN = Acme Sensors Device Issuing CA",
        "Subject: O = Acme Sensors, CN = ACMESENS-0000000001, serialNumber = ACMESENS-0000000001",
        "Not After : Dec 31 23:59:59 9999 GMT",
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Client Authentication",
        "CA:FALSE",
        "X509v3 Authority Key Identifier",
        "ASN1 OID: prime256v1",
        "ecdsa-with-SHA256",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    assert!(!t.contains("TLS Web Server Authentication"), "{t}");
    // OpenSSL 3.0 prints the otherName by OID with an unsupported value;
    // newer versions may name it. Either way it is there.
    let san_line = t
        .lines()
        .skip_while(|l| !l.contains("X509v3 Subject Alternative Name"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        san_line.contains("othername:")
            && (san_line.contains("1.3.6.1.5.5.7.8.4") || san_line.contains("ardware")),
        "subjectAltName: {san_line:?}"
    );

    // The serial, as `x509 -serial` prints it.
    let s = ok(&["x509", "-in", "device.pem", "-noout", "-serial"], &dir.0);
    assert_eq!(
        s.trim(),
        format!("serial={}", hex::encode_upper(&d.cert_serial))
    );

    // The hardwareModuleName structure, decoded by asn1parse.
    let dump = ok(&["asn1parse", "-in", "device.pem"], &dir.0);
    let mut lines = dump.lines();
    lines
        .by_ref()
        .find(|l| l.contains("X509v3 Subject Alternative Name"))
        .unwrap();
    let octets = lines.next().unwrap();
    let offset = octets.split(':').next().unwrap().trim();
    let san = ok(
        &["asn1parse", "-in", "device.pem", "-strparse", offset],
        &dir.0,
    );
    let expected = [
        "cont [ 0 ]",
        ":1.3.6.1.5.5.7.8.4",
        "cont [ 0 ]",
        "SEQUENCE",
        &format!(":{}", nido_pki::NIDO_HW_TYPE),
        "OCTET STRING      :ACMESENS-0000000001",
    ];
    let mut rest = san.as_str();
    for want in expected {
        let at = rest
            .find(want)
            .unwrap_or_else(|| panic!("missing {want:?} in order in:\n{san}"));
        rest = &rest[at + want.len()..];
    }

    // The key in the bundle is the certificate's key.
    let code = ClaimCode::generate().unwrap();
    let b = FactoryBundle::write(
        &dir.0.join("out"),
        &d,
        m.name(),
        m.dcs_realm(),
        m.kausf_from(),
        m.root_der(),
        &code,
    )
    .unwrap();
    let from_key = ok(
        &[
            "pkey",
            "-in",
            b.join("device.key").to_str().unwrap(),
            "-pubout",
        ],
        &dir.0,
    );
    let from_cert = ok(&["x509", "-in", "device.pem", "-noout", "-pubkey"], &dir.0);
    assert_eq!(from_key, from_cert);
    // And the bundle's own files verify as a chain.
    let out = ok(
        &[
            "verify",
            "-CAfile",
            "mfr-root.pem",
            "-untrusted",
            "chain.pem",
            "device.pem",
        ],
        &b,
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn revoked_serial_is_in_the_crl_and_fails_crl_check() {
    if nido_testkit::tool(
        "revoked_serial_is_in_the_crl_and_fails_crl_check",
        "openssl",
    )
    .is_none()
    {
        return;
    }
    let dir = Dir::new("crl");
    let now = SystemTime::now();
    let mut m = Manufacturer::generate("Acme Sensors", now).unwrap();
    let revoked = m
        .issue_device("ACMESENS-0000000002", &DeviceProfile::standard(now))
        .unwrap();
    let good = m
        .issue_device("ACMESENS-0000000003", &DeviceProfile::standard(now))
        .unwrap();
    write_chain(&dir.0, &m, "revoked", &revoked);
    std::fs::write(dir.0.join("good.pem"), pem(&good.chain[0])).unwrap();
    m.revoke(Revoked::of(&revoked, now));
    let crl = m.next_crl(now, now + DAY * 7).unwrap();
    std::fs::write(dir.0.join("crl.der"), crl.as_ref()).unwrap();
    ok(
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
        &dir.0,
    );

    let t = ok(&["crl", "-in", "crl.pem", "-noout", "-text"], &dir.0);
    assert!(
        t.contains(&format!(
            "Serial Number: {}",
            hex::encode_upper(&revoked.cert_serial)
        )),
        "{t}"
    );
    assert!(!t.contains(&hex::encode_upper(&good.cert_serial)), "{t}");
    assert!(t.contains("CRL Number"), "{t}");
    assert!(
        t.contains("Issuer: O = Acme Sensors, CN = Acme Sensors Device Issuing CA"),
        "{t}"
    );
    // The CRL's signature verifies with the issuing CA.
    ok(
        &["crl", "-in", "crl.pem", "-noout", "-CAfile", "issuing.pem"],
        &dir.0,
    );

    let base = [
        "verify",
        "-crl_check",
        "-CRLfile",
        "crl.pem",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "issuing.pem",
    ];
    let out = fails(&[&base[..], &["revoked.pem"]].concat(), &dir.0);
    assert!(out.contains("certificate revoked"), "{out}");
    let out = ok(&[&base[..], &["good.pem"]].concat(), &dir.0);
    assert!(out.contains("good.pem: OK"), "{out}");
}

#[test]
fn negative_fixtures_fail_for_their_reason() {
    if nido_testkit::tool("negative_fixtures_fail_for_their_reason", "openssl").is_none() {
        return;
    }
    let dir = Dir::new("neg");
    let now = SystemTime::now();
    let m = Manufacturer::generate("Acme Sensors", now).unwrap();
    let cases = [
        (
            "expired",
            DeviceProfile::expired(now),
            "certificate has expired",
        ),
        (
            "future",
            DeviceProfile::not_yet_valid(now),
            "certificate is not yet valid",
        ),
    ];
    for (name, profile, why) in cases {
        let d = m.issue_device("ACMESENS-0000000004", &profile).unwrap();
        write_chain(&dir.0, &m, name, &d);
        let file = format!("{name}.pem");
        let out = fails(
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                &file,
            ],
            &dir.0,
        );
        assert!(out.contains(why), "{name}: {out}");
    }
    let d = m
        .issue_device("ACMESENS-0000000005", &DeviceProfile::server_auth_only(now))
        .unwrap();
    write_chain(&dir.0, &m, "server-eku", &d);
    let out = fails(
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "server-eku.pem",
        ],
        &dir.0,
    );
    assert!(out.contains("unsuitable certificate purpose"), "{out}");
    // Another manufacturer's root does not verify Acme's devices.
    let other = Manufacturer::generate("Other Corp", now).unwrap();
    std::fs::write(dir.0.join("other-root.pem"), pem(other.root_der())).unwrap();
    let good = m
        .issue_device("ACMESENS-0000000006", &DeviceProfile::standard(now))
        .unwrap();
    std::fs::write(dir.0.join("good.pem"), pem(&good.chain[0])).unwrap();
    let out = fails(
        &[
            "verify",
            "-CAfile",
            "other-root.pem",
            "-untrusted",
            "issuing.pem",
            "good.pem",
        ],
        &dir.0,
    );
    assert!(out.contains("unable to get"), "{out}");
}

#[test]
fn dcs_certificate_verifies_as_a_server_for_its_host() {
    if nido_testkit::tool(
        "dcs_certificate_verifies_as_a_server_for_its_host",
        "openssl",
    )
    .is_none()
    {
        return;
    }
    let dir = Dir::new("dcs");
    let now = SystemTime::now();
    let m = Manufacturer::generate("Acme Sensors", now).unwrap();
    let s = m
        .issue_dcs("dcs.acme.example", Validity::days(now, 365))
        .unwrap();
    std::fs::write(dir.0.join("root.pem"), pem(m.root_der())).unwrap();
    std::fs::write(dir.0.join("issuing.pem"), pem(m.issuing_der())).unwrap();
    std::fs::write(dir.0.join("dcs.pem"), pem(&s.chain[0])).unwrap();
    let base = [
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "issuing.pem",
    ];
    ok(
        &[
            &base[..],
            &["-verify_hostname", "dcs.acme.example", "dcs.pem"],
        ]
        .concat(),
        &dir.0,
    );
    let out = fails(
        &[&base[..], &["-verify_hostname", "evil.example", "dcs.pem"]].concat(),
        &dir.0,
    );
    assert!(out.contains("hostname mismatch"), "{out}");
    let t = ok(&["x509", "-in", "dcs.pem", "-noout", "-text"], &dir.0);
    assert!(t.contains("DNS:dcs.acme.example"), "{t}");
    assert!(t.contains("TLS Web Server Authentication"), "{t}");
}
