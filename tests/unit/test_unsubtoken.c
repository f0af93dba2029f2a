/* test_unsubtoken.c: unsubscribe tokens — key parsing, minting, strict
 * verification, key rotation and fixed known-answer vectors.
 *
 * The known answers were computed independently (Python hmac, hashlib and
 * base64.urlsafe_b64encode over the layout in unsubtoken.h).
 */
#include <stdbool.h>

#include "channel.h"
#include "unsubtoken.h"
#include "testutil.h"

#define SECRET_A "0123456789abcdef0123456789abcdef"
#define JOB_A "0190f5a2-7c1e-7a3b-9d4e-0123456789ab"
#define KAT_A "AQEAA3U0MhFhbGljZUBleGFtcGxlLmNvbQGQ9aJ8Hno7nU4BI0Vniavv64l" \
	"AYYkjRQGEgBJqunSB"
#define SECRET_B "rotation-secret-number-seven!!"
#define KAT_B "AQf_AA4rODYxMzgwMDEzODAwMAAAAAAAAAAAAAAAAAAAAABj_gFSVYZG9TK" \
	"nYi9Kd38s"

static struct unsub_keys *keys(const char *secret)
{
	struct unsub_keys *k = NULL;
	char err[256] = "";
	if (unsub_keys_parse(secret, &k, err, sizeof err) != 0) {
		fprintf(stderr, "unsub_keys_parse failed: %s\n", err);
		exit(1);
	}
	return k;
}

static struct unsub_subject subject(int ch, const char *user,
				    const char *address, const char *job)
{
	struct unsub_subject s;
	memset(&s, 0, sizeof s);
	s.channel = ch;
	snprintf(s.user, sizeof s.user, "%s", user);
	snprintf(s.address, sizeof s.address, "%s", address);
	snprintf(s.job_id, sizeof s.job_id, "%s", job);
	return s;
}

static int verify(const struct unsub_keys *k, const char *t,
		  struct unsub_subject *out)
{
	return unsub_token_verify(k, t, strlen(t), out);
}

static void test_known_answers(void)
{
	struct unsub_keys *a = keys(SECRET_A);
	struct unsub_keys *b = keys("7:" SECRET_B);
	struct unsub_subject s = subject(CH_EMAIL, "u42", "alice@example.com",
					 JOB_A), out;
	char *t = unsub_token_mint(a, &s);

	ASSERT_EQ_STR(t, KAT_A);
	ASSERT_EQ_INT(verify(a, KAT_A, &out), 0);
	ASSERT_EQ_INT(out.channel, CH_EMAIL);
	ASSERT_EQ_STR(out.user, "u42");
	ASSERT_EQ_STR(out.address, "alice@example.com");
	ASSERT_EQ_STR(out.job_id, JOB_A);
	free(t);

	s = subject(CH_ALL, "", "+8613800138000", "");
	t = unsub_token_mint(b, &s);
	ASSERT_EQ_STR(t, KAT_B);
	ASSERT_EQ_INT(verify(b, KAT_B, &out), 0);
	ASSERT_EQ_INT(out.channel, CH_ALL);
	ASSERT_EQ_STR(out.user, "");
	ASSERT_EQ_STR(out.address, "+8613800138000");
	ASSERT_EQ_STR(out.job_id, "");
	/* the same secret under another key id is a different key */
	ASSERT_EQ_INT(verify(a, KAT_B, &out), -1);
	free(t);
	unsub_keys_free(a);
	unsub_keys_free(b);
}

static void test_round_trip(void)
{
	struct unsub_keys *k = keys(SECRET_A);
	static const int chans[] = { CH_EMAIL, CH_SMS, CH_PUSH, CH_ALL };
	char longest[256];
	struct unsub_subject s, out;

	memset(longest, 'x', 255);
	longest[255] = '\0';
	for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
		char *t;
		s = subject(chans[i], "用户-42", "Bob.Smith+tag@Example.COM",
			    "0190F5A2-7C1E-7A3B-9D4E-0123456789AB");
		t = unsub_token_mint(k, &s);
		ASSERT_TRUE(t != NULL);
		ASSERT_TRUE(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
				   "nopqrstuvwxyz0123456789-_") == strlen(t));
		ASSERT_EQ_INT(verify(k, t, &out), 0);
		ASSERT_EQ_INT(out.channel, chans[i]);
		ASSERT_EQ_STR(out.user, "用户-42");
		ASSERT_EQ_STR(out.address, "Bob.Smith+tag@Example.COM");
		ASSERT_EQ_STR(out.job_id, JOB_A); /* lower-cased */
		free(t);
	}

	/* the longest fields fit; the token stays within UNSUB_TOKEN_MAX */
	s = subject(CH_SMS, longest, longest, JOB_A);
	{
		char *t = unsub_token_mint(k, &s);
		ASSERT_TRUE(t != NULL);
		if (t) {
			ASSERT_EQ_INT(strlen(t), UNSUB_TOKEN_MAX);
			ASSERT_EQ_INT(verify(k, t, &out), 0);
			ASSERT_EQ_STR(out.user, longest);
		}
		free(t);
	}
	/* user only, address only */
	s = subject(CH_PUSH, "u1", "", JOB_A);
	{
		char *t = unsub_token_mint(k, &s);
		ASSERT_EQ_INT(verify(k, t, &out), 0);
		ASSERT_EQ_STR(out.user, "u1");
		ASSERT_EQ_STR(out.address, "");
		free(t);
	}
	unsub_keys_free(k);
}

static void test_mint_refuses(void)
{
	struct unsub_keys *k = keys(SECRET_A);
	struct unsub_subject s = subject(CH_EMAIL, "u42", "", JOB_A);

	memset(s.user, 'u', 256);            /* 256 bytes, no terminator room */
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(CH_EMAIL, "u42", "", JOB_A);
	memset(s.address, 'a', 256);
	s.address[256] = '\0';
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(CH_EMAIL, "", "", JOB_A);
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(3, "u42", "", JOB_A);
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(-2, "u42", "", JOB_A);
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(CH_EMAIL, "u42", "", "not-a-uuid");
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(CH_EMAIL, "u42", "", "0190f5a2-7c1e-7a3b-9d4e-0123456789ag");
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	s = subject(CH_EMAIL, "u42", "", "0190f5a2x7c1e-7a3b-9d4e-0123456789ab");
	ASSERT_TRUE(unsub_token_mint(k, &s) == NULL);
	unsub_keys_free(k);
}

/* Every single-character change, every bit flip and every truncation of
 * the token minted for s fails. */
static void tamper_check(const struct unsub_keys *k,
			 const struct unsub_subject *s)
{
	struct unsub_subject out;
	char *t = unsub_token_mint(k, s);
	size_t n = strlen(t);
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
				       "nopqrstuvwxyz0123456789-_=+/.%";
	int accepted = 0, tried = 0;

	ASSERT_EQ_INT(verify(k, t, &out), 0);
	for (size_t i = 0; i < n; i++) {
		for (size_t a = 0; a < sizeof alphabet - 1; a++) {
			char saved = t[i];
			if (alphabet[a] == saved)
				continue;
			t[i] = alphabet[a];
			tried++;
			if (verify(k, t, &out) == 0)
				accepted++;
			t[i] = saved;
		}
		for (int bit = 0; bit < 8; bit++) {
			char saved = t[i];
			t[i] = (char)(saved ^ (1 << bit));
			tried++;
			if (unsub_token_verify(k, t, n, &out) == 0)
				accepted++;
			t[i] = saved;
		}
	}
	ASSERT_TRUE(tried > 1000);
	ASSERT_EQ_INT(accepted, 0);

	accepted = 0;
	for (size_t len = 0; len < n; len++)
		if (unsub_token_verify(k, t, len, &out) == 0)
			accepted++;
	ASSERT_EQ_INT(accepted, 0);
	{
		char *longer = malloc(n + 2);
		memcpy(longer, t, n);
		memcpy(longer + n, "A", 2);
		ASSERT_EQ_INT(verify(k, longer, &out), -1);
		memcpy(longer + n, "=", 2);
		ASSERT_EQ_INT(verify(k, longer, &out), -1);
		free(longer);
	}
	/* failure leaves nothing behind */
	t[0] = t[0] == 'B' ? 'C' : 'B';
	memset(&out, 0x55, sizeof out);
	ASSERT_EQ_INT(verify(k, t, &out), -1);
	ASSERT_EQ_STR(out.user, "");
	ASSERT_EQ_STR(out.address, "");
	free(t);
}

static void test_tampering(void)
{
	struct unsub_keys *k = keys(SECRET_A);
	struct unsub_subject out, s;

	/* payloads of 57, 56 and 55 bytes: the last base64url character
	 * carries all its bits, 2 spare bits, 4 spare bits */
	s = subject(CH_EMAIL, "u42", "alice@example.com", JOB_A);
	tamper_check(k, &s);
	s = subject(CH_EMAIL, "u42", "alice@example.co", JOB_A);
	tamper_check(k, &s);
	s = subject(CH_EMAIL, "u42", "alice@example.c", JOB_A);
	tamper_check(k, &s);

	ASSERT_EQ_INT(verify(k, "", &out), -1);
	ASSERT_EQ_INT(unsub_token_verify(k, NULL, 0, &out), -1);
	ASSERT_EQ_INT(verify(k, "AAAA", &out), -1);
	unsub_keys_free(k);
}

static void test_other_user(void)
{
	struct unsub_keys *k = keys(SECRET_A);
	struct unsub_keys *other = keys("fedcba9876543210fedcba9876543210");
	struct unsub_subject s = subject(CH_EMAIL, "u43", "bob@example.com",
					 JOB_A), out;
	char *t = unsub_token_mint(k, &s);
	char *t2;

	/* a valid token names its own subject, never another's */
	ASSERT_EQ_INT(verify(k, t, &out), 0);
	ASSERT_EQ_STR(out.user, "u43");
	ASSERT_TRUE(strcmp(t, KAT_A) != 0);
	/* minted with another deployment's secret: refused */
	t2 = unsub_token_mint(other, &s);
	ASSERT_EQ_INT(verify(k, t2, &out), -1);
	free(t);
	free(t2);
	unsub_keys_free(k);
	unsub_keys_free(other);
}

static void test_rotation(void)
{
	struct unsub_keys *old = keys(SECRET_A);     /* key id 1 */
	struct unsub_keys *rotated = keys("2:" SECRET_B "  1:" SECRET_A);
	struct unsub_keys *dropped = keys("2:" SECRET_B);
	struct unsub_subject s = subject(CH_SMS, "u42", "", JOB_A), out;
	char *t_old = unsub_token_mint(old, &s);
	char *t_new = unsub_token_mint(rotated, &s);

	ASSERT_EQ_INT(unsub_keys_mint_kid(old), 1);
	ASSERT_EQ_INT(unsub_keys_mint_kid(rotated), 2);
	ASSERT_TRUE(strcmp(t_old, t_new) != 0);
	ASSERT_EQ_INT(verify(rotated, t_old, &out), 0);
	ASSERT_EQ_STR(out.user, "u42");
	ASSERT_EQ_INT(verify(rotated, t_new, &out), 0);
	ASSERT_EQ_INT(verify(old, t_new, &out), -1);   /* kid 2 unknown */
	ASSERT_EQ_INT(verify(dropped, t_old, &out), -1);
	ASSERT_EQ_INT(verify(dropped, t_new, &out), 0);
	free(t_old);
	free(t_new);
	unsub_keys_free(old);
	unsub_keys_free(rotated);
	unsub_keys_free(dropped);
}

static void expect_refused(const char *secret, const char *want)
{
	struct unsub_keys *k = (struct unsub_keys *)&k;
	char err[256] = "";

	ASSERT_EQ_INT(unsub_keys_parse(secret, &k, err, sizeof err), -1);
	ASSERT_TRUE(k == NULL);
	ASSERT_TRUE(strstr(err, "unsubscribe.secret_env") != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, want);
	ASSERT_TRUE(strstr(err, want) != NULL);
	/* never the secret itself */
	if (secret && strlen(secret) >= 4) {
		const char *tail = secret + strlen(secret) - 4;
		ASSERT_TRUE(strstr(err, tail) == NULL);
	}
}

static void test_key_parsing(void)
{
	struct unsub_keys *k;

	expect_refused(NULL, "no secret");
	expect_refused("", "empty");
	expect_refused("  \n", "empty");
	expect_refused("short-secret!XY", "shorter than 16");
	expect_refused("3:short-secretQZ", "key id 3 is shorter than 16");
	expect_refused("1:" SECRET_A " 2:tooshortWQ", "key id 2 is shorter");
	expect_refused("1:" SECRET_A " 1:" SECRET_B, "key id 1 appears");
	expect_refused("0:" SECRET_A, "entry 1");
	expect_refused("256:" SECRET_A, "entry 1");
	expect_refused("1:" SECRET_A " " SECRET_B, "entry 2");
	expect_refused("1:" SECRET_A " x:" SECRET_B, "entry 2");

	/* exactly 16 bytes is enough */
	k = keys("0123456789abcdef");
	ASSERT_EQ_INT(unsub_keys_mint_kid(k), 1);
	unsub_keys_free(k);
	k = keys("  255:0123456789abcdef\n");
	ASSERT_EQ_INT(unsub_keys_mint_kid(k), 255);
	unsub_keys_free(k);
	unsub_keys_free(NULL);
}

int main(void)
{
	test_known_answers();
	test_round_trip();
	test_mint_refuses();
	test_tampering();
	test_other_user();
	test_rotation();
	test_key_parsing();
	TEST_DONE();
}
