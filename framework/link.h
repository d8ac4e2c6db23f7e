/* link.h -- the byte transport under every Redis connection (link.c). */
#ifndef SL_LINK_H
#define SL_LINK_H

#include <stddef.h>
#include <event2/event.h>
#include <hiredis.h>
#include "internal.h"

struct sl_link;

/* Called once per reply, in the order the commands were sent. Takes r
 * (the callee frees it with freeReplyObject). */
typedef void sl_link_reply_cb(struct sl_link *l, redisReply *r, void *arg);

/* Called once when the link is up (up 1, why NULL), and at most once when
 * it is gone (up 0, why "connect failed: ...", "disconnected: ...").
 * Nothing is called after the down notice. */
typedef void sl_link_state_cb(struct sl_link *l, int up, const char *why, void *arg);

/* Starts connecting to u, through TLS when u->tls is set (with the
 * settings in tls, borrowed for the call). Returns the link (new:
 * sl__link_free()), whose outcome arrives through on_state; or NULL with
 * the reason in err ("connect failed: ...", never a secret). */
struct sl_link *sl__link_new(struct event_base *base, const struct sl_redis_url *u,
                             const struct sl_tls *tls, sl_link_reply_cb *on_reply,
                             sl_link_state_cb *on_state, void *arg,
                             char *err, size_t errlen);

/* Queues len bytes of one command in the Redis protocol (formatted by
 * redisFormatCommandArgv or redisvFormatCommand; borrowed for the call)
 * for writing. Returns 0, or -1 when out of memory or the link is down. */
int sl__link_send(struct sl_link *l, const char *cmd, size_t len);

/* Tries to write what is queued now rather than at the next turn of the
 * loop (plain sockets only; TLS writes at the next turn). No callback is
 * called from here. */
void sl__link_flush(struct sl_link *l);

/* Returns the link's socket, or -1. */
int sl__link_fd(const struct sl_link *l);

/* Closes and frees the link, calling nothing. Safe inside the link's own
 * callbacks (the memory is released when the dispatch returns). Accepts
 * NULL. */
void sl__link_free(struct sl_link *l);

#endif /* SL_LINK_H */
