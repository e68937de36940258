//! nido's manufacturer PKI and the Default Credentials Server's certificate
//! validation.
//!
//! Two sides of one trust relationship (see `shared/design/onboarding.md`,
//! "Trust model"):
//!
//! - **The manufacturer** ([`ca`]): a root CA and an issuing CA (ECDSA
//!   P-256). The issuing CA gives every device an IEEE 802.1AR-style
//!   IDevID certificate ([`Manufacturer::issue_device`]), gives the DCS its
//!   TLS server certificate ([`Manufacturer::issue_dcs`]) so devices can
//!   tell a genuine DCS, and publishes CRLs ([`Manufacturer::crl`]). The
//!   manufacturer's state lives in a directory ([`Manufacturer::save`],
//!   [`Manufacturer::load`], [`store`]) and each device leaves the factory
//!   with a [`FactoryBundle`] and a one-time [`ClaimCode`].
//! - **The network** ([`trust`]): a [`TrustStore`] of enrolled
//!   manufacturers (root, CRLs, [`Policy`]) and an operator block list.
//!   [`TrustStore::validate`] turns a presented chain into a [`DeviceInfo`]
//!   or a [`Refusal`] whose [`RefusalReason`] maps to a 5GMM cause.
//!
//! # Invariants
//!
//! - **Private keys never print and are wiped.** [`DeviceIdentity`],
//!   [`ServerIdentity`] and [`Manufacturer`] zeroize their private keys on
//!   drop; their `Debug` shows `[redacted]`; no error message carries key
//!   bytes. The claim code is redacted in `Debug` too.
//! - **Private key files are created with mode 0600** and written
//!   atomically (temporary file, `fsync`, `rename`, `fsync` of the
//!   directory) for the manufacturer's CA keys; a factory bundle is
//!   assembled in a temporary directory and renamed into place, so a
//!   bundle directory is either complete or absent.
//! - **Serials never repeat.** The device serial counter in
//!   `manufacturer.json` is advanced and saved *before* certificates are
//!   issued from the reserved range; a crash leaves a gap, never a
//!   duplicate. Certificate serialNumbers are 126 random bits, positive.
//! - **No network I/O.** This crate reads and writes files (the
//!   manufacturer directory, bundles) and nothing else; it never fetches a
//!   CRL.
//! - **Validation is a pure function** of (chain, trust store, `now`):
//!   [`TrustStore::validate`] reads no clock, no file and no global state,
//!   so a refusal can be reproduced from a log of its inputs.
//! - **Public-key work uses aws-lc-rs** (through rcgen, rustls-webpki and
//!   x509-parser's `verify-aws`).

pub mod bundle;
pub mod ca;
mod der;
pub mod device_id;
mod error;
pub mod files;
pub mod signed;
pub mod store;
pub mod trust;

pub use bundle::{ClaimCode, FactoryBundle, KausfFrom, Manifest, ManifestFile, claim_code_hash};
pub use ca::{
    DeviceIdentity, DeviceProfile, Manufacturer, RevocationReason, Revoked, ServerIdentity,
    Validity, no_expiration,
};
pub use device_id::{DeviceId, check_manufacturer_name};
pub use error::PkiError;
pub use signed::verify_detached;
pub use store::{IssuedRecord, ManufacturerLock};
pub use trust::{DeviceInfo, Policy, Refusal, RefusalReason, TrustStore, crl_revocations};

/// The certificate and key types of the API, re-exported so callers need
/// not name `rustls-pki-types` themselves.
pub use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivatePkcs8KeyDer, UnixTime,
};

/// `id-on-hardwareModuleName` (RFC 4108 §5): the subjectAltName otherName
/// that carries a device's hardware module type and serial number.
pub const OID_HARDWARE_MODULE_NAME: &str = "1.3.6.1.5.5.7.8.4";

/// The default `hwType` of the hardwareModuleName nido writes: a UUID-based
/// OID (ITU-T X.667, arc 2.25) meaning "a nido-provisioned device, hardware
/// module type not further specified". A manufacturer can choose its own
/// (`nido mfr init --hw-type`).
pub const NIDO_HW_TYPE: &str = "2.25.49060140608082396216379495969132584820";

/// X.520 `serialNumber` attribute type (2.5.4.5), the subject attribute
/// that holds the device serial string.
pub const OID_SUBJECT_SERIAL_NUMBER: &str = "2.5.4.5";

#[cfg(test)]
mod tests {
    /// The types a DCS shares between connections are thread-safe.
    #[test]
    fn shared_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::TrustStore>();
        check::<crate::Manufacturer>();
        check::<crate::DeviceIdentity>();
        check::<crate::ServerIdentity>();
        check::<crate::Refusal>();
    }
}
