//! `nido device run`: one device process from its factory bundle.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nido_access::device::{Backoff, system_information};
use nido_access::fleet::{Control, FleetOptions, run_fleet};
use nido_eap::DeviceCredentials;
use nido_pki::FactoryBundle;
use nido_prov::package::ServingNetwork;
use nido_se::{FileSe, Pkcs11Config, Pkcs11Se, SeError, SecureElement};
use nido_sim::{Bursts, Devices, Link};
use nido_ue::{Device, DeviceConfig, DeviceEvent, DeviceState};
use rustls::pki_types::PrivateKeyDer;

const ABOUT: &str = "\
A device process: it holds its factory bundle's identity in a secure
element (a file vault next to the bundle by default), onboards over the UDP
access link, installs its subscription, validates it with 5G-AKA and sends
bursts. Kill it at any point: it picks up from its vault when restarted.

  nido device run --bundle factory/batch-1/ACMESENS-0000000001 --network 127.0.0.1:4997 --until active
  nido device run --bundle ... --network ... --snpn 999-99-000000000AB   # override what the network announces
  nido device run --bundle ... --network ... --burst-every 10 --payload 't=21.5C' --bursts 3
  nido device reset --bundle factory/batch-1/ACMESENS-0000000001   # factory reset with proof of erasure";

/// `nido device` subcommands.
#[derive(Subcommand)]
#[command(about = ABOUT, long_about = ABOUT)]
pub(crate) enum DeviceCmd {
    /// Runs the device until its job is done (see --until, --bursts).
    Run(Box<RunArgs>),
    /// Opens the device's vault and prints what it holds (never a secret):
    /// the subscription's SUPI and owner, and the SQN window's SQN_MS.
    Status(StatusArgs),
    /// Factory reset with proof of erasure: erases the subscription and the
    /// owner's credentials from the secure element (file vault or PKCS#11
    /// token) and keeps an erasure receipt signed with the IDevID key. At
    /// its next onboarding the device presents the receipt and the network
    /// gives it a new K in place, without the operator releasing anything.
    Reset(ResetArgs),
}

/// Where the device's secure element is: the file vault (default) or a
/// PKCS#11 token.
#[derive(Args)]
pub(crate) struct ElementArgs {
    /// The vault directory (default: BUNDLE/vault).
    #[arg(long)]
    vault: Option<PathBuf>,
    /// Keep the IDevID key and K in this PKCS#11 token (by label) instead
    /// of the file vault; the bundle's key is imported on first use.
    #[arg(long)]
    token_label: Option<String>,
    /// The PKCS#11 module of the token.
    #[arg(long, default_value = nido_se::pkcs11::SOFTHSM2_MODULE)]
    pkcs11_module: PathBuf,
    /// The token's user PIN (default: $NIDO_TOKEN_PIN).
    #[arg(long, env = "NIDO_TOKEN_PIN", hide_env_values = true)]
    pin: Option<String>,
}

#[derive(Args)]
pub(crate) struct ResetArgs {
    /// The factory bundle directory.
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    element: ElementArgs,
    /// Print what was erased as one JSON object (the receipt's SHA-256,
    /// never the receipt).
    #[arg(long)]
    json: bool,
    /// Also write the receipt (CBOR, mode 0600) to this file, for an audit
    /// or an independent check of its signature; keep it as secret as the
    /// device's key.
    #[arg(long, value_name = "FILE")]
    receipt_out: Option<PathBuf>,
}

/// Writes `bytes` to a new file at `path`, mode 0600, and syncs it.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The factory bundle directory.
    #[arg(long)]
    bundle: PathBuf,
    /// The vault directory (default: BUNDLE/vault).
    #[arg(long)]
    vault: Option<PathBuf>,
}

/// When `run` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Until {
    /// When the subscription is active (phase C done), or the device is
    /// refused or gives up.
    Active,
    /// Once the last of --bursts bursts has left (a CONTROL PLANE SERVICE
    /// REQUEST's burst once the network accepted it), or the device gives
    /// up; without --bursts or --burst-every, never (the device stays
    /// registered until --timeout or Ctrl-C). A refused device backs off
    /// and tries again meanwhile.
    Bursts,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The factory bundle directory (manifest.json, device key, chain).
    #[arg(long)]
    bundle: PathBuf,
    /// The network's UDP access link address.
    #[arg(long)]
    network: String,
    #[command(flatten)]
    element: ElementArgs,
    /// The onboarding network as MCC-MNC[-NID]. Without it the device asks
    /// the network which network it is (its system information, as a cell
    /// broadcasts it) and uses what it hears; with it, this overrides what
    /// the network announces. Either way the serving network name enters
    /// the device's keys: the wrong one only makes the attach fail.
    #[arg(long, value_name = "MCC-MNC[-NID]")]
    snpn: Option<String>,
    /// Seconds between bursts once active (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    burst_every: Option<u64>,
    /// The burst payload (UTF-8).
    #[arg(long, default_value = "hello from nido")]
    payload: String,
    /// Send this many bursts, then stop (with --until bursts).
    #[arg(long)]
    bursts: Option<u32>,
    /// When to stop.
    #[arg(long, value_enum, default_value_t = Until::Bursts)]
    until: Until,
    /// Give up (exit 1) after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Print state changes as JSON lines.
    #[arg(long)]
    json: bool,
    #[command(flatten, next_help_heading = "Device timers")]
    timers: crate::args::DeviceTimerArgs,
}

pub(crate) fn serving_network(text: &str) -> Result<ServingNetwork> {
    let parts: Vec<&str> = text.split('-').collect();
    let (mcc, mnc, nid) = match parts.as_slice() {
        [mcc, mnc] => (*mcc, *mnc, None),
        [mcc, mnc, nid] => (*mcc, *mnc, Some(*nid)),
        _ => bail!("--snpn: expected MCC-MNC or MCC-MNC-NID, got {text:?}"),
    };
    ServingNetwork::new(mcc, mnc, nid).map_err(|e| anyhow::anyhow!("--snpn: {e}"))
}

/// Where a device's onboarding network came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The network's system information.
    Announced,
    /// `--snpn`.
    Override,
}

impl Source {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Announced => "announced",
            Self::Override => "--snpn",
        }
    }
}

/// How long a device with `--snpn` listens for the network's system
/// information, only to say when it disagrees.
const OVERRIDE_CHECK: Duration = Duration::from_secs(1);

/// The onboarding network a device driver configures its devices with:
/// what the network at `network` announces (asked over `socket` with
/// transaction id `id`, again with a bounded back-off until `deadline`),
/// or `snpn` (MCC-MNC[-NID]) when given. The override wins when the two
/// disagree (a warning on stderr says so): it is what the operator said,
/// and the announcement is unauthenticated anyway. `Ok(None)`: no
/// `snpn`, and nobody answered by `deadline`.
pub(crate) fn onboarding_network(
    snpn: Option<&str>,
    socket: &UdpSocket,
    network: SocketAddr,
    id: u64,
    deadline: Option<Instant>,
) -> Result<Option<(ServingNetwork, Source)>> {
    let given = snpn.map(serving_network).transpose()?;
    let deadline = match &given {
        // Only to compare: a short listen, never past the run's deadline.
        Some(_) => {
            let check = Instant::now() + OVERRIDE_CHECK;
            Some(deadline.map_or(check, |d| d.min(check)))
        }
        None => deadline,
    };
    let heard = system_information(socket, network, id, Backoff::default(), deadline)
        .with_context(|| format!("system information from {network}"))?
        .map(|info| info.serving_network())
        .transpose()
        .map_err(|e| anyhow::anyhow!("system information from {network}: {e}"))?;
    Ok(match (given, heard) {
        (Some(given), Some(heard)) => {
            if given.snn != heard.snn {
                eprintln!(
                    "nido: warning: the network at {network} announces {}; --snpn overrides it with {}",
                    heard.snn, given.snn
                );
            }
            Some((given, Source::Override))
        }
        (Some(given), None) => Some((given, Source::Override)),
        (None, Some(heard)) => Some((heard, Source::Announced)),
        (None, None) => None,
    })
}

fn state_name(s: DeviceState) -> &'static str {
    match s {
        DeviceState::Off => "off",
        DeviceState::Onboarding => "onboarding",
        DeviceState::Provisioning => "provisioning",
        DeviceState::Deregistering => "deregistering",
        DeviceState::Registering => "registering",
        DeviceState::Active => "active",
        DeviceState::BackingOff => "backing-off",
        DeviceState::Failed => "failed",
    }
}

pub(crate) fn run_cmd(command: DeviceCmd) -> Result<()> {
    match command {
        DeviceCmd::Run(a) => run_device(&a),
        DeviceCmd::Status(a) => status(&a),
        DeviceCmd::Reset(a) => reset(&a),
    }
}

fn status(a: &StatusArgs) -> Result<()> {
    FactoryBundle::load(&a.bundle).with_context(|| format!("--bundle {}", a.bundle.display()))?;
    let vault = a.vault.clone().unwrap_or_else(|| a.bundle.join("vault"));
    if !vault.join("vault.bin").exists() {
        outln!(
            "{}",
            serde_json::json!({"vault": false, "subscription": false})
        );
        return Ok(());
    }
    let se = FileSe::open(&vault).map_err(|e| anyhow::anyhow!("vault {}: {e}", vault.display()))?;
    let public = se.installed();
    let sqn_ms = se.sqn_window().map(|w| w.sqn_ms().seq());
    outln!(
        "{}",
        serde_json::json!({
            "vault": true,
            "subscription": se.has_subscription(),
            "supi": public.as_ref().map(|p| p.supi.to_string()),
            "owner": public.as_ref().and_then(|p| p.owner.clone()),
            "sqn_ms_seq": sqn_ms,
        })
    );
    Ok(())
}

/// Opens the device's secure element (`element`), making it from the
/// factory bundle's key on first use.
fn open_element(
    bundle_dir: &std::path::Path,
    bundle: &FactoryBundle,
    element: &ElementArgs,
) -> Result<Box<dyn SecureElement>> {
    Ok(match &element.token_label {
        Some(label) => {
            let pin = element
                .pin
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("--token-label needs --pin or $NIDO_TOKEN_PIN"))?;
            let config = Pkcs11Config::new(&element.pkcs11_module, label, pin);
            let opened = Pkcs11Se::open(&config);
            Box::new(match opened {
                Ok(se) => se,
                // First use: the factory key goes into the token, once.
                Err(SeError::IdentityKey(_)) => Pkcs11Se::create(
                    &config,
                    &PrivateKeyDer::Pkcs8(bundle.identity.key.clone_key()),
                )
                .map_err(|e| anyhow::anyhow!("token {label:?}: {e}"))?,
                Err(e) => bail!("token {label:?}: {e}"),
            })
        }
        None => {
            let vault = element
                .vault
                .clone()
                .unwrap_or_else(|| bundle_dir.join("vault"));
            Box::new(
                if vault.join("vault.bin").exists() {
                    FileSe::open(&vault)
                } else {
                    FileSe::create(
                        &vault,
                        &PrivateKeyDer::Pkcs8(bundle.identity.key.clone_key()),
                    )
                }
                .map_err(|e| anyhow::anyhow!("vault {}: {e}", vault.display()))?,
            )
        }
    })
}

/// `nido device reset`.
fn reset(a: &ResetArgs) -> Result<()> {
    let bundle = FactoryBundle::load(&a.bundle).with_context(|| a.bundle.display().to_string())?;
    let mut se = open_element(&a.bundle, &bundle, &a.element)?;
    let serial = &bundle.identity.serial;
    let now = SystemTime::now();
    let at = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let receipt = match se.reset(serial, at) {
        Ok(r) => r,
        Err(SeError::NoSubscription) => match se.erasure_receipt() {
            Some(r) => {
                eprintln!(
                    "nido: {serial}: no subscription to erase; the receipt of reset #{} (package {}) is kept for the next onboarding",
                    r.counter,
                    hex::encode(r.package_id)
                );
                return Ok(());
            }
            None => bail!("{serial}: the secure element holds no subscription: nothing to reset"),
        },
        Err(e) => bail!("{serial}: reset: {e}"),
    };
    let summary = serde_json::json!({
        "serial": receipt.serial,
        "package_id": hex::encode(receipt.package_id),
        "reset": receipt.counter,
        "erased_at": nido_store::iso8601_unix(receipt.erased_at_unix),
        // Its digest only: with a copy of the IDevID key the receipt itself
        // would re-provision the subscription (it is kept in the element).
        "receipt_sha256": hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &receipt.encode()
        )),
    });
    if let Some(path) = &a.receipt_out {
        write_private(path, &receipt.encode())
            .with_context(|| format!("--receipt-out {}", path.display()))?;
    }
    if a.json {
        outln!("{summary}");
    } else {
        outln!(
            "{serial}: subscription and owner credentials erased (package {}, reset #{} of this element, {}); \
             the erasure receipt is kept and goes to the network at the next onboarding",
            summary["package_id"].as_str().unwrap_or_default(),
            receipt.counter,
            summary["erased_at"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

fn run_device(a: &RunArgs) -> Result<()> {
    let bundle = FactoryBundle::load(&a.bundle).with_context(|| a.bundle.display().to_string())?;
    let se = open_element(&a.bundle, &bundle, &a.element)?;
    let public = se.installed();
    let credentials = DeviceCredentials::new(
        bundle.identity.chain.clone(),
        se.idevid_signer(),
        bundle.root.clone(),
        &bundle.dcs_realm,
    )?;
    let serial = bundle.identity.serial.clone();
    let network: SocketAddr = a
        .network
        .to_socket_addrs()
        .with_context(|| format!("--network {}", a.network))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--network {}: no address", a.network))?;
    let socket = UdpSocket::bind(if network.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    let mut base = [0u8; 8];
    aws_lc_rs::rand::fill(&mut base).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let base = u64::from_be_bytes(base) >> 24;
    let started = SystemTime::now();
    // Which network this is: asked first (retried with a bounded back-off
    // until --timeout), unless --snpn says so.
    let deadline = a.timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let Some((onboarding_network, source)) =
        onboarding_network(a.snpn.as_deref(), &socket, network, base, deadline)?
    else {
        bail!(
            "{serial}: timed out: no answer from {network} to the system-information request (failure: no answer)"
        );
    };
    if a.json {
        outln!(
            "{}",
            serde_json::json!({"serial": serial, "event": "network", "detail": {"snn": onboarding_network.snn, "source": source.name()}})
        );
    } else {
        outln!(
            "{serial} network {}",
            serde_json::json!({"snn": onboarding_network.snn, "source": source.name()})
        );
    }
    let config = DeviceConfig {
        timers: a.timers.timers()?,
        ..DeviceConfig::new(
            serial.clone(),
            credentials,
            bundle.dcs_realm.clone(),
            onboarding_network,
            bundle.kausf_from,
        )
    };
    let device = Device::new(config, se, public);
    // A fleet of one on the wall clock over a perfect link (the real one
    // is the socket): its bursts on a schedule, its events printed.
    let mut fleet = Devices::new(started, base, false);
    fleet.add(device);
    let bursts = match (a.until, a.burst_every) {
        (Until::Active, _) | (_, None) => None,
        (Until::Bursts, Some(every)) => Some(Bursts {
            count: a.bursts,
            every: Duration::from_secs(every),
            payload: a.payload.clone().into_bytes(),
            numbered: false,
        }),
    };
    let counted = bursts.as_ref().is_some_and(|b| b.count.is_some());
    if let Some(b) = bursts {
        fleet.set_bursts(b);
    }
    let json = a.json;
    let who = serial.clone();
    fleet.set_events(move |_, _, e| print_event(&who, json, e));
    // A device's own stop rule, not a fleet's "settled": a device refused
    // with integrity protection (#74 while its clone window runs, say)
    // backs off and tries again, as a real one does.
    let options = FleetOptions {
        rate: None,
        // What the system-information exchange took counts.
        timeout: deadline.map(|d| d.saturating_duration_since(Instant::now())),
        until_settled: false,
    };
    let until = a.until;
    let mut done = false;
    let link = Link::direct();
    run_fleet(
        &mut fleet,
        &[network],
        std::slice::from_ref(&socket),
        link,
        &options,
        |round| {
            let d = round.device(0);
            done = match (d.state(), until) {
                // Given up: nothing more will happen.
                (DeviceState::Failed, _) => true,
                (DeviceState::Active, Until::Active) => true,
                // Refused without protection, waiting T3247: a real device
                // would try again in 30-60 min; waiting for "active" that
                // long helps no one.
                (_, Until::Active) => d.refusal().is_some(),
                // Its last burst left (and was accepted, from idle).
                (DeviceState::Active, Until::Bursts) => counted && round.devices().is_settled(0),
                (_, Until::Bursts) => false,
            };
            if done {
                Control::Stop
            } else {
                Control::Continue
            }
        },
    )?;
    let device = fleet.get(0);
    // Not done: the run ended at --timeout.
    let timed_out = !done;
    let last_failure = fleet.metrics().failure(0, device.state());
    let refusal = device
        .refusal()
        .map_or_else(|| "no cause".to_owned(), |c| c.to_string());
    match device.state() {
        DeviceState::Failed => bail!(
            "{}: the network refused the device ({refusal}); it stays off until powered on again",
            device.serial(),
        ),
        _ if device.refusal().is_some() => bail!(
            "{}: the network refused the device ({refusal}) without integrity protection; \
             a device would try again after T3247 (30-60 min), its credentials kept",
            device.serial(),
        ),
        _ if timed_out => bail!(
            "{}: timed out in state {} (failure: {})",
            device.serial(),
            state_name(device.state()),
            last_failure
        ),
        _ => Ok(()),
    }
}

/// Prints one of a running device's events: a line `SERIAL EVENT DETAIL`,
/// or with `json` one JSON object.
fn print_event(serial: &str, json: bool, e: &DeviceEvent) {
    let print = |what: &str, detail: serde_json::Value| {
        if json {
            outln!(
                "{}",
                serde_json::json!({"serial": serial, "event": what, "detail": detail})
            );
        } else {
            outln!("{serial} {what} {detail}");
        }
    };
    match e {
        DeviceEvent::State { to, .. } => print("state", serde_json::json!(state_name(*to))),
        DeviceEvent::Provisioned {
            supi,
            owner,
            third_party,
        } => print(
            "provisioned",
            serde_json::json!({"supi": supi.to_string(), "owner": owner, "third_party": third_party}),
        ),
        DeviceEvent::Renewing {
            package_id,
            not_after_unix,
            refused,
        } => print(
            "renewing",
            serde_json::json!({
                "package_id": hex::encode(package_id),
                "not_after": nido_store::iso8601_unix(*not_after_unix),
                "refused_as_ended": refused,
            }),
        ),
        DeviceEvent::BurstSent { bytes, path } => print(
            "burst",
            serde_json::json!({"bytes": bytes, "path": format!("{path:?}")}),
        ),
        // What the owner's application sent the device.
        DeviceEvent::Downlink { psi, data } => print(
            "downlink",
            serde_json::json!({
                "psi": psi,
                "bytes": data.len(),
                "text": String::from_utf8_lossy(data),
                "hex": hex::encode(data),
            }),
        ),
        DeviceEvent::Rejected { message, cause } => print(
            "rejected",
            serde_json::json!({"message": message.name(), "cause": cause.octet()}),
        ),
        DeviceEvent::UnprotectedReject { cause, wait } => print(
            "unprotected-reject",
            serde_json::json!({
                "cause": cause.octet(),
                "credentials": "kept",
                "retry_in_s": wait.as_secs(),
            }),
        ),
        DeviceEvent::Congestion {
            t3346,
            protected,
            wait,
        } => print(
            "congestion",
            serde_json::json!({
                "t3346_s": t3346.as_secs(),
                "protected": protected,
                "retry_in_s": wait.as_secs(),
            }),
        ),
        DeviceEvent::SecurityModeRejected { cause, reason } => print(
            "security-mode-rejected",
            serde_json::json!({"cause": cause.octet(), "reason": reason}),
        ),
        // Failures not printed above (a security mode command that does
        // not verify, EAP-TLS refused by the device, ...).
        other => {
            if let Some(reason) = other.failure() {
                print("failure", serde_json::json!(reason));
            }
        }
    }
}
