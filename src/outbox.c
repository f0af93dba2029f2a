/* outbox.c: maildir and JSONL file transports (see outbox.h).
 *
 * Maildir file names are "<job id>.<attempt>.rouse": unique (a job id is
 * a random UUID) and enough to find a job's message again after a crash.
 * The JSONL files are opened O_APPEND once; each batch is written with as
 * few write(2) calls as possible and made durable by one fdatasync, on
 * one thread (appends stay in order). Maildir messages are written by a
 * small pool of threads, one message at a time each: a message is
 * durable once its file and the new/ directory are fsync'd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "outbox.h"

#define OUTBOX_MAIL_THREADS 4

struct outbox {
	const struct config *cfg;
	struct worker *mail;        /* maildir writes, several threads */
	struct worker *lines;       /* JSONL appends, one thread */
	outbox_done_fn done;
	void *ctx;
	int jsonl_fd[CH_COUNT];     /* sms and push; -1 for email */
	char *maildir;
	int maildir_new_fd;         /* for fsync of new/ */
	char **held_ids;            /* recovery: job ids in the JSONL files */
	size_t n_held;
	bool held_loaded;
};

static void errno_detail(char *buf, size_t len, const char *what, int e)
{
	char msg[128];
	strerror_r(e, msg, sizeof msg);
	snprintf(buf, len, "%s: %s", what, msg);
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static int parent_dir(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return snprintf(out, len, "."), 0;
	snprintf(out, len, "%.*s", (int)(slash - path), path);
	return 0;
}

/* Cuts a torn last line (no trailing newline) off a JSONL file. */
static int repair_tail(int fd, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size == 0)
		return 0;
	off_t end = st.st_size, keep = 0;
	char buf[4096];
	while (end > 0) {
		off_t start = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - start), start);
		if (n <= 0)
			return -1;
		if (end == st.st_size && buf[n - 1] == '\n')
			return 0; /* intact */
		ssize_t nl = n - 1;
		while (nl >= 0 && buf[nl] != '\n')
			nl--;
		if (nl >= 0) {
			keep = start + nl + 1;
			break;
		}
		end = start;
	}
	if (ftruncate(fd, keep) != 0 || fsync(fd) != 0)
		return -1;
	char cut[32];
	snprintf(cut, sizeof cut, "%lld", (long long)(st.st_size - keep));
	log_msg(LOG_WARN, "outbox: cut a torn last line", "file", path,
		"bytes", cut, NULL);
	return 0;
}

static int open_jsonl(const char *path, int *fd, char *err, size_t errlen)
{
	char dir[4096];
	parent_dir(path, dir, sizeof dir);
	if (mkdir_p(dir) != 0) {
		errno_detail(err, errlen, dir, errno);
		return -1;
	}
	*fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (*fd < 0) {
		errno_detail(err, errlen, path, errno);
		return -1;
	}
	if (repair_tail(*fd, path) != 0) {
		errno_detail(err, errlen, path, errno);
		return -1;
	}
	return 0;
}

static int open_maildir(struct outbox *o, char *err, size_t errlen)
{
	static const char *const subdirs[] = { "tmp", "new", "cur" };
	char path[4096];
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", o->maildir, subdirs[i]);
		if (mkdir_p(path) != 0) {
			errno_detail(err, errlen, path, errno);
			return -1;
		}
	}
	snprintf(path, sizeof path, "%s/new", o->maildir);
	o->maildir_new_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->maildir_new_fd < 0) {
		errno_detail(err, errlen, path, errno);
		return -1;
	}
	/* leftovers of a crash in the middle of writing a message */
	snprintf(path, sizeof path, "%s/tmp", o->maildir);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n > 6 && strcmp(e->d_name + n - 6, ".rouse") == 0)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
	return 0;
}

/* ------------------------------------------------------------ thread */

static void write_maildir(struct outbox *o, struct outbox_item *it)
{
	char tmp[4096], dst[4096], name[96];
	if (!it->data && it->draft &&
	    email_draft_build(it->draft, &it->data, &it->len, it->detail,
			      sizeof it->detail) != 0) {
		it->status = -1;
		it->permanent = true;
		return;
	}
	snprintf(name, sizeof name, "%s.%d.rouse", it->job_id, it->attempt);
	snprintf(tmp, sizeof tmp, "%s/tmp/%s", o->maildir, name);
	snprintf(dst, sizeof dst, "%s/new/%s", o->maildir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		errno_detail(it->detail, sizeof it->detail, "maildir tmp", errno);
		it->status = -1;
		return;
	}
	size_t off = 0;
	while (off < it->len) {
		ssize_t w = write(fd, it->data + off, it->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	int e = errno;
	if (off != it->len || fsync(fd) != 0) {
		if (off == it->len)
			e = errno;
		close(fd);
		unlink(tmp);
		errno_detail(it->detail, sizeof it->detail, "maildir write", e);
		it->status = -1;
		return;
	}
	close(fd);
	if (rename(tmp, dst) != 0) {
		e = errno;
		unlink(tmp);
		errno_detail(it->detail, sizeof it->detail, "maildir rename", e);
		it->status = -1;
		return;
	}
	it->status = 0;
	snprintf(it->detail, sizeof it->detail, "maildir new/%s", name);
}

/* Appends every JSONL item of the batch for one channel, then one
 * fdatasync. On a failure the file is cut back to its previous size so
 * no partial line is left behind. */
static void write_jsonl(struct outbox *o, struct worker_item *batch,
			int channel)
{
	int fd = o->jsonl_fd[channel];
	struct stat st;
	int rc = fstat(fd, &st) == 0 ? 0 : -1;
	int e = errno;
	for (struct worker_item *n = batch; n && rc == 0; n = n->next) {
		struct outbox_item *it = (struct outbox_item *)n;
		if (it->channel != channel)
			continue;
		size_t off = 0;
		while (off < it->len) {
			ssize_t w = write(fd, it->data + off, it->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				e = w < 0 ? errno : ENOSPC;
				rc = -1;
				break;
			}
			off += (size_t)w;
		}
	}
	if (rc == 0 && fdatasync(fd) != 0) {
		e = errno;
		rc = -1;
	}
	if (rc != 0 && ftruncate(fd, st.st_size) == 0)
		fdatasync(fd);
	const char *file = channel == CH_SMS ? "sms outbox" : "push outbox";
	for (struct worker_item *n = batch; n; n = n->next) {
		struct outbox_item *it = (struct outbox_item *)n;
		if (it->channel != channel)
			continue;
		it->status = rc;
		if (rc == 0)
			snprintf(it->detail, sizeof it->detail, "%s", file);
		else
			errno_detail(it->detail, sizeof it->detail, file, e);
	}
}

/* One message per batch: a write that hangs (a stuck filesystem) holds
 * only its own thread, the others keep delivering. */
static void mail_batch(void *ctx, struct worker_item *batch)
{
	struct outbox *o = ctx;
	for (struct worker_item *n = batch; n; n = n->next) {
		struct outbox_item *it = (struct outbox_item *)n;
		write_maildir(o, it);
		if (it->status == 0 && fsync(o->maildir_new_fd) != 0) {
			it->status = -1;
			errno_detail(it->detail, sizeof it->detail,
				     "maildir fsync", errno);
		}
	}
}

static void lines_batch(void *ctx, struct worker_item *batch)
{
	struct outbox *o = ctx;
	bool any[CH_COUNT] = { false };
	for (struct worker_item *n = batch; n; n = n->next)
		any[((struct outbox_item *)n)->channel] = true;
	for (int ch = CH_SMS; ch < CH_COUNT; ch++)
		if (any[ch])
			write_jsonl(o, batch, ch);
}

static void outbox_done(void *ctx, struct worker_item *batch)
{
	struct outbox *o = ctx;
	while (batch) {
		struct worker_item *next = batch->next;
		o->done(o->ctx, (struct outbox_item *)batch);
		batch = next;
	}
}

/* ------------------------------------------------------------ API */

int outbox_open(uv_loop_t *loop, const struct config *cfg,
		outbox_done_fn done, void *ctx, struct outbox **out, char *err,
		size_t errlen)
{
	struct outbox *o = calloc(1, sizeof *o);
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->cfg = cfg;
	o->done = done;
	o->ctx = ctx;
	o->maildir = strdup(cfg->maildir);
	o->maildir_new_fd = -1;
	for (int i = 0; i < CH_COUNT; i++)
		o->jsonl_fd[i] = -1;
	if (open_maildir(o, err, errlen) != 0 ||
	    open_jsonl(cfg->sms_file, &o->jsonl_fd[CH_SMS], err, errlen) != 0 ||
	    open_jsonl(cfg->push_file, &o->jsonl_fd[CH_PUSH], err, errlen) != 0 ||
	    worker_start(loop, "outbox-mail", OUTBOX_MAIL_THREADS, 1,
			 mail_batch, outbox_done, o, &o->mail) != 0 ||
	    worker_start(loop, "outbox-lines", 1, 1024, lines_batch,
			 outbox_done, o, &o->lines) != 0) {
		if (o->mail)
			worker_stop(o->mail);
		if (!*err)
			snprintf(err, errlen, "cannot start the outbox thread");
		for (int i = 0; i < CH_COUNT; i++)
			if (o->jsonl_fd[i] >= 0)
				close(o->jsonl_fd[i]);
		if (o->maildir_new_fd >= 0)
			close(o->maildir_new_fd);
		free(o->maildir);
		free(o);
		return -1;
	}
	*out = o;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collects the job ids of both JSONL files (once, only when needed). */
static void load_held_ids(struct outbox *o)
{
	size_t cap = 0;
	o->held_loaded = true;
	for (int ch = CH_SMS; ch < CH_COUNT; ch++) {
		const char *path = ch == CH_SMS ? o->cfg->sms_file
						: o->cfg->push_file;
		FILE *f = fopen(path, "r");
		char *line = NULL;
		size_t linecap = 0;
		while (f && getline(&line, &linecap, f) > 0) {
			const char *p = strstr(line, "\"job\":\"");
			if (!p || strlen(p + 7) < JOB_ID_LEN)
				continue;
			if (o->n_held == cap) {
				cap = cap ? cap * 2 : 256;
				char **g = realloc(o->held_ids, cap * sizeof *g);
				if (!g)
					break;
				o->held_ids = g;
			}
			o->held_ids[o->n_held++] = strndup(p + 7, JOB_ID_LEN);
		}
		free(line);
		if (f)
			fclose(f);
	}
	if (o->n_held)
		qsort(o->held_ids, o->n_held, sizeof *o->held_ids, cmp_str);
}

bool outbox_holds(struct outbox *o, const struct job *job)
{
	if (job->channel == CH_EMAIL) {
		char path[4096];
		snprintf(path, sizeof path, "%s/new/%s.%d.rouse", o->maildir,
			 job->id, job->attempts);
		return access(path, F_OK) == 0;
	}
	if (!o->held_loaded)
		load_held_ids(o);
	const char *id = job->id;
	return o->n_held &&
	       bsearch(&id, o->held_ids, o->n_held, sizeof *o->held_ids,
		       cmp_str) != NULL;
}

int outbox_capacity(int channel)
{
	return channel == CH_EMAIL ? 2 * OUTBOX_MAIL_THREADS : 256;
}

void outbox_submit(struct outbox *o, struct outbox_item *item)
{
	worker_submit(item->channel == CH_EMAIL ? o->mail : o->lines,
		      &item->node);
}

void outbox_hold(struct outbox *o)
{
	worker_hold(o->mail);
	worker_hold(o->lines);
}

void outbox_release(struct outbox *o)
{
	worker_release(o->mail);
	worker_release(o->lines);
}

void outbox_item_free(struct outbox_item *item)
{
	if (!item)
		return;
	free(item->data);
	email_draft_free(item->draft);
	free(item);
}

void outbox_close(struct outbox *o)
{
	if (!o)
		return;
	worker_stop(o->mail);
	worker_stop(o->lines);
	for (int i = 0; i < CH_COUNT; i++)
		if (o->jsonl_fd[i] >= 0)
			close(o->jsonl_fd[i]);
	if (o->maildir_new_fd >= 0)
		close(o->maildir_new_fd);
	for (size_t i = 0; i < o->n_held; i++)
		free(o->held_ids[i]);
	free(o->held_ids);
	free(o->maildir);
	free(o);
}
