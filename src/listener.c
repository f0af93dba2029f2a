/* listener.c: the HTTP listener — one-click unsubscribe, the SMS inbound
 * webhook and the health check, served by libmicrohttpd.
 *
 * This module owns the HTTP side of consent changes: routing, request
 * validation (tokens, form bodies, Twilio signatures), the pages and the
 * status codes. It never changes consent itself; the loop does, through
 * the callback given to listener_open.
 *
 * DESIGN
 * MHD runs one internal polling thread. The socket is created, bound and
 * put in listening state here (so a bind failure names its errno and a
 * test can ask for port 0), then handed to MHD with
 * MHD_OPTION_LISTEN_SOCKET; nothing else is ever bound.
 *
 * The MHD thread never touches daemon state. A request that would change
 * consent is checked completely on that thread (token MAC, body, webhook
 * signature), then becomes a struct listener_call holding copies of the
 * subject. The connection is suspended first, then the call is pushed onto
 * a mutex-protected queue and the loop is woken with uv_async_send. On the
 * loop the call is handed to the change callback; listener_call_done
 * stores the HTTP status in the call and resumes the connection
 * (MHD_ALLOW_SUSPEND_RESUME permits that from any thread), and MHD calls
 * the access handler once more, which answers 200 or 503. So the client
 * never sees 200 before the change is durable.
 *
 *   MHD thread: check -> suspend -> queue ──uv_async──► loop: fn(call)
 *   MHD thread: answer ◄── resume ◄── listener_call_done(call, status)
 *
 * A call is shared by the request (freed when MHD reports the request
 * complete) and the loop (until listener_call_done), so it carries an
 * atomic reference count. listener_close answers every call still queued
 * or held by the callback with 503 and resumes its connection (MHD must
 * not be stopped with suspended connections), waits briefly for those
 * answers to go out, stops MHD, and leaves calls the callback still holds
 * "orphaned": their listener_call_done just frees them.
 *
 * Bodies are capped at LISTENER_BODY_MAX: a larger Content-Length is
 * refused with 413 before any of the body is read, and a chunked body
 * that grows past the cap is answered 413 as soon as it does and the
 * connection closed (see abort_too_large).
 * The one-click form is read with MHD's post processor (urlencoded and
 * multipart). The SMS webhook body is kept whole and decoded here, since
 * the signature covers every parameter exactly as sent.
 *
 * Nothing here logs a token, a request body or a phone number; MHD's own
 * error messages are logged at debug level by their format string only,
 * since their arguments may quote the request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "channel.h"
#include "listener.h"
#include "log.h"

#define LISTENER_KEY "unsubscribe.listen"
#define LISTENER_CONNECTIONS 256
#define LISTENER_TIMEOUT_S 30
#define LISTENER_BACKLOG 128
#define LISTENER_PP_BUFFER 1024
#define LISTENER_FIELD_MAX 32     /* the List-Unsubscribe value */
#define LISTENER_PARAMS_MAX 64    /* webhook parameters */
#define LISTENER_CLOSE_WAIT_MS 2000
#define LISTENER_STATUS_PENDING 0

#define LISTENER_TWIML "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>"
#define LISTENER_CSP "default-src 'none'; style-src 'unsafe-inline'; " \
	"form-action 'self'; frame-ancestors 'none'"

enum listener_route { ROUTE_NONE, ROUTE_HEALTH, ROUTE_UNSUB, ROUTE_SMS };

struct listener_call {
	struct listener *l;           /* NULL once orphaned by listener_close */
	struct MHD_Connection *conn;
	struct listener_call *next;   /* queue, then the handed list */
	struct listener_call *prev;   /* handed list */
	atomic_int refs;              /* the request + the loop */
	atomic_int status;            /* HTTP status, PENDING until answered */
	bool answered;                /* loop thread */
	enum listener_route route;
	bool resubscribe;
	int channel;
	const char *source;
	char user[sizeof ((struct unsub_subject *)0)->user];
	char address[sizeof ((struct unsub_subject *)0)->address];
	char reason[32];
};

struct listener {
	uv_loop_t *loop;
	const struct config *cfg;
	const struct unsub_keys *keys;
	listener_change_fn fn;
	void *ctx;
	struct MHD_Daemon *mhd;
	int port;
	const char *prefix;           /* "" or "/rouse" */
	size_t prefix_len;
	char *sms_url;                /* what Twilio signs */
	bool verify_twilio;
	atomic_bool accepting;
	atomic_int inflight;          /* requests with a call, not complete */

	uv_async_t async;
	uv_mutex_t lock;
	bool closing;                 /* under lock */
	struct listener_call *head;   /* under lock: MHD thread -> loop */
	struct listener_call *tail;

	struct listener_call *handed; /* loop thread: held by the callback */
};

struct listener_param {
	char *key;
	char *value;
};

struct listener_req {
	enum listener_route route;
	bool responded;               /* a response is queued */
	size_t body_len;
	/* ROUTE_UNSUB */
	struct unsub_subject subject;
	struct MHD_PostProcessor *pp;
	bool pp_failed;
	bool field_seen;
	bool field_over;
	char field[LISTENER_FIELD_MAX + 1];
	size_t field_len;
	/* ROUTE_SMS */
	char *body;
	/* set once the request is handed to the loop */
	struct listener_call *call;
};

/* ---- responses -------------------------------------------------------- */

static enum MHD_Result respond(struct listener_req *req,
			       struct MHD_Connection *conn, unsigned status,
			       const char *type, const char *body, size_t len,
			       const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body,
					    MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (strncmp(type, "text/html", 9) == 0) {
		MHD_add_response_header(r, "Content-Security-Policy",
					LISTENER_CSP);
		MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	}
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "60");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	if (ret == MHD_YES && req)
		req->responded = true;
	return ret;
}

static enum MHD_Result respond_text(struct listener_req *req,
				    struct MHD_Connection *conn,
				    unsigned status, const char *text)
{
	return respond(req, conn, status, "text/plain; charset=utf-8", text,
		       strlen(text), NULL);
}

static enum MHD_Result respond_405(struct listener_req *req,
				   struct MHD_Connection *conn,
				   const char *allow)
{
	return respond(req, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		       "text/plain; charset=utf-8", "method not allowed\n", 19,
		       allow);
}

static enum MHD_Result respond_bad_token(struct listener_req *req,
					 struct MHD_Connection *conn)
{
	return respond_text(req, conn, MHD_HTTP_BAD_REQUEST,
			    "This unsubscribe link is not valid.\n"
			    "此退订链接无效。\n");
}

static enum MHD_Result respond_too_large(struct listener_req *req,
					 struct MHD_Connection *conn)
{
	return respond_text(req, conn, MHD_HTTP_CONTENT_TOO_LARGE,
			    "request body too large\n");
}

static enum MHD_Result respond_unavailable(struct listener_req *req,
					   struct MHD_Connection *conn)
{
	return respond_text(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "temporarily unavailable, please try again later\n");
}

struct listener_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void buf_add(struct listener_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 2048;
		char *p;
		while (b->len + n + 1 > cap)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct listener_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_html(struct listener_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_str(b, "&amp;"); break;
		case '<': buf_str(b, "&lt;"); break;
		case '>': buf_str(b, "&gt;"); break;
		case '"': buf_str(b, "&quot;"); break;
		case '\'': buf_str(b, "&#39;"); break;
		default: buf_add(b, s, 1); break;
		}
	}
}

static const char *channel_words(int channel, bool zh)
{
	switch (channel) {
	case CH_EMAIL: return zh ? "邮件" : "emails";
	case CH_SMS: return zh ? "短信" : "text messages";
	case CH_PUSH: return zh ? "推送通知" : "push notifications";
	default: return zh ? "所有消息" : "all messages";
	}
}

static void page_head(struct listener_buf *b, const char *title)
{
	buf_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
		"<meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width, "
		"initial-scale=1\">"
		"<meta name=\"robots\" content=\"noindex\"><title>");
	buf_str(b, title);
	buf_str(b, "</title><style>body{font-family:sans-serif;max-width:36em;"
		"margin:3em auto;padding:0 1em;line-height:1.5}"
		"button{font-size:1.1em;padding:.4em 1.2em}</style>"
		"</head><body>\n");
}

/* Answers 200 with the page built in b (MHD_NO when building it ran out
 * of memory) and frees it. */
static enum MHD_Result respond_page(struct listener_req *req,
				    struct MHD_Connection *conn,
				    struct listener_buf *b)
{
	enum MHD_Result ret = MHD_NO;
	if (!b->failed)
		ret = respond(req, conn, MHD_HTTP_OK,
			      "text/html; charset=utf-8", b->p, b->len, NULL);
	free(b->p);
	return ret;
}

static void page_who(struct listener_buf *b, const struct unsub_subject *s)
{
	buf_str(b, "<strong>");
	buf_html(b, s->address[0] ? s->address : s->user);
	buf_str(b, "</strong>");
}

static enum MHD_Result respond_confirm_page(struct listener_req *req,
					    struct MHD_Connection *conn)
{
	const struct unsub_subject *s = &req->subject;
	struct listener_buf b = { 0 };

	page_head(&b, "Unsubscribe / 退订");
	buf_str(&b, "<h1>Unsubscribe</h1>\n<p>Stop sending ");
	buf_str(&b, channel_words(s->channel, false));
	buf_str(&b, " to ");
	page_who(&b, s);
	buf_str(&b, "?</p>\n<p lang=\"zh\">不再向 ");
	page_who(&b, s);
	buf_str(&b, " 发送");
	buf_str(&b, channel_words(s->channel, true));
	buf_str(&b, "?</p>\n<form method=\"post\">"
		"<input type=\"hidden\" name=\"List-Unsubscribe\" "
		"value=\"One-Click\">"
		"<button type=\"submit\">Unsubscribe / 退订</button>"
		"</form>\n</body></html>\n");
	return respond_page(req, conn, &b);
}

static enum MHD_Result respond_done_page(struct listener_req *req,
					 struct MHD_Connection *conn,
					 const struct listener_call *call)
{
	struct listener_buf b = { 0 };

	page_head(&b, "Unsubscribed / 已退订");
	buf_str(&b, "<h1>Unsubscribed</h1>\n<p>You will no longer receive ");
	buf_str(&b, channel_words(call->channel, false));
	buf_str(&b, ".</p>\n<p lang=\"zh\">您已退订");
	buf_str(&b, channel_words(call->channel, true));
	buf_str(&b, "。</p>\n</body></html>\n");
	return respond_page(req, conn, &b);
}

static enum MHD_Result respond_twiml(struct listener_req *req,
				     struct MHD_Connection *conn)
{
	return respond(req, conn, MHD_HTTP_OK, "text/xml; charset=utf-8",
		       LISTENER_TWIML, sizeof LISTENER_TWIML - 1, NULL);
}

/* ---- calls: MHD thread -> loop -> MHD thread --------------------------- */

static void call_unref(struct listener_call *call)
{
	if (atomic_fetch_sub(&call->refs, 1) == 1)
		free(call);
}

/* Loop thread: stores the status and lets MHD answer. */
static void call_answer(struct listener_call *call, int http_status)
{
	struct listener *l = call->l;
	call->answered = true;
	if (l) {
		if (call->prev)
			call->prev->next = call->next;
		else if (l->handed == call)
			l->handed = call->next;
		if (call->next)
			call->next->prev = call->prev;
		call->next = call->prev = NULL;
	}
	atomic_store(&call->status, http_status);
	MHD_resume_connection(call->conn);
}

void listener_call_done(struct listener_call *call, int status)
{
	if (!call->answered)
		call_answer(call, status == 0 ? MHD_HTTP_OK
					      : MHD_HTTP_SERVICE_UNAVAILABLE);
	call_unref(call);
}

/* MHD thread, from the access handler: suspends the connection and queues
 * the call for the loop (or, once closing, answers 503 at once). */
static enum MHD_Result call_submit(struct listener *l, struct listener_req *req,
				   struct MHD_Connection *conn,
				   struct listener_call *call)
{
	bool closing;

	call->l = l;
	call->conn = conn;
	atomic_init(&call->refs, 2);
	atomic_init(&call->status, LISTENER_STATUS_PENDING);
	req->call = call;
	atomic_fetch_add(&l->inflight, 1);

	MHD_suspend_connection(conn);
	uv_mutex_lock(&l->lock);
	closing = l->closing;
	if (!closing) {
		if (l->tail)
			l->tail->next = call;
		else
			l->head = call;
		l->tail = call;
	}
	uv_mutex_unlock(&l->lock);
	if (closing) {
		call->answered = true;
		atomic_fetch_sub(&call->refs, 1);
		atomic_store(&call->status, MHD_HTTP_SERVICE_UNAVAILABLE);
		MHD_resume_connection(conn);
		return MHD_YES;
	}
	uv_async_send(&l->async);
	return MHD_YES;
}

static void listener_async_cb(uv_async_t *h)
{
	struct listener *l = h->data;

	for (;;) {
		struct listener_call *call;
		struct listener_change c;

		uv_mutex_lock(&l->lock);
		call = l->head;
		if (call) {
			l->head = call->next;
			if (!l->head)
				l->tail = NULL;
		}
		uv_mutex_unlock(&l->lock);
		if (!call)
			break;

		call->prev = NULL;
		call->next = l->handed;
		if (l->handed)
			l->handed->prev = call;
		l->handed = call;

		c.resubscribe = call->resubscribe;
		c.channel = call->channel;
		c.user = call->user[0] ? call->user : NULL;
		c.address = call->address[0] ? call->address : NULL;
		c.source = call->source;
		c.reason = call->reason;
		l->fn(l->ctx, call, &c);
	}
}

/* ---- routing ------------------------------------------------------------ */

static enum listener_route route_match(const struct listener *l,
				       const char *url, const char **token)
{
	const char *rest = NULL;

	*token = NULL;
	if (strcmp(url, "/healthz") == 0)
		return ROUTE_HEALTH;
	if (l->prefix_len == 0)
		rest = url;
	else if (strncmp(url, l->prefix, l->prefix_len) == 0 &&
		 url[l->prefix_len] == '/')
		rest = url + l->prefix_len;
	if (!rest)
		return ROUTE_NONE;
	if (strcmp(rest, "/healthz") == 0)
		return ROUTE_HEALTH;
	if (strcmp(rest, "/sms/inbound") == 0)
		return ROUTE_SMS;
	if (strncmp(rest, "/u/", 3) == 0) {
		*token = rest + 3;
		return ROUTE_UNSUB;
	}
	return ROUTE_NONE;
}

static bool body_declared_too_large(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	unsigned long long n;

	if (!v)
		return false;
	errno = 0;
	n = strtoull(v, &end, 10);
	return errno == ERANGE || (end != v && n > LISTENER_BODY_MAX);
}

static enum MHD_Result unsub_field(void *cls, enum MHD_ValueKind kind,
				   const char *key, const char *filename,
				   const char *content_type,
				   const char *transfer_encoding,
				   const char *data, uint64_t off, size_t size)
{
	struct listener_req *req = cls;

	(void)kind;
	(void)filename;
	(void)content_type;
	(void)transfer_encoding;
	if (!key || strcmp(key, "List-Unsubscribe") != 0)
		return MHD_YES;
	if (off == 0) {
		req->field_seen = true;
		req->field_over = false;
		req->field_len = 0;
	}
	if (off != req->field_len || size > LISTENER_FIELD_MAX - req->field_len) {
		req->field_over = true;
		return MHD_YES;
	}
	memcpy(req->field + req->field_len, data, size);
	req->field_len += size;
	req->field[req->field_len] = '\0';
	return MHD_YES;
}

static enum MHD_Result begin_unsub(struct listener *l, struct listener_req *req,
				   struct MHD_Connection *conn,
				   const char *method, const char *token)
{
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

	if (!get && strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return respond_405(req, conn, "GET, POST");
	if (unsub_token_verify(l->keys, token, strlen(token), &req->subject) < 0)
		return respond_bad_token(req, conn);
	if (get)
		return respond_confirm_page(req, conn);
	if (body_declared_too_large(conn))
		return respond_too_large(req, conn);
	req->pp = MHD_create_post_processor(conn, LISTENER_PP_BUFFER,
					    unsub_field, req);
	if (!req->pp)
		return respond_text(req, conn, MHD_HTTP_BAD_REQUEST,
				    "expected a form body "
				    "List-Unsubscribe=One-Click\n");
	return MHD_YES;
}

static bool sms_content_type_ok(struct MHD_Connection *conn)
{
	static const char form[] = "application/x-www-form-urlencoded";
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = sizeof form - 1;

	return v && strncasecmp(v, form, n) == 0 &&
	       (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

static enum MHD_Result begin_sms(struct listener *l, struct listener_req *req,
				 struct MHD_Connection *conn,
				 const char *method)
{
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return respond_405(req, conn, "POST");
	if (l->verify_twilio &&
	    !MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 "X-Twilio-Signature"))
		return respond_text(req, conn, MHD_HTTP_FORBIDDEN,
				    "forbidden\n");
	if (body_declared_too_large(conn))
		return respond_too_large(req, conn);
	if (!sms_content_type_ok(conn))
		return respond_text(req, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				    "expected application/"
				    "x-www-form-urlencoded\n");
	req->body = malloc(LISTENER_BODY_MAX + 1);
	if (!req->body)
		return MHD_NO;
	req->body[0] = '\0';
	return MHD_YES;
}

static enum MHD_Result req_begin(struct listener *l,
				 struct MHD_Connection *conn, const char *url,
				 const char *method, void **con_cls)
{
	struct listener_req *req = calloc(1, sizeof *req);
	const char *token;

	if (!req)
		return MHD_NO;
	*con_cls = req;
	req->route = route_match(l, url, &token);
	switch (req->route) {
	case ROUTE_HEALTH:
		if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
		    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
			return respond_405(req, conn, "GET");
		if (atomic_load(&l->accepting))
			return respond_text(req, conn, MHD_HTTP_OK, "ok\n");
		return respond_text(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "not accepting\n");
	case ROUTE_UNSUB:
		return begin_unsub(l, req, conn, method, token);
	case ROUTE_SMS:
		return begin_sms(l, req, conn, method);
	case ROUTE_NONE:
		break;
	}
	return respond_text(req, conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* ---- the SMS webhook ----------------------------------------------------- */

/* Decodes one form-urlencoded component of [s, s + n) into a new string;
 * NULL for a malformed escape or an escaped NUL. */
static char *form_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			const unsigned char *h = (const unsigned char *)s + i;
			int hi = i + 2 < n ? OPENSSL_hexchar2int(h[1]) : -1;
			int lo = i + 2 < n ? OPENSSL_hexchar2int(h[2]) : -1;
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static void params_free(struct listener_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].key);
		free(p[i].value);
	}
}

/* Splits a form-urlencoded body into at most max parameters. Returns their
 * number, or -1 (malformed escape, too many parameters, no memory). */
static int params_parse(const char *body, size_t len,
			struct listener_param *p, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len) {
		size_t end = i, eq = i;
		while (end < len && body[end] != '&')
			end++;
		while (eq < end && body[eq] != '=')
			eq++;
		if (end > i) {
			if (n == max)
				goto fail;
			p[n].key = form_decode(body + i, eq - i);
			p[n].value = eq < end
				? form_decode(body + eq + 1, end - eq - 1)
				: form_decode("", 0);
			n++;
			if (!p[n - 1].key || !p[n - 1].value)
				goto fail;
		}
		i = end + 1;
	}
	return (int)n;
fail:
	params_free(p, n);
	return -1;
}

static int param_cmp(const void *a, const void *b)
{
	const struct listener_param *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->value, y->value);
}

/* X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + sorted name+value
 * of every POST parameter)). */
static bool twilio_signature_ok(const struct listener *l,
				struct MHD_Connection *conn,
				struct listener_param *p, size_t n)
{
	const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							"X-Twilio-Signature");
	const char *secret = l->cfg->sms_http.auth_token;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	unsigned char b64[EVP_ENCODE_LENGTH(EVP_MAX_MD_SIZE) + 1];
	int b64_len;
	struct listener_buf data = { 0 };
	bool ok = false;

	if (!given)
		return false;
	qsort(p, n, sizeof *p, param_cmp);
	buf_str(&data, l->sms_url);
	for (size_t i = 0; i < n; i++) {
		buf_str(&data, p[i].key);
		buf_str(&data, p[i].value);
	}
	if (data.failed)
		goto out;
	if (!HMAC(EVP_sha1(), secret, (int)strlen(secret),
		  (const unsigned char *)data.p, data.len, mac, &mac_len))
		goto out;
	b64_len = EVP_EncodeBlock(b64, mac, (int)mac_len);
	ok = b64_len > 0 && strlen(given) == (size_t)b64_len &&
	     CRYPTO_memcmp(given, b64, (size_t)b64_len) == 0;
out:
	free(data.p);
	return ok;
}

static void trim(const char **s, size_t *n)
{
	while (*n && strchr(" \t\r\n\v\f", (*s)[0]))
		(*s)++, (*n)--;
	while (*n && strchr(" \t\r\n\v\f", (*s)[*n - 1]))
		(*n)--;
}

/* The reply's keyword: 1 opt-out, 2 resubscribe, 0 neither; *word is the
 * keyword's canonical spelling. */
static int sms_keyword(const char *body, const char **word)
{
	static const char *const stop[] = { "STOP", "STOPALL", "UNSUBSCRIBE",
		"CANCEL", "END", "QUIT", "TD", "T", "退订" };
	static const char *const start[] = { "START", "UNSTOP" };
	size_t n = strlen(body);

	trim(&body, &n);
	for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++) {
		if (strlen(stop[i]) == n && strncasecmp(body, stop[i], n) == 0) {
			*word = stop[i];
			return 1;
		}
	}
	for (size_t i = 0; i < sizeof start / sizeof start[0]; i++) {
		if (strlen(start[i]) == n &&
		    strncasecmp(body, start[i], n) == 0) {
			*word = start[i];
			return 2;
		}
	}
	return 0;
}

static enum MHD_Result finish_sms(struct listener *l, struct listener_req *req,
				  struct MHD_Connection *conn)
{
	struct listener_param params[LISTENER_PARAMS_MAX];
	const char *from = NULL, *text = NULL, *word = NULL;
	struct listener_call *call;
	enum MHD_Result ret;
	int n, kind;

	n = params_parse(req->body, req->body_len, params, LISTENER_PARAMS_MAX);
	if (n < 0)
		return respond_text(req, conn, MHD_HTTP_BAD_REQUEST,
				    "malformed form body\n");
	if (l->verify_twilio &&
	    !twilio_signature_ok(l, conn, params, (size_t)n)) {
		ret = respond_text(req, conn, MHD_HTTP_FORBIDDEN, "forbidden\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (strcmp(params[i].key, "From") == 0)
			from = params[i].value;
		else if (strcmp(params[i].key, "Body") == 0)
			text = params[i].value;
	}
	if (!from || !*from || strlen(from) > UNSUB_FIELD_MAX) {
		ret = respond_text(req, conn, MHD_HTTP_BAD_REQUEST,
				   "From missing or invalid\n");
		goto out;
	}
	kind = text ? sms_keyword(text, &word) : 0;
	if (kind == 0) {
		ret = respond_twiml(req, conn);
		goto out;
	}
	if (kind == 2 && !l->verify_twilio) {
		/* consent is only given back on a request we can trust: an
		 * unsigned webhook may opt a number out (the safe side),
		 * never in */
		ret = respond_text(req, conn, MHD_HTTP_FORBIDDEN,
				   "resubscribe needs a signed request\n");
		goto out;
	}
	call = calloc(1, sizeof *call);
	if (!call) {
		ret = MHD_NO;
		goto out;
	}
	call->route = ROUTE_SMS;
	call->resubscribe = kind == 2;
	call->channel = CH_SMS;
	call->source = "sms_reply";
	snprintf(call->address, sizeof call->address, "%s", from);
	snprintf(call->reason, sizeof call->reason, "%s", word);
	ret = call_submit(l, req, conn, call);
out:
	params_free(params, (size_t)n);
	return ret;
}

/* ---- the access handler ------------------------------------------------ */

static enum MHD_Result finish_unsub(struct listener *l, struct listener_req *req,
				    struct MHD_Connection *conn)
{
	struct listener_call *call;
	bool ok;

	ok = MHD_destroy_post_processor(req->pp) == MHD_YES && !req->pp_failed;
	req->pp = NULL;
	if (!ok || !req->field_seen || req->field_over ||
	    strcmp(req->field, "One-Click") != 0)
		return respond_text(req, conn, MHD_HTTP_BAD_REQUEST,
				    "expected a form body "
				    "List-Unsubscribe=One-Click\n");
	call = calloc(1, sizeof *call);
	if (!call)
		return MHD_NO;
	call->route = ROUTE_UNSUB;
	call->resubscribe = false;
	call->channel = req->subject.channel;
	call->source = "one_click";
	snprintf(call->user, sizeof call->user, "%s", req->subject.user);
	snprintf(call->address, sizeof call->address, "%s",
		 req->subject.address);
	snprintf(call->reason, sizeof call->reason, "one-click unsubscribe");
	return call_submit(l, req, conn, call);
}

static enum MHD_Result answer_call(struct listener_req *req,
				   struct MHD_Connection *conn)
{
	struct listener_call *call = req->call;

	if (atomic_load(&call->status) != MHD_HTTP_OK)
		return respond_unavailable(req, conn);
	if (call->route == ROUTE_SMS)
		return respond_twiml(req, conn);
	return respond_done_page(req, conn, call);
}

/* A body without Content-Length (chunked) that grows past the cap. MHD
 * 0.9.75 refuses MHD_queue_response while a body is being received, so
 * the 413 is written straight to the socket, and the connection is then
 * closed (MHD_NO) without reading any more of the body. Nothing else has
 * been sent on this connection since the request began, except a complete
 * "100 Continue". */
static enum MHD_Result abort_too_large(struct MHD_Connection *conn)
{
	static const char msg[] =
		"HTTP/1.1 413 Content Too Large\r\n"
		"Connection: close\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Length: 23\r\n"
		"\r\n"
		"request body too large\n";
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (ci)
		(void)!send(ci->connect_fd, msg, sizeof msg - 1, MSG_NOSIGNAL);
	return MHD_NO;
}

static enum MHD_Result listener_ahc(void *cls, struct MHD_Connection *conn,
				    const char *url, const char *method,
				    const char *version,
				    const char *upload_data,
				    size_t *upload_data_size, void **con_cls)
{
	struct listener *l = cls;
	struct listener_req *req = *con_cls;
	size_t n = *upload_data_size;

	(void)version;
	if (!req)
		return req_begin(l, conn, url, method, con_cls);
	if (req->responded) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (n) {
		*upload_data_size = 0;
		if (req->call)
			return MHD_YES;
		if (n > LISTENER_BODY_MAX - req->body_len)
			return abort_too_large(conn);
		if (req->body) {
			memcpy(req->body + req->body_len, upload_data, n);
			req->body[req->body_len + n] = '\0';
		} else if (req->pp &&
			   MHD_post_process(req->pp, upload_data, n) != MHD_YES) {
			req->pp_failed = true;
		}
		req->body_len += n;
		return MHD_YES;
	}
	if (req->call)
		return answer_call(req, conn);
	if (req->route == ROUTE_UNSUB && req->pp)
		return finish_unsub(l, req, conn);
	if (req->route == ROUTE_SMS && req->body)
		return finish_sms(l, req, conn);
	return MHD_NO;
}

static void listener_completed(void *cls, struct MHD_Connection *conn,
			       void **con_cls,
			       enum MHD_RequestTerminationCode toe)
{
	struct listener *l = cls;
	struct listener_req *req = *con_cls;

	(void)conn;
	(void)toe;
	if (!req)
		return;
	if (req->pp)
		MHD_destroy_post_processor(req->pp);
	free(req->body);
	if (req->call) {
		call_unref(req->call);
		atomic_fetch_sub(&l->inflight, 1);
	}
	free(req);
	*con_cls = NULL;
}

static void listener_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[160];
	size_t n;

	(void)cls;
	(void)ap;
	/* the format only: its arguments may carry request data */
	snprintf(line, sizeof line, "%s", fmt);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_msg(LOG_DEBUG, "http listener", "detail", line, NULL);
}

/* ---- open / close -------------------------------------------------------- */

static int listener_bind(const char *host, int port, int *port_out,
			 char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	char addr[INET6_ADDRSTRLEN + 32], h[INET6_ADDRSTRLEN + 1];
	size_t hl;
	int fd = -1, one = 1, e;
	bool v6 = false;

	memset(&ss, 0, sizeof ss);
	hl = host ? strlen(host) : 0;
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof h) {
		snprintf(err, errlen, "%s: not a numeric IPv4 or IPv6 address",
			 LISTENER_KEY);
		return -1;
	}
	memcpy(h, host, hl);
	h[hl] = '\0';
	if (port < 0 || port > 65535) {
		snprintf(err, errlen, "%s: port %d out of range", LISTENER_KEY,
			 port);
		return -1;
	}
	if (inet_pton(AF_INET, h, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		slen = sizeof *sin;
		snprintf(addr, sizeof addr, "%s:%d", h, port);
	} else if (inet_pton(AF_INET6, h,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		slen = sizeof *sin6;
		v6 = true;
		snprintf(addr, sizeof addr, "[%s]:%d", h, port);
	} else {
		snprintf(err, errlen, "%s: \"%s\" is not a numeric IPv4 or IPv6 "
			 "address", LISTENER_KEY, h);
		return -1;
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto fail;
	if (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			     sizeof one) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 ||
	    listen(fd, LISTENER_BACKLOG) < 0)
		goto fail;
	slen = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
		goto fail;
	*port_out = ntohs(ss.ss_family == AF_INET
				  ? ((struct sockaddr_in *)&ss)->sin_port
				  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;

fail:
	e = errno;
	{
		char msg[128];
		if (strerror_r(e, msg, sizeof msg) != 0)
			snprintf(msg, sizeof msg, "error %d", e);
		snprintf(err, errlen, "%s: cannot listen on %s: %s",
			 LISTENER_KEY, addr, msg);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static char *str_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

char *listener_unsubscribe_url(const struct config *cfg, const char *token)
{
	char *base, *url;

	if (!cfg->unsub.public_url || !token)
		return NULL;
	base = str_join(cfg->unsub.public_url, "/u/");
	if (!base)
		return NULL;
	url = str_join(base, token);
	free(base);
	return url;
}

static void listener_close_cb(uv_handle_t *h)
{
	struct listener *l = h->data;
	uv_mutex_destroy(&l->lock);
	free(l->sms_url);
	free(l);
}

int listener_open(uv_loop_t *loop, const struct config *cfg,
		  const struct unsub_keys *keys, listener_change_fn fn,
		  void *ctx, struct listener **out, char *err, size_t errlen)
{
	struct listener *l = NULL;
	int fd = -1;
	bool mutex = false;
	char portstr[16];

	*out = NULL;
	l = calloc(1, sizeof *l);
	if (!l) {
		snprintf(err, errlen, "%s: out of memory", LISTENER_KEY);
		return -1;
	}
	l->loop = loop;
	l->cfg = cfg;
	l->keys = keys;
	l->fn = fn;
	l->ctx = ctx;
	atomic_init(&l->accepting, false);
	atomic_init(&l->inflight, 0);
	l->prefix = cfg->unsub.public_path ? cfg->unsub.public_path : "";
	l->prefix_len = strlen(l->prefix);
	while (l->prefix_len && l->prefix[l->prefix_len - 1] == '/')
		l->prefix_len--;
	l->verify_twilio = cfg->sms_http.kind == SMS_GATEWAY_TWILIO &&
			   cfg->sms_http.auth_token &&
			   cfg->sms_http.auth_token[0];
	if (l->verify_twilio) {
		l->sms_url = str_join(cfg->unsub.public_url
					      ? cfg->unsub.public_url : "",
				      "/sms/inbound");
		if (!l->sms_url) {
			snprintf(err, errlen, "%s: out of memory", LISTENER_KEY);
			goto fail;
		}
	}
	if (uv_mutex_init(&l->lock) != 0) {
		snprintf(err, errlen, "%s: cannot create a mutex", LISTENER_KEY);
		goto fail;
	}
	mutex = true;

	fd = listener_bind(cfg->unsub.listen_host, cfg->unsub.listen_port,
			   &l->port, err, errlen);
	if (fd < 0)
		goto fail;
	if (uv_async_init(loop, &l->async, listener_async_cb) != 0) {
		snprintf(err, errlen, "%s: cannot create an async handle",
			 LISTENER_KEY);
		goto fail;
	}
	l->async.data = l;

	l->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
			MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
		0, NULL, NULL, listener_ahc, l,
		MHD_OPTION_EXTERNAL_LOGGER, listener_mhd_log, l,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, listener_completed, l,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)LISTENER_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)LISTENER_TIMEOUT_S,
		MHD_OPTION_END);
	if (!l->mhd) {
		/* NEEDSWORK: whether MHD closed fd on this path depends on
		 * where it failed; it is left alone rather than risk closing
		 * a descriptor another thread has since been given. */
		snprintf(err, errlen, "%s: cannot start the HTTP server on "
			 "port %d", LISTENER_KEY, l->port);
		uv_close((uv_handle_t *)&l->async, listener_close_cb);
		return -1;
	}
	snprintf(portstr, sizeof portstr, "%d", l->port);
	log_msg(LOG_INFO, "http listener ready", "host",
		cfg->unsub.listen_host, "port", portstr, "path",
		l->prefix_len ? l->prefix : "/", NULL);
	*out = l;
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	if (mutex)
		uv_mutex_destroy(&l->lock);
	free(l->sms_url);
	free(l);
	return -1;
}

int listener_port(const struct listener *l)
{
	return l->port;
}

void listener_set_accepting(struct listener *l, bool accepting)
{
	atomic_store(&l->accepting, accepting);
}

void listener_close(struct listener *l)
{
	struct listener_call *queued;

	if (!l)
		return;
	uv_mutex_lock(&l->lock);
	l->closing = true;
	queued = l->head;
	l->head = l->tail = NULL;
	uv_mutex_unlock(&l->lock);

	while (queued) {
		struct listener_call *next = queued->next;
		queued->next = NULL;
		queued->l = NULL;
		call_answer(queued, MHD_HTTP_SERVICE_UNAVAILABLE);
		call_unref(queued);
		queued = next;
	}
	while (l->handed) {
		struct listener_call *call = l->handed;
		call_answer(call, MHD_HTTP_SERVICE_UNAVAILABLE);
		call->l = NULL;
	}
	/* let the 503s go out before the daemon closes their sockets */
	for (int waited = 0; atomic_load(&l->inflight) > 0 &&
			     waited < LISTENER_CLOSE_WAIT_MS; waited += 2)
		uv_sleep(2);
	MHD_stop_daemon(l->mhd);
	l->mhd = NULL;
	uv_close((uv_handle_t *)&l->async, listener_close_cb);
}
