//! The erasure receipt (issue #16): what a device's secure element keeps
//! when it is factory reset, and presents inside the protected provisioning
//! exchange of its next onboarding, so that the PVS re-provisions its
//! subscription in place without the operator releasing it.
//!
//! ```text
//! ErasureReceipt = { "version": 1, "serial": tstr, "package_id": bstr .size 16,
//!                    "counter": uint, "erased_at": uint,
//!                    "proof": bstr .size 32, "signature": bstr }
//! body   = the map of the first five fields (same order, same encoding)
//! signed = the map of the first six fields
//! RAND   = SHA-256("nido erasure receipt" ‖ body)[0..16]
//! proof  = HMAC-SHA-256(CK ‖ IK, body), CK = f3_K(RAND), IK = f4_K(RAND)
//!          (MILENAGE, TS 35.206 §4.1, under the erased subscription's K and OPc)
//! signature = ECDSA P-256 SHA-256 (FIPS 186-5), DER (RFC 3279 §2.2.3),
//!          by the device's IDevID key over `signed`
//! ```
//!
//! Two proofs, for two questions. The **proof** answers "did the sender
//! hold the package it says it erased?": it is keyed by K, which only the
//! element that installed the package (and the network) ever held, so a
//! clone that copied the IDevID key but never installed the package cannot
//! make one, and it names the package, so a receipt for an earlier package
//! (a replay after the network re-provisioned) or for another device's
//! package does not match the subscription. The **signature** answers
//! "which device says so?": the network checks it against the certificate
//! that authenticated this onboarding. MILENAGE keeps the proof computable
//! where K cannot leave a PKCS#11 token (every E_K is one `CKM_AES_ECB`).
//!
//! `counter` is the element's count of resets, `erased_at` the time of the
//! erasure (seconds since the Unix epoch); both are signed, neither is
//! trusted for freshness (the package id is).

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use nido_sec::{Amf, Ck, Ik, K, Milenage, Opc, Sqn};

use crate::ProvError;
use crate::cbor::{Item, MapReader};

/// The receipt version this build writes and reads.
pub const RECEIPT_VERSION: u64 = 1;
/// The longest serial a receipt carries (the IDevID subject serialNumber
/// is a PrintableString of at most 64 characters, RFC 5280 Appendix A.1).
pub const MAX_SERIAL_LEN: usize = 64;
/// The longest DER ECDSA P-256 signature (two 33-octet INTEGERs in a SEQUENCE).
pub const MAX_SIGNATURE_LEN: usize = 72;
/// The label hashed into the proof's RAND: a receipt's challenge never
/// equals a RAND an AUSF chose at random without the attacker knowing it.
const RAND_LABEL: &[u8] = b"nido erasure receipt";

/// A factory reset's proof of erasure (see the [module documentation](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// The device serial (IDevID subject serialNumber): the device knows its
    /// serial, not the name the operator enrolled its manufacturer under.
    pub serial: String,
    /// The id of the credential package erased.
    pub package_id: [u8; 16],
    /// The element's count of resets, this one included.
    pub counter: u64,
    /// When the package was erased (seconds since the Unix epoch).
    pub erased_at_unix: u64,
    /// HMAC-SHA-256 under CK ‖ IK of the erased K (see the module doc).
    pub proof: [u8; 32],
    /// The IDevID key's ECDSA P-256 SHA-256 signature (DER) over the
    /// fields above.
    pub signature: Vec<u8>,
}

impl core::fmt::Debug for ErasureReceipt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ErasureReceipt")
            .field("serial", &self.serial)
            .field("package_id", &hex::encode(self.package_id))
            .field("counter", &self.counter)
            .field("erased_at_unix", &self.erased_at_unix)
            .finish_non_exhaustive()
    }
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptRefusal {
    /// It names another device.
    #[error("the receipt names device serial {presented:?}, not {expected:?}")]
    OtherDevice {
        /// The serial in the receipt.
        presented: String,
        /// The serial of the device that presented it.
        expected: String,
    },
    /// It names a package the subscription does not hold (an earlier one,
    /// or another device's).
    #[error("the receipt is for package {presented}, the subscription holds package {current}")]
    OtherPackage {
        /// The package id in the receipt, hex.
        presented: String,
        /// The subscription's package id, hex.
        current: String,
    },
    /// The proof was not made with the subscription's K.
    #[error("the receipt's proof of the erased K does not verify")]
    Proof,
    /// The signature is not the device's.
    #[error("the receipt's signature does not verify with the device certificate's key")]
    Signature,
}

impl ErasureReceipt {
    const WHAT: &'static str = "ErasureReceipt";

    fn fields(&self) -> Vec<(&str, Item<'_>)> {
        vec![
            ("version", Item::Uint(RECEIPT_VERSION)),
            ("serial", Item::Text(&self.serial)),
            ("package_id", Item::Bytes(&self.package_id)),
            ("counter", Item::Uint(self.counter)),
            ("erased_at", Item::Uint(self.erased_at_unix)),
        ]
    }

    /// The octets the proof covers: the first five fields.
    pub fn body(&self) -> Vec<u8> {
        Item::Map(self.fields()).to_vec()
    }

    /// The octets the signature covers: the body's fields and the proof.
    pub fn signed_octets(&self) -> Vec<u8> {
        let mut fields = self.fields();
        fields.push(("proof", Item::Bytes(&self.proof)));
        Item::Map(fields).to_vec()
    }

    /// The RAND the element runs MILENAGE f3 and f4 on for this receipt's
    /// proof: SHA-256 of a label and the body, first 16 octets.
    pub fn proof_rand(&self) -> [u8; 16] {
        let mut input = RAND_LABEL.to_vec();
        input.extend_from_slice(&self.body());
        let hash = digest(&SHA256, &input);
        let mut rand = [0u8; 16];
        rand.copy_from_slice(&hash.as_ref()[..16]);
        rand
    }

    /// The proof from CK and IK of [`ErasureReceipt::proof_rand`] (computed
    /// by the element, where K is).
    pub fn proof_from(&self, ck: &Ck, ik: &Ik) -> [u8; 32] {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        key[..16].copy_from_slice(ck.expose());
        key[16..].copy_from_slice(ik.expose());
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            &self.body(),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The proof with a software MILENAGE of the subscription (the network,
    /// and elements that hold K in memory): f3 and f4 of
    /// [`ErasureReceipt::proof_rand`], then [`ErasureReceipt::proof_from`].
    pub fn proof_with(&self, milenage: &Milenage) -> [u8; 32] {
        // SQN and AMF enter f1 only; f3 and f4 depend on RAND alone.
        let out = milenage.outputs(&self.proof_rand(), Sqn::from_octets([0; 6]), Amf::FIVE_G);
        self.proof_from(&out.f3_ck, &out.f4_ik)
    }

    /// Verifies the receipt for the device `serial` whose subscription holds
    /// `package_id` under `k` and `opc`, and, when the network has it, the
    /// device certificate's public key `device_key` (the uncompressed P-256
    /// point of its SubjectPublicKeyInfo). The proof is compared in constant
    /// time.
    pub fn verify(
        &self,
        serial: &str,
        package_id: &[u8; 16],
        k: &K,
        opc: &Opc,
        device_key: Option<&[u8]>,
    ) -> Result<(), ReceiptRefusal> {
        if self.serial != serial {
            return Err(ReceiptRefusal::OtherDevice {
                presented: self.serial.clone(),
                expected: serial.to_owned(),
            });
        }
        if &self.package_id != package_id {
            return Err(ReceiptRefusal::OtherPackage {
                presented: hex::encode(self.package_id),
                current: hex::encode(package_id),
            });
        }
        let expected = self.proof_with(&Milenage::new(k, opc));
        aws_lc_rs::constant_time::verify_slices_are_equal(&expected, &self.proof)
            .map_err(|_| ReceiptRefusal::Proof)?;
        if let Some(point) = device_key {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(&self.signed_octets(), &self.signature)
                .map_err(|_| ReceiptRefusal::Signature)?;
        }
        Ok(())
    }

    fn item(&self) -> Item<'_> {
        let mut fields = self.fields();
        fields.push(("proof", Item::Bytes(&self.proof)));
        fields.push(("signature", Item::Bytes(&self.signature)));
        Item::Map(fields)
    }

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.item().to_vec()
    }

    /// Strict decoding of [`ErasureReceipt::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        Self::from_map(MapReader::decode(Self::WHAT, bytes)?)
    }

    pub(crate) fn encode_field(&self) -> Item<'_> {
        self.item()
    }

    pub(crate) fn from_map(mut map: MapReader) -> Result<Self, ProvError> {
        let what = map.what();
        map.version(RECEIPT_VERSION)?;
        let serial = map.text("serial")?;
        if serial.is_empty() || serial.len() > MAX_SERIAL_LEN {
            return Err(ProvError::Invalid {
                what,
                field: "serial".into(),
                reason: format!("must be 1 to {MAX_SERIAL_LEN} octets, got {}", serial.len()),
            });
        }
        let package_id = map.array::<16>("package_id")?;
        let counter = map.uint("counter")?;
        let erased_at_unix = map.uint("erased_at")?;
        let proof = map.array::<32>("proof")?;
        let signature = map.bytes("signature")?;
        if signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN {
            return Err(ProvError::Invalid {
                what,
                field: "signature".into(),
                reason: format!(
                    "must be 1 to {MAX_SIGNATURE_LEN} octets (DER ECDSA P-256), got {}",
                    signature.len()
                ),
            });
        }
        map.finish()?;
        Ok(Self {
            serial,
            package_id,
            counter,
            erased_at_unix,
            proof,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    fn signed(k: &K, opc: &Opc, key: &EcdsaKeyPair) -> ErasureReceipt {
        let mut r = ErasureReceipt {
            serial: "ACME-1".into(),
            package_id: [5; 16],
            counter: 1,
            erased_at_unix: 1_800_000_000,
            proof: [0; 32],
            signature: Vec::new(),
        };
        let out =
            Milenage::new(k, opc).outputs(&r.proof_rand(), Sqn::from_octets([0; 6]), Amf::FIVE_G);
        r.proof = r.proof_from(&out.f3_ck, &out.f4_ik);
        r.signature = key
            .sign(&SystemRandom::new(), &r.signed_octets())
            .unwrap()
            .as_ref()
            .to_vec();
        r
    }

    fn key() -> EcdsaKeyPair {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn verifies_only_for_its_device_package_k_and_key() {
        let (k, opc) = (K::new([3; 16]), Opc::new([4; 16]));
        let device = key();
        let point = device.public_key().as_ref().to_vec();
        let r = signed(&k, &opc, &device);
        r.verify("ACME-1", &[5; 16], &k, &opc, Some(&point))
            .unwrap();
        r.verify("ACME-1", &[5; 16], &k, &opc, None).unwrap();
        assert!(matches!(
            r.verify("ACME-2", &[5; 16], &k, &opc, Some(&point)),
            Err(ReceiptRefusal::OtherDevice { .. })
        ));
        assert!(matches!(
            r.verify("ACME-1", &[6; 16], &k, &opc, Some(&point)),
            Err(ReceiptRefusal::OtherPackage { .. })
        ));
        // A clone with the IDevID key but another K (it never installed the package).
        assert_eq!(
            r.verify("ACME-1", &[5; 16], &K::new([9; 16]), &opc, Some(&point)),
            Err(ReceiptRefusal::Proof)
        );
        // Another key's signature.
        let other = key().public_key().as_ref().to_vec();
        assert_eq!(
            r.verify("ACME-1", &[5; 16], &k, &opc, Some(&other)),
            Err(ReceiptRefusal::Signature)
        );
        // Every signed field counts: a changed counter breaks the proof.
        let mut changed = r.clone();
        changed.counter = 2;
        assert_eq!(
            changed.verify("ACME-1", &[5; 16], &k, &opc, Some(&point)),
            Err(ReceiptRefusal::Proof)
        );
        // A re-made proof for the changed body without re-signing.
        let out = Milenage::new(&k, &opc).outputs(
            &changed.proof_rand(),
            Sqn::from_octets([0; 6]),
            Amf::FIVE_G,
        );
        changed.proof = changed.proof_from(&out.f3_ck, &out.f4_ik);
        assert_eq!(
            changed.verify("ACME-1", &[5; 16], &k, &opc, Some(&point)),
            Err(ReceiptRefusal::Signature)
        );
    }

    #[test]
    fn strict_decoding() {
        let (k, opc) = (K::new([3; 16]), Opc::new([4; 16]));
        let r = signed(&k, &opc, &key());
        let bytes = r.encode();
        assert_eq!(ErasureReceipt::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(
                ErasureReceipt::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            ErasureReceipt::decode(&trailing),
            Err(ProvError::TrailingBytes { .. })
        ));
        let mut long = r.clone();
        long.signature = vec![1; MAX_SIGNATURE_LEN + 1];
        assert!(matches!(
            ErasureReceipt::decode(&long.encode()),
            Err(ProvError::Invalid { field, .. }) if field == "signature"
        ));
        let mut empty = r;
        empty.serial.clear();
        assert!(matches!(
            ErasureReceipt::decode(&empty.encode()),
            Err(ProvError::Invalid { field, .. }) if field == "serial"
        ));
        assert!(!format!("{empty:?}").contains("proof"));
    }
}
