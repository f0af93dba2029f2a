/* test_timefmt.c: durations, RFC 3339 parsing and formatting, the clock.
 *
 * Epoch values were checked with GNU date, e.g.
 *   date -u -d 2026-11-24T02:00:00Z +%s   -> 1795485600
 * "2026-11-24 02:00:00Z" (a space instead of T, which RFC 3339 §5.6 only
 * allows "by mutual agreement") is refused: every timestamp rouse reads
 * comes from a JSON protocol where "T" is the documented form.
 */
#include <stdbool.h>
#include <time.h>

#include "testutil.h"
#include "timefmt.h"

static int64_t dur(const char *s)
{
	int64_t ms = -12345;
	if (duration_parse(s, &ms) != 0)
		return -1;
	return ms;
}

static int64_t ts(const char *s)
{
	int64_t ms = -12345;
	if (rfc3339_parse(s, &ms) != 0)
		return INT64_MIN;
	return ms;
}

static void test_duration_valid(void)
{
	ASSERT_EQ_INT(dur("30s"), 30000);
	ASSERT_EQ_INT(dur("15m"), 900000);
	ASSERT_EQ_INT(dur("24h"), 86400000);
	ASSERT_EQ_INT(dur("7d"), 604800000);
	ASSERT_EQ_INT(dur("250ms"), 250);
	ASSERT_EQ_INT(dur("0s"), 0);
	ASSERT_EQ_INT(dur("0ms"), 0);
	ASSERT_EQ_INT(dur("1h"), 3600000);
	ASSERT_EQ_INT(dur("007s"), 7000);
	/* Largest values that still fit. */
	ASSERT_EQ_INT(dur("9223372036854775807ms"), INT64_MAX);
	ASSERT_EQ_INT(dur("106751991167d"), INT64_C(106751991167) * 86400000);
}

static void test_duration_invalid(void)
{
	const char *bad[] = {
		"5x", "", "-1s", "1.5h", "10", "s", "ms", "+1s", " 1s", "1s ",
		"1 s", "1S", "1sec", "1m1s", "1hh", "1msx", "1e3s", "0x10s",
		"9223372036854775808ms",      /* digits overflow */
		"106751991168d",              /* unit multiplication overflows */
		"9223372036854776s",
		"99999999999999999999999999s",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 42;
		int rc = duration_parse(bad[i], &ms);
		if (rc != -1)
			fprintf(stderr, "accepted bad duration \"%s\"\n", bad[i]);
		ASSERT_EQ_INT(rc, -1);
		ASSERT_EQ_INT(ms, 42); /* untouched on failure */
	}
	int64_t ms;
	ASSERT_EQ_INT(duration_parse(NULL, &ms), -1);
}

static void test_rfc3339_valid(void)
{
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00Z"), INT64_C(1795485600000));
	ASSERT_EQ_INT(ts("2026-11-24t02:00:00z"), INT64_C(1795485600000));
	ASSERT_EQ_INT(ts("2026-11-24T10:00:00+08:00"), INT64_C(1795485600000));
	ASSERT_EQ_INT(ts("2026-11-23T21:30:00-04:30"), INT64_C(1795485600000));
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00-00:00"), INT64_C(1795485600000));
	ASSERT_EQ_INT(ts("2026-11-24T10:00:00.250+08:00"), INT64_C(1795485600250));
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00.5Z"), INT64_C(1795485600500));
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00.05Z"), INT64_C(1795485600050));
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00.123456789Z"), INT64_C(1795485600123));
	ASSERT_EQ_INT(ts("2026-11-24T02:00:00.999999999Z"), INT64_C(1795485600999));
	ASSERT_EQ_INT(ts("1970-01-01T00:00:00Z"), 0);
	ASSERT_EQ_INT(ts("1969-12-31T23:59:59Z"), -1000);
	ASSERT_EQ_INT(ts("1969-12-31T23:59:59.999Z"), -1);
	ASSERT_EQ_INT(ts("2000-03-01T00:00:00Z"), INT64_C(951868800000));
	ASSERT_EQ_INT(ts("2000-02-29T00:00:00Z"), INT64_C(951782400000));
	ASSERT_EQ_INT(ts("2028-02-29T00:00:00Z"), INT64_C(1835395200000));
	ASSERT_EQ_INT(ts("9999-12-31T23:59:59Z"), INT64_C(253402300799000));
	ASSERT_EQ_INT(ts("0000-01-01T00:00:00Z"), INT64_C(-62167219200000));
	ASSERT_EQ_INT(ts("2026-12-31T23:59:59+23:59"), ts("2026-12-31T00:00:59Z"));
}

static void test_rfc3339_invalid(void)
{
	const char *bad[] = {
		"",
		"2026-02-29T00:00:00Z",       /* 2026 is not a leap year */
		"1900-02-29T00:00:00Z",       /* century, not leap */
		"2026-13-01T00:00:00Z",       /* month 13 */
		"2026-00-01T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-01-32T00:00:00Z",
		"2026-11-24T24:00:00Z",       /* hour 24 */
		"2026-11-24T23:60:00Z",
		"2026-12-31T23:59:60Z",       /* leap second refused */
		"2026-11-24 02:00:00Z",       /* space separator refused */
		"2026-11-24T02:00:00",        /* no offset */
		"2026-11-24T02:00Z",          /* no seconds */
		"2026-11-24",
		"2026-11-24T02:00:00ZZ",      /* trailing junk */
		"2026-11-24T02:00:00Z ",
		" 2026-11-24T02:00:00Z",
		"2026-11-24T02:00:00+08:00x",
		"2026-11-24T02:00:00.Z",      /* empty fraction */
		"2026-11-24T02:00:00.1234567890Z", /* 10 fraction digits */
		"2026-11-24T02:00:00+24:00",
		"2026-11-24T02:00:00+08:60",
		"2026-11-24T02:00:00+0800",
		"2026-11-24T02:00:00+8:00",
		"26-11-24T02:00:00Z",
		"2026-1-24T02:00:00Z",
		"2026/11/24T02:00:00Z",
		"+2026-11-24T02:00:00Z",
		"2026-11-24T02:00:00,5Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 42;
		int rc = rfc3339_parse(bad[i], &ms);
		if (rc != -1)
			fprintf(stderr, "accepted bad timestamp \"%s\"\n", bad[i]);
		ASSERT_EQ_INT(rc, -1);
		ASSERT_EQ_INT(ms, 42);
	}
	int64_t ms;
	ASSERT_EQ_INT(rfc3339_parse(NULL, &ms), -1);
}

static void test_format(void)
{
	char buf[RFC3339_BUFLEN];
	rfc3339_format(INT64_C(1795485600000), buf);
	ASSERT_EQ_STR(buf, "2026-11-24T02:00:00.000Z");
	rfc3339_format(INT64_C(1795485600250), buf);
	ASSERT_EQ_STR(buf, "2026-11-24T02:00:00.250Z");
	rfc3339_format(0, buf);
	ASSERT_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
	rfc3339_format(-1, buf);
	ASSERT_EQ_STR(buf, "1969-12-31T23:59:59.999Z");
	rfc3339_format(INT64_C(1835395200000), buf);
	ASSERT_EQ_STR(buf, "2028-02-29T00:00:00.000Z");
	rfc3339_format(INT64_C(951868800000) - 1, buf);
	ASSERT_EQ_STR(buf, "2000-02-29T23:59:59.999Z");
	rfc3339_format(INT64_C(253402300799999), buf);
	ASSERT_EQ_STR(buf, "9999-12-31T23:59:59.999Z");
	rfc3339_format(INT64_C(-62167219200000), buf);
	ASSERT_EQ_STR(buf, "0000-01-01T00:00:00.000Z");

	/* Extremes must not overflow and must fit the buffer. */
	rfc3339_format(INT64_MAX, buf);
	ASSERT_TRUE(strlen(buf) < RFC3339_BUFLEN);
	ASSERT_EQ_STR(buf, "292278994-08-17T07:12:55.807Z");
	rfc3339_format(INT64_MIN, buf);
	ASSERT_TRUE(strlen(buf) < RFC3339_BUFLEN);
	ASSERT_EQ_STR(buf, "-292275055-05-16T16:47:04.192Z");
}

static void test_round_trip(void)
{
	/* Every day boundary and then some, over ~800 years, every 400-year
	 * cycle edge included: format then parse gives the value back. */
	char buf[RFC3339_BUFLEN];
	int failures = 0;
	for (int64_t ms = INT64_C(-62167219200000); ms < INT64_C(253402300799999);
	     ms += INT64_C(86400000) * 97 + 3723456) {
		int64_t back = 0;
		rfc3339_format(ms, buf);
		if (rfc3339_parse(buf, &back) != 0 || back != ms) {
			if (failures++ < 5)
				fprintf(stderr, "round trip %lld -> %s -> %lld\n",
					(long long)ms, buf, (long long)back);
		}
	}
	ASSERT_EQ_INT(failures, 0);

	/* Parse then format normalises to UTC with milliseconds. */
	int64_t ms = ts("2026-11-24T10:00:00.25+08:00");
	rfc3339_format(ms, buf);
	ASSERT_EQ_STR(buf, "2026-11-24T02:00:00.250Z");
	ms = ts("2028-02-29T23:59:59.999-01:00");
	rfc3339_format(ms, buf);
	ASSERT_EQ_STR(buf, "2028-03-01T00:59:59.999Z");
}

/* time_now_ms is the wall clock in ms. The wall clock may be stepped
 * (NTP) between two readings, so one of three tries must bracket it. */
static void test_now(void)
{
	bool bracketed = false;
	for (int i = 0; i < 3 && !bracketed; i++) {
		int64_t before = (int64_t)time(NULL) * 1000;
		int64_t now = time_now_ms();
		int64_t after = (int64_t)time(NULL) * 1000 + 1000;
		bracketed = now >= before && now <= after;
	}
	ASSERT_TRUE(bracketed);
}

int main(void)
{
	test_duration_valid();
	test_duration_invalid();
	test_rfc3339_valid();
	test_rfc3339_invalid();
	test_format();
	test_round_trip();
	test_now();
	TEST_DONE();
}
