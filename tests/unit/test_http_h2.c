/* test_http_h2.c: the HTTP engine over TLS and HTTP/2, against nginx.
 *
 * Starts /usr/sbin/nginx (ssl + http2) on a free 127.0.0.1 port with a
 * self-signed certificate made by /usr/bin/openssl in a temporary
 * directory, and checks: h2 negotiated by ALPN, many concurrent requests
 * multiplexed over one connection, request headers and Retry-After over
 * h2, HTTP/1.1 over TLS when http2 is off, and a certificate the pool does
 * not trust refused before anything is sent. Without nginx or openssl the
 * test says SKIP and passes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"
#include "testutil.h"

static uv_loop_t loop;
static uv_timer_t tick;
static char dir[64];
static int port;
static pid_t nginx_pid = -1;

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

#define RUN_UNTIL(cond, ms) do { \
	uint64_t end_ = uv_now(&loop) + (ms); \
	uv_timer_start(&tick, tick_cb, 10, 10); \
	while (!(cond) && uv_now(&loop) < end_) \
		uv_run(&loop, UV_RUN_ONCE); \
	uv_timer_stop(&tick); \
} while (0)

/* ------------------------------------------------------------ nginx */

static int free_port(void)
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

static bool port_open(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int nginx_start(void)
{
	char cmd[1024], path[256];
	snprintf(dir, sizeof dir, "/tmp/rouse-h2-XXXXXX");
	if (!mkdtemp(dir) || chmod(dir, 0755) != 0)
		return -1;
	snprintf(cmd, sizeof cmd,
		 "/usr/bin/openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes -keyout %s/key.pem -out %s/cert.pem -days 2 -subj /CN=127.0.0.1 "
		 "-addext subjectAltName=IP:127.0.0.1 2>/dev/null", dir, dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/key.pem", dir);
	chmod(path, 0644);

	port = free_port();
	snprintf(path, sizeof path, "%s/nginx.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f,
		"%s"
		"worker_processes 1;\n"
		"pid %s/nginx.pid;\n"
		"error_log %s/error.log;\n"
		"events { worker_connections 256; }\n"
		"http {\n"
		"  access_log off;\n"
		"  client_body_temp_path %s/body;\n"
		"  proxy_temp_path %s/proxy;\n"
		"  fastcgi_temp_path %s/fastcgi;\n"
		"  uwsgi_temp_path %s/uwsgi;\n"
		"  scgi_temp_path %s/scgi;\n"
		"  server {\n"
		"    listen 127.0.0.1:%d ssl http2;\n"
		"    ssl_certificate %s/cert.pem;\n"
		"    ssl_certificate_key %s/key.pem;\n"
		"    location = /ok { return 200 '{\"ok\":true}'; }\n"
		"    location = /echo { return 200 '$request_method $http_apns_topic "
		"$content_length $server_protocol'; }\n"
		"    location = /retry { add_header Retry-After 3 always;\n"
		"                        return 503 '{\"reason\":\"ServiceUnavailable\"}'; }\n"
		"  }\n"
		"}\n",
		geteuid() == 0 ? "user root;\n" : "", dir, dir, dir, dir, dir, dir,
		dir, port, dir, dir);
	fclose(f);

	nginx_pid = fork();
	if (nginx_pid < 0)
		return -1;
	if (nginx_pid == 0) {
		execl("/usr/sbin/nginx", "nginx", "-p", dir, "-c", path, "-g",
		      "daemon off;", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (port_open())
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "nginx did not start (see %s/error.log)\n", dir);
	return -1;
}

static void nginx_stop(void)
{
	if (nginx_pid > 0) {
		kill(nginx_pid, SIGTERM);
		waitpid(nginx_pid, NULL, 0);
	}
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

/* ------------------------------------------------------------ calls */

struct call {
	int calls;
	enum http_result result;
	long status;
	char body[256];
	int64_t retry_after_ms;
	bool http2;
	char error[256];
};

static void call_done(void *ud, const struct http_response *r)
{
	struct call *c = ud;
	c->calls++;
	c->result = r->result;
	c->status = r->status;
	snprintf(c->body, sizeof c->body, "%s", r->body);
	c->retry_after_ms = r->retry_after_ms;
	c->http2 = r->http2;
	snprintf(c->error, sizeof c->error, "%s", r->error);
}

static struct http_pool *pool(int connections, bool http2, bool trust)
{
	char ca[256];
	snprintf(ca, sizeof ca, "%s/cert.pem", dir);
	struct http_pool_options o = {
		.name = "apns", .connections = connections, .timeout_ms = 10000,
		.http2 = http2, .ca_file = trust ? ca : NULL,
	};
	struct http_pool *p = NULL;
	char err[256];
	if (http_pool_open(&loop, &o, &p, err, sizeof err) != 0) {
		fprintf(stderr, "http_pool_open: %s\n", err);
		exit(1);
	}
	return p;
}

static int submit(struct http_pool *p, const char *method, const char *path,
		  const char *const *headers, const char *body, struct call *c)
{
	char url[256];
	snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
	struct http_request req = {
		.method = method, .url = url, .headers = headers,
		.body = body, .body_len = body ? strlen(body) : 0,
	};
	return http_submit(p, &req, call_done, c);
}

static void one(struct http_pool *p, const char *method, const char *path,
		const char *const *headers, const char *body, struct call *c)
{
	memset(c, 0, sizeof *c);
	ASSERT_EQ_INT(submit(p, method, path, headers, body, c), 0);
	RUN_UNTIL(c->calls > 0, 20000);
	ASSERT_EQ_INT(c->calls, 1);
}

static int calls_sum(const struct call *c, int n)
{
	int sum = 0;
	for (int i = 0; i < n; i++)
		sum += c[i].calls;
	return sum;
}

/* ------------------------------------------------------------ tests */

static void test_h2(void)
{
	struct http_pool *p = pool(2, true, true);
	struct call c;
	one(p, "GET", "/ok", NULL, NULL, &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_TRUE(c.http2);
	ASSERT_EQ_STR(c.body, "{\"ok\":true}");

	one(p, "POST", "/retry", NULL, "{}", &c);
	ASSERT_EQ_INT(c.status, 503);
	ASSERT_EQ_INT(c.retry_after_ms, 3000);
	ASSERT_TRUE(c.http2);

	/* 100 at once share the one connection */
	static struct call many[100];
	memset(many, 0, sizeof many);
	const char *headers[] = { "apns-topic: com.example.app",
				  "apns-push-type: alert", NULL };
	const char *body = "{\"aps\":{}}";
	for (int i = 0; i < 100; i++)
		ASSERT_EQ_INT(submit(p, "POST", "/echo", headers, body, &many[i]), 0);
	ASSERT_EQ_INT(http_pool_in_flight(p), 100);
	RUN_UNTIL(calls_sum(many, 100) == 100, 30000);
	int ok = 0;
	for (int i = 0; i < 100; i++)
		if (many[i].calls == 1 && many[i].result == HTTP_ANSWERED &&
		    many[i].status == 200 && many[i].http2 &&
		    strcmp(many[i].body, "POST com.example.app 10 HTTP/2.0") == 0)
			ok++;
	if (ok != 100)
		fprintf(stderr, "h2 echo: \"%s\" %s\n", many[0].body, many[0].error);
	ASSERT_EQ_INT(ok, 100);
	ASSERT_EQ_INT(http_pool_connections_opened(p), 1);
	http_pool_close(p);
}

static void test_h1_over_tls(void)
{
	struct http_pool *p = pool(2, false, true);
	struct call c;
	one(p, "POST", "/echo", NULL, "abc", &c);
	ASSERT_EQ_INT(c.result, HTTP_ANSWERED);
	ASSERT_EQ_INT(c.status, 200);
	ASSERT_TRUE(!c.http2);
	ASSERT_EQ_STR(c.body, "POST  3 HTTP/1.1");
	http_pool_close(p);
}

static void test_untrusted(void)
{
	struct http_pool *p = pool(1, true, false);
	struct call c;
	one(p, "POST", "/ok", NULL, "{}", &c);
	ASSERT_EQ_INT(c.result, HTTP_NOT_SENT);
	ASSERT_TRUE(strncmp(c.error, "apns: ", 6) == 0);
	ASSERT_TRUE(strstr(c.error, "certificate") != NULL);
	if (!strstr(c.error, "certificate"))
		fprintf(stderr, "untrusted: %s\n", c.error);
	http_pool_close(p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (access("/usr/sbin/nginx", X_OK) != 0 || access("/usr/bin/openssl", X_OK) != 0) {
		printf("SKIP: needs /usr/sbin/nginx and /usr/bin/openssl\n");
		return 0;
	}
	if (nginx_start() != 0) {
		nginx_stop();
		fprintf(stderr, "cannot start nginx\n");
		return 1;
	}
	ASSERT_EQ_INT(http_global_init(), 0);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &tick);

	test_h2();
	test_h1_over_tls();
	test_untrusted();

	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ_INT(uv_loop_close(&loop), 0);
	http_global_cleanup();
	nginx_stop();
	TEST_DONE();
}
