/* unsubtoken.c: minting and verifying signed unsubscribe tokens.
 *
 * This module owns the token format described in unsubtoken.h and the key
 * set it is signed with. The key set is parsed once from the configured
 * secret and then only read, so it may be shared by threads.
 *
 * DESIGN
 * Verification decodes strictly: base64url alphabet only, no padding, no
 * length that cannot come from whole bytes and no stray bits in the last
 * character, so that every token has exactly one spelling and changing
 * any character changes the bytes the MAC covers. The layout is then
 * walked with explicit bounds (each length byte must leave room for what
 * follows, and the total must match exactly) before the MAC is computed
 * with the key the token names and compared with CRYPTO_memcmp. All
 * failures return the same -1: the HTTP listener answers them alike.
 *
 * The key id travels in clear so that a rotated-out key keeps verifying
 * old mail; an unknown key id simply fails. Secrets live only in this
 * module's heap copies, wiped before they are freed.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "channel.h"
#include "unsubtoken.h"

#define UNSUB_KEY_NAME "unsubscribe.secret_env"
#define UNSUB_JOB_BYTES 16
#define UNSUB_MAC_BYTES 16
#define UNSUB_CH_ALL_BYTE 0xff
/* version, kid, channel, user length, address length */
#define UNSUB_FIXED_BYTES (5 + UNSUB_JOB_BYTES + UNSUB_MAC_BYTES)
#define UNSUB_PAYLOAD_MAX (UNSUB_FIXED_BYTES + 2 * UNSUB_FIELD_MAX)

struct unsub_key {
	int kid;
	unsigned char *secret;
	size_t len;
};

struct unsub_keys {
	struct unsub_key *keys;   /* keys[0] mints */
	size_t n;
};

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

__attribute__((format(printf, 3, 4)))
static void keys_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", UNSUB_KEY_NAME, what);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* "kid:" at the start of [p, end): returns the kid (1..255) and sets
 * *rest past the colon, or returns 0 (not that shape) or -1 (digits and a
 * colon, but the number is out of range). */
static int entry_kid(const char *p, const char *end, const char **rest)
{
	int kid = 0;
	const char *q = p;
	while (q < end && *q >= '0' && *q <= '9' && q - p < 4) {
		kid = kid * 10 + (*q - '0');
		q++;
	}
	if (q == p || q >= end || *q != ':')
		return 0;
	if (q - p > 3 || kid < 1 || kid > 255)
		return -1;
	*rest = q + 1;
	return kid;
}

void unsub_keys_free(struct unsub_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++) {
		OPENSSL_cleanse(k->keys[i].secret, k->keys[i].len);
		free(k->keys[i].secret);
	}
	free(k->keys);
	free(k);
}

static int keys_add(struct unsub_keys *k, int kid, const char *s, size_t len)
{
	struct unsub_key *key = &k->keys[k->n];
	key->secret = malloc(len ? len : 1);
	if (!key->secret)
		return -1;
	memcpy(key->secret, s, len);
	key->len = len;
	key->kid = kid;
	k->n++;
	return 0;
}

int unsub_keys_parse(const char *secret, struct unsub_keys **out, char *err,
		     size_t errlen)
{
	struct unsub_keys *k = NULL;
	size_t words = 0;
	const char *p;
	bool entries;

	*out = NULL;
	if (!secret) {
		keys_seterr(err, errlen, "no secret");
		return -1;
	}
	for (p = secret; *p;) {
		while (is_space(*p))
			p++;
		if (!*p)
			break;
		words++;
		while (*p && !is_space(*p))
			p++;
	}
	if (words == 0) {
		keys_seterr(err, errlen, "the secret is empty");
		return -1;
	}
	k = calloc(1, sizeof *k);
	if (!k || !(k->keys = calloc(words, sizeof *k->keys)))
		goto nomem;

	p = secret;
	while (is_space(*p))
		p++;
	{
		const char *end = p, *rest = NULL;
		while (*end && !is_space(*end))
			end++;
		entries = words > 1 || entry_kid(p, end, &rest) != 0;
	}
	if (!entries) {
		const char *end = p;
		while (*end && !is_space(*end))
			end++;
		if ((size_t)(end - p) < UNSUB_SECRET_MIN) {
			keys_seterr(err, errlen, "the secret is shorter than "
				    "%d bytes", UNSUB_SECRET_MIN);
			goto fail;
		}
		if (keys_add(k, 1, p, (size_t)(end - p)) < 0)
			goto nomem;
		*out = k;
		return 0;
	}

	for (size_t i = 0; i < words; i++) {
		const char *end, *rest = NULL;
		int kid;
		while (is_space(*p))
			p++;
		end = p;
		while (*end && !is_space(*end))
			end++;
		kid = entry_kid(p, end, &rest);
		if (kid <= 0) {
			keys_seterr(err, errlen, "entry %d is not \"kid:secret\" "
				    "with kid 1..255", (int)i + 1);
			goto fail;
		}
		for (size_t j = 0; j < k->n; j++) {
			if (k->keys[j].kid == kid) {
				keys_seterr(err, errlen, "key id %d appears more "
					    "than once", kid);
				goto fail;
			}
		}
		if ((size_t)(end - rest) < UNSUB_SECRET_MIN) {
			keys_seterr(err, errlen, "the secret of key id %d is "
				    "shorter than %d bytes", kid, UNSUB_SECRET_MIN);
			goto fail;
		}
		if (keys_add(k, kid, rest, (size_t)(end - rest)) < 0)
			goto nomem;
		p = end;
	}
	*out = k;
	return 0;

nomem:
	keys_seterr(err, errlen, "out of memory");
fail:
	unsub_keys_free(k);
	return -1;
}

int unsub_keys_mint_kid(const struct unsub_keys *k)
{
	return k->keys[0].kid;
}

static const struct unsub_key *keys_find(const struct unsub_keys *k, int kid)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->keys[i].kid == kid)
			return &k->keys[i];
	return NULL;
}

/* "" -> all zero; a UUID (8-4-4-4-12 hex digits) -> its 16 bytes. */
static int uuid_parse(const char *s, unsigned char *out)
{
	size_t n = 0;
	memset(out, 0, UNSUB_JOB_BYTES);
	if (!*s)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		int hi, lo;
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		const unsigned char *h = (const unsigned char *)s + i;
		hi = OPENSSL_hexchar2int(h[0]);
		lo = hi < 0 ? -1 : OPENSSL_hexchar2int(h[1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | lo);
		i++;
	}
	return s[36] == '\0' ? 0 : -1;
}

static void uuid_format(const unsigned char *in, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	bool zero = true;
	for (size_t i = 0; i < UNSUB_JOB_BYTES; i++)
		zero = zero && in[i] == 0;
	if (zero) {
		out[0] = '\0';
		return;
	}
	for (size_t i = 0; i < UNSUB_JOB_BYTES; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[in[i] >> 4];
		out[o++] = hex[in[i] & 15];
	}
	out[o] = '\0';
}

static int mac_compute(const struct unsub_key *key, const unsigned char *data,
		       size_t len, unsigned char *mac)
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int full_len = 0;
	if (!HMAC(EVP_sha256(), key->secret, (int)key->len, data, len, full,
		  &full_len) || full_len < UNSUB_MAC_BYTES)
		return -1;
	memcpy(mac, full, UNSUB_MAC_BYTES);
	OPENSSL_cleanse(full, sizeof full);
	return 0;
}

static char *b64url_encode(const unsigned char *in, size_t len)
{
	char *out = malloc(len / 3 * 4 + 4 + 1);
	size_t o = 0, i = 0;
	if (!out)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
		out[o++] = b64url_chars[v >> 6 & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
		out[o++] = b64url_chars[v >> 6 & 63];
	}
	out[o] = '\0';
	return out;
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict decoding into out (room for outmax bytes). Returns the byte count
 * or -1. */
static long b64url_decode(const char *in, size_t len, unsigned char *out,
			  size_t outmax)
{
	size_t o = 0, i = 0, rem = len % 4;
	if (rem == 1 || len / 4 * 3 + (rem ? rem - 1 : 0) > outmax)
		return -1;
	for (; i + 4 <= len; i += 4) {
		int a = b64url_value(in[i]), b = b64url_value(in[i + 1]);
		int c = b64url_value(in[i + 2]), d = b64url_value(in[i + 3]);
		uint32_t v;
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
		    (uint32_t)d;
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	if (rem) {
		int a = b64url_value(in[i]), b = b64url_value(in[i + 1]);
		int c = rem == 3 ? b64url_value(in[i + 2]) : 0;
		uint32_t v;
		if (a < 0 || b < 0 || c < 0)
			return -1;
		v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
		/* the bits below the last whole byte must be zero */
		if ((rem == 2 && (v & 0xffff)) || (rem == 3 && (v & 0xff)))
			return -1;
		out[o++] = (unsigned char)(v >> 16);
		if (rem == 3)
			out[o++] = (unsigned char)(v >> 8);
	}
	return (long)o;
}

char *unsub_token_mint(const struct unsub_keys *k,
		       const struct unsub_subject *s)
{
	unsigned char buf[UNSUB_PAYLOAD_MAX];
	size_t ulen, alen, n = 0;
	char *token;

	if (!k || !s || k->n == 0)
		return NULL;
	ulen = strnlen(s->user, sizeof s->user);
	alen = strnlen(s->address, sizeof s->address);
	if (ulen > UNSUB_FIELD_MAX || alen > UNSUB_FIELD_MAX ||
	    (ulen == 0 && alen == 0))
		return NULL;
	if (s->channel != CH_ALL && (s->channel < 0 || s->channel >= CH_COUNT))
		return NULL;
	if (strnlen(s->job_id, sizeof s->job_id) >= sizeof s->job_id)
		return NULL;

	buf[n++] = UNSUB_TOKEN_VERSION;
	buf[n++] = (unsigned char)k->keys[0].kid;
	buf[n++] = s->channel == CH_ALL ? UNSUB_CH_ALL_BYTE
					: (unsigned char)s->channel;
	buf[n++] = (unsigned char)ulen;
	memcpy(buf + n, s->user, ulen);
	n += ulen;
	buf[n++] = (unsigned char)alen;
	memcpy(buf + n, s->address, alen);
	n += alen;
	if (uuid_parse(s->job_id, buf + n) < 0)
		return NULL;
	n += UNSUB_JOB_BYTES;
	if (mac_compute(&k->keys[0], buf, n, buf + n) < 0)
		return NULL;
	n += UNSUB_MAC_BYTES;
	token = b64url_encode(buf, n);
	OPENSSL_cleanse(buf, sizeof buf);
	return token;
}

int unsub_token_verify(const struct unsub_keys *k, const char *token,
		       size_t len, struct unsub_subject *out)
{
	unsigned char buf[UNSUB_PAYLOAD_MAX + 3];
	unsigned char mac[UNSUB_MAC_BYTES];
	const struct unsub_key *key;
	size_t ulen, alen, pos;
	long n;
	int ch;

	memset(out, 0, sizeof *out);
	if (!k || !token || len == 0 || len > UNSUB_TOKEN_MAX)
		return -1;
	n = b64url_decode(token, len, buf, sizeof buf);
	if (n < UNSUB_FIXED_BYTES || n > UNSUB_PAYLOAD_MAX)
		return -1;
	if (buf[0] != UNSUB_TOKEN_VERSION)
		return -1;
	key = keys_find(k, buf[1]);
	if (!key)
		return -1;
	ulen = buf[3];
	/* user, its length byte onwards: user, address length, address,
	 * job id, MAC */
	if ((size_t)n < UNSUB_FIXED_BYTES + ulen)
		return -1;
	pos = 4 + ulen;
	alen = buf[pos];
	if ((size_t)n != UNSUB_FIXED_BYTES + ulen + alen)
		return -1;
	if (mac_compute(key, buf, (size_t)n - UNSUB_MAC_BYTES, mac) < 0)
		return -1;
	if (CRYPTO_memcmp(mac, buf + n - UNSUB_MAC_BYTES, UNSUB_MAC_BYTES) != 0)
		return -1;

	ch = buf[2] == UNSUB_CH_ALL_BYTE ? CH_ALL : buf[2];
	if (ch != CH_ALL && ch >= CH_COUNT)
		return -1;
	if ((ulen == 0 && alen == 0) || memchr(buf + 4, '\0', ulen) ||
	    memchr(buf + pos + 1, '\0', alen))
		return -1;
	out->channel = ch;
	memcpy(out->user, buf + 4, ulen);
	out->user[ulen] = '\0';
	memcpy(out->address, buf + pos + 1, alen);
	out->address[alen] = '\0';
	uuid_format(buf + pos + 1 + alen, out->job_id);
	return 0;
}
