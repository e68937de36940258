//! `nido network release`: lets a device identity that holds a provisioned
//! or active subscription be provisioned again (a device that lost its
//! credentials). Until then the network refuses its onboarding with #74:
//! it cannot tell the device after a factory reset from a clone.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use nido_store::Release;

use super::DirArg;

#[derive(Args)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Why (kept in the audit trail).
    #[arg(long, default_value = "released by the operator")]
    reason: String,
    /// The device whose subscription is released.
    #[command(flatten)]
    device: super::DeviceArg,
}

pub(crate) fn run(a: &ReleaseArgs) -> Result<()> {
    let (_, store) = super::open(&a.dir.dir, None)?;
    let device = a.device.id()?;
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // One conditional update of the state alone: a `serve` running at the
    // same time never sees its SQN go back.
    match store.release(&device, at, &a.reason)? {
        Release::NoSubscription => bail!(
            "{}: no subscription (a device without one is provisioned at its first onboarding)",
            device
        ),
        Release::Unchanged { supi, state } if state == "created" => outln!(
            "{} ({supi}): its package was never confirmed; its next onboarding re-provisions it already",
            device
        ),
        Release::Unchanged { supi, .. } => outln!("{} ({supi}): already released", device),
        Release::Released { supi, was } => outln!(
            "{} ({supi}) released (was {was}): its next onboarding gets a new K (the device \
             retries within its #74 back-off, 30 min at most); until then the old K still \
             works, and a registration with it makes the subscription active again",
            device
        ),
    }
    Ok(())
}
