#!/usr/bin/env bash
# benches/api.sh: what the HTTP API costs a running onboarding wave, and how
# fast it answers during one (issue #15). Each run is a fresh network
# (SQLite) and `nido network serve --api`, with `nido sim` onboarding N
# devices at full speed; in the runs "with API" one client asks
# `GET /api/v1/devices?state=active&limit=100` --rps times a second for the
# whole wave (default 20: forty consoles refreshing every 2 s; 0: back to
# back, as fast as the API answers). Devices arrive at --rate a second
# (default 600, about 80% of what serve finishes here: all at once, a
# run now and then loses datagrams to the socket buffers and waits out
# T3510, whatever the API does). Runs alternate without/with, so machine
# noise hits both. The cost of the API is serve's CPU per onboarding
# (its API thread included), with and without the client.
# Reports onboardings/s of each, the ratio of their medians, and the API's latency
# percentiles during the waves (medians over the runs). See
# benches/README.md.
#
# Usage: benches/api.sh [--devices N] [--runs R] [--rps R] [--rate A] [--nido PATH]
set -euo pipefail

devices=4000 runs=5 rps=20 rate=600
nido="$(cd "$(dirname "$0")/.." && pwd)/target/release/nido"
while [ $# -gt 0 ]; do
    case "$1" in
        --devices) devices="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --rps) rps="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --nido) nido="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "api.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$nido" ] || { echo "api.sh: no $nido (cargo build --release -p nido)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "api.sh: python3 not installed" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }

"$nido" mfr init --dir acme --name "Bench Sensors" --realm dcs.bench.example >/dev/null
"$nido" mfr issue --dir acme --count "$devices" --out factory >/dev/null
"$nido" mfr crl --dir acme --out acme.crl.pem >/dev/null
"$nido" mfr dcs-cert --dir acme --host dcs.bench.example --out dcs >/dev/null

# One run: $1 = label (without|with), $2 = run number. Prints a JSON line.
run() {
    local label=$1 n=$2 dir="net-$1-$2"
    local listen="127.0.0.1:$(free_port SOCK_DGRAM)" api="127.0.0.1:$(free_port SOCK_STREAM)"
    "$nido" network init --dir "$dir" --listen "$listen" --nid 000000000AB >/dev/null
    "$nido" network trust-manufacturer --dir "$dir" --name "Bench Sensors" --realm dcs.bench.example --dcs dcs >/dev/null
    "$nido" network crl-import --dir "$dir" --manufacturer "Bench Sensors" --issuer factory/issuing-ca.pem acme.crl.pem >/dev/null
    local token
    token=$("$nido" network token create --dir "$dir" --role operator --label bench 2>/dev/null | tail -1)
    NIDO_LOG=warn "$nido" network serve --dir "$dir" --max-procedures unlimited --api "$api" 2>"$dir.log" &
    local serve=$!
    pids+=($serve)
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/${api%:*}/${api#*:}") 2>/dev/null && break; sleep 0.05; done
    local poller=""
    if [ "$label" = with ]; then
        python3 - "$api" "$token" "$dir.lat" "$rps" <<'PY' &
import http.client, sys, time, signal
host, port = sys.argv[1].rsplit(":", 1)
token, out, rps = sys.argv[2], sys.argv[3], float(sys.argv[4])
period = 1.0 / rps if rps > 0 else 0.0
next_at = time.perf_counter()
lat, stop = [], False
def done(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, done)
c = http.client.HTTPConnection(host, int(port), timeout=30)
while not stop:
    if period:
        next_at += period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    t = time.perf_counter()
    c.request("GET", "/api/v1/devices?state=active&limit=100", headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
    lat.append(1000 * (time.perf_counter() - t))
with open(out, "w") as f:
    f.write("\n".join(f"{x:.3f}" for x in lat))
PY
        poller=$!
    fi
    # The same start for both: serve's shards running, the client connected.
    sleep 0.5
    "$nido" sim --network "$listen" --factory factory --rate "$rate" --timeout 600 --json >"$dir.sim.json" 2>"$dir.sim.err" \
        || { echo "api.sh: nido sim failed:" >&2; tail -5 "$dir.sim.err" >&2; exit 1; }
    if [ -n "$poller" ]; then
        kill -TERM "$poller"
        wait "$poller" || { echo "api.sh: the API client failed" >&2; exit 1; }
    fi
    # serve's CPU time (user + system, clock ticks), its API thread's included.
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$serve/stat")
    kill -TERM "$serve"; wait "$serve" || true
    python3 - "$label" "$n" "$dir.sim.json" "$dir.lat" "$ticks" "$(getconf CLK_TCK)" <<'PY'
import json, os, sys
label, n, sim, lat = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3])), sys.argv[4]
cpu_s = int(sys.argv[5]) / int(sys.argv[6])
row = {"run": n, "api": label, "active": sim["active"], "onboardings_per_s": round(sim["onboardings_per_s"], 1),
       "serve_cpu_ms_per_onboarding": round(1000 * cpu_s / max(1, sim["active"]), 3)}
if os.path.exists(lat):
    xs = sorted(float(x) for x in open(lat).read().split())
    pct = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    row.update({"requests": len(xs), "latency_ms": {"p50": round(pct(0.5), 2), "p99": round(pct(0.99), 2), "max": round(xs[-1], 2)}})
print(json.dumps(row))
PY
}

echo "api.sh: $devices devices per run, $runs run(s) each without and with API load ($rps requests/s; 0: back to back), serve on SQLite ($(nproc) cores)" >&2
: >runs.jsonl
for n in $(seq "$runs"); do
    run without "$n" | tee -a runs.jsonl >&2
    run with "$n" | tee -a runs.jsonl >&2
done
python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("runs.jsonl")]
def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
# Medians: one slow run (a cold cache, a noisy neighbour) moves a mean.
without = median([r["onboardings_per_s"] for r in rows if r["api"] == "without"])
with_ = median([r["onboardings_per_s"] for r in rows if r["api"] == "with"])
cpu_without = median([r["serve_cpu_ms_per_onboarding"] for r in rows if r["api"] == "without"])
cpu_with = median([r["serve_cpu_ms_per_onboarding"] for r in rows if r["api"] == "with"])
p99 = max(r["latency_ms"]["p99"] for r in rows if r["api"] == "with")
p50 = max(r["latency_ms"]["p50"] for r in rows if r["api"] == "with")
print(json.dumps({
    "onboardings_per_s_median": {"without_api_load": round(without, 1), "with_api_load": round(with_, 1)},
    "rate_ratio_with_over_without": round(with_ / without, 3),
    "serve_cpu_ms_per_onboarding_median": {"without_api_load": cpu_without, "with_api_load": cpu_with},
    "cpu_ratio_with_over_without": round(cpu_with / cpu_without, 3),
    "api_latency_ms_during_waves": {"p50_worst_run": p50, "p99_worst_run": p99},
    "api_requests": sum(r.get("requests", 0) for r in rows),
    "runs": rows,
}, indent=1))
PY
