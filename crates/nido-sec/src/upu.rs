//! UE parameters update (UPU) protection (TS 33.501 §6.15, Annex A.19/A.20).
//!
//! The UDM asks the AUSF for UPU-MAC-I_AUSF over the update data and a
//! counter; the UE checks it with its own K_AUSF and acknowledges with
//! UPU-MAC-I_UE. Counter 0 is reserved; the caller keeps counters fresh.

use oxirush_security::nas_5gs as ox;
use subtle::ConstantTimeEq;

use crate::SecError;
use crate::secret::KAusf;

fn ox_kausf(k: &KAusf) -> ox::KAusf {
    ox::KAusf::new(k.expose())
}

fn counter_error() -> SecError {
    SecError::Range {
        what: "UPU counter",
        detail: "0 is reserved".into(),
    }
}

/// UPU-MAC-I_AUSF (A.19, FC 0x7B): protects the UE parameters update data.
pub fn upu_mac_ausf(kausf: &KAusf, upu_data: &[u8], counter: u16) -> Result<[u8; 16], SecError> {
    ox::derive_upu_mac_ausf(&ox_kausf(kausf), upu_data, counter).map_err(|_| counter_error())
}

/// UPU-MAC-I_UE (A.20, FC 0x7C): the UE's acknowledgement.
pub fn upu_mac_ue(kausf: &KAusf, counter: u16) -> Result<[u8; 16], SecError> {
    ox::derive_upu_mac_ue(&ox_kausf(kausf), counter).map_err(|_| counter_error())
}

/// The UE's check of a received UPU-MAC-I_AUSF, in constant time.
pub fn verify_upu_mac_ausf(
    kausf: &KAusf,
    upu_data: &[u8],
    counter: u16,
    mac: &[u8; 16],
) -> Result<(), SecError> {
    let expected = upu_mac_ausf(kausf, upu_data, counter)?;
    if bool::from(expected.ct_eq(mac)) {
        Ok(())
    } else {
        Err(SecError::MacFailure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_verifies_and_detects_change() {
        let k = KAusf::new([7; 32]);
        let mac = upu_mac_ausf(&k, b"update", 1).unwrap();
        assert!(verify_upu_mac_ausf(&k, b"update", 1, &mac).is_ok());
        assert!(verify_upu_mac_ausf(&k, b"updatE", 1, &mac).is_err());
        assert!(verify_upu_mac_ausf(&k, b"update", 2, &mac).is_err());
        assert!(upu_mac_ausf(&k, b"update", 0).is_err());
        assert_ne!(upu_mac_ue(&k, 1).unwrap(), upu_mac_ue(&k, 2).unwrap());
    }
}
