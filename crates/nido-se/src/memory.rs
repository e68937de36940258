//! The in-memory secure element.

use std::sync::Arc;

use nido_prov::ErasureReceipt;
use nido_prov::package::{Binding, PublicPart, SealedPackage};
use nido_sec::aka::{UeAka, ue_respond};
use nido_sec::{KProv, Milenage, PrivateKey32, SqnWindow};
use rustls::pki_types::PrivateKeyDer;

use crate::{Installed, SeAkaError, SeError, SecureElement};

struct Subscription {
    milenage: Milenage,
    window: SqnWindow,
    public: PublicPart,
}

/// A secure element in process memory, for simulators and tests.
pub struct MemorySe {
    idevid: Arc<dyn rustls::sign::SigningKey>,
    provisioning: Option<PrivateKey32>,
    subscription: Option<Subscription>,
    resets: u64,
    receipt: Option<ErasureReceipt>,
}

impl core::fmt::Debug for MemorySe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemorySe")
            .field("provisioning_key", &self.provisioning.is_some())
            .field("subscription", &self.subscription.is_some())
            .finish_non_exhaustive()
    }
}

impl MemorySe {
    /// An element holding the IDevID private key (PKCS#8, from the factory bundle).
    pub fn new(idevid_key: &PrivateKeyDer<'_>) -> Result<Self, SeError> {
        let idevid = rustls::crypto::aws_lc_rs::sign::any_supported_type(idevid_key)
            .map_err(|e| SeError::IdentityKey(e.to_string()))?;
        Ok(Self {
            idevid,
            provisioning: None,
            subscription: None,
            resets: 0,
            receipt: None,
        })
    }
}

impl SecureElement for MemorySe {
    fn idevid_signer(&self) -> Arc<dyn rustls::sign::SigningKey> {
        self.idevid.clone()
    }

    fn new_provisioning_key(&mut self) -> Result<[u8; 32], SeError> {
        let (private, public) = crate::provisioning_key_pair()?;
        self.provisioning = Some(private);
        Ok(public)
    }

    fn install_package(
        &mut self,
        sealed: &SealedPackage,
        binding: &Binding,
        k_prov: &KProv,
    ) -> Result<Installed, SeError> {
        let private = self.provisioning.take().ok_or(SeError::NoProvisioningKey)?;
        let opened = crate::open_package(sealed, &private, binding, k_prov)?;
        let (secrets, public) = opened.split();
        let confirmation_mac = secrets.confirmation_mac(&public.package_id);
        self.subscription = Some(Subscription {
            milenage: Milenage::new(&secrets.k, &secrets.opc),
            window: SqnWindow::default(),
            public: public.clone(),
        });
        // The new package spends the receipt of the last reset.
        self.receipt = None;
        Ok(Installed {
            public,
            confirmation_mac,
        })
    }

    fn has_subscription(&self) -> bool {
        self.subscription.is_some()
    }

    fn installed(&self) -> Option<PublicPart> {
        self.subscription.as_ref().map(|s| s.public.clone())
    }

    fn erase_subscription(&mut self) {
        self.subscription = None;
    }

    fn reset(&mut self, serial: &str, erased_at_unix: u64) -> Result<ErasureReceipt, SeError> {
        let sub = self.subscription.as_ref().ok_or(SeError::NoSubscription)?;
        let receipt = crate::make_receipt(
            self.idevid.as_ref(),
            serial,
            sub.public.package_id,
            self.resets + 1,
            erased_at_unix,
            |receipt| Ok(receipt.proof_with(&sub.milenage)),
        )?;
        self.subscription = None;
        self.provisioning = None;
        self.resets += 1;
        self.receipt = Some(receipt.clone());
        Ok(receipt)
    }

    fn erasure_receipt(&self) -> Option<ErasureReceipt> {
        self.subscription
            .is_none()
            .then(|| self.receipt.clone())
            .flatten()
    }

    fn authenticate(
        &mut self,
        rand: &[u8; 16],
        autn: &[u8; 16],
        snn: &[u8],
    ) -> Result<UeAka, SeAkaError> {
        let sub = self.subscription.as_mut().ok_or(SeError::NoSubscription)?;
        Ok(ue_respond(&sub.milenage, &mut sub.window, rand, autn, snn)?)
    }

    fn sqn_window(&self) -> Option<SqnWindow> {
        self.subscription.as_ref().map(|s| s.window.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use nido_prov::ProvError;
    use nido_prov::package;
    use nido_prov::package::{CredentialPackage, ServingNetwork};
    use nido_sec::aka::{AkaFailure, AusfChallenge, HeSqn, home_vector};
    use nido_sec::milenage::Amf;
    use nido_sec::suci::HomeNetworkPublicKey;
    use nido_sec::{K, Opc, Supi};

    const SNN: &[u8] = b"5G:mnc001.mcc001.3gppnetwork.org";

    fn se() -> MemorySe {
        let key = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        )
        .unwrap();
        let pkcs8 = key.to_pkcs8v1().unwrap();
        MemorySe::new(&PrivateKeyDer::Pkcs8(pkcs8.as_ref().to_vec().into())).unwrap()
    }

    fn package() -> CredentialPackage {
        CredentialPackage {
            package_id: [5; 16],
            supi: Supi::parse("imsi-001010000000042").unwrap(),
            k: K::new([3; 16]),
            opc: Opc::new([4; 16]),
            amf: [0x80, 0],
            home_network_key: HomeNetworkPublicKey {
                key_id: 1,
                profile: nido_sec::suci::Profile::A,
                octets: vec![9; 32],
            },
            routing_indicator: "0000".into(),
            serving_network: ServingNetwork::new("001", "01", None).unwrap(),
            third_party: Vec::new(),
            not_after_unix: u64::MAX,
            owner: None,
        }
    }

    fn k_prov() -> KProv {
        nido_sec::kdf::kprov(&nido_sec::KAusf::new([5; 32])).unwrap()
    }

    fn binding() -> Binding {
        Binding {
            device_identity: "ACME-1".into(),
            nonce: [7; 16],
        }
    }

    #[test]
    fn installs_a_package_inside_and_authenticates() {
        let mut se = se();
        assert!(matches!(
            se.authenticate(&[0; 16], &[0; 16], SNN),
            Err(SeAkaError::Element(SeError::NoSubscription))
        ));
        let public_key = se.new_provisioning_key().unwrap();
        let p = package();
        let expected_mac = package::confirmation_mac(&p);
        let sealed = package::seal(&p, &public_key, &binding(), &k_prov()).unwrap();
        let installed = se.install_package(&sealed, &binding(), &k_prov()).unwrap();
        assert_eq!(installed.confirmation_mac, expected_mac);
        assert_eq!(installed.public.supi.to_string(), "imsi-001010000000042");
        assert_eq!(se.installed(), Some(installed.public.clone()));
        // The key was single use.
        assert_eq!(
            se.install_package(&sealed, &binding(), &k_prov()),
            Err(SeError::NoProvisioningKey)
        );

        let network = Milenage::new(&K::new([3; 16]), &Opc::new([4; 16]));
        let (av, _) = home_vector(&network, HeSqn::default(), [9; 16], Amf::FIVE_G, SNN).unwrap();
        let challenge = AusfChallenge::new(av);
        let ue = se
            .authenticate(&challenge.rand, &challenge.autn, SNN)
            .unwrap();
        assert!(challenge.seaf_accepts(&ue.res_star));
        let window = se.sqn_window().unwrap();
        assert!(matches!(
            se.authenticate(&challenge.rand, &challenge.autn, SNN),
            Err(SeAkaError::Aka(AkaFailure::SynchFailure { .. }))
        ));
        assert_eq!(
            se.sqn_window().unwrap(),
            window,
            "a refused challenge leaves the window"
        );
        se.erase_subscription();
        assert!(!se.has_subscription());
        assert_eq!(se.installed(), None);
    }

    #[test]
    fn tampered_or_misbound_packages_are_refused() {
        let mut se = se();
        let public_key = se.new_provisioning_key().unwrap();
        let mut sealed = package::seal(&package(), &public_key, &binding(), &k_prov()).unwrap();
        sealed.ciphertext[3] ^= 1;
        assert!(matches!(
            se.install_package(&sealed, &binding(), &k_prov()),
            Err(SeError::Sealed(ProvError::Open))
        ));
        assert!(!se.has_subscription());

        let public_key = se.new_provisioning_key().unwrap();
        let sealed = package::seal(&package(), &public_key, &binding(), &k_prov()).unwrap();
        let other = Binding {
            device_identity: "ACME-2".into(),
            nonce: [7; 16],
        };
        assert!(matches!(
            se.install_package(&sealed, &other, &k_prov()),
            Err(SeError::Sealed(ProvError::Open))
        ));
        assert!(!se.has_subscription());

        // Sealed under another K_PROV: by a network that did not run
        // EAP-TLS with this device (issue #17 finding 1).
        let public_key = se.new_provisioning_key().unwrap();
        let other = nido_sec::kdf::kprov(&nido_sec::KAusf::new([6; 32])).unwrap();
        let sealed = package::seal(&package(), &public_key, &binding(), &other).unwrap();
        assert_eq!(
            se.install_package(&sealed, &binding(), &k_prov()),
            Err(SeError::Sealed(ProvError::Open))
        );
        assert!(!se.has_subscription());
        assert_eq!(se.installed(), None);
    }

    #[test]
    fn debug_redacts() {
        let mut se = se();
        let public_key = se.new_provisioning_key().unwrap();
        let sealed = package::seal(&package(), &public_key, &binding(), &k_prov()).unwrap();
        se.install_package(&sealed, &binding(), &k_prov()).unwrap();
        let text = format!("{se:?}");
        assert!(!text.contains("0303") && !text.contains("0404"), "{text}");
    }
}
