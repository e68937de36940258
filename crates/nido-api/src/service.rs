//! The service layer: what an operator or an owner may do, once. The HTTP
//! API's handlers and the CLI (`nido network devices|subscriptions|audit|
//! block|unblock|release`, `nido owner claim`) call these same functions,
//! so a rule (tenancy, validation, what a view shows) lives in one place.
//!
//! Invariants:
//! - every function takes the [`Caller`]; an owner's call is limited to its
//!   own devices in the store query itself, and an object of another owner
//!   is [`ServiceError::NotFound`], exactly as one that does not exist (no
//!   existence oracle);
//! - operator-only operations refuse an owner with [`ServiceError::Forbidden`];
//! - no view carries K, OPc, a PSK, a private key or a password: owners'
//!   credentials are shown as their public parts only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nido_net::{DeviceId, Owner, Store};
use nido_prov::ThirdPartyCredential;
use nido_store::{AuditFilter, DeviceFilter, PAGE_MAX, SqlStore, SqlStoreError, iso8601};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroizing;

use crate::auth::Caller;

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such object, or not the caller's (the two are not told apart).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller's role may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The request conflicts with the stored state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] SqlStoreError),
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as ISO 8601.
pub fn time(secs: u64) -> String {
    iso8601(UNIX_EPOCH + Duration::from_secs(secs))
}

fn operator_only(caller: &Caller) -> Result<(), ServiceError> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Owner(_) => Err(ServiceError::Forbidden("operator only")),
    }
}

/// A device identity from its two parts, checked.
pub fn device_id(manufacturer: &str, serial: &str) -> Result<DeviceId, ServiceError> {
    DeviceId::new(manufacturer, serial)
        .map_err(|e| ServiceError::Invalid(format!("device {manufacturer}/{serial}: {e}")))
}

/// A device as operators and owners see it (never a key).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Device {
    /// `MANUFACTURER/SERIAL`.
    pub device: String,
    /// The manufacturer.
    pub manufacturer: String,
    /// The IDevID serial.
    pub serial: String,
    /// Its last state: `authenticated`, `onboarding`, `provisioning`,
    /// `provisioned`, `active`, `released`, `refused`; `claimed` for a
    /// claimed device never seen.
    pub state: String,
    /// First sighting (ISO 8601).
    pub first_seen: Option<String>,
    /// Last sighting (ISO 8601).
    pub last_seen: Option<String>,
    /// Its owner, if claimed.
    pub owner: Option<String>,
    /// Its subscription's SUPI.
    pub supi: Option<String>,
    /// Its subscription's state: `created`, `provisioned`, `active`, `released`.
    pub subscription: Option<String>,
    /// The 5GMM cause of its last refusal (state `refused`).
    pub cause: Option<u8>,
    /// The cause's name (TS 24.501 9.11.3.2).
    pub cause_name: Option<String>,
    /// Why it is blocked (operator's view only).
    pub blocked: Option<String>,
}

/// `MANUFACTURER/SERIAL` in its two parts.
fn split(device: &str) -> (String, String) {
    device
        .split_once('/')
        .map_or((String::new(), device.to_owned()), |(m, s)| {
            (m.to_owned(), s.to_owned())
        })
}

/// The name of 5GMM cause `octet`.
pub fn cause_name(octet: u8) -> String {
    nido_sec::Cause(octet)
        .name()
        .map_or_else(|| format!("#{octet}"), str::to_owned)
}

impl Device {
    fn of(v: nido_store::DeviceView, caller: &Caller) -> Self {
        let (manufacturer, serial) = split(&v.device);
        Self {
            manufacturer,
            serial,
            state: v.state,
            first_seen: v.first_seen.map(time),
            last_seen: v.last_seen.map(time),
            owner: v.owner,
            supi: v.supi,
            subscription: v.subscription,
            cause: v.cause,
            cause_name: v.cause.map(cause_name),
            blocked: match caller {
                Caller::Operator => v.blocked,
                Caller::Owner(_) => None,
            },
            device: v.device,
        }
    }
}

/// A page of a listing, and where the next one starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `after` (or `before`) for the next page; absent on the last.
    pub next: Option<String>,
}

/// Filters and paging of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Devices in this state.
    pub state: Option<String>,
    /// Devices of this manufacturer.
    pub manufacturer: Option<String>,
    /// Devices of this owner (operator only; an owner sees its own).
    pub owner: Option<String>,
    /// Devices whose last refusal had this 5GMM cause.
    pub cause: Option<u8>,
    /// Devices whose identity contains this text.
    pub q: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn page_size(limit: Option<usize>) -> Result<usize, ServiceError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(n) => Err(ServiceError::Invalid(format!(
            "limit {n}: between 1 and {PAGE_MAX}"
        ))),
    }
}

/// Lists devices.
pub fn devices(
    store: &SqlStore,
    caller: &Caller,
    q: &DeviceQuery,
) -> Result<Page<Device>, ServiceError> {
    let limit = page_size(q.limit)?;
    let owner = match (caller, &q.owner) {
        (Caller::Operator, o) => o.clone(),
        (Caller::Owner(me), None) => Some(me.clone()),
        (Caller::Owner(me), Some(o)) if o == me => Some(me.clone()),
        // Another owner's devices: none, as if it had none.
        (Caller::Owner(_), Some(_)) => {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
    };
    let rows = store.list_devices(&DeviceFilter {
        state: q.state.clone(),
        manufacturer: q.manufacturer.clone(),
        owner,
        cause: q.cause,
        search: q.q.clone(),
        after: q.after.clone(),
        limit,
    })?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|d| d.device.clone()))
        .flatten();
    Ok(Page {
        items: rows.into_iter().map(|v| Device::of(v, caller)).collect(),
        next,
    })
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AuditItem {
    /// Its id (entries are numbered in the order they were written).
    pub id: i64,
    /// When (ISO 8601).
    pub at: String,
    /// What happened (`refused`, `provisioned`, `blocked`, …).
    pub kind: String,
    /// The device, if one is named.
    pub device: Option<String>,
    /// The SUPI, if one is named.
    pub supi: Option<String>,
    /// The 5GMM cause, for a refusal.
    pub cause: Option<u8>,
    /// The cause's name.
    pub cause_name: Option<String>,
    /// Details.
    pub detail: String,
}

/// A device with its audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceDetail {
    /// The device.
    #[serde(flatten)]
    pub device: Device,
    /// Its last audit entries, newest first.
    pub audit: Vec<AuditItem>,
}

/// One device with its last `trail` audit entries.
pub fn device(
    store: &SqlStore,
    caller: &Caller,
    id: &DeviceId,
    trail: usize,
) -> Result<DeviceDetail, ServiceError> {
    let name = id.to_string();
    let view = store
        .device_view(&name, caller.tenant())?
        .ok_or_else(|| ServiceError::NotFound(name.clone()))?;
    let audit = store.audit_page(&AuditFilter {
        device: Some(name),
        limit: trail.clamp(1, PAGE_MAX),
        ..AuditFilter::default()
    })?;
    Ok(DeviceDetail {
        device: Device::of(view, caller),
        audit: audit
            .into_iter()
            .map(|e| for_caller(caller, audit_item(e)))
            .collect(),
    })
}

/// What `caller` may see of an entry: an owner sees that its device was
/// blocked or unblocked, not the operator's words.
fn for_caller(caller: &Caller, mut item: AuditItem) -> AuditItem {
    if matches!(caller, Caller::Owner(_)) && matches!(item.kind.as_str(), "blocked" | "unblocked") {
        item.detail = "by the operator".into();
    }
    item
}

fn audit_item((id, e): (i64, nido_store::AuditEntry)) -> AuditItem {
    AuditItem {
        id,
        at: time(e.at),
        cause_name: e.cause.map(cause_name),
        kind: e.kind,
        device: e.device,
        supi: e.supi,
        cause: e.cause,
        detail: e.detail,
    }
}

/// Filters and paging of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries naming this device (`MANUFACTURER/SERIAL`).
    pub device: Option<String>,
    /// Entries of this kind.
    pub kind: Option<String>,
    /// The `next` of the previous page (entries older than it).
    pub before: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The audit trail, newest first (an owner's: entries of its devices, each
/// from its last release for a transfer on: never a previous owner's).
pub fn audit(
    store: &SqlStore,
    caller: &Caller,
    q: &AuditQuery,
) -> Result<Page<AuditItem>, ServiceError> {
    let limit = page_size(q.limit)?;
    let rows = store.audit_page(&AuditFilter {
        device: q.device.clone(),
        kind: q.kind.clone(),
        owner: caller.tenant().map(str::to_owned),
        before: q.before,
        limit,
    })?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|(id, _)| id.to_string()))
        .flatten();
    Ok(Page {
        items: rows
            .into_iter()
            .map(|e| for_caller(caller, audit_item(e)))
            .collect(),
        next,
    })
}

/// A subscription, without its key material.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Subscription {
    /// `imsi-…`.
    pub supi: String,
    /// `MANUFACTURER/SERIAL`.
    pub device: String,
    /// The manufacturer.
    pub manufacturer: String,
    /// The IDevID serial.
    pub serial: String,
    /// `created`, `provisioned`, `active`, `released`.
    pub state: String,
    /// Its owner.
    pub owner: Option<String>,
    /// The last credential package's id (hex).
    pub package_id: String,
    /// Its last change (ISO 8601).
    pub updated_at: String,
    /// When its credential package's validity ends (ISO 8601): the device
    /// renews before, and is refused (#7) after. Absent for a package
    /// delivered before the network recorded it.
    pub not_after: Option<String>,
}

/// Paging of `GET /api/v1/subscriptions`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Lists subscriptions (an owner's: its own).
pub fn subscriptions(
    store: &SqlStore,
    caller: &Caller,
    q: &SubscriptionQuery,
) -> Result<Page<Subscription>, ServiceError> {
    let limit = page_size(q.limit)?;
    let rows = store.subscription_views(caller.tenant(), q.after.as_deref(), limit)?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|s| s.device.clone()))
        .flatten();
    Ok(Page {
        items: rows
            .into_iter()
            .map(|s| Subscription {
                updated_at: time(s.updated_at),
                manufacturer: split(&s.device).0,
                serial: split(&s.device).1,
                supi: s.supi,
                device: s.device,
                state: s.state,
                owner: s.owner,
                package_id: s.package_id,
                not_after: s.not_after.map(time),
            })
            .collect(),
        next,
    })
}

/// The onboarding funnel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FunnelView {
    /// Devices seen (their identity known).
    pub attached: u64,
    /// Authenticated by EAP-TLS (or further).
    pub authenticated: u64,
    /// Holding a confirmed credential package (or further).
    pub provisioned: u64,
    /// Registered with their own subscription.
    pub active: u64,
    /// Refused at their last attempt.
    pub refused: u64,
}

/// Refused devices with one cause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Refusals {
    /// The 5GMM cause.
    pub cause: Option<u8>,
    /// Its name.
    pub cause_name: Option<String>,
    /// Devices whose last refusal had it.
    pub devices: u64,
}

/// The funnel and the refusals by cause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// The funnel.
    pub funnel: FunnelView,
    /// Refused devices by cause.
    pub refusals: Vec<Refusals>,
    /// When this was read (ISO 8601).
    pub at: String,
}

/// The funnel and the refusals (an owner's: of its devices).
pub fn overview(store: &SqlStore, caller: &Caller) -> Result<Overview, ServiceError> {
    let f = store.funnel(caller.tenant())?;
    let refusals = store
        .refusals_by_cause(caller.tenant())?
        .into_iter()
        .map(|(cause, devices)| Refusals {
            cause,
            cause_name: cause.map(cause_name),
            devices,
        })
        .collect();
    Ok(Overview {
        funnel: FunnelView {
            attached: f.attached,
            authenticated: f.authenticated,
            provisioned: f.provisioned,
            active: f.active,
            refused: f.refused,
        },
        refusals,
        at: iso8601(SystemTime::now()),
    })
}

/// What a block, unblock or release did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Outcome {
    /// The device.
    pub device: String,
    /// What happened, in words.
    pub result: String,
    /// Whether anything changed.
    pub changed: bool,
}

/// A reason, for block and release.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct Reason {
    /// Why (kept in the audit trail).
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

fn reason(text: &str) -> Result<&str, ServiceError> {
    let t = text.trim();
    if t.is_empty() || text.len() > 200 || t.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "reason: 1 to 200 characters, no control characters".into(),
        ));
    }
    Ok(t)
}

/// Blocks a device of an enrolled manufacturer (operator only).
pub fn block(
    store: &SqlStore,
    caller: &Caller,
    id: &DeviceId,
    why: &str,
) -> Result<Outcome, ServiceError> {
    operator_only(caller)?;
    let why = reason(why)?;
    if !store
        .manufacturers()?
        .iter()
        .any(|m| m.name == id.manufacturer())
    {
        return Err(ServiceError::NotFound(format!(
            "{id}: {:?} is not an enrolled manufacturer",
            id.manufacturer()
        )));
    }
    let changed = store.block(id, why)?;
    Ok(Outcome {
        device: id.to_string(),
        result: if changed {
            "blocked".into()
        } else {
            "already blocked (its first reason stays; unblock, then block to change it)".into()
        },
        changed,
    })
}

/// Unblocks a device (operator only).
pub fn unblock(store: &SqlStore, caller: &Caller, id: &DeviceId) -> Result<Outcome, ServiceError> {
    operator_only(caller)?;
    if !store.unblock(id)? {
        return Err(ServiceError::NotFound(format!("{id} is not blocked")));
    }
    Ok(Outcome {
        device: id.to_string(),
        result: "unblocked".into(),
        changed: true,
    })
}

/// Releases a device's subscription for re-provisioning (operator only).
pub fn release(
    store: &SqlStore,
    caller: &Caller,
    id: &DeviceId,
    why: &str,
) -> Result<Outcome, ServiceError> {
    use nido_store::Release;
    operator_only(caller)?;
    let why = reason(why)?;
    let (result, changed) = match store.release(id, now(), why)? {
        Release::NoSubscription => {
            return Err(ServiceError::NotFound(format!(
                "{id}: no subscription (a device without one is provisioned at its first onboarding)"
            )));
        }
        Release::Unchanged { supi, state } if state == "created" => (
            format!(
                "{supi}: its package was never confirmed; its next onboarding re-provisions it already"
            ),
            false,
        ),
        Release::Unchanged { supi, .. } => (format!("{supi}: already released"), false),
        Release::Released { supi, was } => (
            format!(
                "{supi} released (was {was}): its next onboarding gets a new K; until then the old K still works"
            ),
            true,
        ),
    };
    Ok(Outcome {
        device: id.to_string(),
        result,
        changed,
    })
}

/// Re-keys the `which` subscriptions (operator only; issue #16 item 4):
/// each package ends now, so a device registered with it is deregistered
/// at each serving network's next poll and any other is refused at its
/// next registration (#7, protected both), and the device renews with its
/// erasure receipt: a new K, the
/// SUCI key the PVS hands out now, the same SUPI. One outcome per
/// subscription changed.
pub fn rekey(
    store: &SqlStore,
    caller: &Caller,
    which: nido_store::Packages<'_>,
    why: &str,
) -> Result<Vec<Outcome>, ServiceError> {
    operator_only(caller)?;
    let why = reason(why)?;
    let ended = store.end_packages(which, now(), why)?;
    if let nido_store::Packages::Of(id) = which
        && ended.is_empty()
    {
        return Err(ServiceError::NotFound(format!(
            "{id}: no subscription whose package has not ended (a device without one gets its first K at its first onboarding; an ended package is renewed at the device's next registration)"
        )));
    }
    Ok(ended
        .into_iter()
        .map(|e| Outcome {
            result: format!(
                "{}: package ended; a new K now if registered (deregistered, #7, at the network's next poll), else at its next registration",
                e.supi
            ),
            device: e.device,
            changed: true,
        })
        .collect())
}

/// A device released from its owner for a transfer ([`release_owner`]).
#[derive(Debug)]
pub struct Transfer {
    /// The device.
    pub device: String,
    /// The owner it was released from (`None`: it had none; the operator
    /// replaced its claim codes).
    pub from: Option<String>,
}

/// Releases a device from its owner for a transfer (issue #16 item 3): the
/// owner itself (an owner caller, only its own device) or the operator.
/// Every claim code the device had stops working for good, `code` (a
/// fresh one the caller made and keeps, [`nido_pki::bundle::ClaimCode`];
/// only its hash is stored) becomes its only one, the subscription loses
/// its owner at once (the old owner sees nothing of the device from then
/// on, its pending downlinks are cancelled, a `released` event is its last
/// word about the device) and its package ends: deregistered at once if
/// registered, else at its next registration, the device erases the old
/// owner's credentials (its
/// erasure receipt proves it) and gets those of whoever has claimed it by
/// then. The operator may release a device without an owner (a lost code).
pub fn release_owner(
    store: &SqlStore,
    caller: &Caller,
    id: &DeviceId,
    code: &nido_pki::bundle::ClaimCode,
    why: &str,
) -> Result<Transfer, ServiceError> {
    let why = reason(why)?;
    let by = match caller {
        Caller::Owner(me) => Some(me.as_str()),
        Caller::Operator => None,
    };
    let from = store
        .release_owner(id, by, &code.hash(), now(), why)
        .map_err(|e| match e {
            SqlStoreError::Store(nido_net::StoreError::NotFound(m)) => ServiceError::NotFound(m),
            other => ServiceError::Store(other),
        })?;
    Ok(Transfer {
        device: id.to_string(),
        from,
    })
}

/// An owner account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct OwnerView {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// Every owner (operator only).
pub fn owners(store: &SqlStore, caller: &Caller) -> Result<Vec<OwnerView>, ServiceError> {
    operator_only(caller)?;
    Ok(store
        .owner_names()?
        .into_iter()
        .map(|(id, name)| OwnerView { id, name })
        .collect())
}

/// An owner id as a path segment and a topic prefix can carry it: 1 to
/// 128 characters, no `/`, no control character, no surrounding space.
fn owner_id(id: &str) -> Result<&str, ServiceError> {
    if id.is_empty()
        || id.len() > 128
        || id.trim() != id
        || id.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ServiceError::Invalid(
            "owner id: 1 to 128 characters, no '/', no control character, no surrounding space"
                .into(),
        ));
    }
    Ok(id)
}

/// Creates or renames an owner (operator only); its credentials stay.
pub fn put_owner(
    store: &mut SqlStore,
    caller: &Caller,
    owner: &OwnerView,
) -> Result<OwnerView, ServiceError> {
    operator_only(caller)?;
    let id = owner_id(&owner.id)?;
    let name = owner.name.trim();
    if name.is_empty() || owner.name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(
            "name: 1 to 200 characters, no control characters".into(),
        ));
    }
    let credentials = store.owner(id)?.map(|o| o.credentials).unwrap_or_default();
    store
        .put_owner(Owner {
            id: id.to_owned(),
            name: name.to_owned(),
            credentials,
        })
        .map_err(|e| ServiceError::Store(SqlStoreError::Store(e)))?;
    Ok(OwnerView {
        id: id.to_owned(),
        name: name.to_owned(),
    })
}

/// A claim: the code from the device's label.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ClaimRequest {
    /// The claim code.
    #[schema(min_length = 1, max_length = 64)]
    pub claim_code: String,
    /// The owner to claim for (operator only; an owner claims for itself).
    pub owner: Option<String>,
}

/// Claims a device with its one-time claim code. A wrong, used or unknown
/// code is [`ServiceError::NotFound`] alike.
pub fn claim(
    store: &mut SqlStore,
    caller: &Caller,
    req: &ClaimRequest,
) -> Result<Device, ServiceError> {
    let owner = match (caller, &req.owner) {
        (Caller::Owner(me), None) => me.clone(),
        (Caller::Owner(me), Some(o)) if o == me => me.clone(),
        (Caller::Owner(_), Some(_)) => return Err(ServiceError::Forbidden("claim for yourself")),
        (Caller::Operator, Some(o)) => owner_id(o)?.to_owned(),
        (Caller::Operator, None) => {
            return Err(ServiceError::Invalid(
                "owner: required for an operator".into(),
            ));
        }
    };
    let code = req.claim_code.trim();
    if code.is_empty() || req.claim_code.len() > 64 {
        return Err(ServiceError::Invalid(
            "claim_code: 1 to 64 characters".into(),
        ));
    }
    let device = store
        .claim(&owner, &nido_pki::bundle::claim_code_hash(code))
        .map_err(|e| match e {
            // The caller holds the device's code: it may learn that
            // someone claimed it first.
            nido_net::StoreError::Conflict(m) if m.contains("already claimed") => {
                ServiceError::Conflict(m)
            }
            nido_net::StoreError::NotFound(m) if m.starts_with("owner ") => {
                ServiceError::NotFound(format!("{m}: no such owner"))
            }
            nido_net::StoreError::NotFound(_) => {
                ServiceError::NotFound("no device with this claim code to claim".into())
            }
            other => ServiceError::Store(SqlStoreError::Store(other)),
        })?;
    let view = store
        .device_view(&device.to_string(), Some(&owner))?
        .ok_or_else(|| ServiceError::NotFound(device.to_string()))?;
    Ok(Device::of(view, caller))
}

/// An owner's third-party credentials as set: secrets write-only.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct CredentialsRequest {
    /// An LwM2M server with a PSK.
    pub lwm2m: Option<Lwm2mRequest>,
    /// An MQTT broker with a client certificate.
    pub mqtt: Option<MqttRequest>,
}

/// LwM2M credentials.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
pub struct Lwm2mRequest {
    /// `coaps://…`.
    #[schema(min_length = 8, max_length = 512, pattern = "^coaps?://\\S+$")]
    pub server_uri: String,
    /// The PSK identity.
    #[schema(min_length = 1, max_length = 128)]
    pub psk_identity: String,
    /// The PSK in hex (write-only: never returned).
    #[schema(min_length = 2, max_length = 128, pattern = "^([0-9a-fA-F]{2})+$")]
    pub psk_hex: String,
}

impl core::fmt::Debug for Lwm2mRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lwm2mRequest")
            .field("server_uri", &self.server_uri)
            .field("psk_identity", &self.psk_identity)
            .finish_non_exhaustive()
    }
}

/// MQTT credentials.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
pub struct MqttRequest {
    /// `mqtts://…`.
    #[schema(min_length = 8, max_length = 512, pattern = "^mqtts?://\\S+$")]
    pub broker_uri: String,
    /// The client id.
    #[schema(min_length = 1, max_length = 128)]
    pub client_id: String,
    /// The client certificate chain, PEM.
    #[schema(min_length = 1, max_length = 16384)]
    pub client_cert_pem: String,
    /// The client private key, PEM (write-only: never returned).
    #[schema(min_length = 1, max_length = 16384)]
    pub client_key_pem: String,
}

impl core::fmt::Debug for MqttRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MqttRequest")
            .field("broker_uri", &self.broker_uri)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One credential as shown: its public parts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CredentialView {
    /// `lwm2m` or `mqtt`.
    pub kind: String,
    /// The server or broker.
    pub uri: String,
    /// The PSK identity or the client id.
    pub identity: String,
}

fn credential_views(credentials: &[ThirdPartyCredential]) -> Vec<CredentialView> {
    credentials
        .iter()
        .filter_map(|c| match c {
            ThirdPartyCredential::Lwm2m {
                server_uri,
                psk_identity,
                ..
            } => Some(CredentialView {
                kind: "lwm2m".into(),
                uri: server_uri.clone(),
                identity: psk_identity.clone(),
            }),
            ThirdPartyCredential::Mqtt {
                broker_uri,
                client_id,
                ..
            } => Some(CredentialView {
                kind: "mqtt".into(),
                uri: broker_uri.clone(),
                identity: client_id.clone(),
            }),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .collect()
}

fn tenant_owner(caller: &Caller, owner: &str) -> Result<(), ServiceError> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Owner(me) if me == owner => Ok(()),
        Caller::Owner(_) => Err(ServiceError::NotFound(format!("owner {owner}"))),
    }
}

/// An owner's credentials, public parts only.
pub fn credentials(
    store: &SqlStore,
    caller: &Caller,
    owner: &str,
) -> Result<Vec<CredentialView>, ServiceError> {
    tenant_owner(caller, owner)?;
    let o = store
        .owner(owner)?
        .ok_or_else(|| ServiceError::NotFound(format!("owner {owner}")))?;
    Ok(credential_views(&o.credentials))
}

fn uri(text: &str, schemes: &[&str], what: &str) -> Result<String, ServiceError> {
    let t = text;
    if text.len() > 512
        || t.chars().any(|c| c.is_control() || c.is_whitespace())
        || !schemes
            .iter()
            .any(|s| t.starts_with(s) && t.len() > s.len())
    {
        return Err(ServiceError::Invalid(format!(
            "{what}: a URI starting with {}",
            schemes.join(" or ")
        )));
    }
    Ok(t.to_owned())
}

fn identity(text: &str, what: &str) -> Result<String, ServiceError> {
    let t = text.trim();
    if t.is_empty() || text.len() > 128 || t.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "{what}: 1 to 128 characters"
        )));
    }
    Ok(t.to_owned())
}

/// Replaces an owner's third-party credentials (its own, for an owner).
pub fn set_credentials(
    store: &mut SqlStore,
    caller: &Caller,
    owner: &str,
    req: &CredentialsRequest,
) -> Result<Vec<CredentialView>, ServiceError> {
    tenant_owner(caller, owner)?;
    let mut credentials = Vec::new();
    if let Some(l) = &req.lwm2m {
        let psk = Zeroizing::new(
            hex::decode(&l.psk_hex)
                .map_err(|_| ServiceError::Invalid("lwm2m.psk_hex: not hex".into()))?,
        );
        if psk.is_empty() || psk.len() > 64 {
            return Err(ServiceError::Invalid(
                "lwm2m.psk_hex: 1 to 64 octets".into(),
            ));
        }
        credentials.push(ThirdPartyCredential::Lwm2m {
            server_uri: uri(&l.server_uri, &["coaps://", "coap://"], "lwm2m.server_uri")?,
            psk_identity: identity(&l.psk_identity, "lwm2m.psk_identity")?,
            psk,
        });
    }
    if let Some(m) = &req.mqtt {
        if !m.client_cert_pem.contains("-----BEGIN CERTIFICATE-----")
            || !m.client_key_pem.contains("PRIVATE KEY-----")
            || m.client_cert_pem.len() > 16_384
            || m.client_key_pem.len() > 16_384
        {
            return Err(ServiceError::Invalid(
                "mqtt: client_cert_pem (PEM certificates) and client_key_pem (a PEM private key)"
                    .into(),
            ));
        }
        credentials.push(ThirdPartyCredential::Mqtt {
            broker_uri: uri(&m.broker_uri, &["mqtts://", "mqtt://"], "mqtt.broker_uri")?,
            client_id: identity(&m.client_id, "mqtt.client_id")?,
            client_cert_pem: m.client_cert_pem.clone(),
            client_key_pem: Zeroizing::new(m.client_key_pem.clone()),
        });
    }
    if credentials.is_empty() {
        return Err(ServiceError::Invalid("give lwm2m and/or mqtt".into()));
    }
    let mut o = store
        .owner(owner)?
        .ok_or_else(|| ServiceError::NotFound(format!("owner {owner}")))?;
    o.credentials = credentials;
    let views = credential_views(&o.credentials);
    store
        .put_owner(o)
        .map_err(|e| ServiceError::Store(SqlStoreError::Store(e)))?;
    Ok(views)
}

/// An enrolled manufacturer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ManufacturerView {
    /// Its name.
    pub name: String,
    /// SHA-256 of its root certificate (hex).
    pub root_sha256: String,
    /// CRLs imported.
    pub crls: usize,
}

/// Every enrolled manufacturer (operator only).
pub fn manufacturers(
    store: &SqlStore,
    caller: &Caller,
) -> Result<Vec<ManufacturerView>, ServiceError> {
    operator_only(caller)?;
    let crls = store.crls()?;
    Ok(store
        .manufacturers()?
        .into_iter()
        .map(|m| ManufacturerView {
            crls: crls.iter().filter(|c| c.manufacturer == m.name).count(),
            root_sha256: hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &m.root_der,
            )),
            name: m.name,
        })
        .collect())
}

/// A CRL to import, with its issuer's certificate (PEM).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct CrlRequest {
    /// The CRL (PEM `X509 CRL`).
    #[schema(min_length = 1)]
    pub crl_pem: String,
    /// The certificate of the CA that signed it (PEM).
    #[schema(min_length = 1)]
    pub issuer_pem: String,
    /// What it does to devices that hold a subscription and whose
    /// certificate it revokes (default: suspend them at once).
    #[serde(default)]
    pub active: RevokedActive,
}

/// What a CRL does to devices that already hold a subscription and whose
/// certificate (the one they last onboarded with) it revokes: the
/// operator's policy (issue #16). Either way their onboarding is refused
/// (#3: the certificate is revoked), and `unblock` resumes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RevokedActive {
    /// Blocked at once: a registered device is deregistered (#3) within
    /// a trust poll, and its registrations are refused (#3).
    #[default]
    Suspend,
    /// Blocked from its next registration on: a registration under way
    /// (and its bursts) goes on until the device registers again.
    NextRegistration,
}

/// A CRL imported, and the devices it suspended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct CrlImported {
    /// The manufacturer, with its CRLs.
    pub manufacturer: ManufacturerView,
    /// The policy applied.
    pub active: RevokedActive,
    /// The devices (`MANUFACTURER/SERIAL`) with a subscription that it
    /// newly blocked (a device blocked already keeps its block).
    pub suspended: Vec<String>,
}

impl CrlRequest {
    /// The CRL and the issuer, DER.
    pub fn der(&self) -> Result<(Vec<u8>, Vec<u8>), ServiceError> {
        Ok((
            pem_block(&self.crl_pem, "X509 CRL")?,
            pem_block(&self.issuer_pem, "CERTIFICATE")?,
        ))
    }
}

/// Imports a manufacturer's CRL (operator only). It is checked first
/// (signature, issuer, manufacturer) against the trust store as stored;
/// a CRL that does not verify is refused and nothing is written. Serving
/// networks load it at their next trust poll. Devices of the
/// manufacturer whose subscription got its last package on a certificate
/// this CRL newly revokes (its issuer and serial; listed by the CRL it
/// replaces: not again) are blocked as `active` says, each with its
/// `blocked` audit entry.
pub fn import_crl(
    store: &SqlStore,
    caller: &Caller,
    manufacturer: &str,
    crl_der: &[u8],
    issuer_der: &[u8],
    active: RevokedActive,
) -> Result<CrlImported, ServiceError> {
    use nido_pki::{CertificateDer, CertificateRevocationListDer};
    operator_only(caller)?;
    if !store
        .manufacturers()?
        .iter()
        .any(|m| m.name == manufacturer)
    {
        return Err(ServiceError::NotFound(format!(
            "manufacturer {manufacturer}"
        )));
    }
    let mut trust = store.trust_store()?;
    trust
        .add_crl(
            manufacturer,
            &CertificateRevocationListDer::from(crl_der.to_vec()),
            &CertificateDer::from(issuer_der.to_vec()),
        )
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    // The devices this CRL newly revokes: serials it lists that the one it
    // replaces (same issuing CA) did not, so a device the operator
    // unblocked is not blocked again by the next, cumulative, CRL. They
    // are blocked before the CRL is kept: an import cut short is retried
    // whole (blocking is idempotent).
    let revocations = |der: Vec<u8>| {
        nido_pki::crl_revocations(&CertificateRevocationListDer::from(der))
            .map_err(|e| ServiceError::Invalid(e.to_string()))
    };
    let (crl_issuer, revoked) = revocations(crl_der.to_vec())?;
    let mut before = std::collections::HashSet::new();
    for old in store.crls()? {
        if old.manufacturer == manufacturer && old.issuer_der == issuer_der {
            before.extend(revocations(old.crl_der)?.1);
        }
    }
    let new: Vec<Vec<u8>> = revoked
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    let (deferred, when) = match active {
        RevokedActive::Suspend => (false, "suspended at once"),
        RevokedActive::NextRegistration => (true, "suspended from its next registration"),
    };
    let reason = format!("certificate revoked by the CRL of {manufacturer}; {when}");
    let mut suspended = Vec::new();
    for device in store.subscribed_devices_with_certs(manufacturer, &crl_issuer, &new)? {
        if store.block_with(&device, &reason, deferred)? {
            suspended.push(device.to_string());
        }
    }
    store.add_crl(manufacturer, crl_der, issuer_der, now())?;
    let manufacturer = manufacturers(store, caller)?
        .into_iter()
        .find(|m| m.name == manufacturer)
        .ok_or_else(|| ServiceError::NotFound(format!("manufacturer {manufacturer}")))?;
    Ok(CrlImported {
        manufacturer,
        active,
        suspended,
    })
}

fn pem_block(text: &str, label: &str) -> Result<Vec<u8>, ServiceError> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| ServiceError::Invalid(format!("no {begin}")))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| ServiceError::Invalid(format!("no {end}")))?
        + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ServiceError::Invalid(format!("{label}: not base64")))
}

/// One owner's delivery queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeliveryView {
    /// The owner (none: devices no owner claimed).
    pub owner: Option<String>,
    /// Bursts waiting.
    pub pending: u64,
    /// Bursts delivered (kept a day).
    pub delivered: u64,
    /// Bursts dropped (the queue was full).
    pub dropped: u64,
    /// When the oldest pending burst arrived (ISO 8601).
    pub oldest_pending: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Delivery queues (an owner's: its own).
pub fn delivery(store: &SqlStore, caller: &Caller) -> Result<Vec<DeliveryView>, ServiceError> {
    Ok(store
        .delivery_status()?
        .into_iter()
        .filter(|d| match caller {
            Caller::Operator => true,
            Caller::Owner(me) => d.owner.as_deref() == Some(me),
        })
        .map(|d| DeliveryView {
            oldest_pending: d
                .oldest_pending
                .map(|ms| iso8601(UNIX_EPOCH + Duration::from_millis(ms))),
            owner: d.owner,
            pending: d.pending,
            delivered: d.delivered,
            dropped: d.dropped,
            last_error: d.last_error,
        })
        .collect())
}

/// Data for a device (TS 29.122 NIDD style: the application's downlink).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct DownlinkRequest {
    /// The data, base64 (1 to 1,000 octets).
    #[schema(min_length = 4, max_length = 1336)]
    pub data: String,
}

/// A downlink the network keeps for its device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DownlinkView {
    /// The application's reference (reported with `downlink_sent` in the
    /// audit trail, and as `id` on the MQTT `…/down/ack`).
    pub id: i64,
    /// The device.
    pub device: String,
    /// `queued`: durable, sent right after the device's next burst.
    pub status: String,
}

/// Keeps data for a device that holds a subscription (an owner: its own
/// device), sent to it right after its next uplink burst.
pub fn downlink(
    store: &SqlStore,
    caller: &Caller,
    id: &DeviceId,
    req: &DownlinkRequest,
) -> Result<DownlinkView, ServiceError> {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode(&req.data)
        .map_err(|_| ServiceError::Invalid("data: not base64".into()))?;
    if data.is_empty() || data.len() > nido_store::MAX_DOWNLINK {
        return Err(ServiceError::Invalid(format!(
            "data: {} octets; 1 to {} are taken",
            data.len(),
            nido_store::MAX_DOWNLINK
        )));
    }
    let name = id.to_string();
    let view = store
        .device_view(&name, caller.tenant())?
        .ok_or_else(|| ServiceError::NotFound(name.clone()))?;
    if view.supi.is_none() {
        return Err(ServiceError::Conflict(format!(
            "{name} has no subscription yet: nothing can reach it"
        )));
    }
    let at = store.enqueue_downlink(&name, view.owner.as_deref(), &data)?;
    Ok(DownlinkView {
        id: at,
        device: name,
        status: "queued".into(),
    })
}
