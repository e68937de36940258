//! [`FileSe`]: the default device vault, a directory on the device's data
//! partition.
//!
//! ```text
//! <dir>/device.key   32 random octets, mode 0600: the device storage key
//! <dir>/vault.bin    AES-256-GCM under that key of everything the element holds
//! ```
//!
//! The vault holds the IDevID private key (imported once, from the factory
//! bundle, by [`FileSe::create`]), the provisioning private key while one is
//! pending, the credential package (SUPI, K, OPc, public part) and the SQN
//! window (TS 33.102 Annex C.2). Its format is versioned; the version and a
//! magic string are the GCM additional data, and every write has a fresh
//! random nonce.
//!
//! ## Threat model
//!
//! The storage key protects against **someone who reads the vault file
//! alone**: a copied backup, a flash dump of the data partition, a vault
//! moved to another device. Such a reader learns nothing of K, OPc or the
//! private keys, and a modified, truncated or foreign vault is refused
//! ([`SeError::VaultCorrupt`]), never half-read.
//!
//! It does **not** protect against an attacker who also has `device.key`,
//! or who is root on the running device (who can read the key file or the
//! process memory). Keep `device.key` on storage that is not backed up with
//! the data (or in a TPM or token that seals it; [`crate::Pkcs11Se`] keeps K
//! itself in a token). `device.key` wider than 0600 is refused
//! ([`SeError::KeyFilePermissions`]).
//!
//! ## Durability
//!
//! Every state change is durable before the method returns: the new vault
//! is written to `vault.bin.tmp`, fsynced, renamed over `vault.bin`, and the
//! directory is fsynced. A power cut at any point leaves the old vault or
//! the new one (a leftover `vault.bin.tmp` is an unfinished write and is
//! removed by [`FileSe::open`]). [`SecureElement::authenticate`] persists
//! the advanced SQN window *before* it returns RES*; if the write fails it
//! returns an error and does not answer, so the window on disk is never
//! behind a RES* that left the element. In-memory state changes only after
//! the write succeeded — except [`SecureElement::erase_subscription`],
//! whose trait signature cannot report a failed write: it forgets the
//! subscription in memory regardless (use [`FileSe::try_erase_subscription`]
//! to learn whether it is gone from disk too).
//!
//! One process owns a vault directory at a time; nothing here locks it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nido_prov::ErasureReceipt;
use nido_prov::package::{Binding, CredentialPackage, PublicPart, SealedPackage};
use nido_sec::aka::{UeAka, ue_respond};
use nido_sec::{KProv, Milenage, PrivateKey32, SqnWindow};
use rustls::pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use crate::vault::{self, VaultError, VaultRef};
use crate::{Installed, SeAkaError, SeError, SecureElement, storage};

/// The device storage key file in a vault directory.
pub const KEY_FILE: &str = "device.key";
/// The vault file in a vault directory.
pub const VAULT_FILE: &str = "vault.bin";
/// The temporary file a vault write goes through.
pub const VAULT_TMP_FILE: &str = "vault.bin.tmp";
/// The vault format version this build reads and writes.
pub const VAULT_VERSION: u16 = vault::VERSION;

const STORAGE_KEY_LEN: usize = 32;

struct Subscription {
    /// The package's version-1 CBOR, K and OPc included: what the vault stores.
    package_cbor: Zeroizing<Vec<u8>>,
    milenage: Milenage,
    window: SqnWindow,
    public: PublicPart,
}

impl Subscription {
    fn from_package(
        package: CredentialPackage,
        window: SqnWindow,
    ) -> Result<(Self, [u8; 32]), String> {
        let package_cbor = package.to_cbor().map_err(|e| e.to_string())?;
        let (secrets, public) = package.split();
        let mac = secrets.confirmation_mac(&public.package_id);
        Ok((
            Self {
                package_cbor,
                milenage: Milenage::new(&secrets.k, &secrets.opc),
                window,
                public,
            },
            mac,
        ))
    }
}

/// A secure element persisted in an encrypted vault directory (see the
/// [module documentation](self) for the layout, the threat model and the
/// durability rules).
pub struct FileSe {
    dir: PathBuf,
    storage_key: Zeroizing<[u8; STORAGE_KEY_LEN]>,
    idevid_der: PrivateKeyDer<'static>,
    idevid: Arc<dyn rustls::sign::SigningKey>,
    provisioning: Option<PrivateKey32>,
    subscription: Option<Subscription>,
    resets: u64,
    /// The last reset's receipt and its CBOR (what the vault keeps), until
    /// a package is installed.
    receipt: Option<(ErasureReceipt, Vec<u8>)>,
}

impl core::fmt::Debug for FileSe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileSe")
            .field("dir", &self.dir)
            .field("provisioning_key", &self.provisioning.is_some())
            .field("subscription", &self.subscription.is_some())
            .finish_non_exhaustive()
    }
}

fn signer(key: &PrivateKeyDer<'_>) -> Result<Arc<dyn rustls::sign::SigningKey>, SeError> {
    rustls::crypto::aws_lc_rs::sign::any_supported_type(key)
        .map_err(|e| SeError::IdentityKey(e.to_string()))
}

/// fsyncs a directory, so that a rename or a new file in it is durable.
fn sync_dir(dir: &Path) -> Result<(), SeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage(dir, "fsync directory", &e))
}

/// Refuses a secret file (`meta` is its metadata) that its group or others
/// may read, write or execute: mode wider than 0600. A key other accounts
/// can read is as good as published. The device's storage key passes
/// through it, and so do the network's key files (OP, key-encryption key,
/// SUCI and DCS keys: `nido network serve`).
pub fn refuse_open_mode(path: &Path, meta: &fs::Metadata) -> Result<(), SeError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SeError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads the storage key, refusing a missing, wrongly sized or too widely
/// readable file.
fn read_storage_key(path: &Path) -> Result<Zeroizing<[u8; STORAGE_KEY_LEN]>, SeError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(SeError::KeyFileMissing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(storage(path, "stat", &e)),
    };
    refuse_open_mode(path, &meta)?;
    if !meta.is_file() || meta.len() != STORAGE_KEY_LEN as u64 {
        return Err(SeError::KeyFileInvalid {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut key = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
    let mut file = File::open(path).map_err(|e| storage(path, "open", &e))?;
    file.read_exact(key.as_mut_slice())
        .map_err(|e| storage(path, "read", &e))?;
    // Nothing after the 32 octets (the file may have grown since the stat).
    let mut extra = [0u8; 1];
    match file.read(&mut extra) {
        Ok(0) => Ok(key),
        Ok(_) => Err(SeError::KeyFileInvalid {
            path: path.to_path_buf(),
            len: meta.len() + 1,
        }),
        Err(e) => Err(storage(path, "read", &e)),
    }
}

/// Creates a fresh storage key file (0600, fsynced, directory fsynced).
fn create_storage_key(
    dir: &Path,
    path: &Path,
) -> Result<Zeroizing<[u8; STORAGE_KEY_LEN]>, SeError> {
    let mut key = Zeroizing::new([0u8; STORAGE_KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut_slice())
        .map_err(|_| SeError::Crypto("no randomness for the storage key".into()))?;
    // Written beside, then renamed into place: a power cut leaves no key
    // file or a whole one, never an empty one.
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| storage(&tmp, "create", &e))?;
    file.write_all(key.as_slice())
        .and_then(|()| file.sync_all())
        .map_err(|e| storage(&tmp, "write", &e))?;
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        return Err(storage(
            path,
            "create",
            &std::io::Error::new(ErrorKind::AlreadyExists, "a storage key exists already"),
        ));
    }
    fs::rename(&tmp, path).map_err(|e| storage(path, "rename", &e))?;
    sync_dir(dir)?;
    Ok(key)
}

/// Replaces `dir/name` by `bytes` atomically and durably: write
/// `dir/name.tmp` (0600), fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, bytes: &[u8]) -> Result<(), SeError> {
    let tmp = dir.join(VAULT_TMP_FILE);
    let target = dir.join(VAULT_FILE);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(storage(&tmp, "remove stale temporary file", &e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| storage(&tmp, "create", &e))?;
    file.write_all(bytes)
        .map_err(|e| storage(&tmp, "write", &e))?;
    file.sync_all().map_err(|e| storage(&tmp, "fsync", &e))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(|e| storage(&target, "rename", &e))?;
    sync_dir(dir)
}

impl FileSe {
    /// Makes a new vault in `dir` (created 0700 if missing) holding the
    /// IDevID private key from the factory bundle, and the storage key file
    /// if there is none yet. Refuses a directory that has a vault already
    /// ([`SeError::VaultExists`]).
    pub fn create(dir: impl AsRef<Path>, idevid_key: &PrivateKeyDer<'_>) -> Result<Self, SeError> {
        let dir = dir.as_ref().to_path_buf();
        let idevid = signer(idevid_key)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| storage(&dir, "create directory", &e))?;
        let vault_path = dir.join(VAULT_FILE);
        if vault_path.exists() {
            return Err(SeError::VaultExists { path: vault_path });
        }
        let key_path = dir.join(KEY_FILE);
        // A key file without a vault: an earlier create stopped in between.
        // Nothing was ever sealed under it, so a malformed one (an older
        // build's interrupted write) is replaced rather than refused.
        let storage_key = match key_path.exists().then(|| read_storage_key(&key_path)) {
            Some(Ok(key)) => key,
            Some(Err(SeError::KeyFileInvalid { .. })) => {
                fs::remove_file(&key_path).map_err(|e| storage(&key_path, "remove", &e))?;
                create_storage_key(&dir, &key_path)?
            }
            Some(Err(e)) => return Err(e),
            None => create_storage_key(&dir, &key_path)?,
        };
        let se = Self {
            dir,
            storage_key,
            idevid_der: idevid_key.clone_key(),
            idevid,
            provisioning: None,
            subscription: None,
            resets: 0,
            receipt: None,
        };
        se.write(&se.snapshot())?;
        Ok(se)
    }

    /// Opens the vault in `dir`. Errors name the file and what is wrong: a
    /// missing or too widely readable key file, a missing vault, a vault
    /// that does not decrypt ("corrupt or not this device's vault"), an
    /// unknown format version. A leftover `vault.bin.tmp` (a write that did
    /// not finish) is removed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SeError> {
        let dir = dir.as_ref().to_path_buf();
        let storage_key = read_storage_key(&dir.join(KEY_FILE))?;
        let vault_path = dir.join(VAULT_FILE);
        let bytes = match fs::read(&vault_path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(SeError::VaultMissing { path: vault_path });
            }
            Err(e) => return Err(storage(&vault_path, "read", &e)),
        };
        let content = vault::open(&storage_key, &bytes).map_err(|e| match e {
            VaultError::Version(found) => SeError::VaultVersion {
                path: vault_path.clone(),
                found,
                supported: vault::VERSION,
            },
            VaultError::Corrupt(reason) => SeError::VaultCorrupt {
                path: vault_path.clone(),
                reason,
            },
        })?;
        let idevid = signer(&content.idevid).map_err(|e| SeError::VaultCorrupt {
            path: vault_path.clone(),
            reason: e.to_string(),
        })?;
        let subscription = match content.subscription {
            None => None,
            Some((cbor, window)) => {
                let package =
                    CredentialPackage::from_cbor(&cbor).map_err(|e| SeError::VaultCorrupt {
                        path: vault_path.clone(),
                        reason: format!("credential package: {e}"),
                    })?;
                let (sub, _) = Subscription::from_package(package, window).map_err(|reason| {
                    SeError::VaultCorrupt {
                        path: vault_path.clone(),
                        reason,
                    }
                })?;
                Some(sub)
            }
        };
        let (resets, receipt) = content.resets;
        let receipt = match receipt {
            None => None,
            Some(cbor) => Some((
                ErasureReceipt::decode(&cbor).map_err(|e| SeError::VaultCorrupt {
                    path: vault_path.clone(),
                    reason: format!("erasure receipt: {e}"),
                })?,
                cbor,
            )),
        };
        let tmp = dir.join(VAULT_TMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(storage(&tmp, "remove unfinished write", &e)),
        }
        Ok(Self {
            dir,
            storage_key,
            idevid_der: content.idevid,
            idevid,
            provisioning: content.provisioning,
            subscription,
            resets,
            receipt,
        })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Erases the subscription from memory and from the vault, reporting a
    /// failed write (after which the subscription is gone from memory but may
    /// still be in the vault file until the next successful write).
    pub fn try_erase_subscription(&mut self) -> Result<(), SeError> {
        self.subscription = None;
        self.write(&self.snapshot())
    }

    fn snapshot(&self) -> VaultRef<'_> {
        VaultRef {
            idevid: &self.idevid_der,
            provisioning: self.provisioning.as_ref(),
            subscription: self
                .subscription
                .as_ref()
                .map(|s| (s.package_cbor.as_slice(), &s.window)),
            resets: (
                self.resets,
                self.receipt.as_ref().map(|(_, cbor)| cbor.as_slice()),
            ),
        }
    }

    fn write(&self, v: &VaultRef<'_>) -> Result<(), SeError> {
        let bytes = vault::seal(&self.storage_key, v).map_err(SeError::Crypto)?;
        write_atomically(&self.dir, &bytes)
    }
}

impl SecureElement for FileSe {
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey> {
        self.idevid.clone()
    }

    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError> {
        let (private, public) = crate::provisioning_key_pair()?;
        self.write(&VaultRef {
            provisioning: Some(&private),
            ..self.snapshot()
        })?;
        self.provisioning = Some(private);
        Ok(public)
    }

    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError> {
        let private = self
            .provisioning
            .as_ref()
            .ok_or(SeError::NoProvisioningKey)?;
        let opened = crate::open_package(sealed, private, binding, k_prov);
        let opened = match opened {
            Ok(p) => p,
            Err(refused) => {
                // The key is single use even when the package is refused.
                // Best effort: if the vault cannot be written, the key stays
                // (on disk and here) and the refusal is what the caller hears.
                if self
                    .write(&VaultRef {
                        provisioning: None,
                        ..self.snapshot()
                    })
                    .is_ok()
                {
                    self.provisioning = None;
                }
                return Err(refused);
            }
        };
        let (sub, confirmation_mac) =
            Subscription::from_package(opened, SqnWindow::default()).map_err(SeError::Package)?;
        // The new package spends the receipt of the last reset.
        self.write(&VaultRef {
            provisioning: None,
            subscription: Some((sub.package_cbor.as_slice(), &sub.window)),
            resets: (self.resets, None),
            ..self.snapshot()
        })?;
        let public = sub.public.clone();
        self.provisioning = None;
        self.subscription = Some(sub);
        self.receipt = None;
        Ok(Installed {
            public,
            confirmation_mac,
        })
    }

    fn has_subscription(&self) -> bool {
        self.subscription.is_some()
    }

    fn installed(&self) -> Option<PublicPart> {
        self.subscription.as_ref().map(|s| s.public.clone())
    }

    fn erase_subscription(&mut self) {
        // See the module documentation: the trait cannot report the error.
        let _ = self.try_erase_subscription();
    }

    fn reset(&mut self, serial: &str, erased_at_unix: u64) -> Result<ErasureReceipt, SeError> {
        let sub = self.subscription.as_ref().ok_or(SeError::NoSubscription)?;
        let resets = self.resets.saturating_add(1);
        let receipt = crate::make_receipt(
            self.idevid.as_ref(),
            serial,
            sub.public.package_id,
            resets,
            erased_at_unix,
            |receipt| Ok(receipt.proof_with(&sub.milenage)),
        )?;
        let cbor = receipt.encode();
        // One atomic write: the erasure and its receipt together.
        self.write(&VaultRef {
            provisioning: None,
            subscription: None,
            resets: (resets, Some(&cbor)),
            ..self.snapshot()
        })?;
        self.provisioning = None;
        self.subscription = None;
        self.resets = resets;
        self.receipt = Some((receipt.clone(), cbor));
        Ok(receipt)
    }

    fn erasure_receipt(&self) -> Option<ErasureReceipt> {
        match (&self.subscription, &self.receipt) {
            (None, Some((receipt, _))) => Some(receipt.clone()),
            _ => None,
        }
    }

    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError> {
        let sub = self.subscription.as_ref().ok_or(SeError::NoSubscription)?;
        let mut window = sub.window.clone();
        let answer = ue_respond(&sub.milenage, &mut window, rand, autn, snn)?;
        // The advanced window is on disk before RES* leaves; if it cannot
        // be written, the answer is dropped (zeroized) and not given.
        self.write(&VaultRef {
            subscription: Some((sub.package_cbor.as_slice(), &window)),
            ..self.snapshot()
        })?;
        if let Some(sub) = self.subscription.as_mut() {
            sub.window = window;
        }
        Ok(answer)
    }

    fn sqn_window(&self) -> Option<SqnWindow> {
        self.subscription.as_ref().map(|s| s.window.clone())
    }
}
