//! The input is a script for one device and one network that are also
//! talking to each other: chunks `[op, len, octets...]`. `op` bit 0 picks
//! the receiver (network or device), bits 1-2 the network connection the
//! octets arrive on, bits 3-7 how far the clock moves first (timers fire).
//! Between chunks, what each side sent is delivered to the other, so a real
//! onboarding runs interleaved with the fuzzer's PDUs.
//!
//! Neither `Network` nor `Device` may panic on any PDU in any state, and
//! the network's store must keep one subscription per device.

#![no_main]

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nido_eap::fixtures::Onboarding;
use nido_net::{ConnectionId, MemorySink, Network};
use nido_pki::DeviceProfile;
use nido_sim::scenario::{self, NetworkOptions};
use nido_ue::Device;

struct World {
    now: SystemTime,
    network: Network,
    device: Device,
}

fn fresh() -> World {
    let onboarding = Onboarding::new("Fuzz Sensors", SystemTime::now()).expect("fixture");
    let network = scenario::network(
        &onboarding,
        &NetworkOptions::default(),
        Box::new(MemorySink::new()),
    )
    .expect("network");
    let id = onboarding
        .manufacturer
        .issue_device(
            &onboarding.manufacturer.device_serial(1),
            &DeviceProfile::standard(onboarding.now),
        )
        .expect("device");
    let mut device = scenario::device(&onboarding, &id, false).expect("device");
    device.power_on(onboarding.now);
    World {
        now: onboarding.now,
        network,
        device,
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
    static RUNS: RefCell<u32> = const { RefCell::new(0) };
}

/// Delivers what each side sent to the other (the device is on connection 0).
fn exchange(w: &mut World) {
    for _ in 0..64 {
        let mut moved = false;
        while let Some(t) = w.device.poll_transmit() {
            w.network.handle_pdu(w.now, ConnectionId(u64::from(t.connection)), &t.pdu);
            moved = true;
        }
        while let Some(t) = w.network.poll_transmit() {
            if t.conn.0 == u64::from(w.device.connection()) {
                w.device.handle_pdu(w.now, &t.pdu);
                moved = true;
            }
        }
        while w.device.poll_event().is_some() {}
        while w.network.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // A fresh world every 200 inputs keeps runs fast and states varied.
    let reset = RUNS.with(|r| {
        let mut r = r.borrow_mut();
        *r = (*r + 1) % 200;
        *r == 1
    });
    WORLD.with(|cell| {
        let mut cell = cell.borrow_mut();
        if reset || cell.is_none() {
            *cell = Some(fresh());
        }
        let Some(w) = cell.as_mut() else { return };
        let mut rest = data;
        while let [op, len, tail @ ..] = rest {
            let n = usize::from(*len).min(tail.len());
            let (pdu, next) = tail.split_at(n);
            rest = next;
            w.now += Duration::from_millis(u64::from(op >> 3) * 500);
            w.network.handle_timeout(w.now);
            w.device.handle_timeout(w.now);
            if op & 1 == 0 {
                let conn = u64::from((op >> 1) & 3);
                w.network.handle_pdu(w.now, ConnectionId(conn), pdu);
            } else {
                w.device.handle_pdu(w.now, pdu);
            }
            exchange(w);
        }
        let subs = w
            .network
            .store()
            .subscriptions()
            .expect("a MemoryStore answers");
        assert!(subs.len() <= 1, "one device, {} subscriptions", subs.len());
    });
});
