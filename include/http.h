/* http.h: the HTTP client engine shared by the SMS gateway and the push
 * transports (libcurl's multi interface driven by the libuv loop).
 *
 * A pool is one remote service: one curl multi handle with its own
 * connection cache, at most `connections` connections, HTTP/1.1 keep-alive
 * or HTTP/2 multiplexing. Requests go to curl up to `max_in_flight` at a
 * time; the rest wait in the pool's own FIFO queue, where no timeout runs.
 * Every submitted request ends with exactly one call of its done callback,
 * on the loop thread, with one of three results:
 *
 *   HTTP_ANSWERED   a complete HTTP response arrived (any status code).
 *   HTTP_NOT_SENT   no byte of the request was written to any connection
 *                   (DNS failure, connection refused, TLS handshake or
 *                   certificate failure, timeout while connecting, pool
 *                   closed before the request reached curl): the server
 *                   cannot have acted on it, so sending again is safe.
 *   HTTP_AMBIGUOUS  the request was (possibly) written, then no complete
 *                   response came: timeout, connection lost or reset,
 *                   empty reply, pool closed while it ran. The server may
 *                   or may not have acted on it.
 *
 * How the two failures are told apart: curl counts the request bytes it
 * has written to the connection (CURLINFO_REQUEST_SIZE, headers included;
 * over HTTP/2, bytes handed to the HTTP/2 layer, which may not have left
 * yet, so the count errs towards AMBIGUOUS). A failed transfer with a zero
 * count is NOT_SENT, any other failure is AMBIGUOUS, whatever the error
 * code: the count also covers an attempt curl made before an internal
 * retry, where the error code alone would describe only the last attempt.
 * Curl re-sends a request by itself when a reused keep-alive connection
 * turns out dead with nothing received, or when an HTTP/2 stream is
 * refused. The pool allows that only when not one byte of the request was
 * written in the earlier attempt; otherwise the transfer stops there and
 * ends AMBIGUOUS: the engine never delivers one submitted request twice.
 * To make that case rare, an HTTP/1.1 connection idle for 4 s or more is
 * not reused (servers commonly close idle connections after 5 s).
 *
 * Threads: everything here runs on the loop thread, except
 * http_global_init / http_global_cleanup (see there).
 * Nothing here logs; failures are described in http_response.error.
 * Credentials belong in basic_user/basic_password or in headers, never in
 * the URL: error texts may quote the host, never the headers.
 * Proxy environment variables (https_proxy, no_proxy, ...) apply, as
 * everywhere in libcurl.
 */
#ifndef ROUSE_HTTP_H
#define ROUSE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Largest response body kept; the rest is read and dropped. */
#define HTTP_BODY_MAX 65536

struct http_pool;

struct http_pool_options {
	const char *name;      /* "sms", "fcm", "apns": starts every error
	                          text; at most 31 bytes */
	int connections;       /* most connections open at once, >= 1 */
	int max_in_flight;     /* most requests handed to curl at once; the
	                          rest queue (FIFO) in the pool. 0: connections
	                          for HTTP/1.1, 100 x connections with http2 */
	const char *ca_file;   /* PEM bundle to trust, or NULL for libcurl's
	                          default bundle (Debian: /etc/ssl/certs/
	                          ca-certificates.crt; the hashed CA directory
	                          is not used). Peer and host verification
	                          always on */
	int64_t timeout_ms;    /* whole request, from hand-over to curl, > 0 */
	bool http2;            /* offer h2 by ALPN (https only; http:// URLs
	                          stay HTTP/1.1) and multiplex requests over the
	                          pool's connections; false: HTTP/1.1 only */
};

/* Borrowed during http_submit only: the pool copies what it needs. */
struct http_request {
	const char *method;          /* "POST", "GET", "PUT", "DELETE", ...
	                                (not HEAD) */
	const char *url;
	const char *const *headers;  /* NULL-terminated "Name: value" list,
	                                or NULL */
	const char *body;            /* body_len bytes (may be NULL if 0) */
	size_t body_len;
	const char *basic_user;      /* HTTP Basic when non-NULL */
	const char *basic_password;
};

enum http_result {
	HTTP_ANSWERED,
	HTTP_NOT_SENT,
	HTTP_AMBIGUOUS,
};

struct http_response {
	enum http_result result;
	long status;            /* the HTTP status when ANSWERED; for
	                           AMBIGUOUS, a status that arrived before the
	                           failure (else 0) */
	const char *body;       /* never NULL; NUL-terminated; valid during the
	                           callback only */
	size_t body_len;        /* at most HTTP_BODY_MAX */
	bool body_truncated;    /* the server sent more than HTTP_BODY_MAX */
	int64_t retry_after_ms; /* Retry-After of the final response as a delay
	                           (delta-seconds, or HTTP-date minus now,
	                           at least 0), -1 if absent or unreadable */
	char error[256];        /* "<pool name>: <curl's text>" unless
	                           ANSWERED (then ""); never credentials */
	bool http2;             /* the answer came over HTTP/2 */
};

/* Called exactly once per submitted request, on the loop thread, never
 * from inside http_submit. resp and its body are valid during the call
 * only. The callback may call http_submit (on any pool) and
 * http_pool_close (on any pool, its own included). */
typedef void (*http_done_fn)(void *ud, const struct http_response *resp);

/* curl_global_init, once per process. Call it from main before any thread
 * starts; http_pool_open calls it too (pthread_once), for programs that
 * open pools from one thread only. Returns 0, or -1 if libcurl cannot
 * initialise. */
int http_global_init(void);

/* curl_global_cleanup, at exit, after every pool has freed itself and no
 * other thread runs. No pool may be opened afterwards. */
void http_global_cleanup(void);

/* Creates a pool on loop. Returns 0 and *out, or -1 with err filled
 * (naming the option) and *out untouched. Loop thread. */
int http_pool_open(uv_loop_t *loop, const struct http_pool_options *o,
		   struct http_pool **out, char *err, size_t errlen);

/* Queues a request (req is borrowed: everything is copied). done(ud, resp)
 * will be called exactly once, later. Returns 0, or -1 when out of memory,
 * when method or url is NULL, the method is HEAD, a header line contains
 * CR or LF, or the pool is closing: then done is never called. Loop
 * thread. */
int http_submit(struct http_pool *p, const struct http_request *req,
		http_done_fn done, void *ud);

/* Requests submitted and not yet finished (queued + handed to curl). */
size_t http_pool_in_flight(const struct http_pool *p);

/* New connections made so far (the sum of CURLINFO_NUM_CONNECTS over the
 * finished requests). */
size_t http_pool_connections_opened(const struct http_pool *p);

/* Finishes every request still queued (NOT_SENT) or running (NOT_SENT or
 * AMBIGUOUS by the rule above), calling their done callbacks now, on the
 * loop, then closes connections and handles. The pool frees itself once
 * the loop has run the close callbacks; p must not be used after this
 * call. A second call (e.g. from a done callback during the first) does
 * nothing. Loop thread. */
void http_pool_close(struct http_pool *p);

#endif
