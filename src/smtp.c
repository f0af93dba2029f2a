/* smtp.c: the SMTP email transport (see smtp.h).
 *
 * DESIGN
 * - One worker (worker.h) with email.smtp.sessions threads sharing a
 *   queue; a thread takes up to email.smtp.batch messages and runs one
 *   libESMTP session for them: one connection, MAIL/RCPT/DATA per message
 *   (connection reuse is most of SMTP throughput), QUIT.
 * - The message bytes are the GMime-built message (email.h) handed over
 *   unchanged; libESMTP does the dot-stuffing.
 * - TLS: one OpenSSL client context for all sessions (TLS 1.2, see
 *   tls_context), verifying the peer with the system store or
 *   email.smtp.ca_file; libESMTP checks the certificate's name and refuses
 *   a bad certificate by default.
 * - Verdicts per message follow delivery-rules §2: the reverse-path,
 *   recipient and message statuses are read in that order, the first
 *   failure decides. A message whose data was completely handed over but
 *   got no reply (connection lost or timed out after the final dot) is
 *   ambiguous: retried, with the same Message-ID.
 * - The password is only handed to libESMTP's AUTH callback; it is never
 *   logged or written anywhere.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h> /* before libesmtp.h: declares smtp_starttls_set_ctx */
#include <auth-client.h>
#include <libesmtp.h>

#include "email.h"
#include "log.h"
#include "smtp.h"

#define SMTP_CHUNK 65536

struct smtp_transport {
	const struct config *cfg;
	const struct smtp_conf *conf;
	struct worker *worker;
	/* accepted messages are reported as their 250 arrives, not when the
	 * connection ends: reports cross to the loop through this async */
	uv_async_t accepted_async;
	uv_mutex_t accepted_lock;
	struct smtp_item *accepted;   /* guarded by accepted_lock */
	/* the socket each running session uses, so that shutdown can cut a
	 * session stuck on a silent server (guarded by accepted_lock) */
	int session_fd[WORKER_MAX_THREADS];
	bool aborted;                 /* no new session (accepted_lock) */
	smtp_done_fn done;
	void *ctx;
	SSL_CTX *ssl;
	char hostport[300];
	char helo[256];
	char reverse_path[320];
};

/* What one session learned beyond the per-message statuses. */
struct session_state {
	struct smtp_transport *t;
	bool tls_missing;
	bool tls_failed;
	char tls_detail[160];
};

/* ------------------------------------------------------------ sockets */

/* TCP_NODELAY on every TCP connection this process opens. libESMTP opens
 * its own sockets and has no hook for socket options; it writes a message
 * in 2 KiB pieces and then the final ".", so with Nagle's algorithm that
 * last short write waits for the receiver's delayed ACK: ~40 ms per
 * message, whatever the connection reuse (measured: 22 msgs/s per session
 * against smtp-sink). Defining connect() in the program interposes it for
 * the shared libraries too; it calls the C library's and then sets the
 * option. Hand-written because no library at hand offers the hook; the
 * alternative was a hand-written SMTP client. */
static int (*libc_connect)(int, const struct sockaddr *, socklen_t);
static pthread_once_t libc_connect_once = PTHREAD_ONCE_INIT;

/* Set by a session thread while it runs a session: where connect()
 * records the session's socket. */
static _Thread_local int *session_fd_slot;

static void find_libc_connect(void)
{
	libc_connect = (int (*)(int, const struct sockaddr *, socklen_t))
		dlsym(RTLD_NEXT, "connect");
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	pthread_once(&libc_connect_once, find_libc_connect);
	if (!libc_connect) {
		errno = ENOSYS;
		return -1;
	}
	int rc = libc_connect(fd, addr, len);
	int saved = errno;
	if ((rc == 0 || errno == EINPROGRESS) && addr &&
	    (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (session_fd_slot)
			__atomic_store_n(session_fd_slot, fd, __ATOMIC_RELEASE);
	}
	errno = saved;
	return rc;
}

/* ------------------------------------------------------------ callbacks */

/* libESMTP's message reader: hands out the message bytes in chunks;
 * len == NULL means "rewind". */
static const char *message_cb(void **ctx, int *len, void *arg)
{
	struct smtp_item *it = arg;
	size_t *pos = *ctx;
	if (!pos) {
		pos = calloc(1, sizeof *pos);
		if (!pos)
			return NULL;
		*ctx = pos; /* libESMTP frees it with the message */
	}
	if (!len) {
		*pos = 0;
		return NULL;
	}
	if (*pos >= it->len) {
		*len = 0;
		it->data_done = true;
		return NULL;
	}
	size_t n = it->len - *pos;
	if (n > SMTP_CHUNK)
		n = SMTP_CHUNK;
	const char *chunk = it->data + *pos;
	*pos += n;
	*len = (int)n;
	return chunk;
}

static void describe(struct smtp_item *it, const char *phase,
		     const smtp_status_t *s);

/* Session thread: a message got its 2xx after the data. Its outcome goes
 * to the loop now, as a copy that owns the submitter's `ud`; the item
 * itself stays with the session (libESMTP still refers to it) and is
 * freed silently when the session ends. */
static void report_accepted(struct smtp_transport *t, smtp_message_t m)
{
	struct smtp_item *it = smtp_message_get_application_data(m);
	const smtp_status_t *data = smtp_message_transfer_status(m);
	if (!it || !data || data->code < 200 || data->code >= 300)
		return;
	struct smtp_item *report = calloc(1, sizeof *report);
	if (!report)
		return; /* reported with the batch instead */
	memcpy(report->job_id, it->job_id, sizeof report->job_id);
	report->verdict = SMTP_SENT;
	describe(report, "accepted", data);
	report->ud = it->ud;
	it->reported = true;
	uv_mutex_lock(&t->accepted_lock);
	report->node.next = (struct worker_item *)t->accepted;
	t->accepted = report;
	uv_mutex_unlock(&t->accepted_lock);
	uv_async_send(&t->accepted_async);
}

static void event_cb(smtp_session_t session, int event, void *arg, ...)
{
	(void)session;
	struct session_state *st = arg;
	va_list ap;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_MESSAGESENT:
		report_accepted(st->t, va_arg(ap, smtp_message_t));
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		st->tls_missing = true;
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long verify = va_arg(ap, long);
		st->tls_failed = true;
		snprintf(st->tls_detail, sizeof st->tls_detail,
			 "TLS: server certificate not trusted (%s)",
			 X509_verify_cert_error_string(verify));
		break; /* *ok stays 0: libESMTP refuses the connection */
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
		st->tls_failed = true;
		snprintf(st->tls_detail, sizeof st->tls_detail,
			 "TLS: the server presented no certificate");
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		st->tls_failed = true;
		snprintf(st->tls_detail, sizeof st->tls_detail,
			 "TLS: the server certificate does not name %s",
			 st->t->conf->host);
		break;
	default:
		break;
	}
	va_end(ap);
}

static int auth_interact(auth_client_request_t request, char **result,
			 int fields, void *arg)
{
	const struct smtp_conf *conf = arg;
	for (int i = 0; i < fields; i++) {
		if (request[i].flags & AUTH_PASS)
			result[i] = conf->password;
		else if (request[i].flags & AUTH_USER)
			result[i] = conf->username;
		else
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ verdicts */

/* Server text as a printable one-line string (it lands in JSON). */
static void clean_text(char *dst, size_t len, const char *src)
{
	size_t j = 0;
	for (size_t i = 0; src && src[i] && j + 1 < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c == '\r' || c == '\n')
			c = ' ';
		dst[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

/* The enhanced status code (RFC 3463) of a reply: libESMTP parses it when
 * the server announced ENHANCEDSTATUSCODES; many servers send it anyway,
 * so it is also read from the start of the text. */
static void enhanced_code(const smtp_status_t *s, int enh[3])
{
	enh[0] = s->enh_class;
	enh[1] = s->enh_subject;
	enh[2] = s->enh_detail;
	if (enh[0] || !s->text)
		return;
	int a, b, c, used = 0;
	if (sscanf(s->text, "%1d.%3d.%3d%n", &a, &b, &c, &used) == 3 &&
	    used > 0 && (a == 2 || a == 4 || a == 5) && a == s->code / 100) {
		enh[0] = a;
		enh[1] = b;
		enh[2] = c;
	}
}

static void describe(struct smtp_item *it, const char *phase,
		     const smtp_status_t *s)
{
	char text[300];
	clean_text(text, sizeof text, s->text);
	if (s->enh_class)
		snprintf(it->detail, sizeof it->detail, "%s: %d %d.%d.%d %s",
			 phase, s->code, s->enh_class, s->enh_subject,
			 s->enh_detail, text);
	else
		snprintf(it->detail, sizeof it->detail, "%s: %d %s", phase,
			 s->code, text);
}

/* Classifies a failing reply (delivery-rules §2). */
static void judge_reply(struct smtp_item *it, const char *phase,
			const smtp_status_t *s)
{
	describe(it, phase, s);
	int c = s->code, enh[3];
	enhanced_code(s, enh);
	bool enh7 = enh[1] == 7 && enh[0] >= 4;
	if (c == 421 || (enh[0] == 4 && enh[1] == 7))
		it->pause = true;
	if (c / 100 == 4 || (enh[1] == 2 && enh[2] == 2)) {
		it->verdict = SMTP_RETRY;
		return;
	}
	if ((c == 550 || c == 551 || c == 553) && enh[0] == 5 &&
	    enh[1] == 1) {
		it->verdict = SMTP_BOUNCED;
		snprintf(it->reason, sizeof it->reason, "bounced");
		snprintf(it->source, sizeof it->source, "smtp_5.1.%d", enh[2]);
		return;
	}
	it->verdict = SMTP_FAILED;
	snprintf(it->reason, sizeof it->reason, "%s",
		 enh7 ? "rejected" : "failed");
	if (enh7)
		log_msg(LOG_ERROR, "smtp: message refused by policy; check "
			"the sending domain's reputation and authentication",
			"job", it->job_id, "reply", it->detail, NULL);
}

static void judge(struct smtp_item *it, smtp_message_t m, smtp_recipient_t r,
		  const struct session_state *st, int session_ok, int err)
{
	const smtp_status_t *mail = smtp_reverse_path_status(m);
	const smtp_status_t *rcpt = r ? smtp_recipient_status(r) : NULL;
	const smtp_status_t *data = smtp_message_transfer_status(m);
	it->verdict = SMTP_RETRY;
	if (data && data->code >= 200 && data->code < 300) {
		it->verdict = SMTP_SENT;
		describe(it, "accepted", data);
		return;
	}
	if (mail && mail->code >= 400) {
		judge_reply(it, "MAIL", mail);
		return;
	}
	if (rcpt && rcpt->code >= 400) {
		judge_reply(it, "RCPT", rcpt);
		return;
	}
	if (data && data->code >= 400) {
		judge_reply(it, "DATA", data);
		return;
	}
	/* no reply that decides: nothing or everything may have arrived */
	if (it->data_done) {
		snprintf(it->detail, sizeof it->detail,
			 "connection lost after the message was sent; outcome "
			 "unknown, sending again with the same Message-ID");
		return;
	}
	if (st->tls_missing) {
		snprintf(it->detail, sizeof it->detail,
			 "STARTTLS required but not offered by %s; nothing "
			 "was sent", st->t->hostport);
		return;
	}
	if (st->tls_failed) {
		snprintf(it->detail, sizeof it->detail, "%s", st->tls_detail);
		return;
	}
	char why[160] = "no reply";
	if (!session_ok || err)
		smtp_strerror(err, why, sizeof why);
	snprintf(it->detail, sizeof it->detail, "%s: %s", st->t->hostport,
		 why);
}

/* ------------------------------------------------------------ sessions */

static void fail_all(struct worker_item *batch, const char *why)
{
	for (struct worker_item *n = batch; n; n = n->next) {
		struct smtp_item *it = (struct smtp_item *)n;
		it->verdict = SMTP_RETRY;
		snprintf(it->detail, sizeof it->detail, "%s", why);
	}
}

static void configure_session(struct smtp_transport *t, smtp_session_t s,
			      struct session_state *st)
{
	const struct smtp_conf *c = t->conf;
	long ms = (long)c->timeout_ms;
	smtp_set_server(s, t->hostport);
	smtp_set_hostname(s, t->helo);
	static const int phases[] = { Timeout_GREETING, Timeout_ENVELOPE,
				      Timeout_DATA, Timeout_TRANSFER,
				      Timeout_DATA2 };
	for (size_t i = 0; i < sizeof phases / sizeof *phases; i++)
		smtp_set_timeout(s, phases[i] | Timeout_OVERRIDE_RFC2822_MINIMUM,
				 ms);
	smtp_set_eventcb(s, event_cb, st);
	enum starttls_option tls = c->starttls == STARTTLS_NO ? Starttls_DISABLED
				   : c->starttls == STARTTLS_REQUIRED
					   ? Starttls_REQUIRED
					   : Starttls_ENABLED;
	if (tls != Starttls_DISABLED && t->ssl)
		smtp_starttls_set_ctx(s, t->ssl);
	smtp_starttls_enable(s, tls);
}

static int claim_fd_slot(struct smtp_transport *t)
{
	int slot = -1;
	uv_mutex_lock(&t->accepted_lock);
	for (int i = 0; i < WORKER_MAX_THREADS && slot < 0; i++)
		if (t->session_fd[i] == -2) {
			t->session_fd[i] = -1;
			slot = i;
		}
	uv_mutex_unlock(&t->accepted_lock);
	return slot;
}

static void release_fd_slot(struct smtp_transport *t, int slot)
{
	if (slot < 0)
		return;
	uv_mutex_lock(&t->accepted_lock);
	t->session_fd[slot] = -2;
	uv_mutex_unlock(&t->accepted_lock);
}

static void session_batch(void *ctx, struct worker_item *batch)
{
	struct smtp_transport *t = ctx;
	struct session_state st = { .t = t };
	uv_mutex_lock(&t->accepted_lock);
	bool aborted = t->aborted;
	uv_mutex_unlock(&t->accepted_lock);
	if (aborted) {
		fail_all(batch, "not sent: the daemon stopped first");
		return;
	}
	smtp_session_t s = smtp_create_session();
	auth_context_t auth = NULL;
	if (!s) {
		fail_all(batch, "smtp: cannot create a session (out of memory)");
		return;
	}
	configure_session(t, s, &st);
	if (t->conf->username) {
		auth = auth_create_context();
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, auth_interact, (void *)t->conf);
		smtp_auth_set_context(s, auth);
	}
	size_t n = 0;
	for (struct worker_item *w = batch; w; w = w->next)
		n++;
	smtp_message_t *msgs = calloc(n, sizeof *msgs);
	smtp_recipient_t *rcpts = calloc(n, sizeof *rcpts);
	if (!msgs || !rcpts) {
		fail_all(batch, "smtp: out of memory");
		goto out;
	}
	size_t i = 0, added = 0;
	for (struct worker_item *w = batch; w; w = w->next, i++) {
		struct smtp_item *it = (struct smtp_item *)w;
		it->data_done = false;
		if (!it->data && it->draft &&
		    email_draft_build(it->draft, &it->data, &it->len,
				      it->detail, sizeof it->detail) != 0) {
			it->verdict = SMTP_FAILED;
			snprintf(it->reason, sizeof it->reason, "build_failed");
			continue; /* msgs[i] stays NULL: not sent */
		}
		added++;
		msgs[i] = smtp_add_message(s);
		smtp_set_reverse_path(msgs[i], t->reverse_path);
		rcpts[i] = smtp_add_recipient(msgs[i], it->recipient);
		smtp_set_messagecb(msgs[i], message_cb, it);
		smtp_message_set_application_data_release(msgs[i], it, NULL);
	}
	int slot = claim_fd_slot(t);
	if (slot >= 0)
		session_fd_slot = &t->session_fd[slot];
	int ok = added ? smtp_start_session(s) : 1;
	session_fd_slot = NULL;
	release_fd_slot(t, slot);
	int err = ok ? 0 : smtp_errno();
	i = 0;
	for (struct worker_item *w = batch; w; w = w->next, i++)
		if (msgs[i] && !((struct smtp_item *)w)->reported)
			judge((struct smtp_item *)w, msgs[i], rcpts[i], &st, ok,
			      err);
out:
	free(msgs);
	free(rcpts);
	smtp_destroy_session(s);
	if (auth)
		auth_destroy_context(auth);
}

static void session_done(void *ctx, struct worker_item *batch)
{
	struct smtp_transport *t = ctx;
	while (batch) {
		struct worker_item *next = batch->next;
		struct smtp_item *it = (struct smtp_item *)batch;
		if (it->reported)
			smtp_item_free(it); /* its outcome went ahead of it */
		else
			t->done(t->ctx, it);
		batch = next;
	}
}

static void on_accepted(uv_async_t *h)
{
	struct smtp_transport *t = h->data;
	uv_mutex_lock(&t->accepted_lock);
	struct smtp_item *list = t->accepted;
	t->accepted = NULL;
	uv_mutex_unlock(&t->accepted_lock);
	/* reverse the LIFO list: report in the order the 250s arrived */
	struct smtp_item *ordered = NULL;
	while (list) {
		struct smtp_item *next = (struct smtp_item *)list->node.next;
		list->node.next = (struct worker_item *)ordered;
		ordered = list;
		list = next;
	}
	while (ordered) {
		struct smtp_item *next = (struct smtp_item *)ordered->node.next;
		t->done(t->ctx, ordered);
		ordered = next;
	}
}

/* ------------------------------------------------------------ lifecycle */

static SSL_CTX *tls_context(const struct smtp_conf *c, char *err,
			    size_t errlen)
{
	SSL_CTX *ssl = SSL_CTX_new(TLS_client_method());
	if (!ssl) {
		snprintf(err, errlen, "email.smtp: cannot create a TLS context");
		return NULL;
	}
	/* TLS 1.2 only: libESMTP 1.1 reads before it flushes when the socket
	 * is readable, and the session tickets a TLS 1.3 server sends after
	 * the handshake make it wait for a reply to an EHLO it has not sent
	 * yet, until the timeout (seen against OpenSSL-based servers in 1 of
	 * ~15 sessions). NEEDSWORK: lift once libESMTP flushes first. */
	SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ssl, TLS1_2_VERSION);
	SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	int loaded = c->ca_file
			     ? SSL_CTX_load_verify_locations(ssl, c->ca_file, NULL)
			     : SSL_CTX_set_default_verify_paths(ssl);
	if (loaded != 1) {
		snprintf(err, errlen, "email.smtp.ca_file: cannot load %s",
			 c->ca_file ? c->ca_file : "the system CA store");
		SSL_CTX_free(ssl);
		return NULL;
	}
	return ssl;
}

/* "Name <addr>" -> "addr" */
static void address_of(const char *from, char *out, size_t len)
{
	const char *lt = strrchr(from, '<');
	const char *gt = lt ? strchr(lt, '>') : NULL;
	if (lt && gt)
		snprintf(out, len, "%.*s", (int)(gt - lt - 1), lt + 1);
	else
		snprintf(out, len, "%s", from);
}

static void on_transport_closed(uv_handle_t *h)
{
	struct smtp_transport *t = h->data;
	uv_mutex_destroy(&t->accepted_lock);
	free(t);
}

int smtp_capacity(const struct config *cfg)
{
	/* two batches per session: one being sent, one ready, so a session
	 * that finishes starts again with a full batch */
	return 2 * cfg->smtp.sessions * cfg->smtp.batch;
}

int smtp_open(uv_loop_t *loop, const struct config *cfg, smtp_done_fn done,
	      void *ctx, struct smtp_transport **out, char *err,
	      size_t errlen)
{
	struct smtp_transport *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->cfg = cfg;
	t->conf = &cfg->smtp;
	t->done = done;
	t->ctx = ctx;
	snprintf(t->hostport, sizeof t->hostport,
		 strchr(t->conf->host, ':') ? "[%s]:%d" : "%s:%d",
		 t->conf->host, t->conf->port);
	if (t->conf->helo)
		snprintf(t->helo, sizeof t->helo, "%s", t->conf->helo);
	else
		email_from_domain(cfg->email_from, t->helo, sizeof t->helo);
	if (t->conf->envelope_from)
		snprintf(t->reverse_path, sizeof t->reverse_path, "%s",
			 t->conf->envelope_from);
	else
		address_of(cfg->email_from, t->reverse_path,
			   sizeof t->reverse_path);
	uv_mutex_init(&t->accepted_lock);
	for (int i = 0; i < WORKER_MAX_THREADS; i++)
		t->session_fd[i] = -2; /* -2 free, -1 not connected yet */
	uv_async_init(loop, &t->accepted_async, on_accepted);
	t->accepted_async.data = t;
	auth_client_init();
	if (t->conf->starttls != STARTTLS_NO &&
	    !(t->ssl = tls_context(t->conf, err, errlen)))
		goto fail;
	if (worker_start(loop, "smtp-session", t->conf->sessions,
			 (size_t)t->conf->batch, session_batch, session_done, t,
			 &t->worker) != 0) {
		snprintf(err, errlen, "cannot start the SMTP session threads");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	SSL_CTX_free(t->ssl);
	auth_client_exit();
	uv_close((uv_handle_t *)&t->accepted_async, on_transport_closed);
	return -1;
}

void smtp_submit(struct smtp_transport *t, struct smtp_item *item)
{
	worker_submit(t->worker, &item->node);
}

void smtp_hold(struct smtp_transport *t)
{
	worker_hold(t->worker);
}

void smtp_release(struct smtp_transport *t)
{
	worker_release(t->worker);
}

void smtp_item_free(struct smtp_item *item)
{
	if (!item)
		return;
	free(item->data);
	free(item->recipient);
	email_draft_free(item->draft);
	free(item);
}

void smtp_abort(struct smtp_transport *t)
{
	uv_mutex_lock(&t->accepted_lock);
	t->aborted = true;
	for (int i = 0; i < WORKER_MAX_THREADS; i++) {
		int fd = __atomic_load_n(&t->session_fd[i], __ATOMIC_ACQUIRE);
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
	}
	uv_mutex_unlock(&t->accepted_lock);
}

void smtp_close(struct smtp_transport *t)
{
	if (!t)
		return;
	worker_stop(t->worker);
	on_accepted(&t->accepted_async); /* what the last sessions reported */
	SSL_CTX_free(t->ssl);
	auth_client_exit();
	uv_close((uv_handle_t *)&t->accepted_async, on_transport_closed);
}
