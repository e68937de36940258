//! 5G-AKA end to end (TS 33.501 §6.1.3.2) as pure functions: the home
//! network's vector with its SQN management (TS 33.102 Annex C.3), the
//! USIM/ME's answer with SQN freshness (Annex C.2) and resynchronisation by
//! AUTS (TS 33.102 §6.3.5), the AUSF's and SEAF's checks of RES*.
//!
//! The procedures (UE, AMF, AUSF, UDM) call these; nothing here keeps
//! state beyond what it is handed.

use subtle::ConstantTimeEq;

use crate::SecError;
use crate::kdf;
use crate::milenage::{Amf, IND_BITS, Milenage, Sqn, SqnVerdict, SqnWindow};
use crate::secret::{KAusf, KSeaf, ResStar};

/// The home network's SQN generator: SEQ counts up, IND cycles through the
/// 2^5 slots (TS 33.102 Annex C.3.2 with a counter-based SEQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeSqn {
    /// The SEQ of the last vector issued.
    pub seq: u64,
    /// The IND of the last vector issued.
    pub ind: u8,
}

impl HeSqn {
    /// The SQN of the next vector, and the generator advanced past it.
    pub fn next(self) -> Result<(Sqn, Self), SecError> {
        let seq = self.seq + 1;
        let ind = (self.ind + 1) % (1 << IND_BITS);
        let sqn = Sqn::new((seq << IND_BITS) | u64::from(ind))?;
        Ok((sqn, Self { seq, ind }))
    }

    /// After a resynchronisation: SEQ continues from the USIM's SQN_MS, so
    /// the next vector is fresh for it (TS 33.102 §6.3.5, C.3.4).
    pub fn resync(self, sqn_ms: Sqn) -> Self {
        Self {
            seq: self.seq.max(sqn_ms.seq()),
            ind: self.ind,
        }
    }
}

/// The home environment authentication vector of 5G-AKA (TS 33.501 §6.1.3.2 step 2).
#[derive(Debug)]
pub struct HeAv {
    /// RAND.
    pub rand: [u8; 16],
    /// AUTN.
    pub autn: [u8; 16],
    /// XRES*.
    pub xres_star: ResStar,
    /// K_AUSF.
    pub kausf: KAusf,
}

/// The UDM/ARPF: a vector for the next SQN, with the AMF separation bit set.
/// Returns the vector and the advanced SQN state, which the caller must
/// persist before the vector leaves (SQN never reused).
pub fn home_vector(
    subscriber: &Milenage,
    sqn_state: HeSqn,
    rand: [u8; 16],
    amf: Amf,
    snn: &[u8],
) -> Result<(HeAv, HeSqn), SecError> {
    if !amf.separation_bit() {
        return Err(SecError::Range {
            what: "AMF",
            detail: "5G-AKA needs the separation bit set".into(),
        });
    }
    let (sqn, next) = sqn_state.next()?;
    let av = subscriber.vector(&rand, sqn, amf);
    let mut sqn_xor_ak = [0u8; 6];
    sqn_xor_ak.copy_from_slice(&av.autn[..6]);
    let xres_star = kdf::res_star(&av.ck, &av.ik, snn, &rand, &av.xres)?;
    let kausf = kdf::kausf_5g_aka(&av.ck, &av.ik, snn, &sqn_xor_ak)?;
    Ok((
        HeAv {
            rand,
            autn: av.autn,
            xres_star,
            kausf,
        },
        next,
    ))
}

/// The UDM's handling of an AUTS: verify MAC-S, and move its SQN state so
/// the next vector is fresh for the USIM.
pub fn resynchronise(
    subscriber: &Milenage,
    sqn_state: HeSqn,
    rand: &[u8; 16],
    auts: &[u8; 14],
) -> Result<HeSqn, SecError> {
    let sqn_ms = subscriber.verify_auts(rand, auts)?;
    Ok(sqn_state.resync(sqn_ms))
}

/// What the AUSF keeps of a vector while the UE answers, and what it gives
/// the SEAF: HXRES* only, never XRES* (TS 33.501 §6.1.3.2 steps 3-5).
#[derive(Debug)]
pub struct AusfChallenge {
    /// RAND, AUTN and HXRES* for the SEAF.
    pub rand: [u8; 16],
    /// AUTN.
    pub autn: [u8; 16],
    /// HXRES* = SHA-256(RAND || XRES*), 128 LSB.
    pub hxres_star: [u8; 16],
    xres_star: ResStar,
    kausf: KAusf,
}

impl AusfChallenge {
    /// From the UDM's vector.
    pub fn new(av: HeAv) -> Self {
        let hxres_star = kdf::hres_star(&av.rand, &av.xres_star);
        Self {
            rand: av.rand,
            autn: av.autn,
            hxres_star,
            xres_star: av.xres_star,
            kausf: av.kausf,
        }
    }

    /// The SEAF's check (step 9): HRES* of the UE's RES* against HXRES*.
    pub fn seaf_accepts(&self, res_star: &ResStar) -> bool {
        kdf::hres_star(&self.rand, res_star)
            .ct_eq(&self.hxres_star)
            .into()
    }

    /// The AUSF's check (step 11): RES* against XRES*, in constant time; on
    /// success K_SEAF for the serving network and K_AUSF to keep.
    pub fn confirm(self, res_star: &ResStar, snn: &[u8]) -> Result<(KSeaf, KAusf), AkaFailure> {
        if self.xres_star != *res_star {
            return Err(AkaFailure::ResStarMismatch);
        }
        let kseaf = kdf::kseaf(&self.kausf, snn).map_err(AkaFailure::Input)?;
        Ok((kseaf, self.kausf))
    }
}

/// Why 5G-AKA did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AkaFailure {
    /// The network's MAC-A does not verify: the UE answers AUTHENTICATION
    /// FAILURE cause #20 (MAC failure); the network is not authentic.
    #[error("network authentication failed: MAC failure (5GMM #20)")]
    MacFailure,
    /// The SQN is not fresh: the UE answers cause #21 with this AUTS.
    #[error("synch failure (5GMM #21)")]
    SynchFailure {
        /// AUTS for the home network's resynchronisation.
        auts: [u8; 14],
    },
    /// The AMF separation bit is not set: cause #26 (non-5G authentication unacceptable).
    #[error("AMF separation bit not set (5GMM #26)")]
    NotFiveG,
    /// RES* differs from XRES*: the UE is not authentic.
    #[error("RES* does not match XRES*")]
    ResStarMismatch,
    /// An input was malformed.
    #[error("{0}")]
    Input(SecError),
}

impl AkaFailure {
    /// The 5GMM cause the UE sends in AUTHENTICATION FAILURE, where it sends one.
    pub fn gmm_cause(&self) -> Option<crate::Cause> {
        match self {
            Self::MacFailure => Some(crate::Cause::MAC_FAILURE),
            Self::SynchFailure { .. } => Some(crate::Cause::SYNCH_FAILURE),
            Self::NotFiveG => Some(crate::Cause::NON_5G_AUTHENTICATION_UNACCEPTABLE),
            _ => None,
        }
    }
}

/// What the UE derives from an accepted challenge.
#[derive(Debug)]
pub struct UeAka {
    /// RES*, for AUTHENTICATION RESPONSE.
    pub res_star: ResStar,
    /// K_AUSF.
    pub kausf: KAusf,
    /// The SQN accepted; the window already advanced past it.
    pub sqn: Sqn,
}

/// The USIM and ME on an AUTHENTICATION REQUEST (TS 33.501 §6.1.3.2 step 7,
/// TS 33.102 §6.3.3): MAC-A, then SQN freshness against `window` (advanced
/// only on success: the caller persists it before answering), then the
/// separation bit, then RES* and K_AUSF.
pub fn ue_respond(
    subscriber: &Milenage,
    window: &mut SqnWindow,
    rand: &[u8; 16],
    autn: &[u8; 16],
    snn: &[u8],
) -> Result<UeAka, AkaFailure> {
    let check = subscriber
        .check_autn(rand, autn)
        .map_err(|_| AkaFailure::MacFailure)?;
    if let SqnVerdict::Stale { sqn_ms } = window.check(check.sqn) {
        return Err(AkaFailure::SynchFailure {
            auts: subscriber.auts(rand, sqn_ms),
        });
    }
    if !check.amf.separation_bit() {
        return Err(AkaFailure::NotFiveG);
    }
    let res_star =
        kdf::res_star(&check.ck, &check.ik, snn, rand, &check.res).map_err(AkaFailure::Input)?;
    let mut sqn_xor_ak = [0u8; 6];
    sqn_xor_ak.copy_from_slice(&autn[..6]);
    let kausf =
        kdf::kausf_5g_aka(&check.ck, &check.ik, snn, &sqn_xor_ak).map_err(AkaFailure::Input)?;
    window
        .accept(check.sqn)
        .map_err(|_| AkaFailure::Input(SecError::Backend("window")))?;
    Ok(UeAka {
        res_star,
        kausf,
        sqn: check.sqn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{K, Opc};

    const SNN: &[u8] = b"5G:mnc001.mcc001.3gppnetwork.org";

    fn sub() -> Milenage {
        Milenage::new(&K::new([0x46; 16]), &Opc::new([0xcd; 16]))
    }

    #[test]
    fn full_5g_aka_agrees_on_kausf_and_kseaf() {
        let (av, next) = home_vector(&sub(), HeSqn::default(), [7; 16], Amf::FIVE_G, SNN).unwrap();
        assert_eq!(next, HeSqn { seq: 1, ind: 1 });
        let challenge = AusfChallenge::new(av);
        let mut window = SqnWindow::default();
        let ue = ue_respond(&sub(), &mut window, &challenge.rand, &challenge.autn, SNN).unwrap();
        assert!(challenge.seaf_accepts(&ue.res_star));
        let ue_kseaf = kdf::kseaf(&ue.kausf, SNN).unwrap();
        let (kseaf, kausf) = challenge.confirm(&ue.res_star, SNN).unwrap();
        assert_eq!(kausf, ue.kausf);
        assert_eq!(kseaf, ue_kseaf);
    }

    #[test]
    fn wrong_res_star_is_refused() {
        let (av, _) = home_vector(&sub(), HeSqn::default(), [7; 16], Amf::FIVE_G, SNN).unwrap();
        let challenge = AusfChallenge::new(av);
        let wrong = ResStar::new([0; 16]);
        assert!(!challenge.seaf_accepts(&wrong));
        assert_eq!(
            challenge.confirm(&wrong, SNN).unwrap_err(),
            AkaFailure::ResStarMismatch
        );
    }

    #[test]
    fn fake_network_fails_mac() {
        let fake = Milenage::new(&K::new([0x47; 16]), &Opc::new([0xcd; 16]));
        let (av, _) = home_vector(&fake, HeSqn::default(), [7; 16], Amf::FIVE_G, SNN).unwrap();
        let mut window = SqnWindow::default();
        let err = ue_respond(&sub(), &mut window, &av.rand, &av.autn, SNN).unwrap_err();
        assert_eq!(err, AkaFailure::MacFailure);
        assert_eq!(err.gmm_cause(), Some(crate::Cause::MAC_FAILURE));
        assert_eq!(window, SqnWindow::default());
    }

    #[test]
    fn replayed_challenge_triggers_resync_then_success() {
        let s = sub();
        let (av, issued) = home_vector(&s, HeSqn::default(), [1; 16], Amf::FIVE_G, SNN).unwrap();
        assert_eq!(issued.seq, 1);
        let mut window = SqnWindow::default();
        ue_respond(&s, &mut window, &av.rand, &av.autn, SNN).unwrap();
        // The same AUTN again (a replay, or a UDM that lost its SQN state).
        let err = ue_respond(&s, &mut window, &av.rand, &av.autn, SNN).unwrap_err();
        let AkaFailure::SynchFailure { auts } = err else {
            panic!("{err:?}")
        };
        // A UDM rolled back to SEQ 0 (lost state) resynchronises from the AUTS
        // to at least the SEQ it had issued.
        let he = resynchronise(&s, HeSqn::default(), &av.rand, &auts).unwrap();
        assert!(he.seq >= issued.seq);
        let (av2, _) = home_vector(&s, he, [2; 16], Amf::FIVE_G, SNN).unwrap();
        assert!(ue_respond(&s, &mut window, &av2.rand, &av2.autn, SNN).is_ok());
    }

    #[test]
    fn forged_auts_is_refused() {
        let mut auts = sub().auts(&[1; 16], Sqn::new(99 << IND_BITS).unwrap());
        auts[13] ^= 1;
        assert!(resynchronise(&sub(), HeSqn::default(), &[1; 16], &auts).is_err());
    }

    #[test]
    fn amf_without_separation_bit() {
        assert!(home_vector(&sub(), HeSqn::default(), [7; 16], Amf([0, 0]), SNN).is_err());
    }
}
