//! Secret byte strings: zeroized on drop, never printed.
//!
//! Every key nido handles (K, OPc, CK, IK, K_AUSF, K_SEAF, K_AMF, the NAS keys,
//! MSK, EMSK, K_PROV, private keys) lives in one of the types declared here. `Debug`
//! prints `Name([redacted])`, there is no `Display`, comparison is constant
//! time, and the bytes are wiped when the value is dropped.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::SecError;

/// Declares a fixed-length secret type.
macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in octets.
            pub const LEN: usize = $len;

            /// Wraps octets that are already the right length.
            pub fn new(octets: [u8; $len]) -> Self {
                Self(octets)
            }

            /// Copies octets, refusing a wrong length.
            pub fn from_slice(octets: &[u8]) -> Result<Self, SecError> {
                let array: [u8; $len] = octets.try_into().map_err(|_| SecError::Length {
                    what: stringify!($name),
                    expected: $len,
                    got: octets.len(),
                })?;
                Ok(Self(array))
            }

            /// The secret octets. Callers must not log or persist them in clear.
            pub fn expose(&self) -> &[u8; $len] {
                &self.0
            }

            /// A one-way fingerprint, safe to log and compare: the first 8
            /// octets of SHA-256("nido fingerprint" || type name || octets).
            /// Two ends holding the same key show the same fingerprint.
            pub fn fingerprint(&self) -> [u8; 8] {
                let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
                ctx.update(b"nido fingerprint");
                ctx.update(stringify!($name).as_bytes());
                ctx.update(&self.0);
                let digest = ctx.finish();
                let mut out = [0u8; 8];
                out.copy_from_slice(&digest.as_ref()[..8]);
                out
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl Eq for $name {}
    };
}

secret!(
    /// The subscriber key K (TS 33.102 §6.3.7, 128 bits).
    K, 16
);
secret!(
    /// The operator variant algorithm configuration field OP (TS 35.206).
    Op, 16
);
secret!(
    /// OPc, derived from OP and K (TS 35.206 §4.1).
    Opc, 16
);
secret!(
    /// The cipher key CK (TS 33.102).
    Ck, 16
);
secret!(
    /// The integrity key IK (TS 33.102).
    Ik, 16
);
secret!(
    /// The anonymity key AK (f5, TS 35.206).
    Ak, 6
);
secret!(
    /// K_AUSF (TS 33.501 §A.2, or the 256 MSB of EMSK/MSK for EAP methods).
    KAusf, 32
);
secret!(
    /// K_SEAF (TS 33.501 §A.6).
    KSeaf, 32
);
secret!(
    /// K_AMF (TS 33.501 §A.7).
    KAmf, 32
);
secret!(
    /// K_NASint: the 128-bit NAS integrity key (TS 33.501 §A.8).
    KNasInt, 16
);
secret!(
    /// K_NASenc: the 128-bit NAS ciphering key (TS 33.501 §A.8).
    KNasEnc, 16
);
secret!(
    /// K_gNB (TS 33.501 §A.9).
    KGnb, 32
);
secret!(
    /// The EAP Master Session Key (RFC 3748 / RFC 9190: Key_Material[0..64]).
    Msk, 64
);
secret!(
    /// The EAP Extended Master Session Key (RFC 9190: Key_Material[64..128]).
    Emsk, 64
);
secret!(
    /// K_PROV: nido's provisioning key, derived from K_AUSF of the
    /// onboarding EAP-TLS session ([`crate::kdf::kprov`]); the HPKE PSK
    /// (RFC 9180 §5.1.2) that authenticates the credential package.
    KProv, 32
);
secret!(
    /// A 32-octet private scalar (X25519 or P-256), e.g. a home network SUCI key.
    PrivateKey32, 32
);
secret!(
    /// RES* / XRES* (TS 33.501 §A.4): treated as secret until compared.
    ResStar, 16
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let k = K::new([0xab; 16]);
        let text = format!("{k:?}");
        assert_eq!(text, "K([redacted])");
        assert!(!text.to_lowercase().contains("ab"));
    }

    #[test]
    fn wrong_length_names_the_type() {
        let err = KAmf::from_slice(&[0; 31]).unwrap_err();
        assert_eq!(err.to_string(), "KAmf must be 32 octets, got 31");
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Opc::new([1; 16]), Opc::new([1; 16]));
        assert_ne!(Opc::new([1; 16]), Opc::new([2; 16]));
    }
}
