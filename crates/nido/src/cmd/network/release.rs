//! `nido network release`: lets a device identity that holds a provisioned
//! or active subscription be provisioned again (a device that lost its
//! credentials without an erasure receipt: a replaced secure element, a
//! storage failure). Until then the network refuses its onboarding with
//! #74: it cannot tell such a device from a clone. (A device reset with
//! `nido device reset` needs no release: its receipt proves the erasure.)

use anyhow::Result;
use clap::Args;
use nido_api::{Caller, service};

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
    // One conditional update of the state alone: a `serve` running at the
    // same time never sees its SQN go back.
    let o = service::release(&store, &Caller::Operator, &device, &a.reason)
        .map_err(super::cli_error)?;
    outln!("{}: {}", o.device, o.result);
    if o.changed {
        outln!(
            "the device retries within its #74 back-off (30 min at most); a registration with the old K makes the subscription active again"
        );
    }
    Ok(())
}
