//! Time per device identity issued (P-256 keygen + certificate signing).

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use nido_pki::{DeviceProfile, Manufacturer};

fn issue(c: &mut Criterion) {
    let now = SystemTime::now();
    let Ok(m) = Manufacturer::generate("Bench Devices", now) else {
        panic!("manufacturer generation failed");
    };
    let profile = DeviceProfile::standard(now);
    let mut n = 0u64;
    let mut g = c.benchmark_group("nido-pki");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    g.bench_function("issue_device (keygen + sign)", |b| {
        b.iter(|| {
            n += 1;
            black_box(m.issue_device(&format!("BENCH-{n:010}"), black_box(&profile)))
        })
    });
    g.bench_function("issue_device + claim code", |b| {
        b.iter(|| {
            n += 1;
            let d = m.issue_device(&format!("BENCH-{n:010}"), &profile);
            let code = nido_pki::ClaimCode::generate();
            black_box((d, code.map(|c| c.hash())))
        })
    });
    g.finish();
}

criterion_group!(benches, issue);
criterion_main!(benches);
