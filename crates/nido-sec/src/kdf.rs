//! Key derivations: the generic KDF of TS 33.220 Annex B.2 and the 5G key
//! hierarchy of TS 33.501 Annex A, plus the EAP key uses of Annex B and
//! nido's K_PROV (the credential package's HPKE PSK, from K_AUSF).
//!
//! All functions are pure. Inputs and outputs that are keys are nido
//! [`crate::secret`] types; everything else is plain octets.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SecError;
use crate::secret::{
    Ck, Emsk, Ik, KAmf, KAusf, KGnb, KNasEnc, KNasInt, KProv, KSeaf, Msk, ResStar,
};
use crate::supi::Supi;

/// FC values of TS 33.501 Annex A (and TS 33.402 A.2 for CK'/IK').
pub mod fc {
    /// CK'/IK' (TS 33.402 Annex A.2).
    pub const CK_IK_PRIME: u8 = 0x20;
    /// Algorithm key derivation (A.8).
    pub const ALGORITHM_KEY: u8 = 0x69;
    /// K_AUSF (A.2).
    pub const KAUSF: u8 = 0x6A;
    /// RES* and XRES* (A.4).
    pub const RES_STAR: u8 = 0x6B;
    /// K_SEAF (A.6).
    pub const KSEAF: u8 = 0x6C;
    /// K_AMF (A.7).
    pub const KAMF: u8 = 0x6D;
    /// K_gNB, K_N3IWF (A.9).
    pub const KGNB: u8 = 0x6E;
    /// NH (A.10).
    pub const NH: u8 = 0x6F;
    /// K_PROV ([`super::kprov`]). **nido-specific, not a 3GPP value**: the
    /// FC number space is 3GPP's (TS 33.220 B.2.2) and no specification
    /// assigns this derivation. 0xF0 lies outside the values of the
    /// specifications nido implements (TS 33.501 Annex A 0x69-0x7F and the
    /// UPU/SoR MACs, TS 33.535 AKMA 0x80-0x82, TS 33.402 0x20); P0 =
    /// `"nido-prov"` separates it from any future 3GPP use of 0xF0, whose P0
    /// would differ.
    pub const NIDO_KPROV: u8 = 0xF0;
}

/// P0 of the K_PROV derivation: a static ASCII string, as TS 33.220 B.2.0
/// asks of P0.
pub const KPROV_P0: &[u8] = b"nido-prov";

/// Algorithm type distinguishers of TS 33.501 Annex A.8 (Table A.8-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Distinguisher {
    /// N-NAS-enc-alg.
    NasEnc = 0x01,
    /// N-NAS-int-alg.
    NasInt = 0x02,
    /// N-RRC-enc-alg.
    RrcEnc = 0x03,
    /// N-RRC-int-alg.
    RrcInt = 0x04,
    /// N-UP-enc-alg.
    UpEnc = 0x05,
    /// N-UP-int-alg.
    UpInt = 0x06,
}

/// Access type distinguisher of Annex A.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessType {
    /// 3GPP access (K_gNB).
    ThreeGpp = 0x01,
    /// Non-3GPP access (K_N3IWF).
    NonThreeGpp = 0x02,
}

/// The generic KDF of TS 33.220 Annex B.2.0: HMAC-SHA-256(Key, FC || P0 || L0 || ...).
///
/// Each Pi is followed by its length Li as two octets; a parameter longer than
/// 65535 octets is refused.
pub fn kdf(key: &[u8], fc: u8, params: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>, SecError> {
    let s = oxirush_security::kdf::build_s(fc, params).map_err(|_| SecError::Range {
        what: "KDF parameter",
        detail: "longer than 65535 octets".into(),
    })?;
    Ok(oxirush_security::kdf::kdf(key, &s))
}

fn kdf32(key: &[u8], fc: u8, params: &[&[u8]]) -> Result<[u8; 32], SecError> {
    Ok(*kdf(key, fc, params)?)
}

fn ck_ik(ck: &Ck, ik: &Ik) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    key[..16].copy_from_slice(ck.expose());
    key[16..].copy_from_slice(ik.expose());
    key
}

/// K_AUSF from CK, IK for 5G-AKA (A.2): P0 = serving network name, P1 = SQN xor AK.
pub fn kausf_5g_aka(ck: &Ck, ik: &Ik, snn: &[u8], sqn_xor_ak: &[u8; 6]) -> Result<KAusf, SecError> {
    Ok(KAusf::new(kdf32(
        &*ck_ik(ck, ik),
        fc::KAUSF,
        &[snn, sqn_xor_ak],
    )?))
}

/// K_AUSF for EAP-TLS with the EMSK (TS 33.501 B.2.1.1): its 256 most significant bits.
pub fn kausf_from_emsk(emsk: &Emsk) -> KAusf {
    let mut k = [0u8; 32];
    k.copy_from_slice(&emsk.expose()[..32]);
    KAusf::new(k)
}

/// K_AUSF from the MSK: its 256 most significant bits. This is the rule
/// when the onboarding network relays the device's EAP to a DCS outside it
/// (TS 33.501 I.9.2.3: the device maker's own DCS, reached with the AAA
/// procedure of I.2.2.2.2): the AAA server returns only the MSK in its
/// Access-Accept, never the EMSK, so both ends derive K_AUSF from the MSK.
pub fn kausf_from_msk(msk: &Msk) -> KAusf {
    let mut k = [0u8; 32];
    k.copy_from_slice(&msk.expose()[..32]);
    KAusf::new(k)
}

/// Which EAP key K_AUSF comes from after an EAP-based primary (or
/// onboarding) authentication. The device must know which one applies
/// before it onboards: its factory bundle says so (`"kausf_from"` in the
/// manifest, `"emsk"` when absent).
///
/// Serialised as the lower-case strings `"emsk"` and `"msk"`
/// ([`KausfFrom::as_str`], [`core::str::FromStr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KausfFrom {
    /// The 256 most significant bits of the EMSK (TS 33.501 B.2.1.1): the
    /// network's own (built-in) DCS, which holds the whole EAP-TLS session.
    #[default]
    Emsk,
    /// The 256 most significant bits of the MSK (TS 33.501 I.9.2.3,
    /// I.2.2.2.2): an external DCS behind an AAA server, which hands the
    /// onboarding network the MSK only.
    Msk,
}

impl KausfFrom {
    /// `"emsk"` or `"msk"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emsk => "emsk",
            Self::Msk => "msk",
        }
    }

    /// Whether this is the default, [`KausfFrom::Emsk`] (for
    /// `skip_serializing_if`: files that omit it keep their old form).
    pub fn is_emsk(&self) -> bool {
        *self == Self::Emsk
    }

    /// K_AUSF by this rule from the keys an EAP method exported: the EMSK
    /// may be missing (an AAA server's Access-Accept carries the MSK only),
    /// which the [`KausfFrom::Emsk`] rule refuses. The one place the rule
    /// is applied, by the device and by the network alike.
    pub fn kausf(self, msk: &Msk, emsk: Option<&Emsk>) -> Result<KAusf, SecError> {
        match (self, emsk) {
            (Self::Msk, _) => Ok(kausf_from_msk(msk)),
            (Self::Emsk, Some(emsk)) => Ok(kausf_from_emsk(emsk)),
            (Self::Emsk, None) => Err(SecError::Range {
                what: "EAP keys",
                detail: "K_AUSF from the EMSK, but no EMSK was exported".into(),
            }),
        }
    }
}

impl core::fmt::Display for KausfFrom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for KausfFrom {
    type Err = SecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "emsk" => Ok(Self::Emsk),
            "msk" => Ok(Self::Msk),
            other => Err(SecError::Range {
                what: "K_AUSF source",
                detail: format!("{other:?} is neither \"emsk\" nor \"msk\""),
            }),
        }
    }
}

/// K_PROV, the key that authenticates the credential package (nido, not
/// 3GPP): KDF(K_AUSF, 0xF0, P0 = `"nido-prov"`) with the generic KDF of
/// TS 33.220 Annex B.2.0, 256 bits.
///
/// K_AUSF here is the one of the onboarding EAP-TLS session (TS 33.501
/// B.2.1.1: the EMSK's 256 most significant bits), which only the device
/// and the network whose DCS completed EAP-TLS with it hold; the derivation
/// follows the pattern of K_AKMA (TS 33.535 A.2, an application key the
/// AUSF derives from K_AUSF). The PVS seals with it as the HPKE PSK
/// (RFC 9180 §5.1.2) and the device opens with it, so a package sealed by
/// anyone who did not authenticate the device does not open. The device
/// identity and the request nonce are bound through the HPKE `info`, which
/// PSK mode's key schedule binds to this key; they need not be KDF inputs.
pub fn kprov(kausf: &KAusf) -> Result<KProv, SecError> {
    Ok(KProv::new(kdf32(
        kausf.expose(),
        fc::NIDO_KPROV,
        &[KPROV_P0],
    )?))
}

/// RES* (UE) or XRES* (home network) (A.4): the 128 LSB of
/// KDF(CK||IK, 0x6B, SNN, RAND, RES).
pub fn res_star(
    ck: &Ck,
    ik: &Ik,
    snn: &[u8],
    rand: &[u8; 16],
    res: &[u8],
) -> Result<ResStar, SecError> {
    let out = kdf(&*ck_ik(ck, ik), fc::RES_STAR, &[snn, rand, res])?;
    let mut r = [0u8; 16];
    r.copy_from_slice(&out[16..]);
    Ok(ResStar::new(r))
}

/// HRES* / HXRES* (A.5): the 128 LSB of SHA-256(RAND || RES*).
pub fn hres_star(rand: &[u8; 16], res_star: &ResStar) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(rand);
    ctx.update(res_star.expose());
    let d = ctx.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[16..]);
    out
}

/// K_SEAF (A.6): KDF(K_AUSF, 0x6C, serving network name).
pub fn kseaf(kausf: &KAusf, snn: &[u8]) -> Result<KSeaf, SecError> {
    Ok(KSeaf::new(kdf32(kausf.expose(), fc::KSEAF, &[snn])?))
}

/// K_AMF (A.7): KDF(K_SEAF, 0x6D, SUPI, ABBA). The SUPI is the IMSI digits
/// or the NAI, as a character string (A.7.0).
pub fn kamf(kseaf: &KSeaf, supi: &Supi, abba: &[u8]) -> Result<KAmf, SecError> {
    Ok(KAmf::new(kdf32(
        kseaf.expose(),
        fc::KAMF,
        &[supi.kdf_octets().as_bytes(), abba],
    )?))
}

/// An algorithm key (A.8): the 128 LSB of KDF(key, 0x69, distinguisher, algorithm id).
pub fn algorithm_key(
    key: &[u8],
    distinguisher: Distinguisher,
    alg_id: u8,
) -> Result<Zeroizing<[u8; 32]>, SecError> {
    kdf(key, fc::ALGORITHM_KEY, &[&[distinguisher as u8], &[alg_id]])
}

fn lsb128(full: &[u8; 32]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(&full[16..]);
    k
}

/// K_NASint for integrity algorithm `nia` (1, 2, 3; 0 is allowed and unused).
pub fn knas_int(kamf: &KAmf, nia: u8) -> Result<KNasInt, SecError> {
    Ok(KNasInt::new(lsb128(&*algorithm_key(
        kamf.expose(),
        Distinguisher::NasInt,
        nia,
    )?)))
}

/// K_NASenc for ciphering algorithm `nea`.
pub fn knas_enc(kamf: &KAmf, nea: u8) -> Result<KNasEnc, SecError> {
    Ok(KNasEnc::new(lsb128(&*algorithm_key(
        kamf.expose(),
        Distinguisher::NasEnc,
        nea,
    )?)))
}

/// K_gNB (access 3GPP) or K_N3IWF (A.9): KDF(K_AMF, 0x6E, UL NAS COUNT, access type).
pub fn kgnb(kamf: &KAmf, ul_nas_count: u32, access: AccessType) -> Result<KGnb, SecError> {
    Ok(KGnb::new(kdf32(
        kamf.expose(),
        fc::KGNB,
        &[&ul_nas_count.to_be_bytes(), &[access as u8]],
    )?))
}

/// NH (A.10): KDF(K_AMF, 0x6F, SYNC-input), SYNC-input being K_gNB or the previous NH.
pub fn nh(kamf: &KAmf, sync_input: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, SecError> {
    kdf(kamf.expose(), fc::NH, &[sync_input])
}

/// CK' and IK' (TS 33.402 Annex A.2, used by EAP-AKA' per TS 33.501 A.3):
/// KDF(CK||IK, 0x20, access network identity, SQN xor AK); CK' = MSB 128, IK' = LSB 128.
pub fn ck_ik_prime(
    ck: &Ck,
    ik: &Ik,
    network_name: &[u8],
    sqn_xor_ak: &[u8; 6],
) -> Result<(Ck, Ik), SecError> {
    let out = kdf(
        &*ck_ik(ck, ik),
        fc::CK_IK_PRIME,
        &[network_name, sqn_xor_ak],
    )?;
    let mut c = [0u8; 16];
    let mut i = [0u8; 16];
    c.copy_from_slice(&out[..16]);
    i.copy_from_slice(&out[16..]);
    Ok((Ck::new(c), Ik::new(i)))
}

/// PRF' of RFC 5448 §3.4 (HMAC-SHA-256 in counter mode): T1 = HMAC(K, S|0x01),
/// Tn = HMAC(K, Tn-1|S|n). Returns `len` octets (at most 255 blocks).
pub fn prf_prime(key: &[u8], s: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, SecError> {
    if len > 255 * 32 {
        return Err(SecError::Range {
            what: "PRF' length",
            detail: format!("{len} > 8160"),
        });
    }
    let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut prev: Vec<u8> = Vec::new();
    let mut n = 1u8;
    while out.len() < len {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&hkey);
        ctx.update(&prev);
        ctx.update(s);
        ctx.update(&[n]);
        prev = ctx.sign().as_ref().to_vec();
        out.extend_from_slice(&prev);
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// The serving network name of TS 24.501 §9.12.1 / TS 33.501 §6.1.1.4:
/// `5G:mnc<MNC>.mcc<MCC>.3gppnetwork.org`, with a 2-digit MNC zero-padded to 3;
/// for an SNPN, `:<NID>` follows (NID as 11 hex digits).
pub fn serving_network_name(mcc: &str, mnc: &str, nid: Option<&str>) -> Result<String, SecError> {
    let digits =
        |s: &str, lens: &[usize]| s.bytes().all(|b| b.is_ascii_digit()) && lens.contains(&s.len());
    if !digits(mcc, &[3]) {
        return Err(SecError::Range {
            what: "MCC",
            detail: format!("{mcc:?} is not 3 digits"),
        });
    }
    if !digits(mnc, &[2, 3]) {
        return Err(SecError::Range {
            what: "MNC",
            detail: format!("{mnc:?} is not 2 or 3 digits"),
        });
    }
    let mut name = format!("5G:mnc{mnc:0>3}.mcc{mcc}.3gppnetwork.org");
    if let Some(nid) = nid {
        if nid.len() != 11 || !nid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecError::Range {
                what: "NID",
                detail: format!("{nid:?} is not 11 hex digits"),
            });
        }
        name.push(':');
        name.push_str(&nid.to_ascii_uppercase());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snn_pads_two_digit_mnc() {
        assert_eq!(
            serving_network_name("001", "01", None).unwrap(),
            "5G:mnc001.mcc001.3gppnetwork.org"
        );
        assert_eq!(
            serving_network_name("999", "999", Some("000000000ab")).unwrap(),
            "5G:mnc999.mcc999.3gppnetwork.org:000000000AB"
        );
        assert!(serving_network_name("01", "01", None).is_err());
    }

    #[test]
    fn kprov_is_the_generic_kdf_with_nido_fc() {
        // Built by hand: S = FC || P0 || L0 (TS 33.220 B.2.0), HMAC-SHA-256.
        let kausf = KAusf::new([0x5a; 32]);
        let mut s = vec![0xF0];
        s.extend_from_slice(b"nido-prov");
        s.extend_from_slice(&[0x00, 0x09]);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[0x5a; 32]);
        let expected = aws_lc_rs::hmac::sign(&key, &s);
        assert_eq!(kprov(&kausf).unwrap().expose()[..], *expected.as_ref());
        // A different K_AUSF (another EAP-TLS session) gives another key, and
        // K_PROV is not K_SEAF's derivation with the same input.
        assert_ne!(
            kprov(&kausf).unwrap(),
            kprov(&KAusf::new([0x5b; 32])).unwrap()
        );
        assert_ne!(
            kprov(&kausf).unwrap().expose(),
            kseaf(&kausf, b"nido-prov").unwrap().expose()
        );
    }

    #[test]
    fn eap_keys_take_the_most_significant_bits() {
        let mut e = [0u8; 64];
        e.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        assert_eq!(kausf_from_emsk(&Emsk::new(e)).expose()[..], e[..32]);
        assert_eq!(kausf_from_msk(&Msk::new(e)).expose()[..], e[..32]);
    }

    #[test]
    fn kausf_from_msk_is_the_msk_msb_and_differs_from_the_emsk_rule() {
        // TS 33.501 I.9.2.3 / I.2.2.2.2: an external DCS's MSK, 256 MSB.
        let msk: [u8; 64] = core::array::from_fn(|i| 0xA0 ^ i as u8);
        let emsk: [u8; 64] = core::array::from_fn(|i| 0x50 ^ i as u8);
        let (msk, emsk) = (Msk::new(msk), Emsk::new(emsk));
        let from_msk = KausfFrom::Msk.kausf(&msk, Some(&emsk)).unwrap();
        assert_eq!(from_msk.expose()[..], msk.expose()[..32]);
        assert_eq!(
            KausfFrom::Msk.kausf(&msk, None).unwrap(),
            kausf_from_msk(&msk)
        );
        let from_emsk = KausfFrom::Emsk.kausf(&msk, Some(&emsk)).unwrap();
        assert_eq!(from_emsk, kausf_from_emsk(&emsk));
        assert_ne!(from_msk, from_emsk);
        // The EMSK rule without an EMSK (an AAA server's answer) is refused.
        assert!(KausfFrom::Emsk.kausf(&msk, None).is_err());
    }

    #[test]
    fn kausf_from_reads_and_writes_its_strings() {
        for (rule, text) in [(KausfFrom::Emsk, "emsk"), (KausfFrom::Msk, "msk")] {
            assert_eq!(rule.as_str(), text);
            assert_eq!(rule.to_string(), text);
            assert_eq!(text.parse::<KausfFrom>().unwrap(), rule);
            assert_eq!(serde_json::to_string(&rule).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<KausfFrom>(&format!("\"{text}\"")).unwrap(),
                rule
            );
        }
        assert!("MSK".parse::<KausfFrom>().is_err());
        assert!(serde_json::from_str::<KausfFrom>("\"ck-ik\"").is_err());
        assert_eq!(KausfFrom::default(), KausfFrom::Emsk);
        assert!(KausfFrom::Emsk.is_emsk() && !KausfFrom::Msk.is_emsk());
    }
}
