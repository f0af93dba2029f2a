/* log.h: structured logs, one JSON object per line on stderr.
 * {"ts":"…","level":"info","msg":"ready","socket":"var/rouse.sock"}
 * Callers pass key/value string pairs and NULL. Never pass a secret:
 * values are written as given. Thread-safe (one write(2) per line). */
#ifndef ROUSE_LOG_H
#define ROUSE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);

/* log_msg(LOG_INFO, "ready", "socket", path, NULL) */
void log_msg(enum log_level level, const char *msg, ...);

#endif
