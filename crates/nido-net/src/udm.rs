//! The UDM/ARPF with its SIDF (TS 33.501 §6.1.3.2, §6.12): de-conceals
//! SUCIs, issues 5G-AKA vectors with SQN management, resynchronises from
//! AUTS, and activates a subscription on its first successful 5G-AKA.

use nido_sec::aka::{HeAv, HeSqn, home_vector, resynchronise};
use nido_sec::suci::{Sidf, bcd_to_msin};
use nido_sec::{Cause, Milenage, SecError, Supi};
use thiserror::Error;

use crate::store::{Store, StoreError, SubscriptionState};

/// Why the UDM refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UdmError {
    /// The SUCI does not de-conceal (unknown key, bad MAC, malformed).
    #[error("SUCI: {0}")]
    Suci(SecError),
    /// No subscription for this SUPI.
    #[error("no subscription for {0}")]
    Unknown(Supi),
    /// A security function refused (e.g. a forged AUTS).
    #[error("{0}")]
    Security(SecError),
    /// The store refused.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl UdmError {
    /// The 5GMM cause the AMF answers with: #9 UE identity cannot be derived
    /// for a SUCI or an unknown subscriber, #22 congestion for a store that
    /// cannot be reached (the subscription may well exist: the device backs
    /// off for T3346 and keeps its credentials), #111 otherwise.
    pub fn gmm_cause(&self) -> Cause {
        match self {
            Self::Suci(_) | Self::Unknown(_) => Cause::UE_IDENTITY_CANNOT_BE_DERIVED,
            Self::Store(StoreError::Unavailable(_)) => Cause::CONGESTION,
            _ => Cause::PROTOCOL_ERROR_UNSPECIFIED,
        }
    }
}

/// The subscription state a vector was issued under (see [`Udm::issue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedUnder {
    /// The SQN state stored after the vector.
    pub sqn: HeSqn,
    /// The id of the subscription's package (a new K, a new id).
    pub package_id: [u8; 16],
}

/// The UDM/ARPF.
#[derive(Debug, Default)]
pub struct Udm {
    /// The SIDF's home network private keys.
    pub sidf: Sidf,
}

impl Udm {
    /// The SUPI of an IMSI-type SUCI (TS 23.003 §2.2B): de-conceals the
    /// scheme output with the key the SUCI names, then MCC || MNC || MSIN.
    pub fn deconceal_imsi(
        &self,
        mcc_mnc: &str,
        scheme: u8,
        key_id: u8,
        scheme_output: &[u8],
    ) -> Result<Supi, UdmError> {
        let bcd = if scheme == 0 {
            scheme_output.to_vec().into()
        } else {
            self.sidf
                .deconceal(scheme, key_id, scheme_output)
                .map_err(UdmError::Suci)?
        };
        let msin = bcd_to_msin(&bcd).map_err(UdmError::Suci)?;
        Supi::imsi(&format!("{mcc_mnc}{msin}")).map_err(UdmError::Suci)
    }

    /// A 5G-AKA vector for `supi`: the advanced SQN state is stored before
    /// the vector is returned, so no SQN is ever issued twice.
    pub fn vector(
        &self,
        store: &mut dyn Store,
        supi: &Supi,
        rand: [u8; 16],
        snn: &[u8],
    ) -> Result<HeAv, UdmError> {
        self.issue(store, supi, rand, snn).map(|(av, _)| av)
    }

    /// [`Udm::vector`], with the subscription's state the vector was issued
    /// under: the SQN state stored after it and the package id (which
    /// changes with K). A serving network that sends an unanswered vector
    /// again checks that the subscription still has this state (no other
    /// vector, resynchronisation or new K since).
    pub fn issue(
        &self,
        store: &mut dyn Store,
        supi: &Supi,
        rand: [u8; 16],
        snn: &[u8],
    ) -> Result<(HeAv, IssuedUnder), UdmError> {
        let mut sub = store
            .subscription_by_supi(supi)?
            .ok_or_else(|| UdmError::Unknown(supi.clone()))?;
        let m = Milenage::new(&sub.k, &sub.opc);
        let (av, next) =
            home_vector(&m, sub.sqn, rand, sub.amf, snn).map_err(UdmError::Security)?;
        sub.sqn = next;
        let under = IssuedUnder {
            sqn: next,
            package_id: sub.package_id,
        };
        store.put_subscription(sub)?;
        Ok((av, under))
    }

    /// Whether `supi`'s subscription is still in the state a vector was
    /// issued under ([`Udm::issue`]): one read, no write.
    pub fn still_under(
        &self,
        store: &dyn Store,
        supi: &Supi,
        under: &IssuedUnder,
    ) -> Result<bool, UdmError> {
        Ok(store
            .subscription_by_supi(supi)?
            .is_some_and(|sub| sub.sqn == under.sqn && sub.package_id == under.package_id))
    }

    /// Resynchronisation from an AUTS the UE sent for `rand` (TS 33.102 §6.3.5).
    pub fn resynchronise(
        &self,
        store: &mut dyn Store,
        supi: &Supi,
        rand: &[u8; 16],
        auts: &[u8; 14],
    ) -> Result<(), UdmError> {
        let mut sub = store
            .subscription_by_supi(supi)?
            .ok_or_else(|| UdmError::Unknown(supi.clone()))?;
        let m = Milenage::new(&sub.k, &sub.opc);
        sub.sqn = resynchronise(&m, sub.sqn, rand, auts).map_err(UdmError::Security)?;
        store.put_subscription(sub)?;
        Ok(())
    }

    /// Whether `auts` is the UE's AUTS for `rand` (its MAC-S verifies, TS
    /// 33.102 §6.3.3), without resynchronising: one read, no write.
    pub fn auts_verifies(
        &self,
        store: &dyn Store,
        supi: &Supi,
        rand: &[u8; 16],
        auts: &[u8; 14],
    ) -> Result<bool, UdmError> {
        let sub = store
            .subscription_by_supi(supi)?
            .ok_or_else(|| UdmError::Unknown(supi.clone()))?;
        let m = Milenage::new(&sub.k, &sub.opc);
        Ok(m.verify_auts(rand, auts).is_ok())
    }

    /// The AUSF reports a successful 5G-AKA: the subscription is validated
    /// (design doc step 12). Returns whether this activated it; an
    /// activation is written with `activation` (its event) in the audit
    /// trail at `now_unix`, in one transaction.
    pub fn authenticated(
        &self,
        store: &mut dyn Store,
        supi: &Supi,
        now_unix: u64,
        activation: &crate::NetworkEvent,
    ) -> Result<bool, UdmError> {
        // Within the registration whose vector was issued from a fresh read.
        let mut sub = store
            .cached_subscription_by_supi(supi)?
            .ok_or_else(|| UdmError::Unknown(supi.clone()))?;
        if sub.state == SubscriptionState::Active {
            return Ok(false);
        }
        sub.state = SubscriptionState::Active;
        store.put_subscription_audited(sub, now_unix, core::slice::from_ref(activation))?;
        Ok(true)
    }
}
