//! The read side that operators and owners see (issue #15): devices with
//! filters and keyset paging, one device, subscriptions without key
//! material, the audit trail with filters, the onboarding funnel. The CLI
//! (`nido network devices|subscriptions|audit`) and the HTTP API call these
//! same functions, through `nido-api`'s service layer.
//!
//! Invariants:
//! - every statement is built from fixed text and `$n` placeholders; a
//!   filter's value is always bound, never spliced into SQL; text filters
//!   are exact and case-sensitive on both backends (no LIKE);
//! - no statement here selects `k_enc`, `opc_enc` or `credentials_enc`:
//!   nothing these functions return can carry a secret;
//! - an owner filter is part of the statement, so a device or subscription
//!   of another owner is absent (not "forbidden") for an owner's query.

use crate::sql::{on_pool, to_i64, to_u64};
use crate::{AuditEntry, SqlStore, SqlStoreError};

/// The most rows one page holds.
pub const PAGE_MAX: usize = 1_000;

/// Which devices to list ([`SqlStore::list_devices`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// The device's last state (`authenticated`, `onboarding`,
    /// `provisioning`, `provisioned`, `active`, `released`, `refused`;
    /// `claimed` for a claimed device never seen).
    pub state: Option<String>,
    /// The manufacturer (the part of the identity before `/`).
    pub manufacturer: Option<String>,
    /// The owner (claim or subscription).
    pub owner: Option<String>,
    /// The 5GMM cause of the device's last refusal.
    pub cause: Option<u8>,
    /// A substring of the identity (`MANUFACTURER/SERIAL`).
    pub search: Option<String>,
    /// Keyset paging: identities after this one.
    pub after: Option<String>,
    /// At most this many ([`PAGE_MAX`] at most).
    pub limit: usize,
}

/// A device as operators and owners see it: never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// `MANUFACTURER/SERIAL`.
    pub device: String,
    /// Its last state (see [`DeviceFilter::state`]).
    pub state: String,
    /// Unix seconds of the first sighting (none: claimed, never seen).
    pub first_seen: Option<u64>,
    /// Unix seconds of the last sighting.
    pub last_seen: Option<u64>,
    /// Its owner, if claimed.
    pub owner: Option<String>,
    /// Its subscription's SUPI.
    pub supi: Option<String>,
    /// Its subscription's state.
    pub subscription: Option<String>,
    /// The 5GMM cause of its last refusal, when its state is `refused`.
    pub cause: Option<u8>,
    /// Why it is blocked, if it is.
    pub blocked: Option<String>,
}

/// A subscription without its key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    /// `imsi-…`.
    pub supi: String,
    /// `MANUFACTURER/SERIAL`.
    pub device: String,
    /// created, provisioned, active, released.
    pub state: String,
    /// Its owner.
    pub owner: Option<String>,
    /// The last credential package's id, hex.
    pub package_id: String,
    /// Unix seconds of its last change.
    pub updated_at: u64,
    /// Unix seconds when its package's validity ends (none recorded for a
    /// package delivered before schema 8).
    pub not_after: Option<u64>,
}

/// Which audit entries ([`SqlStore::audit_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries of this device only.
    pub device: Option<String>,
    /// Entries of this kind only.
    pub kind: Option<String>,
    /// Only the devices of this owner (claim or subscription).
    pub owner: Option<String>,
    /// Keyset paging: entries before this id (newest first).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// The onboarding funnel of the fleet as the database holds it now: how
/// many devices stand at or beyond each step (a device in a later state
/// has passed the earlier ones; `refused`: refused at its last attempt).
/// Not a run's funnel (`nido_sim::metrics::Funnel`, every passage during
/// one fleet run, a device refused once counted even if it is active
/// since): the console and the API show this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Funnel {
    /// Every device seen on the access link (its identity known).
    pub attached: u64,
    /// Authenticated by EAP-TLS (and not refused since).
    pub authenticated: u64,
    /// Holding a confirmed credential package.
    pub provisioned: u64,
    /// Registered with its own subscription (5G-AKA).
    pub active: u64,
    /// Refused at its last attempt.
    pub refused: u64,
}

/// A statement's bound values, in `$n` order.
enum Param {
    Text(String),
    Int(i64),
}

/// A WHERE clause under construction.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    /// Adds `clause`, where `?` stands for the next placeholder.
    fn push(&mut self, clause: &str, param: Param) {
        self.params.push(param);
        let n = self.params.len();
        self.clauses.push(clause.replace('?', &format!("${n}")));
    }

    fn sql(&self) -> String {
        where_of(&self.clauses)
    }

    /// The placeholder of a new bound value.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

/// Runs `sql` with `params` bound on `store`'s pool: `fetch_all` or
/// `fetch_optional` of rows decoded as the caller's type.
macro_rules! query {
    ($store:expr, $sql:expr, $params:expr, $fetch:ident) => {
        $store.run(async {
            on_pool!($store, |p, _begin| {
                Ok(
                    bind_all!(sqlx::query_as(sqlx::AssertSqlSafe($sql.as_str())), &$params)
                        .$fetch(p)
                        .await?,
                )
            })
        })
    };
}

/// `WHERE` and `clauses` joined by AND (nothing for none).
fn where_of(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// The clauses of `filter` on a device identity `column`: manufacturer
/// (an exact, case-sensitive prefix), search text (an exact substring:
/// `instr` on SQLite, `strpos` on PostgreSQL, so both backends find the
/// same devices), keyset position.
fn identity_clauses(
    w: &mut Where,
    filter: &DeviceFilter,
    column: &str,
    backend: crate::Backend,
) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(m) = &filter.manufacturer {
        let prefix = format!("{m}/");
        let n = prefix.chars().count();
        let p = w.bind(Param::Text(prefix));
        c.push(format!("substr({column}, 1, {n}) = {p}"));
    }
    if let Some(q) = &filter.search {
        let p = w.bind(Param::Text(q.clone()));
        c.push(match backend {
            crate::Backend::Sqlite => format!("instr({column}, {p}) > 0"),
            crate::Backend::Postgres => format!("strpos({column}, {p}) > 0"),
        });
    }
    if let Some(a) = &filter.after {
        let p = w.bind(Param::Text(a.clone()));
        c.push(format!("{column} > {p}"));
    }
    c
}

/// Binds `params` to `q`, in order.
macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Text(t) => q.bind(t.clone()),
                Param::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}

/// `(device, state, first, last, owner, supi, subscription state, cause, blocked)`.
type DeviceRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// The devices named by `ids` (an SQL statement yielding a `device`
/// column, each device once), each with its last state, its owner (its
/// subscription's, else its claim's), its subscription, its last refusal's
/// cause and its block: the view `v`, filtered by `filter`. Every value is
/// found through an index from the device's identity, so the cost is that
/// of `ids`.
fn devices_sql(ids: &str, filter: &str) -> String {
    let owner = owner_of("ids.device");
    format!(
        "WITH ids AS ({ids}), v AS (
    SELECT ids.device AS device,
        COALESCE(d.state, 'claimed') AS state,
        d.first_seen AS first_seen,
        d.last_seen AS last_seen,
        {owner} AS owner,
        s.supi AS supi,
        s.state AS subscription,
        CASE WHEN d.state = 'refused' THEN ({LAST_CAUSE_OF_IDS}) END AS cause,
        b.reason AS blocked
    FROM ids
    LEFT JOIN devices d ON d.serial = ids.device
    LEFT JOIN subscriptions s ON s.device = ids.device
    LEFT JOIN blocked b ON b.serial = ids.device
) SELECT device, state, first_seen, last_seen, owner, supi, subscription, cause, blocked FROM v {filter}"
    )
}

/// The cause of the last refusal of `ids.device`.
const LAST_CAUSE_OF_IDS: &str = "SELECT a.cause FROM audit a WHERE a.device = ids.device \
     AND a.kind = 'refused' ORDER BY a.id DESC LIMIT 1";

/// The cause of the last refusal of `d.serial`.
const LAST_CAUSE_OF_D: &str = "SELECT a.cause FROM audit a WHERE a.device = d.serial \
     AND a.kind = 'refused' ORDER BY a.id DESC LIMIT 1";

fn device_view(r: DeviceRow) -> Result<DeviceView, SqlStoreError> {
    let (device, state, first, last, owner, supi, subscription, cause, blocked) = r;
    Ok(DeviceView {
        device,
        state: state.unwrap_or_else(|| "claimed".into()),
        first_seen: first.map(|t| to_u64(t, "time")).transpose()?,
        last_seen: last.map(|t| to_u64(t, "time")).transpose()?,
        owner,
        supi,
        subscription,
        cause: cause
            .map(|c| u8::try_from(c).map_err(|_| SqlStoreError::Corrupt(format!("cause {c}"))))
            .transpose()?,
        blocked,
    })
}

fn audit_entry(
    (id, at, kind, device, supi, cause, detail): (
        i64,
        i64,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        String,
    ),
) -> Result<(i64, AuditEntry), SqlStoreError> {
    Ok((
        id,
        AuditEntry {
            at: to_u64(at, "time")?,
            kind,
            device,
            supi,
            cause: cause
                .map(|c| u8::try_from(c).map_err(|_| SqlStoreError::Corrupt(format!("cause {c}"))))
                .transpose()?,
            detail,
        },
    ))
}

/// The owner of the device named by `column`: its subscription's owner,
/// else its first claim's (by `claim_seq`: the first claim stands, as
/// `Store::owner_of_device` has it). Every owner filter of the read side
/// compares with this one value, so a device has one owner everywhere.
pub(crate) fn owner_of(column: &str) -> String {
    format!(
        "COALESCE((SELECT s1.owner FROM subscriptions s1 WHERE s1.device = {column}), \
         (SELECT c1.owner FROM claims c1 WHERE c1.device = {column} AND c1.owner IS NOT NULL \
         ORDER BY c1.claim_seq LIMIT 1))"
    )
}

impl SqlStore {
    /// One page of devices, by identity. The page is read through the
    /// indexes: an owner's devices from its claims and subscriptions; the
    /// others as the first `limit` seen devices that pass the filters
    /// (`devices` in identity order) merged with the first `limit` claimed
    /// devices never seen, so a page costs its size, not the fleet's.
    pub fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceView>, SqlStoreError> {
        let mut w = Where::default();
        let limit = filter.limit.clamp(1, PAGE_MAX);
        let ids = match &filter.owner {
            Some(o) => {
                let a = w.bind(Param::Text(o.clone()));
                let b = w.bind(Param::Text(o.clone()));
                format!(
                    "SELECT device FROM claims WHERE owner = {a} \
                     UNION SELECT device FROM subscriptions WHERE owner = {b}"
                )
            }
            None => {
                let mut arms = Vec::new();
                if filter.state.as_deref() != Some("claimed") {
                    // Seen devices.
                    let mut c = Vec::new();
                    if let Some(st) = &filter.state {
                        c.push(format!("d.state = {}", w.bind(Param::Text(st.clone()))));
                    }
                    if let Some(cause) = filter.cause {
                        c.push(format!(
                            "d.state = 'refused' AND ({LAST_CAUSE_OF_D}) = {}",
                            w.bind(Param::Int(i64::from(cause)))
                        ));
                    }
                    c.extend(identity_clauses(&mut w, filter, "d.serial", self.backend()));
                    let lim = w.bind(Param::Int(to_i64(limit as u64, "limit")?));
                    arms.push(format!(
                        "SELECT device FROM (SELECT d.serial AS device FROM devices d {} \
                         ORDER BY d.serial LIMIT {lim}) seen",
                        where_of(&c)
                    ));
                }
                if matches!(filter.state.as_deref(), None | Some("claimed"))
                    && filter.cause.is_none()
                {
                    // Claimed devices never seen.
                    let mut c = vec![
                        "c.owner IS NOT NULL".to_owned(),
                        "NOT EXISTS (SELECT 1 FROM devices d WHERE d.serial = c.device)".to_owned(),
                    ];
                    c.extend(identity_clauses(&mut w, filter, "c.device", self.backend()));
                    let lim = w.bind(Param::Int(to_i64(limit as u64, "limit")?));
                    arms.push(format!(
                        "SELECT device FROM (SELECT DISTINCT c.device AS device FROM claims c {} \
                         ORDER BY c.device LIMIT {lim}) claimed",
                        where_of(&c)
                    ));
                }
                if arms.is_empty() {
                    return Ok(Vec::new());
                }
                arms.join(" UNION ")
            }
        };
        // The filters again on the view: for an owner's devices, and to keep
        // the page exact whatever the arms let through.
        let mut c = Vec::new();
        if let Some(o) = &filter.owner {
            // A device some claim names but whose owner is another.
            c.push(format!("owner = {}", w.bind(Param::Text(o.clone()))));
        }
        if let Some(st) = &filter.state {
            c.push(format!("state = {}", w.bind(Param::Text(st.clone()))));
        }
        if let Some(cause) = filter.cause {
            c.push(format!("cause = {}", w.bind(Param::Int(i64::from(cause)))));
        }
        c.extend(identity_clauses(&mut w, filter, "device", self.backend()));
        let lim = w.bind(Param::Int(to_i64(limit as u64, "limit")?));
        let sql = format!(
            "{} ORDER BY device LIMIT {lim}",
            devices_sql(&ids, &where_of(&c))
        );
        let rows: Vec<DeviceRow> = query!(self, sql, w.params, fetch_all)?;
        rows.into_iter().map(device_view).collect()
    }

    /// One device (`MANUFACTURER/SERIAL`), if the network knows it (seen,
    /// or claimed; and, with `owner`, if it is that owner's).
    pub fn device_view(
        &self,
        device: &str,
        owner: Option<&str>,
    ) -> Result<Option<DeviceView>, SqlStoreError> {
        let mut w = Where::default();
        let (a, b, c) = (
            w.bind(Param::Text(device.to_owned())),
            w.bind(Param::Text(device.to_owned())),
            w.bind(Param::Text(device.to_owned())),
        );
        let ids = format!(
            "SELECT serial AS device FROM devices WHERE serial = {a} \
             UNION SELECT device FROM claims WHERE device = {b} AND owner IS NOT NULL \
             UNION SELECT device FROM subscriptions WHERE device = {c} AND owner IS NOT NULL"
        );
        let filter = match owner {
            Some(o) => format!("WHERE owner = {}", w.bind(Param::Text(o.to_owned()))),
            None => String::new(),
        };
        let sql = devices_sql(&ids, &filter);
        let row: Option<DeviceRow> = query!(self, sql, w.params, fetch_optional)?;
        row.map(device_view).transpose()
    }

    /// One page of subscriptions (by device), without key material; with
    /// `owner`, that owner's only.
    pub fn subscription_views(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SubscriptionView>, SqlStoreError> {
        let mut w = Where::default();
        let owner_sql = owner_of("sub.device");
        if let Some(o) = owner {
            let p = w.bind(Param::Text(o.to_owned()));
            w.clauses.push(format!("{owner_sql} = {p}"));
        }
        if let Some(a) = after {
            w.push("sub.device > ?", Param::Text(a.to_owned()));
        }
        let limit = w.bind(Param::Int(to_i64(
            limit.clamp(1, PAGE_MAX) as u64,
            "limit",
        )?));
        let sql = format!(
            "SELECT sub.supi, sub.device, sub.state, {owner_sql}, sub.package_id, sub.updated_at, \
             sub.not_after \
             FROM subscriptions sub {} ORDER BY sub.device LIMIT {limit}",
            w.sql()
        );
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Vec<u8>,
            i64,
            Option<i64>,
        );
        let rows: Vec<Row> = query!(self, sql, w.params, fetch_all)?;
        rows.into_iter()
            .map(
                |(supi, device, state, owner, package_id, updated_at, not_after)| {
                    Ok(SubscriptionView {
                        supi,
                        device,
                        state,
                        owner,
                        package_id: hex::encode(package_id),
                        updated_at: to_u64(updated_at, "time")?,
                        not_after: not_after.map(|t| to_u64(t, "time")).transpose()?,
                    })
                },
            )
            .collect()
    }

    /// One page of the audit trail, newest first, with each entry's id
    /// (the `before` of the next page).
    pub fn audit_page(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(i64, AuditEntry)>, SqlStoreError> {
        self.audit_rows(filter, filter.limit.clamp(1, PAGE_MAX))
    }

    /// [`Self::audit_page`] with `limit` as it is (the whole trail for
    /// [`Self::audit`]).
    pub(crate) fn audit_rows(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<(i64, AuditEntry)>, SqlStoreError> {
        let mut w = Where::default();
        if let Some(d) = &filter.device {
            w.push("device = ?", Param::Text(d.clone()));
        }
        if let Some(k) = &filter.kind {
            w.push("kind = ?", Param::Text(k.clone()));
        }
        if let Some(b) = filter.before {
            w.push("id < ?", Param::Int(b));
        }
        if let Some(o) = &filter.owner {
            let p = w.bind(Param::Text(o.clone()));
            w.clauses
                .push(format!("{} = {p}", owner_of("audit.device")));
            // A device changes owners (`nido owner release`, then a
            // claim): an owner sees its device's trail from the last
            // release on (the audit ids order it, whatever the clocks),
            // not what happened under the owner before; a device never
            // released shows its whole trail (its refusals before the
            // claim included). One indexed read (`audit_device`).
            w.clauses.push(
                "audit.id > COALESCE((SELECT MAX(a3.id) FROM audit a3 \
                 WHERE a3.device = audit.device AND a3.kind = 'owner_released'), 0)"
                    .to_owned(),
            );
        }
        let limit = w.bind(Param::Int(to_i64(
            limit.min(i64::MAX as usize) as u64,
            "limit",
        )?));
        let sql = format!(
            "SELECT id, at, kind, device, supi, cause, detail FROM audit {} \
             ORDER BY id DESC LIMIT {limit}",
            w.sql()
        );
        type Row = (
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            String,
        );
        let rows: Vec<Row> = query!(self, sql, w.params, fetch_all)?;
        rows.into_iter().map(audit_entry).collect()
    }

    /// Refused devices (with `owner`, that owner's) by the cause of their
    /// last refusal, most frequent first.
    pub fn refusals_by_cause(
        &self,
        owner: Option<&str>,
    ) -> Result<Vec<(Option<u8>, u64)>, SqlStoreError> {
        let mut w = Where::default();
        let sql = match owner {
            Some(o) => {
                let a = w.bind(Param::Text(o.to_owned()));
                let b = w.bind(Param::Text(o.to_owned()));
                format!(
                    "SELECT cause, COUNT(*) AS n FROM (SELECT cause, device FROM ({}) x) y \
                     GROUP BY cause ORDER BY n DESC, COALESCE(cause, -1)",
                    devices_sql(
                        &format!(
                            "SELECT device FROM claims WHERE owner = {a} \
                             UNION SELECT device FROM subscriptions WHERE owner = {b}"
                        ),
                        "WHERE state = 'refused'"
                    )
                )
            }
            // The refused devices, through the state index.
            None => format!(
                "SELECT cause, COUNT(*) AS n FROM (SELECT ({LAST_CAUSE_OF_D}) AS cause \
                 FROM devices d WHERE d.state = 'refused') x GROUP BY cause ORDER BY n DESC, COALESCE(cause, -1)"
            ),
        };
        let rows: Vec<(Option<i64>, i64)> = query!(self, sql, w.params, fetch_all)?;
        rows.into_iter()
            .map(|(c, n)| {
                Ok((
                    c.map(|c| {
                        u8::try_from(c).map_err(|_| SqlStoreError::Corrupt(format!("cause {c}")))
                    })
                    .transpose()?,
                    to_u64(n, "count")?,
                ))
            })
            .collect()
    }

    /// The funnel of devices seen (with `owner`, that owner's devices).
    pub fn funnel(&self, owner: Option<&str>) -> Result<Funnel, SqlStoreError> {
        let mut w = Where::default();
        if let Some(o) = owner {
            let p = w.bind(Param::Text(o.to_owned()));
            w.clauses
                .push(format!("{} = {p}", owner_of("devices.serial")));
        }
        let sql = format!(
            "SELECT state, COUNT(*) FROM devices {} GROUP BY state",
            w.sql()
        );
        let rows: Vec<(String, i64)> = query!(self, sql, w.params, fetch_all)?;
        let mut f = Funnel::default();
        for (state, n) in rows {
            let n = to_u64(n, "count")?;
            f.attached += n;
            match state.as_str() {
                "refused" => f.refused += n,
                "active" => {
                    f.active += n;
                    f.provisioned += n;
                    f.authenticated += n;
                }
                "provisioned" | "released" => {
                    f.provisioned += n;
                    f.authenticated += n;
                }
                "authenticated" | "onboarding" | "provisioning" => f.authenticated += n,
                _ => {}
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_numbers_placeholders_in_order() {
        let mut w = Where::default();
        w.push("a = ?", Param::Text("x".into()));
        w.push("b < ?", Param::Int(3));
        assert_eq!(w.sql(), "WHERE a = $1 AND b < $2");
        assert_eq!(w.bind(Param::Int(9)), "$3");
    }
}
