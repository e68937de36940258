//! Phase D's cost through the real procedures: per 50-octet burst, what the
//! device sends with CONTROL PLANE SERVICE REQUEST from idle, against a
//! baseline of re-registering with 5G-AKA (and re-establishing the PDU
//! session) for every burst.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use nido_sim::scenario::NetworkOptions;
use nido_sim::{Direction, Fleet};
use nido_ue::DeviceState;

use common::{one_device, settle, world};

const PAYLOAD: [u8; 50] = *b"t=21.5C;h=40%;batt=3.61V;seq=000017;fw=1.2.0;ok!!!";

#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    uplink_messages: usize,
    uplink_bytes: usize,
    downlink_messages: usize,
    downlink_bytes: usize,
}

fn meter(fleet: &mut Fleet) -> Rc<RefCell<Cost>> {
    let cost = Rc::new(RefCell::new(Cost::default()));
    let c = cost.clone();
    fleet.set_trace(move |r| {
        let mut c = c.borrow_mut();
        match r.direction {
            Direction::Uplink => {
                c.uplink_messages += 1;
                c.uplink_bytes += r.pdu.len();
            }
            Direction::Downlink => {
                c.downlink_messages += 1;
                c.downlink_bytes += r.pdu.len();
            }
        }
    });
    cost
}

#[test]
fn a_burst_from_idle_is_one_uplink_message_against_a_full_reregistration() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 3);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    fleet.advance(Duration::from_secs(30)); // data session up, device idle

    // Optimised path: one CONTROL PLANE SERVICE REQUEST.
    let cost = meter(&mut fleet);
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    let burst = *cost.borrow();
    assert_eq!(sink.received().len(), 1);
    assert_eq!(burst.uplink_messages, 1);

    // Baseline: register again (SUCI, 5G-AKA, security mode, PDU session),
    // then send the same data connected.
    fleet.advance(Duration::from_secs(30));
    *cost.borrow_mut() = Cost::default();
    let now = fleet.now();
    fleet.device_mut(0).power_on(now);
    fleet.pump_devices();
    let deadline = fleet.now() + Duration::from_secs(60);
    assert!(fleet.run_until(deadline, |f| f.device(0).state() == DeviceState::Active));
    fleet.advance(Duration::from_millis(200)); // the data session
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(1));
    let baseline = *cost.borrow();
    assert_eq!(sink.received().len(), 2);
    assert!(baseline.uplink_messages >= 5);
    assert!(burst.uplink_bytes * 4 < baseline.uplink_bytes);
    eprintln!(
        "burst of {} octets: {burst:?}; baseline: {baseline:?}",
        PAYLOAD.len()
    );
}

/// Issue #14: data an owner's application left for a device waits until
/// the device shows itself reachable (its next burst), then goes in one
/// protected DL NAS TRANSPORT right after the SERVICE ACCEPT, once; data
/// for another device is not given to this one.
#[test]
fn a_downlink_waits_for_the_devices_next_burst_and_goes_once() {
    let world = world();
    let (mut fleet, sink) = one_device(&world, &NetworkOptions::default(), 5);
    fleet.power_on(0);
    assert!(settle(&mut fleet, &[0]));
    fleet.advance(Duration::from_secs(30)); // idle
    let me = format!(
        "{}/{}",
        world.manufacturer.name(),
        world.manufacturer.device_serial(1)
    );
    let other = format!(
        "{}/{}",
        world.manufacturer.name(),
        world.manufacturer.device_serial(2)
    );
    sink.queue_downlink(
        &me,
        nido_net::Downlink {
            id: 7,
            data: b"led=on".to_vec(),
        },
    );
    sink.queue_downlink(
        &other,
        nido_net::Downlink {
            id: 8,
            data: b"not yours".to_vec(),
        },
    );
    let downlinks = |f: &Fleet| -> Vec<Vec<u8>> {
        f.device_events(0)
            .iter()
            .filter_map(|e| match e {
                nido_ue::DeviceEvent::Downlink { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    };
    let sent = |f: &Fleet| -> Vec<i64> {
        f.network_events()
            .iter()
            .filter_map(|e| match e {
                nido_net::NetworkEvent::DownlinkSent { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    fleet.advance(Duration::from_secs(30));
    assert!(
        downlinks(&fleet).is_empty(),
        "sent before the device was reachable"
    );
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    assert_eq!(downlinks(&fleet), [b"led=on".to_vec()]);
    assert_eq!(sent(&fleet), [7]);
    // The next burst carries nothing more down.
    fleet.advance(Duration::from_secs(30));
    fleet.send_data(0, &PAYLOAD).unwrap();
    fleet.advance(Duration::from_secs(5));
    assert_eq!(downlinks(&fleet).len(), 1);
    assert_eq!(sent(&fleet), [7]);
    assert_eq!(sink.received().len(), 2);
}
