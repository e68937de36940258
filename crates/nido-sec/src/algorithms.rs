//! NEA (ciphering) and NIA (integrity) algorithms 1, 2, 3 (TS 33.501 Annex D:
//! SNOW 3G, AES, ZUC) over bit strings of any length, as the conformance
//! vectors and `nido crypto nea|nia` use them.
//!
//! The implementations are oxirush-security's (constant-time AES-NI/SIMD where
//! the CPU has them). NAS messages use [`crate`]'s callers in nido-nas, which
//! go through oxirush-nas's security context instead.

use oxirush_security::{Bearer, CipheringAlgorithm, Direction, IntegrityAlgorithm};

use crate::SecError;

/// The inputs every NEA/NIA call shares (TS 33.501 D.2.1 / D.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgInput {
    /// Algorithm identifier: 1 (SNOW 3G), 2 (AES), 3 (ZUC).
    pub alg: u8,
    /// COUNT (32 bits).
    pub count: u32,
    /// BEARER (5 bits).
    pub bearer: u8,
    /// DIRECTION: 0 uplink, 1 downlink.
    pub direction: u8,
}

impl AlgInput {
    fn check(&self) -> Result<(Bearer, Direction), SecError> {
        let bearer = Bearer::new(self.bearer).map_err(|_| SecError::Range {
            what: "BEARER",
            detail: format!("{} does not fit 5 bits", self.bearer),
        })?;
        let direction = Direction::try_from(self.direction).map_err(|_| SecError::Range {
            what: "DIRECTION",
            detail: format!("{} is neither 0 (uplink) nor 1 (downlink)", self.direction),
        })?;
        if !(1..=3).contains(&self.alg) {
            return Err(SecError::Range {
                what: "algorithm",
                detail: format!("{} is not 1, 2 or 3", self.alg),
            });
        }
        Ok((bearer, direction))
    }
}

fn check_bits(data: &[u8], length_bits: u64) -> Result<(), SecError> {
    let need = length_bits.div_ceil(8);
    if need != data.len() as u64 {
        return Err(SecError::Range {
            what: "length-bits",
            detail: format!(
                "{length_bits} bits need {need} octets of data, got {}",
                data.len()
            ),
        });
    }
    Ok(())
}

/// NEA: ciphers or deciphers the first `length_bits` bits of `data` in place.
/// Bits past `length_bits` in the last octet are left as they were.
pub fn nea(
    input: AlgInput,
    key: &[u8; 16],
    data: &mut [u8],
    length_bits: u64,
) -> Result<(), SecError> {
    let (bearer, direction) = input.check()?;
    check_bits(data, length_bits)?;
    let alg =
        CipheringAlgorithm::try_from(input.alg).map_err(|_| SecError::Backend("algorithm"))?;
    let key = oxirush_security::nas_5gs::KNasEnc::new(key);
    oxirush_security::nea_cipher_bits(&key, input.count, bearer, direction, data, length_bits, alg)
        .map_err(|_| SecError::Backend("nea"))
}

/// NIA: the 32-bit MAC over the first `length_bits` bits of `message`.
pub fn nia(
    input: AlgInput,
    key: &[u8; 16],
    message: &[u8],
    length_bits: u64,
) -> Result<[u8; 4], SecError> {
    let (bearer, direction) = input.check()?;
    check_bits(message, length_bits)?;
    let alg =
        IntegrityAlgorithm::try_from(input.alg).map_err(|_| SecError::Backend("algorithm"))?;
    let key = oxirush_security::nas_5gs::KNasInt::new(key);
    oxirush_security::nia_mac_bits(
        &key,
        input.count,
        bearer,
        direction,
        message,
        length_bits,
        alg,
    )
    .map(u32::to_be_bytes)
    .map_err(|_| SecError::Backend("nia"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_inputs() {
        let ok = AlgInput {
            alg: 2,
            count: 0,
            bearer: 1,
            direction: 0,
        };
        let mut d = [0u8; 2];
        assert!(nea(AlgInput { alg: 4, ..ok }, &[0; 16], &mut d, 16).is_err());
        assert!(nea(AlgInput { bearer: 32, ..ok }, &[0; 16], &mut d, 16).is_err());
        assert!(nea(AlgInput { direction: 2, ..ok }, &[0; 16], &mut d, 16).is_err());
        assert!(nea(ok, &[0; 16], &mut d, 17).is_err());
        assert!(nia(ok, &[0; 16], &d, 17).is_err());
        assert!(nea(ok, &[0; 16], &mut d, 9).is_ok());
    }
}
