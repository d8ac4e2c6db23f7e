/* conn.h -- an asynchronous Redis connection with deadlines (conn.c),
 * plain or TLS. Shared by framework files only. */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stdarg.h>
#include <stdint.h>
#include <hiredis.h>

struct event_base;
struct sl_conn;
struct sl_config;

/* A reply callback: reply is NULL when the connection was lost or closed
 * before the reply came; it is freed when the callback returns. */
typedef void sl_conn_cb(struct sl_conn *c, redisReply *reply, void *priv);
/* Connection events: ready (usable) and lost (deferred, outside hiredis). */
typedef void sl_conn_event(struct sl_conn *c, void *arg);

struct sl_conn *sl__conn_new(struct event_base *base, const char *name,
                             const struct sl_config *cfg,
                             sl_conn_event *on_ready, sl_conn_event *on_lost,
                             void *arg);
int sl__conn_connect(struct sl_conn *c);
/* Pins c to the master of a cluster hash slot (conn.c). */
int sl__conn_pin(struct sl_conn *c, const char *seeds, int slot);
int sl__conn_command(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                     long long timeout_ms, int argc, const char **argv,
                     const size_t *argvlen);
int sl__conn_command_take(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                          long long timeout_ms, int argc, const char **argv,
                          const size_t *argvlen);
int sl__conn_vcommand_take(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                           long long timeout_ms, const char *fmt, va_list ap);
int sl__conn_command_raw(struct sl_conn *c, sl_conn_cb *cb, void *priv,
                         long long timeout_ms, const char *cmd, size_t len);
void sl__conn_flush(struct sl_conn *c);
/* The loop was blocked for us microseconds: the armed deadline moves
 * later by that much (conn.c). */
void sl__conn_stalled(struct sl_conn *c, uint64_t us);
void sl__conn_close(struct sl_conn *c);
int sl__conn_ready(const struct sl_conn *c);
int sl__conn_inflight(const struct sl_conn *c);
int sl__conn_fd(const struct sl_conn *c);
const char *sl__conn_error(const struct sl_conn *c);
void sl__conn_free(struct sl_conn *c);

#endif /* SL_CONN_H */
