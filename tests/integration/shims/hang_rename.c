/* hang_rename.c: LD_PRELOAD shim that makes the maildir hand-off of one
 * recipient's message hang forever, as a transport stuck mid-delivery.
 *
 * rename/renameat/renameat2/link/linkat whose destination lies in a "new"
 * directory and whose source file contains the bytes of
 * $ROUSE_HANG_MARKER do not return until the file named by
 * $ROUSE_HANG_RELEASE exists (never, when that is not set: the thread
 * sleeps until the process is killed). Every other call passes through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *hang_next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (f == NULL)
		abort();
	return f;
}

static int hang_dest_is_new(int dirfd, const char *path)
{
	char link[64];
	char dir[4096];
	ssize_t n;

	if (strstr(path, "/new/") != NULL || strncmp(path, "new/", 4) == 0)
		return 1;
	if (path[0] == '/' || dirfd == AT_FDCWD || dirfd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n < 0)
		return 0;
	dir[n] = '\0';
	n = (ssize_t)strlen(dir);
	return n >= 4 && strcmp(dir + n - 4, "/new") == 0;
}

static int hang_source_marked(int dirfd, const char *path)
{
	const char *marker = getenv("ROUSE_HANG_MARKER");
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	int fd;

	if (marker == NULL || marker[0] == '\0')
		return 0;
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	/* the message may hold NULs nowhere, but be safe: memmem */
	n = memmem(buf, len, marker, strlen(marker)) != NULL;
	{
		static int (*next_close)(int);
		if (next_close == NULL)
			next_close = (int (*)(int))hang_next("close");
		next_close(fd);
	}
	return (int)n;
}

/* Sleeps until the file named by $ROUSE_HANG_RELEASE exists, or forever
 * when that variable is not set. */
static void hang_forever(void)
{
	const char *release = getenv("ROUSE_HANG_RELEASE");
	for (;;) {
		if (release && access(release, F_OK) == 0)
			return;
		usleep(10000);
	}
}

static void hang_check(int olddirfd, const char *oldpath, int newdirfd,
		       const char *newpath)
{
	if (hang_dest_is_new(newdirfd, newpath) &&
	    hang_source_marked(olddirfd, oldpath))
		hang_forever();
}

int rename(const char *oldpath, const char *newpath)
{
	static int (*next)(const char *, const char *);
	if (next == NULL)
		next = (int (*)(const char *, const char *))hang_next("rename");
	hang_check(AT_FDCWD, oldpath, AT_FDCWD, newpath);
	return next(oldpath, newpath);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd,
	     const char *newpath)
{
	static int (*next)(int, const char *, int, const char *);
	if (next == NULL)
		next = (int (*)(int, const char *, int, const char *))
			hang_next("renameat");
	hang_check(olddirfd, oldpath, newdirfd, newpath);
	return next(olddirfd, oldpath, newdirfd, newpath);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd,
	      const char *newpath, unsigned int flags)
{
	static int (*next)(int, const char *, int, const char *, unsigned int);
	if (next == NULL)
		next = (int (*)(int, const char *, int, const char *,
				unsigned int))hang_next("renameat2");
	hang_check(olddirfd, oldpath, newdirfd, newpath);
	return next(olddirfd, oldpath, newdirfd, newpath, flags);
}

int link(const char *oldpath, const char *newpath)
{
	static int (*next)(const char *, const char *);
	if (next == NULL)
		next = (int (*)(const char *, const char *))hang_next("link");
	hang_check(AT_FDCWD, oldpath, AT_FDCWD, newpath);
	return next(oldpath, newpath);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd,
	   const char *newpath, int flags)
{
	static int (*next)(int, const char *, int, const char *, int);
	if (next == NULL)
		next = (int (*)(int, const char *, int, const char *, int))
			hang_next("linkat");
	hang_check(olddirfd, oldpath, newdirfd, newpath);
	return next(olddirfd, oldpath, newdirfd, newpath, flags);
}
