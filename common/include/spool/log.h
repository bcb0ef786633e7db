/* log.h - one line per event on stderr, as JSON or text, with time, level, process,
 * message and, where they apply, the job id, queue and worker. Thread-safe. */
#ifndef SPOOL_LOG_H
#define SPOOL_LOG_H

enum sp_log_level { SP_LOG_DEBUG = 0, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR };
enum sp_log_format { SP_LOG_TEXT = 0, SP_LOG_JSON };

/* Who an event concerns; every field may be NULL. */
typedef struct sp_logctx {
    const char *job;
    const char *queue;
    const char *worker;
} sp_logctx;

/* Set the process name shown on each line, the minimum level and the format. */
void sp_log_init(const char *process, int level, int format);

/* Parse "debug|info|warn|error" / "json|text". Return 0, or SP_EINVAL. */
int sp_log_parse_level(const char *s, int *level);
int sp_log_parse_format(const char *s, int *format);

/* True when events at level would be written. */
int sp_log_enabled(int level);

void sp_log(int level, const sp_logctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sp_debug(ctx, ...) sp_log(SP_LOG_DEBUG, (ctx), __VA_ARGS__)
#define sp_info(ctx, ...) sp_log(SP_LOG_INFO, (ctx), __VA_ARGS__)
#define sp_warn(ctx, ...) sp_log(SP_LOG_WARN, (ctx), __VA_ARGS__)
#define sp_error(ctx, ...) sp_log(SP_LOG_ERROR, (ctx), __VA_ARGS__)

#endif
