//! Files: atomic writes with explicit modes, PEM in and out. Public so the
//! `nido` binary and tests write keys and CRLs the way this crate does.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::PkiError;

/// Mode of files holding private keys or secrets.
pub const MODE_SECRET: u32 = 0o600;
/// Mode of public files (certificates, CRLs, manifests without secrets).
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode of directories holding private keys.
pub(crate) const MODE_SECRET_DIR: u32 = 0o700;

/// Creates `path` with `mode` as the creation mode (the umask can only take
/// bits away: a 0600 file is never more open than 0600).
fn create_with_mode(path: &Path, mode: u32) -> Result<File, PkiError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path).map_err(|e| PkiError::io(path, e))
}

/// Creates `path` with exactly `mode` (set again after creation, whatever
/// the umask).
fn open_new(path: &Path, mode: u32) -> Result<File, PkiError> {
    let file = create_with_mode(path, mode)?;
    // The umask may have taken bits away; never added any. Set exactly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| PkiError::io(path, e))?;
    }
    Ok(file)
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically and durably: a temporary file in the
/// same directory created with `mode`, `fsync`, `rename` over `path`, then
/// `fsync` of the directory. A reader sees the old content or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = tmp_name(path);
    let _ = fs::remove_file(&tmp); // a leftover of a crashed run of this pid
    let result = (|| {
        let mut f = open_new(&tmp, mode)?;
        f.write_all(bytes).map_err(|e| PkiError::io(&tmp, e))?;
        f.sync_all().map_err(|e| PkiError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))?;
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist) with creation mode `mode` and
/// writes `bytes`, without `fsync`: for the many small files of factory
/// bundles, each inside a directory renamed into place when complete.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let mut f = create_with_mode(path, mode)?;
    f.write_all(bytes).map_err(|e| PkiError::io(path, e))
}

/// Appends `bytes` to `path` (created with `mode` if absent, with `header`
/// first) and `fsync`s it.
pub(crate) fn append_durable(
    path: &Path,
    header: &[u8],
    bytes: &[u8],
    mode: u32,
) -> Result<(), PkiError> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| PkiError::io(path, e))?;
    let len = f.metadata().map_err(|e| PkiError::io(path, e))?.len();
    if len == 0 {
        f.write_all(header).map_err(|e| PkiError::io(path, e))?;
    }
    f.write_all(bytes).map_err(|e| PkiError::io(path, e))?;
    f.sync_all().map_err(|e| PkiError::io(path, e))
}

/// `fsync` of a directory, so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| PkiError::io(dir, e))?;
        d.sync_all().map_err(|e| PkiError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` (and parents) if needed, with `mode` for the last
/// component when it is created.
pub(crate) fn create_dir(dir: &Path, mode: u32) -> Result<(), PkiError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    b.create(dir).map_err(|e| PkiError::io(dir, e))
}

/// Creates `dir` and its parents if needed (mode 0755 for new ones).
pub fn create_dir_all(dir: &Path) -> Result<(), PkiError> {
    create_dir(dir, 0o755)
}

/// SHA-256 of `bytes` (aws-lc-rs).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Reads a file whole.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io(path, e))
}

/// Reads a secret file into a buffer wiped on drop.
pub(crate) fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| PkiError::io(path, e))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// PEM with 64-column lines and `\n` line ends (RFC 7468 strict form).
pub fn pem(label: &str, der: &[u8]) -> String {
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            b64.push(if i <= chunk.len() {
                B64[*s as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// PEM of a private key, in a buffer wiped on drop.
pub(crate) fn key_pem(key: &PrivatePkcs8KeyDer<'_>) -> Zeroizing<String> {
    Zeroizing::new(pem("PRIVATE KEY", key.secret_pkcs8_der()))
}

/// All certificates in a PEM file, in order.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::format(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::format(path, "no CERTIFICATE in the file"));
    }
    Ok(certs)
}

/// The first CRL (`X509 CRL`) in a PEM file.
pub fn read_crl(path: &Path) -> Result<CertificateRevocationListDer<'static>, PkiError> {
    let bytes = read(path)?;
    CertificateRevocationListDer::from_pem_slice(&bytes)
        .map_err(|e| PkiError::format(path, format!("no X509 CRL in the file: {e}")))
}

/// The PKCS#8 private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivatePkcs8KeyDer<'static>, PkiError> {
    let bytes = read_secret(path)?;
    PrivatePkcs8KeyDer::from_pem_slice(&bytes)
        .map_err(|_| PkiError::format(path, "no PKCS#8 PRIVATE KEY in the file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_matches_known_base64() {
        // RFC 4648 §10 test vectors, through the PEM wrapper.
        for (raw, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let p = pem("X", raw.as_bytes());
            let body: String = p.lines().filter(|l| !l.starts_with("-----")).collect();
            assert_eq!(body, b64, "{raw:?}");
        }
        let long = pem("CERTIFICATE", &[0xab; 100]);
        assert!(long.lines().all(|l| l.len() <= 64));
        let back = CertificateDer::from_pem_slice(long.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &[0xab; 100][..]);
    }
}
