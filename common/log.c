// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fastivc/log.h"

static enum fivc_log_level log_level = FIVC_LOG_INFO;

static const char *const level_names[] = {
	[FIVC_LOG_ERR] = "err",
	[FIVC_LOG_WARN] = "warn",
	[FIVC_LOG_INFO] = "info",
	[FIVC_LOG_DEBUG] = "debug",
};

void fivc_log(enum fivc_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line so lines from several threads do not interleave.
	 */
	fprintf(stderr, "fastivc %s: %s\n", level_names[level], line);
}

void fivc_log_set_level(enum fivc_log_level level)
{
	log_level = level;
}

enum fivc_log_level fivc_log_get_level(void)
{
	return log_level;
}

int fivc_log_parse_level(const char *name, enum fivc_log_level *out)
{
	for (unsigned int i = 0;
	     i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcmp(name, level_names[i])) {
			*out = (enum fivc_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}
