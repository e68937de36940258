//! Issue #15 with real processes: `nido network serve --api` answers its
//! HTTP API, OpenAPI document, metrics and web console for a fleet that
//! `nido sim` onboards, and a real browser uses the console.
//!
//! The network has [`DEVICES`] devices: owner `acme` claimed devices
//! 1..=5 and owner `globex` 6..=8 (with the CLI); device 9 is unclaimed and
//! its code is the browser's to claim as `acme`; device 3 is blocked before
//! it onboards (`nido network block`: refused at onboarding with #3) and
//! device 2 is blocked through the API once it is active (the network
//! deregisters it with #3). While the fleet onboards, the browser
//! (`tests/browser/console.py`: Playwright and Debian's Chromium) logs in
//! as the operator and watches the funnel fill, finds device 2 among the
//! refusals and reads #3 on its page, then logs in as `acme` and claims
//! device 9 with its code; its screenshots go to
//! `target/console-screenshots` (`NIDO_UPDATE_SCREENSHOT=1` also writes
//! `docs/console.png`). Then, over plain HTTP:
//!
//! - tenancy: the operator's token lists every device, an owner's only its
//!   own; another owner's device is 404 with the same body as one that
//!   does not exist; no token or a wrong one is 401;
//! - no response carries K or OPc (each subscription's, read from the
//!   store) or the PSK an owner sets (write-only);
//! - `/openapi.json` is OpenAPI 3.1.0; `/metrics` counts the devices that
//!   became active and the #3 refusals;
//! - schemathesis, driven by `/openapi.json` with the operator's token,
//!   finds no server error and no response off the document;
//! - last (the limiter is per client address, and every client here is
//!   127.0.0.1): failed authentications end in 429 with `Retry-After`.
//!
//! Tools: python3 with `playwright` and `schemathesis` (pip), and
//! `chromium` (Debian's, `/usr/bin/chromium`); `scripts/test` installs
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test fixtures

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Reaper, Scratch, eventually, json_lines, manufacturer_and_network, ok, spawn, wait_for_exit,
    wait_for_log,
};
use serde_json::Value;

const TEST: &str = "the_console_and_the_api_serve_an_onboarding_fleet";

/// The fleet.
const DEVICES: usize = 30;
/// Blocked before it onboards: refused at onboarding (#3) by the DCS's
/// certificate check, whose audit entry names the device its certificate
/// presented (unproven, so never as authenticated); the browser reads #3
/// on device 2's page.
const BLOCKED_FIRST: usize = 3;
/// Blocked through the API once active (one of acme's, among the first to
/// arrive, so the browser sees most of the fleet onboard after it):
/// deregistered (#3).
const BLOCKED_ACTIVE: usize = 2;
/// Unclaimed; the browser claims it for `acme`.
const TO_CLAIM: usize = 9;
/// The PSK `acme` sets (write-only).
const PSK_HEX: &str = "00112233445566778899aabbccddeeff";

fn serial(n: usize) -> String {
    format!("ACMESENS-{n:010}")
}

fn device(n: usize) -> String {
    format!("Acme Sensors/{}", serial(n))
}

/// The API path of device `n`.
fn device_path(n: usize) -> String {
    format!("/api/v1/devices/Acme%20Sensors/{}", serial(n))
}

fn claim_code(d: &Path, n: usize) -> String {
    common::claim_code_in(&d.join(format!("factory/labels/{}.txt", serial(n))))
}

/// A TCP port nothing listens on (now).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Says why the test does not run: one line straight to standard error
/// (which libtest does not capture), or a panic under
/// `NIDO_REQUIRE_TOOLS` (as `nido_testkit::tool` does).
fn missing(what: &str) {
    assert!(
        !nido_testkit::tools_required(),
        "{TEST}: {what} not installed, and NIDO_REQUIRE_TOOLS is set \
         (scripts/test installs it on Debian)"
    );
    let _ =
        std::io::stderr().write_all(format!("SKIPPED {TEST}: {what} not installed\n").as_bytes());
}

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A plain HTTP/1.1 client (one connection per request) that keeps every
/// body it received, to look for secrets in them at the end.
struct Client {
    addr: String,
    bodies: Vec<String>,
}

impl Client {
    fn request(&mut self, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if method != "GET" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        s.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        self.bodies.push(body.clone());
        Reply {
            status,
            headers,
            body,
        }
    }

    fn get(&mut self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, "")
    }

    /// GET that must answer 200 with JSON.
    fn get_json(&mut self, path: &str, token: &str) -> Value {
        let r = self.get(path, Some(token));
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }
}

/// A chunked body (RFC 9112 §7.1), decoded.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

/// The serials a device listing holds.
fn serials(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap().to_owned())
        .collect()
}

fn set_of(ns: impl IntoIterator<Item = usize>) -> BTreeSet<String> {
    ns.into_iter().map(serial).collect()
}

/// The value of the sample `name` (with its labels, as written) in a
/// Prometheus text exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn the_console_and_the_api_serve_an_onboarding_fleet() {
    if !nido_testkit::slow_tier(TEST) {
        return;
    }
    let Some(python) = nido_testkit::tool(TEST, "python3") else {
        return;
    };
    // `NIDO_TOOLS_MISSING` names them as nido_testkit's tools are named.
    let simulated = std::env::var("NIDO_TOOLS_MISSING").is_ok_and(|list| {
        list.split(',')
            .any(|t| matches!(t.trim(), "all" | "playwright" | "schemathesis"))
    });
    let imports = !simulated
        && Command::new(&python)
            .args(["-c", "import playwright.sync_api, schemathesis"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !imports {
        missing("python3 modules playwright and schemathesis (pip)");
        return;
    }
    // Debian's (the browser test never downloads one).
    let Some(chromium) = nido_testkit::tool(TEST, "chromium") else {
        return;
    };
    let started = Instant::now();
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let s = Scratch::new("console");
    let d = &s.0;

    // The network, its owners and their claims, a block, tokens.
    let (listen, _realm) = manufacturer_and_network(d, DEVICES);
    common::import_claims(d);
    for (id, name) in [("acme", "Acme Farms"), ("globex", "Globex Corporation")] {
        ok(
            &[
                "owner", "create", "--dir", "net", "--id", id, "--name", name,
            ],
            d,
        );
    }
    for (owner, devices) in [("acme", 1..=5), ("globex", 6..=8)] {
        for n in devices {
            common::claim(d, owner, &claim_code(d, n));
        }
    }
    ok(
        &[
            "network",
            "block",
            "--dir",
            "net",
            &device(BLOCKED_FIRST),
            "--reason",
            "stolen",
        ],
        d,
    );
    let token = |extra: &[&str]| -> String {
        let mut args = vec!["network", "token", "create", "--dir", "net"];
        args.extend_from_slice(extra);
        let out = ok(&args, d);
        out.lines().last().unwrap().trim().to_owned()
    };
    let operator = token(&["--role", "operator"]);
    let acme = token(&["--role", "owner", "--owner", "acme"]);
    let globex = token(&["--role", "owner", "--owner", "globex"]);
    assert!(operator.starts_with("nido_"), "{operator}");

    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let log = d.join("network.log");
    let _serve = Reaper(spawn(
        &["network", "serve", "--dir", "net", "--api", &addr],
        d,
        &log,
    ));
    wait_for_log(&log, "serving", Duration::from_secs(30));
    wait_for_log(&log, &format!("api={base}"), Duration::from_secs(10));
    let mut http = Client {
        addr: addr.clone(),
        bodies: Vec::new(),
    };
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    // The fleet arrives at 2 a second; each device sends 3 bursts, 2 s
    // apart, so it stays connected a while once active.
    let report_path = d.join("sim.json");
    let mut sim = Reaper(
        Command::new(env!("CARGO_BIN_EXE_nido"))
            .env("NIDO_API", "127.0.0.1:0")
            .args(["sim", "--network", &listen, "--factory", "factory"])
            .args(["--rate", "2", "--bursts", "3", "--burst-every", "2"])
            .args(["--timeout", "120", "--json"])
            .current_dir(d)
            .stdout(Stdio::from(std::fs::File::create(&report_path).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // The operator blocks device 2 through the API once it is active:
    // the network ends its registration with #3.
    // (Unclaimed, it is 404 until the network has seen it.)
    eventually(Duration::from_secs(60), || {
        let r = http.get(&device_path(BLOCKED_ACTIVE), Some(&operator));
        (r.status == 200 && r.json()["state"] == "active")
            .then_some(())
            .ok_or(r.body)
    });
    let r = http.request(
        "POST",
        &format!("{}/block", device_path(BLOCKED_ACTIVE)),
        Some(&operator),
        r#"{"reason":"stolen from the depot"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["result"], "blocked", "{}", r.body);
    // An owner may not block.
    let r = http.request(
        "POST",
        &format!("{}/block", device_path(1)),
        Some(&acme),
        r#"{"reason":"mine"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    eventually(Duration::from_secs(20), || {
        let v = http.get_json(&device_path(BLOCKED_ACTIVE), &operator);
        (v["state"] == "refused" && v["cause"] == 3)
            .then_some(())
            .ok_or(format!("{v}"))
    });
    eprintln!(
        "{} refused with #3 at {:.1} s",
        device(BLOCKED_ACTIVE),
        started.elapsed().as_secs_f64()
    );
    // The device blocked before it onboarded: the DCS refused its
    // certificate (#3), which names it though nothing was proven yet.
    eventually(Duration::from_secs(20), || {
        let v = http.get_json(&device_path(BLOCKED_FIRST), &operator);
        let refused = v["audit"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["kind"] == "refused" && e["cause"] == 3));
        (v["state"] == "refused" && v["cause"] == 3 && refused)
            .then_some(())
            .ok_or(format!("{v}"))
    });

    // The browser, while the rest of the fleet onboards.
    let screenshots = root.join("target/console-screenshots");
    let browser_log = d.join("browser.log");
    let browser_file = std::fs::File::create(&browser_log).unwrap();
    let mut browser = Reaper(
        Command::new(&python)
            .arg(root.join("tests/browser/console.py"))
            .env("NIDO_CHROMIUM", &chromium)
            .env("NIDO_URL", &base)
            .env("NIDO_OPERATOR_TOKEN", &operator)
            .env("NIDO_OWNER_TOKEN", &acme)
            .env("NIDO_OWNER", "acme")
            .env("NIDO_CLAIM_CODE", claim_code(d, TO_CLAIM))
            .env("NIDO_REFUSED", device(BLOCKED_ACTIVE))
            .env("NIDO_ACTIVE", (DEVICES - 2).to_string())
            .env("SCREENSHOTS", &screenshots)
            .stdout(Stdio::from(browser_file.try_clone().unwrap()))
            .stderr(Stdio::from(browser_file))
            .spawn()
            .unwrap(),
    );
    let browser_output = || std::fs::read_to_string(&browser_log).unwrap_or_default();

    let status = wait_for_exit(&mut sim.0, Duration::from_secs(150), || {
        std::fs::read_to_string(d.join("sim.log")).unwrap_or_default()
    });
    let report_text = std::fs::read_to_string(&report_path).unwrap();
    assert!(status.success(), "nido sim: {status}\n{report_text}");
    let report: Value = serde_json::from_str(&report_text).unwrap();
    eprintln!(
        "nido sim: {} active, failures {} at {:.1} s",
        report["active"],
        report["failures"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report["active"], DEVICES - 2, "{report:#}");
    assert_eq!(
        report["failures"],
        serde_json::json!({"reject #3": 1, "deregistered #3": 1}),
        "{report:#}"
    );
    let status = wait_for_exit(&mut browser.0, Duration::from_secs(150), browser_output);
    eprintln!("{}", browser_output());
    assert!(status.success(), "tests/browser/console.py: {status}");
    eprintln!(
        "browser done at {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
    // The claim of device 9, active by then, ended its package (issue
    // #16): the network deregisters it at once (#7) and it renews with
    // acme's credentials, without a registration of its own.
    let renewed = format!("Acme Sensors/{}", serial(TO_CLAIM));
    common::eventually(Duration::from_secs(60), || {
        let subs = json_lines(&ok(
            &["network", "subscriptions", "--dir", "net", "--json"],
            d,
        ));
        subs.iter()
            .find(|s| {
                s["device"] == renewed.as_str() && s["owner"] == "acme" && s["state"] == "active"
            })
            .map(|_| ())
            .ok_or_else(|| format!("{renewed} not renewed yet"))
    });

    // Tenancy. Device 9 is acme's now (the browser claimed it).
    let all = http.get_json("/api/v1/devices?limit=1000", &operator);
    assert_eq!(serials(&all), set_of(1..=DEVICES), "{all}");
    let mine = http.get_json("/api/v1/devices?limit=1000", &acme);
    assert_eq!(serials(&mine), set_of([1, 2, 3, 4, 5, TO_CLAIM]), "{mine}");
    let theirs = http.get_json("/api/v1/devices?limit=1000", &globex);
    assert_eq!(serials(&theirs), set_of(6..=8), "{theirs}");
    let none = http.get_json("/api/v1/devices?owner=globex", &acme);
    assert_eq!(serials(&none), BTreeSet::new(), "{none}");
    let own = http.get_json(&device_path(1), &acme);
    assert_eq!(own["owner"], "acme", "{own}");
    // The owner sees its device refused, not the operator's reason.
    let own = http.get_json(&device_path(BLOCKED_ACTIVE), &acme);
    assert_eq!(own["cause"], 3, "{own}");
    assert_eq!(own["blocked"], Value::Null, "{own}");
    let seen = http.get_json(&device_path(BLOCKED_ACTIVE), &operator);
    assert_eq!(seen["blocked"], "stolen from the depot", "{seen}");
    let other = http.get(&device_path(6), Some(&acme));
    let nowhere = http.get(&device_path(9999), Some(&acme));
    assert_eq!(other.status, 404, "{}", other.body);
    assert_eq!(nowhere.status, 404, "{}", nowhere.body);
    assert_eq!(
        other.body, nowhere.body,
        "another owner's device is told apart"
    );
    for token in [None, Some("nido_not-a-token")] {
        let r = http.get("/api/v1/devices", token);
        assert_eq!(r.status, 401, "{token:?}: {}", r.body);
        assert!(r.header("www-authenticate").is_some(), "{token:?}");
    }

    // Subscriptions: no key material, by name or by value.
    let subs = http.get_json("/api/v1/subscriptions?limit=1000", &operator);
    let subs = subs["items"].as_array().unwrap().clone();
    let cli = json_lines(&ok(
        &["network", "subscriptions", "--dir", "net", "--json"],
        d,
    ));
    assert_eq!(subs.len(), DEVICES - 1, "all but the device refused first");
    assert_eq!(subs.len(), cli.len());
    for sub in subs.iter().chain(&cli) {
        for key in sub.as_object().unwrap().keys() {
            let k = key.to_ascii_lowercase();
            assert!(
                !(k == "k" || k.contains("opc") || k.contains("key") || k.contains("secret")),
                "a subscription field {key:?}: {sub}"
            );
        }
    }
    let own_subs = http.get_json("/api/v1/subscriptions?limit=1000", &acme);
    assert!(
        own_subs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["owner"] == "acme"),
        "{own_subs}"
    );

    // The owner's credentials: the PSK goes in and never comes back.
    let creds = r#"{"lwm2m":{"server_uri":"coaps://x.example:5684","psk_identity":"acme","psk_hex":"00112233445566778899aabbccddeeff"}}"#;
    let r = http.request("PUT", "/api/v1/owners/acme/credentials", Some(&acme), creds);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("coaps://x.example:5684"), "{}", r.body);
    let r = http.get("/api/v1/owners/acme/credentials", Some(&acme));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("coaps://x.example:5684"), "{}", r.body);
    let r = http.get("/api/v1/owners/globex/credentials", Some(&acme));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http.request(
        "PUT",
        "/api/v1/owners/globex/credentials",
        Some(&acme),
        creds,
    );
    assert_eq!(r.status, 404, "{}", r.body);

    // The OpenAPI document and the metrics.
    let doc = http.get("/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    assert!(doc["paths"]["/api/v1/devices"].is_object(), "{doc}");
    let metrics = http.get("/metrics", None);
    assert_eq!(metrics.status, 200);
    let metrics = metrics.body;
    // Device 2 became active before it was blocked; device 9 twice (its
    // renewal after the claim).
    assert_eq!(
        sample(&metrics, r#"nido_onboarding_phase_total{phase="active"}"#),
        Some(DEVICES as f64),
        "{metrics}"
    );
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with(r#"nido_refusals_total{cause="3","#))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(refused, 2.0, "{metrics}");

    // No answer so far held a K, an OPc or the PSK (hex, either case).
    let store = common::open_network_store(d, None);
    let mut secrets = vec![PSK_HEX.to_owned()];
    for sub in &cli {
        let supi = nido_sec::Supi::parse(sub["supi"].as_str().unwrap()).unwrap();
        let stored = nido_net::Store::subscription_by_supi(&store, &supi)
            .unwrap()
            .unwrap();
        secrets.push(hex::encode(stored.k.expose()));
        secrets.push(hex::encode(stored.opc.expose()));
    }
    drop(store);
    assert_eq!(secrets.len(), 1 + 2 * cli.len());
    let cli_text = ok(&["network", "subscriptions", "--dir", "net", "--json"], d);
    for body in http.bodies.iter().chain([&cli_text]) {
        let body = body.to_ascii_lowercase();
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "a secret in {body}");
        }
    }
    eprintln!(
        "{} answers checked at {:.1} s",
        http.bodies.len(),
        started.elapsed().as_secs_f64()
    );

    // schemathesis, from the OpenAPI document, as the operator: no server
    // error, every answer as documented. (It may block, release or
    // unblock devices: everything above is checked already.)
    let st_started = Instant::now();
    let st = Command::new(&python)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{base}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {operator}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance,negative_data_rejection",
        ])
        // One worker: with two, Hypothesis (6.170) now and then fails
        // inside itself ("AST constructor recursion depth mismatch").
        .args(["--max-examples", "50", "--workers", "1"])
        .args(["--request-timeout", "10"])
        .arg("--report=junit")
        .arg(format!(
            "--report-dir={}",
            screenshots.join("schemathesis").display()
        ))
        .current_dir(d)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let st_out = format!(
        "{}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
    eprintln!(
        "schemathesis ({:.1} s):\n{st_out}",
        st_started.elapsed().as_secs_f64()
    );
    assert!(st.status.success(), "schemathesis: {}\n{st_out}", st.status);

    // Last: failed authentications from one address are limited. The
    // limiter allows 10 at once, then one every 6 s.
    let mut limited = None;
    for i in 1..=12 {
        let r = http.get(
            "/api/v1/me",
            Some("nido_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        );
        match r.status {
            401 => {}
            429 => {
                limited = Some((i, r));
                break;
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    let (i, r) = limited.expect("12 failed authentications, none refused with 429");
    let retry: u64 = r
        .header("retry-after")
        .expect("429 without Retry-After")
        .parse()
        .unwrap();
    assert!((1..=6).contains(&retry), "Retry-After: {retry}");
    eprintln!(
        "429 at failure {i} (Retry-After {retry} s); {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
