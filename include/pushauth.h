/* pushauth.h: credentials for the mobile push providers (pure).
 *
 * FCM (HTTP v1) authenticates with an OAuth2 access token that the daemon
 * obtains from the service account's token_uri by a jwt-bearer grant: the
 * assertion is an RS256 JWT signed with the service account's private key.
 * APNs authenticates each request with a provider token: an ES256 JWT
 * signed with the team's .p8 key, reused for a while and then re-minted.
 *
 * This module loads the two kinds of key file, mints both JWTs, builds and
 * parses the token-endpoint exchange, and holds the token lifetime policy
 * (two small caches driven by a clock the caller passes in). It does no
 * network I/O, starts no threads and keeps no global state; the only I/O is
 * reading a key file in *_load. Everything runs on the caller's thread.
 *
 * Secrets: key material, JWTs and access tokens never appear in an error
 * message and are never logged; they are wiped (OPENSSL_cleanse) before
 * their memory is freed by the *_free / *_clear / *_forget functions.
 * Every `char *` this module returns is malloc'd and owned by the caller;
 * pushauth_secret_free() wipes and frees one.
 */
#ifndef ROUSE_PUSHAUTH_H
#define ROUSE_PUSHAUTH_H

#include <stddef.h>
#include <stdint.h>

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_ASSERTION_LIFETIME_S 3600 /* exp - iat of the grant assertion */
#define FCM_TOKEN_MARGIN_S 300        /* an access token is used until 5 min
                                         before it expires */
#define APNS_TOKEN_REMINT_S (40 * 60) /* Apple: re-mint after 20 min, before
                                         60 min */

/* Wipes s (up to its NUL) and frees it; NULL is ignored. */
void pushauth_secret_free(char *s);

/* ---- FCM service account ---------------------------------------------
 * Google's JSON key file: type ("service_account"), project_id,
 * private_key_id, private_key (PEM, PKCS#8 RSA), client_email, token_uri,
 * and others that are ignored. */
struct fcm_account;

/* Reads path with config_read_secret() (so a file readable or writable by
 * group or others is refused) and parses it. Required: type
 * "service_account", private_key_id, private_key (an unencrypted RSA key
 * of at least 2048 bits), client_email, token_uri (http:// or https://).
 * project_id is optional (NULL when absent).
 * Returns 0 and *out (fcm_account_free), or -1, *out NULL, and err naming
 * the file and the missing or bad field ("PATH: client_email missing");
 * err never contains key material. */
int fcm_account_load(const char *path, struct fcm_account **out, char *err,
		     size_t errlen);

/* Borrowed strings, valid until fcm_account_free. project_id may be NULL. */
const char *fcm_account_project_id(const struct fcm_account *a);
const char *fcm_account_token_uri(const struct fcm_account *a);
const char *fcm_account_client_email(const struct fcm_account *a);

/* The grant assertion: an RS256 JWT with header {alg RS256, typ JWT,
 * kid private_key_id} and claims {iss client_email, scope FCM_SCOPE,
 * aud token_uri, iat now_s, exp now_s + FCM_ASSERTION_LIFETIME_S}.
 * Returns a malloc'd string, or NULL on failure (out of memory, or now_s
 * negative / out of range). */
char *fcm_assertion(const struct fcm_account *a, int64_t now_s);

/* The token request body (application/x-www-form-urlencoded):
 * "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
 * "&assertion=" + the assertion, form-encoded (a JWT's characters need no
 * escaping). Returns a malloc'd string, or NULL if out of memory or
 * assertion is NULL. */
char *fcm_token_request_body(const char *assertion);

/* Parses the token endpoint's JSON answer body[0..len):
 * {"access_token":"...","expires_in":3599,"token_type":"Bearer"}.
 * access_token must be non-empty printable ASCII without spaces (it goes
 * into an HTTP header), expires_in a positive integer, token_type (if
 * present) "Bearer" in any case. An OAuth error answer
 * ({"error":"invalid_grant","error_description":"..."}) is reported with
 * its error code and description in err. Returns 0 with *access_token
 * malloc'd (the caller owns it; hand it to fcm_token_store) and
 * *expires_in_s set, or -1 with *access_token NULL and err set (never
 * containing the token). Bodies over 64 KiB are refused. */
int fcm_token_parse(const char *body, size_t len, char **access_token,
		    int64_t *expires_in_s, char *err, size_t errlen);

/* Wipes the key and frees a; NULL is ignored. */
void fcm_account_free(struct fcm_account *a);

/* ---- APNs provider token ------------------------------------------- */
struct apns_key;

/* Reads path (a .p8 file: PEM PKCS#8 EC P-256 private key) with
 * config_read_secret(); an unencrypted EC key on another curve, or a key of
 * another type, is refused with a message naming the file and what was
 * found. key_id and team_id are copied; each must be non-empty printable
 * ASCII (at most 64 bytes). Returns 0 and *out (apns_key_free), or -1, *out
 * NULL and err set (never containing key material). */
int apns_key_load(const char *path, const char *key_id, const char *team_id,
		  struct apns_key **out, char *err, size_t errlen);

/* A provider token: ES256 JWT with header {alg ES256, kid key_id} (libjwt
 * also writes typ "JWT", which APNs accepts) and claims {iss team_id,
 * iat now_s}; the signature is the raw 64-byte r||s of RFC 7518 §3.4.
 * ECDSA signatures are randomized, so two tokens minted in the same second
 * carry equal header and claims but differ. Returns a malloc'd string, or
 * NULL on failure. */
char *apns_jwt(const struct apns_key *k, int64_t now_s);

/* Wipes the key and frees k; NULL is ignored. */
void apns_key_free(struct apns_key *k);

/* ---- Token lifetime policy (pure; the caller passes the clock) --------
 * A cache starts zeroed ({0}) and is emptied with its *_clear function.
 * Returned tokens are borrowed from the cache: valid until the next call
 * that mints, stores, forgets or clears. */

struct apns_token_cache {
	char *jwt;          /* NULL when empty */
	int64_t minted_s;   /* iat of jwt */
};

/* The provider token for a request at now_s: the cached one while its age
 * (now_s - minted_s) is below APNS_TOKEN_REMINT_S, else a new one (which
 * replaces it). A clock that went backwards (negative age) keeps the cached
 * token: Apple's answer (403 ExpiredProviderToken) then drives a re-mint.
 * Never re-mints within 20 minutes of the last mint (unless
 * apns_token_remint is called). Returns NULL if minting fails; the cache
 * then holds what it held before. */
const char *apns_token_get(struct apns_token_cache *c, const struct apns_key *k,
			   int64_t now_s);

/* After 403 ExpiredProviderToken: mints a new token unconditionally and
 * caches it; the caller makes sure this happens once per rejection.
 * Returns NULL if minting fails (cache unchanged). */
const char *apns_token_remint(struct apns_token_cache *c,
			      const struct apns_key *k, int64_t now_s);

/* Wipes and frees the cached token; c is left empty and reusable. */
void apns_token_cache_clear(struct apns_token_cache *c);

struct fcm_token_cache {
	char *access_token; /* NULL when empty */
	int64_t expires_at_s; /* valid until expires_at_s - FCM_TOKEN_MARGIN_S */
};

/* The cached access token if there is one and now_s is before
 * expires_at_s - FCM_TOKEN_MARGIN_S; NULL when absent or near expiry.
 * (So a token whose expires_in is 300 s or less is never served from the
 * cache: use the one just fetched for the request in hand.) */
const char *fcm_token_cached(const struct fcm_token_cache *c, int64_t now_s);

/* Stores access_token_owned (takes ownership; the previous token is wiped
 * and freed), valid from now_s for expires_in_s seconds. A NULL token or a
 * non-positive lifetime leaves the cache empty (and frees the token). */
void fcm_token_store(struct fcm_token_cache *c, char *access_token_owned,
		     int64_t now_s, int64_t expires_in_s);

/* After a 401: drops the cached token (wiped) so the next request fetches
 * a new one. */
void fcm_token_forget(struct fcm_token_cache *c);

/* Wipes and frees the cached token; c is left empty and reusable. */
void fcm_token_cache_clear(struct fcm_token_cache *c);

#endif
