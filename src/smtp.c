/* smtp.c: the SMTP email transport (see smtp.h).
 *
 * DESIGN
 * - One worker (worker.h) with email.smtp.sessions threads sharing a
 *   queue; a thread takes up to email.smtp.batch messages and runs one
 *   SMTP session for them (smtpconn.h): one connection, MAIL/RCPT/DATA
 *   per message (connection reuse is most of SMTP throughput), QUIT.
 * - The message bytes are the GMime-built message (email.h) handed over
 *   unchanged; smtpconn does the dot-stuffing.
 * - TLS: one OpenSSL client context for all sessions (TLS 1.2 or later),
 *   verifying the peer with the system store or email.smtp.ca_file and
 *   the certificate's name against email.smtp.host.
 * - Verdicts per message follow delivery-rules §2: the reverse-path,
 *   recipient and message statuses are read in that order, the first
 *   failure decides. A message whose data was completely handed over but
 *   got no reply (connection lost or timed out after the final dot) is
 *   ambiguous: retried, with the same Message-ID.
 * - The password only goes into the AUTH exchange; it is never logged or
 *   written anywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "email.h"
#include "log.h"
#include "smtp.h"
#include "smtpconn.h"

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

/* ------------------------------------------------------------ verdicts */

/* Session thread: a message got its 2xx after the data. Its outcome goes
 * to the loop now, as a copy that owns the submitter's `ud`; the item
 * itself stays in the session's batch and is freed silently when the
 * batch comes back. */
static void report_accepted(struct smtp_transport *t, struct smtp_item *it)
{
	struct smtp_item *report = calloc(1, sizeof *report);
	if (!report)
		return; /* reported with the batch instead */
	memcpy(report->job_id, it->job_id, sizeof report->job_id);
	report->verdict = SMTP_SENT;
	memcpy(report->detail, it->detail, sizeof report->detail);
	report->ud = it->ud;
	it->reported = true;
	uv_mutex_lock(&t->accepted_lock);
	report->node.next = (struct worker_item *)t->accepted;
	t->accepted = report;
	uv_mutex_unlock(&t->accepted_lock);
	uv_async_send(&t->accepted_async);
}

static void describe(struct smtp_item *it, const char *phase,
		     const struct smtp_reply *r)
{
	smtp_reply_describe(r, phase, it->detail, sizeof it->detail);
}

/* Classifies a failing reply (delivery-rules §2). */
static void judge_reply(struct smtp_item *it, const char *phase,
			const struct smtp_reply *r)
{
	describe(it, phase, r);
	int c = r->code;
	const int *enh = r->enh;
	bool enh7 = enh[1] == 7 && enh[0] >= 4;
	if (smtp_reply_backs_off(r))
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

/* One transaction's replies, read in order: the first failure decides. */
static void judge(struct smtp_transport *t, struct smtp_item *it,
		  const struct smtpconn_tx *tx)
{
	it->verdict = SMTP_RETRY;
	if (tx->final.code >= 200 && tx->final.code < 300) {
		it->verdict = SMTP_SENT;
		describe(it, "accepted", &tx->final);
		return;
	}
	const struct smtp_reply *steps[] = { &tx->mail, &tx->rcpt, &tx->data,
					     &tx->final };
	static const char *const names[] = { "MAIL", "RCPT", "DATA", "DATA" };
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
		if (steps[i]->code >= 400) {
			judge_reply(it, names[i], steps[i]);
			return;
		}
	/* no reply that decides: nothing or everything may have arrived */
	if (tx->data_done) {
		snprintf(it->detail, sizeof it->detail,
			 "connection lost after the message was sent; outcome "
			 "unknown, sending again with the same Message-ID");
		return;
	}
	if (tx->io_detail[0])
		snprintf(it->detail, sizeof it->detail, "%s; nothing was sent",
			 tx->io_detail);
	else
		snprintf(it->detail, sizeof it->detail,
			 "%s: the session ended before this message; nothing "
			 "was sent", t->hostport);
}

/* The connection could not be opened: no MAIL went out for anyone. */
static void judge_unopened(struct smtp_item *it,
			   const struct smtpconn_error *e)
{
	it->verdict = SMTP_RETRY;
	snprintf(it->detail, sizeof it->detail, "%s", e->detail);
	if (e->kind == SMTPCONN_REPLY && smtp_reply_backs_off(&e->reply))
		it->pause = true;
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

/* Builds the messages a batch still lacks; a message that cannot be built
 * fails on its own (it is never sent). Returns how many can be sent. */
static size_t build_batch(struct worker_item *batch)
{
	size_t ready = 0;
	for (struct worker_item *w = batch; w; w = w->next) {
		struct smtp_item *it = (struct smtp_item *)w;
		it->data_done = false;
		it->verdict = SMTP_RETRY;
		if (!it->data && it->draft &&
		    email_draft_build(it->draft, &it->data, &it->len,
				      it->detail, sizeof it->detail) != 0) {
			it->verdict = SMTP_FAILED;
			snprintf(it->reason, sizeof it->reason, "build_failed");
			continue;
		}
		ready++;
	}
	return ready;
}

static bool sendable(const struct smtp_item *it)
{
	return it->data && it->verdict != SMTP_FAILED;
}

static void run_session(struct smtp_transport *t, struct worker_item *batch,
			int *fd_slot)
{
	const struct smtp_conf *conf = t->conf;
	struct smtpconn_params p = {
		.host = conf->host, .port = conf->port, .helo = t->helo,
		.hostport = t->hostport, .timeout_ms = (int)conf->timeout_ms,
		.starttls = conf->starttls, .ssl = t->ssl,
		.username = conf->username, .password = conf->password,
		.fd_slot = fd_slot, .fd_lock = &t->accepted_lock,
		.stopped = &t->aborted,
	};
	struct smtpconn *c = NULL;
	struct smtpconn_error err;
	if (smtpconn_open(&p, &c, &err) != 0) {
		for (struct worker_item *w = batch; w; w = w->next)
			if (sendable((struct smtp_item *)w))
				judge_unopened((struct smtp_item *)w, &err);
		return;
	}
	for (struct worker_item *w = batch; w; w = w->next) {
		struct smtp_item *it = (struct smtp_item *)w;
		if (!sendable(it))
			continue;
		struct worker_item *n = w->next;
		while (n && !sendable((struct smtp_item *)n))
			n = n->next;
		struct smtpconn_tx tx;
		smtpconn_send(c, t->reverse_path, it->recipient, it->data,
			      it->len,
			      n ? ((struct smtp_item *)n)->recipient : NULL, &tx);
		it->data_done = tx.data_done;
		judge(t, it, &tx);
		if (it->verdict == SMTP_SENT)
			report_accepted(t, it);
	}
	smtpconn_close(c);
}

static void session_batch(void *ctx, struct worker_item *batch)
{
	struct smtp_transport *t = ctx;
	uv_mutex_lock(&t->accepted_lock);
	bool aborted = t->aborted;
	uv_mutex_unlock(&t->accepted_lock);
	if (aborted) {
		fail_all(batch, "not sent: the daemon stopped first");
		return;
	}
	if (build_batch(batch) == 0)
		return;
	int slot = claim_fd_slot(t);
	run_session(t, batch, slot >= 0 ? &t->session_fd[slot] : NULL);
	release_fd_slot(t, slot);
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
	SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
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
		int fd = t->session_fd[i];
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
	uv_close((uv_handle_t *)&t->accepted_async, on_transport_closed);
}
