/* check_conn.c -- the connection module seen from outside: TLS to a
 * server that listens on nothing else, an ACL user made from `sluice acl`
 * with the "default" user off, and the refusals (a wrong CA, an expired
 * client certificate, a wrong password) each named plainly and without a
 * secret; and a supervisor that goes on restarting children and
 * answering /healthz while Redis is frozen.
 *
 * The certificates are made here by `openssl`: a CA, a server
 * certificate for 127.0.0.1, a client certificate, an expired one (valid
 * for no time at all), and a second CA that signed none of them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <check.h>
#include <hiredis.h>
#include <jansson.h>

#include "harness.h"
#include "internal.h"
#include "ops.h"
#include "sut.h"
#include "config.h"

#define ADMIN_PW  "admin-pw-7f3a"     /* the test's own all-powerful user */
#define SLUICE_PW "s3cr@t%pw"         /* the ACL user's; '@' and '%' to test decoding */
#define SLUICE_PW_URL "s3cr%40t%25pw" /* the same, percent-encoded */

static char certdir[256];          /* certificates and the server's directory */
static int tls_port;               /* the server's only port */
static pid_t tls_pid;              /* the server */
static time_t expired_made;        /* when expired.crt was made */

/* ---------------------------------------------------------------------
 * The server and the test's own connection to it
 * ------------------------------------------------------------------ */

/* Makes the certificates with openssl in certdir. EC keys: quick. */
static void make_certs(void)
{
    static const char script[] =
        "set -e; cd \"$0\"\n"
        "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
        "openssl req -x509 $key -keyout ca.key -out ca.crt -days 2 -subj /CN=sluice-test-ca\n"
        "openssl req -x509 $key -keyout other.key -out other.crt -days 2 -subj /CN=other-ca\n"
        "openssl req $key -keyout server.key -out server.csr -subj /CN=redis\n"
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext\n"
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "  -out server.crt -days 2 -extfile san.ext\n"
        "openssl req $key -keyout client.key -out client.csr -subj /CN=sluice\n"
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "  -out client.crt -days 2\n"
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "  -out expired.crt -days 0\n";
    const char *const argv[] = { "/bin/sh", "-c", script, certdir, NULL };
    struct out o;

    o = run(argv);
    ck_assert_msg(o.code == 0, "openssl failed: %s", o.err);
    out_free(&o);
    expired_made = time(NULL);
}

/* A configuration (new: sl__config_free) for url with the test's CA and
 * client certificate (cert: "client" or "expired"; ca: "ca" or
 * "other"). */
static struct sl_config *tls_cfg(const char *url, const char *ca, const char *cert)
{
    struct sl_config *cfg = sl__config_default();
    char path[400], err[256];

    ck_assert_ptr_nonnull(cfg);
    ck_assert_msg(sl__config_set_url(cfg, url, "test", err, sizeof(err)) == 0, "%s", err);
    snprintf(path, sizeof(path), "%s/%s.crt", certdir, ca);
    cfg->tls.ca_file = strdup(path);
    snprintf(path, sizeof(path), "%s/%s.crt", certdir, cert);
    cfg->tls.cert_file = strdup(path);
    snprintf(path, sizeof(path), "%s/client.key", certdir);
    cfg->tls.key_file = strdup(path);
    cfg->connect_timeout_ms = 2000;
    cfg->command_timeout_ms = 5000;
    return cfg;
}

/* Connects as the admin user through TLS. Returns the connection, or
 * NULL with the reason in err. */
static struct sl_sync *admin_connect(char *err, size_t errlen)
{
    char url[128];
    struct sl_config *cfg;
    struct sl_sync *s;

    snprintf(url, sizeof(url), "rediss://admin:" ADMIN_PW "@127.0.0.1:%d", tls_port);
    cfg = tls_cfg(url, "ca", "client");
    s = sl__redis_connect(cfg, err, errlen);
    sl__config_free(cfg);
    return s;
}

/* Runs one command on s and returns the reply (new), failing the test on
 * a broken connection. */
static redisReply *admin_cmd(struct sl_sync *s, int argc, const char **argv)
{
    redisReply *r = sl__sync_argv(s, argc, argv, NULL);

    ck_assert_msg(r != NULL, "admin connection: %s", s->errstr);
    return r;
}

/* Unchecked fixture: the certificates, then redis-server with only a TLS
 * port, client certificates required, "default" off and an admin user
 * for the test itself. */
static void tls_server_up(void)
{
    char port[16], dir[300], cert[300], key[300], ca[300], log[300], acl[300], err[256];
    struct sl_sync *s = NULL;
    long long deadline;
    char *d = sl_test_tmpdir();

    ck_assert_ptr_nonnull(d);
    snprintf(certdir, sizeof(certdir), "%s", d);
    free(d);
    tmp = certdir;                 /* run() writes its captures there */
    make_certs();
    tls_port = closed_port();
    snprintf(port, sizeof(port), "%d", tls_port);
    snprintf(dir, sizeof(dir), "%s", certdir);
    snprintf(cert, sizeof(cert), "%s/server.crt", certdir);
    snprintf(key, sizeof(key), "%s/server.key", certdir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certdir);
    snprintf(log, sizeof(log), "%s/redis.out", certdir);
    snprintf(acl, sizeof(acl), "%s/users.acl", certdir);
    ck_assert_int_eq(sl_test_write_file(acl, "user default off\n"
                                        "user admin on >" ADMIN_PW " ~* &* +@all\n"), 0);
    {
        const char *const argv[] = {
            "redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", dir,
            "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
            "--tls-auth-clients", "yes",
            "--aclfile", acl,
            NULL
        };
        tls_pid = sl_test_spawn(argv, log);
    }
    ck_assert_int_gt(tls_pid, 0);
    deadline = sl_test_deadline(10000);
    while ((s = admin_connect(err, sizeof(err))) == NULL) {
        ck_assert_msg(sl_test_pid_alive(tls_pid), "redis-server exited; see %s", log);
        ck_assert_msg(sl_test_tick(deadline), "TLS server not ready: %s", err);
    }
    sl__sync_free(s);
    tmp = NULL;
}

/* Stops the server and removes the certificates. */
static void tls_server_down(void)
{
    if (tls_pid > 0) {
        sl_test_kill(tls_pid, SIGTERM);
        if (!sl_test_wait_exit(tls_pid, 5000, NULL)) {
            sl_test_kill(tls_pid, SIGKILL);
            sl_test_wait_exit(tls_pid, 5000, NULL);
        }
    }
    tls_pid = 0;
    sl_test_rmtree(certdir);
}

/* Checked fixture: a scratch directory (ops.c's `tmp`). */
static void tls_test_up(void)
{
    memset(tracked, 0, sizeof(tracked));
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    tmp = sl_test_tmpdir();
    ck_assert_ptr_nonnull(tmp);
}

/* Kills what the test left running and removes its files. */
static void tls_test_down(void)
{
    kill_tracked();
    if (tmp != NULL)
        sl_test_rmtree(tmp);
    free(tmp);
    tmp = NULL;
}

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------ */

/* Writes the configuration of the payment flow to <tmp>/<name>.json with
 * url, the given CA and certificate, and metrics on a free port. */
static const char *write_tls_config(char *buf, size_t len, const char *name, const char *url,
                                    const char *ca, const char *cert)
{
    char redis[1500];
    struct sl_test_config c;

    snprintf(redis, sizeof(redis),
             "\"connect_timeout_ms\": 2000, \"command_timeout_ms\": 5000, "
             "\"tls_ca_file\": \"%s/%s.crt\", \"tls_cert_file\": \"%s/%s.crt\", "
             "\"tls_key_file\": \"%s/client.key\"",
             certdir, ca, certdir, cert, certdir);
    memset(&c, 0, sizeof(c));
    c.url = url;
    c.redis = redis;
    c.defaults = "\"block_ms\": 200, \"heartbeat_ms\": 100, \"reclaim_idle_ms\": 2000, "
                 "\"reclaim_interval_ms\": 300, \"retry_backoff_ms\": [50, 400], "
                 "\"shutdown_timeout_ms\": 3000, \"max_deliveries\": 5";
    c.workers = "{\"handler\": \"user\", \"stream\": \"users\", \"group\": \"user-workers\"}, "
                "{\"handler\": \"order\", \"stream\": \"orders\", \"group\": \"order-workers\"}, "
                "{\"handler\": \"payment\", \"stream\": \"payments\", \"group\": \"payment-workers\"}";
    c.metrics_listen = "127.0.0.1:0";
    snprintf(buf, len, "%s/%s.json", tmp, name);
    ck_assert_int_eq(sl_test_config_write(buf, &c), 0);
    return buf;
}

/* The sluice user's URL, with the password percent-encoded. */
static const char *sluice_url(char *buf, size_t len, const char *pw_in_url)
{
    snprintf(buf, len, "rediss://sluice:%s@127.0.0.1:%d", pw_in_url, tls_port);
    return buf;
}

/* Runs `sluice acl -c cfg`, then applies its ACL SETUSER line through
 * the admin connection, word by word, and gives the user its password. */
static void make_user_from_acl(struct sl_sync *s, const char *cfg)
{
    const char *const argv[] = { sl_test_bin(), "acl", "-c", cfg, NULL };
    struct out o = run(argv);
    const char *words[300];
    char *line, *save = NULL, *w;
    int n = 0;
    redisReply *r;

    ck_assert_msg(o.code == 0, "sluice acl: %s", o.err);
    line = strstr(o.out, "\nACL SETUSER ");
    ck_assert_msg(line != NULL, "no ACL SETUSER line in: %s", o.out);
    line++;
    line[strcspn(line, "\n")] = '\0';
    ck_assert_ptr_null(strstr(line, SLUICE_PW));
    for (w = strtok_r(line, " ", &save); w != NULL && n < 300; w = strtok_r(NULL, " ", &save))
        words[n++] = w;
    r = admin_cmd(s, n, words);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "ACL SETUSER: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    {
        const char *pw[] = { "ACL", "SETUSER", "sluice", ">" SLUICE_PW };
        r = admin_cmd(s, 4, pw);
        ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    out_free(&o);
}

/* Returns HGET key field through s (new), or NULL. */
static char *admin_hget(struct sl_sync *s, const char *key, const char *field)
{
    const char *argv[] = { "HGET", key, field };
    redisReply *r = admin_cmd(s, 3, argv);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;

    freeReplyObject(r);
    return v;
}

/* Tells whether HGET key field is want. */
static int hash_is(struct sl_sync *s, const char *key, const char *field, const char *want)
{
    char *v = admin_hget(s, key, field);
    int ok = v != NULL && strcmp(v, want) == 0;

    free(v);
    return ok;
}

/* Tells whether key exists. */
static int key_exists(struct sl_sync *s, const char *key)
{
    const char *argv[] = { "EXISTS", key };
    redisReply *r = admin_cmd(s, 2, argv);
    int yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;

    freeReplyObject(r);
    return yes;
}

/* Runs one admin command of sluice with cfg and asserts it worked. */
static void assert_admin_ok(const char *cfg, const char *const *args)
{
    const char *argv[16];
    struct out o;
    int n = 0, i;

    argv[n++] = sl_test_bin();
    for (i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n++] = "-c";
    argv[n++] = cfg;
    argv[n] = NULL;
    o = run(argv);
    ck_assert_msg(o.code == 0, "sluice %s: exit %d: %s", args[0], o.code, o.err);
    ck_assert_ptr_null(strstr(o.err, "NOPERM"));
    ck_assert_ptr_null(strstr(o.out, SLUICE_PW));
    ck_assert_ptr_null(strstr(o.err, SLUICE_PW));
    out_free(&o);
}

/* Asserts that `sluice stats -c cfg` fails with `why` in its message and
 * no secret. */
static void assert_refused(const char *cfg, const char *why)
{
    const char *const argv[] = { sl_test_bin(), "stats", "-c", cfg, NULL };
    struct out o = run(argv);

    ck_assert_msg(o.code == 1, "sluice stats: exit %d: %s", o.code, o.err);
    ck_assert_msg(strstr(o.err, why) != NULL, "\"%s\" not in: %s", why, o.err);
    ck_assert_ptr_null(strstr(o.err, SLUICE_PW));
    ck_assert_ptr_null(strstr(o.err, SLUICE_PW_URL));
    ck_assert_ptr_null(strstr(o.err, "wrong-pw-9"));
    ck_assert_ptr_null(strstr(o.err, "PRIVATE KEY"));
    out_free(&o);
}

/* ---------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------ */

/* The whole pool, the payment flow, the admin commands and /metrics,
 * over TLS only, as the ACL user `sluice acl` describes, with "default"
 * off: nothing is refused (the ACL log stays empty). */
START_TEST(test_conn_tls_acl_user_runs_everything)
{
    char cfg[600], url[200], log[600], err[256];
    struct sl_sync *s = admin_connect(err, sizeof(err));
    const char *reset[] = { "ACL", "LOG", "RESET" };
    const char *acllog[] = { "ACL", "LOG" };
    const char *flush[] = { "FLUSHALL" };
    pid_t pool;
    int port, rv;
    redisReply *r;

    ck_assert_msg(s != NULL, "%s", err);
    freeReplyObject(admin_cmd(s, 1, flush));
    write_tls_config(cfg, sizeof(cfg), "pool", sluice_url(url, sizeof(url), SLUICE_PW_URL),
                     "ca", "client");
    make_user_from_acl(s, cfg);
    freeReplyObject(admin_cmd(s, 3, reset));

    snprintf(log, sizeof(log), "%s/pool.log", tmp);
    pool = sl_test_pool_spawn(cfg, log);
    ck_assert_int_gt(pool, 0);
    track(pool);
    rv = sl_test_pool_wait_running(pool, log, 3, 15000);
    ck_assert_msg(rv == 0, "pool not running (%d); see %s", rv, log);

    {
        const char *u[] = { "enqueue", "users", "user.created",
                            "{\"user_id\":\"u-1\",\"name\":\"Ada\",\"email\":\"ada@example.com\","
                            "\"balance_cents\":1000}", NULL };
        const char *o[] = { "enqueue", "orders", "order.created",
                            "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount_cents\":300,"
                            "\"currency\":\"USD\"}", NULL };
        assert_admin_ok(cfg, u);
        SL_TEST_ASSERT_EVENTUALLY(10000, hash_is(s, "user:u-1", "balance_cents", "1000"));
        assert_admin_ok(cfg, o);
        SL_TEST_ASSERT_EVENTUALLY(10000, hash_is(s, "order:o-1", "status", "paid"));
        SL_TEST_ASSERT_EVENTUALLY(10000, hash_is(s, "user:u-1", "balance_cents", "700"));
        ck_assert(hash_is(s, "payment:o-1", "status", "succeeded"));
    }
    {
        const char *st[] = { "stats", "--json", NULL };
        const char *wk[] = { "workers", NULL };
        const char *dl[] = { "dlq", "list", "orders", NULL };
        const char *pe[] = { "pending", "orders", NULL };
        assert_admin_ok(cfg, st);
        assert_admin_ok(cfg, wk);
        assert_admin_ok(cfg, dl);
        assert_admin_ok(cfg, pe);
    }
    port = (int)file_last_number(log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(port, 0);
    {
        struct sl_test_http h = sl_test_http_get(port, "/metrics");
        ck_assert_msg(h.status == 200, "/metrics answered %d", h.status);
        ck_assert_ptr_nonnull(strstr(h.body, "stream=\"payments\""));
        sl_test_http_free(&h);
        h = sl_test_http_get(port, "/healthz");
        ck_assert_msg(h.status == 200, "/healthz answered %d: %s", h.status, h.body);
        sl_test_http_free(&h);
    }

    /* The housekeeping ran too (a rate sample, every 5 s), and the
     * heartbeats are listed in their registry. */
    SL_TEST_ASSERT_EVENTUALLY(15000, key_exists(s, "sluice:rate:payments:payment-workers"));
    ck_assert(key_exists(s, "sluice:workers"));

    /* Nothing was refused by the ACL, anywhere. */
    r = admin_cmd(s, 2, acllog);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    if (r->elements > 0) {
        const redisReply *e = r->element[0];
        size_t i;
        for (i = 0; i + 1 < e->elements; i += 2)
            if (e->element[i + 1]->type == REDIS_REPLY_STRING)
                fprintf(stderr, "ACL LOG: %s=%s\n", e->element[i]->str, e->element[i + 1]->str);
    }
    ck_assert_msg(r->elements == 0, "%zu ACL refusals (see above)", r->elements);
    freeReplyObject(r);
    ck_assert_int_eq(file_count(log, "NOPERM"), 0);
    ck_assert_int_eq(file_count(log, SLUICE_PW), 0);

    sl_test_kill(pool, SIGTERM);
    ck_assert(sl_test_wait_exit(pool, 10000, &rv));
    untrack(pool);
    ck_assert_msg(WIFEXITED(rv) && WEXITSTATUS(rv) == 0, "pool status %d", rv);
    sl__sync_free(s);
}
END_TEST

/* A wrong CA, an expired client certificate and a wrong password: each
 * refused with a message naming the cause, and no secret in it. */
START_TEST(test_conn_tls_refusals_are_named)
{
    char cfg[600], url[200], err[256];
    struct sl_sync *s = admin_connect(err, sizeof(err));
    const char *pw[] = { "ACL", "SETUSER", "sluice", "on", ">" SLUICE_PW, "+ping",
                         "+xinfo|stream", "+xinfo|groups", "~*" };
    redisReply *r;

    ck_assert_msg(s != NULL, "%s", err);
    r = admin_cmd(s, 9, pw);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    sl__sync_free(s);

    write_tls_config(cfg, sizeof(cfg), "wrongca", sluice_url(url, sizeof(url), SLUICE_PW_URL),
                     "other", "client");
    assert_refused(cfg, "TLS: server certificate verify failed: ");

    /* expired.crt was valid until the second it was made. */
    SL_TEST_ASSERT_EVENTUALLY(5000, time(NULL) > expired_made + 1);
    write_tls_config(cfg, sizeof(cfg), "expired", sluice_url(url, sizeof(url), SLUICE_PW_URL),
                     "ca", "expired");
    assert_refused(cfg, "certificate expired");

    write_tls_config(cfg, sizeof(cfg), "wrongpw", sluice_url(url, sizeof(url), "wrong-pw-9"),
                     "ca", "client");
    assert_refused(cfg, "authentication failed: WRONGPASS");
}
END_TEST

/* ---------------------------------------------------------------------
 * The supervisor never blocks on Redis
 * ------------------------------------------------------------------------ */

/* Tells whether GET /healthz on port answers status. */
static int healthz_is_port(int port, int status)
{
    struct sl_test_http h = sl_test_http_get(port, "/healthz");
    int ok = h.status == status;

    sl_test_http_free(&h);
    return ok;
}

/* Tells whether GET path on port answers status. */
static int get_is_port(int port, const char *path, int status)
{
    struct sl_test_http h = sl_test_http_get(port, path);
    int ok = h.status == status;

    sl_test_http_free(&h);
    return ok;
}

/* Redis frozen (SIGSTOP) for 8 s under a pool with the default timeouts
 * (command_timeout_ms 5000): a SIGKILLed child is back within 2 s, and
 * every /healthz meanwhile answers within 1 s, with 503 and the reason,
 * and so does every dashboard page (metrics.dashboard on).
 * The restart time is printed for the record. */
START_TEST(test_conn_frozen_redis_supervisor_answers)
{
    struct sl_test_config c;
    char cfg[600], log[600], workers[200];
    long long t0, back = -1, worst = 0, t;
    pid_t sup, kid, again = 0;
    int port, rv, n503 = 0, redis_named = 0, turn = 0;

    snprintf(workers, sizeof(workers),
             "{\"handler\": \"noop\", \"stream\": \"fz\", \"group\": \"g\", \"processes\": 2}");
    memset(&c, 0, sizeof(c));
    c.url = srv.url;
    c.workers = workers;
    c.metrics_listen = "127.0.0.1:0";
    snprintf(cfg, sizeof(cfg), "%s/pool.json", tmp);
    ck_assert_int_eq(sl_test_config_write(cfg, &c), 0);
    {
        /* The dashboard's pages on the listener too: their reads go on
         * the supervisor's connection, and must not block it either. */
        char *text = sl_test_read_file(cfg), *at;
        const char *listen = "\"listen\": \"127.0.0.1:0\"}";
        FILE *f;

        ck_assert_ptr_nonnull(text);
        at = strstr(text, listen);
        ck_assert_ptr_nonnull(at);
        f = fopen(cfg, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%.*s\"listen\": \"127.0.0.1:0\", \"dashboard\": true}%s", (int)(at - text),
                text, at + strlen(listen));
        fclose(f);
        free(text);
    }
    snprintf(log, sizeof(log), "%s/pool.log", tmp);
    sup = sl_test_pool_spawn(cfg, log);
    ck_assert_int_gt(sup, 0);
    track(sup);
    rv = sl_test_pool_wait_running(sup, log, 2, 10000);
    ck_assert_msg(rv == 0, "pool not running (%d); see %s", rv, log);
    port = (int)file_last_number(log, "event=metrics_listening addr=127.0.0.1:");
    ck_assert_int_gt(port, 0);
    SL_TEST_ASSERT_EVENTUALLY(5000, healthz_is_port(port, 200));
    SL_TEST_ASSERT_EVENTUALLY(5000, get_is_port(port, "/api/overview", 200));
    SL_TEST_ASSERT_EVENTUALLY(5000, get_is_port(port, "/api/workers", 200));
    {
        char needle[512];
        snprintf(needle, sizeof(needle), "event=child_started consumer=%s:noop:0 child=", host);
        kid = (pid_t)file_last_number(log, needle);
        ck_assert_int_gt(kid, 0);

        ck_assert_int_eq(sl_test_redis_sigstop(&srv), 0);
        t0 = sl_test_now_ms();
        sl_test_kill(kid, SIGKILL);
        while ((t = sl_test_now_ms()) - t0 < 8000) {
            struct sl_test_http h;
            long long q0 = sl_test_now_ms(), took;

            if (back < 0) {
                again = (pid_t)file_last_number(log, needle);
                if (again > 0 && again != kid)
                    back = sl_test_now_ms() - t0;
            }
            /* Every other time a dashboard page first: its read of Redis
             * starts, and hangs, on the supervisor's connection. */
            if ((++turn & 1) == 1) {
                h = sl_test_http_get(port, "/api/overview");
                took = sl_test_now_ms() - q0;
                if (took > worst)
                    worst = took;
                sl_test_http_free(&h);
                if (back < 0) {
                    again = (pid_t)file_last_number(log, needle);
                    if (again > 0 && again != kid)
                        back = sl_test_now_ms() - t0;
                }
                q0 = sl_test_now_ms();
            }
            h = sl_test_http_get(port, "/healthz");
            took = sl_test_now_ms() - q0;
            if (took > worst)
                worst = took;
            if (h.status == 503) {
                n503++;
                ck_assert_msg(h.body != NULL && h.body[0] != '\0', "503 without a reason");
                if (strstr(h.body, "redis") != NULL)
                    redis_named = 1;
            }
            sl_test_http_free(&h);
            usleep(100 * 1000);
        }
        ck_assert_int_eq(sl_test_redis_sigcont(&srv), 0);
    }
    fprintf(stderr, "frozen_redis: child back after %lld ms (-1: not within 8 s), "
            "slowest /healthz %lld ms, %d answers 503\n", back, worst, n503);
    ck_assert_msg(back >= 0 && back <= 2000 * sl_test_slow_factor(),
                  "the killed child came back after %lld ms (limit 2000)", back);
    ck_assert_msg(worst <= 1000 * sl_test_slow_factor(), "a /healthz took %lld ms (limit 1000)",
                  worst);
    ck_assert_int_gt(n503, 0);
    ck_assert_msg(redis_named, "no 503 named Redis as the reason");
    /* Redis back: healthy again, and so is the dashboard. */
    SL_TEST_ASSERT_EVENTUALLY(20000, healthz_is_port(port, 200));
    SL_TEST_ASSERT_EVENTUALLY(20000, get_is_port(port, "/api/overview", 200));
    sl_test_kill(sup, SIGTERM);
    ck_assert(sl_test_wait_exit(sup, 15000, &rv));
    untrack(sup);
}
END_TEST

Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("tls");

    tcase_add_unchecked_fixture(tc, tls_server_up, tls_server_down);
    tcase_add_checked_fixture(tc, tls_test_up, tls_test_down);
    tcase_set_timeout(tc, 60.0 * sl_test_slow_factor());
    tcase_add_test(tc, test_conn_tls_acl_user_runs_everything);
    tcase_add_test(tc, test_conn_tls_refusals_are_named);
    suite_add_tcase(s, tc);
    tc = ops_server_case(s, "freeze", 90);
    tcase_add_test(tc, test_conn_frozen_redis_supervisor_answers);
    return s;
}
