#!/usr/bin/env bash
# benches/delivery.sh: devices' bursts through `nido network serve` (SQLite)
# to an MQTT broker (issue #14): bursts delivered per second, and the delay
# from a burst reaching the network to its arrival at a subscriber (p50, p99),
# with a Mosquitto of its own and mosquitto_sub as the owner's application.
# See benches/README.md.
#
# Usage: benches/delivery.sh [--devices N] [--bursts B] [--every S] [--nido PATH]
set -euo pipefail

devices=500 bursts=10 every=1
nido="$(cd "$(dirname "$0")/.." && pwd)/target/release/nido"
while [ $# -gt 0 ]; do
    case "$1" in
        --devices) devices="$2"; shift 2 ;;
        --bursts) bursts="$2"; shift 2 ;;
        --every) every="$2"; shift 2 ;;
        --nido) nido="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "delivery.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$nido" ] || { echo "delivery.sh: no $nido (cargo build --release -p nido)" >&2; exit 2; }
for tool in mosquitto mosquitto_sub python3; do
    command -v "$tool" >/dev/null || { echo "delivery.sh: $tool not installed" >&2; exit 2; }
done

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
free_port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }

mqtt_port=$(free_port SOCK_STREAM)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$mqtt_port" > mosquitto.conf
mosquitto -c mosquitto.conf >mosquitto.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && break; sleep 0.05; done
# The owner: %U is the arrival time (Unix seconds with nanoseconds).
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t 'bench/+/up' -q 1 -F '%U %p' >sub.out 2>sub.err &
pids+=($!)

"$nido" mfr init --dir acme --name "Bench Sensors" --realm dcs.bench.example >/dev/null
"$nido" mfr issue --dir acme --count "$devices" --out factory >/dev/null
"$nido" mfr crl --dir acme --out acme.crl.pem >/dev/null
"$nido" mfr dcs-cert --dir acme --host dcs.bench.example --out dcs >/dev/null
listen="127.0.0.1:$(free_port SOCK_DGRAM)"
"$nido" network init --dir net --listen "$listen" --nid 000000000AB >/dev/null
"$nido" network trust-manufacturer --dir net --name "Bench Sensors" --realm dcs.bench.example --dcs dcs >/dev/null
"$nido" network crl-import --dir net --manufacturer "Bench Sensors" --issuer factory/issuing-ca.pem acme.crl.pem >/dev/null
"$nido" network delivery set --dir net --mqtt "mqtt://127.0.0.1:$mqtt_port" --topic-prefix bench >/dev/null
NIDO_LOG=warn "$nido" network serve --dir net --max-procedures unlimited --api off 2>serve.log &
pids+=($!)
for _ in $(seq 100); do grep -q . serve.log 2>/dev/null && break; sleep 0.1; done
sleep 1

want=$((devices * bursts))
echo "delivery.sh: $devices devices x $bursts bursts (one every ${every} s), serve on SQLite, Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}')" >&2
start=$(date +%s.%N)
"$nido" sim --network "$listen" --factory factory --bursts "$bursts" --burst-every "$every" \
    --idle-after 0 --timeout 300 --json >sim.json 2>sim.err || { echo "delivery.sh: nido sim failed:" >&2; tail -5 sim.err >&2; cat sim.json >&2; exit 1; }
for _ in $(seq 300); do
    [ "$(wc -l < sub.out)" -ge "$want" ] && break
    sleep 0.1
done
python3 - "$want" "$start" <<'PY'
import json, sys
want, start = int(sys.argv[1]), float(sys.argv[2])
rows = []
for line in open("sub.out"):
    t, body = line.split(" ", 1)
    b = json.loads(body)
    rows.append((float(t), b["at_ms"] / 1000.0, b["device"], b["seq"]))
delays = sorted(1000 * (t - at) for t, at, _, _ in rows)
first = min(at for _, at, _, _ in rows)
last = max(t for t, _, _, _ in rows)
distinct = len({(d, s) for _, _, d, s in rows})
pct = lambda p: delays[min(len(delays) - 1, int(p * len(delays)))]
sim = json.load(open("sim.json"))
print(json.dumps({
    "bursts_sent": sim["burst"]["sent"], "received": len(rows), "distinct": distinct, "wanted": want,
    "delivered_per_s": round(len(rows) / (last - first), 1),
    "delay_ms": {"p50": round(pct(0.5), 1), "p99": round(pct(0.99), 1), "max": round(delays[-1], 1)},
    "span_s": round(last - first, 2),
}, indent=1))
PY
