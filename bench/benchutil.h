/* benchutil.h: the pieces the benchmark programs (intake_bench,
 * smtp_bench, enroll_bench, http_raw) need to talk to roused over its
 * socket: clocks, a connect, a full write, a one-line request/answer, and
 * the reading of pipelined answer lines. */
#ifndef ROUSE_BENCHUTIL_H
#define ROUSE_BENCHUTIL_H

#include <stdatomic.h>
#include <stdbool.h>
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

/* Longest answer line bench_read_answers takes. */
#define BENCH_ANSWER_MAX (256u << 10)

/* Reads the '\n'-terminated answers of one load connection from fd and
 * hands each to on_line (NUL-terminated, writable, with the bench_mono_ns()
 * time its read returned), which counts it in *acked, until *acked reaches
 * n. Returns NULL then; else why the answers stopped first, written to why
 * ("answer line longer than N bytes", "closed by the daemon after N
 * answers"). Out of memory ends the program. */
const char *bench_read_answers(const char *prog, int fd,
			       const _Atomic long *acked, long n,
			       void (*on_line)(void *ud, char *line,
					       int64_t t),
			       void *ud, char *why, size_t len);

#endif
