/* benchutil.c: shared helpers of the benchmark programs (benchutil.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

static int64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int64_t bench_wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

void bench_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void bench_die(const char *prog, const char *what)
{
	char msg[128];
	strerror_r(errno, msg, sizeof msg);
	fprintf(stderr, "%s: %s: %s\n", prog, what, msg);
	exit(2);
}

int bench_connect_unix(const char *prog, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof addr.sun_path) {
		fprintf(stderr, "%s: --socket: path too long\n", prog);
		exit(2);
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int bench_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int bench_roundtrip(const char *prog, const char *path, const char *req,
		    char *ans, size_t cap)
{
	int fd = bench_connect_unix(prog, path);
	if (fd < 0)
		return -1;
	size_t len = 0;
	int rc = -1;
	if (bench_write_all(fd, req, strlen(req)) != 0)
		goto out;
	while (len + 1 < cap) {
		ssize_t r = read(fd, ans + len, cap - 1 - len);
		if (r <= 0)
			goto out;
		len += (size_t)r;
		ans[len] = '\0';
		if (memchr(ans, '\n', len)) {
			rc = 0;
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

void bench_error(struct bench_errors *e, const char *fmt, ...)
{
	if (e->count++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->first, sizeof e->first, fmt, ap);
		va_end(ap);
	}
}

const char *bench_read_answers(const char *prog, int fd,
			       const _Atomic long *acked, long n,
			       void (*on_line)(void *ud, char *line,
					       int64_t t),
			       void *ud, char *why, size_t why_len)
{
	const char *stopped = NULL;
	char *buf = malloc(BENCH_ANSWER_MAX + 1);
	if (!buf)
		bench_die(prog, "malloc");
	size_t len = 0;
	while (atomic_load(acked) < n) {
		if (len == BENCH_ANSWER_MAX) {
			snprintf(why, why_len,
				 "answer line longer than %u bytes",
				 BENCH_ANSWER_MAX);
			stopped = why;
			break;
		}
		ssize_t r = read(fd, buf + len, BENCH_ANSWER_MAX - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(why, why_len,
				 "closed by the daemon after %ld answers",
				 atomic_load(acked));
			stopped = why;
			break;
		}
		int64_t t = bench_mono_ns();
		len += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
			*nl = '\0';
			on_line(ud, start, t);
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
	}
	free(buf);
	return stopped;
}

/* Sleeps while window requests are unanswered. */
static void wait_for_room(long sent, long window, const _Atomic long *acked,
			  _Atomic bool *failed)
{
	while (window > 0 && sent - atomic_load(acked) >= window &&
	       !atomic_load(failed)) {
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	}
}

enum bench_write_end bench_write_requests(const char *prog, int fd, long n,
					  long window,
					  const _Atomic long *acked,
					  _Atomic bool *failed,
					  bench_format_fn format, void *ud,
					  long *written)
{
	enum bench_write_end end = BENCH_WRITTEN;
	char *buf = malloc(BENCH_WRITE_BUF);
	if (!buf)
		bench_die(prog, "malloc");
	long j = 0;
	while (j < n && end == BENCH_WRITTEN) {
		wait_for_room(j, window, acked, failed);
		if (atomic_load(failed)) {
			end = BENCH_WRITE_STOPPED;
			break;
		}
		long room = window > 0 ? window - (j - atomic_load(acked)) : n;
		size_t used = 0;
		while (j < n && room > 0 &&
		       used + BENCH_LINE_MAX <= BENCH_WRITE_BUF) {
			int len = format(ud, j, buf + used, BENCH_LINE_MAX);
			if (len < 0) {
				end = BENCH_FORMAT_FAILED;
				break;
			}
			used += (size_t)len;
			j++;
			room--;
		}
		if (used && bench_write_all(fd, buf, used) != 0) {
			end = BENCH_WRITE_FAILED;
		}
	}
	if (end == BENCH_FORMAT_FAILED || end == BENCH_WRITE_FAILED)
		atomic_store(failed, true);
	*written = j;
	free(buf);
	return end;
}
