//! # nido-api: the network's HTTP API, web console and metrics
//!
//! `nido network serve --api ADDR` runs this beside the access link: a
//! versioned JSON API under `/api/v1` for operators and device owners
//! (described by the OpenAPI 3.1 document at `/openapi.json`, generated
//! from the handlers), a small server-rendered web console at `/`, and
//! Prometheus metrics at `/metrics`.
//!
//! - [`service`]: what an operator or an owner may do; the CLI calls the
//!   same functions (one service layer, one copy of the rules);
//! - [`auth`]: bearer tokens (hashed in the store), roles, tenancy, the
//!   failed-authentication limiter;
//! - [`api`]: the JSON handlers and the OpenAPI document;
//! - [`console`]: the web console (HTML rendered on the server, assets
//!   embedded in the binary, no CDN);
//! - [`metrics`]: the one definition of the serving network's metrics;
//! - [`pool`]: the store threads the handlers hand their calls to.
//!
//! ## Invariants
//! - Every `/api/v1` endpoint authenticates the request with a live token
//!   (header `Authorization: Bearer …`; the console's cookie only for
//!   GET), and every query of an owner is limited to its own devices in
//!   the store statement itself: another owner's object is 404, as one
//!   that does not exist.
//! - No response, log line or `Debug` output carries K, OPc, a PSK, a
//!   private key, a password or a token (tokens are shown once, by the
//!   CLI that creates them).
//! - A state-changing request never rides on the cookie alone: the API's
//!   POST/PUT take the bearer header only, and the console's forms are
//!   checked to come from the console's own origin.
//! - Handlers never block a tokio worker on the database.

pub mod api;
pub mod auth;
pub mod console;
pub mod error;
pub mod metrics;
pub mod pool;
pub mod service;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use nido_store::SqlStore;
use utoipa::OpenApi;

pub use auth::Caller;
pub use error::ApiError;
pub use metrics::Metrics;
pub use pool::{OpenStore, StorePool};
use service::ServiceError;

/// Called before each scrape to bring the metrics up to date (datagram
/// counts, the delivery queue).
pub type Sampler = Arc<dyn Fn(&Metrics, &SqlStore) + Send + Sync>;

/// The name of the console's session cookie (it holds the token).
pub const COOKIE: &str = "nido_token";

/// The API's shared state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: StorePool,
    metrics: Arc<Metrics>,
    limiter: Mutex<auth::FailureLimiter>,
    /// Tokens verified in the last [`VERIFIED_FOR`], by hash: what lets a
    /// live token in from an address past its failure budget without a
    /// store lookup.
    verified: Mutex<std::collections::HashMap<String, (Caller, Instant)>>,
    sampler: Option<Sampler>,
}

/// How long a verified token gets in without a lookup from an address past
/// its failure budget (a token revoked meanwhile works that long there).
const VERIFIED_FOR: Duration = Duration::from_secs(10);
/// The most verified tokens remembered.
const VERIFIED_MAX: usize = 10_000;

impl AppState {
    /// State over `pool`, counting into `metrics`; `sampler` refreshes the
    /// metrics read at scrape time.
    pub fn new(pool: StorePool, metrics: Arc<Metrics>, sampler: Option<Sampler>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                metrics,
                // 10 failures at once, then one every 6 s, per address.
                limiter: Mutex::new(auth::FailureLimiter::new(
                    10,
                    Duration::from_secs(6),
                    10_000,
                )),
                verified: Mutex::new(std::collections::HashMap::new()),
                sampler,
            }),
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs a service call on a store thread; its result as JSON.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqlStore) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<axum::Json<T>, ApiError> {
        Ok(axum::Json(self.inner.pool.call(f).await??))
    }

    /// Runs a store call on a store thread.
    pub async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqlStore) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        Ok(self.inner.pool.call(f).await?)
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, auth::FailureLimiter> {
        match self.inner.limiter.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        }
    }

    /// Who `token` speaks for, for a request from `ip`; failures counted.
    ///
    /// Within its failure budget, an address's well-formed token costs one
    /// hash and one indexed lookup (about what its request cost its
    /// sender). Past the budget, nothing is looked up: a failure is 429,
    /// and a token verified in the last [`VERIFIED_FOR`] still gets in, so
    /// the failures of others behind the same address (a proxy) never
    /// lock a live token out.
    pub async fn authenticate(
        &self,
        token: Option<String>,
        ip: IpAddr,
    ) -> Result<Caller, ApiError> {
        let now = Instant::now();
        let hash = token
            .as_deref()
            .filter(|t| auth::well_formed(t))
            .map(auth::hash);
        let over = self.limiter().check(&ip, now);
        if let Err(wait) = over {
            let known = hash.as_ref().and_then(|h| {
                self.verified()
                    .get(h)
                    .filter(|(_, at)| now.saturating_duration_since(*at) < VERIFIED_FOR)
                    .map(|(c, _)| c.clone())
            });
            return known.ok_or(ApiError::TooMany(wait));
        }
        let caller = match hash.clone() {
            Some(h) => self
                .store(move |st| st.token_by_hash(&h, service::now()))
                .await?
                .map_err(ServiceError::from)?
                .as_ref()
                .and_then(Caller::of),
            None => None,
        };
        match (caller, hash) {
            (Some(c), Some(h)) => {
                let mut verified = self.verified();
                if verified.len() >= VERIFIED_MAX {
                    verified.retain(|_, (_, at)| now.saturating_duration_since(*at) < VERIFIED_FOR);
                    if verified.len() >= VERIFIED_MAX {
                        verified.clear();
                    }
                }
                verified.insert(h, (c.clone(), now));
                Ok(c)
            }
            _ => {
                self.limiter().failed(ip, now);
                Err(ApiError::Unauthorized)
            }
        }
    }

    fn verified(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Caller, Instant)>> {
        match self.inner.verified.lock() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        }
    }
}

/// The bearer token of `headers`, if any.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The console's session cookie, if any.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

pub(crate) fn peer(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// An authenticated request: the caller. The bearer header, or for GET
/// and HEAD the console's cookie.
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let safe = parts.method == Method::GET || parts.method == Method::HEAD;
        let token =
            bearer(&parts.headers).or_else(|| safe.then(|| cookie(&parts.headers)).flatten());
        state.authenticate(token, peer(parts)).await.map(Auth)
    }
}

async fn openapi() -> impl IntoResponse {
    axum::Json(api::ApiDoc::openapi())
}

async fn metrics(State(s): State<AppState>) -> Response {
    if let Some(sampler) = s.inner.sampler.clone() {
        let state = s.clone();
        // A failed sample leaves the last values; the scrape still answers.
        let _ = s.store(move |st| sampler(state.metrics(), st)).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics().render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Counts responses and sets the headers every response carries.
async fn common_headers(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    s.metrics().api_response(response.status().as_u16());
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole application: API, OpenAPI document, metrics, console.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/me", get(api::me))
        .route("/overview", get(api::overview))
        .route("/devices", get(api::devices))
        .route("/devices/{manufacturer}/{serial}", get(api::device))
        .route("/devices/{manufacturer}/{serial}/block", post(api::block))
        .route(
            "/devices/{manufacturer}/{serial}/unblock",
            post(api::unblock),
        )
        .route(
            "/devices/{manufacturer}/{serial}/release",
            post(api::release),
        )
        .route("/devices/{manufacturer}/{serial}/rekey", post(api::rekey))
        .route(
            "/devices/{manufacturer}/{serial}/downlink",
            post(api::downlink),
        )
        .route("/subscriptions", get(api::subscriptions))
        .route("/audit", get(api::audit))
        .route("/owners", get(api::owners))
        .route("/owners/{id}", put(api::put_owner))
        .route(
            "/owners/{id}/credentials",
            get(api::credentials).put(api::set_credentials),
        )
        .route("/claims", post(api::claim))
        .route("/manufacturers", get(api::manufacturers))
        .route("/manufacturers/{name}/crl", post(api::crl))
        .route("/delivery", get(api::delivery));
    Router::new()
        .nest("/api/v1", v1)
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(console::routes())
        .fallback(|| async { ApiError::Service(ServiceError::NotFound("no such page".into())) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            common_headers,
        ))
        .with_state(state)
}

/// A running API server.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Serves `state` on `addr` (port 0: any) on a thread of its own.
    pub fn start(addr: SocketAddr, state: AppState) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("nido-api".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "API: listener");
                            return;
                        }
                    };
                    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
                    if let Err(e) = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await
                    {
                        tracing::error!(error = %e, "API server stopped");
                    }
                });
            })?;
        Ok(Self {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it (open connections finish their request).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
