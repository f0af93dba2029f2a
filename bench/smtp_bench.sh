#!/usr/bin/env bash
# bench/smtp_bench.sh: SMTP delivery benchmark: roused's SMTP transport
# against Postfix's smtp-source, end to end into Postfix's smtp-sink, in one
# run on one machine, on 127.0.0.1 only; prints one report.
#
# Every figure is timed the same way (bench/smtp_bench): from the first byte
# of load to the moment a fresh smtp-sink has counted the last message.
# Phases:
#   0. Debian postfix installed if smtp-sink is missing (apt-get)
#   1. the message: one `winback` email built by roused (maildir transport),
#      CRLF -> LF, so smtp-source sends the same bytes (-F)
#   2. reference: smtp-source -d (one connection per session, reused) with
#      1, 4, 16 and 8 sessions, and once with 4 sessions and a connection
#      per message (no -d); its and the sink's CPU time from rusage
#   3. rouse: per sessions x batch, a fresh daemon (email.transport "smtp",
#      starttls "no", timeout 30s, no limits) and BENCH_SMTP_COUNT pipelined
#      sends (user{i}@bench.example, template winback), due at once; the
#      daemon's stats sent.email cross-checks the sink's count; the daemon's
#      CPU time per thread after the run
#   4. pairs: smtp-source -s 4 -d and rouse 4 x 50 alternating,
#      BENCH_PAIRS times; the median of the per-pair ratios is the figure
#      of merit (target >= 0.8): drift of the machine between phases 2
#      and 3 would otherwise land on one side of the ratio only
#   5. Postfix relay: a private Postfix instance (own config and queue
#      directory under the scratch directory) on another loopback port,
#      relayhost = the sink, no local delivery; smtp-source and roused both
#      send through it
#   6. BENCH_PERF=1: perf record -g of the daemon for one 4 x 50 run, top
#      functions by thread
# A run that has not finished within its budget is cut there and measured
# by what had arrived (marked "cut"); repeated runs report the median.
# About 7 minutes on 2 CPUs. The system's own Postfix instance is left
# alone (a master the package install started is stopped again); the
# private one is stopped on exit.
#
# Environment (defaults in brackets):
#   ROUSED               daemon [build-bench/roused, else build/roused]
#   BENCH_BIN            directory holding a built smtp_bench
#                        [compiled here with cc]
#   BENCH_DIR            scratch directory [mktemp -d under /tmp]
#   BENCH_KEEP=1         keep the scratch directory
#   BENCH_SMTP_COUNT [20000]     messages per run
#   BENCH_SMTP_CONFIGS ["4x50 4x200 1x50 16x50 8x50"]  rouse sessions x batch
#   BENCH_SOURCE_SESSIONS ["1 4 16 8"]             smtp-source -s
#   BENCH_REPEAT [3]     runs per figure (a cut run is not repeated)
#   BENCH_BUDGET [30]    seconds per run before it is cut
#   BENCH_PAIRS [5]      phase 4 pairs (0: skip)
#   BENCH_RELAY [1]      phase 5 (0: skip)   BENCH_RELAY_BUDGET [60]
#   BENCH_SINK_PORT [2591]  BENCH_RELAY_PORT [2592]
#   BENCH_PERF=1         phase 6
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
if [[ -z "${ROUSED:-}" || ! -x "$ROUSED" ]]; then
	echo "smtp_bench.sh: no roused binary (set ROUSED)" >&2
	exit 2
fi

count=${BENCH_SMTP_COUNT:-20000}
configs=${BENCH_SMTP_CONFIGS:-4x50 4x200 1x50 16x50 8x50}
source_sessions=${BENCH_SOURCE_SESSIONS:-1 4 16 8}
repeat=${BENCH_REPEAT:-3}
budget=${BENCH_BUDGET:-30}
relay_budget=${BENCH_RELAY_BUDGET:-60}
pairs=${BENCH_PAIRS:-5}
sink_port=${BENCH_SINK_PORT:-2591}
relay_port=${BENCH_RELAY_PORT:-2592}

work=${BENCH_DIR:-$(mktemp -d /tmp/rouse-smtpbench.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
# Postfix's daemons run as user postfix and must reach the queue directory
chmod 0755 "$work"
bin=$work/bin
pids=()
pf_dir=""
pf_started=0

# Postfix's own master, if one runs (the system instance): left alone
pf_master_running() {
	local pidfile=/var/spool/postfix/pid/master.pid p
	[[ -r $pidfile ]] || return 1
	p=$(tr -d ' ' <"$pidfile")
	[[ -n $p ]] && kill -0 "$p" 2>/dev/null
}

pf_stop() {
	if [[ $pf_started == 1 ]]; then
		postfix -c "$pf_dir/etc" stop >/dev/null 2>&1 || true
		local p
		p=$(tr -d ' ' <"$pf_dir/spool/pid/master.pid" 2>/dev/null || true)
		for _ in $(seq 1 100); do
			[[ -n $p ]] && kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
			postfix -c "$pf_dir/etc" abort >/dev/null 2>&1 || true
		fi
		pf_started=0
	fi
}

cleanup() {
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	pf_stop
	if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
		rm -rf "$work"
	else
		echo "scratch directory kept: $work"
	fi
}
trap cleanup EXIT

median() { tr ' ' '\n' | awk 'NF' | sort -n | awk '{ v[NR] = $1 }
	END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

# ---------------------------------------------------------------- 0. postfix
master_before=0
if pf_master_running; then master_before=1; fi
if ! [[ -x /usr/sbin/smtp-sink && -x /usr/sbin/smtp-source ]]; then
	log "0. installing Debian postfix (smtp-sink, smtp-source)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >"$work/apt.log" 2>&1 || {
		cat "$work/apt.log" >&2
		exit 2
	}
	# the package may start the system instance; it was not running before
	if [[ $master_before == 0 ]] && pf_master_running; then
		postfix stop >/dev/null 2>&1 || true
	fi
fi
pf_version=$(postconf -h mail_version 2>/dev/null || echo "?")
for p in "$sink_port" "$relay_port"; do
	if ! port_free "$p"; then
		echo "smtp_bench.sh: 127.0.0.1:$p is in use (BENCH_SINK_PORT/BENCH_RELAY_PORT)" >&2
		exit 2
	fi
done

# ---------------------------------------------------------------- build
if [[ -n "${BENCH_BIN:-}" ]]; then
	bin=$BENCH_BIN
else
	mkdir -p "$bin"
	cflags=(-O2 -g -std=c11 -Wall -Wextra -Werror -Wshadow
		-Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2)
	cc "${cflags[@]}" -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
		-o "$bin/smtp_bench" "$here/smtp_bench.c" "$here/benchutil.c" \
		-lpthread
fi
sb=$bin/smtp_bench

# ---------------------------------------------------------------- helpers
# make_config DIR TRANSPORT(maildir|smtp) PORT SESSIONS BATCH
make_config() {
	mkdir -p "$1"
	"$py" - "$root/config/rouse.json" "$root/templates" "$@" <<'EOF'
import json, sys
base, templates, d, transport, port, sessions, batch = sys.argv[1:8]
c = json.load(open(base))
c["data_dir"] = d + "/data"
c["templates"] = templates
c.setdefault("intake", {})["socket"] = d + "/data/rouse.sock"
email = c.setdefault("email", {})
email["transport"] = transport
if transport == "smtp":
    email.pop("maildir", None)
    email["smtp"] = {"host": "127.0.0.1", "port": int(port),
                     "starttls": "no", "sessions": int(sessions),
                     "batch": int(batch), "timeout": "30s"}
else:
    email["maildir"] = d + "/data/outbox/email"
c.setdefault("sms", {})["file"] = d + "/data/outbox/sms.jsonl"
c.setdefault("push", {})["file"] = d + "/data/outbox/push.jsonl"
c.pop("limits", None)
json.dump(c, open(d + "/rouse.json", "w"), indent=2)
EOF
}

# start_daemon DIR [PRELOAD] -> $daemon_pid, or returns 1 with the log's
# last line in $start_error
start_daemon() {
	if [[ -n "${2:-}" ]]; then
		LD_PRELOAD=$2 "$ROUSED" --config "$1/rouse.json" 2>>"$1/roused.log" &
	else
		"$ROUSED" --config "$1/rouse.json" 2>>"$1/roused.log" &
	fi
	daemon_pid=$!
	pids+=("$daemon_pid")
	for _ in $(seq 1 500); do
		if grep -q '"msg":"ready"' "$1/roused.log" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
		sleep 0.02
	done
	wait "$daemon_pid" 2>/dev/null || true
	start_error=$(tail -1 "$1/roused.log")
	return 1
}

stop_daemon() {
	kill -TERM "$1" 2>/dev/null || true
	local i
	for i in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$1" 2>/dev/null; then
		log "   roused did not stop within 30 s of SIGTERM; SIGKILL"
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

# source_run TAG TARGET_PORT BUDGET SMTP-SOURCE-ARGS... -> $work/TAG.out
source_run() {
	local tag=$1 port=$2 b=$3
	shift 3
	"$sb" source --sink-port "$sink_port" --count "$count" --timeout "$b" \
		-- smtp-source "$@" -m "$count" -F "$work/msg.eml" \
		-f noreply@shop.example -t user@bench.example -N \
		-M shop.example "127.0.0.1:$port" >"$work/$tag.out" 2>&1 || true
}

# rouse_run TAG TARGET_PORT SESSIONS BATCH PRELOAD BUDGET [PERF]
# -> $work/TAG.out (+ "cpu:" line), returns 1 if the daemon did not start
rouse_run() {
	local tag=$1 port=$2 s=$3 b=$4 pre=$5 bud=$6 perf=${7:-0}
	local d=$work/$tag.d
	rm -rf "$d"
	make_config "$d" smtp "$port" "$s" "$b"
	if ! start_daemon "$d" "$pre"; then
		echo "result: mode=rouse refused=1" >"$work/$tag.out"
		echo "roused did not start: $start_error" >>"$work/$tag.out"
		return 1
	fi
	local perf_pid=""
	if [[ $perf == 1 ]]; then
		perf record -F 999 --call-graph dwarf,16384 -p "$daemon_pid" \
			-o "$work/perf.data" >"$work/perf.log" 2>&1 &
		perf_pid=$!
		sleep 0.5
	fi
	"$sb" rouse --sink-port "$sink_port" --count "$count" \
		--socket "$d/data/rouse.sock" --timeout "$bud" --tag "${tag//[^A-Za-z0-9_-]/-}" \
		>"$work/$tag.out" 2>&1 || true
	if [[ -n $perf_pid ]]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
	fi
	echo "cpu: $(thread_cpu "$daemon_pid")" >>"$work/$tag.out"
	stop_daemon "$daemon_pid"
	if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$d"; fi
	return 0
}

# repeated TAG KIND ARGS...: runs KIND (source_run/rouse_run) up to
# $repeat times as TAG.1, TAG.2, ...; a cut or refused run ends the series.
# Sets $rates (space separated msgs/s), $last (last output file).
repeated() {
	local tag=$1 kind=$2 i
	shift 2
	rates=""
	for i in $(seq 1 "$repeat"); do
		"$kind" "$tag.$i" "$@" || { last=$work/$tag.$i.out; return; }
		last=$work/$tag.$i.out
		rates+="$(field msgs_per_s "$last") "
		[[ $(field partial "$last") == 0 ]] || return 0
	done
}

# one line for the report from a series
describe() {
	local out=$1 med=$2
	if [[ $(field refused "$out") == 1 ]]; then
		sed -n 2p "$out"
		return
	fi
	local part sess arrived secs
	part=$(field partial "$out")
	sess=$(field sink_sess "$out")
	arrived=$(field arrived "$out")
	secs=$(field seconds "$out")
	if [[ $part == 1 ]]; then
		printf '%s msgs/s  CUT after %s s: %s of %s at the sink, sink saw %s SMTP connections' \
			"$med" "$secs" "$arrived" "$count" "$sess"
	else
		local per="-"
		if [[ $sess =~ ^[0-9]+$ && $sess -gt 0 ]]; then
			per=$(echo "scale=1; $arrived / $sess" | bc)
		fi
		printf '%s msgs/s  (runs: %s)  sink saw %s SMTP connections (%s msgs each)' \
			"$med" "${rates% }" "$sess" "$per"
	fi
	local scpu
	scpu=$(field source_cpu_s "$out")
	if [[ -n $scpu ]]; then
		printf '; CPU smtp-source %s s, smtp-sink %s s' "$scpu" \
			"$(field sink_cpu_s "$out")"
	fi
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

log "scratch directory $work, roused $ROUSED, Postfix $pf_version"
log "parameters: count=$count configs='$configs' source_sessions='$source_sessions'" \
	"repeat=$repeat budget=${budget}s sink 127.0.0.1:$sink_port relay 127.0.0.1:$relay_port"

# ---------------------------------------------------------------- 1. message
m=$work/sample
make_config "$m" maildir 0 0 0
if ! start_daemon "$m"; then
	echo "smtp_bench.sh: roused did not start: $start_error" >&2
	exit 1
fi
"$py" - "$m/data/rouse.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
req = {"op": "send", "user": "sample-u0", "channel": "email",
       "to": "user0@bench.example", "template": "winback",
       "vars": {"name": "User 0", "brand": "Shop", "amount": "$20",
                "expiry": "Dec 31", "link": "https://shop.example/c/0"}}
s.sendall((json.dumps(req) + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(65536)
if not json.loads(buf).get("ok"):
    sys.exit("sample send failed: " + buf.decode())
EOF
for _ in $(seq 1 250); do
	ls "$m/data/outbox/email/new/"* >/dev/null 2>&1 && break
	sleep 0.02
done
stop_daemon "$daemon_pid"
sample=$(find "$m/data/outbox/email/new" -type f | head -1)
tr -d '\r' <"$sample" >"$work/msg.eml"
msg_bytes=$(wc -c <"$sample")
log "1. message: winback, $msg_bytes bytes as built (CRLF)"

# ---------------------------------------------------------------- 2. reference
declare -A src_rate src_line
for s in $source_sessions; do
	log "2. smtp-source -s $s -d (connection reuse), $count messages"
	repeated "src$s" source_run "$sink_port" "$budget" -s "$s" -d
	src_rate[$s]=$(echo "$rates" | median)
	src_line[$s]=$(describe "$last" "${src_rate[$s]}")
	log "   ${src_line[$s]}"
done
log "2. smtp-source -s 4, a connection per message, $count messages"
repeated src4nr source_run "$sink_port" "$budget" -s 4
src_nr_rate=$(echo "$rates" | median)
src_nr_line=$(describe "$last" "$src_nr_rate")
log "   $src_nr_line"

# ---------------------------------------------------------------- 3. rouse
declare -A rz_rate rz_line rz_cpu rz_check
# run_rouse_series KEY PRELOAD
run_rouse_series() {
	local key=$1 pre=$2 c s b
	for c in $configs; do
		s=${c%x*}
		b=${c#*x}
		log "3. rouse: sessions $s, batch $b, $count sends"
		repeated "rz$key$c" rouse_run "$sink_port" "$s" "$b" "$pre" "$budget"
		rz_rate[$key$c]=$(echo "$rates" | median)
		rz_line[$key$c]=$(describe "$last" "${rz_rate[$key$c]}")
		rz_cpu[$key$c]=$(sed -n 's/^cpu: //p' "$last")
		rz_check[$key$c]=$(grep -E '^  intake' "$last" | sed 's/^ *//' || true)
		log "   ${rz_line[$key$c]}"
		if [[ -n ${rz_check[$key$c]} ]]; then
			log "   ${rz_check[$key$c]}"
		fi
		if [[ -n ${rz_cpu[$key$c]} ]]; then
			log "   daemon CPU: ${rz_cpu[$key$c]}"
		fi
	done
}
run_rouse_series plain ""

# ---------------------------------------------------------------- 4. pairs
# The headline ratio from alternating runs: smtp-source -s 4 -d, then rouse
# 4 x 50, BENCH_PAIRS times, so that the machine's drift over the minutes
# between phases 2 and 3 weighs on both sides of each ratio alike.
pair_ratios=""
pair_line=""
if [[ $pairs -gt 0 ]]; then
	for i in $(seq 1 "$pairs"); do
		log "4. pair $i of $pairs: smtp-source -s 4 -d, then rouse 4 x 50"
		source_run "pair-src.$i" "$sink_port" "$budget" -s 4 -d || break
		rouse_run "pair-rz.$i" "$sink_port" 4 50 "" "$budget" || break
		a=$(field msgs_per_s "$work/pair-src.$i.out")
		z=$(field msgs_per_s "$work/pair-rz.$i.out")
		r=$(ratio "$z" "$a")
		pair_ratios+="$r "
		pair_line+="$z/$a=$r  "
		log "   rouse $z msgs/s, smtp-source $a msgs/s: $r"
	done
fi

# ---------------------------------------------------------------- 5. relay
relay_lines=()
if [[ "${BENCH_RELAY:-1}" == 1 ]]; then
	pf_dir=$work/postfix
	mkdir -p "$pf_dir/etc" "$pf_dir/spool" "$pf_dir/lib"
	chown postfix "$pf_dir/lib"
	cat >"$pf_dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf_dir/spool
data_directory = $pf_dir/lib
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.example
mydomain = bench.example
myorigin = \$myhostname
mydestination =
local_transport = error:local delivery disabled
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$sink_port
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_banner = \$myhostname ESMTP
maillog_file = $pf_dir/maillog
maillog_file_prefixes = $work
biff = no
EOF
	# the packaged master.cf: smtpd on the relay port only, no pickup,
	# nothing chrooted (the queue directory is private)
	awk -v port="127.0.0.1:$relay_port" '
		/^#/ || /^[ \t]/ || NF == 0 { print; next }
		$1 == "smtp" && $2 == "inet" { $1 = port }
		$1 == "pickup" { next }
		NF >= 8 { $5 = "n" }
		{ print }' /etc/postfix/master.cf >"$pf_dir/etc/master.cf"
	relay_ok=1
	if ! postfix -c "$pf_dir/etc" start >"$work/postfix-start.log" 2>&1; then
		relay_ok=0
	fi
	pf_started=1
	for _ in $(seq 1 100); do
		port_free "$relay_port" || break
		sleep 0.1
	done
	if port_free "$relay_port"; then relay_ok=0; fi
	if [[ $relay_ok == 0 ]]; then
		relay_lines+=("Postfix relay did not start: $(tail -2 "$pf_dir/maillog" 2>/dev/null | tr '\n' ' ')")
		pf_stop
	else
		# between runs: nothing of one run may reach the next run's sink
		pf_flush() {
			postsuper -c "$pf_dir/etc" -d ALL >/dev/null 2>&1 || true
		}
		log "5. relay: Postfix $pf_version on 127.0.0.1:$relay_port ->" \
			"sink; smtp-source -s 4 -d"
		source_run relay-src "$relay_port" "$relay_budget" -s 4 -d
		pf_flush
		relay_src=$(field msgs_per_s "$work/relay-src.out")
		rates=$relay_src
		relay_lines+=("smtp-source -s 4 -d -> Postfix -> sink:  $(describe "$work/relay-src.out" "$relay_src")")
		log "   ${relay_lines[-1]}"
		log "5. relay: rouse sessions 4, batch 50 -> Postfix -> sink"
		rouse_run relay-rz "$relay_port" 4 50 "" "$relay_budget" || true
		pf_flush
		rates=$(field msgs_per_s "$work/relay-rz.out")
		relay_lines+=("rouse 4 x 50 -> Postfix -> sink:        $(describe "$work/relay-rz.out" "$rates")")
		relay_lines+=("    rouse / smtp-source through the relay = $(ratio "$rates" "$relay_src")")
		log "   ${relay_lines[-2]}"
		relay_lines+=("    daemon CPU: $(sed -n 's/^cpu: //p' "$work/relay-rz.out")")
		pf_stop
	fi
fi

# ---------------------------------------------------------------- 6. perf
perf_report=""
if [[ "${BENCH_PERF:-0}" == 1 ]] && command -v perf >/dev/null; then
	log "6. perf: rouse 4 x 50"
	rouse_run perf "$sink_port" 4 50 "" "$budget" 1 || true
	rouse_run_out=$work/perf.out
	perf_report=$(
		set +o pipefail
		echo "run: $(sed -n 1p "$rouse_run_out")"
		echo "samples per thread:"
		perf report -i "$work/perf.data" --no-children --sort comm \
			--stdio -g none 2>/dev/null | grep '%' | head -8
		echo "functions (inclusive, daemon code and libraries):"
		perf report -i "$work/perf.data" --children --sort comm,sym \
			--stdio -g none 2>/dev/null | grep '%' |
			grep -v ' 0x0000' | grep -v '\[k\]' | head -40
	)
fi

# ---------------------------------------------------------------- report
master_after="not running"
if pf_master_running; then master_after="running"; fi

{
	echo
	echo "==================== rouse SMTP benchmark ===================="
	echo "machine: $(nproc) CPUs, $(uname -r); Postfix $pf_version; roused $ROUSED"
	echo "message: template winback, $msg_bytes bytes; $count messages per run; sink: smtp-sink -c on 127.0.0.1:$sink_port"
	echo "timing: first byte of load -> the sink counts message $count; median of up to $repeat runs; a run is cut after ${budget}s"
	echo
	echo "reference (smtp-source -m $count -F message -N):"
	for s in $source_sessions; do
		printf '  -s %-3s -d        %s\n' "$s" "${src_line[$s]}"
	done
	printf '  -s 4  (no -d)    %s\n' "$src_nr_line"
	echo
	for key in plain; do
		echo "rouse (email.transport smtp, starttls no, timeout 30s, no limits; pipelined sends, due now):"
		for c in $configs; do
			s=${c%x*}
			r=$(ratio "${rz_rate[$key$c]}" "${src_rate[$s]:-}")
			printf '  sessions %-3s batch %-4s %s\n' "$s" "${c#*x}" "${rz_line[$key$c]}"
			printf '      rouse / smtp-source -s %s -d = %s\n' "$s" "$r"
			if [[ -n ${rz_check[$key$c]} ]]; then
				echo "      ${rz_check[$key$c]}"
			fi
			if [[ -n ${rz_cpu[$key$c]} ]]; then
				echo "      daemon CPU: ${rz_cpu[$key$c]}"
			fi
		done
		echo
	done
	if [[ -n $pair_ratios ]]; then
		r=$(echo "$pair_ratios" | median)
		echo "paired runs (smtp-source -s 4 -d and rouse 4 x 50 alternating; rouse/reference msgs/s per pair):"
		echo "  $pair_line"
		echo "  rouse / smtp-source -s 4 -d, median of the pairs = $r   [target >= 0.8: $(verdict "$r")]"
		echo
	fi
	if [[ "${BENCH_RELAY:-1}" == 1 ]]; then
		echo "through a Postfix relay (private instance, 127.0.0.1:$relay_port, relayhost = the sink, budget ${relay_budget}s):"
		for l in "${relay_lines[@]}"; do echo "  $l"; done
		echo
	fi
	if [[ -n $perf_report ]]; then
		echo "perf (daemon, one run):"
		echo "$perf_report" | sed 's/^/  /'
		echo
	fi
	echo "system Postfix master: $([[ $master_before == 1 ]] && echo running || echo "not running") before, $master_after after"
	echo "=============================================================="
}
