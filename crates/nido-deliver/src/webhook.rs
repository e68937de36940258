//! Webhooks: each burst POSTed as a TS 29.122 NIDD uplink data notification
//! (§5.6.2.1.x `NiddUplinkDataNotification`: `niddTransaction`,
//! `externalId`, `data` in base64) with nido's own fields under `nido` (the
//! body of [`crate::body`]), one request at a time in outbox order on one
//! kept-alive agent. Only a 2xx answer confirms an entry.
//!
//! Headers: `Idempotency-Key: <device>/<seq>` (the same for a burst sent
//! again), and with a secret `X-Nido-Signature: sha256=<hex>`, the
//! HMAC-SHA-256 of the exact body under the secret, for the receiver to
//! check before it trusts anything in it.

use std::sync::Arc;
use std::time::Duration;

use nido_store::OutboxEntry;

use crate::{DeliverError, body};

/// One owner's webhook.
pub(crate) struct Hook {
    agent: ureq::Agent,
}

/// Checks a webhook URL (what `nido owner delivery --webhook` stores).
pub fn check_webhook_url(url: &str) -> Result<(), DeliverError> {
    let bad = |why: &str| DeliverError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("expected http://… or https://…"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(bad("expected a host, without a user"));
    }
    Ok(())
}

/// The notification for `e`, `transaction` naming the owner's endpoint: a
/// burst's `data`, or for an event about the device (blocked, unblocked,
/// released) no `data` and the event in `nido.event` and `nido.reason`.
pub fn notification(e: &OutboxEntry, transaction: &str) -> serde_json::Value {
    let b = body(e);
    let (manufacturer, serial) = e.device.split_once('/').unwrap_or(("", &e.device));
    let realm: String = manufacturer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    serde_json::json!({
        "niddTransaction": transaction,
        "externalId": format!("{serial}@{realm}.devices.nido"),
        "data": b["data"],
        "nido": b,
    })
}

/// `sha256=<hex>`: HMAC-SHA-256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
    )
}

impl Hook {
    pub(crate) fn new(timeout: Duration) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build()
            .new_agent();
        Self { agent }
    }

    /// POSTs `entries` in order; returns the ids confirmed (2xx) and, if
    /// the batch stopped early, why.
    pub(crate) fn post(
        &self,
        url: &str,
        secret: Option<&str>,
        entries: &[OutboxEntry],
    ) -> (Vec<i64>, Option<String>) {
        let mut confirmed = Vec::with_capacity(entries.len());
        for e in entries {
            let text = notification(e, url).to_string();
            let mut request = self
                .agent
                .post(url)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", format!("{}/{}", e.device, e.seq));
            if let Some(secret) = secret {
                request = request.header(
                    "X-Nido-Signature",
                    signature(secret.as_bytes(), text.as_bytes()),
                );
            }
            match request.send(text.as_bytes()) {
                Ok(r) if r.status().is_success() => confirmed.push(e.id),
                Ok(r) => {
                    return (confirmed, Some(format!("{url}: HTTP {}", r.status())));
                }
                Err(err) => return (confirmed, Some(format!("{url}: {err}"))),
            }
        }
        (confirmed, None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host() {
        for good in ["http://127.0.0.1:8080/nidd", "https://app.example/hook?x=1"] {
            check_webhook_url(good).unwrap();
        }
        for bad in ["ftp://x", "https://", "http://u:p@x/", "mqtt://x:1883"] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_notification_carries_the_data_and_names_the_device() {
        let e = OutboxEntry {
            kind: nido_store::EntryKind::Uplink,
            id: 1,
            device: "Acme Sensors/ACMESENS-1".into(),
            owner: Some("acme".into()),
            supi: "imsi-999990000000001".into(),
            psi: 1,
            seq: 4,
            data: b"hi".to_vec(),
            at_ms: 0,
            attempts: 0,
        };
        let n = notification(&e, "https://app.example/nidd");
        assert_eq!(n["data"], "aGk=");
        assert_eq!(n["externalId"], "ACMESENS-1@acme-sensors.devices.nido");
        assert_eq!(n["nido"]["seq"], 4);
        assert_eq!(n["niddTransaction"], "https://app.example/nidd");
    }
}
