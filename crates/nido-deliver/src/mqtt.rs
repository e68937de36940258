//! One MQTT connection per destination (rumqttc's synchronous client, one
//! thread: the worker's). A batch is published at QoS 1 and waited for:
//! each PUBACK confirms the entry whose publish carried its packet id.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use nido_store::{DeliveryTarget, OutboxEntry};
use rumqttc::{Client, Connection, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::{DeliverError, WorkerOptions, body, topic};

/// A connection unused this long is closed (its keep-alive is longer).
pub(crate) const IDLE: Duration = Duration::from_secs(20);

/// The broker's keep-alive interval.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// A connection to one broker.
pub(crate) struct Link {
    client: Client,
    connection: Connection,
    used: Instant,
}

/// A broker's address: `mqtt://HOST:PORT` (1883 when absent) or
/// `mqtts://HOST:PORT` (TLS, 8883 when absent).
pub(crate) struct BrokerAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

pub(crate) fn host_port(url: &str) -> Result<BrokerAddr, DeliverError> {
    let bad = |why: &str| DeliverError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let (rest, tls, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, true, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, false, 1883)
    } else {
        return Err(bad("expected mqtt://HOST:PORT or mqtts://HOST:PORT"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad("expected a host and port, without a path or user"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            (host.trim_matches(['[', ']']).to_owned(), port)
        }
        Some(("", _)) => return Err(bad("no host")),
        _ => (rest.trim_matches(['[', ']']).to_owned(), default_port),
    };
    Ok(BrokerAddr { host, port, tls })
}

/// Checks a delivery URL (what `nido owner delivery` stores).
pub fn check_url(url: &str) -> Result<(), DeliverError> {
    host_port(url).map(|_| ())
}

/// Checks a destination as the worker will use it (a TLS broker's CA
/// certificates parse).
pub fn check_target(target: &DeliveryTarget) -> Result<(), DeliverError> {
    match target {
        DeliveryTarget::Mqtt { .. } => options(target, "check".into()).map(|_| ()),
        DeliveryTarget::Webhook { url, .. } => crate::check_webhook_url(url),
    }
}

/// The client options for `target`'s broker: its address, credentials and,
/// for `mqtts://`, TLS (rustls on aws-lc-rs) checked against its CA
/// certificates or the Web PKI roots.
pub(crate) fn options(
    target: &DeliveryTarget,
    client_id: String,
) -> Result<MqttOptions, DeliverError> {
    let DeliveryTarget::Mqtt {
        url,
        username,
        password,
        tls_ca,
        ..
    } = target
    else {
        return Err(DeliverError::Url {
            url: target.url().to_owned(),
            why: "not an MQTT destination".into(),
        });
    };
    let addr = host_port(url)?;
    let mut o = MqttOptions::new(client_id, addr.host, addr.port);
    if let Some(user) = username {
        let password = password.as_ref().map_or("", |p| p.as_str());
        o.set_credentials(user.clone(), password);
    }
    if addr.tls {
        let bad = |why: String| DeliverError::Url {
            url: url.clone(),
            why,
        };
        let mut roots = rustls::RootCertStore::empty();
        match tls_ca {
            Some(pem) => {
                use rustls_pki_types::pem::PemObject as _;
                for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| bad(format!("the CA certificates: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("a CA certificate: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(bad("no CA certificate in the PEM".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
        ));
    }
    Ok(o)
}

impl Link {
    /// A client for `config`'s broker; it connects at the first publish.
    pub(crate) fn connect(
        target: &DeliveryTarget,
        options: &WorkerOptions,
    ) -> Result<Self, DeliverError> {
        let mut o = self::options(target, options.client_id.clone())?;
        o.set_keep_alive(KEEP_ALIVE);
        o.set_clean_session(true);
        o.set_inflight(u16::try_from(options.batch.clamp(1, 1_000)).unwrap_or(100));
        let (client, connection) = Client::new(o, options.batch + 16);
        Ok(Self {
            client,
            connection,
            used: Instant::now(),
        })
    }

    pub(crate) fn idle_for(&self, d: Duration) -> bool {
        self.used.elapsed() > d
    }

    /// Publishes `entries` in order and waits for their PUBACKs; returns
    /// the ids confirmed and, if the batch stopped early, why.
    pub(crate) fn publish(
        &mut self,
        topic_prefix: &str,
        entries: &[OutboxEntry],
        timeout: Duration,
    ) -> (Vec<i64>, Option<String>) {
        self.used = Instant::now();
        let mut unsent: VecDeque<i64> = VecDeque::with_capacity(entries.len());
        for e in entries {
            let payload = body(e).to_string().into_bytes();
            if let Err(err) = self.client.try_publish(
                topic(topic_prefix, &e.device, e.kind),
                QoS::AtLeastOnce,
                false,
                payload,
            ) {
                return (Vec::new(), Some(format!("publish: {err}")));
            }
            unsent.push_back(e.id);
        }
        let mut in_flight: HashMap<u16, i64> = HashMap::with_capacity(entries.len());
        let mut confirmed = Vec::with_capacity(entries.len());
        let deadline = Instant::now() + timeout;
        while confirmed.len() < entries.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (
                    confirmed,
                    Some(format!("no PUBACK within {} s", timeout.as_secs())),
                );
            }
            match self.connection.recv_timeout(left) {
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(id) = unsent.pop_front() {
                        in_flight.insert(pkid, id);
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(id) = in_flight.remove(&ack.pkid) {
                        confirmed.push(id);
                    }
                }
                Ok(Ok(Event::Incoming(Packet::ConnAck(c))))
                    if c.code != rumqttc::ConnectReturnCode::Success =>
                {
                    return (confirmed, Some(format!("the broker refused: {:?}", c.code)));
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return (confirmed, Some(e.to_string())),
                Err(rumqttc::RecvTimeoutError::Timeout) => {}
                Err(rumqttc::RecvTimeoutError::Disconnected) => {
                    return (confirmed, Some("the MQTT client closed".into()));
                }
            }
        }
        // PUBACKs of one connection come in publish order; the ids are
        // kept in outbox order for the caller all the same.
        confirmed.sort_unstable();
        (confirmed, None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn mqtt_and_mqtts_urls_with_a_host_are_taken() {
        let a = |u: &str| host_port(u).map(|a| (a.host, a.port, a.tls)).unwrap();
        assert_eq!(
            a("mqtt://127.0.0.1:1884"),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            a("mqtt://broker.example"),
            ("broker.example".into(), 1883, false)
        );
        assert_eq!(
            a("mqtts://broker.example"),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(a("mqtt://[::1]:1883"), ("::1".into(), 1883, false));
        for bad in [
            "http://x:1",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://x:port",
            "mqtt://u:p@x:1883",
            "mqtt://x:1883/path",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tls_broker_needs_a_usable_ca() {
        let target = |ca: Option<&str>| DeliveryTarget::Mqtt {
            url: "mqtts://broker.example".into(),
            topic_prefix: "p".into(),
            username: None,
            password: None,
            tls_ca: ca.map(str::to_owned),
        };
        assert!(options(&target(None), "c".into()).is_ok());
        assert!(options(&target(Some("not PEM")), "c".into()).is_err());
    }
}
