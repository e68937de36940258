#!/usr/bin/env bash
# benches/dcs.sh: server CPU per full EAP-TLS 1.3 authentication over RADIUS,
# `nido dcs serve` against FreeRADIUS 3.2 on this machine, under one load
# generator (`nido bench radius`), with the same manufacturer, devices and DCS
# certificate. See benches/README.md.
#
# Usage: benches/dcs.sh [--devices N] [--concurrency N] [--seconds S] [--nido PATH]
set -euo pipefail

devices=200 concurrency=16 seconds=10
nido="$(cd "$(dirname "$0")/.." && pwd)/target/release/nido"
while [ $# -gt 0 ]; do
    case "$1" in
        --devices) devices="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --nido) nido="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "dcs.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$nido" ] || { echo "dcs.sh: no $nido (cargo build --release -p nido)" >&2; exit 2; }
command -v freeradius >/dev/null || { echo "dcs.sh: FreeRADIUS not installed (apt-get install freeradius)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
secret=bench-shared-secret-0123456789
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$nido" mfr init --dir mfr --name "Acme Sensors" --realm dcs.acme.example >/dev/null
"$nido" mfr issue --dir mfr --count "$devices" --out factory >/dev/null

# nido's DCS
"$nido" dcs init --dir dcs --mfr mfr --host dcs.acme.example >/dev/null
"$nido" dcs add-client --dir dcs --name bench --address 127.0.0.1 --secret "$secret" >/dev/null
nido_port=$(free_port)
NIDO_LOG=warn "$nido" dcs serve --dir dcs --radius "127.0.0.1:$nido_port" 2>dcs.log &
nido_pid=$!; pids+=("$nido_pid")

# FreeRADIUS: a private configuration (no file of /etc/freeradius), EAP-TLS
# 1.3 only, the same manufacturer CA and a DCS certificate of the same issuer.
"$nido" mfr dcs-cert --dir mfr --host dcs.acme.example --out frcert >/dev/null
fr_port=$(free_port)
mkdir -p fr/run fr/log
cat mfr/root.pem mfr/issuing.pem > fr/ca.pem
cp frcert/dcs.pem frcert/dcs.key fr/
echo '$INCLUDE /usr/share/freeradius/dictionary' > fr/dictionary
cat > fr/radiusd.conf <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = $work/fr/log
raddbdir = $work/fr
radacctdir = $work/fr/log
name = freeradius
confdir = $work/fr
modconfdir = $work/fr
run_dir = $work/fr/run
db_dir = $work/fr
libdir = /usr/lib/freeradius
pidfile = $work/fr/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {
	destination = stdout
	auth = no
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
	require_message_authenticator = yes
}
thread pool {
	start_servers = 4
	max_servers = 8
	min_spare_servers = 2
	max_spare_servers = 8
	max_requests_per_server = 0
	auto_limit_acct = no
}
client bench {
	ipaddr = 127.0.0.1
	secret = $secret
	require_message_authenticator = yes
}
modules {
	eap {
		default_eap_type = tls
		timer_expire = 60
		max_sessions = 65536
		tls-config tls-common {
			private_key_file = $work/fr/dcs.key
			certificate_file = $work/fr/dcs.pem
			ca_file = $work/fr/ca.pem
			tls_min_version = "1.3"
			tls_max_version = "1.3"
			cipher_list = "DEFAULT"
			ecdh_curve = ""
			cache {
				enable = no
			}
			verify {
			}
			ocsp {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $fr_port
	}
	authorize {
		eap {
			ok = return
		}
	}
	authenticate {
		eap
	}
	post-auth {
		update reply {
			User-Name := "%{TLS-Client-Cert-Common-Name}"
		}
		Post-Auth-Type REJECT {
			eap
		}
	}
}
EOF
freeradius -f -d fr -l stdout >fr.log 2>&1 &
fr_pid=$!; pids+=("$fr_pid")
for _ in $(seq 100); do grep -q "Ready to process requests" fr.log && break; sleep 0.1; done
sleep 0.5

run() { # name port pid
    "$nido" bench radius --target "127.0.0.1:$2" --secret "$secret" --factory factory \
        --concurrency "$concurrency" --seconds "$seconds" --server-pid "$3" --json
}
nido_json=$(run nido "$nido_port" "$nido_pid")
fr_json=$(run freeradius "$fr_port" "$fr_pid")
python3 - "$nido_json" "$fr_json" <<'EOF'
import json, sys
n, f = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'server':<22}{'auth/s':>10}{'server CPU ms/auth':>20}{'p50 ms':>9}{'p99 ms':>9}{'rejected':>10}")
for name, r in (("nido dcs serve", n), ("FreeRADIUS 3.2", f)):
    print(f"{name:<22}{r['authentications_per_s']:>10.0f}{r['server_cpu_ms_per_auth']:>20.3f}"
          f"{r['latency_ms']['p50']:>9.1f}{r['latency_ms']['p99']:>9.1f}{r['refused'] + r['key_mismatch'] + r['timed_out']:>10}")
ratio = n['server_cpu_ms_per_auth'] / f['server_cpu_ms_per_auth']
print(f"nido's server CPU per authentication is {ratio:.2f} of FreeRADIUS's (goal: at most 0.33)")
EOF
