/* intake_bench.c: load generator for roused's intake socket.
 *
 * DESIGN
 * - Each client is one Unix-socket connection with two threads: a writer
 *   that pipelines `send` lines without waiting, and a reader that checks
 *   every answer as it arrives: "ok":true, the expected state, no
 *   "duplicate", and the echoed "id" equal to the next one expected on that
 *   connection (answers must come back in request order). Every request
 *   carries a unique idempotency key (--tag plus a global number), a
 *   distinct recipient and user, so nothing is deduplicated or capped.
 * - A writer keeps at most --window requests unanswered (default 4096,
 *   below the daemon's per-connection cap of 8192 unanswered, so the run
 *   measures commits and not the daemon's read throttling).
 * - The daemon's own counters come from a separate `stats` request before
 *   and after a measurement: store_commits (one WAL fsync each) over acks
 *   gives fsyncs per ack; queue_depth shows what is queued.
 * - Modes:
 *   throughput  C clients pipeline N sends in total, scheduled far in the
 *               future (nothing is delivered meanwhile): acks/s.
 *   fill        the same, named for queueing N jobs before the RSS and
 *               restart measurements.
 *   latency     a fixed offered rate spread over C connections, each send
 *               released at its planned instant by clock_nanosleep
 *               (TIMER_ABSTIME); latency runs from the planned instant to
 *               the ack, so a writer that falls behind is charged for it.
 *               Requests in the first --warmup seconds are not counted.
 *   deliver     N jobs over --channels, all due at one instant --at-delay
 *               seconds after the start; then stats are polled (every
 *               --poll-ms) until every channel's sent count has grown by
 *               its share: msgs/s per channel from the due instant. A
 *               stats request counts every job row, so the interval is a
 *               trade between resolution and disturbing the daemon.
 *   restart     becomes the daemon (exec of the arguments after "--", same
 *               pid, stderr to --log) while a forked watcher times from
 *               just before the exec to the socket answering `ping` and to
 *               the first delivery: --watch growing (a directory gets one
 *               more file, or a file gets longer), prints that and exits.
 * - Output: human lines, then one "result:" line of key=value pairs for
 *   scripts. Exit status 0 when every answer was as expected, 1 otherwise,
 *   2 on usage or connection errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define PROG "intake_bench"

#define BENCH_MAX_CLIENTS 256

enum bench_mode {
	MODE_THROUGHPUT, MODE_FILL, MODE_LATENCY, MODE_DELIVER, MODE_RESTART
};

enum bench_channel { BCH_EMAIL, BCH_SMS, BCH_PUSH, BCH_COUNT };

static const char *const channel_names[BCH_COUNT] = { "email", "sms", "push" };

struct bench_opts {
	enum bench_mode mode;
	const char *socket;
	int clients;
	long count;
	long window;             /* most unanswered per connection, 0: none */
	double rate;             /* latency: offered sends per second */
	double duration;         /* latency: seconds of sending */
	double warmup;           /* latency: seconds not counted */
	const char *tag;
	const char *at;          /* RFC 3339, or NULL for due now */
	int channels[BCH_COUNT]; /* the channels jobs rotate over */
	int n_channels;
	double at_delay;         /* deliver: seconds from start to due */
	double timeout;          /* deliver/restart: give up after */
	double poll_ms;          /* deliver: stats polling interval */
	const char *watch;       /* restart */
	const char *log;         /* restart */
	char **exec_argv;        /* restart */
};

struct bench_conn {
	const struct bench_opts *o;
	int index;
	int fd;
	long n;                   /* requests on this connection */
	long first;               /* global number of its first request */
	long stride;              /* global number step between its requests */
	int64_t t0_ns;            /* latency: planned instant of request 0 */
	int64_t *planned_ns;      /* latency: per request */
	int64_t *latency_ns;      /* latency: per request */
	_Atomic long acked;
	struct bench_errors err;
	long misordered;
	int64_t last_ack_ns;
	_Atomic bool io_failed;
};

struct daemon_stats {
	long commits;
	long queue_depth;
	long pending;
	long sent[BCH_COUNT];
};

/* ------------------------------------------------------------ helpers */

static void format_rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The integer after "key": inside an object that starts at `from`, or -1. */
static long json_long_after(const char *from, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = from ? strstr(from, pat) : NULL;
	if (!p)
		return -1;
	return strtol(p + strlen(pat), NULL, 10);
}

static int stats_get(const char *socket_path, struct daemon_stats *st)
{
	char ans[8192];
	if (bench_roundtrip(PROG, socket_path, "{\"op\":\"stats\"}\n", ans, sizeof ans) != 0)
		return -1;
	if (!strstr(ans, "\"ok\":true"))
		return -1;
	st->commits = json_long_after(ans, "store_commits");
	st->queue_depth = json_long_after(ans, "queue_depth");
	st->pending = json_long_after(ans, "store_pending");
	const char *sent = strstr(ans, "\"sent\":{");
	for (int ch = 0; ch < BCH_COUNT; ch++)
		st->sent[ch] = json_long_after(sent, channel_names[ch]);
	return 0;
}

static void stats_or_die(const struct bench_opts *o, struct daemon_stats *st)
{
	if (stats_get(o->socket, st) != 0) {
		fprintf(stderr, "intake_bench: stats from %s failed\n",
			o->socket);
		exit(2);
	}
}

/* ------------------------------------------------------------ requests */

static int format_send(const struct bench_opts *o, long global, long id,
		       char *buf, size_t cap)
{
	int ch = o->channels[global % o->n_channels];
	char to[96], at[64] = "";
	const char *tmpl = "winback";
	switch (ch) {
	case BCH_SMS:
		snprintf(to, sizeof to, "\"+1555%07ld\"", global % 10000000);
		tmpl = "coupon_expiring";
		break;
	case BCH_PUSH:
		snprintf(to, sizeof to,
			 "{\"platform\":\"fcm\",\"token\":\"tok-%s-%ld\"}",
			 o->tag, global);
		tmpl = "miss_you";
		break;
	default:
		snprintf(to, sizeof to, "\"u%ld.%s@bench.example\"", global,
			 o->tag);
	}
	if (o->at)
		snprintf(at, sizeof at, ",\"at\":\"%s\"", o->at);
	int n = snprintf(buf, cap,
			 "{\"op\":\"send\",\"id\":%ld,\"key\":\"%s-%ld\","
			 "\"user\":\"%s-u%ld\",\"channel\":\"%s\",\"to\":%s,"
			 "\"template\":\"%s\",\"vars\":{\"name\":\"User %ld\","
			 "\"brand\":\"Shop\",\"amount\":\"$20\",\"expiry\":"
			 "\"Dec 31\",\"link\":\"https://shop.example/c/%ld\"}"
			 "%s}\n",
			 id, o->tag, global, o->tag, global, channel_names[ch],
			 to, tmpl, global, global, at);
	return n > 0 && (size_t)n < cap ? n : -1;
}

/* ------------------------------------------------------------ threads */

/* bench_format_fn: request j of connection ud */
static int conn_request(void *ud, long j, char *buf, size_t cap)
{
	const struct bench_conn *c = ud;
	return format_send(c->o, c->first + j * c->stride, j, buf, cap);
}

/* Latency mode: each request at its planned instant, on its own. */
static void write_on_schedule(struct bench_conn *c)
{
	char buf[BENCH_LINE_MAX];
	for (long j = 0; j < c->n; j++) {
		int64_t planned = c->planned_ns[j];
		struct timespec ts = {
			.tv_sec = planned / 1000000000,
			.tv_nsec = planned % 1000000000
		};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
		int len = conn_request(c, j, buf, sizeof buf);
		if (len < 0 || bench_write_all(c->fd, buf, (size_t)len) != 0) {
			c->io_failed = true;
			break;
		}
	}
}

static void *writer_main(void *arg)
{
	struct bench_conn *c = arg;
	long written;
	if (c->o->mode == MODE_LATENCY)
		write_on_schedule(c);
	else
		bench_write_requests(PROG, c->fd, c->n, c->o->window,
				     &c->acked, &c->io_failed, conn_request, c,
				     &written);
	return NULL;
}

/* Checks one answer line (NUL-terminated, no newline). */
static void check_answer(void *ud, char *line, int64_t t)
{
	struct bench_conn *c = ud;
	long expect = atomic_load(&c->acked);
	const char *idp = strstr(line, "\"id\":");
	long id = idp ? strtol(idp + 5, NULL, 10) : -1;
	bool ok = strstr(line, "\"ok\":true") != NULL &&
		  !strstr(line, "\"duplicate\":true");
	if (ok && c->o->mode != MODE_DELIVER)
		ok = strstr(line, c->o->at ? "\"state\":\"scheduled\""
					   : "\"state\":\"queued\"") != NULL;
	if (ok && c->o->mode == MODE_DELIVER)
		ok = strstr(line, "\"state\":\"scheduled\"") ||
		     strstr(line, "\"state\":\"queued\"");
	if (id != expect) {
		c->misordered++;
		ok = false;
	}
	if (!ok)
		bench_error(&c->err, "connection %d, answer %ld (expected id "
			    "%ld): %.200s", c->index, expect, expect, line);
	if (c->latency_ns && expect < c->n)
		c->latency_ns[expect] = t - c->planned_ns[expect];
	c->last_ack_ns = t;
	atomic_store(&c->acked, expect + 1);
}

static void *reader_main(void *arg)
{
	struct bench_conn *c = arg;
	char why[96];
	if (bench_read_answers(PROG, c->fd, &c->acked, c->n, check_answer, c,
			       why, sizeof why)) {
		bench_error(&c->err, "connection %d: %s", c->index, why);
		c->io_failed = true;
	}
	return NULL;
}

/* Opens the connections, runs them, and joins them. Returns the monotonic
 * start instant (first write) in *t_start. */
static void run_conns(struct bench_conn *conns, int n, int64_t *t_start)
{
	pthread_t writers[BENCH_MAX_CLIENTS], readers[BENCH_MAX_CLIENTS];
	for (int i = 0; i < n; i++) {
		conns[i].fd = bench_connect_unix(PROG, conns[i].o->socket);
		if (conns[i].fd < 0)
			bench_die(PROG, conns[i].o->socket);
	}
	*t_start = bench_mono_ns();
	for (int i = 0; i < n; i++) {
		if (pthread_create(&readers[i], NULL, reader_main, &conns[i]) ||
		    pthread_create(&writers[i], NULL, writer_main, &conns[i]))
			bench_die(PROG, "pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(writers[i], NULL);
		pthread_join(readers[i], NULL);
		close(conns[i].fd);
	}
}

struct run_totals {
	long requests;
	long acked;
	long errors;
	long misordered;
	const char *first_error;
	int64_t last_ack_ns;
};

static void totals(struct bench_conn *conns, int n, struct run_totals *t)
{
	memset(t, 0, sizeof *t);
	for (int i = 0; i < n; i++) {
		t->requests += conns[i].n;
		t->acked += atomic_load(&conns[i].acked);
		t->errors += conns[i].err.count +
			     (conns[i].n - atomic_load(&conns[i].acked));
		t->misordered += conns[i].misordered;
		if (!t->first_error && conns[i].err.first[0])
			t->first_error = conns[i].err.first;
		if (conns[i].last_ack_ns > t->last_ack_ns)
			t->last_ack_ns = conns[i].last_ack_ns;
	}
}

static struct bench_conn *conns_new(const struct bench_opts *o)
{
	struct bench_conn *conns = calloc((size_t)o->clients, sizeof *conns);
	if (!conns)
		bench_die(PROG, "calloc");
	for (int i = 0; i < o->clients; i++) {
		conns[i].o = o;
		conns[i].index = i;
		conns[i].fd = -1;
	}
	return conns;
}

static void print_errors(const struct run_totals *t)
{
	if (t->errors)
		printf("  ERRORS: %ld unexpected answers (%ld out of order); "
		       "first: %s\n", t->errors, t->misordered,
		       t->first_error ? t->first_error : "?");
}

/* ------------------------------------------------------------ modes */

/* throughput and fill: contiguous blocks of global numbers per client. */
static int mode_throughput(const struct bench_opts *o)
{
	struct bench_conn *conns = conns_new(o);
	long per = o->count / o->clients, extra = o->count % o->clients;
	long next = 0;
	for (int i = 0; i < o->clients; i++) {
		conns[i].n = per + (i < extra ? 1 : 0);
		conns[i].first = next;
		conns[i].stride = 1;
		next += conns[i].n;
	}
	struct daemon_stats before, after;
	stats_or_die(o, &before);
	int64_t t0;
	run_conns(conns, o->clients, &t0);
	struct run_totals t;
	totals(conns, o->clients, &t);
	stats_or_die(o, &after);
	double secs = (double)(t.last_ack_ns - t0) / 1e9;
	double rate = secs > 0 ? (double)t.acked / secs : 0;
	long commits = after.commits - before.commits;
	double per_ack = t.acked ? (double)commits / (double)t.acked : 0;
	const char *name = o->mode == MODE_FILL ? "fill" : "throughput";
	printf("%s: %d clients x %ld pipelined sends (window %ld), %ld acked "
	       "in %.3f s: %.0f acks/s\n", name, o->clients, per, o->window,
	       t.acked, secs, rate);
	printf("  store commits %ld (%.4f fsyncs per ack, %.1f acks per "
	       "commit); queue_depth %ld -> %ld\n", commits, per_ack,
	       commits ? (double)t.acked / (double)commits : 0,
	       before.queue_depth, after.queue_depth);
	print_errors(&t);
	printf("result: mode=%s requests=%ld acked=%ld errors=%ld seconds=%.3f "
	       "acks_per_s=%.0f commits=%ld fsyncs_per_ack=%.5f "
	       "queue_depth=%ld\n", name, t.requests, t.acked, t.errors, secs,
	       rate, commits, per_ack, after.queue_depth);
	free(conns);
	return t.errors ? 1 : 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static double pct_ms(const int64_t *sorted, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)ceil(q * (double)n);
	if (k < 1)
		k = 1;
	return (double)sorted[k - 1] / 1e6;
}

/* latency: request i (global) is planned at t0 + i / rate; client k sends
 * i = k, k + C, k + 2C, ... */
static int mode_latency(const struct bench_opts *o)
{
	struct bench_conn *conns = conns_new(o);
	long total = (long)llround(o->rate * o->duration);
	double step_ns = 1e9 / o->rate;
	int64_t t0 = bench_mono_ns() + 200000000; /* connections open meanwhile */
	for (int i = 0; i < o->clients; i++) {
		struct bench_conn *c = &conns[i];
		c->first = i;
		c->stride = o->clients;
		c->n = total > i ? (total - i + o->clients - 1) / o->clients : 0;
		c->planned_ns = calloc((size_t)c->n + 1, sizeof *c->planned_ns);
		c->latency_ns = calloc((size_t)c->n + 1, sizeof *c->latency_ns);
		if (!c->planned_ns || !c->latency_ns)
			bench_die(PROG, "calloc");
		for (long j = 0; j < c->n; j++)
			c->planned_ns[j] =
				t0 + (int64_t)((double)(i + j * o->clients) *
					       step_ns);
	}
	struct daemon_stats before, after;
	stats_or_die(o, &before);
	int64_t started;
	run_conns(conns, o->clients, &started);
	struct run_totals t;
	totals(conns, o->clients, &t);
	stats_or_die(o, &after);

	int64_t *lat = calloc((size_t)total + 1, sizeof *lat);
	if (!lat)
		bench_die(PROG, "calloc");
	size_t n = 0;
	int64_t counted_from = t0 + (int64_t)(o->warmup * 1e9);
	for (int i = 0; i < o->clients; i++)
		for (long j = 0; j < atomic_load(&conns[i].acked); j++)
			if (conns[i].planned_ns[j] >= counted_from)
				lat[n++] = conns[i].latency_ns[j];
	qsort(lat, n, sizeof *lat, cmp_i64);
	double secs = (double)(t.last_ack_ns - t0) / 1e9;
	long commits = after.commits - before.commits;
	double per_ack = t.acked ? (double)commits / (double)t.acked : 0;
	double p50 = pct_ms(lat, n, 0.50), p90 = pct_ms(lat, n, 0.90),
	       p99 = pct_ms(lat, n, 0.99), p999 = pct_ms(lat, n, 0.999),
	       max = n ? (double)lat[n - 1] / 1e6 : 0;
	printf("latency: %.0f sends/s offered over %d connections for %.1f s "
	       "(%ld sends, %zu counted after %.1f s warm-up), achieved "
	       "%.0f acks/s\n", o->rate, o->clients, o->duration, total, n,
	       o->warmup, secs > 0 ? (double)t.acked / secs : 0);
	printf("  ack latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  "
	       "max %.3f\n", p50, p90, p99, p999, max);
	printf("  store commits %ld (%.4f fsyncs per ack)\n", commits, per_ack);
	print_errors(&t);
	printf("result: mode=latency rate=%.0f requests=%ld acked=%ld "
	       "errors=%ld p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
	       "max_ms=%.3f commits=%ld fsyncs_per_ack=%.5f\n", o->rate,
	       t.requests, t.acked, t.errors, p50, p90, p99, p999, max, commits,
	       per_ack);
	for (int i = 0; i < o->clients; i++) {
		free(conns[i].planned_ns);
		free(conns[i].latency_ns);
	}
	free(lat);
	free(conns);
	return t.errors ? 1 : 0;
}

/* deliver: queue, then poll stats until every channel has sent its share. */
static int mode_deliver(struct bench_opts *o)
{
	int64_t start_wall = bench_wall_ns();
	time_t due = (time_t)((start_wall / 1000000000) +
			      (int64_t)ceil(o->at_delay));
	char at[64];
	format_rfc3339(due, at, sizeof at);
	o->at = at;
	long want[BCH_COUNT] = { 0 };
	for (long g = 0; g < o->count; g++)
		want[o->channels[g % o->n_channels]]++;

	struct bench_conn *conns = conns_new(o);
	long per = o->count / o->clients, extra = o->count % o->clients;
	long next = 0;
	for (int i = 0; i < o->clients; i++) {
		conns[i].n = per + (i < extra ? 1 : 0);
		conns[i].first = next;
		conns[i].stride = 1;
		next += conns[i].n;
	}
	struct daemon_stats before, now;
	stats_or_die(o, &before);
	int64_t t0;
	run_conns(conns, o->clients, &t0);
	struct run_totals t;
	totals(conns, o->clients, &t);
	double intake_s = (double)(t.last_ack_ns - t0) / 1e9;
	int64_t due_wall = (int64_t)due * 1000000000;
	int64_t queued_wall = bench_wall_ns();
	printf("deliver: %ld jobs queued in %.3f s, all due at %s (%.3f s "
	       "after the last ack)\n", t.acked, intake_s, at,
	       (double)(due_wall - queued_wall) / 1e9);
	if (queued_wall > due_wall)
		printf("  WARNING: queueing ended after the due instant; raise "
		       "--at-delay (delivery overlapped intake)\n");
	print_errors(&t);

	double done_s[BCH_COUNT] = { 0 };
	bool done[BCH_COUNT];
	int remaining = 0;
	for (int ch = 0; ch < BCH_COUNT; ch++) {
		done[ch] = want[ch] == 0;
		remaining += !done[ch];
	}
	int64_t deadline = bench_wall_ns() + (int64_t)(o->timeout * 1e9);
	long last_sent[BCH_COUNT] = { 0 };
	while (remaining > 0 && bench_wall_ns() < deadline) {
		int64_t poll_ns = (int64_t)(o->poll_ms * 1e6);
		struct timespec ts = { poll_ns / 1000000000,
				       poll_ns % 1000000000 };
		nanosleep(&ts, NULL);
		if (stats_get(o->socket, &now) != 0)
			continue;
		int64_t tw = bench_wall_ns();
		for (int ch = 0; ch < BCH_COUNT; ch++) {
			last_sent[ch] = now.sent[ch] - before.sent[ch];
			if (!done[ch] && last_sent[ch] >= want[ch]) {
				done[ch] = true;
				done_s[ch] = (double)(tw - due_wall) / 1e9;
				remaining--;
			}
		}
	}
	double all_s = 0;
	long all = 0;
	int status = t.errors ? 1 : 0;
	printf("  delivery from the due instant (stats polled every %.0f ms):\n",
	       o->poll_ms);
	char res[512];
	size_t rl = 0;
	for (int ch = 0; ch < BCH_COUNT; ch++) {
		if (want[ch] == 0)
			continue;
		if (!done[ch]) {
			printf("  %-5s TIMEOUT: %ld of %ld sent after %.0f s\n",
			       channel_names[ch], last_sent[ch], want[ch],
			       o->timeout);
			status = 1;
			continue;
		}
		double r = done_s[ch] > 0 ? (double)want[ch] / done_s[ch] : 0;
		printf("  %-5s %ld sent in %.3f s: %.0f msgs/s\n",
		       channel_names[ch], want[ch], done_s[ch], r);
		rl += (size_t)snprintf(res + rl, sizeof res - rl,
				       " %s_msgs_per_s=%.0f %s_seconds=%.3f",
				       channel_names[ch], r, channel_names[ch],
				       done_s[ch]);
		if (done_s[ch] > all_s)
			all_s = done_s[ch];
		all += want[ch];
	}
	double all_rate = all_s > 0 ? (double)all / all_s : 0;
	if (remaining == 0)
		printf("  all   %ld sent in %.3f s: %.0f msgs/s\n", all, all_s,
		       all_rate);
	printf("result: mode=deliver requests=%ld acked=%ld errors=%ld "
	       "intake_seconds=%.3f total_msgs_per_s=%.0f%s\n", t.requests,
	       t.acked, t.errors, intake_s, remaining ? 0.0 : all_rate, res);
	free(conns);
	return status;
}

/* Entries in a directory (names not starting with '.'), or a file's size;
 * 0 when it does not exist. */
static long watch_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return (long)st.st_size;
	DIR *d = opendir(path);
	if (!d)
		return 0;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The watcher: a child of the daemon-to-be, timing from t0. */
static int restart_watch(const struct bench_opts *o, pid_t daemon, int64_t t0,
			 long initial)
{
	double ready_ms = -1, first_ms = -1;
	int64_t deadline = t0 + (int64_t)(o->timeout * 1e9);
	while (bench_mono_ns() < deadline && (ready_ms < 0 || first_ms < 0) &&
	       kill(daemon, 0) == 0) {
		if (first_ms < 0 && watch_size(o->watch) > initial)
			first_ms = (double)(bench_mono_ns() - t0) / 1e6;
		if (ready_ms < 0) {
			char ans[256];
			if (bench_roundtrip(PROG, o->socket, "{\"op\":\"ping\"}\n", ans,
				      sizeof ans) == 0 &&
			    strstr(ans, "\"ok\":true"))
				ready_ms = (double)(bench_mono_ns() - t0) / 1e6;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	printf("restart: pid %ld, socket answering after %.1f ms, first "
	       "delivery (%s) after %.1f ms\n", (long)daemon, ready_ms,
	       o->watch, first_ms);
	printf("result: mode=restart pid=%ld ready_ms=%.1f first_delivery_ms=%.1f"
	       "\n", (long)daemon, ready_ms, first_ms);
	return ready_ms < 0 || first_ms < 0 ? 1 : 0;
}

/* This process becomes the daemon (exec, same pid, so whoever started the
 * bench can signal and wait for it); a forked child watches and reports. */
static int mode_restart(const struct bench_opts *o)
{
	long initial = watch_size(o->watch);
	fflush(NULL);
	pid_t self = getpid();
	int64_t t0 = bench_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		bench_die(PROG, "fork");
	if (pid == 0)
		_exit(restart_watch(o, self, t0, initial));
	if (o->log) {
		int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
	}
	execvp(o->exec_argv[0], o->exec_argv);
	bench_die(PROG, o->exec_argv[0]);
	return 2;
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
	fprintf(stderr,
		"usage: intake_bench MODE [options] [-- DAEMON ARGS (restart)]\n"
		"modes: throughput | fill | latency | deliver | restart\n"
		"  --socket PATH     intake socket (required)\n"
		"  --clients C       connections (default 4)\n"
		"  --count N         sends in total (default 100000)\n"
		"  --window W        most unanswered per connection, 0 none "
		"(default 4096)\n"
		"  --tag T           key/user prefix, [A-Za-z0-9_-] "
		"(default pid)\n"
		"  --at RFC3339      due time of the jobs (default "
		"2099-01-01T00:00:00Z; \"now\": due now)\n"
		"  --channels LIST   e.g. email,sms,push (default email)\n"
		"  --rate R --duration S --warmup S     latency (5000, 6, 1)\n"
		"  --at-delay S      deliver: due S s after start (default 5)\n"
		"  --timeout S       deliver/restart: give up after S s "
		"(default 300)\n"
		"  --poll-ms MS      deliver: stats polling interval (default "
		"50; each poll\n"
		"                    counts every job, so polling too often "
		"slows delivery)\n"
		"  --watch PATH --log FILE              restart\n");
	exit(2);
}

static double num_arg(const char *opt, const char *v)
{
	char *end = NULL;
	double d = strtod(v, &end);
	if (!end || *end || !(d >= 0)) {
		fprintf(stderr, "intake_bench: %s: expected a number >= 0, got "
			"\"%s\"\n", opt, v);
		exit(2);
	}
	return d;
}

static void parse_channels(struct bench_opts *o, const char *list)
{
	o->n_channels = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		int found = -1;
		for (int ch = 0; ch < BCH_COUNT; ch++)
			if (strlen(channel_names[ch]) == len &&
			    strncmp(p, channel_names[ch], len) == 0)
				found = ch;
		if (found < 0 || o->n_channels == BCH_COUNT) {
			fprintf(stderr, "intake_bench: --channels: unknown or "
				"repeated channel in \"%s\"\n", list);
			exit(2);
		}
		o->channels[o->n_channels++] = found;
		p += len;
		if (*p == ',')
			p++;
	}
	if (o->n_channels == 0)
		usage();
}

int main(int argc, char **argv)
{
	static char tagbuf[32];
	struct bench_opts o = {
		.clients = 4, .count = 100000, .window = 4096, .rate = 5000,
		.duration = 6,
		.warmup = 1, .at = "2099-01-01T00:00:00Z", .at_delay = 5,
		.timeout = 300, .poll_ms = 50, .n_channels = 1,
		.channels = { BCH_EMAIL },
	};
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	if (strcmp(mode, "throughput") == 0)
		o.mode = MODE_THROUGHPUT;
	else if (strcmp(mode, "fill") == 0)
		o.mode = MODE_FILL;
	else if (strcmp(mode, "latency") == 0)
		o.mode = MODE_LATENCY;
	else if (strcmp(mode, "deliver") == 0)
		o.mode = MODE_DELIVER;
	else if (strcmp(mode, "restart") == 0)
		o.mode = MODE_RESTART;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			o.exec_argv = &argv[i + 1];
			break;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--socket") == 0)
			o.socket = v;
		else if (strcmp(a, "--clients") == 0)
			o.clients = (int)num_arg(a, v);
		else if (strcmp(a, "--count") == 0)
			o.count = (long)num_arg(a, v);
		else if (strcmp(a, "--window") == 0)
			o.window = (long)num_arg(a, v);
		else if (strcmp(a, "--rate") == 0)
			o.rate = num_arg(a, v);
		else if (strcmp(a, "--duration") == 0)
			o.duration = num_arg(a, v);
		else if (strcmp(a, "--warmup") == 0)
			o.warmup = num_arg(a, v);
		else if (strcmp(a, "--at-delay") == 0)
			o.at_delay = num_arg(a, v);
		else if (strcmp(a, "--timeout") == 0)
			o.timeout = num_arg(a, v);
		else if (strcmp(a, "--poll-ms") == 0)
			o.poll_ms = num_arg(a, v);
		else if (strcmp(a, "--tag") == 0)
			o.tag = v;
		else if (strcmp(a, "--at") == 0)
			o.at = strcmp(v, "now") == 0 ? NULL : v;
		else if (strcmp(a, "--channels") == 0)
			parse_channels(&o, v);
		else if (strcmp(a, "--watch") == 0)
			o.watch = v;
		else if (strcmp(a, "--log") == 0)
			o.log = v;
		else
			usage();
	}
	if (!o.socket || o.clients < 1 || o.clients > BENCH_MAX_CLIENTS ||
	    (o.mode == MODE_LATENCY && (o.rate <= 0 || o.duration <= 0)) ||
	    (o.mode == MODE_RESTART && (!o.watch || !o.exec_argv ||
					!o.exec_argv[0])))
		usage();
	if (!o.tag) {
		snprintf(tagbuf, sizeof tagbuf, "b%ld", (long)getpid());
		o.tag = tagbuf;
	}
	if (strspn(o.tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_-") != strlen(o.tag) ||
	    strlen(o.tag) > 64) {
		fprintf(stderr, "intake_bench: --tag: use at most 64 of "
			"[A-Za-z0-9_-]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	switch (o.mode) {
	case MODE_LATENCY:
		return mode_latency(&o);
	case MODE_DELIVER:
		return mode_deliver(&o);
	case MODE_RESTART:
		return mode_restart(&o);
	default:
		return mode_throughput(&o);
	}
}
