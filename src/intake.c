/* intake.c: the Unix-socket front door (see intake.h).
 *
 * DESIGN
 * - Each connection keeps a FIFO of reply slots, one per request line, in
 *   arrival order. Handlers fill slots in any order; a flush writes the
 *   ready prefix of the FIFO as one uv_write. Flushes are deferred to a
 *   uv_check handle, so the answers of one group commit leave in a single
 *   write per connection.
 * - A connection object lives until it is closed AND no slot refers to it,
 *   so a late answer for a client that went away is simply dropped.
 * - Caps: max_line per request (too_large, then the rest of that line is
 *   skipped), CONN_MAX_UNANSWERED requests in flight and CONN_MAX_WRITE
 *   bytes unsent per connection (beyond either, the connection is not read
 *   until it drains), max_connections (overloaded, then close).
 * - Fairness: a connection gets at most one full read buffer (64 KiB,
 *   a few hundred requests) per loop iteration. A client pipelining
 *   thousands of requests would otherwise hold the loop for tens of
 *   milliseconds in one read callback (libuv keeps reading while reads
 *   fill the buffer), stalling transports and every other client; it
 *   yields instead and is read again in the next iteration.
 * - End of input from a client (half-close) still gets every answer before
 *   the connection is closed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "intake.h"
#include "log.h"

#define CONN_MAX_UNANSWERED 8192
#define CONN_MAX_WRITE (4u << 20)

struct conn;

struct intake_slot {
	struct intake_slot *next;
	struct conn *conn;
	char *data;   /* the answer line, '\n' included, once ready */
	size_t len;
	bool ready;
};

struct conn {
	uv_pipe_t pipe;
	struct intake *in;
	struct conn *prev, *next;      /* intake's list of open connections */
	struct conn *dirty_next;       /* intake's flush list */
	bool dirty;
	struct conn *yield_next;       /* intake's list of yielded readers */
	bool yielded;                  /* had its read turn this iteration */
	char *line;                    /* partial line being assembled */
	size_t line_len, line_cap;
	bool skipping;                 /* discarding the rest of a long line */
	struct intake_slot *head, *tail;
	size_t unanswered;             /* slots not yet written */
	size_t writing;                /* bytes handed to uv_write */
	bool reading;
	bool eof;
	bool closing;
	size_t refs;                   /* slots + writes + the open handle */
};

struct write_req {
	uv_write_t req;
	struct conn *conn;
	size_t len;
	char data[];
};

struct intake {
	uv_loop_t *loop;
	const struct config *cfg;
	intake_request_fn on_request;
	void *ud;
	uv_pipe_t server;
	bool listening;
	uv_check_t flusher;
	struct conn *conns;
	struct conn *dirty;
	struct conn *yielded;
	size_t n_conns;
	size_t unanswered;
	bool closing;
	char *socket_path;
};

static void conn_flush(struct conn *c);
static void conn_maybe_close(struct conn *c);
static void conn_update_reading(struct conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------ lifetime */

static void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	free(c->line);
	free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

/* Removes the answered prefix of the reply FIFO, copying the answers
 * into dst when it is not NULL (dst must hold them all). Returns the
 * number of bytes removed. */
static size_t pop_answered(struct conn *c, char *dst)
{
	size_t off = 0;
	while (c->head && c->head->ready) {
		struct intake_slot *s = c->head;
		if (dst)
			memcpy(dst + off, s->data, s->len);
		off += s->len;
		c->head = s->next;
		free(s->data);
		free(s);
		c->unanswered--;
		c->in->unanswered--;
		c->refs--;
	}
	if (!c->head)
		c->tail = NULL;
	return off;
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct intake *in = c->in;
	if (c->prev)
		c->prev->next = c->next;
	else
		in->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	in->n_conns--;
	/* drop answers nobody will read; slots still owned by handlers stay
	 * until intake_reply frees them */
	pop_answered(c, NULL);
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

/* ------------------------------------------------------------ writing */

static void on_write(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *c = w->conn;
	c->writing -= w->len;
	free(w);
	if (status < 0 && !c->closing)
		conn_close(c);
	if (!c->closing) {
		conn_update_reading(c);
		conn_maybe_close(c);
	}
	conn_unref(c);
}

static void conn_flush(struct conn *c)
{
	size_t total = 0;
	for (struct intake_slot *s = c->head; s && s->ready; s = s->next)
		total += s->len;
	if (total == 0)
		return;
	struct write_req *w = malloc(sizeof *w + total);
	if (!w) {
		conn_close(c);
		return;
	}
	pop_answered(c, w->data);
	w->conn = c;
	w->len = total;
	uv_buf_t buf = uv_buf_init(w->data, (unsigned)total);
	c->writing += total;
	c->refs++;
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_write) != 0) {
		c->writing -= total;
		c->refs--;
		free(w);
		conn_close(c);
	}
}

/* Ends the read turns of this iteration: yielded connections read again. */
static void resume_yielded(struct intake *in)
{
	while (in->yielded) {
		struct conn *c = in->yielded;
		in->yielded = c->yield_next;
		c->yield_next = NULL;
		c->yielded = false;
		if (!c->closing)
			conn_update_reading(c);
		conn_unref(c);
	}
}

static void on_flush_check(uv_check_t *h)
{
	struct intake *in = h->data;
	resume_yielded(in);
	while (in->dirty) {
		struct conn *c = in->dirty;
		in->dirty = c->dirty_next;
		c->dirty = false;
		c->dirty_next = NULL;
		if (!c->closing) {
			conn_flush(c);
			if (!c->closing) {
				conn_update_reading(c);
				conn_maybe_close(c);
			}
		}
		conn_unref(c);
	}
}

/* Puts c on one of intake's lists (flush, yielded) once, holding a ref. */
static void conn_enlist(struct conn *c, bool *listed, struct conn **link,
			struct conn **head)
{
	if (*listed || c->closing)
		return;
	*listed = true;
	c->refs++;
	*link = *head;
	*head = c;
}

static void conn_mark_dirty(struct conn *c)
{
	conn_enlist(c, &c->dirty, &c->dirty_next, &c->in->dirty);
}

void intake_reply(struct intake_slot *slot, json_t *answer)
{
	struct conn *c = slot->conn;
	char *text = answer ? json_dumps(answer, JSON_COMPACT |
					JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)
			    : NULL;
	json_decref(answer);
	if (!text)
		text = strdup("{\"ok\":false,\"error\":{\"code\":\"internal\","
			      "\"message\":\"cannot encode the answer\"}}");
	size_t len = text ? strlen(text) : 0;
	char *line = text ? realloc(text, len + 2) : NULL;
	if (!line) {
		free(text);
		line = NULL;
		len = 0;
	} else {
		line[len++] = '\n';
		line[len] = '\0';
	}
	slot->data = line;
	slot->len = line ? len : 0;
	slot->ready = true;
	if (c->closing) {
		/* the client is gone: drop the answers that can no longer be
		 * written (the ready prefix of the FIFO) */
		c->refs++;
		pop_answered(c, NULL);
		conn_unref(c);
		return;
	}
	conn_mark_dirty(c);
}

void intake_reply_error(struct intake_slot *slot, json_t *id,
			const char *code, const char *message)
{
	json_t *a = json_object();
	json_object_set(a, "id", id ? id : json_null());
	json_object_set_new(a, "ok", json_false());
	json_t *e = json_object();
	json_object_set_new(e, "code", json_string(code));
	json_t *msg = json_string(message);
	json_object_set_new(e, "message",
			    msg ? msg : json_string("(message not UTF-8)"));
	json_object_set_new(a, "error", e);
	intake_reply(slot, a);
}

/* ------------------------------------------------------------ reading */

static struct intake_slot *slot_new(struct conn *c)
{
	struct intake_slot *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->conn = c;
	if (c->tail)
		c->tail->next = s;
	else
		c->head = s;
	c->tail = s;
	c->unanswered++;
	c->in->unanswered++;
	c->refs++;
	return s;
}

static void conn_update_reading(struct conn *c)
{
	bool want = !c->eof && !c->closing && !c->yielded &&
		    c->unanswered < CONN_MAX_UNANSWERED &&
		    c->writing < CONN_MAX_WRITE;
	if (want == c->reading)
		return;
	c->reading = want;
	if (want)
		uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&c->pipe);
}

static void conn_maybe_close(struct conn *c)
{
	if (c->eof && c->unanswered == 0 && c->writing == 0)
		conn_close(c);
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
	struct intake_slot *s = slot_new(c);
	if (!s) {
		conn_close(c);
		return;
	}
	c->in->on_request(c->in->ud, s, line, len);
}

static void too_large(struct conn *c)
{
	struct intake_slot *s = slot_new(c);
	if (!s) {
		conn_close(c);
		return;
	}
	char msg[96];
	snprintf(msg, sizeof msg, "request line longer than intake.max_line "
		 "(%zu bytes)", c->in->cfg->max_line);
	intake_reply_error(s, NULL, "too_large", msg);
}

static int line_append(struct conn *c, const char *p, size_t n)
{
	if (c->line_len + n > c->line_cap) {
		size_t cap = c->line_cap ? c->line_cap : 4096;
		while (cap < c->line_len + n)
			cap *= 2;
		char *grown = realloc(c->line, cap);
		if (!grown)
			return -1;
		c->line = grown;
		c->line_cap = cap;
	}
	memcpy(c->line + c->line_len, p, n);
	c->line_len += n;
	return 0;
}

/* Splits buf into lines, feeding complete ones to the handler. */
static void conn_consume(struct conn *c, const char *buf, size_t n)
{
	size_t max = c->in->cfg->max_line;
	while (n > 0 && !c->closing) {
		const char *nl = memchr(buf, '\n', n);
		size_t chunk = nl ? (size_t)(nl - buf) : n;
		if (c->skipping) {
			if (nl)
				c->skipping = false;
		} else if (c->line_len + chunk > max) {
			c->line_len = 0;
			too_large(c);
			c->skipping = nl == NULL;
		} else if (nl && c->line_len == 0) {
			handle_line(c, buf, chunk); /* no copy needed */
		} else if (line_append(c, buf, chunk) != 0) {
			conn_close(c);
			return;
		} else if (nl) {
			handle_line(c, c->line, c->line_len);
			c->line_len = 0;
		}
		if (!nl)
			break;
		buf = nl + 1;
		n -= chunk + 1;
	}
	if (c->line_cap > 65536 && c->line_len == 0) {
		free(c->line); /* don't keep a huge buffer for an idle client */
		c->line = NULL;
		c->line_cap = 0;
	}
}

/* Reads land in one scratch buffer: lines are consumed (or copied into
 * the connection's partial line) before the next read. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static _Thread_local char scratch[65536];
	*buf = uv_buf_init(scratch, sizeof scratch);
}

/* A read that filled the buffer means more is waiting: this connection
 * has had its turn for this loop iteration. */
static void conn_yield(struct conn *c)
{
	conn_enlist(c, &c->yielded, &c->yield_next, &c->in->yielded);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	if (nread > 0) {
		conn_consume(c, buf->base, (size_t)nread);
		if ((size_t)nread == buf->len)
			conn_yield(c);
		if (!c->closing)
			conn_update_reading(c);
		return;
	}
	if (nread == 0)
		return;
	/* EOF or error: a partial last line is discarded (never executed) */
	c->eof = true;
	c->line_len = 0;
	if (nread != UV_EOF) {
		conn_close(c);
		return;
	}
	conn_update_reading(c);
	conn_maybe_close(c);
}

/* ------------------------------------------------------------ accepting */

static void on_overload_closed(uv_handle_t *h)
{
	free(h);
}

static void refuse_connection(struct intake *in)
{
	uv_pipe_t *tmp = malloc(sizeof *tmp);
	if (!tmp || uv_pipe_init(in->loop, tmp, 0) != 0) {
		free(tmp);
		return;
	}
	if (uv_accept((uv_stream_t *)&in->server, (uv_stream_t *)tmp) == 0) {
		static const char msg[] =
			"{\"id\":null,\"ok\":false,\"error\":{\"code\":"
			"\"overloaded\",\"message\":\"too many connections "
			"(intake.max_connections); retry later\"}}\n";
		uv_buf_t buf = uv_buf_init((char *)msg, sizeof msg - 1);
		uv_try_write((uv_stream_t *)tmp, &buf, 1);
	}
	uv_close((uv_handle_t *)tmp, on_overload_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct intake *in = server->data;
	if (status < 0)
		return;
	if (in->n_conns >= (size_t)in->cfg->max_connections) {
		refuse_connection(in);
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c || uv_pipe_init(in->loop, &c->pipe, 0) != 0) {
		free(c);
		refuse_connection(in);
		return;
	}
	c->in = in;
	c->refs = 1;
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
		return;
	}
	c->next = in->conns;
	if (in->conns)
		in->conns->prev = c;
	in->conns = c;
	in->n_conns++;
	c->reading = true;
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* A socket file that exists: live daemon -> refuse; stale -> remove. */
static int clear_stale_socket(const char *path, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "intake.socket: %s exists and is not a "
			 "socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "intake.socket: cannot create socket");
		return -1;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
	int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
	int e = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "intake.socket: %s is in use by a "
			 "running daemon", path);
		return -1;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		char msg[128];
		strerror_r(e, msg, sizeof msg);
		snprintf(err, errlen, "intake.socket: %s: %s", path, msg);
		return -1;
	}
	unlink(path);
	return 0;
}

int intake_start(uv_loop_t *loop, const struct config *cfg,
		 intake_request_fn on_request, void *ud, struct intake **out,
		 char *err, size_t errlen)
{
	struct intake *in = calloc(1, sizeof *in);
	if (!in) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	in->loop = loop;
	in->cfg = cfg;
	in->on_request = on_request;
	in->ud = ud;
	in->socket_path = strdup(cfg->socket_path);
	if (strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "intake.socket: path too long (%zu "
			 "bytes, at most %zu)", strlen(cfg->socket_path),
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		goto fail;
	}
	if (clear_stale_socket(cfg->socket_path, err, errlen) != 0)
		goto fail;
	uv_pipe_init(loop, &in->server, 0);
	in->server.data = in;
	mode_t old = umask(0117);
	int rc = uv_pipe_bind(&in->server, cfg->socket_path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&in->server, 1024, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "intake.socket: %s: %s",
			 cfg->socket_path, uv_strerror(rc));
		uv_close((uv_handle_t *)&in->server, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
		goto fail;
	}
	in->listening = true;
	uv_check_init(loop, &in->flusher);
	in->flusher.data = in;
	uv_check_start(&in->flusher, on_flush_check);
	*out = in;
	return 0;
fail:
	free(in->socket_path);
	free(in);
	return -1;
}

size_t intake_connections(const struct intake *in)
{
	return in->n_conns;
}

size_t intake_unanswered(const struct intake *in)
{
	return in->unanswered;
}

void intake_stop_listening(struct intake *in)
{
	if (!in->listening)
		return;
	in->listening = false;
	uv_close((uv_handle_t *)&in->server, NULL);
	unlink(in->socket_path);
}

static void on_flusher_closed(uv_handle_t *h)
{
	struct intake *in = h->data;
	free(in->socket_path);
	free(in);
}

void intake_close(struct intake *in)
{
	intake_stop_listening(in);
	on_flush_check(&in->flusher);
	while (in->conns)
		conn_close(in->conns);
	uv_check_stop(&in->flusher);
	uv_close((uv_handle_t *)&in->flusher, on_flusher_closed);
}
