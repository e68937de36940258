//! The factory bundle: what the production line flashes into one device,
//! and the claim code printed on its label.
//!
//! ```text
//! OUTDIR/<serial>/
//!   device.key      the device's PKCS#8 private key (PEM), 0600
//!   device.pem      the IDevID certificate
//!   chain.pem       IDevID + issuing CA: what the device sends in TLS
//!   mfr-root.pem    the manufacturer root: the device's trust anchor for the DCS
//!   manifest.json   format, serial, manufacturer, dcs_realm, kausf_from
//!                   ("msk" when the manufacturer runs its own DCS behind
//!                   the operator's AAA relay; absent means "emsk"), files
//!                   with their SHA-256 (no claim code: the device never
//!                   needs it)
//! OUTDIR/labels/<serial>.txt  the claim code for the box label and the
//!                   owner, 0600; never flashed into the device
//! OUTDIR/claims.csv serial,claim_code_hash for the operator (no codes)
//! ```
//!
//! The claim code is kept out of the bundle (issue #17): whoever reads a
//! device's flash must not be able to claim it before its owner does.
//!
//! A bundle is written into `OUTDIR/.<serial>.partial/` and renamed to
//! `OUTDIR/<serial>/` when complete, so a directory named after a serial is
//! always a whole bundle. Bundle files are not `fsync`ed one by one (100 000
//! bundles are 600 000 files); the caller syncs `OUTDIR` at the end, and the
//! issuance log and `claims.csv` are `fsync`ed before the bundles they
//! describe are written.
//!
//! # Claim codes
//!
//! 16 characters of Crockford base32 (`0-9 A-Z` without `I L O U`) in four
//! groups, e.g. `7K3M-QX2T-9HZD-0WFA`: 80 random bits, easy to read aloud
//! and type. The owner types it to claim the device; the network stores
//! only [`claim_code_hash`], SHA-256 of the normalised code, and accepts a
//! code once (the PVS enforces one-time use). Normalising upper-cases,
//! drops `-` and spaces, and reads `O` as `0` and `I`/`L` as `1`, so a
//! mistyped look-alike still matches.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;
use zeroize::Zeroizing;

use crate::PkiError;
use crate::ca::{DeviceIdentity, ServerIdentity, check_serial};
use crate::files::{self, MODE_PUBLIC, MODE_SECRET};
pub use nido_sec::kdf::KausfFrom;

/// The manifest format this crate writes and reads.
pub const BUNDLE_FORMAT: u32 = 1;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A claim code. `Debug` redacts it; the buffer is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimCode(String);

impl ClaimCode {
    /// A fresh random code, `XXXX-XXXX-XXXX-XXXX`.
    pub fn generate() -> Result<Self, PkiError> {
        let mut raw = Zeroizing::new([0u8; 10]);
        aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| PkiError::Random)?;
        // 80 bits -> 16 symbols of 5 bits.
        let mut acc: u128 = raw.iter().fold(0u128, |a, b| (a << 8) | u128::from(*b));
        let mut s = String::with_capacity(19);
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                s.push('-');
            }
            let sym = ((acc >> 75) & 31) as usize;
            acc <<= 5;
            s.push(char::from(CROCKFORD[sym]));
        }
        acc.zeroize();
        Ok(Self(s))
    }

    /// Reads a code as a person typed it (any case, with or without
    /// dashes/spaces, `O`/`I`/`L` look-alikes accepted).
    pub fn parse(text: &str) -> Result<Self, PkiError> {
        let n = Zeroizing::new(normalise(text));
        if n.len() != 16 || !n.bytes().all(|b| CROCKFORD.contains(&b)) {
            return Err(PkiError::invalid(
                "claim code",
                "expected 16 characters of 0-9 A-Z (without I L O U), e.g. 7K3M-QX2T-9HZD-0WFA",
            ));
        }
        let mut s = String::with_capacity(19);
        for (i, c) in n.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                s.push('-');
            }
            s.push(c);
        }
        Ok(Self(s))
    }

    /// The code in its printed form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the network stores: [`claim_code_hash`] of this code.
    pub fn hash(&self) -> String {
        claim_code_hash(&self.0)
    }
}

impl Drop for ClaimCode {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ClaimCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimCode([redacted])")
    }
}

fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !(c.is_whitespace() || *c == '-'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

/// SHA-256 (lower-case hex) of the normalised claim code: what the network
/// stores and compares. Any text hashes (an invalid code simply never
/// matches).
pub fn claim_code_hash(code: &str) -> String {
    let n = Zeroizing::new(normalise(code));
    hex::encode(files::sha256(n.as_bytes()))
}

/// One file of a bundle, as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name inside the bundle directory.
    pub name: String,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`BUNDLE_FORMAT`].
    pub format: u32,
    /// The device serial.
    pub serial: String,
    /// The manufacturer's name.
    pub manufacturer: String,
    /// The realm of the manufacturer's DCS (for the onboarding SUCI).
    pub dcs_realm: String,
    /// Which EAP key the device derives K_AUSF from after onboarding:
    /// `"msk"` when its manufacturer runs its own DCS, which the onboarding
    /// network reaches over AAA (TS 33.501 I.9.2.3); `"emsk"` (the
    /// network's built-in DCS, B.2.1.1) is the default, not written, so
    /// older bundles read as before and older readers read these.
    #[serde(default, skip_serializing_if = "KausfFrom::is_emsk")]
    pub kausf_from: KausfFrom,
    /// The claim code of bundles written before issue #17; read and
    /// ignored, never written (the code is on the label, not the device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_code: Option<String>,
    /// Role (`key`, `certificate`, `chain`, `trust_anchor`) → file.
    pub files: BTreeMap<String, ManifestFile>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("format", &self.format)
            .field("serial", &self.serial)
            .field("manufacturer", &self.manufacturer)
            .field("dcs_realm", &self.dcs_realm)
            .field("kausf_from", &self.kausf_from)
            .field("claim_code", &format_args!("[redacted]"))
            .field("files", &self.files)
            .finish()
    }
}

impl Drop for Manifest {
    fn drop(&mut self) {
        if let Some(code) = &mut self.claim_code {
            code.zeroize();
        }
    }
}

/// A device's factory bundle, loaded back from its directory.
#[derive(Debug)]
pub struct FactoryBundle {
    /// The manifest as written.
    pub manifest: Manifest,
    /// Serial, chain (`chain.pem`) and key (`device.key`).
    pub identity: DeviceIdentity,
    /// The manufacturer root (`mfr-root.pem`).
    pub root: CertificateDer<'static>,
    /// The DCS realm.
    pub dcs_realm: String,
    /// Which EAP key K_AUSF comes from (the manifest's `kausf_from`).
    pub kausf_from: KausfFrom,
}

const FILES: [(&str, &str); 4] = [
    ("key", "device.key"),
    ("certificate", "device.pem"),
    ("chain", "chain.pem"),
    ("trust_anchor", "mfr-root.pem"),
];

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(files::sha256(bytes))
}

impl FactoryBundle {
    /// Writes `OUTDIR/<serial>/` for `identity` (which must not exist yet)
    /// and returns its path; the claim code goes to the label file
    /// `OUTDIR/labels/<serial>.txt` ([`label_path`], 0600), not into the
    /// bundle. `OUTDIR` is created if needed. `kausf_from` goes into the
    /// manifest ([`Manifest::kausf_from`]).
    pub fn write(
        out: &Path,
        identity: &DeviceIdentity,
        manufacturer: &str,
        dcs_realm: &str,
        kausf_from: KausfFrom,
        root: &CertificateDer<'_>,
        claim_code: &ClaimCode,
    ) -> Result<PathBuf, PkiError> {
        check_serial(&identity.serial)?;
        files::create_dir(out, 0o755)?;
        let final_dir = out.join(&identity.serial);
        if final_dir.exists() {
            return Err(PkiError::io(
                &final_dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "bundle already exists"),
            ));
        }
        let tmp = out.join(format!(".{}.partial", identity.serial));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
        }
        files::create_dir(&tmp, 0o755)?;

        let key = files::key_pem(&identity.key);
        let leaf = files::pem("CERTIFICATE", identity.certificate());
        let chain: String = identity
            .chain
            .iter()
            .map(|c| files::pem("CERTIFICATE", c))
            .collect();
        let root_pem = files::pem("CERTIFICATE", root);
        let contents: [(&str, &[u8], u32); 4] = [
            ("device.key", key.as_bytes(), MODE_SECRET),
            ("device.pem", leaf.as_bytes(), MODE_PUBLIC),
            ("chain.pem", chain.as_bytes(), MODE_PUBLIC),
            ("mfr-root.pem", root_pem.as_bytes(), MODE_PUBLIC),
        ];
        let mut files = BTreeMap::new();
        for (role, name) in FILES {
            let Some((_, bytes, mode)) = contents.iter().find(|(n, _, _)| *n == name) else {
                continue;
            };
            files::write_new(&tmp.join(name), bytes, *mode)?;
            files.insert(
                role.to_owned(),
                ManifestFile {
                    name: name.to_owned(),
                    sha256: sha256_hex(bytes),
                },
            );
        }
        let manifest = Manifest {
            format: BUNDLE_FORMAT,
            serial: identity.serial.clone(),
            manufacturer: manufacturer.to_owned(),
            dcs_realm: dcs_realm.to_owned(),
            kausf_from,
            claim_code: None,
            files,
        };
        let mut json = Zeroizing::new(
            serde_json::to_vec_pretty(&manifest)
                .map_err(|e| PkiError::format(tmp.join("manifest.json"), e.to_string()))?,
        );
        json.push(b'\n');
        files::write_new(&tmp.join("manifest.json"), &json, MODE_SECRET)?;
        let labels = out.join("labels");
        files::create_dir(&labels, 0o700)?;
        let label = Zeroizing::new(format!(
            "manufacturer: {manufacturer}\nserial: {}\nclaim code: {}\n",
            identity.serial,
            claim_code.as_str()
        ));
        // Not synced one by one, like the bundle files (the caller syncs).
        files::write_new(
            &label_path(out, &identity.serial),
            label.as_bytes(),
            MODE_SECRET,
        )?;
        fs::rename(&tmp, &final_dir).map_err(|e| PkiError::io(&final_dir, e))?;
        Ok(final_dir)
    }

    /// Loads a bundle directory: checks the manifest format, every file's
    /// SHA-256, that `device.pem` is the first certificate of `chain.pem`,
    /// that the key belongs to it, and that the serial matches.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let mpath = dir.join("manifest.json");
        let bytes = files::read_secret(&mpath)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| PkiError::format(&mpath, e.to_string()))?;
        if manifest.format != BUNDLE_FORMAT {
            return Err(PkiError::format(
                &mpath,
                format!(
                    "format {} (this nido reads {BUNDLE_FORMAT})",
                    manifest.format
                ),
            ));
        }
        check_serial(&manifest.serial).map_err(|e| PkiError::format(&mpath, e.to_string()))?;
        let mut paths = BTreeMap::new();
        for (role, _) in FILES {
            let f = manifest
                .files
                .get(role)
                .ok_or_else(|| PkiError::format(&mpath, format!("no {role} file listed")))?;
            if f.name.contains(['/', '\\']) || f.name.starts_with('.') {
                return Err(PkiError::format(
                    &mpath,
                    format!("bad file name {:?}", f.name),
                ));
            }
            let p = dir.join(&f.name);
            let content = files::read_secret(&p)?;
            if sha256_hex(&content) != f.sha256 {
                return Err(PkiError::format(&p, "SHA-256 does not match manifest.json"));
            }
            paths.insert(role, p);
        }
        let path = |role: &str| paths.get(role).cloned().unwrap_or_default();
        let key = files::read_key(&path("key"))?;
        let leaf = files::read_certs(&path("certificate"))?;
        let chain = files::read_certs(&path("chain"))?;
        let root = files::read_certs(&path("trust_anchor"))?
            .into_iter()
            .next()
            .ok_or_else(|| PkiError::format(path("trust_anchor"), "no certificate"))?;
        if leaf.first() != chain.first() {
            return Err(PkiError::format(
                path("chain"),
                "does not start with device.pem",
            ));
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&chain[0])
            .map_err(|e| PkiError::format(path("certificate"), e.to_string()))?;
        let kp = rcgen::KeyPair::try_from(&key)
            .map_err(|e| PkiError::format(path("key"), format!("not a usable key: {e}")))?;
        if kp.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::format(
                path("key"),
                "the key does not belong to device.pem",
            ));
        }
        let cert_serial = cert.raw_serial().to_vec();
        let subject_serial = cert
            .subject()
            .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
            .next()
            .and_then(|a| a.as_str().ok());
        if subject_serial != Some(manifest.serial.as_str()) {
            return Err(PkiError::format(
                path("certificate"),
                format!("subject serialNumber is not {}", manifest.serial),
            ));
        }
        Ok(Self {
            identity: DeviceIdentity {
                serial: manifest.serial.clone(),
                cert_serial,
                chain,
                key,
            },
            root,
            dcs_realm: manifest.dcs_realm.clone(),
            kausf_from: manifest.kausf_from,
            manifest,
        })
    }
}

/// The label file of device `serial` under `OUTDIR`: manufacturer, serial
/// and claim code, for the box label and the owner (never the device).
pub fn label_path(out: &Path, serial: &str) -> PathBuf {
    out.join("labels").join(format!("{serial}.txt"))
}

/// Reads the claim code from a label file ([`label_path`]).
pub fn read_label_code(path: &Path) -> Result<ClaimCode, PkiError> {
    let text = Zeroizing::new(files::read_secret(path)?);
    let text = std::str::from_utf8(&text).map_err(|e| PkiError::format(path, e.to_string()))?;
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("claim code: "))
        .ok_or_else(|| PkiError::format(path, "no claim code line"))?;
    ClaimCode::parse(code).map_err(|e| PkiError::format(path, e.to_string()))
}

/// Writes the DCS's TLS files into `out` (created if needed), each
/// atomically: `dcs.pem` (leaf + issuing CA), `dcs.key` (PKCS#8 PEM, 0600)
/// and `mfr-root.pem` (the root, for enrolling the manufacturer in the
/// DCS's trust store). Returns the three paths in that order.
pub fn write_server_identity(
    out: &Path,
    identity: &ServerIdentity,
    root: &CertificateDer<'_>,
) -> Result<[PathBuf; 3], PkiError> {
    files::create_dir(out, 0o755)?;
    let paths = [
        out.join("dcs.pem"),
        out.join("dcs.key"),
        out.join("mfr-root.pem"),
    ];
    let chain: String = identity
        .chain
        .iter()
        .map(|c| files::pem("CERTIFICATE", c))
        .collect();
    files::write_atomic(&paths[0], chain.as_bytes(), MODE_PUBLIC)?;
    files::write_atomic(
        &paths[1],
        files::key_pem(&identity.key).as_bytes(),
        MODE_SECRET,
    )?;
    files::write_atomic(
        &paths[2],
        files::pem("CERTIFICATE", root).as_bytes(),
        MODE_PUBLIC,
    )?;
    Ok(paths)
}

/// Appends `serial,claim_code_hash` lines to `OUTDIR/claims.csv` (header
/// first when the file is new) and `fsync`s it.
pub fn append_claims(out: &Path, rows: &[(String, String)]) -> Result<(), PkiError> {
    let mut text = String::with_capacity(rows.len() * 90);
    for (serial, hash) in rows {
        text.push_str(serial);
        text.push(',');
        text.push_str(hash);
        text.push('\n');
    }
    files::append_durable(
        &out.join("claims.csv"),
        b"serial,claim_code_hash\n",
        text.as_bytes(),
        MODE_PUBLIC,
    )
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{DeviceProfile, Manufacturer};

    #[test]
    fn claim_codes_are_typeable_and_normalise() {
        let c = ClaimCode::generate().unwrap();
        let s = c.as_str();
        assert_eq!(s.len(), 19);
        assert_eq!(s.matches('-').count(), 3);
        assert!(s.bytes().all(|b| b == b'-' || CROCKFORD.contains(&b)));
        assert_ne!(c, ClaimCode::generate().unwrap());
        // Typed sloppily, it is the same code with the same hash.
        let typed = s.to_ascii_lowercase().replace('-', " ");
        assert_eq!(ClaimCode::parse(&typed).unwrap(), c);
        assert_eq!(claim_code_hash(&typed), c.hash());
        assert_eq!(
            claim_code_hash("0I1L-0000-0000-0000"),
            claim_code_hash("oi11 0000 0000 0000")
        );
        // SHA-256 of the normalised string.
        assert_eq!(
            claim_code_hash("abcd-efgh-jkmn-pqrs"),
            sha256_hex(b"ABCDEFGHJKMNPQRS")
        );
        assert!(ClaimCode::parse("ABCD-EFGH-JKMN-PQRU").is_err());
        assert!(ClaimCode::parse("ABCD").is_err());
        assert_eq!(format!("{c:?}"), "ClaimCode([redacted])");
    }

    #[test]
    fn bundle_round_trip_and_tamper() {
        let out = std::env::temp_dir().join(format!("nido-pki-bundle-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let now = SystemTime::now();
        let m = Manufacturer::generate("Acme", now).unwrap();
        let d = m
            .issue_device("ACME-0000000001", &DeviceProfile::standard(now))
            .unwrap();
        let code = ClaimCode::generate().unwrap();
        let dir = FactoryBundle::write(
            &out,
            &d,
            m.name(),
            m.dcs_realm(),
            m.kausf_from(),
            m.root_der(),
            &code,
        )
        .unwrap();
        assert_eq!(dir, out.join("ACME-0000000001"));
        assert!(!out.join(".ACME-0000000001.partial").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("device.key"), 0o600);
            assert_eq!(mode("manifest.json"), 0o600);
            assert_eq!(mode("device.pem"), 0o644);
        }
        let b = FactoryBundle::load(&dir).unwrap();
        assert_eq!(b.identity.serial, d.serial);
        assert_eq!(b.identity.chain, d.chain);
        assert_eq!(b.identity.cert_serial, d.cert_serial);
        assert_eq!(b.identity.key.secret_pkcs8_der(), d.key.secret_pkcs8_der());
        assert_eq!(&b.root, m.root_der());
        assert_eq!(b.dcs_realm, m.dcs_realm());
        // The built-in DCS's rule is the default and is not written.
        assert_eq!(b.kausf_from, KausfFrom::Emsk);
        let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert!(!manifest.contains("kausf_from"), "{manifest}");
        // The claim code is on the label, not in the device's bundle.
        assert_eq!(b.manifest.claim_code, None);
        for f in fs::read_dir(&dir).unwrap() {
            let bytes = fs::read(f.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(code.as_str()));
        }
        let label = label_path(&out, "ACME-0000000001");
        assert_eq!(read_label_code(&label).unwrap(), code);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&label).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }

        // Writing it again is refused; tampering is detected.
        assert!(
            FactoryBundle::write(
                &out,
                &d,
                "Acme",
                "r.example",
                KausfFrom::Emsk,
                m.root_der(),
                &code
            )
            .is_err()
        );
        let pem = dir.join("device.pem");
        let mut text = fs::read_to_string(&pem).unwrap();
        text.push('\n');
        fs::write(&pem, text).unwrap();
        let e = FactoryBundle::load(&dir).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");

        append_claims(&out, &[("A".into(), "h1".into())]).unwrap();
        append_claims(&out, &[("B".into(), "h2".into())]).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("claims.csv")).unwrap(),
            "serial,claim_code_hash\nA,h1\nB,h2\n"
        );
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn an_external_dcs_bundle_says_msk_and_old_manifests_read_as_emsk() {
        let out = std::env::temp_dir().join(format!("nido-pki-bundle-msk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&out);
        let now = SystemTime::now();
        let mut m = Manufacturer::generate("Acme", now).unwrap();
        m.set_external_dcs(true);
        assert_eq!(m.kausf_from(), KausfFrom::Msk);
        let d = m
            .issue_device("ACME-0000000002", &DeviceProfile::standard(now))
            .unwrap();
        let code = ClaimCode::generate().unwrap();
        let dir = FactoryBundle::write(
            &out,
            &d,
            m.name(),
            m.dcs_realm(),
            m.kausf_from(),
            m.root_der(),
            &code,
        )
        .unwrap();
        let manifest = fs::read_to_string(dir.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"kausf_from\": \"msk\""), "{manifest}");
        let b = FactoryBundle::load(&dir).unwrap();
        assert_eq!(b.kausf_from, KausfFrom::Msk);
        assert_eq!(b.manifest.kausf_from, KausfFrom::Msk);

        // A manifest without the field (an older bundle) is the EMSK rule.
        let old = manifest.replace("  \"kausf_from\": \"msk\",\n", "");
        assert_ne!(old, manifest);
        fs::write(dir.join("manifest.json"), old).unwrap();
        assert_eq!(
            FactoryBundle::load(&dir).unwrap().kausf_from,
            KausfFrom::Emsk
        );
        // An unknown rule is refused, not guessed.
        let bad = manifest.replace("\"msk\"", "\"ck\"");
        fs::write(dir.join("manifest.json"), bad).unwrap();
        assert!(FactoryBundle::load(&dir).is_err());
        fs::remove_dir_all(&out).unwrap();
    }
}
