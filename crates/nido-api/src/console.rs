//! The web console: pages rendered on the server from the service layer,
//! one stylesheet and one small script embedded in the binary (no CDN, no
//! build step). An operator sees the fleet funnel with a live onboarding
//! rate, refusals by cause, device search, a device's page with its audit
//! trail and block/unblock/release; an owner sees its own devices, claims
//! one with its code and sets its third-party credentials.
//!
//! Invariants: every value written into a page goes through [`esc`]; the
//! session cookie is `HttpOnly; SameSite=Strict`; a form POST is served
//! only when the browser says it comes from this origin (`Origin` or
//! `Sec-Fetch-Site`); the Content-Security-Policy allows no inline script.

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::Caller;
use crate::service::{self, DeviceQuery, ServiceError};
use crate::{AppState, COOKIE, cookie, peer};

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` for a URL path segment or query value.
fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn page(caller: Option<&Caller>, title: &str, body: &str) -> Response {
    let nav = match caller {
        None => String::new(),
        Some(c) => {
            let who = match c {
                Caller::Operator => "operator".to_owned(),
                Caller::Owner(o) => format!("owner {}", esc(o)),
            };
            let extra = match c {
                Caller::Operator => "",
                Caller::Owner(_) => r#"<a href="/console/credentials">Credentials</a>"#,
            };
            format!(
                r#"<nav><a href="/" class="brand">nido</a><a href="/">Fleet</a><a href="/console/devices">Devices</a>{extra}
<span class="who">{who}</span><form method="post" action="/logout"><button type="submit">Log out</button></form></nav>"#
            )
        }
    };
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · nido</title><link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js" defer></script></head>
<body>{nav}<main>{body}</main></body></html>"#,
        esc(title)
    );
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error_page(caller: Option<&Caller>, status: StatusCode, message: &str) -> Response {
    let mut r = page(
        caller,
        "Error",
        &format!(
            r#"<h1>{}</h1><p class="error">{}</p><p><a href="/">Back</a></p>"#,
            status.as_u16(),
            esc(message)
        ),
    );
    *r.status_mut() = status;
    r
}

fn service_error(caller: &Caller, e: &crate::ApiError) -> Response {
    use crate::ApiError as A;
    let (status, message) = match e {
        A::Service(ServiceError::NotFound(_)) => (StatusCode::NOT_FOUND, "Not found.".to_owned()),
        A::Service(ServiceError::Forbidden(m)) => (StatusCode::FORBIDDEN, (*m).to_owned()),
        A::Service(ServiceError::Invalid(m)) | A::BadRequest(m) => {
            (StatusCode::BAD_REQUEST, m.clone())
        }
        A::Service(ServiceError::Conflict(m)) => (StatusCode::CONFLICT, m.clone()),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unavailable; try again.".to_owned(),
        ),
    };
    error_page(Some(caller), status, &message)
}

/// A console session: the cookie (or a bearer header); without one, GET
/// pages redirect to the login page.
pub struct Session(pub Caller);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let token = cookie(&parts.headers);
        match state.authenticate(token, peer(parts)).await {
            Ok(c) => Ok(Session(c)),
            Err(crate::ApiError::Unauthorized) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Whether a form POST comes from this console's origin.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
        _ => false,
    }
}

fn cross_site() -> Response {
    (StatusCode::FORBIDDEN, "cross-site form refused\n").into_response()
}

async fn login_page() -> Response {
    login_form(None)
}

fn login_form(error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error">{}</p>"#, esc(e))
    });
    page(
        None,
        "Log in",
        &format!(
            r#"<section class="login"><h1>nido</h1><p>Log in with a token from <code>nido network token create</code>.</p>{error}
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="off" required autofocus></label>
<button type="submit">Log in</button></form></section>"#
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(s): State<AppState>,
    parts: Parts2,
    f: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&parts.headers) {
        return cross_site();
    }
    let Ok(Form(f)) = f else {
        return login_form(Some("Give a token."));
    };
    let token = f.token.trim().to_owned();
    // Served through TLS (the browser's origin says so, behind a proxy
    // too): the cookie never travels over plain HTTP.
    let secure = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"));
    match s.authenticate(Some(token.clone()), parts.ip).await {
        Ok(_) => {
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200{}",
                if secure { "; Secure" } else { "" }
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(crate::ApiError::TooMany(_)) => {
            let mut r = login_form(Some("Too many failed attempts; wait a minute."));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r
        }
        Err(_) => {
            let mut r = login_form(Some(
                "That token is not valid (revoked, expired or mistyped).",
            ));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

async fn logout(parts: Parts2) -> Response {
    if !same_origin(&parts.headers) {
        return cross_site();
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("nido_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

/// The request's headers and peer address (for handlers that also take a
/// body).
struct Parts2 {
    headers: HeaderMap,
    ip: std::net::IpAddr,
}

impl<S: Send + Sync> FromRequestParts<S> for Parts2 {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            ip: peer(parts),
        })
    }
}

fn funnel_cards() -> String {
    let steps = [
        ("attached", "Attached"),
        ("authenticated", "Authenticated"),
        ("provisioned", "Provisioned"),
        ("active", "Active"),
        ("refused", "Refused"),
    ];
    let cards: String = steps
        .iter()
        .map(|(id, label)| {
            format!(
                r#"<div class="card {id}"><div class="n" data-funnel="{id}">–</div><div class="label">{label}</div></div>"#
            )
        })
        .collect();
    format!(r#"<section class="funnel" aria-label="Onboarding funnel">{cards}</section>"#)
}

async fn dashboard(State(s): State<AppState>, Session(caller): Session) -> Response {
    let c = caller.clone();
    let overview = match s.call(move |st| service::overview(st, &c)).await {
        Ok(o) => o.0,
        Err(e) => return service_error(&caller, &e),
    };
    let refusals: String = if overview.refusals.is_empty() {
        r#"<tr><td colspan="3" class="muted">No device refused.</td></tr>"#.to_owned()
    } else {
        overview
            .refusals
            .iter()
            .map(|r| {
                let cause = r.cause.map_or("-".to_owned(), |c| format!("#{c}"));
                let link = r.cause.map_or("/console/devices?state=refused".to_owned(), |c| {
                    format!("/console/devices?state=refused&amp;cause={c}")
                });
                format!(
                    r#"<tr><td><a href="{link}">{}</a></td><td>{}</td><td class="num">{}</td></tr>"#,
                    esc(&cause),
                    esc(r.cause_name.as_deref().unwrap_or("")),
                    r.devices
                )
            })
            .collect()
    };
    let owner_tools = match &caller {
        Caller::Operator => String::new(),
        Caller::Owner(_) => r#"<section><h2>Claim a device</h2>
<form method="post" action="/console/claim" class="inline"><label>Claim code <input name="claim_code" required placeholder="ABCD-EFGH-JKLM-NPQR"></label>
<button type="submit">Claim</button></form></section>"#
            .to_owned(),
    };
    page(
        Some(&caller),
        "Fleet",
        &format!(
            r#"<h1>Fleet</h1>{}
<section><h2>Onboarding rate <span class="muted" id="rate-now"></span></h2>
<svg id="rate" viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label="Devices becoming active per second"><polyline points="" /></svg>
<p class="muted">Devices becoming active per second, sampled every 2 s (updated {}).</p></section>
<section><h2>Refusals by cause</h2><table class="refusals"><thead><tr><th>Cause</th><th>Meaning</th><th>Devices</th></tr></thead><tbody>{refusals}</tbody></table></section>
<section><h2>Find a device</h2><form method="get" action="/console/devices" class="inline"><label>Identity <input name="q" placeholder="ACME/SN0001"></label><button type="submit">Search</button></form></section>
{owner_tools}"#,
            funnel_cards(),
            esc(&overview.at)
        ),
    )
}

async fn devices_page(
    State(s): State<AppState>,
    Session(caller): Session,
    q: Result<Query<DeviceQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(mut q)) = q else {
        return error_page(Some(&caller), StatusCode::BAD_REQUEST, "Bad search.");
    };
    q.limit = Some(q.limit.unwrap_or(50).clamp(1, 200));
    let query = q.clone();
    let c = caller.clone();
    let page_ = match s.call(move |st| service::devices(st, &c, &query)).await {
        Ok(p) => p.0,
        Err(e) => return service_error(&caller, &e),
    };
    let rows: String = if page_.items.is_empty() {
        r#"<tr><td colspan="6" class="muted">No device.</td></tr>"#.to_owned()
    } else {
        page_
            .items
            .iter()
            .map(|d| {
                format!(
                    r#"<tr><td><a href="/console/devices/{}/{}">{}</a></td><td><span class="state {}">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    url(&d.manufacturer),
                    url(&d.serial),
                    esc(&d.device),
                    esc(&d.state),
                    esc(&d.state),
                    esc(d.cause_name.as_deref().unwrap_or("")),
                    esc(d.owner.as_deref().unwrap_or("")),
                    esc(d.supi.as_deref().unwrap_or("")),
                    esc(d.last_seen.as_deref().unwrap_or(""))
                )
            })
            .collect()
    };
    let keep = |name: &str, v: &Option<String>| {
        v.as_ref()
            .map_or(String::new(), |v| format!("&amp;{name}={}", url(v)))
    };
    let filters = format!(
        "{}{}{}{}{}{}",
        keep("q", &q.q),
        keep("state", &q.state),
        keep("manufacturer", &q.manufacturer),
        keep("owner", &q.owner),
        keep("cause", &q.cause.map(|c| c.to_string())),
        keep("limit", &q.limit.map(|n| n.to_string()))
    );
    let next = page_.next.map_or(String::new(), |n| {
        format!(
            r#"<p><a href="/console/devices?after={}{filters}">Next page</a></p>"#,
            url(&n)
        )
    });
    let states = [
        "",
        "authenticated",
        "onboarding",
        "provisioning",
        "provisioned",
        "active",
        "released",
        "refused",
        "claimed",
    ];
    let options: String = states
        .iter()
        .map(|st| {
            let sel = if q.state.as_deref().unwrap_or("") == *st {
                " selected"
            } else {
                ""
            };
            format!(
                r#"<option value="{st}"{sel}>{}</option>"#,
                if st.is_empty() { "any state" } else { st }
            )
        })
        .collect();
    page(
        Some(&caller),
        "Devices",
        &format!(
            r#"<h1>Devices</h1><form method="get" action="/console/devices" class="inline">
<label>Identity <input name="q" value="{}"></label><label>State <select name="state">{options}</select></label><button type="submit">Search</button></form>
<table class="devices"><thead><tr><th>Device</th><th>State</th><th>Last refusal</th><th>Owner</th><th>SUPI</th><th>Last seen</th></tr></thead><tbody>{rows}</tbody></table>{next}"#,
            esc(q.q.as_deref().unwrap_or(""))
        ),
    )
}

async fn device_page(
    State(s): State<AppState>,
    Session(caller): Session,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<Done>, QueryRejection>,
) -> Response {
    let Ok(Path((m, serial))) = p else {
        return error_page(Some(&caller), StatusCode::BAD_REQUEST, "Bad device.");
    };
    let id = match service::device_id(&m, &serial) {
        Ok(id) => id,
        Err(e) => return service_error(&caller, &e.into()),
    };
    let c = caller.clone();
    let detail = match s.call(move |st| service::device(st, &c, &id, 100)).await {
        Ok(d) => d.0,
        Err(e) => return service_error(&caller, &e),
    };
    let d = &detail.device;
    let field =
        |k: &str, v: Option<&str>| format!("<dt>{k}</dt><dd>{}</dd>", esc(v.unwrap_or("–")));
    let cause = d
        .cause
        .map(|c| format!("#{c} {}", d.cause_name.as_deref().unwrap_or("")));
    let facts = [
        field("State", Some(&d.state)),
        field("Last refusal", cause.as_deref()),
        field("Owner", d.owner.as_deref()),
        field("SUPI", d.supi.as_deref()),
        field("Subscription", d.subscription.as_deref()),
        field("First seen", d.first_seen.as_deref()),
        field("Last seen", d.last_seen.as_deref()),
        field("Blocked", d.blocked.as_deref()),
    ]
    .concat();
    let base = format!(
        "/console/devices/{}/{}",
        url(&d.manufacturer),
        url(&d.serial)
    );
    let actions = match caller {
        Caller::Operator => {
            let block = if d.blocked.is_some() {
                format!(
                    r#"<form method="post" action="{base}/unblock"><button type="submit">Unblock</button></form>"#
                )
            } else {
                format!(
                    r#"<form method="post" action="{base}/block" class="inline"><input name="reason" required placeholder="reason (stolen, RMA…)"><button type="submit" class="danger">Block</button></form>"#
                )
            };
            format!(
                r#"<section class="actions"><h2>Operator</h2>{block}
<form method="post" action="{base}/release" class="inline"><input name="reason" required placeholder="reason (factory reset…)"><button type="submit">Release for re-provisioning</button></form></section>"#
            )
        }
        Caller::Owner(_) => String::new(),
    };
    // The banner's words are the console's own: a link cannot put
    // its text on a device's page.
    let done = q
        .ok()
        .and_then(|Query(d)| d.done)
        .and_then(|code| done_text(&code))
        .map_or(String::new(), |m| format!(r#"<p class="done">{m}</p>"#));
    let trail: String = if detail.audit.is_empty() {
        r#"<tr><td colspan="4" class="muted">No entry.</td></tr>"#.to_owned()
    } else {
        detail
            .audit
            .iter()
            .map(|a| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&a.at),
                    esc(&a.kind),
                    esc(&a
                        .cause
                        .map(|c| format!("#{c} {}", a.cause_name.as_deref().unwrap_or("")))
                        .unwrap_or_default()),
                    esc(&a.detail)
                )
            })
            .collect()
    };
    page(
        Some(&caller),
        &d.device,
        &format!(
            r#"<h1>{}</h1>{done}<dl class="facts">{facts}</dl>{actions}
<section><h2>Audit trail</h2><table class="audit"><thead><tr><th>When</th><th>What</th><th>Cause</th><th>Detail</th></tr></thead><tbody>{trail}</tbody></table></section>"#,
            esc(&d.device)
        ),
    )
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// The banner for a `done` code of the console's own redirects.
fn done_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "blocked" => "Blocked: refused from now on, deregistered if registered.",
        "already-blocked" => "Already blocked; its first reason stays.",
        "unblocked" => "Unblocked.",
        "released" => "Released: its next onboarding gets a new K.",
        "release-unchanged" => "Nothing to release (already released, or never confirmed).",
        "claimed" => "Device claimed: it is yours.",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct ReasonForm {
    reason: Option<String>,
}

async fn device_action(
    State(s): State<AppState>,
    Session(caller): Session,
    parts: Parts2,
    p: Result<Path<(String, String, String)>, PathRejection>,
    f: Result<Form<ReasonForm>, FormRejection>,
) -> Response {
    if !same_origin(&parts.headers) {
        return cross_site();
    }
    let Ok(Path((m, serial, action))) = p else {
        return error_page(Some(&caller), StatusCode::BAD_REQUEST, "Bad device.");
    };
    let id = match service::device_id(&m, &serial) {
        Ok(id) => id,
        Err(e) => return service_error(&caller, &e.into()),
    };
    let reason = f.ok().and_then(|Form(f)| f.reason).unwrap_or_default();
    let c = caller.clone();
    let result = match action.as_str() {
        "block" => s.call(move |st| service::block(st, &c, &id, &reason)).await,
        "unblock" => s.call(move |st| service::unblock(st, &c, &id)).await,
        "release" => {
            s.call(move |st| service::release(st, &c, &id, &reason))
                .await
        }
        _ => return error_page(Some(&caller), StatusCode::NOT_FOUND, "No such action."),
    };
    match result {
        Ok(o) => {
            let code = match (action.as_str(), o.changed) {
                ("block", true) => "blocked",
                ("block", false) => "already-blocked",
                ("unblock", _) => "unblocked",
                (_, true) => "released",
                (_, false) => "release-unchanged",
            };
            Redirect::to(&format!(
                "/console/devices/{}/{}?done={code}",
                url(&m),
                url(&serial)
            ))
            .into_response()
        }
        Err(e) => service_error(&caller, &e),
    }
}

#[derive(Deserialize)]
struct ClaimForm {
    claim_code: String,
}

async fn claim(
    State(s): State<AppState>,
    Session(caller): Session,
    parts: Parts2,
    f: Result<Form<ClaimForm>, FormRejection>,
) -> Response {
    if !same_origin(&parts.headers) {
        return cross_site();
    }
    let Ok(Form(f)) = f else {
        return error_page(
            Some(&caller),
            StatusCode::BAD_REQUEST,
            "Give the claim code.",
        );
    };
    let c = caller.clone();
    let req = service::ClaimRequest {
        claim_code: f.claim_code,
        owner: None,
    };
    match s.call(move |st| service::claim(st, &c, &req)).await {
        Ok(d) => Redirect::to(&format!(
            "/console/devices/{}/{}?done=claimed",
            url(&d.manufacturer),
            url(&d.serial)
        ))
        .into_response(),
        Err(crate::ApiError::Service(ServiceError::NotFound(_))) => error_page(
            Some(&caller),
            StatusCode::NOT_FOUND,
            "No device to claim with this code (mistyped, or already claimed).",
        ),
        Err(e) => service_error(&caller, &e),
    }
}

async fn credentials_page(State(s): State<AppState>, Session(caller): Session) -> Response {
    let Caller::Owner(owner) = caller.clone() else {
        return error_page(
            Some(&caller),
            StatusCode::FORBIDDEN,
            "Credentials are set by owners (nido owner credentials for the operator).",
        );
    };
    let c = caller.clone();
    let list = match s.call(move |st| service::credentials(st, &c, &owner)).await {
        Ok(l) => l.0,
        Err(e) => return service_error(&caller, &e),
    };
    credentials_form(&caller, &list, None)
}

fn credentials_form(
    caller: &Caller,
    list: &[service::CredentialView],
    done: Option<&str>,
) -> Response {
    let rows: String = if list.is_empty() {
        r#"<tr><td colspan="3" class="muted">None set.</td></tr>"#.to_owned()
    } else {
        list.iter()
            .map(|c| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.kind),
                    esc(&c.uri),
                    esc(&c.identity)
                )
            })
            .collect()
    };
    let done = done.map_or(String::new(), |d| {
        format!(r#"<p class="done">{}</p>"#, esc(d))
    });
    page(
        Some(caller),
        "Credentials",
        &format!(
            r#"<h1>Third-party credentials</h1>{done}<p>Delivered to your devices with their subscription, sealed to each device. Secrets are write-only: they are never shown again.</p>
<table><thead><tr><th>Kind</th><th>Server</th><th>Identity</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Set LwM2M credentials</h2><form method="post" action="/console/credentials" class="stack">
<label>Server URI <input name="server_uri" required placeholder="coaps://lwm2m.example:5684"></label>
<label>PSK identity <input name="psk_identity" required></label>
<label>PSK (hex) <input type="password" name="psk_hex" required autocomplete="off"></label>
<button type="submit">Save</button></form>"#
        ),
    )
}

#[derive(Deserialize)]
struct Lwm2mForm {
    server_uri: String,
    psk_identity: String,
    psk_hex: String,
}

async fn set_credentials(
    State(s): State<AppState>,
    Session(caller): Session,
    parts: Parts2,
    f: Result<Form<Lwm2mForm>, FormRejection>,
) -> Response {
    if !same_origin(&parts.headers) {
        return cross_site();
    }
    let Caller::Owner(owner) = caller.clone() else {
        return error_page(Some(&caller), StatusCode::FORBIDDEN, "Owners only.");
    };
    let Ok(Form(f)) = f else {
        return error_page(
            Some(&caller),
            StatusCode::BAD_REQUEST,
            "Fill in every field.",
        );
    };
    let req = service::CredentialsRequest {
        lwm2m: Some(service::Lwm2mRequest {
            server_uri: f.server_uri,
            psk_identity: f.psk_identity,
            psk_hex: f.psk_hex,
        }),
        mqtt: None,
    };
    let c = caller.clone();
    match s
        .call(move |st| service::set_credentials(st, &c, &owner, &req))
        .await
    {
        Ok(list) => credentials_form(&caller, &list.0, Some("Saved.")),
        Err(e) => service_error(&caller, &e),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/console/devices", get(devices_page))
        .route("/console/devices/{manufacturer}/{serial}", get(device_page))
        .route(
            "/console/devices/{manufacturer}/{serial}/{action}",
            post(device_action),
        )
        .route("/console/claim", post(claim))
        .route(
            "/console/credentials",
            get(credentials_page).post(set_credentials),
        )
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_urls() {
        assert_eq!(
            esc(r#"<a href="x">'&"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(url("ACME/SN 1?&"), "ACME%2FSN%201%3F%26");
    }

    #[test]
    fn forms_must_come_from_this_origin() {
        let mut h = HeaderMap::new();
        assert!(!same_origin(&h), "no Origin, no Sec-Fetch-Site");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
