#![allow(clippy::unwrap_used, clippy::expect_used)]
//! [`Pkcs11Se`] against SoftHSM2 (Debian package `softhsm2`, which
//! `scripts/test` installs). Without it the binary prints one SKIPPED line
//! (`nido_testkit`) and runs no test; under `NIDO_REQUIRE_TOOLS=1`, as in
//! CI, it fails.
//!
//! SoftHSM2 reads its configuration from `SOFTHSM2_CONF` when the module is
//! initialised, and the environment of a running test process cannot be
//! changed without `unsafe`. So this test binary has its own `main`
//! (`harness = false`): started by `cargo test`, it writes a configuration
//! with a temporary token directory, initialises one token per test with
//! `softhsm2-util`, and runs itself again with `SOFTHSM2_CONF` set; that
//! child runs the tests one after the other and prints libtest's summary
//! line. A name given on the command line filters the tests.

mod common;

use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::Instant;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use common::{Network, SNN, TempDir, assert_receipt_for, idevid_key, idevid_point};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use nido_se::pkcs11::{
    ERASURE_LABEL, IDEVID_LABEL, K_LABEL, OPC_LABEL, SOFTHSM2_MODULE, SQN_WINDOW_LABEL,
    SUBSCRIPTION_LABEL,
};
use nido_se::{Pkcs11Config, Pkcs11Se, SeAkaError, SeError, SecureElement};
use nido_sec::aka::AkaFailure;
use rustls::SignatureScheme;
use rustls::pki_types::PrivateKeyDer;

const CHILD: &str = "NIDO_SE_SOFTHSM_CHILD";
const PIN: &str = "1234-user";
const SO_PIN: &str = "5678-so";

type Test = fn(&Pkcs11Config);

const TESTS: &[(&str, Test)] = &[
    (
        "full_provisioning_and_5g_aka_through_the_token",
        full_provisioning_and_5g_aka_through_the_token,
    ),
    (
        "state_survives_reopening_the_token",
        state_survives_reopening_the_token,
    ),
    (
        "k_and_the_idevid_key_never_leave_the_token",
        k_and_the_idevid_key_never_leave_the_token,
    ),
    (
        "the_idevid_key_signs_inside_the_token",
        the_idevid_key_signs_inside_the_token,
    ),
    (
        "eap_tls_1_3_with_the_idevid_key_in_the_token",
        eap_tls_1_3_with_the_idevid_key_in_the_token,
    ),
    (
        "interrupted_installations_leave_old_new_or_none",
        interrupted_installations_leave_old_new_or_none,
    ),
    (
        "reinstalling_replaces_the_subscription",
        reinstalling_replaces_the_subscription,
    ),
    (
        "erase_removes_every_subscription_object",
        erase_removes_every_subscription_object,
    ),
    (
        "wrong_pin_unknown_token_and_a_second_import_are_refused",
        wrong_pin_unknown_token_and_a_second_import_are_refused,
    ),
    (
        "a_reset_keeps_a_receipt_and_an_interrupted_one_is_finished",
        a_reset_keeps_a_receipt_and_an_interrupted_one_is_finished,
    ),
];

fn label(index: usize) -> String {
    format!("nido-se-test-{index}")
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        std::process::exit(run_tests());
    }
    // The module nido-se opens is the one nido-testkit looks for.
    assert_eq!(nido_testkit::SOFTHSM2_MODULE, SOFTHSM2_MODULE);
    let listing = std::env::args().any(|arg| arg == "--list");
    if !listing && nido_testkit::softhsm2("nido-se softhsm (all its tests)").is_none() {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {} filtered out; finished in 0.00s\n",
            TESTS.len()
        );
        return;
    }
    let tmp = TempDir::new("softhsm");
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    for index in 0..TESTS.len() {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", &label(index)])
            .args(["--pin", PIN, "--so-pin", SO_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util (Debian package softhsm2) cannot run");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args(std::env::args_os().skip(1))
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, "1")
        .status()
        .unwrap();
    drop(tmp);
    std::process::exit(status.code().unwrap_or(101));
}

/// The child: runs the selected tests, libtest style.
fn run_tests() -> i32 {
    let mut filter = None;
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--test-threads" | "--skip" | "--color" | "--format" | "--logfile" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => filter = Some(a.to_owned()),
        }
    }
    if list {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return 0;
    }
    let selected: Vec<_> = TESTS
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
        .collect();
    let start = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, Vec::new());
    for (index, (name, test)) in &selected {
        let config = Pkcs11Config::softhsm2(&label(*index), PIN);
        match std::panic::catch_unwind(AssertUnwindSafe(|| test(&config))) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        TESTS.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    i32::from(!failed.is_empty())
}

// ---------------------------------------------------------------------
// A session of the test's own on the token, to look behind the element.
// ---------------------------------------------------------------------

fn raw_session(config: &Pkcs11Config) -> Session {
    let ctx = Pkcs11::new(&config.module).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == config.token_label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    session
}

fn objects(session: &Session, class: ObjectClass, label: &str) -> Vec<ObjectHandle> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()
}

fn one(session: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let found = objects(session, class, label);
    assert_eq!(found.len(), 1, "{label}: {found:?}");
    found[0]
}

fn value(session: &Session, object: ObjectHandle) -> Vec<u8> {
    match session
        .get_attributes(object, &[AttributeType::Value])
        .unwrap()
        .pop()
    {
        Some(Attribute::Value(v)) => v,
        other => panic!("{other:?}"),
    }
}

/// How many subscription objects of each kind the token holds.
fn counts(session: &Session) -> [usize; 4] {
    [
        objects(session, ObjectClass::SECRET_KEY, K_LABEL).len(),
        objects(session, ObjectClass::DATA, OPC_LABEL).len(),
        objects(session, ObjectClass::DATA, SQN_WINDOW_LABEL).len(),
        objects(session, ObjectClass::DATA, SUBSCRIPTION_LABEL).len(),
    ]
}

fn element(config: &Pkcs11Config) -> (Pkcs11Se, PrivateKeyDer<'static>) {
    let key = idevid_key();
    (Pkcs11Se::create(config, &key).unwrap(), key)
}

fn authenticate(se: &mut Pkcs11Se, net: &mut Network) {
    let c = net.challenge();
    let ue = se.authenticate(&c.rand, &c.autn, SNN).unwrap();
    assert!(c.seaf_accepts(&ue.res_star));
    let (_, kausf) = c.confirm(&ue.res_star, SNN).unwrap();
    assert_eq!(kausf, ue.kausf);
}

// ---------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------

fn full_provisioning_and_5g_aka_through_the_token(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    assert!(matches!(
        se.authenticate(&[0; 16], &[0; 16], SNN),
        Err(SeAkaError::Element(SeError::NoSubscription))
    ));
    let mut net = Network::new(100);
    let installed = net.provision(&mut se);
    assert_eq!(installed.public.supi, net.package.supi);
    assert_eq!(se.installed(), Some(installed.public));

    // The UE's RES* is accepted by the SEAF, K_AUSF agrees with the AUSF's.
    for _ in 0..5 {
        authenticate(&mut se, &mut net);
    }
    // A replay: synch failure whose AUTS the home network accepts.
    let c = net.challenge();
    se.authenticate(&c.rand, &c.autn, SNN).unwrap();
    let window = se.sqn_window();
    let err = se.authenticate(&c.rand, &c.autn, SNN).unwrap_err();
    let SeAkaError::Aka(AkaFailure::SynchFailure { auts }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(se.sqn_window(), window, "a refusal leaves the window");
    net.he = nido_sec::aka::resynchronise(&net.milenage, net.he, &c.rand, &auts).unwrap();
    authenticate(&mut se, &mut net);

    // A false network (another K): MAC failure, window unchanged.
    let mut fake = Network::new(100);
    fake.he = net.he;
    let c = fake.challenge();
    let window = se.sqn_window();
    assert_eq!(
        se.authenticate(&c.rand, &c.autn, SNN).unwrap_err(),
        SeAkaError::Aka(AkaFailure::MacFailure)
    );
    assert_eq!(se.sqn_window(), window);
}

fn state_survives_reopening_the_token(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    let mut net = Network::new(101);
    net.provision(&mut se);
    authenticate(&mut se, &mut net);
    let c = net.challenge();
    se.authenticate(&c.rand, &c.autn, SNN).unwrap();
    let before = (se.installed(), se.sqn_window());
    drop(se);

    let mut se = Pkcs11Se::open(config).unwrap();
    assert_eq!((se.installed(), se.sqn_window()), before);
    assert!(matches!(
        se.authenticate(&c.rand, &c.autn, SNN),
        Err(SeAkaError::Aka(AkaFailure::SynchFailure { .. }))
    ));
    authenticate(&mut se, &mut net);
    // One window object: each update replaced the previous one.
    assert_eq!(counts(&raw_session(config)), [1, 1, 1, 1]);
    // The provisioning key lives in host memory only: gone after a restart.
    se.new_provisioning_key().unwrap();
    drop(se);
    let mut se = Pkcs11Se::open(config).unwrap();
    let sealed = nido_prov::package::seal(
        &net.package,
        &nido_prov::package::generate_device_key().unwrap().1,
        &common::binding(),
        &common::k_prov(),
    )
    .unwrap();
    assert_eq!(
        se.install_package(&sealed, &common::binding(), &common::k_prov()),
        Err(SeError::NoProvisioningKey)
    );
}

fn k_and_the_idevid_key_never_leave_the_token(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    let net = Network::new(102);
    net.provision(&mut se);
    let session = raw_session(config);
    let k = one(&session, ObjectClass::SECRET_KEY, K_LABEL);
    let idevid = one(&session, ObjectClass::PRIVATE_KEY, IDEVID_LABEL);

    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(false),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();

    for (what, object) in [("K", k), ("IDevID private key", idevid)] {
        // CKA_VALUE is refused (CKR_ATTRIBUTE_SENSITIVE) ...
        let info = session
            .get_attribute_info(object, &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[..], [AttributeInfo::Sensitive]),
            "{what}: {info:?}"
        );
        assert!(
            session
                .get_attributes(object, &[AttributeType::Value])
                .unwrap()
                .is_empty(),
            "{what}: value returned"
        );
        // ... the attributes say so ...
        let attrs = session
            .get_attributes(
                object,
                &[AttributeType::Sensitive, AttributeType::Extractable],
            )
            .unwrap();
        assert!(
            attrs.contains(&Attribute::Sensitive(true))
                && attrs.contains(&Attribute::Extractable(false)),
            "{what}: {attrs:?}"
        );
        // ... they cannot be changed ...
        for change in [Attribute::Extractable(true), Attribute::Sensitive(false)] {
            assert!(
                session
                    .update_attributes(object, std::slice::from_ref(&change))
                    .is_err(),
                "{what}: {change:?} accepted"
            );
        }
        // ... nor copied into an exportable object ...
        assert!(
            session
                .copy_object(object, &[Attribute::Extractable(true)])
                .is_err(),
            "{what}: copied as extractable"
        );
        // ... nor wrapped (CKR_KEY_UNEXTRACTABLE).
        for mechanism in [Mechanism::AesKeyWrapPad, Mechanism::AesKeyWrap] {
            match session.wrap_key(&mechanism, wrapping, object) {
                Err(CkError::Pkcs11(RvError::KeyUnextractable, _)) => {}
                other => panic!("{what}: wrapping with {mechanism:?} gave {other:?}"),
            }
        }
    }
    // The element's own Debug shows no secret either.
    let text = format!("{se:?}");
    assert!(!text.contains(&hex::encode(net.k)), "{text}");
}

fn the_idevid_key_signs_inside_the_token(config: &Pkcs11Config) {
    let (se, key) = element(config);
    let signing = se.idevid_signer();
    assert_eq!(signing.algorithm(), rustls::SignatureAlgorithm::ECDSA);
    assert!(signing.choose_scheme(&[SignatureScheme::ED25519]).is_none());
    let signer = signing
        .choose_scheme(&[
            SignatureScheme::ED25519,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ])
        .unwrap();
    assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, idevid_point(&key));
    for i in 0..50u32 {
        let message = format!("TLS 1.3, client CertificateVerify {i}");
        let signature = signer.sign(message.as_bytes()).unwrap();
        public.verify(message.as_bytes(), &signature).unwrap();
    }
    // The same SubjectPublicKeyInfo as the software key's: a certificate
    // for the factory key matches the token's key (CertifiedKey::keys_match).
    let software = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
    assert_eq!(
        signing.public_key().unwrap().as_ref(),
        software.public_key().unwrap().as_ref()
    );
    // After a restart the key is found again.
    drop((se, signing, signer));
    let se = Pkcs11Se::open(config).unwrap();
    let signer = se
        .idevid_signer()
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    public
        .verify(b"again", &signer.sign(b"again").unwrap())
        .unwrap();
}

fn eap_tls_1_3_with_the_idevid_key_in_the_token(config: &Pkcs11Config) {
    use nido_eap::{
        DeviceCredentials, EapTlsPeer, EapTlsServer, PeerOutcome, PeerStep, ServerOutcome,
        ServerStep, Settings, fixtures::Onboarding,
    };
    use nido_pki::DeviceProfile;

    // A real manufacturer's IDevID, its factory key imported into the token.
    let now = std::time::SystemTime::now();
    let world = Onboarding::new("Token Devices", now).unwrap();
    let (id, _) = world.device(7, &DeviceProfile::standard(now)).unwrap();
    let se = Pkcs11Se::create(config, &PrivateKeyDer::Pkcs8(id.key.clone_key())).unwrap();
    let creds = DeviceCredentials::new(
        id.chain.clone(),
        se.idevid_signer(),
        world.manufacturer.root_der().clone(),
        world.manufacturer.dcs_realm(),
    )
    .unwrap();
    creds.certified.keys_match().unwrap();

    // The EAP-TLS 1.3 conversation between the DCS and the device.
    let settings = Settings::default();
    let (mut server, mut request) = EapTlsServer::start(&world.dcs, settings, now, 1).unwrap();
    let mut peer = EapTlsPeer::new(&creds, settings, "anonymous@dcs.example", now).unwrap();
    let mut outcomes = None;
    for _ in 0..100 {
        let PeerStep::Send(response) = peer.handle(&request) else {
            panic!("the peer stopped early")
        };
        match server.handle(&response) {
            ServerStep::Send(next) => request = next,
            ServerStep::Done(last, server_outcome) => {
                let PeerStep::Done(peer_outcome) = peer.handle(&last) else {
                    panic!("the peer did not finish")
                };
                outcomes = Some((server_outcome, peer_outcome));
                break;
            }
            ServerStep::Ignored(why) => panic!("{why}"),
        }
    }
    let (ServerOutcome::Success(server), PeerOutcome::Success(peer)) = outcomes.unwrap() else {
        panic!("EAP-TLS failed")
    };
    assert_eq!(server.keys.emsk, peer.emsk, "both ends hold the same EMSK");
}

fn interrupted_installations_leave_old_new_or_none(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    let mut net = Network::new(103);
    net.provision(&mut se);
    authenticate(&mut se, &mut net);
    let installed = se.installed();
    let window = se.sqn_window().unwrap();
    drop(se);

    let session = raw_session(config);
    let record = one(&session, ObjectClass::DATA, SUBSCRIPTION_LABEL);
    let committed = value(&session, record)[1..17].to_vec();
    // Leftovers of an installation cut before its commit record ...
    let other = common::random::<16>();
    let data = |label: &str, payload: &[u8]| {
        let mut v = vec![1u8];
        v.extend_from_slice(&other);
        v.extend_from_slice(payload);
        session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Value(v),
            ])
            .unwrap()
    };
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
            Attribute::Value(vec![0x11; 16]),
            Attribute::Label(K_LABEL.as_bytes().to_vec()),
            Attribute::Id(other.to_vec()),
        ])
        .unwrap();
    data(OPC_LABEL, &[0x22; 16]);
    data(SQN_WINDOW_LABEL, &[0; 264]);
    // ... and a window update cut between creating the new window and
    // destroying the old one: the newer has one more SEQ in slot 30.
    let mut newer = value(
        &session,
        objects(&session, ObjectClass::DATA, SQN_WINDOW_LABEL)
            .into_iter()
            .find(|o| value(&session, *o)[1..17] == committed[..])
            .unwrap(),
    );
    let slot30 = 17 + 30 * 8;
    newer[slot30 + 7] = newer[slot30 + 7].wrapping_add(1);
    session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(SQN_WINDOW_LABEL.as_bytes().to_vec()),
            Attribute::Value(newer),
        ])
        .unwrap();
    assert_eq!(counts(&session), [2, 2, 3, 1]);

    let mut se = Pkcs11Se::open(config).unwrap();
    assert_eq!(se.installed(), installed, "the committed subscription");
    let reopened = se.sqn_window().unwrap();
    assert_eq!(
        reopened.seqs()[30],
        window.seqs()[30] + 1,
        "the newer window"
    );
    assert_eq!(counts(&session), [1, 1, 1, 1], "leftovers removed");
    authenticate(&mut se, &mut net);
    drop(se);

    // A cut after the old commit record was destroyed and before the new
    // one was written: no subscription, and nothing of it left.
    session.destroy_object(record).unwrap();
    let se = Pkcs11Se::open(config).unwrap();
    assert!(!se.has_subscription());
    assert_eq!(se.installed(), None);
    assert_eq!(counts(&session), [0, 0, 0, 0]);
}

fn reinstalling_replaces_the_subscription(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    let mut first = Network::new(104);
    first.provision(&mut se);
    authenticate(&mut se, &mut first);
    let mut second = Network::new(105);
    second.provision(&mut se);
    assert_eq!(se.installed().unwrap().supi, second.package.supi);
    assert_eq!(se.sqn_window(), Some(nido_sec::SqnWindow::default()));
    assert_eq!(counts(&raw_session(config)), [1, 1, 1, 1]);
    authenticate(&mut se, &mut second);
    let c = first.challenge();
    assert_eq!(
        se.authenticate(&c.rand, &c.autn, SNN).unwrap_err(),
        SeAkaError::Aka(AkaFailure::MacFailure),
        "the old K is gone"
    );
    drop(se);
    let mut se = Pkcs11Se::open(config).unwrap();
    assert_eq!(se.installed().unwrap().supi, second.package.supi);
    authenticate(&mut se, &mut second);

    // A refused package leaves the installed subscription as it was.
    let public_key = se.new_provisioning_key().unwrap();
    let mut sealed = nido_prov::package::seal(
        &first.package,
        &public_key,
        &common::binding(),
        &common::k_prov(),
    )
    .unwrap();
    sealed.ciphertext[5] ^= 1;
    assert!(matches!(
        se.install_package(&sealed, &common::binding(), &common::k_prov()),
        Err(SeError::Sealed(nido_prov::ProvError::Open))
    ));
    assert_eq!(se.installed().unwrap().supi, second.package.supi);
    authenticate(&mut se, &mut second);
}

fn erase_removes_every_subscription_object(config: &Pkcs11Config) {
    let (mut se, _) = element(config);
    let net = Network::new(106);
    net.provision(&mut se);
    se.try_erase_subscription().unwrap();
    assert!(!se.has_subscription());
    assert_eq!(counts(&raw_session(config)), [0, 0, 0, 0]);
    // The IDevID key stays.
    assert_eq!(
        objects(&raw_session(config), ObjectClass::PRIVATE_KEY, IDEVID_LABEL).len(),
        1
    );
    net.provision(&mut se);
    se.erase_subscription();
    drop(se);
    assert!(!Pkcs11Se::open(config).unwrap().has_subscription());
}

/// A factory reset (issue #16) computes its proof with K inside the token
/// (MILENAGE f3, f4 through `CKM_AES_ECB`), signs with the token's IDevID
/// key, destroys every subscription object and keeps the receipt across a
/// reopen; a reset cut after its receipt but before the erasure is
/// finished by the next open.
fn a_reset_keeps_a_receipt_and_an_interrupted_one_is_finished(config: &Pkcs11Config) {
    let (mut se, key) = element(config);
    assert_eq!(
        se.reset("ACME-1", 1_800_000_000),
        Err(SeError::NoSubscription)
    );
    let net = Network::new(107);
    net.provision(&mut se);
    let receipt = se.reset("ACME-1", 1_800_000_000).unwrap();
    assert_eq!(receipt.counter, 1);
    assert_receipt_for(&receipt, &net, &key);
    assert!(!se.has_subscription());
    assert_eq!(counts(&raw_session(config)), [0, 0, 0, 0]);
    assert_eq!(se.erasure_receipt(), Some(receipt.clone()));
    drop(se);
    let se = Pkcs11Se::open(config).unwrap();
    assert_eq!(se.erasure_receipt(), Some(receipt.clone()));
    drop(se);

    // The cut: the receipt for this package is in the token and the
    // subscription too. Installing the same package again (which spends
    // the receipt: the object keeps the count only) and putting back a
    // newer receipt object for it, as a reset writes it before it erases,
    // makes exactly that state. Opening finishes the reset.
    let mut se = Pkcs11Se::open(config).unwrap();
    net.provision(&mut se);
    assert!(se.has_subscription());
    assert_eq!(se.erasure_receipt(), None, "spent by the new package");
    drop(se);
    let session = raw_session(config);
    let spent = objects(&session, ObjectClass::DATA, ERASURE_LABEL);
    assert_eq!(spent.len(), 1);
    assert_eq!(value(&session, spent[0]).len(), 1 + 16 + 8);
    drop(session);
    let mut cut = vec![1u8];
    cut.extend_from_slice(&net.package.package_id);
    cut.extend_from_slice(&2u64.to_be_bytes());
    cut.extend_from_slice(&receipt.encode());
    raw_session(config)
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(ERASURE_LABEL.as_bytes().to_vec()),
            Attribute::Application(b"nido-se".to_vec()),
            Attribute::Value(cut),
        ])
        .unwrap();
    let se = Pkcs11Se::open(config).unwrap();
    assert!(!se.has_subscription(), "the interrupted reset was finished");
    assert_eq!(counts(&raw_session(config)), [0, 0, 0, 0]);
    assert_eq!(se.erasure_receipt(), Some(receipt));
    drop(se);

    // A new package, a second reset: counted on, one receipt object.
    let mut se = Pkcs11Se::open(config).unwrap();
    let other = Network::new(108);
    other.provision(&mut se);
    let second = se.reset("ACME-1", 1_800_000_100).unwrap();
    assert_eq!(second.counter, 3);
    assert_receipt_for(&second, &other, &key);
    assert_eq!(
        objects(&raw_session(config), ObjectClass::DATA, ERASURE_LABEL).len(),
        1
    );
}

fn wrong_pin_unknown_token_and_a_second_import_are_refused(config: &Pkcs11Config) {
    let unknown = Pkcs11Config::softhsm2("no-such-token", PIN);
    assert!(matches!(
        Pkcs11Se::open(&unknown),
        Err(SeError::TokenNotFound { .. })
    ));
    // Nothing imported yet: open says so.
    let err = Pkcs11Se::open(config).unwrap_err();
    assert!(matches!(err, SeError::IdentityKey(_)), "{err:?}");
    let (se, _) = element(config);
    let err = Pkcs11Se::create(config, &idevid_key()).unwrap_err();
    assert!(matches!(err, SeError::IdentityKey(_)), "{err:?}");
    drop(se);
    // Only ECDSA P-256 PKCS#8 keys go into the token.
    let ed =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .unwrap();
    let err =
        Pkcs11Se::create(config, &PrivateKeyDer::Pkcs8(ed.as_ref().to_vec().into())).unwrap_err();
    assert!(matches!(err, SeError::IdentityKey(_)), "{err:?}");
    // A wrong PIN, once every session of the token is closed (login state
    // is per application while a session is open).
    let wrong = Pkcs11Config::softhsm2(&config.token_label, "0000-wrong");
    let err = Pkcs11Se::open(&wrong).unwrap_err();
    assert!(
        matches!(&err, SeError::Token { op: "C_Login", reason } if reason.contains("PinIncorrect")),
        "{err:?}"
    );
}
