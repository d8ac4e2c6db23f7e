/* check_webhook.c -- the webhook worker (issue 15 part 4) against a real
 * redis-server, the real binary and build/webhook-receiver, a local
 * merchant server that verifies each signature and logs each delivery.
 *
 * Each test adds notifications {"id": "ntf-N", ...} to `notifications`
 * and checks, from the receiver's log, that every one was delivered at
 * least once with its own webhook-id and a signature that verifies, that
 * none is lost (nothing left pending), and that the dead-letter stream
 * holds exactly the ones the receiver rejected.
 */
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>

#include "sluice.h"
#include "ops.h"
#include "config.h"
#include "sut.h"

#define SECRET "whsec_c2x1aWNlLXRlc3Qtc2VjcmV0LWtleS0xMjM0NQ=="

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Returns the path of build/webhook-receiver, next to $SLUICE_BIN. */
static const char *receiver_path(void)
{
    static char path[1024];
    char bin[1024];
    const char *b = getenv("SLUICE_BIN");

    snprintf(bin, sizeof(bin), "%s", b != NULL ? b : "build/sluice-test");
    snprintf(path, sizeof(path), "%s/webhook-receiver", dirname(bin));
    return path;
}

/* Starts the receiver on port (0: any) with extra arguments (NULL-
 * terminated, at most 4), logging to <tmp>/<log>, and returns its port
 * once it listens. The pid goes to *pid. */
static int receiver_start(const char *log, int port, const char *const *extra, pid_t *pid)
{
    char path[600], ports[16];
    const char *argv[10];
    int n = 0, got;

    snprintf(path, sizeof(path), "%s/%s", tmp, log);
    snprintf(ports, sizeof(ports), "%d", port);
    argv[n++] = receiver_path();
    argv[n++] = "--port";
    argv[n++] = ports;
    while (extra != NULL && *extra != NULL && n < 9)
        argv[n++] = *extra++;
    argv[n] = NULL;
    setenv("SLUICE_WEBHOOK_SECRET", SECRET, 1);
    *pid = fork();
    ck_assert_int_ge(*pid, 0);
    if (*pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    track(*pid);
    SL_TEST_ASSERT_EVENTUALLY(10000, file_last_number(path, "event=receiver_listening port=") > 0);
    got = (int)file_last_number(path, "event=receiver_listening port=");
    return got;
}

/* Sets the worker's environment (inherited by the pool) for a receiver
 * on port. */
static void webhook_env(int port, const char *timeout_ms)
{
    char url[100];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/orders", port);
    setenv("SLUICE_WEBHOOK_URL", url, 1);
    setenv("SLUICE_WEBHOOK_SECRET", SECRET, 1);
    setenv("SLUICE_WEBHOOK_RETRY_FIRST_MS", "200", 1);
    if (timeout_ms != NULL)
        setenv("SLUICE_WEBHOOK_TIMEOUT_MS", timeout_ms, 1);
    else
        unsetenv("SLUICE_WEBHOOK_TIMEOUT_MS");
}

/* Starts the pool with one webhook process (concurrency 64,
 * max_deliveries maxd, retries after 100 ms to 1 s), logging to
 * <tmp>/pool.log. */
static void webhook_pool(struct pool *p, int maxd)
{
    char wk[300];
    struct sl_test_config c = { srv.url, NULL, "\"retry_backoff_ms\": [100, 1000]", NULL, wk,
                                NULL };
    int rv;

    snprintf(wk, sizeof(wk), "{\"handler\": \"webhook\", \"stream\": \"notifications\", "
             "\"group\": \"webhook\", \"processes\": 1, \"concurrency\": 64, "
             "\"max_deliveries\": %d}", maxd);
    memset(p, 0, sizeof(*p));
    snprintf(p->cfg, sizeof(p->cfg), "%s/webhook.json", tmp);
    ck_assert_int_eq(sl_test_config_write(p->cfg, &c), 0);
    snprintf(p->log, sizeof(p->log), "%s/pool.log", tmp);
    p->pid = sl_test_pool_spawn(p->cfg, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    rv = sl_test_pool_wait_running(p->pid, p->log, 1, 10000);
    ck_assert_msg(rv == 0, "the webhook worker is not running (%d); see %s", rv, p->log);
}

/* Adds n notifications ntf-<from>..; those whose index is in reject
 * (n_reject of them) carry "reject":true. */
static void add_notes(int from, int n, const int *reject, int n_reject)
{
    int i, j;

    for (i = from; i < from + n; i++) {
        int rej = 0;
        redisReply *r;

        for (j = 0; j < n_reject; j++)
            rej |= reject[j] == i;
        r = sl_test_cmd(rc, "XADD notifications * type order.paid data "
                        "{\"id\":\"ntf-%d\",\"order_id\":\"o-%d\",\"status\":\"paid\"%s}",
                        i, i, rej ? ",\"reject\":true" : "");
        ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
}

/* Returns 1 when the receiver's log shows notification i answered with
 * status (the same webhook-id on every attempt: the id is the needle). */
static int delivered(const char *log, int i, int status)
{
    char path[600], needle[120];

    snprintf(path, sizeof(path), "%s/%s", tmp, log);
    snprintf(needle, sizeof(needle), "webhook_id=ntf-%d timestamp=", i);
    if (file_count(path, needle) == 0)
        return 0;
    snprintf(needle, sizeof(needle), "webhook_id=ntf-%d timestamp=", i);
    {
        char *text = sl_test_read_file(path), *at;
        int ok = 0;
        char st[32];

        snprintf(st, sizeof(st), " status=%d ", status);
        for (at = text; at != NULL && (at = strstr(at, needle)) != NULL; at++) {
            char *eol = strchr(at, '\n'), *s = strstr(at, st);
            if (s != NULL && (eol == NULL || s < eol))
                ok = 1;
        }
        free(text);
        return ok;
    }
}

/* Returns 1 when every notification from..from+n-1 except those in
 * reject was delivered with 204 in one of the logs. */
static int all_delivered(const char *const *logs, int from, int n, const int *reject, int nrej)
{
    int i, j, k;

    for (i = from; i < from + n; i++) {
        int rej = 0, ok = 0;

        for (j = 0; j < nrej; j++)
            rej |= reject[j] == i;
        if (rej)
            continue;
        for (k = 0; logs[k] != NULL && !ok; k++)
            ok = delivered(logs[k], i, 204);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Asserts that no delivery in the receiver log failed its signature. */
static void assert_signed(const char *log)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s", tmp, log);
    ck_assert_msg(file_count(path, "event=delivery ") > 0, "no delivery in %s", path);
    ck_assert_msg(file_count(path, " verified=0 ") == 0, "a signature did not verify; see %s",
                  path);
}

/* Returns the number of dead letters of notifications. */
static long long dead_len(void)
{
    redisReply *r = sl_test_cmd(rc, "XLEN notifications:dead");
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

/* 200 notifications, 64 in flight, a receiver answering in 50 ms: all
 * delivered once, signed, acked; the rate is printed. */
START_TEST(test_webhook_delivers_200_with_64_in_flight)
{
    static const char *const logs[] = { "recv.log", NULL };
    static const char *const args[] = { "--delay-ms", "50", NULL };
    struct pool p;
    pid_t rp;
    long long t0;

    webhook_env(receiver_start("recv.log", 0, args, &rp), NULL);
    webhook_pool(&p, 12);
    t0 = sl_test_now_ms();
    add_notes(0, 200, NULL, 0);
    SL_TEST_ASSERT_EVENTUALLY(60000, all_delivered(logs, 0, 200, NULL, 0) &&
                                     group_backlog("notifications", "webhook") == 0);
    fprintf(stderr, "webhook: 200 deliveries at 50 ms, concurrency 64: %lld ms\n",
            sl_test_now_ms() - t0);
    assert_signed("recv.log");
    ck_assert_int_eq(dead_len(), 0);
    pool_stop(&p);
}
END_TEST

/* A receiver failing 30% of requests with 503 and Retry-After: every
 * notification is delivered in the end with its own webhook-id, and
 * the dead-letter stream holds exactly the 3 it rejected with 400. */
START_TEST(test_webhook_failing_receiver_retries_rejects_dead)
{
    static const char *const logs[] = { "recv.log", NULL };
    static const char *const args[] = { "--fail-pct", "30", NULL };
    static const int reject[] = { 7, 21, 33 };
    struct pool p;
    pid_t rp;
    redisReply *r;
    size_t i;

    webhook_env(receiver_start("recv.log", 0, args, &rp), NULL);
    webhook_pool(&p, 12);
    add_notes(0, 40, reject, 3);
    SL_TEST_ASSERT_EVENTUALLY(90000, all_delivered(logs, 0, 40, reject, 3) && dead_len() == 3 &&
                                     group_backlog("notifications", "webhook") == 0);
    assert_signed("recv.log");
    r = sl_test_cmd(rc, "XRANGE notifications:dead - +");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        size_t j;
        int rejected = 0, is_reject = 0;

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (strcmp(f->element[j]->str, "error") == 0)
                rejected = strcmp(f->element[j + 1]->str, "webhook_rejected: 400") == 0;
            if (strcmp(f->element[j]->str, "data") == 0)
                is_reject = strstr(f->element[j + 1]->str, "\"reject\":true") != NULL;
        }
        ck_assert_msg(rejected && is_reject, "dead letter %zu is not a rejected one", i);
    }
    freeReplyObject(r);
    pool_stop(&p);
}
END_TEST

/* Returns the resident set of pid in KiB (VmRSS), -1 when unknown. */
static long rss_kib(pid_t pid)
{
    char path[64], *text, *at;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if ((text = sl_test_read_file(path)) == NULL)
        return -1;
    if ((at = strstr(text, "VmRSS:")) != NULL)
        kib = atol(at + 6);
    free(text);
    return kib;
}

/* Every failed delivery frees its connection. A receiver that always
 * answers 503 (and keeps its connections alive, as HTTP/1.1 servers do):
 * with max_deliveries 1 each notification is one failed delivery and one
 * dead letter. The worker's memory after 6,000 of them is within 2 MiB of
 * what it was after 1,000 (measured: +36 KiB over 2,500). Before each
 * request asked for `Connection: close`, libevent never freed a
 * connection that the receiver kept open: +3,556 KiB over 2,500, about
 * 7 MiB over these 5,000. Memory says nothing under AddressSanitizer (its
 * quarantine holds freed memory) or valgrind, which report such a leak
 * themselves: the check is skipped there. */
START_TEST(test_webhook_failed_deliveries_free_their_connections)
{
    static const char *const args[] = { "--fail-pct", "100", NULL };
    struct pool p;
    pid_t rp, wp;
    long before = -1, after;
    int i;

    webhook_env(receiver_start("recv.log", 0, args, &rp), NULL);
    webhook_pool(&p, 1);
    wp = child_pid(&p, "webhook:0");
    ck_assert_int_gt(wp, 0);
    if (sl_test_instrumented(wp)) {
        fprintf(stderr, "webhook: connection memory check skipped under a memory checker\n");
        pool_stop(&p);
        return;
    }
    for (i = 0; i < 6; i++) {
        add_notes(i * 1000, 1000, NULL, 0);
        SL_TEST_ASSERT_EVENTUALLY(60000, dead_len() == (i + 1) * 1000LL);
        if (i == 0)
            before = rss_kib(wp);
    }
    after = rss_kib(wp);
    fprintf(stderr, "webhook: RSS after 1000 failed deliveries %ld KiB, after 6000 %ld KiB\n",
            before, after);
    ck_assert_int_gt(before, 0);
    ck_assert_msg(after - before < 2048, "the worker grew %ld KiB over 5000 failed deliveries",
                  after - before);
    ck_assert_int_eq(group_backlog("notifications", "webhook"), 0);
    pool_stop(&p);
}
END_TEST

/* A receiver that hangs past the request timeout, killed and replaced on
 * the same port by one that answers: every notification is delivered in
 * the end, none is lost or dead, and each one's attempts carry the same
 * webhook-id (the needle of `delivered`). */
START_TEST(test_webhook_hanging_then_restarted_receiver)
{
    static const char *const logs[] = { "recv2.log", NULL };
    static const char *const hang[] = { "--hang", NULL };
    struct pool p;
    pid_t rp, rp2;
    int port, status, i;
    char path[600];

    port = receiver_start("recv1.log", 0, hang, &rp);
    webhook_env(port, "500");
    webhook_pool(&p, 12);
    add_notes(0, 10, NULL, 0);
    snprintf(path, sizeof(path), "%s/recv1.log", tmp);
    SL_TEST_ASSERT_EVENTUALLY(20000, file_count(path, "event=delivery ") >= 10);
    sl_test_kill(rp, SIGKILL);
    ck_assert(sl_test_wait_exit(rp, 5000, &status));
    untrack(rp);
    ck_assert_int_eq(receiver_start("recv2.log", port, NULL, &rp2), port);
    SL_TEST_ASSERT_EVENTUALLY(60000, all_delivered(logs, 0, 10, NULL, 0) &&
                                     group_backlog("notifications", "webhook") == 0);
    assert_signed("recv1.log");
    assert_signed("recv2.log");
    for (i = 0; i < 10; i++)
        ck_assert_msg(delivered("recv1.log", i, 0), "ntf-%d was never sent to the hanging one", i);
    ck_assert_int_eq(dead_len(), 0);
    pool_stop(&p);
}
END_TEST

/* Makes, with the openssl command, a CA (<tmp>/ca.pem), a server
 * certificate it signed for 127.0.0.1 and localhost (<tmp>/srv.pem,
 * key <tmp>/srv.key) and another CA that signed nothing (<tmp>/other.pem). */
static void make_certs(void)
{
    char cmd[4096];
    int rv;

    snprintf(cmd, sizeof(cmd),
             "cd '%s' && exec >openssl.log 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' >ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout other.key -out other.pem -days 2 -subj /CN=sluice-other-ca && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout srv.key -out srv.csr -subj /CN=localhost && "
             "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out srv.pem -days 2 -extfile ext.cnf",
             tmp);
    rv = system(cmd);
    ck_assert_msg(rv == 0, "openssl failed (%d); see %s/openssl.log", rv, tmp);
}

/* Starts the receiver in TLS mode with <tmp>/srv.pem and points the
 * worker at https://127.0.0.1:<port>/hooks/orders, trusting <tmp>/<ca>. */
static void https_env(const char *ca, pid_t *rp)
{
    static char cert[600], key[600];
    const char *args[] = { "--tls-cert", cert, "--tls-key", key, NULL };
    char url[100], cafile[600];
    int port;

    snprintf(cert, sizeof(cert), "%s/srv.pem", tmp);
    snprintf(key, sizeof(key), "%s/srv.key", tmp);
    port = receiver_start("recv.log", 0, args, rp);
    webhook_env(port, NULL);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/hooks/orders", port);
    setenv("SLUICE_WEBHOOK_URL", url, 1);
    snprintf(cafile, sizeof(cafile), "%s/%s", tmp, ca);
    setenv("SLUICE_WEBHOOK_CA_FILE", cafile, 1);
}

/* https:// with SLUICE_WEBHOOK_CA_FILE naming the CA that signed the
 * receiver's certificate (for 127.0.0.1): every notification delivered
 * over TLS, its signature verified, nothing dead. */
START_TEST(test_webhook_https_trusted_ca_delivers)
{
    static const char *const logs[] = { "recv.log", NULL };
    struct pool p;
    pid_t rp;

    make_certs();
    https_env("ca.pem", &rp);
    webhook_pool(&p, 12);
    add_notes(0, 10, NULL, 0);
    SL_TEST_ASSERT_EVENTUALLY(30000, all_delivered(logs, 0, 10, NULL, 0) &&
                                     group_backlog("notifications", "webhook") == 0);
    assert_signed("recv.log");
    ck_assert_int_eq(dead_len(), 0);
    pool_stop(&p);
    unsetenv("SLUICE_WEBHOOK_CA_FILE");
}
END_TEST

/* https:// trusting another CA: the handshake fails, nothing reaches the
 * receiver, the notification is retried (attempted again, still
 * pending, not dead) and the log names the verification failure. */
START_TEST(test_webhook_https_wrong_ca_retries)
{
    struct pool p;
    pid_t rp;
    char path[600];

    make_certs();
    https_env("other.pem", &rp);
    webhook_pool(&p, 12);
    add_notes(0, 1, NULL, 0);
    SL_TEST_ASSERT_EVENTUALLY(30000, file_count(p.log, "certificate verification failed") >= 2);
    ck_assert_msg(file_count(p.log, "unable to get local issuer certificate") >= 1,
                  "the log does not say why the certificate was refused; see %s", p.log);
    snprintf(path, sizeof(path), "%s/recv.log", tmp);
    ck_assert_int_eq(file_count(path, "event=delivery "), 0);
    ck_assert_int_eq(dead_len(), 0);
    ck_assert_int_eq(group_backlog("notifications", "webhook"), 1);
    pool_stop(&p);
    unsetenv("SLUICE_WEBHOOK_CA_FILE");
}
END_TEST

/* Starts user, order and payment workers (one process each), plus the
 * webhook worker listed explicitly when `webhook`, logging to
 * <tmp>/flow.log, and waits for `running` children (the pool adds the
 * webhook worker by itself when a URL is set and none is listed). */
static void flow_pool(struct pool *p, int webhook, int running)
{
    struct sl_test_config c = { srv.url, NULL, NULL, NULL, NULL, NULL };
    int rv;

    c.workers = webhook ?
        "{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"u\", \"processes\": 1},"
        "{\"handler\": \"order\", \"stream\": \"orders\", \"group\": \"o\", \"processes\": 1},"
        "{\"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"p\", \"processes\": 1},"
        "{\"handler\": \"webhook\", \"stream\": \"notifications\", \"group\": \"webhook\","
        " \"processes\": 1, \"concurrency\": 64, \"max_deliveries\": 12}" :
        "{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"u\", \"processes\": 1},"
        "{\"handler\": \"order\", \"stream\": \"orders\", \"group\": \"o\", \"processes\": 1},"
        "{\"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"p\", \"processes\": 1}";
    memset(p, 0, sizeof(*p));
    snprintf(p->cfg, sizeof(p->cfg), "%s/flow.json", tmp);
    ck_assert_int_eq(sl_test_config_write(p->cfg, &c), 0);
    snprintf(p->log, sizeof(p->log), "%s/flow.log", tmp);
    p->pid = sl_test_pool_spawn(p->cfg, p->log);
    ck_assert_int_gt(p->pid, 0);
    track(p->pid);
    rv = sl_test_pool_wait_running(p->pid, p->log, running, 10000);
    ck_assert_msg(rv == 0, "the workers are not running (%d, want %d); see %s", rv, running, p->log);
}

/* Returns 1 when stream has a consumer group named group. */
static int group_exists(const char *stream, const char *group)
{
    redisReply *r = sl_test_cmd(rc, "XINFO GROUPS %s", stream);
    int found = 0;
    size_t i, j;

    if (r->type == REDIS_REPLY_ARRAY)
        for (i = 0; i < r->elements; i++)
            for (j = 0; j + 1 < r->element[i]->elements; j += 2)
                if (strcmp(r->element[i]->element[j]->str, "name") == 0 &&
                    strcmp(r->element[i]->element[j + 1]->str, group) == 0)
                    found = 1;
    freeReplyObject(r);
    return found;
}

/* Returns the length of stream (0 when it does not exist). */
static long long stream_len(const char *stream)
{
    redisReply *r = sl_test_cmd(rc, "XLEN %s", stream);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Returns the status field of order:<id>, "" when none. New: free(). */
static char *order_status(const char *id)
{
    char *s = sl_test_str(rc, "HGET order:%s status", id);

    return s != NULL ? s : strdup("");
}

/* Returns 1 when o1 is paid and o2 failed. */
static int both_final(void)
{
    char *a = order_status("o1"), *b = order_status("o2");
    int ok = strcmp(a, "paid") == 0 && strcmp(b, "failed") == 0;

    free(a);
    free(b);
    return ok;
}

/* Returns 1 when the user worker has created user:u1. */
static int user_exists(void)
{
    redisReply *r = sl_test_cmd(rc, "EXISTS user:u1");
    int yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;

    freeReplyObject(r);
    return yes;
}

/* Adds a user with 1000 cents and, once the user worker has created it,
 * two orders: o1 of 300 (paid) and o2 of 5000 (failed:
 * insufficient_funds); waits until both are final. The orders wait for
 * the user because the three streams are independent: a payment handled
 * before its user exists is declined as unknown_user, which is right,
 * but not what this test is about (it failed once that way). */
static void two_orders(void)
{
    freeReplyObject(sl_test_cmd(rc, "XADD users * type user.created data "
        "{\"user_id\":\"u1\",\"name\":\"Ada\",\"email\":\"ada@example.com\",\"balance_cents\":1000}"));
    SL_TEST_ASSERT_EVENTUALLY(30000, user_exists());
    freeReplyObject(sl_test_cmd(rc, "XADD orders * type order.created data "
        "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount_cents\":300,\"currency\":\"EUR\"}"));
    freeReplyObject(sl_test_cmd(rc, "XADD orders * type order.created data "
        "{\"order_id\":\"o2\",\"user_id\":\"u1\",\"amount_cents\":5000,\"currency\":\"EUR\"}"));
    SL_TEST_ASSERT_EVENTUALLY(30000, both_final());
}

/* With a webhook URL, the order worker's paid/failed step adds one
 * notification per final order, and the webhook worker delivers each,
 * signed, with the webhook-id <order_id>.<outcome>. */
START_TEST(test_webhook_order_flow_notifies)
{
    struct pool p;
    pid_t rp;
    char path[600];

    webhook_env(receiver_start("recv.log", 0, NULL, &rp), NULL);
    flow_pool(&p, 1, 4);
    two_orders();
    snprintf(path, sizeof(path), "%s/recv.log", tmp);
    SL_TEST_ASSERT_EVENTUALLY(20000, file_count(path, "webhook_id=o1.paid ") >= 1 &&
                                     file_count(path, "webhook_id=o2.failed ") >= 1);
    assert_signed("recv.log");
    ck_assert_int_eq(file_count(path, "event=delivery "), 2);
    ck_assert_int_eq(group_backlog("notifications", "webhook"), 0);
    /* listed explicitly: its settings win, no second webhook worker */
    ck_assert_int_eq(file_count(p.log, " event=running "), 4);
    ck_assert(!group_exists("notifications", "webhook-workers"));
    pool_stop(&p);
}
END_TEST

/* With a webhook URL and no webhook worker in the configuration, the
 * pool starts one by itself (group webhook-workers, created at start,
 * before any order), it delivers each final order's notification,
 * signed, and the default trimming ("acked") cuts notifications like
 * any other stream once they are delivered. */
START_TEST(test_webhook_url_starts_worker_and_group)
{
    struct pool p;
    pid_t rp;
    char path[600];

    webhook_env(receiver_start("recv.log", 0, NULL, &rp), NULL);
    flow_pool(&p, 0, 4);
    ck_assert_msg(group_exists("notifications", "webhook-workers"),
                  "no group webhook-workers on notifications at start; see %s", p.log);
    ck_assert_int_eq(file_count(p.log, "event=running stream=notifications group=webhook-workers"), 1);
    two_orders();
    snprintf(path, sizeof(path), "%s/recv.log", tmp);
    SL_TEST_ASSERT_EVENTUALLY(20000, file_count(path, "webhook_id=o1.paid ") >= 1 &&
                                     file_count(path, "webhook_id=o2.failed ") >= 1);
    assert_signed("recv.log");
    SL_TEST_ASSERT_EVENTUALLY(20000, group_backlog("notifications", "webhook-workers") == 0 &&
                                     stream_len("notifications") == 0);
    ck_assert_int_eq(dead_len(), 0);
    pool_stop(&p);
}
END_TEST

/* Without a webhook URL nothing is written to notifications and no
 * webhook worker is started. */
START_TEST(test_webhook_no_url_no_notifications)
{
    struct pool p;
    redisReply *r;

    unsetenv("SLUICE_WEBHOOK_URL");
    flow_pool(&p, 0, 3);
    two_orders();
    r = sl_test_cmd(rc, "EXISTS notifications");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    /* and no webhook worker was started */
    ck_assert_int_eq(file_count(p.log, " event=running "), 3);
    ck_assert_int_eq(file_count(p.log, "stream=notifications"), 0);
    pool_stop(&p);
}
END_TEST

Suite *webhook_suite(void)
{
    Suite *s = suite_create("webhook");
    TCase *tc;

    tc = ops_server_case(s, "deliveries", 180);
    tcase_add_test(tc, test_webhook_delivers_200_with_64_in_flight);
    tcase_add_test(tc, test_webhook_failing_receiver_retries_rejects_dead);
    tcase_add_test(tc, test_webhook_hanging_then_restarted_receiver);
    tcase_add_test(tc, test_webhook_failed_deliveries_free_their_connections);
    tc = ops_server_case(s, "https", 90);
    tcase_add_test(tc, test_webhook_https_trusted_ca_delivers);
    tcase_add_test(tc, test_webhook_https_wrong_ca_retries);
    tc = ops_server_case(s, "orders", 90);
    tcase_add_test(tc, test_webhook_order_flow_notifies);
    tcase_add_test(tc, test_webhook_url_starts_worker_and_group);
    tcase_add_test(tc, test_webhook_no_url_no_notifications);
    return s;
}
