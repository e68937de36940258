//! The DCS side: which device certificates the network accepts.
//!
//! A [`TrustStore`] holds the manufacturers the operator enrolled (root
//! certificate, CRLs whose signatures were verified when added, a
//! [`Policy`]) and the operator's block list of device identities
//! ([`DeviceId`]: manufacturer and serial, so blocking one manufacturer's
//! device never blocks another's of the same serial).
//! [`TrustStore::validate`] is a pure function of (chain, store, `now`):
//!
//! 1. parse the end-entity certificate (x509-parser);
//! 2. find the enrolled manufacturers whose root the chain can reach by
//!    names; none → `UnknownManufacturer`;
//! 3. rustls-webpki path validation to that root: signatures, validity of
//!    every certificate, basicConstraints, EKU clientAuth
//!    (`KeyUsage::client_auth()`), revocation against the manufacturer's
//!    CRLs (leaf and intermediates); a CRL past its nextUpdate, or no CRL
//!    of the leaf's issuer, is `RevocationUnknown` unless the
//!    manufacturer's [`Policy`] accepts stale CRLs or devices without one;
//! 4. keyUsage present with digitalSignature, extKeyUsage present (webpki
//!    accepts a certificate without one), exactly one subject
//!    `serialNumber` (2.5.4.5) that is a valid device serial, the
//!    hardwareModuleName otherName (RFC 4108) if any;
//! 5. the operator block list, then the manufacturer's policy.
//!
//! The first failing step names the [`RefusalReason`].
//!
//! # Checking revocation without verifying CRL signatures again
//!
//! rustls-webpki verifies the signature of every CRL it consults on every
//! path validation; [`TrustStore::add_crl`] already verified it once, with
//! the key of the CRL's issuer certificate. When the CRL is plain (no
//! issuingDistributionPoint, no critical extension, its issuer may sign
//! CRLs, its signature algorithm and key are ones webpki verifies the same
//! way: checked at import), step 3 first lets webpki validate the path
//! without revocation, then looks each certificate of that path up in the
//! CRL of its issuer's name itself: nextUpdate (unless stale CRLs are
//! accepted), the serial, and that the path's issuer certificate is the
//! very certificate whose key verified the CRL. Nothing about a stored CRL
//! changes after import, so this is exactly webpki's revocation check
//! minus the repeated signature verification. The shortcut only accepts:
//! a revoked or unknown status, an issuer certificate other than the one
//! the CRL was imported with, a CRL that is not plain, a longer chain, or
//! any refusal makes step 3 run webpki with revocation as before, and its
//! verdict stands.
//!
//! # Refusal reasons and 5GMM causes (TS 24.501 §9.11.3.2)
//!
//! | [`RefusalReason`] | meaning | 5GMM cause |
//! |---|---|---|
//! | `UnknownManufacturer` | the chain reaches no enrolled root | #75 permanently not authorized for this SNPN |
//! | `Policy` | valid, but the manufacturer's policy refuses it (serial prefix, hardwareModuleName, validity) | #75 permanently not authorized for this SNPN |
//! | `NotYetValid` | a certificate's notBefore is after `now` (a clock or a factory ahead of time) | #74 temporarily not authorized for this SNPN |
//! | `RevocationUnknown` | a CRL is past its nextUpdate, the leaf's issuer has no CRL (each unless the policy accepts it), or a CRL could not be used | #74 temporarily not authorized for this SNPN |
//! | `BadSignature` | a signature does not verify, or the path is otherwise invalid | #3 illegal UE |
//! | `Expired` | a certificate's notAfter has passed | #3 illegal UE |
//! | `Revoked` | a CRL lists the certificate (or its issuer) | #3 illegal UE |
//! | `KeyUsage` | no keyUsage, no digitalSignature, or a CA certificate as device | #3 illegal UE |
//! | `ExtendedKeyUsage` | no extKeyUsage or no clientAuth in it | #3 illegal UE |
//! | `Blocked` | the operator blocked the device identity | #3 illegal UE |
//! | `Malformed` | the DER does not parse, no subject serialNumber, a bad otherName | #3 illegal UE |
//!
//! #74 invites the UE to retry later, #75 tells it this SNPN will never
//! take it (it may try another), #3 marks the UE itself as not to be
//! trusted.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, CertificateRevocationListDer, InvalidSignature,
    SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use webpki::{
    Cert, CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy, VerifiedPath,
};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_X509_EXT_KEY_USAGE, OID_X509_SERIALNUMBER};
use x509_parser::prelude::{X509Certificate, parse_x509_certificate, parse_x509_crl};

use nido_sec::Cause;

use crate::{DeviceId, Manufacturer, PkiError, der};

/// Signature algorithms accepted in device chains (aws-lc-rs).
static ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// At most this many signatures of one root are remembered ([`RootMemo`]).
const ROOT_MEMO_ENTRIES: usize = 16;

/// The signatures one manufacturer's root made that have already been
/// verified: every device of an issuing CA presents the same issuing-CA
/// certificate, so the root's signature on it is the same bytes each time.
///
/// Invariants: an entry is only ever added after [`ALGS`]' algorithm
/// verified it under the root's own key; a lookup matches the algorithm,
/// the exact message and the exact signature octets (a pure function's
/// result, remembered: nothing weaker is accepted than a verification
/// would accept); only the root's key is looked up, so no other issuer's
/// signature is ever skipped; at most [`ROOT_MEMO_ENTRIES`] entries (the
/// oldest goes), and only signatures that verified can enter, so an
/// attacker cannot fill it with its own.
#[derive(Debug)]
struct RootMemo {
    /// The root's subjectPublicKey, as webpki passes it to
    /// [`SignatureVerificationAlgorithm::verify_signature`].
    key: Vec<u8>,
    seen: Mutex<VecDeque<Verified>>,
}

/// One remembered signature: index into [`ALGS`], message, signature.
struct Verified {
    alg: usize,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Verified(alg {}, {} octets)",
            self.alg,
            self.message.len()
        )
    }
}

impl RootMemo {
    fn remembers(&self, alg: usize, message: &[u8], signature: &[u8]) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .any(|v| v.alg == alg && v.message == message && v.signature == signature)
    }

    fn remember(&self, alg: usize, message: &[u8], signature: &[u8]) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() == ROOT_MEMO_ENTRIES {
            seen.pop_front();
        }
        seen.push_back(Verified {
            alg,
            message: message.to_vec(),
            signature: signature.to_vec(),
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// [`ALGS`]' algorithm number `alg`, consulting `memo` for the root's key.
#[derive(Debug)]
struct RootMemoAlg {
    alg: usize,
    memo: Arc<RootMemo>,
}

impl SignatureVerificationAlgorithm for RootMemoAlg {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let inner = ALGS[self.alg];
        if public_key != self.memo.key.as_slice() {
            return inner.verify_signature(public_key, message, signature);
        }
        if self.memo.remembers(self.alg, message, signature) {
            return Ok(());
        }
        inner.verify_signature(public_key, message, signature)?;
        self.memo.remember(self.alg, message, signature);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        ALGS[self.alg].public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        ALGS[self.alg].signature_alg_id()
    }

    fn fips(&self) -> bool {
        ALGS[self.alg].fips()
    }
}

/// Why a device certificate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The chain reaches no enrolled manufacturer root.
    UnknownManufacturer,
    /// A signature in the chain does not verify, or the path is invalid.
    BadSignature,
    /// A certificate in the chain has expired.
    Expired,
    /// A certificate in the chain is not valid yet.
    NotYetValid,
    /// A CRL of the manufacturer lists the certificate.
    Revoked,
    /// Revocation status could not be established as the policy demands
    /// (stale CRL, unusable CRL).
    RevocationUnknown,
    /// keyUsage is missing or lacks digitalSignature, or the certificate is a CA.
    KeyUsage,
    /// extKeyUsage is missing or lacks clientAuth.
    ExtendedKeyUsage,
    /// The operator's block list names the device identity.
    Blocked,
    /// The manufacturer's policy refuses the certificate.
    Policy,
    /// The certificate cannot be parsed or lacks a required field.
    Malformed,
}

impl RefusalReason {
    /// The 5GMM cause the AMF sends in REGISTRATION REJECT (see the table
    /// in the module doc).
    pub fn gmm_cause(self) -> Cause {
        match self {
            Self::UnknownManufacturer | Self::Policy => Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
            Self::NotYetValid | Self::RevocationUnknown => {
                Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
            }
            Self::BadSignature
            | Self::Expired
            | Self::Revoked
            | Self::KeyUsage
            | Self::ExtendedKeyUsage
            | Self::Blocked
            | Self::Malformed => Cause::ILLEGAL_UE,
        }
    }

    /// A stable kebab-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownManufacturer => "unknown-manufacturer",
            Self::BadSignature => "bad-signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation-unknown",
            Self::KeyUsage => "key-usage",
            Self::ExtendedKeyUsage => "extended-key-usage",
            Self::Blocked => "blocked",
            Self::Policy => "policy",
            Self::Malformed => "malformed",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused device certificate: the reason (which fixes the 5GMM cause)
/// and a one-line detail for the operator's log (names serials and
/// manufacturers, never keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// What exactly, for humans.
    pub detail: String,
    /// The device identity the certificate names, when its chain verified
    /// to an enrolled manufacturer and the refusal is about that device
    /// (revoked, blocked, refused by policy): signed by the manufacturer,
    /// though its possession is not proven. `None` for a certificate whose
    /// signatures did not verify.
    pub device: Option<DeviceId>,
}

impl Refusal {
    /// Control characters (which a certificate's names may carry) become
    /// `?`, so the detail stays one log line.
    fn new(reason: RefusalReason, detail: impl Into<String>) -> Self {
        let detail: String = detail
            .into()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        Self {
            reason,
            detail,
            device: None,
        }
    }

    /// This refusal, about device `id`.
    fn of_device(mut self, id: &DeviceId) -> Self {
        self.device = Some(id.clone());
        self
    }

    /// The 5GMM cause for this refusal ([`RefusalReason::gmm_cause`]).
    pub fn gmm_cause(&self) -> Cause {
        self.reason.gmm_cause()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Refusal {}

/// What the network learns from an accepted device certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device identity: the enrolled manufacturer whose root the chain
    /// reached, and the subject serialNumber. The serial alone is not an
    /// identity (another manufacturer may issue the same one).
    pub id: DeviceId,
    /// hardwareModuleName: (hwType dotted OID, hwSerialNum), if present.
    pub hardware_module: Option<(String, Vec<u8>)>,
    /// The leaf's notAfter.
    pub not_after: UnixTime,
    /// The leaf's certificate serialNumber (big-endian).
    pub cert_serial: Vec<u8>,
    /// The leaf's public key: the subjectPublicKey of its
    /// SubjectPublicKeyInfo (for an IDevID, the uncompressed P-256 point),
    /// which verifies what the device signs outside TLS (an erasure
    /// receipt, issue #16).
    pub public_key: Vec<u8>,
    /// The leaf's issuer name (DER, as in the certificate): with
    /// `cert_serial`, what a CRL of that issuer names it by.
    pub issuer: Vec<u8>,
}

/// What a manufacturer's devices must satisfy beyond a valid chain. The
/// default accepts any device the chain validation accepts whose
/// revocation status a current CRL of its issuing CA establishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The device serial must start with this.
    pub serial_prefix: Option<String>,
    /// The certificate must carry a hardwareModuleName.
    pub require_hardware_module: bool,
    /// If set, a hardwareModuleName present must have this hwType (dotted OID).
    pub hardware_module_type: Option<String>,
    /// notAfter − notBefore of the leaf must not exceed this (IDevIDs made
    /// with [`crate::no_expiration`] exceed any realistic bound).
    pub max_validity: Option<Duration>,
    /// Use a CRL of this manufacturer that is past its nextUpdate as if it
    /// were current. Off by default: a stale CRL says nothing about
    /// revocations since (RFC 5280 §5.1.2.5, §6.3.3 (a)(2)), so the
    /// device's revocation status is unknown (`RevocationUnknown`, #74,
    /// temporary: it is admitted again once a fresh CRL is imported).
    pub accept_stale_crl: bool,
    /// Accept a device although no CRL of its issuing CA is in the store
    /// (its revocation status cannot be known). Off by default: such a
    /// device is refused with `RevocationUnknown` (#74) until the operator
    /// imports the manufacturer's CRL or opts in for this manufacturer
    /// (`nido network trust-manufacturer --revocation allow-without-crl`).
    pub allow_without_crl: bool,
    /// The most subscriptions the PVS creates for this manufacturer's
    /// devices (each takes an IMSI of the operator's range); `None` takes
    /// the operator's default. Not checked by [`TrustStore::validate`]: the
    /// PVS enforces it before it allocates a SUPI.
    pub max_subscriptions: Option<u64>,
}

impl Policy {
    /// The strict policy for devices of a nido manufacturer: serial prefix
    /// `<prefix>-`, hardwareModuleName required with its hwType.
    pub fn for_manufacturer(m: &Manufacturer) -> Self {
        Self {
            serial_prefix: Some(format!("{}-", m.serial_prefix())),
            require_hardware_module: true,
            hardware_module_type: Some(m.hw_type().to_owned()),
            ..Self::default()
        }
    }
}

struct StoredCrl {
    issuer_subject: Vec<u8>,
    number: Vec<u8>,
    crl: CertRevocationList<'static>,
    /// What the fast path of [`TrustStore::validate`] needs, if the CRL is
    /// plain enough for it ([`FastCrl::of`]).
    fast: Option<FastCrl>,
}

/// A CRL whose revocation check needs no signature verification per
/// device: learnt at [`TrustStore::add_crl`], used by [`crl_admits`].
struct FastCrl {
    /// The DER of the certificate whose key verified the CRL's signature
    /// at import, as rustls-webpki would verify it (same algorithm table,
    /// same key, same bytes).
    issuer_der: Vec<u8>,
    /// The CRL's nextUpdate.
    next_update: UnixTime,
}

/// At most this many intermediates for the fast path: rustls-webpki then
/// builds at most 5 candidate paths of at most 3 certificates, so its
/// revocation-checking path building needs at most 30 signature checks,
/// well under its budget of 100, and cannot fail on the budget where the
/// fast path succeeds.
const FAST_MAX_INTERMEDIATES: usize = 2;

impl FastCrl {
    /// `Some` only if every revocation check rustls-webpki makes with this
    /// CRL, issued by `issuer` (already checked: subject is the CRL issuer,
    /// x509-parser verified the CRL signature with its key), reduces to
    /// "nextUpdate and serial lookup" once the signature is known good:
    ///
    /// - no issuingDistributionPoint (webpki: authoritative for every
    ///   certificate of that issuer name), no deltaCRLIndicator, no
    ///   critical extension at all;
    /// - `issuer` has no keyUsage or one asserting cRLSign, exactly as
    ///   webpki reads the bit;
    /// - the signature verifies with the algorithm webpki would pick from
    ///   [`ALGS`] for this signatureAlgorithm and this issuer key.
    fn of(
        crl_der: &[u8],
        crl: &CertRevocationList<'_>,
        parsed: &x509_parser::revocation_list::CertificateRevocationList<'_>,
        issuer: &X509Certificate<'_>,
        issuer_der: &[u8],
    ) -> Option<Self> {
        if crl.issuing_distribution_point().is_some() {
            return None;
        }
        if parsed.extensions().iter().any(|e| {
            e.critical || e.oid.to_id_string() == "2.5.29.27" || e.oid.to_id_string() == "2.5.29.28"
        }) {
            return None;
        }
        let next_update = parsed.next_update()?.timestamp();
        let next_update =
            UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(next_update).ok()?));
        if !crl_sign_allowed(issuer)? {
            return None;
        }
        webpki_would_verify(crl_der, issuer.public_key().raw).then(|| Self {
            issuer_der: issuer_der.to_vec(),
            next_update,
        })
    }
}

/// Whether rustls-webpki lets `issuer` sign CRLs: no keyUsage, or a
/// keyUsage BIT STRING (DER, no stray padding) with cRLSign (bit 6).
/// `None` if anything is unusual (two keyUsage extensions, bad encoding).
fn crl_sign_allowed(issuer: &X509Certificate<'_>) -> Option<bool> {
    let mut it = issuer
        .extensions()
        .iter()
        .filter(|e| e.oid == OID_X509_EXT_KEY_USAGE);
    let ku = match (it.next(), it.next()) {
        (None, _) => return Some(true),
        (Some(ku), None) => ku,
        (Some(_), Some(_)) => return None,
    };
    let mut r = der::Reader::new(ku.value);
    let bits = r.read(0x03).ok()?;
    if !r.is_empty() {
        return None;
    }
    let (&padding, flags) = bits.split_first()?;
    match (padding, flags.last()) {
        (8.., _) | (1.., None) => return None,
        (1..=7, Some(last)) if last & ((1 << padding) - 1) != 0 => return None,
        _ => {}
    }
    Some(flags.first().is_some_and(|b| b & 0x02 != 0))
}

/// Whether rustls-webpki's CRL signature check (`verify_signed_data` with
/// [`ALGS`]) passes for this CRL and issuer SubjectPublicKeyInfo: the first
/// algorithm whose signature and public key identifiers match, on the
/// tbsCertList, the signature bits and the key bits. `false` if anything
/// does not parse strictly.
fn webpki_would_verify(crl_der: &[u8], spki_der: &[u8]) -> bool {
    let parts = || -> Result<_, &'static str> {
        let mut outer = der::Reader::new(crl_der);
        let mut crl = der::Reader::new(outer.read(der::TAG_SEQUENCE)?);
        let tbs = crl.read_tlv(der::TAG_SEQUENCE)?;
        let sig_alg = crl.read(der::TAG_SEQUENCE)?;
        let sig = crl.read(0x03)?;
        let mut outer_spki = der::Reader::new(spki_der);
        let mut spki = der::Reader::new(outer_spki.read(der::TAG_SEQUENCE)?);
        let key_alg = spki.read(der::TAG_SEQUENCE)?;
        let key = spki.read(0x03)?;
        if !(outer.is_empty() && crl.is_empty() && outer_spki.is_empty() && spki.is_empty()) {
            return Err("trailing data");
        }
        match (sig.split_first(), key.split_first()) {
            (Some((0, sig)), Some((0, key))) => Ok((tbs, sig_alg, sig, key_alg, key)),
            _ => Err("bit string with unused bits"),
        }
    };
    let Ok((tbs, sig_alg, sig, key_alg, key)) = parts() else {
        return false;
    };
    ALGS.iter()
        .find(|a| {
            a.signature_alg_id().as_ref() == sig_alg && a.public_key_alg_id().as_ref() == key_alg
        })
        .is_some_and(|a| a.verify_signature(key, tbs, sig).is_ok())
}

/// The fast path's revocation check of `cert` (leaf or intermediate of a
/// path rustls-webpki verified without revocation), whose issuer in that
/// path is `issuer_der`: `true` only if webpki's check
/// (`RevocationOptions::check`, depth Chain, unknown status allowed) would
/// pass. The CRL webpki would take is the first of `m` whose issuer is
/// `cert`'s issuer (all are authoritative: no issuingDistributionPoint);
/// its signature, verified at import by the key of the very certificate
/// that issues `cert` here, is what webpki would verify again.
fn crl_admits(m: &Enrolled, cert: &Cert<'_>, issuer_der: &[u8], now: UnixTime) -> bool {
    let Some(stored) = m.crls.iter().find(|c| c.crl.issuer() == cert.issuer()) else {
        // No CRL: UnknownStatusPolicy::Allow.
        return true;
    };
    let Some(fast) = &stored.fast else {
        return false;
    };
    fast.issuer_der == issuer_der
        && (m.policy.accept_stale_crl || now < fast.next_update)
        && matches!(stored.crl.find_serial(cert.serial()), Ok(None))
}

/// Whether every certificate of `path` that webpki checks for revocation
/// (leaf and intermediates; `RevocationCheckDepth::Chain`) passes
/// [`crl_admits`]. The path's anchor is `m`'s root.
fn path_admitted(m: &Enrolled, path: &VerifiedPath<'_>, now: UnixTime) -> bool {
    let ee: &Cert<'_> = path.end_entity();
    let mut chain = vec![ee];
    chain.extend(path.intermediate_certificates());
    chain.iter().enumerate().all(|(i, cert)| {
        let issuer = chain.get(i + 1).map(|c| c.der());
        let issuer_der = issuer.as_deref().unwrap_or(m.root.as_ref());
        crl_admits(m, cert, issuer_der, now)
    })
}

struct Enrolled {
    name: String,
    root: CertificateDer<'static>,
    root_subject: Vec<u8>,
    anchor: TrustAnchor<'static>,
    policy: Policy,
    crls: Vec<StoredCrl>,
    /// [`ALGS`], in order, remembering the root's signatures.
    algs: Vec<RootMemoAlg>,
}

impl Enrolled {
    /// The algorithm table webpki is given for this manufacturer's chains.
    fn algs(&self) -> Vec<&dyn SignatureVerificationAlgorithm> {
        self.algs
            .iter()
            .map(|a| a as &dyn SignatureVerificationAlgorithm)
            .collect()
    }
}

/// The network's trust: enrolled manufacturers and the operator block list.
#[derive(Default)]
pub struct TrustStore {
    manufacturers: Vec<Enrolled>,
    blocked: BTreeSet<DeviceId>,
    /// Blocks that take effect at the device's next registration, not on
    /// a registration under way (a subset of `blocked`).
    deferred: BTreeSet<DeviceId>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field(
                "manufacturers",
                &self
                    .manufacturers
                    .iter()
                    .map(|m| (&m.name, m.crls.len()))
                    .collect::<Vec<_>>(),
            )
            .field("blocked", &self.blocked.len())
            .finish()
    }
}

/// Compares two big-endian unsigned numbers.
fn cmp_be(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let strip = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|b| *b == 0).collect() };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// Whether the chain can reach `root_subject` by names from `issuer`,
/// through at most 6 intermediates.
fn name_chains(issuer: &[u8], intermediates: &[X509Certificate<'_>], root_subject: &[u8]) -> bool {
    let mut frontier = vec![issuer];
    for _ in 0..=6 {
        if frontier.contains(&root_subject) {
            return true;
        }
        let next: Vec<&[u8]> = intermediates
            .iter()
            .filter(|c| frontier.contains(&c.subject().as_raw()))
            .map(|c| c.issuer().as_raw())
            .filter(|i| !frontier.contains(i))
            .collect();
        if next.is_empty() {
            return false;
        }
        frontier.extend(next);
    }
    false
}

// The deprecated unit variants are still matched in case a path returns them.
#[allow(deprecated)]
fn map_webpki(e: &webpki::Error) -> RefusalReason {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => RefusalReason::UnknownManufacturer,
        E::CertExpired { .. } => RefusalReason::Expired,
        E::CertNotValidYet { .. } => RefusalReason::NotYetValid,
        E::CertRevoked => RefusalReason::Revoked,
        E::CrlExpired { .. }
        | E::UnknownRevocationStatus
        | E::InvalidCrlSignatureForPublicKey
        | E::IssuerNotCrlSigner
        | E::UnsupportedCrlSignatureAlgorithm
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
        | E::UnsupportedIndirectCrl
        | E::UnsupportedRevocationReasonsPartitioning
        | E::UnsupportedDeltaCrl => RefusalReason::RevocationUnknown,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            RefusalReason::ExtendedKeyUsage
        }
        E::CaUsedAsEndEntity => RefusalReason::KeyUsage,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::UnsupportedCertVersion
        | E::UnsupportedCriticalExtension
        | E::InvalidCertValidity
        | E::InvalidSerialNumber => RefusalReason::Malformed,
        _ => RefusalReason::BadSignature,
    }
}

/// The subject serialNumber: exactly one, a valid device serial.
fn device_serial(c: &X509Certificate<'_>) -> Result<String, Refusal> {
    let mut it = c.subject().iter_by_oid(&OID_X509_SERIALNUMBER);
    let (Some(attr), None) = (it.next(), it.next()) else {
        return Err(Refusal::new(
            RefusalReason::Malformed,
            "the subject must have exactly one serialNumber (2.5.4.5)",
        ));
    };
    let s = attr.as_str().map_err(|_| {
        Refusal::new(
            RefusalReason::Malformed,
            "subject serialNumber is not a string",
        )
    })?;
    crate::ca::check_serial(s)
        .map_err(|e| Refusal::new(RefusalReason::Malformed, e.to_string()))?;
    Ok(s.to_owned())
}

/// The hardwareModuleName otherName in subjectAltName, if any.
fn hardware_module(c: &X509Certificate<'_>) -> Result<Option<(String, Vec<u8>)>, Refusal> {
    let malformed = |what: String| Refusal::new(RefusalReason::Malformed, what);
    let Some(san) = c
        .subject_alternative_name()
        .map_err(|e| malformed(format!("subjectAltName: {e}")))?
    else {
        return Ok(None);
    };
    let mut found = None;
    for gn in &san.value.general_names {
        if let GeneralName::OtherName(oid, value) = gn {
            if oid.to_id_string() != crate::OID_HARDWARE_MODULE_NAME {
                continue;
            }
            let hmn = der::parse_hardware_module_value(value)
                .map_err(|e| malformed(format!("hardwareModuleName: {e}")))?;
            if found.replace(hmn).is_some() {
                return Err(malformed("two hardwareModuleNames".into()));
            }
        }
    }
    Ok(found)
}

/// rustls-webpki's verdict on the chain to `m`'s root: signatures,
/// validity, basicConstraints, EKU clientAuth and revocation against `m`'s
/// CRLs (leaf and intermediates, no CRL allowed, nextUpdate enforced unless
/// the policy accepts stale CRLs).
///
/// The fast path (`fast_path`, at most [`FAST_MAX_INTERMEDIATES`]) first
/// asks webpki for a path without revocation, then checks that path's
/// revocation itself ([`path_admitted`]) without verifying any CRL
/// signature: each was verified at import with the key of the same issuer
/// certificate, as webpki would verify it ([`FastCrl::of`]), and nothing of
/// a stored CRL changes after import. It only ever accepts: webpki, with
/// revocation, tries the same candidate paths in the same order, refuses
/// those the fast path's webpki call refused (it checks more, never less)
/// and accepts the path the fast path found, whose revocation checks pass.
/// A refusal (revoked, stale CRL, any other failure) or anything the fast
/// path cannot decide (a CRL with an issuingDistributionPoint, an issuer
/// certificate other than the one the CRL was imported with) goes to
/// webpki with revocation, whose verdict stands: webpki may find another
/// path around a revoked intermediate, and its error names the refusal.
fn verify_chain(
    m: &Enrolled,
    ee: &EndEntityCert<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    fast_path: bool,
) -> Result<(), webpki::Error> {
    let anchors = std::slice::from_ref(&m.anchor);
    let algs = m.algs();
    if fast_path && intermediates.len() <= FAST_MAX_INTERMEDIATES {
        let path = ee.verify_for_usage(
            &algs,
            anchors,
            intermediates,
            now,
            KeyUsage::client_auth(),
            None,
            None,
        );
        if path.is_ok_and(|p| path_admitted(m, &p, now)) {
            return Ok(());
        }
    }
    let crls: Vec<&CertRevocationList<'_>> = m.crls.iter().map(|c| &c.crl).collect();
    let revocation = RevocationOptionsBuilder::new(&crls).ok().map(|b| {
        b.with_depth(RevocationCheckDepth::Chain)
            .with_status_policy(UnknownStatusPolicy::Allow)
            .with_expiration_policy(if m.policy.accept_stale_crl {
                ExpirationPolicy::Ignore
            } else {
                ExpirationPolicy::Enforce
            })
            .build()
    });
    ee.verify_for_usage(
        &algs,
        anchors,
        intermediates,
        now,
        KeyUsage::client_auth(),
        revocation,
        None,
    )
    .map(|_| ())
}

impl TrustStore {
    /// An empty store: every device is an `UnknownManufacturer`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enrolls a manufacturer by its root certificate (self-signed CA,
    /// signature checked). Names and roots are unique in the store; a name
    /// must pass [`crate::check_manufacturer_name`] (no `/`), since it is
    /// the first half of every [`DeviceId`] of its devices.
    pub fn enroll(
        &mut self,
        name: &str,
        root: CertificateDer<'static>,
        policy: Policy,
    ) -> Result<(), PkiError> {
        crate::check_manufacturer_name(name)?;
        if self.manufacturers.iter().any(|m| m.name == name) {
            return Err(PkiError::Trust(format!("{name:?} is already enrolled")));
        }
        if let Some(m) = self.manufacturers.iter().find(|m| m.root == root) {
            return Err(PkiError::Trust(format!(
                "this root is already enrolled as {:?}",
                m.name
            )));
        }
        let (rest, c) = parse_x509_certificate(&root)
            .map_err(|e| PkiError::Trust(format!("{name}: root does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(PkiError::Trust(format!(
                "{name}: trailing data after the root"
            )));
        }
        if !c.is_ca() {
            return Err(PkiError::Trust(format!(
                "{name}: the root is not a CA certificate"
            )));
        }
        if c.subject().as_raw() != c.issuer().as_raw() || c.verify_signature(None).is_err() {
            return Err(PkiError::Trust(format!(
                "{name}: the root is not self-signed"
            )));
        }
        let root_subject = c.subject().as_raw().to_vec();
        let memo = Arc::new(RootMemo {
            key: c.public_key().subject_public_key.data.to_vec(),
            seen: Mutex::new(VecDeque::new()),
        });
        let algs = (0..ALGS.len())
            .map(|alg| RootMemoAlg {
                alg,
                memo: Arc::clone(&memo),
            })
            .collect();
        let anchor = webpki::anchor_from_trusted_cert(&root)
            .map_err(|e| PkiError::Trust(format!("{name}: not a usable trust anchor: {e}")))?
            .to_owned();
        self.manufacturers.push(Enrolled {
            name: name.to_owned(),
            root,
            root_subject,
            anchor,
            policy,
            crls: Vec::new(),
            algs,
        });
        Ok(())
    }

    /// Removes a manufacturer; `false` if it was not enrolled.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.manufacturers.len();
        self.manufacturers.retain(|m| m.name != name);
        before != self.manufacturers.len()
    }

    /// The names of the enrolled manufacturers, in enrollment order.
    pub fn manufacturers(&self) -> impl Iterator<Item = &str> {
        self.manufacturers.iter().map(|m| m.name.as_str())
    }

    /// The enrolled manufacturers' names and policies, in enrollment order.
    pub fn policies(&self) -> impl Iterator<Item = (&str, &Policy)> {
        self.manufacturers
            .iter()
            .map(|m| (m.name.as_str(), &m.policy))
    }

    /// Replaces a manufacturer's policy.
    pub fn set_policy(&mut self, name: &str, policy: Policy) -> Result<(), PkiError> {
        self.find_mut(name)?.policy = policy;
        Ok(())
    }

    fn find_mut(&mut self, name: &str) -> Result<&mut Enrolled, PkiError> {
        self.manufacturers
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| PkiError::Trust(format!("{name:?} is not enrolled")))
    }

    /// Adds (or updates) a CRL of manufacturer `name`, signed by `issuer`:
    /// the root itself or a CA certificate the root signed (for nido, the
    /// issuing CA, [`Manufacturer::issuing_der`]). Refused unless the CRL's
    /// signature verifies with `issuer`'s key, its issuer name is `issuer`'s
    /// subject, and its CRL number is not lower than that of the CRL it
    /// replaces (no rollback to an older list).
    pub fn add_crl(
        &mut self,
        name: &str,
        crl: &CertificateRevocationListDer<'_>,
        issuer: &CertificateDer<'_>,
    ) -> Result<(), PkiError> {
        let m = self.find_mut(name)?;
        let bad = |p: String| PkiError::Trust(format!("{name}: CRL refused: {p}"));
        let (_, issuer_cert) = parse_x509_certificate(issuer)
            .map_err(|e| bad(format!("issuer does not parse: {e}")))?;
        if issuer.as_ref() != m.root.as_ref() {
            let (_, root) = parse_x509_certificate(&m.root)
                .map_err(|e| bad(format!("root does not parse: {e}")))?;
            if issuer_cert.issuer().as_raw() != m.root_subject.as_slice()
                || issuer_cert
                    .verify_signature(Some(root.public_key()))
                    .is_err()
            {
                return Err(bad(
                    "its issuer certificate was not signed by the root".into()
                ));
            }
            if !issuer_cert.is_ca() {
                return Err(bad("its issuer certificate is not a CA".into()));
            }
        }
        let (rest, parsed) =
            parse_x509_crl(crl).map_err(|e| bad(format!("does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(bad("trailing data".into()));
        }
        if parsed.issuer().as_raw() != issuer_cert.subject().as_raw() {
            return Err(bad(format!(
                "issued by {}, not by {}",
                parsed.issuer(),
                issuer_cert.subject()
            )));
        }
        parsed
            .verify_signature(issuer_cert.public_key())
            .map_err(|e| bad(format!("signature does not verify: {e}")))?;
        let number = parsed
            .crl_number()
            .map(|n| n.to_bytes_be())
            .ok_or_else(|| bad("no CRL number".into()))?;
        let owned = CertRevocationList::Owned(
            OwnedCertRevocationList::from_der(crl)
                .map_err(|e| bad(format!("rustls-webpki cannot use it: {e}")))?,
        );
        let issuer_subject = issuer_cert.subject().as_raw().to_vec();
        let fast = FastCrl::of(crl, &owned, &parsed, &issuer_cert, issuer);
        let stored = StoredCrl {
            issuer_subject,
            number,
            crl: owned,
            fast,
        };
        match m
            .crls
            .iter_mut()
            .find(|c| c.issuer_subject == stored.issuer_subject)
        {
            Some(old) => {
                if cmp_be(&stored.number, &old.number).is_lt() {
                    return Err(bad(format!(
                        "CRL number {} is lower than the current {}",
                        hex::encode(&stored.number),
                        hex::encode(&old.number)
                    )));
                }
                *old = stored;
            }
            None => m.crls.push(stored),
        }
        Ok(())
    }

    /// Blocks a device identity (that manufacturer's device only). `false`
    /// if it was already blocked.
    pub fn block(&mut self, device: &DeviceId) -> bool {
        // A block at once replaces one deferred to the next registration.
        self.deferred.remove(device);
        self.blocked.insert(device.clone())
    }

    /// Blocks a device identity from its next registration on: refused
    /// like a blocked one ([`TrustStore::is_blocked`]), but a registration
    /// under way is not ended ([`TrustStore::is_blocked_now`] is `false`).
    /// The operator's policy for a CRL that revokes the certificate of an
    /// active device. `false` if it was already blocked.
    pub fn block_at_next_registration(&mut self, device: &DeviceId) -> bool {
        let new = self.blocked.insert(device.clone());
        if new {
            self.deferred.insert(device.clone());
        }
        new
    }

    /// Lifts a block. `false` if the device was not blocked.
    pub fn unblock(&mut self, device: &DeviceId) -> bool {
        self.deferred.remove(device);
        self.blocked.remove(device)
    }

    /// Whether a device identity is blocked: its onboarding and its
    /// registrations are refused.
    pub fn is_blocked(&self, device: &DeviceId) -> bool {
        self.blocked.contains(device)
    }

    /// Whether a device identity is blocked at once: a registration under
    /// way is ended too (a block not deferred to the next registration).
    pub fn is_blocked_now(&self, device: &DeviceId) -> bool {
        self.blocked.contains(device) && !self.deferred.contains(device)
    }

    /// Validates a device's chain as presented in TLS (`end_entity` and the
    /// certificates after it) at `now`. See the module doc for the steps and
    /// the reasons.
    pub fn validate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DeviceInfo, Refusal> {
        self.validate_with(end_entity, intermediates, now, true)
    }

    /// [`TrustStore::validate`] without the fast path: rustls-webpki
    /// verifies every CRL signature again. Same verdicts, for tests and
    /// measurements only.
    #[doc(hidden)]
    pub fn validate_without_fast_path(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<DeviceInfo, Refusal> {
        self.validate_with(end_entity, intermediates, now, false)
    }

    fn validate_with(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        fast_path: bool,
    ) -> Result<DeviceInfo, Refusal> {
        let malformed = |d: String| Refusal::new(RefusalReason::Malformed, d);
        let (rest, ee) = parse_x509_certificate(end_entity)
            .map_err(|e| malformed(format!("the certificate does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed("trailing data after the certificate".into()));
        }
        // Until the chain is accepted, name the certificate by its subject.
        let subject = ee.subject().to_string();

        let parsed_intermediates: Vec<X509Certificate<'_>> = intermediates
            .iter()
            .filter_map(|c| parse_x509_certificate(c).ok().map(|(_, c)| c))
            .collect();
        let candidates: Vec<&Enrolled> = self
            .manufacturers
            .iter()
            .filter(|m| name_chains(ee.issuer().as_raw(), &parsed_intermediates, &m.root_subject))
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::new(
                RefusalReason::UnknownManufacturer,
                format!(
                    "{subject}: issuer {} chains to no enrolled manufacturer",
                    ee.issuer()
                ),
            ));
        }

        let webpki_ee = EndEntityCert::try_from(end_entity)
            .map_err(|e| malformed(format!("{subject}: {e}")))?;
        let mut accepted = None;
        let mut refusals: Vec<Refusal> = Vec::new();
        for m in candidates {
            match verify_chain(m, &webpki_ee, intermediates, now, fast_path) {
                // webpki lets a certificate no CRL covers pass; unless the
                // policy allows it, the leaf's issuer must have a CRL here
                // (RFC 5280 §6.3: no CRL, no revocation status).
                Ok(_)
                    if !m.policy.allow_without_crl
                        && !m
                            .crls
                            .iter()
                            .any(|c| c.issuer_subject == ee.issuer().as_raw()) =>
                {
                    refusals.push(Refusal::new(
                        RefusalReason::RevocationUnknown,
                        format!(
                            "{subject} of {}: no CRL of its issuer {} (import the manufacturer's CRL)",
                            m.name,
                            ee.issuer()
                        ),
                    ));
                }
                Ok(_) => {
                    accepted = Some(m);
                    break;
                }
                Err(e) => {
                    let mut refusal =
                        Refusal::new(map_webpki(&e), format!("{subject} of {}: {e}", m.name));
                    // A revoked certificate's chain verified (webpki checks
                    // revocation after the signatures): its identity is the
                    // manufacturer's word.
                    if refusal.reason == RefusalReason::Revoked
                        && let Ok(serial) = device_serial(&ee)
                        && let Ok(id) = DeviceId::new(&m.name, &serial)
                    {
                        refusal = refusal.of_device(&id);
                    }
                    refusals.push(refusal);
                }
            }
        }
        let Some(m) = accepted else {
            // Prefer a specific reason over "no path" from a namesake root.
            let rank = |r: &Refusal| match r.reason {
                RefusalReason::UnknownManufacturer => 2,
                RefusalReason::BadSignature => 1,
                _ => 0,
            };
            return Err(refusals.into_iter().min_by_key(rank).unwrap_or_else(|| {
                Refusal::new(RefusalReason::UnknownManufacturer, subject.clone())
            }));
        };

        let who = format!("{subject} of {}", m.name);
        match ee.key_usage() {
            Err(e) => return Err(malformed(format!("{who}: keyUsage: {e}"))),
            Ok(None) => {
                return Err(Refusal::new(
                    RefusalReason::KeyUsage,
                    format!("{who}: no keyUsage extension (digitalSignature required)"),
                ));
            }
            Ok(Some(ku)) if !ku.value.digital_signature() => {
                return Err(Refusal::new(
                    RefusalReason::KeyUsage,
                    format!("{who}: keyUsage {} lacks digitalSignature", ku.value),
                ));
            }
            Ok(Some(_)) => {}
        }
        match ee.extended_key_usage() {
            Err(e) => return Err(malformed(format!("{who}: extKeyUsage: {e}"))),
            Ok(Some(eku)) if eku.value.client_auth => {}
            Ok(_) => {
                return Err(Refusal::new(
                    RefusalReason::ExtendedKeyUsage,
                    format!("{who}: no extKeyUsage with clientAuth"),
                ));
            }
        }
        let serial = device_serial(&ee)
            .map_err(|r| Refusal::new(r.reason, format!("{who}: {}", r.detail)))?;
        // The manufacturer name was checked at enrollment and the serial by
        // `device_serial`, so this cannot fail; refuse rather than panic.
        let id = DeviceId::new(&m.name, &serial)
            .map_err(|e| Refusal::new(RefusalReason::Malformed, format!("{who}: {e}")))?;
        let who = format!("device {id}");
        let hardware_module = hardware_module(&ee)
            .map_err(|r| Refusal::new(r.reason, format!("{who}: {}", r.detail)))?;

        if self.blocked.contains(&id) {
            return Err(Refusal::new(
                RefusalReason::Blocked,
                format!("{who}: on the operator block list"),
            )
            .of_device(&id));
        }

        let policy =
            |d: String| Refusal::new(RefusalReason::Policy, format!("{who}: {d}")).of_device(&id);
        let p = &m.policy;
        if let Some(prefix) = &p.serial_prefix
            && !serial.starts_with(prefix.as_str())
        {
            return Err(policy(format!("serial does not start with {prefix:?}")));
        }
        match (&hardware_module, p.require_hardware_module) {
            (None, true) => return Err(policy("no hardwareModuleName".into())),
            (Some((t, _)), _) => {
                if let Some(want) = &p.hardware_module_type
                    && t != want
                {
                    return Err(policy(format!("hwType {t} is not {want}")));
                }
            }
            (None, false) => {}
        }
        let validity = ee.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        if let Some(max) = p.max_validity {
            let span = u64::try_from(not_after.saturating_sub(not_before)).unwrap_or(0);
            if span > max.as_secs() {
                return Err(policy(format!(
                    "validity of {span} s exceeds the maximum {} s",
                    max.as_secs()
                )));
            }
        }

        Ok(DeviceInfo {
            id,
            hardware_module,
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(
                u64::try_from(not_after).unwrap_or(0),
            )),
            cert_serial: ee.raw_serial().to_vec(),
            public_key: ee.public_key().subject_public_key.data.to_vec(),
            issuer: ee.issuer().as_raw().to_vec(),
        })
    }
}

/// A CRL's issuer name (DER, as [`DeviceInfo::issuer`]) and the
/// certificate serial numbers (big-endian, as [`DeviceInfo::cert_serial`])
/// it lists as revoked (RFC 5280 §5.1.2.3, §5.1.2.6). Parse only: check
/// the CRL with [`TrustStore::add_crl`] first.
pub fn crl_revocations(
    crl: &CertificateRevocationListDer<'_>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), PkiError> {
    let (_, parsed) =
        parse_x509_crl(crl).map_err(|e| PkiError::Trust(format!("CRL does not parse: {e}")))?;
    Ok((
        parsed.issuer().as_raw().to_vec(),
        parsed
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmm_causes() {
        use RefusalReason::*;
        for (r, c) in [
            (UnknownManufacturer, 75),
            (Policy, 75),
            (NotYetValid, 74),
            (RevocationUnknown, 74),
            (BadSignature, 3),
            (Expired, 3),
            (Revoked, 3),
            (KeyUsage, 3),
            (ExtendedKeyUsage, 3),
            (Blocked, 3),
            (Malformed, 3),
        ] {
            assert_eq!(r.gmm_cause(), Cause(c), "{r}");
        }
        let r = Refusal::new(Expired, "x\ny");
        assert_eq!(r.to_string(), "expired: x?y");
        assert_eq!(r.gmm_cause(), Cause::ILLEGAL_UE);
    }

    mod differential {
        //! The fast path against rustls-webpki with revocation, case by case.

        use std::time::{SystemTime, UNIX_EPOCH};

        use rcgen::{
            CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint,
            CrlScope, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
        };
        use rustls_pki_types::CertificateRevocationListDer;

        use super::*;
        use crate::ca::{Ca, issuing_params};
        use crate::{DeviceIdentity, DeviceProfile, Manufacturer, Revoked};

        const DAY: Duration = Duration::from_secs(86_400);

        fn t0() -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_760_000_000)
        }

        fn at(t: SystemTime) -> UnixTime {
            UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap())
        }

        /// rcgen's date of `t` (its date type is not re-exported).
        macro_rules! odt {
            ($t:expr) => {
                rcgen::date_time_ymd(1970, 1, 1) + $t.duration_since(UNIX_EPOCH).unwrap()
            };
        }

        /// A CRL signed by `ca`, optionally with an issuingDistributionPoint.
        fn crl_by(
            ca: &Ca,
            revoked: &[&[u8]],
            next_update: SystemTime,
            number: u64,
            idp: bool,
        ) -> CertificateRevocationListDer<'static> {
            CertificateRevocationListParams {
                this_update: odt!(t0()),
                next_update: odt!(next_update),
                crl_number: SerialNumber::from(number),
                issuing_distribution_point: idp.then(|| CrlIssuingDistributionPoint {
                    distribution_point: CrlDistributionPoint {
                        uris: vec!["http://crl.example/acme.crl".into()],
                    },
                    scope: Some(CrlScope::UserCertsOnly),
                }),
                revoked_certs: revoked
                    .iter()
                    .map(|s| RevokedCertParams {
                        serial_number: SerialNumber::from_slice(s),
                        revocation_time: odt!(t0()),
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&Issuer::from_params(&ca.params, &ca.key))
            .unwrap()
            .der()
            .clone()
        }

        /// An issuing CA with the same subject as `m`'s, signed by `m`'s
        /// root: with a fresh key, or with the issuing CA's own key.
        fn namesake_issuing(m: &Manufacturer, same_key: bool, serial: u8) -> Ca {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = issuing_params(&m.name);
            params.not_before = odt!(t0() - DAY);
            params.not_after = odt!(t0() + DAY * 3650);
            params.serial_number = Some(SerialNumber::from_slice(&[0x42, serial]));
            let subject_key = if same_key { &m.issuing.key } else { &key };
            let der = params
                .signed_by(
                    subject_key,
                    &Issuer::from_params(&m.root.params, &m.root.key),
                )
                .unwrap()
                .der()
                .clone();
            Ca { params, key, der }
        }

        /// A device of `m` issued by `ca` instead of `m`'s issuing CA.
        fn device_of(m: &mut Manufacturer, ca: &mut Ca, serial: &str) -> DeviceIdentity {
            std::mem::swap(&mut m.issuing, ca);
            let d = m.issue_device(serial, &DeviceProfile::standard(t0()));
            std::mem::swap(&mut m.issuing, ca);
            d.unwrap()
        }

        fn cert_serial(der: &[u8]) -> Vec<u8> {
            parse_x509_certificate(der).unwrap().1.raw_serial().to_vec()
        }

        /// Validates both ways, asserts the same verdict (reason and
        /// detail), returns it and whether the fast path decided alone.
        fn both(
            store: &TrustStore,
            chain: &[CertificateDer<'static>],
            now: SystemTime,
        ) -> (Result<DeviceInfo, Refusal>, bool) {
            let fast = store.validate(&chain[0], &chain[1..], at(now));
            let slow = store.validate_without_fast_path(&chain[0], &chain[1..], at(now));
            assert_eq!(fast, slow);
            let ee = EndEntityCert::try_from(&chain[0]).unwrap();
            let decided = store.manufacturers.iter().any(|m| {
                chain.len() - 1 <= FAST_MAX_INTERMEDIATES
                    && ee
                        .verify_for_usage(
                            ALGS,
                            std::slice::from_ref(&m.anchor),
                            &chain[1..],
                            at(now),
                            KeyUsage::client_auth(),
                            None,
                            None,
                        )
                        .is_ok_and(|p| path_admitted(m, &p, at(now)))
            });
            (fast, decided)
        }

        fn reason(r: &Result<DeviceInfo, Refusal>) -> Option<RefusalReason> {
            r.as_ref().err().map(|e| e.reason)
        }

        fn set_stale(store: &mut TrustStore, m: &Manufacturer, accept: bool) {
            let mut p = Policy::for_manufacturer(m);
            p.accept_stale_crl = accept;
            store.set_policy("acme", p).unwrap();
        }

        #[test]
        fn fast_and_slow_paths_agree() {
            use RefusalReason as R;
            let mut acme = Manufacturer::generate("Acme Sensors", t0()).unwrap();
            let mut store = TrustStore::new();
            store
                .enroll(
                    "acme",
                    acme.root_der().clone(),
                    Policy::for_manufacturer(&acme),
                )
                .unwrap();
            let good = acme
                .issue_device("ACMESENS-0000000001", &DeviceProfile::standard(t0()))
                .unwrap();
            let bad = acme
                .issue_device("ACMESENS-0000000002", &DeviceProfile::standard(t0()))
                .unwrap();
            let week = t0() + DAY * 7;
            let crl = acme.crl(&[Revoked::of(&bad, t0())], t0(), week, 1).unwrap();
            store.add_crl("acme", &crl, acme.issuing_der()).unwrap();
            assert!(store.manufacturers[0].crls.iter().all(|c| c.fast.is_some()));

            let day1 = t0() + DAY;
            // Good device: the fast path alone accepts it.
            let (r, decided) = both(&store, &good.chain, day1);
            assert!(r.is_ok(), "{r:?}");
            assert!(decided);
            // Leaf only (no intermediate sent): webpki finds no path either way.
            assert!(both(&store, &good.chain[..1], day1).0.is_err());
            // Revoked device.
            let (r, decided) = both(&store, &bad.chain, day1);
            assert_eq!((reason(&r), decided), (Some(R::Revoked), false));
            // nextUpdate: one second before, exactly at, after; Enforce
            // and accept_stale_crl.
            let just_before = week - Duration::from_secs(1);
            let (r, decided) = both(&store, &good.chain, just_before);
            assert!(r.is_ok() && decided, "{r:?}");
            for t in [week, week + DAY * 30] {
                set_stale(&mut store, &acme, false);
                assert_eq!(
                    reason(&both(&store, &good.chain, t).0),
                    Some(R::RevocationUnknown)
                );
                assert_eq!(
                    reason(&both(&store, &bad.chain, t).0),
                    Some(R::RevocationUnknown)
                );
                set_stale(&mut store, &acme, true);
                let (r, decided) = both(&store, &good.chain, t);
                assert!(r.is_ok() && decided, "{r:?}");
                assert_eq!(reason(&both(&store, &bad.chain, t).0), Some(R::Revoked));
            }
            set_stale(&mut store, &acme, false);

            // The root's CRL: empty (both CRLs on the fast path), then
            // revoking the issuing CA, then stale.
            let root_crl = crl_by(&acme.root, &[], t0() + DAY * 3, 1, false);
            store.add_crl("acme", &root_crl, acme.root_der()).unwrap();
            assert!(store.manufacturers[0].crls.iter().all(|c| c.fast.is_some()));
            let (r, decided) = both(&store, &good.chain, day1);
            assert!(r.is_ok() && decided, "{r:?}");
            assert_eq!(
                reason(&both(&store, &good.chain, t0() + DAY * 4).0),
                Some(R::RevocationUnknown)
            );
            let issuing_serial = cert_serial(acme.issuing_der());
            let root_crl = crl_by(&acme.root, &[&issuing_serial], week, 2, false);
            store.add_crl("acme", &root_crl, acme.root_der()).unwrap();
            let (r, decided) = both(&store, &good.chain, day1);
            assert_eq!((reason(&r), decided), (Some(R::Revoked), false));
            // A re-issued issuing CA (same name and key, another serial)
            // sent after the revoked one: webpki goes around the revoked
            // certificate; the fast path must not refuse on its own.
            let reissued = namesake_issuing(&acme, true, 1);
            let around = vec![
                good.chain[0].clone(),
                good.chain[1].clone(),
                reissued.der.clone(),
            ];
            let (r, decided) = both(&store, &around, day1);
            assert!(r.is_ok(), "{r:?}");
            assert!(!decided);
            let root_crl = crl_by(&acme.root, &[], week, 3, false);
            store.add_crl("acme", &root_crl, acme.root_der()).unwrap();

            // A namesake issuing CA with another key, signed by the same
            // root: the stored CRL (the genuine CA's) is not its CRL.
            let mut other = namesake_issuing(&acme, false, 2);
            let stranger = device_of(&mut acme, &mut other, "ACMESENS-0000000003");
            let (r, decided) = both(&store, &stranger.chain, day1);
            assert_eq!((reason(&r), decided), (Some(R::RevocationUnknown), false));
            // Both issuing CAs sent, the namesake first: webpki's path goes
            // through the genuine one.
            let both_cas = vec![
                good.chain[0].clone(),
                other.der.clone(),
                good.chain[1].clone(),
            ];
            assert!(both(&store, &both_cas, day1).0.is_ok());
            // The namesake's CRL stored instead (same issuer name, higher
            // number): the genuine CA's devices no longer match its key.
            let other_crl = crl_by(&other, &[], week, 5, false);
            store.add_crl("acme", &other_crl, &other.der).unwrap();
            let (r, decided) = both(&store, &good.chain, day1);
            assert_eq!((reason(&r), decided), (Some(R::RevocationUnknown), false));
            let (r, decided) = both(&store, &stranger.chain, day1);
            assert!(r.is_ok(), "{r:?}");
            assert!(decided);
            assert!(both(&store, &both_cas, day1).0.is_err());

            // A CRL with an issuingDistributionPoint: never the fast path.
            let idp = crl_by(&acme.issuing, &[&bad.cert_serial], week, 6, true);
            store.add_crl("acme", &idp, acme.issuing_der()).unwrap();
            assert!(store.manufacturers[0].crls.iter().any(|c| c.fast.is_none()));
            let (r, decided) = both(&store, &good.chain, day1);
            assert!(r.is_ok(), "{r:?}");
            assert!(!decided);
            assert_eq!(reason(&both(&store, &bad.chain, day1).0), Some(R::Revoked));

            // A manufacturer without CRL, allow_without_crl both ways.
            let beta = Manufacturer::generate("Beta Devices", t0()).unwrap();
            let beta_dev = beta
                .issue_device("BETADEVI-0000000001", &DeviceProfile::standard(t0()))
                .unwrap();
            store
                .enroll(
                    "beta",
                    beta.root_der().clone(),
                    Policy::for_manufacturer(&beta),
                )
                .unwrap();
            assert_eq!(
                reason(&both(&store, &beta_dev.chain, day1).0),
                Some(R::RevocationUnknown)
            );
            let mut p = Policy::for_manufacturer(&beta);
            p.allow_without_crl = true;
            store.set_policy("beta", p).unwrap();
            let (r, decided) = both(&store, &beta_dev.chain, day1);
            assert!(r.is_ok(), "{r:?}");
            assert!(decided);
            // Another manufacturer's devices are still decided the same.
            assert_eq!(reason(&both(&store, &bad.chain, day1).0), Some(R::Revoked));
        }

        #[test]
        fn a_roots_signature_is_verified_once_and_only_its_exact_bytes_count() {
            let mut acme = Manufacturer::generate("Acme Sensors", t0()).unwrap();
            let mut store = TrustStore::new();
            store
                .enroll(
                    "acme",
                    acme.root_der().clone(),
                    Policy::for_manufacturer(&acme),
                )
                .unwrap();
            let mut p = Policy::for_manufacturer(&acme);
            p.allow_without_crl = true;
            store.set_policy("acme", p).unwrap();
            let memo = Arc::clone(&store.manufacturers[0].algs[0].memo);
            let day1 = t0() + DAY;
            for serial in ["ACMESENS-0000000001", "ACMESENS-0000000002"] {
                let d = acme
                    .issue_device(serial, &DeviceProfile::standard(t0()))
                    .unwrap();
                assert!(both(&store, &d.chain, day1).0.is_ok());
                // The root signed one thing on these paths: the issuing CA.
                assert_eq!(memo.len(), 1);
            }

            // The remembered triple, and what is not it.
            let issuing = acme.issuing_der().clone();
            let (_, cert) = parse_x509_certificate(&issuing).unwrap();
            let message = cert.tbs_certificate.as_ref().to_vec();
            let signature = cert.signature_value.data.to_vec();
            let alg = (0..ALGS.len())
                .find(|&a| memo.remembers(a, &message, &signature))
                .expect("the root's signature on the issuing CA is remembered");
            let memo_alg = &store.manufacturers[0].algs[alg];
            let root_key = memo.key.clone();
            assert!(
                memo_alg
                    .verify_signature(&root_key, &message, &signature)
                    .is_ok()
            );
            let mut flipped_sig = signature.clone();
            *flipped_sig.last_mut().unwrap() ^= 1;
            let mut flipped_msg = message.clone();
            *flipped_msg.last_mut().unwrap() ^= 1;
            for (m, s) in [(&message, &flipped_sig), (&flipped_msg, &signature)] {
                assert!(memo_alg.verify_signature(&root_key, m, s).is_err());
            }
            // Another key is never looked up: the real verification refuses.
            let other = Manufacturer::generate("Beta Meters", t0()).unwrap();
            let (_, other_root) = parse_x509_certificate(other.root_der()).unwrap();
            let other_key = other_root.public_key().subject_public_key.data.to_vec();
            assert!(
                memo_alg
                    .verify_signature(&other_key, &message, &signature)
                    .is_err()
            );
            // Nothing that failed entered; a namesake issuing CA the root
            // really signed verifies and is remembered too, up to the bound.
            assert_eq!(memo.len(), 1);
            for serial in 0..(ROOT_MEMO_ENTRIES as u8 + 2) {
                let mut ca = namesake_issuing(&acme, false, serial);
                let d = device_of(&mut acme, &mut ca, &format!("ACMESENS-00000001{serial:02}"));
                assert!(both(&store, &d.chain, day1).0.is_ok());
            }
            assert_eq!(memo.len(), ROOT_MEMO_ENTRIES);
            // The oldest (the issuing CA's) went; it verifies again anyway.
            assert!(!memo.remembers(alg, &message, &signature));
            let d = acme
                .issue_device("ACMESENS-0000000003", &DeviceProfile::standard(t0()))
                .unwrap();
            assert!(both(&store, &d.chain, day1).0.is_ok());
            assert!(memo.remembers(alg, &message, &signature));
        }
    }

    #[test]
    fn big_endian_compare() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_be(&[0, 2], &[1]), Greater);
        assert_eq!(cmp_be(&[1, 0], &[0xff]), Greater);
        assert_eq!(cmp_be(&[], &[0]), Equal);
        assert_eq!(cmp_be(&[3], &[0, 0, 3]), Equal);
    }
}
