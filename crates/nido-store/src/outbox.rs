//! The outbox (issue #14): devices' uplink bursts on their way to their
//! owners' applications, and where each owner wants them.
//!
//! # Invariants
//! - A burst enters the outbox in the group commit of the datagram that
//!   carried it ([`nido_net::Write::Uplink`]); the SERVICE ACCEPT that
//!   acknowledges it waits for that commit, so an acknowledged burst is
//!   never lost to a crash.
//! - Each device's bursts are numbered from 1 (`seq`, in the same
//!   transaction, never reused): the idempotency key its owner sees, and
//!   the order a delivery worker keeps.
//! - An entry is `delivered` only once its destination confirmed it (an
//!   MQTT PUBACK, a file's fsync); until then it stays `pending` and is
//!   sent again, so a receiver may see a burst twice, never miss one.
//! - An owner holds at most [`OUTBOX_LIMIT`] pending bursts (settable per
//!   store): past it the oldest pending bursts are marked `dropped`, each
//!   with an `uplink_dropped` audit entry, in the transaction that
//!   overflowed. The newest data wins, as a device's latest reading is the
//!   one its owner needs.

use std::collections::BTreeMap;

use crate::batch::Conn;
use crate::error::SqlStoreError;
use crate::records::AuditEntry;
use crate::sql::{SqlStore, now_unix, on_pool, to_i64, to_u64};

/// How many pending bursts an owner's outbox holds by default.
pub const OUTBOX_LIMIT: u64 = 100_000;

/// How long delivered entries are kept (for `delivery status`), seconds.
pub const DELIVERED_KEPT_S: u64 = 86_400;

/// One burst as the outbox stores it.
pub(crate) struct UplinkRow<'a> {
    pub(crate) device: &'a str,
    pub(crate) supi: String,
    pub(crate) psi: i64,
    pub(crate) data: &'a [u8],
    pub(crate) at_ms: i64,
}

/// Appends `uplinks` (in order) and applies each owner's bound; returns the
/// audit entries of what the bound dropped.
pub(crate) async fn append<C: Conn>(
    c: &mut C,
    uplinks: &[&nido_net::Uplink],
    limit: u64,
) -> Result<Vec<AuditEntry>, SqlStoreError> {
    // The owner each burst is kept for is the device's at this commit,
    // not the one the serving network saw at registration (`u.owner`): a
    // transfer ends the old owner's data at once.
    let mut owners: BTreeMap<String, ()> = BTreeMap::new();
    for u in uplinks {
        let at_ms =
            u.at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (_, owner) = c
            .append_uplink(&UplinkRow {
                device: &u.device,
                supi: u.supi.to_string(),
                psi: i64::from(u.psi),
                data: &u.data,
                at_ms: to_i64(at_ms, "time")?,
            })
            .await?;
        owners.insert(owner, ());
    }
    let limit = to_i64(limit, "outbox limit")?;
    let now = now_unix();
    let mut dropped = Vec::new();
    for owner in owners.keys() {
        let pending = c.pending_of(owner).await?;
        if pending <= limit {
            continue;
        }
        for (device, seq) in c.drop_oldest(owner, pending - limit).await? {
            dropped.push(AuditEntry {
                at: now,
                kind: "uplink_dropped".into(),
                device: Some(device),
                supi: None,
                cause: None,
                detail: format!(
                    "burst {seq} dropped: the outbox of {} is full ({limit} pending)",
                    owner_text(owner)
                ),
            });
        }
    }
    Ok(dropped)
}

fn owner_text(owner: &str) -> String {
    if owner.is_empty() {
        "the operator's default delivery".into()
    } else {
        format!("owner {owner}")
    }
}

/// One pending entry (a burst, or an event about the device), for a
/// delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// What it carries.
    pub kind: EntryKind,
    /// The outbox row (increasing in the order bursts were committed).
    pub id: i64,
    /// The device identity, `MANUFACTURER/SERIAL`.
    pub device: String,
    /// The owner; `None` for a device no owner claimed.
    pub owner: Option<String>,
    /// The subscription's SUPI (`imsi-…`).
    pub supi: String,
    /// The PDU session.
    pub psi: u8,
    /// The device's number of the entry (its bursts and events together),
    /// from 1.
    pub seq: u64,
    /// The data.
    pub data: Vec<u8>,
    /// When it reached the network (Unix milliseconds).
    pub at_ms: u64,
    /// Delivery attempts that failed so far.
    pub attempts: u64,
}

/// What an outbox entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A burst of the device's data (`data`: the payload; `psi`: its PDU
    /// session).
    Uplink,
    /// An event about the device for its owner (`data`: the JSON object
    /// `{"event": ..., "reason": ...}`, `event` one of `blocked`,
    /// `unblocked`, `released`; `psi` 0; `supi` empty for a device
    /// without a subscription).
    Event,
}

/// Where an owner's devices' data goes (`owner` `None`: the operator's
/// default, for devices no owner claimed and owners without their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The owner, or `None` for the operator's default.
    pub owner: Option<String>,
    /// The destination.
    pub target: DeliveryTarget,
}

/// An owner's application: an MQTT broker or a webhook.
#[derive(Clone, PartialEq, Eq)]
pub enum DeliveryTarget {
    /// Publish at QoS 1 to `PREFIX/<device serial>/up`.
    Mqtt {
        /// `mqtt://HOST:PORT`.
        url: String,
        /// The topic prefix.
        topic_prefix: String,
        /// MQTT user name.
        username: Option<String>,
        /// MQTT password (sealed in the store; never printed).
        password: Option<zeroize::Zeroizing<String>>,
        /// For `mqtts://`: the CA certificates (PEM) the broker's
        /// certificate must chain to; `None`: the Web PKI roots.
        tls_ca: Option<String>,
    },
    /// POST each burst (a TS 29.122 NIDD uplink notification) to `url`.
    Webhook {
        /// `http://…` or `https://…`.
        url: String,
        /// The HMAC-SHA-256 key of the body's signature (sealed in the
        /// store; never printed).
        secret: Option<zeroize::Zeroizing<String>>,
    },
}

impl DeliveryTarget {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            Self::Mqtt { url, .. } | Self::Webhook { url, .. } => url,
        }
    }
}

impl core::fmt::Debug for DeliveryTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let redacted = |s: &Option<zeroize::Zeroizing<String>>| s.as_ref().map(|_| "<redacted>");
        match self {
            Self::Mqtt {
                url,
                topic_prefix,
                username,
                password,
                tls_ca,
            } => f
                .debug_struct("Mqtt")
                .field("url", url)
                .field("topic_prefix", topic_prefix)
                .field("username", username)
                .field("password", &redacted(password))
                .field("tls_ca", &tls_ca.as_ref().map(|_| "<PEM>"))
                .finish(),
            Self::Webhook { url, secret } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &redacted(secret))
                .finish(),
        }
    }
}

/// One owner's line of `nido network delivery status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// The owner, or `None` for devices no owner claimed.
    pub owner: Option<String>,
    /// Bursts waiting.
    pub pending: u64,
    /// Bursts delivered (kept for [`DELIVERED_KEPT_S`]).
    pub delivered: u64,
    /// Bursts the bound dropped.
    pub dropped: u64,
    /// When the oldest pending burst reached the network (Unix
    /// milliseconds).
    pub oldest_pending: Option<u64>,
    /// The last failure of a pending burst, if any.
    pub last_error: Option<String>,
}

/// The sealing label of a delivery's secret (a value sealed for one kind
/// does not open as the other).
fn secret_label(kind: &str) -> &'static str {
    if kind == "webhook" {
        "webhook_secret"
    } else {
        "mqtt_password"
    }
}

fn owner_key(owner: Option<&str>) -> &str {
    owner.unwrap_or("")
}

fn owner_of(key: String) -> Option<String> {
    (!key.is_empty()).then_some(key)
}

impl SqlStore {
    /// Sets how many pending bursts an owner's outbox holds
    /// ([`OUTBOX_LIMIT`] by default).
    pub fn set_outbox_limit(&mut self, limit: u64) {
        self.outbox_limit = limit;
    }

    /// Sets where `config.owner`'s devices' data goes (replacing what was
    /// set).
    pub fn set_delivery(&self, config: &DeliveryConfig) -> Result<(), SqlStoreError> {
        let owner = owner_key(config.owner.as_deref()).to_owned();
        let (kind, url, prefix, username, secret, tls_ca) = match &config.target {
            DeliveryTarget::Mqtt {
                url,
                topic_prefix,
                username,
                password,
                tls_ca,
            } => (
                "mqtt",
                url,
                topic_prefix.as_str(),
                username.as_deref(),
                password,
                tls_ca.as_deref(),
            ),
            DeliveryTarget::Webhook { url, secret } => ("webhook", url, "", None, secret, None),
        };
        let sealed = secret
            .as_ref()
            .map(|p| self.sealer.seal(secret_label(kind), &owner, p.as_bytes()))
            .transpose()?;
        let now = to_i64(now_unix(), "time")?;
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "INSERT INTO delivery (owner, kind, url, topic_prefix, username, \
                     password_enc, tls_ca, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (owner) DO UPDATE SET kind = excluded.kind, \
                     url = excluded.url, topic_prefix = excluded.topic_prefix, \
                     username = excluded.username, password_enc = excluded.password_enc, \
                     tls_ca = excluded.tls_ca, updated_at = excluded.updated_at",
                )
                .bind(&owner)
                .bind(kind)
                .bind(url)
                .bind(prefix)
                .bind(username)
                .bind(sealed.as_deref())
                .bind(tls_ca)
                .bind(now)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// Every delivery set, the operator's default first.
    pub fn deliveries(&self) -> Result<Vec<DeliveryConfig>, SqlStoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<Vec<u8>>,
            Option<String>,
        );
        let rows: Vec<Row> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT owner, kind, url, topic_prefix, username, password_enc, tls_ca \
                     FROM delivery ORDER BY owner",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(
                |(owner, kind, url, topic_prefix, username, sealed, tls_ca)| {
                    let secret = sealed
                        .map(|sealed| {
                            let clear = self.sealer.open(secret_label(&kind), &owner, &sealed)?;
                            String::from_utf8(clear.to_vec())
                                .map(zeroize::Zeroizing::new)
                                .map_err(|_| {
                                    SqlStoreError::Corrupt(format!("delivery secret of {owner:?}"))
                                })
                        })
                        .transpose()?;
                    let target = match kind.as_str() {
                        "mqtt" => DeliveryTarget::Mqtt {
                            url,
                            topic_prefix,
                            username,
                            password: secret,
                            tls_ca,
                        },
                        "webhook" => DeliveryTarget::Webhook { url, secret },
                        other => {
                            return Err(SqlStoreError::Corrupt(format!(
                                "delivery of {owner:?}: kind {other:?}"
                            )));
                        }
                    };
                    Ok(DeliveryConfig {
                        owner: owner_of(owner),
                        target,
                    })
                },
            )
            .collect()
    }

    /// The owners with pending bursts (`None`: devices no owner claimed).
    pub fn pending_owners(&self) -> Result<Vec<Option<String>>, SqlStoreError> {
        let rows: Vec<(String,)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT DISTINCT owner FROM outbox WHERE status = 'pending' ORDER BY owner",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        Ok(rows.into_iter().map(|(o,)| owner_of(o)).collect())
    }

    /// The oldest `limit` pending bursts of `owner`, in commit order.
    pub fn pending_uplinks(
        &self,
        owner: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, SqlStoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            i64,
            i64,
            Vec<u8>,
            i64,
            i64,
            String,
        );
        let key = owner_key(owner);
        let limit = to_i64(limit as u64, "limit")?;
        let rows: Vec<Row> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT id, device, owner, supi, psi, seq, data, at_ms, attempts, kind FROM outbox \
                     WHERE owner = $1 AND status = 'pending' ORDER BY id LIMIT $2",
                )
                .bind(key)
                .bind(limit)
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(
                |(id, device, owner, supi, psi, seq, data, at_ms, attempts, kind)| {
                    Ok(OutboxEntry {
                        kind: match kind.as_str() {
                            "uplink" => EntryKind::Uplink,
                            "event" => EntryKind::Event,
                            other => {
                                return Err(SqlStoreError::Corrupt(format!(
                                    "outbox {id}: kind {other}"
                                )));
                            }
                        },
                        id,
                        device,
                        owner: owner_of(owner),
                        supi,
                        psi: u8::try_from(psi)
                            .map_err(|_| SqlStoreError::Corrupt(format!("outbox {id}: psi")))?,
                        seq: to_u64(seq, "seq")?,
                        data,
                        at_ms: to_u64(at_ms, "time")?,
                        attempts: to_u64(attempts, "attempts")?,
                    })
                },
            )
            .collect()
    }

    /// Marks entries delivered (their destination confirmed them).
    pub fn mark_delivered(&self, ids: &[i64]) -> Result<(), SqlStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = to_i64(now_unix(), "time")?;
        self.run(async {
            on_pool!(self, |p, begin| {
                let mut tx = p.begin_with(begin).await?;
                for id in ids {
                    sqlx::query(
                        "UPDATE outbox SET status = 'delivered', delivered_at = $1 \
                         WHERE id = $2 AND status = 'pending'",
                    )
                    .bind(now)
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            })
        })
    }

    /// Notes a failed attempt at delivering entry `id`.
    pub fn note_delivery_failure(&self, id: i64, error: &str) -> Result<(), SqlStoreError> {
        self.run(async {
            on_pool!(self, |p, _begin| {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2",
                )
                .bind(error)
                .bind(id)
                .execute(p)
                .await?;
                Ok(())
            })
        })
    }

    /// Deletes delivered entries older than [`DELIVERED_KEPT_S`]; returns
    /// how many.
    pub fn prune_delivered(&self) -> Result<u64, SqlStoreError> {
        let before = to_i64(now_unix().saturating_sub(DELIVERED_KEPT_S), "time")?;
        self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query(
                    "DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < $1",
                )
                .bind(before)
                .execute(p)
                .await?
                .rows_affected())
            })
        })
    }

    /// Per owner: pending, delivered, dropped, the oldest pending burst.
    pub fn delivery_status(&self) -> Result<Vec<DeliveryStatus>, SqlStoreError> {
        type Row = (String, i64, i64, i64, Option<i64>, Option<String>);
        let rows: Vec<Row> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT owner, \
                     SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), \
                     SUM(CASE WHEN status = 'dropped' THEN 1 ELSE 0 END), \
                     MIN(CASE WHEN status = 'pending' THEN at_ms END), \
                     MAX(CASE WHEN status = 'pending' THEN last_error END) \
                     FROM outbox GROUP BY owner ORDER BY owner",
                )
                .fetch_all(p)
                .await?)
            })
        })?;
        rows.into_iter()
            .map(|(owner, pending, delivered, dropped, oldest, last_error)| {
                Ok(DeliveryStatus {
                    owner: owner_of(owner),
                    pending: to_u64(pending, "count")?,
                    delivered: to_u64(delivered, "count")?,
                    dropped: to_u64(dropped, "count")?,
                    oldest_pending: oldest.map(|t| to_u64(t, "time")).transpose()?,
                    last_error,
                })
            })
            .collect()
    }
}

/// The largest downlink accepted, octets (a CIoT user data container),
/// whichever way it comes (MQTT `…/down`, the API).
pub const MAX_DOWNLINK: usize = 1_000;

/// Downlink data an owner's application sent a device, not yet sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDownlink {
    /// The row (the application's reference).
    pub id: i64,
    /// The device identity, `MANUFACTURER/SERIAL`.
    pub device: String,
    /// The data.
    pub data: Vec<u8>,
}

/// Now, in Unix milliseconds.
fn now_ms() -> Result<i64, SqlStoreError> {
    to_i64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        "time",
    )
}

/// `serial` for a LIKE pattern: `\`, `%` and `_` taken literally.
fn like_literal(serial: &str) -> String {
    let mut out = String::with_capacity(serial.len() + 2);
    for c in serial.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl SqlStore {
    /// The devices (`MANUFACTURER/SERIAL`) with a subscription whose serial
    /// is `serial`, with their owners (one per enrolled manufacturer that
    /// has such a device).
    pub fn devices_with_serial(
        &self,
        serial: &str,
    ) -> Result<Vec<(String, Option<String>)>, SqlStoreError> {
        let pattern = format!("%/{}", like_literal(serial));
        let rows: Vec<(String, Option<String>)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT device, owner FROM subscriptions WHERE device LIKE $1 ESCAPE '\\' \
                     ORDER BY device",
                )
                .bind(&pattern)
                .fetch_all(p)
                .await?)
            })
        })?;
        // LIKE's % could span a '/': keep the exact serial only.
        Ok(rows
            .into_iter()
            .filter(|(d, _)| d.split_once('/').is_some_and(|(_, s)| s == serial))
            .collect())
    }

    /// Keeps downlink data for `device` (durable when it returns); its id.
    pub fn enqueue_downlink(
        &self,
        device: &str,
        owner: Option<&str>,
        data: &[u8],
    ) -> Result<i64, SqlStoreError> {
        let now = now_ms()?;
        let (id,): (i64,) = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "INSERT INTO downlink (device, owner, data, received_ms) \
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(device)
                .bind(owner_key(owner))
                .bind(data)
                .bind(now)
                .fetch_one(p)
                .await?)
            })
        })?;
        Ok(id)
    }

    /// Pending downlinks with an id above `after`, oldest first.
    pub fn pending_downlinks(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<PendingDownlink>, SqlStoreError> {
        let limit = to_i64(limit as u64, "limit")?;
        let rows: Vec<(i64, String, Vec<u8>)> = self.run(async {
            on_pool!(self, |p, _begin| {
                Ok(sqlx::query_as(
                    "SELECT id, device, data FROM downlink WHERE status = 'pending' \
                     AND id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await?)
            })
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, device, data)| PendingDownlink { id, device, data })
            .collect())
    }

    /// Marks downlinks sent; returns (id, device, owner) of those that were
    /// pending.
    pub fn mark_downlinks_sent(
        &self,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, Option<String>)>, SqlStoreError> {
        let now = now_ms()?;
        let mut out = Vec::new();
        for id in ids {
            let row: Option<(i64, String, String)> = self.run(async {
                on_pool!(self, |p, _begin| {
                    Ok(sqlx::query_as(
                        "UPDATE downlink SET status = 'sent', sent_ms = $1 \
                         WHERE id = $2 AND status = 'pending' RETURNING id, device, owner",
                    )
                    .bind(now)
                    .bind(*id)
                    .fetch_optional(p)
                    .await?)
                })
            })?;
            out.extend(row.map(|(id, d, o)| (id, d, owner_of(o))));
        }
        Ok(out)
    }
}
