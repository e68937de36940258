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

/// `mqtt://HOST:PORT` (port 1883 when absent).
pub(crate) fn host_port(url: &str) -> Result<(String, u16), DeliverError> {
    let bad = |why: &str| DeliverError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| bad("expected mqtt://HOST:PORT (TLS brokers are not supported yet)"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad("expected mqtt://HOST:PORT, without a path or user"));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            Ok((host.trim_matches(['[', ']']).to_owned(), port))
        }
        Some(_) => Err(bad("no host")),
        None => Ok((rest.to_owned(), 1883)),
    }
}

/// Checks a delivery URL (what `nido owner delivery` stores).
pub fn check_url(url: &str) -> Result<(), DeliverError> {
    host_port(url).map(|_| ())
}

impl Link {
    /// A client for `config`'s broker; it connects at the first publish.
    pub(crate) fn connect(
        target: &DeliveryTarget,
        options: &WorkerOptions,
    ) -> Result<Self, DeliverError> {
        let DeliveryTarget::Mqtt {
            url,
            username,
            password,
            ..
        } = target
        else {
            return Err(DeliverError::Url {
                url: target.url().to_owned(),
                why: "not an MQTT destination".into(),
            });
        };
        let (host, port) = host_port(url)?;
        let mut o = MqttOptions::new(options.client_id.clone(), host, port);
        o.set_keep_alive(KEEP_ALIVE);
        o.set_clean_session(true);
        o.set_inflight(u16::try_from(options.batch.clamp(1, 1_000)).unwrap_or(100));
        if let Some(user) = username {
            let password = password.as_ref().map_or("", |p| p.as_str());
            o.set_credentials(user.clone(), password);
        }
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
                topic(topic_prefix, &e.device),
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
    fn only_plain_mqtt_urls_with_a_host_are_taken() {
        assert_eq!(
            host_port("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            host_port("mqtt://broker.example").unwrap(),
            ("broker.example".into(), 1883)
        );
        assert_eq!(
            host_port("mqtt://[::1]:1883").unwrap(),
            ("::1".into(), 1883)
        );
        for bad in [
            "http://x:1",
            "mqtts://x:8883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://x:port",
            "mqtt://u:p@x:1883",
            "mqtt://x:1883/path",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }
}
