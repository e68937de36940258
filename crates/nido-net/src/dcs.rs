//! The Default Credentials Server (design doc roles): the EAP-TLS 1.3
//! server that authenticates a device's IDevID against the enrolled
//! manufacturers. One set of DCS credentials per DCS realm (the realm of the
//! anonymous onboarding SUCI routes to it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use nido_eap::{DcsCredentials, EapError, EapTlsServer, Settings};
use nido_pki::TrustStore;

/// Where the operator's trust data lives (manufacturers, CRLs, block
/// list), for a driver that keeps a serving network's [`TrustStore`]
/// current: it asks [`TrustSource::trust_generation`], cheap, every so
/// often, and loads [`TrustSource::trust_store`] only when the generation
/// moved; then hands the store to [`crate::Network::set_trust_store`].
/// At the same pace it asks which credential packages ended since it last
/// asked ([`TrustSource::packages_ended`]) and hands them to
/// [`crate::Network::end_registrations`].
pub trait TrustSource {
    /// Why the source could not answer.
    type Error: core::fmt::Display;
    /// A number that changes with every change of the trust data (the
    /// same transaction advances it).
    fn trust_generation(&self) -> Result<u64, Self::Error>;
    /// The trust store as the data stands now.
    fn trust_store(&self) -> Result<TrustStore, Self::Error>;
    /// The SUPIs of the subscriptions whose credential package ended
    /// within `from..=to` (Unix seconds): by the operator (a rekey, an
    /// owner release) or by its validity. A serving network ends their
    /// registrations ([`crate::Network::end_registrations`]).
    fn packages_ended(&self, from: u64, to: u64) -> Result<Vec<nido_sec::Supi>, Self::Error>;
}

/// The built-in DCS.
#[derive(Default)]
pub struct Dcs {
    realms: HashMap<String, DcsCredentials>,
    settings: Settings,
    /// The trust store last given ([`Dcs::set_trust_store`], or with a
    /// realm's credentials): its block list also applies to devices an
    /// external DCS authenticated.
    trust: Option<Arc<TrustStore>>,
}

impl core::fmt::Debug for Dcs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dcs")
            .field("realms", &self.realms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Dcs {
    /// A DCS with these EAP-TLS settings and no realm yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            realms: HashMap::new(),
            settings,
            trust: None,
        }
    }

    /// Serves `realm` with `credentials` (its certificate and the trust store).
    pub fn serve(&mut self, realm: &str, credentials: DcsCredentials) {
        self.trust = Some(credentials.trust.clone());
        self.realms.insert(realm.to_ascii_lowercase(), credentials);
    }

    /// Replaces the trust store of every realm (a block, a CRL, a
    /// manufacturer enrolled or removed while serving). EAP-TLS
    /// conversations started after it validate against `trust`; one
    /// already started keeps the store it started with.
    pub fn set_trust_store(&mut self, trust: Arc<TrustStore>) {
        for credentials in self.realms.values_mut() {
            credentials.trust = trust.clone();
        }
        self.trust = Some(trust);
    }

    /// Whether the operator's block list ([`TrustStore::is_blocked`] of
    /// the trust store last given) names `device`. `false` when no trust
    /// store was given yet.
    pub fn is_blocked(&self, device: &nido_pki::DeviceId) -> bool {
        self.trust.as_ref().is_some_and(|t| t.is_blocked(device))
    }

    /// Whether the block list names `device` with a block that ends a
    /// registration under way ([`TrustStore::is_blocked_now`]).
    pub fn is_blocked_now(&self, device: &nido_pki::DeviceId) -> bool {
        self.trust
            .as_ref()
            .is_some_and(|t| t.is_blocked_now(device))
    }

    /// Whether it serves `realm`.
    pub fn serves(&self, realm: &str) -> bool {
        self.realms.contains_key(&realm.to_ascii_lowercase())
    }

    /// Starts an EAP-TLS conversation for `realm`: the server and its
    /// EAP-Request/EAP-TLS Start. `None` for a realm it does not serve.
    pub fn start(
        &self,
        realm: &str,
        now: SystemTime,
        first_identifier: u8,
    ) -> Option<Result<(EapTlsServer, Vec<u8>), EapError>> {
        let credentials = self.realms.get(&realm.to_ascii_lowercase())?;
        Some(EapTlsServer::start(
            credentials,
            self.settings,
            now,
            first_identifier,
        ))
    }
}
