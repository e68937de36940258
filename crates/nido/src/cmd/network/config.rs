//! `nido.toml`: a network directory's configuration, written with comments
//! by `nido network init`; secrets live in 0600 files next to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nido_net::NetworkConfig;
use nido_net::pvs::{ClaimPolicy, Pvs, PvsConfig};
use nido_net::udm::Udm;
use nido_prov::package::ServingNetwork;
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_sec::{Op, PrivateKey32};
use nido_store::Kek;
use serde::Deserialize;

/// The configuration file's name in a network directory.
pub(crate) const FILE: &str = "nido.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) network: NetworkSection,
    pub(crate) subscriptions: SubscriptionSection,
    pub(crate) keys: KeySection,
    #[serde(default)]
    pub(crate) dcs: Vec<DcsEntry>,
    #[serde(default)]
    pub(crate) external_dcs: Vec<ExternalDcsEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    pub(crate) mcc: String,
    pub(crate) mnc: String,
    pub(crate) nid: Option<String>,
    pub(crate) listen: String,
    pub(crate) database: String,
    pub(crate) onboarding_timer_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionSection {
    pub(crate) msin_digits: usize,
    pub(crate) msin_count: u64,
    pub(crate) claim_policy: String,
    pub(crate) routing_indicator: String,
    pub(crate) validity_days: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySection {
    pub(crate) op: PathBuf,
    pub(crate) kek: PathBuf,
    pub(crate) suci: Vec<SuciKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuciKey {
    pub(crate) profile: String,
    pub(crate) id: u8,
    pub(crate) private_key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DcsEntry {
    pub(crate) realm: String,
    pub(crate) chain: PathBuf,
    pub(crate) key: PathBuf,
}

/// A manufacturer's own DCS, reached over RADIUS (`trust-manufacturer
/// --radius`) or RadSec (`--radsec`, RFC 6614): onboarding EAP of `realm`
/// is relayed there, and the devices it accepts are `manufacturer`'s (TS
/// 33.501 I.9.2.3). Exactly one of `radius` (with `secret`) and `radsec`
/// (with `dcs_root`) is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalDcsEntry {
    pub(crate) realm: String,
    pub(crate) manufacturer: String,
    /// HOST:PORT of its RADIUS server (UDP).
    #[serde(default)]
    pub(crate) radius: Option<String>,
    /// The shared secret's file (0600), relative to the network directory.
    #[serde(default)]
    pub(crate) secret: Option<PathBuf>,
    /// The address requests leave from (the one the DCS knows this
    /// network by); any when absent.
    #[serde(default)]
    pub(crate) source: Option<std::net::IpAddr>,
    /// HOST:PORT of its RadSec server (TCP, TLS).
    #[serde(default)]
    pub(crate) radsec: Option<String>,
    /// The manufacturer's root (PEM) the DCS's certificate must chain to.
    #[serde(default)]
    pub(crate) dcs_root: Option<PathBuf>,
    /// The name the DCS's certificate must carry (dNSName); the host part
    /// of `radsec` when absent.
    #[serde(default)]
    pub(crate) dcs_host: Option<String>,
}

/// The network's RadSec client certificate and key (`nido network
/// radsec-cert`), relative to the network directory.
pub(crate) const RADSEC_CERT: &str = "keys/radsec.pem";
/// Its private key (0600).
pub(crate) const RADSEC_KEY: &str = "keys/radsec.key";

/// The host part of HOST:PORT (brackets of an IPv6 literal removed).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn resolve(realm: &str, what: &str, addr: &str) -> Result<std::net::SocketAddr> {
    std::net::ToSocketAddrs::to_socket_addrs(addr)
        .with_context(|| format!("external DCS of {realm}: {what} = {addr:?}"))?
        .next()
        .ok_or_else(|| anyhow!("external DCS of {realm}: {addr:?} has no address"))
}

impl ExternalDcsEntry {
    /// The relay's route.
    pub(crate) fn route(&self, dir: &Path) -> Result<nido_access::relay::Route> {
        match (&self.radius, &self.radsec) {
            (Some(radius), None) => self.udp_route(dir, radius),
            (None, Some(radsec)) => self.radsec_route(dir, radsec),
            _ => bail!(
                "external DCS of {}: exactly one of radius and radsec",
                self.realm
            ),
        }
    }

    fn radsec_route(&self, dir: &Path, radsec: &str) -> Result<nido_access::relay::Route> {
        let server = resolve(&self.realm, "radsec", radsec)?;
        let root = self.dcs_root.as_ref().ok_or_else(|| {
            anyhow!(
                "external DCS of {}: radsec needs dcs_root (the manufacturer's root)",
                self.realm
            )
        })?;
        let roots = nido_pki::files::read_certs(&dir.join(root))?;
        let chain = nido_pki::files::read_certs(&dir.join(RADSEC_CERT)).with_context(|| {
            format!(
                "the network's RadSec certificate (create it with `nido network radsec-cert --dir {}`)",
                dir.display()
            )
        })?;
        check_key_file(&dir.join(RADSEC_KEY), "RadSec key")?;
        let key = nido_pki::files::read_key(&dir.join(RADSEC_KEY))?;
        let host = self.dcs_host.as_deref().unwrap_or_else(|| host_of(radsec));
        let tls = nido_access::relay::RadSecRoute::new(
            &roots,
            host,
            chain,
            rustls::pki_types::PrivateKeyDer::Pkcs8(key),
        )
        .map_err(|e| anyhow!("external DCS of {}: {e}", self.realm))?;
        Ok(nido_access::relay::Route {
            realm: self.realm.clone(),
            server,
            secret: nido_dcs::clients::radsec_secret(),
            source: None,
            radsec: Some(tls),
        })
    }

    fn udp_route(&self, dir: &Path, radius: &str) -> Result<nido_access::relay::Route> {
        let server = resolve(&self.realm, "radius", radius)?;
        let secret = self
            .secret
            .as_ref()
            .ok_or_else(|| anyhow!("external DCS of {}: radius needs secret", self.realm))?;
        let path = dir.join(secret);
        check_key_file(&path, "RADIUS secret")?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?,
        );
        let secret = nido_radius::Secret::new(text.lines().next().unwrap_or("").as_bytes())
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(nido_access::relay::Route {
            realm: self.realm.clone(),
            server,
            secret,
            source: self.source,
            radsec: None,
        })
    }
}

/// The text `init` writes: every setting with what it means.
pub(crate) fn template(
    mcc: &str,
    mnc: &str,
    nid: Option<&str>,
    listen: &str,
    database: &str,
    msin_count: u64,
    claim_policy: &str,
) -> String {
    let nid = match nid {
        Some(n) => format!("nid = \"{n}\""),
        None => "# nid = \"000000000AB\"   # uncomment for an SNPN".into(),
    };
    format!(
        r#"# nido network configuration, written by `nido network init`.
# Paths are relative to this file's directory. Secrets are in keys/ (mode 0600).

[network]
# The network's identity: PLMN id (MCC, MNC) and, for an SNPN, the
# network identifier (NID, 11 hex digits). Its serving network name enters
# every K_SEAF, so devices must see the same values.
mcc = "{mcc}"
mnc = "{mnc}"
{nid}
# The UDP access link (nido's datagram: version, kind, connection id, NAS PDU).
listen = "{listen}"
# The database: a SQLite file (created and migrated on first start) or
# postgres://user@host/db (several `serve` instances may share one).
database = "{database}"
# Onboarding registrations end (5GMM cause #93) after this many seconds.
onboarding_timer_seconds = 600

[subscriptions]
# IMSIs are MCC + MNC + an MSIN of this many digits (15 digits in all),
# allocated from a range of msin_count numbers.
msin_digits = {msin_digits}
msin_count = {msin_count}
# "standalone": a device nobody claimed gets a subscription of its own;
# "require-claim": only devices an owner claimed (others: cause #75).
claim_policy = "{claim_policy}"
routing_indicator = "0000"
# How long a delivered credential package stays valid.
validity_days = 365

[keys]
# The operator's OP (OPc = f(K, OP) per subscription), hex.
op = "keys/op.hex"
# The key-encryption key of K and OPc at rest, hex; $NIDO_KEK_FILE (the
# path of another 0600 file) overrides it.
kek = "keys/kek.hex"

# SUCI home network keys (TS 33.501 Annex C): profile A (X25519) or B
# (P-256), the key id devices name, the private key (hex). The PVS hands
# the first one's public key to devices; keep older ones for de-concealment.
[[keys.suci]]
profile = "A"
id = 1
private_key = "keys/suci-a-1.hex"

# DCS credentials per manufacturer realm: `nido network trust-manufacturer`
# adds a [[dcs]] entry for each manufacturer it enrolls.
"#,
        msin_digits = 15 - mcc.len() - mnc.len(),
    )
}

impl Config {
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read (run `nido network init` first)",
                path.display()
            )
        })?;
        Self::parse(&text, &path)
    }

    /// The configuration in `text` (the contents of `path`, named in
    /// errors), checked: what `load` reads, and what an edit is checked
    /// against before it is written.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            // One line: where and what, without the parser's source snippet.
            let place = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = span.start - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            anyhow::anyhow!(
                "{}: invalid configuration: {}{}",
                path.display(),
                place.unwrap_or_default(),
                e.message().trim().replace('\n', " ")
            )
        })?;
        config
            .check()
            .with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.subscriptions.msin_digits + self.network.mcc.len() + self.network.mnc.len() != 15 {
            bail!(
                "[subscriptions] msin_digits: {} with MCC {} and MNC {} does not make 15 IMSI digits",
                self.subscriptions.msin_digits,
                self.network.mcc,
                self.network.mnc
            );
        }
        if self.keys.suci.is_empty() {
            bail!("[keys] needs at least one [[keys.suci]] home network key");
        }
        // Devices renew within 7 days of a package's end (their
        // `renew_before`): a shorter validity would have them renew at
        // nearly every registration.
        if self.subscriptions.validity_days < 14 {
            bail!(
                "[subscriptions] validity_days = {}: at least 14 (devices renew their package within 7 days of its end)",
                self.subscriptions.validity_days
            );
        }
        self.claim_policy()?;
        Ok(())
    }

    pub(crate) fn claim_policy(&self) -> Result<ClaimPolicy> {
        match self.subscriptions.claim_policy.as_str() {
            "standalone" => Ok(ClaimPolicy::Standalone),
            "require-claim" => Ok(ClaimPolicy::RequireClaim),
            other => bail!(
                "[subscriptions] claim_policy: {other:?}, expected \"standalone\" or \"require-claim\""
            ),
        }
    }

    pub(crate) fn serving_network(&self) -> Result<ServingNetwork> {
        ServingNetwork::new(
            &self.network.mcc,
            &self.network.mnc,
            self.network.nid.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("[network]: {e}"))
    }
}

/// Refuses a secret file its group or others may access (the device
/// vault's rule, [`nido_se::file::refuse_open_mode`]): the error names the
/// file and the fix.
pub(crate) fn check_key_file(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{what}: cannot read {}", path.display()))?;
    nido_se::file::refuse_open_mode(path, &meta).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// Reads a hex secret file, refusing one others than its owner may read.
pub(crate) fn read_hex(dir: &Path, file: &Path, what: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let path = dir.join(file);
    check_key_file(&path, what)?;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path)
            .with_context(|| format!("{what}: cannot read {}", path.display()))?,
    );
    Ok(zeroize::Zeroizing::new(
        hex::decode(text.trim())
            .with_context(|| format!("{what}: {} is not hex", path.display()))?,
    ))
}

/// The key-encryption key: from the file `$NIDO_KEK_FILE` names (a path,
/// mode 0600 like every key file: a secrets mount, a tmpfs), else from
/// `$NIDO_KEK` (deprecated, with a warning), else from the configured file.
///
/// `$NIDO_KEK` puts the key itself in the process environment, where it
/// stays for the process's life: `/proc/<pid>/environ` shows the
/// environment the process started with (removing the variable later does
/// not erase that copy), children inherit it, and crash reports collect
/// it. Removing it would need `std::env::remove_var`, which is `unsafe` in
/// edition 2024 (another thread may read the environment) and forbidden
/// here, and would not help with the copy anyway. So the variable is still
/// read, for existing deployments, and the file is the documented way.
pub(crate) fn kek(dir: &Path, config: &Config) -> Result<Kek> {
    if let Some(path) = std::env::var_os("NIDO_KEK_FILE") {
        let path = Path::new(&path);
        let octets = read_hex(Path::new("."), path, "key-encryption key ($NIDO_KEK_FILE)")?;
        return kek_of(&octets);
    }
    if std::env::var_os("NIDO_KEK").is_some() {
        eprintln!(
            "nido: warning: $NIDO_KEK puts the key-encryption key in the process environment \
             (/proc/<pid>/environ, child processes); put it in a 0600 file and set $NIDO_KEK_FILE instead"
        );
        return Kek::from_env("NIDO_KEK").map_err(|e| anyhow::anyhow!("NIDO_KEK: {e}"));
    }
    let octets = read_hex(dir, &config.keys.kek, "key-encryption key")?;
    kek_of(&octets)
}

fn kek_of(octets: &[u8]) -> Result<Kek> {
    let array: [u8; 32] = octets.try_into().map_err(|_| {
        anyhow::anyhow!(
            "key-encryption key: 32 octets expected, got {}",
            octets.len()
        )
    })?;
    Ok(Kek::new(array))
}

/// The database URL: relative SQLite paths resolve against the directory.
pub(crate) fn database_url(dir: &Path, config: &Config) -> String {
    let db = &config.network.database;
    if let Some(path) = db.strip_prefix("sqlite://") {
        let p = Path::new(path);
        if p.is_relative() {
            return format!("sqlite://{}", dir.join(p).display());
        }
    }
    db.clone()
}

/// The profile a `[[keys.suci]]` entry names.
pub(crate) fn suci_profile(name: &str) -> Result<Profile> {
    match name {
        "A" | "a" => Ok(Profile::A),
        "B" | "b" => Ok(Profile::B),
        other => bail!("[[keys.suci]] profile: {other:?}, expected \"A\" or \"B\""),
    }
}

/// The SUCI home network keys of the configuration, in its order: the
/// first is the one the PVS hands to devices, every one de-conceals.
pub(crate) fn suci_keys(dir: &Path, config: &Config) -> Result<Vec<HomeNetworkKey>> {
    config
        .keys
        .suci
        .iter()
        .map(|k| {
            let profile = suci_profile(&k.profile)?;
            let octets = read_hex(dir, &k.private_key, "SUCI home network key")?;
            let private = PrivateKey32::from_slice(&octets)
                .map_err(|e| anyhow::anyhow!("SUCI key {}: {e}", k.private_key.display()))?;
            HomeNetworkKey::from_private(profile, k.id, &private)
                .map_err(|e| anyhow::anyhow!("SUCI key {}: {e}", k.private_key.display()))
        })
        .collect()
}

/// The UDM (SIDF keys) and PVS of the configuration.
pub(crate) fn functions(dir: &Path, config: &Config) -> Result<(Udm, Pvs, NetworkConfig)> {
    let mut udm = Udm::default();
    let mut first = None;
    for key in suci_keys(dir, config)? {
        first.get_or_insert_with(|| key.public_key());
        udm.sidf.insert(key);
    }
    let op = read_hex(dir, &config.keys.op, "OP")?;
    let op = Op::from_slice(&op).map_err(|e| anyhow::anyhow!("OP: {e}"))?;
    let serving_network = config.serving_network()?;
    let pvs = Pvs::new(PvsConfig {
        op,
        serving_network: serving_network.clone(),
        msin_digits: config.subscriptions.msin_digits,
        home_network_key: first.ok_or_else(|| anyhow::anyhow!("no SUCI key"))?,
        routing_indicator: config.subscriptions.routing_indicator.clone(),
        policy: config.claim_policy()?,
        validity: Duration::from_secs(config.subscriptions.validity_days * 86_400),
    });
    let mut net = NetworkConfig::new(serving_network);
    net.onboarding_timer = Duration::from_secs(config.network.onboarding_timer_seconds);
    Ok((udm, pvs, net))
}
