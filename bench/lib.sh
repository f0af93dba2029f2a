# bench/lib.sh: helpers the benchmark scripts share (sourced, not run).
#
#   log MSG...            a timestamped line on stderr
#   field KEY FILE        the value of KEY=... on FILE's "result:" line
#   port_free PORT        true when nothing answers on 127.0.0.1:PORT
#   thread_cpu PID        "name s; name(xN) s; ..." CPU seconds (user +
#                         system) per thread name of a live process
#   rss_kb PID FIELD      a kB figure from /proc/PID/status (VmRSS, ...)
#   rss_line PID          VmRSS with its anon/file/shmem parts

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

field() { sed -n 's/^result: //p' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

thread_cpu() {
	local tck t
	tck=$(getconf CLK_TCK)
	for t in /proc/"$1"/task/*; do
		local stat rest
		stat=$(cat "$t/stat" 2>/dev/null) || continue
		rest=${stat##*) }
		# fields after the name: 12 = utime, 13 = stime
		echo "$(cat "$t/comm") $(echo "$rest" | cut -d' ' -f12,13)"
	done | awk -v tck="$tck" '{ c[$1] += $2 + $3; n[$1]++ }
		END { for (k in c) if (c[k] > 0) printf "%s%s %.2f s; ", k,
			(n[k] > 1 ? "(x" n[k] ")" : ""), c[k] / tck }' |
		sed 's/; $//'
}

rss_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

rss_line() {
	printf 'VmRSS %s kB (anon %s, file %s, shmem %s)' "$(rss_kb "$1" VmRSS)" \
		"$(rss_kb "$1" RssAnon)" "$(rss_kb "$1" RssFile)" \
		"$(rss_kb "$1" RssShmem)"
}
