#!/usr/bin/env bash
# Soak test of the fallback data plane (not run in CI).
#
#   bench/soak.sh                 # 10 minutes
#   bench/soak.sh -d 2m -w 4      # duration, valid clients
#   bench/soak.sh -g 10           # flat RSS: end at most 10% above mid-run
#
# Builds certplane, makes a PKI with `certplane pki`, starts
# `certplane proxy --certs --config` (standalone: control plane embedded)
# in front of two `certplane backend`s, then runs bench/soak: continuous
# requests from valid clients while the server certificate rotates every
# second and the CRL gains a newly revoked client every 10 seconds. It
# prints the valid clients' failures and latency, every revoked client's
# verdict, and the proxy's RSS at start, middle and end. It exits 1 on any
# failed valid request, any served revoked client, or an RSS that is not
# flat (the end more than 20% above mid-run, the first half being warm-up).
# The last line is the verdict:
#   soak: PASS valid=N failed=0 revocations=N revoked_probes=N revoked_admitted=0 rotations=N rss_start=.. rss_mid=.. rss_end=.. growth=..%
set -euo pipefail

duration=10m
workers=4
rss_growth=20
while getopts "d:w:g:" opt; do
	case "$opt" in
	d) duration="$OPTARG" ;;
	w) workers="$OPTARG" ;;
	g) rss_growth="$OPTARG" ;;
	*) echo "usage: $0 [-d DURATION] [-w WORKERS] [-g RSS_GROWTH_PERCENT]" >&2; exit 2 ;;
	esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "$repo"
go build -o "$work/certplane" ./cmd/certplane
go build -o "$work/soak" ./bench/soak
cp="$work/certplane"

certs="$work/certs" config="$work/config"
mkdir -p "$certs/trust/clients" "$config" "$work/clients"
"$cp" pki ca --out "$work/ca" --name "soak root CA" >/dev/null
"$cp" pki server --ca "$work/ca" --dns localhost --ip 127.0.0.1 --out "$certs/server/default" >/dev/null
cp "$work/ca/ca.crt" "$certs/trust/clients/ca.pem"
"$cp" pki crl --ca "$work/ca" --crl-out "$certs/trust/clients/ca.crl" >/dev/null

port=$(free_port) admin=$(free_port) b1=$(free_port) b2=$(free_port)
cat >"$config/listeners.yaml" <<YAML
listeners:
  - name: https
    address: 127.0.0.1:$port
    certificates: [default]
    client_auth:
      mode: verify
      trust_store: clients
    client_cert_headers: [xfcc]
    routes:
      - {path_prefix: /, backend: demo}
backends:
  - name: demo
    endpoints: ["127.0.0.1:$b1", "127.0.0.1:$b2"]
YAML
"$cp" check --certs "$certs" --config "$config" >/dev/null

"$cp" backend --name backend-1 --listen "127.0.0.1:$b1" >/dev/null 2>&1 &
pids+=($!)
"$cp" backend --name backend-2 --listen "127.0.0.1:$b2" >/dev/null 2>&1 &
pids+=($!)
"$cp" proxy --certs "$certs" --config "$config" --admin-address "127.0.0.1:$admin" \
	--log-file "$work/connections.log" 2>"$work/proxy.log" &
proxy=$!
pids+=($proxy)

for _ in $(seq 100); do
	if curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; then break; fi
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null

echo "soak: proxy pid $proxy on 127.0.0.1:$port, admin 127.0.0.1:$admin, $duration"
status=0
"$work/soak" --certplane "$cp" --ca "$work/ca" --certs "$certs" --clients "$work/clients" \
	--addr "127.0.0.1:$port" --pid "$proxy" --duration "$duration" --workers "$workers" \
	--rss-growth "$rss_growth" | tee "$work/soak.out" || status=$?
echo "connection log: $(wc -l <"$work/connections.log") lines; proxy errors logged: $(grep -c '"level":"ERROR"' "$work/proxy.log" || true)"
# The work directory goes with the run: show what the errors were.
grep '"level":"ERROR"' "$work/proxy.log" | head -5 | cut -c1-400 | sed 's/^/  /' || true
# The verdict again, as the last line: what a CI log or docs/security.md quotes.
grep -E '^soak: (PASS|FAIL) ' "$work/soak.out" || echo "soak: FAIL (no verdict: the load client did not finish)"
exit "$status"
