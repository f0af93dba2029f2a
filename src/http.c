/* http.c: the HTTP client engine (see http.h).
 *
 * DESIGN
 * - One curl multi handle per pool, driven by the libuv loop in the shape
 *   of curl's multi-uv example: curl's socket callback starts and stops
 *   one uv_poll_t per socket (found again through curl_multi_assign), its
 *   timer callback arms one uv_timer_t (0 ms becomes 1 ms: a 0 ms libuv
 *   timer re-armed from its own callback would run again in the same loop
 *   iteration), and every readiness or expiry goes to
 *   curl_multi_socket_action, followed by a curl_multi_info_read loop that
 *   finishes the completed transfers. Memory of a poll handle is freed
 *   only in its close callback.
 * - A poll handle lives as long as its socket, not as long as curl's
 *   interest in it: an HTTP/1.1 connection is handed back to curl's cache
 *   after every request (CURL_POLL_REMOVE) and taken again for the next,
 *   and closing and re-creating the handle each time cost three
 *   epoll_ctl calls per request. On CURL_POLL_REMOVE the handle is
 *   "parked": it stays in the pool's list and keeps its events, so the
 *   next request on that socket usually changes nothing in epoll; a
 *   readiness while parked (the server closing an idle connection) stops
 *   it, and curl finds the dead connection itself. The handle is closed
 *   when curl closes the socket (CURLOPT_CLOSESOCKETFUNCTION: uv_close
 *   first, while the descriptor is still open, then close()).
 * - A transfer (struct http_xfer) owns one easy handle and the buffers of
 *   one request: the copied body, the header lines and their curl_slist
 *   nodes (laid out in our own arrays, so no per-request allocation once
 *   the buffers have grown), the response body (up to HTTP_BODY_MAX,
 *   written once, handed to the done callback in place). Finished
 *   transfers go back to a free list with their easy handle, its
 *   constant options still set.
 *   The free list keeps as many transfers as were ever in use at once
 *   (waiting + running: the caller's own in-flight cap bounds it) plus a
 *   few, up to HTTP_FREE_MAX: a transfer made and freed per request
 *   (curl_easy_init / curl_easy_cleanup) cost ~3% of the loop under
 *   load.
 * - Requests beyond max_in_flight wait in the pool's FIFO queue, already
 *   prepared, and are added to the multi handle when a running one ends;
 *   curl's timeout (CURLOPT_TIMEOUT_MS) starts only then. Transfers added
 *   while completions are being finished (from the queue, or by done
 *   callbacks) are started by kicking curl at once (socket_action on the
 *   timeout) rather than by its 1 ms timer, so that the pipeline stays
 *   full under load; a request submitted elsewhere starts on the timer.
 * - The body goes as CURLOPT_POSTFIELDS (with the headers in one write
 *   when small). curl re-sends a request on another connection when the
 *   reused one died with nothing received (or an HTTP/2 stream was
 *   refused); CURLOPT_PREREQFUNCTION, called before every attempt, stops
 *   a second attempt once any request byte was written
 *   (CURLE_ABORTED_BY_CALLBACK), so a request reaches the server at most
 *   once through this engine. "Expect:" is always sent empty, so bodies
 *   above 1 KiB do not wait for a 100 Continue.
 * - Results (http.h): CURLE_OK is ANSWERED; any failure is NOT_SENT when
 *   CURLINFO_REQUEST_SIZE is 0 (not one request byte written, across all
 *   of curl's attempts for this transfer), otherwise AMBIGUOUS.
 * - Closing: queued requests end NOT_SENT, running ones are removed from
 *   the multi handle and classified as above, then the poll handles are
 *   stopped and closed while their sockets are still open, the multi
 *   handle is cleaned up (closing the cached connections), and the timer
 *   is closed; the last close callback frees the pool. A done callback
 *   may close its own pool: the completion loop stops as soon as it sees
 *   the pool closing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "timefmt.h"

#define HTTP_NAME_MAX 32
#define HTTP_FREE_SPARE 16        /* idle transfers kept beyond the peak */
#define HTTP_FREE_MAX 4096
#define HTTP_H2_STREAMS 100       /* default requests per HTTP/2 connection */
#define HTTP_RESP_INITIAL 2048
/* HTTP/1.1: a keep-alive connection idle for HTTP_H1_MAX_IDLE_S + 1
 * seconds or more is not reused (curl compares whole seconds; its default
 * is 118 s). Many servers close idle connections after 5 s; a request
 * written just as the server's close is on its way is lost and, not being
 * re-sent (see the design notes), ends AMBIGUOUS. */
#define HTTP_H1_MAX_IDLE_S 3L

struct http_pool;

struct http_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct http_pool *pool;
	bool owned;      /* opened by http_on_opensocket: curl closes it
			    through http_on_closesocket */
	bool polled;     /* poll initialised (and counted in handles_open) */
	bool parked;     /* curl is not watching this socket */
	struct http_sock *prev, *next;
};

struct http_xfer {
	struct http_pool *pool;
	struct http_xfer *prev, *next;   /* in waiting, running or free */
	CURL *easy;
	http_done_fn done;
	void *ud;
	bool has_auth;
	bool attempted;                  /* curl began sending it once */
	bool resend_refused;             /* a re-send was stopped */
	/* the request */
	char *body;
	size_t body_len, body_cap;
	char *hdr_text;                  /* header lines, NUL-separated */
	size_t hdr_text_cap, hdr_text_used;
	struct curl_slist *hdr_nodes;
	size_t hdr_nodes_cap;
	/* the response */
	char *resp;
	size_t resp_len, resp_cap;
	bool resp_truncated;
	int64_t retry_after_ms;
	char errbuf[CURL_ERROR_SIZE];
};

struct http_list {
	struct http_xfer *head, *tail;
	size_t n;
};

struct http_pool {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	char name[HTTP_NAME_MAX];
	char *ca_file;
	int64_t timeout_ms;
	bool http2;
	bool closing;
	bool kick;                       /* transfers added since curl last ran */
	size_t max_in_flight;
	size_t free_max;                 /* idle transfers kept */
	struct http_list waiting;        /* prepared, not yet in curl (FIFO) */
	struct http_list running;        /* added to the multi handle */
	struct http_list idle;           /* free list */
	struct http_sock *socks;
	size_t handles_open;             /* timer + polls not yet closed */
	size_t connections_opened;
};

/* ------------------------------------------------------------ global */

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc = CURLE_FAILED_INIT;

static void http_global_init_once(void)
{
	http_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(void)
{
	pthread_once(&http_once, http_global_init_once);
	return http_init_rc == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
	if (http_init_rc == CURLE_OK)
		curl_global_cleanup();
	http_init_rc = CURLE_FAILED_INIT;
}

/* ------------------------------------------------------------ lists */

static void http_list_push(struct http_list *l, struct http_xfer *x)
{
	x->next = NULL;
	x->prev = l->tail;
	if (l->tail)
		l->tail->next = x;
	else
		l->head = x;
	l->tail = x;
	l->n++;
}

static void http_list_remove(struct http_list *l, struct http_xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		l->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		l->tail = x->prev;
	x->prev = x->next = NULL;
	l->n--;
}

static struct http_xfer *http_list_pop(struct http_list *l)
{
	struct http_xfer *x = l->head;
	if (x)
		http_list_remove(l, x);
	return x;
}

/* ------------------------------------------------------------ buffers */

/* Makes *buf hold at least need bytes (doubling). Returns 0 or -1. */
static int http_grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 256;
	while (n < need)
		n *= 2;
	char *b = realloc(*buf, n);
	if (!b)
		return -1;
	*buf = b;
	*cap = n;
	return 0;
}

/* ------------------------------------------------------------ Retry-After */

/* The value of a Retry-After header (v, len bytes, unterminated) as a
 * delay in ms: delta-seconds or an HTTP-date (RFC 9110 §10.2.3), at least
 * 0; -1 when it is neither. */
static int64_t http_retry_after(const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' ||
		       v[len - 1] == '\r' || v[len - 1] == '\n'))
		len--;
	if (!len)
		return -1;

	bool digits = true;
	for (size_t i = 0; i < len; i++)
		if (v[i] < '0' || v[i] > '9')
			digits = false;
	if (digits) {
		/* anything beyond ~31 years is clamped there */
		int64_t s = 0;
		for (size_t i = 0; i < len && s < 1000000000; i++)
			s = s * 10 + (v[i] - '0');
		if (s > 1000000000)
			s = 1000000000;
		return s * 1000;
	}

	char tmp[64];
	if (len >= sizeof tmp)
		return -1;
	memcpy(tmp, v, len);
	tmp[len] = '\0';
	time_t t = curl_getdate(tmp, NULL);
	if (t == (time_t)-1)
		return -1;
	int64_t delay = (int64_t)t * 1000 - time_now_ms();
	return delay < 0 ? 0 : delay;
}

/* ------------------------------------------------------------ curl callbacks */

static size_t http_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_xfer *x = ud;
	size_t n = size * nmemb;
	size_t take = n;
	if (take > HTTP_BODY_MAX - x->resp_len) {
		take = HTTP_BODY_MAX - x->resp_len;
		x->resp_truncated = true;
	}
	if (take == 0)
		return n;
	size_t need = x->resp_len + take + 1;
	if (need > x->resp_cap) {
		size_t cap = x->resp_cap ? x->resp_cap : HTTP_RESP_INITIAL;
		while (cap < need)
			cap *= 2;
		if (cap > HTTP_BODY_MAX + 1)
			cap = HTTP_BODY_MAX + 1;
		char *b = realloc(x->resp, cap);
		if (!b)
			return 0; /* CURLE_WRITE_ERROR */
		x->resp = b;
		x->resp_cap = cap;
	}
	memcpy(x->resp + x->resp_len, data, take);
	x->resp_len += take;
	x->resp[x->resp_len] = '\0';
	return n;
}

static size_t http_on_header(char *line, size_t size, size_t nitems, void *ud)
{
	struct http_xfer *x = ud;
	size_t n = size * nitems;
	static const char ra[] = "retry-after:";
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0)
		x->retry_after_ms = -1; /* a new response (after 1xx) starts */
	else if (n > sizeof ra - 1 && strncasecmp(line, ra, sizeof ra - 1) == 0)
		x->retry_after_ms = http_retry_after(line + sizeof ra - 1,
						     n - (sizeof ra - 1));
	return n;
}

/* Called before each attempt to send the request. A second attempt means
 * curl is about to re-send on another connection (the reused one died
 * with nothing received, or an HTTP/2 stream was refused): allowed only
 * if not one byte of the request was written before. */
static int http_on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip,
			  int conn_primary_port, int conn_local_port)
{
	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	struct http_xfer *x = ud;
	if (x->attempted) {
		long sent = 0;
		curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
		if (sent != 0) {
			x->resend_refused = true;
			return CURL_PREREQFUNC_ABORT;
		}
	}
	x->attempted = true;
	return CURL_PREREQFUNC_OK;
}

/* ------------------------------------------------------------ transfers */

static void http_xfer_free(struct http_xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	free(x->body);
	free(x->hdr_text);
	free(x->hdr_nodes);
	free(x->resp);
	free(x);
}

static curl_socket_t http_on_opensocket(void *clientp, curlsocktype purpose,
					struct curl_sockaddr *a);
static int http_on_closesocket(void *clientp, curl_socket_t fd);

static struct http_xfer *http_xfer_new(struct http_pool *p)
{
	struct http_xfer *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->pool = p;
	x->easy = curl_easy_init();
	if (!x->easy)
		goto fail;
	CURL *e = x->easy;
	int bad = 0;
	bad += curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_body) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)x) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, http_on_prereq) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)x) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, http_on_opensocket) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)p) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, http_on_closesocket) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, (void *)p) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_USERAGENT, "rouse/" ROUSE_VERSION) != CURLE_OK;
	/* trust comes from one PEM bundle only (ca_file or the system's),
	 * not also from a hashed directory: that keeps curl's in-memory CA
	 * store cache usable (a new connection would otherwise parse the whole
	 * system store again, ~20 ms of CPU on the loop) */
	bad += curl_easy_setopt(e, CURLOPT_CAPATH, (char *)NULL) != CURLE_OK;
	if (p->ca_file)
		bad += curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file) != CURLE_OK;
	if (p->http2) {
		bad += curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
					(long)CURL_HTTP_VERSION_2TLS) != CURLE_OK;
		bad += curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK;
	} else {
		bad += curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
					(long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
		bad += curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, HTTP_H1_MAX_IDLE_S) != CURLE_OK;
	}
	if (bad)
		goto fail;
	return x;
fail:
	http_xfer_free(x);
	return NULL;
}

static struct http_xfer *http_xfer_get(struct http_pool *p)
{
	struct http_xfer *x = http_list_pop(&p->idle);
	return x ? x : http_xfer_new(p);
}

/* Back to the free list (or freed), with the secrets it held wiped. */
static void http_xfer_put(struct http_pool *p, struct http_xfer *x)
{
	if (x->hdr_text_used) {
		memset(x->hdr_text, 0, x->hdr_text_used);
		x->hdr_text_used = 0;
	}
	if (x->has_auth) {
		curl_easy_setopt(x->easy, CURLOPT_USERNAME, (char *)NULL);
		curl_easy_setopt(x->easy, CURLOPT_PASSWORD, (char *)NULL);
		x->has_auth = false;
	}
	x->done = NULL;
	x->ud = NULL;
	if (p->closing || p->idle.n >= p->free_max)
		http_xfer_free(x);
	else
		http_list_push(&p->idle, x);
}

static bool http_has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);
	for (; headers && *headers; headers++)
		if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':')
			return true;
	return false;
}

/* Copies the request into x and sets the per-request options. Returns 0,
 * or -1 (out of memory, a method this engine does not do, a header line
 * with CR or LF in it). */
static int http_xfer_prepare(struct http_xfer *x, const struct http_request *req)
{
	CURL *e = x->easy;
	bool get = strcmp(req->method, "GET") == 0 && req->body_len == 0;
	if (strcmp(req->method, "HEAD") == 0)
		return -1;

	x->body_len = 0;
	x->attempted = false;
	x->resend_refused = false;
	if (req->body_len) {
		if (http_grow(&x->body, &x->body_cap, req->body_len) != 0)
			return -1;
		memcpy(x->body, req->body, req->body_len);
		x->body_len = req->body_len;
	}

	/* header lines + "Expect:" laid out as a curl_slist in our arrays */
	size_t nodes = 0, text = 0;
	for (const char *const *h = req->headers; h && *h; h++) {
		if (strpbrk(*h, "\r\n"))
			return -1;
		nodes++;
		text += strlen(*h) + 1;
	}
	bool expect = !http_has_header(req->headers, "Expect");
	if (expect) {
		nodes++;
		text += sizeof "Expect:";
	}
	if (nodes > x->hdr_nodes_cap) {
		size_t cap = x->hdr_nodes_cap ? x->hdr_nodes_cap : 8;
		while (cap < nodes)
			cap *= 2;
		struct curl_slist *a = realloc(x->hdr_nodes, cap * sizeof *a);
		if (!a)
			return -1;
		x->hdr_nodes = a;
		x->hdr_nodes_cap = cap;
	}
	if (http_grow(&x->hdr_text, &x->hdr_text_cap, text) != 0)
		return -1;
	size_t i = 0, off = 0;
	for (const char *const *h = req->headers; h && *h; h++) {
		size_t len = strlen(*h) + 1;
		memcpy(x->hdr_text + off, *h, len);
		x->hdr_nodes[i].data = x->hdr_text + off;
		x->hdr_nodes[i].next = &x->hdr_nodes[i + 1];
		off += len;
		i++;
	}
	if (expect) {
		memcpy(x->hdr_text + off, "Expect:", sizeof "Expect:");
		x->hdr_nodes[i].data = x->hdr_text + off;
		off += sizeof "Expect:";
		i++;
	}
	x->hdr_nodes[i - 1].next = NULL;
	x->hdr_text_used = off;

	x->resp_len = 0;
	x->resp_truncated = false;
	if (x->resp)
		x->resp[0] = '\0';
	x->retry_after_ms = -1;
	x->errbuf[0] = '\0';

	int bad = 0;
	bad += curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK;
	bad += curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdr_nodes) != CURLE_OK;
	if (get) {
		bad += curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	} else {
		bad += curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
		bad += curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t)x->body_len) != CURLE_OK;
		bad += curl_easy_setopt(e, CURLOPT_POSTFIELDS,
					x->body_len ? x->body : "") != CURLE_OK;
	}
	const char *custom = NULL;
	if (strcmp(req->method, get ? "GET" : "POST") != 0)
		custom = req->method;
	bad += curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, custom) != CURLE_OK;
	if (req->basic_user) {
		x->has_auth = true;
		bad += curl_easy_setopt(e, CURLOPT_USERNAME, req->basic_user) != CURLE_OK;
		bad += curl_easy_setopt(e, CURLOPT_PASSWORD,
					req->basic_password ? req->basic_password : "") != CURLE_OK;
	}
	return bad ? -1 : 0;
}

/* Hands x to the done callback and recycles it. */
static void http_deliver(struct http_pool *p, struct http_xfer *x,
			 struct http_response *resp)
{
	resp->body = x->resp ? x->resp : "";
	resp->body_len = x->resp_len;
	resp->body_truncated = x->resp_truncated;
	resp->retry_after_ms = x->retry_after_ms;
	x->done(x->ud, resp);
	http_xfer_put(p, x);
}

static void http_fail_text(struct http_pool *p, struct http_response *resp,
			   const char *text)
{
	snprintf(resp->error, sizeof resp->error, "%s: %.220s", p->name, text);
}

/* x has left curl (code is its result, or closing): classify, deliver. */
static void http_finish(struct http_pool *p, struct http_xfer *x,
			CURLcode code, bool closing)
{
	http_list_remove(&p->running, x);
	curl_multi_remove_handle(p->multi, x->easy);

	struct http_response resp;
	resp.status = 0;
	resp.error[0] = '\0';
	long status = 0, request_size = 0, connects = 0, version = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &request_size);
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
	curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
	if (connects > 0)
		p->connections_opened += (size_t)connects;
	resp.status = status;
	resp.http2 = version == CURL_HTTP_VERSION_2_0;

	if (!closing && code == CURLE_OK) {
		resp.result = HTTP_ANSWERED;
	} else {
		resp.result = request_size > 0 ? HTTP_AMBIGUOUS : HTTP_NOT_SENT;
		if (closing)
			http_fail_text(p, &resp, "pool closed while the request was running");
		else if (x->resend_refused)
			http_fail_text(p, &resp, "connection lost after the request was "
				       "sent, with no answer (not sent again)");
		else
			http_fail_text(p, &resp, x->errbuf[0] ? x->errbuf
							      : curl_easy_strerror(code));
	}
	http_deliver(p, x, &resp);
}

/* A request that never reached curl. */
static void http_finish_unsent(struct http_pool *p, struct http_xfer *x,
			       const char *why)
{
	struct http_response resp;
	memset(&resp, 0, sizeof resp);
	resp.result = HTTP_NOT_SENT;
	http_fail_text(p, &resp, why);
	x->retry_after_ms = -1;
	x->resp_len = 0;
	x->resp_truncated = false;
	if (x->resp)
		x->resp[0] = '\0';
	http_deliver(p, x, &resp);
}

static int http_start(struct http_pool *p, struct http_xfer *x)
{
	if (curl_multi_add_handle(p->multi, x->easy) != CURLM_OK)
		return -1;
	http_list_push(&p->running, x);
	p->kick = true;
	return 0;
}

/* Moves queued requests into curl while there is room. */
static void http_pump(struct http_pool *p)
{
	while (!p->closing && p->waiting.n && p->running.n < p->max_in_flight) {
		struct http_xfer *x = http_list_pop(&p->waiting);
		if (http_start(p, x) != 0)
			http_finish_unsent(p, x, "could not hand the request to curl");
	}
}

/* Finishes what curl completed, starts queued requests in the freed
 * slots, and lets curl begin what was added meanwhile (from the queue or
 * by done callbacks) at once rather than on its 1 ms timer. */
static void http_check_done(struct http_pool *p)
{
	for (;;) {
		CURLMsg *msg;
		int left;
		while (!p->closing && (msg = curl_multi_info_read(p->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			CURL *e = msg->easy_handle;
			CURLcode code = msg->data.result;
			char *priv = NULL;
			curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
			http_finish(p, (struct http_xfer *)(void *)priv, code, false);
			http_pump(p);
		}
		if (!p->kick || p->closing)
			return;
		p->kick = false;
		int running;
		curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/* ------------------------------------------------------------ loop glue */

static void http_pool_free(struct http_pool *p)
{
	free(p->ca_file);
	free(p);
}

static void http_handle_gone(struct http_pool *p)
{
	if (--p->handles_open == 0 && p->closing)
		http_pool_free(p);
}

static void http_on_sock_closed(uv_handle_t *h)
{
	struct http_sock *s = h->data;
	struct http_pool *p = s->pool;
	free(s);
	http_handle_gone(p);
}

static void http_on_timer_closed(uv_handle_t *h)
{
	http_handle_gone(h->data);
}

static struct http_sock *http_sock_new(struct http_pool *p,
				       curl_socket_t fd, bool owned)
{
	struct http_sock *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->fd = fd;
	s->pool = p;
	s->owned = owned;
	s->poll.data = s;
	s->next = p->socks;
	if (p->socks)
		p->socks->prev = s;
	p->socks = s;
	return s;
}

static struct http_sock *http_sock_find(struct http_pool *p, curl_socket_t fd)
{
	for (struct http_sock *s = p->socks; s; s = s->next)
		if (s->fd == fd)
			return s;
	return NULL;
}

/* Unlinks s; its memory goes with the poll handle's close callback, or
 * at once when it never had one. */
static void http_sock_close(struct http_pool *p, struct http_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		p->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (!s->polled) {
		free(s);
		return;
	}
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, http_on_sock_closed);
}

static curl_socket_t http_on_opensocket(void *clientp, curlsocktype purpose,
					struct curl_sockaddr *a)
{
	(void)purpose;
	struct http_pool *p = clientp;
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	if (!http_sock_new(p, fd, true)) {
		close(fd);
		return CURL_SOCKET_BAD;
	}
	return fd;
}

/* curl closes a socket: its poll handle goes first, while fd is open */
static int http_on_closesocket(void *clientp, curl_socket_t fd)
{
	struct http_pool *p = clientp;
	struct http_sock *s = http_sock_find(p, fd);
	if (s)
		http_sock_close(p, s);
	return close(fd);
}

static void http_on_poll(uv_poll_t *h, int status, int events)
{
	struct http_sock *s = h->data;
	struct http_pool *p = s->pool;
	if (p->closing)
		return;
	if (s->parked) {
		uv_poll_stop(&s->poll);
		return;
	}
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
	curl_multi_socket_action(p->multi, s->fd, flags, &running);
	http_check_done(p);
}

static void http_on_timer(uv_timer_t *t)
{
	struct http_pool *p = t->data;
	if (p->closing)
		return;
	p->kick = false;
	int running;
	curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(p);
}

static int http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
			  void *socketp)
{
	(void)easy;
	struct http_pool *p = userp;
	struct http_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (!s)
			return 0;
		curl_multi_assign(p->multi, fd, NULL);
		if (s->owned)
			s->parked = true;
		else
			http_sock_close(p, s); /* e.g. the resolver's: closed
						  without telling us */
		return 0;
	}
	if (p->closing)
		return 0;
	if (!s) {
		s = http_sock_find(p, fd);
		if (!s && !(s = http_sock_new(p, fd, false)))
			return -1;
		s->parked = false;
		curl_multi_assign(p->multi, fd, s);
	}
	if (!s->polled) {
		if (uv_poll_init_socket(p->loop, &s->poll, fd) != 0) {
			curl_multi_assign(p->multi, fd, NULL);
			http_sock_close(p, s);
			return -1;
		}
		s->polled = true;
		p->handles_open++;
	}
	int events = 0;
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, http_on_poll);
	return 0;
}

static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct http_pool *p = userp;
	if (p->closing)
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&p->timer);
	else
		uv_timer_start(&p->timer, http_on_timer,
			       timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
	return 0;
}

/* ------------------------------------------------------------ pool */

int http_pool_open(uv_loop_t *loop, const struct http_pool_options *o,
		   struct http_pool **out, char *err, size_t errlen)
{
	struct http_pool *p = NULL;
	const char *name = o && o->name ? o->name : "";

	if (!o || !o->name || !o->name[0] || strlen(o->name) >= HTTP_NAME_MAX) {
		snprintf(err, errlen, "http pool: name must be 1 to %d bytes",
			 HTTP_NAME_MAX - 1);
		goto fail;
	}
	if (o->connections < 1) {
		snprintf(err, errlen, "http pool \"%s\": connections must be at least 1 (got %d)",
			 name, o->connections);
		goto fail;
	}
	if (o->max_in_flight < 0) {
		snprintf(err, errlen, "http pool \"%s\": max_in_flight must not be negative (got %d)",
			 name, o->max_in_flight);
		goto fail;
	}
	if (o->timeout_ms <= 0 || o->timeout_ms > INT32_MAX) {
		snprintf(err, errlen, "http pool \"%s\": timeout must be between 1 ms and %d ms (got %lld)",
			 name, INT32_MAX, (long long)o->timeout_ms);
		goto fail;
	}
	if (http_global_init() != 0) {
		snprintf(err, errlen, "http pool \"%s\": libcurl failed to initialise", name);
		goto fail;
	}

	p = calloc(1, sizeof *p);
	if (!p)
		goto oom;
	p->loop = loop;
	snprintf(p->name, sizeof p->name, "%s", o->name);
	if (o->ca_file && !(p->ca_file = strdup(o->ca_file)))
		goto oom;
	p->timeout_ms = o->timeout_ms;
	p->http2 = o->http2;
	if (o->max_in_flight > 0)
		p->max_in_flight = (size_t)o->max_in_flight;
	else
		p->max_in_flight = (size_t)o->connections * (o->http2 ? HTTP_H2_STREAMS : 1);
	p->free_max = p->max_in_flight + HTTP_FREE_SPARE;

	p->multi = curl_multi_init();
	if (!p->multi)
		goto oom;
	int bad = 0;
	bad += curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, (void *)p) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, (void *)p) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
				 (long)o->connections) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS,
				 (long)o->connections) != CURLM_OK;
	bad += curl_multi_setopt(p->multi, CURLMOPT_PIPELINING,
				 o->http2 ? (long)CURLPIPE_MULTIPLEX : (long)CURLPIPE_NOTHING) != CURLM_OK;
	if (bad) {
		snprintf(err, errlen, "http pool \"%s\": libcurl refused the multi options", name);
		goto fail;
	}

	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	p->handles_open = 1;
	*out = p;
	return 0;
oom:
	snprintf(err, errlen, "http pool \"%s\": out of memory", name);
fail:
	if (p) {
		if (p->multi)
			curl_multi_cleanup(p->multi);
		http_pool_free(p);
	}
	return -1;
}

int http_submit(struct http_pool *p, const struct http_request *req,
		http_done_fn done, void *ud)
{
	if (!p || p->closing || !req || !req->method || !req->url || !done)
		return -1;
	struct http_xfer *x = http_xfer_get(p);
	if (!x)
		return -1;
	if (http_xfer_prepare(x, req) != 0)
		goto fail;
	x->done = done;
	x->ud = ud;
	size_t in_use = p->waiting.n + p->running.n + 1 + HTTP_FREE_SPARE;
	if (in_use > p->free_max)
		p->free_max = in_use < HTTP_FREE_MAX ? in_use : HTTP_FREE_MAX;
	if (p->waiting.n == 0 && p->running.n < p->max_in_flight) {
		if (http_start(p, x) != 0)
			goto fail;
	} else {
		http_list_push(&p->waiting, x);
	}
	return 0;
fail:
	http_xfer_put(p, x);
	return -1;
}

size_t http_pool_in_flight(const struct http_pool *p)
{
	return p->waiting.n + p->running.n;
}

size_t http_pool_connections_opened(const struct http_pool *p)
{
	return p->connections_opened;
}

void http_pool_close(struct http_pool *p)
{
	if (!p || p->closing)
		return;
	p->closing = true;

	struct http_xfer *x;
	while ((x = http_list_pop(&p->waiting)))
		http_finish_unsent(p, x, "pool closed before the request was sent");
	while (p->running.head)
		http_finish(p, p->running.head, CURLE_OK, true);

	/* stop watching while curl's sockets are still open */
	while (p->socks) {
		struct http_sock *s = p->socks;
		curl_multi_assign(p->multi, s->fd, NULL);
		http_sock_close(p, s);
	}
	curl_multi_cleanup(p->multi);
	p->multi = NULL;
	while ((x = http_list_pop(&p->idle)))
		http_xfer_free(x);

	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, http_on_timer_closed);
}
