//! Where devices' data goes (issue #14): an MQTT broker or a webhook (one
//! per owner: setting one replaces the other). `nido owner delivery` (one
//! owner's devices), `nido network delivery set` (the operator's default,
//! for devices no owner claimed and owners without their own) and `nido
//! network delivery status`. `nido network serve`'s delivery worker
//! (nido-deliver) reads the settings at every round: a change counts
//! without a restart.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use nido_store::{DeliveryConfig, DeliveryTarget};
use zeroize::Zeroizing;

use super::network::{DirArg, open};

/// A destination: an MQTT broker or a webhook.
#[derive(Args)]
pub(crate) struct MqttArgs {
    /// The broker, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS). Each burst is published at QoS 1 to
    /// PREFIX/<device serial>/up as JSON (device, serial, owner, supi, psi,
    /// seq, at, at_ms, data in base64), and counts as delivered only once
    /// the broker acknowledged it (PUBACK).
    #[arg(long, value_name = "URL", required_unless_present = "webhook")]
    mqtt: Option<String>,
    /// The topic prefix (with --mqtt).
    #[arg(long, default_value = "nido", value_name = "P")]
    topic_prefix: String,
    /// MQTT user name.
    #[arg(long, requires = "password_file", requires = "mqtt")]
    username: Option<String>,
    /// The file holding the MQTT password (`-`: standard input); stored
    /// sealed under the network's key-encryption key.
    #[arg(long, value_name = "FILE|-", requires = "username")]
    password_file: Option<PathBuf>,
    /// For an mqtts:// broker: the CA certificates (PEM file) its
    /// certificate must chain to (default: the Web PKI roots).
    #[arg(long, value_name = "FILE", requires = "mqtt")]
    tls_ca: Option<PathBuf>,
    /// A webhook, http(s)://…: each burst is POSTed as a TS 29.122 NIDD
    /// uplink data notification (niddTransaction, externalId, data in
    /// base64, and nido's fields under "nido"), with `Idempotency-Key:
    /// <device>/<seq>`; only a 2xx answer counts as delivered.
    #[arg(long, value_name = "URL", conflicts_with = "mqtt")]
    webhook: Option<String>,
    /// The file holding the webhook's HMAC key (`-`: standard input): each
    /// body is signed, `X-Nido-Signature: sha256=<hex HMAC-SHA-256>`.
    #[arg(long, value_name = "FILE|-", requires = "webhook")]
    secret_file: Option<PathBuf>,
}

/// `nido owner delivery`.
#[derive(Args)]
pub(crate) struct OwnerDeliveryArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The owner whose devices' data this is.
    #[arg(long)]
    owner: String,
    #[command(flatten)]
    mqtt: MqttArgs,
}

/// `nido network delivery`.
#[derive(Subcommand)]
pub(crate) enum NetworkDelivery {
    /// Sets the operator's default delivery: devices no owner claimed, and
    /// owners without one of their own (without any, data goes to
    /// uplink.jsonl in the network directory).
    Set(NetworkDeliveryArgs),
    /// Per owner: bursts pending, delivered (the last day), dropped (the
    /// outbox was full), the oldest pending one and the last failure.
    Status(StatusArgs),
}

#[derive(Args)]
pub(crate) struct NetworkDeliveryArgs {
    #[command(flatten)]
    dir: DirArg,
    #[command(flatten)]
    mqtt: MqttArgs,
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    dir: DirArg,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn config(owner: Option<String>, a: &MqttArgs) -> Result<DeliveryConfig> {
    let target = if let Some(url) = &a.webhook {
        nido_deliver::check_webhook_url(url).map_err(|e| anyhow::anyhow!("--webhook: {e}"))?;
        DeliveryTarget::Webhook {
            url: url.clone(),
            secret: a
                .secret_file
                .as_deref()
                .map(|f| read_secret(f, "--secret-file"))
                .transpose()?,
        }
    } else if let Some(url) = &a.mqtt {
        nido_deliver::check_url(url).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
        if a.topic_prefix.is_empty() || a.topic_prefix.contains(['+', '#']) {
            bail!(
                "--topic-prefix {:?}: must be non-empty, without + or #",
                a.topic_prefix
            );
        }
        DeliveryTarget::Mqtt {
            url: url.clone(),
            topic_prefix: a.topic_prefix.trim_end_matches('/').to_owned(),
            username: a.username.clone(),
            password: a
                .password_file
                .as_deref()
                .map(|f| read_secret(f, "--password-file"))
                .transpose()?,
            tls_ca: a
                .tls_ca
                .as_deref()
                .map(|f| {
                    std::fs::read_to_string(f)
                        .map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", f.display()))
                })
                .transpose()?,
        }
    } else {
        bail!("give --mqtt URL or --webhook URL");
    };
    let config = DeliveryConfig { owner, target };
    // The same check serve makes: a PEM it cannot use fails here, not there.
    nido_deliver::check_target(&config.target).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

/// What a delivery set means, for the confirmation line.
fn describe(c: &DeliveryConfig) -> String {
    match &c.target {
        DeliveryTarget::Mqtt {
            url, topic_prefix, ..
        } => format!("{url} under {topic_prefix}/<serial>/up"),
        DeliveryTarget::Webhook { url, secret } => format!(
            "webhook {url}{}",
            if secret.is_some() {
                " (signed)"
            } else {
                " (unsigned)"
            }
        ),
    }
}

/// The secret in `file` (one line), or standard input for `-`.
fn read_secret(file: &std::path::Path, flag: &str) -> Result<Zeroizing<String>> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("{flag} -: {e}"))?;
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", file.display()))?;
    }
    Ok(Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

pub(crate) fn owner(a: &OwnerDeliveryArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    if store.owner(&a.owner)?.is_none() {
        bail!(
            "--owner {}: no such owner (nido owner create first)",
            a.owner
        );
    }
    let c = config(Some(a.owner.clone()), &a.mqtt)?;
    store.set_delivery(&c)?;
    outln!("data of {}'s devices goes to {}", a.owner, describe(&c));
    Ok(())
}

pub(crate) fn network(cmd: &NetworkDelivery) -> Result<()> {
    match cmd {
        NetworkDelivery::Set(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            let c = config(None, &a.mqtt)?;
            store.set_delivery(&c)?;
            outln!(
                "data of unclaimed devices (and of owners without a delivery) goes to {}",
                describe(&c)
            );
            Ok(())
        }
        NetworkDelivery::Status(a) => status(a),
    }
}

fn status(a: &StatusArgs) -> Result<()> {
    let (_, store) = open(&a.dir.dir, None)?;
    let configs = store.deliveries()?;
    let rows = store.delivery_status()?;
    let destination = |owner: Option<&str>| {
        configs
            .iter()
            .find(|c| c.owner.as_deref() == owner)
            .or_else(|| configs.iter().find(|c| c.owner.is_none()))
            .map_or_else(|| "uplink.jsonl".to_owned(), |c| c.target.url().to_owned())
    };
    if !a.json {
        outln!(
            "{:<20} {:<28} {:>9} {:>10} {:>8}  {:<24} last error",
            "owner",
            "destination",
            "pending",
            "delivered",
            "dropped",
            "oldest pending"
        );
    }
    for r in rows {
        let oldest = r.oldest_pending.map(|ms| {
            crate::out::iso8601(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        });
        let dest = destination(r.owner.as_deref());
        if a.json {
            outln!(
                "{}",
                serde_json::json!({"owner": r.owner, "destination": dest, "pending": r.pending, "delivered": r.delivered, "dropped": r.dropped, "oldest_pending": oldest, "last_error": r.last_error})
            );
        } else {
            outln!(
                "{:<20} {:<28} {:>9} {:>10} {:>8}  {:<24} {}",
                r.owner.as_deref().unwrap_or("(unclaimed)"),
                dest,
                r.pending,
                r.delivered,
                r.dropped,
                oldest.as_deref().unwrap_or("-"),
                r.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
