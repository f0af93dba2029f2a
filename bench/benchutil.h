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

/* Longest request line, and the most bytes in one write, of
 * bench_write_requests. */
#define BENCH_LINE_MAX 1024
#define BENCH_WRITE_BUF (64u << 10)

/* Request j (0-based) of one load connection, written into buf (cap
 * bytes): its length, or -1. */
typedef int (*bench_format_fn)(void *ud, long j, char *buf, size_t cap);

enum bench_write_end {
	BENCH_WRITTEN,         /* all n requests went out */
	BENCH_WRITE_STOPPED,   /* *failed was set by someone else */
	BENCH_FORMAT_FAILED,   /* request *written could not be made */
	BENCH_WRITE_FAILED,    /* a write failed after *written requests */
};

/* Writes requests 0..n-1 of one load connection to fd, packed into writes
 * of up to BENCH_WRITE_BUF bytes, with at most window of them (0: any
 * number) not yet counted in *acked by the reader. Stops when *failed is
 * set; sets it itself on a format or write failure. *written: how many
 * requests were handed to the socket. */
enum bench_write_end bench_write_requests(const char *prog, int fd, long n,
					  long window,
					  const _Atomic long *acked,
					  _Atomic bool *failed,
					  bench_format_fn format, void *ud,
					  long *written);

/* What went wrong on one load connection: how many times, and the first
 * time in words. Written by that connection's reader thread only. */
struct bench_errors {
	long count;
	char first[300];
};

/* Counts one error; the words of the first one are kept. */
void bench_error(struct bench_errors *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
