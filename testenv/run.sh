#!/usr/bin/env bash
# Replays the cloud guides' load-balancer mTLS test against the docker compose
# environment, fallback profile (certplane serve + certplane proxy over xDS
# mTLS, two backends), and asserts each step:
#
#   1. alice's requests alternate between backend1 and backend2;
#   2. no certificate, and mallory's revoked one, are refused;
#   3. a new CRL revoking alice, copied into the volume, refuses her within 2 s
#      with no restart;
#   4. stop backend1: after the health-check window every request goes to
#      backend2 and none fails; start it: alternation returns;
#   5. restart certplane: the proxy serves throughout, then reconnects;
#   6. rotate the server certificate: new handshakes see the new serial and
#      an open keep-alive connection is not dropped.
#
# It builds the binary on this host and the FROM scratch image from it (no
# pull), prints PASS or FAIL per step, always removes its containers, network
# and volume (down -v), and exits non-zero if any step failed. With no Docker
# engine, it prints "SKIP: ..." and exits 0.
#
# Env: KEEP_LOGS=1 prints the services' logs at the end even on success.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
project=certplane-testenv-run
export CERTPLANE_IMAGE=certplane:testenv
# Random host ports (on 127.0.0.1): a run never collides with anything else.
export CERTPLANE_HTTPS_PORT=0 CERTPLANE_ADMIN_PORT=0 CERTPLANE_PROXY_ADMIN_PORT=0

if ! timeout 20 docker info >/dev/null 2>&1; then
	echo "SKIP: no docker engine answers (docker info failed); testenv not run"
	exit 0
fi
if timeout 20 docker compose version >/dev/null 2>&1; then
	dc=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 && timeout 20 docker-compose version >/dev/null 2>&1; then
	dc=(docker-compose)
else
	echo "SKIP: a docker engine answers but neither 'docker compose' nor 'docker-compose' is installed; testenv not run"
	exit 0
fi
for tool in curl openssl go; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "FAIL: $tool is required on the host"
		exit 1
	fi
done

dcp=("${dc[@]}" -p "$project" -f "$here/docker-compose.yml" --profile fallback)
compose() { "${dcp[@]}" "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/certplane-testenv.XXXXXX")
failures=0
steps=0
started=$(date +%s)

dump_logs() {
	echo "---- last logs of certplane and proxy ----"
	# Without the per-request and successful-handshake lines of the
	# connection log, which would bury the operational ones.
	timeout 30 "${dcp[@]}" logs --no-color --tail 300 certplane proxy 2>&1 |
		grep -v -e '"event":"request"' -e '"result":"ok"' | tail -n 40 | sed 's/^/    /'
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# Background request loops of step 5, if a step was interrupted.
	jobs -p | xargs -r kill 2>/dev/null
	if [ "$failures" -gt 0 ] || [ "${KEEP_LOGS:-}" = 1 ]; then
		dump_logs
	fi
	echo "---- teardown: down -v ----"
	timeout 120 "${dcp[@]}" down -v --remove-orphans --timeout 5 >"$tmp/down.log" 2>&1 || {
		echo "teardown failed:"
		sed 's/^/    /' "$tmp/down.log"
		rc=1
	}
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; failures=$((failures+1)); exit 130' INT TERM

pass() { steps=$((steps+1)); echo "PASS $*"; }
fail() { steps=$((steps+1)); failures=$((failures+1)); echo "FAIL $*"; }
now_ms() { date +%s%3N; }
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01d s' $((ms/1000)) $(( (ms%1000)/100 )); }
# Serial numbers compare as hex without leading zeros, in upper case.
norm_serial() { local s=${1#serial=}; s=$(tr 'a-f' 'A-F' <<<"$s"); echo "${s#"${s%%[!0]*}"}"; }

# ---- build, config, up --------------------------------------------------

echo "== certplane testenv: fallback profile, compose: ${dc[*]} =="
if ! "$here/build.sh" "$CERTPLANE_IMAGE" >"$tmp/build.log" 2>&1; then
	fail "build: binary or image"
	sed 's/^/    /' "$tmp/build.log"
	exit 1
fi
if ! (cd "$root" && go build -o "$tmp/keepalive" ./testenv/keepalive) >"$tmp/build.log" 2>&1; then
	fail "build: testenv/keepalive"
	sed 's/^/    /' "$tmp/build.log"
	exit 1
fi
pass "build: $CERTPLANE_IMAGE from a host binary, FROM scratch, nothing pulled"

if out=$("${dc[@]}" -p "$project" -f "$here/docker-compose.yml" --profile envoy config -q 2>&1); then
	pass "compose config: the envoy profile is accepted"
else
	fail "compose config --profile envoy: $out"
fi

# Leftovers of an interrupted run would make the one-shot pki step refuse
# its non-empty volume.
timeout 120 "${dcp[@]}" down -v --remove-orphans --timeout 5 >/dev/null 2>&1
t0=$(now_ms)
if ! timeout 180 "${dcp[@]}" up -d --no-build >"$tmp/up.log" 2>&1; then
	fail "up: compose up failed"
	sed 's/^/    /' "$tmp/up.log"
	exit 1
fi

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null; }
# wait_healthy SERVICE SECONDS
wait_healthy() {
	local id deadline=$(( $(date +%s) + $2 ))
	id=$(compose ps -q "$1")
	while [ "$(date +%s)" -lt "$deadline" ]; do
		[ "$(health "$id")" = healthy ] && return 0
		sleep 0.5
	done
	return 1
}
for s in certplane backend1 backend2 proxy; do
	if ! wait_healthy "$s" 90; then
		fail "up: $s is not healthy after 90 s"
		exit 1
	fi
done
cp_id=$(compose ps -q certplane)
proxy_id=$(compose ps -q proxy)
port=$(compose port proxy 8443 | sed 's/.*://')
admin=$(compose port certplane 18001)
proxy_admin=$(compose port proxy 18002)
pass "up: pki steps done, certplane, backend1, backend2, proxy healthy in $(secs_since "$t0"); listener on 127.0.0.1:$port"

# The clients' files, copied out of the volume (the image has no cat): alice
# and mallory from `certplane init`, and bob, issued now by the same CA, to
# stay valid after step 3 revokes alice.
run_pki() { timeout 60 "${dcp[@]}" run --rm --no-deps -T pki "$@"; }
if ! run_pki pki client --ca /data/pki --name bob --out /data/clients >"$tmp/bob.log" 2>&1 ||
	! docker cp "$cp_id:/data/clients/." "$tmp/" ||
	! docker cp "$cp_id:/data/certs/trust/clients/ca.pem" "$tmp/ca.pem"; then
	fail "setup: copy client certificates out of the volume"
	sed 's/^/    /' "$tmp/bob.log"
	exit 1
fi

# req WHO: one HTTPS request as WHO (alice, bob, mallory, or none). Sets
# REQ_RC (curl's exit status), REQ_CODE (HTTP status, 000 if none),
# REQ_BODY (the backend's name) and REQ_ERR.
req() {
	local args=(--silent --show-error --max-time 5 --cacert "$tmp/ca.pem"
		--resolve "localhost:$port:127.0.0.1" -w '\n%{http_code}')
	[ "$1" != none ] && args+=(--cert "$tmp/$1.crt" --key "$tmp/$1.key")
	local out
	local err="$tmp/curl.err.$BASHPID"
	out=$(curl "${args[@]}" "https://localhost:$port/" 2>"$err")
	REQ_RC=$?
	REQ_CODE=${out##*$'\n'}
	REQ_BODY=${out%$'\n'*}
	REQ_BODY=${REQ_BODY%$'\n'}
	REQ_ERR=$(head -c 200 "$err" | tr '\n' ' ')
}
ok() { req "$1"; [ "$REQ_RC" = 0 ] && [ "$REQ_CODE" = 200 ]; }
# refused WHO: the TLS handshake failed with an alert from the server (curl
# 35: handshake; 56: TLS 1.3 reports the client-certificate alert on the
# first read), not a connection error or an HTTP answer.
refused() {
	req "$1"
	[ "$REQ_CODE" = 000 ] && { [ "$REQ_RC" = 35 ] || [ "$REQ_RC" = 56 ]; } && grep -qi alert <<<"$REQ_ERR"
}
# alternates WHO N: N requests, all 200, strictly alternating between
# backend1 and backend2. Sets SEQ.
alternates() {
	local i prev="" n1=0 n2=0
	SEQ=""
	for ((i = 0; i < $2; i++)); do
		if ! ok "$1"; then
			SEQ+=" [curl $REQ_RC http $REQ_CODE]"
			return 1
		fi
		SEQ+=" $REQ_BODY"
		[ "$REQ_BODY" = "$prev" ] && return 1
		case $REQ_BODY in backend1) n1=$((n1+1)) ;; backend2) n2=$((n2+1)) ;; *) return 1 ;; esac
		prev=$REQ_BODY
	done
	[ $((n1 + n2)) = "$2" ] && [ $((n1 - n2)) -le 1 ] && [ $((n2 - n1)) -le 1 ]
}
# until_both WHO SECONDS: poll until both backends answered (health checks
# mark a host healthy after its first success), bounded in time.
until_both() {
	local seen1=0 seen2=0 deadline=$(( $(now_ms) + $2 * 1000 ))
	while [ "$(now_ms)" -lt "$deadline" ]; do
		if ok "$1"; then
			[ "$REQ_BODY" = backend1 ] && seen1=1
			[ "$REQ_BODY" = backend2 ] && seen2=1
			[ $seen1 = 1 ] && [ $seen2 = 1 ] && return 0
		fi
		sleep 0.1
	done
	return 1
}
started_at() { docker inspect -f '{{.State.StartedAt}} restarts={{.RestartCount}}' "$cp_id" "$proxy_id" | tr '\n' ' '; }

# ---- 1. alternation -----------------------------------------------------

if until_both alice 30 && alternates alice 10; then
	pass "1 alice: 10/10 requests answered, alternating:$SEQ"
else
	fail "1 alice: want 10 answers alternating backend1/backend2, got:$SEQ (last: curl $REQ_RC http $REQ_CODE $REQ_ERR)"
fi

# ---- 2. refusals --------------------------------------------------------

if refused none; then
	pass "2 no client certificate: refused in the handshake (curl $REQ_RC: $REQ_ERR)"
else
	fail "2 no client certificate: want a TLS alert, got curl $REQ_RC http $REQ_CODE $REQ_ERR"
fi
if refused mallory; then
	pass "2 mallory (revoked by init's CRL): refused in the handshake (curl $REQ_RC: $REQ_ERR)"
else
	fail "2 mallory: want a TLS alert, got curl $REQ_RC http $REQ_CODE $REQ_ERR"
fi

# ---- 3. CRL update ------------------------------------------------------

step3() {
	local before alice_serial t0 n=0
	before=$(started_at)
	alice_serial=$(norm_serial "$(openssl x509 -in "$tmp/alice.crt" -noout -serial)")
	# The CA (kept outside the watched certs/) signs a CRL revoking alice;
	# it is copied out, checked with openssl, and copied into the volume.
	if ! run_pki pki revoke --ca /data/pki --cert /data/clients/alice.crt \
		--crl-out /data/pki/alice-revoked.crl >"$tmp/revoke.log" 2>&1 ||
		! docker cp "$cp_id:/data/pki/alice-revoked.crl" "$tmp/new.crl" 2>>"$tmp/revoke.log"; then
		fail "3 CRL: could not sign the new CRL: $(tr '\n' ' ' <"$tmp/revoke.log")"
		return
	fi
	if ! openssl crl -in "$tmp/new.crl" -noout -text | tr -d ' :' | tr '[:lower:]' '[:upper:]' |
		grep -q "^SERIALNUMBER0*$alice_serial\$"; then
		fail "3 CRL: the new CRL does not list alice's serial $alice_serial"
		return
	fi
	ok alice || { fail "3 CRL: alice refused before the new CRL (curl $REQ_RC http $REQ_CODE)"; return; }
	t0=$(now_ms)
	docker cp "$tmp/new.crl" "$cp_id:/data/certs/trust/clients/ca.crl" || { fail "3 CRL: docker cp into the volume"; return; }
	while [ $(( $(now_ms) - t0 )) -le 2000 ] && [ $n -lt 200 ]; do
		n=$((n + 1))
		if refused alice; then
			local took
			took=$(secs_since "$t0")
			if ! ok bob; then
				fail "3 CRL: alice refused after $took, but bob too (curl $REQ_RC http $REQ_CODE $REQ_ERR)"
			elif [ "$(started_at)" != "$before" ]; then
				fail "3 CRL: alice refused after $took, but a container restarted: $before -> $(started_at)"
			else
				pass "3 CRL revoking alice copied into the volume: alice refused after $took, bob still served, no restart"
			fi
			return
		fi
		sleep 0.1
	done
	fail "3 CRL: alice still accepted 2 s after the new CRL was copied in (curl $REQ_RC http $REQ_CODE)"
}
step3

# ---- 4. backend health --------------------------------------------------

step4() {
	local t0 streak=0 deadline i bad=0 got=""
	timeout 60 "${dcp[@]}" stop --timeout 5 backend1 >/dev/null 2>&1 || { fail "4 stop backend1: compose stop failed"; return; }
	# From the moment the container is gone: the health-check window.
	t0=$(now_ms)
	# Ejected once 6 requests in a row went to backend2: with backend1
	# still in the round robin, every other one would go to it.
	deadline=$(( t0 + 30000 ))
	local window=0 window_failed=0
	while [ "$streak" -lt 6 ] && [ "$(now_ms)" -lt "$deadline" ]; do
		window=$((window + 1))
		if ok bob; then
			if [ "$REQ_BODY" = backend2 ]; then streak=$((streak + 1)); else streak=0; fi
		else
			streak=0
			window_failed=$((window_failed + 1))
		fi
		sleep 0.05
	done
	if [ "$streak" -lt 6 ]; then
		fail "4 stop backend1: not ejected within 30 s (last: curl $REQ_RC http $REQ_CODE $REQ_BODY)"
		return
	fi
	local ejected
	ejected=$(secs_since "$t0")
	for ((i = 0; i < 20; i++)); do
		if ! ok bob || [ "$REQ_BODY" != backend2 ]; then
			bad=$((bad + 1))
			got+=" [curl $REQ_RC http $REQ_CODE $REQ_BODY]"
		fi
	done
	if [ "$bad" -gt 0 ]; then
		fail "4 stop backend1: ejected after $ejected, then $bad of 20 requests failed or missed backend2:$got"
	else
		pass "4 stop backend1: ejected $ejected after it stopped ($window_failed of $window requests failed before); then 20/20 answered by backend2"
	fi
	t0=$(now_ms)
	timeout 60 "${dcp[@]}" start backend1 >/dev/null 2>&1 || { fail "4 start backend1: compose start failed"; return; }
	if until_both bob 45 && alternates bob 10; then
		pass "4 start backend1: alternation back after $(secs_since "$t0"):$SEQ"
	else
		fail "4 start backend1: no alternation within 45 s:$SEQ (last: curl $REQ_RC http $REQ_CODE $REQ_BODY)"
	fi
}
step4

# ---- 5. control plane restart ------------------------------------------

step5() {
	local loop_pid t0 total failed
	: >"$tmp/during"
	rm -f "$tmp/stop-loop"
	# At most 1200 requests or until told to stop; each request at most 5 s.
	(
		for ((i = 0; i < 1200; i++)); do
			[ -e "$tmp/stop-loop" ] && break
			req bob
			echo "$REQ_CODE $REQ_BODY" >>"$tmp/during"
			sleep 0.05
		done
	) &
	loop_pid=$!
	t0=$(now_ms)
	local restarted=1 reconnected=1
	timeout 60 "${dcp[@]}" restart --timeout 5 certplane >/dev/null 2>&1 || restarted=0
	[ "$restarted" = 1 ] && { wait_healthy certplane 60 || restarted=0; }
	# Reconnected: the restarted control plane (which starts with no
	# streams) lists the proxy's node, and the proxy says it is connected.
	# A restart publishes the admin port on a new random host port.
	admin=$(compose port certplane 18001)
	local deadline=$(( $(now_ms) + 30000 ))
	until curl -s --max-time 2 "http://$admin/status" | grep -q '"id": *"proxy"' &&
		curl -s --max-time 2 "http://$proxy_admin/status" | grep -q '"xds_connected": *true'; do
		if [ "$(now_ms)" -gt "$deadline" ]; then reconnected=0; break; fi
		sleep 0.2
	done
	local took
	took=$(secs_since "$t0")
	touch "$tmp/stop-loop"
	wait "$loop_pid"
	total=$(wc -l <"$tmp/during")
	failed=$(grep -cv '^200 backend[12]$' "$tmp/during")
	if [ "$restarted" = 0 ]; then
		fail "5 restart certplane: it did not come back healthy within 60 s"
	elif [ "$reconnected" = 0 ]; then
		fail "5 restart certplane: the proxy did not reconnect within 30 s"
	elif [ "$failed" -gt 0 ] || [ "$total" -lt 10 ]; then
		fail "5 restart certplane: $failed of $total requests during the restart failed: $(grep -v '^200 backend[12]$' "$tmp/during" | sort | uniq -c | tr '\n' ' ')"
	else
		pass "5 restart certplane: $total/$total requests served during the restart; proxy reconnected, $took after the restart began"
	fi
}
step5

# ---- 6. server certificate rotation --------------------------------------

s_client_serial() {
	timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
		-CAfile "$tmp/ca.pem" -cert "$tmp/bob.crt" -key "$tmp/bob.key" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}

step6() {
	local ka_pid old new issued t0 deadline n=0
	rm -f "$tmp/rotated"
	"$tmp/keepalive" -addr "127.0.0.1:$port" -server-name localhost -ca "$tmp/ca.pem" \
		-cert "$tmp/bob.crt" -key "$tmp/bob.key" -resume-file "$tmp/rotated" -timeout 60s \
		>"$tmp/keepalive.out" 2>&1 &
	ka_pid=$!
	deadline=$(( $(now_ms) + 15000 ))
	until grep -q '^ready ' "$tmp/keepalive.out"; do
		if [ "$(now_ms)" -gt "$deadline" ] || ! kill -0 "$ka_pid" 2>/dev/null; then
			fail "6 rotation: the keep-alive client did not get its first answer: $(cat "$tmp/keepalive.out")"
			kill "$ka_pid" 2>/dev/null
			return
		fi
		sleep 0.1
	done
	old=$(norm_serial "$(s_client_serial)")
	if [ -z "$old" ]; then
		fail "6 rotation: openssl s_client saw no server certificate"
		kill "$ka_pid" 2>/dev/null
		return
	fi
	if ! run_pki pki server --ca /data/pki --dns localhost --ip 127.0.0.1 \
		--out /data/certs/server/default >"$tmp/rotate.log" 2>&1; then
		fail "6 rotation: pki server failed: $(tr '\n' ' ' <"$tmp/rotate.log")"
		kill "$ka_pid" 2>/dev/null
		return
	fi
	issued=$(norm_serial "$(sed -n 's/.*(serial \([0-9A-Fa-f]*\),.*/\1/p' "$tmp/rotate.log")")
	t0=$(now_ms)
	new=$old
	while [ "$new" != "$issued" ] && [ $(( $(now_ms) - t0 )) -lt 10000 ] && [ $n -lt 100 ]; do
		n=$((n + 1))
		sleep 0.1
		new=$(norm_serial "$(s_client_serial)")
	done
	local took
	took=$(secs_since "$t0")
	touch "$tmp/rotated"
	local ka_rc=0
	wait "$ka_pid" || ka_rc=$?
	if [ -z "$issued" ] || [ "$issued" = "$old" ]; then
		fail "6 rotation: no new serial issued (old $old): $(tr '\n' ' ' <"$tmp/rotate.log")"
	elif [ "$new" != "$issued" ]; then
		fail "6 rotation: new handshakes still see serial $new 10 s after rotating to $issued"
	elif [ "$ka_rc" != 0 ] || ! grep -q '^reused status=200 ' "$tmp/keepalive.out"; then
		fail "6 rotation: new serial seen after $took, but the open keep-alive connection broke: $(tr '\n' ' ' <"$tmp/keepalive.out")"
	elif ! grep -q "^ready serial=0*$old " "$tmp/keepalive.out"; then
		fail "6 rotation: the keep-alive connection saw serial $(grep -o 'serial=[0-9A-F]*' "$tmp/keepalive.out"), openssl $old"
	else
		pass "6 server certificate rotated: new handshakes see serial $new (was $old) after $took; the open keep-alive connection answered again"
	fi
}
step6

# ---- 7. a second up on the same volume ------------------------------------

# down without -v, then up: the one-shot pki steps run again on a volume
# that holds their output (init --keep, pki ca --keep) and must succeed;
# what the volume holds, the CRL revoking alice included, is still served.
step7() {
	local t0
	t0=$(now_ms)
	if ! timeout 120 "${dcp[@]}" down --timeout 5 >"$tmp/down2.log" 2>&1; then
		fail "7 second up: down (volume kept) failed: $(tr '\n' ' ' <"$tmp/down2.log" | head -c 300)"
		return
	fi
	if ! timeout 180 "${dcp[@]}" up -d --no-build >"$tmp/up2.log" 2>&1; then
		fail "7 second up: compose up on the kept volume failed: $(tr '\n' ' ' <"$tmp/up2.log" | tail -c 400)"
		return
	fi
	for s in certplane backend1 backend2 proxy; do
		if ! wait_healthy "$s" 90; then
			fail "7 second up: $s is not healthy after 90 s"
			return
		fi
	done
	port=$(compose port proxy 8443 | sed 's/.*://')
	if ! ok bob; then
		fail "7 second up: bob refused (curl $REQ_RC http $REQ_CODE $REQ_ERR)"
	elif ! refused alice; then
		fail "7 second up: alice, revoked in step 3, was served again (curl $REQ_RC http $REQ_CODE)"
	else
		pass "7 second up without down -v: the pki steps kept the volume, healthy after $(secs_since "$t0"); bob served, alice still refused"
	fi
}
step7

echo "== $((steps - failures))/$steps passed in $(( $(date +%s) - started )) s =="
if [ "$failures" -gt 0 ]; then
	echo "RESULT: FAIL"
	exit 1
fi
echo "RESULT: PASS"
exit 0
