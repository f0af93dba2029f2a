/* email_build_bench.c: CPU cost of building one email (issue 4).
 *
 * Measures what an SMTP session thread spends per message between taking
 * a draft and holding the bytes to send: email_draft_new (done on the loop
 * thread, counted here too since it is part of the hand-off),
 * email_draft_build and the frees. Rendering the template is not counted:
 * the inputs are rendered once, before the clock starts.
 *
 * The inputs are the shipped `winback` template rendered through
 * render_message for --locale (en, zh-CN, or mix: alternating), with the
 * variables bench/smtp_bench.sh sends, over 64 distinct recipients
 * (user<i>@bench.example, "User <i>", a link and a Message-ID per
 * recipient), cycled through --count builds. Each of --repeat rounds is
 * timed with the process's CPU clock (CLOCK_PROCESS_CPUTIME_ID) and the
 * monotonic clock; the report gives every round and the medians, then one
 * "result:" line of key=value pairs for scripts. With --threads T the
 * builds of a round are shared by T threads running at once, as the SMTP
 * sessions do (CPU per message is then summed over the threads).
 *
 * --dump DIR writes the 64 messages of each locale as DIR/<locale>-<i>.eml
 * (the exact bytes built) and exits without timing, so that two builds of
 * the builder can be compared byte for byte.
 *
 * Exit status: 0, 1 when a build failed, 2 on usage or set-up errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <pthread.h>

#include "channel.h"
#include "config.h"
#include "email.h"
#include "render.h"
#include "templates.h"

#define BENCH_INPUTS 64
#define BENCH_ROUNDS_MAX 50
#define BENCH_THREADS_MAX 64

struct bench_input {
	struct email_input in;
	struct rendered r;
	char to_addr[64];
	char to_name[32];
	char message_id[96];
};

/* One thread's share of a round. */
struct bench_worker {
	pthread_t th;
	const struct bench_input *en, *zh;
	const char *locale;
	long first, count;
	size_t bytes;
	int status;
};

static const char *prog = "email_build_bench";

static int64_t
bench_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
bench_median(const double *v, int n)
{
	double s[BENCH_ROUNDS_MAX];

	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int
bench_render(const struct templates *t, const struct template_set *set,
	     const char *locale, int i, struct bench_input *b)
{
	struct config cfg;
	char err[256] = "", name[32], link[64];
	json_t *vars;
	int rc;

	memset(&cfg, 0, sizeof cfg);
	snprintf(name, sizeof name, "User %d", i);
	snprintf(link, sizeof link, "https://shop.example/c/%d", i);
	vars = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name,
			 "brand", "Shop", "amount", "$20", "expiry", "Dec 31",
			 "link", link);
	if (vars == NULL)
		return -1;
	memset(&b->r, 0, sizeof b->r);
	rc = render_message(&cfg, t, set, CH_EMAIL, locale, vars, &b->r, err,
			    sizeof err);
	json_decref(vars);
	if (rc != 0) {
		fprintf(stderr, "%s: render winback (%s): %s\n", prog, locale, err);
		return -1;
	}
	snprintf(b->to_addr, sizeof b->to_addr, "user%d@bench.example", i);
	snprintf(b->to_name, sizeof b->to_name, "%s", name);
	snprintf(b->message_id, sizeof b->message_id,
		 "%08x-1111-4222-8333-%012x@shop.example",
		 (unsigned)(0x9d1c0000u + (unsigned)i), (unsigned)(i * 7919));
	b->in = (struct email_input){
		.from = "Shop <noreply@shop.example>",
		.to_addr = b->to_addr,
		.to_name = b->to_name,
		.subject = b->r.subject,
		.text = b->r.text,
		.html = b->r.html,
		.message_id = b->message_id,
		.date_ms = INT64_C(1700000000123) + i * 1000,
	};
	return 0;
}

/* One draft -> bytes cycle, as the SMTP transport does it. */
static int
bench_one(const struct email_input *in, size_t *bytes)
{
	struct email_draft *d = email_draft_new(in);
	char *out = NULL, err[256] = "";
	size_t len = 0;
	int rc;

	if (d == NULL) {
		fprintf(stderr, "%s: email_draft_new: out of memory\n", prog);
		return -1;
	}
	rc = email_draft_build(d, &out, &len, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s: email_draft_build: %s\n", prog, err);
	*bytes += len;
	free(out);
	email_draft_free(d);
	return rc;
}

static void *
bench_work(void *arg)
{
	struct bench_worker *w = arg;
	const struct bench_input *b;
	long n;

	for (n = w->first; n < w->first + w->count; n++) {
		if (strcmp(w->locale, "en") == 0)
			b = &w->en[n % BENCH_INPUTS];
		else if (strcmp(w->locale, "zh-CN") == 0)
			b = &w->zh[n % BENCH_INPUTS];
		else
			b = &(n % 2 ? w->zh : w->en)[(n / 2) % BENCH_INPUTS];
		if (bench_one(&b->in, &w->bytes) != 0) {
			w->status = 1;
			break;
		}
	}
	return NULL;
}

static int
bench_dump(const char *dir, const char *locale, const struct bench_input *b)
{
	char path[4096], *out = NULL, err[256] = "";
	size_t len = 0;
	FILE *f;
	int i, rc = 0;

	for (i = 0; i < BENCH_INPUTS && rc == 0; i++) {
		if (email_build(&b[i].in, &out, &len, err, sizeof err) != 0) {
			fprintf(stderr, "%s: email_build: %s\n", prog, err);
			return -1;
		}
		snprintf(path, sizeof path, "%s/%s-%02d.eml", dir, locale, i);
		f = fopen(path, "wb");
		if (f == NULL || fwrite(out, 1, len, f) != len)
			rc = -1;
		if (f != NULL && fclose(f) != 0)
			rc = -1;
		if (rc != 0)
			fprintf(stderr, "%s: %s: %s\n", prog, path,
				strerror_r(errno, err, sizeof err) == 0 ? err : "write failed");
		free(out);
		out = NULL;
	}
	return rc;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: %s [--templates DIR] [--locale en|zh-CN|mix] [--count N]\n"
		"       [--repeat R] [--threads T] [--dump DIR]\n", prog);
	exit(2);
}

static long
arg_long(const char *opt, const char *v, long lo, long hi)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || end == v || n < lo || n > hi) {
		fprintf(stderr, "%s: %s: expected an integer in %ld..%ld, got \"%s\"\n",
			prog, opt, lo, hi, v);
		exit(2);
	}
	return n;
}

int
main(int argc, char **argv)
{
	static struct bench_input en[BENCH_INPUTS], zh[BENCH_INPUTS];
	const char *dir = "templates", *locale = "mix", *dump = NULL;
	long count = 20000, repeat = 7, threads = 1, n;
	double cpu_us[BENCH_ROUNDS_MAX], wall_us[BENCH_ROUNDS_MAX];
	struct templates *t = NULL;
	const struct template_set *set;
	char err[512] = "";
	size_t bytes = 0;
	int i, r, status = 0;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--templates") == 0)
			dir = argv[++i];
		else if (strcmp(argv[i], "--locale") == 0)
			locale = argv[++i];
		else if (strcmp(argv[i], "--count") == 0)
			count = arg_long("--count", argv[++i], 1, 100000000);
		else if (strcmp(argv[i], "--repeat") == 0)
			repeat = arg_long("--repeat", argv[++i], 1, BENCH_ROUNDS_MAX);
		else if (strcmp(argv[i], "--threads") == 0)
			threads = arg_long("--threads", argv[++i], 1, BENCH_THREADS_MAX);
		else if (strcmp(argv[i], "--dump") == 0)
			dump = argv[++i];
		else
			usage();
	}
	if (strcmp(locale, "en") != 0 && strcmp(locale, "zh-CN") != 0 &&
	    strcmp(locale, "mix") != 0)
		usage();
	if (templates_load(dir, &t, err, sizeof err) != 0) {
		fprintf(stderr, "%s: templates: %s\n", prog, err);
		return 2;
	}
	set = templates_find(t, "winback");
	if (set == NULL) {
		fprintf(stderr, "%s: %s: no template winback\n", prog, dir);
		templates_free(t);
		return 2;
	}
	email_global_init();
	for (i = 0; i < BENCH_INPUTS; i++) {
		if (bench_render(t, set, "en", i, &en[i]) != 0 ||
		    bench_render(t, set, "zh-CN", i, &zh[i]) != 0) {
			status = 2;
			goto out;
		}
	}
	if (dump != NULL) {
		if (bench_dump(dump, "en", en) != 0 || bench_dump(dump, "zh-CN", zh) != 0)
			status = 1;
		goto out;
	}

	/* One untimed round warms caches and the allocator. */
	for (n = 0; n < BENCH_INPUTS * 2 && status == 0; n++)
		if (bench_one(&(n % 2 ? zh : en)[n / 2].in, &bytes) != 0)
			status = 1;
	for (r = 0; r < repeat && status == 0; r++) {
		struct bench_worker w[BENCH_THREADS_MAX];
		int64_t c0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		int64_t w0 = bench_clock_ns(CLOCK_MONOTONIC);
		long k;

		bytes = 0;
		for (k = 0; k < threads; k++) {
			w[k] = (struct bench_worker){
				.en = en, .zh = zh, .locale = locale,
				.first = count / threads * k,
				.count = k + 1 < threads ? count / threads :
					 count - count / threads * k,
			};
			if (threads == 1)
				bench_work(&w[k]);
			else if (pthread_create(&w[k].th, NULL, bench_work, &w[k]) != 0) {
				fprintf(stderr, "%s: pthread_create failed\n", prog);
				exit(2);
			}
		}
		for (k = 0; k < threads; k++) {
			if (threads > 1)
				pthread_join(w[k].th, NULL);
			bytes += w[k].bytes;
			status |= w[k].status;
		}
		cpu_us[r] = (double)(bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0) /
			    1e3 / (double)count;
		wall_us[r] = (double)(bench_clock_ns(CLOCK_MONOTONIC) - w0) /
			     1e3 / (double)count;
		printf("round %d: %ld messages (%s, %ld threads), %.2f us CPU/message, "
		       "%.2f us wall/message, %zu bytes/message\n",
		       r + 1, count, locale, threads, cpu_us[r], wall_us[r],
		       bytes / (size_t)count);
	}
	if (status == 0) {
		printf("median of %ld rounds: %.2f us CPU/message, %.2f us wall/message\n",
		       repeat, bench_median(cpu_us, (int)repeat),
		       bench_median(wall_us, (int)repeat));
		printf("result: locale=%s threads=%ld count=%ld rounds=%ld cpu_us=%.2f "
		       "wall_us=%.2f bytes=%zu\n", locale, threads, count, repeat,
		       bench_median(cpu_us, (int)repeat),
		       bench_median(wall_us, (int)repeat), bytes / (size_t)count);
	}
out:
	for (i = 0; i < BENCH_INPUTS; i++) {
		rendered_release(&en[i].r);
		rendered_release(&zh[i].r);
	}
	email_global_shutdown();
	templates_free(t);
	return status;
}
