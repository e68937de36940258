//! `nido owner`: owners (end users, IoT service providers) of a network:
//! their accounts, the devices they claim, the third-party credentials the
//! provisioning server delivers to those devices.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use nido_api::{Caller, service};

use super::network::{DirArg, cli_error, open};

const ABOUT: &str = "\
Owners and their devices. An owner claims a device with the claim code
that came in the device's box; the provisioning server then attaches the
device to the owner and delivers the owner's third-party credentials with
its subscription, sealed to the device.

  nido owner create --dir net --id acme-farms --name \"Acme Farms\"
  nido owner claim --dir net --owner acme-farms --claim-code ABCD-EFGH-JKLM-NPQR
  nido owner release --dir net --owner acme-farms --code-out transfer.txt \
      \"Acme Sensors/ACMESENS-0000000001\"   # for a transfer: a new code
  nido owner credentials --dir net --owner acme-farms \\
      --lwm2m coaps://lwm2m.acme.example:5684 --psk-identity acme --psk-file acme.psk
  nido owner delivery --dir net --owner acme-farms --mqtt mqtt://127.0.0.1:1883 \\
      --topic-prefix acme-farms
  mosquitto_sub -t 'acme-farms/+/up' -q 1 -v

Secrets are read from files (or standard input, `-`), never from the
command line, where `ps` and the shell history would show them.";

/// `nido owner` subcommands.
#[derive(Subcommand)]
#[command(about = ABOUT, long_about = ABOUT)]
pub(crate) enum OwnerCmd {
    /// Creates (or renames) an owner account.
    Create(CreateArgs),
    /// Claims a device for an owner with its one-time claim code.
    Claim(ClaimArgs),
    /// Releases a device from its owner for a transfer to a new one: its
    /// old claim codes stop working, a new one is written to --code-out
    /// for the next owner (`nido owner claim`), the owner's access ends at
    /// once, and the device (deregistered at once if registered, else at
    /// its next registration) erases the owner's credentials (proved by
    /// its erasure receipt) and gets the next owner's. With --owner, only
    /// that owner's device.
    Release(ReleaseArgs),
    /// Sets the third-party device configuration credentials of an owner
    /// (replacing the previous ones): LwM2M server with PSK, MQTT broker
    /// with a client certificate.
    Credentials(CredentialsArgs),
    /// Sets where the owner's devices' data goes: an MQTT broker (topic
    /// PREFIX/<device serial>/up, QoS 1) or a webhook (HMAC-signed NIDD
    /// notifications); at least once, in order per device. `nido network
    /// serve` picks it up without a restart.
    Delivery(super::delivery::OwnerDeliveryArgs),
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The owner's id.
    #[arg(long)]
    id: String,
    /// Display name.
    #[arg(long)]
    name: String,
}

#[derive(Args)]
pub(crate) struct ClaimArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The owner's id.
    #[arg(long)]
    owner: String,
    /// The claim code from the device's label (labels/<serial>.txt that
    /// `nido mfr issue` writes; never stored on the device). A device
    /// another owner claimed first stays with that owner.
    #[arg(long)]
    claim_code: String,
}

#[derive(Args)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The owner releasing its device (omitted: the operator does).
    #[arg(long)]
    owner: Option<String>,
    /// The device.
    #[command(flatten)]
    device: super::network::DeviceArg,
    /// Where the new claim code goes (created, mode 0600): hand it to the
    /// next owner; it is shown nowhere else.
    #[arg(long, value_name = "FILE")]
    code_out: std::path::PathBuf,
    /// Why (kept in the audit trail).
    #[arg(long, default_value = "transfer to a new owner")]
    reason: String,
}

#[derive(Args)]
pub(crate) struct CredentialsArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The owner's id.
    #[arg(long)]
    owner: String,
    /// LwM2M server URI (coaps://...).
    #[arg(long, requires = "psk_identity")]
    lwm2m: Option<String>,
    /// LwM2M PSK identity.
    #[arg(long)]
    psk_identity: Option<String>,
    /// The file holding the LwM2M PSK in hex (`-`: standard input).
    #[arg(long, value_name = "FILE|-")]
    psk_file: Option<std::path::PathBuf>,
    /// Refused: a PSK on the command line is visible to every local user
    /// (`ps`, /proc) and kept in the shell history. Use --psk-file.
    #[arg(long, hide = true)]
    psk: Option<String>,
    /// MQTT broker URI (mqtts://...).
    #[arg(long, requires_all = ["client_id", "client_cert", "client_key"])]
    mqtt: Option<String>,
    /// MQTT client id.
    #[arg(long)]
    client_id: Option<String>,
    /// MQTT client certificate chain (PEM file).
    #[arg(long)]
    client_cert: Option<std::path::PathBuf>,
    /// MQTT client private key (PEM file).
    #[arg(long)]
    client_key: Option<std::path::PathBuf>,
}

pub(crate) fn run(command: OwnerCmd) -> Result<()> {
    match command {
        OwnerCmd::Delivery(a) => super::delivery::owner(&a),
        OwnerCmd::Create(a) => {
            let (_, mut store) = open(&a.dir.dir, None)?;
            let o = service::put_owner(
                &mut store,
                &Caller::Operator,
                &service::OwnerView {
                    id: a.id.clone(),
                    name: a.name.clone(),
                },
            )
            .map_err(cli_error)?;
            outln!("owner {} ({}) saved", o.id, o.name);
            Ok(())
        }
        OwnerCmd::Claim(a) => {
            let (_, mut store) = open(&a.dir.dir, None)?;
            let d = service::claim(
                &mut store,
                &Caller::Operator,
                &service::ClaimRequest {
                    claim_code: a.claim_code.clone(),
                    owner: Some(a.owner.clone()),
                },
            )
            .map_err(|e| match e {
                service::ServiceError::NotFound(what) if what.starts_with("owner ") => {
                    anyhow::anyhow!("--owner {}: no such owner (nido owner create first)", a.owner)
                }
                service::ServiceError::NotFound(_) => anyhow::anyhow!(
                    "claim: no device to claim with this code (mistyped, unknown, or claimed already)"
                ),
                other => cli_error(other),
            })?;
            outln!("device {} claimed by {}", d.device, a.owner);
            Ok(())
        }
        OwnerCmd::Release(a) => {
            let (_, store) = open(&a.dir.dir, None)?;
            let device = a.device.id()?;
            let caller = a
                .owner
                .as_ref()
                .map_or(Caller::Operator, |o| Caller::Owner(o.clone()));
            if a.code_out.exists() {
                bail!("--code-out {}: exists already", a.code_out.display());
            }
            // The code is durable in its file before the network forgets
            // the old ones: a failed write loses nothing.
            let code = nido_pki::bundle::ClaimCode::generate()
                .map_err(|e| anyhow::anyhow!("claim code: {e}"))?;
            nido_pki::files::write_atomic(
                &a.code_out,
                format!("claim code: {}\n", code.as_str()).as_bytes(),
                nido_pki::files::MODE_SECRET,
            )?;
            let t = match service::release_owner(&store, &caller, &device, &code, &a.reason) {
                Ok(t) => t,
                Err(e) => {
                    let _ = std::fs::remove_file(&a.code_out);
                    return Err(cli_error(e));
                }
            };
            outln!(
                "device {} released from {}: the new owner claims it with the code in {} (nido owner claim); it gets their credentials at once if registered (deregistered, #7), else at its next registration",
                t.device,
                t.from
                    .as_deref()
                    .map_or_else(|| "no owner".to_owned(), |o| format!("owner {o}")),
                a.code_out.display()
            );
            Ok(())
        }
        OwnerCmd::Credentials(a) => {
            if a.psk.is_some() {
                return Err(crate::args::UsageError::new(
                    "--psk",
                    "refused: a secret on the command line shows in `ps` and the shell history; \
                     put the PSK (hex) in a file and give --psk-file FILE, or --psk-file - to read it from standard input",
                )
                .into());
            }
            if a.lwm2m.is_some() && a.psk_file.is_none() {
                return Err(crate::args::UsageError::new(
                    "--lwm2m",
                    "needs --psk-file FILE (the PSK in hex; - reads standard input)",
                )
                .into());
            }
            let (_, mut store) = open(&a.dir.dir, None)?;
            let mut req = service::CredentialsRequest::default();
            if let (Some(uri), Some(identity), Some(file)) =
                (&a.lwm2m, &a.psk_identity, &a.psk_file)
            {
                req.lwm2m = Some(service::Lwm2mRequest {
                    server_uri: uri.clone(),
                    psk_identity: identity.clone(),
                    psk_hex: hex::encode(read_psk(file)?.as_slice()),
                });
            }
            if let (Some(uri), Some(id), Some(cert), Some(key)) =
                (&a.mqtt, &a.client_id, &a.client_cert, &a.client_key)
            {
                req.mqtt = Some(service::MqttRequest {
                    broker_uri: uri.clone(),
                    client_id: id.clone(),
                    client_cert_pem: std::fs::read_to_string(cert)
                        .map_err(|e| anyhow::anyhow!("--client-cert {}: {e}", cert.display()))?,
                    client_key_pem: std::fs::read_to_string(key)
                        .map_err(|e| anyhow::anyhow!("--client-key {}: {e}", key.display()))?,
                });
            }
            if req.lwm2m.is_none() && req.mqtt.is_none() {
                bail!(
                    "give --lwm2m (with --psk-identity, --psk-file) and/or --mqtt (with --client-id, --client-cert, --client-key)"
                );
            }
            let set = service::set_credentials(&mut store, &Caller::Operator, &a.owner, &req)
                .map_err(|e| match e {
                    service::ServiceError::NotFound(_) => anyhow::anyhow!(
                        "--owner {}: no such owner (nido owner create first)",
                        a.owner
                    ),
                    other => cli_error(other),
                })?;
            outln!("{} credential(s) set for {}", set.len(), a.owner);
            Ok(())
        }
    }
}

/// The PSK in hex from `file`, or from standard input for `-`; the text is
/// wiped from memory after decoding.
fn read_psk(file: &std::path::Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    let source = if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("--psk-file -: standard input: {e}"))?;
        "standard input".to_owned()
    } else {
        std::fs::File::open(file)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| anyhow::anyhow!("--psk-file {}: {e}", file.display()))?;
        file.display().to_string()
    };
    let psk = Zeroizing::new(
        hex::decode(text.trim())
            .map_err(|e| anyhow::anyhow!("--psk-file: {source} is not a hex PSK: {e}"))?,
    );
    if psk.is_empty() {
        bail!("--psk-file: {source} holds no PSK");
    }
    Ok(psk)
}
