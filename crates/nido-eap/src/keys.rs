//! What a successful EAP-TLS 1.3 exchange yields (RFC 9190 §2.3).

use nido_sec::kdf::KausfFrom;
use nido_sec::{Emsk, KAusf, Msk, SecError};

/// The EAP-TLS method type code, also the exporter context (RFC 9190 §2.3).
pub const TYPE_CODE: u8 = 13;
/// The exporter label of Key_Material.
pub const LABEL_KEY_MATERIAL: &[u8] = b"EXPORTER_EAP_TLS_Key_Material";
/// The exporter label of Method-Id.
pub const LABEL_METHOD_ID: &[u8] = b"EXPORTER_EAP_TLS_Method-Id";

/// MSK, EMSK, Method-Id and Session-Id of one EAP-TLS 1.3 exchange.
///
/// Key_Material = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material", 0x0D, 128):
/// MSK is its first 64 octets, EMSK the last 64. Method-Id =
/// TLS-Exporter("EXPORTER_EAP_TLS_Method-Id", 0x0D, 64); Session-Id =
/// 0x0D || Method-Id. The 128 octets are exported in one call: a 64-octet
/// export is not a prefix of a 128-octet one.
#[derive(Clone, PartialEq, Eq)]
pub struct EapTlsKeys {
    /// Master Session Key.
    pub msk: Msk,
    /// Extended Master Session Key (K_AUSF is its 256 MSB, TS 33.501 B.2.1.1).
    pub emsk: Emsk,
    /// Method-Id.
    pub method_id: [u8; 64],
}

impl EapTlsKeys {
    /// Session-Id = Type-Code || Method-Id.
    pub fn session_id(&self) -> [u8; 65] {
        let mut s = [0u8; 65];
        s[0] = TYPE_CODE;
        s[1..].copy_from_slice(&self.method_id);
        s
    }

    /// K_AUSF of this session by `rule` ([`KausfFrom::kausf`]): the 256
    /// most significant bits of the EMSK for the network's own DCS (TS
    /// 33.501 B.2.1.1), of the MSK for a DCS behind an AAA server (I.9.2.3).
    /// Both are present here, so neither rule fails.
    pub fn kausf(&self, rule: KausfFrom) -> Result<KAusf, SecError> {
        rule.kausf(&self.msk, Some(&self.emsk))
    }
}

/// Exports the keys through a connection's exporter (client or server:
/// rustls has `export_keying_material` on each connection type).
pub(crate) fn export_from(
    export: impl Fn(&mut [u8], &[u8], Option<&[u8]>) -> Result<(), rustls::Error>,
) -> Result<EapTlsKeys, rustls::Error> {
    let mut material = zeroize::Zeroizing::new([0u8; 128]);
    export(&mut material[..], LABEL_KEY_MATERIAL, Some(&[TYPE_CODE]))?;
    let mut method_id = [0u8; 64];
    export(&mut method_id, LABEL_METHOD_ID, Some(&[TYPE_CODE]))?;
    let mut msk = [0u8; 64];
    let mut emsk = [0u8; 64];
    msk.copy_from_slice(&material[..64]);
    emsk.copy_from_slice(&material[64..]);
    Ok(EapTlsKeys {
        msk: Msk::new(msk),
        emsk: Emsk::new(emsk),
        method_id,
    })
}

impl core::fmt::Debug for EapTlsKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EapTlsKeys")
            .field("msk", &self.msk)
            .field("emsk", &self.emsk)
            .field("session_id", &"[public]")
            .finish()
    }
}
