//! One full EAP-TLS 1.3 handshake in memory (peer + DCS), and the DCS's
//! share of it: the CPU a network spends per onboarding authentication.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench fixtures

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use nido_eap::fixtures::Onboarding;
use nido_eap::{
    DcsCredentials, DeviceCredentials, EapTlsPeer, EapTlsServer, PeerStep, ServerStep, Settings,
};
use nido_pki::DeviceProfile;

fn fixtures() -> (DcsCredentials, DeviceCredentials, SystemTime) {
    let world = Onboarding::new("Bench Devices", SystemTime::now()).unwrap();
    let (_, creds) = world
        .device(1, &DeviceProfile::standard(world.now))
        .unwrap();
    (world.dcs, creds, world.now)
}

/// Runs one handshake; returns (time in the server, time in the peer).
fn handshake(
    dcs: &DcsCredentials,
    creds: &DeviceCredentials,
    now: SystemTime,
) -> (Duration, Duration) {
    let settings = Settings::default();
    let t = Instant::now();
    let (mut server, mut request) = EapTlsServer::start(dcs, settings, now, 1).unwrap();
    let mut in_server = t.elapsed();
    let t = Instant::now();
    let mut peer = EapTlsPeer::new(creds, settings, "anonymous@bench", now).unwrap();
    let mut in_peer = t.elapsed();
    loop {
        let t = Instant::now();
        let step = peer.handle(&request);
        in_peer += t.elapsed();
        let PeerStep::Send(resp) = step else {
            panic!("peer stopped")
        };
        let t = Instant::now();
        let step = server.handle(&resp);
        in_server += t.elapsed();
        match step {
            ServerStep::Send(req) => request = req,
            ServerStep::Done(last, _) => {
                let t = Instant::now();
                assert!(matches!(
                    peer.handle(&last),
                    PeerStep::Done(nido_eap::PeerOutcome::Success(_))
                ));
                in_peer += t.elapsed();
                return (in_server, in_peer);
            }
            ServerStep::Ignored(w) => panic!("{w}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let (dcs, creds, now) = fixtures();
    let mut g = c.benchmark_group("eap_tls13");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    g.bench_function("full_handshake_both_sides", |b| {
        b.iter(|| handshake(&dcs, &creds, now))
    });
    g.bench_function("server_side_cpu", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| handshake(&dcs, &creds, now).0).sum())
    });
    g.bench_function("peer_side_cpu", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| handshake(&dcs, &creds, now).1).sum())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
