//! `nido network serve`: the network process. Reads the configuration,
//! opens the store, loads the trust store and DCS credentials, and runs the
//! sans-IO `Network` on the UDP access link until SIGTERM or SIGINT. The
//! trust store is reloaded while serving whenever the store's trust
//! generation moves (checked every `--trust-poll-ms`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nido_access::commit::{CommitOptions, Committer, Gate};
use nido_access::network::{ServeOptions, Shard, serve_sharded};
use nido_access::relay::Relay;
use nido_access::trust::TrustWatch;
use nido_eap::{DcsCredentials, Settings};
use nido_net::amf::Admission;
use nido_net::dcs::Dcs;
use nido_net::pvs::Quotas;
use nido_net::{DownlinkQueue, Loudness, Network, NetworkEvent, Stage};
use nido_pki::files::{read_certs, read_key};
use rustls::pki_types::PrivateKeyDer;

use super::{Limit, ServeArgs, capacity, config};

/// The serving network's log: one structured line per event; events carry
/// no secret. Connection ids travel in clear on the access link and are
/// all an off-path sender needs to address a context, so they appear only
/// at debug level (the whole event is logged there). Discarded PDUs, which
/// anyone can send, are summed up in one line at most once a minute.
struct EventLog {
    discarded: u64,
    since: std::time::Instant,
}

impl EventLog {
    fn new() -> Self {
        Self {
            discarded: 0,
            since: std::time::Instant::now(),
        }
    }

    /// Logs `event` as its one record says ([`NetworkEvent::record`]):
    /// the kind as the message, the device, SUPI, cause and detail as
    /// fields, at its loudness; the connection only in the debug line.
    fn event(&mut self, event: &NetworkEvent) {
        tracing::debug!(event = ?event, "network");
        if matches!(event, NetworkEvent::Discarded { .. }) {
            self.discarded += 1;
            if self.since.elapsed() >= Duration::from_secs(60) {
                tracing::info!(
                    discarded = self.discarded,
                    "PDUs discarded in the last minute (undecodable, unknown connection, failed integrity, not allowed)"
                );
                self.discarded = 0;
                self.since = std::time::Instant::now();
            }
        }
        // What anyone can cause at will costs no record and no line.
        let loudness = event.loudness();
        if loudness == Loudness::Debug {
            return;
        }
        let r = event.record();
        // A field the event does not have is left out of the line.
        let message = r.kind.replace('_', " ");
        let device = r.device.as_deref();
        let supi = r.supi.as_deref();
        let cause = r.cause.map(|c| c.octet());
        let detail = (!r.detail.is_empty()).then_some(r.detail.as_str());
        if loudness == Loudness::Warn {
            tracing::warn!(device, supi, cause, detail, "{message}");
        } else {
            tracing::info!(device, supi, detail, "{message}");
        }
    }
}

/// The DCS credentials of `d` (certificate chain and key, 0600), trusting
/// `trust`.
fn dcs_credentials(
    dir: &std::path::Path,
    d: &config::DcsEntry,
    trust: &Arc<nido_pki::TrustStore>,
) -> Result<DcsCredentials> {
    let chain = read_certs(&dir.join(&d.chain))?;
    config::check_key_file(&dir.join(&d.key), "DCS key")?;
    let key = read_key(&dir.join(&d.key))?;
    DcsCredentials::new(chain, &PrivateKeyDer::Pkcs8(key), trust.clone())
        .with_context(|| format!("DCS credentials of {}", d.realm))
}

/// After a trust reload: takes the SUCI home network keys `nido.toml` has
/// now, and serves the realms it gained since start
/// (`trust-manufacturer` writes the DCS files and the [[dcs]] entry before
/// it enrolls the manufacturer, so they are there when the generation
/// moves).
fn serve_new_realms(
    dir: &std::path::Path,
    network: &mut Network,
    trust: &Arc<nido_pki::TrustStore>,
) -> Result<()> {
    let config = config::Config::load(dir)?;
    // `nido network suci-key add|retire` edits [[keys.suci]], then moves
    // the generation: the keys are read again, whole, first (a realm whose
    // files do not load must not keep an old key in use).
    network.set_home_network_keys(config::suci_keys(dir, &config)?);
    for d in &config.dcs {
        if !network.serves_realm(&d.realm) {
            network.serve_realm(&d.realm, dcs_credentials(dir, d, trust)?);
            tracing::info!(realm = %d.realm, "DCS realm added");
        }
    }
    Ok(())
}

/// One AMF shard's network: its own DCS, UDM, PVS and admission share of
/// `max_procedures`, over `stage`.
fn shard_network(
    dir: &std::path::Path,
    config: &config::Config,
    trust: &Arc<nido_pki::TrustStore>,
    a: &ServeArgs,
    per_shard: Option<usize>,
    stage: &Stage,
    downlinks: &DownlinkQueue,
) -> Result<Network> {
    let mut dcs = Dcs::new(Settings::default());
    for d in &config.dcs {
        dcs.serve(&d.realm, dcs_credentials(dir, d, trust)?);
    }
    // The operator's block list applies to devices of relayed realms too
    // (a network may have no DCS of its own).
    dcs.set_trust_store(trust.clone());
    let (udm, mut pvs, mut net) = config::functions(dir, config)?;
    // Subscription quotas per manufacturer (trust-manufacturer
    // --max-subscriptions), reloaded with the trust store.
    pvs.set_quotas(Some(Quotas::from_trust(
        trust,
        super::DEFAULT_MAX_SUBSCRIPTIONS,
    )));
    net.clone_window = Duration::from_secs(a.clone_window);
    net.admission = Admission {
        max_procedures: per_shard,
        t3346: Duration::from_secs(a.t3346_min)..=Duration::from_secs(a.t3346_max),
        seed: None,
    };
    // Uplink data goes through the store's outbox (the stage) to the
    // delivery worker; the sink only hands the AMF the downlinks waiting.
    let mut network = Network::new(
        net,
        Box::new(stage.clone()),
        udm,
        pvs,
        dcs,
        Box::new(downlinks.clone()),
    );
    for e in &config.external_dcs {
        network.relay_realm(&e.realm, &e.manufacturer);
    }
    Ok(network)
}

pub(crate) fn run(a: &ServeArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let (config, store) = super::open(dir, a.db.as_deref())?;
    store.set_msin_range(config.subscriptions.msin_count)?;
    if a.t3346_min > a.t3346_max {
        anyhow::bail!(
            "--t3346-min {} is above --t3346-max {}",
            a.t3346_min,
            a.t3346_max
        );
    }
    let shards = a
        .shards
        .map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
        .max(1);
    // The admission limit: given, or what this machine finishes within a
    // guard timer at its public-key bound.
    let (limit, bound) = match a.max_procedures {
        Limit::At(n) => (Some(n), None),
        Limit::Unlimited => (None, None),
        Limit::Auto => match capacity::public_key_bound(Duration::from_millis(60)) {
            Some(bound) => (Some(capacity::limit_for(bound)), Some(bound)),
            None => (Some(2_000), None),
        },
    };
    // Each shard watches the trust data on a connection of its own. The
    // generation is read before the store is loaded: a change in between
    // is loaded again at the first poll.
    let mut watches = Vec::with_capacity(shards);
    let mut generation = 0;
    for _ in 0..shards {
        let (_, trust_source) = super::open(dir, a.db.as_deref())?;
        generation = trust_source.trust_generation()?;
        watches.push(trust_source);
    }
    let trust = Arc::new(store.trust_store()?);
    let no_dcs = config.dcs.is_empty() && config.external_dcs.is_empty();
    let routes = config
        .external_dcs
        .iter()
        .map(|e| e.route(dir))
        .collect::<Result<Vec<_>>>()?;
    // The network's writes leave it as effects (issue #11): one stage over
    // two connections, one for reads and one for the committer's group
    // commits, shared by every AMF shard; replies wait for the writes they
    // depend on.
    let (_, mut writer) = super::open(dir, a.db.as_deref())?;
    // The durability tests' hook: die at a point of the n-th group commit.
    if let Ok(point) = std::env::var("NIDO_CRASH_POINT") {
        writer.set_crash_point(
            point
                .parse()
                .map_err(|e| anyhow::anyhow!("NIDO_CRASH_POINT: {e}"))?,
        );
    }
    let stage = Stage::new(Box::new(store), Box::new(writer));
    // Downlinks waiting for their devices, shared by the shards (issue #14).
    let downlinks = DownlinkQueue::new();
    let mut networks = Vec::with_capacity(shards);
    for _ in 0..shards {
        networks.push(shard_network(
            dir,
            &config,
            &trust,
            a,
            limit.map(|n| n.div_ceil(shards).max(1)),
            &stage,
            &downlinks,
        )?);
    }
    let listen = a
        .listen
        .clone()
        .unwrap_or_else(|| config.network.listen.clone());
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&listen)
        .with_context(|| format!("UDP {listen}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("UDP {listen}: no address"))?;
    let socket = nido_access::bind_udp(addr).with_context(|| format!("UDP {listen}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    // Held to the end: dropping it writes the lines still queued.
    let _log = crate::log::init()?;
    tracing::info!(
        snn = %config.serving_network()?.snn,
        udp = %socket.local_addr()?,
        shards,
        max_procedures = limit.map_or("unlimited".into(), |n| n.to_string()),
        public_key_bound_per_s = bound.map_or("-".into(), |b| format!("{b:.0}")),
        t3346_s = format!("{}-{}", a.t3346_min, a.t3346_max),
        "serving (SIGTERM or Ctrl-C to stop)"
    );
    if no_dcs {
        tracing::warn!(
            "no manufacturer enrolled: onboardings are refused (#75) until one is (trust-manufacturer; serve picks it up)"
        );
    }
    let log = Arc::new(std::sync::Mutex::new(EventLog::new()));
    // The one definition of what serve counts (issue #15), scraped at
    // /metrics.
    let metrics = Arc::new(nido_api::Metrics::new());
    metrics.admission_limit(limit);
    let poll = Duration::from_millis(a.trust_poll_ms);
    let nas_identifier = format!("nido {}", config.serving_network()?.snn);
    for r in &routes {
        tracing::info!(realm = %r.realm, server = %r.server, radsec = r.radsec.is_some(), "onboarding EAP relayed to an external DCS");
    }
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<i64>();
    let parts: Vec<Shard<'_>> = networks
        .into_iter()
        .zip(watches)
        .enumerate()
        .map(|(shard, (network, source))| {
            let log = log.clone();
            let metrics = metrics.clone();
            let round_metrics = metrics.clone();
            let sent = sent_tx.clone();
            let mut watch = TrustWatch::new(source, poll, Some(generation));
            // Each shard relays its own UEs' onboarding EAP to the external
            // DCSes, on sockets of its own.
            let mut relay = Relay::new(&routes, &nas_identifier)?;
            let started = Instant::now();
            Ok(Shard {
                network,
                on_event: Box::new(move |e: &NetworkEvent| {
                    if let NetworkEvent::DownlinkSent { id, .. } = e {
                        let _ = sent.send(*id);
                    }
                    metrics.observe(e, Instant::now());
                    if let Ok(mut log) = log.lock() {
                        log.event(e);
                    }
                }),
                on_round: Box::new(move |network: &mut Network| {
                    round_metrics.admission(shard, network.procedures());
                    relay.exchange(network, started.elapsed(), std::time::SystemTime::now());
                    match watch.poll(Instant::now(), network) {
                        Ok(Some(reloaded)) => {
                            tracing::info!(
                                generation = reloaded.generation,
                                "trust store reloaded (manufacturers, CRLs, block list changed)"
                            );
                            if let Err(e) = serve_new_realms(dir, network, &reloaded.trust) {
                                tracing::warn!(error = %e, "nido.toml not reloaded (DCS realms of manufacturers enrolled since start, SUCI keys): the current ones stay");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "trust store not reloaded; the current one stays"),
                    }
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let gate = Gate::new(stage, Arc::new(socket.try_clone()?));
    {
        let m = metrics.clone();
        gate.observe_commits(Arc::new(move |took, writes| m.commit(took, writes)));
    }
    let committer = Committer::start(
        gate.clone(),
        CommitOptions {
            gather: Duration::from_micros(a.commit_gather_us),
            ..CommitOptions::default()
        },
    )?;
    // With an external DCS, rounds come often enough that a RADIUS reply
    // waits at most a few milliseconds for the shard to take it.
    let options = if routes.is_empty() {
        ServeOptions::default()
    } else {
        ServeOptions {
            tick: Duration::from_millis(2),
            ..ServeOptions::default()
        }
    };
    // The delivery worker drains the outbox to owners' applications (issue
    // #14), on a store handle of its own.
    let (_, outbox) = super::open(dir, a.db.as_deref())?;
    let mut worker = nido_deliver::Worker::new(
        outbox,
        dir.join("uplink.jsonl"),
        nido_deliver::WorkerOptions {
            client_id: format!("nido-network-{}", std::process::id()),
            ..nido_deliver::WorkerOptions::default()
        },
    );
    let worker_stop = Arc::new(AtomicBool::new(false));
    let delivering = {
        let stop = worker_stop.clone();
        std::thread::Builder::new()
            .name("delivery".into())
            .spawn(move || worker.run(&stop))?
    };
    // Downlinks: listeners on the owners' brokers, and the poller that
    // hands them to the shards and reports what was sent. The MQTT
    // sessions are named after the network, so a restarted serve finds
    // what was published while it was away.
    let open_store: nido_deliver::downlink::OpenStore = {
        let url =
            a.db.clone()
                .unwrap_or_else(|| config::database_url(dir, &config));
        let kek = config::kek(dir, &config)?;
        Arc::new(move || nido_store::SqlStore::open(&url, kek.clone()).map_err(|e| e.to_string()))
    };
    let api_store = open_store.clone();
    let downlink_client = format!(
        "nido-{}",
        config
            .serving_network()?
            .snn
            .to_string()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    let downlinking = {
        let stop = worker_stop.clone();
        let queue = downlinks.clone();
        std::thread::Builder::new()
            .name("downlink".into())
            .spawn(move || {
                if let Err(e) = nido_deliver::downlink::run(
                    &open_store,
                    &queue,
                    &sent_rx,
                    &downlink_client,
                    &stop,
                ) {
                    tracing::warn!("downlink: {e}; downlinks wait in the store");
                }
            })?
    };
    // The HTTP API, console and metrics (issue #15), on store handles of
    // their own.
    let api = match a.api.as_str() {
        "off" => None,
        addr => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
                .with_context(|| format!("--api {addr}"))?
                .next()
                .ok_or_else(|| anyhow::anyhow!("--api {addr}: no address"))?;
            let pool = nido_api::StorePool::start(&api_store, 2)
                .map_err(|e| anyhow::anyhow!("API store: {e}"))?;
            let g = gate.clone();
            let sampler: nido_api::Sampler = Arc::new(move |m: &nido_api::Metrics, st| {
                use std::sync::atomic::Ordering::Relaxed;
                m.traffic(
                    g.stats().received.load(Relaxed),
                    g.stats().sent.load(Relaxed),
                );
                if let Ok(queues) = st.delivery_status() {
                    m.delivery_pending(queues.iter().map(|q| q.pending).sum());
                }
            });
            let server = nido_api::ApiServer::start(
                addr,
                nido_api::AppState::new(pool, metrics.clone(), Some(sampler)),
            )
            .with_context(|| format!("--api {addr}"))?;
            tracing::info!(
                api = %format!("http://{}", server.addr()),
                "API (/api/v1, /openapi.json), console (/) and metrics (/metrics) listening; tokens: nido network token create"
            );
            Some(server)
        }
    };
    let stats = serve_sharded(parts, &socket, &options, &stop, &gate)?;
    if let Some(api) = api {
        api.stop();
    }
    // The writes of the last round, and the replies that waited for them.
    committer.finish();
    worker_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if delivering.join().is_err() {
        tracing::warn!("the delivery worker panicked; pending data stays in the outbox");
    }
    if downlinking.join().is_err() {
        tracing::warn!("the downlink poller panicked; downlinks wait in the store");
    }
    let commits = gate.stats();
    tracing::info!(
        groups = commits.groups.load(std::sync::atomic::Ordering::Relaxed),
        writes = commits.writes.load(std::sync::atomic::Ordering::Relaxed),
        abandoned = commits.abandoned.load(std::sync::atomic::Ordering::Relaxed),
        "store commits"
    );
    tracing::info!(
        received = stats.received,
        sent = stats.sent,
        malformed = stats.malformed,
        over_capacity = stats.over_capacity,
        congested = stats.congested,
        discarded = stats.discarded,
        foreign = stats.foreign,
        unaudited = stats.unaudited,
        system_information = stats.system_information,
        system_information_dropped = stats.system_information_dropped,
        "stopped; in-flight procedures abandoned (the store holds only committed state)"
    );
    Ok(())
}
