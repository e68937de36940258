//! The credential package, its HPKE sealing to the device key (sealed
//! format version 2), authenticated by the network, the public/secret split
//! and the confirmation MAC.
//!
//! # Content (CBOR, content version 1)
//!
//! The plaintext's format is unchanged since the first release, so its
//! `version` stays 1 ([`CONTENT_VERSION`]): secure elements keep this
//! encoding at rest (`FileSe`'s vault, `Pkcs11Se`'s token), and a device
//! upgraded in the field must still read what it stored.
//!
//! A map with text keys, closed (unknown keys are refused), optional fields
//! absent rather than null:
//!
//! ```text
//! { "version": 1, "package_id": bstr .size 16, "supi": tstr ("imsi-…" / "nai-…"),
//!   "k": bstr .size 16, "opc": bstr .size 16, "amf": bstr .size 2,
//!   "home_network_key": { "profile": "A" / "B", "key_id": uint .le 255,
//!                         "public_key": bstr (A: 32; B: 33 or 65, SEC1) },
//!   "routing_indicator": tstr (1..4 digits),
//!   "serving_network": { "mcc": tstr, "mnc": tstr, ? "nid": tstr, "snn": tstr },
//!   "third_party": [ * credential ], "not_after_unix": uint, ? "owner": tstr }
//! credential = { "type": "lwm2m", "server_uri", "psk_identity": tstr, "psk": bstr }
//!            / { "type": "mqtt", "broker_uri", "client_id", "client_cert_pem", "client_key_pem": tstr }
//!            / { "type": "other", "kind": tstr, "fields": { * tstr => tstr } }
//! ```
//!
//! `snn` must equal the TS 33.501 serving network name of (MCC, MNC, NID).
//!
//! # Sealing
//!
//! RFC 9180 **PSK mode** (`mode_psk`, §5.1.2), DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-128-GCM, single shot, empty AAD.
//!
//! - `psk` = K_PROV ([`nido_sec::kdf::kprov`]): KDF(K_AUSF, 0xF0, "nido-prov")
//!   over the K_AUSF of the onboarding EAP-TLS session (TS 33.501 B.2.1.1),
//!   which only the device and the network whose DCS completed EAP-TLS with
//!   it hold; `psk_id` = [`PSK_ID`], naming that derivation.
//! - `info` = `"nido-prov/2 package"` ‖ u16be(len(identity)) ‖ identity ‖
//!   nonce(16): the device identity the network authenticated and the nonce
//!   of that request.
//!
//! Base mode (format version 1) only made the package confidential: anyone
//! who saw the provisioning request (device key, nonce) and knew the serial
//! could seal a package the device opened, so a fake base station could
//! hand the device its own subscription. In PSK mode the key schedule mixes
//! K_PROV into every key, so a package opens only if its sender held the
//! K_AUSF of this device's EAP-TLS session: it is authenticated by the
//! network, not only confidential.
//!
//! The sealed package map carries `"version": 2` ([`PACKAGE_VERSION`]); a
//! map without it is a version 1 (base mode) package and is refused with
//! [`ProvError::Version`], as is any other version, before anything is
//! opened.

use std::collections::BTreeMap;

use crate::hpke::{self, HpkeError};
use aws_lc_rs::hmac;
use nido_sec::suci::{HomeNetworkPublicKey, Profile};
use nido_sec::{K, KProv, Opc, PrivateKey32, Supi};
use zeroize::Zeroizing;

use crate::ProvError;
use crate::cbor::{Item, MapReader, Wiped};

/// The sealed package format version this build writes and reads (2:
/// sealed in HPKE PSK mode under K_PROV; 1 was base mode and is refused).
pub const PACKAGE_VERSION: u64 = 2;
/// The version of the plaintext CBOR map (unchanged: what secure elements
/// keep at rest still reads).
pub const CONTENT_VERSION: u64 = 1;
/// The domain-separation prefix of the HPKE `info`.
pub const INFO_LABEL: &[u8] = b"nido-prov/2 package";
/// The HPKE `psk_id` (RFC 9180 §5.1): names the PSK's derivation, K_PROV
/// from the onboarding EAP-TLS session's K_AUSF (TS 33.220 B.2.0 KDF,
/// nido's FC 0xF0, P0 "nido-prov").
pub const PSK_ID: &[u8] = b"nido-prov/2 K_PROV=KDF(K_AUSF,0xF0,nido-prov)";
/// The version of a sealed package map that has no `version` field.
const SEALED_VERSION_UNMARKED: u64 = 1;
/// The HKDF salt and info of the confirmation key.
pub const CONFIRM_LABEL: &[u8] = b"nido-prov/1 confirm";
/// Octets of the HPKE encapsulated key (an X25519 public key).
pub const ENC_LEN: usize = 32;

const WHAT: &str = "credential package";

/// The serving network the subscription belongs to (a PLMN, or an SNPN when
/// `nid` is present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNetwork {
    /// Mobile country code, 3 digits.
    pub mcc: String,
    /// Mobile network code, 2 or 3 digits.
    pub mnc: String,
    /// SNPN network identifier, 11 hex digits.
    pub nid: Option<String>,
    /// The serving network name (TS 33.501 §6.1.1.4), e.g. `5G:mnc001.mcc001.3gppnetwork.org`.
    pub snn: String,
}

impl ServingNetwork {
    /// Builds one, computing the serving network name (and so checking the digits).
    pub fn new(mcc: &str, mnc: &str, nid: Option<&str>) -> Result<Self, ProvError> {
        let snn =
            nido_sec::kdf::serving_network_name(mcc, mnc, nid).map_err(|e| ProvError::Invalid {
                what: "serving_network",
                field: "mcc/mnc/nid".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            mcc: mcc.into(),
            mnc: mnc.into(),
            nid: nid.map(Into::into),
            snn,
        })
    }

    fn check(&self) -> Result<(), ProvError> {
        let expected = Self::new(&self.mcc, &self.mnc, self.nid.as_deref())?;
        if expected.snn != self.snn {
            return Err(ProvError::Invalid {
                what: "serving_network",
                field: "snn".into(),
                reason: format!(
                    "{:?} is not the name of MCC/MNC/NID ({:?})",
                    self.snn, expected.snn
                ),
            });
        }
        Ok(())
    }
}

/// A credential the owner's application uses, delivered with the subscription.
/// Secret fields are zeroized on drop and redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum ThirdPartyCredential {
    /// An LwM2M server with a pre-shared key (DTLS PSK).
    Lwm2m {
        /// e.g. `coaps://lwm2m.example:5684`.
        server_uri: String,
        /// The PSK identity.
        psk_identity: String,
        /// The pre-shared key (secret).
        psk: Zeroizing<Vec<u8>>,
    },
    /// An MQTT broker with a client certificate.
    Mqtt {
        /// e.g. `mqtts://broker.example:8883`.
        broker_uri: String,
        /// The MQTT client identifier.
        client_id: String,
        /// The client certificate chain, PEM.
        client_cert_pem: String,
        /// The client private key, PEM (secret).
        client_key_pem: Zeroizing<String>,
    },
    /// Anything else: a kind and string fields. Values are treated as secret.
    Other {
        /// What it is, e.g. `"http-bearer"`.
        kind: String,
        /// Its fields.
        fields: BTreeMap<String, Zeroizing<String>>,
    },
}

impl core::fmt::Debug for ThirdPartyCredential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Lwm2m {
                server_uri,
                psk_identity,
                psk: _,
            } => f
                .debug_struct("Lwm2m")
                .field("server_uri", server_uri)
                .field("psk_identity", psk_identity)
                .field("psk", &"[redacted]")
                .finish(),
            Self::Mqtt {
                broker_uri,
                client_id,
                client_cert_pem,
                client_key_pem: _,
            } => f
                .debug_struct("Mqtt")
                .field("broker_uri", broker_uri)
                .field("client_id", client_id)
                .field(
                    "client_cert_pem",
                    &format_args!("[{} octets]", client_cert_pem.len()),
                )
                .field("client_key_pem", &"[redacted]")
                .finish(),
            Self::Other { kind, fields } => f
                .debug_struct("Other")
                .field("kind", kind)
                .field(
                    "fields",
                    &fields
                        .keys()
                        .map(|k| (k, "[redacted]"))
                        .collect::<BTreeMap<_, _>>(),
                )
                .finish(),
        }
    }
}

impl ThirdPartyCredential {
    fn item(&self) -> Item<'_> {
        match self {
            Self::Lwm2m {
                server_uri,
                psk_identity,
                psk,
            } => Item::Map(vec![
                ("type", Item::Text("lwm2m")),
                ("server_uri", Item::Text(server_uri)),
                ("psk_identity", Item::Text(psk_identity)),
                ("psk", Item::Bytes(psk)),
            ]),
            Self::Mqtt {
                broker_uri,
                client_id,
                client_cert_pem,
                client_key_pem,
            } => Item::Map(vec![
                ("type", Item::Text("mqtt")),
                ("broker_uri", Item::Text(broker_uri)),
                ("client_id", Item::Text(client_id)),
                ("client_cert_pem", Item::Text(client_cert_pem)),
                ("client_key_pem", Item::Text(client_key_pem)),
            ]),
            Self::Other { kind, fields } => Item::Map(vec![
                ("type", Item::Text("other")),
                ("kind", Item::Text(kind)),
                (
                    "fields",
                    Item::Map(
                        fields
                            .iter()
                            .map(|(k, v)| (k.as_str(), Item::Text(v)))
                            .collect(),
                    ),
                ),
            ]),
        }
    }

    fn from_value(mut value: Wiped) -> Result<Self, ProvError> {
        let mut map = MapReader::new(
            "third_party",
            core::mem::replace(&mut value.0, ciborium::Value::Null),
        )?;
        let kind = map.text("type")?;
        let credential = match kind.as_str() {
            "lwm2m" => Self::Lwm2m {
                server_uri: map.text("server_uri")?,
                psk_identity: map.text("psk_identity")?,
                psk: Zeroizing::new(map.bytes("psk")?),
            },
            "mqtt" => Self::Mqtt {
                broker_uri: map.text("broker_uri")?,
                client_id: map.text("client_id")?,
                client_cert_pem: map.text("client_cert_pem")?,
                client_key_pem: Zeroizing::new(map.text("client_key_pem")?),
            },
            "other" => {
                let kind = map.text("kind")?;
                let mut fields_map = map.map("fields", "third_party.fields")?;
                let fields = fields_map
                    .drain_text()?
                    .into_iter()
                    .map(|(k, v)| (k, Zeroizing::new(v)))
                    .collect();
                Self::Other { kind, fields }
            }
            other => {
                return Err(ProvError::Invalid {
                    what: "third_party",
                    field: "type".into(),
                    reason: format!("unknown credential type {other:?}"),
                });
            }
        };
        map.finish()?;
        Ok(credential)
    }
}

/// What the network provisions into the device: a subscription (SUPI, K,
/// OPc, AMF), what the UE needs to conceal the SUPI and pick the network, and
/// the owner's credentials.
///
/// `Debug` redacts K, OPc and third-party secrets; secrets are zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialPackage {
    /// Unique per package; the confirmation MACs it.
    pub package_id: [u8; 16],
    /// The subscription permanent identifier.
    pub supi: Supi,
    /// The subscriber key.
    pub k: K,
    /// OPc.
    pub opc: Opc,
    /// The authentication management field the network uses.
    pub amf: [u8; 2],
    /// The home network public key for SUCI (profile A or B, with its id).
    pub home_network_key: HomeNetworkPublicKey,
    /// The routing indicator (1 to 4 digits) the SUCI carries.
    pub routing_indicator: String,
    /// The network the subscription is for.
    pub serving_network: ServingNetwork,
    /// The owner's third-party credentials.
    pub third_party: Vec<ThirdPartyCredential>,
    /// The package must be used (opened and confirmed) before this time.
    pub not_after_unix: u64,
    /// The owner that claimed the device, if any.
    pub owner: Option<String>,
}

/// The public part of a package: everything except K and OPc. A secure
/// element keeps [`PackageSecrets`] and hands this out. (Third-party
/// credentials stay here: the application that uses them needs them.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPart {
    /// See [`CredentialPackage::package_id`].
    pub package_id: [u8; 16],
    /// See [`CredentialPackage::supi`].
    pub supi: Supi,
    /// See [`CredentialPackage::amf`].
    pub amf: [u8; 2],
    /// See [`CredentialPackage::home_network_key`].
    pub home_network_key: HomeNetworkPublicKey,
    /// See [`CredentialPackage::routing_indicator`].
    pub routing_indicator: String,
    /// See [`CredentialPackage::serving_network`].
    pub serving_network: ServingNetwork,
    /// See [`CredentialPackage::third_party`].
    pub third_party: Vec<ThirdPartyCredential>,
    /// See [`CredentialPackage::not_after_unix`].
    pub not_after_unix: u64,
    /// See [`CredentialPackage::owner`].
    pub owner: Option<String>,
}

/// K and OPc: what never leaves a secure element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSecrets {
    /// The subscriber key.
    pub k: K,
    /// OPc.
    pub opc: Opc,
}

impl PackageSecrets {
    /// The confirmation MAC over `package_id` (see [`confirmation_mac`]).
    pub fn confirmation_mac(&self, package_id: &[u8; 16]) -> [u8; 32] {
        confirmation_mac_with(&self.k, &self.opc, package_id)
    }
}

impl core::fmt::Debug for CredentialPackage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CredentialPackage")
            .field("package_id", &hex::encode(self.package_id))
            .field("supi", &self.supi)
            .field("k", &self.k)
            .field("opc", &self.opc)
            .field("amf", &hex::encode(self.amf))
            .field("home_network_key", &self.home_network_key)
            .field("routing_indicator", &self.routing_indicator)
            .field("serving_network", &self.serving_network)
            .field("third_party", &self.third_party)
            .field("not_after_unix", &self.not_after_unix)
            .field("owner", &self.owner)
            .finish()
    }
}

fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::A => "A",
        Profile::B => "B",
    }
}

/// Parses a SUCI profile name, `"A"` or `"B"`.
pub fn parse_profile(name: &str) -> Option<Profile> {
    match name {
        "A" => Some(Profile::A),
        "B" => Some(Profile::B),
        _ => None,
    }
}

/// The wire name of a SUCI profile, `"A"` or `"B"`.
pub fn profile_str(profile: Profile) -> &'static str {
    profile_name(profile)
}

fn check_home_network_key(key: &HomeNetworkPublicKey) -> Result<(), ProvError> {
    let n = key.octets.len();
    let ok = match key.profile {
        Profile::A => n == 32,
        Profile::B => {
            matches!(
                (n, key.octets.first()),
                (33, Some(0x02 | 0x03)) | (65, Some(0x04))
            )
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ProvError::Invalid {
            what: "home_network_key",
            field: "public_key".into(),
            reason: format!(
                "{n} octets is not a profile {} public key",
                profile_name(key.profile)
            ),
        })
    }
}

fn check_routing_indicator(ri: &str) -> Result<(), ProvError> {
    if (1..=4).contains(&ri.len()) && ri.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ProvError::Invalid {
            what: WHAT,
            field: "routing_indicator".into(),
            reason: format!("{ri:?} is not 1 to 4 digits"),
        })
    }
}

impl CredentialPackage {
    /// Checks what the types do not: the home network key length for its
    /// profile, the routing indicator digits, the serving network name.
    pub fn validate(&self) -> Result<(), ProvError> {
        check_home_network_key(&self.home_network_key)?;
        check_routing_indicator(&self.routing_indicator)?;
        self.serving_network.check()
    }

    /// `Err(Expired)` once `now_unix` is past `not_after_unix`.
    pub fn check_validity(&self, now_unix: u64) -> Result<(), ProvError> {
        if now_unix > self.not_after_unix {
            return Err(ProvError::Expired {
                not_after_unix: self.not_after_unix,
                now_unix,
            });
        }
        Ok(())
    }

    /// The CBOR encoding, content version 1 (validated first). Contains K and
    /// OPc in clear.
    pub fn to_cbor(&self) -> Result<Zeroizing<Vec<u8>>, ProvError> {
        self.validate()?;
        let supi = Zeroizing::new(self.supi.to_string());
        let sn = &self.serving_network;
        let mut sn_map = vec![("mcc", Item::Text(&sn.mcc)), ("mnc", Item::Text(&sn.mnc))];
        if let Some(nid) = &sn.nid {
            sn_map.push(("nid", Item::Text(nid)));
        }
        sn_map.push(("snn", Item::Text(&sn.snn)));
        let mut map = vec![
            ("version", Item::Uint(CONTENT_VERSION)),
            ("package_id", Item::Bytes(&self.package_id)),
            ("supi", Item::Text(&supi)),
            ("k", Item::Bytes(self.k.expose())),
            ("opc", Item::Bytes(self.opc.expose())),
            ("amf", Item::Bytes(&self.amf)),
            (
                "home_network_key",
                Item::Map(vec![
                    (
                        "profile",
                        Item::Text(profile_name(self.home_network_key.profile)),
                    ),
                    ("key_id", Item::Uint(self.home_network_key.key_id.into())),
                    ("public_key", Item::Bytes(&self.home_network_key.octets)),
                ]),
            ),
            ("routing_indicator", Item::Text(&self.routing_indicator)),
            ("serving_network", Item::Map(sn_map)),
            (
                "third_party",
                Item::Array(
                    self.third_party
                        .iter()
                        .map(ThirdPartyCredential::item)
                        .collect(),
                ),
            ),
            ("not_after_unix", Item::Uint(self.not_after_unix)),
        ];
        if let Some(owner) = &self.owner {
            map.push(("owner", Item::Text(owner)));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(1024));
        Item::Map(map).encode_into(&mut out);
        Ok(out)
    }

    /// Decodes and validates a content version 1 encoding (any other
    /// version is [`ProvError::Version`]).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, ProvError> {
        let mut map = MapReader::decode(WHAT, bytes)?;
        map.version(CONTENT_VERSION)?;
        let package_id = map.array::<16>("package_id")?;
        let supi_text = Zeroizing::new(map.text("supi")?);
        let supi = Supi::parse(&supi_text).map_err(|e| ProvError::Invalid {
            what: WHAT,
            field: "supi".into(),
            reason: e.to_string(),
        })?;
        let k = K::new(*Zeroizing::new(map.array::<16>("k")?));
        let opc = Opc::new(*Zeroizing::new(map.array::<16>("opc")?));
        let amf = map.array::<2>("amf")?;

        let mut hn = map.map("home_network_key", "home_network_key")?;
        let profile_text = hn.text("profile")?;
        let profile = parse_profile(&profile_text).ok_or_else(|| ProvError::Invalid {
            what: hn.what(),
            field: "profile".into(),
            reason: format!("{profile_text:?} is not \"A\" or \"B\""),
        })?;
        let home_network_key = HomeNetworkPublicKey {
            key_id: hn.u8("key_id")?,
            profile,
            octets: hn.bytes("public_key")?,
        };
        hn.finish()?;

        let routing_indicator = map.text("routing_indicator")?;

        let mut sn = map.map("serving_network", "serving_network")?;
        let serving_network = ServingNetwork {
            mcc: sn.text("mcc")?,
            mnc: sn.text("mnc")?,
            nid: sn.opt_text("nid")?,
            snn: sn.text("snn")?,
        };
        sn.finish()?;

        let third_party = map
            .list("third_party")?
            .into_iter()
            .map(ThirdPartyCredential::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        let not_after_unix = map.uint("not_after_unix")?;
        let owner = map.opt_text("owner")?;
        map.finish()?;

        let package = Self {
            package_id,
            supi,
            k,
            opc,
            amf,
            home_network_key,
            routing_indicator,
            serving_network,
            third_party,
            not_after_unix,
            owner,
        };
        package.validate()?;
        Ok(package)
    }

    /// Separates K and OPc from the rest.
    pub fn split(self) -> (PackageSecrets, PublicPart) {
        let Self {
            package_id,
            supi,
            k,
            opc,
            amf,
            home_network_key,
            routing_indicator,
            serving_network,
            third_party,
            not_after_unix,
            owner,
        } = self;
        (
            PackageSecrets { k, opc },
            PublicPart {
                package_id,
                supi,
                amf,
                home_network_key,
                routing_indicator,
                serving_network,
                third_party,
                not_after_unix,
                owner,
            },
        )
    }

    /// Puts a split package back together.
    pub fn join(secrets: PackageSecrets, public: PublicPart) -> Self {
        let PackageSecrets { k, opc } = secrets;
        let PublicPart {
            package_id,
            supi,
            amf,
            home_network_key,
            routing_indicator,
            serving_network,
            third_party,
            not_after_unix,
            owner,
        } = public;
        Self {
            package_id,
            supi,
            k,
            opc,
            amf,
            home_network_key,
            routing_indicator,
            serving_network,
            third_party,
            not_after_unix,
            owner,
        }
    }
}

/// What a package is bound to, besides the device key: the device identity
/// the network authenticated in phase A (the IDevID serial) and the nonce of
/// the provisioning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The IDevID serial number (at most 65535 octets of UTF-8).
    pub device_identity: String,
    /// The nonce of the provisioning request.
    pub nonce: [u8; 16],
}

impl Binding {
    /// The HPKE `info`: `"nido-prov/2 package" ‖ u16be(len) ‖ identity ‖ nonce`.
    pub fn info(&self) -> Result<Vec<u8>, ProvError> {
        let id = self.device_identity.as_bytes();
        let len = u16::try_from(id.len()).map_err(|_| ProvError::Invalid {
            what: "binding",
            field: "device_identity".into(),
            reason: format!("{} octets, at most 65535", id.len()),
        })?;
        let mut info = Vec::with_capacity(INFO_LABEL.len() + 2 + id.len() + 16);
        info.extend_from_slice(INFO_LABEL);
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(id);
        info.extend_from_slice(&self.nonce);
        Ok(info)
    }
}

/// A package sealed to one device: the HPKE encapsulated key and the
/// AES-128-GCM ciphertext (with its 16-octet tag). On the wire it carries
/// the format version ([`PACKAGE_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPackage {
    /// The encapsulated key (the sender's ephemeral X25519 public key).
    pub enc: [u8; ENC_LEN],
    /// The ciphertext of the package's CBOR encoding, tag appended.
    pub ciphertext: Vec<u8>,
}

impl SealedPackage {
    pub(crate) fn item(&self) -> Item<'_> {
        Item::Map(vec![
            ("version", Item::Uint(PACKAGE_VERSION)),
            ("enc", Item::Bytes(&self.enc)),
            ("ciphertext", Item::Bytes(&self.ciphertext)),
        ])
    }

    pub(crate) fn from_map(mut map: MapReader) -> Result<Self, ProvError> {
        // Version 1 (base mode, no `version` field) is refused here, typed,
        // before anything is opened.
        map.version_or(PACKAGE_VERSION, SEALED_VERSION_UNMARKED)?;
        let sealed = Self {
            enc: map.array::<ENC_LEN>("enc")?,
            ciphertext: map.bytes("ciphertext")?,
        };
        map.finish()?;
        Ok(sealed)
    }

    /// The CBOR map `{ "version": 2, "enc": bstr .size 32, "ciphertext": bstr }`.
    pub fn encode(&self) -> Vec<u8> {
        self.item().to_vec()
    }

    /// Decodes [`SealedPackage::encode`]'s output, strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProvError> {
        Self::from_map(MapReader::decode("sealed package", bytes)?)
    }
}

/// Seals `package` to the device's X25519 public key, bound to `binding`,
/// authenticated with `k_prov` (HPKE PSK mode, RFC 9180 §5.1.2): the
/// network's K_PROV from the K_AUSF of the EAP-TLS session that
/// authenticated this device ([`nido_sec::kdf::kprov`]).
///
/// The ephemeral key comes from aws-lc's generator ([`ProvError::Random`]
/// if it fails).
pub fn seal(
    package: &CredentialPackage,
    device_public_key: &[u8; 32],
    binding: &Binding,
    k_prov: &KProv,
) -> Result<SealedPackage, ProvError> {
    let info = binding.info()?;
    let plaintext = Zeroizing::new(package.to_cbor()?);
    let (enc, ciphertext) = hpke::seal_psk(
        device_public_key,
        &info,
        b"",
        &plaintext,
        k_prov.expose(),
        PSK_ID,
    )
    .map_err(|e| match e {
        HpkeError::PublicKey => ProvError::DevicePublicKey,
        HpkeError::Random => ProvError::Random,
        HpkeError::Psk | HpkeError::Open => ProvError::Seal("an empty K_PROV".into()),
    })?;
    Ok(SealedPackage { enc, ciphertext })
}

/// Opens a sealed package with the device's X25519 private key, the
/// binding the device expects (its own identity and the nonce it sent) and
/// the K_PROV of its onboarding EAP-TLS session (HPKE PSK mode, RFC 9180
/// §5.1.2): only the network that authenticated the device can have sealed
/// a package that opens.
///
/// Any wrong key, wrong K_PROV, base-mode sealing, wrong binding or modified
/// octet gives [`ProvError::Open`]; a plaintext that authenticates but does
/// not decode gives a decoding error (an older format: [`ProvError::Version`]).
pub fn open(
    sealed: &SealedPackage,
    device_private_key: &PrivateKey32,
    binding: &Binding,
    k_prov: &KProv,
) -> Result<CredentialPackage, ProvError> {
    let info = binding.info()?;
    let plaintext = hpke::open_psk(
        &sealed.enc,
        device_private_key.expose(),
        &info,
        b"",
        &sealed.ciphertext,
        k_prov.expose(),
        PSK_ID,
    )
    .map_err(|_| ProvError::Open)?;
    CredentialPackage::from_cbor(&plaintext)
}

/// Generates a device key pair (what a secure element does internally):
/// the private scalar and the X25519 public key to send in the request.
pub fn generate_device_key() -> Result<(PrivateKey32, [u8; 32]), ProvError> {
    let (private, public) = hpke::generate().map_err(|_| ProvError::Random)?;
    let private = PrivateKey32::from_slice(private.as_ref()).map_err(|_| ProvError::Random)?;
    Ok((private, public))
}

/// The X25519 public key of a device private key.
pub fn device_public_key(private: &PrivateKey32) -> Result<[u8; 32], ProvError> {
    hpke::public_key(private.expose()).ok_or(ProvError::DevicePublicKey)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for part in parts {
        ctx.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The confirmation key: HKDF-SHA256 (RFC 5869) with salt and info
/// `"nido-prov/1 confirm"` over K ‖ OPc, 32 octets.
fn confirmation_key(k: &K, opc: &Opc) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    ikm[..16].copy_from_slice(k.expose());
    ikm[16..].copy_from_slice(opc.expose());
    let prk = hmac_sha256(CONFIRM_LABEL, &[ikm.as_ref()]);
    hmac_sha256(prk.as_ref(), &[CONFIRM_LABEL, &[1]])
}

/// HMAC-SHA-256 over `package_id`, keyed by the confirmation key: HKDF-SHA256 (RFC 5869) with salt and
/// info `"nido-prov/1 confirm"` over K ‖ OPc, 32 octets.
pub fn confirmation_mac_with(k: &K, opc: &Opc, package_id: &[u8; 16]) -> [u8; 32] {
    *hmac_sha256(confirmation_key(k, opc).as_ref(), &[package_id])
}

/// The MAC the device sends to confirm it installed `package`.
pub fn confirmation_mac(package: &CredentialPackage) -> [u8; 32] {
    confirmation_mac_with(&package.k, &package.opc, &package.package_id)
}

/// Checks a confirmation MAC in constant time.
pub fn verify_confirmation_with(
    k: &K,
    opc: &Opc,
    package_id: &[u8; 16],
    mac: &[u8; 32],
) -> Result<(), ProvError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, confirmation_key(k, opc).as_ref());
    hmac::verify(&key, package_id, mac).map_err(|_| ProvError::ConfirmationMac)
}

/// Checks the confirmation MAC of `package` in constant time.
pub fn verify_confirmation(package: &CredentialPackage, mac: &[u8; 32]) -> Result<(), ProvError> {
    verify_confirmation_with(&package.k, &package.opc, &package.package_id, mac)
}
