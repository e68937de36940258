//! Times 10,000 `put_subscription` and 10,000 `subscription_by_supi` on a
//! store, one transaction each (what the PVS and the UDM do per device).
//!
//! ```text
//! cargo run --release -p nido-store --example throughput -- sqlite:///tmp/nido-bench.db
//! cargo run --release -p nido-store --example throughput -- postgres://postgres@127.0.0.1:5432/bench
//! ```
//! The database should be empty (a fresh file, or a fresh PostgreSQL database).

use std::time::Instant;

use nido_net::{Store, Subscription, SubscriptionState};
use nido_sec::aka::HeSqn;
use nido_sec::milenage::Amf;
use nido_sec::{K, Opc, Supi};
use nido_store::{Kek, SqlStore};

const N: u64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: throughput <database URL>")?;
    let mut store = SqlStore::open(&url, Kek::new([0x42; 32]))?;
    let supis: Vec<Supi> = (0..N)
        .map(|i| Supi::imsi(&format!("99999{:010}", i + 1)))
        .collect::<Result<_, _>>()?;

    let start = Instant::now();
    for (i, supi) in supis.iter().enumerate() {
        store.put_subscription(Subscription {
            supi: supi.clone(),
            k: K::new([i as u8; 16]),
            opc: Opc::new([!(i as u8); 16]),
            amf: Amf::FIVE_G,
            sqn: HeSqn::default(),
            state: SubscriptionState::Created,
            device: nido_net::DeviceId::new("Bench", &format!("BENCH-{i:06}"))?,
            owner: None,
            package_id: [i as u8; 16],
            not_after_unix: None,
            suci_key_id: None,
        })?;
    }
    let put = start.elapsed();

    let start = Instant::now();
    for supi in &supis {
        store
            .subscription_by_supi(supi)?
            .ok_or("a subscription went missing")?;
    }
    let get = start.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!("{:?} {url}", store.backend());
    println!(
        "{N} put_subscription:     {:>8.2} s  ({:>7.1} µs each)",
        put.as_secs_f64(),
        per(put)
    );
    println!(
        "{N} subscription_by_supi: {:>8.2} s  ({:>7.1} µs each)",
        get.as_secs_f64(),
        per(get)
    );
    Ok(())
}
