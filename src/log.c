/* log.c: JSON-lines logging on stderr (see log.h). jansson does the
 * escaping, so a hostile value cannot forge a field or a line. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "timefmt.h"

static enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

void log_msg(enum log_level level, const char *msg, ...)
{
	if (level < log_threshold)
		return;
	char ts[RFC3339_BUFLEN];
	rfc3339_format(time_now_ms(), ts);
	json_t *line = json_object();
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "msg", json_string(msg));
	va_list ap;
	va_start(ap, msg);
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		json_object_set_new(line, key,
				    value ? json_string(value) : json_null());
	}
	va_end(ap);
	char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (!text)
		return;
	size_t len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; written by length */
	ssize_t w = write(STDERR_FILENO, text, len + 1);
	(void)w;
	free(text);
}
