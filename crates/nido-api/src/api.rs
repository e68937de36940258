//! The `/api/v1` handlers and the OpenAPI 3.1 document generated from
//! them. Each handler checks who calls ([`Auth`]), hands the work to the
//! service layer on a store thread, and answers JSON. Malformed queries,
//! paths and bodies are 400 with a JSON error, like every other error.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use nido_net::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::service::{
    self, AuditItem, AuditQuery, ClaimRequest, CredentialView, CredentialsRequest, DeliveryView,
    Device, DeviceDetail, DeviceQuery, ManufacturerView, Outcome, Overview, OwnerView, Page,
    Reason, Subscription, SubscriptionQuery,
};

pub use crate::Auth;

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// The device a `{manufacturer}/{serial}` path names.
fn device_in(p: Result<Path<(String, String)>, PathRejection>) -> Result<DeviceId, ApiError> {
    let (m, serial) = path(p)?;
    Ok(service::device_id(&m, &serial)?)
}

/// Who the token speaks for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// `operator` or `owner`.
    pub role: String,
    /// The owner, for an owner's token.
    pub owner: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
/// Who the token speaks for.
pub async fn me(Auth(caller): Auth) -> Json<Me> {
    Json(match caller {
        Caller::Operator => Me {
            role: "operator".into(),
            owner: None,
        },
        Caller::Owner(o) => Me {
            role: "owner".into(),
            owner: Some(o),
        },
    })
}

#[utoipa::path(get, path = "/api/v1/overview", tag = "fleet",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// The onboarding funnel and refusals by cause (an owner's: its devices).
pub async fn overview(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Overview>, ApiError> {
    s.call(move |st| service::overview(st, &caller)).await
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = Page<Device>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Devices, by identity, with filters and keyset paging.
pub async fn devices(
    State(s): State<AppState>,
    Auth(caller): Auth,
    q: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Json<Page<Device>>, ApiError> {
    let q = query(q)?;
    s.call(move |st| service::devices(st, &caller, &q)).await
}

#[utoipa::path(get, path = "/api/v1/devices/{manufacturer}/{serial}", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// One device with its last 100 audit entries.
pub async fn device(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let id = device_in(p)?;
    s.call(move |st| service::device(st, &caller, &id, 100))
        .await
}

#[utoipa::path(post, path = "/api/v1/devices/{manufacturer}/{serial}/block", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)), request_body = Reason,
    responses((status = 200, body = Outcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Blocks a device (operator): deregistered if registered, refused (#3)
/// until unblocked; its owner gets a `blocked` event.
pub async fn block(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<Reason>, JsonRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let id = device_in(p)?;
    let r = body(b)?;
    s.call(move |st| service::block(st, &caller, &id, &r.reason))
        .await
}

#[utoipa::path(post, path = "/api/v1/devices/{manufacturer}/{serial}/unblock", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)),
    responses((status = 200, body = Outcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Unblocks a device (operator).
pub async fn unblock(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let id = device_in(p)?;
    s.call(move |st| service::unblock(st, &caller, &id)).await
}

#[utoipa::path(post, path = "/api/v1/devices/{manufacturer}/{serial}/release", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)), request_body = Reason,
    responses((status = 200, body = Outcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Releases a device's subscription for re-provisioning (operator).
pub async fn release(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<Reason>, JsonRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let id = device_in(p)?;
    let r = body(b)?;
    s.call(move |st| service::release(st, &caller, &id, &r.reason))
        .await
}

#[utoipa::path(post, path = "/api/v1/devices/{manufacturer}/{serial}/rekey", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)), request_body = Reason,
    responses((status = 200, body = Outcome), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Re-keys a device (operator): its package ends now, so it is
/// deregistered if registered, else refused at its next registration
/// (#7), and it renews with a new K.
pub async fn rekey(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<Reason>, JsonRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let id = device_in(p)?;
    let r = body(b)?;
    s.call(move |st| {
        let mut done = service::rekey(st, &caller, nido_store::Packages::Of(&id), &r.reason)?;
        done.pop().ok_or_else(|| {
            service::ServiceError::NotFound(format!("{id}: no subscription to re-key"))
        })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/devices/{manufacturer}/{serial}/downlink", tag = "devices",
    params(("manufacturer" = String, Path), ("serial" = String, Path)), request_body = service::DownlinkRequest,
    responses((status = 202, body = service::DownlinkView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Keeps data for a device (an owner: its own), sent right after its next
/// uplink burst; 202 once it is durable.
pub async fn downlink(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<service::DownlinkRequest>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<service::DownlinkView>), ApiError> {
    let id = device_in(p)?;
    let req = body(b)?;
    let view = s
        .call(move |st| service::downlink(st, &caller, &id, &req))
        .await?;
    Ok((axum::http::StatusCode::ACCEPTED, view))
}

#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", params(SubscriptionQuery),
    responses((status = 200, body = Page<Subscription>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Subscriptions, never with K or OPc (an owner's: its own).
pub async fn subscriptions(
    State(s): State<AppState>,
    Auth(caller): Auth,
    q: Result<Query<SubscriptionQuery>, QueryRejection>,
) -> Result<Json<Page<Subscription>>, ApiError> {
    let q = query(q)?;
    s.call(move |st| service::subscriptions(st, &caller, &q))
        .await
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditItem>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// The audit trail, newest first (an owner's: of its devices).
pub async fn audit(
    State(s): State<AppState>,
    Auth(caller): Auth,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Page<AuditItem>>, ApiError> {
    let q = query(q)?;
    s.call(move |st| service::audit(st, &caller, &q)).await
}

#[utoipa::path(get, path = "/api/v1/owners", tag = "owners",
    responses((status = 200, body = Vec<OwnerView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Every owner (operator).
pub async fn owners(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Vec<OwnerView>>, ApiError> {
    s.call(move |st| service::owners(st, &caller)).await
}

/// An owner's display name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OwnerName {
    /// The display name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

#[utoipa::path(put, path = "/api/v1/owners/{id}", tag = "owners",
    params(("id" = String, Path)), request_body = OwnerName,
    responses((status = 200, body = OwnerView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Creates or renames an owner (operator).
pub async fn put_owner(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<OwnerName>, JsonRejection>,
) -> Result<Json<OwnerView>, ApiError> {
    let id = path(p)?;
    let OwnerName { name } = body(b)?;
    s.call(move |st| service::put_owner(st, &caller, &OwnerView { id, name }))
        .await
}

#[utoipa::path(get, path = "/api/v1/owners/{id}/credentials", tag = "owners",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<CredentialView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// An owner's third-party credentials, public parts only (an owner: its own).
pub async fn credentials(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<CredentialView>>, ApiError> {
    let id = path(p)?;
    s.call(move |st| service::credentials(st, &caller, &id))
        .await
}

#[utoipa::path(put, path = "/api/v1/owners/{id}/credentials", tag = "owners",
    params(("id" = String, Path)), request_body = CredentialsRequest,
    responses((status = 200, body = Vec<CredentialView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Replaces an owner's third-party credentials; the PSK and the private
/// key are write-only (an owner: its own).
pub async fn set_credentials(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<CredentialsRequest>, JsonRejection>,
) -> Result<Json<Vec<CredentialView>>, ApiError> {
    let id = path(p)?;
    let req = body(b)?;
    s.call(move |st| service::set_credentials(st, &caller, &id, &req))
        .await
}

#[utoipa::path(post, path = "/api/v1/claims", tag = "owners", request_body = ClaimRequest,
    responses((status = 200, body = Device), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Claims a device with the one-time code from its label (an owner for
/// itself; the operator names the owner). A wrong or used code is 404.
pub async fn claim(
    State(s): State<AppState>,
    Auth(caller): Auth,
    b: Result<Json<ClaimRequest>, JsonRejection>,
) -> Result<Json<Device>, ApiError> {
    let req = body(b)?;
    s.call(move |st| service::claim(st, &caller, &req)).await
}

#[utoipa::path(get, path = "/api/v1/manufacturers", tag = "manufacturers",
    responses((status = 200, body = Vec<ManufacturerView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Enrolled manufacturers (operator).
pub async fn manufacturers(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Vec<ManufacturerView>>, ApiError> {
    s.call(move |st| service::manufacturers(st, &caller)).await
}

#[utoipa::path(post, path = "/api/v1/manufacturers/{name}/crl", tag = "manufacturers",
    params(("name" = String, Path)), request_body = service::CrlRequest,
    responses((status = 200, body = service::CrlImported), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Imports a manufacturer's CRL (operator); verified before it is kept.
/// Devices with a subscription whose certificate it revokes are suspended
/// as `active` says (at once by default, or at their next registration).
pub async fn crl(
    State(s): State<AppState>,
    Auth(caller): Auth,
    p: Result<Path<String>, PathRejection>,
    b: Result<Json<service::CrlRequest>, JsonRejection>,
) -> Result<Json<service::CrlImported>, ApiError> {
    let name = path(p)?;
    let req = body(b)?;
    let (crl, issuer) = req.der()?;
    let active = req.active;
    s.call(move |st| service::import_crl(st, &caller, &name, &crl, &issuer, active))
        .await
}

#[utoipa::path(get, path = "/api/v1/delivery", tag = "delivery",
    responses((status = 200, body = Vec<DeliveryView>), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
/// Delivery queues of devices' data (an owner's: its own).
pub async fn delivery(
    State(s): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    s.call(move |st| service::delivery(st, &caller)).await
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `nido network token create` (operator or owner)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nido network API",
        description = "Operators and device owners: devices, subscriptions (never key material), the audit trail, block and release, owners, claims and third-party credentials.",
        version = "1"
    ),
    paths(
        me, overview, devices, device, block, unblock, release, rekey, downlink, subscriptions, audit,
        owners, put_owner, credentials, set_credentials, claim, manufacturers, crl, delivery
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;
