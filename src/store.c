/* store.c: the SQLite store (see store.h).
 *
 * DESIGN
 * - One database file <data_dir>/rouse.db, journal_mode=WAL and
 *   synchronous=FULL on both connections, so a COMMIT returns only after
 *   the WAL is fsync'd: every callback of a write command runs after that.
 * - The writer connection belongs to the "store-writer" thread (a worker,
 *   worker.h). A batch of commands runs in one BEGIN IMMEDIATE ... COMMIT:
 *   one fsync for the whole batch (group commit). If any command of the
 *   batch fails the batch is rolled back and each command is retried in a
 *   transaction of its own, so one bad command cannot fail its
 *   neighbours and nothing half-done is ever committed.
 * - The reader connection belongs to the "store-reader" thread; WAL lets
 *   it read committed state while the writer writes.
 * - Tables: jobs (one row per job, its current state and due time),
 *   job_events (append-only history per job), optouts (effective opt-outs,
 *   derived from consent_history, the append-only record), send_history
 *   (one row per job that reached `sending`: the per-user cap counter).
 *   Partial indexes cover only active jobs, so a large sent history does
 *   not slow the scheduler.
 * - Schema versions live in PRAGMA user_version; `migrations[i]` takes a
 *   database from version i to i+1.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "channel.h"
#include "gate.h"
#include "log.h"
#include "quiet.h"
#include "store.h"
#include "timefmt.h"
#include "tzdb.h"
#include "worker.h"

#define STORE_MAX_BATCH 8192

static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE jobs ("
	"  rowid INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  key TEXT UNIQUE,"
	"  user TEXT NOT NULL,"
	"  channel INTEGER NOT NULL,"
	"  recipient TEXT NOT NULL,"
	"  platform INTEGER NOT NULL DEFAULT 0,"
	"  template TEXT NOT NULL,"
	"  locale TEXT,"
	"  vars TEXT,"
	"  tz TEXT,"
	"  at_ms INTEGER NOT NULL DEFAULT 0,"
	"  expires_ms INTEGER NOT NULL DEFAULT 0,"
	"  created_ms INTEGER NOT NULL,"
	"  state INTEGER NOT NULL,"
	"  due_ms INTEGER NOT NULL DEFAULT 0,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT,"
	"  encoding TEXT,"
	"  segments INTEGER,"
	"  sent_ms INTEGER);"
	"CREATE INDEX jobs_due ON jobs(channel, due_ms) WHERE state < 3;"
	"CREATE INDEX jobs_sending ON jobs(state) WHERE state = 3;"
	"CREATE INDEX jobs_active_user ON jobs(user) WHERE state < 3;"
	"CREATE INDEX jobs_active_recipient ON jobs(recipient)"
	"  WHERE state < 3;"
	"CREATE TABLE job_events ("
	"  job INTEGER NOT NULL,"
	"  at_ms INTEGER NOT NULL,"
	"  what TEXT NOT NULL,"
	"  detail TEXT,"
	"  until_ms INTEGER);"
	"CREATE INDEX job_events_job ON job_events(job);"
	"CREATE TABLE optouts ("
	"  kind INTEGER NOT NULL,"      /* 0 user, 1 address */
	"  subject TEXT NOT NULL,"
	"  channel INTEGER NOT NULL,"   /* enum channel, -1 all */
	"  source TEXT NOT NULL,"
	"  reason TEXT,"
	"  at_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, subject, channel)) WITHOUT ROWID;"
	"CREATE TABLE consent_history ("
	"  seq INTEGER PRIMARY KEY,"
	"  user TEXT,"
	"  address TEXT,"
	"  channel INTEGER NOT NULL,"
	"  action TEXT NOT NULL,"
	"  source TEXT NOT NULL,"
	"  reason TEXT,"
	"  at_ms INTEGER NOT NULL);"
	"CREATE INDEX consent_user ON consent_history(user);"
	"CREATE INDEX consent_address ON consent_history(address);"
	"CREATE TABLE send_history ("
	"  job INTEGER PRIMARY KEY,"
	"  user TEXT NOT NULL,"
	"  channel INTEGER NOT NULL,"
	"  at_ms INTEGER NOT NULL);"
	"CREATE INDEX send_history_user ON send_history(user, at_ms);",
	/* 1 -> 2: the HTTP transports */
	"ALTER TABLE jobs ADD COLUMN provider_ref TEXT;"
	"CREATE TABLE dead_tokens ("
	"  platform INTEGER NOT NULL,"
	"  token TEXT NOT NULL,"
	"  at_ms INTEGER NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  job TEXT NOT NULL,"
	"  PRIMARY KEY (platform, token)) WITHOUT ROWID;",
	/* 2 -> 3: drip sequences */
	"CREATE TABLE enrollments ("
	"  rowid INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  user TEXT NOT NULL,"
	"  sequence TEXT NOT NULL,"
	"  state INTEGER NOT NULL,"     /* 0 active, 1 completed, 2 exited */
	"  started_ms INTEGER NOT NULL,"
	"  ended_ms INTEGER,"
	"  end_detail TEXT,"
	"  skipped TEXT);"
	"CREATE INDEX enrollments_active ON enrollments(user, sequence)"
	"  WHERE state = 0;"
	"ALTER TABLE jobs ADD COLUMN enrollment INTEGER;"
	"ALTER TABLE jobs ADD COLUMN step INTEGER;"
	"CREATE INDEX jobs_enrollment ON jobs(enrollment)"
	"  WHERE enrollment IS NOT NULL;",
	/* 3 -> 4: stats counts jobs by walking this index (no sort, no
	 * memory growing with the table) */
	"CREATE INDEX jobs_channel_state ON jobs(channel, state);",
	/* 4 -> 5: jobs in `sending` are found through jobs_channel_state
	 * (one seek per channel, see store_recover); the partial index on
	 * state cost two B-tree writes per job (claim, outcome) */
	"DROP INDEX jobs_sending;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

enum stmt_id {
	Q_KEY_LOOKUP, Q_OPTOUT_CHECK, Q_JOB_INSERT, Q_EVENT_INSERT,
	Q_CONSENT_INSERT, Q_OPTOUT_UPSERT, Q_OPTOUT_DELETE, Q_OPTOUT_ALL_GET,
	Q_COVERED_BY_USER, Q_COVERED_BY_RECIPIENT, Q_SET_STATE, Q_DUE,
	Q_HISTORY_HAS, Q_HISTORY_USER, Q_HISTORY_INSERT, Q_HISTORY_DELETE,
	Q_SET_SENT, Q_NEXT_DUE, Q_JOB_GET, Q_DEAD_CHECK, Q_DEAD_INSERT,
	Q_ENR_ACTIVE, Q_ENR_PENDING, Q_ENR_INSERT, Q_ENR_END, Q_ENR_OPEN_STEPS,
	Q_COUNT
};

static const char *const stmt_sql[Q_COUNT] = {
	[Q_KEY_LOOKUP] = "SELECT id, state, reason FROM jobs WHERE key = ?1",
	[Q_OPTOUT_CHECK] = /* four primary-key probes */
		"SELECT 1 FROM optouts WHERE kind = 0 AND subject = ?1 AND"
		" channel = ?3 UNION ALL"
		" SELECT 1 FROM optouts WHERE kind = 0 AND subject = ?1 AND"
		" channel = -1 UNION ALL"
		" SELECT 1 FROM optouts WHERE kind = 1 AND subject = ?2 AND"
		" channel = ?3 UNION ALL"
		" SELECT 1 FROM optouts WHERE kind = 1 AND subject = ?2 AND"
		" channel = -1 LIMIT 1",
	[Q_JOB_INSERT] =
		"INSERT INTO jobs (id, key, user, channel, recipient, platform,"
		" template, locale, vars, tz, at_ms, expires_ms, created_ms,"
		" state, due_ms, reason, enrollment, step) VALUES (?1, ?2, ?3,"
		" ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
		" ?18)",
	[Q_EVENT_INSERT] =
		"INSERT INTO job_events (job, at_ms, what, detail, until_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_CONSENT_INSERT] =
		"INSERT INTO consent_history (user, address, channel, action,"
		" source, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[Q_OPTOUT_UPSERT] =
		"INSERT OR REPLACE INTO optouts (kind, subject, channel, source,"
		" reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_OPTOUT_DELETE] =
		"DELETE FROM optouts WHERE kind = ?1 AND subject = ?2 AND"
		" (channel = ?3 OR ?3 = -1)",
	[Q_OPTOUT_ALL_GET] =
		"SELECT source, reason, at_ms FROM optouts WHERE kind = ?1 AND"
		" subject = ?2 AND channel = -1",
	[Q_COVERED_BY_USER] =
		"SELECT rowid FROM jobs WHERE user = ?1 AND state < 3"
		" AND (channel = ?2 OR ?2 = -1)",
	[Q_COVERED_BY_RECIPIENT] =
		"SELECT rowid FROM jobs WHERE recipient = ?1 AND"
		" state < 3 AND (channel = ?2 OR ?2 = -1)",
	[Q_SET_STATE] =
		"UPDATE jobs SET state = ?2, due_ms = ?3, attempts = ?4,"
		" reason = ?5 WHERE rowid = ?1",
	[Q_DUE] =
		"SELECT rowid, id, key, user, channel, recipient, platform,"
		" template, locale, vars, tz, at_ms, expires_ms, created_ms,"
		" attempts, state FROM jobs INDEXED BY jobs_due WHERE state < 3"
		" AND channel = ?1 AND due_ms <= ?2 ORDER BY due_ms LIMIT ?3",
	[Q_HISTORY_HAS] = "SELECT 1 FROM send_history WHERE job = ?1",
	[Q_HISTORY_USER] =
		"SELECT channel, at_ms FROM send_history WHERE user = ?1 AND"
		" at_ms > ?2",
	[Q_HISTORY_INSERT] =
		"INSERT OR IGNORE INTO send_history (job, user, channel, at_ms)"
		" VALUES (?1, ?2, ?3, ?4)",
	[Q_HISTORY_DELETE] = "DELETE FROM send_history WHERE job = ?1",
	[Q_SET_SENT] =
		"UPDATE jobs SET state = 4, sent_ms = ?2, encoding = ?3,"
		" segments = ?4, reason = NULL, provider_ref = ?5"
		" WHERE rowid = ?1",
	[Q_NEXT_DUE] = /* pinned: (channel, state) would scan every active job */
		"SELECT MIN(due_ms) FROM jobs INDEXED BY jobs_due WHERE"
		" state < 3 AND channel = ?1",
	[Q_JOB_GET] =
		"SELECT rowid, id, key, user, channel, recipient, platform,"
		" template, locale, vars, tz, at_ms, expires_ms, created_ms,"
		" attempts, state FROM jobs WHERE rowid = ?1",
	[Q_ENR_ACTIVE] =
		"SELECT rowid, id FROM enrollments WHERE user = ?1 AND"
		" sequence = ?2 AND state = 0",
	[Q_ENR_PENDING] = /* a step not ended yet (sending included) */
		"SELECT 1 FROM jobs WHERE enrollment = ?1 AND state <= 3"
		" LIMIT 1",
	[Q_ENR_INSERT] =
		"INSERT INTO enrollments (id, user, sequence, state, started_ms,"
		" skipped) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
	[Q_ENR_END] =
		"UPDATE enrollments SET state = ?2, ended_ms = ?3,"
		" end_detail = ?4 WHERE rowid = ?1",
	[Q_ENR_OPEN_STEPS] = /* steps an exit cancels */
		"SELECT rowid, attempts FROM jobs WHERE enrollment = ?1 AND"
		" state < 3",
	[Q_DEAD_CHECK] =
		"SELECT 1 FROM dead_tokens WHERE platform = ?1 AND token = ?2",
	[Q_DEAD_INSERT] =
		"INSERT OR REPLACE INTO dead_tokens (platform, token, at_ms,"
		" reason, job) SELECT platform, recipient, ?2, ?3, id FROM jobs"
		" WHERE rowid = ?1",
};

enum cmd_kind {
	CMD_SEND, CMD_OPTOUT, CMD_CLAIM, CMD_COMPLETE, /* writer */
	CMD_ENROLL, CMD_EVENT,
	CMD_STATUS, CMD_STATS, CMD_CONSENT,            /* reader */
	CMD_ENROLLMENT
};

struct store_cmd {
	struct worker_item item; /* first: the worker's list node */
	enum cmd_kind kind;
	void *ud;
	int status;
	union {
		struct {
			struct job *job;
			int64_t now;
			store_send_cb cb;
			struct store_send_result result;
		} send;
		struct {
			struct optout_change change;
			char *user, *address, *source, *reason;
			store_optout_cb cb;
			int cancelled;
		} optout;
		struct {
			struct claim_params params;
			store_claim_cb cb;
			struct claim_result result;
			size_t cap;
		} claim;
		struct {
			struct completion c;
			store_done_cb cb;
		} complete;
		struct {
			struct enrollment *e;
			int64_t now;
			store_enroll_cb cb;
			struct store_enroll_result result;
		} enroll;
		struct {
			char *user, *name;
			char **sequences;
			size_t n_sequences;
			int64_t now;
			store_event_cb cb;
			int exited;
		} event;
		struct {
			char *job_id, *user, *address;
			store_json_cb cb;
			json_t *result;
		} read;
	} u;
};

struct store {
	const struct config *cfg;
	sqlite3 *wdb;                 /* writer thread's connection */
	sqlite3 *rdb;                 /* reader thread's connection */
	sqlite3_stmt *stmt[Q_COUNT];  /* on wdb */
	struct worker *writer;
	struct worker *reader;
	size_t pending;               /* loop thread: writer commands queued */
	_Atomic unsigned long commits; /* write transactions committed */
	sqlite3_int64 changes_seen;   /* writer: total changes at last commit */
	struct gate_send *sends;      /* writer thread scratch */
	size_t sends_cap;

	/* WAL checkpoints run on their own thread and connection, so that
	 * copying pages into the database file never delays a commit */
	sqlite3 *cdb;
	uv_thread_t ckpt_thread;
	bool ckpt_started;
	uv_mutex_t ckpt_lock;
	uv_cond_t ckpt_wake;
	bool ckpt_wanted;             /* guarded by ckpt_lock */
	bool ckpt_stop;               /* guarded by ckpt_lock */
	int wal_frames;               /* guarded by ckpt_lock */

	/* Transport outcomes linger up to STORE_LINGER_MS before the writer
	 * wakes, so that they share commits (each commit costs an fsync and
	 * the rewrite of the pages it touched); a client's request ends the
	 * linger at once, so no answer waits for it. */
	uv_timer_t *linger;           /* NULL when the loop has none */
	bool lingering;               /* the writer is held */
	size_t lingered;              /* outcomes queued while held */
};

#define STORE_LINGER_MS 1
#define STORE_LINGER_MAX 512

static void linger_end(struct store *s);

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_CHECKPOINT_FRAMES 2000
/* Past this many frames (~32 MiB of 4 KiB pages) passive checkpoints are
 * not keeping up with a writer that never pauses: after the next passive
 * pass, a RESTART is tried without waiting (it fails at once if the
 * writer or a reader is busy, and is tried again after later commits), so
 * the WAL starts over and stays bounded without holding up commits. */
#define STORE_WAL_RESTART_FRAMES 8192
#define STORE_WAL_SIZE_LIMIT "67108864" /* truncate a restarted WAL to this */

/* ---------------------------------------------------------------- helpers */

static void set_err(char *err, size_t errlen, const char *what, sqlite3 *db)
{
	snprintf(err, errlen, "%s: %s", what, db ? sqlite3_errmsg(db) : "");
}

/* SQLite's allocator keeps usage statistics behind a global mutex unless
 * told not to; nothing here reads them. Must precede SQLite's
 * initialisation, hence once, before the first connection. */
static void configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int open_connection(const char *path, bool readonly, sqlite3 **out,
			   char *err, size_t errlen)
{
	static pthread_once_t configured = PTHREAD_ONCE_INIT;
	pthread_once(&configured, configure_sqlite);
	int flags = SQLITE_OPEN_NOMUTEX |
		    (readonly ? SQLITE_OPEN_READONLY
			      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		set_err(err, errlen, path, db);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	const char *pragmas =
		"PRAGMA journal_mode=WAL;"
		"PRAGMA synchronous=FULL;"
		"PRAGMA cache_size=-16384;"
		"PRAGMA journal_size_limit=" STORE_WAL_SIZE_LIMIT ";"
		"PRAGMA temp_store=MEMORY;";
	char *msg = NULL;
	if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : "pragma");
		sqlite3_free(msg);
		sqlite3_close(db);
		return -1;
	}
	*out = db;
	return 0;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version = 0;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "database schema version %d is newer than this "
			 "roused understands (%d)", version, SCHEMA_VERSION);
		return -1;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		char set_version[64];
		snprintf(set_version, sizeof set_version,
			 "PRAGMA user_version=%d", v + 1);
		char *msg = NULL;
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) ||
		    sqlite3_exec(db, migrations[v], NULL, NULL, &msg) ||
		    sqlite3_exec(db, set_version, NULL, NULL, &msg) ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg)) {
			snprintf(err, errlen, "schema migration %d->%d: %s", v,
				 v + 1, msg ? msg : "failed");
			sqlite3_free(msg);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	return 0;
}

static sqlite3_stmt *stmt_begin(struct store *s, enum stmt_id id)
{
	sqlite3_stmt *st = s->stmt[id];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows. 0 or -1. */
static int stmt_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int add_event(struct store *s, int64_t rowid, int64_t at,
		     const char *what, const char *detail, int64_t until)
{
	sqlite3_stmt *st = stmt_begin(s, Q_EVENT_INSERT);
	sqlite3_bind_int64(st, 1, rowid);
	sqlite3_bind_int64(st, 2, at);
	sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
	bind_text(st, 4, detail);
	if (until)
		sqlite3_bind_int64(st, 5, until);
	return stmt_done(st);
}

static int set_state(struct store *s, int64_t rowid, int state, int64_t due,
		     int attempts, const char *reason)
{
	sqlite3_stmt *st = stmt_begin(s, Q_SET_STATE);
	sqlite3_bind_int64(st, 1, rowid);
	sqlite3_bind_int(st, 2, state);
	sqlite3_bind_int64(st, 3, due);
	sqlite3_bind_int(st, 4, attempts);
	bind_text(st, 5, reason);
	return stmt_done(st);
}

/* Moves a job to a state and records the event in one go. */
static int transition(struct store *s, int64_t rowid, int state, int64_t due,
		      int attempts, const char *reason, int64_t now,
		      const char *detail, int64_t until)
{
	if (set_state(s, rowid, state, due, attempts, reason) != 0)
		return -1;
	return add_event(s, rowid, now, job_state_name(state), detail, until);
}

static bool opted_out(struct store *s, const char *user, const char *address,
		      int channel)
{
	sqlite3_stmt *st = stmt_begin(s, Q_OPTOUT_CHECK);
	bind_text(st, 1, user ? user : "");
	bind_text(st, 2, address ? address : "");
	sqlite3_bind_int(st, 3, channel);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

/* A push job whose device token a provider declared dead. */
static bool token_dead(struct store *s, const struct job *job)
{
	if (job->channel != CH_PUSH)
		return false;
	sqlite3_stmt *st = stmt_begin(s, Q_DEAD_CHECK);
	sqlite3_bind_int(st, 1, job->platform);
	bind_text(st, 2, job->recipient);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

static char *column_strdup(sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	return v ? strdup((const char *)v) : NULL;
}

static struct job *job_from_row(sqlite3_stmt *st)
{
	struct job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	job->rowid = sqlite3_column_int64(st, 0);
	snprintf(job->id, sizeof job->id, "%s",
		 (const char *)sqlite3_column_text(st, 1));
	job->key = column_strdup(st, 2);
	job->user = column_strdup(st, 3);
	job->channel = sqlite3_column_int(st, 4);
	job->recipient = column_strdup(st, 5);
	job->platform = sqlite3_column_int(st, 6);
	job->template_name = column_strdup(st, 7);
	job->locale = column_strdup(st, 8);
	job->vars_json = column_strdup(st, 9);
	job->tz = column_strdup(st, 10);
	job->at_ms = sqlite3_column_int64(st, 11);
	job->expires_ms = sqlite3_column_int64(st, 12);
	job->created_ms = sqlite3_column_int64(st, 13);
	job->attempts = sqlite3_column_int(st, 14);
	job->state = sqlite3_column_int(st, 15);
	if (!job->user || !job->recipient || !job->template_name) {
		job_free(job);
		return NULL;
	}
	return job;
}

/* ------------------------------------------------------------ send */

/* Inserts job (or finds the first job of its key) with the opt-out and
 * dead-token checks of intake. */
static int insert_job(struct store *s, struct job *job, int64_t now,
		      struct store_send_result *r)
{
	if (job->key) {
		sqlite3_stmt *st = stmt_begin(s, Q_KEY_LOOKUP);
		sqlite3_bind_text(st, 1, job->key, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			r->duplicate = true;
			snprintf(r->id, sizeof r->id, "%s",
				 (const char *)sqlite3_column_text(st, 0));
			r->state = sqlite3_column_int(st, 1);
			const char *reason =
				(const char *)sqlite3_column_text(st, 2);
			r->reason = !reason ? NULL
				    : strcmp(reason, "opted_out") == 0 ? "opted_out"
				    : strcmp(reason, "dead_token") == 0 ? "dead_token"
				    : NULL;
			sqlite3_reset(st);
			return 0;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return -1;
	}
	r->duplicate = false;
	memcpy(r->id, job->id, sizeof r->id);
	bool opted = opted_out(s, job->user, job->recipient, job->channel);
	bool dead = !opted && token_dead(s, job);
	bool suppressed = opted || dead;
	int64_t due = job->at_ms > now ? job->at_ms : now;
	r->state = suppressed ? JS_SUPPRESSED
		   : job->at_ms > now ? JS_SCHEDULED : JS_QUEUED;
	r->reason = opted ? "opted_out" : dead ? "dead_token" : NULL;

	sqlite3_stmt *st = stmt_begin(s, Q_JOB_INSERT);
	bind_text(st, 1, job->id);
	bind_text(st, 2, job->key);
	bind_text(st, 3, job->user);
	sqlite3_bind_int(st, 4, job->channel);
	bind_text(st, 5, job->recipient);
	sqlite3_bind_int(st, 6, job->platform);
	bind_text(st, 7, job->template_name);
	bind_text(st, 8, job->locale);
	bind_text(st, 9, job->vars_json);
	bind_text(st, 10, job->tz);
	sqlite3_bind_int64(st, 11, job->at_ms);
	sqlite3_bind_int64(st, 12, job->expires_ms);
	sqlite3_bind_int64(st, 13, now);
	sqlite3_bind_int(st, 14, r->state);
	sqlite3_bind_int64(st, 15, due);
	bind_text(st, 16, r->reason);
	if (job->enrollment) {
		sqlite3_bind_int64(st, 17, job->enrollment);
		sqlite3_bind_int(st, 18, job->step);
	}
	if (stmt_done(st) != 0)
		return -1;
	int64_t rowid = sqlite3_last_insert_rowid(s->wdb);
	/* "queued" opens every history (a scheduled job's says until when,
	 * in one event rather than two: this is the hot path of intake);
	 * an opted-out job's ends right away */
	if (add_event(s, rowid, now, "queued",
		      r->state == JS_SCHEDULED ? "scheduled" : NULL,
		      r->state == JS_SCHEDULED ? due : 0) != 0)
		return -1;
	if (!suppressed)
		return 0;
	return add_event(s, rowid, now, "suppressed",
			 opted ? "opted out" : "device token is dead", 0);
}

static int exec_send(struct store *s, struct store_cmd *cmd)
{
	return insert_job(s, cmd->u.send.job, cmd->u.send.now,
			  &cmd->u.send.result);
}

/* ------------------------------------------------------------ sequences */

/* The user's active enrollment in the sequence, if any (id and row; id
 * "" when none): one whose steps have all ended is marked completed on
 * the way. */
static int find_active_enrollment(struct store *s, const char *user,
				  const char *sequence, int64_t now,
				  char id[JOB_ID_LEN + 1], int64_t *rowid)
{
	int64_t rows[16];
	char ids[16][JOB_ID_LEN + 1];
	size_t n = 0;
	sqlite3_stmt *st = stmt_begin(s, Q_ENR_ACTIVE);
	bind_text(st, 1, user);
	bind_text(st, 2, sequence);
	while (n < 16 && sqlite3_step(st) == SQLITE_ROW) {
		rows[n] = sqlite3_column_int64(st, 0);
		snprintf(ids[n], sizeof ids[n], "%s",
			 (const char *)sqlite3_column_text(st, 1));
		n++;
	}
	sqlite3_reset(st);
	id[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		st = stmt_begin(s, Q_ENR_PENDING);
		sqlite3_bind_int64(st, 1, rows[i]);
		bool pending = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_reset(st);
		if (pending) {
			memcpy(id, ids[i], JOB_ID_LEN + 1);
			*rowid = rows[i];
			continue;
		}
		st = stmt_begin(s, Q_ENR_END);
		sqlite3_bind_int64(st, 1, rows[i]);
		sqlite3_bind_int(st, 2, ENROLLMENT_COMPLETED);
		sqlite3_bind_int64(st, 3, now);
		bind_text(st, 4, "every step ended");
		if (stmt_done(st) != 0)
			return -1;
	}
	return 0;
}

static int exec_enroll(struct store *s, struct store_cmd *cmd)
{
	struct enrollment *e = cmd->u.enroll.e;
	struct store_enroll_result *r = &cmd->u.enroll.result;
	int64_t now = cmd->u.enroll.now;
	int64_t rowid = 0;
	if (find_active_enrollment(s, e->user, e->sequence, now, r->id,
				   &rowid) != 0)
		return -1;
	if (r->id[0]) {
		r->duplicate = true;
		return 0;
	}
	memcpy(r->id, e->id, sizeof r->id);
	sqlite3_stmt *st = stmt_begin(s, Q_ENR_INSERT);
	bind_text(st, 1, e->id);
	bind_text(st, 2, e->user);
	bind_text(st, 3, e->sequence);
	sqlite3_bind_int64(st, 4, now);
	bind_text(st, 5, e->skipped_json);
	if (stmt_done(st) != 0)
		return -1;
	rowid = sqlite3_last_insert_rowid(s->wdb);
	for (size_t i = 0; i < e->n_jobs; i++) {
		struct store_send_result jr = { 0 };
		e->jobs[i]->enrollment = rowid;
		if (insert_job(s, e->jobs[i], now, &jr) != 0)
			return -1;
		if (jr.state == JS_QUEUED)
			r->queued_now = true;
	}
	if (e->n_jobs == 0) {
		st = stmt_begin(s, Q_ENR_END);
		sqlite3_bind_int64(st, 1, rowid);
		sqlite3_bind_int(st, 2, ENROLLMENT_COMPLETED);
		sqlite3_bind_int64(st, 3, now);
		bind_text(st, 4, "every step skipped");
		if (stmt_done(st) != 0)
			return -1;
	}
	return 0;
}

/* Ends one enrollment on an exit event: its steps not yet handed to a
 * transport are cancelled in this same transaction. */
static int exit_enrollment(struct store *s, int64_t rowid, const char *detail,
			   int64_t now)
{
	int64_t rows[64];
	int attempts[64];
	for (;;) {
		size_t n = 0;
		sqlite3_stmt *st = stmt_begin(s, Q_ENR_OPEN_STEPS);
		sqlite3_bind_int64(st, 1, rowid);
		while (n < 64 && sqlite3_step(st) == SQLITE_ROW) {
			rows[n] = sqlite3_column_int64(st, 0);
			attempts[n++] = sqlite3_column_int(st, 1);
		}
		sqlite3_reset(st);
		for (size_t i = 0; i < n; i++)
			if (transition(s, rows[i], JS_CANCELLED, 0, attempts[i],
				       "exited", now, detail, 0) != 0)
				return -1;
		if (n < 64)
			break;
	}
	sqlite3_stmt *st = stmt_begin(s, Q_ENR_END);
	sqlite3_bind_int64(st, 1, rowid);
	sqlite3_bind_int(st, 2, ENROLLMENT_EXITED);
	sqlite3_bind_int64(st, 3, now);
	bind_text(st, 4, detail);
	return stmt_done(st);
}

static int exec_event(struct store *s, struct store_cmd *cmd)
{
	char detail[200];
	snprintf(detail, sizeof detail, "exit event %s", cmd->u.event.name);
	for (size_t i = 0; i < cmd->u.event.n_sequences; i++) {
		char id[JOB_ID_LEN + 1];
		int64_t rowid = 0;
		if (find_active_enrollment(s, cmd->u.event.user,
					   cmd->u.event.sequences[i],
					   cmd->u.event.now, id, &rowid) != 0)
			return -1;
		if (!id[0])
			continue;
		if (exit_enrollment(s, rowid, detail, cmd->u.event.now) != 0)
			return -1;
		cmd->u.event.exited++;
	}
	return 0;
}

/* ------------------------------------------------------------ opt-outs */

static int cancel_covered(struct store *s, enum stmt_id q, const char *subject,
			  int channel, int64_t now, const char *detail,
			  int *cancelled)
{
	int64_t rows[256];
	for (;;) {
		size_t n = 0;
		sqlite3_stmt *st = stmt_begin(s, q);
		sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, channel);
		int rc;
		while (n < 256 && (rc = sqlite3_step(st)) == SQLITE_ROW)
			rows[n++] = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		for (size_t i = 0; i < n; i++) {
			if (transition(s, rows[i], JS_CANCELLED, 0, 0,
				       "opted_out", now, detail, 0) != 0)
				return -1;
			(*cancelled)++;
		}
		if (n < 256)
			return 0;
	}
}

static int optout_upsert(struct store *s, int kind, const char *subject,
			 int channel, const char *source, const char *reason,
			 int64_t at)
{
	sqlite3_stmt *up = stmt_begin(s, Q_OPTOUT_UPSERT);
	sqlite3_bind_int(up, 1, kind);
	sqlite3_bind_text(up, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(up, 3, channel);
	bind_text(up, 4, source);
	bind_text(up, 5, reason);
	sqlite3_bind_int64(up, 6, at);
	return stmt_done(up);
}

static int optout_delete(struct store *s, int kind, const char *subject,
			 int channel)
{
	sqlite3_stmt *del = stmt_begin(s, Q_OPTOUT_DELETE);
	sqlite3_bind_int(del, 1, kind);
	sqlite3_bind_text(del, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(del, 3, channel);
	return stmt_done(del);
}

/* A resubscribe to one channel under an "all" opt-out keeps the other
 * channels opted out: the "all" row becomes one row per other channel,
 * keeping its source, reason and time. */
static int split_all_optout(struct store *s, int kind, const char *subject,
			    int resubscribed)
{
	sqlite3_stmt *st = stmt_begin(s, Q_OPTOUT_ALL_GET);
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	char *source = column_strdup(st, 0);
	char *reason = column_strdup(st, 1);
	int64_t at = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	int rc = optout_delete(s, kind, subject, CH_ALL);
	for (int ch = 0; ch < CH_COUNT && rc == 0; ch++)
		if (ch != resubscribed)
			rc = optout_upsert(s, kind, subject, ch,
					   source ? source : "api", reason, at);
	free(source);
	free(reason);
	return rc;
}

static int apply_optout_subject(struct store *s, int kind, const char *subject,
				const struct optout_change *c)
{
	if (!c->resubscribe)
		return optout_upsert(s, kind, subject, c->channel, c->source,
				     c->reason, c->now);
	if (c->channel == CH_ALL)
		return optout_delete(s, kind, subject, CH_ALL);
	if (split_all_optout(s, kind, subject, c->channel) != 0)
		return -1;
	return optout_delete(s, kind, subject, c->channel);
}

static int exec_optout(struct store *s, struct store_cmd *cmd)
{
	const struct optout_change *c = &cmd->u.optout.change;
	bool has_user = c->user && *c->user;
	bool has_addr = c->address && *c->address;
	cmd->u.optout.cancelled = 0;

	sqlite3_stmt *st = stmt_begin(s, Q_CONSENT_INSERT);
	bind_text(st, 1, has_user ? c->user : NULL);
	bind_text(st, 2, has_addr ? c->address : NULL);
	sqlite3_bind_int(st, 3, c->channel);
	sqlite3_bind_text(st, 4, c->resubscribe ? "resubscribe" : "unsubscribe",
			  -1, SQLITE_STATIC);
	bind_text(st, 5, c->source);
	bind_text(st, 6, c->reason);
	sqlite3_bind_int64(st, 7, c->now);
	if (stmt_done(st) != 0)
		return -1;
	if (has_user && apply_optout_subject(s, 0, c->user, c) != 0)
		return -1;
	if (has_addr && apply_optout_subject(s, 1, c->address, c) != 0)
		return -1;
	if (c->resubscribe)
		return 0;
	char detail[160];
	snprintf(detail, sizeof detail, "opted out (source %s)", c->source);
	if (has_user &&
	    cancel_covered(s, Q_COVERED_BY_USER, c->user, c->channel, c->now,
			   detail, &cmd->u.optout.cancelled) != 0)
		return -1;
	if (has_addr &&
	    cancel_covered(s, Q_COVERED_BY_RECIPIENT, c->address, c->channel,
			   c->now, detail, &cmd->u.optout.cancelled) != 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------ claim */

static int load_user_sends(struct store *s, const char *user, int64_t since,
			   size_t *n)
{
	sqlite3_stmt *st = stmt_begin(s, Q_HISTORY_USER);
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	*n = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == s->sends_cap) {
			size_t cap = s->sends_cap ? s->sends_cap * 2 : 64;
			struct gate_send *g =
				realloc(s->sends, cap * sizeof *g);
			if (!g) {
				sqlite3_reset(st);
				return -1;
			}
			s->sends = g;
			s->sends_cap = cap;
		}
		s->sends[*n].channel = sqlite3_column_int(st, 0);
		s->sends[*n].at_ms = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static bool already_counted(struct store *s, int64_t rowid)
{
	sqlite3_stmt *st = stmt_begin(s, Q_HISTORY_HAS);
	sqlite3_bind_int64(st, 1, rowid);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

enum gate_verdict { GATE_PASS, GATE_HELD, GATE_ERROR };

/* When the job's recipient is inside quiet hours: the instant they end
 * (with the detail naming the window, zone and local end), else 0. */
static int64_t quiet_hold(const struct config *cfg, const struct job *job,
			  int64_t now, char *detail, size_t len)
{
	const struct quiet_conf *qc = &cfg->quiet;
	if (!qc->set || !qc->channels[job->channel])
		return 0;
	const struct tz_zone *zone = tzdb_get(job->tz ? job->tz
						       : qc->default_tz);
	if (!zone)
		zone = tzdb_get(qc->default_tz);
	struct quiet_hours q = { qc->start_min, qc->end_min };
	int64_t until = quiet_until_ms(&q, zone, now);
	if (!until)
		return 0;
	char range[QUIET_RANGE_BUFLEN], local[QUIET_LOCAL_BUFLEN];
	quiet_format_range(&q, range, sizeof range);
	quiet_format_local(zone, until, local, sizeof local);
	snprintf(detail, len, "quiet hours %s %s until %s", range,
		 zone ? tz_name(zone) : "UTC", local);
	return until;
}

/* When a per-user cap holds the job back: *allowed is the instant the
 * window allows it (0: not held) and *rule the rule that holds it. */
static int cap_hold(struct store *s, const struct job *job, int64_t now,
		    int64_t *allowed, size_t *rule)
{
	const struct config *cfg = s->cfg;
	int64_t window = gate_longest_window(cfg->caps, cfg->n_caps,
					     job->channel);
	*allowed = 0;
	if (window == 0)
		return 0;
	size_t n_sends = 0;
	if (load_user_sends(s, job->user, now - window, &n_sends) != 0)
		return -1;
	*allowed = gate_cap_allowed_at(cfg->caps, cfg->n_caps, job->channel,
				       s->sends, n_sends, now, rule);
	return 0;
}

/* Runs the gate for one due job inside the claim transaction; ends or
 * defers it when it may not go now. */
static enum gate_verdict gate_job(struct store *s, struct job *job,
				  int64_t now)
{
	const struct config *cfg = s->cfg;
	if (job->expires_ms && now >= job->expires_ms)
		return transition(s, job->rowid, JS_EXPIRED, 0, job->attempts,
				  "expired", now, "expired before sending", 0)
			       ? GATE_ERROR : GATE_HELD;
	if (opted_out(s, job->user, job->recipient, job->channel))
		return transition(s, job->rowid, JS_SUPPRESSED, 0,
				  job->attempts, "opted_out", now,
				  "opted out", 0)
			       ? GATE_ERROR : GATE_HELD;
	if (token_dead(s, job))
		return transition(s, job->rowid, JS_SUPPRESSED, 0,
				  job->attempts, "dead_token", now,
				  "device token is dead", 0)
			       ? GATE_ERROR : GATE_HELD;
	if (job->attempts >= cfg->retry_max_attempts)
		return transition(s, job->rowid, JS_FAILED, 0, job->attempts,
				  "attempts_exhausted", now,
				  "attempts exhausted", 0)
			       ? GATE_ERROR : GATE_HELD;
	char quiet_detail[160];
	int64_t quiet = quiet_hold(cfg, job, now, quiet_detail,
				   sizeof quiet_detail);
	size_t rule = 0;
	int64_t allowed = 0;
	if (cfg->n_caps && !already_counted(s, job->rowid) &&
	    cap_hold(s, job, now, &allowed, &rule) != 0)
		return GATE_ERROR;
	if (allowed == 0 && quiet == 0)
		return GATE_PASS;
	char detail[160];
	if (allowed)
		gate_rule_describe(&cfg->caps[rule], detail, sizeof detail);
	if (allowed && cfg->on_limit == ON_LIMIT_DROP)
		return transition(s, job->rowid, JS_SUPPRESSED, 0,
				  job->attempts, "rate_limited", now, detail, 0)
			       ? GATE_ERROR : GATE_HELD;
	/* caps and quiet hours compose: the later "not before" wins */
	bool by_quiet = quiet > allowed;
	int64_t until = by_quiet ? quiet : allowed;
	const char *why = by_quiet ? quiet_detail : detail;
	if (job->expires_ms && until >= job->expires_ms)
		return transition(s, job->rowid, JS_EXPIRED, 0, job->attempts,
				  "expired", now, why, 0)
			       ? GATE_ERROR : GATE_HELD;
	return transition(s, job->rowid, JS_DEFERRED, until, job->attempts,
			  by_quiet ? "quiet_hours" : "rate_limited", now, why,
			  until)
		       ? GATE_ERROR : GATE_HELD;
}

static int claim_push(struct claim_result *r, size_t *cap, struct job *job)
{
	if (r->n_jobs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct job **grown = realloc(r->jobs, ncap * sizeof *grown);
		if (!grown)
			return -1;
		r->jobs = grown;
		*cap = ncap;
	}
	r->jobs[r->n_jobs++] = job;
	return 0;
}

static int claim_job(struct store *s, struct job *job, int64_t now)
{
	job->attempts++;
	job->state = JS_SENDING;
	char detail[32];
	snprintf(detail, sizeof detail, "attempt %d", job->attempts);
	if (transition(s, job->rowid, JS_SENDING, 0, job->attempts, NULL, now,
		       detail, 0) != 0)
		return -1;
	sqlite3_stmt *st = stmt_begin(s, Q_HISTORY_INSERT);
	sqlite3_bind_int64(st, 1, job->rowid);
	sqlite3_bind_text(st, 2, job->user, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, job->channel);
	sqlite3_bind_int64(st, 4, now);
	return stmt_done(st);
}

static int claim_channel(struct store *s, struct store_cmd *cmd, int channel)
{
	struct claim_result *r = &cmd->u.claim.result;
	int64_t now = cmd->u.claim.params.now;
	int budget = cmd->u.claim.params.budget[channel];
	while (budget > 0) {
		/* read a page of due jobs, then gate them one by one */
		struct job *page[128];
		size_t n = 0;
		sqlite3_stmt *st = stmt_begin(s, Q_DUE);
		sqlite3_bind_int(st, 1, channel);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_int(st, 3, budget < 128 ? budget : 128);
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct job *job = job_from_row(st);
			if (!job)
				break;
			page[n++] = job;
		}
		sqlite3_reset(st);
		if (n == 0)
			return rc == SQLITE_DONE ? 0 : -1;
		int err = 0;
		for (size_t i = 0; i < n; i++) {
			enum gate_verdict v =
				err ? GATE_ERROR : gate_job(s, page[i], now);
			if (v == GATE_PASS && claim_job(s, page[i], now) == 0 &&
			    claim_push(r, &cmd->u.claim.cap, page[i]) == 0) {
				budget--;
				continue;
			}
			if (v != GATE_HELD)
				err = -1;
			job_free(page[i]);
		}
		if (err)
			return -1;
	}
	return 0;
}

static int exec_claim(struct store *s, struct store_cmd *cmd)
{
	struct claim_result *r = &cmd->u.claim.result;
	for (int ch = 0; ch < CH_COUNT; ch++)
		if (claim_channel(s, cmd, ch) != 0)
			return -1;
	for (int ch = 0; ch < CH_COUNT; ch++) {
		sqlite3_stmt *st = stmt_begin(s, Q_NEXT_DUE);
		sqlite3_bind_int(st, 1, ch);
		r->next_due_ms[ch] = 0;
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_type(st, 0) != SQLITE_NULL)
			r->next_due_ms[ch] = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	return 0;
}

static void claim_discard(struct claim_result *r)
{
	for (size_t i = 0; i < r->n_jobs; i++)
		job_free(r->jobs[i]);
	free(r->jobs);
	r->jobs = NULL;
	r->n_jobs = 0;
}

/* ------------------------------------------------------------ complete */

static int suppress_recipient(struct store *s, int64_t rowid,
			      const char *source, const char *reason,
			      int64_t now);

static int exec_complete(struct store *s, struct store_cmd *cmd)
{
	const struct completion *c = &cmd->u.complete.c;
	sqlite3_stmt *st = stmt_begin(s, Q_JOB_GET);
	sqlite3_bind_int64(st, 1, c->rowid);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -1;
	}
	int attempts = sqlite3_column_int(st, 14);
	int64_t expires = sqlite3_column_int64(st, 12);
	int state = sqlite3_column_int(st, 15);
	sqlite3_reset(st);
	if (state != JS_SENDING)
		return 0; /* settled already (e.g. by recovery) */

	if (c->kind == OUTCOME_SENT) {
		st = stmt_begin(s, Q_SET_SENT);
		sqlite3_bind_int64(st, 1, c->rowid);
		sqlite3_bind_int64(st, 2, c->now);
		bind_text(st, 3, c->encoding[0] ? c->encoding : NULL);
		if (c->segments)
			sqlite3_bind_int(st, 4, c->segments);
		bind_text(st, 5, c->provider_ref[0] ? c->provider_ref : NULL);
		if (stmt_done(st) != 0)
			return -1;
		return add_event(s, c->rowid, c->now, "sent", c->detail, 0);
	}
	if (c->kind == OUTCOME_RETRY) {
		if (attempts >= s->cfg->retry_max_attempts) {
			char detail[600];
			snprintf(detail, sizeof detail,
				 "attempts exhausted (last: %s)", c->detail);
			return transition(s, c->rowid, JS_FAILED, 0, attempts,
					  "attempts_exhausted", c->now, detail,
					  0);
		}
		if (expires && c->retry_at >= expires)
			return transition(s, c->rowid, JS_EXPIRED, 0, attempts,
					  "expired", c->now, c->detail, 0);
		if (set_state(s, c->rowid, JS_DEFERRED, c->retry_at, attempts,
			      NULL) != 0)
			return -1;
		return add_event(s, c->rowid, c->now, "retry", c->detail,
				 c->retry_at);
	}
	/* a permanent failure releases the job's cap slot */
	st = stmt_begin(s, Q_HISTORY_DELETE);
	sqlite3_bind_int64(st, 1, c->rowid);
	if (stmt_done(st) != 0)
		return -1;
	if (c->suppress_source[0] &&
	    suppress_recipient(s, c->rowid, c->suppress_source, c->detail,
			       c->now) != 0)
		return -1;
	if (c->token_dead) {
		st = stmt_begin(s, Q_DEAD_INSERT);
		sqlite3_bind_int64(st, 1, c->rowid);
		sqlite3_bind_int64(st, 2, c->now);
		bind_text(st, 3, c->detail);
		if (stmt_done(st) != 0)
			return -1;
	}
	return transition(s, c->rowid, JS_FAILED, 0, attempts,
			  c->reason[0] ? c->reason : "failed", c->now,
			  c->detail, 0);
}

/* A hard bounce: the job's address is opted out of its channel, with the
 * bounce as source and the server's words as reason. */
static int suppress_recipient(struct store *s, int64_t rowid,
			      const char *source, const char *reason,
			      int64_t now)
{
	sqlite3_stmt *st = stmt_begin(s, Q_JOB_GET);
	sqlite3_bind_int64(st, 1, rowid);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return -1;
	}
	char *recipient = column_strdup(st, 5);
	int channel = sqlite3_column_int(st, 4);
	sqlite3_reset(st);
	if (!recipient)
		return -1;
	struct store_cmd cmd = { .kind = CMD_OPTOUT };
	cmd.u.optout.change = (struct optout_change){
		.address = recipient, .channel = channel, .source = source,
		.reason = reason, .now = now,
	};
	int rc = exec_optout(s, &cmd);
	free(recipient);
	return rc;
}

/* ------------------------------------------------------------ writer */

static int exec_one(struct store *s, struct store_cmd *cmd)
{
	switch (cmd->kind) {
	case CMD_SEND:
		return exec_send(s, cmd);
	case CMD_OPTOUT:
		return exec_optout(s, cmd);
	case CMD_CLAIM:
		return exec_claim(s, cmd);
	case CMD_COMPLETE:
		return exec_complete(s, cmd);
	case CMD_ENROLL:
		return exec_enroll(s, cmd);
	case CMD_EVENT:
		return exec_event(s, cmd);
	default:
		return -1;
	}
}

static void reset_outputs(struct store_cmd *cmd)
{
	if (cmd->kind == CMD_CLAIM)
		claim_discard(&cmd->u.claim.result);
	if (cmd->kind == CMD_ENROLL)
		memset(&cmd->u.enroll.result, 0, sizeof cmd->u.enroll.result);
	if (cmd->kind == CMD_EVENT)
		cmd->u.event.exited = 0;
}

static void event_cmd_free(struct store_cmd *cmd)
{
	free(cmd->u.event.user);
	free(cmd->u.event.name);
	for (size_t i = 0; i < cmd->u.event.n_sequences; i++)
		free(cmd->u.event.sequences[i]);
	free(cmd->u.event.sequences);
}

static bool exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* One transaction for the listed commands; 0 when committed. */
static int run_transaction(struct store *s, struct worker_item *first,
			   struct worker_item *stop)
{
	if (!exec_sql(s->wdb, "BEGIN IMMEDIATE"))
		return -1;
	for (struct worker_item *it = first; it != stop; it = it->next) {
		struct store_cmd *cmd = (struct store_cmd *)it;
		cmd->status = exec_one(s, cmd);
		if (cmd->status != 0)
			goto rollback;
	}
	bool wrote = sqlite3_total_changes64(s->wdb) != s->changes_seen;
	if (exec_sql(s->wdb, "COMMIT")) {
		if (wrote)
			s->commits++; /* a commit that wrote syncs the WAL */
		s->changes_seen = sqlite3_total_changes64(s->wdb);
		return 0;
	}
rollback:
	exec_sql(s->wdb, "ROLLBACK");
	return -1;
}

static void writer_batch(void *ctx, struct worker_item *batch)
{
	struct store *s = ctx;
	if (run_transaction(s, batch, NULL) == 0)
		return;
	/* something failed: no command of the batch is committed; retry each
	 * alone so that only the failing ones answer an error */
	log_msg(LOG_WARN, "store batch failed, retrying singly", "error",
		sqlite3_errmsg(s->wdb), NULL);
	for (struct worker_item *it = batch; it; it = it->next) {
		struct store_cmd *cmd = (struct store_cmd *)it;
		reset_outputs(cmd);
		if (run_transaction(s, it, it->next) != 0) {
			reset_outputs(cmd);
			cmd->status = -1;
		}
	}
}

static void writer_done(void *ctx, struct worker_item *batch)
{
	struct store *s = ctx;
	while (batch) {
		struct store_cmd *cmd = (struct store_cmd *)batch;
		batch = batch->next;
		switch (cmd->kind) {
		case CMD_SEND:
			s->pending--;
			cmd->u.send.result.status = cmd->status;
			cmd->u.send.cb(cmd->ud, &cmd->u.send.result);
			job_free(cmd->u.send.job);
			break;
		case CMD_OPTOUT:
			s->pending--;
			cmd->u.optout.cb(cmd->ud, cmd->status,
					 cmd->u.optout.cancelled);
			free(cmd->u.optout.user);
			free(cmd->u.optout.address);
			free(cmd->u.optout.source);
			free(cmd->u.optout.reason);
			break;
		case CMD_CLAIM:
			cmd->u.claim.result.status = cmd->status;
			if (cmd->status != 0)
				claim_discard(&cmd->u.claim.result);
			cmd->u.claim.cb(cmd->ud, &cmd->u.claim.result);
			break;
		case CMD_COMPLETE:
			if (cmd->u.complete.cb)
				cmd->u.complete.cb(cmd->ud, cmd->status);
			break;
		case CMD_ENROLL:
			s->pending--;
			cmd->u.enroll.result.status = cmd->status;
			cmd->u.enroll.cb(cmd->ud, &cmd->u.enroll.result);
			enrollment_free(cmd->u.enroll.e);
			break;
		case CMD_EVENT:
			s->pending--;
			cmd->u.event.cb(cmd->ud, cmd->status,
					cmd->u.event.exited);
			event_cmd_free(cmd);
			break;
		default:
			break;
		}
		free(cmd);
	}
}

int store_send(struct store *s, struct job *job, int64_t now,
	       store_send_cb cb, void *ud)
{
	struct store_cmd *cmd = NULL;
	if (s->pending >= (size_t)s->cfg->max_pending ||
	    !(cmd = calloc(1, sizeof *cmd))) {
		job_free(job);
		return -1;
	}
	linger_end(s);
	cmd->kind = CMD_SEND;
	cmd->ud = ud;
	cmd->u.send.job = job;
	cmd->u.send.now = now;
	cmd->u.send.cb = cb;
	s->pending++;
	worker_submit(s->writer, &cmd->item);
	return 0;
}

static char *dup_or_null(const char *v)
{
	return v ? strdup(v) : NULL;
}

void enrollment_free(struct enrollment *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_jobs; i++)
		job_free(e->jobs[i]);
	free(e->jobs);
	free(e->user);
	free(e->sequence);
	free(e->skipped_json);
	free(e);
}

int store_enroll(struct store *s, struct enrollment *e, int64_t now,
		 store_enroll_cb cb, void *ud)
{
	struct store_cmd *cmd = NULL;
	if (s->pending >= (size_t)s->cfg->max_pending ||
	    !(cmd = calloc(1, sizeof *cmd))) {
		enrollment_free(e);
		return -1;
	}
	linger_end(s);
	cmd->kind = CMD_ENROLL;
	cmd->ud = ud;
	cmd->u.enroll.e = e;
	cmd->u.enroll.now = now;
	cmd->u.enroll.cb = cb;
	s->pending++;
	worker_submit(s->writer, &cmd->item);
	return 0;
}

int store_event(struct store *s, const char *user, const char *name,
		const char *const *sequences, size_t n_sequences, int64_t now,
		store_event_cb cb, void *ud)
{
	struct store_cmd *cmd = NULL;
	if (s->pending >= (size_t)s->cfg->max_pending ||
	    !(cmd = calloc(1, sizeof *cmd)))
		return -1;
	linger_end(s);
	cmd->kind = CMD_EVENT;
	cmd->ud = ud;
	cmd->u.event.user = strdup(user);
	cmd->u.event.name = strdup(name);
	cmd->u.event.sequences = calloc(n_sequences + 1, sizeof(char *));
	bool ok = cmd->u.event.user && cmd->u.event.name &&
		  cmd->u.event.sequences;
	for (size_t i = 0; ok && i < n_sequences; i++) {
		cmd->u.event.sequences[i] = strdup(sequences[i]);
		cmd->u.event.n_sequences = i + 1;
		ok = cmd->u.event.sequences[i] != NULL;
	}
	if (!ok) {
		event_cmd_free(cmd);
		free(cmd);
		return -1;
	}
	cmd->u.event.now = now;
	cmd->u.event.cb = cb;
	s->pending++;
	worker_submit(s->writer, &cmd->item);
	return 0;
}

int store_optout(struct store *s, const struct optout_change *c,
		 store_optout_cb cb, void *ud)
{
	struct store_cmd *cmd = NULL;
	if (s->pending >= (size_t)s->cfg->max_pending ||
	    !(cmd = calloc(1, sizeof *cmd)))
		return -1;
	linger_end(s);
	cmd->kind = CMD_OPTOUT;
	cmd->ud = ud;
	cmd->u.optout.cb = cb;
	cmd->u.optout.change = *c;
	cmd->u.optout.user = dup_or_null(c->user);
	cmd->u.optout.address = dup_or_null(c->address);
	cmd->u.optout.source = dup_or_null(c->source ? c->source : "api");
	cmd->u.optout.reason = dup_or_null(c->reason);
	cmd->u.optout.change.user = cmd->u.optout.user;
	cmd->u.optout.change.address = cmd->u.optout.address;
	cmd->u.optout.change.source = cmd->u.optout.source;
	cmd->u.optout.change.reason = cmd->u.optout.reason;
	s->pending++;
	worker_submit(s->writer, &cmd->item);
	return 0;
}

void store_claim(struct store *s, const struct claim_params *p,
		 store_claim_cb cb, void *ud)
{
	struct store_cmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd) {
		struct claim_result r = { .status = -1 };
		cb(ud, &r);
		return;
	}
	cmd->kind = CMD_CLAIM;
	cmd->ud = ud;
	cmd->u.claim.params = *p;
	cmd->u.claim.cb = cb;
	worker_submit(s->writer, &cmd->item);
}

/* ---------------------------------------------------------- lingering */

static void linger_end(struct store *s)
{
	if (!s->lingering)
		return;
	s->lingering = false;
	s->lingered = 0;
	uv_timer_stop(s->linger);
	worker_release(s->writer);
}

static void on_linger_timer(uv_timer_t *t)
{
	linger_end(t->data);
}

/* Called before queueing a transport outcome. */
static void linger_begin(struct store *s)
{
	if (!s->linger)
		return;
	if (!s->lingering) {
		s->lingering = true;
		worker_hold(s->writer);
		uv_timer_start(s->linger, on_linger_timer, STORE_LINGER_MS, 0);
	}
	if (++s->lingered >= STORE_LINGER_MAX)
		linger_end(s);
}

static void on_linger_closed(uv_handle_t *h)
{
	free(h);
}

void store_complete(struct store *s, const struct completion *c,
		    store_done_cb cb, void *ud)
{
	struct store_cmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd) {
		if (cb)
			cb(ud, -1);
		return;
	}
	cmd->kind = CMD_COMPLETE;
	cmd->ud = ud;
	cmd->u.complete.c = *c;
	cmd->u.complete.cb = cb;
	linger_begin(s);
	worker_submit(s->writer, &cmd->item);
}

size_t store_pending(const struct store *s)
{
	return s->pending;
}

unsigned long store_commits(const struct store *s)
{
	return s->commits;
}

/* ------------------------------------------------------------ reader */

static json_t *time_json(int64_t ms)
{
	char buf[RFC3339_BUFLEN];
	if (ms <= 0)
		return json_null();
	rfc3339_format(ms, buf);
	return json_string(buf);
}

static void set_text(json_t *obj, const char *key, sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	if (v)
		json_object_set_new(obj, key, json_string((const char *)v));
}

static json_t *read_events(sqlite3 *db, int64_t rowid)
{
	sqlite3_stmt *st = NULL;
	json_t *events = json_array();
	if (sqlite3_prepare_v2(db,
			       "SELECT at_ms, what, detail, until_ms FROM "
			       "job_events WHERE job = ?1 ORDER BY rowid",
			       -1, &st, NULL) != SQLITE_OK)
		return events;
	sqlite3_bind_int64(st, 1, rowid);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *ev = json_object();
		json_object_set_new(ev, "at",
				    time_json(sqlite3_column_int64(st, 0)));
		set_text(ev, "what", st, 1);
		const unsigned char *detail = sqlite3_column_text(st, 2);
		json_object_set_new(ev, "detail",
				    json_string(detail ? (const char *)detail
						       : ""));
		if (sqlite3_column_type(st, 3) != SQLITE_NULL)
			json_object_set_new(
				ev, "until",
				time_json(sqlite3_column_int64(st, 3)));
		json_array_append_new(events, ev);
	}
	sqlite3_finalize(st);
	return events;
}

/* A dead device token shows in the push job's "to" object: when, why
 * and which job learnt it. */
static void add_token_death(sqlite3 *db, int platform, const char *token,
			    json_t *to)
{
	sqlite3_stmt *st = NULL;
	if (!token || !to || sqlite3_prepare_v2(db,
			"SELECT at_ms, reason, job FROM dead_tokens"
			" WHERE platform = ?1 AND token = ?2",
			-1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int(st, 1, platform);
	sqlite3_bind_text(st, 2, token, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		json_t *dead = json_object();
		json_object_set_new(dead, "at",
				    time_json(sqlite3_column_int64(st, 0)));
		set_text(dead, "reason", st, 1);
		set_text(dead, "job", st, 2);
		json_object_set_new(to, "dead", dead);
	}
	sqlite3_finalize(st);
}

static int read_status(sqlite3 *db, const char *job_id, json_t **out)
{
	sqlite3_stmt *st = NULL;
	*out = NULL;
	if (sqlite3_prepare_v2(
		    db,
		    "SELECT rowid, id, key, user, channel, recipient, platform,"
		    " template, locale, at_ms, expires_ms, created_ms, state,"
		    " attempts, reason, encoding, segments, sent_ms, tz,"
		    " provider_ref FROM jobs WHERE id = ?1",
		    -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_t *j = json_object();
		int channel = sqlite3_column_int(st, 4);
		set_text(j, "id", st, 1);
		json_object_set_new(
			j, "state",
			json_string(job_state_name(sqlite3_column_int(st, 12))));
		set_text(j, "user", st, 3);
		json_object_set_new(j, "channel",
				    json_string(channel_name(channel)));
		if (channel == CH_PUSH) {
			json_t *to = json_object();
			json_object_set_new(
				to, "platform",
				json_string(sqlite3_column_int(st, 6) ? "apns"
								      : "fcm"));
			set_text(to, "token", st, 5);
			json_object_set_new(j, "to", to);
		} else {
			set_text(j, "to", st, 5);
		}
		set_text(j, "template", st, 7);
		set_text(j, "key", st, 2);
		set_text(j, "locale", st, 8);
		set_text(j, "tz", st, 18);
		json_object_set_new(j, "attempts",
				    json_integer(sqlite3_column_int(st, 13)));
		json_object_set_new(j, "created",
				    time_json(sqlite3_column_int64(st, 11)));
		if (sqlite3_column_int64(st, 9))
			json_object_set_new(
				j, "at", time_json(sqlite3_column_int64(st, 9)));
		if (sqlite3_column_int64(st, 10))
			json_object_set_new(
				j, "expires",
				time_json(sqlite3_column_int64(st, 10)));
		if (sqlite3_column_type(st, 17) != SQLITE_NULL)
			json_object_set_new(
				j, "sent",
				time_json(sqlite3_column_int64(st, 17)));
		set_text(j, "reason", st, 14);
		set_text(j, "provider_ref", st, 19);
		if (channel == CH_PUSH)
			add_token_death(db, sqlite3_column_int(st, 6),
					(const char *)sqlite3_column_text(st, 5),
					json_object_get(j, "to"));
		set_text(j, "encoding", st, 15);
		if (sqlite3_column_type(st, 16) != SQLITE_NULL)
			json_object_set_new(
				j, "segments",
				json_integer(sqlite3_column_int(st, 16)));
		json_object_set_new(j, "events",
				    read_events(db, sqlite3_column_int64(st, 0)));
		*out = j;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static const char *enrollment_state_name(int state)
{
	return state == ENROLLMENT_EXITED	 ? "exited"
	       : state == ENROLLMENT_COMPLETED ? "completed"
					       : "active";
}

/* The enrollment's step jobs and skipped steps, ordered by step. */
static json_t *read_enrollment_steps(sqlite3 *db, int64_t rowid,
				     const char *skipped, bool *pending)
{
	json_t *steps = json_array();
	sqlite3_stmt *st = NULL;
	*pending = false;
	if (sqlite3_prepare_v2(db,
			"SELECT id, step, channel, template, state, reason,"
			" at_ms FROM jobs WHERE enrollment = ?1"
			" ORDER BY step, rowid", -1, &st, NULL) != SQLITE_OK)
		return steps;
	sqlite3_bind_int64(st, 1, rowid);
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *j = json_object();
		int state = sqlite3_column_int(st, 4);
		if (state <= JS_SENDING)
			*pending = true;
		json_object_set_new(j, "step",
				    json_integer(sqlite3_column_int(st, 1)));
		json_object_set_new(j, "channel", json_string(channel_name(
						sqlite3_column_int(st, 2))));
		set_text(j, "template", st, 3);
		set_text(j, "job", st, 0);
		json_object_set_new(j, "state",
				    json_string(job_state_name(state)));
		set_text(j, "reason", st, 5);
		json_object_set_new(j, "due",
				    time_json(sqlite3_column_int64(st, 6)));
		json_array_append_new(steps, j);
	}
	sqlite3_finalize(st);
	json_t *skips = skipped ? json_loads(skipped, 0, NULL) : NULL;
	size_t i;
	json_t *k;
	json_array_foreach(skips, i, k) {
		/* insert before the first step with a larger index */
		json_int_t at = json_integer_value(json_object_get(k, "step"));
		size_t pos = 0;
		while (pos < json_array_size(steps) &&
		       json_integer_value(json_object_get(
			       json_array_get(steps, pos), "step")) <= at)
			pos++;
		json_array_insert(steps, pos, k);
	}
	json_decref(skips);
	return steps;
}

static int read_enrollment(sqlite3 *db, const char *id, json_t **out)
{
	sqlite3_stmt *st = NULL;
	*out = NULL;
	if (sqlite3_prepare_v2(db,
			"SELECT rowid, id, user, sequence, state, started_ms,"
			" ended_ms, end_detail, skipped FROM enrollments"
			" WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		bool pending;
		json_t *j = json_object();
		json_t *steps = read_enrollment_steps(
			db, sqlite3_column_int64(st, 0),
			(const char *)sqlite3_column_text(st, 8), &pending);
		int state = sqlite3_column_int(st, 4);
		if (state == ENROLLMENT_ACTIVE && !pending)
			state = ENROLLMENT_COMPLETED;
		set_text(j, "id", st, 1);
		set_text(j, "user", st, 2);
		set_text(j, "sequence", st, 3);
		json_object_set_new(j, "state",
				    json_string(enrollment_state_name(state)));
		json_object_set_new(j, "started",
				    time_json(sqlite3_column_int64(st, 5)));
		if (sqlite3_column_type(st, 6) != SQLITE_NULL)
			json_object_set_new(
				j, "ended",
				time_json(sqlite3_column_int64(st, 6)));
		if (state == ENROLLMENT_EXITED)
			set_text(j, "detail", st, 7);
		json_object_set_new(j, "steps", steps);
		*out = j;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int read_stats(sqlite3 *db, json_t **out)
{
	sqlite3_stmt *st = NULL;
	json_t *jobs = json_object(), *sent = json_object();
	int64_t depth = 0, optouts = 0;
	for (int ch = 0; ch < CH_COUNT; ch++) {
		json_object_set_new(jobs, channel_name(ch), json_object());
		json_object_set_new(sent, channel_name(ch), json_integer(0));
	}
	int rc = sqlite3_prepare_v2(db,
				    "SELECT channel, state, count(*) FROM jobs"
				    " GROUP BY channel, state",
				    -1, &st, NULL);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		int ch = sqlite3_column_int(st, 0), state =
							    sqlite3_column_int(st, 1);
		int64_t n = sqlite3_column_int64(st, 2);
		if (ch < 0 || ch >= CH_COUNT)
			continue;
		json_object_set_new(json_object_get(jobs, channel_name(ch)),
				    job_state_name(state), json_integer(n));
		if (state <= JS_SENDING)
			depth += n;
		if (state == JS_SENT)
			json_object_set_new(sent, channel_name(ch),
					    json_integer(n));
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM optouts", -1,
					&st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		optouts = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	json_t *r = json_object();
	json_object_set_new(r, "jobs", jobs);
	json_object_set_new(r, "queue_depth", json_integer(depth));
	json_object_set_new(r, "sent", sent);
	json_object_set_new(r, "opt_outs", json_integer(optouts));
	*out = r;
	return rc == SQLITE_OK ? 0 : -1;
}

static int read_consent(sqlite3 *db, const char *user, const char *address,
			json_t **out)
{
	sqlite3_stmt *st = NULL;
	json_t *effective = json_object(), *history = json_array();
	for (int ch = 0; ch < CH_COUNT; ch++)
		json_object_set_new(effective, channel_name(ch),
				    json_string("subscribed"));
	int rc = sqlite3_prepare_v2(
		db,
		"SELECT channel FROM optouts WHERE (kind = 0 AND subject = ?1)"
		" OR (kind = 1 AND subject = ?2)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, user ? user : "");
		bind_text(st, 2, address ? address : "");
		while (sqlite3_step(st) == SQLITE_ROW) {
			int ch = sqlite3_column_int(st, 0);
			for (int c = 0; c < CH_COUNT; c++)
				if (ch == CH_ALL || ch == c)
					json_object_set_new(
						effective, channel_name(c),
						json_string("opted_out"));
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(
			db,
			"SELECT at_ms, action, channel, source, reason, user,"
			" address FROM consent_history WHERE user = ?1 OR"
			" address = ?2 ORDER BY seq",
			-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, user ? user : "\x01");
		bind_text(st, 2, address ? address : "\x01");
		while (sqlite3_step(st) == SQLITE_ROW) {
			json_t *h = json_object();
			json_object_set_new(
				h, "at", time_json(sqlite3_column_int64(st, 0)));
			set_text(h, "action", st, 1);
			json_object_set_new(
				h, "channel",
				json_string(channel_name(
					sqlite3_column_int(st, 2))));
			set_text(h, "source", st, 3);
			set_text(h, "reason", st, 4);
			set_text(h, "user", st, 5);
			set_text(h, "address", st, 6);
			json_array_append_new(history, h);
		}
	}
	sqlite3_finalize(st);
	json_t *r = json_object();
	json_object_set_new(r, "effective", effective);
	json_object_set_new(r, "history", history);
	*out = r;
	return rc == SQLITE_OK ? 0 : -1;
}

static void reader_batch(void *ctx, struct worker_item *batch)
{
	struct store *s = ctx;
	for (struct worker_item *it = batch; it; it = it->next) {
		struct store_cmd *cmd = (struct store_cmd *)it;
		json_t **out = &cmd->u.read.result;
		switch (cmd->kind) {
		case CMD_STATUS:
			cmd->status = read_status(s->rdb, cmd->u.read.job_id,
						  out);
			break;
		case CMD_STATS:
			cmd->status = read_stats(s->rdb, out);
			break;
		case CMD_CONSENT:
			cmd->status = read_consent(s->rdb, cmd->u.read.user,
						   cmd->u.read.address, out);
			break;
		case CMD_ENROLLMENT:
			cmd->status = read_enrollment(s->rdb,
						      cmd->u.read.job_id, out);
			break;
		default:
			cmd->status = -1;
		}
	}
}

static void reader_done(void *ctx, struct worker_item *batch)
{
	(void)ctx;
	while (batch) {
		struct store_cmd *cmd = (struct store_cmd *)batch;
		batch = batch->next;
		cmd->u.read.cb(cmd->ud, cmd->status, cmd->u.read.result);
		free(cmd->u.read.job_id);
		free(cmd->u.read.user);
		free(cmd->u.read.address);
		free(cmd);
	}
}

static void submit_read(struct store *s, enum cmd_kind kind, const char *a,
			const char *b, store_json_cb cb, void *ud)
{
	struct store_cmd *cmd = calloc(1, sizeof *cmd);
	if (!cmd) {
		cb(ud, -1, NULL);
		return;
	}
	cmd->kind = kind;
	cmd->ud = ud;
	cmd->u.read.cb = cb;
	if (kind == CMD_STATUS || kind == CMD_ENROLLMENT) {
		cmd->u.read.job_id = dup_or_null(a);
	} else {
		cmd->u.read.user = dup_or_null(a);
		cmd->u.read.address = dup_or_null(b);
	}
	worker_submit(s->reader, &cmd->item);
}

void store_status(struct store *s, const char *job_id, store_json_cb cb,
		  void *ud)
{
	submit_read(s, CMD_STATUS, job_id, NULL, cb, ud);
}

void store_enrollment(struct store *s, const char *id, store_json_cb cb,
		      void *ud)
{
	submit_read(s, CMD_ENROLLMENT, id, NULL, cb, ud);
}

void store_stats(struct store *s, store_json_cb cb, void *ud)
{
	submit_read(s, CMD_STATS, NULL, NULL, cb, ud);
}

void store_consent(struct store *s, const char *user, const char *address,
		   store_json_cb cb, void *ud)
{
	submit_read(s, CMD_CONSENT, user, address, cb, ud);
}

/* ------------------------------------------------------------ recovery */

/* The recovery query names every channel, so that it seeks the
 * (channel, state) index instead of scanning it. */
_Static_assert(CH_COUNT == 3 && CH_EMAIL == 0 && CH_SMS == 1 && CH_PUSH == 2,
	       "store_recover lists the channels");

int store_recover(struct store *s,
		  bool (*delivered)(void *ud, const struct job *job),
		  void *ud, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int settled = 0;
	if (sqlite3_prepare_v2(
		    s->wdb,
		    "SELECT rowid, id, key, user, channel, recipient, platform,"
		    " template, locale, vars, tz, at_ms, expires_ms,"
		    " created_ms, attempts, state FROM jobs"
		    " WHERE channel IN (0, 1, 2) AND state = 3",
		    -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (!exec_sql(s->wdb, "BEGIN IMMEDIATE")) {
		sqlite3_finalize(st);
		return -1;
	}
	int rc = 0, step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct job *job = job_from_row(st);
		if (!job) {
			rc = -1;
			break;
		}
		if (delivered && delivered(ud, job)) {
			sqlite3_stmt *up = stmt_begin(s, Q_SET_SENT);
			sqlite3_bind_int64(up, 1, job->rowid);
			sqlite3_bind_int64(up, 2, now);
			rc = stmt_done(up);
			if (rc == 0)
				rc = add_event(s, job->rowid, now, "sent",
					       "found in the outbox after a "
					       "restart", 0);
		} else if (job->channel == CH_SMS &&
			   s->cfg->sms_on_ambiguous == AMBIGUOUS_FAIL) {
			rc = transition(s, job->rowid, JS_FAILED, 0,
					job->attempts, "ambiguous", now,
					"interrupted while sending; outcome "
					"unknown (sms.on_ambiguous=fail)", 0);
		} else {
			rc = set_state(s, job->rowid, JS_QUEUED, now,
				       job->attempts, NULL);
			if (rc == 0)
				rc = add_event(s, job->rowid, now, "retry",
					       "interrupted while sending; "
					       "outcome unknown, sending again "
					       "with the same id", now);
		}
		job_free(job);
		settled++;
	}
	sqlite3_finalize(st);
	if (rc == 0 && exec_sql(s->wdb, "COMMIT"))
		return settled;
	exec_sql(s->wdb, "ROLLBACK");
	return -1;
}

/* ------------------------------------------------------------ checkpoints */

/* Writer thread, after each commit: asks for a checkpoint once the WAL
 * holds enough frames. */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	struct store *s = ud;
	if (frames >= STORE_CHECKPOINT_FRAMES) {
		uv_mutex_lock(&s->ckpt_lock);
		s->ckpt_wanted = true;
		s->wal_frames = frames;
		uv_cond_signal(&s->ckpt_wake);
		uv_mutex_unlock(&s->ckpt_lock);
	}
	return SQLITE_OK;
}

static void checkpoint_thread(void *arg)
{
	struct store *s = arg;
	prctl(PR_SET_NAME, "store-ckpt", 0, 0, 0);
	uv_mutex_lock(&s->ckpt_lock);
	for (;;) {
		while (!s->ckpt_wanted && !s->ckpt_stop)
			uv_cond_wait(&s->ckpt_wake, &s->ckpt_lock);
		if (s->ckpt_stop)
			break;
		s->ckpt_wanted = false;
		bool restart = s->wal_frames >= STORE_WAL_RESTART_FRAMES;
		uv_mutex_unlock(&s->ckpt_lock);
		int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL,
						   SQLITE_CHECKPOINT_PASSIVE,
						   NULL, NULL);
		/* the passive pass copied nearly everything without holding
		 * up the writer; the restart then blocks it only for the
		 * frames committed meanwhile */
		if (restart && rc == SQLITE_OK) {
			/* no waiting: if the writer or a reader is busy, try
			 * again after the next commits */
			sqlite3_busy_timeout(s->cdb, 0);
			rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL,
						       SQLITE_CHECKPOINT_RESTART,
						       NULL, NULL);
			sqlite3_busy_timeout(s->cdb, STORE_BUSY_TIMEOUT_MS);
		}
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_msg(LOG_WARN, "WAL checkpoint failed", "error",
				sqlite3_errmsg(s->cdb), NULL);
		uv_mutex_lock(&s->ckpt_lock);
	}
	uv_mutex_unlock(&s->ckpt_lock);
}

static int checkpoints_start(struct store *s, const char *path, char *err,
			     size_t errlen)
{
	if (open_connection(path, false, &s->cdb, err, errlen) != 0)
		return -1;
	uv_mutex_init(&s->ckpt_lock);
	uv_cond_init(&s->ckpt_wake);
	if (uv_thread_create(&s->ckpt_thread, checkpoint_thread, s) != 0) {
		snprintf(err, errlen, "cannot start the checkpoint thread");
		return -1;
	}
	s->ckpt_started = true;
	sqlite3_exec(s->wdb, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);
	sqlite3_wal_hook(s->wdb, on_wal_commit, s);
	return 0;
}

static void checkpoints_stop(struct store *s)
{
	if (s->ckpt_started) {
		uv_mutex_lock(&s->ckpt_lock);
		s->ckpt_stop = true;
		uv_cond_signal(&s->ckpt_wake);
		uv_mutex_unlock(&s->ckpt_lock);
		uv_thread_join(&s->ckpt_thread);
		uv_cond_destroy(&s->ckpt_wake);
		uv_mutex_destroy(&s->ckpt_lock);
		s->ckpt_started = false;
	}
	sqlite3_close(s->cdb);
	s->cdb = NULL;
}

/* ------------------------------------------------------------ lifecycle */

int store_open(uv_loop_t *loop, const struct config *cfg, struct store **out,
	       char *err, size_t errlen)
{
	char path[4096];
	struct store *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->cfg = cfg;
	if (mkdir(cfg->data_dir, 0750) != 0 && errno != EEXIST) {
		char e[128];
		strerror_r(errno, e, sizeof e);
		snprintf(err, errlen, "data_dir %s: %s", cfg->data_dir, e);
		goto fail;
	}
	snprintf(path, sizeof path, "%s/rouse.db", cfg->data_dir);
	if (open_connection(path, false, &s->wdb, err, errlen) != 0)
		goto fail;
	if (migrate(s->wdb, err, errlen) != 0)
		goto fail;
	for (int i = 0; i < Q_COUNT; i++) {
		if (sqlite3_prepare_v3(s->wdb, stmt_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
				       NULL) != SQLITE_OK) {
			set_err(err, errlen, "prepare", s->wdb);
			goto fail;
		}
	}
	if (open_connection(path, true, &s->rdb, err, errlen) != 0)
		goto fail;
	if (checkpoints_start(s, path, err, errlen) != 0)
		goto fail;
	if (worker_start(loop, "store-writer", 1, STORE_MAX_BATCH, writer_batch,
			 writer_done, s, &s->writer) != 0 ||
	    worker_start(loop, "store-reader", 1, 64, reader_batch, reader_done, s,
			 &s->reader) != 0) {
		snprintf(err, errlen, "cannot start store threads");
		goto fail;
	}
	s->linger = malloc(sizeof *s->linger);
	if (s->linger) {
		uv_timer_init(loop, s->linger);
		s->linger->data = s;
	}
	*out = s;
	return 0;
fail:
	if (s->writer)
		worker_stop(s->writer);
	checkpoints_stop(s);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->rdb);
	sqlite3_close(s->wdb);
	free(s);
	return -1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	linger_end(s);
	if (s->linger)
		uv_close((uv_handle_t *)s->linger, on_linger_closed);
	worker_stop(s->writer);
	worker_stop(s->reader);
	checkpoints_stop(s);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->rdb);
	sqlite3_close(s->wdb);
	free(s->sends);
	free(s);
}
