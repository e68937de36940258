//! The manufacturer directory: what `nido mfr` keeps between runs.
//!
//! ```text
//! DIR/                   (0700 when created)
//!   root.pem             root CA certificate
//!   root.key             root CA private key, PKCS#8 PEM, 0600
//!   issuing.pem          issuing CA certificate
//!   issuing.key          issuing CA private key, PKCS#8 PEM, 0600
//!   manufacturer.json    name, DCS realm, external_dcs (only when true: the
//!                        manufacturer runs its own DCS), serial prefix,
//!                        hwType, next serial, last CRL number, revocations
//!                        (with times)
//!   issued.csv           issuance log: serial,cert_serial,not_after (one line
//!                        per certificate, appended and fsync'd as issued)
//!   lock                 present while a command holds the directory
//! ```
//!
//! Every file except the log is replaced atomically (temporary file,
//! `fsync`, `rename`, directory `fsync`). The log is append-only: the CA's
//! record of what it signed, and how `nido mfr revoke SERIAL` finds the
//! certificate serialNumber(s) of a device.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::*;

use crate::ca::{Ca, Manufacturer, RevocationReason, Revoked, issuing_params, root_params};
use crate::files::{self, MODE_PUBLIC, MODE_SECRET, MODE_SECRET_DIR};
use crate::{PkiError, der};

const FORMAT: u32 = 1;
const JSON: &str = "manufacturer.json";
const LOG: &str = "issued.csv";
const LOG_HEADER: &str = "serial,cert_serial,not_after\n";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format: u32,
    name: String,
    dcs_realm: String,
    /// Absent in files written before it existed, and whenever false (so
    /// an older nido still reads a manufacturer that uses the built-in DCS).
    #[serde(default, skip_serializing_if = "is_false")]
    external_dcs: bool,
    serial_prefix: String,
    hw_type: String,
    next_serial: u64,
    crl_number: u64,
    revoked: Vec<RevokedJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokedJson {
    serial: String,
    cert_serial: String,
    /// Unix seconds.
    revoked_at: u64,
    reason: RevocationReason,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The DER of `O=<name>, CN=<cn>` as rcgen writes it (UTF8String values):
/// checked against a loaded CA certificate's subject, because issuing
/// rebuilds the issuer name from `manufacturer.json` and chains are matched
/// on the exact bytes.
fn expected_dn(name: &str, cn: &str) -> Option<Vec<u8>> {
    let atv = |oid: &str, v: &str| -> Option<Vec<u8>> {
        let seq = der::tlv(
            der::TAG_SEQUENCE,
            &[
                der::tlv(der::TAG_OID, &der::oid_content(oid)?),
                der::tlv(0x0c, v.as_bytes()),
            ]
            .concat(),
        );
        Some(der::tlv(0x31, &seq))
    };
    Some(der::tlv(
        der::TAG_SEQUENCE,
        &[atv("2.5.4.10", name)?, atv("2.5.4.3", cn)?].concat(),
    ))
}

fn load_ca(
    dir: &Path,
    stem: &str,
    name: &str,
    cn: &str,
    params: rcgen::CertificateParams,
) -> Result<Ca, PkiError> {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    let der = files::read_certs(&cert_path)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::format(&cert_path, "no certificate"))?;
    let pkcs8 = files::read_key(&key_path)?;
    let key = KeyPair::try_from(&pkcs8)
        .map_err(|e| PkiError::format(&key_path, format!("not a usable key: {e}")))?;
    let (_, cert) = parse_x509_certificate(&der)
        .map_err(|e| PkiError::format(&cert_path, format!("not a certificate: {e}")))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::format(
            &key_path,
            format!("the key does not belong to {}", cert_path.display()),
        ));
    }
    if expected_dn(name, cn).as_deref() != Some(cert.subject().as_raw()) {
        return Err(PkiError::format(
            &cert_path,
            format!("the subject is not O={name}, CN={cn} (manufacturer.json and the CA disagree)"),
        ));
    }
    Ok(Ca { params, key, der })
}

impl Manufacturer {
    /// Writes the whole manufacturer to `dir` (created with mode 0700 if
    /// absent): certificates, keys (0600) and `manufacturer.json`, each
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        files::create_dir(dir, MODE_SECRET_DIR)?;
        for (stem, ca) in [("root", &self.root), ("issuing", &self.issuing)] {
            let key_pem = zeroize::Zeroizing::new(ca.key.serialize_pem());
            files::write_atomic(
                &dir.join(format!("{stem}.key")),
                key_pem.as_bytes(),
                MODE_SECRET,
            )?;
            files::write_atomic(
                &dir.join(format!("{stem}.pem")),
                files::pem("CERTIFICATE", &ca.der).as_bytes(),
                MODE_PUBLIC,
            )?;
        }
        self.save_state(dir)
    }

    /// Writes `manufacturer.json` only (counters, realm, revocations),
    /// atomically.
    pub fn save_state(&self, dir: &Path) -> Result<(), PkiError> {
        let state = State {
            format: FORMAT,
            name: self.name.clone(),
            dcs_realm: self.dcs_realm.clone(),
            external_dcs: self.external_dcs,
            serial_prefix: self.serial_prefix.clone(),
            hw_type: self.hw_type.clone(),
            next_serial: self.next_serial,
            crl_number: self.crl_number,
            revoked: self
                .revoked
                .iter()
                .map(|r| RevokedJson {
                    serial: r.serial.clone(),
                    cert_serial: hex::encode(&r.cert_serial),
                    revoked_at: unix(r.revoked_at),
                    reason: r.reason,
                })
                .collect(),
        };
        let mut json = serde_json::to_vec_pretty(&state)
            .map_err(|e| PkiError::format(dir.join(JSON), e.to_string()))?;
        json.push(b'\n');
        files::write_atomic(&dir.join(JSON), &json, MODE_PUBLIC)
    }

    /// Loads a manufacturer saved with [`Manufacturer::save`], checking that
    /// each key belongs to its certificate and that the CA names match
    /// `manufacturer.json`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let json_path = dir.join(JSON);
        let bytes = files::read(&json_path)?;
        let s: State = serde_json::from_slice(&bytes)
            .map_err(|e| PkiError::format(&json_path, e.to_string()))?;
        if s.format != FORMAT {
            return Err(PkiError::format(
                &json_path,
                format!("format {} (this nido reads {FORMAT})", s.format),
            ));
        }
        let root = load_ca(
            dir,
            "root",
            &s.name,
            &format!("{} Root CA", s.name),
            root_params(&s.name),
        )?;
        let issuing = load_ca(
            dir,
            "issuing",
            &s.name,
            &format!("{} Device Issuing CA", s.name),
            issuing_params(&s.name),
        )?;
        let revoked = s
            .revoked
            .into_iter()
            .map(|r| {
                Ok(Revoked {
                    cert_serial: hex::decode(&r.cert_serial).map_err(|_| {
                        PkiError::format(&json_path, format!("bad cert_serial {:?}", r.cert_serial))
                    })?,
                    serial: r.serial,
                    revoked_at: UNIX_EPOCH + Duration::from_secs(r.revoked_at),
                    reason: r.reason,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let mut m = Manufacturer {
            name: s.name,
            dcs_realm: String::new(),
            external_dcs: s.external_dcs,
            serial_prefix: String::new(),
            hw_type: String::new(),
            root,
            issuing,
            next_serial: s.next_serial,
            crl_number: s.crl_number,
            revoked,
        };
        let bad = |e: PkiError| PkiError::format(&json_path, e.to_string());
        m.set_dcs_realm(&s.dcs_realm).map_err(bad)?;
        m.set_serial_prefix(&s.serial_prefix).map_err(bad)?;
        m.set_hw_type(&s.hw_type).map_err(bad)?;
        Ok(m)
    }

    /// Whether `dir` already holds a manufacturer.
    pub fn exists(dir: &Path) -> bool {
        dir.join(JSON).exists()
    }
}

/// One line of the issuance log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRecord {
    /// The device serial (`dcs:<host>` for a DCS certificate).
    pub serial: String,
    /// The certificate serialNumber.
    pub cert_serial: Vec<u8>,
    /// notAfter, Unix seconds.
    pub not_after: u64,
}

impl IssuedRecord {
    /// The record of a certificate (reads serialNumber and notAfter from it).
    pub fn of(serial: &str, cert: &[u8]) -> Result<Self, PkiError> {
        let (_, c) = parse_x509_certificate(cert)
            .map_err(|e| PkiError::Generate(format!("issued certificate does not parse: {e}")))?;
        Ok(Self {
            serial: serial.to_owned(),
            cert_serial: c.raw_serial().to_vec(),
            not_after: u64::try_from(c.validity().not_after.timestamp()).unwrap_or(0),
        })
    }
}

/// Appends records to `DIR/issued.csv` and `fsync`s it.
pub fn append_issued(dir: &Path, records: &[IssuedRecord]) -> Result<(), PkiError> {
    let mut text = String::with_capacity(records.len() * 64);
    for r in records {
        text.push_str(&format!(
            "{},{},{}\n",
            r.serial,
            hex::encode(&r.cert_serial),
            r.not_after
        ));
    }
    files::append_durable(
        &dir.join(LOG),
        LOG_HEADER.as_bytes(),
        text.as_bytes(),
        MODE_PUBLIC,
    )
}

/// Every certificate the log records for `serial` (oldest first).
pub fn find_issued(dir: &Path, serial: &str) -> Result<Vec<IssuedRecord>, PkiError> {
    let path = dir.join(LOG);
    let file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PkiError::io(&path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| PkiError::io(&path, e))?;
        if i == 0 || line.is_empty() {
            continue;
        }
        let mut f = line.split(',');
        let (Some(s), Some(cs), Some(na), None) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(PkiError::format(
                &path,
                format!("line {}: bad record", i + 1),
            ));
        };
        if s != serial {
            continue;
        }
        out.push(IssuedRecord {
            serial: s.to_owned(),
            cert_serial: hex::decode(cs)
                .map_err(|_| PkiError::format(&path, format!("line {}: bad cert_serial", i + 1)))?,
            not_after: na
                .parse()
                .map_err(|_| PkiError::format(&path, format!("line {}: bad not_after", i + 1)))?,
        });
    }
    Ok(out)
}

/// Exclusive use of a manufacturer directory while a command runs (two
/// concurrent `issue` runs would hand out the same serials). Taken by
/// creating `DIR/lock` exclusively; released (the file removed) on drop.
#[derive(Debug)]
pub struct ManufacturerLock {
    path: PathBuf,
}

impl ManufacturerLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, PkiError> {
        let path = dir.join("lock");
        match files::write_new(&path, format!("{}\n", std::process::id()).as_bytes(), 0o644) {
            Ok(()) => Ok(Self { path }),
            Err(PkiError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                Err(PkiError::format(
                    &path,
                    format!(
                        "the manufacturer directory is in use (pid {}); if no nido command is running, delete this file",
                        holder.trim()
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for ManufacturerLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceProfile;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nido-pki-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tmp("rt");
        let now = SystemTime::now();
        let mut m = Manufacturer::generate("Acme", now).unwrap();
        m.set_dcs_realm("dcs.acme.example").unwrap();
        let serials = m.reserve_serials(3).unwrap();
        let d = m
            .issue_device(&serials[0], &DeviceProfile::standard(now))
            .unwrap();
        m.revoke(Revoked::of(&d, now));
        m.save(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["root.key", "issuing.key"] {
                let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
            let mode = fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let l = Manufacturer::load(&dir).unwrap();
        assert_eq!(l.name(), "Acme");
        assert_eq!(l.dcs_realm(), "dcs.acme.example");
        assert_eq!(l.next_serial(), 4);
        assert_eq!(l.revoked(), m.revoked());
        assert_eq!(l.root_der(), m.root_der());
        // A device issued after loading chains to the same issuing CA name:
        // its issuer field equals the issuing CA's subject byte for byte.
        let d2 = l
            .issue_device("Acme-9", &DeviceProfile::standard(now))
            .unwrap();
        let (_, leaf) = parse_x509_certificate(&d2.chain[0]).unwrap();
        let (_, ica) = parse_x509_certificate(l.issuing_der()).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ica.subject().as_raw());
        leaf.verify_signature(Some(ica.public_key())).unwrap();
        // The built-in DCS's manufacturer writes no external_dcs field.
        assert!(!l.external_dcs());
        let json = fs::read_to_string(dir.join(JSON)).unwrap();
        assert!(!json.contains("external_dcs"), "{json}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn external_dcs_round_trips() {
        let dir = tmp("ext");
        let mut m = Manufacturer::generate("Acme", SystemTime::now()).unwrap();
        m.set_external_dcs(true);
        m.save(&dir).unwrap();
        let json = fs::read_to_string(dir.join(JSON)).unwrap();
        assert!(json.contains("\"external_dcs\": true"), "{json}");
        let l = Manufacturer::load(&dir).unwrap();
        assert!(l.external_dcs());
        assert_eq!(l.kausf_from(), crate::KausfFrom::Msk);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_refuses_a_swapped_key() {
        let dir = tmp("swap");
        let now = SystemTime::now();
        Manufacturer::generate("A", now)
            .unwrap()
            .save(&dir)
            .unwrap();
        fs::copy(dir.join("root.key"), dir.join("issuing.key")).unwrap();
        let e = Manufacturer::load(&dir).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn issuance_log_and_lock() {
        let dir = tmp("log");
        fs::create_dir_all(&dir).unwrap();
        let r = |s: &str, c: u8| IssuedRecord {
            serial: s.into(),
            cert_serial: vec![c; 3],
            not_after: 7,
        };
        append_issued(&dir, &[r("A", 1), r("B", 2)]).unwrap();
        append_issued(&dir, &[r("A", 3)]).unwrap();
        assert_eq!(find_issued(&dir, "A").unwrap(), [r("A", 1), r("A", 3)]);
        assert!(find_issued(&dir, "C").unwrap().is_empty());
        let text = fs::read_to_string(dir.join(LOG)).unwrap();
        assert_eq!(text.matches("serial,cert_serial").count(), 1);

        let lock = ManufacturerLock::acquire(&dir).unwrap();
        let e = ManufacturerLock::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
        drop(lock);
        ManufacturerLock::acquire(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
