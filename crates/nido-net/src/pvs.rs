//! The Provisioning Server (design doc phase B): for a device identity the
//! DCS authenticated, create its subscription (or attach it to the owner
//! that claimed it, or re-provision the one it has), seal the credential
//! package to the device's provisioning key (HPKE PSK mode under K_PROV of
//! the EAP-TLS session that authenticated the device), and mark the subscription
//! provisioned when the device confirms.

use std::collections::HashMap;
use std::time::Duration;

use nido_pki::TrustStore;
use nido_prov::package::{self, Binding, CredentialPackage, SealedPackage, ServingNetwork};
use nido_prov::{Confirmation, ProvisioningRequest};
use nido_sec::milenage::{Amf, opc_from_op};
use nido_sec::suci::HomeNetworkPublicKey;
use nido_sec::{Cause, K, KProv, Op, Supi};
use thiserror::Error;

use crate::store::{Store, StoreError, Subscription, SubscriptionState};
use crate::{DeviceId, NetworkEvent};

/// Whether a device nobody claimed gets a subscription of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimPolicy {
    /// Unclaimed devices get a standalone subscription.
    Standalone,
    /// Only devices an owner claimed are provisioned (others: #75).
    RequireClaim,
}

/// The PVS's configuration.
#[derive(Debug, Clone)]
pub struct PvsConfig {
    /// The operator's OP (OPc = f(K, OP) per subscription).
    pub op: Op,
    /// The serving network the package names.
    pub serving_network: ServingNetwork,
    /// MSIN digits of allocated IMSIs (MCC + MNC + MSIN = 15 digits).
    pub msin_digits: usize,
    /// The SUCI home network key devices conceal with.
    pub home_network_key: HomeNetworkPublicKey,
    /// The routing indicator.
    pub routing_indicator: String,
    /// Claim policy.
    pub policy: ClaimPolicy,
    /// How long a package is valid.
    pub validity: Duration,
}

/// What [`Pvs::provision`] did.
#[derive(Debug)]
pub struct Provisioned {
    /// The sealed package for the device.
    pub sealed: SealedPackage,
    /// Its id.
    pub package_id: [u8; 16],
    /// The subscription's SUPI.
    pub supi: Supi,
    /// The owner it was attached to.
    pub owner: Option<String>,
    /// Whether an existing subscription was re-provisioned (new K).
    pub reprovisioned: bool,
    /// The erasure receipt that allowed re-provisioning a subscription its
    /// device had confirmed or validated (a factory reset): the element's
    /// count of resets and when it erased the package.
    pub after_reset: Option<crate::events::ResetSeen>,
    /// The certificate the device onboarded with, where the network saw it.
    pub certificate: Option<crate::events::CertificateSeen>,
    /// The device identity.
    pub device: DeviceId,
}

impl Provisioned {
    /// The event reporting it (written to the audit trail with the
    /// subscription).
    pub fn event(&self) -> NetworkEvent {
        NetworkEvent::PackageDelivered {
            device: self.device.clone(),
            supi: self.supi.clone(),
            reprovisioned: self.reprovisioned,
            after_reset: self.after_reset,
            certificate: self.certificate.clone(),
        }
    }
}

/// Why the PVS refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PvsRefusal {
    /// No owner claimed the device and the policy requires one.
    #[error("device {0} is not claimed by an owner")]
    NotClaimed(String),
    /// The request or package could not be built or sealed.
    #[error("provisioning request: {0}")]
    Request(String),
    /// The store refused.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The confirmation does not match the package delivered.
    #[error("confirmation does not verify")]
    BadConfirmation,
    /// The device identity already holds a subscription it confirmed or
    /// validated ([`SubscriptionState::reprovisionable`]) and presented no
    /// erasure receipt: a clone, or the device after losing its
    /// credentials without one; a factory reset's receipt or an operator's
    /// release (`nido network release`) re-provisions it.
    #[error(
        "device {0} already holds a subscription ({1}) and presented no erasure receipt: a clone, or a device that lost its credentials (a factory reset's receipt or a release re-provisions it)"
    )]
    AlreadyProvisioned(String, &'static str),
    /// The device presented an erasure receipt that does not prove the
    /// erasure of its subscription's package: forged, replayed (for an
    /// earlier package), another device's, or not signed by its IDevID key.
    #[error("device {0}: erasure receipt refused: {1}")]
    BadReceipt(String, nido_prov::ReceiptRefusal),
}

impl PvsRefusal {
    /// The 5GMM cause the AMF answers with (design doc): #75 permanently not
    /// authorized for this SNPN for an unclaimed device, #74 (temporarily
    /// not authorized for this SNPN, TS 24.501 §9.11.3.2) for an exhausted
    /// range, a manufacturer at its subscription quota (the operator may
    /// raise it) or an identity that holds a subscription
    /// until the operator releases it, #22 congestion for a store that cannot be
    /// reached (the device backs off for T3346 and tries again), #111
    /// otherwise.
    pub fn gmm_cause(&self) -> Cause {
        use nido_sec::Cause;
        match self {
            Self::NotClaimed(_) => Cause::PERMANENTLY_NOT_AUTHORIZED_FOR_SNPN,
            Self::AlreadyProvisioned(..) | Self::BadReceipt(..) => {
                Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
            }
            Self::Store(StoreError::Exhausted | StoreError::QuotaReached { .. }) => {
                Cause::TEMPORARILY_NOT_AUTHORIZED_FOR_SNPN
            }
            Self::Store(StoreError::Unavailable(_)) => Cause::CONGESTION,
            _ => Cause::PROTOCOL_ERROR_UNSPECIFIED,
        }
    }

    /// Whether the device should try again later rather than give up: an
    /// exhausted range or quota, a store that cannot be reached, or a
    /// subscription the operator may yet release.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Self::Store(
                StoreError::Exhausted
                    | StoreError::Unavailable(_)
                    | StoreError::QuotaReached { .. }
            ) | Self::AlreadyProvisioned(..)
                | Self::BadReceipt(..)
        )
    }

    /// Whether the refusal is about an identity that holds a subscription
    /// (#74 with or without a receipt that failed): the AMF, which let such
    /// a device into the restricted onboarding service for its receipt,
    /// ends that registration with a protected DEREGISTRATION REQUEST #74.
    pub fn holds_subscription(&self) -> bool {
        matches!(self, Self::AlreadyProvisioned(..) | Self::BadReceipt(..))
    }
}

fn random<const N: usize>() -> Result<[u8; N], PvsRefusal> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| PvsRefusal::Request("no randomness".into()))?;
    Ok(out)
}

/// Refuses to re-provision a subscription its device confirmed or
/// validated (unless the operator released it).
fn check_reprovisionable(sub: &Subscription) -> Result<(), PvsRefusal> {
    if sub.state.reprovisionable() {
        return Ok(());
    }
    let state = match sub.state {
        SubscriptionState::Provisioned => "provisioned",
        _ => "active",
    };
    Err(PvsRefusal::AlreadyProvisioned(
        sub.device.to_string(),
        state,
    ))
}

/// Subscription quotas per manufacturer: how many SUPIs the PVS allocates
/// for one manufacturer's devices at most, so that any valid IDevID of an
/// enrolled manufacturer cannot drain the IMSI range (under the
/// `standalone` claim policy every new device gets a SUPI). From each
/// manufacturer's [`nido_pki::Policy::max_subscriptions`], else `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    default: u64,
    per_manufacturer: HashMap<String, u64>,
}

impl Quotas {
    /// The quotas the policies of `trust` set, `default` for a manufacturer
    /// whose policy sets none.
    pub fn from_trust(trust: &TrustStore, default: u64) -> Self {
        Self {
            default,
            per_manufacturer: trust
                .policies()
                .filter_map(|(name, p)| p.max_subscriptions.map(|n| (name.to_owned(), n)))
                .collect(),
        }
    }

    /// The quota of a manufacturer whose policy sets none.
    pub fn default_quota(&self) -> u64 {
        self.default
    }

    /// The quota of `manufacturer`.
    pub fn of(&self, manufacturer: &str) -> u64 {
        self.per_manufacturer
            .get(manufacturer)
            .copied()
            .unwrap_or(self.default)
    }
}

/// The Provisioning Server.
#[derive(Debug, Clone)]
pub struct Pvs {
    config: PvsConfig,
    quotas: Option<Quotas>,
}

impl Pvs {
    /// Hands `key` to devices in every package from now on (a SUCI key
    /// rotation, [`crate::Network::set_home_network_keys`]).
    pub fn set_home_network_key(&mut self, key: nido_sec::suci::HomeNetworkPublicKey) {
        self.config.home_network_key = key;
    }

    /// A PVS with `config`, without quotas ([`Pvs::set_quotas`]).
    pub fn new(config: PvsConfig) -> Self {
        Self {
            config,
            quotas: None,
        }
    }

    /// Enforces `quotas` from now on (`None`: no quota).
    pub fn set_quotas(&mut self, quotas: Option<Quotas>) {
        self.quotas = quotas;
    }

    /// The quotas enforced, if any.
    pub fn quotas(&self) -> Option<&Quotas> {
        self.quotas.as_ref()
    }

    /// A new SUPI for `device`: its manufacturer's quota is checked and
    /// counted with the allocation, before any SUPI is handed out.
    fn allocate_supi(&self, store: &mut dyn Store, device: &DeviceId) -> Result<Supi, PvsRefusal> {
        let n = match &self.quotas {
            Some(q) => {
                store.allocate_msin_for(device.manufacturer(), q.of(device.manufacturer()))?
            }
            None => store.allocate_msin()?,
        };
        let sn = &self.config.serving_network;
        let digits = format!(
            "{}{}{:0width$}",
            sn.mcc,
            sn.mnc,
            n,
            width = self.config.msin_digits
        );
        Supi::imsi(&digits).map_err(|e| PvsRefusal::Request(e.to_string()))
    }

    /// Whether the PVS would provision `device` at all: a device whose
    /// subscription is provisioned or active (not released) is refused
    /// (#74, [`PvsRefusal::AlreadyProvisioned`]) unless its provisioning
    /// request brings an erasure receipt (the AMF lets such a device into
    /// the restricted onboarding service for it and [`Pvs::provision`]
    /// decides); under
    /// [`ClaimPolicy::RequireClaim`] a device nobody claimed and without a
    /// subscription is refused (#75); a device without a subscription whose
    /// manufacturer reached its quota ([`Quotas`]) is refused (#74). The
    /// AMF asks before it accepts the
    /// onboarding registration, so such a device never gets one. A store
    /// that cannot answer is a [`PvsRefusal::Store`] (#22), never "not claimed".
    pub fn admits(&self, store: &dyn Store, device: &DeviceId) -> Result<(), PvsRefusal> {
        let existing = store.subscription_by_device(device)?;
        if let Some(sub) = &existing {
            check_reprovisionable(sub)?;
        }
        // A new device of a manufacturer at its quota would get no SUPI:
        // refused now (#74, the device backs off) rather than after a whole
        // onboarding registration. `provision` checks again, atomically.
        if existing.is_none()
            && let Some(q) = &self.quotas
        {
            let max = q.of(device.manufacturer());
            if store.allocated_for(device.manufacturer())? >= max {
                return Err(PvsRefusal::Store(StoreError::QuotaReached {
                    manufacturer: device.manufacturer().to_owned(),
                    max,
                }));
            }
        }
        if self.config.policy == ClaimPolicy::RequireClaim
            && existing.is_none()
            && store.owner_of_device(device)?.is_none()
        {
            return Err(PvsRefusal::NotClaimed(device.to_string()));
        }
        Ok(())
    }

    /// Provisions `device` (the identity the DCS authenticated:
    /// manufacturer and IDevID serial) for
    /// `request` at `now_unix`: re-provisions its subscription with a fresh K
    /// if it has one that may be ([`SubscriptionState::reprovisionable`], or
    /// one the device confirmed or validated when the request carries an
    /// erasure receipt that verifies for it, with the key of `certificate`,
    /// the certificate that authenticated this onboarding, where the
    /// network saw it: [`nido_prov::ErasureReceipt::verify`]; never a second
    /// subscription; otherwise a provisioned or active one is refused,
    /// #74), else creates one,
    /// attached to the owner that claimed the device. The package is sealed
    /// with `k_prov`, K_PROV of the EAP-TLS session that authenticated the
    /// device ([`crate::ausf::kprov_from_eap`]; HPKE PSK mode, RFC 9180
    /// §5.1.2): the device opens only a package from the network that
    /// authenticated it. The store is written
    /// once, before the package leaves; a store that cannot be read refuses
    /// (nothing is allocated or written).
    pub fn provision(
        &self,
        store: &mut dyn Store,
        device: &DeviceId,
        certificate: Option<&nido_pki::DeviceInfo>,
        request: &ProvisioningRequest,
        k_prov: &KProv,
        now_unix: u64,
    ) -> Result<Provisioned, PvsRefusal> {
        let (owner, existing) = store.owner_and_subscription(device)?;
        let mut after_reset = None;
        let device_key = certificate.map(|c| c.public_key.as_slice());
        if let Some(sub) = &existing {
            match (check_reprovisionable(sub), &request.erasure_receipt) {
                (Ok(()), _) => {}
                (Err(refusal), None) => return Err(refusal),
                (Err(_), Some(receipt)) => {
                    receipt
                        .verify(
                            device.serial(),
                            &sub.package_id,
                            &sub.k,
                            &sub.opc,
                            device_key,
                        )
                        .map_err(|e| PvsRefusal::BadReceipt(device.to_string(), e))?;
                    after_reset = Some(crate::events::ResetSeen {
                        resets: receipt.counter,
                        erased_at_unix: receipt.erased_at_unix,
                        signed: device_key.is_some(),
                    });
                }
            }
        }
        if owner.is_none() && existing.is_none() && self.config.policy == ClaimPolicy::RequireClaim
        {
            return Err(PvsRefusal::NotClaimed(device.to_string()));
        }
        let reprovisioned = existing.is_some();
        let supi = match &existing {
            Some(sub) => sub.supi.clone(),
            None => self.allocate_supi(store, device)?,
        };
        let k = K::new(random()?);
        let opc = opc_from_op(&k, &self.config.op);
        let package_id = random()?;
        let not_after_unix = now_unix.saturating_add(self.config.validity.as_secs());
        let package = CredentialPackage {
            package_id,
            supi: supi.clone(),
            k: k.clone(),
            opc: opc.clone(),
            amf: Amf::FIVE_G.0,
            home_network_key: self.config.home_network_key.clone(),
            routing_indicator: self.config.routing_indicator.clone(),
            serving_network: self.config.serving_network.clone(),
            third_party: owner
                .as_ref()
                .map(|o| o.credentials.clone())
                .unwrap_or_default(),
            not_after_unix,
            owner: owner.as_ref().map(|o| o.id.clone()),
        };
        // The device knows its serial, not the name the operator enrolled
        // its manufacturer under: the binding names the serial.
        let binding = Binding {
            device_identity: device.serial().to_owned(),
            nonce: request.nonce,
        };
        let sealed = package::seal(&package, &request.device_public_key, &binding, k_prov)
            .map_err(|e| PvsRefusal::Request(e.to_string()))?;
        let done = Provisioned {
            sealed,
            package_id,
            supi: supi.clone(),
            owner: owner.as_ref().map(|o| o.id.clone()),
            reprovisioned,
            after_reset,
            certificate: certificate.map(|c| crate::events::CertificateSeen {
                issuer: c.issuer.clone(),
                serial: c.cert_serial.clone(),
            }),
            device: device.clone(),
        };
        store.put_subscription_audited(
            Subscription {
                supi,
                k,
                opc,
                amf: Amf::FIVE_G,
                // A new K starts from the SQN state the subscription had: SEQ
                // stays monotonic, and any SQN is fresh for the new USIM window.
                sqn: existing.map(|s| s.sqn).unwrap_or_default(),
                state: SubscriptionState::Created,
                device: device.clone(),
                owner: owner.map(|o| o.id),
                package_id,
                not_after_unix: Some(not_after_unix),
                suci_key_id: Some(self.config.home_network_key.key_id),
            },
            now_unix,
            &[done.event()],
        )?;
        Ok(done)
    }

    /// The device's confirmation: the MAC over the package id, keyed from
    /// K and OPc, proves it opened the package. Marks the subscription
    /// provisioned at `now_unix`, with its audit entry.
    pub fn confirm(
        &self,
        store: &mut dyn Store,
        device: &DeviceId,
        confirmation: &Confirmation,
        now_unix: u64,
    ) -> Result<Supi, PvsRefusal> {
        // Within the onboarding whose provisioning read it fresh.
        let mut sub = store
            .cached_subscription_by_device(device)?
            .ok_or_else(|| StoreError::NotFound(format!("subscription of {device}")))?;
        if sub.package_id != confirmation.package_id {
            return Err(PvsRefusal::BadConfirmation);
        }
        package::verify_confirmation_with(&sub.k, &sub.opc, &sub.package_id, &confirmation.mac)
            .map_err(|_| PvsRefusal::BadConfirmation)?;
        if sub.state == SubscriptionState::Created {
            sub.state = SubscriptionState::Provisioned;
            let event = NetworkEvent::Provisioned {
                device: device.clone(),
                supi: sub.supi.clone(),
            };
            store.put_subscription_audited(sub.clone(), now_unix, &[event])?;
        }
        Ok(sub.supi)
    }
}
