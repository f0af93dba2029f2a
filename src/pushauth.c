/* pushauth.c: push provider credentials — FCM service-account assertions,
 * the OAuth token exchange, APNs provider tokens, and their lifetimes.
 *
 * This module owns everything secret about talking to FCM and APNs: it
 * loads the key files, mints the JWTs, formats the token request, parses
 * the token answer and decides when a cached token must be replaced. The
 * transports (which do the HTTP) call it with the current time; nothing
 * here reads a clock, does network I/O or keeps global state.
 *
 * DESIGN
 * Signing is done by libjwt 1.10 (OpenSSL backend). It is handed the PEM
 * text of the key on every mint (jwt_set_alg copies it and wipes the copy
 * in jwt_free), parses it, signs, and for ES256 converts OpenSSL's DER
 * ECDSA signature to the raw r||s form JWS needs (each half zero-padded to
 * the curve size). libjwt cannot tell us at load time whether a key is
 * usable, nor which curve an EC key is on (it would sign ES256 with a
 * P-384 key and emit a 96-byte signature), so *_load parses the key once
 * with OpenSSL itself and checks it: unencrypted (a passphrase callback
 * that refuses means OpenSSL never prompts on a terminal), RSA of at least
 * 2048 bits for FCM, EC on P-256 for APNs. libjwt is then only ever given
 * keys that passed these checks.
 *
 * Secrets: the key file is read by config_read_secret (which refuses files
 * group/world can read or write). The PEM copy kept in the struct, the
 * file buffer, the private_key string inside the parsed JSON document and
 * every cached JWT or access token are wiped with OPENSSL_cleanse before
 * being freed. Error messages name the file and the field and never quote
 * a value that could hold key material: in particular jansson's syntax
 * error text ("... near '<token>'") is not used, since the token it quotes
 * may be part of the key. OpenSSL's per-thread error queue is cleared after
 * a failed parse or sign so that stale errors cannot confuse the TLS code
 * sharing the thread.
 *
 * Lifetimes: APNs tokens are re-minted once APNS_TOKEN_REMINT_S (40 min)
 * old, inside Apple's window (not more often than every 20 min, not older
 * than 60 min), and unconditionally after 403 ExpiredProviderToken. FCM
 * access tokens are used until FCM_TOKEN_MARGIN_S before they expire, and
 * dropped after a 401.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "config.h"
#include "pushauth.h"

#define PUSHAUTH_FCM_KEY "push.fcm.service_account_file"
#define PUSHAUTH_APNS_KEY "push.apns.key_file"
#define PUSHAUTH_RSA_MIN_BITS 2048
#define PUSHAUTH_ID_MAX 64                 /* key_id, team_id */
#define PUSHAUTH_ANSWER_MAX (64 * 1024)    /* token endpoint answer */
#define PUSHAUTH_EXPIRES_MAX (366 * 86400) /* longest expires_in accepted */
#define PUSHAUTH_SHOW_MAX 100              /* longest provider text shown */
/* Latest now_s accepted (9999-12-31T23:59:59Z): keeps exp in range. */
#define PUSHAUTH_NOW_MAX INT64_C(253402300799)

struct fcm_account {
	char *project_id;     /* NULL when the file has none */
	char *private_key_id;
	char *client_email;
	char *token_uri;
	char *key_pem;        /* private_key, NUL-terminated PEM */
	size_t key_len;
};

struct apns_key {
	char *key_id;
	char *team_id;
	char *key_pem;        /* the .p8 file, NUL-terminated PEM */
	size_t key_len;
};

enum pushauth_key_kind { PUSHAUTH_KEY_RSA, PUSHAUTH_KEY_P256 };

__attribute__((format(printf, 3, 4)))
static int pushauth_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void pushauth_wipe_free(char *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void pushauth_secret_free(char *s)
{
	if (s)
		pushauth_wipe_free(s, strlen(s));
}

static char *pushauth_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *copy = malloc(n);
	if (copy)
		memcpy(copy, s, n);
	return copy;
}

/* Visible ASCII only (no space, no control, no 8-bit): safe to place in
 * a JWT claim shown in logs of the provider and in an HTTP header. */
static bool pushauth_visible(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Copies provider-supplied text for an error message: at most
 * PUSHAUTH_SHOW_MAX bytes (then "..."), anything but printable ASCII shown
 * as '?'. out has room for PUSHAUTH_SHOW_MAX + 4 bytes. */
static void pushauth_show(const char *s, char *out)
{
	size_t i = 0;
	for (; *s && i < PUSHAUTH_SHOW_MAX; s++, i++) {
		unsigned char ch = (unsigned char)*s;
		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	if (*s)
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
}

/* OpenSSL passphrase callback: refuse, so an encrypted key fails to load
 * instead of prompting on the terminal. */
static int pushauth_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Parses pem[0..len) as a private key and checks it is of `kind`. On
 * failure fills err as "<what>: <problem>"; never quotes the key. */
static int pushauth_check_key(const char *what, const char *pem, size_t len,
			      enum pushauth_key_kind kind, char *err,
			      size_t errlen)
{
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	char group[80];
	const char *type;
	size_t glen = 0;
	int rc = -1, nid;

	if (len > INT_MAX) {
		pushauth_error(err, errlen, "%s: key too large", what);
		goto out;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		pushauth_error(err, errlen, "%s: out of memory", what);
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, pushauth_no_passphrase, NULL);
	if (!pkey) {
		pushauth_error(err, errlen, "%s: not an unencrypted PEM private "
			       "key", what);
		goto out;
	}
	type = EVP_PKEY_get0_type_name(pkey);
	if (!type)
		type = "unknown";
	if (kind == PUSHAUTH_KEY_RSA) {
		if (EVP_PKEY_get_id(pkey) != EVP_PKEY_RSA) {
			pushauth_error(err, errlen, "%s: expected an RSA private "
				       "key, found %s", what, type);
			goto out;
		}
		if (EVP_PKEY_get_bits(pkey) < PUSHAUTH_RSA_MIN_BITS) {
			pushauth_error(err, errlen, "%s: RSA key of %d bits, at "
				       "least %d needed", what,
				       EVP_PKEY_get_bits(pkey),
				       PUSHAUTH_RSA_MIN_BITS);
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_EC) {
		pushauth_error(err, errlen, "%s: expected an EC P-256 private "
			       "key, found %s (%d bits)", what, type,
			       EVP_PKEY_get_bits(pkey));
		goto out;
	}
	if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1) {
		pushauth_error(err, errlen, "%s: expected an EC P-256 private "
			       "key, found an EC key without a named curve",
			       what);
		goto out;
	}
	nid = OBJ_txt2nid(group);
	if (nid == NID_undef)
		nid = EC_curve_nist2nid(group);
	if (nid != NID_X9_62_prime256v1) {
		pushauth_error(err, errlen, "%s: expected an EC P-256 private "
			       "key, found EC %s", what, group);
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/* ---- FCM service account -------------------------------------------- */

/* Fetches root.name as a non-empty string into *out (borrowed; NULL when
 * absent and not required). */
static int pushauth_field(const char *path, json_t *root, const char *name,
			  bool required, const char **out, char *err,
			  size_t errlen)
{
	json_t *v = json_object_get(root, name);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return pushauth_error(err, errlen, "%s: %s missing",
					      path, name);
		return 0;
	}
	if (!json_is_string(v))
		return pushauth_error(err, errlen, "%s: %s: expected a string",
				      path, name);
	if (json_string_length(v) == 0)
		return pushauth_error(err, errlen, "%s: %s is empty", path,
				      name);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return pushauth_error(err, errlen, "%s: %s contains a NUL "
				      "character", path, name);
	*out = json_string_value(v);
	return 0;
}

static bool pushauth_http_url(const char *s)
{
	return strncasecmp(s, "https://", 8) == 0 ||
	       strncasecmp(s, "http://", 7) == 0;
}

int fcm_account_load(const char *path, struct fcm_account **out, char *err,
		     size_t errlen)
{
	struct fcm_account *a = NULL;
	char *text = NULL, what[PATH_MAX + 32];
	json_t *root = NULL, *pk;
	json_error_t jerr;
	const char *type, *project_id, *key_id, *email, *uri, *key;
	int rc = -1;

	*out = NULL;
	if (config_read_secret(PUSHAUTH_FCM_KEY, NULL, path, &text, err,
			       errlen) != 0)
		goto out;
	root = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		pushauth_error(err, errlen, "%s:%d:%d: %s", path, jerr.line,
			       jerr.column,
			       json_error_code(&jerr) == json_error_duplicate_key
			       ? "duplicate key" : "invalid JSON");
		goto out;
	}
	if (!json_is_object(root)) {
		pushauth_error(err, errlen, "%s: expected a JSON object", path);
		goto out;
	}
	if (pushauth_field(path, root, "type", true, &type, err, errlen) ||
	    pushauth_field(path, root, "project_id", false, &project_id, err,
			   errlen) ||
	    pushauth_field(path, root, "private_key_id", true, &key_id, err,
			   errlen) ||
	    pushauth_field(path, root, "private_key", true, &key, err,
			   errlen) ||
	    pushauth_field(path, root, "client_email", true, &email, err,
			   errlen) ||
	    pushauth_field(path, root, "token_uri", true, &uri, err, errlen))
		goto out;
	if (strcmp(type, "service_account") != 0) {
		pushauth_error(err, errlen, "%s: type: expected "
			       "\"service_account\"", path);
		goto out;
	}
	if (project_id && !pushauth_visible(project_id)) {
		pushauth_error(err, errlen, "%s: project_id: unexpected "
			       "character", path);
		goto out;
	}
	if (!pushauth_visible(key_id)) {
		pushauth_error(err, errlen, "%s: private_key_id: unexpected "
			       "character", path);
		goto out;
	}
	if (!pushauth_visible(email)) {
		pushauth_error(err, errlen, "%s: client_email: unexpected "
			       "character", path);
		goto out;
	}
	if (!pushauth_visible(uri) || !pushauth_http_url(uri)) {
		pushauth_error(err, errlen, "%s: token_uri: expected an "
			       "http:// or https:// URL", path);
		goto out;
	}
	snprintf(what, sizeof what, "%s: private_key", path);
	if (pushauth_check_key(what, key, strlen(key), PUSHAUTH_KEY_RSA, err,
			       errlen) != 0)
		goto out;

	a = calloc(1, sizeof *a);
	if (!a)
		goto oom;
	a->key_len = strlen(key);
	if (!(a->private_key_id = pushauth_strdup(key_id)) ||
	    !(a->client_email = pushauth_strdup(email)) ||
	    !(a->token_uri = pushauth_strdup(uri)) ||
	    !(a->key_pem = pushauth_strdup(key)) ||
	    (project_id && !(a->project_id = pushauth_strdup(project_id))))
		goto oom;
	*out = a;
	a = NULL;
	rc = 0;
	goto out;
oom:
	pushauth_error(err, errlen, "%s: out of memory", path);
out:
	fcm_account_free(a);
	/* NEEDSWORK: jansson's lexer buffer held the escaped key text too
	 * and is freed without a wipe; only its decoded copy is wiped. */
	pk = root ? json_object_get(root, "private_key") : NULL;
	if (json_is_string(pk))   /* jansson's copy of the key */
		OPENSSL_cleanse((char *)json_string_value(pk),
				json_string_length(pk));
	json_decref(root);
	pushauth_secret_free(text);
	return rc;
}

const char *fcm_account_project_id(const struct fcm_account *a)
{
	return a->project_id;
}

const char *fcm_account_token_uri(const struct fcm_account *a)
{
	return a->token_uri;
}

const char *fcm_account_client_email(const struct fcm_account *a)
{
	return a->client_email;
}

void fcm_account_free(struct fcm_account *a)
{
	if (!a)
		return;
	free(a->project_id);
	free(a->private_key_id);
	free(a->client_email);
	free(a->token_uri);
	pushauth_wipe_free(a->key_pem, a->key_len);
	free(a);
}

/* ---- minting ------------------------------------------------------- */

/* Signs jwt with alg and pem and returns the encoded token; frees jwt. */
static char *pushauth_sign(jwt_t *jwt, jwt_alg_t alg, const char *pem,
			   size_t pem_len)
{
	char *token = NULL;
	if (pem_len > INT_MAX)
		goto out;
	if (jwt_set_alg(jwt, alg, (const unsigned char *)pem,
			(int)pem_len) != 0)
		goto out;
	token = jwt_encode_str(jwt);
out:
	jwt_free(jwt);  /* wipes its copy of the key */
	ERR_clear_error();
	return token;
}

char *fcm_assertion(const struct fcm_account *a, int64_t now_s)
{
	jwt_t *jwt = NULL;
	if (!a || now_s < 0 || now_s > PUSHAUTH_NOW_MAX)
		return NULL;
	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_header(jwt, "typ", "JWT") != 0 ||
	    jwt_add_header(jwt, "kid", a->private_key_id) != 0 ||
	    jwt_add_grant(jwt, "iss", a->client_email) != 0 ||
	    jwt_add_grant(jwt, "scope", FCM_SCOPE) != 0 ||
	    jwt_add_grant(jwt, "aud", a->token_uri) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
	    jwt_add_grant_int(jwt, "exp",
			      (long)(now_s + FCM_ASSERTION_LIFETIME_S)) != 0) {
		jwt_free(jwt);
		return NULL;
	}
	return pushauth_sign(jwt, JWT_ALG_RS256, a->key_pem, a->key_len);
}

char *apns_jwt(const struct apns_key *k, int64_t now_s)
{
	jwt_t *jwt = NULL;
	if (!k || now_s < 0 || now_s > PUSHAUTH_NOW_MAX)
		return NULL;
	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_header(jwt, "kid", k->key_id) != 0 ||
	    jwt_add_grant(jwt, "iss", k->team_id) != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now_s) != 0) {
		jwt_free(jwt);
		return NULL;
	}
	return pushauth_sign(jwt, JWT_ALG_ES256, k->key_pem, k->key_len);
}

/* ---- token exchange ----------------------------------------------- */

/* Appends s form-encoded (WHATWG application/x-www-form-urlencoded:
 * ALPHA DIGIT * - . _ kept, space as '+', the rest %XX) at out[*n]. */
static void pushauth_form_encode(const char *s, char *out, size_t *n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '*' || ch == '-' ||
		    ch == '.' || ch == '_') {
			out[(*n)++] = (char)ch;
		} else if (ch == ' ') {
			out[(*n)++] = '+';
		} else {
			out[(*n)++] = '%';
			out[(*n)++] = hex[ch >> 4];
			out[(*n)++] = hex[ch & 15];
		}
	}
}

char *fcm_token_request_body(const char *assertion)
{
	static const char grant[] = "urn:ietf:params:oauth:grant-type:"
				    "jwt-bearer";
	size_t alen, cap, n = 0;
	char *body;
	if (!assertion)
		return NULL;
	alen = strlen(assertion);
	if (alen > (SIZE_MAX - 64 - 3 * sizeof grant) / 3)
		return NULL;
	cap = sizeof "grant_type=" + 3 * sizeof grant + sizeof "&assertion="
	      + 3 * alen + 1;
	body = malloc(cap);
	if (!body)
		return NULL;
	memcpy(body, "grant_type=", 11);
	n = 11;
	pushauth_form_encode(grant, body, &n);
	memcpy(body + n, "&assertion=", 11);
	n += 11;
	pushauth_form_encode(assertion, body, &n);
	body[n] = '\0';
	return body;
}

int fcm_token_parse(const char *body, size_t len, char **access_token,
		    int64_t *expires_in_s, char *err, size_t errlen)
{
	static const char what[] = "token answer";
	json_t *root = NULL, *v;
	json_error_t jerr;
	const char *tok;
	char code[PUSHAUTH_SHOW_MAX + 4], desc[PUSHAUTH_SHOW_MAX + 4];
	json_int_t exp;
	int rc = -1;

	*access_token = NULL;
	*expires_in_s = 0;
	if (!body || len == 0) {
		pushauth_error(err, errlen, "%s: empty", what);
		goto out;
	}
	if (len > PUSHAUTH_ANSWER_MAX) {
		pushauth_error(err, errlen, "%s: larger than 64 KiB", what);
		goto out;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		pushauth_error(err, errlen, "%s: %s at line %d column %d", what,
			       json_error_code(&jerr) == json_error_duplicate_key
			       ? "duplicate key" : "invalid JSON", jerr.line,
			       jerr.column);
		goto out;
	}
	if (!json_is_object(root)) {
		pushauth_error(err, errlen, "%s: expected a JSON object", what);
		goto out;
	}
	v = json_object_get(root, "error");
	if (v) {
		pushauth_show(json_is_string(v) ? json_string_value(v) : "?",
			      code);
		v = json_object_get(root, "error_description");
		pushauth_show(json_is_string(v) ? json_string_value(v) : "",
			      desc);
		pushauth_error(err, errlen, "token endpoint error \"%s\"%s%s",
			       code, desc[0] ? ": " : "", desc);
		goto out;
	}
	v = json_object_get(root, "access_token");
	if (!v) {
		pushauth_error(err, errlen, "%s: access_token missing", what);
		goto out;
	}
	if (!json_is_string(v)) {
		pushauth_error(err, errlen, "%s: access_token: expected a "
			       "string", what);
		goto out;
	}
	tok = json_string_value(v);
	if (json_string_length(v) == 0) {
		pushauth_error(err, errlen, "%s: access_token is empty", what);
		goto out;
	}
	if (strlen(tok) != json_string_length(v) || !pushauth_visible(tok)) {
		pushauth_error(err, errlen, "%s: access_token contains a "
			       "character not allowed in an HTTP header", what);
		goto out;
	}
	v = json_object_get(root, "token_type");
	if (v && (!json_is_string(v) ||
		  strcasecmp(json_string_value(v), "Bearer") != 0)) {
		pushauth_error(err, errlen, "%s: token_type: expected "
			       "\"Bearer\"", what);
		goto out;
	}
	v = json_object_get(root, "expires_in");
	if (!v) {
		pushauth_error(err, errlen, "%s: expires_in missing", what);
		goto out;
	}
	if (!json_is_integer(v) || (exp = json_integer_value(v)) <= 0 ||
	    exp > PUSHAUTH_EXPIRES_MAX) {
		pushauth_error(err, errlen, "%s: expires_in: expected an "
			       "integer from 1 to %d", what,
			       PUSHAUTH_EXPIRES_MAX);
		goto out;
	}
	*access_token = pushauth_strdup(tok);
	if (!*access_token) {
		pushauth_error(err, errlen, "%s: out of memory", what);
		goto out;
	}
	*expires_in_s = (int64_t)exp;
	rc = 0;
out:
	v = root ? json_object_get(root, "access_token") : NULL;
	if (json_is_string(v))    /* jansson's copy of the token */
		OPENSSL_cleanse((char *)json_string_value(v),
				json_string_length(v));
	json_decref(root);
	return rc;
}

/* ---- APNs key ------------------------------------------------------ */

static int pushauth_check_id(const char *path, const char *name,
			     const char *v, char *err, size_t errlen)
{
	if (!v || !*v)
		return pushauth_error(err, errlen, "%s: %s is empty", path,
				      name);
	if (strlen(v) > PUSHAUTH_ID_MAX)
		return pushauth_error(err, errlen, "%s: %s longer than %d "
				      "characters", path, name,
				      PUSHAUTH_ID_MAX);
	if (!pushauth_visible(v))
		return pushauth_error(err, errlen, "%s: %s: unexpected "
				      "character", path, name);
	return 0;
}

int apns_key_load(const char *path, const char *key_id, const char *team_id,
		  struct apns_key **out, char *err, size_t errlen)
{
	struct apns_key *k = NULL;
	char *text = NULL;
	int rc = -1;

	*out = NULL;
	if (pushauth_check_id(path, "key_id", key_id, err, errlen) != 0 ||
	    pushauth_check_id(path, "team_id", team_id, err, errlen) != 0)
		goto out;
	if (config_read_secret(PUSHAUTH_APNS_KEY, NULL, path, &text, err,
			       errlen) != 0)
		goto out;
	if (pushauth_check_key(path, text, strlen(text), PUSHAUTH_KEY_P256,
			       err, errlen) != 0)
		goto out;
	k = calloc(1, sizeof *k);
	if (!k || !(k->key_id = pushauth_strdup(key_id)) ||
	    !(k->team_id = pushauth_strdup(team_id))) {
		pushauth_error(err, errlen, "%s: out of memory", path);
		goto out;
	}
	k->key_pem = text;
	k->key_len = strlen(text);
	text = NULL;
	*out = k;
	k = NULL;
	rc = 0;
out:
	apns_key_free(k);
	pushauth_secret_free(text);
	return rc;
}

void apns_key_free(struct apns_key *k)
{
	if (!k)
		return;
	free(k->key_id);
	free(k->team_id);
	pushauth_wipe_free(k->key_pem, k->key_len);
	free(k);
}

/* ---- lifetime policy ------------------------------------------------ */

const char *apns_token_remint(struct apns_token_cache *c,
			      const struct apns_key *k, int64_t now_s)
{
	char *jwt = apns_jwt(k, now_s);
	if (!jwt)
		return NULL;
	pushauth_secret_free(c->jwt);
	c->jwt = jwt;
	c->minted_s = now_s;
	return c->jwt;
}

const char *apns_token_get(struct apns_token_cache *c, const struct apns_key *k,
			   int64_t now_s)
{
	/* minted_s is within [0, PUSHAUTH_NOW_MAX] (set only by a mint), so
	 * with now_s checked the difference cannot overflow. */
	if (now_s < 0 || now_s > PUSHAUTH_NOW_MAX)
		return NULL;
	if (c->jwt && now_s - c->minted_s < APNS_TOKEN_REMINT_S)
		return c->jwt;
	return apns_token_remint(c, k, now_s);
}

void apns_token_cache_clear(struct apns_token_cache *c)
{
	pushauth_secret_free(c->jwt);
	c->jwt = NULL;
	c->minted_s = 0;
}

const char *fcm_token_cached(const struct fcm_token_cache *c, int64_t now_s)
{
	if (!c->access_token || now_s >= c->expires_at_s - FCM_TOKEN_MARGIN_S)
		return NULL;
	return c->access_token;
}

void fcm_token_store(struct fcm_token_cache *c, char *access_token_owned,
		     int64_t now_s, int64_t expires_in_s)
{
	fcm_token_cache_clear(c);
	if (!access_token_owned || expires_in_s <= 0 ||
	    expires_in_s > PUSHAUTH_EXPIRES_MAX || now_s < 0 ||
	    now_s > PUSHAUTH_NOW_MAX) {
		pushauth_secret_free(access_token_owned);
		return;
	}
	c->access_token = access_token_owned;
	c->expires_at_s = now_s + expires_in_s;
}

void fcm_token_forget(struct fcm_token_cache *c)
{
	fcm_token_cache_clear(c);
}

void fcm_token_cache_clear(struct fcm_token_cache *c)
{
	pushauth_secret_free(c->access_token);
	c->access_token = NULL;
	c->expires_at_s = 0;
}
