/* test_tzdb.c: the TZif reader against Python's zoneinfo and by hand.
 *
 * 1. tests/unit/tz_reference.py prints offsets and local->UTC answers for
 *    twenty zones across 1970-2100 (every transition +-1 s, random
 *    instants, every minute of the 2026 clock-change days in New York,
 *    London and Sydney); each line is checked here against the system
 *    database.
 * 2. The same again with a "slim" database compiled by zic from
 *    tzdata.zi, where New York's table stops in 2007 and everything later
 *    comes from the footer's rule (skipped when zic is not installed).
 * 3. Hand-written TZif files in a scratch TZDIR: footer-only zones,
 *    version 1, negative DST, Jn/n dates, all-year DST, and files that
 *    must be refused; names that must be refused; the unknown-name cache.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tzdb.h"

#define MAX_REPORTED 20

static char saved_tzdir[1024];
static int have_saved_tzdir;

/* Back to the TZDIR the test was started with (none: the system's). */
static void restore_tzdir(void)
{
	if (have_saved_tzdir)
		setenv("TZDIR", saved_tzdir, 1);
	else
		unsetenv("TZDIR");
}

static const char *tests_dir(void)
{
	const char *d = getenv("ROUSE_TESTS_DIR");
	return d && *d ? d : ".";
}

/* Runs tz_reference.py tzdb (with the current TZDIR) and checks every
 * line; returns the number of lines checked. */
static long check_reference(const char *label)
{
	char cmd[1024], line[512];
	long n_off = 0, n_local = 0, n_next = 0, bad = 0, unknown = 0;
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/unit/tz_reference.py' tzdb",
		 tests_dir());
	FILE *f = popen(cmd, "r");
	ASSERT_TRUE(f != NULL);
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f)) {
		char name[64];
		long long u, want;
		int y, mon, day, h, mi;
		if (sscanf(line, "O %63s %lld %lld", name, &u, &want) == 3) {
			const struct tz_zone *z = tzdb_get(name);
			if (!z) {
				if (unknown++ < MAX_REPORTED)
					fprintf(stderr, "%s: zone %s not loaded\n", label, name);
				continue;
			}
			n_off++;
			int32_t got = tz_offset_at(z, u);
			if (got != want && bad++ < MAX_REPORTED)
				fprintf(stderr, "%s: tz_offset_at(%s, %lld) = %d, zoneinfo says %lld\n",
					label, name, u, got, want);
		} else if (sscanf(line, "N %63s %lld %lld", name, &u, &want) == 3) {
			const struct tz_zone *z = tzdb_get(name);
			int64_t got = -1;
			n_next++;
			if ((!z || !tz_next_change(z, u, u + 86400, &got) ||
			     got != want) && bad++ < MAX_REPORTED)
				fprintf(stderr, "%s: tz_next_change(%s, %lld) = %lld, zoneinfo says %lld\n",
					label, name, u, (long long)got, want);
		} else if (sscanf(line, "L %63s %d %d %d %d %d %lld", name, &y, &mon,
				  &day, &h, &mi, &want) == 7) {
			const struct tz_zone *z = tzdb_get(name);
			if (!z) {
				if (unknown++ < MAX_REPORTED)
					fprintf(stderr, "%s: zone %s not loaded\n", label, name);
				continue;
			}
			n_local++;
			int64_t got = tz_local_to_utc(z, y, mon, day, h, mi);
			if (got != want && bad++ < MAX_REPORTED)
				fprintf(stderr, "%s: tz_local_to_utc(%s, %04d-%02d-%02d %02d:%02d) = %lld, zoneinfo says %lld\n",
					label, name, y, mon, day, h, mi,
					(long long)got, want);
		} else {
			fprintf(stderr, "%s: unexpected reference line: %s", label, line);
			bad++;
		}
	}
	int status = pclose(f);
	ASSERT_EQ_INT(status, 0);
	ASSERT_EQ_INT(unknown, 0);
	ASSERT_EQ_INT(bad, 0);
	ASSERT_TRUE(n_off >= 10000);
	ASSERT_TRUE(n_local >= 20000);
	ASSERT_TRUE(n_next >= 2000);
	printf("%s: %ld offsets, %ld local->UTC conversions, %ld next changes checked against zoneinfo, %ld mismatches\n",
	       label, n_off, n_local, n_next, bad);
	return n_off + n_local + n_next;
}

static void check_slim(void)
{
	if (access("/usr/sbin/zic", X_OK) != 0 ||
	    access("/usr/share/zoneinfo/tzdata.zi", R_OK) != 0) {
		printf("slim database: skipped (no zic or tzdata.zi)\n");
		return;
	}
	char dir[] = "/tmp/rouse-tzslim-XXXXXX", cmd[512];
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(cmd, sizeof cmd,
		 "/usr/sbin/zic -b slim -d %s /usr/share/zoneinfo/tzdata.zi", dir);
	ASSERT_EQ_INT(system(cmd), 0);
	/* the table of slim New York ends in 2007: later instants use the rule */
	char path[256];
	struct stat st;
	snprintf(path, sizeof path, "%s/America/New_York", dir);
	ASSERT_EQ_INT(stat(path, &st), 0);
	ASSERT_TRUE(st.st_size < 2000);

	tzdb_clear_cache();
	setenv("TZDIR", dir, 1);
	check_reference("slim database");
	const struct tz_zone *ny = tzdb_get("America/New_York");
	ASSERT_TRUE(ny != NULL);
	/* 2026-11-01 01:30 happens twice: 05:30Z (EDT) and 06:30Z (EST) */
	int64_t a = 0, b = 0;
	ASSERT_EQ_INT(tz_local_resolve(ny, INT64_C(1793496600), &a, &b), 2);
	ASSERT_EQ_INT(a, 1793511000);
	ASSERT_EQ_INT(b, 1793514600);
	restore_tzdir();
	tzdb_clear_cache();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ASSERT_EQ_INT(system(cmd), 0);
}

/* ---- hand-written TZif files ---- */

struct tzif_spec {
	char version;            /* 0 (version 1), '2', '3', '4' */
	int n_trans;
	const int64_t *trans;
	const unsigned char *idx;
	int n_types;
	const int32_t *offs;
	uint32_t leapcnt;
	const char *footer;
};

static size_t put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return 4;
}

static size_t put_header(unsigned char *p, char version, uint32_t leapcnt,
			 uint32_t timecnt, uint32_t typecnt)
{
	memset(p, 0, 44);
	memcpy(p, "TZif", 4);
	p[4] = (unsigned char)version;
	put32(p + 28, leapcnt);
	put32(p + 32, timecnt);
	put32(p + 36, typecnt);
	put32(p + 40, 4);        /* charcnt: "XXX\0" */
	return 44;
}

static size_t put_block(unsigned char *p, const struct tzif_spec *s, int tsize)
{
	size_t n = 0;
	for (int i = 0; i < s->n_trans; i++) {
		if (tsize == 8)
			n += put32(p + n, (uint32_t)((uint64_t)s->trans[i] >> 32));
		n += put32(p + n, (uint32_t)s->trans[i]);
	}
	for (int i = 0; i < s->n_trans; i++)
		p[n++] = s->idx[i];
	for (int i = 0; i < s->n_types; i++) {
		n += put32(p + n, (uint32_t)s->offs[i]);
		p[n++] = 0;
		p[n++] = 0;
	}
	memcpy(p + n, "XXX", 4);
	n += 4;
	for (uint32_t i = 0; i < s->leapcnt; i++) {
		memset(p + n, 0, (size_t)tsize + 4);
		n += (size_t)tsize + 4;
	}
	return n;
}

static size_t build_tzif(const struct tzif_spec *s, unsigned char *p)
{
	size_t n = 0;
	if (s->version == 0) {
		n += put_header(p, 0, s->leapcnt, (uint32_t)s->n_trans,
				(uint32_t)s->n_types);
		return n + put_block(p + n, s, 4);
	}
	static const int32_t zero = 0;
	struct tzif_spec v1 = { 0, 0, NULL, NULL, 1, &zero, 0, NULL };
	n += put_header(p, s->version, 0, 0, 1);
	n += put_block(p + n, &v1, 4);
	n += put_header(p + n, s->version, s->leapcnt, (uint32_t)s->n_trans,
			(uint32_t)s->n_types);
	n += put_block(p + n, s, 8);
	n += (size_t)snprintf((char *)p + n, 300, "\n%s\n",
			      s->footer ? s->footer : "");
	return n;
}

static void write_file(const char *dir, const char *name,
		       const unsigned char *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	ASSERT_EQ_INT(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void write_zone(const char *dir, const char *name,
		       const struct tzif_spec *s)
{
	unsigned char buf[4096];
	write_file(dir, name, buf, build_tzif(s, buf));
}

static void write_footer_zone(const char *dir, const char *name,
			      int32_t off, const char *footer)
{
	struct tzif_spec s = { '2', 0, NULL, NULL, 1, &off, 0, footer };
	write_zone(dir, name, &s);
}

static void check_synthetic(void)
{
	char dir[] = "/tmp/rouse-tzsyn-XXXXXX", sub[64], cmd[128];
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	snprintf(sub, sizeof sub, "%s/Test", dir);
	ASSERT_EQ_INT(mkdir(sub, 0700), 0);

	write_footer_zone(dir, "Test/FooterOnly", -18000, "EST5EDT,M3.2.0,M11.1.0");
	write_footer_zone(dir, "Test/Fixed", 19800, "<+0530>-5:30");
	write_footer_zone(dir, "Test/Southern", 37800,
			  "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
	write_footer_zone(dir, "Test/NegativeDst", 3600, "IST-1GMT0,M10.5.0,M3.5.0/1");
	write_footer_zone(dir, "Test/Julian", 7200, "XXX-2YYY,J60/0,300");
	write_footer_zone(dir, "Test/AllYear", -18000, "EST5EDT4,0/0,J365/25");
	write_footer_zone(dir, "Test/Nuuk", -7200, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
	write_footer_zone(dir, "Test/NoRule", -18000, "EST5EDT");
	write_footer_zone(dir, "Test/Garbage", 0, "not a rule");
	write_footer_zone(dir, "Test/Empty", 3600, "");

	static const int64_t trans[2] = { 1000000000, 1100000000 };
	static const unsigned char idx[2] = { 1, 0 };
	static const int32_t offs[2] = { 3600, 7200 };
	struct tzif_spec v1 = { 0, 2, trans, idx, 2, offs, 0, NULL };
	write_zone(dir, "Test/V1", &v1);
	struct tzif_spec v3 = { '3', 2, trans, idx, 2, offs, 0, "" };
	write_zone(dir, "Test/V3", &v3);
	struct tzif_spec v4 = { '4', 2, trans, idx, 2, offs, 0, "" };
	write_zone(dir, "Test/V4", &v4);
	struct tzif_spec leap = { '2', 2, trans, idx, 2, offs, 1, "" };
	write_zone(dir, "Test/Leap", &leap);
	static const int64_t backwards[2] = { 1100000000, 1000000000 };
	struct tzif_spec order = { '2', 2, backwards, idx, 2, offs, 0, "" };
	write_zone(dir, "Test/Backwards", &order);
	static const unsigned char bad_idx[2] = { 1, 2 };
	struct tzif_spec range = { '2', 2, trans, bad_idx, 2, offs, 0, "" };
	write_zone(dir, "Test/BadIndex", &range);
	static const int32_t huge[2] = { 3600, 100000 };
	struct tzif_spec big = { '2', 2, trans, idx, 2, huge, 0, "" };
	write_zone(dir, "Test/HugeOffset", &big);
	unsigned char buf[4096];
	size_t len = build_tzif(&v3, buf);
	write_file(dir, "Test/Truncated", buf, len - 10);
	buf[4] = '9';
	write_file(dir, "Test/Version9", buf, len);
	write_file(dir, "Test/Text", (const unsigned char *)"not a tz file, just text\n", 25);

	tzdb_clear_cache();
	setenv("TZDIR", dir, 1);

	/* footer only, US rules: any year follows them */
	const struct tz_zone *z = tzdb_get("Test/FooterOnly");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 1767225600), -18000);   /* 2026-01-01 */
	ASSERT_EQ_INT(tz_offset_at(z, 1782864000), -14400);   /* 2026-07-01 */
	ASSERT_EQ_INT(tz_offset_at(z, 1772953199), -18000);   /* 06:59:59Z */
	ASSERT_EQ_INT(tz_offset_at(z, 1772953200), -14400);   /* 07:00Z jump */
	ASSERT_EQ_INT(tz_offset_at(z, -615916800), -14400);   /* 1950-06-26 */
	ASSERT_EQ_INT(tz_local_to_utc(z, 2026, 3, 8, 2, 30), 1772953200);
	ASSERT_EQ_INT(tz_local_to_utc(z, 2026, 11, 1, 1, 30), 1793511000);
	ASSERT_EQ_INT(tz_local_to_utc(z, 2226, 7, 1, 12, 0),
		      tz_local_to_utc(tzdb_get("Test/AllYear"), 2226, 7, 1, 12, 0));

	z = tzdb_get("Test/Fixed");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 0), 19800);
	ASSERT_EQ_INT(tz_offset_at(z, INT64_MAX), 19800);

	/* Lord Howe's rule: DST starts 2:00 local on the first Sunday of
	 * October (2026-10-04 -> 15:30Z the day before), +30 min */
	z = tzdb_get("Test/Southern");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 1791041399), 37800);
	ASSERT_EQ_INT(tz_offset_at(z, 1791041400), 39600);
	ASSERT_EQ_INT(tz_offset_at(z, 1767225600), 39600);    /* January */
	ASSERT_EQ_INT(tz_local_to_utc(z, 2026, 10, 4, 2, 15), 1791041400);

	/* negative DST: the "standard" IST (+1) is summer, GMT (+0) winter */
	z = tzdb_get("Test/NegativeDst");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 1767225600), 0);
	ASSERT_EQ_INT(tz_offset_at(z, 1782864000), 3600);

	/* J60 is 1 March even in a leap year; n=300 counts 29 February
	 * (2024-10-27); start in standard +2, end in daylight +3 */
	z = tzdb_get("Test/Julian");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 1709243999), 7200);
	ASSERT_EQ_INT(tz_offset_at(z, 1709244000), 10800);
	ASSERT_EQ_INT(tz_offset_at(z, 1729983599), 10800);
	ASSERT_EQ_INT(tz_offset_at(z, 1729983600), 7200);

	z = tzdb_get("Test/AllYear");
	ASSERT_TRUE(z != NULL);
	int64_t change = 0;
	ASSERT_TRUE(!tz_next_change(z, 0, INT64_MAX, &change));
	for (int64_t t = 1735689600 - 86400; t < 1735689600 + 86400 * 366;
	     t += 3600)
		if (tz_offset_at(z, t) != -14400) {
			ASSERT_EQ_INT(tz_offset_at(z, t), -14400);
			break;
		}

	/* negative rule time: 2026-03-29 -01:00 local (-02) = 01:00Z */
	z = tzdb_get("Test/Nuuk");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 1774745999), -7200);
	ASSERT_EQ_INT(tz_offset_at(z, 1774746000), -3600);

	z = tzdb_get("Test/Empty");
	ASSERT_TRUE(z != NULL);
	ASSERT_EQ_INT(tz_offset_at(z, 0), 3600);

	const char *versions[] = { "Test/V1", "Test/V3", "Test/V4" };
	for (size_t i = 0; i < 3; i++) {
		z = tzdb_get(versions[i]);
		ASSERT_TRUE(z != NULL);
		ASSERT_EQ_INT(tz_offset_at(z, 999999999), 3600);
		ASSERT_EQ_INT(tz_offset_at(z, 1000000000), 7200);
		ASSERT_EQ_INT(tz_offset_at(z, 1099999999), 7200);
		ASSERT_EQ_INT(tz_offset_at(z, 1100000000), 3600);
		ASSERT_EQ_INT(tz_offset_at(z, 4000000000), 3600);
	}

	const char *refused[] = { "Test/NoRule", "Test/Garbage", "Test/Leap",
				  "Test/Backwards", "Test/BadIndex",
				  "Test/HugeOffset", "Test/Truncated",
				  "Test/Version9", "Test/Text", "Test",
				  "Test/Missing" };
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
		if (tzdb_get(refused[i]) != NULL) {
			fprintf(stderr, "%s was accepted\n", refused[i]);
			ASSERT_TRUE(tzdb_get(refused[i]) == NULL);
		}

	/* an unknown name stays unknown until the cache is cleared */
	write_footer_zone(dir, "Test/Missing", 0, "UTC0");
	ASSERT_TRUE(tzdb_get("Test/Missing") == NULL);
	tzdb_clear_cache();
	ASSERT_TRUE(tzdb_get("Test/Missing") != NULL);

	restore_tzdir();
	tzdb_clear_cache();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ASSERT_EQ_INT(system(cmd), 0);
}

static void check_names(void)
{
	char long_name[300];
	memset(long_name, 'A', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	const char *bad[] = { "", "/etc/passwd", "../etc/passwd",
			      "Asia/../Asia/Shanghai", "Asia/./Shanghai",
			      "Asia//Shanghai", "Asia/Shanghai/", "/Asia/Shanghai",
			      "Asia/Shanghai ", "Asia/Shanghai\n", " UTC",
			      "Asia\\Shanghai", "zone.tab", "iso3166.tab",
			      "tzdata.zi", "leapseconds", "Asia", "right/UTC",
			      "Nowhere/Atlantis", "asia/shanghai%00", long_name };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (tzdb_get(bad[i]) != NULL) {
			fprintf(stderr, "\"%s\" was accepted\n", bad[i]);
			ASSERT_TRUE(tzdb_get(bad[i]) == NULL);
		}
	ASSERT_TRUE(tzdb_get(NULL) == NULL);
	ASSERT_TRUE(tzdb_get("Nowhere/Atlantis") == NULL);    /* cached */

	const struct tz_zone *gmt5 = tzdb_get("Etc/GMT+5");
	ASSERT_TRUE(gmt5 != NULL);
	ASSERT_EQ_INT(tz_offset_at(gmt5, 1782864000), -18000);
	ASSERT_TRUE(tzdb_get("Etc/GMT-14") != NULL);
	ASSERT_TRUE(tzdb_get("America/Port-au-Prince") != NULL);
}

static void check_by_hand(void)
{
	const struct tz_zone *utc = tzdb_get("UTC");
	const struct tz_zone *sh = tzdb_get("Asia/Shanghai");
	const struct tz_zone *ny = tzdb_get("America/New_York");
	ASSERT_TRUE(utc && sh && ny);
	if (!utc || !sh || !ny)
		return;
	ASSERT_TRUE(tzdb_get("Asia/Shanghai") == sh);          /* cached */
	ASSERT_EQ_STR(tz_name(sh), "Asia/Shanghai");
	ASSERT_EQ_STR(tz_name(NULL), "UTC");

	ASSERT_EQ_INT(tz_offset_at(utc, 1795478400), 0);
	ASSERT_EQ_INT(tz_offset_at(sh, 1795478400), 28800);
	ASSERT_EQ_INT(tz_local_to_utc(sh, 2026, 11, 24, 8, 0), 1795478400);
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2026, 11, 24, 0, 0), 1795478400);
	ASSERT_EQ_INT(tz_offset_at(NULL, 1795478400), 0);
	ASSERT_EQ_INT(tz_local_to_utc(NULL, 2026, 11, 24, 0, 0), 1795478400);

	/* out-of-range fields are normalised */
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2026, 10, 55, 0, 0), 1795478400);
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2026, 11, 23, 24, 0), 1795478400);
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2026, 11, 23, 0, 1440), 1795478400);
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2027, -1, 24, 0, 0), 1795478400);
	ASSERT_EQ_INT(tz_local_to_utc(utc, 2025, 23, 24, 0, 0), 1795478400);

	/* New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00Z */
	int64_t a = 0, b = 0;
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 3, 8, 1, 59), 1772953140);
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 3, 8, 2, 0), 1772953200);
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 3, 8, 2, 30), 1772953200);
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 3, 8, 3, 0), 1772953200);
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 3, 8, 3, 1), 1772953260);
	ASSERT_EQ_INT(tz_local_resolve(ny, 1772937000, &a, &b), 0);  /* 02:30 */
	ASSERT_EQ_INT(a, 1772953200);
	ASSERT_EQ_INT(b, 1772953200);
	/* 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00Z */
	ASSERT_EQ_INT(tz_local_to_utc(ny, 2026, 11, 1, 1, 30), 1793511000);
	ASSERT_EQ_INT(tz_local_resolve(ny, 1793496600, &a, &b), 2);
	ASSERT_EQ_INT(a, 1793511000);
	ASSERT_EQ_INT(b, 1793514600);
	ASSERT_EQ_INT(tz_local_resolve(ny, 1793500200, &a, &b), 1);  /* 02:30 */
	ASSERT_EQ_INT(a, 1793518200);
	int64_t t = 0;
	ASSERT_TRUE(tz_next_change(ny, 1767225600, 1798761600, &t));
	ASSERT_EQ_INT(t, 1772953200);                           /* 2026-03-08 */
	ASSERT_TRUE(tz_next_change(ny, t, 1798761600, &t));
	ASSERT_EQ_INT(t, 1793512800);                           /* 2026-11-01 */
	ASSERT_TRUE(!tz_next_change(ny, t, 1798761600, &t));    /* not in 2026 */
	ASSERT_TRUE(!tz_next_change(ny, 1767225600, 1772953199, &t));
	ASSERT_TRUE(!tz_next_change(utc, 0, INT64_MAX, &t));
	ASSERT_TRUE(!tz_next_change(NULL, 0, INT64_MAX, &t));
	ASSERT_TRUE(tz_next_change(ny, 4102444800, INT64_MAX, &t));  /* 2100 */
	ASSERT_EQ_INT(t, 4108690800);                           /* 2100-03-14 */
	/* after the table's end in 2037 the footer's rule applies */
	ASSERT_EQ_INT(tz_offset_at(ny, 4118054400), -14400);         /* 2100-06-30 */
	ASSERT_EQ_INT(tz_offset_at(ny, 4102444800), -18000);         /* 2100-01-01 */

	const struct tz_zone *lh = tzdb_get("Australia/Lord_Howe");
	const struct tz_zone *sp = tzdb_get("America/Sao_Paulo");
	const struct tz_zone *ko = tzdb_get("Asia/Kolkata");
	const struct tz_zone *ch = tzdb_get("Pacific/Chatham");
	ASSERT_TRUE(lh && sp && ko && ch);
	ASSERT_EQ_INT(tz_offset_at(lh, 1791041399), 37800);
	ASSERT_EQ_INT(tz_offset_at(lh, 1791041400), 39600);
	ASSERT_EQ_INT(tz_local_to_utc(lh, 2026, 10, 4, 2, 15), 1791041400);
	ASSERT_EQ_INT(tz_offset_at(sp, 1516000000), -7200);   /* Jan 2018 DST */
	ASSERT_EQ_INT(tz_offset_at(sp, 1768435200), -10800);  /* Jan 2026 none */
	ASSERT_EQ_INT(tz_offset_at(ko, 1768435200), 19800);
	ASSERT_EQ_INT(tz_offset_at(ch, 1768435200), 49500);   /* +13:45 */
	ASSERT_EQ_INT(tz_offset_at(ch, 1784073600), 45900);   /* +12:45 */
}

/* Several threads load and query the same zones at once: each must see
 * one shared zone per name and the same answers as a lone thread. */
#define RACE_THREADS 4
static const char *const race_zones[] = {
	"Asia/Shanghai", "America/New_York", "Europe/London", "Europe/Berlin",
	"Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata", "UTC",
	"Nowhere/Atlantis",
};
#define RACE_N (sizeof race_zones / sizeof *race_zones)

struct race {
	const struct tz_zone *seen[RACE_N];
	int64_t sum;
};

static void *race_run(void *arg)
{
	struct race *r = arg;
	for (int round = 0; round < 200; round++)
		for (size_t i = 0; i < RACE_N; i++) {
			const struct tz_zone *z = tzdb_get(race_zones[i]);
			if (round == 0)
				r->seen[i] = z;
			else if (z != r->seen[i])
				r->sum = INT64_MIN;
			if (z && r->sum != INT64_MIN)
				r->sum += tz_offset_at(z, 1700000000 + round * 86400) +
					  tz_local_to_utc(z, 2026, 3, 29, 2, round % 60);
		}
	return NULL;
}

static void check_threads(void)
{
	struct race races[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	memset(races, 0, sizeof races);
	tzdb_clear_cache();
	for (int i = 0; i < RACE_THREADS; i++)
		ASSERT_EQ_INT(pthread_create(&th[i], NULL, race_run, &races[i]), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 1; i < RACE_THREADS; i++) {
		ASSERT_EQ_INT(races[i].sum, races[0].sum);
		for (size_t j = 0; j < RACE_N; j++)
			ASSERT_TRUE(races[i].seen[j] == races[0].seen[j]);
	}
	ASSERT_TRUE(races[0].sum != INT64_MIN);
	ASSERT_TRUE(races[0].seen[0] != NULL);
	ASSERT_TRUE(races[0].seen[RACE_N - 1] == NULL);
	tzdb_clear_cache();
}

int main(void)
{
	const char *tzdir = getenv("TZDIR");
	if (tzdir && strlen(tzdir) < sizeof saved_tzdir) {
		memcpy(saved_tzdir, tzdir, strlen(tzdir) + 1);
		have_saved_tzdir = 1;
	}
	check_by_hand();
	check_names();
	check_threads();
	check_reference("system database");
	tzdb_clear_cache();
	check_synthetic();
	check_slim();
	tzdb_clear_cache();
	TEST_DONE();
}
