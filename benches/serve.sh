#!/usr/bin/env bash
# benches/serve.sh: how many onboardings per second `nido network serve`
# finishes on this machine, driven by `nido sim`, next to the bound that the
# machine's public-key speed puts on it. See benches/README.md.
#
# Usage: benches/serve.sh [--db sqlite|postgres] [--devices N] [--rate R]
#                         [--instances N] [--pin] [--max-procedures V]
#                         [--json] [--nido PATH]
set -euo pipefail

prog=serve.sh

usage() {
    cat <<'EOF'
Usage: benches/serve.sh [--db sqlite|postgres] [--devices N] [--rate R]
                        [--instances N] [--pin] [--max-procedures V]
                        [--json] [--nido PATH]

Measures `nido network serve` driven by `nido sim` on this machine: onboardings
per second, time to active (p50, p99), the server's CPU time per onboarding, and
the bound the machine's public-key speed puts on the rate (openssl speed).

  --db sqlite|postgres  the network's database (default: sqlite). postgres
                        creates a fresh database on 127.0.0.1:5432 as user
                        postgres and drops it at the end
  --devices N           devices to onboard (default: 3000)
  --rate R              arrivals per second (default: N, all within one second)
  --instances N         serve instances of the one network (default: 1; more
                        than one needs --db postgres): nido sim keeps device i
                        with instance i mod N
  --pin                 pin instance k to core k (taskset), so that one
                        instance on one core can be set against N on N cores
  --max-procedures V    serve's admission limit (default: unlimited, to
                        measure capacity); auto (serve's own default) or a
                        number, to check a fleet arriving below capacity is
                        never refused
  --json                print one JSON object on stdout instead of text
  --nido PATH           the nido binary (default: target/release/nido of this
                        repository; build it with `cargo build --release -p nido`)
  -h, --help            this help
EOF
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

usage_error() {
    echo "$prog: $*" >&2
    echo "try: benches/serve.sh --help" >&2
    exit 2
}

# Progress goes to stderr, so that with --json stdout holds the object alone.
say() {
    echo "$prog: $*" >&2
}

db=sqlite
devices=3000
rate=
json=0
nido=
instances=1
pin=0
max_procedures=unlimited

while (($# > 0)); do
    case $1 in
        --db)
            (($# >= 2)) || usage_error "--db needs a value"
            db=$2
            shift 2
            ;;
        --devices)
            (($# >= 2)) || usage_error "--devices needs a value"
            devices=$2
            shift 2
            ;;
        --rate)
            (($# >= 2)) || usage_error "--rate needs a value"
            rate=$2
            shift 2
            ;;
        --instances)
            (($# >= 2)) || usage_error "--instances needs a value"
            instances=$2
            shift 2
            ;;
        --pin)
            pin=1
            shift
            ;;
        --max-procedures)
            (($# >= 2)) || usage_error "--max-procedures needs a value"
            max_procedures=$2
            shift 2
            ;;
        --json)
            json=1
            shift
            ;;
        --nido)
            (($# >= 2)) || usage_error "--nido needs a value"
            nido=$2
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage_error "unknown argument: $1"
            ;;
    esac
done

case $db in
    sqlite | postgres) ;;
    *) usage_error "--db: expected sqlite or postgres, got '$db'" ;;
esac
[[ $devices =~ ^[1-9][0-9]*$ ]] || usage_error "--devices: expected a positive integer, got '$devices'"
rate=${rate:-$devices}
[[ $max_procedures =~ ^(auto|unlimited|[1-9][0-9]*)$ ]] ||
    usage_error "--max-procedures: expected auto, unlimited or a positive integer, got '$max_procedures'"
[[ $instances =~ ^[1-9][0-9]*$ ]] || usage_error "--instances: expected a positive integer, got '$instances'"
if ((instances > 1)) && [[ $db != postgres ]]; then
    usage_error "--instances $instances: several instances share one PostgreSQL database; add --db postgres"
fi
if ((pin)); then
    command -v taskset >/dev/null || die "taskset not found (needed for --pin; Debian package util-linux)"
    ((instances <= $(nproc))) || usage_error "--pin: $instances instances but $(nproc) cores"
fi
[[ $rate =~ ^[0-9]+(\.[0-9]+)?$ && ! $rate =~ ^0+(\.0+)?$ ]] ||
    usage_error "--rate: expected a positive number, got '$rate'"

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
nido=${nido:-$repo_root/target/release/nido}
if [[ ! -x $nido ]]; then
    die "$nido: no such executable; build it first: (cd $repo_root && cargo build --release -p nido)"
fi
command -v openssl >/dev/null || die "openssl not found (needed for the public-key bound)"
command -v python3 >/dev/null || die "python3 not found (needed to read nido sim's JSON)"
if [[ $db == postgres ]]; then
    command -v psql >/dev/null || die "psql not found (needed for --db postgres)"
fi

# --- cleanup: stop the server, drop the database, remove the temp dir --------

work=$(mktemp -d "${TMPDIR:-/tmp}/nido-bench.XXXXXX")
server_pids=()
sim_pid=
pg_db=

stop_servers() {
    local server_pid
    for server_pid in "${server_pids[@]}"; do
        stop_server "$server_pid"
    done
    server_pids=()
}

stop_server() {
    local server_pid=$1
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 300; i++)); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "serve did not stop within 30 s of SIGTERM; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
    fi
    wait "$server_pid" 2>/dev/null || true
}

psql_admin() {
    psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -q -c "$1"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $sim_pid ]]; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    stop_servers
    if [[ -n $pg_db ]]; then
        psql_admin "DROP DATABASE IF EXISTS $pg_db" >/dev/null ||
            say "could not drop database $pg_db; drop it by hand"
    fi
    rm -rf -- "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log_tail() {
    local k
    for ((k = 1; k <= instances; k++)); do
        echo "--- last lines of serve $k's log ($1) ---" >&2
        tail -n 20 "$work/serve-$k.log" >&2 || true
    done
    echo "---" >&2
}

# --- the manufacturer and the network (README.md, "Real processes") ----------

mfr_name="Bench Sensors"
realm=dcs.bench.example
cd "$work"

say "issuing $devices device identities"
"$nido" mfr init --dir acme --name "$mfr_name" --realm "$realm" >/dev/null
"$nido" mfr issue --dir acme --count "$devices" --out factory >/dev/null
"$nido" mfr crl --dir acme --out acme.crl.pem >/dev/null
"$nido" mfr dcs-cert --dir acme --host "$realm" --out dcs >/dev/null

# Free UDP ports: bind port 0 and let the kernel choose.
free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
listens=()
for ((k = 1; k <= instances; k++)); do
    listens+=("127.0.0.1:$(free_port)")
done
listen=${listens[0]}

db_args=()
if [[ $db == postgres ]]; then
    suffix=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
    name=nido_bench_$suffix
    psql_admin "CREATE DATABASE $name" >/dev/null || die "could not create database $name on 127.0.0.1:5432 as postgres"
    pg_db=$name
    db_args=(--db "postgres://postgres@127.0.0.1:5432/$pg_db")
fi

say "creating the network ($db)"
# `nido sim` onboards to 999-99-000000000AB by default.
"$nido" network init --dir net --mcc 999 --mnc 99 --nid 000000000AB --listen "$listen" "${db_args[@]}" >/dev/null
"$nido" network trust-manufacturer --dir net --name "$mfr_name" --realm "$realm" --dcs dcs >/dev/null
"$nido" network crl-import --dir net --manufacturer "$mfr_name" --issuer factory/issuing-ca.pem acme.crl.pem >/dev/null

# --- serve -------------------------------------------------------------------

start_serve() {
    local k=$1 listen=$2 log=$work/serve-$1.log
    local -a pin_cmd=()
    local where=
    if ((pin)); then
        pin_cmd=(taskset -c "$((k - 1))")
        where=" (core $((k - 1)))"
    fi
    say "starting nido network serve $k on $listen$where"
    # NIDO_LOG unset: serve's default (info) logs the "serving" line waited for.
    env -u NIDO_LOG "${pin_cmd[@]}" "$nido" network serve --dir net --max-procedures "$max_procedures" --listen "$listen" --api off "${db_args[@]}" \
        >"$work/serve-$k.out" 2>"$log" &
    local pid=$!
    server_pids+=("$pid")
    for ((i = 0; ; i++)); do
        if grep -q 'serving' "$log" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "it exited before serving"
            die "nido network serve $k exited before serving"
        fi
        if ((i >= 600)); then
            log_tail "no \"serving\" after 60 s"
            die "nido network serve $k did not start within 60 s"
        fi
        sleep 0.1
    done
}
for ((k = 1; k <= instances; k++)); do
    start_serve "$k" "${listens[k - 1]}"
done

# --- the public-key bound ------------------------------------------------------

say "openssl speed -seconds 2 ecdsap256 ecdhx25519 (about 6 s)"
openssl speed -seconds 2 ecdsap256 ecdhx25519 >"$work/speed.txt" 2>"$work/speed.err" ||
    die "openssl speed failed: $(tail -n 3 "$work/speed.err")"
# " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  46743.9  15534.0"
read -r sign_per_s verify_per_s < <(awk '/256 bits ecdsa \(nistp256\)/ { print $(NF-1), $NF; exit }' "$work/speed.txt") ||
    true
# " 253 bits ecdh (X25519)   0.0000s  33626.8"
x25519_per_s=$(awk '/ecdh \(X25519\)/ { print $NF; exit }' "$work/speed.txt")
number='^[0-9]+(\.[0-9]+)?$'
[[ ${sign_per_s:-} =~ $number && ${verify_per_s:-} =~ $number && $x25519_per_s =~ $number ]] ||
    die "could not read the nistp256 and X25519 rates from openssl speed's output"
cores=$(nproc)

# --- the run ---------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)

# utime + stime of the servers (/proc/PID/stat fields 14 and 15), in ticks.
server_ticks() {
    local stat rest pid total=0
    for pid in "${server_pids[@]}"; do
        stat=$(<"/proc/$pid/stat")
        # Field 2 (comm) is in parentheses and may hold spaces: fields 3.. follow ") ".
        rest=${stat##*) }
        local -a f
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# "PID TICKS" lines, utime + stime, for every process of the PostgreSQL
# server the bench talks to (the children of the postmaster listening on
# 127.0.0.1:5432: the backends serving `serve`, the WAL writer, the
# checkpointer); nothing on SQLite. Read while serve still runs, so its
# backends are there.
db_ticks() {
    local stat rest pid parent
    [[ $db == postgres ]] || return 0
    parent=$(ss -Hltnp 'sport = :5432' 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
    [[ -n $parent ]] || return 0
    for pid in $parent $(pgrep -P "$parent" || true); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        local -a f
        read -r -a f <<<"$rest"
        echo "$pid $((f[11] + f[12]))"
    done
}

# A generous deadline: 10 minutes beyond the arrivals themselves.
timeout=$(python3 -c "import math, sys; print(600 + math.ceil(int(sys.argv[1]) / float(sys.argv[2])))" "$devices" "$rate")

say "nido sim: $devices devices at $rate arrivals/s (deadline ${timeout} s)"
ticks_before=$(server_ticks)
db_ticks >"$work/db.before"
# `times` (children's user and system time, second line) before and after
# give nido sim's CPU time. It runs in the background and is waited for, so
# that a signal to this script stops it at once (cleanup kills it).
times >"$work/times.before"
network_args=()
for listen in "${listens[@]}"; do
    network_args+=(--network "$listen")
done
"$nido" sim "${network_args[@]}" --factory factory --rate "$rate" --bursts 0 \
    --unprotected-t3346-min 10 --unprotected-t3346-max 60 \
    --timeout "$timeout" --json >"$work/sim.json" 2>"$work/sim.err" &
sim_pid=$!
sim_rc=0
wait "$sim_pid" || sim_rc=$?
sim_pid=
times >"$work/times.after"
for pid in "${server_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || {
        log_tail "it exited during the run"
        die "nido network serve exited during the run"
    }
done
ticks_after=$(server_ticks)
db_ticks >"$work/db.after"
stop_servers

if [[ ! -s $work/sim.json ]]; then
    echo "--- nido sim's stderr ---" >&2
    tail -n 20 "$work/sim.err" >&2 || true
    log_tail "nido sim printed no report"
    die "nido sim failed (exit $sim_rc) without a report"
fi
if ((sim_rc != 0)); then
    say "nido sim exited with $sim_rc: $(tail -n 1 "$work/sim.err")"
fi

# --- the report ---------------------------------------------------------------------

# Everything the report needs goes to python3 through the environment.
export B_SIM_JSON=$work/sim.json B_TIMES_BEFORE=$work/times.before B_TIMES_AFTER=$work/times.after B_DB=$db B_INSTANCES=$instances B_MAXPROC=$max_procedures B_PIN=$pin B_RATE=$rate B_JSON=$json \
    B_TICKS=$((ticks_after - ticks_before)) B_DB_BEFORE=$work/db.before B_DB_AFTER=$work/db.after B_CLK_TCK=$clk_tck B_CORES=$cores \
    B_SIGN=$sign_per_s B_VERIFY=$verify_per_s B_X25519=$x25519_per_s
python3 - <<'EOF'
import json, os

e = os.environ
sim = json.load(open(e["B_SIM_JSON"]))


def children_cpu_s(path):
    """User + system seconds of the shell's children: the second line of
    bash's `times`, as "1m2.345s 0m0.678s"."""
    total = 0.0
    for field in open(path).read().splitlines()[1].split():
        minutes, seconds = field.rstrip("s").split("m")
        total += int(minutes) * 60 + float(seconds)
    return total


sim_cpu_s = children_cpu_s(e["B_TIMES_AFTER"]) - children_cpu_s(e["B_TIMES_BEFORE"])

devices = int(sim["devices"])
active = int(sim["active"])
failed = int(sim["refused"]["total"])
rate = float(sim["onboardings_per_s"]) if active else 0.0
overall = sim["latency_ms"]["overall"]
server_cpu_s = int(e["B_TICKS"]) / int(e["B_CLK_TCK"])


def ticks_by_pid(path):
    return {int(p): int(t) for p, t in (line.split() for line in open(path) if line.strip())}


# Per process: one that started during the run counts whole, one that
# ended before the second reading is missed (its last ticks are unknown).
db_before, db_after = ticks_by_pid(e["B_DB_BEFORE"]), ticks_by_pid(e["B_DB_AFTER"])
db_cpu_s = (
    sum(t - db_before.get(p, 0) for p, t in db_after.items()) / int(e["B_CLK_TCK"])
    if db_after
    else None
)
sign, verify, x25519 = float(e["B_SIGN"]), float(e["B_VERIFY"]), float(e["B_X25519"])
cores = int(e["B_CORES"])
# Per onboarding the server makes 2 P-256 signatures, 6 P-256 verifications
# and 11 X25519 operations (issue #11); with every core doing only that:
bound = cores / (2 / sign + 6 / verify + 11 / x25519)

out = {
    "backend": e["B_DB"],
    "instances": int(e["B_INSTANCES"]),
    "pinned": e["B_PIN"] == "1",
    "max_procedures": e["B_MAXPROC"],
    "devices": devices,
    "arrival_rate_per_s": float(e["B_RATE"]),
    "active": active,
    "failed": failed,
    "incomplete": devices - active - failed,
    "congestion_rejects": int(sim["congestion_rejects"]),
    "elapsed_s": round(float(sim["wall_s"]), 3),
    "onboardings_per_s": round(rate, 1),
    "time_to_active_p50_ms": round(float(overall["p50"]), 1),
    "time_to_active_p99_ms": round(float(overall["p99"]), 1),
    "server_cpu_ms_per_onboarding": round(server_cpu_s * 1000 / active, 3) if active else None,
    # PostgreSQL's processes, on the same cores (null on SQLite, whose work
    # is inside serve, and when no server listens on 127.0.0.1:5432 here).
    "db_cpu_ms_per_onboarding": round(db_cpu_s * 1000 / active, 3) if active and db_cpu_s is not None else None,
    "sim_cpu_ms_per_onboarding": round(sim_cpu_s * 1000 / active, 3) if active else None,
    # NAS messages the devices sent and received per onboarding: more than
    # a clean run's means retransmissions (datagrams lost on the way).
    "nas_uplink_per_onboarding": round(float(sim["nas_per_onboarding"]["uplink_messages"]), 2),
    "nas_downlink_per_onboarding": round(float(sim["nas_per_onboarding"]["downlink_messages"]), 2),
    "cores": cores,
    "p256_sign_per_s": sign,
    "p256_verify_per_s": verify,
    "x25519_per_s": x25519,
    "bound_onboardings_per_s": round(bound, 1),
    "ratio": round(rate / bound, 3),
}
if e["B_JSON"] == "1":
    print(json.dumps(out))
else:
    def ms(v):
        return "n/a" if v is None else f"{v:.2f} ms"
    incomplete = f"  ({out['incomplete']} incomplete at the deadline)" if out["incomplete"] else ""
    servers = f"{out['instances']} nido network serve instances" if out["instances"] > 1 else "nido network serve"
    pinned = ", each pinned to one core" if out["pinned"] else ""
    print(f"""{servers} on {out['backend']}{pinned}, {cores} cores, driven by nido sim on the same machine
  max procedures        {out['max_procedures']}
  devices               {devices} (arriving at {out['arrival_rate_per_s']:g}/s)
  active                {active}
  failed                {failed}{incomplete}
  congestion rejects    {out['congestion_rejects']}
  onboardings/s         {out['onboardings_per_s']:.1f} ({active} in {out['elapsed_s']:.2f} s)
  time to active p50    {out['time_to_active_p50_ms']:.1f} ms
  time to active p99    {out['time_to_active_p99_ms']:.1f} ms
  server CPU            {ms(out['server_cpu_ms_per_onboarding'])} per onboarding (all instances)
  nido sim CPU          {ms(out['sim_cpu_ms_per_onboarding'])} per onboarding (on the same cores)
  PostgreSQL CPU        {ms(out['db_cpu_ms_per_onboarding'])} per onboarding (on the same cores)
  NAS per onboarding    {out['nas_uplink_per_onboarding']:.2f} up, {out['nas_downlink_per_onboarding']:.2f} down (more than a clean run's: retransmissions)
public-key bound (openssl speed)
  P-256 sign/s          {sign:.1f}
  P-256 verify/s        {verify:.1f}
  X25519 op/s           {x25519:.1f}
  bound                 {out['bound_onboardings_per_s']:.1f} onboardings/s = {cores} cores / (2/sign + 6/verify + 11/x25519)
  ratio                 {out['ratio']:.3f} (onboardings/s / bound)""")
EOF

# Not every device active: the numbers above are not a clean measurement.
if ! python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["active"] == d["devices"] else 1)' "$work/sim.json"; then
    log_tail "not every device ended active"
    die "not every device ended active (see the report and the serve log above)"
fi
