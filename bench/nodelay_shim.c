/* nodelay_shim.c: LD_PRELOAD diagnostic for bench/smtp_bench.sh.
 *
 * Interposes connect(2): after connecting a TCP socket (IPv4 or IPv6) it
 * sets TCP_NODELAY on it. libESMTP exposes no socket options, so this is
 * the only way to show, without touching the daemon, how much of the SMTP
 * delivery time is Nagle's algorithm holding the last short segment of a
 * message (the tail of DATA plus the final ".") until the server's
 * delayed ACK. A diagnostic only: the bench reports the figure with and
 * without it, and nothing ships with it.
 *
 * Build: cc -shared -fPIC -o nodelay_shim.so nodelay_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*shim_connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	static shim_connect_fn real;
	if (!real)
		real = (shim_connect_fn)dlsym(RTLD_NEXT, "connect");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	int rc = real(fd, addr, len);
	int saved = errno;
	int type = 0;
	socklen_t tl = sizeof type;
	if ((rc == 0 || errno == EINPROGRESS) && addr &&
	    (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
	    type == SOCK_STREAM) {
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	errno = saved;
	return rc;
}
