//! Ready-made worlds: a manufacturer, a network that trusts it, and
//! devices from its factory, wired the way tests, benchmarks, the demo and
//! the simulator use them.

use std::sync::Arc;
use std::time::Duration;

use nido_eap::fixtures::{Onboarding, RogueManufacturer};
use nido_eap::{DeviceCredentials, Settings};
use nido_net::dcs::Dcs;
use nido_net::pvs::{ClaimPolicy, Pvs, PvsConfig};
use nido_net::udm::Udm;
use nido_net::{ApplicationSink, MemoryStore, Network, NetworkConfig, Store};
use nido_pki::{DeviceIdentity, Manufacturer};
use nido_prov::package::ServingNetwork;
use nido_se::{MemorySe, SecureElement};
use nido_sec::Op;
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_ue::{Device, DeviceConfig};
use rustls::pki_types::PrivateKeyDer;

/// Why a scenario could not be built.
#[derive(Debug, thiserror::Error)]
#[error("scenario: {0}")]
pub struct ScenarioError(pub String);

fn err(e: impl core::fmt::Display) -> ScenarioError {
    ScenarioError(e.to_string())
}

/// The serving network of the scenarios: SNPN 999-99, NID 000000000AB.
pub fn serving_network() -> ServingNetwork {
    #[allow(clippy::expect_used)] // constant, valid digits
    ServingNetwork::new("999", "99", Some("000000000AB")).expect("valid SNPN id")
}

/// Network options of a scenario.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// Claim policy of the PVS.
    pub policy: ClaimPolicy,
    /// The SUCI home network key's profile.
    pub suci_profile: Profile,
    /// MSINs in the IMSI range.
    pub msins: u64,
    /// Trace plain messages.
    pub trace: bool,
    /// Adjusts the AMF configuration.
    pub onboarding_timer: Duration,
    /// How long a credential package is valid (the PVS's validity). A year.
    pub validity: Duration,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            policy: ClaimPolicy::Standalone,
            suci_profile: Profile::A,
            msins: 10_000_000,
            trace: false,
            onboarding_timer: Duration::from_secs(600),
            validity: Duration::from_secs(365 * 86_400),
        }
    }
}

/// A network whose DCS trusts `world`'s manufacturer (with `world`'s
/// trust store), with an in-memory store and `sink`.
pub fn network(
    world: &Onboarding,
    options: &NetworkOptions,
    sink: Box<dyn ApplicationSink>,
) -> Result<Network, ScenarioError> {
    let store: Box<dyn Store + Send> = Box::new(MemoryStore::new(options.msins));
    network_with_store(world, options, sink, store)
}

/// [`network`] over `store` instead of a fresh [`MemoryStore`]
/// (`options.msins` is then the store's business).
pub fn network_with_store(
    world: &Onboarding,
    options: &NetworkOptions,
    sink: Box<dyn ApplicationSink>,
    store: Box<dyn Store + Send>,
) -> Result<Network, ScenarioError> {
    let hn = HomeNetworkKey::generate(options.suci_profile, 1).map_err(err)?;
    network_with_store_and_key(world, options, sink, store, hn)
}

/// [`network_with_store`] with a given SUCI home network key: several
/// networks over one [`nido_net::SharedStore`] with the same key are one
/// operator's AMF set (any of them de-conceals what another provisioned).
/// `options.suci_profile` is ignored: the key has its own profile.
pub fn network_with_store_and_key(
    world: &Onboarding,
    options: &NetworkOptions,
    sink: Box<dyn ApplicationSink>,
    store: Box<dyn Store + Send>,
    hn: HomeNetworkKey,
) -> Result<Network, ScenarioError> {
    assemble(world, None, options, sink, store, hn)
}

/// [`network_with_store`] whose operator also enrolled `rogue`
/// ([`Onboarding::with_rogue`]): its DCS serves the rogue's realm too.
pub fn network_with_rogue(
    world: &Onboarding,
    rogue: &RogueManufacturer,
    options: &NetworkOptions,
    sink: Box<dyn ApplicationSink>,
    store: Box<dyn Store + Send>,
) -> Result<Network, ScenarioError> {
    let hn = HomeNetworkKey::generate(options.suci_profile, 1).map_err(err)?;
    assemble(world, Some(rogue), options, sink, store, hn)
}

fn assemble(
    world: &Onboarding,
    rogue: Option<&RogueManufacturer>,
    options: &NetworkOptions,
    sink: Box<dyn ApplicationSink>,
    store: Box<dyn Store + Send>,
    hn: HomeNetworkKey,
) -> Result<Network, ScenarioError> {
    let serving_network = serving_network();
    let pvs = Pvs::new(PvsConfig {
        op: Op::new([0x3c; 16]),
        serving_network: serving_network.clone(),
        msin_digits: 10,
        home_network_key: hn.public_key(),
        routing_indicator: "0000".into(),
        policy: options.policy,
        validity: options.validity,
    });
    let mut udm = Udm::default();
    udm.sidf.insert(hn);
    let mut dcs = Dcs::new(Settings::default());
    dcs.serve(world.manufacturer.dcs_realm(), world.dcs.clone());
    if let Some(rogue) = rogue {
        dcs.serve(rogue.manufacturer.dcs_realm(), rogue.dcs.clone());
    }
    let mut config = NetworkConfig::new(serving_network);
    config.trace = options.trace;
    config.onboarding_timer = options.onboarding_timer;
    Ok(Network::new(config, store, udm, pvs, dcs, sink))
}

/// A device in factory state holding `id` in a [`MemorySe`], trusting `world`'s manufacturer.
pub fn device(
    world: &Onboarding,
    id: &DeviceIdentity,
    trace: bool,
) -> Result<Device, ScenarioError> {
    device_of(&world.manufacturer, id, trace)
}

/// A device in factory state holding `id`, made by `manufacturer` (its
/// root and DCS realm): [`device`] for any manufacturer, such as a
/// [`RogueManufacturer`]'s.
pub fn device_of(
    manufacturer: &Manufacturer,
    id: &DeviceIdentity,
    trace: bool,
) -> Result<Device, ScenarioError> {
    let se = MemorySe::new(&PrivateKeyDer::Pkcs8(id.key.clone_key())).map_err(err)?;
    let credentials = DeviceCredentials::new(
        id.chain.clone(),
        se.idevid_signer(),
        manufacturer.root_der().clone(),
        manufacturer.dcs_realm(),
    )
    .map_err(err)?;
    let config = DeviceConfig {
        trace,
        ..DeviceConfig::new(
            id.serial.clone(),
            credentials,
            manufacturer.dcs_realm().to_owned(),
            serving_network(),
            manufacturer.kausf_from(),
        )
    };
    let se: Box<dyn SecureElement> = Box::new(se);
    Ok(Device::new(config, se, None))
}

/// Keeps `Arc` in the public signature list honest for callers holding one.
pub type SharedWorld = Arc<Onboarding>;
