//! Downlink (issue #14): what an owner's application publishes to
//! `PREFIX/<device serial>/down` on its broker reaches the device.
//!
//! - A listener per MQTT destination (its own connection: persistent
//!   session, QoS 1, manual acknowledgements) keeps each message durably in
//!   the network's store (`downlink`, pending) before it acknowledges it
//!   (PUBACK), so a crash never loses a command the broker let go of; it
//!   answers on `PREFIX/<serial>/down/ack` with the downlink's id and
//!   `queued` (or why it was refused).
//! - Only the destination's own devices can be commanded: an owner's broker
//!   reaches the devices of that owner; the operator's default broker the
//!   devices no owner claimed and those of owners without a destination of
//!   their own. A serial that names no such device is refused
//!   (`unknown device`), the same answer whether the device exists
//!   elsewhere or not.
//! - A poller hands pending downlinks to the network ([`DownlinkQueue`]);
//!   the AMF sends them (DL NAS TRANSPORT) right after the device's next
//!   burst, and reports it ([`nido_net::NetworkEvent::DownlinkSent`]); the
//!   poller then marks them sent and publishes `sent` on the ack topic.
//!   A crash between the send and the mark sends the data again after the
//!   restart: at least once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nido_net::{Downlink, DownlinkQueue};
use nido_store::{DeliveryConfig, DeliveryTarget, SqlStore, SqlStoreError};
use rumqttc::{Client, Event, Packet, QoS};

pub use nido_store::MAX_DOWNLINK;

/// Opens a store handle for a thread of its own (the error as text).
pub type OpenStore = Arc<dyn Fn() -> Result<SqlStore, String> + Send + Sync>;

/// A listener's connection, for the poller's `sent` reports.
struct Listener {
    client: Client,
    prefix: String,
    owner: Option<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs the downlink side until `stop`: listeners for every MQTT
/// destination (re-read every few seconds), and the poller that feeds
/// `queue` and reports what `sent` names.
pub fn run(
    open: &OpenStore,
    queue: &DownlinkQueue,
    sent: &Receiver<i64>,
    client_id: &str,
    stop: &AtomicBool,
) -> Result<(), crate::DeliverError> {
    let store = open().map_err(crate::DeliverError::Open)?;
    let stop_listeners = Arc::new(AtomicBool::new(false));
    let listeners: Arc<Mutex<HashMap<String, Listener>>> = Arc::default();
    let mut last_configs = Instant::now() - Duration::from_secs(60);
    let mut queued_up_to = 0;
    while !stop.load(Ordering::Relaxed) {
        if last_configs.elapsed() > Duration::from_secs(2) {
            last_configs = Instant::now();
            let configs = store.deliveries()?;
            let mut l = listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for c in &configs {
                let DeliveryTarget::Mqtt {
                    url, topic_prefix, ..
                } = &c.target
                else {
                    continue;
                };
                let key = format!("{:?} {url} {topic_prefix}", c.owner);
                if l.contains_key(&key) {
                    continue;
                }
                match listen(open.clone(), c, &configs, client_id, stop_listeners.clone()) {
                    Ok(listener) => {
                        l.insert(key, listener);
                    }
                    Err(e) => tracing::warn!("downlink listener for {url}: {e}"),
                }
            }
        }
        // The network sent these: mark them, tell the application.
        let ids: Vec<i64> = sent.try_iter().collect();
        if !ids.is_empty() {
            let l = listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, device, owner) in store.mark_downlinks_sent(&ids)? {
                if let Some(listener) = l
                    .values()
                    .find(|x| x.owner == owner)
                    .or_else(|| l.values().find(|x| x.owner.is_none()))
                {
                    let serial = device.split_once('/').map_or(device.as_str(), |(_, s)| s);
                    ack(
                        listener,
                        serial,
                        &serde_json::json!({"id": id, "status": "sent"}),
                    );
                }
            }
        }
        // New pending downlinks to the network (all of them after a
        // restart: what was not marked sent is sent again).
        for d in store.pending_downlinks(queued_up_to, 1_000)? {
            queued_up_to = queued_up_to.max(d.id);
            queue.push(
                &d.device,
                Downlink {
                    id: d.id,
                    data: d.data,
                },
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_listeners.store(true, Ordering::Relaxed);
    let mut l = listeners
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (_, mut listener) in l.drain() {
        let _ = listener.client.disconnect();
        if let Some(t) = listener.thread.take() {
            let _ = t.join();
        }
    }
    Ok(())
}

/// Publishes `body` on `PREFIX/<serial>/down/ack` (QoS 1).
fn ack(listener: &Listener, serial: &str, body: &serde_json::Value) {
    let topic = format!("{}/{serial}/down/ack", listener.prefix);
    if let Err(e) = listener.client.try_publish(
        topic,
        QoS::AtLeastOnce,
        false,
        body.to_string().into_bytes(),
    ) {
        tracing::warn!("downlink ack: {e}");
    }
}

/// The serial of a `PREFIX/<serial>/down` topic (percent-decoded, as
/// [`crate::topic`] encodes it).
fn serial_of<'a>(prefix: &str, topic: &'a str) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let enc: &'a str = rest.strip_suffix("/down")?;
    if enc.contains('/') {
        return None;
    }
    let mut out = Vec::with_capacity(enc.len());
    let b = enc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = enc.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Starts the listener of one MQTT destination.
fn listen(
    open: OpenStore,
    config: &DeliveryConfig,
    all: &[DeliveryConfig],
    client_id: &str,
    stop: Arc<AtomicBool>,
) -> Result<Listener, crate::DeliverError> {
    let DeliveryTarget::Mqtt {
        url, topic_prefix, ..
    } = &config.target
    else {
        return Err(crate::DeliverError::Url {
            url: config.target.url().to_owned(),
            why: "not an MQTT destination".into(),
        });
    };
    // One session per destination and network: the broker keeps what is
    // published while the network is away.
    let owner_tag = config.owner.as_deref().unwrap_or("default");
    let mut o = crate::mqtt::options(&config.target, format!("{client_id}-down-{owner_tag}"))?;
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    let (client, mut connection) = Client::new(o, 64);
    let filter = format!("{topic_prefix}/+/down");
    // Owners whose devices this destination commands.
    let own: Option<String> = config.owner.clone();
    let with_own: Vec<String> = all.iter().filter_map(|c| c.owner.clone()).collect();
    let listener_client = client.clone();
    let prefix = topic_prefix.clone();
    let thread_prefix = prefix.clone();
    let thread = std::thread::Builder::new()
        .name("downlink".into())
        .spawn(move || {
            let store = match open() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("downlink listener: store: {e}");
                    return;
                }
            };
            let me = Listener {
                client: listener_client.clone(),
                prefix: thread_prefix.clone(),
                owner: own.clone(),
                thread: None,
            };
            let commands = |device_owner: &Option<String>| {
                may_command(own.as_deref(), &with_own, device_owner.as_deref())
            };
            for event in connection.iter() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(c))) => {
                        if !c.session_present
                            && let Err(e) = listener_client.try_subscribe(&filter, QoS::AtLeastOnce)
                        {
                            tracing::warn!("downlink subscribe: {e}");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let answer = match serial_of(&thread_prefix, &p.topic) {
                            None => None,
                            Some(serial) => Some((
                                serial.clone(),
                                receive(&store, &serial, &p.payload, &commands),
                            )),
                        };
                        match answer {
                            // Not kept: the broker may send it again.
                            Some((_, Err(e))) => {
                                tracing::warn!("downlink not kept: {e}");
                                continue;
                            }
                            Some((serial, Ok(body))) => ack(&me, &serial, &body),
                            None => {}
                        }
                        if let Err(e) = listener_client.try_ack(&p) {
                            tracing::warn!("downlink PUBACK: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tracing::debug!("downlink listener: {e}");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        })
        .map_err(|e| crate::DeliverError::Url {
            url: url.clone(),
            why: format!("thread: {e}"),
        })?;
    Ok(Listener {
        client,
        prefix,
        owner: config.owner.clone(),
        thread: Some(thread),
    })
}

/// Whether the destination of `owner` (`None`: the operator's default)
/// may command a device of `device_owner`: an owner's broker its own
/// devices; the default broker the unclaimed devices and those of owners
/// without a destination of their own (`with_own`).
fn may_command(owner: Option<&str>, with_own: &[String], device_owner: Option<&str>) -> bool {
    match owner {
        Some(o) => device_owner == Some(o),
        None => device_owner.is_none_or(|o| !with_own.iter().any(|w| w == o)),
    }
}

/// Keeps one downlink durably; the answer for the ack topic.
fn receive(
    store: &SqlStore,
    serial: &str,
    payload: &[u8],
    commands: &dyn Fn(&Option<String>) -> bool,
) -> Result<serde_json::Value, SqlStoreError> {
    if payload.is_empty() || payload.len() > MAX_DOWNLINK {
        return Ok(serde_json::json!({
            "status": "refused",
            "reason": format!("{} octets: 1 to {MAX_DOWNLINK} are taken", payload.len()),
        }));
    }
    let Some((device, owner)) = store
        .devices_with_serial(serial)?
        .into_iter()
        .find(|(_, owner)| commands(owner))
    else {
        return Ok(serde_json::json!({"status": "refused", "reason": "unknown device"}));
    };
    let id = store.enqueue_downlink(&device, owner.as_deref(), payload)?;
    Ok(serde_json::json!({"id": id, "status": "queued"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_commands_only_the_devices_whose_data_it_gets() {
        let with_own = vec!["acme".to_owned()];
        assert!(may_command(Some("acme"), &with_own, Some("acme")));
        assert!(!may_command(Some("acme"), &with_own, Some("beta")));
        assert!(!may_command(Some("acme"), &with_own, None));
        // The default: unclaimed devices and owners without their own.
        assert!(may_command(None, &with_own, None));
        assert!(may_command(None, &with_own, Some("beta")));
        assert!(!may_command(None, &with_own, Some("acme")));
    }

    #[test]
    fn a_down_topic_names_one_serial() {
        assert_eq!(
            serial_of("fleet", "fleet/DEV-1/down").as_deref(),
            Some("DEV-1")
        );
        assert_eq!(serial_of("p", "p/a%2Bb/down").as_deref(), Some("a+b"));
        for bad in [
            "fleet/DEV-1/up",
            "other/DEV-1/down",
            "fleet/a/b/down",
            "fleet/%zz/down",
        ] {
            assert_eq!(serial_of("fleet", bad), None, "{bad}");
        }
    }
}
