/* enroll_bench.c: load generator for drip-sequence enrollments (issue 6).
 *
 * DESIGN
 * - Each client is one Unix-socket connection with two threads: a writer
 *   that pipelines request lines without waiting (at most --window of them
 *   unanswered, below the daemon's per-connection cap), and a reader that
 *   checks every answer as it arrives: "ok":true, no "duplicate", the echoed
 *   "id" equal to the next one expected on that connection (answers come
 *   back in request order), and for `enroll` an "enrollment" id.
 * - Modes:
 *   enroll  C clients pipeline N `enroll` requests in total into --sequence;
 *           user, email, phone and fcm token are distinct per request
 *           (--tag plus a global number), so no enrollment is a duplicate.
 *   send    the same machinery with plain `send` requests rotating over
 *           --channels (the same templates, recipients and vars a sequence
 *           step gets), due --at or now: the reference an enroll is set
 *           against (one enroll writes one job per step, a send one job).
 * - The clock starts at the first write and the ack rate ends at the last
 *   ack. With --wait the run goes on until the daemon's `stats` "sent"
 *   counters have grown by the expected number per channel (send: the
 *   rotation's share; enroll: N per occurrence of the channel in --steps),
 *   polled every --poll-ms after the last ack: delivered/s end to end
 *   (first write to the poll that saw the last one) and drained/s after the
 *   last ack. A stats request counts every job row, so each poll's round
 *   trip is timed and reported (it grows with the table).
 * - --progress S prints acks so far every S seconds to stderr, for long
 *   fills. The last acked enrollment's `status` is read at the end and its
 *   steps' states printed (a cross-check that the steps exist).
 * - --stats 0 sends nothing but the load: no stats before or after, no
 *   status. For memory measurements: the daemon's stats query sorts every
 *   job row in memory on its read connection, and the allocator keeps
 *   that peak, so a stats request would be measured with the enrollments.
 * - Output: human lines, then one "result:" line of key=value pairs for
 *   scripts. Exit status 0 when every answer was as expected (and, with
 *   --wait, everything was delivered in time), 1 otherwise, 2 on usage or
 *   connection errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define PROG "enroll_bench"

#define EB_MAX_CLIENTS 256
#define EB_MAX_STEPS 16
#define EB_ID_MAX 64

enum eb_mode { MODE_ENROLL, MODE_SEND };

enum eb_channel { EB_EMAIL, EB_SMS, EB_PUSH, EB_COUNT };

static const char *const channel_names[EB_COUNT] = { "email", "sms", "push" };
static const char *const channel_templates[EB_COUNT] = {
	"winback", "coupon_expiring", "miss_you"
};

struct eb_opts {
	enum eb_mode mode;
	const char *socket;
	int clients;
	long count;
	long window;             /* most unanswered per connection, 0: none */
	const char *tag;
	const char *sequence;    /* enroll */
	const char *at;          /* send: RFC 3339, or NULL for due now */
	int channels[EB_COUNT];  /* send: the rotation */
	int n_channels;
	int steps[EB_MAX_STEPS]; /* enroll: the sequence's step channels */
	int n_steps;
	bool wait;               /* wait for delivery */
	double poll_ms;
	double timeout;
	double progress;         /* seconds between progress lines, 0: none */
	bool stats;              /* stats before and after (commits, depth) */
};

struct eb_conn {
	const struct eb_opts *o;
	int index;
	int fd;
	long n;                  /* requests on this connection */
	long first;              /* global number of its first request */
	_Atomic long acked;
	struct bench_errors err;
	long misordered;
	char last_enrollment[EB_ID_MAX];
	int64_t last_ack_ns;
	_Atomic bool io_failed;
	_Atomic bool finished;
};

struct eb_stats {
	long commits;
	long queue_depth;
	long sent[EB_COUNT];
};

/* ------------------------------------------------------------ stats */

/* The integer after "key": at or after `from`, or -1. */
static long json_long_after(const char *from, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = from ? strstr(from, pat) : NULL;
	if (!p)
		return -1;
	return strtol(p + strlen(pat), NULL, 10);
}

/* One stats round trip; its duration in *ms when ms is not NULL. */
static int stats_get(const char *socket_path, struct eb_stats *st, double *ms)
{
	char ans[8192];
	int64_t t0 = bench_mono_ns();
	if (bench_roundtrip(PROG, socket_path, "{\"op\":\"stats\"}\n", ans,
			    sizeof ans) != 0 ||
	    !strstr(ans, "\"ok\":true"))
		return -1;
	if (ms)
		*ms = (double)(bench_mono_ns() - t0) / 1e6;
	st->commits = json_long_after(ans, "store_commits");
	st->queue_depth = json_long_after(ans, "queue_depth");
	const char *sent = strstr(ans, "\"sent\":{");
	for (int ch = 0; ch < EB_COUNT; ch++)
		st->sent[ch] = json_long_after(sent, channel_names[ch]);
	return 0;
}

static void stats_or_die(const struct eb_opts *o, struct eb_stats *st)
{
	if (stats_get(o->socket, st, NULL) != 0) {
		fprintf(stderr, "%s: stats from %s failed\n", PROG, o->socket);
		exit(2);
	}
}

/* ------------------------------------------------------------ requests */

static const char eb_vars_fmt[] =
	"\"vars\":{\"name\":\"User %ld\",\"brand\":\"Shop\",\"amount\":"
	"\"$20\",\"expiry\":\"Dec 31\",\"link\":"
	"\"https://shop.example/c/%ld\"}";

static int format_enroll(const struct eb_opts *o, long global, long id,
			 char *buf, size_t cap)
{
	char vars[256];
	snprintf(vars, sizeof vars, eb_vars_fmt, global, global);
	int n = snprintf(buf, cap,
			 "{\"op\":\"enroll\",\"id\":%ld,\"user\":\"%s-u%ld\","
			 "\"sequence\":\"%s\",\"contact\":{\"email\":"
			 "\"u%ld.%s@bench.example\",\"phone\":\"+1555%07ld\","
			 "\"push\":[{\"platform\":\"fcm\",\"token\":"
			 "\"tok-%s-%ld\"}]},%s}\n",
			 id, o->tag, global, o->sequence, global, o->tag,
			 global % 10000000, o->tag, global, vars);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static int format_send(const struct eb_opts *o, long global, long id,
		       char *buf, size_t cap)
{
	int ch = o->channels[global % o->n_channels];
	char to[160], at[64] = "", vars[256];
	switch (ch) {
	case EB_SMS:
		snprintf(to, sizeof to, "\"+1555%07ld\"", global % 10000000);
		break;
	case EB_PUSH:
		snprintf(to, sizeof to,
			 "{\"platform\":\"fcm\",\"token\":\"tok-%s-%ld\"}",
			 o->tag, global);
		break;
	default:
		snprintf(to, sizeof to, "\"u%ld.%s@bench.example\"", global,
			 o->tag);
	}
	if (o->at)
		snprintf(at, sizeof at, ",\"at\":\"%s\"", o->at);
	snprintf(vars, sizeof vars, eb_vars_fmt, global, global);
	int n = snprintf(buf, cap,
			 "{\"op\":\"send\",\"id\":%ld,\"key\":\"%s-%ld\","
			 "\"user\":\"%s-u%ld\",\"channel\":\"%s\",\"to\":%s,"
			 "\"template\":\"%s\",%s%s}\n",
			 id, o->tag, global, o->tag, global, channel_names[ch],
			 to, channel_templates[ch], vars, at);
	return n > 0 && (size_t)n < cap ? n : -1;
}

static int format_request(const struct eb_opts *o, long global, long id,
			  char *buf, size_t cap)
{
	return o->mode == MODE_ENROLL ? format_enroll(o, global, id, buf, cap)
				      : format_send(o, global, id, buf, cap);
}

/* ------------------------------------------------------------ threads */

/* bench_format_fn: request j of connection ud */
static int conn_request(void *ud, long j, char *buf, size_t cap)
{
	const struct eb_conn *c = ud;
	return format_request(c->o, c->first + j, j, buf, cap);
}

static void *writer_main(void *arg)
{
	struct eb_conn *c = arg;
	long written;
	bench_write_requests(PROG, c->fd, c->n, c->o->window, &c->acked,
			     &c->io_failed, conn_request, c, &written);
	return NULL;
}

/* Checks one answer line (NUL-terminated, no newline). */
static void check_answer(void *ud, char *line, int64_t t)
{
	struct eb_conn *c = ud;
	long expect = atomic_load(&c->acked);
	const char *idp = strstr(line, "\"id\":");
	long id = idp ? strtol(idp + 5, NULL, 10) : -1;
	bool ok = strstr(line, "\"ok\":true") != NULL &&
		  !strstr(line, "\"duplicate\":true");
	if (ok && c->o->mode == MODE_ENROLL) {
		const char *e = strstr(line, "\"enrollment\":\"");
		size_t len = e ? strcspn(e + 14, "\"") : 0;
		ok = len > 0 && len < EB_ID_MAX;
		if (ok) {
			memcpy(c->last_enrollment, e + 14, len);
			c->last_enrollment[len] = '\0';
		}
	} else if (ok) {
		ok = strstr(line, c->o->at ? "\"state\":\"scheduled\""
					   : "\"state\":\"queued\"") != NULL;
	}
	if (id != expect) {
		c->misordered++;
		ok = false;
	}
	if (!ok)
		bench_error(&c->err, "connection %d, answer %ld: %.200s",
			    c->index, expect, line);
	c->last_ack_ns = t;
	atomic_store(&c->acked, expect + 1);
}

static void *reader_main(void *arg)
{
	struct eb_conn *c = arg;
	char why[96];
	if (bench_read_answers(PROG, c->fd, &c->acked, c->n, check_answer, c,
			       why, sizeof why)) {
		bench_error(&c->err, "connection %d: %s", c->index, why);
		atomic_store(&c->io_failed, true);
	}
	atomic_store(&c->finished, true);
	return NULL;
}

static long acked_total(struct eb_conn *conns, int n)
{
	long a = 0;
	for (int i = 0; i < n; i++)
		a += atomic_load(&conns[i].acked);
	return a;
}

/* Opens the connections, runs them (printing progress meanwhile), joins
 * them. The monotonic instant of the first write goes to *t_start. */
static void run_conns(const struct eb_opts *o, struct eb_conn *conns,
		      int64_t *t_start)
{
	pthread_t writers[EB_MAX_CLIENTS], readers[EB_MAX_CLIENTS];
	int n = o->clients;
	for (int i = 0; i < n; i++) {
		conns[i].fd = bench_connect_unix(PROG, o->socket);
		if (conns[i].fd < 0)
			bench_die(PROG, o->socket);
	}
	*t_start = bench_mono_ns();
	for (int i = 0; i < n; i++) {
		if (pthread_create(&readers[i], NULL, reader_main, &conns[i]) ||
		    pthread_create(&writers[i], NULL, writer_main, &conns[i]))
			bench_die(PROG, "pthread_create");
	}
	int64_t next = *t_start + (int64_t)(o->progress * 1e9);
	long prev = 0;
	int64_t prev_t = *t_start;
	for (;;) {
		bool all = true;
		for (int i = 0; i < n; i++)
			all = all && atomic_load(&conns[i].finished);
		if (all)
			break;
		bench_sleep_ms(20);
		int64_t now = bench_mono_ns();
		if (o->progress > 0 && now >= next) {
			long a = acked_total(conns, n);
			fprintf(stderr, "  %s: %ld of %ld acked after %.0f s "
				"(%.0f acks/s over the last %.0f s)\n",
				o->mode == MODE_ENROLL ? "enroll" : "send", a,
				o->count, (double)(now - *t_start) / 1e9,
				(double)(a - prev) * 1e9 /
					(double)(now - prev_t),
				(double)(now - prev_t) / 1e9);
			prev = a;
			prev_t = now;
			next = now + (int64_t)(o->progress * 1e9);
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_join(writers[i], NULL);
		pthread_join(readers[i], NULL);
		close(conns[i].fd);
	}
}

/* ------------------------------------------------------------ checks */

/* The last enrollment's steps as "channel:state,..." into out. */
static void enrollment_steps(const struct eb_opts *o, const char *id,
			     char *out, size_t cap, int *n_steps)
{
	char req[160], ans[16384];
	*n_steps = 0;
	snprintf(out, cap, "?");
	snprintf(req, sizeof req, "{\"op\":\"status\",\"enrollment\":\"%s\"}\n",
		 id);
	if (bench_roundtrip(PROG, o->socket, req, ans, sizeof ans) != 0 ||
	    !strstr(ans, "\"ok\":true"))
		return;
	const char *p = strstr(ans, "\"steps\":[");
	size_t used = 0;
	out[0] = '\0';
	while (p && (p = strstr(p, "\"channel\":\""))) {
		p += 11;
		size_t cl = strcspn(p, "\"");
		const char *s = strstr(p, "\"state\":\"");
		if (!s)
			break;
		s += 9;
		size_t sl = strcspn(s, "\"");
		int w = snprintf(out + used, cap - used, "%s%.*s:%.*s",
				 used ? "," : "", (int)cl, p, (int)sl, s);
		if (w < 0 || (size_t)w >= cap - used)
			break;
		used += (size_t)w;
		(*n_steps)++;
		p = s;
	}
}

/* ------------------------------------------------------------ the run */

static int run(struct eb_opts *o)
{
	long want[EB_COUNT] = { 0 };
	if (o->mode == MODE_ENROLL) {
		for (int i = 0; i < o->n_steps; i++)
			want[o->steps[i]] += o->count;
	} else {
		for (long g = 0; g < o->count; g++)
			want[o->channels[g % o->n_channels]]++;
	}
	long want_all = want[EB_EMAIL] + want[EB_SMS] + want[EB_PUSH];

	struct eb_conn *conns = calloc((size_t)o->clients, sizeof *conns);
	if (!conns)
		bench_die(PROG, "calloc");
	long per = o->count / o->clients, extra = o->count % o->clients;
	long next = 0;
	for (int i = 0; i < o->clients; i++) {
		conns[i].o = o;
		conns[i].index = i;
		conns[i].fd = -1;
		conns[i].n = per + (i < extra ? 1 : 0);
		conns[i].first = next;
		next += conns[i].n;
		if (conns[i].n == 0)
			atomic_store(&conns[i].finished, true);
	}
	struct eb_stats before = { 0 }, at_last = { 0 }, now;
	if (o->stats || o->wait)
		stats_or_die(o, &before);
	int64_t t0;
	run_conns(o, conns, &t0);

	long requests = 0, acked = 0, errors = 0, misordered = 0;
	int64_t last_ack = t0;
	const char *first_error = NULL, *last_enrollment = NULL;
	for (int i = 0; i < o->clients; i++) {
		long a = atomic_load(&conns[i].acked);
		requests += conns[i].n;
		acked += a;
		errors += conns[i].err.count + (conns[i].n - a);
		misordered += conns[i].misordered;
		if (!first_error && conns[i].err.first[0])
			first_error = conns[i].err.first;
		if (conns[i].last_ack_ns > last_ack)
			last_ack = conns[i].last_ack_ns;
		if (conns[i].last_enrollment[0])
			last_enrollment = conns[i].last_enrollment;
	}
	double stats_ms = 0;
	if (o->stats || o->wait)
		stats_or_die(o, &at_last);
	double secs = (double)(last_ack - t0) / 1e9;
	double rate = secs > 0 ? (double)acked / secs : 0;
	long commits = at_last.commits - before.commits;
	const char *what = o->mode == MODE_ENROLL ? "enrolls" : "sends";
	printf("%s: %d clients x %ld pipelined %s (window %ld), %ld acked in "
	       "%.3f s: %.0f acks/s\n", o->mode == MODE_ENROLL ? "enroll" : "send",
	       o->clients, per, what, o->window, acked, secs, rate);
	if (o->stats || o->wait)
		printf("  store commits %ld (%.1f acks per commit); queue_depth "
		       "%ld -> %ld\n", commits,
		       commits ? (double)acked / (double)commits : 0,
		       before.queue_depth, at_last.queue_depth);
	if (errors)
		printf("  ERRORS: %ld unexpected answers (%ld out of order); "
		       "first: %s\n", errors, misordered,
		       first_error ? first_error : "?");

	int status = errors ? 1 : 0;
	long sent_at_last = 0;
	for (int ch = 0; ch < EB_COUNT; ch++)
		sent_at_last += at_last.sent[ch] - before.sent[ch];
	double done_s[EB_COUNT] = { 0 }, all_s = 0, drain_s = 0;
	double poll_max = 0, poll_sum = 0;
	long polls = 0, got_all = 0;
	bool delivered = false;
	char res[512] = "";
	if (o->wait && want_all > 0) {
		bool done[EB_COUNT];
		int remaining = 0;
		for (int ch = 0; ch < EB_COUNT; ch++) {
			done[ch] = want[ch] == 0;
			remaining += !done[ch];
		}
		long got[EB_COUNT] = { 0 };
		int64_t deadline = last_ack + (int64_t)(o->timeout * 1e9);
		memcpy(&now, &at_last, sizeof now);
		for (;;) {
			int64_t tp = bench_mono_ns();
			got_all = 0;
			for (int ch = 0; ch < EB_COUNT; ch++) {
				got[ch] = now.sent[ch] - before.sent[ch];
				got_all += got[ch];
				if (!done[ch] && got[ch] >= want[ch]) {
					done[ch] = true;
					done_s[ch] = (double)(tp - t0) / 1e9;
					remaining--;
				}
			}
			if (remaining == 0 || tp >= deadline)
				break;
			bench_sleep_ms((long)o->poll_ms);
			if (stats_get(o->socket, &now, &stats_ms) != 0)
				continue;
			polls++;
			poll_sum += stats_ms;
			if (stats_ms > poll_max)
				poll_max = stats_ms;
		}
		delivered = remaining == 0;
		printf("  delivery of %ld jobs (stats polled every %.0f ms after "
		       "the last ack; %ld polls, round trip mean %.1f ms, max "
		       "%.1f ms):\n", want_all, o->poll_ms, polls,
		       polls ? poll_sum / (double)polls : 0, poll_max);
		printf("  %ld already sent at the last ack (%.0f%%)\n",
		       sent_at_last, 100.0 * (double)sent_at_last /
					     (double)want_all);
		size_t rl = 0;
		for (int ch = 0; ch < EB_COUNT; ch++) {
			if (want[ch] == 0)
				continue;
			if (!done[ch]) {
				printf("  %-5s TIMEOUT: %ld of %ld sent %.0f s "
				       "after the last ack\n", channel_names[ch],
				       got[ch], want[ch], o->timeout);
				continue;
			}
			printf("  %-5s %ld sent %.3f s after the first request"
			       ": %.0f/s\n", channel_names[ch], want[ch],
			       done_s[ch], (double)want[ch] / done_s[ch]);
			rl += (size_t)snprintf(res + rl, sizeof res - rl,
					       " %s_seconds=%.3f",
					       channel_names[ch], done_s[ch]);
			if (done_s[ch] > all_s)
				all_s = done_s[ch];
		}
		if (delivered) {
			drain_s = all_s - secs;
			printf("  all   %ld sent %.3f s after the first request: "
			       "%.0f delivered/s end to end; the %ld left at "
			       "the last ack drained in %.3f s: %.0f/s\n",
			       want_all, all_s, (double)want_all / all_s,
			       want_all - sent_at_last, drain_s,
			       drain_s > 0 ? (double)(want_all - sent_at_last) /
						     drain_s
					   : 0);
		} else {
			status = 1;
		}
	}

	char steps[512] = "";
	int n_steps = 0;
	if (last_enrollment && o->stats) {
		enrollment_steps(o, last_enrollment, steps, sizeof steps,
				 &n_steps);
		printf("  last enrollment %s: %d steps (%s)\n", last_enrollment,
		       n_steps, steps);
	}
	printf("result: mode=%s requests=%ld acked=%ld errors=%ld seconds=%.3f "
	       "acks_per_s=%.0f", o->mode == MODE_ENROLL ? "enroll" : "send",
	       requests, acked, errors, secs, rate);
	if (o->stats || o->wait)
		printf(" commits=%ld queue_depth=%ld", commits,
		       at_last.queue_depth);
	if (o->mode == MODE_ENROLL && o->stats)
		printf(" last_steps=%d", n_steps);
	if (o->wait)
		printf(" expected=%ld delivered=%d sent=%ld sent_at_last_ack=%ld"
		       " deliver_seconds=%.3f delivered_per_s=%.0f "
		       "drain_per_s=%.0f stats_ms_max=%.1f%s", want_all,
		       delivered, got_all, sent_at_last, all_s,
		       delivered && all_s > 0 ? (double)want_all / all_s : 0,
		       delivered && drain_s > 0
			       ? (double)(want_all - sent_at_last) / drain_s
			       : 0,
		       poll_max, res);
	printf("\n");
	free(conns);
	return status;
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
	fprintf(stderr,
		"usage: enroll_bench enroll|send [options]\n"
		"  --socket PATH     intake socket (required)\n"
		"  --clients C       connections (default 4)\n"
		"  --count N         requests in total (default 100000)\n"
		"  --window W        most unanswered per connection, 0 none "
		"(default 4096)\n"
		"  --tag T           user/key/address prefix, [A-Za-z0-9_-] "
		"(default pid)\n"
		"  --sequence NAME   enroll: the sequence (default bench)\n"
		"  --steps LIST      enroll: its steps' channels, e.g. "
		"email,sms,push (the\n"
		"                    deliveries --wait expects; default "
		"email,sms,push)\n"
		"  --channels LIST   send: the rotation (default "
		"email,sms,push)\n"
		"  --at RFC3339|now  send: due time (default now)\n"
		"  --wait 0|1        wait until stats' sent counters show every "
		"job sent\n"
		"  --poll-ms MS      --wait: stats interval (default 200)\n"
		"  --timeout S       --wait: give up S s after the last ack "
		"(default 300)\n"
		"  --progress S      acks so far to stderr every S s (default "
		"0: none)\n"
		"  --stats 0|1       stats before and after, and the last "
		"enrollment's status\n"
		"                    (default 1; 0 leaves the daemon's read "
		"connection idle,\n"
		"                    for memory measurements; --wait needs "
		"stats)\n");
	exit(2);
}

static double num_arg(const char *opt, const char *v)
{
	char *end = NULL;
	double d = strtod(v, &end);
	if (!end || end == v || *end || !(d >= 0)) {
		fprintf(stderr, "%s: %s: expected a number >= 0, got \"%s\"\n",
			PROG, opt, v);
		exit(2);
	}
	return d;
}

/* "email,sms,push" into out[]; repeats allowed when `repeats`. */
static int parse_channels(const char *opt, const char *list, int *out,
			  int cap, bool repeats)
{
	int n = 0;
	const char *p = list;
	while (*p) {
		size_t len = strcspn(p, ",");
		int found = -1;
		for (int ch = 0; ch < EB_COUNT; ch++)
			if (strlen(channel_names[ch]) == len &&
			    strncmp(p, channel_names[ch], len) == 0)
				found = ch;
		for (int i = 0; !repeats && found >= 0 && i < n; i++)
			if (out[i] == found)
				found = -1;
		if (found < 0 || n == cap) {
			fprintf(stderr, "%s: %s: unknown%s channel in \"%s\"\n",
				PROG, opt, repeats ? "" : " or repeated", list);
			exit(2);
		}
		out[n++] = found;
		p += len;
		if (*p == ',')
			p++;
	}
	if (n == 0)
		usage();
	return n;
}

int main(int argc, char **argv)
{
	static char tagbuf[32];
	struct eb_opts o = {
		.clients = 4, .count = 100000, .window = 4096,
		.sequence = "bench", .poll_ms = 200, .timeout = 300,
		.channels = { EB_EMAIL, EB_SMS, EB_PUSH }, .n_channels = 3,
		.steps = { EB_EMAIL, EB_SMS, EB_PUSH }, .n_steps = 3,
		.stats = true,
	};
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "enroll") == 0)
		o.mode = MODE_ENROLL;
	else if (strcmp(argv[1], "send") == 0)
		o.mode = MODE_SEND;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
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
		else if (strcmp(a, "--tag") == 0)
			o.tag = v;
		else if (strcmp(a, "--sequence") == 0)
			o.sequence = v;
		else if (strcmp(a, "--steps") == 0)
			o.n_steps = parse_channels(a, v, o.steps, EB_MAX_STEPS,
						   true);
		else if (strcmp(a, "--channels") == 0)
			o.n_channels = parse_channels(a, v, o.channels,
						      EB_COUNT, false);
		else if (strcmp(a, "--at") == 0)
			o.at = strcmp(v, "now") == 0 ? NULL : v;
		else if (strcmp(a, "--wait") == 0)
			o.wait = num_arg(a, v) != 0;
		else if (strcmp(a, "--poll-ms") == 0)
			o.poll_ms = num_arg(a, v);
		else if (strcmp(a, "--timeout") == 0)
			o.timeout = num_arg(a, v);
		else if (strcmp(a, "--stats") == 0)
			o.stats = num_arg(a, v) != 0;
		else if (strcmp(a, "--progress") == 0)
			o.progress = num_arg(a, v);
		else
			usage();
	}
	if (!o.socket || o.clients < 1 || o.clients > EB_MAX_CLIENTS ||
	    o.count < 1)
		usage();
	if (!o.tag) {
		snprintf(tagbuf, sizeof tagbuf, "e%ld", (long)getpid());
		o.tag = tagbuf;
	}
	if (strspn(o.tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_-") != strlen(o.tag) ||
	    strlen(o.tag) > 64 || strlen(o.sequence) > 64 ||
	    strcspn(o.sequence, "\"\\") != strlen(o.sequence)) {
		fprintf(stderr, "%s: --tag: use at most 64 of [A-Za-z0-9_-]; "
			"--sequence: at most 64 bytes, no quote\n", PROG);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return run(&o);
}
