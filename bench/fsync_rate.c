/* fsync_rate.c: the raw synchronous-write rate of a directory's file system.
 *
 * This is the reference the intake benchmark divides by: a durable ack can
 * never be cheaper than one fsync unless commits are grouped, so "acks per
 * second / fsyncs per second" measures how well group commit works, and the
 * ratio stays meaningful on a noisy or unknown disk.
 *
 * Two loops run for --seconds each (default 2) on a scratch file created in
 * the directory and removed afterwards:
 *   rewrite: pwrite 4 KiB blocks sequentially over a preallocated 4 MiB
 *            file, wrapping, with fdatasync after each write (the steady
 *            state of a SQLite WAL that is reset and rewritten in place);
 *   append:  write 4 KiB at the end of a growing file, fdatasync after each
 *            (every sync also carries the new file size).
 * A third loop times the maildir primitive for comparison with delivery
 * through the maildir transport (it is not part of the reference):
 *   create:  open a new file in tmp/, write 4 KiB, fsync, close, rename
 *            into new/ (files removed afterwards).
 * Output: one human line per loop, then a "result:" line of key=value pairs
 * for scripts. fsync_per_s (the reference) is the faster of the first two
 * loops, so that ratios computed from it are never flattered.
 *
 * Usage: fsync_rate [--seconds S] DIR
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FSYNC_BLOCK 4096
#define FSYNC_REWRITE_SPAN (4u << 20)

struct fsync_loop {
	const char *name;
	long ops;
	double seconds;
	double max_ms;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path)
{
	char msg[128];
	strerror_r(errno, msg, sizeof msg);
	fprintf(stderr, "fsync_rate: %s %s: %s\n", what, path, msg);
	exit(1);
}

/* Runs one loop for `seconds`; append selects the growing-file variant. */
static void run_loop(const char *dir, bool append, double seconds,
		     struct fsync_loop *out)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/.fsync_rate.%ld.tmp", dir,
		 (long)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		fail("open", path);
	static char block[FSYNC_BLOCK];
	memset(block, 'r', sizeof block);
	if (!append) {
		for (off_t off = 0; off < (off_t)FSYNC_REWRITE_SPAN;
		     off += FSYNC_BLOCK)
			if (pwrite(fd, block, sizeof block, off) !=
			    (ssize_t)sizeof block)
				fail("preallocate", path);
		if (fsync(fd) != 0)
			fail("fsync", path);
	}
	long ops = 0;
	off_t off = 0;
	double max_ms = 0;
	double start = now_s(), t = start;
	while (t - start < seconds) {
		if (pwrite(fd, block, sizeof block, off) != (ssize_t)sizeof block)
			fail("write", path);
		off += FSYNC_BLOCK;
		if (!append && off >= (off_t)FSYNC_REWRITE_SPAN)
			off = 0;
		if (fdatasync(fd) != 0)
			fail("fdatasync", path);
		ops++;
		double t2 = now_s();
		if ((t2 - t) * 1e3 > max_ms)
			max_ms = (t2 - t) * 1e3;
		t = t2;
	}
	close(fd);
	unlink(path);
	out->name = append ? "append" : "rewrite";
	out->ops = ops;
	out->seconds = t - start;
	out->max_ms = max_ms;
}

static void remove_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		char f[4096];
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(f, sizeof f, "%s/%s", path, e->d_name);
				unlink(f);
			}
		closedir(d);
	}
	rmdir(path);
}

/* The maildir primitive: new file in tmp/, write, fsync, rename to new/. */
static void run_create(const char *dir, double seconds, struct fsync_loop *out)
{
	char base[4096], tmp[4200], new[4200], from[4300], to[4300];
	snprintf(base, sizeof base, "%s/.fsync_rate.%ld.d", dir,
		 (long)getpid());
	snprintf(tmp, sizeof tmp, "%s/tmp", base);
	snprintf(new, sizeof new, "%s/new", base);
	if (mkdir(base, 0700) != 0 || mkdir(tmp, 0700) != 0 ||
	    mkdir(new, 0700) != 0)
		fail("mkdir", base);
	static char block[FSYNC_BLOCK];
	memset(block, 'm', sizeof block);
	long ops = 0;
	double max_ms = 0;
	double start = now_s(), t = start;
	while (t - start < seconds) {
		snprintf(from, sizeof from, "%s/%ld", tmp, ops);
		snprintf(to, sizeof to, "%s/%ld", new, ops);
		int fd = open(from, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			      0600);
		if (fd < 0)
			fail("open", from);
		if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
			fail("write", from);
		if (fsync(fd) != 0)
			fail("fsync", from);
		close(fd);
		if (rename(from, to) != 0)
			fail("rename", from);
		ops++;
		double t2 = now_s();
		if ((t2 - t) * 1e3 > max_ms)
			max_ms = (t2 - t) * 1e3;
		t = t2;
	}
	remove_dir(new);
	remove_dir(tmp);
	rmdir(base);
	out->name = "create";
	out->ops = ops;
	out->seconds = t - start;
	out->max_ms = max_ms;
}

int main(int argc, char **argv)
{
	double seconds = 2.0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			char *end = NULL;
			seconds = strtod(argv[++i], &end);
			if (!end || *end || seconds <= 0) {
				fprintf(stderr, "fsync_rate: --seconds: "
					"expected a positive number\n");
				return 2;
			}
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			fprintf(stderr,
				"usage: fsync_rate [--seconds S] DIR\n");
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "usage: fsync_rate [--seconds S] DIR\n");
		return 2;
	}
	struct fsync_loop loops[3];
	run_loop(dir, false, seconds, &loops[0]);
	run_loop(dir, true, seconds, &loops[1]);
	run_create(dir, seconds, &loops[2]);
	double best = 0;
	for (int i = 0; i < 3; i++) {
		double rate = (double)loops[i].ops / loops[i].seconds;
		printf("fsync %-7s %ld x (%s) in %.2f s: %.0f/s, mean %.3f ms, "
		       "max %.3f ms\n", loops[i].name, loops[i].ops,
		       i < 2 ? "4 KiB write + fdatasync"
			     : "create + 4 KiB write + fsync + rename",
		       loops[i].seconds, rate, 1e3 / rate, loops[i].max_ms);
		if (i < 2 && rate > best)
			best = rate;
	}
	printf("result: fsync_per_s=%.0f rewrite_per_s=%.0f append_per_s=%.0f "
	       "create_per_s=%.0f\n", best,
	       (double)loops[0].ops / loops[0].seconds,
	       (double)loops[1].ops / loops[1].seconds,
	       (double)loops[2].ops / loops[2].seconds);
	return 0;
}
