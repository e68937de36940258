//! What an owner's application receives: one JSON object per burst, the
//! same on MQTT and in the file.
//!
//! ```json
//! {"device": "Acme Sensors/ACMESENS-0000000001", "serial": "ACMESENS-0000000001",
//!  "owner": "acme", "supi": "imsi-999990000000001", "psi": 1, "seq": 3,
//!  "at": "2026-12-06T23:10:02.117Z", "at_ms": 1796598602117, "data": "AQID"}
//! ```
//!
//! `seq` numbers a device's bursts and events from 1 and is the
//! idempotency key: an entry delivered twice (at least once) carries the
//! same `seq`. `data` is base64 (RFC 4648 §4, padded).
//!
//! An event about the device (issue #16 item 1: the operator blocked,
//! unblocked or released it) goes to the same destination, on MQTT under
//! `PREFIX/<serial>/events`:
//!
//! ```json
//! {"device": "Acme Sensors/ACMESENS-0000000001", "serial": "ACMESENS-0000000001",
//!  "owner": "acme", "supi": "imsi-999990000000001", "seq": 4,
//!  "at": "2026-12-07T10:00:00.000Z", "at_ms": 1796637600000,
//!  "event": "blocked", "reason": "stolen (at once)"}
//! ```

use base64::Engine as _;
use nido_store::{EntryKind, OutboxEntry};

/// The JSON body of one entry: a burst, or an event about the device.
pub fn body(e: &OutboxEntry) -> serde_json::Value {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms);
    if e.kind == EntryKind::Event {
        // Written by the store as {"event", "reason"}; anything else is
        // passed on as the event's text, never dropped.
        let event: serde_json::Value = serde_json::from_slice(&e.data)
            .unwrap_or_else(|_| serde_json::json!({"event": String::from_utf8_lossy(&e.data)}));
        return serde_json::json!({
            "device": e.device,
            "serial": serial(&e.device),
            "owner": e.owner,
            "supi": e.supi,
            "seq": e.seq,
            "at": iso8601(at),
            "at_ms": e.at_ms,
            "event": event["event"],
            "reason": event["reason"],
        });
    }
    serde_json::json!({
        "device": e.device,
        "serial": serial(&e.device),
        "owner": e.owner,
        "supi": e.supi,
        "psi": e.psi,
        "seq": e.seq,
        "at": iso8601(at),
        "at_ms": e.at_ms,
        "data": base64::engine::general_purpose::STANDARD.encode(&e.data),
    })
}

/// The device serial of a `MANUFACTURER/SERIAL` identity.
fn serial(device: &str) -> &str {
    device.split_once('/').map_or(device, |(_, s)| s)
}

/// The topic of `device`'s entries of `kind` under `prefix`:
/// `PREFIX/<serial>/up` for its bursts, `PREFIX/<serial>/events` for
/// events about it. A serial's characters that mean something in a topic
/// (`/`, `+`, `#`, and `%` itself) are percent-encoded, so one device never
/// publishes into another's topic or a wildcard.
pub fn topic(prefix: &str, device: &str, kind: EntryKind) -> String {
    let mut t = String::with_capacity(prefix.len() + device.len() + 4);
    t.push_str(prefix.trim_end_matches('/'));
    t.push('/');
    for c in serial(device).chars() {
        match c {
            '/' | '+' | '#' | '%' => t.push_str(&format!("%{:02X}", c as u32)),
            c => t.push(c),
        }
    }
    t.push_str(match kind {
        EntryKind::Uplink => "/up",
        EntryKind::Event => "/events",
    });
    t
}

pub use nido_store::iso8601;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1796532376` : Sun Dec  6 04:46:16 UTC 2026
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_millis(1_796_532_376_123)),
            "2026-12-06T04:46:16.123Z"
        );
        // A leap day.
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_serial_cannot_leave_its_topic() {
        assert_eq!(
            topic("acme/", "Acme/DEV-1", EntryKind::Uplink),
            "acme/DEV-1/up"
        );
        assert_eq!(
            topic("p", "Acme/a+b#c/d%", EntryKind::Uplink),
            "p/a%2Bb%23c%2Fd%25/up"
        );
        assert_eq!(topic("p", "Acme/a/b", EntryKind::Event), "p/a%2Fb/events");
    }

    #[test]
    fn the_body_names_the_device_and_numbers_the_burst() {
        let e = OutboxEntry {
            kind: EntryKind::Uplink,
            id: 7,
            device: "Acme Sensors/ACMESENS-1".into(),
            owner: None,
            supi: "imsi-999990000000001".into(),
            psi: 1,
            seq: 3,
            data: vec![1, 2, 3],
            at_ms: 1_796_532_376_123,
            attempts: 0,
        };
        let b = body(&e);
        assert_eq!(b["serial"], "ACMESENS-1");
        assert_eq!(b["seq"], 3);
        assert_eq!(b["data"], "AQID");
        assert_eq!(b["at"], "2026-12-06T04:46:16.123Z");
        assert_eq!(b["owner"], serde_json::Value::Null);
        // An event about the device: no data, the event and its reason.
        let event = OutboxEntry {
            kind: EntryKind::Event,
            psi: 0,
            data: br#"{"event":"blocked","reason":"stolen (at once)"}"#.to_vec(),
            ..e
        };
        let b = body(&event);
        assert_eq!(b["event"], "blocked");
        assert_eq!(b["reason"], "stolen (at once)");
        assert_eq!(b["seq"], 3);
        assert!(b.get("data").is_none() && b.get("psi").is_none(), "{b}");
    }
}
