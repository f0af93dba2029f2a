/* fuzz_config.c: feeds arbitrary bytes to the config loader as a config
 * file; the loader must either succeed or fail with a one-line message,
 * never crash, leak or read out of bounds.
 *
 * The input goes to one temporary file per process, created on the first
 * call and unlinked at once so that nothing is left behind even when
 * libFuzzer ends the process with _Exit. The loader reaches it through
 * /proc/self/fd/N, which Linux lets open() follow to a deleted file; each
 * call rewrites the file in place. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_config_fd = -1;
static char fuzz_config_path[64];

static int fuzz_config_write(const uint8_t *data, size_t size)
{
	if (fuzz_config_fd < 0) {
		char tmpl[] = "/tmp/rouse-fuzz-config-XXXXXX";
		fuzz_config_fd = mkstemp(tmpl);
		if (fuzz_config_fd < 0)
			return -1;
		unlink(tmpl);
		snprintf(fuzz_config_path, sizeof fuzz_config_path,
			 "/proc/self/fd/%d", fuzz_config_fd);
	}
	if (ftruncate(fuzz_config_fd, 0) != 0)
		return -1;
	size_t off = 0;
	while (off < size) {
		ssize_t n = pwrite(fuzz_config_fd, data + off, size - off,
				   (off_t)off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_config_write(data, size) != 0)
		abort();
	struct config *cfg = NULL;
	char err[512] = "";
	if (config_load(fuzz_config_path, &cfg, err, sizeof err) == 0) {
		if (!cfg || !cfg->path || !cfg->data_dir || !cfg->socket_path ||
		    !cfg->maildir || !cfg->sms_file || !cfg->push_file ||
		    cfg->retry_max_ms < cfg->retry_base_ms || cfg->n_sms_footer == 0)
			abort();
		config_free(cfg);
	} else {
		if (cfg || !err[0] || strchr(err, '\n') || strchr(err, '\r'))
			abort();
	}
	return 0;
}
