/* test_pushauth.c: push credentials — key loading, JWT minting, the token
 * exchange and the token lifetime policy.
 *
 * Keys are made at run time with the openssl command line tool in a fresh
 * temporary directory (mode 0600 files): an RSA 2048 key wrapped in a
 * service-account JSON file, EC P-256 .p8 keys, and wrong keys (P-384, RSA,
 * Ed25519, encrypted, RSA 1024). Minted JWTs are verified independently by
 * tests/unit/pushauth_verify.py (python-cryptography) against the public
 * keys openssl extracted; it prints each token's decoded header and claims
 * as JSON lines, which are checked here.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "pushauth.h"
#include "testutil.h"

#define T0 INT64_C(1700000000)
#define KEY_ID "ABC123DEFG"
#define TEAM_ID "DEF456GHIJ"
#define SA_KEY_ID "0123456789abcdef0123456789abcdef01234567"
#define SA_EMAIL "rouse-push@rouse-test.iam.gserviceaccount.com"
#define SA_TOKEN_URI "http://127.0.0.1:1/token"
#define APNS_TOKENS 1000

static char tmpdir[64];
static const char *tests_dir;
static char *rsa_pem;        /* the service account's key text */
static char key_chunk[41];   /* 40 base64 characters from inside rsa_pem */

static const char *tmp_path(const char *name)
{
	static char paths[8][PATH_MAX];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	return p;
}

static void run(const char *cmd)
{
	int status = system(cmd);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "command failed (status %d): %s\n", status, cmd);
		exit(1);
	}
}

static void openssl(const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/openssl %s 2>/dev/null",
		 tmpdir, args);
	run(cmd);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		exit(1);
	}
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		perror(path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *write_file(const char *name, const char *content,
			      mode_t mode)
{
	const char *path = tmp_path(name);
	FILE *f = fopen(path, "wb");
	size_t len = strlen(content);
	if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	if (chmod(path, mode) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

/* A service-account object; the caller edits it before writing it. */
static json_t *sa_object(void)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
			      "type", "service_account",
			      "project_id", "rouse-test",
			      "private_key_id", SA_KEY_ID,
			      "private_key", rsa_pem,
			      "client_email", SA_EMAIL,
			      "client_id", "123456789012345678901",
			      "auth_uri", "https://accounts.google.com/o/oauth2/auth",
			      "token_uri", SA_TOKEN_URI);
	if (!o) {
		fprintf(stderr, "json_pack failed\n");
		exit(1);
	}
	return o;
}

/* Writes o (stolen) as <name> with mode and returns the path. */
static const char *write_sa(const char *name, json_t *o, mode_t mode)
{
	char *text = json_dumps(o, JSON_INDENT(2));
	const char *path = write_file(name, text, mode);
	free(text);
	json_decref(o);
	return path;
}

/* err must not carry anything that looks like key material. */
static void assert_no_secret_at(int line, const char *err)
{
	if (strstr(err, key_chunk) || strstr(err, "PRIVATE KEY") ||
	    strstr(err, "MII"))
		fprintf(stderr, "line %d: key material in error: %s\n", line,
			err);
	ASSERT_TRUE(strstr(err, key_chunk) == NULL);
	ASSERT_TRUE(strstr(err, "PRIVATE KEY") == NULL);
	ASSERT_TRUE(strstr(err, "MII") == NULL);
}

/* Loads path as a service account, expecting failure with exactly
 * `expected`, where "$F" stands for path. */
static void expect_fcm_err_at(int line, const char *path, const char *expected)
{
	char err[1024] = "", want[PATH_MAX + 512];
	struct fcm_account *a = (struct fcm_account *)&a; /* must be reset */
	const char *f = strstr(expected, "$F");
	int rc = fcm_account_load(path, &a, err, sizeof err);
	if (f)
		snprintf(want, sizeof want, "%.*s%s%s", (int)(f - expected),
			 expected, path, f + 2);
	else
		snprintf(want, sizeof want, "%s", expected);
	if (rc != -1 || strcmp(err, want) != 0)
		fprintf(stderr, "line %d: fcm_account_load(%s)\n", line, path);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(a == NULL);
	ASSERT_EQ_STR(err, want);
	assert_no_secret_at(line, err);
}

#define expect_fcm_err(path, expected) \
	expect_fcm_err_at(__LINE__, path, expected)

static void expect_apns_err_at(int line, const char *path, const char *key_id,
			       const char *team_id, const char *expected)
{
	char err[1024] = "", want[PATH_MAX + 512];
	struct apns_key *k = (struct apns_key *)&k; /* must be reset */
	const char *f = strstr(expected, "$F");
	int rc = apns_key_load(path, key_id, team_id, &k, err, sizeof err);
	if (f)
		snprintf(want, sizeof want, "%.*s%s%s", (int)(f - expected),
			 expected, path, f + 2);
	else
		snprintf(want, sizeof want, "%s", expected);
	if (rc != -1 || strcmp(err, want) != 0)
		fprintf(stderr, "line %d: apns_key_load(%s)\n", line, path);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(k == NULL);
	ASSERT_EQ_STR(err, want);
	assert_no_secret_at(line, err);
}

#define expect_apns_err(path, expected) \
	expect_apns_err_at(__LINE__, path, KEY_ID, TEAM_ID, expected)

/* Runs pushauth_verify.py on tokens[0..n) with the public key file pub.
 * Returns the array of decoded {header, claims, sig_len, leading_zero}
 * objects, or NULL if the verifier failed (it says why on stderr). */
static json_t *verify_tokens(const char *alg, const char *pub,
			     char *const *tokens, size_t n)
{
	char cmd[PATH_MAX * 3 + 128], line[8192];
	const char *list = tmp_path("tokens.txt");
	FILE *f = fopen(list, "wb");
	json_t *out = json_array();
	int status;
	size_t i;

	if (!f || !out) {
		perror(list);
		exit(1);
	}
	for (i = 0; i < n; i++)
		fprintf(f, "%s\n", tokens[i] ? tokens[i] : "(null)");
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "/usr/bin/python3 '%s/unit/pushauth_verify.py' %s '%s' < '%s'",
		 tests_dir, alg, pub, list);
	f = popen(cmd, "r");
	if (!f) {
		perror("popen");
		exit(1);
	}
	while (fgets(line, sizeof line, f)) {
		json_error_t jerr;
		json_t *v = json_loads(line, 0, &jerr);
		if (!v) {
			fprintf(stderr, "verifier printed non-JSON: %s", line);
			status = pclose(f);
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, v);
	}
	status = pclose(f);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    json_array_size(out) != n) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static const char *jstr(json_t *o, const char *part, const char *key)
{
	return json_string_value(json_object_get(json_object_get(o, part), key));
}

static long long jint(json_t *o, const char *part, const char *key)
{
	json_t *v = json_object_get(json_object_get(o, part), key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static size_t jsize(json_t *o, const char *part)
{
	return json_object_size(json_object_get(o, part));
}

static void make_keys(void)
{
	const char *p;
	char *pem;
	umask(077);
	openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
		"-out rsa.pem");
	openssl("pkey -in rsa.pem -pubout -out rsa.pub");
	openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 "
		"-out rsa1024.pem");
	openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
		"-out AuthKey.p8");
	openssl("pkey -in AuthKey.p8 -pubout -out AuthKey.pub");
	openssl("pkey -in AuthKey.p8 -traditional -out sec1.pem");
	openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 "
		"-out p384.p8");
	openssl("genpkey -algorithm ED25519 -out ed25519.p8");
	openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
		"-aes-256-cbc -pass pass:secret -out encrypted.p8");
	rsa_pem = read_file(tmp_path("rsa.pem"));
	/* The second line of the PEM body: pure key bytes. */
	p = strchr(rsa_pem, '\n');
	p = p ? strchr(p + 1, '\n') : NULL;
	if (!p || strlen(p) < 42) {
		fprintf(stderr, "unexpected PEM layout\n");
		exit(1);
	}
	memcpy(key_chunk, p + 1, 40);
	key_chunk[40] = '\0';
	/* The EC key as the RSA .p8 and a copy of the RSA key's text. */
	write_file("rsa.p8", rsa_pem, 0600);
	pem = read_file(tmp_path("AuthKey.p8"));
	write_file("ec.pem", pem, 0600);
	free(pem);
}

/* ---- FCM service account ------------------------------------------- */

static struct fcm_account *test_fcm_load(void)
{
	char err[1024] = "";
	struct fcm_account *a = NULL;
	json_t *o;
	const char *path = write_sa("sa.json", sa_object(), 0600);

	ASSERT_EQ_INT(fcm_account_load(path, &a, err, sizeof err), 0);
	ASSERT_EQ_STR(err, "");
	ASSERT_TRUE(a != NULL);
	if (!a) {
		fprintf(stderr, "load failed: %s\n", err);
		exit(1);
	}
	ASSERT_EQ_STR(fcm_account_project_id(a), "rouse-test");
	ASSERT_EQ_STR(fcm_account_client_email(a), SA_EMAIL);
	ASSERT_EQ_STR(fcm_account_token_uri(a), SA_TOKEN_URI);

	/* project_id is optional. */
	{
		struct fcm_account *b = NULL;
		o = sa_object();
		json_object_del(o, "project_id");
		path = write_sa("sa-noproject.json", o, 0600);
		ASSERT_EQ_INT(fcm_account_load(path, &b, err, sizeof err), 0);
		ASSERT_TRUE(b && fcm_account_project_id(b) == NULL);
		fcm_account_free(b);
	}
	return a;
}

static void test_fcm_load_errors(void)
{
	json_t *o;
	char *text, *p;
	const char *path;
	char want[PATH_MAX + 128];

	path = write_sa("sa-group.json", sa_object(), 0640);
	expect_fcm_err(path, "push.fcm.service_account_file: $F is readable "
		       "by group or others (chmod 600)");
	path = write_sa("sa-world.json", sa_object(), 0604);
	expect_fcm_err(path, "push.fcm.service_account_file: $F is readable "
		       "by group or others (chmod 600)");
	expect_fcm_err(tmp_path("absent.json"), "push.fcm.service_account_file: "
		       "$F: No such file or directory");

	o = sa_object();
	json_object_del(o, "client_email");
	expect_fcm_err(write_sa("sa-noemail.json", o, 0600),
		       "$F: client_email missing");
	o = sa_object();
	json_object_del(o, "private_key");
	expect_fcm_err(write_sa("sa-nokey.json", o, 0600),
		       "$F: private_key missing");
	o = sa_object();
	json_object_del(o, "token_uri");
	expect_fcm_err(write_sa("sa-nouri.json", o, 0600),
		       "$F: token_uri missing");
	o = sa_object();
	json_object_del(o, "private_key_id");
	expect_fcm_err(write_sa("sa-nokid.json", o, 0600),
		       "$F: private_key_id missing");
	o = sa_object();
	json_object_set_new(o, "client_email", json_integer(5));
	expect_fcm_err(write_sa("sa-emailnum.json", o, 0600),
		       "$F: client_email: expected a string");
	o = sa_object();
	json_object_set_new(o, "client_email", json_string(""));
	expect_fcm_err(write_sa("sa-emailempty.json", o, 0600),
		       "$F: client_email is empty");
	o = sa_object();
	json_object_set_new(o, "type", json_string("authorized_user"));
	expect_fcm_err(write_sa("sa-type.json", o, 0600),
		       "$F: type: expected \"service_account\"");
	o = sa_object();
	json_object_set_new(o, "token_uri", json_string("ftp://127.0.0.1/t"));
	expect_fcm_err(write_sa("sa-uri.json", o, 0600),
		       "$F: token_uri: expected an http:// or https:// URL");

	/* A damaged key: the message does not quote it. */
	o = sa_object();
	snprintf(want, sizeof want, "-----BEGIN PRIVATE KEY-----\nMIIB%s\n"
		 "-----END PRIVATE KEY-----\n", key_chunk);
	json_object_set_new(o, "private_key", json_string(want));
	expect_fcm_err(write_sa("sa-badkey.json", o, 0600),
		       "$F: private_key: not an unencrypted PEM private key");
	o = sa_object();
	text = read_file(tmp_path("ec.pem"));
	json_object_set_new(o, "private_key", json_string(text));
	free(text);
	expect_fcm_err(write_sa("sa-ec.json", o, 0600),
		       "$F: private_key: expected an RSA private key, found EC");
	o = sa_object();
	text = read_file(tmp_path("rsa1024.pem"));
	json_object_set_new(o, "private_key", json_string(text));
	free(text);
	expect_fcm_err(write_sa("sa-1024.json", o, 0600),
		       "$F: private_key: RSA key of 1024 bits, at least 2048 "
		       "needed");

	/* A syntax error right after key material: jansson's own message
	 * would quote the text around it; ours gives the position only. */
	o = sa_object();
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	p = text ? strstr(text, key_chunk) : NULL;
	ASSERT_TRUE(p != NULL);
	if (p) {
		char broken[8192];
		char err[1024] = "";
		struct fcm_account *a = NULL;
		size_t at = (size_t)(p - text) + strlen(key_chunk);
		snprintf(broken, sizeof broken, "%.*s\\q%s", (int)at, text,
			 text + at);
		path = write_file("sa-syntax.json", broken, 0600);
		ASSERT_EQ_INT(fcm_account_load(path, &a, err, sizeof err), -1);
		ASSERT_TRUE(a == NULL);
		snprintf(want, sizeof want, "%s:1:", path);
		ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
		ASSERT_TRUE(strlen(err) > 14 &&
			    strcmp(err + strlen(err) - 14, ": invalid JSON") == 0);
		assert_no_secret_at(__LINE__, err);
		if (strstr(err, "invalid JSON") == NULL)
			fprintf(stderr, "got: %s\n", err);
	}
	free(text);

	{
		char err[1024] = "";
		struct fcm_account *a = NULL;
		path = write_file("sa-dup.json", "{\"type\":\"service_account\","
				  "\"type\":\"service_account\"}", 0600);
		ASSERT_EQ_INT(fcm_account_load(path, &a, err, sizeof err), -1);
		snprintf(want, sizeof want, "%s:1:", path);
		ASSERT_TRUE(strncmp(err, want, strlen(want)) == 0);
		ASSERT_TRUE(strstr(err, ": duplicate key") != NULL);
	}
	expect_fcm_err(write_file("sa-array.json", "[1, 2]\n", 0600),
		       "$F: expected a JSON object");
}

static void test_fcm_assertion(const struct fcm_account *a)
{
	char *tokens[3];
	json_t *res, *r;

	tokens[0] = fcm_assertion(a, T0);
	tokens[1] = fcm_assertion(a, T0 + 7);
	tokens[2] = fcm_assertion(a, T0);
	ASSERT_TRUE(tokens[0] && tokens[1] && tokens[2]);
	if (!tokens[0] || !tokens[1] || !tokens[2])
		return;
	/* RSASSA-PKCS1-v1_5 is deterministic: same input, same token. */
	ASSERT_EQ_STR(tokens[0], tokens[2]);
	ASSERT_TRUE(strcmp(tokens[0], tokens[1]) != 0);

	res = verify_tokens("RS256", tmp_path("rsa.pub"), tokens, 2);
	ASSERT_TRUE(res != NULL);
	if (res) {
		size_t i;
		json_array_foreach(res, i, r) {
			ASSERT_EQ_STR(jstr(r, "header", "alg"), "RS256");
			ASSERT_EQ_STR(jstr(r, "header", "typ"), "JWT");
			ASSERT_EQ_STR(jstr(r, "header", "kid"), SA_KEY_ID);
			ASSERT_EQ_INT(jsize(r, "header"), 3);
			ASSERT_EQ_STR(jstr(r, "claims", "iss"), SA_EMAIL);
			ASSERT_EQ_STR(jstr(r, "claims", "scope"),
				      "https://www.googleapis.com/auth/"
				      "firebase.messaging");
			ASSERT_EQ_STR(jstr(r, "claims", "aud"), SA_TOKEN_URI);
			ASSERT_EQ_INT(jint(r, "claims", "iat"),
				      i == 0 ? T0 : T0 + 7);
			ASSERT_EQ_INT(jint(r, "claims", "exp") -
				      jint(r, "claims", "iat"), 3600);
			ASSERT_EQ_INT(jsize(r, "claims"), 5);
			ASSERT_EQ_INT(json_integer_value(
				json_object_get(r, "sig_len")), 256);
		}
		json_decref(res);
	}

	/* The verifier can fail: a damaged signature, or the other key,
	 * are refused. */
	{
		char *bad = strdup(tokens[0]);
		char *dot = bad ? strrchr(bad, '.') : NULL;
		ASSERT_TRUE(dot != NULL);
		if (dot) {
			dot[5] = dot[5] == 'A' ? 'B' : 'A';
			fprintf(stderr, "(the verifier must refuse the next "
				"two tokens)\n");
			res = verify_tokens("RS256", tmp_path("rsa.pub"), &bad, 1);
			ASSERT_TRUE(res == NULL);
			json_decref(res);
		}
		free(bad);
		res = verify_tokens("ES256", tmp_path("AuthKey.pub"), tokens, 1);
		ASSERT_TRUE(res == NULL);
		json_decref(res);
	}

	ASSERT_TRUE(fcm_assertion(NULL, T0) == NULL);
	ASSERT_TRUE(fcm_assertion(a, -1) == NULL);
	pushauth_secret_free(tokens[0]);
	pushauth_secret_free(tokens[1]);
	pushauth_secret_free(tokens[2]);
}

static void test_fcm_request_body(const struct fcm_account *a)
{
	static const char prefix[] = "grant_type=urn%3Aietf%3Aparams%3Aoauth"
				     "%3Agrant-type%3Ajwt-bearer&assertion=";
	char *body, *jwt;

	body = fcm_token_request_body("aa.bb-_.cc");
	ASSERT_EQ_STR(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-"
		      "type%3Ajwt-bearer&assertion=aa.bb-_.cc");
	free(body);
	body = fcm_token_request_body("a b+c/=&%~");
	ASSERT_EQ_STR(body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-"
		      "type%3Ajwt-bearer&assertion=a+b%2Bc%2F%3D%26%25%7E");
	free(body);
	ASSERT_TRUE(fcm_token_request_body(NULL) == NULL);

	/* A real assertion goes through unescaped. */
	jwt = fcm_assertion(a, T0);
	body = jwt ? fcm_token_request_body(jwt) : NULL;
	ASSERT_TRUE(body != NULL);
	if (body) {
		ASSERT_TRUE(strncmp(body, prefix, strlen(prefix)) == 0);
		ASSERT_EQ_STR(body + strlen(prefix), jwt);
	}
	pushauth_secret_free(body);
	pushauth_secret_free(jwt);
}

/* ---- FCM token answer ----------------------------------------------- */

static void parse_ok_at(int line, const char *body, const char *token,
			int64_t expires)
{
	char err[512] = "", *tok = (char *)&tok;
	int64_t exp = -1;
	int rc = fcm_token_parse(body, strlen(body), &tok, &exp, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "line %d: %s\n", line, err);
	ASSERT_EQ_INT(rc, 0);
	ASSERT_EQ_STR(rc == 0 ? tok : NULL, token);
	ASSERT_EQ_INT(exp, expires);
	if (rc == 0)
		pushauth_secret_free(tok);
}

static void parse_err_at(int line, const char *body, size_t len,
			 const char *expected)
{
	char err[512] = "", *tok = (char *)&tok;
	int64_t exp = -1;
	int rc = fcm_token_parse(body, len, &tok, &exp, err, sizeof err);
	if (rc != -1 || strcmp(err, expected) != 0)
		fprintf(stderr, "line %d: body %.200s\n", line, body);
	ASSERT_EQ_INT(rc, -1);
	ASSERT_TRUE(tok == NULL);
	ASSERT_EQ_STR(err, expected);
	ASSERT_TRUE(strstr(err, "ya29") == NULL);
}

#define parse_ok(body, token, expires) \
	parse_ok_at(__LINE__, body, token, expires)
#define parse_err(body, expected) \
	parse_err_at(__LINE__, body, strlen(body), expected)

static void test_fcm_token_parse(void)
{
	static const char trailing[] = "{\"access_token\":\"ya29.t\","
				       "\"expires_in\":60}garbage";
	char *big;

	parse_ok("{\"access_token\":\"ya29.c.Kp8B-x_y\",\"expires_in\":3599,"
		 "\"token_type\":\"Bearer\"}", "ya29.c.Kp8B-x_y", 3599);
	parse_ok("{\"expires_in\":120,\"access_token\":\"ya29.b\"}", "ya29.b",
		 120);
	parse_ok("{\"access_token\":\"ya29.b\",\"expires_in\":1,"
		 "\"token_type\":\"bearer\",\"scope\":\"x\"}", "ya29.b", 1);
	/* Only len bytes are read. */
	parse_err_at(__LINE__, trailing, strlen(trailing),
		     "token answer: invalid JSON at line 1 column 48");
	{
		char err[256], *tok = NULL;
		int64_t exp = 0;
		ASSERT_EQ_INT(fcm_token_parse(trailing, strlen(trailing) - 7,
					      &tok, &exp, err, sizeof err), 0);
		ASSERT_EQ_STR(tok, "ya29.t");
		ASSERT_EQ_INT(exp, 60);
		free(tok);
	}

	parse_err("", "token answer: empty");
	parse_err("not json ya29.secret",
		  "token answer: invalid JSON at line 1 column 3");
	parse_err("[\"ya29.x\"]", "token answer: expected a JSON object");
	parse_err("{\"expires_in\":3599}", "token answer: access_token missing");
	parse_err("{\"access_token\":5,\"expires_in\":3599}",
		  "token answer: access_token: expected a string");
	parse_err("{\"access_token\":\"\",\"expires_in\":3599}",
		  "token answer: access_token is empty");
	parse_err("{\"access_token\":\"ya29 x\",\"expires_in\":3599}",
		  "token answer: access_token contains a character not "
		  "allowed in an HTTP header");
	parse_err("{\"access_token\":\"ya29.x\\r\\nX-Evil: 1\","
		  "\"expires_in\":3599}",
		  "token answer: access_token contains a character not "
		  "allowed in an HTTP header");
	parse_err("{\"access_token\":\"ya29.x\"}",
		  "token answer: expires_in missing");
	parse_err("{\"access_token\":\"ya29.x\",\"expires_in\":\"3599\"}",
		  "token answer: expires_in: expected an integer from 1 to "
		  "31622400");
	parse_err("{\"access_token\":\"ya29.x\",\"expires_in\":0}",
		  "token answer: expires_in: expected an integer from 1 to "
		  "31622400");
	parse_err("{\"access_token\":\"ya29.x\",\"expires_in\":-5}",
		  "token answer: expires_in: expected an integer from 1 to "
		  "31622400");
	parse_err("{\"access_token\":\"ya29.x\",\"expires_in\":3599.5}",
		  "token answer: expires_in: expected an integer from 1 to "
		  "31622400");
	parse_err("{\"access_token\":\"ya29.x\",\"expires_in\":3599,"
		  "\"token_type\":\"mac\"}",
		  "token answer: token_type: expected \"Bearer\"");
	parse_err("{\"access_token\":\"ya29.x\",\"access_token\":\"ya29.y\","
		  "\"expires_in\":3599}",
		  "token answer: duplicate key at line 1 column 39");
	parse_err("{\"error\":\"invalid_grant\",\"error_description\":"
		  "\"Invalid JWT Signature.\"}",
		  "token endpoint error \"invalid_grant\": Invalid JWT "
		  "Signature.");
	parse_err("{\"error\":\"unauthorized_client\"}",
		  "token endpoint error \"unauthorized_client\"");
	parse_err("{\"error\":\"x\\ny\",\"error_description\":\"0123456789"
		  "0123456789012345678901234567890123456789012345678901234567"
		  "89012345678901234567890123456789tail\"}",
		  "token endpoint error \"x?y\": "
		  "0123456789012345678901234567890123456789"
		  "0123456789012345678901234567890123456789"
		  "01234567890123456789...");

	big = malloc(70 * 1024);
	if (big) {
		memset(big, ' ', 70 * 1024);
		memcpy(big, "{\"access_token\":\"ya29.x\",\"expires_in\":1}", 40);
		big[70 * 1024 - 1] = '\0';
		parse_err(big, "token answer: larger than 64 KiB");
		free(big);
	}
}

/* ---- FCM token cache ------------------------------------------------ */

static void test_fcm_cache(void)
{
	struct fcm_token_cache c = {0};
	const int64_t now = T0;

	ASSERT_TRUE(fcm_token_cached(&c, now) == NULL);
	fcm_token_store(&c, strdup("ya29.first"), now, 3599);
	ASSERT_EQ_INT(c.expires_at_s, now + 3599);
	ASSERT_EQ_STR(fcm_token_cached(&c, now), "ya29.first");
	ASSERT_EQ_STR(fcm_token_cached(&c, now + 60), "ya29.first");
	ASSERT_EQ_STR(fcm_token_cached(&c, now + 3599 - 301), "ya29.first");
	/* Within 5 minutes of expiry, and after it: absent. */
	ASSERT_TRUE(fcm_token_cached(&c, now + 3599 - 300) == NULL);
	ASSERT_TRUE(fcm_token_cached(&c, now + 3599) == NULL);
	ASSERT_TRUE(fcm_token_cached(&c, now + 99999) == NULL);

	/* A newer token replaces the old one (which is freed). */
	fcm_token_store(&c, strdup("ya29.second"), now + 3400, 3599);
	ASSERT_EQ_STR(fcm_token_cached(&c, now + 3400), "ya29.second");
	ASSERT_EQ_STR(fcm_token_cached(&c, now + 3400 + 3298), "ya29.second");
	ASSERT_TRUE(fcm_token_cached(&c, now + 3400 + 3299) == NULL);

	/* A 401: forgotten at once, however fresh. */
	fcm_token_forget(&c);
	ASSERT_TRUE(c.access_token == NULL);
	ASSERT_TRUE(fcm_token_cached(&c, now + 3400) == NULL);

	/* Lifetimes within the margin are never served from the cache. */
	fcm_token_store(&c, strdup("ya29.short"), now, 300);
	ASSERT_TRUE(fcm_token_cached(&c, now) == NULL);
	fcm_token_store(&c, strdup("ya29.short"), now, 301);
	ASSERT_EQ_STR(fcm_token_cached(&c, now), "ya29.short");
	ASSERT_TRUE(fcm_token_cached(&c, now + 1) == NULL);
	/* Nonsense lifetimes and NULL tokens leave it empty. */
	fcm_token_store(&c, strdup("ya29.zero"), now, 0);
	ASSERT_TRUE(c.access_token == NULL);
	fcm_token_store(&c, strdup("ya29.neg"), now, -10);
	ASSERT_TRUE(c.access_token == NULL);
	fcm_token_store(&c, NULL, now, 3599);
	ASSERT_TRUE(fcm_token_cached(&c, now) == NULL);

	fcm_token_store(&c, strdup("ya29.last"), now, 3599);
	fcm_token_cache_clear(&c);
	ASSERT_TRUE(c.access_token == NULL);
	ASSERT_TRUE(fcm_token_cached(&c, now) == NULL);
	fcm_token_cache_clear(&c);
}

/* ---- APNs ------------------------------------------------------------ */

static struct apns_key *test_apns_load(void)
{
	char err[1024] = "";
	struct apns_key *k = NULL, *k2 = NULL;
	const char *path = tmp_path("AuthKey.p8");
	const char *sec1 = tmp_path("sec1.pem");

	ASSERT_EQ_INT(apns_key_load(path, KEY_ID, TEAM_ID, &k, err, sizeof err),
		      0);
	ASSERT_EQ_STR(err, "");
	if (!k) {
		fprintf(stderr, "apns_key_load: %s\n", err);
		exit(1);
	}
	/* The SEC1 ("EC PRIVATE KEY") form of the same key is accepted. */
	ASSERT_EQ_INT(apns_key_load(sec1, KEY_ID, TEAM_ID, &k2, err,
				    sizeof err), 0);
	apns_key_free(k2);

	expect_apns_err(tmp_path("p384.p8"),
			"$F: expected an EC P-256 private key, found EC "
			"secp384r1");
	expect_apns_err(tmp_path("rsa.p8"),
			"$F: expected an EC P-256 private key, found RSA (2048 "
			"bits)");
	expect_apns_err(tmp_path("ed25519.p8"),
			"$F: expected an EC P-256 private key, found ED25519 "
			"(256 bits)");
	/* An encrypted key is refused without prompting for a passphrase. */
	expect_apns_err(tmp_path("encrypted.p8"),
			"$F: not an unencrypted PEM private key");
	expect_apns_err(write_file("garbage.p8", "not a key\n", 0600),
			"$F: not an unencrypted PEM private key");
	{
		char *pem = read_file(path);
		const char *p = write_file("group.p8", pem, 0640);
		free(pem);
		expect_apns_err(p, "push.apns.key_file: $F is readable by group "
				"or others (chmod 600)");
	}
	expect_apns_err_at(__LINE__, path, "", TEAM_ID, "$F: key_id is empty");
	expect_apns_err_at(__LINE__, path, KEY_ID, NULL, "$F: team_id is empty");
	expect_apns_err_at(__LINE__, path, KEY_ID, "DEF 456",
			   "$F: team_id: unexpected character");
	return k;
}

static void test_apns_jwt(const struct apns_key *k)
{
	char **tokens = calloc(APNS_TOKENS, sizeof *tokens);
	json_t *res, *r;
	size_t i, zeros = 0;

	if (!tokens)
		exit(1);
	for (i = 0; i < APNS_TOKENS; i++) {
		tokens[i] = apns_jwt(k, T0 + (int64_t)i);
		ASSERT_TRUE(tokens[i] != NULL);
	}
	res = verify_tokens("ES256", tmp_path("AuthKey.pub"), tokens,
			    APNS_TOKENS);
	ASSERT_TRUE(res != NULL);
	if (res) {
		json_array_foreach(res, i, r) {
			ASSERT_EQ_STR(jstr(r, "header", "alg"), "ES256");
			ASSERT_EQ_STR(jstr(r, "header", "kid"), KEY_ID);
			ASSERT_EQ_STR(jstr(r, "claims", "iss"), TEAM_ID);
			ASSERT_EQ_INT(jint(r, "claims", "iat"), T0 + (int64_t)i);
			ASSERT_EQ_INT(jsize(r, "claims"), 2);
			ASSERT_EQ_INT(json_integer_value(
				json_object_get(r, "sig_len")), 64);
			if (json_is_true(json_object_get(r, "leading_zero")))
				zeros++;
		}
		/* Header: alg and kid, plus libjwt's typ "JWT". */
		r = json_array_get(res, 0);
		ASSERT_EQ_INT(jsize(r, "header"), 3);
		ASSERT_EQ_STR(jstr(r, "header", "typ"), "JWT");
		json_decref(res);
	}
	printf("apns_jwt: %d ES256 tokens verified, %zu with r or s padded "
	       "from a leading zero byte\n", APNS_TOKENS, zeros);

	/* The verifier can fail: a damaged signature is refused. */
	{
		char *bad = strdup(tokens[0]);
		char *dot = bad ? strrchr(bad, '.') : NULL;
		ASSERT_TRUE(dot != NULL);
		if (dot) {
			dot[5] = dot[5] == 'A' ? 'B' : 'A';
			fprintf(stderr, "(the verifier must refuse the next "
				"token)\n");
			res = verify_tokens("ES256", tmp_path("AuthKey.pub"),
					    &bad, 1);
			ASSERT_TRUE(res == NULL);
			json_decref(res);
		}
		free(bad);
	}

	ASSERT_TRUE(apns_jwt(NULL, T0) == NULL);
	ASSERT_TRUE(apns_jwt(k, -1) == NULL);
	for (i = 0; i < APNS_TOKENS; i++)
		pushauth_secret_free(tokens[i]);
	free(tokens);
}

/* The claims of one token, verified. */
static json_t *verify_one(const char *token)
{
	char *t = (char *)token;
	json_t *res = verify_tokens("ES256", tmp_path("AuthKey.pub"), &t, 1);
	json_t *r = res ? json_incref(json_array_get(res, 0)) : NULL;
	json_decref(res);
	return r;
}

static void test_apns_policy(const struct apns_key *k)
{
	struct apns_token_cache c = {0};
	static const int64_t reuse[] = {
		0, 1, 20 * 60 - 1, 20 * 60, 30 * 60, 39 * 60, 40 * 60 - 1
	};
	const char *tok;
	char *first, *second, *third;
	json_t *r2, *r3;
	int64_t t, last_mint;
	size_t i;
	int mints;

	tok = apns_token_get(&c, k, T0);
	ASSERT_TRUE(tok != NULL);
	first = tok ? strdup(tok) : NULL;
	ASSERT_EQ_INT(c.minted_s, T0);
	for (i = 0; i < sizeof reuse / sizeof reuse[0]; i++) {
		tok = apns_token_get(&c, k, T0 + reuse[i]);
		ASSERT_EQ_STR(tok, first);
		ASSERT_EQ_INT(c.minted_s, T0);
	}
	/* At 40 minutes: a new token, with the new iat. */
	tok = apns_token_get(&c, k, T0 + 40 * 60);
	ASSERT_TRUE(tok && first && strcmp(tok, first) != 0);
	ASSERT_EQ_INT(c.minted_s, T0 + 40 * 60);
	second = tok ? strdup(tok) : NULL;
	r2 = second ? verify_one(second) : NULL;
	ASSERT_TRUE(r2 != NULL);
	ASSERT_EQ_INT(jint(r2, "claims", "iat"), T0 + 40 * 60);
	ASSERT_EQ_STR(apns_token_get(&c, k, T0 + 40 * 60 + 5), second);
	/* A clock that went backwards keeps the token. */
	ASSERT_EQ_STR(apns_token_get(&c, k, T0), second);

	/* 403 ExpiredProviderToken: a new token even in the same second;
	 * equal header and claims, a different (randomized) signature. */
	tok = apns_token_remint(&c, k, T0 + 40 * 60);
	ASSERT_TRUE(tok && second && strcmp(tok, second) != 0);
	third = tok ? strdup(tok) : NULL;
	r3 = third ? verify_one(third) : NULL;
	ASSERT_TRUE(r3 != NULL);
	ASSERT_TRUE(r2 && r3 &&
		    json_equal(json_object_get(r2, "header"),
			       json_object_get(r3, "header")) &&
		    json_equal(json_object_get(r2, "claims"),
			       json_object_get(r3, "claims")));
	ASSERT_EQ_STR(apns_token_get(&c, k, T0 + 40 * 60 + 1), third);
	ASSERT_EQ_INT(c.minted_s, T0 + 40 * 60);

	/* Failures leave the cache as it was. */
	ASSERT_TRUE(apns_token_remint(&c, NULL, T0 + 41 * 60) == NULL);
	ASSERT_EQ_STR(c.jwt, third);
	ASSERT_TRUE(apns_token_get(&c, NULL, T0 + 99 * 60) == NULL);
	ASSERT_EQ_STR(c.jwt, third);
	ASSERT_TRUE(apns_token_get(&c, k, -5) == NULL);
	ASSERT_EQ_STR(c.jwt, third);

	/* Requests every 7 s for 6 hours: every mint 20..60 minutes after the
	 * previous one, and no token used at 60 minutes of age or more. */
	apns_token_cache_clear(&c);
	ASSERT_TRUE(c.jwt == NULL);
	mints = 0;
	last_mint = -1;
	for (t = T0; t < T0 + 6 * 3600; t += 7) {
		const char *before = c.jwt;
		tok = apns_token_get(&c, k, t);
		ASSERT_TRUE(tok != NULL);
		if (tok != before) {
			if (last_mint >= 0) {
				ASSERT_TRUE(t - last_mint >= 20 * 60);
				ASSERT_TRUE(t - last_mint < 60 * 60);
			}
			last_mint = t;
			mints++;
		}
		ASSERT_TRUE(t - c.minted_s < 60 * 60);
	}
	ASSERT_EQ_INT(mints, 9);
	apns_token_cache_clear(&c);
	apns_token_cache_clear(&c);
	ASSERT_TRUE(c.jwt == NULL);

	json_decref(r2);
	json_decref(r3);
	free(first);
	free(second);
	free(third);
}

int main(void)
{
	struct fcm_account *a;
	struct apns_key *k;
	char cmd[128];

	tests_dir = getenv("ROUSE_TESTS_DIR");
	if (!tests_dir)
		tests_dir = ".";
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rouse-pushauth-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	make_keys();

	a = test_fcm_load();
	test_fcm_load_errors();
	test_fcm_assertion(a);
	test_fcm_request_body(a);
	test_fcm_token_parse();
	test_fcm_cache();
	fcm_account_free(a);

	k = test_apns_load();
	test_apns_jwt(k);
	test_apns_policy(k);
	apns_key_free(k);

	free(rsa_pem);
	if (testutil_failures == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		run(cmd);
	} else {
		fprintf(stderr, "keys kept in %s\n", tmpdir);
	}
	TEST_DONE();
}
