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
enum sms_gateway { SMS_GATEWAY_TWILIO, SMS_GATEWAY_JSON };

struct http_conf {           /* the keys every HTTP transport shares */
	char *url;               /* base: scheme, host, optional port and
	                            path prefix; no trailing '/' */
	char *ca_file;           /* optional PEM bundle (absolute path) used
	                            instead of the system store */
	int64_t timeout_ms;      /* whole request, default 30s, 1s..10m */
	int connections;         /* most connections open, default 16
	                            (APNs 2), 1..256 */
};

struct sms_http_conf {       /* sms.http, set when sms.transport is http */
	enum sms_gateway kind;   /* default TWILIO */
	struct http_conf http;   /* url default https://api.twilio.com for
	                            twilio; required for json */
	char *account_sid;       /* twilio: required */
	char *auth_token;        /* twilio: required (auth_token_env/_file);
	                            json: optional, sent as a bearer token */
};

struct fcm_conf {            /* push.fcm */
	bool set;
	struct http_conf http;   /* url default https://fcm.googleapis.com */
	char *service_account_file; /* absolute path; 0600 */
	char *project_id;        /* NULL: the service account's */
};

struct apns_conf {           /* push.apns */
	bool set;
	struct http_conf http;   /* url default https://api.push.apple.com */
	char *topic;             /* the app's bundle id */
	char *key_file;          /* .p8, absolute path; 0600 */
	char *key_id;            /* 10 characters */
	char *team_id;           /* 10 characters */
};
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

struct unsubscribe_conf {    /* unsubscribe: the HTTP listener and links */
	bool set;
	char *listen_host;       /* numeric address: "127.0.0.1", "::1" */
	int listen_port;
	char *public_url;        /* base of every link, no trailing '/' */
	char *public_path;       /* its path part: "" or "/rouse" (the
	                            listener serves under it) */
	char *secret;            /* from secret_env / secret_file: one secret,
	                            or "kid:secret" entries separated by spaces,
	                            the first one minting (key rotation) */
	char *mailto;            /* optional mailto: address */
	struct locale_text *footer;   /* email footer per locale, with
	                                 {{unsubscribe_url}}; default en + zh */
	size_t n_footer;
};

struct quiet_conf {          /* quiet_hours */
	bool set;
	int start_min, end_min;  /* minutes after local midnight; start >
	                            end crosses midnight (21:00-08:00) */
	char *default_tz;        /* default "UTC" */
	bool channels[CH_COUNT]; /* default sms and push */
};

struct seq_step {
	int64_t after_ms;        /* from the enrollment's start */
	int channel;
	char *template_name;
	char *vars_json;         /* merged over the enrollment's, or NULL */
	int64_t expires_after_ms; /* 0: none */
};

struct sequence {
	char *name;
	char **exit_on;
	size_t n_exit_on;
	struct seq_step *steps;
	size_t n_steps;
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

	enum file_or_http sms_transport;       /* default FILE */
	struct sms_http_conf sms_http;         /* when sms_transport is HTTP */
	char *sms_file;          /* default "<data_dir>/outbox/sms.jsonl" */
	char *sms_from;          /* may be NULL */
	enum on_ambiguous sms_on_ambiguous;    /* default FAIL */
	struct locale_text *sms_footer;        /* default en + zh built-ins */
	size_t n_sms_footer;

	enum file_or_http push_transport;      /* default FILE */
	struct fcm_conf fcm;                   /* push.fcm / push.apns: at */
	struct apns_conf apns;                 /* least one with HTTP */
	char *push_file;         /* default "<data_dir>/outbox/push.jsonl" */

	struct cap_rule *caps;   /* limits.per_user, may be empty */
	size_t n_caps;
	enum on_limit on_limit;  /* default DEFER */
	struct bucket_conf buckets[CH_COUNT]; /* limits.transports */

	struct unsubscribe_conf unsub;
	struct quiet_conf quiet;
	struct sequence *sequences;
	size_t n_sequences;

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
