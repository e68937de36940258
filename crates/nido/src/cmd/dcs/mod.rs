//! `nido dcs ...`: a manufacturer's Default Credentials Server as a RADIUS
//! server of its own, which any operator's network reaches (TS 33.501
//! I.9.2.3). nido-dcs holds the protocol; this module the directory, the
//! commands, the UDP driver (`serve.rs`) and its RadSec transport
//! (`radsec.rs`, RFC 6614).

mod radsec;
mod serve;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use nido_dcs::{Client, Clients, RadSecClient};
use nido_pki::bundle::write_server_identity;
use nido_pki::files::{MODE_PUBLIC, MODE_SECRET, pem, read_certs, read_key, write_atomic};
use nido_pki::store::append_issued;
use nido_pki::{
    DeviceId, IssuedRecord, Manufacturer, ManufacturerLock, Policy, TrustStore, Validity,
};
use nido_radius::Secret;
use rustls::pki_types::{CertificateRevocationListDer, PrivateKeyDer};

use crate::args::{UsageError, number_in};

pub(crate) use serve::ServeArgs;

const DCS_AFTER_HELP: &str = "\
How it fits together:
  A manufacturer that runs its own DCS authenticates its devices for every
  operator: each operator's network relays the device's EAP-TLS 1.3 to this
  server over RADIUS (RFC 3579) and gets back Access-Accept with the MSK
  (MS-MPPE-Recv-Key || MS-MPPE-Send-Key, RFC 2548) and the device serial
  (User-Name), or Access-Reject. The network derives K_AUSF from the MSK
  (TS 33.501 I.9.2.3). Every request must carry a valid
  Message-Authenticator; a client's address and shared secret identify the
  operator, and every decision goes to DIR/audit.jsonl, durable before the
  reply leaves.

A first run:
  nido mfr init       --dir acme-ca --name \"Acme Sensors\" --realm dcs.acme.example
  nido dcs init       --dir acme-dcs --mfr acme-ca --host dcs.acme.example
  nido dcs add-client --dir acme-dcs --name operator-a --address 192.0.2.10 --secret-file a.secret
  nido dcs serve      --dir acme-dcs --radius 0.0.0.0:1812

RadSec (RADIUS over TLS, RFC 6614) instead of a shared secret and an address:
  nido network radsec-cert --dir net                  (on the operator's side)
  nido dcs add-client --dir acme-dcs --name operator-b --radsec-cert operator-b.pem
  nido dcs serve      --dir acme-dcs --radius 0.0.0.0:1812 --radsec 0.0.0.0:2083
  (the DCS presents dcs.pem; a client's certificate must be a pinned one)

Keeping it current:
  nido mfr crl --dir acme-ca --out acme.crl.pem && nido dcs crl --dir acme-dcs --crl acme.crl.pem
  nido dcs block --dir acme-dcs ACMESENS-0000000042
  (serve picks up clients, CRLs and blocks within a second)

The DCS directory:
  dcs.toml                       manufacturer, realm, host, policy, clients
  dcs.pem, dcs.key               the DCS's TLS certificate chain and key (0600)
  mfr-root.pem, issuing.pem      the manufacturer's root and issuing CA
  crl.pem                        the manufacturer's current CRL
  blocked.txt                    serials refused whatever their certificate says
  secrets/NAME.secret            each client's RADIUS shared secret (0600)
  audit.jsonl                    one JSON line per decision";

/// DCS subcommands.
#[derive(Subcommand)]
#[command(after_long_help = DCS_AFTER_HELP)]
pub(crate) enum Dcs {
    /// Create a DCS directory for a manufacturer: its TLS certificate (from
    /// the manufacturer's issuing CA), the manufacturer's root, issuing CA and
    /// a fresh CRL, the validation policy of its devices.
    Init(InitArgs),
    /// Allow an operator's network (a RADIUS client) to ask: its source
    /// address and its own shared secret, or (RadSec) its TLS client
    /// certificate.
    AddClient(AddClientArgs),
    /// Replace the manufacturer's CRL (verified against the issuing CA; a
    /// lower CRL number is refused).
    Crl(CrlArgs),
    /// Refuse devices by serial, whatever their certificate says.
    Block(SerialsArgs),
    /// Lift a block.
    Unblock(SerialsArgs),
    /// Serve EAP-TLS 1.3 over RADIUS (UDP, and RadSec with --radsec) until
    /// SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Print the decisions so far (newest last).
    Audit(AuditArgs),
}

/// `init` inputs.
#[derive(Args)]
pub(crate) struct InitArgs {
    /// The DCS directory to create.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The manufacturer directory (from `nido mfr init`); its issuing CA
    /// signs the DCS certificate.
    #[arg(long, value_name = "MFRDIR")]
    mfr: PathBuf,
    /// The DCS's host name (dNSName of its certificate).
    #[arg(long, value_name = "HOST")]
    host: String,
    /// Validity of the DCS certificate and of the first CRL, in days.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u64,
}

/// `add-client` inputs.
#[derive(Args)]
pub(crate) struct AddClientArgs {
    /// The DCS directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The operator's name, as the audit trail shows it (1 to 64 of
    /// A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "NAME")]
    name: String,
    /// The address its RADIUS requests come from (RADIUS over UDP).
    #[arg(long, value_name = "IP", required_unless_present = "radsec_cert")]
    address: Option<IpAddr>,
    /// A RadSec client instead (RADIUS over TLS, RFC 6614, `serve
    /// --radsec`): the operator's TLS client certificate (PEM, from `nido
    /// network radsec-cert`), pinned by its SHA-256 fingerprint. Its shared
    /// secret is the literal "radsec".
    #[arg(long, value_name = "OPERATOR.pem", conflicts_with_all = ["address", "secret", "secret_file"])]
    radsec_cert: Option<PathBuf>,
    /// The shared secret (visible in the process list: prefer --secret-file).
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file holding the shared secret (its first line).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

/// `crl` inputs.
#[derive(Args)]
pub(crate) struct CrlArgs {
    /// The DCS directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The CRL (PEM), from `nido mfr crl`.
    #[arg(long, value_name = "FILE")]
    crl: PathBuf,
}

/// `block`/`unblock` inputs.
#[derive(Args)]
pub(crate) struct SerialsArgs {
    /// The DCS directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Device serials.
    #[arg(required = true, value_name = "SERIAL")]
    serials: Vec<String>,
}

/// `audit` inputs.
#[derive(Args)]
pub(crate) struct AuditArgs {
    /// The DCS directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Print the JSON lines as stored.
    #[arg(long)]
    json: bool,
}

/// `dcs.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The manufacturer's name (O= of its certificates).
    manufacturer: String,
    /// The realm devices put in their anonymous SUCI.
    realm: String,
    /// The DCS host name.
    host: String,
    /// Serial prefix the policy requires (`<prefix>-`).
    serial_prefix: String,
    /// hwType OID the policy requires.
    hw_type: String,
    /// The RADIUS clients.
    #[serde(default, rename = "client")]
    clients: Vec<ClientEntry>,
}

/// One `[[client]]` of `dcs.toml`: a RADIUS client (`address`, its secret
/// in secrets/NAME.secret) or a RadSec client (`radsec_fingerprint`, the
/// SHA-256 of its TLS client certificate), never both.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    radsec_fingerprint: Option<String>,
}

impl Config {
    fn path(dir: &Path) -> PathBuf {
        dir.join("dcs.toml")
    }

    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: no DCS here (create one with `nido dcs init --dir {} --mfr MFRDIR --host HOST`)",
                path.display(),
                dir.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text = toml::to_string(self)?;
        write_atomic(&Self::path(dir), text.as_bytes(), MODE_PUBLIC)?;
        Ok(())
    }

    /// The clients with their secrets (each file 0600).
    pub(crate) fn clients(&self, dir: &Path) -> Result<Clients> {
        let mut clients = Clients::new();
        for c in &self.clients {
            let (address, radsec) = match (c.address, &c.radsec_fingerprint) {
                (Some(a), None) => (a, None),
                (None, Some(f)) => (IpAddr::from([0, 0, 0, 0]), Some(f)),
                _ => bail!(
                    "{}: client {:?} needs exactly one of address and radsec_fingerprint",
                    Self::path(dir).display(),
                    c.name
                ),
            };
            if let Some(f) = radsec {
                let fingerprint = nido_dcs::clients::parse_fingerprint(f).ok_or_else(|| {
                    anyhow!(
                        "{}: client {:?}: radsec_fingerprint {f:?} is not 32 hex octets",
                        Self::path(dir).display(),
                        c.name
                    )
                })?;
                clients
                    .add_radsec(RadSecClient {
                        name: c.name.clone(),
                        fingerprint,
                    })
                    .map_err(|e| anyhow!("{}: {e}", Self::path(dir).display()))?;
                continue;
            }
            let path = secret_path(dir, &c.name);
            crate::cmd::network::config::check_key_file(&path, "RADIUS secret")?;
            let secret = read_secret(&path)?;
            clients
                .add(Client {
                    name: c.name.clone(),
                    address,
                    secret,
                })
                .map_err(|e| anyhow!("{}: {e}", Self::path(dir).display()))?;
        }
        Ok(clients)
    }

    /// The trust store: the manufacturer's root with its policy, its CRL,
    /// the block list.
    pub(crate) fn trust(&self, dir: &Path) -> Result<TrustStore> {
        let root = one_cert(&dir.join("mfr-root.pem"))?;
        let issuing = one_cert(&dir.join("issuing.pem"))?;
        let mut trust = TrustStore::new();
        let policy = Policy {
            serial_prefix: Some(format!("{}-", self.serial_prefix)),
            require_hardware_module: true,
            hardware_module_type: Some(self.hw_type.clone()),
            ..Policy::default()
        };
        trust.enroll(&self.manufacturer, root, policy)?;
        let crl_path = dir.join("crl.pem");
        if crl_path.exists() {
            let crl = read_crl(&crl_path)?;
            trust
                .add_crl(&self.manufacturer, &crl, &issuing)
                .with_context(|| format!("{}", crl_path.display()))?;
        }
        for serial in blocked(dir)? {
            trust.block(&DeviceId::new(&self.manufacturer, &serial)?);
        }
        Ok(trust)
    }

    /// The DCS's TLS credentials over `trust`.
    pub(crate) fn credentials(
        &self,
        dir: &Path,
        trust: Arc<TrustStore>,
    ) -> Result<nido_eap::DcsCredentials> {
        let chain = read_certs(&dir.join("dcs.pem"))?;
        crate::cmd::network::config::check_key_file(&dir.join("dcs.key"), "DCS key")?;
        let key = read_key(&dir.join("dcs.key"))?;
        Ok(nido_eap::DcsCredentials::new(
            chain,
            &PrivateKeyDer::Pkcs8(key),
            trust,
        )?)
    }
}

/// The files whose change makes `serve` reload clients and trust.
pub(crate) fn watched_files(dir: &Path) -> [PathBuf; 3] {
    [
        Config::path(dir),
        dir.join("crl.pem"),
        dir.join("blocked.txt"),
    ]
}

fn secret_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("secrets").join(format!("{name}.secret"))
}

fn read_secret(path: &Path) -> Result<Secret> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    Secret::new(line.as_bytes()).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn one_cert(path: &Path) -> Result<rustls::pki_types::CertificateDer<'static>> {
    read_certs(path)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{}: no certificate", path.display()))
}

fn read_crl(path: &Path) -> Result<CertificateRevocationListDer<'static>> {
    Ok(nido_pki::files::read_crl(path)?)
}

fn blocked(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("blocked.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

/// Runs a DCS subcommand.
pub(crate) fn run(cmd: Dcs) -> Result<()> {
    match cmd {
        Dcs::Init(a) => init(&a),
        Dcs::AddClient(a) => add_client(&a),
        Dcs::Crl(a) => crl(&a),
        Dcs::Block(a) => block(&a, true),
        Dcs::Unblock(a) => block(&a, false),
        Dcs::Serve(a) => serve::run(&a),
        Dcs::Audit(a) => audit(&a),
    }
}

fn init(a: &InitArgs) -> Result<()> {
    let days = number_in("--days", a.days, 1..=36_500)?;
    if Config::path(&a.dir).exists() {
        bail!(
            "{}: a DCS is already here; nothing changed",
            Config::path(&a.dir).display()
        );
    }
    if !Manufacturer::exists(&a.mfr) {
        return Err(UsageError::new(
            "--mfr",
            format!("{}: no manufacturer here (nido mfr init)", a.mfr.display()),
        )
        .into());
    }
    let _lock = ManufacturerLock::acquire(&a.mfr)?;
    let mut m = Manufacturer::load(&a.mfr)?;
    let now = SystemTime::now();
    let id = m
        .issue_dcs(&a.host, Validity::days(now, days as u32))
        .map_err(|e| UsageError::new("--host", e.to_string()))?;
    append_issued(
        &a.mfr,
        &[IssuedRecord::of(&format!("dcs:{}", a.host), &id.chain[0])?],
    )?;
    let crl = m.next_crl(now, now + Duration::from_secs(days * 86_400))?;
    m.save_state(&a.mfr)?;
    write_server_identity(&a.dir, &id, m.root_der())?;
    std::fs::create_dir_all(a.dir.join("secrets"))?;
    write_atomic(
        &a.dir.join("issuing.pem"),
        pem("CERTIFICATE", m.issuing_der()).as_bytes(),
        MODE_PUBLIC,
    )?;
    write_atomic(
        &a.dir.join("crl.pem"),
        pem("X509 CRL", &crl).as_bytes(),
        MODE_PUBLIC,
    )?;
    let config = Config {
        manufacturer: m.name().to_owned(),
        realm: m.dcs_realm().to_owned(),
        host: a.host.clone(),
        serial_prefix: m.serial_prefix().to_owned(),
        hw_type: m.hw_type().to_owned(),
        clients: Vec::new(),
    };
    // Checks that everything loads before saying so.
    let trust = Arc::new(config.trust(&a.dir)?);
    config.credentials(&a.dir, trust)?;
    config.save(&a.dir)?;
    outln!(
        "DCS of {} for realm {} at {}: {} (add operators with `nido dcs add-client`)",
        config.manufacturer,
        config.realm,
        config.host,
        a.dir.display()
    );
    Ok(())
}

fn check_client_name(name: &str) -> Result<(), UsageError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(UsageError::new(
            "--name",
            "1 to 64 of A-Z a-z 0-9 . _ - (it names a file)",
        ))
    }
}

fn add_client(a: &AddClientArgs) -> Result<()> {
    check_client_name(&a.name)?;
    let mut config = Config::load(&a.dir)?;
    if let Some(cert) = &a.radsec_cert {
        return add_radsec_client(a, &mut config, cert);
    }
    let address = a
        .address
        .ok_or_else(|| UsageError::new("--address", "give --address or --radsec-cert"))?;
    let secret = match (&a.secret, &a.secret_file) {
        (Some(s), None) => zeroize::Zeroizing::new(s.clone()),
        (None, Some(f)) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?,
            );
            zeroize::Zeroizing::new(
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('\r')
                    .to_owned(),
            )
        }
        _ => return Err(UsageError::new("--secret", "give --secret or --secret-file").into()),
    };
    if secret.len() < 16 {
        return Err(UsageError::new(
            "--secret",
            "at least 16 characters (RFC 2865 §3: the secret must be large and unguessable)",
        )
        .into());
    }
    if config.clients.iter().any(|c| c.name == a.name) {
        bail!("client {:?} already exists; nothing changed", a.name);
    }
    if let Some(c) = config.clients.iter().find(|c| c.address == Some(address)) {
        bail!("{address} is already client {:?}; nothing changed", c.name);
    }
    std::fs::create_dir_all(a.dir.join("secrets"))?;
    write_atomic(
        &secret_path(&a.dir, &a.name),
        format!("{}\n", secret.as_str()).as_bytes(),
        MODE_SECRET,
    )?;
    config.clients.push(ClientEntry {
        name: a.name.clone(),
        address: Some(address),
        radsec_fingerprint: None,
    });
    config.save(&a.dir)?;
    outln!(
        "RADIUS client {} at {} added ({} client(s))",
        a.name,
        address,
        config.clients.len()
    );
    Ok(())
}

/// `add-client --radsec-cert`: pins the operator's TLS client certificate
/// (its first certificate) by SHA-256 fingerprint.
fn add_radsec_client(a: &AddClientArgs, config: &mut Config, cert: &Path) -> Result<()> {
    let der = one_cert(cert).map_err(|e| UsageError::new("--radsec-cert", format!("{e:#}")))?;
    let fingerprint = radsec::fingerprint(&der);
    let text = nido_dcs::clients::fingerprint_hex(&fingerprint);
    if config.clients.iter().any(|c| c.name == a.name) {
        bail!("client {:?} already exists; nothing changed", a.name);
    }
    if let Some(c) = config.clients.iter().find(|c| {
        c.radsec_fingerprint
            .as_deref()
            .and_then(nido_dcs::clients::parse_fingerprint)
            == Some(fingerprint)
    }) {
        bail!(
            "that certificate is already client {:?}; nothing changed",
            c.name
        );
    }
    config.clients.push(ClientEntry {
        name: a.name.clone(),
        address: None,
        radsec_fingerprint: Some(text.clone()),
    });
    config.save(&a.dir)?;
    outln!(
        "RadSec client {} added, certificate SHA-256 {text} ({} client(s))",
        a.name,
        config.clients.len()
    );
    Ok(())
}

fn crl(a: &CrlArgs) -> Result<()> {
    let config = Config::load(&a.dir)?;
    let new = read_crl(&a.crl)?;
    // The current trust store refuses a CRL that does not verify or whose
    // number is lower than the one in place.
    let mut trust = config.trust(&a.dir)?;
    let issuing = one_cert(&a.dir.join("issuing.pem"))?;
    trust
        .add_crl(&config.manufacturer, &new, &issuing)
        .with_context(|| format!("{}", a.crl.display()))?;
    write_atomic(
        &a.dir.join("crl.pem"),
        pem("X509 CRL", &new).as_bytes(),
        MODE_PUBLIC,
    )?;
    outln!(
        "CRL of {} replaced from {}",
        config.manufacturer,
        a.crl.display()
    );
    Ok(())
}

fn block(a: &SerialsArgs, on: bool) -> Result<()> {
    let config = Config::load(&a.dir)?;
    for s in &a.serials {
        DeviceId::new(&config.manufacturer, s)
            .map_err(|e| UsageError::new("SERIAL", e.to_string()))?;
    }
    let mut list = blocked(&a.dir)?;
    let before = list.len();
    if on {
        for s in &a.serials {
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
    } else {
        list.retain(|s| !a.serials.contains(s));
    }
    let mut text = String::from("# device serials the DCS refuses (nido dcs block/unblock)\n");
    for s in &list {
        text.push_str(s);
        text.push('\n');
    }
    write_atomic(&a.dir.join("blocked.txt"), text.as_bytes(), MODE_PUBLIC)?;
    outln!(
        "{} serial(s) {}; {} blocked in all",
        list.len().abs_diff(before),
        if on { "blocked" } else { "unblocked" },
        list.len()
    );
    Ok(())
}

fn audit(a: &AuditArgs) -> Result<()> {
    Config::load(&a.dir)?;
    let path = a.dir.join("audit.jsonl");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow!("{}: {e}", path.display())),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if a.json {
            outln!("{line}");
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}", path.display()))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_owned();
        outln!(
            "{}  {:<8}  {:<16}  {:<24}  {}",
            s("at"),
            s("decision"),
            s("client"),
            s("serial"),
            s("reason")
        );
    }
    Ok(())
}
