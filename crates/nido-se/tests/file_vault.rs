#![allow(clippy::unwrap_used, clippy::expect_used)]
//! [`FileSe`]: state survives a restart, every write is atomic and happens
//! before its result is used, the vault holds no secret in clear, and a
//! damaged vault is a clear error, never a panic.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use common::{
    Network, SNN, TempDir, assert_receipt_for, contains, idevid_key, idevid_point, idevid_scalar,
};
use nido_prov::PublicPart;
use nido_se::file::{KEY_FILE, VAULT_FILE, VAULT_TMP_FILE};
use nido_se::{FileSe, SeAkaError, SeError, SecureElement};
use nido_sec::SqnWindow;
use nido_sec::aka::AkaFailure;
use rustls::SignatureScheme;

type State = (Option<PublicPart>, Option<SqnWindow>);

fn state(se: &FileSe) -> State {
    (se.installed(), se.sqn_window())
}

fn authenticate(se: &mut FileSe, net: &mut Network) {
    let c = net.challenge();
    let ue = se.authenticate(&c.rand, &c.autn, SNN).unwrap();
    assert!(c.seaf_accepts(&ue.res_star));
}

#[test]
fn install_authenticate_and_reopen_give_the_same_state() {
    let dir = TempDir::new("reopen");
    let key = idevid_key();
    let mut net = Network::new(1);
    let mut se = FileSe::create(dir.path(), &key).unwrap();
    assert!(!se.has_subscription());
    assert_eq!(se.installed(), None);
    let installed = net.provision(&mut se);
    assert_eq!(se.installed(), Some(installed.public.clone()));
    let mut last = None;
    for _ in 0..3 {
        let c = net.challenge();
        let ue = se.authenticate(&c.rand, &c.autn, SNN).unwrap();
        assert!(c.seaf_accepts(&ue.res_star));
        last = Some((c.rand, c.autn));
        let (_, kausf) = c.confirm(&ue.res_star, SNN).unwrap();
        assert_eq!(kausf, ue.kausf);
    }
    let before = state(&se);
    drop(se);

    let mut se = FileSe::open(dir.path()).unwrap();
    assert_eq!(state(&se), before, "same public part and SQN window");
    assert_eq!(se.installed().unwrap().supi, net.package.supi);
    // The window is not behind: the last challenge is a replay now.
    let (rand, autn) = last.unwrap();
    let err = se.authenticate(&rand, &autn, SNN).unwrap_err();
    let SeAkaError::Aka(AkaFailure::SynchFailure { auts }) = err else {
        panic!("{err:?}")
    };
    // The network resynchronises from the AUTS and goes on.
    net.he = nido_sec::aka::resynchronise(&net.milenage, net.he, &rand, &auts).unwrap();
    authenticate(&mut se, &mut net);

    // The IDevID key came back too: it signs, and the signature verifies
    // with the factory key's public key.
    let signer = se
        .idevid_signer()
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .unwrap();
    let sig = signer.sign(b"certificate verify").unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, idevid_point(&key))
        .verify(b"certificate verify", &sig)
        .unwrap();
}

#[test]
fn a_provisioning_key_is_persisted_before_it_is_returned() {
    let dir = TempDir::new("provkey");
    let net = Network::new(2);
    let mut se = FileSe::create(dir.path(), &idevid_key()).unwrap();
    let public_key = se.new_provisioning_key().unwrap();
    drop(se);
    // The device restarts between its request and the package's arrival.
    let mut se = FileSe::open(dir.path()).unwrap();
    let sealed = nido_prov::package::seal(
        &net.package,
        &public_key,
        &common::binding(),
        &common::k_prov(),
    )
    .unwrap();
    se.install_package(&sealed, &common::binding(), &common::k_prov())
        .unwrap();
    // Single use, also across a restart.
    drop(se);
    let mut se = FileSe::open(dir.path()).unwrap();
    assert_eq!(
        se.install_package(&sealed, &common::binding(), &common::k_prov()),
        Err(SeError::NoProvisioningKey)
    );
    assert!(se.has_subscription());
}

/// A factory reset (issue #16): the subscription goes and a receipt that
/// proves it held the package (keyed by its K, signed by the IDevID key)
/// stays, in the same atomic vault write, across a restart; a new package
/// spends it, and the next reset counts on.
#[test]
fn a_reset_erases_and_keeps_a_receipt_across_restarts() {
    let dir = TempDir::new("reset");
    let key = idevid_key();
    let mut se = FileSe::create(dir.path(), &key).unwrap();
    assert_eq!(
        se.reset("ACME-1", 1_800_000_000),
        Err(SeError::NoSubscription)
    );
    let net = Network::new(3);
    net.provision(&mut se);
    let receipt = se.reset("ACME-1", 1_800_000_000).unwrap();
    assert_eq!(
        (receipt.counter, receipt.erased_at_unix),
        (1, 1_800_000_000)
    );
    assert!(!se.has_subscription());
    assert_eq!(se.installed(), None);
    assert_receipt_for(&receipt, &net, &key);
    let vault = fs::read(dir.path().join(VAULT_FILE)).unwrap();
    assert!(!contains(&vault, net.package.k.expose()));
    drop(se);

    let mut se = FileSe::open(dir.path()).unwrap();
    assert!(!se.has_subscription());
    assert_eq!(se.erasure_receipt(), Some(receipt.clone()));
    // Nothing left to erase: refused, and the receipt stays.
    assert_eq!(
        se.reset("ACME-1", 1_800_000_050),
        Err(SeError::NoSubscription)
    );
    assert_eq!(se.erasure_receipt(), Some(receipt));

    let other = Network::new(4);
    other.provision(&mut se);
    assert_eq!(se.erasure_receipt(), None, "a new package spends it");
    drop(se);
    let mut se = FileSe::open(dir.path()).unwrap();
    assert_eq!(se.erasure_receipt(), None);
    let second = se.reset("ACME-1", 1_800_000_100).unwrap();
    assert_eq!(second.counter, 2);
    assert_receipt_for(&second, &other, &key);
}

#[test]
fn erase_is_persisted() {
    let dir = TempDir::new("erase");
    let net = Network::new(3);
    let mut se = FileSe::create(dir.path(), &idevid_key()).unwrap();
    net.provision(&mut se);
    se.erase_subscription();
    assert!(!se.has_subscription());
    drop(se);
    let se = FileSe::open(dir.path()).unwrap();
    assert!(!se.has_subscription());
    assert_eq!(se.installed(), None);
}

#[test]
fn the_vault_holds_no_secret_in_clear() {
    let dir = TempDir::new("clear");
    let key = idevid_key();
    let net = Network::new(4);
    let mut se = FileSe::create(dir.path(), &key).unwrap();
    net.provision(&mut se);
    let vault = fs::read(dir.path().join(VAULT_FILE)).unwrap();
    let scalar = idevid_scalar(&key);
    let rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8) = &key else {
        unreachable!()
    };
    for (what, secret) in [
        ("K", &net.k[..]),
        ("OPc", &net.opc[..]),
        ("IDevID scalar", &scalar[..]),
        ("IDevID PKCS#8", pkcs8.secret_pkcs8_der()),
        ("LwM2M PSK", &[0x5a; 16][..]),
    ] {
        // Not even 6 consecutive octets of it.
        for part in secret.windows(6) {
            assert!(!contains(&vault, part), "{what} in clear in the vault");
        }
    }
    assert!(!contains(&vault, net.package.supi.to_string().as_bytes()));
    for file in [KEY_FILE, VAULT_FILE] {
        let mode = fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let debug = format!("{se:?}");
    assert!(!debug.contains(&hex::encode(net.k)), "{debug}");
}

#[test]
fn a_damaged_or_foreign_vault_is_a_clear_error() {
    let dir = TempDir::new("damaged");
    let net = Network::new(5);
    let mut se = FileSe::create(dir.path(), &idevid_key()).unwrap();
    net.provision(&mut se);
    let good = state(&se);
    drop(se);
    let vault_path = dir.path().join(VAULT_FILE);
    let key_path = dir.path().join(KEY_FILE);
    let vault = fs::read(&vault_path).unwrap();

    // A leftover temporary file with garbage: an unfinished write.
    fs::write(dir.path().join(VAULT_TMP_FILE), b"garbage from a power cut").unwrap();
    let se = FileSe::open(dir.path()).unwrap();
    assert_eq!(state(&se), good);
    assert!(!dir.path().join(VAULT_TMP_FILE).exists(), "removed on open");
    drop(se);

    let expect_corrupt = |bytes: &[u8], what: &str| {
        fs::write(&vault_path, bytes).unwrap();
        match FileSe::open(dir.path()) {
            Err(SeError::VaultCorrupt { path, reason }) => {
                assert_eq!(path, vault_path, "{what}");
                let text = SeError::VaultCorrupt {
                    path: path.clone(),
                    reason,
                }
                .to_string();
                assert!(
                    text.contains("corrupt or not this device's vault"),
                    "{text}"
                );
                assert!(text.contains(&*vault_path.to_string_lossy()), "{text}");
            }
            other => panic!("{what}: {other:?}"),
        }
    };
    expect_corrupt(&vault[..vault.len() / 2], "truncated");
    expect_corrupt(&[], "empty");
    let mut flipped = vault.clone();
    let last = flipped.len() - 20;
    flipped[last] ^= 0x10;
    expect_corrupt(&flipped, "flipped");

    let mut other_version = vault.clone();
    other_version[9] = 9;
    fs::write(&vault_path, &other_version).unwrap();
    assert!(matches!(
        FileSe::open(dir.path()),
        Err(SeError::VaultVersion {
            found: 9,
            supported: 2,
            ..
        })
    ));

    // Another device's vault (same files, another storage key).
    fs::write(&vault_path, &vault).unwrap();
    let other = TempDir::new("other");
    FileSe::create(other.path(), &idevid_key()).unwrap();
    fs::copy(&vault_path, other.path().join(VAULT_FILE)).unwrap();
    assert!(matches!(
        FileSe::open(other.path()),
        Err(SeError::VaultCorrupt { .. })
    ));

    // The key file: too widely readable, wrong length, missing.
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileSe::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, SeError::KeyFilePermissions { mode: 0o644, path } if *path == key_path),
        "{err:?}"
    );
    assert!(err.to_string().contains("0644"), "{err}");
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        state(&FileSe::open(dir.path()).unwrap()),
        good,
        "0400 is fine"
    );
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let key_bytes = fs::read(&key_path).unwrap();
    fs::write(&key_path, &key_bytes[..31]).unwrap();
    assert!(matches!(
        FileSe::open(dir.path()),
        Err(SeError::KeyFileInvalid { len: 31, .. })
    ));
    fs::remove_file(&key_path).unwrap();
    assert!(matches!(
        FileSe::open(dir.path()),
        Err(SeError::KeyFileMissing { .. })
    ));
    fs::write(&key_path, &key_bytes).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(state(&FileSe::open(dir.path()).unwrap()), good);

    // No vault; a vault already there.
    let empty = TempDir::new("empty");
    fs::copy(&key_path, empty.path().join(KEY_FILE)).unwrap();
    assert!(matches!(
        FileSe::open(empty.path()),
        Err(SeError::VaultMissing { .. })
    ));
    assert!(matches!(
        FileSe::create(dir.path(), &idevid_key()),
        Err(SeError::VaultExists { .. })
    ));
}

#[test]
fn a_failed_write_gives_no_answer_and_keeps_the_window() {
    let dir = TempDir::new("failwrite");
    let mut net = Network::new(6);
    let mut se = FileSe::create(dir.path(), &idevid_key()).unwrap();
    net.provision(&mut se);
    authenticate(&mut se, &mut net);
    let window = se.sqn_window();

    // Make the write fail: the temporary file's name is taken by a directory.
    let blocker = dir.path().join(VAULT_TMP_FILE);
    fs::create_dir(&blocker).unwrap();
    fs::write(blocker.join("x"), b"x").unwrap();
    let c = net.challenge();
    let err = se.authenticate(&c.rand, &c.autn, SNN).unwrap_err();
    assert!(
        matches!(err, SeAkaError::Element(SeError::Storage { .. })),
        "{err:?}"
    );
    assert_eq!(se.sqn_window(), window, "no answer, no advance");
    assert!(se.new_provisioning_key().is_err());

    // Storage back: the same challenge is answered now.
    fs::remove_dir_all(&blocker).unwrap();
    let ue = se.authenticate(&c.rand, &c.autn, SNN).unwrap();
    assert!(c.seaf_accepts(&ue.res_star));
    assert_eq!(state(&FileSe::open(dir.path()).unwrap()), state(&se));
}

/// A small deterministic generator for the kill points.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Builds the directory a power cut during a vault write can leave: the
/// old vault with a partial or complete temporary file, or the new vault.
fn crashed_dir(from: &Path, old: &[u8], new: &[u8], rng: &mut XorShift) -> (TempDir, bool) {
    let dir = TempDir::new("kill");
    fs::copy(from.join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
    fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
    let renamed = match rng.below(4) {
        // Cut while writing the temporary file.
        0 => {
            fs::write(dir.path().join(VAULT_FILE), old).unwrap();
            let n = rng.below(new.len() + 1);
            fs::write(dir.path().join(VAULT_TMP_FILE), &new[..n]).unwrap();
            false
        }
        // Cut after the fsync, before the rename.
        1 => {
            fs::write(dir.path().join(VAULT_FILE), old).unwrap();
            fs::write(dir.path().join(VAULT_TMP_FILE), new).unwrap();
            false
        }
        // Cut before the temporary file existed.
        2 => {
            fs::write(dir.path().join(VAULT_FILE), old).unwrap();
            false
        }
        // Cut after the rename.
        _ => {
            fs::write(dir.path().join(VAULT_FILE), new).unwrap();
            true
        }
    };
    (dir, renamed)
}

#[test]
fn two_hundred_kill_points_leave_the_old_or_the_new_state() {
    let dir = TempDir::new("killsrc");
    let mut net = Network::new(7);
    let mut se = FileSe::create(dir.path(), &idevid_key()).unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let vault_path = dir.path().join(VAULT_FILE);
    let mut kill_points = 0;
    let mut step = 0;
    while kill_points < 200 {
        let old_bytes = fs::read(&vault_path).unwrap();
        let old_state = state(&se);
        // One state change: provision at the start and now and then, else
        // answer a challenge (sometimes a replay, which changes nothing).
        let mut answered = None;
        if step == 0 || step % 37 == 0 {
            net = Network::new(7 + step);
            net.provision(&mut se);
        } else if step % 5 == 3 {
            let c = net.challenge();
            let _ = se.authenticate(&c.rand, &c.autn, SNN).unwrap();
            let err = se.authenticate(&c.rand, &c.autn, SNN).unwrap_err();
            assert!(matches!(
                err,
                SeAkaError::Aka(AkaFailure::SynchFailure { .. })
            ));
        } else {
            let c = net.challenge();
            answered = Some(se.authenticate(&c.rand, &c.autn, SNN).unwrap().sqn);
        }
        step += 1;
        let new_bytes = fs::read(&vault_path).unwrap();
        let new_state = state(&se);

        for _ in 0..2 {
            let (crashed, renamed) = crashed_dir(dir.path(), &old_bytes, &new_bytes, &mut rng);
            let reopened = FileSe::open(crashed.path()).unwrap();
            let got = state(&reopened);
            assert!(
                got == old_state || got == new_state,
                "kill point {kill_points}: neither the old nor the new state"
            );
            if renamed {
                // The method returned: what it answered is on disk.
                assert_eq!(got, new_state, "kill point {kill_points}");
                if let Some(sqn) = answered {
                    let window = reopened.sqn_window().unwrap();
                    assert_eq!(
                        window.check(sqn),
                        nido_sec::SqnVerdict::Stale {
                            sqn_ms: window.sqn_ms()
                        },
                        "the answered SQN is not fresh again after the restart"
                    );
                }
            }
            assert!(!crashed.path().join(VAULT_TMP_FILE).exists());
            kill_points += 1;

            // And a damaged vault at the same point: a clear error, no panic.
            let mut damaged = new_bytes.clone();
            let at = rng.below(damaged.len());
            damaged[at] ^= 1 << rng.below(8);
            fs::write(crashed.path().join(VAULT_FILE), &damaged).unwrap();
            drop(reopened);
            assert!(matches!(
                FileSe::open(crashed.path()),
                Err(SeError::VaultCorrupt { .. } | SeError::VaultVersion { .. })
            ));
        }
    }
}
