#!/usr/bin/env bash
# bench/enroll_bench.sh: the drip-sequence benchmark of issue 6, in a scratch
# directory with its own configurations; prints one report.
#
# The sequence "bench" has three steps: email winback, sms coupon_expiring,
# push miss_you; every enrollment carries an email address, a phone number
# and one fcm token, so each enrollment becomes three jobs. No limits (no
# per-user caps, no transport rates); the file outboxes (maildir, JSONL).
# Every run gets a fresh daemon and data directory, and every enroll figure
# is set next to plain `send`s measured the same way in the same run (the
# machine is noisy):
#   1. steps due at once ("after": "0s"):
#      a. reference: BENCH_COUNT sends rotating over email/sms/push, due
#         now: acks/s, and delivered/s through the outboxes
#      b. BENCH_COUNT enrolls: acks/s, and the 3 x BENCH_COUNT steps
#         delivered/s end to end (first enroll to the last step sent, from
#         the daemon's stats "sent" counters)
#   2. steps days away ("after": "3d", "5d", "7d"):
#      a. reference: BENCH_COUNT sends scheduled far ahead: acks/s
#      b. VmRSS after ready; BENCH_COUNT enrolls on the fresh database
#         (acks/s), then more up to BENCH_ACTIVE active enrollments; VmRSS
#         again: (after - before) / BENCH_ACTIVE bytes per enrollment. No
#         stats request reaches the daemon before the second reading (the
#         stats query walks every job's index entry, and SQLite's page cache
#         keeps what it read); one is made afterwards and its effect shown
#         apart.
#         Database and WAL size per enrollment.
#   BENCH_PERF=1: perf record -g of the daemon during 1b (intake and
#   delivery) and during 2b's first BENCH_COUNT enrolls (intake alone); top
#   symbols by thread.
# About 4 minutes on 2 CPUs at the defaults. The data directories live under
# BENCH_DIR: 1,000,000 active enrollments take about 2.5 GB there (phase 1
# about 1 GB, removed before phase 2); with less free space BENCH_ACTIVE is
# scaled down, and the report says so.
#
# Environment (defaults in brackets):
#   ROUSED               daemon [build-bench/roused, else build/roused]
#   BENCH_BIN            directory holding a built enroll_bench
#                        [compiled here with cc into the scratch directory]
#   BENCH_DIR            scratch directory (data dirs go here) [mktemp -d
#                        under /tmp]
#   BENCH_KEEP=1         keep the scratch directory (and every data dir)
#   BENCH_QUICK=1        BENCH_COUNT 20000, BENCH_ACTIVE 200000
#   BENCH_COUNT [100000]    enrollments (and reference sends) per run
#   BENCH_ACTIVE [1000000]  active enrollments for the memory figure
#   BENCH_CLIENTS [4]  BENCH_WINDOW [4096]
#   BENCH_POLL_MS [1000] stats interval while waiting for deliveries (each
#                        poll makes the daemon count every job row)
#   BENCH_TIMEOUT [600]  give up waiting for deliveries after (s)
#   BENCH_PHASES ["1 2"]
#   BENCH_PERF=1         phase perf records (see above)
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
	echo "enroll_bench.sh: no roused binary (set ROUSED)" >&2
	exit 2
fi

quick=${BENCH_QUICK:-0}
count=${BENCH_COUNT:-$([[ $quick == 1 ]] && echo 20000 || echo 100000)}
active=${BENCH_ACTIVE:-$([[ $quick == 1 ]] && echo 200000 || echo 1000000)}
clients=${BENCH_CLIENTS:-4}
window=${BENCH_WINDOW:-4096}
poll_ms=${BENCH_POLL_MS:-1000}
timeout=${BENCH_TIMEOUT:-600}
phases=${BENCH_PHASES:-1 2}
perf_on=${BENCH_PERF:-0}
if [[ $perf_on == 1 ]] && ! command -v perf >/dev/null; then
	echo "enroll_bench.sh: BENCH_PERF=1 but no perf; going on without" >&2
	perf_on=0
fi
if ((active < count)); then active=$count; fi

work=${BENCH_DIR:-$(mktemp -d /tmp/rouse-enrollbench.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
bin=$work/bin
pids=()

cleanup() {
	for p in "${pids[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
		fi
	done
	if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
		rm -rf "$work"
	else
		echo "scratch directory kept: $work"
	fi
}
trap cleanup EXIT

ratio() {
	local a=$1 b=$2
	if [[ $a =~ ^[0-9.]+$ && $b =~ ^[0-9.]+$ ]] && [[ $(echo "$b > 0" | bc) == 1 ]]; then
		echo "scale=2; $a / $b" | bc | sed 's/^\./0./'
	else
		echo "n/a"
	fi
}

# ---------------------------------------------------------------- space
# Bytes each phase leaves on disk (measured on ext4: a winback email is
# about 4 KB, a sent job's row, events and history about 0.6 KB, an active
# enrollment with its three scheduled jobs about 1.7 KB plus 0.5 KB of WAL),
# with a margin.
p1_bytes=$((count * 4 * 4096 / 3 + count * 4 * 700 + count * 3 * 400))
per_active=2600
avail=$(($(df --output=avail -B1 "$work" | tail -1) - (1 << 30)))
space_note=""
if [[ " $phases " == *" 1 "* ]] && ((p1_bytes > avail)); then
	echo "enroll_bench.sh: phase 1 needs about $((p1_bytes >> 20)) MiB in" \
		"$work, $((avail >> 20)) MiB free (1 GiB kept free); lower BENCH_COUNT" >&2
	exit 2
fi
if [[ " $phases " == *" 2 "* ]]; then
	need=$((active * per_active))
	if [[ "${BENCH_KEEP:-0}" == 1 && " $phases " == *" 1 "* ]]; then
		room=$((avail - p1_bytes))
	else
		room=$avail
	fi
	if ((need > room)); then
		fit=$((room / per_active / 10000 * 10000))
		if ((fit < count)); then
			echo "enroll_bench.sh: phase 2 needs about $((need >> 20)) MiB" \
				"in $work for $active enrollments, $((room >> 20)) MiB" \
				"free: not even BENCH_COUNT=$count fit" >&2
			exit 2
		fi
		space_note="SCALED DOWN: $active active enrollments need about $((need >> 20)) MiB in $work, only $((room >> 20)) MiB free (1 GiB kept free): measured $fit"
		log "$space_note"
		active=$fit
	fi
fi

# ---------------------------------------------------------------- build
if [[ -n "${BENCH_BIN:-}" ]]; then
	bin=$BENCH_BIN
else
	mkdir -p "$bin"
	cflags=(-O2 -g -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
		-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
		-Wmissing-prototypes -Wvla -Wformat=2)
	cc "${cflags[@]}" -o "$bin/enroll_bench" "$here/enroll_bench.c" \
		"$here/benchutil.c" -lpthread
fi
eb() { "$bin/enroll_bench" "$@"; }

# ---------------------------------------------------------------- daemon
# make_config DIR AFTER1 AFTER2 AFTER3
make_config() {
	mkdir -p "$1"
	"$py" - "$root/config/rouse.json" "$root/templates" "$@" <<'EOF'
import json, sys
base, templates, d = sys.argv[1:4]
after = sys.argv[4:7]
c = json.load(open(base))
c["data_dir"] = d + "/data"
c["templates"] = templates
c.setdefault("intake", {})["socket"] = d + "/data/rouse.sock"
email = c.setdefault("email", {})
email["transport"] = "maildir"
email["maildir"] = d + "/data/outbox/email"
c.setdefault("sms", {}).update(transport="file", file=d + "/data/outbox/sms.jsonl")
c.setdefault("push", {}).update(transport="file", file=d + "/data/outbox/push.jsonl")
c.pop("limits", None)
steps = [("email", "winback"), ("sms", "coupon_expiring"), ("push", "miss_you")]
c["sequences"] = {"bench": {"exit_on": ["purchase"], "steps": [
    {"after": a, "channel": ch, "template": t}
    for a, (ch, t) in zip(after, steps)]}}
json.dump(c, open(d + "/rouse.json", "w"), indent=2)
EOF
}

# start_daemon DIR -> sets $daemon_pid, waits for "ready"
start_daemon() {
	"$ROUSED" --config "$1/rouse.json" 2>>"$1/roused.log" &
	daemon_pid=$!
	pids+=("$daemon_pid")
	for _ in $(seq 1 500); do
		if grep -q '"msg":"ready"' "$1/roused.log" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
		sleep 0.02
	done
	echo "enroll_bench.sh: roused did not start; log:" >&2
	cat "$1/roused.log" >&2
	exit 1
}

stop_daemon() {
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 1 600); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$1" 2>/dev/null; then
		log "   roused did not stop within 30 s of SIGTERM; SIGKILL"
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

# drop DIR: the data directory goes unless BENCH_KEEP=1
drop() {
	if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$1"; fi
}

# stats_timed SOCKET -> "queue_depth ms"
stats_timed() {
	"$py" - "$1" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
t0 = time.monotonic()
s.sendall(b'{"op":"stats"}\n')
buf = b""
while not buf.endswith(b"\n"):
    buf += s.recv(65536)
ms = (time.monotonic() - t0) * 1000
print(json.loads(buf)["queue_depth"], "%.0f" % ms)
EOF
}

# perf_start TAG -> $perf_pid recording the daemon; perf_stop TAG -> report
perf_pid=""
perf_start() {
	[[ $perf_on == 1 ]] || return 0
	perf record -F 999 -g -p "$daemon_pid" -o "$work/perf-$1.data" \
		>"$work/perf-$1.log" 2>&1 &
	perf_pid=$!
	sleep 0.5
}
perf_stop() {
	[[ $perf_on == 1 && -n $perf_pid ]] || return 0
	kill -INT "$perf_pid" 2>/dev/null || true
	wait "$perf_pid" 2>/dev/null || true
	perf_pid=""
	{
		set +o pipefail
		echo "samples per thread:"
		perf report -i "$work/perf-$1.data" --no-children --sort comm \
			--stdio -g none 2>/dev/null | grep '%' | head -8
		echo "top symbols (self, by thread):"
		perf report -i "$work/perf-$1.data" --no-children \
			--sort comm,dso,sym --stdio -g none 2>/dev/null |
			grep '%' | head -30
	} >"$work/perf-$1.txt"
}

log "scratch directory $work, roused $ROUSED"
log "parameters: count=$count active=$active clients=$clients window=$window" \
	"poll_ms=$poll_ms phases='$phases' perf=$perf_on"
common=(--clients "$clients" --window "$window")

# ---------------------------------------------------------------- 1. due now
if [[ " $phases " == *" 1 "* ]]; then
	d=$work/1a
	make_config "$d" 0s 0s 0s
	start_daemon "$d"
	log "1a. reference: $count sends (email/sms/push rotating), due now"
	eb send --socket "$d/data/rouse.sock" "${common[@]}" --count "$count" \
		--tag s1 --wait 1 --poll-ms "$poll_ms" --timeout "$timeout" \
		| tee "$work/1a.out" >&2 || true
	cpu_1a=$(thread_cpu "$daemon_pid")
	stop_daemon "$daemon_pid"
	drop "$d"

	d=$work/1b
	make_config "$d" 0s 0s 0s
	start_daemon "$d"
	log "1b. $count enrolls, 3 steps due now ($((count * 3)) jobs)"
	perf_start 1b
	eb enroll --socket "$d/data/rouse.sock" "${common[@]}" \
		--count "$count" --tag e1 --wait 1 --poll-ms "$poll_ms" \
		--timeout "$timeout" | tee "$work/1b.out" >&2 || true
	perf_stop 1b
	cpu_1b=$(thread_cpu "$daemon_pid")
	n_mail=$(find "$d/data/outbox/email" -type f | wc -l)
	n_sms=$(wc -l <"$d/data/outbox/sms.jsonl" 2>/dev/null || echo 0)
	n_push=$(wc -l <"$d/data/outbox/push.jsonl" 2>/dev/null || echo 0)
	stop_daemon "$daemon_pid"
	drop "$d"
fi

# ---------------------------------------------------------------- 2. days away
if [[ " $phases " == *" 2 "* ]]; then
	d=$work/2a
	make_config "$d" 3d 5d 7d
	start_daemon "$d"
	log "2a. reference: $count sends scheduled far ahead"
	eb send --socket "$d/data/rouse.sock" "${common[@]}" --count "$count" \
		--tag s2 --at 2099-01-01T00:00:00Z | tee "$work/2a.out" >&2 || true
	stop_daemon "$daemon_pid"
	drop "$d"

	d=$work/2b
	make_config "$d" 3d 5d 7d
	start_daemon "$d"
	sock=$d/data/rouse.sock
	sleep 0.5
	rss0=$(rss_kb "$daemon_pid" VmRSS)
	rss0_line=$(rss_line "$daemon_pid")
	log "2b. daemon pid $daemon_pid after ready: $rss0_line"
	log "2b. first $count enrolls on the fresh database"
	perf_start 2b
	eb enroll --socket "$sock" "${common[@]}" --count "$count" --tag f0 \
		--stats 0 | tee "$work/2b-first.out" >&2 || true
	perf_stop 2b
	rest=$((active - count))
	t_fill0=$(date +%s%N)
	if ((rest > 0)); then
		log "2b. $rest more enrolls, to $active active"
		eb enroll --socket "$sock" "${common[@]}" --count "$rest" \
			--tag f1 --stats 0 --progress 15 \
			| tee "$work/2b-rest.out" >&2 || true
	fi
	t_fill1=$(date +%s%N)
	cpu_2b=$(thread_cpu "$daemon_pid")
	sleep 1
	rss1=$(rss_kb "$daemon_pid" VmRSS)
	rss1_line=$(rss_line "$daemon_pid")
	log "   after $active enrollments: $rss1_line"
	read -r depth stats_ms < <(stats_timed "$sock")
	rss2_line=$(rss_line "$daemon_pid")
	rss2=$(rss_kb "$daemon_pid" VmRSS)
	log "   after one stats request ($stats_ms ms, queue_depth $depth): $rss2_line"
	eb enroll --socket "$sock" --clients 1 --count 1 --tag chk \
		>"$work/2b-check.out" 2>&1 || true
	db_b=$(stat -c %s "$d/data/rouse.db")
	wal_b=$(stat -c %s "$d/data/rouse.db-wal" 2>/dev/null || echo 0)
	stop_daemon "$daemon_pid"
	db_after_b=$(stat -c %s "$d/data/rouse.db")
	wal_after_b=$(stat -c %s "$d/data/rouse.db-wal" 2>/dev/null || echo 0)
	drop "$d"
fi

# ---------------------------------------------------------------- report
{
	echo
	echo "==================== rouse enrollment benchmark ===================="
	echo "machine: $(nproc) CPUs, $(uname -r); data dirs on $(df --output=source,fstype "$work" | tail -1 | tr -s ' ')"
	echo "roused: $ROUSED"
	echo "sequence \"bench\": email winback, sms coupon_expiring, push miss_you; contact email + phone + 1 fcm token;"
	echo "  no limits; maildir / JSONL outboxes; $clients connections, window $window; a fresh daemon per run"
	if [[ -n $space_note ]]; then echo "$space_note"; fi
	echo
	if [[ " $phases " == *" 1 "* ]]; then
		s_rate=$(field acks_per_s "$work/1a.out")
		e_rate=$(field acks_per_s "$work/1b.out")
		jobs_s=$([[ $e_rate =~ ^[0-9]+$ ]] && echo $((e_rate * 3)) || echo "n/a")
		echo "1. steps due at once (\"after\": \"0s\"); delivery overlaps intake:"
		printf '  send (reference)  %s sends rotating email/sms/push, due now: %s acks/s, errors %s\n' \
			"$count" "$s_rate" "$(field errors "$work/1a.out")"
		printf '                    %s delivered in %s s after the first send: %s/s end to end (delivered %s)\n' \
			"$(field expected "$work/1a.out")" "$(field deliver_seconds "$work/1a.out")" \
			"$(field delivered_per_s "$work/1a.out")" "$(field delivered "$work/1a.out")"
		printf '  enroll            %s enrolls: %s acks/s, errors %s; enroll/send acks = %s (jobs written: %s/s vs %s/s)\n' \
			"$count" "$e_rate" "$(field errors "$work/1b.out")" \
			"$(ratio "$e_rate" "$s_rate")" "$jobs_s" "$s_rate"
		printf '                    %s steps delivered in %s s after the first enroll: %s steps/s end to end (delivered %s)\n' \
			"$(field expected "$work/1b.out")" "$(field deliver_seconds "$work/1b.out")" \
			"$(field delivered_per_s "$work/1b.out")" "$(field delivered "$work/1b.out")"
		printf '                    %s sent by the last ack; per channel: %s\n' \
			"$(field sent_at_last_ack "$work/1b.out")" \
			"$(grep -E '^  (email|sms|push) ' "$work/1b.out" | sed 's/^ *//' | paste -sd';' | sed 's/;/; /g')"
		printf '                    steps/s vs sends delivered/s = %s; outboxes: maildir %s files, sms %s lines, push %s lines\n' \
			"$(ratio "$(field delivered_per_s "$work/1b.out")" "$(field delivered_per_s "$work/1a.out")")" \
			"$n_mail" "$n_sms" "$n_push"
		printf '                    stats round trip while delivering: max %s ms (1a: %s ms)\n' \
			"$(field stats_ms_max "$work/1b.out")" "$(field stats_ms_max "$work/1a.out")"
		printf '                    %s\n' "$(grep -E 'last enrollment' "$work/1b.out" | sed 's/^ *//')"
		echo "  daemon CPU (1a): $cpu_1a"
		echo "  daemon CPU (1b): $cpu_1b"
		echo
	fi
	if [[ " $phases " == *" 2 "* ]]; then
		s_rate=$(field acks_per_s "$work/2a.out")
		f_rate=$(field acks_per_s "$work/2b-first.out")
		fill_s=$(echo "scale=1; ($t_fill1 - $t_fill0) / 1000000000" | bc | sed 's/^\./0./')
		rest_rate=$([[ -f $work/2b-rest.out ]] && field acks_per_s "$work/2b-rest.out" || echo -)
		per=$(echo "scale=1; ($rss1 - $rss0) * 1024 / $active" | bc)
		per_stats=$(echo "scale=1; ($rss2 - $rss0) * 1024 / $active" | bc)
		verdict=$([[ $(echo "$per <= 200" | bc) == 1 ]] && echo ok || echo MISSED)
		[[ $active -lt 1000000 ]] && verdict="$verdict; stated for 1000000"
		echo "2. steps days away (\"after\": \"3d\", \"5d\", \"7d\"); nothing is delivered:"
		printf '  send (reference)  %s sends scheduled 2099: %s acks/s, errors %s\n' \
			"$count" "$s_rate" "$(field errors "$work/2a.out")"
		printf '  enroll            first %s on a fresh database: %s acks/s, errors %s; enroll/send acks = %s\n' \
			"$count" "$f_rate" "$(field errors "$work/2b-first.out")" "$(ratio "$f_rate" "$s_rate")"
		printf '                    the next %s (to %s active): %s acks/s, errors %s (%s s)\n' \
			"$((active - count))" "$active" "$rest_rate" \
			"$([[ -f $work/2b-rest.out ]] && field errors "$work/2b-rest.out" || echo 0)" "$fill_s"
		echo "  daemon CPU (2b, all $active): $cpu_2b"
		echo "  memory            after ready:            $rss0_line"
		echo "                    after $active enrollments: $rss1_line"
		echo "                    (after - before) / $active = $per bytes per enrollment   [target <= 200: $verdict]"
		echo "                    after one stats request ($stats_ms ms, queue_depth $depth): $rss2_line"
		echo "                    = $per_stats bytes per enrollment counted from ready (stats walks every job in the (channel, state) index; the page cache keeps it)"
		printf '  check             one more enroll: %s\n' \
			"$(grep -E 'last enrollment' "$work/2b-check.out" | sed 's/^ *//')"
		printf '  disk              rouse.db %s MiB: %s bytes per enrollment (its 3 jobs, their indexes, the enrollment row)\n' \
			"$((db_b >> 20))" "$((db_b / active))"
		printf '                    WAL file %s MiB while running (%s bytes per enrollment; the file keeps its largest size,\n' \
			"$((wal_b >> 20))" "$((wal_b / active))"
		printf '                    so this is how far checkpoints fell behind the fill); after SIGTERM: rouse.db %s MiB, WAL %s MiB\n' \
			"$((db_after_b >> 20))" "$((wal_after_b >> 20))"
		echo
	fi
	for tag in 1b 2b; do
		if [[ -f $work/perf-$tag.txt ]]; then
			echo "perf ($tag: $([[ $tag == 1b ]] && echo "enroll + delivery" || echo "first $count enrolls, intake alone")):"
			sed 's/^/  /' "$work/perf-$tag.txt"
			echo
		fi
	done
	echo "===================================================================="
}
