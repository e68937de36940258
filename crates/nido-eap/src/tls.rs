//! rustls configurations for EAP-TLS 1.3 (RFC 9190 §2.1, §5): TLS 1.3 only,
//! no session tickets, client certificate required, key exchange X25519 or
//! P-256, and on the DCS a client certificate verifier that is nido-pki's
//! [`TrustStore::validate`], so every refusal has a typed reason.

use std::sync::{Arc, Mutex};

use nido_pki::{DeviceInfo, Refusal, RefusalReason, TrustStore};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::aws_lc_rs as provider;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::time_provider::TimeProvider;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::EapError;

/// The crypto provider: aws-lc-rs, TLS 1.3 suites only (rustls is built
/// without `tls12`), key exchange X25519 and P-256 (no post-quantum hybrid:
/// its 1.2 kB key share would double the first EAP round).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.kx_groups = vec![provider::kx_group::X25519, provider::kx_group::SECP256R1];
    // TLS 1.3 suites only, whatever rustls features the build unifies (the
    // binary enables `tls12` for RadSec): a TLS 1.3-only ClientHello must
    // not list TLS 1.2 suites.
    p.cipher_suites.retain(|s| s.tls13().is_some());
    // TLS_AES_128_GCM_SHA256 first (the DCS picks by its own order): its
    // transcript hash, HKDF and exporter run on SHA-256, which the CPU's
    // SHA extensions speed up and SHA-384 does not (6% of `nido dcs
    // serve`'s CPU went to SHA-512 blocks with AES-256-GCM-SHA384). All
    // three TLS 1.3 suites stay offered and accepted.
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    Arc::new(p)
}

/// A clock that always answers `now`: the handshake's notion of time is an
/// input of the state machine, not read from the system.
#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

/// What the DCS presents and whom it trusts.
#[derive(Debug, Clone)]
pub struct DcsCredentials {
    /// The DCS certificate and the key that signs for it.
    pub certified: Arc<CertifiedKey>,
    /// The enrolled manufacturers, CRLs, block list and policies.
    pub trust: Arc<TrustStore>,
}

impl DcsCredentials {
    /// From a DCS chain (leaf first) and its PKCS#8 key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: &PrivateKeyDer<'_>,
        trust: Arc<TrustStore>,
    ) -> Result<Self, EapError> {
        let signing =
            provider::sign::any_supported_type(key).map_err(|e| EapError::Config(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| EapError::Config(format!("DCS certificate and key: {e}")))?;
        Ok(Self {
            certified: Arc::new(certified),
            trust,
        })
    }
}

/// The verdict the DCS verifier reached for one handshake.
pub(crate) type VerdictSlot = Arc<Mutex<Option<Result<DeviceInfo, Refusal>>>>;

/// A client certificate verifier that runs the DCS validation (chain to an
/// enrolled manufacturer root, validity, CRL, block list, usage, policy).
#[derive(Debug)]
struct DcsVerifier {
    trust: Arc<TrustStore>,
    verdict: VerdictSlot,
    algorithms: WebPkiSupportedAlgorithms,
}

fn to_rustls(reason: &RefusalReason) -> rustls::Error {
    let e = match reason {
        RefusalReason::Expired => CertificateError::Expired,
        RefusalReason::NotYetValid => CertificateError::NotValidYet,
        RefusalReason::Revoked => CertificateError::Revoked,
        RefusalReason::UnknownManufacturer => CertificateError::UnknownIssuer,
        RefusalReason::BadSignature => CertificateError::BadSignature,
        RefusalReason::KeyUsage | RefusalReason::ExtendedKeyUsage => {
            CertificateError::InvalidPurpose
        }
        RefusalReason::Malformed => CertificateError::BadEncoding,
        _ => CertificateError::ApplicationVerificationFailure,
    };
    rustls::Error::InvalidCertificate(e)
}

impl ClientCertVerifier for DcsVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self.trust.validate(end_entity, intermediates, now);
        let result = match &verdict {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(refusal) => Err(to_rustls(&refusal.reason)),
        };
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls server connection for one EAP-TLS exchange at time `now`, and
/// the slot where the client certificate verdict lands.
pub(crate) fn server_connection(
    creds: &DcsCredentials,
    now: UnixTime,
) -> Result<(rustls::ServerConnection, VerdictSlot), EapError> {
    let provider = crypto_provider();
    let verdict: VerdictSlot = Arc::new(Mutex::new(None));
    let verifier = Arc::new(DcsVerifier {
        trust: creds.trust.clone(),
        verdict: verdict.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_details(provider, Arc::new(FixedTime(now)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| EapError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(creds.certified.clone())));
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    // The DCS's suite order, not the device's (see `crypto_provider`).
    config.ignore_client_order = true;
    let conn = rustls::ServerConnection::new(Arc::new(config))
        .map_err(|e| EapError::Config(e.to_string()))?;
    Ok((conn, verdict))
}

/// What a device presents and whom it trusts as its DCS.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    /// The IDevID chain and its signer (a software key, or a secure element
    /// behind rustls's `SigningKey`: the private key never leaves it).
    pub certified: Arc<CertifiedKey>,
    /// The manufacturer root: the only anchor a genuine DCS chains to.
    pub manufacturer_root: CertificateDer<'static>,
    /// The DCS name its certificate must carry (the DCS realm).
    pub dcs_name: ServerName<'static>,
}

impl DeviceCredentials {
    /// From a chain (leaf first), a signer, the manufacturer root and the DCS name.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        signer: Arc<dyn SigningKey>,
        manufacturer_root: CertificateDer<'static>,
        dcs_name: &str,
    ) -> Result<Self, EapError> {
        let dcs_name = ServerName::try_from(dcs_name.to_owned())
            .map_err(|e| EapError::Config(format!("DCS name {dcs_name:?}: {e}")))?;
        Ok(Self {
            certified: Arc::new(CertifiedKey::new(chain, signer)),
            manufacturer_root,
            dcs_name,
        })
    }

    /// With a software PKCS#8 key.
    pub fn with_software_key(
        chain: Vec<CertificateDer<'static>>,
        key: &PrivateKeyDer<'_>,
        manufacturer_root: CertificateDer<'static>,
        dcs_name: &str,
    ) -> Result<Self, EapError> {
        let signer =
            provider::sign::any_supported_type(key).map_err(|e| EapError::Config(e.to_string()))?;
        Self::new(chain, signer, manufacturer_root, dcs_name)
    }
}

/// A rustls client configuration for a device, reusable across its handshakes.
pub(crate) fn client_config(
    creds: &DeviceCredentials,
    now: UnixTime,
) -> Result<Arc<rustls::ClientConfig>, EapError> {
    let provider = crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(creds.manufacturer_root.clone())
        .map_err(|e| EapError::Config(format!("manufacturer root: {e}")))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| EapError::Config(e.to_string()))?;
    let mut config = rustls::ClientConfig::builder_with_details(provider, Arc::new(FixedTime(now)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| EapError::Config(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(creds.certified.clone())));
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = true;
    Ok(Arc::new(config))
}
