/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* One logging module for the library, the agent and the tools. */
#ifndef FASTIVC_LOG_H
#define FASTIVC_LOG_H

enum fivc_log_level {
	FIVC_LOG_ERR = 0,
	FIVC_LOG_WARN,
	FIVC_LOG_INFO,
	FIVC_LOG_DEBUG,
};

void fivc_log(enum fivc_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void fivc_log_set_level(enum fivc_log_level level);
enum fivc_log_level fivc_log_get_level(void);
/* Parses "err", "warn", "info" or "debug"; -EINVAL otherwise. */
int fivc_log_parse_level(const char *name, enum fivc_log_level *out);

#define pr_err(...) fivc_log(FIVC_LOG_ERR, __VA_ARGS__)
#define pr_warn(...) fivc_log(FIVC_LOG_WARN, __VA_ARGS__)
#define pr_info(...) fivc_log(FIVC_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) fivc_log(FIVC_LOG_DEBUG, __VA_ARGS__)

#endif /* FASTIVC_LOG_H */
