//! `nido network rekey`: a new K for one device, or for every device
//! (issue #16 item 4). The subscription's package ends now: a device
//! registered with it is deregistered at `serve`'s next poll (a protected
//! DEREGISTRATION REQUEST #7), any other device's next registration is
//! refused with #7 (integrity protected, so only the holder of K believes
//! it), and the device renews its package as after a
//! factory reset, with its erasure receipt: the same SUPI, a new K, the
//! SUCI home network key the PVS hands out now (the first `[[keys.suci]]`),
//! a new validity. With `--all` or `--suci-key ID` it moves a fleet to a
//! new SUCI key.

use anyhow::Result;
use clap::Args;
use nido_api::{Caller, service};
use nido_store::Packages;

use super::DirArg;

#[derive(Args)]
pub(crate) struct RekeyArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Why (kept in the audit trail).
    #[arg(long, default_value = "re-keyed by the operator")]
    reason: String,
    /// The enrolled manufacturer of DEVICE, when DEVICE is a bare serial.
    #[arg(long, requires = "device")]
    manufacturer: Option<String>,
    /// The device: MANUFACTURER/SERIAL (as `nido network devices` lists
    /// it), or SERIAL with --manufacturer.
    #[arg(
        value_name = "DEVICE",
        required_unless_present_any = ["all", "suci_key"],
        conflicts_with_all = ["all", "suci_key"]
    )]
    device: Option<String>,
    /// Every subscription whose package has not ended yet.
    #[arg(long, conflicts_with = "suci_key")]
    all: bool,
    /// Every subscription whose package carries this SUCI home network key
    /// id (or was delivered before nido recorded the key): what retiring
    /// the key waits for (`nido network suci-key`).
    #[arg(long, value_name = "ID")]
    suci_key: Option<u8>,
    /// One JSON object per subscription: {"device", "result", "changed"}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: &RekeyArgs) -> Result<()> {
    let (_, store) = super::open(&a.dir.dir, None)?;
    let device = match &a.device {
        Some(d) => Some(
            super::DeviceArg {
                manufacturer: a.manufacturer.clone(),
                device: d.clone(),
            }
            .id()?,
        ),
        None => None,
    };
    // One conditional update of the package's end alone: a `serve` running
    // at the same time reads it when the device next registers.
    let which = match (&device, a.suci_key) {
        (Some(d), _) => Packages::Of(d),
        (None, Some(k)) => Packages::MayCarrySuciKey(k),
        (None, None) => Packages::All,
    };
    let outcomes =
        service::rekey(&store, &Caller::Operator, which, &a.reason).map_err(super::cli_error)?;
    let changed = outcomes.iter().filter(|o| o.changed).count();
    for o in &outcomes {
        if a.json {
            outln!("{}", serde_json::to_string(o)?);
        } else {
            outln!("{}: {}", o.device, o.result);
        }
    }
    if !a.json && a.device.is_none() {
        outln!(
            "{changed} subscriptions re-keyed: each device gets a new K now if registered, else at its next registration"
        );
    }
    Ok(())
}
