//! The manufacturer: a root CA, an issuing CA, and what they sign.
//!
//! ```text
//! <name> Root CA                 (self-signed, CA, pathLen 1, keyCertSign+cRLSign)
//! └── <name> Device Issuing CA   (CA, pathLen 0, keyCertSign+cRLSign)
//!     ├── device IDevIDs         (clientAuth, digitalSignature, hardwareModuleName)
//!     ├── DCS server certificate (serverAuth, dNSName)
//!     └── CRLs
//! ```
//!
//! # The IDevID profile (IEEE 802.1AR style)
//!
//! | field | value |
//! |---|---|
//! | serialNumber | 126 random bits, positive, 16 octets |
//! | subject | `O=<manufacturer>, CN=<device serial>, serialNumber=<device serial>` (X.520 2.5.4.5, PrintableString) |
//! | validity | notBefore = issuance time; notAfter = `99991231235959Z` (802.1AR: "no well-defined expiration date") by default |
//! | subjectAltName | otherName `hardwareModuleName` (RFC 4108 §5, 1.3.6.1.5.5.7.8.4) = { hwType = the manufacturer's module type OID, hwSerialNum = the device serial in ASCII } |
//! | keyUsage (critical) | digitalSignature |
//! | extKeyUsage | id-kp-clientAuth |
//! | basicConstraints (critical) | cA FALSE |
//! | authorityKeyIdentifier / subjectKeyIdentifier | truncated SHA-256 (RFC 7093 method 1) |
//! | key | ECDSA P-256, signature ecdsa-with-SHA256 |
//!
//! [`DeviceProfile`] fields let tests issue deliberately wrong certificates
//! (expired, not yet valid, serverAuth only, no digitalSignature, no
//! hardwareModuleName) from the same code path.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, RevokedCertParams, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::{PkiError, der};

/// 9999-12-31T23:59:59Z in Unix seconds: the 802.1AR "no well-defined
/// expiration" notAfter, written as GeneralizedTime `99991231235959Z`.
const NO_EXPIRATION_SECS: u64 = 253_402_300_799;

/// The notAfter IEEE 802.1AR (and RFC 5280 §4.1.2.5) prescribes for a
/// certificate with no well-defined expiration date: `99991231235959Z`.
pub fn no_expiration() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NO_EXPIRATION_SECS)
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Seconds since the Unix epoch, for a time a certificate can carry
/// (1970-01-01 to 9999-12-31T23:59:59Z).
fn cert_secs(what: &'static str, t: SystemTime) -> Result<u64, PkiError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::invalid(what, "before 1970"))?
        .as_secs();
    if secs > NO_EXPIRATION_SECS {
        return Err(PkiError::invalid(what, "after 9999-12-31T23:59:59Z"));
    }
    Ok(secs)
}

/// Sets rcgen's validity from `SystemTime`s, seconds precision.
fn set_validity(
    params: &mut CertificateParams,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), PkiError> {
    let nb = cert_secs("notBefore", not_before)?;
    let na = cert_secs("notAfter", not_after)?;
    if na <= nb {
        return Err(PkiError::invalid(
            "validity",
            "notAfter is not later than notBefore",
        ));
    }
    // rcgen takes `time::OffsetDateTime`; build it from the epoch so this
    // crate need not depend on `time` itself.
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(nb);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(na);
    Ok(())
}

/// 16 random octets read as a positive INTEGER: top bit clear, second bit
/// set so the encoding is always 16 octets with no leading zero.
fn random_serial() -> Result<Vec<u8>, PkiError> {
    let mut s = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| PkiError::Random)?;
    s[0] = (s[0] & 0x3f) | 0x40;
    Ok(s)
}

/// A device serial: 1 to 64 characters from `A-Z a-z 0-9 - .`, not starting
/// with `-` or `.`. It is a PrintableString (X.520 `serialNumber`), a file
/// name (the bundle directory) and a CSV field without quoting.
pub(crate) fn check_serial(serial: &str) -> Result<(), PkiError> {
    if serial.is_empty() || serial.len() > 64 {
        return Err(PkiError::invalid(
            "device serial",
            format!("{serial:?} must have 1 to 64 characters"),
        ));
    }
    if serial.starts_with(['-', '.']) {
        return Err(PkiError::invalid(
            "device serial",
            format!("{serial:?} must not start with '-' or '.'"),
        ));
    }
    if let Some(c) = serial
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(PkiError::invalid(
            "device serial",
            format!("{serial:?}: {c:?} is not one of A-Z a-z 0-9 - ."),
        ));
    }
    Ok(())
}

/// A DNS host name for the DCS certificate (letters, digits, `-`, `.`).
fn check_host(host: &str) -> Result<(), PkiError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(PkiError::invalid(
            "DCS host name",
            format!("{host:?} is not a DNS name (labels of A-Z a-z 0-9 -, dot-separated)"),
        ))
    }
}

/// A manufacturer name: 1 to 64 characters, no control characters.
fn check_name(name: &str) -> Result<(), PkiError> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(PkiError::invalid(
            "manufacturer name",
            format!("{name:?} must have 1 to 64 characters and no control characters"),
        ));
    }
    Ok(())
}

/// A DCS realm (the NAI realm of the onboarding SUCI): a DNS-like name.
pub(crate) fn check_realm(realm: &str) -> Result<(), PkiError> {
    check_host(realm).map_err(|_| {
        PkiError::invalid(
            "DCS realm",
            format!("{realm:?} is not a realm (labels of A-Z a-z 0-9 -, dot-separated)"),
        )
    })
}

/// The first (up to) 8 letters and digits of the name, upper case.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    if s.is_empty() { "DEV".to_owned() } else { s }
}

/// A validity period, for the DCS certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl Validity {
    /// From one hour before `now` (clock skew of the devices that check it)
    /// to `days` days after `now`.
    pub fn days(now: SystemTime, days: u32) -> Self {
        Self {
            not_before: now.checked_sub(HOUR).unwrap_or(now),
            not_after: now + DAY * days,
        }
    }
}

/// What goes into a device certificate. [`DeviceProfile::standard`] is the
/// IDevID profile; the other constructors make negative fixtures for tests
/// (each still a well-formed certificate from the genuine issuing CA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProfile {
    /// notBefore (seconds precision).
    pub not_before: SystemTime,
    /// notAfter (seconds precision; from 2050 on it is a GeneralizedTime).
    pub not_after: SystemTime,
    /// Include id-kp-clientAuth in extKeyUsage.
    pub client_auth_eku: bool,
    /// Include id-kp-serverAuth in extKeyUsage (a device must not have it).
    pub server_auth_eku: bool,
    /// keyUsage digitalSignature; when `false` the keyUsage extension holds
    /// keyAgreement only.
    pub digital_signature: bool,
    /// Include the hardwareModuleName otherName in subjectAltName.
    pub hardware_module_name: bool,
}

impl DeviceProfile {
    /// The IDevID profile: valid from `now` (truncated to the second) with
    /// no well-defined expiration ([`no_expiration`]), clientAuth,
    /// digitalSignature, hardwareModuleName.
    pub fn standard(now: SystemTime) -> Self {
        Self {
            not_before: now,
            not_after: no_expiration(),
            client_auth_eku: true,
            server_auth_eku: false,
            digital_signature: true,
            hardware_module_name: true,
        }
    }

    /// Expired one day before `now` (valid from `now` − 2 days).
    pub fn expired(now: SystemTime) -> Self {
        Self {
            not_before: now.checked_sub(DAY * 2).unwrap_or(UNIX_EPOCH),
            not_after: now.checked_sub(DAY).unwrap_or(UNIX_EPOCH),
            ..Self::standard(now)
        }
    }

    /// Valid only from one day after `now`.
    pub fn not_yet_valid(now: SystemTime) -> Self {
        Self {
            not_before: now + DAY,
            ..Self::standard(now)
        }
    }

    /// extKeyUsage serverAuth only: a "device" that would pass as a server.
    pub fn server_auth_only(now: SystemTime) -> Self {
        Self {
            client_auth_eku: false,
            server_auth_eku: true,
            ..Self::standard(now)
        }
    }

    /// keyUsage without digitalSignature (keyAgreement only).
    pub fn without_digital_signature(now: SystemTime) -> Self {
        Self {
            digital_signature: false,
            ..Self::standard(now)
        }
    }

    /// No hardwareModuleName in subjectAltName (and so no subjectAltName).
    pub fn without_hardware_module_name(now: SystemTime) -> Self {
        Self {
            hardware_module_name: false,
            ..Self::standard(now)
        }
    }
}

/// A device's IDevID: its serial, certificate chain and private key.
/// The key is zeroized on drop and `Debug` redacts it.
///
/// Because of the zeroizing `Drop`, fields cannot be moved out; borrow them
/// (`&id.chain`, `id.key.clone_key()`) or use [`DeviceIdentity::into_parts`].
pub struct DeviceIdentity {
    /// The device serial (the subject `serialNumber` and the
    /// hardwareModuleName `hwSerialNum`).
    pub serial: String,
    /// The certificate's serialNumber, big-endian, positive.
    pub cert_serial: Vec<u8>,
    /// `[leaf, issuing CA]`: what the device presents in TLS.
    pub chain: Vec<CertificateDer<'static>>,
    /// The device's PKCS#8 private key (ECDSA P-256).
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl DeviceIdentity {
    /// The leaf certificate (`chain[0]`).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Moves the parts out: (serial, chain, key). The caller then owns the
    /// key and its zeroization.
    pub fn into_parts(
        mut self,
    ) -> (
        String,
        Vec<CertificateDer<'static>>,
        PrivatePkcs8KeyDer<'static>,
    ) {
        let serial = std::mem::take(&mut self.serial);
        let chain = std::mem::take(&mut self.chain);
        let key = std::mem::replace(&mut self.key, PrivatePkcs8KeyDer::from(Vec::new()));
        (serial, chain, key)
    }
}

impl Drop for DeviceIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("serial", &self.serial)
            .field("cert_serial", &hex::encode(&self.cert_serial))
            .field(
                "chain",
                &format_args!("[{} certificates]", self.chain.len()),
            )
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

/// The DCS's TLS server identity: host, chain and private key. The key is
/// zeroized on drop and `Debug` redacts it.
pub struct ServerIdentity {
    /// The DNS name in subjectAltName (and CN).
    pub host: String,
    /// `[leaf, issuing CA]`.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's PKCS#8 private key (ECDSA P-256).
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Drop for ServerIdentity {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("host", &self.host)
            .field(
                "chain",
                &format_args!("[{} certificates]", self.chain.len()),
            )
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

/// Why a certificate was revoked (RFC 5280 §5.3.1, the codes nido offers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given (the reasonCode extension is omitted).
    #[default]
    Unspecified,
    /// The device key is known or suspected to be compromised.
    KeyCompromise,
    /// Ownership or affiliation changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The device was retired.
    CessationOfOperation,
    /// The privilege the certificate stood for was withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            Self::Unspecified => rcgen::RevocationReason::Unspecified,
            Self::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Self::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Self::Superseded => rcgen::RevocationReason::Superseded,
            Self::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Self::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// A revoked certificate, as a CRL entry and as `manufacturer.json` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The device serial (informational; empty if unknown).
    pub serial: String,
    /// The certificate serialNumber the CRL lists.
    pub cert_serial: Vec<u8>,
    /// When the manufacturer processed the revocation.
    pub revoked_at: SystemTime,
    /// Why.
    pub reason: RevocationReason,
}

impl Revoked {
    /// Revoke a certificate by its serialNumber.
    pub fn new(cert_serial: &[u8], revoked_at: SystemTime) -> Self {
        Self {
            serial: String::new(),
            cert_serial: cert_serial.to_vec(),
            revoked_at,
            reason: RevocationReason::Unspecified,
        }
    }

    /// Revoke a device's certificate.
    pub fn of(device: &DeviceIdentity, revoked_at: SystemTime) -> Self {
        Self {
            serial: device.serial.clone(),
            ..Self::new(&device.cert_serial, revoked_at)
        }
    }
}

/// One CA: its parameters (the subject DN and key identifier method the
/// issuer side needs), key and certificate.
pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) der: CertificateDer<'static>,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

/// The distinguished names and CA parameters, rebuilt identically on load
/// (name chaining compares the DER of names byte for byte).
pub(crate) fn root_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, name);
    dn.push(DnType::CommonName, format!("{name} Root CA"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

pub(crate) fn issuing_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, name);
    dn.push(DnType::CommonName, format!("{name} Device Issuing CA"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.use_authority_key_identifier_extension = true;
    p
}

/// A manufacturer: name, DCS realm, root and issuing CA, and the counters
/// and revocations `manufacturer.json` persists. CA keys are zeroized on
/// drop; `Debug` shows no key.
pub struct Manufacturer {
    pub(crate) name: String,
    pub(crate) dcs_realm: String,
    /// Whether the manufacturer runs its own DCS, which onboarding networks
    /// reach over AAA (TS 33.501 I.9.2.3): its devices then take K_AUSF
    /// from the MSK.
    pub(crate) external_dcs: bool,
    pub(crate) serial_prefix: String,
    pub(crate) hw_type: String,
    pub(crate) root: Ca,
    pub(crate) issuing: Ca,
    pub(crate) next_serial: u64,
    pub(crate) crl_number: u64,
    pub(crate) revoked: Vec<Revoked>,
}

impl Drop for Manufacturer {
    fn drop(&mut self) {
        self.root.key.zeroize();
        self.issuing.key.zeroize();
    }
}

impl fmt::Debug for Manufacturer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manufacturer")
            .field("name", &self.name)
            .field("dcs_realm", &self.dcs_realm)
            .field("external_dcs", &self.external_dcs)
            .field("serial_prefix", &self.serial_prefix)
            .field("next_serial", &self.next_serial)
            .field("crl_number", &self.crl_number)
            .field("revoked", &self.revoked.len())
            .field("keys", &format_args!("[redacted]"))
            .finish()
    }
}

impl Manufacturer {
    /// A new manufacturer with fresh P-256 root and issuing CAs, valid from
    /// one hour before `now` with no well-defined expiration (an IDevID
    /// outlives any date a CA could pick; see the module doc). The DCS realm
    /// defaults to `dcs.<slug>.nido.invalid` ([`Manufacturer::set_dcs_realm`]
    /// changes it), the serial prefix to the first 8 letters and digits of
    /// the name, upper case.
    pub fn generate(name: &str, now: SystemTime) -> Result<Self, PkiError> {
        check_name(name)?;
        let not_before = now.checked_sub(HOUR).unwrap_or(now);

        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut rp = root_params(name);
        set_validity(&mut rp, not_before, no_expiration())?;
        rp.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let root_der = rp.self_signed(&root_key)?.der().clone();

        let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut ip = issuing_params(name);
        set_validity(&mut ip, not_before, no_expiration())?;
        ip.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let issuing_der = ip
            .signed_by(&issuing_key, &Issuer::from_params(&rp, &root_key))?
            .der()
            .clone();

        let slug = slug(name);
        Ok(Self {
            name: name.to_owned(),
            dcs_realm: format!("dcs.{}.nido.invalid", slug.to_ascii_lowercase()),
            external_dcs: false,
            serial_prefix: slug,
            hw_type: crate::NIDO_HW_TYPE.to_owned(),
            root: Ca {
                params: rp,
                key: root_key,
                der: root_der,
            },
            issuing: Ca {
                params: ip,
                key: issuing_key,
                der: issuing_der,
            },
            next_serial: 1,
            crl_number: 0,
            revoked: Vec::new(),
        })
    }

    /// The manufacturer's name (the `O` of every certificate it issues).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The realm of the manufacturer's DCS, which devices put in their
    /// anonymous onboarding SUCI (`...@<realm>`).
    pub fn dcs_realm(&self) -> &str {
        &self.dcs_realm
    }

    /// Sets the DCS realm (a DNS-like name).
    pub fn set_dcs_realm(&mut self, realm: &str) -> Result<(), PkiError> {
        check_realm(realm)?;
        realm.clone_into(&mut self.dcs_realm);
        Ok(())
    }

    /// Whether the manufacturer runs its own DCS (TS 33.501 I.9.2.3): the
    /// onboarding network relays its devices' EAP to it over AAA instead of
    /// authenticating them with a DCS of its own. `false` for a new
    /// manufacturer.
    pub fn external_dcs(&self) -> bool {
        self.external_dcs
    }

    /// Says whether the manufacturer runs its own DCS
    /// ([`Manufacturer::external_dcs`]). Bundles issued afterwards carry the
    /// matching [`Manufacturer::kausf_from`]; devices already issued keep
    /// the rule their bundle says.
    pub fn set_external_dcs(&mut self, external: bool) {
        self.external_dcs = external;
    }

    /// Which EAP key this manufacturer's devices derive K_AUSF from: the
    /// MSK behind an external DCS (an AAA server returns the MSK only,
    /// TS 33.501 I.2.2.2.2), the EMSK otherwise (B.2.1.1).
    pub fn kausf_from(&self) -> crate::KausfFrom {
        if self.external_dcs {
            crate::KausfFrom::Msk
        } else {
            crate::KausfFrom::Emsk
        }
    }

    /// The prefix of device serials [`Manufacturer::reserve_serials`] makes.
    pub fn serial_prefix(&self) -> &str {
        &self.serial_prefix
    }

    /// Sets the serial prefix (1 to 16 of `A-Z a-z 0-9`).
    pub fn set_serial_prefix(&mut self, prefix: &str) -> Result<(), PkiError> {
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(PkiError::invalid(
                "serial prefix",
                format!("{prefix:?} must be 1 to 16 of A-Z a-z 0-9"),
            ));
        }
        prefix.clone_into(&mut self.serial_prefix);
        Ok(())
    }

    /// The hwType OID (dotted) written in every hardwareModuleName.
    pub fn hw_type(&self) -> &str {
        &self.hw_type
    }

    /// Sets the hwType OID (dotted form, e.g. a 2.25 UUID OID or an arc
    /// under the manufacturer's private enterprise number).
    pub fn set_hw_type(&mut self, oid: &str) -> Result<(), PkiError> {
        if der::oid_content(oid).is_none() {
            return Err(PkiError::invalid(
                "hwType",
                format!("{oid:?} is not a dotted OID"),
            ));
        }
        oid.clone_into(&mut self.hw_type);
        Ok(())
    }

    /// The root CA certificate: the trust anchor devices and the DCS hold.
    pub fn root_der(&self) -> &CertificateDer<'static> {
        &self.root.der
    }

    /// The issuing CA certificate (the intermediate in every chain).
    pub fn issuing_der(&self) -> &CertificateDer<'static> {
        &self.issuing.der
    }

    /// The root CA certificate in PEM.
    pub fn root_pem(&self) -> String {
        crate::files::pem("CERTIFICATE", &self.root.der)
    }

    /// The next device serial number [`Manufacturer::reserve_serials`] hands out.
    pub fn next_serial(&self) -> u64 {
        self.next_serial
    }

    /// The number of the last CRL [`Manufacturer::next_crl`] made (0: none yet).
    pub fn crl_number(&self) -> u64 {
        self.crl_number
    }

    /// The revocations recorded so far.
    pub fn revoked(&self) -> &[Revoked] {
        &self.revoked
    }

    /// The device serial for counter value `n`: `<prefix>-<n, 10 digits>`.
    pub fn device_serial(&self, n: u64) -> String {
        format!("{}-{n:010}", self.serial_prefix)
    }

    /// Hands out `count` fresh device serials and advances the counter. Save
    /// the state ([`Manufacturer::save_state`]) *before* issuing from them,
    /// so a crash leaves a gap and never a duplicate.
    pub fn reserve_serials(&mut self, count: u64) -> Result<Vec<String>, PkiError> {
        let end = self
            .next_serial
            .checked_add(count)
            .ok_or_else(|| PkiError::invalid("count", "the serial counter would overflow"))?;
        let serials = (self.next_serial..end)
            .map(|n| self.device_serial(n))
            .collect();
        self.next_serial = end;
        Ok(serials)
    }

    /// Records a revocation (idempotent per certificate serial; the time is
    /// kept to the second, as CRLs carry it). Returns `false` if that
    /// certificate was already revoked.
    pub fn revoke(&mut self, mut entry: Revoked) -> bool {
        if let Ok(d) = entry.revoked_at.duration_since(UNIX_EPOCH) {
            entry.revoked_at = UNIX_EPOCH + Duration::from_secs(d.as_secs());
        }
        if self
            .revoked
            .iter()
            .any(|r| r.cert_serial == entry.cert_serial)
        {
            return false;
        }
        self.revoked.push(entry);
        true
    }

    /// A device IDevID for `serial` (see the module doc for the profile),
    /// with a fresh P-256 key.
    pub fn issue_device(
        &self,
        serial: &str,
        profile: &DeviceProfile,
    ) -> Result<DeviceIdentity, PkiError> {
        check_serial(serial)?;
        let mut p = CertificateParams::default();
        set_validity(&mut p, profile.not_before, profile.not_after)?;
        let cert_serial = random_serial()?;
        p.serial_number = Some(SerialNumber::from_slice(&cert_serial));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.name.as_str());
        dn.push(DnType::CommonName, serial);
        let printable = rcgen::string::PrintableString::try_from(serial)
            .map_err(|e| PkiError::invalid("device serial", e.to_string()))?;
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString(printable),
        );
        p.distinguished_name = dn;
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.key_usages = if profile.digital_signature {
            vec![KeyUsagePurpose::DigitalSignature]
        } else {
            vec![KeyUsagePurpose::KeyAgreement]
        };
        if profile.client_auth_eku {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if profile.server_auth_eku {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if profile.hardware_module_name {
            let gn = der::hardware_module_general_name(&self.hw_type, serial.as_bytes())
                .ok_or_else(|| PkiError::invalid("hwType", self.hw_type.clone()))?;
            // subjectAltName (2.5.29.17), non-critical: the subject is not empty.
            p.custom_extensions.push(CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                der::tlv(der::TAG_SEQUENCE, &gn),
            ));
        }

        let mut key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let signed = p.signed_by(&key, &self.issuing.issuer());
        let pkcs8 = PrivatePkcs8KeyDer::from(key.serialize_der());
        key.zeroize();
        let cert = signed?;
        Ok(DeviceIdentity {
            serial: serial.to_owned(),
            cert_serial,
            chain: vec![cert.der().clone(), self.issuing.der.clone()],
            key: pkcs8,
        })
    }

    /// The DCS's TLS server certificate for `host`: subjectAltName dNSName
    /// `host`, extKeyUsage serverAuth, keyUsage digitalSignature, issued by
    /// the issuing CA so a device that holds the root can verify it.
    pub fn issue_dcs(&self, host: &str, validity: Validity) -> Result<ServerIdentity, PkiError> {
        check_host(host)?;
        let mut p = CertificateParams::default();
        set_validity(&mut p, validity.not_before, validity.not_after)?;
        p.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.name.as_str());
        dn.push(DnType::CommonName, host);
        p.distinguished_name = dn;
        let ia5 = rcgen::string::Ia5String::try_from(host)
            .map_err(|e| PkiError::invalid("DCS host name", e.to_string()))?;
        p.subject_alt_names = vec![SanType::DnsName(ia5)];
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

        let mut key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let signed = p.signed_by(&key, &self.issuing.issuer());
        let pkcs8 = PrivatePkcs8KeyDer::from(key.serialize_der());
        key.zeroize();
        let cert = signed?;
        Ok(ServerIdentity {
            host: host.to_owned(),
            chain: vec![cert.der().clone(), self.issuing.der.clone()],
            key: pkcs8,
        })
    }

    /// A CRL signed by the issuing CA (the issuer of device and DCS
    /// certificates) listing `revoked`, with CRL number `number` (RFC 5280
    /// wants it to increase with every CRL).
    pub fn crl(
        &self,
        revoked: &[Revoked],
        this_update: SystemTime,
        next_update: SystemTime,
        number: u64,
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let tu = cert_secs("thisUpdate", this_update)?;
        let nu = cert_secs("nextUpdate", next_update)?;
        if nu <= tu {
            return Err(PkiError::invalid(
                "CRL validity",
                "nextUpdate is not later than thisUpdate",
            ));
        }
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                let at = cert_secs("revocation time", r.revoked_at)?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&r.cert_serial),
                    revocation_time: epoch + Duration::from_secs(at),
                    reason_code: Some(r.reason.to_rcgen()),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: epoch + Duration::from_secs(tu),
            next_update: epoch + Duration::from_secs(nu),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuing.issuer())?.der().clone())
    }

    /// The next CRL of this manufacturer: every recorded revocation, CRL
    /// number advanced by one (save the state afterwards).
    pub fn next_crl(
        &mut self,
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<CertificateRevocationListDer<'static>, PkiError> {
        let number = self.crl_number + 1;
        let crl = self.crl(&self.revoked, this_update, next_update, number)?;
        self.crl_number = number;
        Ok(crl)
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::{GeneralName, parse_x509_certificate, parse_x509_crl};

    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_760_000_000)
    }

    #[test]
    fn device_certificate_has_the_idevid_profile() {
        let m = Manufacturer::generate("Acme Sensors", now()).unwrap();
        let d = m
            .issue_device("ACMESENS-0000000001", &DeviceProfile::standard(now()))
            .unwrap();
        assert_eq!(d.chain.len(), 2);
        assert_eq!(&d.chain[1], m.issuing_der());
        let (rest, c) = parse_x509_certificate(&d.chain[0]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(c.raw_serial(), &d.cert_serial[..]);
        assert_eq!(d.cert_serial.len(), 16);
        assert_eq!(d.cert_serial[0] & 0xc0, 0x40);
        let sn: Vec<_> = c
            .subject()
            .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(sn, ["ACMESENS-0000000001"]);
        assert_eq!(c.validity().not_after.timestamp(), 253_402_300_799);
        assert_eq!(c.validity().not_before.timestamp(), 1_760_000_000);
        let ku = c.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature());
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && !bc.value.ca);
        assert!(
            c.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
        let san = c.subject_alternative_name().unwrap().unwrap();
        assert!(!san.critical);
        match &san.value.general_names[..] {
            [GeneralName::OtherName(oid, value)] => {
                assert_eq!(oid.to_id_string(), crate::OID_HARDWARE_MODULE_NAME);
                let (t, s) = der::parse_hardware_module_value(value).unwrap();
                assert_eq!(t, crate::NIDO_HW_TYPE);
                assert_eq!(s, b"ACMESENS-0000000001");
            }
            other => panic!("{other:?}"),
        }
        // The key is the certificate's key.
        let kp = KeyPair::try_from(&d.key).unwrap();
        assert_eq!(
            kp.public_key_raw(),
            &c.public_key().subject_public_key.data[..]
        );
        // And nothing secret in Debug.
        let dbg = format!("{d:?} {m:?}");
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains(&hex::encode(d.key.secret_pkcs8_der())));
    }

    #[test]
    fn serials_are_validated() {
        let m = Manufacturer::generate("M", now()).unwrap();
        let p = DeviceProfile::standard(now());
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(m.issue_device(bad, &p).is_err(), "{bad:?}");
        }
        assert!(m.issue_device(&"x".repeat(64), &p).is_ok());
    }

    #[test]
    fn reserved_serials_advance_the_counter() {
        let mut m = Manufacturer::generate("Ünïcode & Co", now()).unwrap();
        assert_eq!(m.serial_prefix(), "NCODECO");
        assert_eq!(
            m.reserve_serials(2).unwrap(),
            ["NCODECO-0000000001", "NCODECO-0000000002"]
        );
        assert_eq!(m.next_serial(), 3);
        m.next_serial = u64::MAX;
        assert!(m.reserve_serials(1).is_err());
    }

    #[test]
    fn validity_is_checked() {
        let m = Manufacturer::generate("M", now()).unwrap();
        let mut p = DeviceProfile::standard(now());
        p.not_after = p.not_before;
        assert!(m.issue_device("A", &p).is_err());
        p.not_after = no_expiration() + Duration::from_secs(1);
        assert!(m.issue_device("A", &p).is_err());
        assert!(
            m.crl(&[], now(), now(), 1).is_err(),
            "nextUpdate must be after thisUpdate"
        );
    }

    #[test]
    fn dcs_certificate_is_a_server_certificate() {
        let m = Manufacturer::generate("M", now()).unwrap();
        let s = m
            .issue_dcs("dcs.example.net", Validity::days(now(), 365))
            .unwrap();
        let (_, c) = parse_x509_certificate(&s.chain[0]).unwrap();
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let san = c.subject_alternative_name().unwrap().unwrap();
        assert!(matches!(
            &san.value.general_names[..],
            [GeneralName::DNSName("dcs.example.net")]
        ));
        assert!(m.issue_dcs("bad host", Validity::days(now(), 1)).is_err());
        assert!(format!("{s:?}").contains("[redacted]"));
    }

    #[test]
    fn crl_lists_the_revoked_serials() {
        let mut m = Manufacturer::generate("M", now()).unwrap();
        let d = m
            .issue_device("A-1", &DeviceProfile::standard(now()))
            .unwrap();
        assert!(m.revoke(Revoked::of(&d, now())));
        assert!(!m.revoke(Revoked::of(&d, now())));
        let crl = m.next_crl(now(), now() + DAY).unwrap();
        assert_eq!(m.crl_number(), 1);
        let (_, parsed) = parse_x509_crl(&crl).unwrap();
        let serials: Vec<_> = parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        assert_eq!(serials, std::slice::from_ref(&d.cert_serial));
        assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("1".into()));
        let (_, issuing) = parse_x509_certificate(m.issuing_der()).unwrap();
        parsed.verify_signature(issuing.public_key()).unwrap();
    }
}
