/* smtp_bench.c: end-to-end SMTP delivery timer for bench/smtp_bench.sh.
 *
 * DESIGN
 * - The clock stops where the mail arrives: this program starts Postfix's
 *   smtp-sink itself (-c: a counter line "sess=N quit=N mesg=N\r" on its
 *   stdout after every session end, QUIT and final "."), reads that
 *   counter through a pipe and notes the instant `mesg` reaches --count.
 *   The sink is fresh for every measurement, so its count starts at 0.
 * - The clock starts just before the load starts, which is one of:
 *   source   run the command after "--" (smtp-source, the reference)
 *            and wait for it;
 *   rouse    pipeline --count `send` requests over --clients connections
 *            to roused's socket (email, template winback, recipient
 *            user{i}@bench.example, one user each, due now), checking
 *            every answer in order as intake_bench does; then poll the
 *            daemon's stats until sent.email has grown by --count, as a
 *            cross-check of the sink's count (duplicates after an
 *            ambiguous outcome would show as sink > sent).
 * - Both loads are timed by the same rule, first byte of load to the
 *   --count-th message at the sink, so the two figures compare directly.
 *   A run still short of --count at --timeout is cut there ("partial=1")
 *   and measured by what had arrived by then.
 * - The sink's CPU time (and smtp-source's) comes from wait4's rusage, so
 *   the report shows what the load generator and the sink cost the machine.
 * - Nothing else: the sink listens on 127.0.0.1 only; the load's target
 *   (the sink itself or a relay in front of it) is the caller's business.
 * - Output: human lines, then one "result:" line of key=value pairs for
 *   scripts. Exit status 0 when the sink got --count messages and every
 *   answer was as expected, 1 otherwise, 2 on usage or system errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define PROG "smtp_bench"

#define SB_MAX_CLIENTS 64

struct sb_opts {
	bool rouse;               /* else: source */
	const char *sink;         /* smtp-sink binary */
	const char *sink_user;    /* -u for smtp-sink when run as root */
	int sink_port;
	long count;
	double timeout;           /* seconds from the start */
	const char *socket;       /* rouse */
	int clients;              /* rouse */
	long window;              /* rouse: most unanswered per connection */
	const char *tag;          /* rouse: idempotency key prefix */
	char **exec_argv;         /* source */
};

/* The sink's counter, as last read from its stdout. */
struct sb_sink {
	pid_t pid;
	int fd;                   /* read end of its stdout */
	long target;
	_Atomic long mesg;
	_Atomic long sess;
	_Atomic int64_t first_ns; /* first message seen, 0: none yet */
	_Atomic int64_t done_ns;  /* mesg reached target, 0: not yet */
	pthread_t reader;
	long final_mesg;          /* at sink_stop */
	long final_sess;
	double cpu_s;             /* the sink's user + system time */
};

/* Where a measurement ended. */
struct sb_cut {
	bool done;                /* the sink got --count */
	int64_t end_ns;           /* when it did, or the deadline */
	long mesg;                /* messages at the sink by end_ns */
};

struct sb_conn {
	const struct sb_opts *o;
	int index;
	int fd;
	long first;               /* global number of its first request */
	long n;
	_Atomic long acked;
	struct bench_errors err;
	int64_t last_ack_ns;
	_Atomic bool io_failed;
};

/* ------------------------------------------------------------ helpers */

/* stats: sent.email, or -1 */
static long daemon_sent_email(const char *path)
{
	char ans[8192];
	if (bench_roundtrip(PROG, path, "{\"op\":\"stats\"}\n", ans, sizeof ans) != 0 ||
	    !strstr(ans, "\"ok\":true"))
		return -1;
	const char *sent = strstr(ans, "\"sent\":{");
	const char *em = sent ? strstr(sent, "\"email\":") : NULL;
	return em ? strtol(em + 8, NULL, 10) : -1;
}

/* ------------------------------------------------------------ the sink */

static void *sink_reader(void *arg)
{
	struct sb_sink *k = arg;
	char buf[4096], last[256];
	size_t ll = 0;
	for (;;) {
		ssize_t r = read(k->fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		int64_t t = bench_mono_ns();
		for (ssize_t i = 0; i < r; i++) {
			char c = buf[i];
			if (c != '\r' && c != '\n') {
				if (ll + 1 < sizeof last)
					last[ll++] = c;
				continue;
			}
			last[ll] = '\0';
			ll = 0;
			long sess, quit, mesg;
			if (sscanf(last, "sess=%ld quit=%ld mesg=%ld", &sess,
				   &quit, &mesg) != 3)
				continue;
			atomic_store(&k->sess, sess);
			atomic_store(&k->mesg, mesg);
			if (mesg > 0 && atomic_load(&k->first_ns) == 0)
				atomic_store(&k->first_ns, t);
			if (mesg >= k->target && atomic_load(&k->done_ns) == 0)
				atomic_store(&k->done_ns, t);
		}
	}
	return NULL;
}

/* 0 once 127.0.0.1:port answers with a 220 greeting. */
static int sink_probe(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int rc = -1;
	char buf[512];
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		goto out;
	ssize_t r = read(fd, buf, sizeof buf - 1);
	if (r < 3 || strncmp(buf, "220", 3) != 0)
		goto out;
	if (bench_write_all(fd, "QUIT\r\n", 6) == 0)
		(void)read(fd, buf, sizeof buf - 1);
	rc = 0;
out:
	close(fd);
	return rc;
}

static void sink_start(const struct sb_opts *o, struct sb_sink *k)
{
	int p[2];
	if (pipe(p) != 0)
		bench_die(PROG, "pipe");
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", o->sink_port);
	char *argv[8];
	int ac = 0;
	argv[ac++] = (char *)o->sink;
	if (geteuid() == 0) {
		argv[ac++] = "-u";
		argv[ac++] = (char *)o->sink_user;
	}
	argv[ac++] = "-c";
	argv[ac++] = listen;
	argv[ac++] = "1024";
	argv[ac] = NULL;
	k->pid = fork();
	if (k->pid < 0)
		bench_die(PROG, "fork");
	if (k->pid == 0) {
		dup2(p[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	k->fd = p[0];
	k->target = o->count;
	if (pthread_create(&k->reader, NULL, sink_reader, k) != 0)
		bench_die(PROG, "pthread_create");
	for (int i = 0; i < 500; i++) {
		int status;
		if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
			fprintf(stderr, "smtp_bench: %s exited at start-up "
				"(port %d taken?)\n", o->sink, o->sink_port);
			exit(2);
		}
		if (sink_probe(o->sink_port) == 0)
			return;
		bench_sleep_ms(10);
	}
	fprintf(stderr, "smtp_bench: %s does not answer on %s\n", o->sink,
		listen);
	kill(k->pid, SIGTERM);
	exit(2);
}

static double rusage_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
	       (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

/* Lets late duplicates show in the counter, then stops the sink and
 * keeps its final counts and CPU time. */
static void sink_stop(struct sb_sink *k)
{
	bench_sleep_ms(300);
	k->final_mesg = atomic_load(&k->mesg);
	k->final_sess = atomic_load(&k->sess);
	kill(k->pid, SIGTERM);
	struct rusage ru;
	int status;
	if (wait4(k->pid, &status, 0, &ru) == k->pid)
		k->cpu_s = rusage_s(&ru);
	pthread_join(k->reader, NULL);
	close(k->fd);
}

/* ------------------------------------------------------------ rouse load */

static int format_send(const struct sb_opts *o, long g, long id, char *buf,
		       size_t cap)
{
	int n = snprintf(buf, cap,
			 "{\"op\":\"send\",\"id\":%ld,\"key\":\"%s-%ld\","
			 "\"user\":\"%s-u%ld\",\"channel\":\"email\","
			 "\"to\":\"user%ld@bench.example\","
			 "\"template\":\"winback\",\"vars\":{\"name\":"
			 "\"User %ld\",\"brand\":\"Shop\",\"amount\":\"$20\","
			 "\"expiry\":\"Dec 31\",\"link\":"
			 "\"https://shop.example/c/%ld\"}}\n",
			 id, o->tag, g, o->tag, g, g, g, g);
	return n > 0 && (size_t)n < cap ? n : -1;
}

/* bench_format_fn: request j of connection ud */
static int conn_request(void *ud, long j, char *buf, size_t cap)
{
	const struct sb_conn *c = ud;
	return format_send(c->o, c->first + j, j, buf, cap);
}

static void *writer_main(void *arg)
{
	struct sb_conn *c = arg;
	long written;
	bench_write_requests(PROG, c->fd, c->n, c->o->window, &c->acked,
			     &c->io_failed, conn_request, c, &written);
	return NULL;
}

static void check_answer(void *ud, char *line, int64_t t)
{
	struct sb_conn *c = ud;
	long expect = atomic_load(&c->acked);
	const char *idp = strstr(line, "\"id\":");
	long id = idp ? strtol(idp + 5, NULL, 10) : -1;
	bool ok = strstr(line, "\"ok\":true") &&
		  strstr(line, "\"state\":\"queued\"") &&
		  !strstr(line, "\"duplicate\":true") && id == expect;
	if (!ok)
		bench_error(&c->err, "connection %d, answer %ld: %.200s",
			    c->index, expect, line);
	c->last_ack_ns = t;
	atomic_store(&c->acked, expect + 1);
}

static void *reader_main(void *arg)
{
	struct sb_conn *c = arg;
	char why[96];
	if (bench_read_answers(PROG, c->fd, &c->acked, c->n, check_answer, c,
			       why, sizeof why)) {
		bench_error(&c->err, "connection %d: %s", c->index, why);
		atomic_store(&c->io_failed, true);
	}
	return NULL;
}

/* ------------------------------------------------------------ runs */

/* Waits for the sink to reach --count or for the deadline; a run cut at
 * the deadline is measured by what had arrived by then. */
static void wait_sink(const struct sb_opts *o, struct sb_sink *k, int64_t t0,
		      struct sb_cut *cut)
{
	int64_t deadline = t0 + (int64_t)(o->timeout * 1e9);
	while (atomic_load(&k->done_ns) == 0 && bench_mono_ns() < deadline)
		bench_sleep_ms(2);
	cut->done = atomic_load(&k->done_ns) != 0;
	cut->end_ns = cut->done ? atomic_load(&k->done_ns) : bench_mono_ns();
	cut->mesg = cut->done ? o->count : atomic_load(&k->mesg);
}

static void report(const struct sb_opts *o, struct sb_sink *k, int64_t t0,
		   const struct sb_cut *cut, const char *extra_human,
		   const char *extra_result)
{
	const char *name = o->rouse ? "rouse" : "source";
	int64_t first = atomic_load(&k->first_ns);
	double secs = (double)(cut->end_ns - t0) / 1e9;
	double rate = secs > 0 ? (double)cut->mesg / secs : 0;
	double first_ms = first ? (double)(first - t0) / 1e6 : -1;
	long mesg = k->final_mesg, sess = k->final_sess;
	if (cut->done)
		printf("%s: %ld messages at the sink %.3f s after the first "
		       "byte of load: %.0f msgs/s (first message after %.1f ms; "
		       "sink saw %ld messages, %ld sessions incl. 1 probe)\n",
		       name, o->count, secs, rate, first_ms, mesg, sess);
	else
		printf("%s: CUT at %.0f s: %ld of %ld messages at the sink: "
		       "%.0f msgs/s over the run so far (first message after "
		       "%.1f ms; %ld sessions incl. 1 probe)\n", name, secs,
		       cut->mesg, o->count, rate, first_ms, sess);
	if (extra_human && *extra_human)
		printf("  %s\n", extra_human);
	printf("result: mode=%s count=%ld partial=%d seconds=%.3f "
	       "msgs_per_s=%.0f arrived=%ld first_ms=%.1f sink_mesg=%ld "
	       "sink_sess=%ld sink_cpu_s=%.2f%s%s\n", name, o->count,
	       cut->done ? 0 : 1, secs, rate, cut->mesg, first_ms, mesg,
	       sess - 1, k->cpu_s,
	       extra_result ? " " : "", extra_result ? extra_result : "");
}

static int run_source(const struct sb_opts *o)
{
	struct sb_sink k = { 0 };
	sink_start(o, &k);
	fflush(NULL);
	int64_t t0 = bench_mono_ns();
	pid_t pid = fork();
	if (pid < 0)
		bench_die(PROG, "fork");
	if (pid == 0) {
		execvp(o->exec_argv[0], o->exec_argv);
		_exit(127);
	}
	int status = 0;
	int64_t deadline = t0 + (int64_t)(o->timeout * 1e9);
	bool killed = false;
	struct rusage ru = { 0 };
	while (wait4(pid, &status, WNOHANG, &ru) == 0) {
		if (!killed && bench_mono_ns() >= deadline) {
			kill(pid, SIGTERM);
			killed = true;
		}
		bench_sleep_ms(2);
	}
	int64_t t_exit = bench_mono_ns();
	struct sb_cut cut;
	wait_sink(o, &k, t0, &cut);
	sink_stop(&k);
	char human[240], res[128];
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	snprintf(human, sizeof human, "%s exited %d after %.3f s%s; CPU: "
		 "%s %.2f s, smtp-sink %.2f s", o->exec_argv[0], code,
		 (double)(t_exit - t0) / 1e9,
		 killed ? " (stopped at the deadline)" : "", o->exec_argv[0],
		 rusage_s(&ru), k.cpu_s);
	snprintf(res, sizeof res, "source_exit=%d source_seconds=%.3f "
		 "source_cpu_s=%.2f", code, (double)(t_exit - t0) / 1e9,
		 rusage_s(&ru));
	report(o, &k, t0, &cut, human, res);
	return cut.done && code == 0 ? 0 : 1;
}

static int run_rouse(const struct sb_opts *o)
{
	long sent0 = daemon_sent_email(o->socket);
	if (sent0 < 0) {
		fprintf(stderr, "smtp_bench: stats from %s failed\n", o->socket);
		return 2;
	}
	struct sb_sink k = { 0 };
	sink_start(o, &k);
	struct sb_conn *conns = calloc((size_t)o->clients, sizeof *conns);
	if (!conns)
		bench_die(PROG, "calloc");
	long per = o->count / o->clients, extra = o->count % o->clients;
	long next = 0;
	for (int i = 0; i < o->clients; i++) {
		conns[i].o = o;
		conns[i].index = i;
		conns[i].n = per + (i < extra ? 1 : 0);
		conns[i].first = next;
		next += conns[i].n;
		conns[i].fd = bench_connect_unix(PROG, o->socket);
		if (conns[i].fd < 0)
			bench_die(PROG, o->socket);
	}
	pthread_t w[SB_MAX_CLIENTS], r[SB_MAX_CLIENTS];
	int64_t t0 = bench_mono_ns();
	for (int i = 0; i < o->clients; i++)
		if (pthread_create(&r[i], NULL, reader_main, &conns[i]) ||
		    pthread_create(&w[i], NULL, writer_main, &conns[i]))
			bench_die(PROG, "pthread_create");
	long acked = 0, errors = 0;
	int64_t last_ack = t0;
	const char *first_error = NULL;
	for (int i = 0; i < o->clients; i++) {
		pthread_join(w[i], NULL);
		pthread_join(r[i], NULL);
		close(conns[i].fd);
		acked += atomic_load(&conns[i].acked);
		errors += conns[i].err.count + conns[i].n -
			  atomic_load(&conns[i].acked);
		if (conns[i].last_ack_ns > last_ack)
			last_ack = conns[i].last_ack_ns;
		if (!first_error && conns[i].err.first[0])
			first_error = conns[i].err.first;
	}
	struct sb_cut cut;
	wait_sink(o, &k, t0, &cut);
	/* cross-check: the daemon's own count of sent emails (it commits
	 * the outcome after the server's reply, so it may lag a moment) */
	long sent = -1;
	int64_t deadline = bench_mono_ns() + (cut.done ? 30 : 0) * (int64_t)1000000000;
	do {
		sent = daemon_sent_email(o->socket);
		if (sent >= 0 && sent - sent0 >= o->count)
			break;
		bench_sleep_ms(20);
	} while (bench_mono_ns() < deadline);
	int64_t t_sent = bench_mono_ns();
	sink_stop(&k);
	double intake_s = (double)(last_ack - t0) / 1e9;
	char human[640], res[256];
	snprintf(human, sizeof human,
		 "intake: %ld acked over %d connections in %.3f s (%.0f acks/s), "
		 "%ld unexpected answers%s%s; daemon sent.email grew by %ld "
		 "(stats %.3f s after the first byte); smtp-sink CPU %.2f s",
		 acked, o->clients, intake_s,
		 intake_s > 0 ? (double)acked / intake_s : 0, errors,
		 first_error ? "; first: " : "", first_error ? first_error : "",
		 sent >= 0 ? sent - sent0 : -1, (double)(t_sent - t0) / 1e9,
		 k.cpu_s);
	snprintf(res, sizeof res,
		 "acked=%ld errors=%ld intake_seconds=%.3f acks_per_s=%.0f "
		 "daemon_sent=%ld", acked, errors, intake_s,
		 intake_s > 0 ? (double)acked / intake_s : 0,
		 sent >= 0 ? sent - sent0 : -1);
	report(o, &k, t0, &cut, human, res);
	bool ok = cut.done && errors == 0 && sent - sent0 == o->count &&
		  k.final_mesg == o->count;
	free(conns);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
	fprintf(stderr,
		"usage: smtp_bench source --sink-port P --count N [options] -- "
		"CMD ARGS...\n"
		"       smtp_bench rouse --sink-port P --count N --socket PATH "
		"[options]\n"
		"  --sink PATH        smtp-sink binary (default "
		"/usr/sbin/smtp-sink)\n"
		"  --sink-user U      its -u when run as root (default nobody)\n"
		"  --timeout S        give up S s after the start (default 300)\n"
		"  --clients C        rouse: intake connections (default 2)\n"
		"  --window W         rouse: most unanswered per connection "
		"(default 4096)\n"
		"  --tag T            rouse: key/user prefix (default pid)\n");
	exit(2);
}

static double num_arg(const char *opt, const char *v)
{
	char *end = NULL;
	double d = strtod(v, &end);
	if (!end || *end || !(d >= 0)) {
		fprintf(stderr, "smtp_bench: %s: expected a number >= 0, got "
			"\"%s\"\n", opt, v);
		exit(2);
	}
	return d;
}

int main(int argc, char **argv)
{
	static char tagbuf[32];
	struct sb_opts o = {
		.sink = "/usr/sbin/smtp-sink", .sink_user = "nobody",
		.count = 20000, .timeout = 300, .clients = 2, .window = 4096,
	};
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "rouse") == 0)
		o.rouse = true;
	else if (strcmp(argv[1], "source") != 0)
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
		if (strcmp(a, "--sink") == 0)
			o.sink = v;
		else if (strcmp(a, "--sink-user") == 0)
			o.sink_user = v;
		else if (strcmp(a, "--sink-port") == 0)
			o.sink_port = (int)num_arg(a, v);
		else if (strcmp(a, "--count") == 0)
			o.count = (long)num_arg(a, v);
		else if (strcmp(a, "--timeout") == 0)
			o.timeout = num_arg(a, v);
		else if (strcmp(a, "--socket") == 0)
			o.socket = v;
		else if (strcmp(a, "--clients") == 0)
			o.clients = (int)num_arg(a, v);
		else if (strcmp(a, "--window") == 0)
			o.window = (long)num_arg(a, v);
		else if (strcmp(a, "--tag") == 0)
			o.tag = v;
		else
			usage();
	}
	if (o.sink_port < 1 || o.sink_port > 65535 || o.count < 1 ||
	    (o.rouse && (!o.socket || o.clients < 1 ||
			 o.clients > SB_MAX_CLIENTS)) ||
	    (!o.rouse && (!o.exec_argv || !o.exec_argv[0])))
		usage();
	if (!o.tag) {
		snprintf(tagbuf, sizeof tagbuf, "s%ld", (long)getpid());
		o.tag = tagbuf;
	}
	if (strspn(o.tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_-") != strlen(o.tag) || strlen(o.tag) > 64) {
		fprintf(stderr, "smtp_bench: --tag: use at most 64 of "
			"[A-Za-z0-9_-]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return o.rouse ? run_rouse(&o) : run_source(&o);
}
