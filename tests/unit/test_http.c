/* test_http.c: the HTTP engine against a local HTTP/1.1 server.
 *
 * The peer is tests/unit/http_test_server.py (found through
 * ROUSE_TESTS_DIR), started as a child process on a free 127.0.0.1 port;
 * it counts TCP connections and requests per path, which the tests read
 * back from /stats over a separate one-connection pool.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "http.h"
#include "testutil.h"

static uv_loop_t loop;
static uv_timer_t tick;
static pid_t server_pid = -1;
static int server_stdin = -1;
static int port;
static struct http_pool *stats_pool;

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop until cond holds or ms pass (a 10 ms tick keeps it
 * waking up). */
#define RUN_UNTIL(cond, ms) do { \
	uint64_t end_ = uv_now(&loop) + (ms); \
	uv_timer_start(&tick, tick_cb, 10, 10); \
	while (!(cond) && uv_now(&loop) < end_) \
		uv_run(&loop, UV_RUN_ONCE); \
	uv_timer_stop(&tick); \
} while (0)

/* ------------------------------------------------------------ server */

static int server_start(void)
{
	const char *dir = getenv("ROUSE_TESTS_DIR");
	char path[1024];
	snprintf(path, sizeof path, "%s/unit/http_test_server.py", dir ? dir : ".");
	int in[2], out[2];
	if (pipe(in) != 0 || pipe(out) != 0)
		return -1;
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/usr/bin/python3", "python3", path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_stdin = in[1];
	FILE *f = fdopen(out[0], "r");
	char line[64];
	if (!f || !fgets(line, sizeof line, f)) {
		fprintf(stderr, "http_test_server.py (%s) printed no port\n", path);
		return -1;
	}
	fclose(f);
	port = (int)strtol(line, NULL, 10);
	return port > 0 ? 0 : -1;
}

static void server_stop(void)
{
	if (server_stdin >= 0)
		close(server_stdin);
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
}

static void url(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "http://127.0.0.1:%d%s", port, path);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

/* ------------------------------------------------------------ calls */

/* What one done callback saw. */
struct call {
	int calls;
	int order;                  /* completion rank, from 1 */
	enum http_result result;
	long status;
	char *body;
	size_t body_len;
	bool truncated;
	int64_t retry_after_ms;
	bool http2;
	char error[256];
	uint64_t done_at;
	/* optional reactions */
	struct http_pool *close_pool;
	struct http_pool *resubmit_pool;
};

static int completions;

static void call_done(void *ud, const struct http_response *r)
{
	struct call *c = ud;
	c->calls++;
	c->order = ++completions;
	c->result = r->result;
	c->status = r->status;
	free(c->body);
	c->body = malloc(r->body_len + 1);
	memcpy(c->body, r->body, r->body_len + 1);
	c->body_len = r->body_len;
	c->truncated = r->body_truncated;
	c->retry_after_ms = r->retry_after_ms;
	c->http2 = r->http2;
	snprintf(c->error, sizeof c->error, "%s", r->error);
	c->done_at = uv_now(&loop);
	if (r->body[r->body_len] != '\0' || strlen(r->body) != r->body_len)
		c->status = -999; /* not NUL-terminated where it says */
	if (c->close_pool)
		http_pool_close(c->close_pool);
}

static void call_reset(struct call *c)
{
	free(c->body);
	memset(c, 0, sizeof *c);
}

static int submit(struct http_pool *p, const char *method, const char *path,
		  const char *body, const char *const *headers, struct call *c)
{
	char u[256];
	url(u, sizeof u, path);
	struct http_request req = {
		.method = method, .url = u, .headers = headers,
		.body = body, .body_len = body ? strlen(body) : 0,
	};
	return http_submit(p, &req, call_done, c);
}

/* One request, waited for. */
static void one(struct http_pool *p, const char *method, const char *path,
		const char *body, const char *const *headers, struct call *c)
{
	call_reset(c);
	ASSERT_EQ_INT(submit(p, method, path, body, headers, c), 0);
	RUN_UNTIL(c->calls > 0, 20000);
	ASSERT_EQ_INT(c->calls, 1);
}

static struct http_pool *pool(const char *name, int connections,
			      int max_in_flight, int64_t timeout_ms)
{
	struct http_pool_options o = {
		.name = name, .connections = connections,
		.max_in_flight = max_in_flight, .timeout_ms = timeout_ms,
	};
	struct http_pool *p = NULL;
	char err[256] = "";
	if (http_pool_open(&loop, &o, &p, err, sizeof err) != 0) {
		fprintf(stderr, "http_pool_open: %s\n", err);
		exit(1);
	}
	return p;
}

/* The server's counters. */
static json_t *stats(void)
{
	struct call c = {0};
	one(stats_pool, "GET", "/stats", NULL, NULL, &c);
	json_t *j = json_loads(c.body ? c.body : "", 0, NULL);
	call_reset(&c);
	if (!j) {
		fprintf(stderr, "/stats did not answer JSON\n");
		exit(1);
	}
	return j;
}

static long stat_int(const char *key)
{
	json_t *j = stats();
	long v = (long)json_integer_value(json_object_get(j, key));
	json_decref(j);
	return v;
}

static long stat_hits(const char *path)
{
	json_t *j = stats();
	long v = (long)json_integer_value(json_object_get(json_object_get(j, "hits"), path));
	json_decref(j);
	return v;
}

/* The value of header name in an /echo answer, or NULL. */
static const char *echo_header(json_t *echo, const char *name)
{
	size_t i;
	json_t *pair;
	json_array_foreach(json_object_get(echo, "headers"), i, pair) {
		if (strcasecmp(json_string_value(json_array_get(pair, 0)), name) == 0)
			return json_string_value(json_array_get(pair, 1));
	}
	return NULL;
}

/* ------------------------------------------------------------ tests */

static void test_options(void)
{
	struct http_pool *p = NULL;
	char err[256];
	struct http_pool_options o = { .name = "sms", .connections = 0, .timeout_ms = 1000 };
	ASSERT_EQ_INT(http_pool_open(&loop, &o, &p, err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "\"sms\": connections") != NULL);
	ASSERT_TRUE(p == NULL);
	o.connections = 2;
	o.timeout_ms = 0;
	ASSERT_EQ_INT(http_pool_open(&loop, &o, &p, err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "timeout") != NULL);
	o.timeout_ms = 1000;
	o.name = NULL;
	ASSERT_EQ_INT(http_pool_open(&loop, &o, &p, err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "name") != NULL);

	/* a refused submit never calls back */
	p = pool("sms", 1, 0, 1000);
	struct call c = {0};
	struct http_request req = { .method = "POST", .url = NULL };
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), -1);
	req.url = "http://127.0.0.1:1/";
	req.method = NULL;
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), -1);
	req.method = "HEAD";
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), -1);
	const char *injected[] = { "X-Ok: 1", "X-Bad: a\r\nX-Evil: 1", NULL };
	req.method = "POST";
	req.headers = injected;
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), -1);
	injected[1] = "X-Bad: a\n";
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), -1);
	ASSERT_EQ_INT(http_pool_in_flight(p), 0);
	http_pool_close(p);
	RUN_UNTIL(false, 50);
	ASSERT_EQ_INT(c.calls, 0);
}

static void test_echo(void)
{
	struct http_pool *p = pool("sms", 2, 0, 10000);
	struct call c = {0};
	char u[256];
	url(u, sizeof u, "/echo");
	const char *headers[] = { "Content-Type: application/json",
				  "X-Rouse-Test: yes", NULL };
	const char *body = "{\"to\":\"+15550100\",\"text\":\"h\\u00e9llo\"}";
	struct http_request req = {
		.method = "POST", .url = u, .headers = headers,
		.body = body, .body_len = strlen(body),
		.basic_user = "AC123", .basic_password = "s3cret",
	};
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), 0);
	ASSERT_EQ_INT(http_pool_in_flight(p), 1);
	RUN_UNTIL(c.calls > 0, 20000);
	ASSERT_EQ_INT(c.calls, 1);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_EQ_STR(c.error, "");
	ASSERT_EQ_INT(c.retry_after_ms, -1);
	ASSERT_TRUE(!c.http2);
	ASSERT_EQ_INT(http_pool_in_flight(p), 0);
	json_t *j = json_loads(c.body, 0, NULL);
	ASSERT_TRUE(j != NULL);
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "method")), "POST");
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "path")), "/echo");
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "body")), body);
	ASSERT_EQ_STR(echo_header(j, "Authorization"), "Basic QUMxMjM6czNjcmV0");
	ASSERT_EQ_STR(echo_header(j, "X-Rouse-Test"), "yes");
	ASSERT_EQ_STR(echo_header(j, "Content-Type"), "application/json");
	ASSERT_EQ_STR(echo_header(j, "Content-Length"), "38");
	ASSERT_TRUE(echo_header(j, "Expect") == NULL);
	json_decref(j);

	/* the next request on a reused handle carries no credentials, and a
	 * body above 1 KiB goes at once (no 100-continue wait); PUT */
	char big[5001];
	memset(big, 'b', 5000);
	big[5000] = '\0';
	uint64_t t0 = uv_now(&loop);
	one(p, "PUT", "/echo", big, NULL, &c);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_TRUE(c.done_at - t0 < 900);
	j = json_loads(c.body, 0, NULL);
	ASSERT_TRUE(j != NULL);
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "method")), "PUT");
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "body")), big);
	ASSERT_TRUE(echo_header(j, "Authorization") == NULL);
	ASSERT_TRUE(echo_header(j, "X-Rouse-Test") == NULL);
	ASSERT_TRUE(echo_header(j, "Expect") == NULL);
	json_decref(j);

	/* GET without a body */
	one(p, "GET", "/echo?x=1", NULL, NULL, &c);
	j = json_loads(c.body, 0, NULL);
	ASSERT_TRUE(j != NULL);
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "method")), "GET");
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "path")), "/echo?x=1");
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "body")), "");
	json_decref(j);

	/* empty POST */
	one(p, "POST", "/echo", "", NULL, &c);
	j = json_loads(c.body, 0, NULL);
	ASSERT_TRUE(j != NULL);
	ASSERT_EQ_STR(json_string_value(json_object_get(j, "method")), "POST");
	ASSERT_EQ_STR(echo_header(j, "Content-Length"), "0");
	json_decref(j);

	/* the plain answer */
	one(p, "GET", "/ok", NULL, NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_EQ_STR(c.body, "{\"ok\": true, \"id\": \"abc123\"}");
	ASSERT_EQ_INT(c.body_len, strlen("{\"ok\": true, \"id\": \"abc123\"}"));
	one(p, "GET", "/nowhere", NULL, NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 404);
	call_reset(&c);
	http_pool_close(p);
}

static void test_body_cap(void)
{
	struct http_pool *p = pool("sms", 1, 0, 10000);
	struct call c = {0};
	one(p, "GET", "/big?n=100000", NULL, NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_EQ_INT(c.body_len, HTTP_BODY_MAX);
	ASSERT_TRUE(c.truncated);
	ASSERT_EQ_INT(strlen(c.body), HTTP_BODY_MAX);
	one(p, "GET", "/big?n=65536", NULL, NULL, &c);
	ASSERT_EQ_INT(c.body_len, 65536);
	ASSERT_TRUE(!c.truncated);
	one(p, "GET", "/big?n=3", NULL, NULL, &c);
	ASSERT_EQ_STR(c.body, "xxx");
	ASSERT_TRUE(!c.truncated);
	call_reset(&c);
	http_pool_close(p);
}

static void test_retry_after(void)
{
	struct http_pool *p = pool("sms", 1, 0, 10000);
	struct call c = {0};
	one(p, "POST", "/retry", "x", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 503);
	ASSERT_EQ_INT(c.retry_after_ms, 2000);

	one(p, "POST", "/date", "x", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 429);
	/* an HTTP-date 10 s ahead, whole seconds: 9..10 s */
	if (c.retry_after_ms < 8500 || c.retry_after_ms > 10000)
		fprintf(stderr, "date Retry-After gave %lld ms\n",
			(long long)c.retry_after_ms);
	ASSERT_TRUE(c.retry_after_ms >= 8500 && c.retry_after_ms <= 10000);

	one(p, "POST", "/retry?v=120", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, 120000);
	one(p, "POST", "/retry?v=0", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, 0);
	one(p, "POST", "/retry?v=soon", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, -1);
	one(p, "POST", "/retry?v=-5", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, -1);
	one(p, "POST", "/retry?v=99999999999999999999", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, INT64_C(1000000000000));
	one(p, "POST", "/retry?v=Wed%2C%2021%20Oct%202015%2007%3A28%3A00%20GMT", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, 0); /* a date in the past */
	one(p, "POST", "/ok", "x", NULL, &c);
	ASSERT_EQ_INT(c.retry_after_ms, -1); /* not carried over */
	call_reset(&c);
	http_pool_close(p);
}

static void test_stall_times_out(void)
{
	struct http_pool *p = pool("sms", 1, 0, 500);
	struct call c = {0};
	uint64_t t0 = uv_now(&loop);
	one(p, "POST", "/stall", "{\"a\":1}", NULL, &c);
	uint64_t took = c.done_at - t0;
	ASSERT_EQ_INT(c.result, HTTP_AMBIGUOUS);
	ASSERT_EQ_INT(c.status, 0);
	ASSERT_TRUE(took >= 450 && took < 5000);
	ASSERT_TRUE(strncmp(c.error, "sms: ", 5) == 0);
	ASSERT_TRUE(strstr(c.error, "imed out") != NULL);
	if (!strstr(c.error, "imed out"))
		fprintf(stderr, "stall error: %s\n", c.error);
	call_reset(&c);
	http_pool_close(p);
}

static void test_drop(void)
{
	struct http_pool *p = pool("sms", 1, 0, 10000);
	struct call c = {0};
	long before = stat_hits("/drop");

	/* on a fresh connection */
	one(p, "POST", "/drop", "{\"a\":1}", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_AMBIGUOUS);
	ASSERT_TRUE(c.error[0] != '\0');
	ASSERT_EQ_INT(stat_hits("/drop"), before + 1);

	/* on a reused keep-alive connection: curl would re-send the request
	 * on a new connection by itself; the pool must not let it */
	one(p, "POST", "/ok", "x", NULL, &c);
	ASSERT_EQ_INT(c.status, 200);
	one(p, "POST", "/drop", "{\"a\":2}", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_AMBIGUOUS);
	ASSERT_EQ_INT(stat_hits("/drop"), before + 2);
	ASSERT_TRUE(strstr(c.error, "not sent again") != NULL);

	/* and the pool goes on working */
	one(p, "POST", "/ok", "x", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	call_reset(&c);
	http_pool_close(p);
}

static int loop_turns;

static void count_turn(uv_check_t *h)
{
	(void)h;
	loop_turns++;
}

/* A kept-alive connection the server closes while it is idle: the
 * socket's poll handle, kept between requests, must neither spin on that
 * readiness nor keep the next request from going out on a new
 * connection. */
static void test_server_closes_idle_connection(void)
{
	struct http_pool *p = pool("sms", 1, 0, 10000);
	struct call c = {0};
	long connections = stat_int("connections");

	one(p, "POST", "/close-later?ms=100", "x", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);

	uv_check_t check;
	uv_check_init(&loop, &check);
	uv_check_start(&check, count_turn);
	loop_turns = 0;
	RUN_UNTIL(false, 500); /* the close arrives meanwhile */
	uv_close((uv_handle_t *)&check, NULL);
	/* the 10 ms tick makes ~50 turns; a handle left polling a closed
	 * socket would make thousands */
	ASSERT_TRUE(loop_turns < 200);

	one(p, "POST", "/ok", "x", NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_EQ_INT(stat_int("connections"), connections + 2);

	/* and the new connection is reused */
	one(p, "POST", "/ok", "x", NULL, &c);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_EQ_INT(stat_int("connections"), connections + 2);
	call_reset(&c);
	http_pool_close(p);
}

static void test_not_sent(void)
{
	struct http_pool *p = pool("sms", 1, 0, 10000);
	struct call c = {0};
	char u[256];
	int closed = closed_port();
	ASSERT_TRUE(closed > 0);
	snprintf(u, sizeof u, "http://127.0.0.1:%d/x", closed);
	struct http_request req = {
		.method = "POST", .url = u, .body = "x", .body_len = 1,
		.basic_user = "AC123", .basic_password = "s3cret",
	};
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), 0);
	RUN_UNTIL(c.calls > 0, 20000);
	ASSERT_EQ_INT(c.calls, 1);
	ASSERT_EQ_INT(c.result, HTTP_NOT_SENT);
	ASSERT_TRUE(strncmp(c.error, "sms: ", 5) == 0);
	ASSERT_TRUE(strstr(c.error, "s3cret") == NULL);
	ASSERT_EQ_STR(c.body, "");

	/* TLS to a plain-HTTP port: the handshake fails, nothing was sent */
	long hits = stat_hits("/tls");
	snprintf(u, sizeof u, "https://127.0.0.1:%d/tls", port);
	call_reset(&c);
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), 0);
	RUN_UNTIL(c.calls > 0, 20000);
	ASSERT_EQ_INT(c.calls, 1);
	ASSERT_EQ_INT(c.result, HTTP_NOT_SENT);
	ASSERT_EQ_INT(stat_hits("/tls"), hits);

	/* an unusable URL */
	snprintf(u, sizeof u, "ftp://127.0.0.1:%d/x", port);
	call_reset(&c);
	ASSERT_EQ_INT(http_submit(p, &req, call_done, &c), 0);
	RUN_UNTIL(c.calls > 0, 20000);
	ASSERT_EQ_INT(c.result, HTTP_NOT_SENT);
	call_reset(&c);
	http_pool_close(p);
}

struct bulk {
	int done, ok, bad;
};

static void bulk_done(void *ud, const struct http_response *r)
{
	struct bulk *b = ud;
	b->done++;
	if (r->result == HTTP_ANSWERED && r->status == 200 &&
	    strcmp(r->body, "{\"ok\": true, \"id\": \"abc123\"}") == 0)
		b->ok++;
	else
		b->bad++;
}

static void test_many_few_connections(void)
{
	long conns0 = stat_int("connections");
	size_t own0 = http_pool_connections_opened(stats_pool);
	struct http_pool *p = pool("sms", 4, 0, 30000);
	struct bulk b = {0};
	char u[256];
	url(u, sizeof u, "/ok");
	const char *headers[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
	for (int i = 0; i < 500; i++) {
		char body[64];
		snprintf(body, sizeof body, "To=%%2B1555%04d&Body=n%d", i, i);
		struct http_request req = {
			.method = "POST", .url = u, .headers = headers,
			.body = body, .body_len = strlen(body),
		};
		ASSERT_EQ_INT(http_submit(p, &req, bulk_done, &b), 0);
	}
	ASSERT_EQ_INT(http_pool_in_flight(p), 500);
	RUN_UNTIL(b.done == 500, 60000);
	ASSERT_EQ_INT(b.done, 500);
	ASSERT_EQ_INT(b.ok, 500);
	ASSERT_EQ_INT(b.bad, 0);
	ASSERT_EQ_INT(http_pool_in_flight(p), 0);
	/* the server's count, less what the /stats requests opened (the stats
	 * pool reconnects when its connection idled for 4 s, e.g. under
	 * valgrind) */
	long made = stat_int("connections") - conns0;
	made -= (long)(http_pool_connections_opened(stats_pool) - own0);
	ASSERT_TRUE(made >= 1 && made <= 4);
	ASSERT_EQ_INT((long)http_pool_connections_opened(p), made);
	RUN_UNTIL(false, 100);
	ASSERT_EQ_INT(b.done, 500);
	http_pool_close(p);
}

/* Six 300 ms requests, two at a time, each with an 800 ms timeout: the
 * last pair waits ~600 ms in the queue and must not time out there. */
static void test_queue(void)
{
	struct http_pool *p = pool("sms", 2, 2, 800);
	struct call c[6];
	memset(c, 0, sizeof c);
	completions = 0;
	for (int i = 0; i < 6; i++)
		ASSERT_EQ_INT(submit(p, "POST", "/slow?ms=300", "x", NULL, &c[i]), 0);
	ASSERT_EQ_INT(http_pool_in_flight(p), 6);
	RUN_UNTIL(completions == 6, 20000);
	for (int i = 0; i < 6; i++) {
		ASSERT_EQ_INT(c[i].calls, 1);
		ASSERT_EQ_INT(c[i].result, HTTP_ANSWERED);
		ASSERT_EQ_INT(c[i].status, 200);
		/* FIFO: finished in pairs, in submission order */
		ASSERT_TRUE(c[i].order == i + 1 || c[i].order == (i ^ 1) + 1);
	}
	ASSERT_TRUE(c[5].done_at - c[0].done_at >= 500);
	ASSERT_EQ_INT(stat_int("slow_peak"), 2);
	for (int i = 0; i < 6; i++)
		call_reset(&c[i]);
	http_pool_close(p);
}

/* Two requests stalled at the server, three queued behind them: closing
 * calls each done exactly once, now. */
static void test_close_in_flight(void)
{
	struct http_pool *p = pool("sms", 2, 2, 30000);
	struct call c[5];
	memset(c, 0, sizeof c);
	long stalls = stat_hits("/stall");
	long open0 = stat_int("open");
	ASSERT_EQ_INT(submit(p, "POST", "/stall", "s1", NULL, &c[0]), 0);
	ASSERT_EQ_INT(submit(p, "POST", "/stall", "s2", NULL, &c[1]), 0);
	for (int i = 2; i < 5; i++)
		ASSERT_EQ_INT(submit(p, "POST", "/ok", "q", NULL, &c[i]), 0);
	ASSERT_EQ_INT(http_pool_in_flight(p), 5);
	long seen = 0;
	for (int i = 0; i < 200 && seen < stalls + 2; i++) {
		RUN_UNTIL(false, 20);
		seen = stat_hits("/stall");
	}
	ASSERT_EQ_INT(seen, stalls + 2);
	ASSERT_EQ_INT(http_pool_in_flight(p), 5);

	http_pool_close(p);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ_INT(c[i].calls, 1);
	ASSERT_EQ_INT(c[0].result, HTTP_AMBIGUOUS);
	ASSERT_EQ_INT(c[1].result, HTTP_AMBIGUOUS);
	for (int i = 2; i < 5; i++) {
		ASSERT_EQ_INT(c[i].result, HTTP_NOT_SENT);
		ASSERT_TRUE(strstr(c[i].error, "closed") != NULL);
	}
	RUN_UNTIL(false, 100);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ_INT(c[i].calls, 1);
	/* the stalled connections were closed: the server sees them go */
	long open = open0 + 2;
	for (int i = 0; i < 300 && open > open0; i++) {
		RUN_UNTIL(false, 20);
		open = stat_int("open");
	}
	ASSERT_TRUE(open <= open0);
	for (int i = 0; i < 5; i++)
		call_reset(&c[i]);
}

/* A done callback closes its own pool; another chains requests. */
static void test_reentrancy(void)
{
	struct http_pool *p = pool("sms", 1, 1, 10000);
	struct call c[4];
	memset(c, 0, sizeof c);
	completions = 0;
	c[0].close_pool = p;
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(submit(p, "POST", "/ok", "x", NULL, &c[i]), 0);
	RUN_UNTIL(completions == 4, 20000);
	RUN_UNTIL(false, 50);
	ASSERT_EQ_INT(c[0].result, HTTP_ANSWERED);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(c[i].calls, 1);
	for (int i = 1; i < 4; i++)
		ASSERT_EQ_INT(c[i].result, HTTP_NOT_SENT);
	for (int i = 0; i < 4; i++)
		call_reset(&c[i]);
}

struct chain {
	struct http_pool *p;
	int left, ok;
	char url[256];
};

static void chain_done(void *ud, const struct http_response *r)
{
	struct chain *ch = ud;
	if (r->result == HTTP_ANSWERED && r->status == 200)
		ch->ok++;
	if (--ch->left > 0) {
		struct http_request req = { .method = "POST", .url = ch->url,
					    .body = "x", .body_len = 1 };
		if (http_submit(ch->p, &req, chain_done, ch) != 0)
			ch->left = -1000;
	}
}

static void test_chain(void)
{
	struct chain ch = { .left = 50 };
	ch.p = pool("sms", 1, 0, 10000);
	url(ch.url, sizeof ch.url, "/ok");
	struct http_request req = { .method = "POST", .url = ch.url,
				    .body = "x", .body_len = 1 };
	ASSERT_EQ_INT(http_submit(ch.p, &req, chain_done, &ch), 0);
	RUN_UNTIL(ch.left <= 0, 30000);
	ASSERT_EQ_INT(ch.left, 0);
	ASSERT_EQ_INT(ch.ok, 50);
	ASSERT_EQ_INT(http_pool_connections_opened(ch.p), 1);
	http_pool_close(ch.p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (server_start() != 0) {
		fprintf(stderr, "cannot start the test server\n");
		return 1;
	}
	ASSERT_EQ_INT(http_global_init(), 0);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);
	stats_pool = pool("stats", 1, 0, 10000);

	test_options();
	test_echo();
	test_body_cap();
	test_retry_after();
	test_stall_times_out();
	test_drop();
	test_not_sent();
	test_server_closes_idle_connection();
	test_many_few_connections();
	test_queue();
	test_close_in_flight();
	test_reentrancy();
	test_chain();

	http_pool_close(stats_pool);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ_INT(uv_loop_close(&loop), 0);
	http_global_cleanup();
	server_stop();
	TEST_DONE();
}
