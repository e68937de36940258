//! `nido network release`: lets a device identity that holds a provisioned
//! or active subscription be provisioned again (a device that lost its
//! credentials). Until then the network refuses its onboarding with #74:
//! it cannot tell the device after a factory reset from a clone.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use nido_net::{NetworkEvent, Store, SubscriptionState};

use super::DirArg;

#[derive(Args)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Why (kept in the audit trail).
    #[arg(long, default_value = "released by the operator")]
    reason: String,
    /// The device serial (IDevID) whose subscription is released.
    serial: String,
}

pub(crate) fn run(a: &ReleaseArgs) -> Result<()> {
    let (_, mut store) = super::open(&a.dir.dir, None)?;
    let Some(mut sub) = store
        .subscription_by_device(&a.serial)
        .map_err(|e| anyhow::anyhow!("{e}"))?
    else {
        bail!(
            "{}: no subscription (a device without one is provisioned at its first onboarding)",
            a.serial
        );
    };
    match sub.state {
        SubscriptionState::Provisioned | SubscriptionState::Active => {}
        SubscriptionState::Created => {
            println!(
                "{} ({}): its package was never confirmed; it is re-provisioned at its next onboarding already",
                a.serial, sub.supi
            );
            return Ok(());
        }
        SubscriptionState::Released => {
            println!("{} ({}): already released", a.serial, sub.supi);
            return Ok(());
        }
    }
    sub.state = SubscriptionState::Released;
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let event = NetworkEvent::Released {
        device: a.serial.clone(),
        supi: sub.supi.clone(),
        reason: a.reason.clone(),
    };
    let supi = sub.supi.clone();
    store
        .put_subscription_audited(sub, at, &[event])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{} ({supi}) released: its next onboarding gets a new K; until then the old K still works",
        a.serial
    );
    Ok(())
}
