//! An off-path injector (issue #17, findings 4-6): an attacker who is not
//! on the path between a device and the network, but knows connection ids
//! (they travel in clear; it captured some earlier) and can send uplink
//! PDUs naming them, from its own address. It sees nothing live and holds
//! no key: everything it sends is plain or junk.
//!
//! It only makes octets, so the same attacks run in the simulator
//! ([`crate::Fleet::inject`]) and over UDP from a second socket (the
//! access driver's tests wrap the PDUs in datagrams).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use nido_nas::build::{self, GmmCause};

/// The 5GMM message types the injector sends (TS 24.501 §9.7).
const REGISTRATION_REQUEST: u8 = 0x41;

/// A seeded off-path attacker.
#[derive(Debug, Clone)]
pub struct Injector {
    rng: Xoshiro256PlusPlus,
}

impl Injector {
    /// An injector whose random choices follow `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// A connection id nobody uses (random, 64 bits).
    pub fn random_conn(&mut self) -> u64 {
        self.rng.random()
    }

    /// Junk: 1 to 64 random octets. About one in 256 starts like a 5GMM
    /// PDU (0x7e); almost none decodes.
    pub fn junk(&mut self) -> Vec<u8> {
        let len = self.rng.random_range(1..=64usize);
        (0..len).map(|_| self.rng.random()).collect()
    }

    /// A plain REGISTRATION REQUEST that differs from any a device sent:
    /// initial registration (type 001) with a SUCI of the simulator's
    /// network (999-99, profile A, home network key 1) whose scheme output
    /// is random: the SIDF spends an ECDH on it and it does not
    /// de-conceal. On a connection with a procedure running it replaces the
    /// procedure (TS 24.501 §5.5.1.2.8 c); on one with a secure exchange
    /// the network must ignore it (§4.4.4.3). `None` if the builder refuses
    /// (it does not for these inputs).
    pub fn registration_request(&mut self) -> Option<Vec<u8>> {
        // Ephemeral key (32), MSIN ciphertext (5), MAC tag (8).
        let scheme_output = (0..45).map(|_| self.rng.random::<u8>()).collect();
        let suci = build::ImsiSuciParts {
            mcc: "999".into(),
            mnc: "99".into(),
            routing_indicator: "0".into(),
            protection_scheme_id: 1,
            home_network_public_key_id: 1,
            scheme_output,
        };
        build::registration_request_initial(&suci, false)
            .ok()?
            .encode()
            .ok()
    }

    /// A captured plain REGISTRATION REQUEST made to differ from the
    /// original in one field the network does not check, the ngKSI
    /// (`variant` 0 leaves it unchanged, 1 flips it): replaying variants
    /// in turn makes each one "a different request" to the network, with
    /// the captured SUCI inside (finding 5's replay). `None` if `captured`
    /// is no plain REGISTRATION REQUEST.
    pub fn vary_registration_request(captured: &[u8], variant: u8) -> Option<Vec<u8>> {
        match captured {
            [0x7e, 0x00, REGISTRATION_REQUEST, ..] if captured.len() > 4 => {
                let mut pdu = captured.to_vec();
                pdu[3] ^= (variant & 1) << 4;
                Some(pdu)
            }
            _ => None,
        }
    }

    /// A plain SECURITY MODE REJECT with cause #24 (security mode rejected,
    /// unspecified): a device's answer to a command it refuses (TS 24.501
    /// §5.4.2.5).
    pub fn security_mode_reject() -> Option<Vec<u8>> {
        build::security_mode_reject(GmmCause::SecurityModeRejectedUnspecified)
            .ok()?
            .encode()
            .ok()
    }

    /// A plain AUTHENTICATION FAILURE with cause #20 (MAC failure): a
    /// device's claim that the network's challenge is not genuine
    /// (TS 24.501 §5.4.1.3.5).
    pub fn authentication_failure() -> Option<Vec<u8>> {
        build::authentication_failure_mac_failure().encode().ok()
    }

    /// A PDU with a security header (type `sht`, 1 to 4) and a MAC the
    /// attacker made up: what a forged "protected" message looks like.
    pub fn forged_protected(&mut self, sht: u8, inner: &[u8]) -> Vec<u8> {
        let mut pdu = vec![0x7e, sht & 0x0f];
        pdu.extend((0..5).map(|_| self.rng.random::<u8>()));
        pdu.extend_from_slice(inner);
        pdu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_pdus_are_what_it_says() {
        let mut i = Injector::new(1);
        let request = i.registration_request().expect("a request");
        let inbound = nido_nas::decode(&request)
            .map_err(|e| e.to_string())
            .and_then(|m| nido_nas::view::Inbound::read(&m).map_err(|e| e.to_string()))
            .expect("decodes");
        assert_eq!(inbound.name(), "RegistrationRequest");
        assert_ne!(i.registration_request(), Some(request.clone()));
        let varied = Injector::vary_registration_request(&request, 1).expect("varies");
        assert_ne!(varied, request);
        assert_eq!(
            Injector::vary_registration_request(&request, 0),
            Some(request)
        );
        assert!(Injector::security_mode_reject().is_some());
        assert!(Injector::authentication_failure().is_some());
        assert_eq!(i.forged_protected(2, &[1, 2])[1], 2);
    }
}
