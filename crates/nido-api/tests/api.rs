#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures panic
//! The API and the console in process (fast tier), over a real SQLite
//! store: every endpoint answers its caller's role, an owner sees nothing
//! of another owner's (404 as for what does not exist, by id guessing
//! too), no response carries K, OPc, a PSK, a private key or a token, and
//! state changes never ride on the console's cookie alone.
//!
//! The store holds two owners (`acme`: devices S1, S2; `globex`: S3), an
//! unclaimed device S4 with a claim code, a refused device S5 (#3), and
//! subscriptions with known K and OPc, so a leak would be found by value.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nido_api::{AppState, Metrics, OpenStore, StorePool, auth, router};
use nido_net::{
    ConnectionId, DeviceId, NetworkEvent, Owner, Store, Subscription, SubscriptionState,
};
use nido_prov::ThirdPartyCredential;
use nido_sec::aka::HeSqn;
use nido_sec::milenage::Amf;
use nido_sec::{Cause, K, Opc, Supi};
use nido_store::{Kek, SqlStore};
use serde_json::Value;
use tower::ServiceExt;
use zeroize::Zeroizing;

const M: &str = "Acme Sensors";
const PSK_HEX: &str = "5ec73d91228f4a0b6ce517d3882a9f40";
const KEY_PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEsecretkeymaterial\n-----END PRIVATE KEY-----\n";

fn k(seed: u8) -> [u8; 16] {
    core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(7))
}

fn id(serial: &str) -> DeviceId {
    DeviceId::new(M, serial).unwrap()
}

struct Fixture {
    _dir: tempdir::Dir,
    app: axum::Router,
    operator: String,
    acme: String,
    globex: String,
    revoked: String,
    secrets: Vec<String>,
}

mod tempdir {
    /// A directory removed at drop.
    pub(crate) struct Dir(pub(crate) std::path::PathBuf);
    impl Dir {
        pub(crate) fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "nido-api-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A new token and its id.
fn token_with_id(store: &SqlStore, role: &str, owner: Option<&str>) -> (String, String) {
    let (t, record) = auth::new_token(role, owner.map(str::to_owned), "test", 1, None).unwrap();
    store.create_token(&record, &auth::hash(&t)).unwrap();
    (t.to_string(), record.id)
}

fn token(store: &SqlStore, role: &str, owner: Option<&str>) -> String {
    token_with_id(store, role, owner).0
}

fn fixture(name: &str) -> Fixture {
    let dir = tempdir::Dir::new(name);
    let url = format!("sqlite://{}", dir.0.join("nido.db").display());
    let kek = Kek::new([7; 32]);
    let mut s = SqlStore::open(&url, kek.clone()).unwrap();
    s.set_msin_range(100).unwrap();
    let m = nido_pki::Manufacturer::generate(M, std::time::SystemTime::now()).unwrap();
    s.put_manufacturer(M, m.root_der(), &nido_pki::Policy::for_manufacturer(&m))
        .unwrap();
    for (o, name) in [("acme", "Acme Farms"), ("globex", "Globex")] {
        s.put_owner(Owner {
            id: o.into(),
            name: name.into(),
            credentials: vec![
                ThirdPartyCredential::Lwm2m {
                    server_uri: "coaps://lwm2m.example:5684".into(),
                    psk_identity: format!("{o}-psk"),
                    psk: Zeroizing::new(hex::decode(PSK_HEX).unwrap()),
                },
                ThirdPartyCredential::Mqtt {
                    broker_uri: "mqtts://broker.example:8883".into(),
                    client_id: format!("{o}-client"),
                    client_cert_pem:
                        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                    client_key_pem: Zeroizing::new(KEY_PEM.into()),
                },
            ],
        })
        .unwrap();
    }
    let mut secrets = vec![PSK_HEX.to_owned(), "secretkeymaterial".to_owned()];
    for (i, (serial, owner)) in [
        ("S1", "acme"),
        ("S2", "acme"),
        ("S3", "globex"),
        ("S4", ""),
        ("S5", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let code = format!("CODE-{serial}");
        s.add_claimable(&id(serial), &nido_pki::bundle::claim_code_hash(&code))
            .unwrap();
        if !owner.is_empty() {
            s.claim(owner, &nido_pki::bundle::claim_code_hash(&code))
                .unwrap();
        }
        if serial == "S5" {
            continue;
        }
        let seed = 0x40 + i as u8;
        secrets.push(hex::encode(k(seed)));
        secrets.push(hex::encode(k(seed ^ 0xff)));
        s.put_subscription(Subscription {
            supi: Supi::imsi(&format!("99999{:010}", i + 1)).unwrap(),
            k: K::new(k(seed)),
            opc: Opc::new(k(seed ^ 0xff)),
            amf: Amf::FIVE_G,
            sqn: HeSqn::default(),
            state: SubscriptionState::Active,
            device: id(serial),
            owner: (!owner.is_empty()).then(|| owner.to_owned()),
            package_id: [seed; 16],
            not_after_unix: None,
            suci_key_id: None,
        })
        .unwrap();
    }
    let conn = ConnectionId(9);
    let mut events = Vec::new();
    for serial in ["S1", "S2", "S3", "S4"] {
        events.push(NetworkEvent::DeviceAuthenticated {
            conn,
            device: id(serial),
        });
    }
    events.push(NetworkEvent::Refused {
        presented: None,
        conn,
        device: Some(id("S5")),
        cause: Cause::ILLEGAL_UE,
        reason: "blocked: stolen <script>".into(),
    });
    s.append_audit_batch(1_796_000_000, &events).unwrap();
    s.block(&id("S5"), "stolen").unwrap();
    let operator = token(&s, "operator", None);
    let acme = token(&s, "owner", Some("acme"));
    let globex = token(&s, "owner", Some("globex"));
    let (revoked, revoked_id) = token_with_id(&s, "owner", Some("acme"));
    assert!(s.revoke_token(&revoked_id, 2).unwrap());
    assert_eq!(
        s.tokens()
            .unwrap()
            .iter()
            .filter(|t| t.revoked_at.is_some())
            .count(),
        1
    );
    secrets.extend([operator.clone(), acme.clone(), globex.clone()]);
    drop(s);
    let open: OpenStore =
        Arc::new(move || SqlStore::open(&url, kek.clone()).map_err(|e| e.to_string()));
    let pool = StorePool::start(&open, 2).unwrap();
    let app = router(AppState::new(pool, Arc::new(Metrics::new()), None));
    Fixture {
        _dir: dir,
        app,
        operator,
        acme,
        globex,
        revoked,
        secrets,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn send(
    f: &Fixture,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    };
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    // Secret hygiene, on every response of every test.
    for s in &f.secrets {
        assert!(
            !body.contains(s.as_str()),
            "{method} {uri} leaked a secret: {body}"
        );
    }
    assert!(!body.contains("PRIVATE KEY"), "{method} {uri}: {body}");
    Reply {
        status,
        headers,
        body,
    }
}

fn serials(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap().to_owned())
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_endpoint_wants_a_live_token() {
    let f = fixture("auth");
    rt().block_on(async {
        let endpoints = [
            ("GET", "/api/v1/me"),
            ("GET", "/api/v1/overview"),
            ("GET", "/api/v1/devices"),
            ("GET", "/api/v1/devices/Acme%20Sensors/S1"),
            ("POST", "/api/v1/devices/Acme%20Sensors/S1/block"),
            ("POST", "/api/v1/devices/Acme%20Sensors/S1/unblock"),
            ("POST", "/api/v1/devices/Acme%20Sensors/S1/release"),
            ("POST", "/api/v1/devices/Acme%20Sensors/S1/rekey"),
            ("POST", "/api/v1/devices/Acme%20Sensors/S1/downlink"),
            ("GET", "/api/v1/subscriptions"),
            ("GET", "/api/v1/audit"),
            ("GET", "/api/v1/owners"),
            ("PUT", "/api/v1/owners/acme"),
            ("GET", "/api/v1/owners/acme/credentials"),
            ("PUT", "/api/v1/owners/acme/credentials"),
            ("POST", "/api/v1/claims"),
            ("GET", "/api/v1/manufacturers"),
            ("POST", "/api/v1/manufacturers/Acme%20Sensors/crl"),
            ("GET", "/api/v1/delivery"),
        ];
        for (method, uri) in endpoints {
            for token in [
                None,
                Some(f.revoked.as_str()),
                Some("nido_AAAA"),
                Some("garbage"),
            ] {
                let r = send(&f, method, uri, token, None).await;
                // The limiter may answer 429 once the bad tokens pile up.
                assert!(
                    r.status == StatusCode::UNAUTHORIZED
                        || r.status == StatusCode::TOO_MANY_REQUESTS,
                    "{method} {uri} with {token:?}: {}",
                    r.status
                );
                if r.status == StatusCode::UNAUTHORIZED {
                    assert_eq!(
                        r.headers.get(header::WWW_AUTHENTICATE).unwrap(),
                        "Bearer realm=\"nido\""
                    );
                }
            }
        }
        // The document and the metrics are public; they carry no identity.
        let doc = send(&f, "GET", "/openapi.json", None, None).await;
        assert_eq!(doc.status, StatusCode::OK);
        let doc = doc.json();
        assert_eq!(doc["openapi"], "3.1.0");
        for (method, uri) in endpoints {
            let path = uri
                .replace("Acme%20Sensors/S1", "{manufacturer}/{serial}")
                .replace("owners/acme", "owners/{id}")
                .replace("manufacturers/Acme%20Sensors", "manufacturers/{name}");
            assert!(
                doc["paths"][&path][method.to_lowercase()].is_object(),
                "{method} {path} is not in /openapi.json"
            );
        }
    });
}

#[test]
fn failed_authentications_are_rate_limited() {
    let f = fixture("limit");
    rt().block_on(async {
        // The operator's token works once before the flood.
        let r = send(&f, "GET", "/api/v1/me", Some(&f.operator), None).await;
        assert_eq!(r.status, StatusCode::OK);
        let mut statuses = Vec::new();
        for _ in 0..12 {
            statuses.push(send(&f, "GET", "/api/v1/me", Some("nido_wrong"), None).await);
        }
        assert!(
            statuses[..10]
                .iter()
                .all(|r| r.status == StatusCode::UNAUTHORIZED)
        );
        let limited = &statuses[11];
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers.get(header::RETRY_AFTER).is_some());
        // Past the budget nothing is looked up: a token verified moments
        // ago still gets in (a proxy's clients share one address), one
        // never seen waits like any failure.
        let r = send(&f, "GET", "/api/v1/me", Some(&f.operator), None).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = send(&f, "GET", "/api/v1/me", Some(&f.acme), None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let r = send(&f, "GET", "/api/v1/me", None, None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    });
}

#[test]
fn an_owner_sees_its_own_devices_and_nothing_of_another_owner() {
    let f = fixture("tenancy");
    rt().block_on(async {
        let all = send(&f, "GET", "/api/v1/devices?limit=1000", Some(&f.operator), None).await;
        assert_eq!(all.status, StatusCode::OK);
        assert_eq!(serials(&all.json()), ["S1", "S2", "S3", "S4", "S5"]);
        let acme = send(&f, "GET", "/api/v1/devices?limit=1000", Some(&f.acme), None).await;
        assert_eq!(serials(&acme.json()), ["S1", "S2"]);
        // Asking for another owner's devices by filter: none.
        let spy = send(&f, "GET", "/api/v1/devices?owner=globex", Some(&f.acme), None).await;
        assert_eq!(serials(&spy.json()), Vec::<String>::new());
        // By id guessing: another owner's device and one that does not
        // exist answer alike.
        let theirs = send(&f, "GET", "/api/v1/devices/Acme%20Sensors/S3", Some(&f.acme), None).await;
        let nobody = send(&f, "GET", "/api/v1/devices/Acme%20Sensors/S99", Some(&f.acme), None).await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        assert_eq!((theirs.status, &theirs.body), (nobody.status, &nobody.body));
        let mine = send(&f, "GET", "/api/v1/devices/Acme%20Sensors/S1", Some(&f.acme), None).await;
        assert_eq!(mine.status, StatusCode::OK);
        assert_eq!(mine.json()["owner"], "acme");
        // Subscriptions and audit: its own only.
        let subs = send(&f, "GET", "/api/v1/subscriptions", Some(&f.globex), None).await.json();
        let devs: Vec<&str> = subs["items"].as_array().unwrap().iter().map(|s| s["serial"].as_str().unwrap()).collect();
        assert_eq!(devs, ["S3"]);
        for s in subs["items"].as_array().unwrap() {
            for key in ["k", "opc", "k_enc", "opc_enc"] {
                assert!(s.get(key).is_none(), "{key} in {s}");
            }
        }
        let audit = send(&f, "GET", "/api/v1/audit", Some(&f.globex), None).await.json();
        let named: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|e| e["device"].as_str()).collect();
        // Its device's authentication and claim, nothing of another's.
        assert_eq!(named, ["Acme Sensors/S3", "Acme Sensors/S3"]);
        let trail = send(&f, "GET", "/api/v1/audit?device=Acme%20Sensors/S1", Some(&f.globex), None).await.json();
        assert!(trail["items"].as_array().unwrap().is_empty());
        // Credentials: its own, public parts; another's is 404.
        let creds = send(&f, "GET", "/api/v1/owners/acme/credentials", Some(&f.acme), None).await;
        assert_eq!(creds.status, StatusCode::OK);
        assert_eq!(creds.json()[0]["identity"], "acme-psk");
        let other = send(&f, "GET", "/api/v1/owners/globex/credentials", Some(&f.acme), None).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);
        let put = send(
            &f,
            "PUT",
            "/api/v1/owners/globex/credentials",
            Some(&f.acme),
            Some(serde_json::json!({"lwm2m": {"server_uri": "coaps://evil.example", "psk_identity": "x", "psk_hex": "00"}})),
        )
        .await;
        assert_eq!(put.status, StatusCode::NOT_FOUND);
        // Funnel: its own devices.
        let o = send(&f, "GET", "/api/v1/overview", Some(&f.acme), None).await.json();
        assert_eq!(o["funnel"]["attached"], 2);
        let o = send(&f, "GET", "/api/v1/overview", Some(&f.operator), None).await.json();
        assert_eq!(o["funnel"]["attached"], 5);
        assert_eq!(o["funnel"]["refused"], 1);
        assert_eq!(o["refusals"][0]["cause"], 3);
    });
}

#[test]
fn operator_only_operations_refuse_owners() {
    let f = fixture("roles");
    rt().block_on(async {
        let reason = Some(serde_json::json!({"reason": "stolen"}));
        for (method, uri, body) in [
            (
                "POST",
                "/api/v1/devices/Acme%20Sensors/S1/block",
                reason.clone(),
            ),
            ("POST", "/api/v1/devices/Acme%20Sensors/S5/unblock", None),
            (
                "POST",
                "/api/v1/devices/Acme%20Sensors/S1/release",
                reason.clone(),
            ),
            (
                "POST",
                "/api/v1/devices/Acme%20Sensors/S1/rekey",
                reason.clone(),
            ),
            ("GET", "/api/v1/owners", None),
            (
                "PUT",
                "/api/v1/owners/acme",
                Some(serde_json::json!({"name": "x"})),
            ),
            ("GET", "/api/v1/manufacturers", None),
        ] {
            let r = send(&f, method, uri, Some(&f.acme), body).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {uri}: {}",
                r.body
            );
        }
        // The operator blocks, sees it, unblocks; bad input is 400 JSON.
        let b = send(
            &f,
            "POST",
            "/api/v1/devices/Acme%20Sensors/S1/block",
            Some(&f.operator),
            reason,
        )
        .await;
        assert_eq!(b.status, StatusCode::OK, "{}", b.body);
        let d = send(
            &f,
            "GET",
            "/api/v1/devices/Acme%20Sensors/S1",
            Some(&f.operator),
            None,
        )
        .await
        .json();
        assert_eq!(d["blocked"], "stolen");
        // The owner does not see the operator's block reason.
        let d = send(
            &f,
            "GET",
            "/api/v1/devices/Acme%20Sensors/S1",
            Some(&f.acme),
            None,
        )
        .await
        .json();
        assert!(d["blocked"].is_null());
        let blocked: Vec<&Value> = d["audit"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "blocked")
            .collect();
        assert_eq!(blocked.len(), 1, "{d}");
        assert_eq!(blocked[0]["detail"], "by the operator");
        let trail = send(&f, "GET", "/api/v1/audit?kind=blocked", Some(&f.acme), None).await;
        assert!(!trail.body.contains("stolen"), "{}", trail.body);
        let trail = send(
            &f,
            "GET",
            "/api/v1/audit?kind=blocked",
            Some(&f.operator),
            None,
        )
        .await;
        assert!(trail.body.contains("stolen"), "{}", trail.body);
        let u = send(
            &f,
            "POST",
            "/api/v1/devices/Acme%20Sensors/S1/unblock",
            Some(&f.operator),
            None,
        )
        .await;
        assert_eq!(u.status, StatusCode::OK);
        // The operator re-keys S1: its package ends now (listed), once.
        let rekey = |f| {
            send(
                f,
                "POST",
                "/api/v1/devices/Acme%20Sensors/S1/rekey",
                Some(&f.operator),
                Some(serde_json::json!({"reason": "key audit"})),
            )
        };
        let r = rekey(&f).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["changed"], true);
        let subs = send(&f, "GET", "/api/v1/subscriptions", Some(&f.operator), None)
            .await
            .json();
        let s1 = subs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["serial"] == "S1")
            .unwrap()
            .clone();
        assert!(s1["not_after"].is_string(), "{s1}");
        let again = rekey(&f).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
        for (uri, body) in [
            (
                "/api/v1/devices/Acme%20Sensors/S1/block",
                serde_json::json!({"reason": ""}),
            ),
            (
                "/api/v1/devices/Acme%20Sensors/S1/block",
                serde_json::json!({"why": "x"}),
            ),
            (
                "/api/v1/claims",
                serde_json::json!({"claim_code": "CODE-S4"}),
            ),
        ] {
            let r = send(&f, "POST", uri, Some(&f.operator), Some(body)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
            assert!(r.json()["error"].is_string());
        }
        let r = send(
            &f,
            "GET",
            "/api/v1/devices?limit=0",
            Some(&f.operator),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = send(
            &f,
            "GET",
            "/api/v1/devices?cause=999",
            Some(&f.operator),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.json()["error"].is_string());
        let r = send(
            &f,
            "GET",
            "/api/v1/devices/Acme%20Sensors/..%2F..",
            Some(&f.operator),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn an_owner_claims_with_the_code_and_sets_write_only_credentials() {
    let f = fixture("claim");
    rt().block_on(async {
        // Claiming for another owner is refused; a wrong code is 404.
        let r = send(&f, "POST", "/api/v1/claims", Some(&f.acme), Some(serde_json::json!({"claim_code": "CODE-S4", "owner": "globex"}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = send(&f, "POST", "/api/v1/claims", Some(&f.acme), Some(serde_json::json!({"claim_code": "WRONG"}))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = send(&f, "POST", "/api/v1/claims", Some(&f.acme), Some(serde_json::json!({"claim_code": "CODE-S4"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.json()["serial"], "S4");
        assert_eq!(r.json()["owner"], "acme");
        // Used once: globex cannot take it with the same code.
        let r = send(&f, "POST", "/api/v1/claims", Some(&f.globex), Some(serde_json::json!({"claim_code": "CODE-S4"}))).await;
        assert_ne!(r.status, StatusCode::OK);
        let acme = send(&f, "GET", "/api/v1/devices", Some(&f.acme), None).await;
        assert_eq!(serials(&acme.json()), ["S1", "S2", "S4"]);
        // Downlinks: its own devices with a subscription; durable at 202.
        let data = Some(serde_json::json!({"data": "aW50ZXJ2YWw9NjAw"}));
        let r = send(&f, "POST", "/api/v1/devices/Acme%20Sensors/S1/downlink", Some(&f.acme), data.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.json()["status"], "queued");
        let r = send(&f, "POST", "/api/v1/devices/Acme%20Sensors/S3/downlink", Some(&f.acme), data.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = send(&f, "POST", "/api/v1/devices/Acme%20Sensors/S1/downlink", Some(&f.acme), Some(serde_json::json!({"data": "!!"}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let big = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 1001]);
        let r = send(&f, "POST", "/api/v1/devices/Acme%20Sensors/S1/downlink", Some(&f.acme), Some(serde_json::json!({"data": big}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        // Credentials: the PSK goes in, never comes out.
        let psk = "00112233445566778899aabbccddeeff";
        let r = send(
            &f,
            "PUT",
            "/api/v1/owners/acme/credentials",
            Some(&f.acme),
            Some(serde_json::json!({"lwm2m": {"server_uri": "coaps://lwm2m.acme.example:5684", "psk_identity": "acme-2", "psk_hex": psk}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(!r.body.contains(psk));
        let r = send(&f, "GET", "/api/v1/owners/acme/credentials", Some(&f.acme), None).await;
        assert!(!r.body.contains(psk));
        assert_eq!(r.json()[0]["identity"], "acme-2");
        let r = send(
            &f,
            "PUT",
            "/api/v1/owners/acme/credentials",
            Some(&f.acme),
            Some(serde_json::json!({"lwm2m": {"server_uri": "javascript:alert(1)", "psk_identity": "x", "psk_hex": psk}})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn paging_walks_every_device_once() {
    let f = fixture("paging");
    rt().block_on(async {
        let mut seen = Vec::new();
        let mut uri = "/api/v1/devices?limit=2".to_owned();
        loop {
            let page = send(&f, "GET", &uri, Some(&f.operator), None).await.json();
            seen.extend(serials(&page));
            match page["next"].as_str() {
                Some(next) => {
                    uri = format!("/api/v1/devices?limit=2&after={}", next.replace(' ', "%20"))
                }
                None => break,
            }
        }
        assert_eq!(seen, ["S1", "S2", "S3", "S4", "S5"]);
        let refused = send(
            &f,
            "GET",
            "/api/v1/devices?state=refused&cause=3",
            Some(&f.operator),
            None,
        )
        .await
        .json();
        assert_eq!(serials(&refused), ["S5"]);
        assert_eq!(refused["items"][0]["cause_name"], "illegal UE");
        // LIKE wildcards are taken literally.
        let none = send(&f, "GET", "/api/v1/devices?q=%25", Some(&f.operator), None)
            .await
            .json();
        assert_eq!(serials(&none), Vec::<String>::new());
        let some = send(&f, "GET", "/api/v1/devices?q=S", Some(&f.operator), None)
            .await
            .json();
        assert_eq!(serials(&some).len(), 5);
        let mut before = None;
        let mut ids = Vec::new();
        loop {
            let uri = before.map_or("/api/v1/audit?limit=2".to_owned(), |b: String| {
                format!("/api/v1/audit?limit=2&before={b}")
            });
            let page = send(&f, "GET", &uri, Some(&f.operator), None).await.json();
            ids.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].as_i64().unwrap()),
            );
            match page["next"].as_str() {
                Some(n) => before = Some(n.to_owned()),
                None => break,
            }
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(ids, sorted, "newest first, each once");
        assert!(ids.len() >= 5, "{ids:?}");
    });
}

async fn console(
    f: &Fixture,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("nido_token={c}"));
    }
    if let Some(o) = origin {
        r = r.header(header::ORIGIN, o);
    }
    let req = match form {
        Some(body) => r
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    };
    let resp = f.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    for s in &f.secrets[..2] {
        assert!(!body.contains(s.as_str()), "{uri} leaked: {body}");
    }
    Reply {
        status,
        headers,
        body,
    }
}

#[test]
fn the_console_logs_in_with_a_token_and_refuses_cross_site_forms() {
    let f = fixture("console");
    rt().block_on(async {
        let here = Some("http://127.0.0.1:8080");
        // No session: to the login page.
        let r = console(&f, "GET", "/", None, None, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/login");
        // A login from another site is refused; from here it sets the cookie.
        let form = format!("token={}", f.operator);
        let r = console(
            &f,
            "POST",
            "/login",
            None,
            Some("http://evil.example"),
            Some(&form),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = console(&f, "POST", "/login", None, here, Some("token=nido_wrong")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = console(&f, "POST", "/login", None, here, Some(&form)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let set = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        // Pages: the funnel, the device with its refusal (escaped), CSP set.
        let r = console(&f, "GET", "/", Some(&f.operator), None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("data-funnel=\"active\""));
        assert!(
            r.headers
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let r = console(
            &f,
            "GET",
            "/console/devices/Acme%20Sensors/S5",
            Some(&f.operator),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.contains("#3 illegal UE"), "{}", r.body);
        assert!(r.body.contains("blocked: stolen &lt;script&gt;") && !r.body.contains("<script>"));
        // The cookie reads the API (GET) but never changes state.
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/devices/Acme%20Sensors/S1/block")
            .header(header::COOKIE, format!("nido_token={}", f.operator))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"reason":"csrf"}"#))
            .unwrap();
        req.headers_mut()
            .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        let resp = f.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // A console form without this origin is refused; with it, it acts.
        let r = console(
            &f,
            "POST",
            "/console/devices/Acme%20Sensors/S1/block",
            Some(&f.operator),
            None,
            Some("reason=x"),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = console(
            &f,
            "POST",
            "/console/devices/Acme%20Sensors/S1/block",
            Some(&f.operator),
            here,
            Some("reason=stolen"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // An owner cannot block from the console either.
        let r = console(
            &f,
            "POST",
            "/console/devices/Acme%20Sensors/S2/block",
            Some(&f.acme),
            here,
            Some("reason=x"),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // An owner's page of another owner's device: not found.
        let r = console(
            &f,
            "GET",
            "/console/devices/Acme%20Sensors/S3",
            Some(&f.acme),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = console(
            &f,
            "POST",
            "/console/claim",
            Some(&f.acme),
            here,
            Some("claim_code=CODE-S4"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    });
}

#[test]
fn metrics_carry_no_identity_and_count_responses() {
    let f = fixture("metrics");
    rt().block_on(async {
        send(&f, "GET", "/api/v1/devices", Some(&f.operator), None).await;
        let m = send(&f, "GET", "/metrics", None, None).await;
        assert_eq!(m.status, StatusCode::OK);
        assert!(
            m.body.contains("nido_api_responses_total{status=\"200\"}"),
            "{}",
            m.body
        );
        assert!(m.body.ends_with("# EOF\n"));
        assert!(!m.body.contains("S1") && !m.body.contains("acme"));
    });
}
