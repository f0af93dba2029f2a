/* test_quiet.c: quiet-hours arithmetic, by hand and against zoneinfo.
 *
 * The hand-written cases are the ones the contract names (23:00
 * Asia/Shanghai under 21:00-08:00) and the clock changes of 2026 in New
 * York and London; expected instants are written out in UTC. Then every
 * Q and F line of tests/unit/tz_reference.py quiet (windows of all shapes
 * around the clock-change days of several zones, found there by walking
 * the wall clock minute by minute) is checked, and the cost of one
 * quiet_until_ms call is measured and printed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quiet.h"
#include "testutil.h"
#include "tzdb.h"

#define MAX_REPORTED 20
#define S(x) (INT64_C(x) * 1000)   /* Unix seconds -> ms */

static const char *tests_dir(void)
{
	const char *d = getenv("ROUSE_TESTS_DIR");
	return d && *d ? d : ".";
}

static int64_t at_local(const struct tz_zone *z, int y, int mon, int d, int h,
			int mi)
{
	return tz_local_to_utc(z, y, mon, d, h, mi) * 1000;
}

static void check_shanghai(void)
{
	const struct tz_zone *sh = tzdb_get("Asia/Shanghai");
	ASSERT_TRUE(sh != NULL);
	struct quiet_hours night = { 21 * 60, 8 * 60 };
	char buf[QUIET_LOCAL_BUFLEN];

	/* 23:00 on 2026-11-23 (15:00Z) -> 08:00+08:00 the next day */
	int64_t until = quiet_until_ms(&night, sh, S(1795446000));
	ASSERT_EQ_INT(until, S(1795478400));
	quiet_format_local(sh, until, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-11-24T08:00:00+08:00");

	int64_t next_8 = at_local(sh, 2026, 11, 24, 8, 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 11, 24, 7, 59)),
		      next_8);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, next_8 - 1), next_8);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 11, 24, 0, 0)),
		      next_8);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, next_8), 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 11, 24, 20, 59)), 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 11, 24, 21, 0) - 1), 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 11, 24, 21, 0)),
		      at_local(sh, 2026, 11, 25, 8, 0));
	/* the year's last night */
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, at_local(sh, 2026, 12, 31, 22, 0)),
		      at_local(sh, 2027, 1, 1, 8, 0));

	/* a window that does not cross midnight */
	struct quiet_hours lunch = { 13 * 60, 14 * 60 };
	ASSERT_EQ_INT(quiet_until_ms(&lunch, sh, at_local(sh, 2026, 11, 24, 12, 59)), 0);
	ASSERT_EQ_INT(quiet_until_ms(&lunch, sh, at_local(sh, 2026, 11, 24, 13, 0)),
		      at_local(sh, 2026, 11, 24, 14, 0));
	ASSERT_EQ_INT(quiet_until_ms(&lunch, sh, at_local(sh, 2026, 11, 24, 13, 59)),
		      at_local(sh, 2026, 11, 24, 14, 0));
	ASSERT_EQ_INT(quiet_until_ms(&lunch, sh, at_local(sh, 2026, 11, 24, 14, 0)), 0);
	ASSERT_EQ_INT(quiet_until_ms(&lunch, sh, at_local(sh, 2026, 11, 24, 23, 0)), 0);

	/* never quiet, or not a window */
	struct quiet_hours none = { 600, 600 };
	struct quiet_hours bad_start = { -1, 480 };
	struct quiet_hours bad_end = { 1260, 1440 };
	int64_t t = at_local(sh, 2026, 11, 24, 10, 0);
	ASSERT_EQ_INT(quiet_until_ms(&none, sh, t), 0);
	ASSERT_EQ_INT(quiet_until_ms(&bad_start, sh, t), 0);
	ASSERT_EQ_INT(quiet_until_ms(&bad_end, sh, t), 0);
	ASSERT_EQ_INT(quiet_until_ms(NULL, sh, t), 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, INT64_MAX), 0);
	ASSERT_EQ_INT(quiet_until_ms(&night, sh, INT64_MIN), 0);

	/* no zone: UTC; 23:00Z -> 08:00Z */
	ASSERT_EQ_INT(quiet_until_ms(&night, NULL, S(1795474800)), S(1795507200));

	/* the whole event detail the gate writes */
	char range[QUIET_RANGE_BUFLEN], detail[160];
	quiet_format_range(&night, range, sizeof range);
	quiet_format_local(sh, until, buf, sizeof buf);
	snprintf(detail, sizeof detail, "quiet hours %s %s until %s", range,
		 tz_name(sh), buf);
	ASSERT_EQ_STR(detail,
		      "quiet hours 21:00-08:00 Asia/Shanghai until 2026-11-24T08:00:00+08:00");
	struct quiet_hours odd = { 5, 1439 };
	quiet_format_range(&odd, range, sizeof range);
	ASSERT_EQ_STR(range, "00:05-23:59");
}

static void check_new_york(void)
{
	const struct tz_zone *ny = tzdb_get("America/New_York");
	ASSERT_TRUE(ny != NULL);
	struct quiet_hours early = { 60, 180 };       /* 01:00-03:00 */
	struct quiet_hours night = { 1260, 480 };     /* 21:00-08:00 */
	struct quiet_hours to_0230 = { 60, 150 };     /* 01:00-02:30 */
	struct quiet_hours to_0120 = { 0, 80 };       /* 00:00-01:20 */

	/* 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z */
	ASSERT_EQ_INT(quiet_until_ms(&early, ny, S(1772951400)), S(1772953200));
	ASSERT_EQ_INT(quiet_until_ms(&early, ny, S(1772953200)), 0);
	/* 23:00 EST the evening before -> 08:00 EDT = 12:00Z */
	ASSERT_EQ_INT(quiet_until_ms(&night, ny, S(1772942400)), S(1772971200));
	/* 02:30 never happens: the window ends when the clocks jump */
	ASSERT_EQ_INT(quiet_until_ms(&to_0230, ny, S(1772952300)), S(1772953200));
	char buf[QUIET_LOCAL_BUFLEN];
	quiet_format_local(ny, S(1772953200), buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-03-08T03:00:00-04:00");

	/* 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z */
	ASSERT_EQ_INT(quiet_until_ms(&early, ny, S(1793511000)), S(1793520000));
	ASSERT_EQ_INT(quiet_until_ms(&early, ny, S(1793507400)), 0);    /* 00:30 */
	/* 23:00 EDT on Oct 31 -> 08:00 EST = 13:00Z */
	ASSERT_EQ_INT(quiet_until_ms(&night, ny, S(1793502000)), S(1793538000));
	quiet_format_local(ny, S(1793538000), buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-11-01T08:00:00-05:00");
	/* 01:20 is read twice: 05:20Z (EDT) and 06:20Z (EST) */
	ASSERT_EQ_INT(quiet_until_ms(&to_0120, ny, S(1793509800)), S(1793510400));
	ASSERT_EQ_INT(quiet_until_ms(&to_0120, ny, S(1793513400)), S(1793514000));
	/* between the readings (01:30 EDT .. 00:59:59 EST) it is not quiet */
	ASSERT_EQ_INT(quiet_until_ms(&to_0120, ny, S(1793511000)), 0);
	/* 01:00 EST: back inside the window */
	ASSERT_EQ_INT(quiet_until_ms(&to_0120, ny, S(1793512800)), S(1793514000));
	/* 01:30-02:30: at 02:00 EDT the clock goes back to 01:00 EST, outside
	 * the window (06:00Z); it is entered again at 01:30 EST until 02:30 EST */
	struct quiet_hours late = { 90, 150 };
	ASSERT_EQ_INT(quiet_until_ms(&late, ny, S(1793511000)), S(1793512800));
	ASSERT_EQ_INT(quiet_until_ms(&late, ny, S(1793512800)), 0);
	ASSERT_EQ_INT(quiet_until_ms(&late, ny, S(1793514600)), S(1793518200));
}

static void check_london_apia(void)
{
	const struct tz_zone *lo = tzdb_get("Europe/London");
	const struct tz_zone *apia = tzdb_get("Pacific/Apia");
	ASSERT_TRUE(lo && apia);
	/* 2026-03-29: 01:00 GMT -> 02:00 BST; 01:30 never happens */
	struct quiet_hours w = { 30, 90 };
	ASSERT_EQ_INT(quiet_until_ms(&w, lo, S(1774745100)), S(1774746000));
	/* 2026-10-25: 22:00 BST the evening before -> 08:00 GMT */
	struct quiet_hours night = { 1260, 480 };
	ASSERT_EQ_INT(quiet_until_ms(&night, lo, S(1792875600)), S(1792915200));
	/* Apia skipped 2011-12-30: 23:00 on the 29th (-10) -> 08:00 on the
	 * 31st (+14), not the midnight right after the jump */
	ASSERT_EQ_INT(quiet_until_ms(&night, apia, S(1325235600)), S(1325268000));
}

static void check_format(void)
{
	const struct tz_zone *utc = tzdb_get("UTC");
	const struct tz_zone *sh = tzdb_get("Asia/Shanghai");
	const struct tz_zone *ko = tzdb_get("Asia/Kolkata");
	const struct tz_zone *ch = tzdb_get("Pacific/Chatham");
	char buf[QUIET_LOCAL_BUFLEN];
	quiet_format_local(utc, S(1795478400) + 250, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-11-24T00:00:00.250+00:00");
	quiet_format_local(NULL, -1, buf, sizeof buf);
	ASSERT_EQ_STR(buf, "1969-12-31T23:59:59.999+00:00");
	quiet_format_local(ko, S(1795478400), buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-11-24T05:30:00+05:30");
	quiet_format_local(ch, S(1795478400), buf, sizeof buf);
	ASSERT_EQ_STR(buf, "2026-11-24T13:45:00+13:45");
	/* local mean time +08:05:43 has no RFC 3339 form: UTC instead */
	quiet_format_local(sh, S(-2195942400), buf, sizeof buf);
	ASSERT_EQ_STR(buf, "1900-06-01T00:00:00Z");
	char small[11];
	quiet_format_local(sh, S(1795478400), small, sizeof small);
	ASSERT_EQ_STR(small, "2026-11-24");
	char untouched[4] = "abc";
	quiet_format_local(sh, S(1795478400), untouched, 0);
	ASSERT_EQ_STR(untouched, "abc");
}

static void check_reference(void)
{
	char cmd[1024], line[512];
	long n_q = 0, n_f = 0, n_quiet = 0, bad = 0;
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/unit/tz_reference.py' quiet",
		 tests_dir());
	FILE *f = popen(cmd, "r");
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char name[64], want_s[64], got_s[QUIET_LOCAL_BUFLEN];
		long long u, want;
		struct quiet_hours q;
		if (sscanf(line, "Q %63s %d %d %lld %lld", name, &q.start_min,
			   &q.end_min, &u, &want) == 5) {
			const struct tz_zone *z = tzdb_get(name);
			n_q++;
			n_quiet += want != 0;
			int64_t got = z ? quiet_until_ms(&q, z, u) : -1;
			/* the end is never quiet itself */
			if (got > 0 && quiet_until_ms(&q, z, got) != 0 &&
			    bad++ < MAX_REPORTED)
				fprintf(stderr, "quiet_until_ms(%s, %lld) = %lld is quiet\n",
					name, u, (long long)got);
			if (got != want && bad++ < MAX_REPORTED) {
				char at[QUIET_LOCAL_BUFLEN];
				quiet_format_local(z, u, at, sizeof at);
				fprintf(stderr, "quiet_until_ms(%02d:%02d-%02d:%02d, %s, %lld = %s) = %lld, zoneinfo says %lld\n",
					q.start_min / 60, q.start_min % 60,
					q.end_min / 60, q.end_min % 60, name, u,
					at, (long long)got, want);
			}
		} else if (sscanf(line, "F %63s %lld %63s", name, &u, want_s) == 3) {
			const struct tz_zone *z = tzdb_get(name);
			n_f++;
			if (!z) {
				bad++;
				continue;
			}
			/* zoneinfo writes offsets with seconds (LMT) that
			 * RFC 3339 cannot carry; those are written in UTC */
			if (tz_offset_at(z, u / 1000) % 60 != 0)
				continue;
			quiet_format_local(z, u, got_s, sizeof got_s);
			if (strcmp(got_s, want_s) != 0 && bad++ < MAX_REPORTED)
				fprintf(stderr, "quiet_format_local(%s, %lld) = %s, zoneinfo says %s\n",
					name, u, got_s, want_s);
		} else {
			fprintf(stderr, "unexpected reference line: %s", line);
			bad++;
		}
	}
	ASSERT_EQ_INT(pclose(f), 0);
	ASSERT_EQ_INT(bad, 0);
	ASSERT_TRUE(n_q >= 20000);
	ASSERT_TRUE(n_quiet >= 5000);
	ASSERT_TRUE(n_f >= 1000);
	printf("reference: %ld quiet_until_ms cases (%ld quiet), %ld formats checked against zoneinfo, %ld mismatches\n",
	       n_q, n_quiet, n_f, bad);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Cost of one call for a zone already in the cache, over instants spread
 * across days (about half of them quiet). Printed, not asserted. */
static void measure(const char *name, int64_t from_ms, bool with_lookup)
{
	const struct tz_zone *z = tzdb_get(name);
	ASSERT_TRUE(z != NULL);
	struct quiet_hours night = { 1260, 480 };
	const int n = 1000000;
	volatile int64_t sink = 0;
	long quiet = 0;
	double t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int64_t at = from_ms + (int64_t)i * 86413;    /* ~1 day per 1000 */
		const struct tz_zone *zz = with_lookup ? tzdb_get(name) : z;
		int64_t until = quiet_until_ms(&night, zz, at);
		quiet += until != 0;
		sink += until;
	}
	double ns = (now_ns() - t0) / n;
	(void)sink;
	ASSERT_TRUE(quiet > n / 4 && quiet < n * 3 / 4);
	printf("quiet_until_ms %-18s %s: %.0f ns/call (%ld of %d quiet)\n", name,
	       with_lookup ? "with tzdb_get" : "cached zone  ", ns, quiet, n);
}

int main(void)
{
	check_shanghai();
	check_new_york();
	check_london_apia();
	check_format();
	check_reference();
	measure("Asia/Shanghai", S(1795446000), false);
	measure("America/New_York", S(1772942400), false);
	measure("America/New_York", S(2224224000), false);  /* 2040: footer */
	measure("Asia/Shanghai", S(1795446000), true);
	tzdb_clear_cache();
	TEST_DONE();
}
