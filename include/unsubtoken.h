/* unsubtoken.h: signed unsubscribe tokens (delivery-rules.md §5) (pure).
 *
 * A token names who is unsubscribing from what: a channel (or every
 * channel), a user and/or an address, and the job whose message carried
 * the link. It is the base64url text (no padding) of
 *
 *   version (1) | key id | channel | user length | user
 *   | address length | address | job id (16 bytes) | MAC (16 bytes)
 *
 * where channel is the enum channel value (0xff for CH_ALL), each length
 * is one byte (0..255), the job id is the binary UUID (all zero when the
 * subject has none) and MAC is HMAC-SHA256 over everything before it,
 * keyed with the key id's secret, truncated to 128 bits. Tokens never
 * expire; every configured key verifies, the first one mints.
 *
 * Everything here runs on the caller's thread with no I/O and no global
 * state. Secrets are never copied into an error message and are wiped
 * (OPENSSL_cleanse) when the key set is freed.
 */
#ifndef ROUSE_UNSUBTOKEN_H
#define ROUSE_UNSUBTOKEN_H

#include <stddef.h>

#define UNSUB_TOKEN_VERSION 1
#define UNSUB_SECRET_MIN 16       /* bytes, per key */
#define UNSUB_FIELD_MAX 255       /* user and address, bytes */
/* Longest token text: 547 bytes of payload in base64url. */
#define UNSUB_TOKEN_MAX 730

struct unsub_keys;

struct unsub_subject {
	int channel;          /* enum channel, or CH_ALL */
	char user[256];       /* "" when the link is for an address only */
	char address[320];    /* "" when the link is for a user only */
	char job_id[37];      /* UUID text (lower-case on output), or "" */
};

/* Parses the unsubscribe secret: either one secret (key id 1) or
 * space-separated "kid:secret" entries (kid 1..255, no duplicates), the
 * first of which mints. Each secret must be at least UNSUB_SECRET_MIN
 * bytes. Returns 0 and *out (unsub_keys_free), or -1 with *out NULL and
 * err naming "unsubscribe.secret_env" (never quoting a secret). */
int unsub_keys_parse(const char *secret, struct unsub_keys **out, char *err,
		     size_t errlen);

/* Wipes and frees; NULL is ignored. */
void unsub_keys_free(struct unsub_keys *k);

/* The minting key's id (1..255). */
int unsub_keys_mint_kid(const struct unsub_keys *k);

/* Mints a token for s with the first key. Returns a malloc'd NUL-terminated
 * string (caller frees), or NULL when s is invalid (user or address longer
 * than UNSUB_FIELD_MAX bytes, both empty, a channel out of range, a job id
 * that is neither "" nor a UUID) or memory runs out. */
char *unsub_token_mint(const struct unsub_keys *k,
		       const struct unsub_subject *s);

/* Verifies token[0..len) in constant time with respect to the MAC. Returns
 * 0 and fills *out, or -1 for every kind of failure alike (bad base64url,
 * wrong version, unknown key id, lengths that do not add up, bad MAC,
 * empty); *out is zeroed on failure. */
int unsub_token_verify(const struct unsub_keys *k, const char *token,
		       size_t len, struct unsub_subject *out);

#endif
