//! What an owner's application receives: one JSON object per burst, the
//! same on MQTT and in the file.
//!
//! ```json
//! {"device": "Acme Sensors/ACMESENS-0000000001", "serial": "ACMESENS-0000000001",
//!  "owner": "acme", "supi": "imsi-999990000000001", "psi": 1, "seq": 3,
//!  "at": "2026-12-06T23:10:02.117Z", "at_ms": 1796598602117, "data": "AQID"}
//! ```
//!
//! `seq` numbers a device's bursts from 1 and is the idempotency key: a
//! burst delivered twice (at least once) carries the same `seq`. `data` is
//! base64 (RFC 4648 §4, padded).

use base64::Engine as _;
use nido_store::OutboxEntry;

/// The JSON body of one burst.
pub fn body(e: &OutboxEntry) -> serde_json::Value {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms);
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

/// The uplink topic of `device` under `prefix`: `PREFIX/<serial>/up`. A
/// serial's characters that mean something in a topic (`/`, `+`, `#`, and
/// `%` itself) are percent-encoded, so one device never publishes into
/// another's topic or a wildcard.
pub fn topic(prefix: &str, device: &str) -> String {
    let mut t = String::with_capacity(prefix.len() + device.len() + 4);
    t.push_str(prefix.trim_end_matches('/'));
    t.push('/');
    for c in serial(device).chars() {
        match c {
            '/' | '+' | '#' | '%' => t.push_str(&format!("%{:02X}", c as u32)),
            c => t.push(c),
        }
    }
    t.push_str("/up");
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
        assert_eq!(topic("acme/", "Acme/DEV-1"), "acme/DEV-1/up");
        assert_eq!(topic("p", "Acme/a+b#c/d%"), "p/a%2Bb%23c%2Fd%25/up");
    }

    #[test]
    fn the_body_names_the_device_and_numbers_the_burst() {
        let e = OutboxEntry {
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
    }
}
