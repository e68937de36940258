//! Issue #14 with real processes: devices' bursts reach their owner's MQTT
//! broker at least once, in order per device, through a broker outage and
//! a SIGKILL of `nido network serve`.
//!
//! The test starts a Mosquitto of its own (a free port, persistence on, so
//! a persistent subscriber session survives the broker's restart) and
//! `mosquitto_sub` (QoS 1, clean session off) as the owner's application:
//! an independent MQTT client checks what nido published. The operator's
//! default delivery points at the broker; `nido sim` runs [`DEVICES`]
//! devices with [`BURSTS`] bursts each (each burst's payload ends in
//! `;n=K`, its number on the device), each from idle (`--idle-after 0`):
//! in a CONTROL PLANE SERVICE REQUEST, whose SERVICE ACCEPT the network
//! sends only once the burst is durable in its outbox, and which the
//! device repeats until then. Once bursts flow the broker is
//! stopped (SIGTERM) and started again; later serve is killed (SIGKILL) and
//! started again. Then:
//!
//! - every device's bursts 1..=BURSTS arrived (nothing lost), each under
//!   its owner's topic prefix: the first [`CLAIMED`] devices belong to an
//!   owner with a delivery of its own (`acme/…`), the rest to the
//!   operator's default (`fleet/…`);
//! - each device's outbox numbers (`seq`) arrived from 1 without a gap, and
//!   their first arrivals are in increasing order (in order per device);
//! - duplicates are counted: the same `seq` again (a batch sent again after
//!   a failure: at least once) and the same burst under a new `seq` (the
//!   device sent it again when the killed serve's SERVICE ACCEPT never
//!   came); nothing else;
//! - `nido network delivery status` shows nothing pending;
//! - a command the owner published (`mosquitto_pub` to
//!   `fleet/<serial>/down`) while bursts flowed was kept by the network
//!   (`queued` on `fleet/<serial>/down/ack`), reached its device after one
//!   of its bursts (the sim's `downlinks_received`) and was reported
//!   `sent`; a command for an owner's device sent through the default
//!   broker's topics was refused as `unknown device`.
//!
//! The TLS test points the delivery at an `mqtts://` Mosquitto whose
//! certificate OpenSSL issued: under another CA nothing is delivered and
//! the status names the certificate; under the broker's CA every burst
//! arrives at a TLS `mosquitto_sub`.
//!
//! The webhook test does the same with a receiver written in Python
//! (`http.server`, `hmac`: an independent HTTP server and HMAC) that
//! answers 500 for its first seconds, then 200, and checks each body's
//! signature.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on bad fixtures

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Reaper, Scratch, eventually, json_lines, manufacturer_and_network_on, ok, spawn, wait_for_exit,
    wait_for_log,
};
use serde_json::Value;

/// The fleet.
const DEVICES: usize = 50;
/// Bursts per device.
const BURSTS: u32 = 3;

/// A TCP port nothing listens on (now).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the test's own broker on `port`, and waits until it accepts.
fn broker(d: &Path, port: u16) -> Child {
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nlog_type all\npersistence true\npersistence_location {}/\n",
            d.join("broker").display()
        ),
    )
    .unwrap();
    // Mosquitto started by root runs as user mosquitto: its directory must
    // be writable by it, or the subscriber's session dies with a restart.
    std::fs::create_dir_all(d.join("broker")).unwrap();
    std::fs::set_permissions(
        d.join("broker"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("mosquitto.log"))
        .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Devices 1..=CLAIMED belong to owner `acme`, whose own delivery uses the
/// topic prefix `acme`; the others are unclaimed (the operator's default,
/// prefix `fleet`).
const CLAIMED: usize = 10;

/// The device serial of device `n`.
fn serial(n: usize) -> String {
    format!("ACMESENS-{n:010}")
}

/// The topic prefix device `serial`'s data must arrive under.
fn prefix_of(serial: &str) -> &'static str {
    let n: usize = serial.trim_start_matches("ACMESENS-").parse().unwrap();
    if n <= CLAIMED { "acme" } else { "fleet" }
}

/// The (prefix, serial, rest, body) of each subscriber line.
fn lines(path: &Path) -> Vec<(String, String, String, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (topic, body) = l.split_once(' ')?;
            let mut parts = topic.splitn(3, '/');
            let (prefix, serial, rest) = (parts.next()?, parts.next()?, parts.next()?);
            Some((
                prefix.to_owned(),
                serial.to_owned(),
                rest.to_owned(),
                serde_json::from_str(body).ok()?,
            ))
        })
        .collect()
}

/// What the subscriber received: (device serial, body) per uplink; each
/// under its owner's prefix (a burst under another owner's is a failure).
fn received(path: &Path) -> Vec<(String, Value)> {
    lines(path)
        .into_iter()
        .filter(|(_, _, rest, _)| rest == "up")
        .map(|(prefix, serial, _, body)| {
            assert_eq!(
                prefix,
                prefix_of(&serial),
                "{serial}'s burst under {prefix}/"
            );
            (serial, body)
        })
        .collect()
}

/// The serials whose `down/ack` said `status`, under their owner's prefix.
fn acks(path: &Path, status: &str) -> BTreeSet<String> {
    lines(path)
        .into_iter()
        .filter(|(prefix, serial, rest, body)| {
            rest == "down/ack" && prefix == prefix_of(serial) && body["status"] == status
        })
        .map(|(_, serial, _, _)| serial)
        .collect()
}

/// Waits until `n` devices' `down/ack` said `status`.
fn wait_for_acks(path: &Path, status: &str, n: usize) {
    eventually(Duration::from_secs(60), || {
        let got = acks(path, status).len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} downlinks {status} of {n}"))
        }
    });
}

/// Waits until the subscriber holds at least `n` messages.
fn wait_for_messages(path: &Path, n: usize, within: Duration) {
    eventually(within, || {
        let got = received(path).len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} messages of {n}"))
        }
    });
}

/// Waits until `delivery status` shows nothing pending; the rows.
fn wait_for_nothing_pending(d: &Path) -> Vec<Value> {
    eventually(Duration::from_secs(30), || {
        let status = json_lines(&ok(
            &["network", "delivery", "status", "--dir", "net", "--json"],
            d,
        ));
        if status.iter().all(|s| s["pending"] == 0) {
            Ok(status)
        } else {
            Err(format!("still pending: {status:?}"))
        }
    })
}

/// The burst number on the device (`;n=K` at the end of the payload).
fn burst_number(body: &Value) -> u32 {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["data"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(data).unwrap();
    text.rsplit_once(";n=").unwrap().1.parse().unwrap()
}

#[test]
fn bursts_reach_the_owners_broker_through_a_broker_outage_and_a_killed_serve() {
    let test = "bursts_reach_the_owners_broker_through_a_broker_outage_and_a_killed_serve";
    if !nido_testkit::slow_tier(test) {
        return;
    }
    if nido_testkit::tool(test, "mosquitto").is_none()
        || nido_testkit::tool(test, "mosquitto_sub").is_none()
    {
        return;
    }
    let started = Instant::now();
    let s = Scratch::new("delivery-mqtt");
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network_on(d, DEVICES, None);
    let port = free_tcp_port();
    let mut mosquitto = Reaper(broker(d, port));
    let sub_out = d.join("sub.out");
    let _sub = Reaper(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "fleet/+/up", "-t", "fleet/+/down/ack"])
            .args(["-t", "acme/+/up", "-t", "acme/+/down/ack", "-q", "1"])
            .args(["-t", "acme/+/events"])
            .args(["-c", "-i", "nido-test-owner", "-v"])
            .stdout(Stdio::from(std::fs::File::create(&sub_out).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sub.err")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    ok(
        &[
            "network",
            "delivery",
            "set",
            "--dir",
            "net",
            "--mqtt",
            &format!("mqtt://127.0.0.1:{port}"),
            "--topic-prefix",
            "fleet",
        ],
        d,
    );

    // Owner acme claims the first devices and takes their data itself.
    common::import_claims(d);
    ok(
        &[
            "owner",
            "create",
            "--dir",
            "net",
            "--id",
            "acme",
            "--name",
            "Acme Farms",
        ],
        d,
    );
    for n in 1..=CLAIMED {
        let code = common::claim_code_in(&d.join(format!("factory/labels/{}.txt", serial(n))));
        common::claim(d, "acme", &code);
    }
    ok(
        &[
            "owner",
            "delivery",
            "--dir",
            "net",
            "--owner",
            "acme",
            "--mqtt",
            &format!("mqtt://127.0.0.1:{port}"),
            "--topic-prefix",
            "acme",
        ],
        d,
    );

    let serve_args = ["network", "serve", "--dir", "net", "--clone-window", "2"];
    let log = d.join("network.log");
    let mut serve = Reaper(spawn(&serve_args, d, &log));
    wait_for_log(&log, "serving", Duration::from_secs(30));

    let report_path = d.join("report.json");
    let mut sim = Reaper(
        Command::new(env!("CARGO_BIN_EXE_nido"))
            .env("NIDO_API", "127.0.0.1:0")
            .args(["sim", "--network", &listen, "--factory", "factory"])
            .args(["--bursts", &BURSTS.to_string(), "--burst-every", "3"])
            .args(["--timeout", "200", "--json"])
            .args([
                "--unprotected-t3346-min",
                "5",
                "--unprotected-t3346-max",
                "20",
            ])
            .args(["--t3510", "5", "--not-authorized-retry", "3"])
            .args(["--coap-timeout", "3", "--t3580", "3"])
            // Every burst from idle: a CONTROL PLANE SERVICE REQUEST that
            // the network answers once the burst is durable (an UL NAS
            // TRANSPORT while connected is acknowledged by nothing).
            .args(["--idle-after", "0"])
            .current_dir(d)
            .stdout(Stdio::from(std::fs::File::create(&report_path).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sim.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // Bursts flow: the owner sends each device a command, then the broker
    // goes away, and comes back.
    wait_for_messages(&sub_out, 15, Duration::from_secs(150));
    let publish = |topic: &str, message: &str| {
        let sent = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", message])
            .status()
            .unwrap();
        assert!(sent.success(), "mosquitto_pub");
    };
    // The default broker's side may not command an owner's device: the
    // answer is the same as for a device that does not exist.
    let stolen = serial(1);
    publish(&format!("fleet/{stolen}/down"), "cmd=not-yours");
    for n in 1..=DEVICES {
        let serial = serial(n);
        publish(
            &format!("{}/{serial}/down", prefix_of(&serial)),
            &format!("cmd={serial}"),
        );
    }
    // Kept by the network (acknowledged `queued`) before the outage.
    wait_for_acks(&sub_out, "queued", DEVICES);
    let refused: Vec<Value> = lines(&sub_out)
        .into_iter()
        .filter(|(p, s, rest, _)| p == "fleet" && *s == stolen && rest == "down/ack")
        .map(|(_, _, _, body)| body)
        .collect();
    assert_eq!(
        refused,
        [serde_json::json!({"status": "refused", "reason": "unknown device"})]
    );
    let pid = mosquitto.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    mosquitto.0.wait().unwrap();
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    mosquitto = Reaper(broker(d, port));
    eprintln!(
        "broker down {:.1} s, at {} messages",
        outage.elapsed().as_secs_f64(),
        received(&sub_out).len()
    );

    // Then serve is killed (no clean stop) and started again.
    wait_for_messages(&sub_out, 60, Duration::from_secs(150));
    serve.0.kill().unwrap();
    serve.0.wait().unwrap();
    eprintln!("serve killed at {} messages", received(&sub_out).len());
    let log2 = d.join("network-2.log");
    serve = Reaper(spawn(&serve_args, d, &log2));
    wait_for_log(&log2, "serving", Duration::from_secs(30));

    let status = wait_for_exit(&mut sim.0, Duration::from_secs(220), || {
        std::fs::read_to_string(d.join("sim.log")).unwrap_or_default()
    });
    let report_text = std::fs::read_to_string(&report_path).unwrap();
    assert!(
        status.success(),
        "nido sim: {status}\n{report_text}\n{}",
        std::fs::read_to_string(d.join("sim.log")).unwrap_or_default()
    );
    let report: Value = serde_json::from_str(&report_text).unwrap();
    assert_eq!(report["active"], DEVICES, "{report:#}");
    // Every device received its command after one of its bursts (more
    // than once only if serve died between the send and its record).
    let downlinks = report["downlinks_received"].as_u64().unwrap();
    assert!(downlinks >= DEVICES as u64, "{report:#}");
    wait_for_acks(&sub_out, "sent", DEVICES);
    eprintln!("{downlinks} downlinks received by {DEVICES} devices");

    // Everything acknowledged reaches the broker.
    let want = DEVICES * BURSTS as usize;
    let messages = eventually(Duration::from_secs(60), || {
        let messages = received(&sub_out);
        let bursts: BTreeSet<(String, u32)> = messages
            .iter()
            .map(|(serial, body)| (serial.clone(), burst_number(body)))
            .collect();
        if bursts.len() >= want {
            return Ok(messages);
        }
        Err(format!(
            "{} of {want} bursts arrived:\n{}",
            bursts.len(),
            ok(&["network", "delivery", "status", "--dir", "net"], d)
        ))
    });

    let mut by_device: BTreeMap<String, Vec<(u64, u32)>> = BTreeMap::new();
    for (serial, body) in &messages {
        assert_eq!(body["serial"], serial.as_str(), "{body}");
        assert_eq!(
            body["device"],
            format!("Acme Sensors/{serial}").as_str(),
            "{body}"
        );
        assert!(
            body["supi"].as_str().unwrap().starts_with("imsi-"),
            "{body}"
        );
        by_device
            .entry(serial.clone())
            .or_default()
            .push((body["seq"].as_u64().unwrap(), burst_number(body)));
    }
    assert_eq!(by_device.len(), DEVICES);
    let (mut same_seq, mut resent_by_device) = (0, 0);
    for (serial, got) in &by_device {
        // Every burst of the device arrived.
        let bursts: BTreeSet<u32> = got.iter().map(|&(_, n)| n).collect();
        assert_eq!(bursts, (1..=BURSTS).collect(), "{serial}: {got:?}");
        // Its outbox numbers: from 1, no gap, first arrivals in order.
        let mut first: Vec<u64> = Vec::new();
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        for &(seq, n) in got {
            match seen.get(&seq) {
                Some(&m) => {
                    assert_eq!(m, n, "{serial}: seq {seq} carried two bursts: {got:?}");
                    same_seq += 1;
                }
                None => {
                    seen.insert(seq, n);
                    first.push(seq);
                }
            }
        }
        let max = *first.iter().max().unwrap();
        assert_eq!(first, (1..=max).collect::<Vec<_>>(), "{serial}: {got:?}");
        // A seq beyond BURSTS is a burst the device sent again.
        resent_by_device += max - u64::from(BURSTS);
    }
    eprintln!(
        "{} messages for {want} bursts: {same_seq} sent again by the network (same seq), {resent_by_device} sent again by their device (new seq); {:.1} s",
        messages.len(),
        started.elapsed().as_secs_f64()
    );

    // Nothing is left pending, for either destination.
    let status = wait_for_nothing_pending(d);
    assert_eq!(status.len(), 2, "{status:?}");
    assert!(status.iter().all(|s| s["dropped"] == 0), "{status:?}");

    // Issue #16 item 1: the owner hears of a block of its device on its
    // events topic, numbered after the device's bursts.
    let blocked = serial(1);
    ok(
        &[
            "network",
            "block",
            "--dir",
            "net",
            &format!("Acme Sensors/{blocked}"),
            "--reason",
            "stolen",
        ],
        d,
    );
    let event = common::eventually(Duration::from_secs(60), || {
        lines(&sub_out)
            .into_iter()
            .find(|(prefix, serial, rest, _)| {
                prefix == "acme" && *serial == blocked && rest == "events"
            })
            .map(|(.., body)| body)
            .ok_or_else(|| "no event yet".to_owned())
    });
    assert_eq!(event["event"], "blocked", "{event}");
    assert!(
        event["reason"].as_str().unwrap().contains("stolen"),
        "{event}"
    );
    assert_eq!(event["owner"], "acme", "{event}");
    let last_burst = by_device[&blocked]
        .iter()
        .map(|&(seq, _)| seq)
        .max()
        .unwrap();
    assert!(event["seq"].as_u64().unwrap() > last_burst, "{event}");
    drop(serve);
    drop(mosquitto);
}

/// The owner's webhook: Python's http.server, answering 500 for the first
/// `fail_s` seconds after the first request, then 200; each request is
/// written to `out` with its answer and whether its signature checked.
const RECEIVER: &str = r#"
import hashlib, hmac, http.server, json, sys, time
port_file, out, secret, fail_s = sys.argv[1:5]
first = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not first:
            first.append(time.time())
        code = 500 if time.time() - first[0] < float(fail_s) else 200
        want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        sig_ok = hmac.compare_digest(self.headers.get("X-Nido-Signature", ""), want)
        with open(out, "a") as f:
            f.write(json.dumps({"code": code, "sig_ok": sig_ok,
                                "key": self.headers.get("Idempotency-Key"),
                                "body": json.loads(body)}) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os; os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

#[test]
fn bursts_reach_the_owners_webhook_through_a_failing_receiver() {
    let test = "bursts_reach_the_owners_webhook_through_a_failing_receiver";
    if !nido_testkit::slow_tier(test) {
        return;
    }
    if nido_testkit::tool(test, "python3").is_none() {
        return;
    }
    const HOOK_DEVICES: usize = 20;
    const HOOK_BURSTS: u32 = 2;
    let s = Scratch::new("delivery-webhook");
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network_on(d, HOOK_DEVICES, None);
    let port_file = d.join("hook.port");
    let out = d.join("hook.jsonl");
    let secret = "webhook-test-key";
    let _receiver = Reaper(
        Command::new("python3")
            .args(["-c", RECEIVER])
            .arg(&port_file)
            .arg(&out)
            .args([secret, "4"])
            .stderr(Stdio::from(
                std::fs::File::create(d.join("hook.err")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let port = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&port_file).map_err(|e| format!("the receiver: {e}"))
    });
    std::fs::write(d.join("hook.secret"), format!("{secret}\n")).unwrap();
    ok(
        &[
            "network",
            "delivery",
            "set",
            "--dir",
            "net",
            "--webhook",
            &format!("http://127.0.0.1:{port}/nidd"),
            "--secret-file",
            "hook.secret",
        ],
        d,
    );
    let log = d.join("network.log");
    let _serve = Reaper(spawn(
        &["network", "serve", "--dir", "net", "--clone-window", "2"],
        d,
        &log,
    ));
    wait_for_log(&log, "serving", Duration::from_secs(30));
    let sim = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(["sim", "--network", &listen, "--factory", "factory"])
        .args(["--bursts", &HOOK_BURSTS.to_string(), "--burst-every", "1"])
        .args(["--timeout", "120", "--json", "--idle-after", "0"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );

    // Every burst is accepted (200) once the receiver recovers.
    let want = HOOK_DEVICES * HOOK_BURSTS as usize;
    let records = eventually(Duration::from_secs(90), || {
        let records = json_lines(&std::fs::read_to_string(&out).unwrap_or_default());
        let accepted: BTreeSet<(String, u32)> = records
            .iter()
            .filter(|r| r["code"] == 200)
            .map(|r| {
                (
                    r["body"]["nido"]["serial"].as_str().unwrap().to_owned(),
                    burst_number(&r["body"]),
                )
            })
            .collect();
        if accepted.len() >= want {
            return Ok(records);
        }
        Err(format!(
            "{} of {want} bursts accepted:\n{}",
            accepted.len(),
            ok(&["network", "delivery", "status", "--dir", "net"], d)
        ))
    });
    let refused = records.iter().filter(|r| r["code"] == 500).count();
    assert!(
        refused > 0,
        "the receiver never failed: the test proves nothing"
    );
    let mut accepted_seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &records {
        assert_eq!(
            r["sig_ok"], true,
            "a body whose signature did not check: {r}"
        );
        let b = &r["body"]["nido"];
        assert_eq!(
            r["key"],
            format!("{}/{}", b["device"].as_str().unwrap(), b["seq"]).as_str(),
            "{r}"
        );
        assert_eq!(r["body"]["data"], b["data"], "{r}");
        if r["code"] == 200 {
            accepted_seqs
                .entry(b["serial"].as_str().unwrap().to_owned())
                .or_default()
                .push(b["seq"].as_u64().unwrap());
        }
    }
    for (serial, seqs) in &accepted_seqs {
        let mut dedup = seqs.clone();
        dedup.dedup();
        assert!(
            dedup.windows(2).all(|w| w[0] < w[1]),
            "{serial}: accepted out of order: {seqs:?}"
        );
    }
    eprintln!(
        "{} requests for {want} bursts: {refused} answered 500, {} accepted",
        records.len(),
        records.len() - refused
    );
    wait_for_nothing_pending(d);
    // The outage and the recovery are in the audit trail, once each.
    let audit = json_lines(&ok(&["network", "audit", "--dir", "net", "--json"], d));
    let kinds: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("delivery_"))
        .collect();
    assert_eq!(kinds, ["delivery_failed", "delivery_resumed"], "{audit:?}");
    let failed = audit
        .iter()
        .find(|e| e["kind"] == "delivery_failed")
        .unwrap();
    assert!(
        failed["detail"].as_str().unwrap().contains("HTTP 500"),
        "{failed}"
    );
}

/// Runs `openssl` with `args` in `d`.
fn openssl(d: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An mqtts:// broker: with a CA it does not chain to, nothing is
/// delivered and the status says why; with the broker's CA (OpenSSL made
/// both), every burst arrives at a TLS subscriber.
#[test]
fn bursts_reach_a_tls_broker_only_through_its_ca() {
    let test = "bursts_reach_a_tls_broker_only_through_its_ca";
    if !nido_testkit::slow_tier(test) {
        return;
    }
    for tool in ["mosquitto", "mosquitto_sub", "openssl"] {
        if nido_testkit::tool(test, tool).is_none() {
            return;
        }
    }
    const TLS_DEVICES: usize = 5;
    let s = Scratch::new("delivery-tls");
    let d = &s.0;
    let (listen, _realm) = manufacturer_and_network_on(d, TLS_DEVICES, None);
    let tls = d.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509", "-days", "2", "-subj"];
        let subj = format!("/CN=nido test {ca}");
        args.push(&subj);
        args.extend(ec);
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        args.extend(["-keyout", &key, "-out", &pem]);
        openssl(&tls, &args);
    }
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&tls, &args);
    std::fs::write(
        tls.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &tls,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    // Mosquitto drops root for its own user: it must read these.
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::set_permissions(
            tls.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let port = free_tcp_port();
    std::fs::write(
        d.join("mosquitto.conf"),
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
            tls.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("mosquitto.log")).unwrap();
    let _broker = Reaper(
        Command::new("mosquitto")
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(|_| ())
            .map_err(|e| format!("mosquitto: {e}"))
    });
    let sub_out = d.join("sub.out");
    let _sub = Reaper(
        Command::new("mosquitto_sub")
            .args(["-h", "localhost", "-p", &port.to_string()])
            .arg("--cafile")
            .arg(tls.join("ca.pem"))
            .args(["-t", "tls/+/up", "-q", "1", "-v"])
            .stdout(Stdio::from(std::fs::File::create(&sub_out).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sub.err")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let url = format!("mqtts://localhost:{port}");
    let set = |ca: &str| {
        ok(
            &[
                "network",
                "delivery",
                "set",
                "--dir",
                "net",
                "--mqtt",
                &url,
                "--topic-prefix",
                "tls",
                "--tls-ca",
                ca,
            ],
            d,
        )
    };
    set("tls/other-ca.pem");
    let serve_log = d.join("network.log");
    let _serve = Reaper(spawn(&["network", "serve", "--dir", "net"], d, &serve_log));
    wait_for_log(&serve_log, "serving", Duration::from_secs(30));
    let sim = Command::new(env!("CARGO_BIN_EXE_nido"))
        .env("NIDO_API", "127.0.0.1:0")
        .args(["sim", "--network", &listen, "--factory", "factory"])
        .args([
            "--bursts",
            "1",
            "--timeout",
            "120",
            "--json",
            "--idle-after",
            "0",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );

    // The wrong CA: every burst waits, and the status says why.
    let why = eventually(Duration::from_secs(30), || {
        let status = json_lines(&ok(
            &["network", "delivery", "status", "--dir", "net", "--json"],
            d,
        ));
        match status.first() {
            Some(s) if s["pending"] == TLS_DEVICES && !s["last_error"].is_null() => {
                Ok(s["last_error"].as_str().unwrap().to_owned())
            }
            _ => Err(format!("{status:?}")),
        }
    });
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    assert_eq!(received_lines(&sub_out), 0);

    // The broker's CA: they all arrive.
    set("tls/ca.pem");
    eventually(Duration::from_secs(60), || {
        let got = received_lines(&sub_out);
        if got >= TLS_DEVICES {
            Ok(())
        } else {
            Err(format!("{got} of {TLS_DEVICES} arrived"))
        }
    });
    wait_for_nothing_pending(d);
}

/// Lines the subscriber wrote.
fn received_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}
