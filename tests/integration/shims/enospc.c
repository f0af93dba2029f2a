/* enospc.c: LD_PRELOAD shim that makes writes and syncs of the database
 * fail with ENOSPC while a trigger file exists.
 *
 * Affected calls: write, pwrite, pwrite64, writev, pwritev, fsync,
 * fdatasync, on descriptors whose path (readlink /proc/self/fd/N) contains
 * "rouse.db" (the database, its -wal and -shm files). The trigger file's
 * path comes from $ROUSE_FAULT_TRIGGER; without it nothing is faked.
 * Paths are cached per descriptor and forgotten on close().
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define ENOSPC_MAX_FD 65536

/* 0 unknown, 1 a database file, 2 something else */
static volatile unsigned char enospc_kind[ENOSPC_MAX_FD];

static void *enospc_next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (f == NULL)
		abort();
	return f;
}

static int enospc_is_db(int fd)
{
	char link[64];
	char path[4096];
	ssize_t n;
	int kind;

	if (fd < 0 || fd >= ENOSPC_MAX_FD)
		return 0;
	kind = enospc_kind[fd];
	if (kind == 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n < 0)
			return 0;
		path[n] = '\0';
		kind = strstr(path, "rouse.db") != NULL ? 1 : 2;
		enospc_kind[fd] = (unsigned char)kind;
	}
	return kind == 1;
}

static int enospc_fault(int fd)
{
	const char *trigger;

	if (!enospc_is_db(fd))
		return 0;
	trigger = getenv("ROUSE_FAULT_TRIGGER");
	if (trigger == NULL || access(trigger, F_OK) != 0)
		return 0;
	errno = ENOSPC;
	return 1;
}

int close(int fd)
{
	static int (*next)(int);
	if (next == NULL)
		next = (int (*)(int))enospc_next("close");
	if (fd >= 0 && fd < ENOSPC_MAX_FD)
		enospc_kind[fd] = 0;
	return next(fd);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*next)(int, const void *, size_t);
	if (next == NULL)
		next = (ssize_t (*)(int, const void *, size_t))enospc_next("write");
	if (enospc_fault(fd))
		return -1;
	return next(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*next)(int, const void *, size_t, off_t);
	if (next == NULL)
		next = (ssize_t (*)(int, const void *, size_t, off_t))
			enospc_next("pwrite");
	if (enospc_fault(fd))
		return -1;
	return next(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	static ssize_t (*next)(int, const void *, size_t, off64_t);
	if (next == NULL)
		next = (ssize_t (*)(int, const void *, size_t, off64_t))
			enospc_next("pwrite64");
	if (enospc_fault(fd))
		return -1;
	return next(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*next)(int, const struct iovec *, int);
	if (next == NULL)
		next = (ssize_t (*)(int, const struct iovec *, int))
			enospc_next("writev");
	if (enospc_fault(fd))
		return -1;
	return next(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	static ssize_t (*next)(int, const struct iovec *, int, off_t);
	if (next == NULL)
		next = (ssize_t (*)(int, const struct iovec *, int, off_t))
			enospc_next("pwritev");
	if (enospc_fault(fd))
		return -1;
	return next(fd, iov, cnt, off);
}

int fsync(int fd)
{
	static int (*next)(int);
	if (next == NULL)
		next = (int (*)(int))enospc_next("fsync");
	if (enospc_fault(fd))
		return -1;
	return next(fd);
}

int fdatasync(int fd)
{
	static int (*next)(int);
	if (next == NULL)
		next = (int (*)(int))enospc_next("fdatasync");
	if (enospc_fault(fd))
		return -1;
	return next(fd);
}
