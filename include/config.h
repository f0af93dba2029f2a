/* config.h: the daemon's configuration, loaded strictly from one JSON file.
 *
 * Unknown keys, wrong types and invalid values are refused with a message
 * naming the key path ("limits.per_user[1].window: invalid duration \"5x\"").
 * Keys of features not built yet are refused with "not supported yet: KEY".
 * Relative paths are resolved against the config file's directory.
 */
#ifndef ROUSE_CONFIG_H
#define ROUSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"

enum email_transport { EMAIL_TRANSPORT_MAILDIR, EMAIL_TRANSPORT_SMTP };
enum smtp_starttls { STARTTLS_NO, STARTTLS_IF_AVAILABLE, STARTTLS_REQUIRED };

struct smtp_conf {           /* email.smtp */
	char *host;              /* required when email.transport is smtp */
	int port;                /* default 25, 1..65535 */
	enum smtp_starttls starttls; /* default IF_AVAILABLE */
	char *username;          /* optional; needs a password */
	char *password;          /* read from password_env / password_file */
	int sessions;            /* concurrent connections, default 4, 1..64 */
	int batch;               /* messages per connection, default 50,
	                            1..10000 */
	char *ca_file;           /* optional PEM bundle (absolute path) */
	int64_t timeout_ms;      /* each SMTP wait (greeting, command reply,
	                            data), default 60s, 1s..10m */
	char *helo;              /* EHLO name, default the email.from domain
	                            (NULL here means that default) */
	char *envelope_from;     /* MAIL FROM, default the email.from address
	                            (NULL here means that default) */
};
enum file_or_http { TRANSPORT_FILE, TRANSPORT_HTTP };
enum on_limit { ON_LIMIT_DEFER, ON_LIMIT_DROP };
enum on_ambiguous { AMBIGUOUS_FAIL, AMBIGUOUS_RETRY };

struct cap_rule {
	int channel;        /* enum channel, or CH_ALL for "*" */
	int max;            /* >= 1 */
	int64_t window_ms;  /* > 0 */
};

struct bucket_conf {
	bool set;           /* false: that transport is not rate-shaped */
	double rate;        /* per second, > 0 */
	double burst;       /* >= 1 */
};

struct locale_text {    /* one entry of a per-locale text map */
	char *locale;
	char *text;
};

struct config {
	char *path;              /* absolute path of the file loaded */
	char *dir;               /* its directory */
	char *data_dir;          /* default "<dir>/../var" */
	char *templates_dir;     /* default "<dir>/../templates" */
	char *default_locale;    /* default "en" */

	char *socket_path;       /* default "<data_dir>/rouse.sock" */
	size_t max_line;         /* default 1048576, >= 256 */
	int max_connections;     /* default 1024, >= 1 */
	int max_pending;         /* intake.max_pending: requests awaiting the
	                            store, daemon-wide; default 65536 */

	char *email_from;        /* default "rouse <noreply@localhost>" */
	enum email_transport email_transport; /* default MAILDIR */
	char *maildir;           /* default "<data_dir>/outbox/email" */
	struct smtp_conf smtp;   /* set when email_transport is SMTP */

	enum file_or_http sms_transport;       /* only FILE accepted now */
	char *sms_file;          /* default "<data_dir>/outbox/sms.jsonl" */
	char *sms_from;          /* may be NULL */
	enum on_ambiguous sms_on_ambiguous;    /* default FAIL */
	struct locale_text *sms_footer;        /* default en + zh built-ins */
	size_t n_sms_footer;

	enum file_or_http push_transport;      /* only FILE accepted now */
	char *push_file;         /* default "<data_dir>/outbox/push.jsonl" */

	struct cap_rule *caps;   /* limits.per_user, may be empty */
	size_t n_caps;
	enum on_limit on_limit;  /* default DEFER */
	struct bucket_conf buckets[CH_COUNT]; /* limits.transports */

	int retry_max_attempts;  /* default 8, >= 1 */
	int64_t retry_base_ms;   /* default 30s */
	int64_t retry_max_ms;    /* default 1h, >= base */
};

/* Loads path. On success returns 0 and *out owns a config (config_free).
 * On failure returns -1, *out is NULL and err holds one line naming the
 * key (or the file and JSON line/column for a syntax error). */
int config_load(const char *path, struct config **out, char *err,
		size_t errlen);

void config_free(struct config *cfg);

/* Reads a secret named by a `*_env` key (env_name non-NULL) or a `*_file`
 * key (file_path non-NULL). A file readable by group or others is refused.
 * Trailing newline is stripped. Returns 0 and a malloc'd *out, or -1 with
 * err naming key (never the secret itself). */
int config_read_secret(const char *key, const char *env_name,
		       const char *file_path, char **out, char *err,
		       size_t errlen);

#endif
