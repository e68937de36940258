//! `nido network`: an operator's network: create it, enroll manufacturers,
//! serve devices on the UDP access link, list what it holds.

mod capacity;
pub(crate) mod config;
mod rekey;
mod release;
mod serve;
mod suci_key;
mod token;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nido_net::Store;

use crate::args::UsageError;
use nido_api::{Caller, service};
use nido_pki::Policy;
use nido_pki::files::{
    MODE_PUBLIC, MODE_SECRET, create_dir_all, pem, read_certs, read_crl, write_atomic,
};
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_store::{Kek, SqlStore};

use config::Config;

const ABOUT: &str = "\
An operator's network: AMF, AUSF, the Default Credentials Server, UDM/SIDF
and the provisioning server in one process, keeping subscriptions in SQLite
(or PostgreSQL) and serving devices over nido's UDP access link.

  nido network init --dir net --mcc 999 --mnc 99 --nid 000000000AB
  nido network trust-manufacturer --dir net --name \"Acme Sensors\" --realm dcs.acme.example --dcs dcs-tls
  nido network import-claims --dir net factory/batch-1/claims.csv
  nido network serve --dir net
  nido network subscriptions --dir net --json";

/// `nido network` subcommands.
#[derive(Subcommand)]
#[command(about = ABOUT, long_about = ABOUT)]
pub(crate) enum Network {
    /// Creates a network directory: nido.toml (commented), keys/ (OP,
    /// key-encryption key, SUCI home network key; 0600) and the database.
    Init(InitArgs),
    /// Serves devices on the UDP access link until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Enrolls a manufacturer: its root certificate (the trust anchor of its
    /// devices' IDevIDs) and the DCS certificate and key it issued for this
    /// network (`nido mfr dcs-cert` output).
    TrustManufacturer(TrustArgs),
    /// Creates (once) this network's RadSec client certificate and key
    /// (self-signed P-256, keys/radsec.pem and keys/radsec.key) and prints
    /// its path and SHA-256 fingerprint, for the manufacturer's `nido dcs
    /// add-client --radsec-cert`.
    RadsecCert(RadsecCertArgs),
    /// Imports a manufacturer's CRL (devices it revoked are refused, #3).
    CrlImport(CrlArgs),
    /// Blocks a device (#3): its onboarding is refused, a serving network
    /// deregisters it if it is registered, and its subscription is suspended
    /// (registrations with it are refused) until `unblock`.
    /// MANUFACTURER/SERIAL, or SERIAL with --manufacturer. Only that manufacturer's device is
    /// blocked; another manufacturer's device of the same serial is another
    /// device.
    Block(BlockArgs),
    /// Lifts a block: the device may onboard again, and its subscription,
    /// if it has one, registers again (a serving network sees it at its
    /// next trust poll). MANUFACTURER/SERIAL, or SERIAL with --manufacturer.
    Unblock(UnblockArgs),
    /// Imports a manufacturer's signed claims.csv (serial, claim code hash)
    /// so owners can claim its devices.
    ///
    /// The file must carry the manufacturer's detached signature
    /// (FILE.sig, written by `nido mfr issue`: ECDSA P-256 SHA-256 by its
    /// issuing CA, checkable with `openssl dgst -sha256 -verify`), made by a
    /// CA certificate (--signer, the manufacturer's issuing-ca.pem) that
    /// the enrolled root of --manufacturer signed. Claims are registered for
    /// that manufacturer's devices only. A device an owner already claimed
    /// keeps its owner: its rows are refused (reported, not imported).
    ImportClaims(ClaimsArgs),
    /// Lets a device that holds a provisioned or active subscription be
    /// provisioned again (it lost its credentials without an erasure
    /// receipt: a replaced secure element, a storage failure). Until then
    /// its onboarding is refused with #74, since the network cannot tell it
    /// from a clone. A device reset with `nido device reset` needs no
    /// release: its receipt proves the erasure.
    Release(release::ReleaseArgs),
    /// A new K for a device (or --all): its package ends now, so its next
    /// registration is refused (#7, protected) and the device renews it
    /// with its erasure receipt (same SUPI, new K, the current SUCI key).
    Rekey(rekey::RekeyArgs),
    /// SUCI home network keys: list, add (handed to devices from then on),
    /// retire (once no package carries it); a running serve follows.
    #[command(subcommand)]
    SuciKey(suci_key::SuciKeyCmd),
    /// Lists the devices the network knows (seen on the access link, or
    /// claimed), with filters; the same listing as the API's
    /// `GET /api/v1/devices`.
    Devices(DevicesArgs),
    /// Lists the subscriptions (never K or OPc): SUPI, device, state, the end
    /// of its credential package's validity (ISO 8601) and owner.
    Subscriptions(ListArgs),
    /// Prints the audit trail (newest last).
    Audit(AuditArgs),
    /// Tokens of the HTTP API and the web console (`serve --api`).
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Devices' uplink data on its way to owners' applications: the
    /// operator's default destination, and each owner's status.
    #[command(subcommand)]
    Delivery(crate::cmd::delivery::NetworkDelivery),
}

/// The network directory.
#[derive(Args)]
pub(crate) struct DirArg {
    /// The network directory (holds nido.toml).
    #[arg(long, default_value = ".")]
    pub(crate) dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Mobile country code (3 digits).
    #[arg(long, default_value = "999")]
    mcc: String,
    /// Mobile network code (2 or 3 digits).
    #[arg(long, default_value = "99")]
    mnc: String,
    /// SNPN network identifier (11 hex digits); omit for a PLMN.
    #[arg(long)]
    nid: Option<String>,
    /// UDP address of the access link.
    #[arg(long, default_value = "127.0.0.1:4997")]
    listen: String,
    /// Database URL (default: sqlite://nido.db in the directory).
    #[arg(long, default_value = "sqlite://nido.db")]
    db: String,
    /// How many MSINs the IMSI range holds.
    #[arg(long, default_value_t = 1_000_000)]
    msin_count: u64,
    /// Claim policy: standalone or require-claim.
    #[arg(long, default_value = "standalone")]
    claim_policy: String,
}

const SERVE_AFTER_HELP: &str = "\
Admission control: a registration (EAP-TLS onboarding or 5G-AKA) costs the
network real work for a few round trips. If devices arrive faster than it
finishes them, every registration slows down, the devices' timers (T3510,
15 s) expire, they start over, and the retries add load until almost
nothing completes. So at most --max-procedures registrations run at once;
a device that arrives while that many are running gets REGISTRATION
REJECT #22 (congestion) with a back-off timer T3346 drawn at random from
--t3346-min..--t3346-max (random, so refused devices do not come back
together). The refusal costs almost nothing: no certificate, no key, no
database is touched. Devices already registering, registered devices'
data and re-registrations of a running procedure are never refused; the
last tenth of the limit is kept for devices that already hold their
subscription (5G-AKA), so newcomers do not push them out.

Choosing the limit: the registrations the network finishes per second
times how long one takes: seconds on a clean link, tens of seconds on a
lossy one, where each lost message waits for a 6 s retransmission. Too
low leaves the network idle while devices sit out their back-off; too
high lets work pile up until devices time out. The default kept a
network on two cores busy at 10% loss each way. Back-offs much shorter
than the default bring refused devices back often, and on a lossy link
every try risks a lost message (five failed tries in a row cost a device
12 minutes, T3502). Refusals appear as `congested` in `nido network
audit`, and their count in the log line at stop.";

#[derive(Args)]
#[command(after_long_help = SERVE_AFTER_HELP)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) dir: DirArg,
    /// Overrides [network] listen.
    #[arg(long)]
    pub(crate) listen: Option<String>,
    /// Overrides [network] database.
    #[arg(long)]
    pub(crate) db: Option<String>,
    /// Registrations in progress at most (authenticating, security mode,
    /// accept sent); a device beyond it is refused with #22 and backs off
    /// for T3346. `auto` (the default): what this machine finishes within
    /// a procedure's guard timer (T3560, 6 s) at its public-key bound,
    /// measured at start (logged); a fleet arriving below capacity never
    /// meets it. A number, `auto` or `unlimited`.
    #[arg(long, default_value = "auto", value_name = "N|auto|unlimited", value_parser = parse_limit)]
    pub(crate) max_procedures: Limit,
    /// The shortest T3346 back-off a congestion reject carries, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=11_160))]
    pub(crate) t3346_min: u64,
    /// The longest T3346 back-off, in seconds (values are rounded to what
    /// the NAS timer encodes: 2 s steps to 62 s, then minutes, then 6 min).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=11_160))]
    pub(crate) t3346_max: u64,
    /// How often the network checks whether the trust data changed (block
    /// list, CRLs, manufacturers: one small read), in milliseconds; a change
    /// applies from the next onboarding on, without a restart.
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub(crate) trust_poll_ms: u64,
    /// How long the store's writes gather before they are committed
    /// together, in microseconds, once the first is pending (0: commit at
    /// once). A group is one transaction and one durable sync: larger ones
    /// cost less CPU per write under load, and every reply that waits for
    /// a write waits up to this much longer.
    #[arg(long, default_value_t = 4_000, value_name = "US", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub(crate) commit_gather_us: u64,
    /// The clone window, in seconds: a device identity onboarding while
    /// another connection of it was active this recently is refused with
    /// #74 (it may be a clone; a device restarted after a crash gets
    /// through at its next try, which comes later than this: 15 s for a
    /// nido device, `--not-authorized-retry`). Shorter only in tests.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub(crate) clone_window: u64,
    /// AMF shards, each on a thread of its own with its own UE contexts
    /// (a connection always reaches the same shard); their writes commit
    /// together in groups. Default: one per core. `--max-procedures` is
    /// shared out between them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) shards: Option<u32>,
    /// Where the HTTP API (/api/v1, /openapi.json), the web console (/)
    /// and the Prometheus metrics (/metrics) listen; `off` for none.
    /// Tokens: `nido network token create`. Keep it on a loopback or
    /// management address (plain HTTP; put a TLS proxy in front to reach
    /// it from elsewhere).
    #[arg(
        long,
        env = "NIDO_API",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR|off"
    )]
    pub(crate) api: String,
}

/// `trust-manufacturer --revocation`: what a device whose issuing CA has no
/// CRL in the store gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Revocation {
    /// Refused with #74 (revocation status unknown) until the
    /// manufacturer's CRL is imported (`nido network crl-import`).
    RequireCrl,
    /// Accepted: the manufacturer publishes no CRL, the operator takes the
    /// risk that a revoked device onboards.
    AllowWithoutCrl,
}

/// The quota of subscriptions per manufacturer when
/// `trust-manufacturer` is not given `--max-subscriptions`: a tenth of the
/// default IMSI range.
pub(crate) const DEFAULT_MAX_SUBSCRIPTIONS: u64 = 100_000;

/// `--max-procedures`: a limit, none, or one sized from this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// From the public-key bound measured at start ([`capacity`]).
    Auto,
    /// No limit.
    Unlimited,
    /// This many.
    At(usize),
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(Limit::Unlimited);
    }
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Limit::Auto);
    }
    match s.parse::<usize>() {
        Ok(0) => Err("0 would refuse every device; use `unlimited` for no limit".into()),
        Ok(n) => Ok(Limit::At(n)),
        Err(_) => Err(format!("{s:?}: a positive number, `auto` or `unlimited`")),
    }
}

#[derive(Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The manufacturer's name.
    #[arg(long)]
    name: String,
    /// Its DCS realm (the realm of its devices' onboarding SUCI).
    #[arg(long)]
    realm: String,
    /// The directory `nido mfr dcs-cert --out` wrote (dcs.pem, dcs.key,
    /// mfr-root.pem): this network runs the manufacturer's DCS itself.
    #[arg(long, required_unless_present_any = ["radius", "radsec"], conflicts_with_all = ["radius", "radsec"])]
    dcs: Option<PathBuf>,
    /// The manufacturer runs its own DCS (`nido dcs serve`, or any AAA
    /// server doing EAP-TLS 1.3): onboarding EAP of REALM is relayed to
    /// this RADIUS server (HOST:PORT), K_AUSF comes from the MSK (TS 33.501
    /// I.9.2.3) and the device identity from the Access-Accept's User-Name.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "radsec")]
    radius: Option<String>,
    /// The manufacturer's DCS over RadSec (RADIUS over TLS, RFC 6614;
    /// `nido dcs serve --radsec`): as --radius, over TCP and TLS, this
    /// network authenticating with its certificate from `nido network
    /// radsec-cert` (which the manufacturer pins with `nido dcs add-client
    /// --radsec-cert`).
    #[arg(long, value_name = "HOST:PORT", requires = "dcs_root")]
    radsec: Option<String>,
    /// The manufacturer's root certificate (PEM): the RadSec DCS's
    /// certificate must chain to it.
    #[arg(long, value_name = "MFR-ROOT.pem", requires = "radsec")]
    dcs_root: Option<PathBuf>,
    /// The name the RadSec DCS's certificate carries (its dNSName, `nido
    /// dcs init --host`); by default the HOST of --radsec.
    #[arg(long, value_name = "NAME", requires = "radsec")]
    dcs_host: Option<String>,
    /// The RADIUS shared secret with that DCS (visible in the process
    /// list: prefer --secret-file).
    #[arg(long, requires = "radius", conflicts_with = "secret_file")]
    secret: Option<String>,
    /// A file whose first line is the RADIUS shared secret.
    #[arg(long, requires = "radius", value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The address RADIUS requests leave from (the one the DCS has for this
    /// network); by default the system picks.
    #[arg(long, requires = "radius", value_name = "IP")]
    source: Option<std::net::IpAddr>,
    /// Devices whose issuing CA has no CRL here: `require-crl` refuses them
    /// (#74, revocation status unknown) until `crl-import`;
    /// `allow-without-crl` accepts them.
    #[arg(long, value_enum, default_value = "require-crl")]
    revocation: Revocation,
    /// Use a CRL past its nextUpdate as if it were current (by default such
    /// a CRL makes every device of the manufacturer wait, #74, until a
    /// fresh one is imported).
    #[arg(long)]
    accept_stale_crl: bool,
    /// The most subscriptions this manufacturer's devices may get (each
    /// takes an IMSI of the range); the next one is refused with #74 and an
    /// audit entry.
    #[arg(long, default_value_t = DEFAULT_MAX_SUBSCRIPTIONS, value_name = "N")]
    max_subscriptions: u64,
}

#[derive(Args)]
pub(crate) struct RadsecCertArgs {
    #[command(flatten)]
    dir: DirArg,
}

#[derive(Args)]
pub(crate) struct CrlArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The manufacturer the CRL belongs to.
    #[arg(long)]
    manufacturer: String,
    /// The CA certificate that signed the CRL (the manufacturer's issuing CA).
    #[arg(long)]
    issuer: PathBuf,
    /// What the CRL does to devices that hold a subscription and whose
    /// certificate it revokes: `suspend` blocks them at once (a registered
    /// one is deregistered, #3), `next-registration` when they next
    /// register. `unblock` resumes a device either way.
    #[arg(long, value_enum, default_value_t = Active::Suspend)]
    active: Active,
    /// Print the result as JSON (the API's object).
    #[arg(long)]
    json: bool,
    /// The CRL (PEM or DER).
    file: PathBuf,
}

/// `--active` of `crl-import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Active {
    /// Suspend at once.
    Suspend,
    /// Suspend from the next registration on.
    NextRegistration,
}

#[derive(Args)]
pub(crate) struct BlockArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Why (kept in the block list).
    #[arg(long, default_value = "blocked by the operator")]
    reason: String,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
pub(crate) struct UnblockArgs {
    #[command(flatten)]
    dir: DirArg,
    #[command(flatten)]
    device: DeviceArg,
}

/// A device named on the command line: its identity is the enrolled
/// manufacturer together with the serial.
#[derive(Args)]
pub(crate) struct DeviceArg {
    /// The enrolled manufacturer of DEVICE, when DEVICE is a bare serial.
    #[arg(long)]
    pub(crate) manufacturer: Option<String>,
    /// The device: MANUFACTURER/SERIAL (as `nido network devices` lists
    /// it), or SERIAL with --manufacturer.
    #[arg(value_name = "DEVICE")]
    pub(crate) device: String,
}

impl DeviceArg {
    /// The device identity named.
    pub(crate) fn id(&self) -> Result<nido_net::DeviceId> {
        match &self.manufacturer {
            Some(m) => Ok(nido_net::DeviceId::new(m, &self.device)?),
            None => self.device.parse().map_err(|e| {
                crate::args::UsageError::new(
                    "DEVICE",
                    format!(
                        "{:?}: name the device as MANUFACTURER/SERIAL, or give --manufacturer ({e})",
                        self.device
                    ),
                )
                .into()
            }),
        }
    }
}

#[derive(Args)]
pub(crate) struct ClaimsArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The enrolled manufacturer whose devices the claims are for.
    #[arg(long)]
    manufacturer: String,
    /// The certificate that signed the file: the manufacturer's issuing
    /// CA (issuing-ca.pem next to claims.csv), signed by its enrolled root.
    #[arg(long)]
    signer: PathBuf,
    /// The detached signature (default: FILE.sig).
    #[arg(long)]
    signature: Option<PathBuf>,
    /// The manufacturer's claims.csv.
    file: PathBuf,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) dir: DirArg,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct DevicesArgs {
    #[command(flatten)]
    dir: DirArg,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Devices in this state (authenticated, onboarding, provisioning,
    /// provisioned, active, released, refused; claimed: never seen).
    #[arg(long)]
    state: Option<String>,
    /// Devices of this manufacturer.
    #[arg(long)]
    manufacturer: Option<String>,
    /// Devices of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// Devices whose last refusal had this 5GMM cause (a number).
    #[arg(long)]
    cause: Option<u8>,
    /// Devices whose identity contains this text.
    #[arg(long)]
    search: Option<String>,
}

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    dir: DirArg,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// The newest N entries.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Entries of this device only (MANUFACTURER/SERIAL).
    #[arg(long)]
    device: Option<String>,
    /// Entries of this kind only (refused, provisioned, blocked, …).
    #[arg(long)]
    kind: Option<String>,
}

pub(crate) fn run(command: Network) -> Result<()> {
    match command {
        Network::Init(a) => init(&a),
        Network::Serve(a) => serve::run(&a),
        Network::TrustManufacturer(a) => trust(&a),
        Network::RadsecCert(a) => radsec_cert(&a),
        Network::CrlImport(a) => crl(&a),
        Network::Block(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            let device = a.device.id()?;
            let o =
                service::block(&store, &Caller::Operator, &device, &a.reason).map_err(cli_error)?;
            outln!("{} {}", o.device, o.result);
            Ok(())
        }
        Network::Unblock(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            let device = a.device.id()?;
            let o = service::unblock(&store, &Caller::Operator, &device).map_err(cli_error)?;
            outln!("{} {}", o.device, o.result);
            Ok(())
        }
        Network::ImportClaims(a) => claims(&a),
        Network::Release(a) => release::run(&a),
        Network::Rekey(a) => rekey::run(&a),
        Network::SuciKey(c) => suci_key::run(&c),
        Network::Devices(a) => devices(&a),
        Network::Subscriptions(a) => subscriptions(&a),
        Network::Audit(a) => audit(&a),
        Network::Token(c) => token::run(c),
        Network::Delivery(c) => crate::cmd::delivery::network(&c),
    }
}

/// The configuration and the store of a network directory.
/// A service error as the CLI says it (the operator sees the store's
/// reason, which the API keeps to its log).
pub(crate) fn cli_error(e: service::ServiceError) -> anyhow::Error {
    match e {
        service::ServiceError::NotFound(what) => anyhow::anyhow!("{what}"),
        other => anyhow::anyhow!("{other}"),
    }
}

pub(crate) fn open(dir: &Path, db: Option<&str>) -> Result<(Config, SqlStore)> {
    let config = Config::load(dir)?;
    let url = match db {
        Some(db) => db.to_owned(),
        None => config::database_url(dir, &config),
    };
    let store = SqlStore::open(&url, config::kek(dir, &config)?)
        .with_context(|| format!("database {url}"))?;
    Ok((config, store))
}

fn random<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>> {
    let mut out = zeroize::Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(out.as_mut()).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(out)
}

fn init(a: &InitArgs) -> Result<()> {
    let dir = &a.dir.dir;
    if dir.join(config::FILE).exists() {
        bail!("{}: already a network directory", dir.display());
    }
    create_dir_all(&dir.join("keys"))?;
    let text = config::template(
        &a.mcc,
        &a.mnc,
        a.nid.as_deref(),
        &a.listen,
        &a.db,
        a.msin_count,
        &a.claim_policy,
    );
    let op = random::<16>()?;
    write_atomic(
        &dir.join("keys/op.hex"),
        hex::encode(op.as_ref()).as_bytes(),
        MODE_SECRET,
    )?;
    let kek = Kek::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(
        &dir.join("keys/kek.hex"),
        kek.to_hex().as_bytes(),
        MODE_SECRET,
    )?;
    let hn = HomeNetworkKey::generate(Profile::A, 1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let private = hn.private_octets().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_atomic(
        &dir.join("keys/suci-a-1.hex"),
        hex::encode(private.expose()).as_bytes(),
        MODE_SECRET,
    )?;
    write_atomic(&dir.join(config::FILE), text.as_bytes(), MODE_PUBLIC)?;
    // Check the file parses, then create and migrate the database.
    let (config, store) = open(dir, None)?;
    store.set_msin_range(config.subscriptions.msin_count)?;
    outln!(
        "network {}-{}{} created in {}\n  database: {}\n  next: nido network trust-manufacturer --dir {} --name NAME --realm REALM --dcs DCSDIR",
        config.network.mcc,
        config.network.mnc,
        config
            .network
            .nid
            .as_deref()
            .map(|n| format!(" NID {n}"))
            .unwrap_or_default(),
        dir.display(),
        config::database_url(dir, &config),
        dir.display()
    );
    Ok(())
}

/// Whether a DCS of this network (its own or an external one) already
/// serves `realm`.
fn realm_served(config: &Config, realm: &str) -> bool {
    config
        .dcs
        .iter()
        .any(|d| d.realm.eq_ignore_ascii_case(realm))
        || config
            .external_dcs
            .iter()
            .any(|d| d.realm.eq_ignore_ascii_case(realm))
}

/// `trust-manufacturer --radius`: the manufacturer's own DCS, over RADIUS.
/// The secret goes to `dcs/REALM/radius.secret` (0600) and an
/// `[[external_dcs]]` entry to nido.toml; `serve` relays the realm's
/// onboarding EAP there from its next start.
fn trust_external(a: &TrustArgs) -> Result<()> {
    if a.radsec.is_some() {
        return trust_radsec(a);
    }
    let dir = &a.dir.dir;
    let (config, _store) = open(dir, None)?;
    nido_pki::check_manufacturer_name(&a.name)?;
    let radius = a.radius.as_deref().unwrap_or_default();
    std::net::ToSocketAddrs::to_socket_addrs(radius)
        .map_err(|e| UsageError::new("--radius", format!("{radius}: {e}")))?;
    let secret = match (&a.secret, &a.secret_file) {
        (Some(s), None) => zeroize::Zeroizing::new(s.clone()),
        (None, Some(f)) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?,
            );
            zeroize::Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
        }
        _ => return Err(UsageError::new("--secret", "give --secret or --secret-file").into()),
    };
    if secret.len() < 16 {
        return Err(UsageError::new(
            "--secret",
            "at least 16 characters (RFC 2865 §3: large and unguessable)",
        )
        .into());
    }
    let realm = a.realm.to_ascii_lowercase();
    if realm_served(&config, &realm) {
        bail!("a DCS already serves realm {realm}; nothing changed");
    }
    let target = dir.join("dcs").join(&realm);
    create_dir_all(&target)?;
    write_atomic(
        &target.join("radius.secret"),
        format!("{}\n", secret.as_str()).as_bytes(),
        MODE_SECRET,
    )?;
    let path = dir.join(config::FILE);
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str(&format!(
        "\n[[external_dcs]]\n# {name}: its own DCS, over RADIUS\nrealm = \"{realm}\"\nmanufacturer = \"{name}\"\nradius = \"{radius}\"\nsecret = \"dcs/{realm}/radius.secret\"\n{source}",
        name = a.name,
        source = a
            .source
            .map(|s| format!("source = \"{s}\"\n"))
            .unwrap_or_default(),
    ));
    write_atomic(&path, text.as_bytes(), MODE_PUBLIC)?;
    config::Config::load(dir)?;
    outln!(
        "manufacturer {:?} trusted through its own DCS at {radius} (RADIUS) for realm {realm}; \
         `nido network serve` relays its devices' onboarding there from its next start",
        a.name
    );
    Ok(())
}

/// `trust-manufacturer --radsec`: the manufacturer's own DCS, over RadSec.
/// Its root goes to `dcs/REALM/dcs-root.pem` and an `[[external_dcs]]`
/// entry to nido.toml; the network's client certificate must exist
/// (`radsec-cert`), so that the route loads.
fn trust_radsec(a: &TrustArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let (config, _store) = open(dir, None)?;
    nido_pki::check_manufacturer_name(&a.name)?;
    let radsec = a.radsec.as_deref().unwrap_or_default();
    std::net::ToSocketAddrs::to_socket_addrs(radsec)
        .map_err(|e| UsageError::new("--radsec", format!("{radsec}: {e}")))?;
    let root_path = a.dcs_root.as_deref().unwrap_or(Path::new(""));
    let roots = read_certs(root_path).map_err(|e| UsageError::new("--dcs-root", e.to_string()))?;
    let Some(root) = roots.first() else {
        return Err(UsageError::new("--dcs-root", "no certificate in the file").into());
    };
    let host = a
        .dcs_host
        .clone()
        .unwrap_or_else(|| config::host_of(radsec).to_owned());
    if !dir.join(config::RADSEC_CERT).exists() {
        bail!(
            "{}: no RadSec client certificate yet; create it with `nido network radsec-cert --dir {}` and have the manufacturer pin it",
            dir.join(config::RADSEC_CERT).display(),
            dir.display()
        );
    }
    let realm = a.realm.to_ascii_lowercase();
    if realm_served(&config, &realm) {
        bail!("a DCS already serves realm {realm}; nothing changed");
    }
    let target = dir.join("dcs").join(&realm);
    create_dir_all(&target)?;
    write_atomic(
        &target.join("dcs-root.pem"),
        pem("CERTIFICATE", root).as_bytes(),
        MODE_PUBLIC,
    )?;
    let path = dir.join(config::FILE);
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str(&format!(
        "\n[[external_dcs]]\n# {name}: its own DCS, over RadSec (RFC 6614)\nrealm = \"{realm}\"\nmanufacturer = \"{name}\"\nradsec = \"{radsec}\"\ndcs_root = \"dcs/{realm}/dcs-root.pem\"\ndcs_host = \"{host}\"\n",
        name = a.name,
    ));
    write_atomic(&path, text.as_bytes(), MODE_PUBLIC)?;
    let config = config::Config::load(dir)?;
    // The route must load (root, client certificate, host name).
    if let Some(e) = config.external_dcs.iter().find(|e| e.realm == realm) {
        e.route(dir)?;
    }
    outln!(
        "manufacturer {:?} trusted through its own DCS at {radsec} (RadSec, DCS name {host}) for realm {realm}; \
         `nido network serve` relays its devices' onboarding there from its next start",
        a.name
    );
    Ok(())
}

/// `radsec-cert`: the network's RadSec client identity, created once.
fn radsec_cert(a: &RadsecCertArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let config = Config::load(dir)?;
    let cert_path = dir.join(config::RADSEC_CERT);
    let key_path = dir.join(config::RADSEC_KEY);
    let created = if cert_path.exists() {
        false
    } else {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| anyhow::anyhow!("RadSec key: {e}"))?;
        let snn = config.serving_network()?.snn;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            format!("nido RadSec client {snn}"),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        let cert = params
            .self_signed(&key)
            .map_err(|e| anyhow::anyhow!("RadSec certificate: {e}"))?;
        let secret = zeroize::Zeroizing::new(key.serialize_pem());
        write_atomic(&key_path, secret.as_bytes(), MODE_SECRET)?;
        write_atomic(
            &cert_path,
            pem("CERTIFICATE", cert.der()).as_bytes(),
            MODE_PUBLIC,
        )?;
        true
    };
    config::check_key_file(&key_path, "RadSec key")?;
    let der = read_certs(&cert_path)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", cert_path.display()))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    let mut fp = [0u8; 32];
    fp.copy_from_slice(digest.as_ref());
    outln!(
        "{} RadSec client certificate {}\nSHA-256 {}\n(the manufacturer pins it: nido dcs add-client --dir DCS --name NAME --radsec-cert {})",
        if created { "created" } else { "existing" },
        cert_path.display(),
        nido_dcs::clients::fingerprint_hex(&fp),
        cert_path.display()
    );
    Ok(())
}

fn trust(a: &TrustArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let Some(dcs) = &a.dcs else {
        return trust_external(a);
    };
    let (config, store) = open(dir, None)?;
    let root = read_certs(&dcs.join("mfr-root.pem"))?;
    let root = root
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", dcs.join("mfr-root.pem").display()))?;
    let policy = Policy {
        allow_without_crl: a.revocation == Revocation::AllowWithoutCrl,
        accept_stale_crl: a.accept_stale_crl,
        max_subscriptions: Some(a.max_subscriptions),
        ..Policy::default()
    };
    nido_pki::check_manufacturer_name(&a.name)?;
    // The DCS credentials go next to the configuration, before the
    // manufacturer is enrolled: enrolling moves the trust generation, and a
    // serving network then loads the realm's credentials from there.
    let target = dir.join("dcs").join(&a.realm);
    create_dir_all(&target)?;
    let chain = std::fs::read(dcs.join("dcs.pem")).context("dcs.pem")?;
    let key = zeroize::Zeroizing::new(std::fs::read(dcs.join("dcs.key")).context("dcs.key")?);
    write_atomic(&target.join("dcs.pem"), &chain, MODE_PUBLIC)?;
    write_atomic(&target.join("dcs.key"), &key, MODE_SECRET)?;
    if !config.dcs.iter().any(|d| d.realm == a.realm) {
        let path = dir.join(config::FILE);
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!(
            "\n[[dcs]]\n# {}\nrealm = \"{}\"\nchain = \"dcs/{}/dcs.pem\"\nkey = \"dcs/{}/dcs.key\"\n",
            a.name, a.realm, a.realm, a.realm
        ));
        write_atomic(&path, text.as_bytes(), MODE_PUBLIC)?;
    }
    store.put_manufacturer(&a.name, root.as_ref(), &policy)?;
    outln!(
        "manufacturer {:?} enrolled; its DCS serves realm {}",
        a.name,
        a.realm
    );
    if a.revocation == Revocation::RequireCrl
        && !store.crls()?.iter().any(|c| c.manufacturer == a.name)
    {
        outln!(
            "  its devices are refused (#74, revocation status unknown) until its CRL is imported: \
             nido network crl-import --dir {} --manufacturer {:?} --issuer ISSUING_CA.pem CRL.pem",
            dir.display(),
            a.name
        );
    }
    Ok(())
}

fn crl(a: &CrlArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    let crl = read_crl(&a.file)?;
    let issuer = read_certs(&a.issuer)?;
    let issuer = issuer
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", a.issuer.display()))?;
    // Checked (signature, issuer) before it is kept: the API's import.
    let imported = service::import_crl(
        &store,
        &Caller::Operator,
        &a.manufacturer,
        crl.as_ref(),
        issuer.as_ref(),
        match a.active {
            Active::Suspend => service::RevokedActive::Suspend,
            Active::NextRegistration => service::RevokedActive::NextRegistration,
        },
    )
    .map_err(cli_error)?;
    if a.json {
        outln!("{}", serde_json::to_string(&imported)?);
        return Ok(());
    }
    outln!("CRL of {} imported", a.manufacturer);
    let when = match a.active {
        Active::Suspend => "at once",
        Active::NextRegistration => "from its next registration",
    };
    for device in &imported.suspended {
        outln!(
            "{device}: certificate revoked, subscription suspended {when} (nido network unblock resumes it)"
        );
    }
    Ok(())
}

fn claims(a: &ClaimsArgs) -> Result<()> {
    let (_, mut store) = open(&a.dir.dir, None)?;
    let bytes = std::fs::read(&a.file).with_context(|| a.file.display().to_string())?;
    let sig_path = a.signature.clone().unwrap_or_else(|| {
        let mut p = a.file.clone().into_os_string();
        p.push(".sig");
        PathBuf::from(p)
    });
    let sig = std::fs::read(&sig_path).with_context(|| {
        format!(
            "{}: the manufacturer's signature of {} (claims are imported only signed)",
            sig_path.display(),
            a.file.display()
        )
    })?;
    let signer = read_certs(&a.signer)?;
    let signer = signer
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", a.signer.display()))?;
    let enrolled = store.manufacturers()?;
    let m = enrolled
        .iter()
        .find(|m| m.name == a.manufacturer)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not an enrolled manufacturer", a.manufacturer))?;
    nido_pki::verify_detached(
        &nido_pki::CertificateDer::from(m.root_der.clone()),
        signer,
        &bytes,
        &sig,
    )
    .with_context(|| format!("{} is not signed by {:?}", a.file.display(), a.manufacturer))?;
    let text = String::from_utf8(bytes).with_context(|| a.file.display().to_string())?;
    let (mut n, mut refused) = (0, 0);
    for (i, line) in text.lines().enumerate().skip(1) {
        let Some((serial, hash)) = line.split_once(',') else {
            bail!(
                "{}:{}: expected serial,claim_code_hash",
                a.file.display(),
                i + 1
            );
        };
        let device = nido_net::DeviceId::new(&a.manufacturer, serial.trim())
            .with_context(|| format!("{}:{}", a.file.display(), i + 1))?;
        match store.add_claimable(&device, hash.trim()) {
            Ok(()) => n += 1,
            Err(nido_net::StoreError::Conflict(e)) => {
                eprintln!("{}:{}: refused: {e}", a.file.display(), i + 1);
                refused += 1;
            }
            Err(e) => bail!("{}:{}: {e}", a.file.display(), i + 1),
        }
    }
    outln!("{n} claimable devices of {:?} imported", a.manufacturer);
    if refused > 0 {
        bail!("{refused} rows refused (devices already claimed, or codes of another device)");
    }
    Ok(())
}

fn devices(a: &DevicesArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    let mut q = service::DeviceQuery {
        state: a.state.clone(),
        manufacturer: a.manufacturer.clone(),
        owner: a.owner.clone(),
        cause: a.cause,
        q: a.search.clone(),
        after: None,
        limit: Some(nido_store::PAGE_MAX),
    };
    loop {
        let page = service::devices(&store, &Caller::Operator, &q).map_err(cli_error)?;
        for d in &page.items {
            if a.json {
                outln!("{}", serde_json::to_string(d)?);
            } else {
                outln!(
                    "{:<28} {:<12} {:<5} first {} last {}",
                    d.device,
                    d.state,
                    d.cause.map(|c| format!("#{c}")).unwrap_or_default(),
                    d.first_seen.as_deref().unwrap_or("-"),
                    d.last_seen.as_deref().unwrap_or("-")
                );
            }
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(()),
        }
    }
}

fn subscriptions(a: &ListArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    let mut q = service::SubscriptionQuery {
        after: None,
        limit: Some(nido_store::PAGE_MAX),
    };
    loop {
        let page = service::subscriptions(&store, &Caller::Operator, &q).map_err(cli_error)?;
        for s in &page.items {
            if a.json {
                outln!("{}", serde_json::to_string(s)?);
            } else {
                outln!(
                    "{:<22} {:<28} {:<12} {:<20} {}",
                    s.supi,
                    s.device,
                    s.state,
                    s.not_after.as_deref().unwrap_or("-"),
                    s.owner.as_deref().unwrap_or("-")
                );
            }
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(()),
        }
    }
}

fn audit(a: &AuditArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    let mut q = service::AuditQuery {
        device: a.device.clone(),
        kind: a.kind.clone(),
        before: None,
        limit: Some(a.limit.clamp(1, nido_store::PAGE_MAX)),
    };
    // Newest first, page by page, up to --limit; printed oldest first.
    let mut entries = Vec::new();
    while entries.len() < a.limit {
        q.limit = Some((a.limit - entries.len()).clamp(1, nido_store::PAGE_MAX));
        let page = service::audit(&store, &Caller::Operator, &q).map_err(cli_error)?;
        entries.extend(page.items);
        match page.next {
            Some(next) => q.before = next.parse().ok(),
            None => break,
        }
    }
    for e in entries.iter().rev() {
        if a.json {
            outln!("{}", serde_json::to_string(e)?);
        } else {
            outln!(
                "{} {:<22} {:<26} {:<22} {} {}",
                e.at,
                e.kind,
                e.device.as_deref().unwrap_or("-"),
                e.supi.as_deref().unwrap_or("-"),
                e.cause.map(|c| format!("#{c}")).unwrap_or_default(),
                e.detail
            );
        }
    }
    Ok(())
}
