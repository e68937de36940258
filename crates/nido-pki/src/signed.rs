//! Detached signatures on what a manufacturer hands the operator
//! (`claims.csv`): ECDSA P-256 with SHA-256 (FIPS 186-5, RFC 5758 §3.2
//! `ecdsa-with-SHA256`), the signature a DER `Ecdsa-Sig-Value` (RFC 3279
//! §2.2.3) over the file's exact octets, made with the manufacturer's
//! issuing CA key. That is what
//! `openssl dgst -sha256 -verify issuing-pub.pem -signature claims.csv.sig claims.csv`
//! checks.
//!
//! The operator verifies it against the manufacturer it enrolled: the
//! signer certificate must be a CA certificate signed by the enrolled root
//! (as for a CRL, [`crate::TrustStore::add_crl`]), so one manufacturer
//! cannot sign claims for another's devices.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::parse_x509_certificate;

use crate::{Manufacturer, PkiError};

impl Manufacturer {
    /// Signs `data` with the issuing CA key: ECDSA P-256 SHA-256, DER
    /// signature (see the module doc). Verify with [`verify_detached`] and
    /// [`Manufacturer::issuing_der`] as the signer.
    pub fn sign_detached(&self, data: &[u8]) -> Result<Vec<u8>, PkiError> {
        let pkcs8 = zeroize::Zeroizing::new(self.issuing.key.serialize_der());
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
            .map_err(|e| PkiError::Generate(format!("issuing CA key: {e}")))?;
        let sig = key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), data)
            .map_err(|e| PkiError::Generate(format!("signing: {e}")))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// Verifies a detached signature `sig` over `data` by `signer`, a CA
/// certificate that `root` (the enrolled manufacturer's root) signed, or
/// the root itself. Every failure is a [`PkiError::Trust`] naming what did
/// not hold.
pub fn verify_detached(
    root: &CertificateDer<'_>,
    signer: &CertificateDer<'_>,
    data: &[u8],
    sig: &[u8],
) -> Result<(), PkiError> {
    let bad = |p: String| PkiError::Trust(format!("signature refused: {p}"));
    let (_, root_cert) =
        parse_x509_certificate(root).map_err(|e| bad(format!("root does not parse: {e}")))?;
    let (rest, cert) =
        parse_x509_certificate(signer).map_err(|e| bad(format!("signer does not parse: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing data after the signer certificate".into()));
    }
    if signer.as_ref() != root.as_ref() {
        if cert.issuer().as_raw() != root_cert.subject().as_raw()
            || cert.verify_signature(Some(root_cert.public_key())).is_err()
        {
            return Err(bad(
                "the signer certificate was not issued by the manufacturer's root".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(bad("the signer certificate is not a CA".into()));
        }
    }
    let point = cert.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(data, sig)
        .map_err(|_| bad("does not verify with the signer's key (ECDSA P-256 SHA-256)".into()))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn signs_and_verifies_only_for_its_own_root() {
        let now = SystemTime::now();
        let acme = Manufacturer::generate("Acme", now).unwrap();
        let rogue = Manufacturer::generate("Rogue", now).unwrap();
        let data = b"serial,claim_code_hash\nACME-1,00\n";
        let sig = acme.sign_detached(data).unwrap();
        verify_detached(acme.root_der(), acme.issuing_der(), data, &sig).unwrap();
        // Tampered data, another manufacturer's root, a signer not of the root.
        assert!(verify_detached(acme.root_der(), acme.issuing_der(), b"x", &sig).is_err());
        assert!(verify_detached(rogue.root_der(), acme.issuing_der(), data, &sig).is_err());
        let rsig = rogue.sign_detached(data).unwrap();
        assert!(verify_detached(acme.root_der(), rogue.issuing_der(), data, &rsig).is_err());
        assert!(verify_detached(acme.root_der(), acme.issuing_der(), data, &rsig).is_err());
    }
}
