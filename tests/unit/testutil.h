/* testutil.h: assertion macros for the unit tests; each failed assertion
 * prints both sides and the location, and the test exits non-zero. */
#ifndef ROUSE_TESTUTIL_H
#define ROUSE_TESTUTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int testutil_failures;

#define ASSERT_TRUE(c) do { if (!(c)) { \
	fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #c); \
	testutil_failures++; } } while (0)

#define ASSERT_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
		__FILE__, __LINE__, #a, #b, a_, b_); testutil_failures++; } } while (0)

#define ASSERT_EQ_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
		fprintf(stderr, "%s:%d: %s == %s failed:\n  got:      \"%s\"\n  expected: \"%s\"\n", \
			__FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		testutil_failures++; } } while (0)

#define TEST_DONE() do { \
	if (testutil_failures) { fprintf(stderr, "%d assertion(s) failed\n", testutil_failures); return 1; } \
	return 0; } while (0)

#endif
