/* rousectl.c: the command-line client of the intake socket.
 *
 * Each subcommand builds one request, sends it, prints the answer line and
 * exits 0 when the answer is ok, 1 when it is not, 2 on usage or
 * connection errors. `bulk` pipes NDJSON requests from stdin and prints
 * one answer line per request, in order, reading and writing at the same
 * time so a large input never deadlocks against the daemon's
 * back-pressure.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"

static void usage(void)
{
	fputs("usage: rousectl [--socket PATH | --config FILE] COMMAND ...\n"
	      "commands:\n"
	      "  ping | stats\n"
	      "  status JOB\n"
	      "  send --user U --channel email|sms|push --to TO --template T\n"
	      "       [--locale L] [--var k=v ...] [--vars JSON] [--key K]\n"
	      "       [--at RFC3339] [--expires RFC3339] [--tz ZONE]\n"
	      "       (push: --to fcm:TOKEN or apns:TOKEN)\n"
	      "  unsubscribe|resubscribe (--user U | --address A) --channel C\n"
	      "       [--source S] [--reason R]\n"
	      "  preview --template T --channel C [--locale L] [--var k=v ...]\n"
	      "       [--vars JSON]\n"
	      "  consent (--user U | --address A)\n"
	      "  enroll --user U --sequence S [--email A] [--phone P]\n"
	      "       [--push fcm:TOKEN|apns:TOKEN ...] [--locale L] [--tz ZONE]\n"
	      "       [--var k=v ...] [--vars JSON]\n"
	      "  event --user U --name EVENT\n"
	      "  enrollment ID   (an enrollment's steps and their jobs)\n"
	      "  bulk   (NDJSON requests on stdin, answers on stdout)\n",
	      stderr);
}

static int connect_socket(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if (fd < 0 || strlen(path) >= sizeof addr.sun_path) {
		if (fd >= 0)
			close(fd);
		fprintf(stderr, "rousectl: bad socket path %s\n", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		char msg[128];
		strerror_r(errno, msg, sizeof msg);
		fprintf(stderr, "rousectl: %s: %s\n", path, msg);
		close(fd);
		return -1;
	}
	return fd;
}

/* Streams `in` (may be -1) to the socket while copying answers to stdout.
 * Returns the number of answers not ok, or -1 on a connection error. */
static int exchange(int fd, int in, const char *buf, size_t len,
		    size_t *answers)
{
	char rbuf[65536], ibuf[65536];
	size_t ioff = 0, ilen = 0, sent_lines = 0;
	char *line = NULL;
	size_t line_len = 0, line_cap = 0;
	int not_ok = 0;
	bool in_eof = in < 0;
	const char *out = buf;
	size_t out_len = len;
	for (size_t i = 0; i < len; i++)
		sent_lines += buf[i] == '\n';
	*answers = 0;
	for (;;) {
		if (in_eof && out_len == 0 && ioff == ilen &&
		    *answers >= sent_lines) {
			shutdown(fd, SHUT_WR);
			break;
		}
		if (!in_eof && ioff == ilen && out_len == 0) {
			ssize_t n = read(in, ibuf, sizeof ibuf);
			if (n <= 0) {
				in_eof = true;
				continue;
			}
			for (ssize_t i = 0; i < n; i++)
				sent_lines += ibuf[i] == '\n';
			ioff = 0;
			ilen = (size_t)n;
		}
		bool want_write = out_len > 0 || ioff < ilen;
		struct pollfd p = { .fd = fd,
				    .events = POLLIN | (want_write ? POLLOUT : 0) };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -1;
		if (p.revents & POLLOUT) {
			const char *src = out_len ? out : ibuf + ioff;
			size_t n = out_len ? out_len : ilen - ioff;
			ssize_t w = write(fd, src, n);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			if (w > 0 && out_len) {
				out += w;
				out_len -= (size_t)w;
			} else if (w > 0) {
				ioff += (size_t)w;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, rbuf, sizeof rbuf);
			if (n <= 0) {
				free(line);
				return *answers >= sent_lines ? not_ok : -1;
			}
			for (ssize_t i = 0; i < n; i++) {
				if (line_len + 1 >= line_cap) {
					line_cap = line_cap ? line_cap * 2 : 4096;
					char *g = realloc(line, line_cap);
					if (!g) {
						free(line);
						return -1;
					}
					line = g;
				}
				line[line_len++] = rbuf[i];
				if (rbuf[i] != '\n')
					continue;
				fwrite(line, 1, line_len, stdout);
				line[line_len] = '\0';
				if (!strstr(line, "\"ok\":true"))
					not_ok++;
				(*answers)++;
				line_len = 0;
			}
		}
	}
	free(line);
	fflush(stdout);
	return not_ok;
}

static int set_var(json_t *vars, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		fprintf(stderr, "rousectl: --var expects key=value, got %s\n", kv);
		return -1;
	}
	char *key = strndup(kv, (size_t)(eq - kv));
	json_t *v = json_string(eq + 1);
	int rc = key && v ? json_object_set_new(vars, key, v) : -1;
	free(key);
	return rc;
}

/* "fcm:TOKEN" / "apns:TOKEN" as {"platform","token"}, or NULL. */
static json_t *push_target(const char *opt, const char *to)
{
	const char *colon = strchr(to, ':');
	if (!colon) {
		fprintf(stderr, "rousectl: %s expects fcm:TOKEN or "
			"apns:TOKEN\n", opt);
		return NULL;
	}
	json_t *obj = json_object();
	char *platform = strndup(to, (size_t)(colon - to));
	json_object_set_new(obj, "platform", json_string(platform));
	json_object_set_new(obj, "token", json_string(colon + 1));
	free(platform);
	return obj;
}

static int set_push_to(json_t *req, const char *to)
{
	json_t *obj = push_target("push --to", to);
	return obj ? json_object_set_new(req, "to", obj) : -1;
}

/* enroll's --email, --phone and --push go into "contact". */
static int add_contact(json_t *req, const char *opt, const char *val)
{
	json_t *contact = json_object_get(req, "contact");
	if (!contact) {
		contact = json_object();
		json_object_set_new(req, "contact", contact);
	}
	if (strcmp(opt, "--push") != 0)
		return json_object_set_new(contact, opt + 2, json_string(val));
	json_t *list = json_object_get(contact, "push");
	if (!list) {
		list = json_array();
		json_object_set_new(contact, "push", list);
	}
	json_t *target = push_target("--push", val);
	return target ? json_array_append_new(list, target) : -1;
}

/* Turns "--name value" options into request fields. */
static json_t *build_request(const char *op, int argc, char **argv)
{
	json_t *req = json_object();
	json_t *vars = NULL;
	const char *to = NULL;
	json_object_set_new(req, "op", json_string(op));
	if (strcmp(op, "status") == 0 || strcmp(op, "enrollment") == 0) {
		if (argc != 1)
			goto bad;
		json_object_set_new(req, "op", json_string("status"));
		json_object_set_new(req, op[0] == 's' ? "job" : "enrollment",
				    json_string(argv[0]));
		return req;
	}
	bool enroll = strcmp(op, "enroll") == 0;
	if (enroll)
		json_object_set_new(req, "contact", json_object());
	for (int i = 0; i < argc; i++) {
		const char *opt = argv[i];
		if (strncmp(opt, "--", 2) != 0 || i + 1 >= argc)
			goto bad;
		const char *val = argv[++i];
		if (strcmp(opt, "--var") == 0) {
			if (!vars)
				vars = json_object();
			if (set_var(vars, val) != 0)
				goto bad;
		} else if (strcmp(opt, "--vars") == 0) {
			json_error_t e;
			json_t *v = json_loads(val, 0, &e);
			if (!json_is_object(v)) {
				json_decref(v);
				fprintf(stderr, "rousectl: --vars: not a JSON "
					"object\n");
				goto bad;
			}
			if (!vars)
				vars = json_object();
			json_object_update(vars, v);
			json_decref(v);
		} else if (strcmp(opt, "--to") == 0) {
			to = val;
		} else if (enroll && (strcmp(opt, "--email") == 0 ||
				      strcmp(opt, "--phone") == 0 ||
				      strcmp(opt, "--push") == 0)) {
			if (add_contact(req, opt, val) != 0)
				goto bad;
		} else {
			json_object_set_new(req, opt + 2, json_string(val));
		}
	}
	if (vars)
		json_object_set_new(req, "vars", vars);
	vars = NULL;
	if (to) {
		const char *ch = json_string_value(json_object_get(req, "channel"));
		if (ch && strcmp(ch, "push") == 0) {
			if (set_push_to(req, to) != 0)
				goto bad;
		} else {
			json_object_set_new(req, "to", json_string(to));
		}
	}
	return req;
bad:
	json_decref(vars);
	json_decref(req);
	return NULL;
}

static char *default_socket(const char *config_path)
{
	char err[512];
	struct config *cfg = NULL;
	const char *env = getenv("ROUSE_SOCKET");
	if (!config_path && env && *env)
		return strdup(env);
	if (config_load(config_path ? config_path : "config/rouse.json", &cfg,
			err, sizeof err) == 0) {
		char *path = strdup(cfg->socket_path);
		config_free(cfg);
		return path;
	}
	if (config_path) {
		fprintf(stderr, "rousectl: %s\n", err);
		return NULL;
	}
	return strdup(env && *env ? env : "var/rouse.sock");
}

int main(int argc, char **argv)
{
	const char *socket_path = NULL, *config_path = NULL;
	int i = 1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (i + 1 >= argc) {
			usage();
			return 2;
		}
		if (strcmp(argv[i], "--socket") == 0)
			socket_path = argv[i + 1];
		else if (strcmp(argv[i], "--config") == 0)
			config_path = argv[i + 1];
		else {
			usage();
			return 2;
		}
	}
	if (i >= argc) {
		usage();
		return 2;
	}
	const char *op = argv[i++];
	char *text = NULL;
	if (strcmp(op, "bulk") != 0) {
		json_t *req = build_request(op, argc - i, argv + i);
		if (!req) {
			usage();
			return 2;
		}
		text = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		size_t n = text ? strlen(text) : 0;
		char *line = text ? realloc(text, n + 2) : NULL;
		if (!line) {
			free(text);
			return 2;
		}
		text = line;
		text[n] = '\n';
		text[n + 1] = '\0';
	}
	char *path = socket_path ? strdup(socket_path)
				 : default_socket(config_path);
	int fd = path ? connect_socket(path) : -1;
	free(path);
	if (fd < 0) {
		free(text);
		return 2;
	}
	size_t answers = 0;
	int not_ok = text ? exchange(fd, -1, text, strlen(text), &answers)
			  : exchange(fd, STDIN_FILENO, "", 0, &answers);
	free(text);
	close(fd);
	if (not_ok < 0) {
		fprintf(stderr, "rousectl: connection lost after %zu "
			"answers\n", answers);
		return 2;
	}
	return not_ok ? 1 : 0;
}
