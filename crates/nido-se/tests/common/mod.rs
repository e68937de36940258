//! What the secure element tests share: an IDevID key, a credential
//! package, the network's side of 5G-AKA, temporary directories.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use nido_prov::package::{self, Binding, CredentialPackage, ServingNetwork, ThirdPartyCredential};
use nido_se::SecureElement;
use nido_sec::aka::{AusfChallenge, HeSqn, home_vector};
use nido_sec::suci::{HomeNetworkPublicKey, Profile};
use nido_sec::{Amf, K, Milenage, Opc, Supi};
use rustls::pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

pub const SNN: &[u8] = b"5G:mnc001.mcc001.3gppnetwork.org";

/// Random octets.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).unwrap();
    out
}

/// A fresh IDevID key, PKCS#8 as in a factory bundle.
pub fn idevid_key() -> PrivateKeyDer<'static> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    PrivateKeyDer::Pkcs8(pair.to_pkcs8v1().unwrap().as_ref().to_vec().into())
}

/// The private scalar of a PKCS#8 P-256 key (to search for it).
pub fn idevid_scalar(key: &PrivateKeyDer<'_>) -> Vec<u8> {
    use aws_lc_rs::encoding::AsBigEndian;
    let PrivateKeyDer::Pkcs8(der) = key else {
        panic!("PKCS#8 expected")
    };
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_pkcs8_der()).unwrap();
    pair.private_key().as_be_bytes().unwrap().as_ref().to_vec()
}

/// The uncompressed public point of a PKCS#8 P-256 key.
pub fn idevid_point(key: &PrivateKeyDer<'_>) -> Vec<u8> {
    use aws_lc_rs::signature::KeyPair;
    let PrivateKeyDer::Pkcs8(der) = key else {
        panic!("PKCS#8 expected")
    };
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_pkcs8_der()).unwrap();
    pair.public_key().as_ref().to_vec()
}

/// The subscription the network provisions, and its side of 5G-AKA.
pub struct Network {
    pub k: [u8; 16],
    pub opc: [u8; 16],
    pub package: CredentialPackage,
    pub milenage: Milenage,
    pub he: HeSqn,
}

impl Network {
    pub fn new(msin: u32) -> Self {
        let k = random();
        let opc = random();
        let package = CredentialPackage {
            package_id: random(),
            supi: Supi::parse(&format!("imsi-00101{msin:010}")).unwrap(),
            k: K::new(k),
            opc: Opc::new(opc),
            amf: [0x80, 0],
            home_network_key: HomeNetworkPublicKey {
                key_id: 1,
                profile: Profile::A,
                octets: vec![9; 32],
            },
            routing_indicator: "0000".into(),
            serving_network: ServingNetwork::new("001", "01", None).unwrap(),
            third_party: vec![ThirdPartyCredential::Lwm2m {
                server_uri: "coaps://lwm2m.example:5684".into(),
                psk_identity: format!("dev-{msin}"),
                psk: Zeroizing::new(vec![0x5a; 16]),
            }],
            not_after_unix: u64::MAX,
            owner: Some("acme".into()),
        };
        Self {
            k,
            opc,
            milenage: Milenage::new(&K::new(k), &Opc::new(opc)),
            package,
            he: HeSqn::default(),
        }
    }

    /// Provisions `se`: a provisioning key, the sealed package, installed.
    pub fn provision(&self, se: &mut dyn SecureElement) -> nido_se::Installed {
        let public_key = se.new_provisioning_key().unwrap();
        let sealed = package::seal(&self.package, &public_key, &binding(), &k_prov()).unwrap();
        let installed = se.install_package(&sealed, &binding(), &k_prov()).unwrap();
        assert_eq!(
            installed.confirmation_mac,
            package::confirmation_mac(&self.package)
        );
        package::verify_confirmation(&self.package, &installed.confirmation_mac).unwrap();
        installed
    }

    /// The next challenge from the UDM/AUSF.
    pub fn challenge(&mut self) -> AusfChallenge {
        let (av, next) = home_vector(&self.milenage, self.he, random(), Amf::FIVE_G, SNN).unwrap();
        self.he = next;
        AusfChallenge::new(av)
    }
}

/// K_PROV of the (pretend) onboarding EAP-TLS session.
pub fn k_prov() -> nido_sec::KProv {
    nido_sec::kdf::kprov(&nido_sec::KAusf::new([0x6b; 32])).unwrap()
}

pub fn binding() -> Binding {
    Binding {
        device_identity: "ACME-0001".into(),
        nonce: [7; 16],
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "nido-se-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks that `receipt` (from a reset as device "ACME-1") proves the
/// erasure of `net`'s package and carries the signature of `key`.
pub fn assert_receipt_for(
    receipt: &nido_prov::ErasureReceipt,
    net: &Network,
    key: &PrivateKeyDer<'_>,
) {
    receipt
        .verify(
            "ACME-1",
            &net.package.package_id,
            &net.package.k,
            &net.package.opc,
            Some(&idevid_point(key)),
        )
        .unwrap();
}
