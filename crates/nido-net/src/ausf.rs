//! The AUSF (TS 33.501 §6.1.3): K_AUSF and K_SEAF from either
//! authentication method, and the 5G-AKA session it keeps while the UE
//! answers.

use nido_eap::EapTlsKeys;
use nido_sec::aka::{AkaFailure, AusfChallenge, HeAv};
use nido_sec::kdf::KausfFrom;
use nido_sec::{KAmf, KAusf, KProv, KSeaf, Msk, ResStar, SecError, Supi, kdf};

/// K_AUSF of an onboarding EAP-TLS session the built-in DCS ran: the
/// [`KausfFrom::Emsk`] rule (TS 33.501 B.2.1.1, the 256 most significant
/// bits of the EMSK).
pub fn kausf_from_eap(keys: &EapTlsKeys) -> Result<KAusf, SecError> {
    keys.kausf(KausfFrom::Emsk)
}

/// K_AUSF of an onboarding EAP an external DCS answered through the AAA
/// relay: the [`KausfFrom::Msk`] rule (TS 33.501 I.9.2.3, I.2.2.2.2: the
/// Access-Accept brings the MSK only; its 256 most significant bits).
pub fn kausf_from_relayed_msk(msk: &Msk) -> Result<KAusf, SecError> {
    KausfFrom::Msk.kausf(msk, None)
}

/// K_SEAF for the serving network `snn` from an EAP-TLS session (K_AUSF =
/// the 256 most significant bits of the EMSK, TS 33.501 B.2.1.1).
pub fn kseaf_from_eap(keys: &EapTlsKeys, snn: &[u8]) -> Result<KSeaf, SecError> {
    kdf::kseaf(&kausf_from_eap(keys)?, snn)
}

/// K_PROV, the key the PVS seals the credential package with (HPKE PSK
/// mode, RFC 9180 §5.1.2), from the K_AUSF of this EAP-TLS session
/// (TS 33.501 B.2.1.1; nido's derivation, [`kdf::kprov`]). Like K_AKMA
/// (TS 33.535 §6.1), a key the AUSF derives from K_AUSF for a function
/// beyond the SEAF; only the device that ran this session derives it too.
pub fn kprov_from_eap(keys: &EapTlsKeys) -> Result<KProv, SecError> {
    kdf::kprov(&kausf_from_eap(keys)?)
}

/// K_AMF for the onboarding SUPI `supi` (with ABBA `abba`) and K_PROV from
/// an onboarding K_AUSF, whichever rule gave it: what the AMF takes from
/// every successful onboarding authentication, built-in or relayed.
pub fn onboarding_keys(
    kausf: &KAusf,
    snn: &[u8],
    supi: &Supi,
    abba: &[u8],
) -> Result<(KAmf, KProv), SecError> {
    let kseaf = kdf::kseaf(kausf, snn)?;
    Ok((kdf::kamf(&kseaf, supi, abba)?, kdf::kprov(kausf)?))
}

/// K_AMF (TS 33.501 A.7) for `supi` and the ABBA nido sends.
pub fn kamf(kseaf: &KSeaf, supi: &Supi, abba: &[u8]) -> Result<KAmf, SecError> {
    kdf::kamf(kseaf, supi, abba)
}

/// A 5G-AKA authentication in progress: the AUSF's vector, how many
/// resynchronisations it already ran, and the RANDs of the challenges it
/// replaced.
#[derive(Debug)]
pub struct AkaSession {
    /// The challenge (RAND, AUTN, HXRES*; XRES* and K_AUSF stay inside).
    pub challenge: AusfChallenge,
    /// Resynchronisations so far.
    pub resyncs: u32,
    /// The RANDs of the earlier challenges of this authentication, each
    /// replaced after a resynchronisation (TS 33.102 §6.3.5). A copy of an
    /// earlier AUTHENTICATION REQUEST (a retransmission delayed on the
    /// link) can still reach the UE after the new one was sent; the UE
    /// answers it with another synch failure whose AUTS is computed with
    /// that earlier RAND. Such an AUTS is recognised against these and
    /// discarded, rather than verified against the current RAND, failing
    /// MAC-S and ending the authentication.
    pub earlier_rands: Vec<[u8; 16]>,
}

impl AkaSession {
    /// From the UDM's vector; `earlier_rands` as in [`AkaSession::earlier_rands`].
    pub fn new(av: HeAv, resyncs: u32, earlier_rands: Vec<[u8; 16]>) -> Self {
        Self {
            challenge: AusfChallenge::new(av),
            resyncs,
            earlier_rands,
        }
    }

    /// The SEAF's HXRES* check, then the AUSF's RES* check; K_SEAF on success.
    pub fn confirm(self, res_star: &ResStar, snn: &[u8]) -> Result<KSeaf, AkaFailure> {
        if !self.challenge.seaf_accepts(res_star) {
            return Err(AkaFailure::ResStarMismatch);
        }
        self.challenge
            .confirm(res_star, snn)
            .map(|(kseaf, _)| kseaf)
    }
}
