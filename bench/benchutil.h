/* benchutil.h: the pieces both benchmark programs (intake_bench,
 * smtp_bench) need to talk to roused over its socket: clocks, a
 * connect, a full write, and a one-line request/answer. */
#ifndef ROUSE_BENCHUTIL_H
#define ROUSE_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

int64_t bench_mono_ns(void);
int64_t bench_wall_ns(void);
void bench_sleep_ms(long ms);

/* Prints "prog: what: <errno text>" and exits 2. */
void bench_die(const char *prog, const char *what);

/* A connected Unix stream socket, or -1 (errno set); a path too long
 * for a socket address ends the program. */
int bench_connect_unix(const char *prog, const char *path);

/* Writes all of p, retrying on EINTR. 0 or -1. */
int bench_write_all(int fd, const char *p, size_t len);

/* One request, one answer line (NUL-terminated in ans), on a fresh
 * connection. 0 or -1. */
int bench_roundtrip(const char *prog, const char *path, const char *req,
		    char *ans, size_t cap);

#endif
