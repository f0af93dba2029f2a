/* smtpconn.c: one SMTP client connection (see smtpconn.h).
 *
 * Owns the socket, the optional TLS layer, the server's EHLO extensions
 * and the reply parser of one connection used by one session thread.
 *
 * Hand-written (it replaced libESMTP, the stack's first choice) for
 * reasons measured with bench/smtp_bench.sh and its Postfix relay phase:
 * - libESMTP uses BDAT whenever the server offers CHUNKING and has no
 *   switch to turn it off; against Postfix (which offers it) every message
 *   became three BDAT exchanges: 321 msgs/s through a Postfix relay against
 *   619 msgs/s with CHUNKING hidden from it, same run, 4 sessions;
 * - it always waits for the MAIL reply before sending RCPT, even under
 *   PIPELINING: one extra round trip per message;
 * - its 2 KiB output buffer made ~4.5 write()s per message: 73 us of CPU
 *   per message on the session threads against 46 us for Postfix's
 *   smtp-source;
 * - it had no hook for socket options (TCP_NODELAY needed connect() to be
 *   interposed) and read before flushing after STARTTLS, which stalled
 *   TLS 1.3 sessions (TLS was pinned to 1.2 because of it).
 * Here, when the server offers PIPELINING, MAIL, RCPT and DATA leave in
 * one write, and the dot-stuffed message, its "." and the next message's
 * MAIL, RCPT and DATA in the next (RFC 2920 §3.1 lets message content
 * open a command group): one round trip per message once a session is
 * under way. DATA is always used (no BDAT).
 *
 * I/O: a non-blocking socket; every wait is a poll() bounded by the
 * configured timeout, so a silent server costs at most that long, and a
 * shutdown() of the published socket from another thread ends any wait
 * at once (publish_fd). TLS via OpenSSL on the same socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "smtpconn.h"

#define SMTPCONN_IN_MAX 8192      /* longest reply (all its lines) */

struct smtpconn {
	const struct smtpconn_params *p;
	int fd;
	SSL *ssl;
	unsigned ext;
	bool usable;              /* false once the dialogue cannot go on */
	char *pipelined_rcpt;     /* the next envelope went out after the
	                             last ".": its recipient, else NULL */
	int64_t deadline;         /* of the current step, CLOCK_MONOTONIC ms */
	char io_detail[200];      /* the first I/O failure */
	char in[SMTPCONN_IN_MAX];
	size_t in_len, in_off;
	char *out;
	size_t out_len, out_cap;
};

/* ------------------------------------------------------------ plumbing */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void step_begins(struct smtpconn *c)
{
	c->deadline = mono_ms() + c->p->timeout_ms;
}

/* Publishes fd (or -1: none) in the caller's slot; see smtpconn.h. */
static void publish_fd(struct smtpconn *c, int fd)
{
	const struct smtpconn_params *p = c->p;
	if (!p->fd_slot)
		return;
	if (p->fd_lock)
		uv_mutex_lock(p->fd_lock);
	*p->fd_slot = fd;
	if (fd >= 0 && p->stopped && *p->stopped)
		shutdown(fd, SHUT_RDWR);
	if (p->fd_lock)
		uv_mutex_unlock(p->fd_lock);
}

/* The connection cannot go on; the first reason is kept for details. */
static int io_fail(struct smtpconn *c, const char *what)
{
	if (c->usable)
		snprintf(c->io_detail, sizeof c->io_detail, "%s: %s",
			 c->p->hostport, what);
	c->usable = false;
	return -1;
}

static int errno_fail(struct smtpconn *c, const char *call, int e)
{
	char msg[96];
	if (strerror_r(e, msg, sizeof msg) != 0)
		snprintf(msg, sizeof msg, "error %d", e);
	char what[160];
	snprintf(what, sizeof what, "%s: %s", call, msg);
	return io_fail(c, what);
}

/* Waits until fd is ready for `events` or the step's deadline passes. */
static int wait_fd(struct smtpconn *c, short events)
{
	for (;;) {
		int64_t left = c->deadline - mono_ms();
		if (left <= 0)
			return io_fail(c, "no answer within the timeout");
		struct pollfd pfd = { .fd = c->fd, .events = events };
		int rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 0; /* errors and hang-ups show in the I/O call */
		if (rc < 0 && errno != EINTR)
			return errno_fail(c, "poll", errno);
	}
}

/* TLS calls that want the socket in some direction first. */
static int tls_wait(struct smtpconn *c, int rc)
{
	int e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return wait_fd(c, POLLIN);
	if (e == SSL_ERROR_WANT_WRITE)
		return wait_fd(c, POLLOUT);
	if (e == SSL_ERROR_ZERO_RETURN)
		return io_fail(c, "connection closed by the server");
	if (e == SSL_ERROR_SYSCALL && errno)
		return errno_fail(c, "TLS", errno);
	char msg[120];
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, msg, sizeof msg);
	else
		snprintf(msg, sizeof msg, "connection closed by the server");
	ERR_clear_error();
	char what[140];
	snprintf(what, sizeof what, "TLS: %s", msg);
	return io_fail(c, what);
}

static int write_all(struct smtpconn *c, const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len && c->usable) {
		if (c->ssl) {
			size_t n = 0;
			int rc = SSL_write_ex(c->ssl, buf + off, len - off, &n);
			if (rc > 0)
				off += n;
			else if (tls_wait(c, rc) != 0)
				return -1;
			continue;
		}
		ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			(void)wait_fd(c, POLLOUT); /* a failure ends the loop */
		else if (n < 0 && errno != EINTR)
			return errno_fail(c, "send", errno);
	}
	return c->usable ? 0 : -1;
}

static int flush_out(struct smtpconn *c)
{
	int rc = write_all(c, c->out, c->out_len);
	c->out_len = 0;
	return rc;
}

static int out_reserve(struct smtpconn *c, size_t more)
{
	if (c->out_len + more <= c->out_cap)
		return 0;
	size_t cap = c->out_cap ? c->out_cap : 8192;
	while (cap < c->out_len + more)
		cap *= 2;
	char *grown = realloc(c->out, cap);
	if (!grown)
		return io_fail(c, "out of memory");
	c->out = grown;
	c->out_cap = cap;
	return 0;
}

static int out_add(struct smtpconn *c, const char *s, size_t len)
{
	if (out_reserve(c, len) != 0)
		return -1;
	memcpy(c->out + c->out_len, s, len);
	c->out_len += len;
	return 0;
}

static int out_cmd(struct smtpconn *c, const char *verb, const char *arg,
		   const char *tail)
{
	size_t v = strlen(verb), a = arg ? strlen(arg) : 0;
	size_t t = tail ? strlen(tail) : 0;
	if (out_reserve(c, v + a + t + 2) != 0)
		return -1;
	out_add(c, verb, v);
	if (arg)
		out_add(c, arg, a);
	if (tail)
		out_add(c, tail, t);
	return out_add(c, "\r\n", 2);
}

/* More bytes from the server into c->in (after what is unread). */
static int fill(struct smtpconn *c)
{
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == sizeof c->in)
		return io_fail(c, "reply line too long");
	for (;;) {
		if (!c->usable)
			return -1;
		if (c->ssl) {
			size_t n = 0;
			int rc = SSL_read_ex(c->ssl, c->in + c->in_len,
					     sizeof c->in - c->in_len, &n);
			if (rc > 0) {
				c->in_len += n;
				return 0;
			}
			if (tls_wait(c, rc) != 0)
				return -1;
			continue;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len,
				 sizeof c->in - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			return 0;
		}
		if (n == 0)
			return io_fail(c, "connection closed by the server");
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			(void)wait_fd(c, POLLIN); /* checked at the loop top */
		else if (errno != EINTR)
			return errno_fail(c, "recv", errno);
	}
}

/* Reads one (possibly multi-line) reply; with `ehlo`, the extensions it
 * lists. Returns the code's first digit, or -1 when no complete reply
 * arrived (r->code is then 0). */
static int read_reply(struct smtpconn *c, struct smtp_reply *r, bool ehlo)
{
	for (;;) {
		long n = smtp_reply_parse(c->in + c->in_off,
					  c->in_len - c->in_off, r,
					  ehlo ? &c->ext : NULL);
		if (n > 0) {
			c->in_off += (size_t)n;
			if (r->code == 421)
				io_fail(c, "the server closed the session "
					"(421)");
			return r->code / 100;
		}
		if (n < 0)
			io_fail(c, "not an SMTP reply");
		if (n < 0 || fill(c) != 0) {
			memset(r, 0, sizeof *r);
			return -1;
		}
	}
}

/* verb, arg and tail (either may be NULL) as one command line; its reply
 * as read_reply gives it. */
static int command(struct smtpconn *c, const char *verb, const char *arg,
		   const char *tail, struct smtp_reply *r, bool ehlo)
{
	step_begins(c);
	if (out_cmd(c, verb, arg, tail) != 0 || flush_out(c) != 0)
		return -1;
	return read_reply(c, r, ehlo);
}

/* ------------------------------------------------------------ opening */

static int open_socket(struct smtpconn *c)
{
	char port[8];
	snprintf(port, sizeof port, "%d", c->p->port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(c->p->host, port, &hints, &res);
	if (rc != 0) {
		char what[160];
		snprintf(what, sizeof what, "cannot resolve: %s",
			 gai_strerror(rc));
		return io_fail(c, what);
	}
	int last = ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family,
				a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->fd = fd;
		publish_fd(c, fd);
		step_begins(c);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(c, POLLOUT) == 0)) {
			int e = 0;
			socklen_t elen = sizeof e;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen);
			if (e == 0) {
				freeaddrinfo(res);
				return 0;
			}
			last = e;
		} else if (c->usable) {
			last = errno;
		}
		if (!c->usable)
			break; /* timed out: the timeout covers all addresses */
		publish_fd(c, -1);
		close(fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	return c->usable ? errno_fail(c, "connect", last) : -1;
}

static void tls_failure(struct smtpconn *c, struct smtpconn_error *err)
{
	err->kind = SMTPCONN_TLS_FAILED;
	long v = SSL_get_verify_result(c->ssl);
	if (v == X509_V_ERR_HOSTNAME_MISMATCH ||
	    v == X509_V_ERR_IP_ADDRESS_MISMATCH)
		snprintf(err->detail, sizeof err->detail,
			 "TLS: the server certificate does not name %s",
			 c->p->host);
	else if (v != X509_V_OK)
		snprintf(err->detail, sizeof err->detail,
			 "TLS: server certificate not trusted (%s)",
			 X509_verify_cert_error_string(v));
	else if (SSL_get0_peer_certificate(c->ssl) == NULL &&
		 SSL_is_init_finished(c->ssl))
		snprintf(err->detail, sizeof err->detail,
			 "TLS: the server presented no certificate");
	else
		snprintf(err->detail, sizeof err->detail,
			 "TLS: handshake failed: %s", c->io_detail);
}

static int start_tls(struct smtpconn *c, struct smtpconn_error *err)
{
	c->ssl = SSL_new(c->p->ssl);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		goto fail;
	struct in6_addr any;
	bool literal = inet_pton(AF_INET, c->p->host, &any) == 1 ||
		       inet_pton(AF_INET6, c->p->host, &any) == 1;
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
	if (literal) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, c->p->host) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(c->ssl, c->p->host) != 1 ||
		   SSL_set1_host(c->ssl, c->p->host) != 1) {
		goto fail;
	}
	step_begins(c);
	for (;;) {
		int rc = SSL_connect(c->ssl);
		if (rc == 1)
			break;
		if (tls_wait(c, rc) != 0)
			goto fail;
	}
	if (SSL_get0_peer_certificate(c->ssl) == NULL) {
		io_fail(c, "no certificate");
		goto fail;
	}
	return 0;
fail:
	if (c->usable)
		io_fail(c, "TLS: cannot set up the session");
	if (c->ssl)
		tls_failure(c, err);
	else
		snprintf(err->detail, sizeof err->detail, "TLS: out of memory");
	err->kind = SMTPCONN_TLS_FAILED;
	return -1;
}

static int b64(const unsigned char *in, size_t len, char *out, size_t cap)
{
	if (4 * ((len + 2) / 3) + 1 > cap)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return 0;
}

static int auth(struct smtpconn *c, struct smtpconn_error *err)
{
	const char *user = c->p->username, *pass = c->p->password;
	size_t ul = strlen(user), pl = pass ? strlen(pass) : 0;
	if (ul > 255 || pl > 255) {
		snprintf(err->detail, sizeof err->detail,
			 "AUTH: username or password too long");
		err->kind = SMTPCONN_REPLY;
		return -1;
	}
	unsigned char plain[2 + 2 * 256];
	char enc[sizeof plain * 2];
	int rc = -1;
	struct smtp_reply *r = &err->reply;
	if (c->ext & SMTP_EXT_AUTH_PLAIN) {
		plain[0] = '\0';
		memcpy(plain + 1, user, ul);
		plain[1 + ul] = '\0';
		memcpy(plain + 2 + ul, pass, pl);
		b64(plain, 2 + ul + pl, enc, sizeof enc);
		rc = command(c, "AUTH PLAIN ", enc, NULL, r, false);
	} else if (c->ext & SMTP_EXT_AUTH_LOGIN) {
		rc = command(c, "AUTH LOGIN", NULL, NULL, r, false);
		if (rc == 3) {
			b64((const unsigned char *)user, ul, enc, sizeof enc);
			rc = command(c, enc, NULL, NULL, r, false);
		}
		if (rc == 3) {
			b64((const unsigned char *)pass, pl, enc, sizeof enc);
			rc = command(c, enc, NULL, NULL, r, false);
		}
	} else {
		snprintf(err->detail, sizeof err->detail,
			 "AUTH: %s offers neither PLAIN nor LOGIN",
			 c->p->hostport);
		err->kind = SMTPCONN_REPLY;
		return -1;
	}
	OPENSSL_cleanse(plain, sizeof plain);
	OPENSSL_cleanse(enc, sizeof enc);
	if (rc == 2)
		return 0;
	err->kind = rc < 0 ? SMTPCONN_IO : SMTPCONN_REPLY;
	return -1;
}

static int ehlo(struct smtpconn *c, struct smtp_reply *r)
{
	c->ext = 0;
	int rc = command(c, "EHLO ", c->p->helo, NULL, r, true);
	if (rc == 5 && c->usable)
		rc = command(c, "HELO ", c->p->helo, NULL, r, false);
	return rc;
}

static void reply_failure(struct smtpconn_error *err, const char *phase,
			  const struct smtp_reply *r)
{
	err->kind = SMTPCONN_REPLY;
	smtp_reply_describe(r, phase, err->detail, sizeof err->detail);
}

static int handshake(struct smtpconn *c, struct smtpconn_error *err)
{
	struct smtp_reply *r = &err->reply;
	step_begins(c);
	int rc = read_reply(c, r, false);
	if (rc != 2)
		goto refused;
	if ((rc = ehlo(c, r)) != 2)
		goto refused;
	bool offered = (c->ext & SMTP_EXT_STARTTLS) != 0;
	if (c->p->starttls == STARTTLS_REQUIRED && !offered) {
		err->kind = SMTPCONN_TLS_MISSING;
		snprintf(err->detail, sizeof err->detail,
			 "STARTTLS required but not offered by %s; nothing "
			 "was sent", c->p->hostport);
		return -1;
	}
	if (c->p->starttls != STARTTLS_NO && offered && c->p->ssl) {
		if ((rc = command(c, "STARTTLS", NULL, NULL, r, false)) != 2)
			goto refused;
		if (c->in_off != c->in_len) {
			io_fail(c, "data after the STARTTLS reply");
			goto io;
		}
		if (start_tls(c, err) != 0)
			return -1;
		if ((rc = ehlo(c, r)) != 2)
			goto refused;
	}
	if (c->p->username && auth(c, err) != 0) {
		if (err->kind == SMTPCONN_REPLY && err->reply.code)
			reply_failure(err, "AUTH", &err->reply);
		else if (err->kind == SMTPCONN_IO)
			goto io;
		return -1;
	}
	return 0;
refused:
	if (rc < 0)
		goto io;
	reply_failure(err, "connection", r);
	return -1;
io:
	err->kind = SMTPCONN_IO;
	snprintf(err->detail, sizeof err->detail, "%s", c->io_detail);
	return -1;
}

int smtpconn_open(const struct smtpconn_params *p, struct smtpconn **out,
		  struct smtpconn_error *err)
{
	memset(err, 0, sizeof *err);
	struct smtpconn *c = calloc(1, sizeof *c);
	if (!c) {
		err->kind = SMTPCONN_IO;
		snprintf(err->detail, sizeof err->detail, "out of memory");
		return -1;
	}
	c->p = p;
	c->fd = -1;
	c->usable = true;
	if (open_socket(c) != 0) {
		err->kind = SMTPCONN_IO;
		snprintf(err->detail, sizeof err->detail, "%s", c->io_detail);
		goto fail;
	}
	if (handshake(c, err) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	smtpconn_close(c);
	return -1;
}

/* ------------------------------------------------------------ messages */

/* The message with leading dots doubled, ending in CRLF "." CRLF. */
static int add_stuffed(struct smtpconn *c, const char *data, size_t len)
{
	/* every doubled dot starts a line of at least "." and "\n": at most
	 * len / 2 + 1 of them; room for the ending CRLF "." CRLF too */
	if (out_reserve(c, len + len / 2 + 6) != 0)
		return -1;
	const char *p = data, *end = data + len;
	bool line_start = true;
	while (p < end) {
		if (line_start && *p == '.')
			c->out[c->out_len++] = '.';
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl + 1 - p) : (size_t)(end - p);
		memcpy(c->out + c->out_len, p, n);
		c->out_len += n;
		p += n;
		line_start = nl != NULL;
	}
	if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
		out_add(c, "\r\n", 2);
	return out_add(c, ".\r\n", 3);
}

/* Back to a clean state after a refused transaction. */
static void reset(struct smtpconn *c)
{
	struct smtp_reply r;
	if (c->usable && command(c, "RSET", NULL, NULL, &r, false) != 2)
		c->usable = false;
}

static void tx_io(struct smtpconn *c, struct smtpconn_tx *tx)
{
	snprintf(tx->io_detail, sizeof tx->io_detail, "%s", c->io_detail);
}

static int add_envelope(struct smtpconn *c, const char *rp, const char *rcpt)
{
	if (out_cmd(c, "MAIL FROM:<", rp, ">") != 0 ||
	    out_cmd(c, "RCPT TO:<", rcpt, ">") != 0)
		return -1;
	return out_cmd(c, "DATA", NULL, NULL);
}

/* MAIL, RCPT and DATA with their replies; under PIPELINING they may have
 * left already, behind the previous message's "." */
static int envelope(struct smtpconn *c, const char *rp, const char *rcpt,
		    struct smtpconn_tx *tx)
{
	if (c->ext & SMTP_EXT_PIPELINING) {
		step_begins(c);
		if (c->pipelined_rcpt) {
			bool same = strcmp(c->pipelined_rcpt, rcpt) == 0;
			free(c->pipelined_rcpt);
			c->pipelined_rcpt = NULL;
			if (!same)
				return io_fail(c, "pipelined envelope is not "
					       "the next message's");
		} else if (add_envelope(c, rp, rcpt) != 0 ||
			   flush_out(c) != 0) {
			return -1;
		}
		if (read_reply(c, &tx->mail, false) < 0 ||
		    read_reply(c, &tx->rcpt, false) < 0 ||
		    read_reply(c, &tx->data, false) < 0)
			return -1;
		return 0;
	}
	int rc = command(c, "MAIL FROM:<", rp, ">", &tx->mail, false);
	if (rc != 2)
		return rc < 0 ? -1 : 0;
	rc = command(c, "RCPT TO:<", rcpt, ">", &tx->rcpt, false);
	if (rc != 2)
		return rc < 0 ? -1 : 0;
	return command(c, "DATA", NULL, NULL, &tx->data, false) < 0 ? -1 : 0;
}

int smtpconn_send(struct smtpconn *c, const char *reverse_path,
		  const char *recipient, const char *data, size_t len,
		  const char *next_recipient, struct smtpconn_tx *tx)
{
	memset(tx, 0, sizeof *tx);
	if (!c->usable) {
		tx_io(c, tx);
		return -1;
	}
	if (envelope(c, reverse_path, recipient, tx) != 0)
		goto broken;
	bool accepted = tx->mail.code / 100 == 2 && tx->rcpt.code / 100 == 2;
	if (tx->data.code == 354 && !accepted) {
		/* DATA accepted without a valid envelope: end it empty */
		step_begins(c);
		struct smtp_reply ignored;
		if (out_add(c, ".\r\n", 3) != 0 || flush_out(c) != 0 ||
		    read_reply(c, &ignored, false) < 0)
			goto broken;
	}
	if (tx->data.code != 354 || !accepted) {
		reset(c);
		return c->usable ? 0 : -1;
	}
	step_begins(c);
	if (add_stuffed(c, data, len) != 0)
		goto broken;
	/* RFC 2920 §3.1: message content may open a command group, so the
	 * next envelope rides behind the "." (one round trip per message) */
	if (next_recipient && (c->ext & SMTP_EXT_PIPELINING)) {
		c->pipelined_rcpt = strdup(next_recipient);
		if (!c->pipelined_rcpt ||
		    add_envelope(c, reverse_path, next_recipient) != 0)
			goto broken;
	}
	if (flush_out(c) != 0)
		goto broken;
	tx->data_done = true;
	if (read_reply(c, &tx->final, false) < 0)
		goto broken;
	return c->usable ? 0 : -1;
broken:
	c->out_len = 0;
	tx_io(c, tx);
	return -1;
}

void smtpconn_close(struct smtpconn *c)
{
	if (!c)
		return;
	/* with an envelope pipelined and never followed by its message, the
	 * server awaits message content: closing discards that transaction */
	if (c->usable && !c->pipelined_rcpt) {
		struct smtp_reply r;
		command(c, "QUIT", NULL, NULL, &r, false);
	}
	free(c->pipelined_rcpt);
	if (c->ssl) {
		if (c->usable)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0) {
		publish_fd(c, -1);
		close(c->fd);
	}
	free(c->out);
	OPENSSL_cleanse(c->in, sizeof c->in);
	free(c);
}
