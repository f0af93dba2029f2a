/* smtpconn.h: one SMTP client connection (RFC 5321), driven by blocking
 * calls with per-step timeouts from an SMTP session thread. See
 * smtpconn.c. */
#ifndef ROUSE_SMTPCONN_H
#define ROUSE_SMTPCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "config.h"
#include "smtpreply.h"

struct smtpconn_params {
	const char *host;    /* name or IP literal */
	int port;
	const char *helo;
	const char *hostport; /* "host:port" for details */
	int timeout_ms;      /* connect, each command and the data */
	enum smtp_starttls starttls;
	SSL_CTX *ssl;        /* NULL when starttls is STARTTLS_NO */
	const char *username; /* NULL: no AUTH */
	const char *password;
	/* Where the socket is published so that another thread may shut it
	 * down; may be NULL. The slot is written under fd_lock, and cleared
	 * under it before the socket is closed: a thread reading the slot
	 * under the same lock never shuts down a descriptor that was closed
	 * and reused meanwhile. A socket published while *stopped is true is
	 * shut down at once. */
	int *fd_slot;
	uv_mutex_t *fd_lock;
	const bool *stopped; /* read under fd_lock */
};

/* Why opening failed: no MAIL was sent in any case. */
enum smtpconn_failure {
	SMTPCONN_IO,          /* connect, timeout or connection lost */
	SMTPCONN_REPLY,       /* greeting, EHLO, STARTTLS or AUTH refused */
	SMTPCONN_TLS_MISSING, /* starttls required, not offered */
	SMTPCONN_TLS_FAILED,  /* handshake or certificate */
};

struct smtpconn_error {
	enum smtpconn_failure kind;
	struct smtp_reply reply; /* for SMTPCONN_REPLY */
	char detail[400];
};

/* What one transaction got. A reply with code 0 was never received. */
struct smtpconn_tx {
	struct smtp_reply mail, rcpt, data, final;
	bool data_done;       /* every byte and the final "." were written */
	char io_detail[200];  /* why the connection failed, if it did */
};

struct smtpconn;

/* Connects, reads the greeting, says EHLO (HELO as a fallback), runs
 * STARTTLS as configured and AUTH when a username is set. */
int smtpconn_open(const struct smtpconn_params *p, struct smtpconn **out,
		  struct smtpconn_error *err);

/* One message to one recipient: MAIL, RCPT and DATA (one write when the
 * server offers PIPELINING), then the dot-stuffed data and ".". With
 * next_recipient (the recipient of the next call's message, same reverse
 * path) and PIPELINING, the next envelope is written right behind the
 * ".", so each message costs one round trip. After a refusal the
 * transaction is reset (RSET). Returns 0 while the connection is usable
 * for another message, -1 once it is not. */
int smtpconn_send(struct smtpconn *c, const char *reverse_path,
		  const char *recipient, const char *data, size_t len,
		  const char *next_recipient, struct smtpconn_tx *tx);

/* QUIT (when the connection is usable) and close; NULL is a no-op. */
void smtpconn_close(struct smtpconn *c);

#endif
