//! NAS security (TS 24.501 §4.4, TS 33.501 §6.4): a per-UE security context
//! with uplink and downlink NAS COUNTs and replay detection, and a stateless
//! verifier for debugging tools.
//!
//! [`SecurityContext`] wraps oxirush-nas's `NasSecurityContext`, which owns
//! the NAS keys, estimates the COUNT of a received message from its sequence
//! number and never accepts a COUNT twice. nido adds: its own key types, a
//! role (UE or network) so callers never pick a direction by hand, a typed
//! error with the 5GMM reaction, explicit replay classification, and
//! COUNT export/restore for persistence.

use nido_sec::Cause;
use oxirush_nas::nas_5gs::{
    self as nas, Nas5gsMessage, Nas5gsSecurityHeaderType, NasConnection, NasCount, NasError,
    NasSecurityContext,
};
use subtle::ConstantTimeEq;
use thiserror::Error;

use nido_sec::algorithms::{AlgInput, nea, nia};
use nido_sec::{KAmf, KNasEnc, KNasInt};

/// BEARER for NAS on 3GPP access (TS 33.501 §6.4.2.2: the NAS connection identifier).
pub const BEARER_3GPP: u8 = 0x01;

/// Which end of the NAS link a context belongs to: fixes the send and receive directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The UE: sends uplink, receives downlink.
    Ue,
    /// The AMF: sends downlink, receives uplink.
    Network,
}

impl Role {
    fn send(self) -> nas::Direction {
        match self {
            Self::Ue => nas::Direction::Uplink,
            Self::Network => nas::Direction::Downlink,
        }
    }
    fn receive(self) -> nas::Direction {
        match self {
            Self::Ue => nas::Direction::Downlink,
            Self::Network => nas::Direction::Uplink,
        }
    }
}

/// The security header types a sender chooses from (TS 24.501 §9.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Type 1: integrity protected.
    Integrity,
    /// Type 2: integrity protected and ciphered.
    IntegrityCiphered,
    /// Type 3: integrity protected with a new 5G NAS security context (SECURITY MODE COMMAND).
    IntegrityNewContext,
    /// Type 4: integrity protected and ciphered with a new context (SECURITY MODE COMPLETE).
    IntegrityCipheredNewContext,
}

impl Protection {
    fn header(self) -> Nas5gsSecurityHeaderType {
        match self {
            Self::Integrity => Nas5gsSecurityHeaderType::IntegrityProtected,
            Self::IntegrityCiphered => Nas5gsSecurityHeaderType::IntegrityProtectedAndCiphered,
            Self::IntegrityNewContext => {
                Nas5gsSecurityHeaderType::IntegrityProtectedWithNewFiveGNasSecurityContext
            }
            Self::IntegrityCipheredNewContext => {
                Nas5gsSecurityHeaderType::IntegrityProtectedAndCipheredWithNewFiveGNasSecurityContext
            }
        }
    }
}

/// The NAS algorithms a context uses (TS 24.501 §9.11.3.34).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms {
    /// Integrity algorithm: 0 (NIA0, only for emergency), 1, 2 or 3.
    pub nia: u8,
    /// Ciphering algorithm: 0 (NEA0), 1, 2 or 3.
    pub nea: u8,
}

impl Algorithms {
    /// 128-NIA2 with 128-NEA2, nido's preference.
    pub const NIA2_NEA2: Self = Self { nia: 2, nea: 2 };

    fn ox(self) -> Result<(nas::IntegrityAlgorithm, nas::CipheringAlgorithm), NasSecError> {
        let nia = match self.nia {
            0 => nas::IntegrityAlgorithm::NIA0,
            1 => nas::IntegrityAlgorithm::NIA1,
            2 => nas::IntegrityAlgorithm::NIA2,
            3 => nas::IntegrityAlgorithm::NIA3,
            other => {
                return Err(NasSecError::Algorithm(format!(
                    "integrity algorithm {other}"
                )));
            }
        };
        let nea = match self.nea {
            0 => nas::CipheringAlgorithm::NEA0,
            1 => nas::CipheringAlgorithm::NEA1,
            2 => nas::CipheringAlgorithm::NEA2,
            3 => nas::CipheringAlgorithm::NEA3,
            other => {
                return Err(NasSecError::Algorithm(format!(
                    "ciphering algorithm {other}"
                )));
            }
        };
        Ok((nia, nea))
    }
}

/// The next uplink and downlink NAS COUNTs of a context, for persistence.
/// `None` means the direction is exhausted (2^24 COUNTs used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// The next uplink NAS COUNT.
    pub uplink: Option<u32>,
    /// The next downlink NAS COUNT.
    pub downlink: Option<u32>,
}

/// Why a protected NAS message was refused. The receiver's reaction follows
/// TS 24.501 §4.4.4: a message that fails integrity is discarded silently.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NasSecError {
    /// The MAC does not verify: forged, corrupted, or protected under another context.
    #[error("NAS MAC does not verify (discarded, TS 24.501 §4.4.4)")]
    MacFailure,
    /// The same protected PDU was accepted before: a replay (TS 33.501 §6.4.3.2).
    #[error("replayed NAS PDU (sequence number {sequence_number}, already accepted)")]
    Replay {
        /// The sequence number of the replayed PDU.
        sequence_number: u8,
    },
    /// The PDU carries no security header where one is required.
    #[error("NAS PDU is not security protected (security header type 0)")]
    NotProtected,
    /// Every COUNT of a direction was used: a new context (re-authentication) is needed.
    #[error("NAS COUNT exhausted in the {0} direction")]
    CountExhausted(&'static str),
    /// An unsupported or reserved algorithm.
    #[error("unsupported NAS security algorithm: {0}")]
    Algorithm(String),
    /// The message verified but does not decode (its plain octets are kept for the 5GMM STATUS).
    #[error("authentic NAS message refused: {error}")]
    AuthenticButInvalid {
        /// The decoding error.
        error: String,
        /// The deciphered octets, for the answer.
        plain: Vec<u8>,
    },
    /// The PDU is too short or its header malformed.
    #[error("malformed protected NAS PDU: {0}")]
    Malformed(String),
}

impl NasSecError {
    /// The 5GMM cause to answer with in a 5GMM STATUS, where one is answered
    /// at all (a MAC failure or replay is discarded silently: `None`).
    pub fn gmm_cause(&self) -> Option<Cause> {
        match self {
            Self::AuthenticButInvalid { .. } => Some(Cause::INVALID_MANDATORY_INFORMATION),
            Self::Malformed(_) => Some(Cause::PROTOCOL_ERROR_UNSPECIFIED),
            _ => None,
        }
    }
}

/// A verified incoming message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The message: for an initial NAS message carrying its full contents in a
    /// ciphered container (TS 24.501 §4.4.6), the complete message.
    pub message: Nas5gsMessage,
    /// The NAS COUNT it was verified with.
    pub count: u32,
    /// Whether it was ciphered.
    pub ciphered: bool,
}

/// How many accepted PDUs are remembered (as keyed 64-bit fingerprints of the
/// whole PDU) to tell a replay from a forgery. A replay is refused either
/// way, by the MAC and the COUNT; this only names it in logs and audit.
const REPLAY_MEMORY: usize = 16;

/// A 5G NAS security context of one UE (TS 33.501 §6.4), at the UE or at the AMF.
pub struct SecurityContext {
    inner: NasSecurityContext,
    role: Role,
    ngksi: u8,
    algorithms: Algorithms,
    fingerprints: std::hash::RandomState,
    recent: [u64; REPLAY_MEMORY],
    recent_len: usize,
    recent_next: usize,
    kamf_fingerprint: [u8; 8],
}

impl core::fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecurityContext")
            .field("role", &self.role)
            .field("ngksi", &self.ngksi)
            .field("algorithms", &self.algorithms)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

fn ox_kamf(kamf: &KAmf) -> nas::KAmf {
    nas::KAmf::new(kamf.expose())
}

fn map_error(e: NasError, direction: &'static str) -> NasSecError {
    match e {
        NasError::IntegrityCheckFailed => NasSecError::MacFailure,
        NasError::NasCountExhausted => NasSecError::CountExhausted(direction),
        NasError::AuthenticMessageRefused { error, plain } => NasSecError::AuthenticButInvalid {
            error: error.to_string(),
            plain: plain.to_vec(),
        },
        NasError::SecurityRefused(s) => NasSecError::Algorithm(s),
        other => NasSecError::Malformed(other.to_string()),
    }
}

fn direction_name(d: nas::Direction) -> &'static str {
    match d {
        nas::Direction::Uplink => "uplink",
        nas::Direction::Downlink => "downlink",
    }
}

impl SecurityContext {
    /// A fresh context from a new K_AMF (after 5G-AKA or EAP-TLS): both COUNTs at 0.
    pub fn new(
        kamf: &KAmf,
        algorithms: Algorithms,
        ngksi: u8,
        role: Role,
    ) -> Result<Self, NasSecError> {
        let (nia, nea) = algorithms.ox()?;
        let inner = NasSecurityContext::from_fresh_kamf(&ox_kamf(kamf), nia, nea)
            .map_err(|e| map_error(e, "none"))?;
        Ok(Self::wrap(
            inner,
            algorithms,
            ngksi,
            role,
            kamf.fingerprint(),
        ))
    }

    /// A context restored from persisted state: the same K_AMF and the COUNTs
    /// [`Self::counts`] returned. Restoring with lower COUNTs would reuse
    /// keystream (TS 33.501 §6.4.5); the store must persist COUNTs before use.
    pub fn restore(
        kamf: &KAmf,
        algorithms: Algorithms,
        ngksi: u8,
        role: Role,
        counts: Counts,
    ) -> Result<Self, NasSecError> {
        let (nia, nea) = algorithms.ox()?;
        let count = |c: Option<u32>| -> Result<Option<NasCount>, NasSecError> {
            c.map(|v| NasCount::new(v).map_err(|_| NasSecError::CountExhausted("restored")))
                .transpose()
        };
        let inner = NasSecurityContext::restore_from_kamf(
            &ox_kamf(kamf),
            nia,
            nea,
            (count(counts.uplink)?, count(counts.downlink)?),
            (None, None),
        )
        .map_err(|e| map_error(e, "none"))?;
        Ok(Self::wrap(
            inner,
            algorithms,
            ngksi,
            role,
            kamf.fingerprint(),
        ))
    }

    fn wrap(
        inner: NasSecurityContext,
        algorithms: Algorithms,
        ngksi: u8,
        role: Role,
        kamf_fingerprint: [u8; 8],
    ) -> Self {
        Self {
            kamf_fingerprint,
            inner,
            role,
            ngksi,
            algorithms,
            fingerprints: std::hash::RandomState::new(),
            recent: [0; REPLAY_MEMORY],
            recent_len: 0,
            recent_next: 0,
        }
    }

    /// The fingerprint of the K_AMF the context was derived from
    /// ([`KAmf::fingerprint`]): with equal algorithms, equal fingerprints
    /// mean equal K_NASint and K_NASenc.
    pub fn kamf_fingerprint(&self) -> [u8; 8] {
        self.kamf_fingerprint
    }

    /// The key set identifier (ngKSI value, 0-6).
    pub fn ngksi(&self) -> u8 {
        self.ngksi
    }

    /// The algorithms in use.
    pub fn algorithms(&self) -> Algorithms {
        self.algorithms
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The next uplink and downlink COUNTs.
    pub fn counts(&self) -> Counts {
        let get = |d| {
            self.inner
                .nas_count(d, NasConnection::ThreeGpp)
                .map(NasCount::get)
        };
        Counts {
            uplink: get(nas::Direction::Uplink),
            downlink: get(nas::Direction::Downlink),
        }
    }

    /// Protects an outgoing message with the next COUNT of the sending direction.
    pub fn protect(
        &mut self,
        message: &Nas5gsMessage,
        protection: Protection,
    ) -> Result<Vec<u8>, NasSecError> {
        let d = self.role.send();
        self.inner
            .protect(message, protection.header(), d)
            .map_err(|e| map_error(e, direction_name(d)))
    }

    /// Protects an initial NAS message (REGISTRATION REQUEST, SERVICE REQUEST,
    /// CONTROL PLANE SERVICE REQUEST, DEREGISTRATION REQUEST) as TS 24.501
    /// §4.4.6 requires: integrity protected, cleartext IEs outside, the whole
    /// message ciphered in its container. UE only.
    pub fn protect_initial(&mut self, message: &Nas5gsMessage) -> Result<Vec<u8>, NasSecError> {
        if self.role != Role::Ue {
            return Err(NasSecError::Malformed(
                "only a UE sends initial NAS messages".into(),
            ));
        }
        self.inner
            .protect_initial(message)
            .map_err(|e| map_error(e, "uplink"))
    }

    /// Verifies and deciphers an incoming protected PDU. The COUNT advances
    /// only when the MAC verifies; a replayed or forged PDU changes nothing.
    pub fn unprotect(&mut self, pdu: &[u8]) -> Result<Verified, NasSecError> {
        let (sht, _, sn) = split_header(pdu)?;
        if sht == 0 {
            return Err(NasSecError::NotProtected);
        }
        let fingerprint = self.fingerprint(pdu);
        let d = self.role.receive();
        match self.inner.unprotect(pdu, d) {
            Ok(v) => {
                self.remember(fingerprint);
                Ok(Verified {
                    message: v.message,
                    count: v.count.get(),
                    ciphered: matches!(sht, 2 | 4),
                })
            }
            Err(NasError::IntegrityCheckFailed) if self.seen(fingerprint) => {
                Err(NasSecError::Replay {
                    sequence_number: sn,
                })
            }
            Err(e) => {
                if matches!(e, NasError::AuthenticMessageRefused { .. }) {
                    self.remember(fingerprint);
                }
                Err(map_error(e, direction_name(d)))
            }
        }
    }

    fn fingerprint(&self, pdu: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.fingerprints.hash_one(pdu)
    }

    fn remember(&mut self, fingerprint: u64) {
        self.recent[self.recent_next] = fingerprint;
        self.recent_next = (self.recent_next + 1) % REPLAY_MEMORY;
        self.recent_len = (self.recent_len + 1).min(REPLAY_MEMORY);
    }

    fn seen(&self, fingerprint: u64) -> bool {
        self.recent[..self.recent_len].contains(&fingerprint)
    }
}

/// Splits a 5GMM security header: (security header type, MAC, sequence number).
/// A plain message gives type 0 with a zero MAC and SN.
pub fn split_header(pdu: &[u8]) -> Result<(u8, [u8; 4], u8), NasSecError> {
    match pdu {
        [0x7e, sht, rest @ ..] => {
            let sht = sht & 0x0f;
            if sht == 0 {
                return Ok((0, [0; 4], 0));
            }
            if sht > 4 {
                return Err(NasSecError::Malformed(format!(
                    "reserved security header type {sht}"
                )));
            }
            match rest {
                [m0, m1, m2, m3, sn, _, ..] => Ok((sht, [*m0, *m1, *m2, *m3], *sn)),
                _ => Err(NasSecError::Malformed(format!(
                    "{} octets: a protected PDU needs at least 8 (header, MAC, SN, message)",
                    pdu.len()
                ))),
            }
        }
        [0x2e, ..] => Ok((0, [0; 4], 0)),
        [] => Err(NasSecError::Malformed("empty PDU".into())),
        [epd, ..] => Err(NasSecError::Malformed(format!(
            "unknown extended protocol discriminator {epd:#04x}"
        ))),
    }
}

/// Keys and parameters for verifying one protected PDU without a context,
/// as a debugging tool does (`nido nas decode --knas-int ...`).
#[derive(Debug)]
pub struct StatelessKeys {
    /// K_NASint.
    pub knas_int: KNasInt,
    /// K_NASenc, when the PDU is ciphered.
    pub knas_enc: Option<KNasEnc>,
    /// The algorithms.
    pub algorithms: Algorithms,
    /// The full NAS COUNT; `None` takes overflow 0 and the PDU's sequence number.
    pub count: Option<u32>,
    /// DIRECTION: 0 uplink, 1 downlink.
    pub direction: u8,
}

/// Verifies the MAC of a protected PDU at an explicit COUNT and deciphers it,
/// returning the inner plain message octets (TS 24.501 §4.4.3, TS 33.501 §D).
pub fn verify_and_decipher(
    pdu: &[u8],
    keys: &StatelessKeys,
) -> Result<(Vec<u8>, u32), NasSecError> {
    let (sht, mac, sn) = split_header(pdu)?;
    if sht == 0 {
        return Err(NasSecError::NotProtected);
    }
    let count = keys.count.unwrap_or(u32::from(sn));
    if count & 0xff != u32::from(sn) {
        return Err(NasSecError::Malformed(format!(
            "COUNT {count:#x} does not end in the PDU's sequence number {sn:#04x}"
        )));
    }
    let input = |alg: u8| AlgInput {
        alg,
        count,
        bearer: BEARER_3GPP,
        direction: keys.direction,
    };
    let covered = &pdu[6..]; // SN || message
    if keys.algorithms.nia != 0 {
        let expected = nia(
            input(keys.algorithms.nia),
            keys.knas_int.expose(),
            covered,
            covered.len() as u64 * 8,
        )
        .map_err(|e| NasSecError::Algorithm(e.to_string()))?;
        if !bool::from(expected.ct_eq(&mac)) {
            return Err(NasSecError::MacFailure);
        }
    }
    let mut plain = pdu[7..].to_vec();
    if matches!(sht, 2 | 4) && keys.algorithms.nea != 0 {
        let key = keys
            .knas_enc
            .as_ref()
            .ok_or_else(|| NasSecError::Algorithm("ciphered PDU and no K_NASenc given".into()))?;
        let bits = plain.len() as u64 * 8;
        nea(input(keys.algorithms.nea), key.expose(), &mut plain, bits)
            .map_err(|e| NasSecError::Algorithm(e.to_string()))?;
    }
    Ok((plain, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SecurityContext, SecurityContext) {
        let kamf = KAmf::new([0x11; 32]);
        let ue = SecurityContext::new(&kamf, Algorithms::NIA2_NEA2, 0, Role::Ue).unwrap();
        let amf = SecurityContext::new(&kamf, Algorithms::NIA2_NEA2, 0, Role::Network).unwrap();
        (ue, amf)
    }

    fn status() -> Nas5gsMessage {
        Nas5gsMessage::decode(&[0x7e, 0x00, 0x64, 0x16]).unwrap()
    }

    #[test]
    fn round_trip_advances_counts() {
        let (mut ue, mut amf) = pair();
        let pdu = ue
            .protect(&status(), Protection::IntegrityCiphered)
            .unwrap();
        let v = amf.unprotect(&pdu).unwrap();
        assert_eq!((v.message, v.count, v.ciphered), (status(), 0, true));
        assert_eq!(
            amf.counts(),
            Counts {
                uplink: Some(1),
                downlink: Some(0)
            }
        );
        assert_eq!(
            ue.counts(),
            Counts {
                uplink: Some(1),
                downlink: Some(0)
            }
        );
    }

    #[test]
    fn replay_is_named_and_changes_nothing() {
        let (mut ue, mut amf) = pair();
        let pdu = ue.protect(&status(), Protection::Integrity).unwrap();
        amf.unprotect(&pdu).unwrap();
        let before = amf.counts();
        assert!(matches!(
            amf.unprotect(&pdu),
            Err(NasSecError::Replay { sequence_number: 0 })
        ));
        assert_eq!(amf.counts(), before);
    }

    #[test]
    fn a_forgery_reusing_an_accepted_mac_is_not_called_a_replay() {
        let (mut ue, mut amf) = pair();
        let pdu = ue
            .protect(&status(), Protection::IntegrityCiphered)
            .unwrap();
        amf.unprotect(&pdu).unwrap();
        let mut forged = pdu.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0x40;
        assert!(matches!(
            amf.unprotect(&forged),
            Err(NasSecError::MacFailure)
        ));
        assert!(matches!(
            amf.unprotect(&pdu),
            Err(NasSecError::Replay { .. })
        ));
    }

    #[test]
    fn tamper_is_a_mac_failure() {
        let (mut ue, mut amf) = pair();
        let mut pdu = ue
            .protect(&status(), Protection::IntegrityCiphered)
            .unwrap();
        let last = pdu.len() - 1;
        pdu[last] ^= 0x01;
        assert!(matches!(amf.unprotect(&pdu), Err(NasSecError::MacFailure)));
        assert_eq!(amf.counts().uplink, Some(0));
    }

    #[test]
    fn restore_continues_counts() {
        let (mut ue, _) = pair();
        for _ in 0..3 {
            ue.protect(&status(), Protection::Integrity).unwrap();
        }
        let kamf = KAmf::new([0x11; 32]);
        let mut amf = SecurityContext::restore(
            &kamf,
            Algorithms::NIA2_NEA2,
            0,
            Role::Network,
            Counts {
                uplink: Some(3),
                downlink: Some(0),
            },
        )
        .unwrap();
        let pdu = ue.protect(&status(), Protection::Integrity).unwrap();
        assert_eq!(amf.unprotect(&pdu).unwrap().count, 3);
    }

    #[test]
    fn wrong_direction_fails() {
        let (mut ue, _) = pair();
        let kamf = KAmf::new([0x11; 32]);
        let mut other_ue = SecurityContext::new(&kamf, Algorithms::NIA2_NEA2, 0, Role::Ue).unwrap();
        let pdu = ue.protect(&status(), Protection::Integrity).unwrap();
        assert!(matches!(
            other_ue.unprotect(&pdu),
            Err(NasSecError::MacFailure)
        ));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(split_header(&[]), Err(NasSecError::Malformed(_))));
        assert!(matches!(
            split_header(&[0x7e, 0x02, 0, 0]),
            Err(NasSecError::Malformed(_))
        ));
        assert!(matches!(
            split_header(&[0x7e, 0x07, 0, 0, 0, 0, 0, 0]),
            Err(NasSecError::Malformed(_))
        ));
        assert_eq!(split_header(&[0x7e, 0x00, 0x43]).unwrap().0, 0);
    }
}
