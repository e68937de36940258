//! Issue #11's durability promise, with real processes: `nido network
//! serve` commits the network's writes in groups on a committer thread and
//! sends a reply only once the group holding the writes it depends on is
//! durable. Here serve dies in the middle of onboarding at a group commit,
//! through its test hook `NIDO_CRASH_POINT` (`CrashPoint` in nido-store:
//! SIGABRT, no cleanup, like a kill):
//!
//! - `before-delivery:K`: every statement of the group commit that holds
//!   the K-th package delivery (a whole subscription row) ran, its COMMIT
//!   did not: nothing of the group is durable, and none of the replies
//!   that waited for it left;
//! - `after-delivery:K`: that group is durable, and none of the replies
//!   that waited for it left.
//!
//! `nido sim` runs a fleet of [`DEVICES`] devices (all arriving at once)
//! against it; when serve has died the test starts it again on the same
//! port, without the hook, and the devices recover with their own timers,
//! shortened as timers are inputs: a device the crash caught waits out
//! T3510 (5 s here instead of 15), or the retransmissions of its PDU
//! session request (T3580, 3 s apart instead of 16: five of them were the
//! 80 s that the slowest scenarios took) or of its CoAP request (3 s
//! instead of 8); a device whose identity the restarted network still
//! takes for active is refused with #74 and retries after 3 s, past the
//! network's 2 s clone window (instead of 15 s and 10 s). A scenario takes
//! seconds to about a minute instead of 40-80 s. Then every device is
//! active (the
//! sim's report), the network holds exactly one subscription per device,
//! no SUPI twice, and the audit trail is complete for what is durable:
//! each package delivery in the `provisioning` table has its
//! `package_delivered` entry (same transaction), each subscription its one
//! activation (`authenticated … activated`) after its deliveries, and
//! every `provisioned` entry names the device's SUPI. A `provisioned`
//! entry is not required: a device whose confirmation was lost with the
//! crash installed its package, and 5G-AKA validates a `created`
//! subscription directly (as in `network.rs`).
//!
//! The crash is keyed on a delivery, not on a group's number: how many
//! groups a fleet's onboarding takes depends on timing (the committer
//! takes whatever accumulated while the last commit ran; clean runs of
//! this fleet committed from a handful of groups on an idle machine to 112
//! on a busy one), and a CI run on a fast machine once finished the whole
//! fleet in fewer groups than the crash point named. Every device's
//! package is delivered once at least, so the group with the K-th delivery
//! always comes, with onboarding unfinished: no device whose delivery is in
//! that group or later can have registered, as its activation waits for
//! the delivery's reply. The group may hold more deliveries than the K-th
//! (all 30 when they arrive together). The test checks that serve aborted
//! there (its log, SIGABRT) and that the crash left onboarding unfinished
//! (fewer than [`DEVICES`] `registered` entries durable), and prints what
//! the crashed serve had done (its log) and what of it was durable.
//!
//! The PostgreSQL variant (one crash point) needs the server of
//! `postgres.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{
    PgDb, Reaper, Scratch, json_lines, manufacturer_and_network_on, ok, open_network_store, spawn,
    spawn_with_env, wait_for_exit, wait_for_log,
};
use nido_net::DeviceId;
use serde_json::Value;

/// The fleet: small, this is the debug build.
const DEVICES: usize = 30;

/// The package delivery whose group commit the crash hits (see the module
/// doc): a third of the fleet.
const DELIVERY: u64 = 10;

/// SIGABRT, what `std::process::abort` ends the process with.
const SIGABRT: i32 = 6;

#[test]
fn devices_onboard_through_a_crash_before_a_group_commit() {
    if !nido_testkit::slow_tier("devices_onboard_through_a_crash_before_a_group_commit") {
        return;
    }
    crash_and_restart("crash-before", &format!("before-delivery:{DELIVERY}"), None);
}

#[test]
fn devices_onboard_through_a_crash_after_a_group_commit() {
    if !nido_testkit::slow_tier("devices_onboard_through_a_crash_after_a_group_commit") {
        return;
    }
    crash_and_restart("crash-after", &format!("after-delivery:{DELIVERY}"), None);
}

#[test]
fn devices_onboard_through_a_crash_before_a_group_commit_on_postgres() {
    if !nido_testkit::slow_tier("devices_onboard_through_a_crash_before_a_group_commit_on_postgres")
    {
        return;
    }
    // Dropped last: the processes are gone when the database is dropped.
    let Some(db) = PgDb::new("devices_onboard_through_a_crash_before_a_group_commit_on_postgres")
    else {
        return;
    };
    crash_and_restart(
        "crash-before-pg",
        &format!("before-delivery:{DELIVERY}"),
        Some(&db.url()),
    );
}

/// The audit trail, oldest first (`nido network audit --json`, all of it).
fn audit(d: &Path) -> Vec<Value> {
    json_lines(&ok(
        &[
            "network", "audit", "--dir", "net", "--json", "--limit", "10000000",
        ],
        d,
    ))
}

/// How many audit entries of each kind (an activation counted apart).
fn kinds(audit: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in audit {
        let mut kind = e["kind"].as_str().unwrap().to_owned();
        if is_activation(e) {
            kind.push_str(" (activated)");
        }
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// An `authenticated` entry that activated the subscription.
fn is_activation(e: &Value) -> bool {
    e["kind"] == "authenticated" && e["detail"].as_str().unwrap().ends_with(": activated")
}

/// One scenario at a time: three fleets and their servers at once would
/// make each scenario's timers (T3510, T3580) race a starved machine.
static ALONE: Mutex<()> = Mutex::new(());

fn crash_and_restart(name: &str, point: &str, db: Option<&str>) {
    // A scenario that failed (and poisoned the lock) leaves nothing behind.
    let _alone = ALONE.lock().unwrap_or_else(PoisonError::into_inner);
    let started = Instant::now();
    let s = Scratch::new(name);
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network_on(d, DEVICES, db);

    // The network, set to die at the crash point.
    let crash_log = d.join("network-crash.log");
    let mut crashing = Reaper(spawn_with_env(
        &["network", "serve", "--dir", "net", "--clone-window", "2"],
        d,
        &crash_log,
        &[("NIDO_CRASH_POINT", point)],
    ));
    wait_for_log(&crash_log, "serving", Duration::from_secs(30));

    // The fleet, all at once; the report on stdout, the rest in sim.log.
    let report_path = d.join("report.json");
    let mut sim = Reaper(
        Command::new(env!("CARGO_BIN_EXE_nido"))
            .env("NIDO_API", "127.0.0.1:0")
            .args([
                "sim",
                "--network",
                &listen,
                "--factory",
                "factory",
                "--timeout",
                "150",
                "--unprotected-t3346-min",
                "5",
                "--unprotected-t3346-max",
                "20",
                "--t3510",
                "5",
                "--not-authorized-retry",
                "3",
                "--coap-timeout",
                "3",
                "--t3580",
                "3",
                "--json",
            ])
            .current_dir(d)
            .stdout(Stdio::from(std::fs::File::create(&report_path).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // Serve aborts at the crash point.
    let status = wait_for_exit(&mut crashing.0, Duration::from_secs(60), || {
        format!(
            "serve did not reach {point}:\n{}",
            std::fs::read_to_string(&crash_log).unwrap_or_default()
        )
    });
    let crashed_at = started.elapsed();
    let said = std::fs::read_to_string(&crash_log).unwrap();
    assert!(
        said.contains(&format!("nido: crash point {point} (group ")),
        "serve ended without its crash point ({status}):\n{said}"
    );
    assert_eq!(status.signal(), Some(SIGABRT), "{status}:\n{said}");

    // What was durable at the crash: onboarding was under way.
    let at_crash = kinds(&audit(d));
    let subs_at_crash = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    // What the crashed serve had done: its log names each change when the
    // network made it, before its group commit (printed, not asserted: the
    // abort loses the lines its log writer had not written yet).
    let made = |what: &str| said.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "{name}: {point} at {:.1} s; made before: {} package deliveries, {} confirmations, {} activations; durable: {} subscriptions, audit {at_crash:?}",
        crashed_at.as_secs_f64(),
        made("package delivered"),
        made(" provisioned device="),
        made("detail=\"activated\""),
        subs_at_crash.len()
    );
    assert!(
        at_crash.get("registered").copied().unwrap_or(0) < DEVICES,
        "{point} came after every device registered: {at_crash:?}"
    );

    // The same network again, without the hook, on the same port.
    let log = d.join("network.log");
    let serve = Reaper(spawn(
        &["network", "serve", "--dir", "net", "--clone-window", "2"],
        d,
        &log,
    ));
    wait_for_log(&log, "serving", Duration::from_secs(30));

    let status = wait_for_exit(&mut sim.0, Duration::from_secs(170), || {
        format!(
            "nido sim did not finish:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let report_text = std::fs::read_to_string(&report_path).unwrap();
    assert!(
        status.success(),
        "nido sim: {status}\n{report_text}\n{}",
        std::fs::read_to_string(d.join("sim.log")).unwrap_or_default()
    );
    drop(serve);
    drop(sim);
    let report: Value = serde_json::from_str(&report_text).unwrap();
    assert_eq!(report["devices"], DEVICES, "{report:#}");
    assert_eq!(
        report["active"], DEVICES,
        "a device did not end active: {report:#}"
    );
    assert_eq!(report["refused"]["total"], 0, "{report:#}");

    // One subscription per device, each active, no SUPI twice.
    let subs = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(
        subs.len(),
        DEVICES,
        "one subscription per device: {subs:#?}"
    );
    assert!(subs.iter().all(|s| s["state"] == "active"), "{subs:#?}");
    let ids: BTreeSet<String> = (1..=DEVICES)
        .map(|n| format!("Acme Sensors/ACMESENS-{n:010}"))
        .collect();
    let devices: BTreeSet<String> = subs
        .iter()
        .map(|s| s["device"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(devices, ids, "{subs:#?}");
    let supis: BTreeSet<&str> = subs.iter().map(|s| s["supi"].as_str().unwrap()).collect();
    assert_eq!(supis.len(), DEVICES, "a SUPI given twice: {subs:#?}");

    // The audit trail holds every change that is durable.
    let trail = audit(d);
    let store = open_network_store(d, db);
    let mut confirmed = 0;
    for sub in &subs {
        let device = sub["device"].as_str().unwrap();
        let supi = sub["supi"].as_str().unwrap();
        let of_device = |kind: &str| -> Vec<(usize, &Value)> {
            trail
                .iter()
                .enumerate()
                .filter(|(_, e)| e["kind"] == kind && e["device"] == device)
                .collect()
        };
        let delivered = of_device("package_delivered");
        let provisioned = of_device("provisioned");
        let activations: Vec<usize> = trail
            .iter()
            .enumerate()
            .filter(|(_, e)| is_activation(e) && e["supi"] == supi)
            .map(|(i, _)| i)
            .collect();

        // Each package the store delivered has its entry, in order, and
        // the last one is the package the subscription holds.
        let (manufacturer, serial) = device.split_once('/').unwrap();
        let log = store
            .provisioning_log(&DeviceId::new(manufacturer, serial).unwrap())
            .unwrap();
        assert_eq!(
            log.len(),
            delivered.len(),
            "{device}: {} packages delivered, {} package_delivered entries",
            log.len(),
            delivered.len()
        );
        for (n, (row, (_, entry))) in log.iter().zip(&delivered).enumerate() {
            assert_eq!(row.supi, supi, "{device}: a package of another SUPI");
            assert_eq!(entry["supi"], supi, "{device}: {entry}");
            assert_eq!(row.reprovisioned, n > 0, "{device}: {row:?}");
            let detail = if n > 0 {
                "re-provisioned with a new K"
            } else {
                "new subscription"
            };
            assert_eq!(entry["detail"], detail, "{device}: {entry}");
        }
        assert_eq!(
            log.last().map(|r| hex::encode(r.package_id)).as_deref(),
            sub["package_id"].as_str(),
            "{device}: the subscription's package is not the last delivered"
        );

        // One activation, after every delivery (an active subscription is
        // never re-provisioned).
        assert_eq!(
            activations.len(),
            1,
            "{device} ({supi}): {} activation entries",
            activations.len()
        );
        let activated = activations[0];
        assert!(
            delivered.iter().all(|(i, _)| *i < activated),
            "{device}: a package delivered after the activation"
        );
        // Confirmations name the device's SUPI and follow a delivery.
        assert!(
            provisioned.len() <= delivered.len(),
            "{device}: more confirmations than packages"
        );
        for (i, e) in &provisioned {
            assert_eq!(e["supi"], supi, "{device}: {e}");
            assert!(
                delivered[0].0 < *i && *i < activated,
                "{device}: a provisioned entry out of order"
            );
        }
        if provisioned
            .iter()
            .any(|(i, _)| *i > delivered.last().unwrap().0)
        {
            confirmed += 1;
        }
    }
    eprintln!(
        "{name}: all {DEVICES} active in {:.1} s ({confirmed} confirmed their last package, the rest validated by 5G-AKA); audit {:?}",
        started.elapsed().as_secs_f64(),
        kinds(&trail)
    );
}
