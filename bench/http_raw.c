/* http_raw.c: the reference HTTP client of bench/http_bench.sh, and the
 * load driver that times roused against the same server.
 *
 * DESIGN
 * - post (the reference): N identical POSTs through libcurl's multi
 *   interface, driven by a libuv loop with this file's own glue, in the
 *   shape of curl's docs/examples/multi-uv.c and independent of roused's
 *   HTTP engine: CURLMOPT_SOCKETFUNCTION starts and stops one uv_poll_t
 *   per socket (freed in its close callback), CURLMOPT_TIMERFUNCTION arms
 *   one uv_timer_t, finished transfers come from curl_multi_info_read.
 *   A curl timeout of 0 arms the timer with 0, which libuv runs on the
 *   next loop iteration: rounding it up to 1 ms, as the curl example
 *   does, would idle every connection for a millisecond after each
 *   answer (a new request's first step waits for that timer).
 * - The requests are the ones roused sends for one job:
 *     sms   POST {url}/2010-04-01/Accounts/AC123/Messages.json, Basic
 *           auth AC123:<token>, form To, From, Body (a rendered
 *           coupon_expiring text with its opt-out footer, ~120 chars)
 *     apns  POST {url}/3/device/<64 hex>, headers apns-topic,
 *           apns-push-type, apns-priority, apns-expiration, apns-id,
 *           apns-collapse-id, authorization: bearer <an ES256 JWT's
 *           length>, a ~170 byte JSON body
 *   every one of them with the same bytes (one easy handle per request
 *   in flight, reused: removed from the multi handle and added again).
 * - Concurrency: HTTP/1.1 keeps -c connections with one request each in
 *   flight; --http2 keeps -c connections multiplexed, --streams requests
 *   in flight on each (CURLMOPT_MAX_HOST_CONNECTIONS = -c, PIPEWAIT so a
 *   request waits for a stream on an open connection rather than opening
 *   its own, CURLMOPT_MAX_CONCURRENT_STREAMS = --streams).
 * - An answer that is not 2xx, a transfer error, or (--http2) an answer
 *   not carried over HTTP/2 is a failure: counted, the first one printed
 *   with its status and body, and the exit status is 1.
 * - The clock runs from just before the first request is added to the
 *   last answer; the socket count comes from CURLOPT_OPENSOCKETFUNCTION,
 *   so it counts connections opened, not re-registrations.
 * - rouse: N `send` jobs (distinct users, keys and recipients; sms to
 *   +86138NNNNNNNN with template coupon_expiring, apns to a distinct
 *   64-hex device token with template miss_you) pipelined over --clients
 *   connections to roused's socket, every answer checked in order (ok,
 *   state queued, echoed id). Meanwhile the main thread follows nginx's
 *   access log (--log, lines "$msec $status $connection", read from its
 *   size at the start) until N more answers are logged. The run is timed
 *   from the first byte of load to the $msec of the N-th answer (both
 *   wall clock), the same rule as smtp_bench's "first byte to the last
 *   message at the sink". Then the log is read once more after a pause
 *   (extra lines would be duplicate requests) and the daemon's stats are
 *   polled until sent.<channel> has grown by N, as a cross-check.
 * - Output: human lines, then one "result:" line of key=value pairs for
 *   scripts. Exit status 0 when every request got a 2xx answer (and, for
 *   rouse, every job was queued, logged once and counted as sent), 1
 *   otherwise, 2 on usage or system errors.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "benchutil.h"

#define PROG "http_raw"

#define HR_RESP_KEEP 200          /* body bytes kept for an error report */
#define HR_MAX_INFLIGHT 100000
#define HR_MAX_CLIENTS 64
#define HR_LOG_BUF (1u << 20)
#define HR_SETTLE_MS 300
#define HR_SENT_WAIT_S 30

#define HR_ACCOUNT "AC123"
#define HR_TOPIC "com.example.app"
#define HR_TOKEN_HEX "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

enum hr_kind { HR_SMS, HR_APNS };

struct hr_opts {
	bool rouse;               /* else: post */
	enum hr_kind kind;
	long count;
	double timeout;           /* seconds from the start */
	/* post */
	const char *url;          /* base: scheme, host, port */
	const char *cacert;
	const char *auth_token;
	int conns;
	int streams;
	bool http2;
	/* rouse */
	const char *socket;
	const char *log;
	const char *tag;
	int clients;
	long window;
};

/* ------------------------------------------------------------ post */

struct hr_run;

struct hr_req {
	struct hr_run *run;
	CURL *easy;
	bool in_multi;
	char resp[HR_RESP_KEEP + 1];
	size_t resp_len;
};

struct hr_sock {
	uv_poll_t poll;
	struct hr_run *run;
	curl_socket_t fd;
};

struct hr_run {
	const struct hr_opts *o;
	uv_loop_t loop;
	uv_timer_t curl_timer;
	uv_timer_t deadline;
	CURLM *multi;
	struct curl_slist *headers;
	char *url;
	char *body;
	size_t body_len;
	struct hr_req *reqs;
	int n_reqs;
	long started;
	long done;
	long failed;
	long opened;              /* sockets opened by libcurl */
	int64_t t0_ns;
	int64_t t_end_ns;
	bool timed_out;
	char first_error[512];
};

static void hr_fail_oom(void)
{
	fprintf(stderr, "%s: out of memory\n", PROG);
	exit(2);
}

/* base + path in a new string */
static char *hr_join(const char *base, const char *path)
{
	size_t cap = strlen(base) + strlen(path) + 1;
	char *s = malloc(cap);
	if (!s)
		hr_fail_oom();
	snprintf(s, cap, "%s%s", base, path);
	return s;
}

/* The form body roused's Twilio transport sends for one coupon SMS. */
static char *sms_body(size_t *len)
{
	const char *text = "Shop: Hi User 42, your $20 coupon expires Dec 31. "
			   "Use it before it is gone: https://shop.example/c/42"
			   "\nReply STOP to opt out";
	char *enc = curl_easy_escape(NULL, text, 0);
	if (!enc)
		hr_fail_oom();
	char *body = hr_join("To=%2B8613800000000&From=%2B15550100&Body=", enc);
	curl_free(enc);
	*len = strlen(body);
	return body;
}

static char *apns_body(size_t *len)
{
	const char *b = "{\"aps\":{\"alert\":{\"title\":\"We miss you, User "
			"42!\",\"body\":\"Your $20 coupon at Shop is waiting. "
			"Valid until Dec 31, tap to claim it.\"}},\"job\":"
			"\"0b7e3f52-9c1d-4e8a-b6f4-2d9a0c5e7f13\"}";
	char *body = strdup(b);
	if (!body)
		hr_fail_oom();
	*len = strlen(body);
	return body;
}

static struct curl_slist *hr_header(struct curl_slist *list, const char *h)
{
	struct curl_slist *n = curl_slist_append(list, h);
	if (!n)
		hr_fail_oom();
	return n;
}

static void run_prepare(struct hr_run *r)
{
	const struct hr_opts *o = r->o;
	struct curl_slist *h = NULL;
	h = hr_header(h, "Expect:");
	if (o->kind == HR_SMS) {
		r->url = hr_join(o->url, "/2010-04-01/Accounts/" HR_ACCOUNT
				 "/Messages.json");
		r->body = sms_body(&r->body_len);
		h = hr_header(h, "Accept: application/json");
	} else {
		char path[128];
		snprintf(path, sizeof path, "/3/device/%s%016lx", HR_TOKEN_HEX,
			 42ul);
		r->url = hr_join(o->url, path);
		r->body = apns_body(&r->body_len);
		h = hr_header(h, "content-type: application/json");
		h = hr_header(h, "apns-topic: " HR_TOPIC);
		h = hr_header(h, "apns-push-type: alert");
		h = hr_header(h, "apns-priority: 10");
		h = hr_header(h, "apns-expiration: 0");
		h = hr_header(h, "apns-id: 0b7e3f52-9c1d-4e8a-b6f4-2d9a0c5e7f13");
		h = hr_header(h, "apns-collapse-id: 0b7e3f52-9c1d-4e8a-b6f4-"
			      "2d9a0c5e7f13");
		/* a fixed string the length of an ES256 provider token */
		h = hr_header(h, "authorization: bearer eyJhbGciOiJFUzI1NiIsImtp"
			      "ZCI6IkFCQzEyMyIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJERUY0"
			      "NTYiLCJpYXQiOjE3OTU0NDc0NDJ9.MEUCIQDx1bq7Zf2d3kR9"
			      "pL0sT4vW8yA6cE1gH5jN3mQ7uX2zBwIgVb9K4tY1rP6sD8fL"
			      "3hJ0nM5qW2eR7uI9oA4xC6vZ8kE");
	}
	r->headers = h;
}

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
	struct hr_req *q = userp;
	size_t len = size * n;
	size_t room = HR_RESP_KEEP - q->resp_len;
	size_t take = len < room ? len : room;
	memcpy(q->resp + q->resp_len, p, take);
	q->resp_len += take;
	q->resp[q->resp_len] = '\0';
	return len;
}

static curl_socket_t on_open_socket(void *userp, curlsocktype purpose,
				    struct curl_sockaddr *a)
{
	struct hr_run *r = userp;
	(void)purpose;
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC,
				  a->protocol);
	if (fd != CURL_SOCKET_BAD)
		r->opened++;
	return fd;
}

static void req_setup(struct hr_run *r, struct hr_req *q)
{
	const struct hr_opts *o = r->o;
	q->run = r;
	q->easy = curl_easy_init();
	if (!q->easy)
		hr_fail_oom();
	CURL *e = q->easy;
	int bad = 0;
	bad |= curl_easy_setopt(e, CURLOPT_URL, r->url);
	bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				(curl_off_t)r->body_len);
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
	bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	if (o->http2) {
		long v = strncmp(o->url, "https:", 6) == 0
				 ? CURL_HTTP_VERSION_2TLS
				 : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
		bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, v);
		bad |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	} else {
		bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
					(long)CURL_HTTP_VERSION_1_1);
	}
	if (o->cacert)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert);
	if (o->kind == HR_SMS) {
		bad |= curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		bad |= curl_easy_setopt(e, CURLOPT_USERNAME, HR_ACCOUNT);
		bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, o->auth_token);
	}
	if (bad) {
		fprintf(stderr, "%s: curl_easy_setopt failed\n", PROG);
		exit(2);
	}
}

static void req_start(struct hr_run *r, struct hr_req *q)
{
	q->resp_len = 0;
	q->resp[0] = '\0';
	CURLMcode mc = curl_multi_add_handle(r->multi, q->easy);
	if (mc != CURLM_OK) {
		fprintf(stderr, "%s: curl_multi_add_handle: %s\n", PROG,
			curl_multi_strerror(mc));
		exit(2);
	}
	q->in_multi = true;
	r->started++;
}

static void req_done(struct hr_run *r, struct hr_req *q, CURLcode res)
{
	long code = 0, version = 0;
	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(q->easy, CURLINFO_HTTP_VERSION, &version);
	const char *proto = version == CURL_HTTP_VERSION_2_0   ? "HTTP/2"
			    : version == CURL_HTTP_VERSION_1_1 ? "HTTP/1.1"
			    : version == CURL_HTTP_VERSION_1_0 ? "HTTP/1.0"
							       : "no HTTP";
	bool ok = res == CURLE_OK && code >= 200 && code < 300 &&
		  (!r->o->http2 || version == CURL_HTTP_VERSION_2_0);
	if (!ok) {
		if (r->failed == 0) {
			if (res != CURLE_OK)
				snprintf(r->first_error, sizeof r->first_error,
					 "answer %ld: transfer failed: %s",
					 r->done, curl_easy_strerror(res));
			else
				snprintf(r->first_error, sizeof r->first_error,
					 "answer %ld: HTTP %ld over %s%s: %s",
					 r->done, code, proto,
					 code >= 200 && code < 300
						 ? " (expected HTTP/2)" : "",
					 q->resp);
		}
		r->failed++;
	}
	r->done++;
	curl_multi_remove_handle(r->multi, q->easy);
	q->in_multi = false;
	if (r->done == r->o->count) {
		r->t_end_ns = bench_mono_ns();
		uv_stop(&r->loop);
	} else if (r->started < r->o->count) {
		req_start(r, q);
	}
}

static void run_check(struct hr_run *r)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(r->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct hr_req *q = NULL;
		CURLcode res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		req_done(r, q, res);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct hr_sock *k = h->data;
	int flags = 0;
	if (status < 0) {
		flags = CURL_CSELECT_ERR;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	int running;
	curl_multi_socket_action(k->run->multi, k->fd, flags, &running);
	run_check(k->run);
}

static void on_sock_closed(uv_handle_t *h)
{
	free(h->data);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct hr_run *r = userp;
	struct hr_sock *k = socketp;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (k) {
			curl_multi_assign(r->multi, s, NULL);
			if (!uv_is_closing((uv_handle_t *)&k->poll))
				uv_close((uv_handle_t *)&k->poll, on_sock_closed);
		}
		return 0;
	}
	if (!k) {
		k = calloc(1, sizeof *k);
		if (!k)
			hr_fail_oom();
		k->run = r;
		k->fd = s;
		int rc = uv_poll_init_socket(&r->loop, &k->poll, s);
		if (rc != 0) {
			fprintf(stderr, "%s: uv_poll_init_socket: %s\n", PROG,
				uv_strerror(rc));
			exit(2);
		}
		k->poll.data = k;
		curl_multi_assign(r->multi, s, k);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&k->poll, ev, on_poll);
	return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
	struct hr_run *r = t->data;
	int running;
	curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	run_check(r);
}

static int on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
	struct hr_run *r = userp;
	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&r->curl_timer);
	else
		uv_timer_start(&r->curl_timer, on_curl_timer,
			       (uint64_t)timeout_ms, 0);
	return 0;
}

static void on_deadline(uv_timer_t *t)
{
	struct hr_run *r = t->data;
	r->timed_out = true;
	r->t_end_ns = bench_mono_ns();
	uv_stop(&r->loop);
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (uv_is_closing(h))
		return;
	uv_close(h, h->type == UV_POLL ? on_sock_closed : NULL);
}

static void run_cleanup(struct hr_run *r)
{
	for (int i = 0; i < r->n_reqs; i++) {
		if (r->reqs[i].in_multi)
			curl_multi_remove_handle(r->multi, r->reqs[i].easy);
		curl_easy_cleanup(r->reqs[i].easy);
	}
	curl_multi_cleanup(r->multi);
	uv_walk(&r->loop, on_walk_close, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&r->loop) != 0)
		fprintf(stderr, "%s: uv_loop_close: handles left open\n", PROG);
	curl_slist_free_all(r->headers);
	free(r->reqs);
	free(r->url);
	free(r->body);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int run_post(const struct hr_opts *o)
{
	struct hr_run r = { .o = o };
	int rc = uv_loop_init(&r.loop);
	if (rc != 0) {
		fprintf(stderr, "%s: uv_loop_init: %s\n", PROG, uv_strerror(rc));
		return 2;
	}
	uv_timer_init(&r.loop, &r.curl_timer);
	uv_timer_init(&r.loop, &r.deadline);
	r.curl_timer.data = &r;
	r.deadline.data = &r;
	r.multi = curl_multi_init();
	if (!r.multi)
		hr_fail_oom();
	long inflight = o->http2 ? (long)o->conns * o->streams : o->conns;
	if (inflight > o->count)
		inflight = o->count;
	int bad = 0;
	bad |= curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_MAX_HOST_CONNECTIONS,
				 (long)o->conns);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
				 (long)o->conns);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, (long)o->conns);
	bad |= curl_multi_setopt(r.multi, CURLMOPT_PIPELINING,
				 o->http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
	if (o->http2)
		bad |= curl_multi_setopt(r.multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
					 (long)o->streams);
	if (bad) {
		fprintf(stderr, "%s: curl_multi_setopt failed\n", PROG);
		return 2;
	}
	run_prepare(&r);
	r.n_reqs = (int)inflight;
	r.reqs = calloc((size_t)r.n_reqs, sizeof *r.reqs);
	if (!r.reqs)
		hr_fail_oom();
	for (int i = 0; i < r.n_reqs; i++)
		req_setup(&r, &r.reqs[i]);

	double cpu0 = cpu_seconds();
	r.t0_ns = bench_mono_ns();
	uv_timer_start(&r.deadline, on_deadline, (uint64_t)(o->timeout * 1000), 0);
	for (int i = 0; i < r.n_reqs; i++)
		req_start(&r, &r.reqs[i]);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	double cpu = cpu_seconds() - cpu0;

	const char *proto = o->http2 ? "HTTP/2" : "HTTP/1.1";
	double secs = (double)(r.t_end_ns - r.t0_ns) / 1e9;
	long ok = r.done - r.failed;
	double rate = secs > 0 ? (double)r.done / secs : 0;
	if (r.timed_out)
		printf("post: CUT at %.0f s: %ld of %ld %s requests answered "
		       "over %s\n", secs, r.done, o->count,
		       o->kind == HR_SMS ? "sms" : "apns", proto);
	else
		printf("post: %ld %s requests over %s, %d connections, %ld in "
		       "flight: %.3f s, %.0f req/s; %ld connections opened; "
		       "client CPU %.2f s\n", o->count,
		       o->kind == HR_SMS ? "sms" : "apns", proto, o->conns,
		       inflight, secs, rate, r.opened, cpu);
	printf("result: mode=post kind=%s proto=%s count=%ld conns=%d "
	       "in_flight=%ld partial=%d seconds=%.3f req_per_s=%.0f ok=%ld "
	       "failed=%ld opened=%ld body_bytes=%zu cpu_s=%.2f\n",
	       o->kind == HR_SMS ? "sms" : "apns", o->http2 ? "h2" : "h1",
	       o->count, o->conns, inflight, r.timed_out ? 1 : 0, secs, rate,
	       ok, r.failed, r.opened, r.body_len, cpu);
	if (r.failed)
		fprintf(stderr, "%s: FAILED: %ld of %ld requests got no 2xx "
			"answer%s (first: %s)\n", PROG, r.failed, r.done,
			o->http2 ? " over HTTP/2" : "", r.first_error);
	if (r.timed_out)
		fprintf(stderr, "%s: FAILED: only %ld of %ld answers within "
			"%.0f s\n", PROG, r.done, o->count, o->timeout);
	run_cleanup(&r);
	return r.failed == 0 && !r.timed_out ? 0 : 1;
}

/* ------------------------------------------------------------ rouse */

struct hr_conn {
	const struct hr_opts *o;
	int index;
	int fd;
	long first;               /* global number of its first job */
	long n;
	_Atomic long acked;
	_Atomic long errors;
	_Atomic bool io_failed;
	char first_error[300];
	int64_t last_ack_ns;
};

/* The daemon's stats "sent" count for one channel, or -1. */
static long daemon_sent(const char *path, const char *channel)
{
	char ans[8192], pat[32];
	if (bench_roundtrip(PROG, path, "{\"op\":\"stats\"}\n", ans,
			    sizeof ans) != 0 ||
	    !strstr(ans, "\"ok\":true"))
		return -1;
	const char *sent = strstr(ans, "\"sent\":{");
	snprintf(pat, sizeof pat, "\"%s\":", channel);
	const char *p = sent ? strstr(sent, pat) : NULL;
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

static int format_job(const struct hr_opts *o, long g, long id, char *buf,
		      size_t cap)
{
	char to[128];
	const char *channel, *tmpl;
	if (o->kind == HR_SMS) {
		snprintf(to, sizeof to, "\"+86138%08ld\"", g % 100000000);
		channel = "sms";
		tmpl = "coupon_expiring";
	} else {
		snprintf(to, sizeof to, "{\"platform\":\"apns\",\"token\":\"%s"
			 "%016lx\"}", HR_TOKEN_HEX, (unsigned long)g);
		channel = "push";
		tmpl = "miss_you";
	}
	int n = snprintf(buf, cap,
			 "{\"op\":\"send\",\"id\":%ld,\"key\":\"%s-%ld\","
			 "\"user\":\"%s-u%ld\",\"channel\":\"%s\",\"to\":%s,"
			 "\"template\":\"%s\",\"vars\":{\"name\":\"User %ld\","
			 "\"brand\":\"Shop\",\"amount\":\"$20\",\"expiry\":"
			 "\"Dec 31\",\"link\":\"https://shop.example/c/%ld\"}}\n",
			 id, o->tag, g, o->tag, g, channel, to, tmpl, g, g);
	return n > 0 && (size_t)n < cap ? n : -1;
}

/* Counts one error; the first is kept as "connection I, WHAT N: DETAIL". */
static void conn_error(struct hr_conn *c, const char *what, long n,
		       const char *detail)
{
	if (atomic_fetch_add(&c->errors, 1) == 0)
		snprintf(c->first_error, sizeof c->first_error,
			 "connection %d, %s %ld%s%.200s", c->index, what, n,
			 detail ? ": " : "", detail ? detail : "");
}

/* bench_format_fn: request j of connection ud */
static int conn_request(void *ud, long j, char *buf, size_t cap)
{
	const struct hr_conn *c = ud;
	return format_job(c->o, c->first + j, j, buf, cap);
}

static void *writer_main(void *arg)
{
	struct hr_conn *c = arg;
	long j = 0;
	enum bench_write_end end =
		bench_write_requests(PROG, c->fd, c->n, c->o->window, &c->acked,
				     &c->io_failed, conn_request, c, &j);
	if (end == BENCH_FORMAT_FAILED)
		conn_error(c, "line too long: request", j, NULL);
	else if (end == BENCH_WRITE_FAILED)
		conn_error(c, "write failed after requests:", j, NULL);
	return NULL;
}

static void check_answer(void *ud, char *line, int64_t t)
{
	struct hr_conn *c = ud;
	long expect = atomic_load(&c->acked);
	const char *idp = strstr(line, "\"id\":");
	long id = idp ? strtol(idp + 5, NULL, 10) : -1;
	bool ok = strstr(line, "\"ok\":true") &&
		  strstr(line, "\"state\":\"queued\"") &&
		  !strstr(line, "\"duplicate\":true") && id == expect;
	if (!ok)
		conn_error(c, "answer", expect, line);
	c->last_ack_ns = t;
	atomic_store(&c->acked, expect + 1);
}

static void *reader_main(void *arg)
{
	struct hr_conn *c = arg;
	char why[96];
	if (bench_read_answers(PROG, c->fd, &c->acked, c->n, check_answer, c,
			       why, sizeof why) &&
	    atomic_fetch_add(&c->errors, 1) == 0)
		snprintf(c->first_error, sizeof c->first_error,
			 "connection %d, %s", c->index, why);
	atomic_store(&c->io_failed, true);
	return NULL;
}

/* What the access log said since the run began. */
struct hr_log {
	int fd;
	off_t off;                /* next byte to read */
	char *buf;
	size_t len;               /* unparsed bytes in buf */
	long lines;
	long non2xx;
	char first_bad[128];
	int64_t first_ms;         /* $msec of the first line, ms */
	int64_t nth_ms;           /* $msec of line number `target` */
	long target;
	long *conns;              /* $connection of every line */
	size_t n_conns, cap_conns;
};

static void log_line(struct hr_log *lg, const char *line)
{
	long sec = 0, msec = 0, status = 0, conn = -1;
	if (sscanf(line, "%ld.%3ld %ld %ld", &sec, &msec, &status, &conn) != 4) {
		status = 0;
	}
	int64_t ms = (int64_t)sec * 1000 + msec;
	lg->lines++;
	if (lg->lines == 1)
		lg->first_ms = ms;
	if (lg->lines == lg->target)
		lg->nth_ms = ms;
	if (status < 200 || status > 299) {
		if (lg->non2xx++ == 0)
			snprintf(lg->first_bad, sizeof lg->first_bad, "%s", line);
	}
	if (lg->n_conns == lg->cap_conns) {
		size_t cap = lg->cap_conns ? lg->cap_conns * 2 : 4096;
		long *n = realloc(lg->conns, cap * sizeof *n);
		if (!n)
			hr_fail_oom();
		lg->conns = n;
		lg->cap_conns = cap;
	}
	lg->conns[lg->n_conns++] = conn;
}

/* Reads what nginx appended; 0, or -1 on a read error. */
static int log_poll(struct hr_log *lg)
{
	for (;;) {
		ssize_t r = pread(lg->fd, lg->buf + lg->len, HR_LOG_BUF - lg->len,
				  lg->off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		lg->off += r;
		lg->len += (size_t)r;
		char *start = lg->buf, *nl;
		while ((nl = memchr(start, '\n',
				    lg->len - (size_t)(start - lg->buf)))) {
			*nl = '\0';
			log_line(lg, start);
			start = nl + 1;
		}
		lg->len -= (size_t)(start - lg->buf);
		memmove(lg->buf, start, lg->len);
		if (lg->len == HR_LOG_BUF)
			lg->len = 0;      /* no line is that long */
	}
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

static long distinct_conns(struct hr_log *lg)
{
	if (lg->n_conns == 0)
		return 0;
	qsort(lg->conns, lg->n_conns, sizeof *lg->conns, cmp_long);
	long n = 1;
	for (size_t i = 1; i < lg->n_conns; i++)
		if (lg->conns[i] != lg->conns[i - 1])
			n++;
	return n;
}

static int run_rouse(const struct hr_opts *o)
{
	const char *channel = o->kind == HR_SMS ? "sms" : "push";
	long sent0 = daemon_sent(o->socket, channel);
	if (sent0 < 0) {
		fprintf(stderr, "%s: stats from %s failed\n", PROG, o->socket);
		return 2;
	}
	struct hr_log lg = { .target = o->count };
	lg.fd = open(o->log, O_RDONLY | O_CLOEXEC);
	if (lg.fd < 0)
		bench_die(PROG, o->log);
	struct stat st;
	if (fstat(lg.fd, &st) != 0)
		bench_die(PROG, o->log);
	lg.off = st.st_size;
	lg.buf = malloc(HR_LOG_BUF);
	if (!lg.buf)
		hr_fail_oom();

	struct hr_conn *conns = calloc((size_t)o->clients, sizeof *conns);
	if (!conns)
		hr_fail_oom();
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
	pthread_t w[HR_MAX_CLIENTS], rd[HR_MAX_CLIENTS];
	int64_t t0_wall = bench_wall_ns();
	int64_t t0 = bench_mono_ns();
	for (int i = 0; i < o->clients; i++)
		if (pthread_create(&rd[i], NULL, reader_main, &conns[i]) ||
		    pthread_create(&w[i], NULL, writer_main, &conns[i]))
			bench_die(PROG, "pthread_create");

	int64_t deadline = t0 + (int64_t)(o->timeout * 1e9);
	bool intake_failed = false;
	while (lg.lines < o->count && bench_mono_ns() < deadline) {
		if (log_poll(&lg) != 0)
			bench_die(PROG, o->log);
		if (lg.lines >= o->count)
			break;
		for (int i = 0; i < o->clients; i++)
			if (atomic_load(&conns[i].errors))
				intake_failed = true;
		if (intake_failed)
			break;
		bench_sleep_ms(1);
	}
	int64_t t_stop = bench_mono_ns();
	bool done = lg.lines >= o->count;
	long arrived = done ? o->count : lg.lines;
	if (!done)
		for (int i = 0; i < o->clients; i++)
			shutdown(conns[i].fd, SHUT_RDWR);

	long acked = 0, errors = 0;
	int64_t last_ack = t0;
	const char *first_error = NULL;
	for (int i = 0; i < o->clients; i++) {
		pthread_join(w[i], NULL);
		pthread_join(rd[i], NULL);
		close(conns[i].fd);
		acked += atomic_load(&conns[i].acked);
		errors += atomic_load(&conns[i].errors);
		if (conns[i].last_ack_ns > last_ack)
			last_ack = conns[i].last_ack_ns;
		if (!first_error && conns[i].first_error[0])
			first_error = conns[i].first_error;
	}

	/* late or repeated requests show as lines past the target */
	bench_sleep_ms(HR_SETTLE_MS);
	if (log_poll(&lg) != 0)
		bench_die(PROG, o->log);
	long sent = -1;
	int64_t sent_deadline = bench_mono_ns() +
				(done ? HR_SENT_WAIT_S : 0) * (int64_t)1000000000;
	do {
		sent = daemon_sent(o->socket, channel);
		if (sent >= 0 && sent - sent0 >= o->count)
			break;
		bench_sleep_ms(20);
	} while (bench_mono_ns() < sent_deadline);
	if (sent >= 0)
		sent -= sent0;

	double secs = done ? (double)(lg.nth_ms * 1000000 - t0_wall) / 1e9
			   : (double)(t_stop - t0) / 1e9;
	double rate = secs > 0 ? (double)arrived / secs : 0;
	double first_ms = lg.lines ? (double)(lg.first_ms * 1000000 - t0_wall) / 1e6
				   : -1;
	/* the server-side span alone: first answer to the N-th */
	double span = done && lg.nth_ms > lg.first_ms
			      ? (double)(lg.nth_ms - lg.first_ms) / 1e3 : 0;
	double span_rate = span > 0 ? (double)(o->count - 1) / span : 0;
	double intake_s = (double)(last_ack - t0) / 1e9;
	long n_conns = distinct_conns(&lg);
	if (done)
		printf("rouse: %ld %s jobs answered by the server %.3f s after "
		       "the first byte of load: %.0f req/s (first answer after "
		       "%.1f ms; %.0f req/s from the first answer to the "
		       "last)\n", o->count, channel, secs, rate, first_ms,
		       span_rate);
	else
		printf("rouse: CUT at %.0f s: %ld of %ld %s requests answered "
		       "by the server: %.0f req/s so far\n", secs, arrived,
		       o->count, channel, rate);
	printf("  intake: %ld acked over %d connections in %.3f s (%.0f "
	       "acks/s), %ld unexpected answers%s%s\n", acked, o->clients,
	       intake_s, intake_s > 0 ? (double)acked / intake_s : 0, errors,
	       first_error ? "; first: " : "", first_error ? first_error : "");
	printf("  server: %ld answers logged (%ld not 2xx%s%s), over %ld "
	       "connections; daemon sent.%s grew by %ld\n", lg.lines,
	       lg.non2xx, lg.non2xx ? "; first: " : "",
	       lg.non2xx ? lg.first_bad : "", n_conns, channel, sent);
	printf("result: mode=rouse kind=%s count=%ld partial=%d seconds=%.3f "
	       "req_per_s=%.0f arrived=%ld first_ms=%.1f logged=%ld "
	       "non2xx=%ld connections=%ld acked=%ld errors=%ld "
	       "intake_seconds=%.3f daemon_sent=%ld span_seconds=%.3f "
	       "span_req_per_s=%.0f\n",
	       o->kind == HR_SMS ? "sms" : "apns", o->count, done ? 0 : 1, secs,
	       rate, arrived, first_ms, lg.lines, lg.non2xx, n_conns, acked,
	       errors, intake_s, sent, span, span_rate);
	bool ok = done && errors == 0 && lg.non2xx == 0 &&
		  lg.lines == o->count && sent == o->count;
	if (!ok)
		fprintf(stderr, "%s: FAILED: %s\n", PROG,
			errors ? "unexpected intake answers"
			: !done ? "not every job reached the server in time"
			: lg.non2xx ? "answers that were not 2xx"
			: lg.lines != o->count ? "more requests than jobs"
					       : "the daemon's sent count differs");
	close(lg.fd);
	free(lg.buf);
	free(lg.conns);
	free(conns);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------ options */

static void usage(void)
{
	fprintf(stderr,
		"usage: http_raw [post] --url BASE --kind sms|apns [-n N] [-c C] "
		"[--http2] [--cacert FILE] [options]\n"
		"       http_raw rouse --socket PATH --log FILE --kind sms|apns "
		"[-n N] [options]\n"
		"  -n N               requests / jobs (default 20000)\n"
		"  --timeout S        give up S s after the start (default 120)\n"
		"post:\n"
		"  --url BASE         scheme://host:port of the server\n"
		"  -c C               connections (default 16)\n"
		"  --http2            HTTP/2 (ALPN over https, prior knowledge "
		"over http)\n"
		"  --streams S        --http2: requests in flight per connection "
		"(default 100)\n"
		"  --cacert FILE      CA bundle for https\n"
		"  --auth-token T     sms: Basic auth password (default "
		"bench-token)\n"
		"rouse:\n"
		"  --socket PATH      roused's intake socket\n"
		"  --log FILE         the server's access log (\"$msec $status "
		"$connection\" lines)\n"
		"  --clients C        intake connections (default 2)\n"
		"  --window W         most unanswered per connection (default "
		"4096)\n"
		"  --tag T            key/user prefix (default pid)\n");
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

int main(int argc, char **argv)
{
	static char tagbuf[32];
	struct hr_opts o = {
		.kind = HR_SMS, .count = 20000, .timeout = 120, .conns = 16,
		.streams = 100, .auth_token = "bench-token", .clients = 2,
		.window = 4096,
	};
	const char *kind = NULL;
	int i = 1;
	if (argc > 1 && strcmp(argv[1], "rouse") == 0) {
		o.rouse = true;
		i = 2;
	} else if (argc > 1 && strcmp(argv[1], "post") == 0) {
		i = 2;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--http2") == 0) {
			o.http2 = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--url") == 0)
			o.url = v;
		else if (strcmp(a, "--kind") == 0)
			kind = v;
		else if (strcmp(a, "-n") == 0)
			o.count = (long)num_arg(a, v);
		else if (strcmp(a, "-c") == 0)
			o.conns = (int)num_arg(a, v);
		else if (strcmp(a, "--streams") == 0)
			o.streams = (int)num_arg(a, v);
		else if (strcmp(a, "--cacert") == 0)
			o.cacert = v;
		else if (strcmp(a, "--auth-token") == 0)
			o.auth_token = v;
		else if (strcmp(a, "--timeout") == 0)
			o.timeout = num_arg(a, v);
		else if (strcmp(a, "--socket") == 0)
			o.socket = v;
		else if (strcmp(a, "--log") == 0)
			o.log = v;
		else if (strcmp(a, "--clients") == 0)
			o.clients = (int)num_arg(a, v);
		else if (strcmp(a, "--window") == 0)
			o.window = (long)num_arg(a, v);
		else if (strcmp(a, "--tag") == 0)
			o.tag = v;
		else
			usage();
	}
	if (!kind)
		usage();
	if (strcmp(kind, "sms") == 0) {
		o.kind = HR_SMS;
	} else if (strcmp(kind, "apns") == 0) {
		o.kind = HR_APNS;
	} else {
		fprintf(stderr, "%s: --kind: expected sms or apns, got \"%s\"\n",
			PROG, kind);
		return 2;
	}
	if (o.count < 1 || o.timeout <= 0)
		usage();
	if (o.rouse) {
		if (!o.socket || !o.log || o.clients < 1 ||
		    o.clients > HR_MAX_CLIENTS || o.window < 1)
			usage();
	} else {
		if (!o.url || o.conns < 1 || o.streams < 1 ||
		    (long)o.conns * (o.http2 ? o.streams : 1) > HR_MAX_INFLIGHT)
			usage();
		size_t ul = strlen(o.url);
		if (ul && o.url[ul - 1] == '/') {
			fprintf(stderr, "%s: --url: give the base without a "
				"trailing '/'\n", PROG);
			return 2;
		}
	}
	if (!o.tag) {
		snprintf(tagbuf, sizeof tagbuf, "h%ld", (long)getpid());
		o.tag = tagbuf;
	}
	if (strspn(o.tag, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789_-") != strlen(o.tag) || strlen(o.tag) > 64) {
		fprintf(stderr, "%s: --tag: use at most 64 of [A-Za-z0-9_-]\n",
			PROG);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: curl_global_init failed\n", PROG);
		return 2;
	}
	int rc = o.rouse ? run_rouse(&o) : run_post(&o);
	curl_global_cleanup();
	return rc;
}
