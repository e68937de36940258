//! The DCS's validation, one test per refusal reason, each checking the
//! reason and its 5GMM cause, plus the accepted case.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nido_pki::{
    CertificateDer, DeviceId, DeviceIdentity, DeviceProfile, Manufacturer, Policy, Refusal,
    RefusalReason, Revoked, TrustStore, UnixTime, Validity,
};
use nido_sec::Cause;

const DAY: Duration = Duration::from_secs(86_400);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_760_000_000)
}

fn at(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap())
}

struct Fixture {
    acme: Manufacturer,
    store: TrustStore,
}

fn fixture() -> Fixture {
    let acme = Manufacturer::generate("Acme Sensors", t0()).unwrap();
    let mut store = TrustStore::new();
    store
        .enroll(
            "acme",
            acme.root_der().clone(),
            Policy::for_manufacturer(&acme),
        )
        .unwrap();
    // A current, empty CRL (number 0): without one every device's
    // revocation status is unknown.
    let empty = acme.crl(&[], t0(), t0() + DAY * 365 * 50, 0).unwrap();
    store.add_crl("acme", &empty, acme.issuing_der()).unwrap();
    Fixture { acme, store }
}

fn validate(
    store: &TrustStore,
    d: &DeviceIdentity,
    now: SystemTime,
) -> Result<nido_pki::DeviceInfo, Refusal> {
    store.validate(&d.chain[0], &d.chain[1..], at(now))
}

fn refused(
    r: Result<nido_pki::DeviceInfo, Refusal>,
    reason: RefusalReason,
    cause: Cause,
) -> Refusal {
    let e = r.unwrap_err();
    assert_eq!(e.reason, reason, "{e}");
    assert_eq!(e.gmm_cause(), cause, "{e}");
    e
}

#[test]
fn a_genuine_device_is_accepted() {
    let f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000001", &DeviceProfile::standard(t0()))
        .unwrap();
    let info = validate(&f.store, &d, t0() + DAY).unwrap();
    assert_eq!(info.id.serial(), "ACMESENS-0000000001");
    assert_eq!(info.id.manufacturer(), "acme");
    assert_eq!(info.id.to_string(), "acme/ACMESENS-0000000001");
    assert_eq!(
        info.hardware_module,
        Some((
            nido_pki::NIDO_HW_TYPE.to_owned(),
            b"ACMESENS-0000000001".to_vec()
        ))
    );
    assert_eq!(info.not_after.as_secs(), 253_402_300_799);
    assert_eq!(info.cert_serial, d.cert_serial);
    // Pure: the same inputs give the same answer.
    assert_eq!(validate(&f.store, &d, t0() + DAY).unwrap(), info);
    // Valid from its notBefore to the year 9999 (when any CRL of today is
    // long stale: this looks at the certificate alone).
    assert!(validate(&f.store, &d, t0()).is_ok());
    let mut f = f;
    let mut lenient = Policy::for_manufacturer(&f.acme);
    lenient.accept_stale_crl = true;
    f.store.set_policy("acme", lenient).unwrap();
    assert!(
        validate(
            &f.store,
            &d,
            UNIX_EPOCH + Duration::from_secs(253_402_300_000)
        )
        .is_ok()
    );
}

#[test]
fn expired() {
    let f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000002", &DeviceProfile::expired(t0()))
        .unwrap();
    let e = refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Expired,
        Cause::ILLEGAL_UE,
    );
    assert!(e.detail.contains("acme"), "{e}");
}

#[test]
fn not_yet_valid() {
    let f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000003", &DeviceProfile::not_yet_valid(t0()))
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::NotYetValid,
        Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
    );
    assert!(validate(&f.store, &d, t0() + DAY * 2).is_ok());
}

#[test]
fn revoked_via_crl() {
    let mut f = fixture();
    let good = f
        .acme
        .issue_device("ACMESENS-0000000004", &DeviceProfile::standard(t0()))
        .unwrap();
    let bad = f
        .acme
        .issue_device("ACMESENS-0000000005", &DeviceProfile::standard(t0()))
        .unwrap();
    let crl = f
        .acme
        .crl(&[Revoked::of(&bad, t0())], t0(), t0() + DAY * 7, 1)
        .unwrap();
    f.store.add_crl("acme", &crl, f.acme.issuing_der()).unwrap();
    let e = refused(
        validate(&f.store, &bad, t0() + DAY),
        RefusalReason::Revoked,
        Cause::ILLEGAL_UE,
    );
    assert!(
        e.detail.contains("ACMESENS") || e.detail.contains("Acme"),
        "{e}"
    );
    assert!(validate(&f.store, &good, t0() + DAY).is_ok());

    // An older CRL (lower number) cannot replace it ...
    let older = f.acme.crl(&[], t0(), t0() + DAY * 7, 0).unwrap();
    assert!(
        f.store
            .add_crl("acme", &older, f.acme.issuing_der())
            .is_err()
    );
    assert_eq!(
        validate(&f.store, &bad, t0() + DAY).unwrap_err().reason,
        RefusalReason::Revoked
    );

    // ... and a stale CRL says nothing about today: by default every
    // device's status is unknown (#74, temporary), the revoked one too ...
    let late = t0() + DAY * 30;
    for d in [&good, &bad] {
        refused(
            validate(&f.store, d, late),
            RefusalReason::RevocationUnknown,
            Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
        );
    }
    // ... unless the operator accepts stale CRLs of this manufacturer.
    let mut lenient = Policy::for_manufacturer(&f.acme);
    lenient.accept_stale_crl = true;
    f.store.set_policy("acme", lenient).unwrap();
    assert!(validate(&f.store, &good, late).is_ok());
    assert_eq!(
        validate(&f.store, &bad, late).unwrap_err().reason,
        RefusalReason::Revoked
    );
    // A fresh CRL makes the default policy admit the device again.
    f.store
        .set_policy("acme", Policy::for_manufacturer(&f.acme))
        .unwrap();
    let fresh = f
        .acme
        .crl(&[Revoked::of(&bad, t0())], late, late + DAY * 7, 2)
        .unwrap();
    f.store
        .add_crl("acme", &fresh, f.acme.issuing_der())
        .unwrap();
    assert!(validate(&f.store, &good, late).is_ok());
}

#[test]
fn a_manufacturer_without_crl_is_refused_unless_the_policy_allows_it() {
    let acme = Manufacturer::generate("Acme Sensors", t0()).unwrap();
    let mut store = TrustStore::new();
    store
        .enroll(
            "acme",
            acme.root_der().clone(),
            Policy::for_manufacturer(&acme),
        )
        .unwrap();
    let d = acme
        .issue_device("ACMESENS-0000000006", &DeviceProfile::standard(t0()))
        .unwrap();
    // No CRL of its issuing CA: revocation status unknown, #74.
    let e = refused(
        validate(&store, &d, t0() + DAY),
        RefusalReason::RevocationUnknown,
        Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN,
    );
    assert!(e.detail.contains("no CRL"), "{e}");
    // A CRL of another CA (the root's, say) does not cover the leaf.
    let other = Manufacturer::generate("Other", t0()).unwrap();
    let foreign = other.crl(&[], t0(), t0() + DAY * 7, 1).unwrap();
    assert!(
        store
            .add_crl("acme", &foreign, other.issuing_der())
            .is_err()
    );
    // The operator opted in for this manufacturer.
    let mut p = Policy::for_manufacturer(&acme);
    p.allow_without_crl = true;
    store.set_policy("acme", p).unwrap();
    assert!(validate(&store, &d, t0() + DAY).is_ok());
}

#[test]
fn crls_must_come_from_the_manufacturer() {
    let mut f = fixture();
    let other = Manufacturer::generate("Other Corp", t0()).unwrap();
    let crl = other.crl(&[], t0(), t0() + DAY, 1).unwrap();
    // Signed by another CA: refused whichever issuer is claimed.
    assert!(f.store.add_crl("acme", &crl, other.issuing_der()).is_err());
    assert!(f.store.add_crl("acme", &crl, f.acme.issuing_der()).is_err());
    assert!(
        f.store
            .add_crl("nobody", &crl, other.issuing_der())
            .is_err()
    );
    // Garbage is refused.
    let junk = nido_pki::CertificateRevocationListDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(
        f.store
            .add_crl("acme", &junk, f.acme.issuing_der())
            .is_err()
    );
}

#[test]
fn unknown_manufacturer() {
    let f = fixture();
    let other = Manufacturer::generate("Other Corp", t0()).unwrap();
    let d = other
        .issue_device("OTHERCOR-0000000001", &DeviceProfile::standard(t0()))
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::UnknownManufacturer,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    // Even an expired one of an unknown manufacturer is "unknown".
    let d = other
        .issue_device("OTHERCOR-0000000002", &DeviceProfile::expired(t0()))
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::UnknownManufacturer,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    // An empty store knows no one.
    refused(
        validate(&TrustStore::new(), &d, t0()),
        RefusalReason::UnknownManufacturer,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
}

#[test]
fn an_impostor_with_the_same_names_is_an_illegal_ue() {
    // Same manufacturer name, different keys: the names chain, the
    // signatures do not.
    let f = fixture();
    let impostor = Manufacturer::generate("Acme Sensors", t0()).unwrap();
    let d = impostor
        .issue_device("ACMESENS-0000000099", &DeviceProfile::standard(t0()))
        .unwrap();
    let e = validate(&f.store, &d, t0()).unwrap_err();
    assert_eq!(e.reason, RefusalReason::BadSignature, "{e}");
    assert_eq!(e.gmm_cause(), Cause::ILLEGAL_UE);
    // The genuine intermediate with the impostor's leaf: bad signature.
    let e = f
        .store
        .validate(
            &d.chain[0],
            std::slice::from_ref(f.acme.issuing_der()),
            at(t0()),
        )
        .unwrap_err();
    assert_eq!(e.reason, RefusalReason::BadSignature, "{e}");
    assert_eq!(e.gmm_cause(), Cause::ILLEGAL_UE);
}

#[test]
fn wrong_extended_key_usage() {
    let f = fixture();
    let d = f
        .acme
        .issue_device(
            "ACMESENS-0000000006",
            &DeviceProfile::server_auth_only(t0()),
        )
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::ExtendedKeyUsage,
        Cause::ILLEGAL_UE,
    );
    // No EKU at all is refused too (webpki alone would accept it).
    let mut p = DeviceProfile::standard(t0());
    p.client_auth_eku = false;
    let d = f.acme.issue_device("ACMESENS-0000000007", &p).unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::ExtendedKeyUsage,
        Cause::ILLEGAL_UE,
    );
    // The DCS's own server certificate is no device identity.
    let s = f
        .acme
        .issue_dcs("dcs.acme.example", Validity::days(t0(), 30))
        .unwrap();
    refused(
        f.store.validate(&s.chain[0], &s.chain[1..], at(t0())),
        RefusalReason::ExtendedKeyUsage,
        Cause::ILLEGAL_UE,
    );
}

#[test]
fn key_usage_without_digital_signature() {
    let f = fixture();
    let d = f
        .acme
        .issue_device(
            "ACMESENS-0000000008",
            &DeviceProfile::without_digital_signature(t0()),
        )
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::KeyUsage,
        Cause::ILLEGAL_UE,
    );
}

#[test]
fn a_ca_certificate_is_not_a_device() {
    let f = fixture();
    refused(
        f.store.validate(f.acme.issuing_der(), &[], at(t0())),
        RefusalReason::KeyUsage,
        Cause::ILLEGAL_UE,
    );
}

#[test]
fn blocked() {
    let mut f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000009", &DeviceProfile::standard(t0()))
        .unwrap();
    // The same serial of another manufacturer is another device.
    let elsewhere = DeviceId::new("other", "ACMESENS-0000000009").unwrap();
    assert!(f.store.block(&elsewhere));
    assert!(validate(&f.store, &d, t0()).is_ok());
    let id = DeviceId::new("acme", "ACMESENS-0000000009").unwrap();
    assert!(f.store.block(&id));
    assert!(!f.store.block(&id));
    let e = refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Blocked,
        Cause::ILLEGAL_UE,
    );
    assert!(e.detail.contains("acme/ACMESENS-0000000009"), "{e}");
    assert!(f.store.unblock(&id));
    assert!(validate(&f.store, &d, t0()).is_ok());
}

#[test]
fn policy_violations() {
    let mut f = fixture();
    // Serial prefix: the default policy of a nido manufacturer wants "ACMESENS-".
    let d = f
        .acme
        .issue_device("ROGUE-0000000001", &DeviceProfile::standard(t0()))
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Policy,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    // hardwareModuleName required.
    let d = f
        .acme
        .issue_device(
            "ACMESENS-0000000010",
            &DeviceProfile::without_hardware_module_name(t0()),
        )
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Policy,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    // ... which the permissive default policy does not require.
    f.store.set_policy("acme", Policy::default()).unwrap();
    assert!(validate(&f.store, &d, t0()).is_ok());
    // Wrong hwType.
    f.store
        .set_policy(
            "acme",
            Policy {
                hardware_module_type: Some("1.2.3.4".into()),
                ..Policy::default()
            },
        )
        .unwrap();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000011", &DeviceProfile::standard(t0()))
        .unwrap();
    refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Policy,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    // Maximum validity: an IDevID without expiration exceeds 30 years.
    f.store
        .set_policy(
            "acme",
            Policy {
                max_validity: Some(DAY * 365 * 30),
                ..Policy::default()
            },
        )
        .unwrap();
    let e = refused(
        validate(&f.store, &d, t0()),
        RefusalReason::Policy,
        Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
    );
    assert!(e.detail.contains("validity"), "{e}");
    let mut p = DeviceProfile::standard(t0());
    p.not_after = t0() + DAY * 365;
    let d = f.acme.issue_device("ACMESENS-0000000012", &p).unwrap();
    assert!(validate(&f.store, &d, t0()).is_ok());
}

#[test]
fn malformed_der() {
    let f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000013", &DeviceProfile::standard(t0()))
        .unwrap();
    let leaf = d.chain[0].as_ref();
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x30],
        vec![0x30, 0x00],
        b"not a certificate".to_vec(),
        leaf[..leaf.len() - 1].to_vec(),
        [leaf, &[0x00][..]].concat(),
        leaf[4..].to_vec(),
    ];
    for bytes in inputs {
        let r = f.store.validate(
            &CertificateDer::from(bytes.clone()),
            &d.chain[1..],
            at(t0()),
        );
        refused(r, RefusalReason::Malformed, Cause::ILLEGAL_UE);
    }
    // A flipped bit in the signed part: the signature no longer verifies.
    let mut flipped = leaf.to_vec();
    let i = flipped.len() / 2;
    flipped[i] ^= 0x01;
    let e = f
        .store
        .validate(&CertificateDer::from(flipped), &d.chain[1..], at(t0()))
        .unwrap_err();
    assert!(
        matches!(
            e.reason,
            RefusalReason::BadSignature | RefusalReason::Malformed
        ),
        "{e}"
    );
}

#[test]
fn enrollment_is_checked() {
    let mut f = fixture();
    // Names and roots are unique.
    assert!(
        f.store
            .enroll("acme", f.acme.root_der().clone(), Policy::default())
            .is_err()
    );
    assert!(
        f.store
            .enroll("acme2", f.acme.root_der().clone(), Policy::default())
            .is_err()
    );
    // An intermediate or a leaf is not a root.
    assert!(
        f.store
            .enroll("x", f.acme.issuing_der().clone(), Policy::default())
            .is_err()
    );
    assert!(
        f.store
            .enroll("y", CertificateDer::from(vec![1, 2, 3]), Policy::default())
            .is_err()
    );
    // Two manufacturers side by side, each device attributed correctly.
    let other = Manufacturer::generate("Other Corp", t0()).unwrap();
    f.store
        .enroll(
            "other",
            other.root_der().clone(),
            Policy {
                allow_without_crl: true,
                ..Policy::for_manufacturer(&other)
            },
        )
        .unwrap();
    let d = other
        .issue_device("OTHERCOR-0000000001", &DeviceProfile::standard(t0()))
        .unwrap();
    assert_eq!(
        validate(&f.store, &d, t0()).unwrap().id.manufacturer(),
        "other"
    );
    // A name with '/' would make MANUFACTURER/SERIAL ambiguous.
    let slash = Manufacturer::generate("Slash", t0()).unwrap();
    assert!(
        f.store
            .enroll("a/b", slash.root_der().clone(), Policy::default())
            .is_err()
    );
    assert_eq!(
        f.store.manufacturers().collect::<Vec<_>>(),
        ["acme", "other"]
    );
    assert!(f.store.remove("other"));
    assert_eq!(
        validate(&f.store, &d, t0()).unwrap_err().reason,
        RefusalReason::UnknownManufacturer
    );
}

/// Time per `validate` of a genuine device with the fast path and without
/// (rustls-webpki verifying the CRL signature again). Not an assertion:
/// `cargo test --release --test validation -- --ignored --nocapture timing`.
#[test]
#[ignore = "a measurement"]
fn timing() {
    let f = fixture();
    let d = f
        .acme
        .issue_device("ACMESENS-0000000009", &DeviceProfile::standard(t0()))
        .unwrap();
    let now = at(t0() + DAY);
    let n = 2_000;
    let time = |fast: bool| {
        let start = std::time::Instant::now();
        for _ in 0..n {
            let r = if fast {
                f.store.validate(&d.chain[0], &d.chain[1..], now)
            } else {
                f.store
                    .validate_without_fast_path(&d.chain[0], &d.chain[1..], now)
            };
            assert!(r.is_ok());
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    for _ in 0..2 {
        let slow = time(false);
        let fast = time(true);
        println!("validate: {slow:.1} µs without the fast path, {fast:.1} µs with it");
    }
}
