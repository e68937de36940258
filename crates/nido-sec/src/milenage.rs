//! MILENAGE (TS 35.206) and the AKA functions built on it (TS 33.102 §6.3).
//!
//! The arithmetic is oxirush-security's; this module holds K and OPc in nido's
//! zeroizing types, names every output as the vectors do, and adds the SQN
//! freshness policy of TS 33.102 Annex C.2 that a USIM applies before it answers.

use oxirush_security::Rand;
use oxirush_security::milenage as ox;

use crate::SecError;
use crate::secret::{Ak, Ck, Ik, K, Op, Opc};

/// A 48-bit sequence number (TS 33.102 §6.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sqn(u64);

impl Sqn {
    /// The largest SQN: 2^48 - 1.
    pub const MAX: u64 = (1 << 48) - 1;

    /// A SQN from its value, refusing one above 2^48 - 1.
    pub fn new(value: u64) -> Result<Self, SecError> {
        if value > Self::MAX {
            return Err(SecError::Range {
                what: "SQN",
                detail: format!("{value:#x} exceeds 48 bits"),
            });
        }
        Ok(Self(value))
    }

    /// A SQN from its 6 octets, big-endian.
    pub fn from_octets(octets: [u8; 6]) -> Self {
        let mut wide = [0u8; 8];
        wide[2..].copy_from_slice(&octets);
        Self(u64::from_be_bytes(wide))
    }

    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The 6 octets, big-endian.
    pub fn octets(self) -> [u8; 6] {
        let wide = self.0.to_be_bytes();
        let mut out = [0u8; 6];
        out.copy_from_slice(&wide[2..]);
        out
    }

    /// SEQ, the 43 most significant bits (TS 33.102 Annex C.1.1 with IND of 5 bits).
    pub fn seq(self) -> u64 {
        self.0 >> IND_BITS
    }

    /// IND, the 5 least significant bits.
    pub fn ind(self) -> u8 {
        (self.0 & ((1 << IND_BITS) - 1)) as u8
    }

    fn ox(self) -> ox::Sqn {
        ox::Sqn::new(&self.octets())
    }
}

/// Length of IND in bits (TS 33.102 Annex C.3.2 recommends 5).
pub const IND_BITS: u32 = 5;

/// The authentication management field (TS 33.102 Annex F).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Amf(pub [u8; 2]);

impl Amf {
    /// The AMF that 5G-AKA uses: separation bit set, nothing else (TS 33.501 Annex A.1).
    pub const FIVE_G: Self = Self([0x80, 0x00]);

    /// The "AMF separation bit" (bit 0, TS 33.102 Annex H), which 5G requires set.
    pub fn separation_bit(self) -> bool {
        self.0[0] & 0x80 != 0
    }
}

/// Every output of MILENAGE for one (K, OPc, RAND, SQN, AMF), named as the
/// test vectors name them (`shared/vectors/milenage.json`).
#[derive(Clone)]
pub struct MilenageOutputs {
    /// f1: MAC-A.
    pub f1_mac_a: [u8; 8],
    /// f1*: MAC-S.
    pub f1star_mac_s: [u8; 8],
    /// f2: RES.
    pub f2_res: [u8; 8],
    /// f3: CK.
    pub f3_ck: Ck,
    /// f4: IK.
    pub f4_ik: Ik,
    /// f5: AK.
    pub f5_ak: Ak,
    /// f5*: AK for resynchronisation.
    pub f5star_ak: Ak,
    /// AUTN = (SQN xor AK) || AMF || MAC-A.
    pub autn: [u8; 16],
}

impl core::fmt::Debug for MilenageOutputs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MilenageOutputs([redacted])")
    }
}

/// Derives OPc from OP and K (TS 35.206 §4.1: OPc = OP xor E_K(OP)).
pub fn opc_from_op(k: &K, op: &Op) -> Opc {
    let opc = ox::Opc::from_op(&ox::K::new(k.expose()), &ox::Op::new(op.expose()));
    Opc::new(*opc.as_octets())
}

/// A subscriber's MILENAGE instance: K and OPc, as held by the ARPF or the USIM.
pub struct Milenage {
    inner: ox::Milenage,
}

impl core::fmt::Debug for Milenage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Milenage([redacted])")
    }
}

/// What a USIM returns when AUTN verifies (TS 33.102 §6.3.3).
pub struct AutnCheck {
    /// The SQN the network sent (SQN_HE).
    pub sqn: Sqn,
    /// The AMF the network sent.
    pub amf: Amf,
    /// RES.
    pub res: [u8; 8],
    /// CK.
    pub ck: Ck,
    /// IK.
    pub ik: Ik,
}

impl core::fmt::Debug for AutnCheck {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SQN is what AK conceals on the air: not printed.
        f.debug_struct("AutnCheck")
            .field("amf", &self.amf)
            .finish_non_exhaustive()
    }
}

/// An authentication vector of the home environment (TS 33.102 §6.3.2).
pub struct AuthVector {
    /// RAND.
    pub rand: [u8; 16],
    /// XRES.
    pub xres: [u8; 8],
    /// CK.
    pub ck: Ck,
    /// IK.
    pub ik: Ik,
    /// AUTN.
    pub autn: [u8; 16],
}

impl core::fmt::Debug for AuthVector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthVector")
            .field("rand", &hex::encode(self.rand))
            .field("autn", &hex::encode(self.autn))
            .finish_non_exhaustive()
    }
}

impl Milenage {
    /// A subscriber from K and OPc.
    pub fn new(k: &K, opc: &Opc) -> Self {
        Self {
            inner: ox::Milenage::new(&ox::K::new(k.expose()), &ox::Opc::new(opc.expose())),
        }
    }

    /// Every MILENAGE output for one challenge.
    pub fn outputs(&self, rand: &[u8; 16], sqn: Sqn, amf: Amf) -> MilenageOutputs {
        let r = Rand::new(rand);
        let oxa = ox::Amf::new(&amf.0);
        let (res, ck, ik, ak) = self.inner.f2345(&r);
        let mac_a = *self.inner.f1(&r, &sqn.ox(), &oxa).as_octets();
        let ak = *ak.as_octets();
        MilenageOutputs {
            f1_mac_a: mac_a,
            f1star_mac_s: *self.inner.f1_star(&r, &sqn.ox(), &oxa).as_octets(),
            f2_res: *res.as_octets(),
            f3_ck: Ck::new(*ck.as_octets()),
            f4_ik: Ik::new(*ik.as_octets()),
            f5_ak: Ak::new(ak),
            f5star_ak: Ak::new(*self.inner.f5_star(&r).as_octets()),
            autn: build_autn(sqn, &ak, amf, &mac_a),
        }
    }

    /// The home network's authentication vector for (RAND, SQN, AMF).
    pub fn vector(&self, rand: &[u8; 16], sqn: Sqn, amf: Amf) -> AuthVector {
        let av =
            self.inner
                .authentication_vector(&Rand::new(rand), &sqn.ox(), &ox::Amf::new(&amf.0));
        AuthVector {
            rand: *rand,
            xres: *av.xres().as_octets(),
            ck: Ck::new(*av.ck().as_octets()),
            ik: Ik::new(*av.ik().as_octets()),
            autn: *av.autn().as_octets(),
        }
    }

    /// The USIM's check of AUTN: MAC-A verified in constant time. The SQN
    /// freshness decision is separate ([`SqnWindow::check`]).
    pub fn check_autn(&self, rand: &[u8; 16], autn: &[u8; 16]) -> Result<AutnCheck, SecError> {
        let response = self
            .inner
            .check_autn(&Rand::new(rand), &oxirush_security::Autn::new(autn))
            .map_err(|_| SecError::MacFailure)?;
        Ok(AutnCheck {
            sqn: Sqn(response.sqn().get()),
            amf: Amf(*response.amf().as_octets()),
            res: *response.res().as_octets(),
            ck: Ck::new(*response.ck().as_octets()),
            ik: Ik::new(*response.ik().as_octets()),
        })
    }

    /// AUTS = (SQN_MS xor AK*) || MAC-S, the USIM's resynchronisation token
    /// (TS 33.102 §6.3.3, with AMF* = 0x0000 as §6.3.5 requires).
    pub fn auts(&self, rand: &[u8; 16], sqn_ms: Sqn) -> [u8; 14] {
        *self.inner.auts(&Rand::new(rand), &sqn_ms.ox()).as_octets()
    }

    /// The home network's reading of an AUTS: verifies MAC-S and returns SQN_MS
    /// (TS 33.102 §6.3.5).
    pub fn verify_auts(&self, rand: &[u8; 16], auts: &[u8; 14]) -> Result<Sqn, SecError> {
        let sqn = self
            .inner
            .verify_auts(&Rand::new(rand), &ox::Auts::new(auts))
            .map_err(|_| SecError::AutsMacFailure)?;
        Ok(Sqn(sqn.get()))
    }
}

/// AUTN = (SQN xor AK) || AMF || MAC-A (TS 33.102 §6.3.2).
fn build_autn(sqn: Sqn, ak: &[u8; 6], amf: Amf, mac_a: &[u8; 8]) -> [u8; 16] {
    let mut autn = [0u8; 16];
    for (i, (s, a)) in sqn.octets().iter().zip(ak).enumerate() {
        autn[i] = s ^ a;
    }
    autn[6..8].copy_from_slice(&amf.0);
    autn[8..].copy_from_slice(mac_a);
    autn
}

/// The USIM's SQN state: the highest SEQ accepted per IND slot
/// (TS 33.102 Annex C.2.2, array scheme with a limit on the jump Δ).
///
/// The state only moves forward: [`SqnWindow::accept`] is the one mutator,
/// and callers persist the window *before* they answer the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqnWindow {
    seq: [u64; 1 << IND_BITS],
    /// The largest jump forward accepted, Δ (Annex C.2.1; 2^28 recommended).
    pub delta: u64,
}

impl Default for SqnWindow {
    fn default() -> Self {
        Self {
            seq: [0; 1 << IND_BITS],
            delta: 1 << 28,
        }
    }
}

/// Why a USIM refused a SQN: it answers with AUTS (5GMM cause #21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqnVerdict {
    /// Fresh: accept and advance.
    Fresh,
    /// Not fresh (replayed or too far ahead): answer with AUTS for SQN_MS.
    Stale {
        /// The USIM's highest accepted SQN, for the AUTS.
        sqn_ms: Sqn,
    },
}

impl SqnWindow {
    /// A window restored from persisted SEQ values.
    pub fn from_seqs(seq: [u64; 1 << IND_BITS], delta: u64) -> Self {
        Self { seq, delta }
    }

    /// The per-IND SEQ values, for persistence.
    pub fn seqs(&self) -> &[u64; 1 << IND_BITS] {
        &self.seq
    }

    /// SQN_MS: the highest SQN the USIM has accepted (0 before any).
    pub fn sqn_ms(&self) -> Sqn {
        if self.seq.iter().all(|s| *s == 0) {
            return Sqn(0);
        }
        let (ind, seq) = self
            .seq
            .iter()
            .enumerate()
            .max_by_key(|(i, s)| (**s, *i))
            .map(|(i, s)| (i as u64, *s))
            .unwrap_or((0, 0));
        Sqn((seq << IND_BITS) | ind)
    }

    /// Whether `sqn` is fresh: SEQ above the slot's stored SEQ, and not more
    /// than Δ ahead of the highest SEQ (Annex C.2.2).
    pub fn check(&self, sqn: Sqn) -> SqnVerdict {
        let seq = sqn.seq();
        let highest = self.seq.iter().copied().max().unwrap_or(0);
        let slot = self.seq[usize::from(sqn.ind())];
        if seq > slot && seq.saturating_sub(highest) <= self.delta {
            SqnVerdict::Fresh
        } else {
            SqnVerdict::Stale {
                sqn_ms: self.sqn_ms(),
            }
        }
    }

    /// Records a fresh SQN. Refuses a stale one and leaves the state unchanged.
    pub fn accept(&mut self, sqn: Sqn) -> Result<(), SqnVerdict> {
        match self.check(sqn) {
            SqnVerdict::Fresh => {
                self.seq[usize::from(sqn.ind())] = sqn.seq();
                Ok(())
            }
            stale => Err(stale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqn_octets_round_trip() {
        let sqn = Sqn::new(0xff9b_b4d0_b607).unwrap();
        assert_eq!(Sqn::from_octets(sqn.octets()), sqn);
        assert!(Sqn::new(1 << 48).is_err());
    }

    #[test]
    fn window_accepts_fresh_and_refuses_replay() {
        let mut w = SqnWindow::default();
        let s1 = Sqn::new(1 << IND_BITS).unwrap(); // SEQ 1, IND 0
        assert_eq!(w.accept(s1), Ok(()));
        assert_eq!(w.check(s1), SqnVerdict::Stale { sqn_ms: s1 });
        let s2 = Sqn::new((2 << IND_BITS) | 3).unwrap(); // SEQ 2, IND 3
        assert_eq!(w.accept(s2), Ok(()));
        assert_eq!(w.sqn_ms(), s2);
    }

    #[test]
    fn fresh_window_reports_sqn_ms_zero() {
        assert_eq!(SqnWindow::default().sqn_ms(), Sqn::new(0).unwrap());
    }

    #[test]
    fn window_refuses_too_large_a_jump() {
        let w = SqnWindow {
            delta: 10,
            ..SqnWindow::default()
        };
        assert!(matches!(
            w.check(Sqn::new(11 << IND_BITS).unwrap()),
            SqnVerdict::Stale { .. }
        ));
        assert_eq!(
            w.check(Sqn::new(10 << IND_BITS).unwrap()),
            SqnVerdict::Fresh
        );
    }

    #[test]
    fn auts_round_trip_and_tamper() {
        let m = Milenage::new(&K::new([0x46; 16]), &Opc::new([0xcd; 16]));
        let rand = [0x23; 16];
        let sqn_ms = Sqn::new(64).unwrap();
        let auts = m.auts(&rand, sqn_ms);
        assert_eq!(m.verify_auts(&rand, &auts), Ok(sqn_ms));
        let mut bad = auts;
        bad[13] ^= 1;
        assert_eq!(m.verify_auts(&rand, &bad), Err(SecError::AutsMacFailure));
    }
}
