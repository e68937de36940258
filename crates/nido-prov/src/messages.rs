//! The PVS protocol messages, CBOR maps with text keys and a `version` field
//! (version 1). Decoding is strict: one item, no trailing octets, the known
//! version, exact lengths, no unknown or duplicate fields, optional fields
//! absent (not null). Errors name the message and the field.
//!
//! ```text
//! ProvisioningRequest  = { "version": 1, "device_public_key": bstr .size 32,
//!                          "nonce": bstr .size 16, "suci_profiles": [ * ("A" / "B") ],
//!                          ? "claim_hint": tstr, ? "erasure_receipt": ErasureReceipt }
//! ProvisioningResponse = { "version": 1, "status": 0,
//!                          "sealed": { "version": 2, "enc": bstr .size 32, "ciphertext": bstr } }
//!                      / { "version": 1, "status": 1 (rejected) / 2 (retry later), "reason": tstr }
//! Confirmation         = { "version": 1, "package_id": bstr .size 16, "mac": bstr .size 32 }
//! ConfirmationAck      = { "version": 1, "package_id": bstr .size 16 }
//! ```
//!
//! The sealed package carries its own format version (see
//! [`crate::package`]): a `sealed` map without one is a version 1 (HPKE
//! base mode) package, refused with [`ProvError::Version`].

use nido_sec::suci::Profile;

use crate::ProvError;
use crate::cbor::{Item, MapReader};
use crate::package::{SealedPackage, parse_profile, profile_str};

/// The message version this build writes and reads.
pub const MESSAGE_VERSION: u64 = 1;

/// The device asks for a subscription (device → PVS, `POST /prov/v1/request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningRequest {
    /// The X25519 public key the device's secure element generated.
    pub device_public_key: [u8; 32],
    /// Fresh per request; the package is bound to it.
    pub nonce: [u8; 16],
    /// The SUCI protection profiles the device supports, in preference order,
    /// without repetition.
    pub suci_profiles: Vec<Profile>,
    /// A hint at the owner's claim (never the claim code itself).
    pub claim_hint: Option<String>,
    /// The receipt of the factory reset that erased the device's last
    /// package ([`crate::receipt`]): with it, the PVS re-provisions a
    /// subscription the device had confirmed or validated.
    pub erasure_receipt: Option<crate::ErasureReceipt>,
}

impl ProvisioningRequest {
    const WHAT: &'static str = "ProvisioningRequest";

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut map = vec![
            ("version", Item::Uint(MESSAGE_VERSION)),
            ("device_public_key", Item::Bytes(&self.device_public_key)),
            ("nonce", Item::Bytes(&self.nonce)),
            (
                "suci_profiles",
                Item::Array(
                    self.suci_profiles
                        .iter()
                        .map(|p| Item::Text(profile_str(*p)))
                        .collect(),
                ),
            ),
        ];
        if let Some(hint) = &self.claim_hint {
            map.push(("claim_hint", Item::Text(hint)));
        }
        if let Some(receipt) = &self.erasure_receipt {
            map.push(("erasure_receipt", receipt.encode_field()));
        }
        Item::Map(map).to_vec()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        let mut map = MapReader::decode(Self::WHAT, bytes)?;
        map.version(MESSAGE_VERSION)?;
        let device_public_key = map.array::<32>("device_public_key")?;
        let nonce = map.array::<16>("nonce")?;
        let mut suci_profiles = Vec::new();
        for item in map.list("suci_profiles")? {
            let profile = match &item.0 {
                ciborium::Value::Text(t) => parse_profile(t),
                _ => None,
            }
            .ok_or_else(|| ProvError::Invalid {
                what: Self::WHAT,
                field: "suci_profiles".into(),
                reason: "each entry must be \"A\" or \"B\"".into(),
            })?;
            if suci_profiles.contains(&profile) {
                return Err(ProvError::Invalid {
                    what: Self::WHAT,
                    field: "suci_profiles".into(),
                    reason: format!("profile {} repeated", profile_str(profile)),
                });
            }
            suci_profiles.push(profile);
        }
        let claim_hint = map.opt_text("claim_hint")?;
        let erasure_receipt = map
            .opt_map("erasure_receipt", "ProvisioningRequest.erasure_receipt")?
            .map(crate::ErasureReceipt::from_map)
            .transpose()?;
        map.finish()?;
        Ok(Self {
            device_public_key,
            nonce,
            suci_profiles,
            claim_hint,
            erasure_receipt,
        })
    }
}

/// The PVS's answer to a [`ProvisioningRequest`].
///
/// On the wire a `status` (0 provisioned, 1 rejected, 2 retry later) with
/// either the sealed package (status 0) or a reason (1, 2), never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisioningResponse {
    /// Status 0: here is the package, sealed to the device.
    Provisioned(SealedPackage),
    /// Status 1: operator policy refuses this device.
    Rejected {
        /// Human-readable, for logs.
        reason: String,
    },
    /// Status 2: try again later.
    RetryLater {
        /// Human-readable, for logs.
        reason: String,
    },
}

impl ProvisioningResponse {
    const WHAT: &'static str = "ProvisioningResponse";

    /// The wire status code.
    pub fn status(&self) -> u64 {
        match self {
            Self::Provisioned(_) => 0,
            Self::Rejected { .. } => 1,
            Self::RetryLater { .. } => 2,
        }
    }

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut map = vec![
            ("version", Item::Uint(MESSAGE_VERSION)),
            ("status", Item::Uint(self.status())),
        ];
        match self {
            Self::Provisioned(sealed) => map.push(("sealed", sealed.item())),
            Self::Rejected { reason } | Self::RetryLater { reason } => {
                map.push(("reason", Item::Text(reason)));
            }
        }
        Item::Map(map).to_vec()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        let mut map = MapReader::decode(Self::WHAT, bytes)?;
        map.version(MESSAGE_VERSION)?;
        let response = match map.uint("status")? {
            0 => Self::Provisioned(SealedPackage::from_map(map.map("sealed", "sealed")?)?),
            1 => Self::Rejected {
                reason: map.text("reason")?,
            },
            2 => Self::RetryLater {
                reason: map.text("reason")?,
            },
            other => {
                return Err(ProvError::Invalid {
                    what: Self::WHAT,
                    field: "status".into(),
                    reason: format!("unknown status {other}"),
                });
            }
        };
        map.finish()?;
        Ok(response)
    }
}

/// The device confirms it installed the package (device → PVS, `POST /prov/v1/confirm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The package installed.
    pub package_id: [u8; 16],
    /// [`crate::package::confirmation_mac`] of it.
    pub mac: [u8; 32],
}

impl Confirmation {
    const WHAT: &'static str = "Confirmation";

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        Item::Map(vec![
            ("version", Item::Uint(MESSAGE_VERSION)),
            ("package_id", Item::Bytes(&self.package_id)),
            ("mac", Item::Bytes(&self.mac)),
        ])
        .to_vec()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        let mut map = MapReader::decode(Self::WHAT, bytes)?;
        map.version(MESSAGE_VERSION)?;
        let message = Self {
            package_id: map.array::<16>("package_id")?,
            mac: map.array::<32>("mac")?,
        };
        map.finish()?;
        Ok(message)
    }
}

/// The PVS marked the subscription provisioned (PVS → device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationAck {
    /// The package confirmed.
    pub package_id: [u8; 16],
}

impl ConfirmationAck {
    const WHAT: &'static str = "ConfirmationAck";

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        Item::Map(vec![
            ("version", Item::Uint(MESSAGE_VERSION)),
            ("package_id", Item::Bytes(&self.package_id)),
        ])
        .to_vec()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        let mut map = MapReader::decode(Self::WHAT, bytes)?;
        map.version(MESSAGE_VERSION)?;
        let message = Self {
            package_id: map.array::<16>("package_id")?,
        };
        map.finish()?;
        Ok(message)
    }
}
