//! One shard of the demo's fleet: a contiguous run of its devices, their
//! own link and their own network instance (one AMF of the set) over the
//! shared store, on its own thread and its own simulated clock. Shards
//! meet the driver at the end of every [`Stage`] (a barrier), so the
//! driver measures memory and time between stages while nothing runs.

use std::cell::RefCell;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use nido_eap::fixtures::Onboarding;
use nido_net::{CountingSink, SharedStore};
use nido_pki::DeviceIdentity;
use nido_sec::PrivateKey32;
use nido_sec::suci::{HomeNetworkKey, Profile};
use nido_sim::metrics::{Funnel, Meter, Phases};
use nido_sim::scenario::{self, NetworkOptions};
use nido_sim::{Faults, Fleet, Link};
use nido_ue::DeviceState;

use super::PAYLOAD;
use super::population::{self, Kind};
use super::summary::{Tally, tally};
use super::trace::ShardTrace;

/// The stages every shard goes through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// The shard's devices and network are built.
    Built = 0,
    /// Every device of the shard settled (active or refused).
    Onboarded = 1,
    /// Every active device sent one burst from idle.
    Bursts = 2,
    /// The baseline device (one shard has it) registered again.
    Baseline = 3,
}

/// Where the shards and the driver meet: stage completions, the barrier
/// that holds the shards until the driver has measured, and each shard's
/// funnel for the live display.
pub(super) struct Progress {
    shards: usize,
    done: AtomicUsize,
    barrier: Barrier,
    funnels: Mutex<Vec<(Funnel, usize)>>,
}

impl Progress {
    pub(super) fn new(shards: usize) -> Self {
        Self {
            shards,
            done: AtomicUsize::new(0),
            barrier: Barrier::new(shards + 1),
            funnels: Mutex::new(vec![(Funnel::default(), 0); shards]),
        }
    }

    /// A shard finished its current stage: waits for the driver.
    fn stage_done(&self) {
        self.done.fetch_add(1, Ordering::AcqRel);
        self.barrier.wait();
    }

    fn publish(&self, shard: usize, funnel: Funnel, settled: usize) {
        if let Ok(mut f) = self.funnels.lock() {
            f[shard] = (funnel, settled);
        }
    }

    /// The driver: waits until every shard finished `stage` (looking every
    /// 5 ms, so the stage's wall time is that exact), calling `draw` with
    /// the shards' funnel and settled count every 100 ms meanwhile.
    pub(super) fn wait_for(&self, stage: Stage, mut draw: impl FnMut(Funnel, usize)) {
        let target = (stage as usize + 1) * self.shards;
        let mut drawn: Option<Instant> = None;
        while self.done.load(Ordering::Acquire) < target {
            if drawn.is_none_or(|at| at.elapsed() >= Duration::from_millis(100)) {
                drawn = Some(Instant::now());
                let (mut funnel, mut settled) = (Funnel::default(), 0);
                if let Ok(f) = self.funnels.lock() {
                    for (shard_funnel, shard_settled) in f.iter() {
                        funnel.absorb(*shard_funnel);
                        settled += shard_settled;
                    }
                }
                draw(funnel, settled);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The driver lets the shards go on to the next stage.
    pub(super) fn release(&self) {
        self.barrier.wait();
    }
}

/// What every shard shares.
pub(super) struct Common<'a> {
    pub world: &'a Onboarding,
    pub options: &'a NetworkOptions,
    pub store: SharedStore,
    /// The networks' store when it is a database: writes committed in groups.
    pub stage: Option<nido_net::Stage>,
    /// The operator's SUCI home network key (profile A, id 1).
    pub home_network_key: &'a PrivateKey32,
    pub sink: CountingSink,
    pub faults: Faults,
    pub seed: u64,
    /// Devices onboarding at once at most, per shard.
    pub concurrency: usize,
    pub pcap: bool,
    pub start: SystemTime,
    pub progress: &'a Progress,
    pub bar: &'a ProgressBar,
    pub credentials: &'a [nido_prov::ThirdPartyCredential],
}

/// One shard's devices.
pub(super) struct Shard {
    pub index: usize,
    /// The demo's index of the shard's first device.
    pub offset: usize,
    pub plan: Vec<(DeviceIdentity, Kind)>,
    /// Whether this shard measures the re-registration baseline.
    pub baseline: bool,
}

/// What one shard measured.
pub(super) struct Outcome {
    pub tally: Tally,
    pub phases: Phases,
    pub onboarding: Meter,
    pub burst: Meter,
    pub baseline: Meter,
    pub bursts: u64,
    pub simulated: Duration,
    pub concurrency: usize,
    pub funnel: Funnel,
    /// The shard's trace (with `--pcap`).
    pub trace: Option<ShardTrace>,
}

/// A shard between stages.
struct Running {
    index: usize,
    /// Whether this shard measures the re-registration baseline.
    baseline: bool,
    fleet: Fleet,
    trace: Option<Rc<RefCell<ShardTrace>>>,
    kinds: Vec<Kind>,
    onboarding: Meter,
    burst: Meter,
    bursts: u64,
    simulated: Duration,
    concurrency: usize,
}

/// Splits `0..total` into `n` contiguous ranges of nearly equal sizes,
/// moving a cut that would fall right before `together` one further, so
/// `together - 1` and `together` stay in one shard.
pub(super) fn split(total: usize, n: usize, together: Option<usize>) -> Vec<Range<usize>> {
    let n = n.clamp(1, total.max(1));
    let mut cuts: Vec<usize> = (0..=n).map(|k| k * total / n).collect();
    for cut in cuts.iter_mut().take(n).skip(1) {
        if Some(*cut) == together {
            *cut += 1;
        }
    }
    cuts.windows(2)
        .map(|w| w[0]..w[1].max(w[0]))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Runs `shard` through every [`Stage`]; after an error or a panic in a
/// stage it still meets the driver at each remaining stage (so nobody
/// waits at a barrier forever) and returns the error.
pub(super) fn run(common: &Common<'_>, shard: Shard) -> Result<Outcome> {
    let index = shard.index;
    let mut shard = Some(shard);
    let mut running: Option<Running> = None;
    let mut failed = None;
    for stage in [
        Stage::Built,
        Stage::Onboarded,
        Stage::Bursts,
        Stage::Baseline,
    ] {
        if failed.is_none() {
            let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
                match (stage, shard.take(), running.as_mut()) {
                    (Stage::Built, Some(s), _) => build(common, s).map(|r| {
                        running = Some(r);
                    }),
                    (Stage::Onboarded, _, Some(r)) => onboard(common, r),
                    (Stage::Bursts, _, Some(r)) => bursts(r),
                    (Stage::Baseline, _, Some(r)) => baseline(r),
                    _ => Err(anyhow::anyhow!("shard state lost before {stage:?}")),
                }
            }))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("shard {index} panicked in {stage:?}")));
            failed = step.err();
        }
        common.progress.stage_done();
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let r = running.ok_or_else(|| anyhow::anyhow!("shard never built"))?;
    let metrics = r.fleet.metrics();
    // The fleet's trace hook holds the other reference: take the records.
    let trace = r
        .trace
        .map(|t| std::mem::replace(&mut *t.borrow_mut(), ShardTrace::new(common.start, 0)));
    Ok(Outcome {
        tally: tally(&r.fleet, &r.kinds, common.credentials)?,
        phases: metrics.phases().clone(),
        onboarding: r.onboarding,
        burst: r.burst,
        baseline: metrics.baseline(),
        bursts: r.bursts,
        simulated: r.simulated,
        concurrency: r.concurrency,
        funnel: metrics.funnel(),
        trace,
    })
}

/// Stage 0: the shard's network instance and devices (identities are
/// dropped as they go in).
fn build(common: &Common<'_>, shard: Shard) -> Result<Running> {
    let hn = HomeNetworkKey::from_private(Profile::A, 1, common.home_network_key)
        .map_err(|e| anyhow::anyhow!("home network key: {e}"))?;
    let network = scenario::network_with_store_and_key(
        common.world,
        common.options,
        Box::new(common.sink.clone()),
        match &common.stage {
            Some(stage) => Box::new(stage.clone()),
            None => Box::new(common.store.clone()),
        },
        hn,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Each shard its own stream: neighbouring seeds never share one.
    let seed = common.seed ^ (shard.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let link = Link::new(common.faults, common.faults, seed)
        .map_err(|e| anyhow::anyhow!("--loss/--dup/--reorder: {e}"))?;
    let mut fleet = Fleet::new(network, link, common.start, false);
    if let Some(stage) = &common.stage {
        fleet.set_group_commit(stage.clone(), super::GROUP_COMMIT_WINDOW);
    }
    let mut kinds = Vec::with_capacity(shard.plan.len());
    for (id, kind) in shard.plan {
        let device =
            scenario::device(common.world, &id, common.pcap).map_err(|e| anyhow::anyhow!("{e}"))?;
        fleet.add_device(device);
        kinds.push(kind);
        common.bar.inc(1);
    }
    let trace = common.pcap.then(|| {
        let trace = Rc::new(RefCell::new(ShardTrace::new(common.start, shard.offset)));
        let t = trace.clone();
        fleet.set_trace(move |r| t.borrow_mut().record(r));
        trace
    });
    Ok(Running {
        index: shard.index,
        baseline: shard.baseline,
        fleet,
        trace,
        kinds,
        onboarding: Meter::default(),
        burst: Meter::default(),
        bursts: 0,
        simulated: Duration::ZERO,
        concurrency: 0,
    })
}

/// Stage 1: devices power on as earlier ones settle ([`Fleet::onboard`]).
fn onboard(common: &Common<'_>, r: &mut Running) -> Result<()> {
    let index = r.index;
    let fleet = &mut r.fleet;
    let kinds = &mut r.kinds;
    let start = fleet.now();
    let deadline = start + Duration::from_secs(7 * 24 * 3600);
    // The clone and its twin onboard at the same time; the network refuses
    // whichever completes EAP-TLS second while the first is onboarding, or
    // after the first confirmed its package (the PVS re-provisions only a
    // subscription the operator released). On a lossy link that may be
    // either: the network cannot tell which is genuine, so the refused one
    // is the clone. It is switched off after its first refusal (it would
    // get #74 again at every retry).
    let mut twins = kinds
        .iter()
        .position(|k| *k == Kind::Bad(population::CLONE))
        .and_then(|c| Some((c.checked_sub(1)?, c)));
    let mut last_publish = Instant::now();
    r.concurrency = fleet.onboard(common.concurrency, deadline, |fleet| {
        if let Some((twin, clone)) = twins {
            let m = fleet.metrics();
            if m.refused(twin) || m.refused(clone) {
                if m.refused(twin) {
                    kinds.swap(twin, clone);
                    fleet.power_off(twin);
                } else {
                    fleet.power_off(clone);
                }
                twins = None;
            }
        }
        if last_publish.elapsed() >= Duration::from_millis(100) {
            last_publish = Instant::now();
            common
                .progress
                .publish(index, fleet.metrics().funnel(), fleet.settled());
        }
    });
    common
        .progress
        .publish(index, fleet.metrics().funnel(), fleet.settled());
    r.simulated = fleet.now().duration_since(start).unwrap_or_default();
    r.onboarding = fleet.metrics().onboarding();
    Ok(())
}

/// Stage 2: every active device, idle by now, sends one burst.
fn bursts(r: &mut Running) -> Result<()> {
    (r.bursts, r.burst) =
        r.fleet
            .bursts_from_idle(PAYLOAD, Duration::from_secs(30), Duration::from_secs(60));
    Ok(())
}

/// Stage 3, on the baseline shard: one active device registers again and
/// sends the same payload connected.
fn baseline(r: &mut Running) -> Result<()> {
    if !r.baseline {
        return Ok(());
    }
    let fleet = &mut r.fleet;
    let Some(b) = (0..r.kinds.len()).find(|&i| {
        matches!(r.kinds[i], Kind::Good { .. }) && fleet.device(i).state() == DeviceState::Active
    }) else {
        return Ok(());
    };
    fleet.metrics_mut().set_baseline_device(Some(b));
    fleet.power_on(b);
    let until = fleet.now() + Duration::from_secs(600);
    while fleet.send_data(b, PAYLOAD).is_err() {
        if !fleet.step(until) {
            bail!("the baseline device did not register again");
        }
    }
    fleet.advance(Duration::from_secs(5));
    fleet.metrics_mut().set_baseline_device(None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_covers_everything_once_and_keeps_twins_together() {
        for total in [0, 1, 7, 8, 13, 1007] {
            for n in 1..=9 {
                let parts = split(total, n, Some(7));
                let flat: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..total).collect::<Vec<_>>(), "{total} in {n}");
                assert!(parts.len() <= n);
                assert!(
                    parts.iter().all(|r| r.start != 7),
                    "{total} in {n}: a cut between 6 and 7: {parts:?}"
                );
            }
        }
        assert_eq!(split(1007, 2, Some(7)), vec![0..503, 503..1007]);
        assert_eq!(split(8, 8, Some(7)).len(), 7);
    }
}
