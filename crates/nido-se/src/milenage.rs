//! MILENAGE (3GPP TS 35.206 §4.1) over an abstract AES-128 block function,
//! and the USIM/ME side of 5G-AKA on top of it.
//!
//! MILENAGE touches K only through E_K, one AES-128 block encryption; OPc
//! is XORed into its inputs and outputs. Written against [`BlockCipher`],
//! it runs with K inside a PKCS#11 token (`CKM_AES_ECB` on a
//! non-extractable key) as well as with a software AES in tests, which check
//! it against every set of `shared/vectors/milenage.json` and against
//! `nido_sec::Milenage`.
//!
//! [`respond`] is `nido_sec::aka::ue_respond` (TS 33.501 §6.1.3.2 step 7,
//! TS 33.102 §6.3.3) over this MILENAGE: MAC-A, SQN freshness (AUTS with
//! AMF* = 0x0000 on a synch failure, §6.3.5), separation bit, RES* and
//! K_AUSF (TS 33.501 Annex A.4 and A.2).

use nido_sec::aka::{AkaFailure, UeAka};
use nido_sec::kdf;
use nido_sec::{Amf, Ck, Ik, Sqn, SqnVerdict, SqnWindow};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{SeAkaError, SeError};

/// E_K: one AES-128 block encryption under the subscriber key K.
pub(crate) trait BlockCipher {
    /// Encrypts one 16-octet block.
    fn encrypt_block(&self, block: &[u8; 16]) -> Result<Zeroizing<[u8; 16]>, SeError>;
}

/// A block of MILENAGE's intermediate values: zeroized on drop.
type Block = Zeroizing<[u8; 16]>;

/// MILENAGE for one subscriber: E_K and OPc.
pub(crate) struct Milenage<'a, E: BlockCipher> {
    e: &'a E,
    opc: Block,
}

/// f2, f3, f4, f5 for one RAND.
pub(crate) struct F2345 {
    /// RES (f2).
    pub(crate) res: Zeroizing<[u8; 8]>,
    /// CK (f3).
    pub(crate) ck: Ck,
    /// IK (f4).
    pub(crate) ik: Ik,
    /// AK (f5).
    pub(crate) ak: Zeroizing<[u8; 6]>,
}

fn xor(a: &[u8; 16], b: &[u8; 16]) -> Block {
    let mut out = Zeroizing::new([0u8; 16]);
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// rot(x, r): x cyclically rotated left by `bytes` × 8 bits (TS 35.206 §4.1:
/// every r_i is a multiple of 8).
fn rot(x: &[u8; 16], bytes: usize) -> Block {
    let mut out = Zeroizing::new([0u8; 16]);
    for (i, o) in out.iter_mut().enumerate() {
        *o = x[(i + bytes) % 16];
    }
    out
}

impl<'a, E: BlockCipher> Milenage<'a, E> {
    /// MILENAGE with E_K and OPc.
    pub(crate) fn new(e: &'a E, opc: &[u8; 16]) -> Self {
        Self {
            e,
            opc: Zeroizing::new(*opc),
        }
    }

    /// TEMP = E_K(RAND ⊕ OPc).
    fn temp(&self, rand: &[u8; 16]) -> Result<Block, SeError> {
        self.e.encrypt_block(&xor(rand, &self.opc))
    }

    /// OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc with
    /// IN1 = SQN ‖ AMF ‖ SQN ‖ AMF, r1 = 64, c1 = 0.
    fn out1(&self, temp: &[u8; 16], sqn: &[u8; 6], amf: &[u8; 2]) -> Result<Block, SeError> {
        let mut in1 = [0u8; 16];
        in1[..6].copy_from_slice(sqn);
        in1[6..8].copy_from_slice(amf);
        in1[8..14].copy_from_slice(sqn);
        in1[14..].copy_from_slice(amf);
        let rotated = rot(&xor(&in1, &self.opc), 8);
        let out = self.e.encrypt_block(&xor(temp, &rotated))?;
        Ok(xor(&out, &self.opc))
    }

    /// OUTn = E_K(rot(TEMP ⊕ OPc, r) ⊕ c) ⊕ OPc for n = 2..5, with
    /// (r, c) = (0, 1), (32, 2), (64, 4), (96, 8) (c in the last bit positions).
    fn out(&self, temp: &[u8; 16], r_bytes: usize, c: u8) -> Result<Block, SeError> {
        let mut input = rot(&xor(temp, &self.opc), r_bytes);
        input[15] ^= c;
        let out = self.e.encrypt_block(&input)?;
        Ok(xor(&out, &self.opc))
    }

    /// f1 (MAC-A) and f1* (MAC-S): the two halves of OUT1.
    pub(crate) fn f1_f1star(
        &self,
        rand: &[u8; 16],
        sqn: &[u8; 6],
        amf: &[u8; 2],
    ) -> Result<([u8; 8], [u8; 8]), SeError> {
        let temp = self.temp(rand)?;
        let out1 = self.out1(&temp, sqn, amf)?;
        let mut mac_a = [0u8; 8];
        let mut mac_s = [0u8; 8];
        mac_a.copy_from_slice(&out1[..8]);
        mac_s.copy_from_slice(&out1[8..]);
        Ok((mac_a, mac_s))
    }

    /// f2 (RES = OUT2[64..127]), f3 (CK = OUT3), f4 (IK = OUT4), f5 (AK = OUT2[0..47]).
    pub(crate) fn f2345(&self, rand: &[u8; 16]) -> Result<F2345, SeError> {
        let temp = self.temp(rand)?;
        let out2 = self.out(&temp, 0, 1)?;
        let out3 = self.out(&temp, 4, 2)?;
        let out4 = self.out(&temp, 8, 4)?;
        let mut res = Zeroizing::new([0u8; 8]);
        res.copy_from_slice(&out2[8..]);
        let mut ak = Zeroizing::new([0u8; 6]);
        ak.copy_from_slice(&out2[..6]);
        Ok(F2345 {
            res,
            ck: Ck::new(*out3),
            ik: Ik::new(*out4),
            ak,
        })
    }

    /// f5* (AK for resynchronisation = OUT5[0..47]).
    pub(crate) fn f5star(&self, rand: &[u8; 16]) -> Result<Zeroizing<[u8; 6]>, SeError> {
        let temp = self.temp(rand)?;
        let out5 = self.out(&temp, 12, 8)?;
        let mut ak = Zeroizing::new([0u8; 6]);
        ak.copy_from_slice(&out5[..6]);
        Ok(ak)
    }

    /// AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S with AMF* = 0x0000 (TS 33.102 §6.3.3, §6.3.5).
    pub(crate) fn auts(&self, rand: &[u8; 16], sqn_ms: Sqn) -> Result<[u8; 14], SeError> {
        let sqn = sqn_ms.octets();
        let ak_star = self.f5star(rand)?;
        let (_, mac_s) = self.f1_f1star(rand, &sqn, &[0, 0])?;
        let mut auts = [0u8; 14];
        for (i, (s, a)) in sqn.iter().zip(ak_star.iter()).enumerate() {
            auts[i] = s ^ a;
        }
        auts[6..].copy_from_slice(&mac_s);
        Ok(auts)
    }
}

/// The USIM and ME on an AUTHENTICATION REQUEST, as `nido_sec::aka::ue_respond`
/// but over [`Milenage`]: MAC-A (constant time), then SQN freshness against
/// `window` (advanced only on success; the caller persists it before it
/// answers), then the separation bit, then RES* and K_AUSF.
pub(crate) fn respond<E: BlockCipher>(
    milenage: &Milenage<'_, E>,
    window: &mut SqnWindow,
    rand: &[u8; 16],
    autn: &[u8; 16],
    snn: &[u8],
) -> Result<UeAka, SeAkaError> {
    let f = milenage.f2345(rand)?;
    let mut sqn_xor_ak = [0u8; 6];
    sqn_xor_ak.copy_from_slice(&autn[..6]);
    let mut sqn_octets = Zeroizing::new([0u8; 6]);
    for (s, (x, a)) in sqn_octets
        .iter_mut()
        .zip(sqn_xor_ak.iter().zip(f.ak.iter()))
    {
        *s = x ^ a;
    }
    let sqn = Sqn::from_octets(*sqn_octets);
    let amf = [autn[6], autn[7]];
    let (xmac, _) = milenage.f1_f1star(rand, &sqn_octets, &amf)?;
    if !bool::from(xmac.ct_eq(&autn[8..])) {
        return Err(AkaFailure::MacFailure.into());
    }
    if let SqnVerdict::Stale { sqn_ms } = window.check(sqn) {
        return Err(AkaFailure::SynchFailure {
            auts: milenage.auts(rand, sqn_ms)?,
        }
        .into());
    }
    if !Amf(amf).separation_bit() {
        return Err(AkaFailure::NotFiveG.into());
    }
    let res_star = kdf::res_star(&f.ck, &f.ik, snn, rand, &*f.res).map_err(AkaFailure::Input)?;
    let kausf = kdf::kausf_5g_aka(&f.ck, &f.ik, snn, &sqn_xor_ak).map_err(AkaFailure::Input)?;
    window
        .accept(sqn)
        .map_err(|_| SeError::Crypto("SQN window refused a SQN it had found fresh".into()))?;
    Ok(UeAka {
        res_star,
        kausf,
        sqn,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use aws_lc_rs::cipher::{AES_128, EncryptingKey, UnboundCipherKey};
    use nido_sec::aka::{AusfChallenge, HeSqn, home_vector};
    use nido_sec::milenage::opc_from_op;
    use nido_sec::{K, Op};
    use serde_json::Value;

    /// A software AES-128 (aws-lc-rs, ECB) as E_K.
    pub(crate) struct SoftAes(EncryptingKey);

    impl SoftAes {
        pub(crate) fn new(k: &[u8; 16]) -> Self {
            Self(EncryptingKey::ecb(UnboundCipherKey::new(&AES_128, k).unwrap()).unwrap())
        }
    }

    impl BlockCipher for SoftAes {
        fn encrypt_block(&self, block: &[u8; 16]) -> Result<Zeroizing<[u8; 16]>, SeError> {
            let mut out = Zeroizing::new(*block);
            self.0
                .encrypt(out.as_mut_slice())
                .map_err(|_| SeError::Crypto("AES".into()))?;
            Ok(out)
        }
    }

    fn vectors() -> Value {
        let dir = std::env::var_os("NIDO_VECTORS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .ancestors()
                    .map(|a| a.join("shared").join("vectors"))
                    .find(|c| c.is_dir())
                    .expect("shared/vectors not found: set NIDO_VECTORS")
            });
        let text = std::fs::read_to_string(dir.join("milenage.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn hex_field<const N: usize>(v: &Value, key: &str) -> [u8; N] {
        let text = v[key].as_str().unwrap_or_else(|| panic!("{key} missing"));
        hex::decode(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn every_milenage_test_set() {
        let file = vectors();
        let sets = file["test_sets"].as_array().unwrap();
        assert_eq!(sets.len() as u64, file["count"].as_u64().unwrap());
        assert!(!sets.is_empty());
        for v in sets {
            let id = v["id"].as_str().unwrap();
            let k: [u8; 16] = hex_field(v, "k");
            let opc: [u8; 16] = hex_field(v, "opc");
            let op: [u8; 16] = hex_field(v, "op");
            assert_eq!(
                opc_from_op(&K::new(k), &Op::new(op)).expose(),
                &opc,
                "{id}: OPc"
            );
            let rand: [u8; 16] = hex_field(v, "rand");
            let sqn: [u8; 6] = hex_field(v, "sqn");
            let amf: [u8; 2] = hex_field(v, "amf");
            let aes = SoftAes::new(&k);
            let m = Milenage::new(&aes, &opc);
            let (mac_a, mac_s) = m.f1_f1star(&rand, &sqn, &amf).unwrap();
            assert_eq!(mac_a, hex_field::<8>(v, "f1_mac_a"), "{id}: f1");
            assert_eq!(mac_s, hex_field::<8>(v, "f1star_mac_s"), "{id}: f1*");
            let f = m.f2345(&rand).unwrap();
            assert_eq!(*f.res, hex_field::<8>(v, "f2_res"), "{id}: f2");
            assert_eq!(f.ck.expose(), &hex_field::<16>(v, "f3_ck"), "{id}: f3");
            assert_eq!(f.ik.expose(), &hex_field::<16>(v, "f4_ik"), "{id}: f4");
            assert_eq!(*f.ak, hex_field::<6>(v, "f5_ak"), "{id}: f5");
            assert_eq!(
                *m.f5star(&rand).unwrap(),
                hex_field::<6>(v, "f5star_ak"),
                "{id}: f5*"
            );
        }
    }

    #[test]
    fn a_flipped_key_bit_changes_every_output() {
        let file = vectors();
        let v = &file["test_sets"][0];
        let mut k: [u8; 16] = hex_field(v, "k");
        k[0] ^= 1;
        let aes = SoftAes::new(&k);
        let m = Milenage::new(&aes, &hex_field(v, "opc"));
        let rand: [u8; 16] = hex_field(v, "rand");
        let (mac_a, _) = m
            .f1_f1star(&rand, &hex_field(v, "sqn"), &hex_field(v, "amf"))
            .unwrap();
        assert_ne!(mac_a, hex_field::<8>(v, "f1_mac_a"));
        assert_ne!(*m.f2345(&rand).unwrap().res, hex_field::<8>(v, "f2_res"));
    }

    #[test]
    fn agrees_with_nido_sec_milenage_and_ue_respond() {
        let snn = b"5G:mnc001.mcc001.3gppnetwork.org";
        for seed in 0u8..8 {
            let k = [seed.wrapping_mul(37) ^ 0x46; 16];
            let opc = [seed.wrapping_mul(11) ^ 0xcd; 16];
            let reference = nido_sec::Milenage::new(&K::new(k), &nido_sec::Opc::new(opc));
            let aes = SoftAes::new(&k);
            let m = Milenage::new(&aes, &opc);
            let rand = [seed; 16];
            let sqn = Sqn::new(u64::from(seed) * 1000 + 33).unwrap();
            let out = reference.outputs(&rand, sqn, Amf::FIVE_G);
            let (mac_a, mac_s) = m.f1_f1star(&rand, &sqn.octets(), &[0x80, 0]).unwrap();
            assert_eq!(mac_a, out.f1_mac_a);
            assert_eq!(mac_s, out.f1star_mac_s);
            let f = m.f2345(&rand).unwrap();
            assert_eq!(*f.res, out.f2_res);
            assert_eq!(f.ck, out.f3_ck);
            assert_eq!(f.ik, out.f4_ik);
            assert_eq!(f.ak.as_slice(), out.f5_ak.expose());
            assert_eq!(m.f5star(&rand).unwrap().as_slice(), out.f5star_ak.expose());
            let sqn_ms = Sqn::new(u64::from(seed) * 64 + 5).unwrap();
            assert_eq!(
                m.auts(&rand, sqn_ms).unwrap(),
                reference.auts(&rand, sqn_ms)
            );

            // The same 5G-AKA answers, window by window.
            let mut he = HeSqn::default();
            let mut w_ref = SqnWindow::default();
            let mut w = SqnWindow::default();
            for round in 0..3u8 {
                let (av, next) =
                    home_vector(&reference, he, [round ^ seed; 16], Amf::FIVE_G, snn).unwrap();
                he = next;
                let challenge = AusfChallenge::new(av);
                let a = nido_sec::aka::ue_respond(
                    &reference,
                    &mut w_ref,
                    &challenge.rand,
                    &challenge.autn,
                    snn,
                )
                .unwrap();
                let b = respond(&m, &mut w, &challenge.rand, &challenge.autn, snn).unwrap();
                assert_eq!(a.res_star, b.res_star);
                assert_eq!(a.kausf, b.kausf);
                assert_eq!(a.sqn, b.sqn);
                assert_eq!(w, w_ref);
                assert!(challenge.seaf_accepts(&b.res_star));
                // A replay: both refuse with the same AUTS and leave the window.
                let ea = nido_sec::aka::ue_respond(
                    &reference,
                    &mut w_ref,
                    &challenge.rand,
                    &challenge.autn,
                    snn,
                )
                .unwrap_err();
                let eb = respond(&m, &mut w, &challenge.rand, &challenge.autn, snn).unwrap_err();
                assert_eq!(SeAkaError::Aka(ea), eb);
                assert_eq!(w, w_ref);
            }

            // A forged MAC-A and a missing separation bit.
            let (av, _) = home_vector(&reference, he, [0xee; 16], Amf::FIVE_G, snn).unwrap();
            let mut autn = av.autn;
            autn[15] ^= 1;
            assert_eq!(
                respond(&m, &mut w, &av.rand, &autn, snn).unwrap_err(),
                SeAkaError::Aka(AkaFailure::MacFailure)
            );
            let (sqn, _) = he.next().unwrap();
            let non5g = reference.vector(&[0xdd; 16], sqn, Amf([0, 0]));
            assert_eq!(
                respond(&m, &mut w, &[0xdd; 16], &non5g.autn, snn).unwrap_err(),
                SeAkaError::Aka(AkaFailure::NotFiveG)
            );
            assert_eq!(w, w_ref, "refusals leave the window");
        }
    }
}
