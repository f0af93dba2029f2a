/* test_listener.c: the HTTP listener, driven by a real HTTP client.
 *
 * The test's main thread runs a libuv loop with two listeners on
 * 127.0.0.1 (port 0): "a" serves under "/rouse" and verifies Twilio
 * signatures, "b" serves at the root with no SMS auth token. A fake
 * change callback records every change and answers it the way the
 * client thread asked: at once, after a delay (uv_timer), with a failure,
 * or not at all (held until the listener is closed). The client thread
 * makes the requests with libcurl and checks status codes, headers,
 * bodies, the recorded changes and that a 200 never arrives before the
 * callback reported the change committed. It also checks, from
 * /proc/net/tcp{,6}, that nothing but the configured address is bound.
 * Everything the daemon logs goes to a file that must not contain a
 * token, a phone number or a request body.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include "channel.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "unsubtoken.h"
#include "testutil.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define OTHER_SECRET "fedcba9876543210fedcba9876543210"
#define AUTH_TOKEN "twilio-auth-token-3f9a1c"
#define PUBLIC_URL "https://shop.example/rouse"
#define JOB "0190f5a2-7c1e-7a3b-9d4e-0123456789ab"
#define PHONE "+15551230000"
#define DELAY_MS 300
#define MAX_CHANGES 64

enum mode { MODE_NOW, MODE_DELAY, MODE_FAIL, MODE_HOLD };
enum command { CMD_NONE, CMD_CLOSE_A, CMD_FINISH };

struct change_rec {
	bool resubscribe;
	int channel;
	char user[256];
	char address[320];
	char source[32];
	char reason[64];
	bool user_null, address_null;
};

struct fake {
	uv_mutex_t lock;
	enum mode mode;
	struct change_rec changes[MAX_CHANGES];
	int n_changes;
	uint64_t done_at;              /* uv_hrtime of the last ok answer */
	struct listener_call *held;
	enum command cmd;
	bool a_closed;
};

struct delayed {
	uv_timer_t timer;
	struct listener_call *call;
	struct fake *f;
};

static uv_loop_t loop;
static uv_async_t ctl;
static struct fake fake;
static struct listener *la, *lb;
static int port_a, port_b;
static struct unsub_keys *keys, *other_keys;
static char *tok_email;        /* u42 + alice@example.com, email */
static char *tok_all;          /* user "u<7>" only, all channels */
static char *tok_foreign;      /* the same subject, another secret */

/* ---- the loop side ---------------------------------------------------- */

static void delayed_closed(uv_handle_t *h)
{
	free(h->data);
}

static void delayed_fire(uv_timer_t *t)
{
	struct delayed *d = t->data;
	uv_mutex_lock(&d->f->lock);
	d->f->done_at = uv_hrtime();
	uv_mutex_unlock(&d->f->lock);
	listener_call_done(d->call, 0);
	d->timer.data = d;
	uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void on_change(void *ctx, struct listener_call *call,
		      const struct listener_change *c)
{
	struct fake *f = ctx;
	enum mode mode;

	uv_mutex_lock(&f->lock);
	if (f->n_changes < MAX_CHANGES) {
		struct change_rec *r = &f->changes[f->n_changes++];
		r->resubscribe = c->resubscribe;
		r->channel = c->channel;
		r->user_null = !c->user;
		r->address_null = !c->address;
		snprintf(r->user, sizeof r->user, "%s", c->user ? c->user : "");
		snprintf(r->address, sizeof r->address, "%s",
			 c->address ? c->address : "");
		snprintf(r->source, sizeof r->source, "%s", c->source);
		snprintf(r->reason, sizeof r->reason, "%s", c->reason);
	}
	mode = f->mode;
	if (mode == MODE_NOW)
		f->done_at = uv_hrtime();
	if (mode == MODE_HOLD)
		f->held = call;
	uv_mutex_unlock(&f->lock);

	if (mode == MODE_NOW) {
		listener_call_done(call, 0);
	} else if (mode == MODE_FAIL) {
		listener_call_done(call, -1);
	} else if (mode == MODE_DELAY) {
		struct delayed *d = calloc(1, sizeof *d);
		d->call = call;
		d->f = f;
		uv_timer_init(&loop, &d->timer);
		d->timer.data = d;
		uv_timer_start(&d->timer, delayed_fire, DELAY_MS, 0);
	}
}

static void ctl_cb(uv_async_t *h)
{
	enum command cmd;
	struct listener_call *held;

	(void)h;
	uv_mutex_lock(&fake.lock);
	cmd = fake.cmd;
	fake.cmd = CMD_NONE;
	uv_mutex_unlock(&fake.lock);
	if (cmd == CMD_CLOSE_A && la) {
		listener_close(la);
		la = NULL;
		/* the held call outlives its listener: done only frees it */
		uv_mutex_lock(&fake.lock);
		held = fake.held;
		fake.held = NULL;
		uv_mutex_unlock(&fake.lock);
		if (held)
			listener_call_done(held, 0);
		uv_mutex_lock(&fake.lock);
		fake.a_closed = true;
		uv_mutex_unlock(&fake.lock);
	} else if (cmd == CMD_FINISH) {
		if (la)
			listener_close(la);
		if (lb)
			listener_close(lb);
		la = lb = NULL;
		uv_close((uv_handle_t *)&ctl, NULL);
	}
}

static void command(enum command cmd)
{
	uv_mutex_lock(&fake.lock);
	fake.cmd = cmd;
	uv_mutex_unlock(&fake.lock);
	uv_async_send(&ctl);
}

static void set_mode(enum mode m)
{
	uv_mutex_lock(&fake.lock);
	fake.mode = m;
	uv_mutex_unlock(&fake.lock);
}

static int n_changes(void)
{
	int n;
	uv_mutex_lock(&fake.lock);
	n = fake.n_changes;
	uv_mutex_unlock(&fake.lock);
	return n;
}

static struct change_rec last_change(void)
{
	struct change_rec r;
	uv_mutex_lock(&fake.lock);
	memset(&r, 0, sizeof r);
	if (fake.n_changes > 0)
		r = fake.changes[fake.n_changes - 1];
	uv_mutex_unlock(&fake.lock);
	return r;
}

/* ---- the HTTP client -------------------------------------------------- */

struct resp {
	long status;
	char body[65536];
	size_t body_len;
	char headers[8192];
	size_t headers_len;
	uint64_t at;              /* uv_hrtime when the answer was complete */
	CURLcode rc;
};

static size_t collect(char *buf, size_t cap, size_t *len, const char *p,
		      size_t n)
{
	size_t room = cap - 1 - *len;
	size_t take = n < room ? n : room;
	memcpy(buf + *len, p, take);
	*len += take;
	buf[*len] = '\0';
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct resp *r = ud;
	return collect(r->body, sizeof r->body, &r->body_len, p, size * nmemb);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct resp *r = ud;
	return collect(r->headers, sizeof r->headers, &r->headers_len, p,
		       size * nmemb);
}

/* The value of header name in r (case-insensitive), or NULL. */
static const char *header(const struct resp *r, const char *name)
{
	static char value[512];
	size_t n = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;
			while (*v == ' ')
				v++;
			e = strpbrk(v, "\r\n");
			if (!e)
				e = v + strlen(v);
			snprintf(value, sizeof value, "%.*s", (int)(e - v), v);
			return value;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

struct req_opts {
	const char *method;          /* NULL: GET, or POST when body set */
	const char *content_type;
	const char *body;
	long body_len;               /* -1: strlen(body) */
	bool multipart;              /* List-Unsubscribe=One-Click as a part */
	bool chunked;
	bool no_expect;
	const char *signature;       /* X-Twilio-Signature */
	const char *host;            /* default 127.0.0.1 */
};

struct chunk_src {
	const char *p;
	size_t left;
};

static size_t chunk_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct chunk_src *s = ud;
	size_t n = size * nitems;
	if (n > 1000)
		n = 1000;
	if (n > s->left)
		n = s->left;
	memcpy(buf, s->p, n);
	s->p += n;
	s->left -= n;
	return n;
}

static struct resp *request(int port, const char *path,
			    const struct req_opts *o)
{
	static struct resp r;
	struct curl_slist *hdrs = NULL;
	curl_mime *mime = NULL;
	struct chunk_src src;
	char url[2048], line[512];
	CURL *c = curl_easy_init();

	memset(&r, 0, sizeof r);
	snprintf(url, sizeof url, "http://%s:%d%s",
		 o && o->host ? o->host : "127.0.0.1", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	if (o && o->content_type) {
		snprintf(line, sizeof line, "Content-Type: %s", o->content_type);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (o && o->signature) {
		snprintf(line, sizeof line, "X-Twilio-Signature: %s",
			 o->signature);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (o && o->no_expect)
		hdrs = curl_slist_append(hdrs, "Expect:");
	if (o && o->multipart) {
		curl_mimepart *part;
		mime = curl_mime_init(c);
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "List-Unsubscribe");
		curl_mime_data(part, "One-Click", CURL_ZERO_TERMINATED);
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else if (o && o->chunked) {
		src.p = o->body;
		src.left = (size_t)o->body_len;
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, chunk_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &src);
		hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	} else if (o && o->body) {
		long n = o->body_len < 0 ? (long)strlen(o->body) : o->body_len;
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, n);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
	}
	if (o && o->method) {
		if (strcmp(o->method, "HEAD") == 0)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		else
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	r.rc = curl_easy_perform(c);
	r.at = uv_hrtime();
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_easy_cleanup(c);
	curl_mime_free(mime);
	curl_slist_free_all(hdrs);
	return &r;
}

static struct resp *get(int port, const char *path)
{
	return request(port, path, NULL);
}

static struct resp *post_form(int port, const char *path, const char *body)
{
	struct req_opts o = { .content_type =
				      "application/x-www-form-urlencoded",
			      .body = body, .body_len = -1 };
	return request(port, path, &o);
}

static char *path_for(const char *prefix, const char *token)
{
	static char p[2048];
	snprintf(p, sizeof p, "%s/u/%s", prefix, token);
	return p;
}

/* ---- Twilio signatures, computed independently ------------------------ */

struct kv {
	const char *k, *v;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->k, y->k);
	return c ? c : strcmp(x->v, y->v);
}

static const char *twilio_sign(const char *token, const char *url,
			       const struct kv *params, size_t n)
{
	static char out[64];
	struct kv sorted[16];
	char data[8192];
	unsigned char mac[20];
	unsigned int mac_len = 0;
	size_t len;

	memcpy(sorted, params, n * sizeof *params);
	qsort(sorted, n, sizeof *sorted, kv_cmp);
	len = (size_t)snprintf(data, sizeof data, "%s", url);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(data + len, sizeof data - len, "%s%s",
					sorted[i].k, sorted[i].v);
	HMAC(EVP_sha1(), token, (int)strlen(token), (unsigned char *)data,
	     len, mac, &mac_len);
	EVP_EncodeBlock((unsigned char *)out, mac, (int)mac_len);
	return out;
}

static void form_escape(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.') {
			out[o++] = (char)ch;
		} else if (ch == ' ') {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

/* POSTs params to /sms/inbound of port, signed with token when sign. */
static struct resp *sms_post(int port, const char *prefix,
			     const struct kv *params, size_t n,
			     const char *signature)
{
	char body[4096] = "", k[512], v[512], path[256];
	size_t len = 0;
	struct req_opts o = { .content_type =
				      "application/x-www-form-urlencoded",
			      .body = body, .body_len = -1,
			      .signature = signature };

	for (size_t i = 0; i < n; i++) {
		form_escape(k, sizeof k, params[i].k);
		form_escape(v, sizeof v, params[i].v);
		len += (size_t)snprintf(body + len, sizeof body - len, "%s%s=%s",
					i ? "&" : "", k, v);
	}
	snprintf(path, sizeof path, "%s/sms/inbound", prefix);
	return request(port, path, &o);
}

static struct resp *sms_reply(const char *from, const char *text,
			      bool good_signature)
{
	struct kv p[] = {
		{ "MessageSid", "SM0123456789abcdef0123456789abcdef" },
		{ "AccountSid", "AC0123456789abcdef0123456789abcdef" },
		{ "From", from },
		{ "To", "+15550001111" },
		{ "Body", text },
		{ "NumMedia", "0" },
	};
	const char *sig = twilio_sign(good_signature ? AUTH_TOKEN
						     : "not-the-auth-token",
				      PUBLIC_URL "/sms/inbound", p, 6);
	return sms_post(port_a, "/rouse", p, 6, sig);
}

/* ---- the checks --------------------------------------------------------- */

static bool no_redirect_no_cookie(const struct resp *r)
{
	return !header(r, "Location") && !header(r, "Set-Cookie");
}

static void check_health(void)
{
	struct resp *r;
	struct req_opts post = { .method = "POST" };

	r = get(port_a, "/healthz");
	ASSERT_EQ_INT(r->status, 503);
	listener_set_accepting(la, true);
	listener_set_accepting(lb, true);
	r = get(port_a, "/healthz");
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_EQ_STR(r->body, "ok\n");
	r = get(port_a, "/rouse/healthz");
	ASSERT_EQ_INT(r->status, 200);
	r = get(port_b, "/healthz");
	ASSERT_EQ_INT(r->status, 200);
	r = request(port_a, "/healthz", &post);
	ASSERT_EQ_INT(r->status, 405);
	listener_set_accepting(la, false);
	r = get(port_a, "/rouse/healthz");
	ASSERT_EQ_INT(r->status, 503);
	listener_set_accepting(la, true);
}

static void check_not_found(void)
{
	static const char *const paths[] = { "/", "/rouse", "/rouse/",
		"/rouse/u", "/rouse/sms", "/rousex/u/abc", "/sms/inbound",
		"/u/abc", "/rouse/rouse/u/abc", "/rouse/healthz/x" };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		struct resp *r = get(port_a, paths[i]);
		if (r->status != 404)
			fprintf(stderr, "GET %s\n", paths[i]);
		ASSERT_EQ_INT(r->status, 404);
	}
	ASSERT_EQ_INT(get(port_b, "/rouse/u/x")->status, 404);
	ASSERT_EQ_INT(n_changes(), 0);
}

static void check_get_page(void)
{
	struct resp *r;
	const char *ct;

	r = get(port_a, path_for("/rouse", tok_email));
	ASSERT_EQ_INT(r->status, 200);
	ct = header(r, "Content-Type");
	ASSERT_TRUE(ct && strcmp(ct, "text/html; charset=utf-8") == 0);
	ASSERT_TRUE(strstr(r->body, "alice@example.com") != NULL);
	ASSERT_TRUE(strstr(r->body, "emails") != NULL);
	ASSERT_TRUE(strstr(r->body, "邮件") != NULL);
	ASSERT_TRUE(strstr(r->body, "<form method=\"post\">") != NULL);
	ASSERT_TRUE(strstr(r->body, "name=\"List-Unsubscribe\"") != NULL);
	ASSERT_TRUE(strstr(r->body, "value=\"One-Click\"") != NULL);
	ASSERT_TRUE(strstr(r->body, "<button") != NULL);
	ASSERT_TRUE(strstr(r->body, tok_email) == NULL);
	ASSERT_TRUE(no_redirect_no_cookie(r));

	/* a user-only token: the user is shown, escaped */
	r = get(port_a, path_for("/rouse", tok_all));
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_TRUE(strstr(r->body, "u&lt;7&gt;") != NULL);
	ASSERT_TRUE(strstr(r->body, "u<7>") == NULL);
	ASSERT_TRUE(strstr(r->body, "all messages") != NULL);

	/* the root-prefixed listener serves the same page */
	r = get(port_b, path_for("", tok_email));
	ASSERT_EQ_INT(r->status, 200);
	/* but not without the prefix on "a" */
	r = get(port_a, path_for("", tok_email));
	ASSERT_EQ_INT(r->status, 404);
	ASSERT_EQ_INT(n_changes(), 0);
}

static void check_one_click(void)
{
	struct resp *r;
	struct change_rec c;
	uint64_t t0, done_at;
	struct req_opts mp = { .multipart = true };
	int before = n_changes();

	/* urlencoded; the callback commits DELAY_MS later */
	set_mode(MODE_DELAY);
	t0 = uv_hrtime();
	r = post_form(port_a, path_for("/rouse", tok_email),
		      "List-Unsubscribe=One-Click");
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_TRUE(no_redirect_no_cookie(r));
	ASSERT_TRUE(strstr(r->body, "Unsubscribed") != NULL);
	uv_mutex_lock(&fake.lock);
	done_at = fake.done_at;
	uv_mutex_unlock(&fake.lock);
	ASSERT_TRUE(done_at > t0);
	ASSERT_TRUE(r->at >= done_at);
	/* libuv timers count whole milliseconds of cached loop time */
	ASSERT_TRUE(r->at - t0 >= (uint64_t)(DELAY_MS - 20) * 1000000);
	ASSERT_EQ_INT(n_changes(), before + 1);
	c = last_change();
	ASSERT_EQ_INT(c.resubscribe, false);
	ASSERT_EQ_INT(c.channel, CH_EMAIL);
	ASSERT_EQ_STR(c.user, "u42");
	ASSERT_EQ_STR(c.address, "alice@example.com");
	ASSERT_EQ_STR(c.source, "one_click");
	ASSERT_EQ_STR(c.reason, "one-click unsubscribe");

	/* multipart, answered at once */
	set_mode(MODE_NOW);
	r = request(port_a, path_for("/rouse", tok_all), &mp);
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_TRUE(no_redirect_no_cookie(r));
	ASSERT_EQ_INT(n_changes(), before + 2);
	c = last_change();
	ASSERT_EQ_INT(c.channel, CH_ALL);
	ASSERT_EQ_STR(c.user, "u<7>");
	ASSERT_TRUE(c.address_null);
	ASSERT_EQ_STR(c.source, "one_click");

	/* urlencoded with a charset and extra fields, on the root listener */
	r = post_form(port_b, path_for("", tok_email),
		      "x=1&List-Unsubscribe=One-Click&y=2");
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_EQ_INT(n_changes(), before + 3);

	/* a failed commit: 503, no 200 */
	set_mode(MODE_FAIL);
	r = post_form(port_a, path_for("/rouse", tok_email),
		      "List-Unsubscribe=One-Click");
	ASSERT_EQ_INT(r->status, 503);
	ASSERT_EQ_INT(n_changes(), before + 4);
	set_mode(MODE_NOW);
}

static void check_bad_tokens(void)
{
	char tampered[1024], truncated[1024];
	const char *bad[4];
	char first_body[256] = "";
	int before = n_changes();

	snprintf(tampered, sizeof tampered, "%s", tok_email);
	tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
	snprintf(truncated, sizeof truncated, "%s", tok_email);
	truncated[strlen(truncated) - 3] = '\0';
	bad[0] = tampered;
	bad[1] = truncated;
	bad[2] = tok_foreign;
	bad[3] = "";
	for (size_t i = 0; i < 4; i++) {
		struct resp *r = get(port_a, path_for("/rouse", bad[i]));
		ASSERT_EQ_INT(r->status, 400);
		if (i == 0)
			snprintf(first_body, sizeof first_body, "%.200s",
				 r->body);
		else
			ASSERT_EQ_STR(r->body, first_body);
		r = post_form(port_a, path_for("/rouse", bad[i]),
			      "List-Unsubscribe=One-Click");
		ASSERT_EQ_INT(r->status, 400);
		ASSERT_EQ_STR(r->body, first_body);
	}
	ASSERT_EQ_INT(n_changes(), before);
}

static void check_bad_bodies(void)
{
	static char big[100 * 1024];
	struct resp *r;
	const char *p = path_for("/rouse", tok_email);
	struct req_opts text = { .content_type = "text/plain",
				 .body = "List-Unsubscribe=One-Click",
				 .body_len = -1 };
	struct req_opts none = { .method = "POST" };
	struct req_opts large = { .content_type =
					  "application/x-www-form-urlencoded",
				  .body = big, .body_len = sizeof big };
	struct req_opts large_chunked = large;
	int before = n_changes();

	memset(big, 'a', sizeof big);
	memcpy(big, "List-Unsubscribe=One-Click&pad=", 31);

	ASSERT_EQ_INT(post_form(port_a, p, "")->status, 400);
	ASSERT_EQ_INT(post_form(port_a, p, "List-Unsubscribe=Yes")->status,
		      400);
	ASSERT_EQ_INT(post_form(port_a, p,
				"List-Unsubscribe=One-Click-Please")->status,
		      400);
	ASSERT_EQ_INT(post_form(port_a, p, "Unsubscribe=One-Click")->status,
		      400);
	ASSERT_EQ_INT(request(port_a, p, &text)->status, 400);
	ASSERT_EQ_INT(request(port_a, p, &none)->status, 400);

	/* 100 KB: refused from its Content-Length, with and without
	 * Expect: 100-continue, and as a chunked body */
	r = request(port_a, p, &large);
	ASSERT_EQ_INT(r->status, 413);
	large.no_expect = true;
	r = request(port_a, p, &large);
	ASSERT_EQ_INT(r->status, 413);
	large_chunked.chunked = true;
	r = request(port_a, p, &large_chunked);
	ASSERT_EQ_INT(r->status, 413);
	/* just under the cap is read */
	large.body_len = LISTENER_BODY_MAX;
	set_mode(MODE_NOW);
	r = request(port_a, p, &large);
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_EQ_INT(n_changes(), before + 1);
	large.body_len = LISTENER_BODY_MAX + 1;
	r = request(port_a, p, &large);
	ASSERT_EQ_INT(r->status, 413);
	ASSERT_EQ_INT(n_changes(), before + 1);
}

static void check_methods(void)
{
	static const char *const methods[] = { "PUT", "DELETE", "PATCH",
					       "OPTIONS", "HEAD" };
	const char *p = path_for("/rouse", tok_email);
	struct resp *r;
	int before = n_changes();

	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		struct req_opts o = { .method = methods[i] };
		r = request(port_a, p, &o);
		ASSERT_EQ_INT(r->status, 405);
		ASSERT_TRUE(header(r, "Allow") &&
			    strcmp(header(r, "Allow"), "GET, POST") == 0);
	}
	{
		struct req_opts o = { .method = "GET" };
		r = request(port_a, "/rouse/sms/inbound", &o);
		ASSERT_EQ_INT(r->status, 405);
		ASSERT_TRUE(header(r, "Allow") &&
			    strcmp(header(r, "Allow"), "POST") == 0);
	}
	ASSERT_EQ_INT(n_changes(), before);
}

static void check_sms(void)
{
	struct resp *r;
	struct change_rec c;
	int before = n_changes();
	uint64_t t0, done_at;
	static const struct {
		const char *text;
		bool resubscribe;
		const char *reason;
	} words[] = {
		{ "STOP", false, "STOP" },
		{ "  td \n", false, "TD" },
		{ "退订", false, "退订" },
		{ " 退订 ", false, "退订" },
		{ "stopall", false, "STOPALL" },
		{ "Unsubscribe", false, "UNSUBSCRIBE" },
		{ "cancel", false, "CANCEL" },
		{ "End", false, "END" },
		{ "quit", false, "QUIT" },
		{ "t", false, "T" },
		{ "START", true, "START" },
		{ "unstop", true, "UNSTOP" },
	};

	set_mode(MODE_NOW);
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		r = sms_reply(PHONE, words[i].text, true);
		ASSERT_EQ_INT(r->status, 200);
		ASSERT_TRUE(header(r, "Content-Type") &&
			    strncmp(header(r, "Content-Type"), "text/xml",
				    8) == 0);
		ASSERT_EQ_STR(r->body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
				       "<Response/>");
		ASSERT_EQ_INT(n_changes(), before + (int)i + 1);
		c = last_change();
		ASSERT_EQ_INT(c.resubscribe, words[i].resubscribe);
		ASSERT_EQ_INT(c.channel, CH_SMS);
		ASSERT_EQ_STR(c.address, PHONE);
		ASSERT_TRUE(c.user_null);
		ASSERT_EQ_STR(c.source, "sms_reply");
		ASSERT_EQ_STR(c.reason, words[i].reason);
	}
	before = n_changes();

	/* anything else: 200, nothing changes */
	r = sms_reply(PHONE, "hello", true);
	ASSERT_EQ_INT(r->status, 200);
	r = sms_reply(PHONE, "STOP please", true);
	ASSERT_EQ_INT(r->status, 200);
	r = sms_reply(PHONE, "", true);
	ASSERT_EQ_INT(r->status, 200);
	ASSERT_EQ_INT(n_changes(), before);

	/* signatures: wrong key, missing, a tampered parameter */
	r = sms_reply(PHONE, "STOP", false);
	ASSERT_EQ_INT(r->status, 403);
	{
		struct kv p[] = { { "From", PHONE }, { "Body", "STOP" } };
		r = sms_post(port_a, "/rouse", p, 2, NULL);
		ASSERT_EQ_INT(r->status, 403);
		r = sms_post(port_a, "/rouse", p, 2, "");
		ASSERT_EQ_INT(r->status, 403);
		/* signed for another number */
		{
			struct kv q[] = { { "From", "+15559999999" },
					  { "Body", "STOP" } };
			const char *sig = twilio_sign(AUTH_TOKEN,
						      PUBLIC_URL "/sms/inbound",
						      q, 2);
			r = sms_post(port_a, "/rouse", p, 2, sig);
			ASSERT_EQ_INT(r->status, 403);
		}
		/* signed for another URL */
		{
			const char *sig = twilio_sign(AUTH_TOKEN,
				"https://shop.example/sms/inbound", p, 2);
			r = sms_post(port_a, "/rouse", p, 2, sig);
			ASSERT_EQ_INT(r->status, 403);
		}
		/* parameter order on the wire does not matter */
		{
			struct kv q[] = { { "Body", "STOP" }, { "From", PHONE } };
			const char *sig = twilio_sign(AUTH_TOKEN,
						      PUBLIC_URL "/sms/inbound",
						      p, 2);
			r = sms_post(port_a, "/rouse", q, 2, sig);
			ASSERT_EQ_INT(r->status, 200);
			ASSERT_EQ_INT(n_changes(), before + 1);
			before++;
		}
	}
	ASSERT_EQ_INT(n_changes(), before);

	/* no From */
	{
		struct kv p[] = { { "Body", "STOP" } };
		const char *sig = twilio_sign(AUTH_TOKEN,
					      PUBLIC_URL "/sms/inbound", p, 1);
		r = sms_post(port_a, "/rouse", p, 1, sig);
		ASSERT_EQ_INT(r->status, 400);
	}
	/* not a form */
	{
		struct req_opts o = { .content_type = "application/json",
				      .body = "{\"From\":\"x\"}", .body_len = -1,
				      .signature = "x" };
		r = request(port_a, "/rouse/sms/inbound", &o);
		ASSERT_EQ_INT(r->status, 415);
	}
	ASSERT_EQ_INT(n_changes(), before);

	/* the answer waits for the commit */
	set_mode(MODE_DELAY);
	t0 = uv_hrtime();
	r = sms_reply(PHONE, "STOP", true);
	ASSERT_EQ_INT(r->status, 200);
	uv_mutex_lock(&fake.lock);
	done_at = fake.done_at;
	uv_mutex_unlock(&fake.lock);
	ASSERT_TRUE(done_at > t0 && r->at >= done_at);
	set_mode(MODE_FAIL);
	r = sms_reply(PHONE, "START", true);
	ASSERT_EQ_INT(r->status, 503);
	ASSERT_EQ_INT(n_changes(), before + 2);
	set_mode(MODE_NOW);
	before += 2;

	/* "b" has no auth token: replies are taken unsigned */
	{
		struct kv p[] = { { "From", "+8613800138000" },
				  { "Body", "退订" } };
		r = sms_post(port_b, "", p, 2, NULL);
		ASSERT_EQ_INT(r->status, 200);
		ASSERT_EQ_INT(n_changes(), before + 1);
		c = last_change();
		ASSERT_EQ_STR(c.address, "+8613800138000");
		ASSERT_EQ_STR(c.reason, "退订");
	}
	/* ... but consent is never given back unsigned */
	{
		struct kv p[] = { { "From", "+8613800138000" },
				  { "Body", "START" } };
		r = sms_post(port_b, "", p, 2, NULL);
		ASSERT_EQ_INT(r->status, 403);
		ASSERT_EQ_INT(n_changes(), before + 1);
	}
}

/* Counts LISTEN sockets on port in /proc/net/tcp{,6}: *want those on
 * addr_hex (the kernel's spelling of the address), *other the rest. */
static void count_listeners(int port, const char *file, const char *addr_hex,
			    int *want, int *other)
{
	FILE *f = fopen(file, "r");
	char line[512], local[128], remote[128], st[8];
	char port_hex[8];

	snprintf(port_hex, sizeof port_hex, "%04X", port);
	if (!f)
		return;
	if (!fgets(line, sizeof line, f)) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof line, f)) {
		char *colon;
		if (sscanf(line, "%*s %127s %127s %7s", local, remote, st) != 3)
			continue;
		colon = strrchr(local, ':');
		if (!colon || strcmp(st, "0A") != 0 ||
		    strcmp(colon + 1, port_hex) != 0)
			continue;
		*colon = '\0';
		if (strcmp(local, addr_hex) == 0)
			(*want)++;
		else
			(*other)++;
	}
	fclose(f);
}

static void check_bound_address(void)
{
	int want = 0, other = 0;

	count_listeners(port_a, "/proc/net/tcp", "0100007F", &want, &other);
	count_listeners(port_a, "/proc/net/tcp6", "-", &want, &other);
	ASSERT_EQ_INT(want, 1);
	ASSERT_EQ_INT(other, 0);
}

/* Bind failures and IPv6, each on its own listener. */
static void check_open_errors(void)
{
	struct config *cfg = calloc(1, sizeof *cfg);
	struct listener *l = NULL;
	char err[256] = "", want[64];
	int rc;

	cfg->unsub.set = true;
	cfg->unsub.listen_host = "127.0.0.1";
	cfg->unsub.listen_port = port_a;
	cfg->unsub.public_url = PUBLIC_URL;
	cfg->unsub.public_path = "/rouse";
	rc = listener_open(&loop, cfg, keys, on_change, &fake, &l, err,
			   sizeof err);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(l == NULL);
	snprintf(want, sizeof want, "127.0.0.1:%d", port_a);
	ASSERT_TRUE(strstr(err, "unsubscribe.listen") != NULL);
	ASSERT_TRUE(strstr(err, want) != NULL);
	ASSERT_TRUE(strstr(err, "in use") != NULL);

	cfg->unsub.listen_host = "localhost";
	cfg->unsub.listen_port = 0;
	err[0] = '\0';
	ASSERT_EQ_INT(listener_open(&loop, cfg, keys, on_change, &fake, &l,
				    err, sizeof err), -1);
	ASSERT_TRUE(strstr(err, "unsubscribe.listen") != NULL);
	ASSERT_TRUE(strstr(err, "localhost") != NULL);

	/* IPv6 loopback, where the host has it */
	cfg->unsub.listen_host = "::1";
	err[0] = '\0';
	rc = listener_open(&loop, cfg, keys, on_change, &fake, &l, err,
			   sizeof err);
	if (rc == 0) {
		struct req_opts o = { .host = "[::1]" };
		int w = 0, other = 0, port6 = listener_port(l);
		count_listeners(port6, "/proc/net/tcp6",
				"00000000000000000000000001000000", &w, &other);
		count_listeners(port6, "/proc/net/tcp", "-", &w, &other);
		ASSERT_EQ_INT(w, 1);
		ASSERT_EQ_INT(other, 0);
		ASSERT_EQ_INT(request(port6, "/rouse/healthz", &o)->status, 503);
		listener_close(l);
	} else {
		fprintf(stderr, "note: no IPv6 loopback here (%s)\n", err);
	}
	free(cfg);
}

/* Waits until the callback holds a call, then has the loop close "a". */
static void closer_main(void *p)
{
	const int *before = p;
	for (int i = 0; i < 1000 && n_changes() == *before; i++)
		uv_sleep(5);
	uv_sleep(50);
	command(CMD_CLOSE_A);
}

/* A request the callback holds when the listener closes gets 503. */
static void check_close_pending(void)
{
	struct resp *r;
	int before = n_changes();
	uv_thread_t t;

	set_mode(MODE_HOLD);
	uv_thread_create(&t, closer_main, &before);
	r = post_form(port_a, path_for("/rouse", tok_email),
		      "List-Unsubscribe=One-Click");
	uv_thread_join(&t);
	ASSERT_EQ_INT(r->status, 503);
	ASSERT_EQ_INT(n_changes(), before + 1);
	/* and once listener_close returned, the port is closed */
	for (int i = 0; i < 1000; i++) {
		bool closed;
		uv_mutex_lock(&fake.lock);
		closed = fake.a_closed;
		uv_mutex_unlock(&fake.lock);
		if (closed)
			break;
		uv_sleep(5);
	}
	r = get(port_a, "/healthz");
	ASSERT_TRUE(r->rc != CURLE_OK);
	set_mode(MODE_NOW);
}

static void client_main(void *arg)
{
	(void)arg;
	check_health();
	check_not_found();
	check_get_page();
	check_one_click();
	check_bad_tokens();
	check_bad_bodies();
	check_methods();
	check_sms();
	check_bound_address();
	check_close_pending();
	command(CMD_FINISH);
}

/* ---- setup ---------------------------------------------------------------- */

static struct config *make_config(const char *path, bool twilio)
{
	struct config *cfg = calloc(1, sizeof *cfg);
	cfg->unsub.set = true;
	cfg->unsub.listen_host = "127.0.0.1";
	cfg->unsub.listen_port = 0;
	cfg->unsub.public_url = twilio ? PUBLIC_URL : "http://127.0.0.1";
	cfg->unsub.public_path = (char *)path;
	if (twilio) {
		cfg->sms_transport = TRANSPORT_HTTP;
		cfg->sms_http.kind = SMS_GATEWAY_TWILIO;
		cfg->sms_http.auth_token = AUTH_TOKEN;
	}
	return cfg;
}

static char *mint(const struct unsub_keys *k, int ch, const char *user,
		  const char *address)
{
	struct unsub_subject s;
	memset(&s, 0, sizeof s);
	s.channel = ch;
	snprintf(s.user, sizeof s.user, "%s", user);
	snprintf(s.address, sizeof s.address, "%s", address);
	snprintf(s.job_id, sizeof s.job_id, "%s", JOB);
	return unsub_token_mint(k, &s);
}

static char *read_all(int fd)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	lseek(fd, 0, SEEK_SET);
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

int main(void)
{
	struct config *cfg_a = make_config("/rouse", true);
	struct config *cfg_b = make_config("", false);
	char err[256] = "", log_path[] = "/tmp/test_listener_log.XXXXXX";
	uv_thread_t client;
	int saved_stderr, log_fd;
	char *logged, *url;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_set_level(LOG_DEBUG);
	log_fd = mkstemp(log_path);
	unlink(log_path);
	saved_stderr = dup(2);
	dup2(log_fd, 2);

	if (unsub_keys_parse(SECRET, &keys, err, sizeof err) != 0 ||
	    unsub_keys_parse(OTHER_SECRET, &other_keys, err, sizeof err) != 0)
		return 1;
	tok_email = mint(keys, CH_EMAIL, "u42", "alice@example.com");
	tok_all = mint(keys, CH_ALL, "u<7>", "");
	tok_foreign = mint(other_keys, CH_EMAIL, "u42", "alice@example.com");

	url = listener_unsubscribe_url(cfg_a, "TOKEN");
	ASSERT_EQ_STR(url, PUBLIC_URL "/u/TOKEN");
	free(url);

	uv_loop_init(&loop);
	uv_mutex_init(&fake.lock);
	uv_async_init(&loop, &ctl, ctl_cb);
	if (listener_open(&loop, cfg_a, keys, on_change, &fake, &la, err,
			  sizeof err) != 0 ||
	    listener_open(&loop, cfg_b, keys, on_change, &fake, &lb, err,
			  sizeof err) != 0) {
		dup2(saved_stderr, 2);
		fprintf(stderr, "listener_open: %s\n", err);
		return 1;
	}
	port_a = listener_port(la);
	port_b = listener_port(lb);
	ASSERT_TRUE(port_a > 0 && port_b > 0 && port_a != port_b);
	check_open_errors();

	uv_thread_create(&client, client_main, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_thread_join(&client);
	ASSERT_EQ_INT(uv_loop_close(&loop), 0);

	/* nothing secret or personal reached the log */
	dup2(saved_stderr, 2);
	logged = read_all(log_fd);
	ASSERT_TRUE(strstr(logged, "http listener ready") != NULL);
	ASSERT_TRUE(strstr(logged, tok_email) == NULL);
	ASSERT_TRUE(strstr(logged, tok_all) == NULL);
	ASSERT_TRUE(strstr(logged, PHONE) == NULL);
	ASSERT_TRUE(strstr(logged, "One-Click") == NULL);
	ASSERT_TRUE(strstr(logged, AUTH_TOKEN) == NULL);
	ASSERT_TRUE(strstr(logged, "alice@example.com") == NULL);
	fputs(logged, stderr);
	free(logged);
	close(log_fd);

	uv_mutex_destroy(&fake.lock);
	free(tok_email);
	free(tok_all);
	free(tok_foreign);
	unsub_keys_free(keys);
	unsub_keys_free(other_keys);
	free(cfg_a);
	free(cfg_b);
	curl_global_cleanup();
	TEST_DONE();
}
