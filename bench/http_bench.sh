#!/usr/bin/env bash
# bench/http_bench.sh: HTTP delivery benchmark: roused's SMS (Twilio) and
# APNs transports against a raw libcurl client (bench/http_raw), both into
# one local nginx that answers like the gateways, in one run on one
# machine, on 127.0.0.1 only; prints one report.
#
# Phases:
#   0. tools: nginx (Debian's nginx-light will do: ssl + http_v2), the
#      openssl and curl command lines; http_raw built unless BENCH_BIN has it
#   1. a throwaway CA and a server certificate for IP 127.0.0.1 (P-256),
#      and the APNs signing key: an EC P-256 PKCS#8 AuthKey.p8, mode 0600
#   2. nginx from bench/nginx/nginx.conf.in, in the foreground as the
#      invoking user, pid/logs/temp files in the scratch directory, on two
#      free ports: HTTP/1.1 answering Twilio's Messages.json with 201 and a
#      fixed JSON body, TLS + HTTP/2 answering APNs' /3/device/<token> with
#      200; curl checks both answers, over the right protocol, with a 4 KB
#      body and the connection reused afterwards
#   3. reference: http_raw posts BENCH_HTTP_COUNT identical requests:
#      sms over HTTP/1.1 with BENCH_HTTP_SMS_CONNS connections (one request
#      in flight each), apns over HTTP/2 with each of BENCH_HTTP_APNS_CONNS
#      connections (BENCH_HTTP_STREAMS requests in flight per connection)
#   4. rouse: per channel, a fresh daemon (sms.transport "http", kind
#      twilio, connections = BENCH_HTTP_SMS_CONNS; or push.transport "http"
#      with push.apns, connections = the first of BENCH_HTTP_APNS_CONNS, the
#      test CA as ca_file; transport rate limits far above the load, no
#      per-user caps) and BENCH_HTTP_COUNT pipelined sends (distinct users
#      and recipients, due at once), timed by `http_raw rouse` from the
#      first byte of load to the last answer in nginx's access log; the
#      daemon's stats sent.<channel> cross-checks the count. A daemon that
#      refuses its configuration with "not supported yet" skips that
#      channel with a note; any other refusal is an error.
#   5. alternating pairs (BENCH_PAIRS, default 3): per channel, one
#      reference run then one rouse run, BENCH_PAIRS times; each pair's
#      ratio compares runs a few seconds apart, so the headline ratio (the
#      median of the pairs) does not depend on which phases 3 and 4 each
#      caught of a machine whose speed drifts
# Every figure is the median of BENCH_REPEAT runs (the mean of the middle
# two for an even count); a failed run ends its series. The ratio
# rouse / reference is the figure of merit (target >= 0.8): the median of
# the pairs, or the series' medians with BENCH_PAIRS=0. The report
# also gives each side's CPU per request in its last run (http_raw's own
# CPU, or every roused thread, plus nginx's) and how many cores that kept
# busy: when the reference alone keeps the machine near its core count,
# a rouse needing more CPU per request cannot keep its pace.
#
# Environment (defaults in brackets):
#   ROUSED               daemon [build-bench/roused, else build/roused]
#   BENCH_BIN            directory holding a built http_raw
#                        [compiled here with cc]
#   BENCH_DIR            scratch directory [mktemp -d under /tmp]
#   BENCH_KEEP=1         keep the scratch directory
#   BENCH_NGINX [/usr/sbin/nginx]   BENCH_NGINX_WORKERS [1]
#   BENCH_HTTP_COUNT [20000]        requests / jobs per run
#   BENCH_HTTP_SMS_CONNS [16]       BENCH_HTTP_APNS_CONNS ["2 16"]
#   BENCH_HTTP_STREAMS [100]        BENCH_REPEAT [2]   BENCH_PAIRS [3]
#   BENCH_TIMEOUT [120]  seconds per run before it is cut
#   BENCH_HTTP_PORT, BENCH_HTTPS_PORT   [free ports picked at start]
#   BENCH_ROUSE=0        skip phases 4 and 5
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
root=$(dirname "$here")
py=/usr/bin/python3

if [[ -z "${ROUSED:-}" ]]; then
	for cand in "$root/build-bench/roused" "$root/build/roused"; do
		if [[ -x $cand ]]; then ROUSED=$cand; break; fi
	done
fi
run_rouse=${BENCH_ROUSE:-1}
if [[ $run_rouse == 1 && ( -z "${ROUSED:-}" || ! -x "$ROUSED" ) ]]; then
	echo "http_bench.sh: no roused binary (set ROUSED, or BENCH_ROUSE=0)" >&2
	exit 2
fi

nginx=${BENCH_NGINX:-/usr/sbin/nginx}
workers=${BENCH_NGINX_WORKERS:-1}
count=${BENCH_HTTP_COUNT:-20000}
sms_conns=${BENCH_HTTP_SMS_CONNS:-16}
apns_conns=${BENCH_HTTP_APNS_CONNS:-2 16}
streams=${BENCH_HTTP_STREAMS:-100}
repeat=${BENCH_REPEAT:-2}
timeout=${BENCH_TIMEOUT:-120}
rouse_apns_conns=${apns_conns%% *}
twilio_token=bench-token

work=${BENCH_DIR:-$(mktemp -d /tmp/rouse-httpbench.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
bin=$work/bin
ng=$work/nginx
pids=()
nginx_pid=""
status=0

stop_pid() {
	kill "-$2" "$1" 2>/dev/null || true
	local i
	for i in $(seq 1 200); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$1" 2>/dev/null; then
		log "   pid $1 did not stop within 10 s of SIG$2; SIGKILL"
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

cleanup() {
	local p
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then stop_pid "$p" TERM; fi
	done
	if [[ -n $nginx_pid ]] && kill -0 "$nginx_pid" 2>/dev/null; then
		stop_pid "$nginx_pid" QUIT
	fi
	if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
		rm -rf "$work"
	else
		echo "scratch directory kept: $work"
	fi
}
trap cleanup EXIT

# median [FORMAT [NONE]]: median of the numbers on stdin (words that are
# not numbers, such as "n/a", are left out); for an even count the mean of
# the middle two, printed with FORMAT [%.0f]; NONE [-] when there are none
median() { tr ' ' '\n' | awk '$1 ~ /^[0-9.]+$/' | sort -n |
	awk -v fmt="${1:-%.0f}\n" -v none="${2:--}" '{ v[NR] = $1 }
	END { if (NR == 0) print none
	      else if (NR % 2) print v[(NR + 1) / 2]
	      else printf fmt, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

pick_port() {
	"$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# CPU seconds (user + system) of a process and its threads
proc_cpu() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	rest=${stat##*) }
	echo "$rest" | awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($12 + $13) / tck }'
}

# CPU seconds of nginx's worker processes
nginx_cpu() {
	local total=0 w
	for w in $(pgrep -P "$nginx_pid" 2>/dev/null || true); do
		total=$(echo "$total + $(proc_cpu "$w")" | bc)
	done
	echo "$total"
}

ratio() {
	local a=$1 b=$2
	if [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $b -gt 0 ]]; then
		echo "scale=3; $a / $b" | bc | sed 's/^\./0./'
	else
		echo "n/a"
	fi
}
verdict() {
	[[ $1 == n/a ]] && { echo "n/a"; return; }
	if [[ $(echo "$1 >= 0.8" | bc) == 1 ]]; then echo ok; else echo MISSED; fi
}

# ---------------------------------------------------------------- 0. tools
for tool in "$nginx" openssl curl bc; do
	if ! command -v "$tool" >/dev/null; then
		echo "http_bench.sh: $tool not found (Debian: nginx-light, openssl, curl, bc)" >&2
		exit 2
	fi
done
nginx_version=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')
if ! "$nginx" -V 2>&1 | grep -q -- '--with-http_v2_module' ||
	! "$nginx" -V 2>&1 | grep -q -- '--with-http_ssl_module'; then
	echo "http_bench.sh: $nginx lacks ssl or http_v2" >&2
	exit 2
fi

if [[ -n "${BENCH_BIN:-}" ]]; then
	bin=$BENCH_BIN
else
	mkdir -p "$bin"
	cflags=(-O2 -g -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
		-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
		-Wmissing-prototypes -Wvla -Wformat=2)
	# shellcheck disable=SC2046
	cc "${cflags[@]}" -o "$bin/http_raw" "$here/http_raw.c" \
		"$here/benchutil.c" $(pkg-config --cflags --libs libuv libcurl) \
		-lpthread
fi
raw=$bin/http_raw

http_port=${BENCH_HTTP_PORT:-$(pick_port)}
https_port=${BENCH_HTTPS_PORT:-$(pick_port)}
while [[ -z "${BENCH_HTTPS_PORT:-}" && $https_port == "$http_port" ]]; do
	https_port=$(pick_port)
done
for p in "$http_port" "$https_port"; do
	if ! port_free "$p"; then
		echo "http_bench.sh: 127.0.0.1:$p is in use (BENCH_HTTP_PORT/BENCH_HTTPS_PORT)" >&2
		exit 2
	fi
done

log "scratch directory $work, roused ${ROUSED:-none}, nginx $nginx_version"
log "parameters: count=$count sms_conns=$sms_conns apns_conns='$apns_conns'" \
	"streams=$streams repeat=$repeat timeout=${timeout}s" \
	"http 127.0.0.1:$http_port https 127.0.0.1:$https_port"

# ---------------------------------------------------------------- 1. keys
log "1. throwaway CA, server certificate for 127.0.0.1, APNs key"
mkdir -p "$ng/tmp" "$ng/www"
(
	cd "$ng"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout ca.key -out ca.pem -days 2 -subj "/CN=rouse bench CA"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout server.key -out server.csr -subj "/CN=127.0.0.1"
	printf '%s\n' "subjectAltName=IP:127.0.0.1" "basicConstraints=CA:FALSE" \
		"keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
		-CAcreateserial -days 2 -extfile server.ext -out server.pem
	umask 077
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$work/AuthKey.p8"
) >"$work/openssl.log" 2>&1 || {
	cat "$work/openssl.log" >&2
	exit 2
}
chmod 0600 "$work/AuthKey.p8"

# ---------------------------------------------------------------- 2. nginx
user_line=""
if [[ $(id -u) == 0 ]]; then
	# as root, nginx would switch its workers to nobody
	user_line="user $(id -un) $(id -gn);"
fi
sed -e "s|@DIR@|$ng|g" -e "s|@HTTP_PORT@|$http_port|g" \
	-e "s|@HTTPS_PORT@|$https_port|g" -e "s|@WORKERS@|$workers|g" \
	-e "s|@USER_LINE@|$user_line|" "$here/nginx/nginx.conf.in" >"$ng/nginx.conf"
if ! "$nginx" -t -q -p "$ng/" -c "$ng/nginx.conf" 2>"$ng/test.log"; then
	echo "http_bench.sh: nginx refused $ng/nginx.conf:" >&2
	cat "$ng/test.log" >&2
	exit 2
fi
"$nginx" -p "$ng/" -c "$ng/nginx.conf" 2>"$ng/stderr.log" &
nginx_pid=$!
for _ in $(seq 1 250); do
	if ! port_free "$http_port" && ! port_free "$https_port"; then break; fi
	if ! kill -0 "$nginx_pid" 2>/dev/null; then break; fi
	sleep 0.02
done
if ! kill -0 "$nginx_pid" 2>/dev/null || port_free "$http_port" || port_free "$https_port"; then
	echo "http_bench.sh: nginx did not start:" >&2
	cat "$ng/stderr.log" "$ng/error.log" >&2 2>/dev/null || true
	exit 2
fi
sms_url=http://127.0.0.1:$http_port
apns_url=https://127.0.0.1:$https_port
sms_log=$ng/sms.log
apns_log=$ng/apns.log

# Two POSTs on one connection each: the first with a 4 KB body, which nginx
# must read whole before it answers and reuses the connection.
head -c 4096 /dev/zero | tr '\0' 'x' >"$work/body4k"
check_fmt='%{http_code} %{http_version} %{num_connects}\n'
sms_check=$(curl -sS -u "AC123:$twilio_token" -o "$work/check1.body" -w "$check_fmt" \
	--data-binary @"$work/body4k" "$sms_url/2010-04-01/Accounts/AC123/Messages.json" \
	--next -u "AC123:$twilio_token" -o "$work/check2.body" -w "$check_fmt" \
	--data 'To=%2B8613800000000&From=%2B15550100&Body=hi' \
	"$sms_url/2010-04-01/Accounts/AC123/Messages.json" 2>&1 | paste -sd' ') || true
apns_check=$(curl -sS --http2 --cacert "$ng/ca.pem" -o /dev/null -w "$check_fmt" \
	-H 'apns-id: 0b7e3f52-9c1d-4e8a-b6f4-2d9a0c5e7f13' \
	--data-binary @"$work/body4k" "$apns_url/3/device/$(printf '%064d' 1)" \
	--next --http2 --cacert "$ng/ca.pem" -o /dev/null -w "$check_fmt" \
	--data '{"aps":{}}' "$apns_url/3/device/$(printf '%064d' 2)" 2>&1 | paste -sd' ') || true
if [[ $sms_check != "201 1.1 1 201 1.1 0" ]] ||
	! grep -q '"sid":"SM' "$work/check2.body"; then
	echo "http_bench.sh: nginx's Twilio answer is wrong: '$sms_check'" \
		"(want '201 1.1 1 201 1.1 0'), body: $(cat "$work/check2.body" 2>/dev/null)" >&2
	exit 2
fi
if [[ $apns_check != "200 2 1 200 2 0" ]]; then
	echo "http_bench.sh: nginx's APNs answer is wrong: '$apns_check'" \
		"(want '200 2 1 200 2 0')" >&2
	exit 2
fi
log "2. nginx pid $nginx_pid ($workers worker(s)): Twilio path '$sms_check'," \
	"APNs path '$apns_check' (code, HTTP version, new connections)"

# ---------------------------------------------------------------- 3. raw
# raw_series TAG ARGS...: $repeat runs of http_raw; sets $rates, $last, and
# $series_ok (0 when a run failed, which ends the series)
raw_series() {
	local tag=$1 i c0 c1
	shift
	rates=""
	series_ok=1
	for i in $(seq 1 "$repeat"); do
		last=$work/$tag.$i.out
		c0=$(nginx_cpu)
		if ! "$raw" "$@" -n "$count" --timeout "$timeout" >"$last" 2>&1; then
			series_ok=0
			status=1
			log "   $tag run $i FAILED:"
			sed 's/^/     /' "$last" >&2
			return
		fi
		c1=$(nginx_cpu)
		echo "nginx_cpu: $(echo "$c1 - $c0" | bc)" >>"$last"
		rates+="$(field req_per_s "$last") "
		log "   $tag run $i: $(field req_per_s "$last") req/s"
	done
}

describe_raw() {
	if [[ $series_ok == 0 ]]; then
		echo "FAILED: $(grep -m1 'FAILED' "$last" || tail -1 "$last")"
		return
	fi
	printf '%s req/s  (runs: %s)  %s connections opened, client CPU %s s, nginx CPU %s s' \
		"$(echo "$rates" | median)" "${rates% }" "$(field opened "$last")" \
		"$(field cpu_s "$last")" "$(sed -n 's/^nginx_cpu: //p' "$last" | sed 's/^\./0./')"
}

# cpu_line FILE PROCESS_CPU_S: CPU per request of the run in FILE (the
# sender, PROCESS_CPU_S seconds, plus nginx) and how many of the machine's
# cores that kept busy while it ran; "-" when the run has no figures
cpu_line() {
	local rate ng
	rate=$(field req_per_s "$1")
	ng=$(sed -n 's/^nginx_cpu: //p' "$1")
	if [[ ! $rate =~ ^[0-9]+$ || $rate == 0 || -z $ng || -z $2 ]]; then
		echo "-"
		return
	fi
	awk -v p="$2" -v n="$ng" -v c="$count" -v r="$rate" 'BEGIN {
		printf "%.0f us (sender %.0f + nginx %.0f), %.2f cores busy\n",
			(p + n) * 1e6 / c, p * 1e6 / c, n * 1e6 / c, (p + n) * r / c }'
}

# seconds of CPU on a "daemon_cpu:" line (every thread)
daemon_cpu_s() {
	sed -n 's/^daemon_cpu: //p' "$1" | grep -o '[0-9.]* s' |
		awk '{ t += $1 } END { if (NR) printf "%.2f\n", t }'
}

log "3. reference: http_raw, $count requests per run"
log "   sms over HTTP/1.1, $sms_conns connections"
raw_series raw-sms --url "$sms_url" --kind sms -c "$sms_conns" \
	--auth-token "$twilio_token"
raw_sms_line=$(describe_raw)
raw_sms_cpu=$( [[ $series_ok == 1 ]] && cpu_line "$last" "$(field cpu_s "$last")" || echo -)
raw_sms=$( [[ $series_ok == 1 ]] && echo "$rates" | median || echo -)
declare -A raw_apns_line raw_apns raw_apns_cpu
for c in $apns_conns; do
	log "   apns over HTTP/2, $c connections x $streams streams"
	raw_series "raw-apns-$c" --url "$apns_url" --kind apns -c "$c" --http2 \
		--streams "$streams" --cacert "$ng/ca.pem"
	raw_apns_line[$c]=$(describe_raw)
	raw_apns_cpu[$c]=$( [[ $series_ok == 1 ]] && cpu_line "$last" "$(field cpu_s "$last")" || echo -)
	raw_apns[$c]=$( [[ $series_ok == 1 ]] && echo "$rates" | median || echo -)
done

# ---------------------------------------------------------------- 4. rouse
# make_config DIR KIND(sms|apns)
make_config() {
	mkdir -p "$1"
	"$py" - "$root/config/rouse.json" "$root/templates" "$1" "$2" \
		"$sms_url" "$sms_conns" "$apns_url" "$rouse_apns_conns" \
		"$ng/ca.pem" "$work/AuthKey.p8" <<'EOF'
import json, sys
(base, templates, d, kind, sms_url, sms_conns, apns_url, apns_conns,
 ca_file, key_file) = sys.argv[1:11]
c = json.load(open(base))
c["data_dir"] = d + "/data"
c["templates"] = templates
c.setdefault("intake", {})["socket"] = d + "/data/rouse.sock"
c.setdefault("email", {})["maildir"] = d + "/data/outbox/email"
sms = c.setdefault("sms", {})
sms["file"] = d + "/data/outbox/sms.jsonl"
push = c.setdefault("push", {})
push["file"] = d + "/data/outbox/push.jsonl"
if kind == "sms":
    sms["transport"] = "http"
    sms["http"] = {"kind": "twilio", "url": sms_url, "account_sid": "AC123",
                   "auth_token_env": "ROUSE_TWILIO_TOKEN",
                   "connections": int(sms_conns)}
else:
    push["transport"] = "http"
    push["apns"] = {"url": apns_url, "topic": "com.example.app",
                    "key_file": key_file, "key_id": "ABC123",
                    "team_id": "DEF456", "connections": int(apns_conns),
                    "ca_file": ca_file}
limits = c.setdefault("limits", {})
limits.pop("per_user", None)
transports = limits.setdefault("transports", {})
for ch in ("sms", "push"):
    transports[ch] = {"rate": 1000000, "burst": 100000}
json.dump(c, open(d + "/rouse.json", "w"), indent=2)
EOF
}

# start_daemon DIR -> $daemon_pid, or returns 1 with the log's last line
# in $start_error
start_daemon() {
	ROUSE_TWILIO_TOKEN=$twilio_token "$ROUSED" --config "$1/rouse.json" \
		2>>"$1/roused.log" &
	daemon_pid=$!
	pids+=("$daemon_pid")
	for _ in $(seq 1 500); do
		if grep -q '"msg":"ready"' "$1/roused.log" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
		sleep 0.02
	done
	stop_pid "$daemon_pid" TERM
	start_error=$(tail -1 "$1/roused.log")
	return 1
}

# rouse_series KIND(sms|apns) LOG: $repeat runs, each with a fresh daemon;
# sets $rates, $last, $series_ok (0: failed, 2: refused as not supported)
rouse_series() {
	local kind=$1 alog=$2 i d c0 c1
	rates=""
	series_ok=1
	for i in $(seq 1 "$repeat"); do
		d=$work/rouse-$kind.$i.d
		last=$work/rouse-$kind.$i.out
		rm -rf "$d"
		make_config "$d" "$kind"
		if ! start_daemon "$d"; then
			echo "roused did not start: $start_error" >"$last"
			if [[ $start_error == *"not supported yet"* ]]; then
				series_ok=2
				log "   roused refused the configuration: $start_error"
			else
				series_ok=0
				status=1
				log "   roused did not start: $start_error"
			fi
			return
		fi
		c0=$(nginx_cpu)
		local rc=0
		"$raw" rouse --socket "$d/data/rouse.sock" --log "$alog" \
			--kind "$kind" -n "$count" --timeout "$timeout" \
			--tag "b$i" >"$last" 2>&1 || rc=$?
		c1=$(nginx_cpu)
		echo "nginx_cpu: $(echo "$c1 - $c0" | bc)" >>"$last"
		echo "daemon_cpu: $(thread_cpu "$daemon_pid")" >>"$last"
		stop_pid "$daemon_pid" TERM
		if [[ $rc != 0 ]]; then
			series_ok=0
			status=1
			log "   rouse $kind run $i FAILED:"
			sed 's/^/     /' "$last" >&2
			tail -5 "$d/roused.log" | sed 's/^/     roused: /' >&2
			return
		fi
		if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$d"; fi
		rates+="$(field req_per_s "$last") "
		log "   rouse $kind run $i: $(field req_per_s "$last") req/s"
	done
}

describe_rouse() {
	case $series_ok in
	2) echo "skipped: roused refused its configuration ($(sed 's/^roused did not start: //' "$last"))"
	   return ;;
	0) echo "FAILED: $(grep -m1 -e 'FAILED' -e 'did not start' "$last" || tail -1 "$last")"
	   return ;;
	esac
	local cpu
	cpu=$(sed -n 's/^daemon_cpu: //p' "$last")
	printf '%s req/s  (runs: %s)  nginx saw %s connections\n' \
		"$(echo "$rates" | median)" "${rates% }" "$(field connections "$last")"
	printf '        last run: first answer after %s ms, %s req/s from the first answer to the last;\n' \
		"$(field first_ms "$last")" "$(field span_req_per_s "$last")"
	printf '        intake acked all in %s s; nginx CPU %s s; daemon CPU by thread: %s' \
		"$(field intake_seconds "$last")" \
		"$(sed -n 's/^nginx_cpu: //p' "$last" | sed 's/^\./0./')" "${cpu:--}"
}

rouse_sms_line="not run (BENCH_ROUSE=0)"
rouse_apns_line=$rouse_sms_line
rouse_sms_cpu=-
rouse_apns_cpu=-
rouse_sms=-
rouse_apns=-
if [[ $run_rouse == 1 ]]; then
	log "4. rouse: $count jobs per run, a fresh daemon per run"
	log "   sms: sms.transport http, twilio, $sms_conns connections"
	rouse_series sms "$sms_log"
	rouse_sms_line=$(describe_rouse)
	[[ $series_ok == 1 ]] && rouse_sms_cpu=$(cpu_line "$last" "$(daemon_cpu_s "$last")")
	[[ $series_ok == 1 ]] && rouse_sms=$(echo "$rates" | median)
	log "   apns: push.transport http, push.apns, $rouse_apns_conns connections"
	rouse_series apns "$apns_log"
	rouse_apns_line=$(describe_rouse)
	[[ $series_ok == 1 ]] && rouse_apns_cpu=$(cpu_line "$last" "$(daemon_cpu_s "$last")")
	[[ $series_ok == 1 ]] && rouse_apns=$(echo "$rates" | median)
fi

# ---------------------------------------------------------------- 5. pairs
# pair KIND TAG RAW_ARGS...: one reference run, then one rouse run; sets
# $pair_ratio, or returns 1 when a run failed
pair() {
	local kind=$1 tag=$2 alog a b
	shift 2
	raw_series "$tag" "$@"
	[[ $series_ok == 1 ]] || return 1
	a=${rates% }
	if [[ $kind == sms ]]; then alog=$sms_log; else alog=$apns_log; fi
	rouse_series "$kind" "$alog"
	[[ $series_ok == 1 ]] || return 1
	b=${rates% }
	pair_ratio=$(ratio "$b" "$a")
	log "   pair: rouse $b / reference $a = $pair_ratio"
}

pairs=${BENCH_PAIRS:-3}
sms_pairs=""
apns_pairs=""
if [[ $run_rouse == 1 && $pairs -gt 0 ]]; then
	log "5. alternating pairs: reference then rouse, $pairs times per channel"
	saved_repeat=$repeat
	repeat=1
	for i in $(seq 1 "$pairs"); do
		pair sms "raw-sms-pair$i" --url "$sms_url" --kind sms \
			-c "$sms_conns" --auth-token "$twilio_token" || break
		sms_pairs+="$pair_ratio "
		pair apns "raw-apns-pair$i" --url "$apns_url" --kind apns \
			-c "$rouse_apns_conns" --http2 --streams "$streams" \
			--cacert "$ng/ca.pem" || break
		apns_pairs+="$pair_ratio "
	done
	repeat=$saved_repeat
fi

# ---------------------------------------------------------------- report
if [[ -n $sms_pairs ]]; then
	sms_ratio=$(echo "$sms_pairs" | median %.3f n/a)
else
	sms_ratio=$(ratio "$rouse_sms" "$raw_sms")
fi
if [[ -n $apns_pairs ]]; then
	apns_ratio=$(echo "$apns_pairs" | median %.3f n/a)
else
	apns_ratio=$(ratio "$rouse_apns" "${raw_apns[$rouse_apns_conns]}")
fi
ratio_from="the series' medians above"
[[ -n $sms_pairs || -n $apns_pairs ]] && ratio_from="median of the alternating pairs"
{
	echo
	echo "==================== rouse HTTP delivery benchmark ===================="
	echo "machine: $(nproc) CPUs, $(uname -r); nginx $nginx_version ($workers worker(s));" \
		"$(curl-config --version 2>/dev/null || echo libcurl)," \
		"$(curl -V | head -1 | grep -o 'nghttp2/[0-9.]*' || echo 'nghttp2 ?')"
	echo "roused: ${ROUSED:-none}"
	echo "$count requests per run, median of $repeat runs; sms: Twilio Messages.json over" \
		"HTTP/1.1 to 127.0.0.1:$http_port; apns: /3/device over TLS + HTTP/2 to 127.0.0.1:$https_port"
	echo
	echo "reference (http_raw: libcurl multi + libuv)"
	echo "  sms   HTTP/1.1 x$sms_conns: $raw_sms_line"
	for c in $apns_conns; do
		echo "  apns  HTTP/2 x$c ($streams streams each): ${raw_apns_line[$c]}"
	done
	echo "rouse (first byte of load on the socket -> last answer in nginx's log)"
	echo "  sms   http twilio, connections $sms_conns: $rouse_sms_line"
	echo "  apns  push.apns, connections $rouse_apns_conns: $rouse_apns_line"
	echo "CPU per request, last run (the sender's process, or every daemon thread, plus nginx;"
	echo "rouse's load client not counted); cores busy = that CPU / the run's time, of $(nproc)"
	echo "  sms   reference ${raw_sms_cpu:--}"
	echo "        rouse     ${rouse_sms_cpu:--}"
	echo "  apns  reference ${raw_apns_cpu[$rouse_apns_conns]:--}"
	echo "        rouse     ${rouse_apns_cpu:--}"
	if [[ -n $sms_pairs || -n $apns_pairs ]]; then
		echo "alternating pairs (one reference run, then one rouse run; rouse / reference per pair)"
		echo "  sms   ${sms_pairs% }"
		echo "  apns  ${apns_pairs% }"
	fi
	echo "ratio rouse / reference ($ratio_from)"
	echo "  sms   $sms_ratio   [target >= 0.8: $(verdict "$sms_ratio")]"
	echo "  apns  $apns_ratio   (vs HTTP/2 x$rouse_apns_conns)   [target >= 0.8: $(verdict "$apns_ratio")]"
	echo "======================================================================"
}
exit "$status"
