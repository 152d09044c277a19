#!/usr/bin/env bash
# bench/run.sh: certplane proxy vs nginx vs HAProxy, side by side, plus the
# control-plane benchmarks: new mTLS handshakes, HTTP/1.1 keep-alive requests
# (per-request log on, then off in all three), HTTP/2 multiplexed requests.
# One command, from the repository root or anywhere:
#
#   bash bench/run.sh
#
# Environment (all optional): ROUNDS (3), DURATION (5s), HS_WORKERS (16),
# KA_WORKERS (32), SKIP_CP=1 (skip the control-plane part), SKIP_INSTALL=1,
# PPROF=1 (certplane proxy --pprof: profile a run with
# `go tool pprof http://127.0.0.1:18102/debug/pprof/profile?seconds=5`).
# Writes bench/RESULTS.md. Takes about 10 minutes on 2 cores. Everything
# listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
HS_WORKERS=${HS_WORKERS:-16}
KA_WORKERS=${KA_WORKERS:-32}
VEGETA_VERSION=v12.13.0
# Every client connection costs a descriptor in vegeta and in each proxy.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
T=$(mktemp -d /tmp/certplane-bench.XXXXXX)
BIN=$T/bin
RES=$T/results
mkdir -p "$BIN" "$RES"
CMDLINE="bash bench/run.sh$(for v in ROUNDS DURATION HS_WORKERS KA_WORKERS SKIP_CP; do [[ -n ${!v+x} ]] && printf ' %s=%s' "$v" "${!v}"; done; true)"

PIDS=()
cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ $rc -ne 0 ]]; then
		echo "bench: failed (exit $rc); logs kept in $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# deadline SECONDS CMD...: retry CMD every 100 ms until it succeeds or time is up.
deadline() {
	local secs=$1; shift
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

# ---------------------------------------------------------------- install
install_tools() {
	local need=()
	command -v nginx >/dev/null || need+=(nginx)
	command -v haproxy >/dev/null || need+=(haproxy)
	command -v curl >/dev/null || need+=(curl)
	if ((${#need[@]})); then
		log "installing ${need[*]}"
		apt-get update -qq
		# policy-rc.d (exit 101) keeps the packages' services from starting;
		# it is only added when the system has none, and removed after.
		local policy=/usr/sbin/policy-rc.d added=0
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
		((added)) && rm -f "$policy"
	fi
	# A system nginx/haproxy started by the package (or earlier) would hold
	# CPU and memory during the measurement: stop them. Ours use their own
	# config and pid files under $T.
	if command -v service >/dev/null; then
		service nginx stop >/dev/null 2>&1 || true
		service haproxy stop >/dev/null 2>&1 || true
	fi
	local gobin
	gobin=$(go env GOPATH)/bin
	if ! go version -m "$gobin/vegeta" 2>/dev/null | grep -q "mod[[:space:]]*github.com/tsenart/vegeta/v12[[:space:]]*$VEGETA_VERSION"; then
		log "installing vegeta $VEGETA_VERSION"
		(cd "$T" && GOFLAGS= go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION")
	fi
	VEGETA=$gobin/vegeta
}

build() {
	log "building certplane and the bench tools"
	(cd "$ROOT" && go build -o "$BIN/certplane" ./cmd/certplane &&
		go build -o "$BIN/" ./bench/cmd/crlgen ./bench/cmd/pstat ./bench/cmd/report ./bench/cmd/cpbench)
}

# ---------------------------------------------------------------- PKI
# make_pki KEYTYPE: one CA, a server certificate for 127.0.0.1/localhost, client
# alice, client mallory (revoked), and a CRL of 100,000 random serials plus
# mallory's, all of KEYTYPE.
make_pki() {
	local kt=$1 d=$T/$1
	local cp="$BIN/certplane"
	log "PKI $kt: CA, server, alice, mallory (revoked) and a 100,001-entry CRL"
	"$cp" pki ca --out "$d/ca" --name "bench $kt CA" --key-type "$kt" >/dev/null
	"$cp" pki server --ca "$d/ca" --name localhost --dns localhost --ip 127.0.0.1 --out "$d/certs/server/default" --key-type "$kt" >/dev/null
	"$cp" pki client --ca "$d/ca" --name alice --out "$d/clients" --key-type "$kt" >/dev/null
	"$cp" pki client --ca "$d/ca" --name mallory --out "$d/clients" --key-type "$kt" >/dev/null
	mkdir -p "$d/certs/trust/clients"
	cp "$d/ca/ca.crt" "$d/certs/trust/clients/ca.pem"
	"$cp" pki revoke --ca "$d/ca" --cert "$d/clients/mallory.crt" --crl-out "$d/certs/trust/clients/ca.crl" >/dev/null
	cp "$d/certs/trust/clients/ca.crl" "$d/crl-1.pem" # mallory only: the control run
	"$BIN/crlgen" --ca "$d/ca" --crl-out "$d/certs/trust/clients/ca.crl" --count 100000 >/dev/null
	cp "$d/certs/trust/clients/ca.crl" "$d/crl-100001.pem"
	local n
	n=$(openssl crl -in "$d/certs/trust/clients/ca.crl" -noout -text | grep -c 'Serial Number:')
	[[ $n -eq 100001 ]] || die "$kt CRL holds $n entries, want 100001"
	cat "$d/certs/server/default/tls.crt" "$d/certs/server/default/tls.key" >"$d/haproxy-server.pem"
}

# ---------------------------------------------------------------- servers
B1=127.0.0.1:19001
B2=127.0.0.1:19002
PORT_CERTPLANE=18443
PORT_NGINX=18444
PORT_HAPROXY=18445
ADMIN=127.0.0.1:18102

start_backends() {
	"$BIN/certplane" backend --name backend-1 --listen "$B1" 2>"$T/backend-1.log" &
	PIDS+=($!)
	"$BIN/certplane" backend --name backend-2 --listen "$B2" 2>"$T/backend-2.log" &
	PIDS+=($!)
	deadline 10 curl -sf "http://$B1/healthz" || die "backend-1 did not start"
	deadline 10 curl -sf "http://$B2/healthz" || die "backend-2 did not start"
}

declare -A PID_OF

start_certplane() {
	local d=$T/$1
	mkdir -p "$d/config"
	# Same work as the peers: verify against the CA and its CRL, forward the
	# client's identity (XFCC), round robin over the two backends, log one
	# line per request (and per handshake) to a file.
	cat >"$d/config/bench.yaml" <<-EOF
		listeners:
		  - name: bench
		    address: 127.0.0.1:$PORT_CERTPLANE
		    certificates: [default]
		    http2: true
		    client_auth: {mode: verify, trust_store: clients}
		    client_cert_headers: [xfcc]
		    routes:
		      - {path_prefix: /, backend: bench}
		backends:
		  - name: bench
		    endpoints: ["$B1", "$B2"]
		    health_check: {path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
	EOF
	local args=(--certs "$d/certs" --config "$d/config" --admin-address "$ADMIN" --log-file "$d/certplane-access.log")
	echo "certplane proxy" >"$RES/${LABEL}_certplane_binary.txt"
	[[ -z ${NOLOG:-} ]] || args+=(--request-log=false)
	"$BIN/certplane" proxy "${args[@]}" ${PPROF:+--pprof} --log-level warn 2>"$d/certplane.log" &
	PID_OF[certplane]=$!
	PIDS+=($!)
	deadline 30 curl -sf "http://$ADMIN/readyz" || die "certplane proxy not ready; see $d/certplane.log"
}

start_nginx() {
	local d=$T/$1 n=$T/$1/nginx access
	mkdir -p "$n"
	access="access_log $n/access.log;"
	[[ -z ${NOLOG:-} ]] || access="access_log off;"
	cat >"$n/nginx.conf" <<-EOF
		worker_processes 2;
		daemon off;
		master_process on;
		pid $n/nginx.pid;
		error_log $n/error.log warn;
		events { worker_connections 8192; }
		http {
		  $access
		  client_body_temp_path $n/body; proxy_temp_path $n/proxy;
		  fastcgi_temp_path $n/fastcgi; uwsgi_temp_path $n/uwsgi; scgi_temp_path $n/scgi;
		  upstream backends {
		    zone backends 64k;
		    server $B1;
		    server $B2;
		    keepalive 64;
		    keepalive_requests 1000000;
		  }
		  server {
		    listen 127.0.0.1:$PORT_NGINX ssl http2;
		    ssl_certificate $d/certs/server/default/tls.crt;
		    ssl_certificate_key $d/certs/server/default/tls.key;
		    ssl_protocols TLSv1.2 TLSv1.3;
		    ssl_session_tickets off;
		    ssl_client_certificate $d/certs/trust/clients/ca.pem;
		    ssl_crl $d/certs/trust/clients/ca.crl;
		    ssl_verify_client on;
		    keepalive_requests 1000000;
		    location / {
		      proxy_pass http://backends;
		      proxy_http_version 1.1;
		      proxy_set_header Connection "";
		      proxy_set_header X-Forwarded-Client-Cert "Hash=\$ssl_client_fingerprint;Cert=\"\$ssl_client_escaped_cert\";Subject=\"\$ssl_client_s_dn\"";
		    }
		  }
		}
	EOF
	nginx -t -q -c "$n/nginx.conf" -p "$n" 2>"$n/test.log" || die "nginx config: $(cat "$n/test.log")"
	nginx -c "$n/nginx.conf" -p "$n" 2>>"$n/error.log" &
	PID_OF[nginx]=$!
	PIDS+=($!)
	deadline 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_NGINX" || die "nginx did not start; see $n/error.log"
}

start_haproxy() {
	local d=$T/$1 h=$T/$1/haproxy log="log global" httplog="option httplog"
	mkdir -p "$h"
	[[ -z ${NOLOG:-} ]] || { log="no log"; httplog=""; }
	cat >"$h/haproxy.cfg" <<-EOF
		global
		  nbthread 2
		  maxconn 8000
		  pidfile $h/haproxy.pid
		  log stdout format raw local0
		  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
		defaults
		  mode http
		  $log
		  $httplog
		  timeout connect 5s
		  timeout client 30s
		  timeout server 30s
		  timeout http-keep-alive 30s
		frontend bench
		  bind 127.0.0.1:$PORT_HAPROXY ssl crt $d/haproxy-server.pem ca-file $d/certs/trust/clients/ca.pem crl-file $d/certs/trust/clients/ca.crl verify required alpn h2,http/1.1
		  http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_sha1,hex];Cert=%[ssl_c_der,base64];Subject=\"%[ssl_c_s_dn]\""
		  default_backend bench
		backend bench
		  balance roundrobin
		  http-reuse always
		  option httpchk GET /healthz
		  server b1 $B1 check inter 1s
		  server b2 $B2 check inter 1s
	EOF
	haproxy -c -q -f "$h/haproxy.cfg" >"$h/check.log" 2>&1 || die "haproxy config: $(cat "$h/check.log")"
	haproxy -db -f "$h/haproxy.cfg" >"$h/access.log" 2>"$h/error.log" &
	PID_OF[haproxy]=$!
	PIDS+=($!)
	deadline 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_HAPROXY" || die "haproxy did not start; see $h/error.log"
}

stop_proxy() {
	local pid=${PID_OF[$1]}
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

port_of() {
	case $1 in
	certplane) echo $PORT_CERTPLANE ;;
	nginx) echo $PORT_NGINX ;;
	haproxy) echo $PORT_HAPROXY ;;
	esac
}

# ---------------------------------------------------------------- correctness
# check KEYTYPE PROXY: alice alternates between the backends; mallory
# (revoked) and a client without a certificate get no backend answer.
check() {
	local kt=$1 p=$2 d=$T/$1 url
	url=https://127.0.0.1:$(port_of "$2")/
	local c=(curl -sS --max-time 5 --cacert "$d/ca/ca.crt")
	local prev="" got i
	# certplane's health checks mark the backends healthy within a second.
	deadline 10 "${c[@]}" -f --cert "$d/clients/alice.crt" --key "$d/clients/alice.key" "$url" ||
		die "$p ($kt): alice gets no answer"
	for i in 1 2 3 4; do
		got=$("${c[@]}" --cert "$d/clients/alice.crt" --key "$d/clients/alice.key" "$url" || true)
		[[ $got == backend-1 || $got == backend-2 ]] || die "$p ($kt): alice request $i got '$got'"
		[[ $got != "$prev" ]] || die "$p ($kt): request $i went to $got again: no round robin"
		prev=$got
	done
	got=$("${c[@]}" --cert "$d/clients/mallory.crt" --key "$d/clients/mallory.key" -w ' HTTP %{http_code}' "$url" 2>&1 || true)
	[[ $got != *backend-* ]] || die "$p ($kt): revoked mallory was served: $got"
	local how_revoked=$got
	got=$("${c[@]}" -w ' HTTP %{http_code}' "$url" 2>&1 || true)
	[[ $got != *backend-* ]] || die "$p ($kt): a client without certificate was served: $got"
	local v
	v=$(curl -sv --max-time 5 --cacert "$d/ca/ca.crt" --cert "$d/clients/alice.crt" --key "$d/clients/alice.key" "$url" 2>&1 | grep -o 'SSL connection using [^ ]* / [^ ]*' | head -1)
	[[ $v == *TLSv1.3* ]] || die "$p ($kt): alice did not get TLS 1.3: $v"
	log "check $p ($kt): alternates backend-1/backend-2; revoked refused (${how_revoked:0:60}); no-cert refused (${got:0:60}); $v"
}

# ---------------------------------------------------------------- load
# attack NAME KEYTYPE PHASE URL: one vegeta run with pstat on the target's tree.
attack() {
	local name=$1 kt=$2 phase=$3 url=$4 round=$5 pid=${6:-} label=${7:-$2}
	local d=$T/$kt out=$RES/${label}_${phase}_${name}_r${round}
	local h2=false
	[[ $phase == h2 ]] && h2=true
	local args=(-rate=0 -duration="$DURATION" -http2=$h2 -timeout=10s -root-certs "$d/ca/ca.crt"
		-cert "$d/clients/alice.crt" -key "$d/clients/alice.key")
	if [[ $phase == hs ]]; then
		args+=(-keepalive=false -max-workers="$HS_WORKERS" -workers="$HS_WORKERS")
	else
		args+=(-max-workers="$KA_WORKERS" -workers="$KA_WORKERS")
	fi
	local spid="" fifo=$T/pstat.fifo
	if [[ -n $pid ]]; then
		rm -f "$fifo" && mkfifo "$fifo"
		"$BIN/pstat" -pid "$pid" <"$fifo" >"$out.pstat.json" &
		spid=$!
		exec 4>"$fifo"
	fi
	echo "GET $url" | GODEBUG=tlsmlkem=0,tlssecpmlkem=0 "$VEGETA" attack "${args[@]}" >"$out.bin"
	if [[ -n $spid ]]; then
		exec 4>&-
		wait "$spid"
	fi
	"$VEGETA" report -type=json <"$out.bin" >"$out.vegeta.json"
	rm -f "$out.bin"
	log "$label $phase $name round $round: $(grep -o '"throughput":[0-9.]*' "$out.vegeta.json") $(grep -o '"success":[0-9.]*' "$out.vegeta.json") $(cat "$out.pstat.json" 2>/dev/null | grep -o '"cpu_s":[0-9.]*' || true)"
}

# run_keytype KEYTYPE [LABEL PHASES]: start the three proxies on KEYTYPE's
# PKI, check them, and run ROUNDS rounds of PHASES (default "hs ka"). LABEL
# names the results (default KEYTYPE).
run_keytype() {
	local kt=$1 label=${2:-$1} phases=${3:-hs ka} r i p phase
	LABEL=$label
	log "=== $label: starting certplane proxy, nginx, haproxy"
	start_certplane "$kt"
	start_nginx "$kt"
	start_haproxy "$kt"
	for p in certplane nginx haproxy; do check "$kt" "$p"; done
	local order=(certplane nginx haproxy)
	for ((r = 1; r <= ROUNDS; r++)); do
		for phase in $phases; do
			# Rotate the order every round (A B C, B C A, C A B) so that no
			# proxy always runs first or last in a drifting machine.
			for ((i = 0; i < 3; i++)); do
				p=${order[$(((i + r - 1) % 3))]}
				attack "$p" "$kt" "$phase" "https://127.0.0.1:$(port_of "$p")/" "$r" "${PID_OF[$p]}" "$label"
			done
			if [[ $label == ecdsa-p256 && $phase != h2 ]]; then
				attack backend "$kt" "$phase" "http://$B1/" "$r" "" "$label"
			fi
		done
	done
	for p in certplane nginx haproxy; do
		# Lifetime peak (startup included) of each tree, read before it stops.
		"$BIN/pstat" -pid "${PID_OF[$p]}" </dev/null >"$RES/${label}_life_${p}.pstat.json"
		stop_proxy "$p"
	done
}

machine() {
	{
		echo "nproc=$(nproc)"
		echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		echo "memory=$(free -h | awk '/^Mem:/{print $2}')"
		echo "kernel=$(uname -r)"
		echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
		echo "go=$(go version | awk '{print $3}')"
		echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
		echo "haproxy=$(haproxy -v | head -1 | awk '{print $3}')"
		echo "openssl=$(openssl version | awk '{print $2}')"
		echo "vegeta=$VEGETA_VERSION"
		echo "certplane=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo '+dirty')"
		echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
	} >"$RES/machine.txt"
}

# ---------------------------------------------------------------- main
# One function, so bash has read all of it before it runs (an edit of this
# file during a run cannot derail it).
main() {
	[[ ${SKIP_INSTALL:-} == 1 ]] || install_tools
	VEGETA=${VEGETA:-$(go env GOPATH)/bin/vegeta}
	build
	machine
	make_pki ecdsa-p256
	make_pki rsa-2048
	start_backends
	run_keytype ecdsa-p256 ecdsa-p256 "hs ka h2"
	# The same keep-alive runs with the per-request log off in all three.
	NOLOG=1 run_keytype ecdsa-p256 ecdsa-p256-nolog ka
	run_keytype rsa-2048
	# Control: the same handshakes with a CRL of one entry, to show what the
	# 100,001-entry CRL costs each proxy.
	cp "$T/ecdsa-p256/crl-1.pem" "$T/ecdsa-p256/certs/trust/clients/ca.crl"
	run_keytype ecdsa-p256 ecdsa-p256-crl1 hs

	if [[ ${SKIP_CP:-} != 1 ]]; then
		log "=== control plane: propagation, scale, fan-out, revocation lookup"
		(cd "$ROOT" && go test -run '^$' -bench 'BenchmarkRevocationLookup' -benchtime=1000000x ./proxy/mtls) >"$RES/lookup.txt" 2>&1 ||
			log "BenchmarkRevocationLookup did not run: $(tail -3 "$RES/lookup.txt")"
		"$BIN/cpbench" -certplane "$BIN/certplane" -work "$T/cp" -out "$RES/cp.json" 2>"$T/cpbench.log" ||
			die "cpbench failed; see $T/cpbench.log"
	fi

	"$BIN/report" -dir "$RES" -out "$BENCH/RESULTS.md" -command "$CMDLINE" \
		-duration "$DURATION" -rounds "$ROUNDS" -hs-workers "$HS_WORKERS" -ka-workers "$KA_WORKERS"
	log "wrote $BENCH/RESULTS.md"
}

main "$@"
