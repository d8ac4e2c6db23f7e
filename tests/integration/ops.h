/* ops.h -- what the operator-facing suites share (ops.c): check_admin.c,
 * check_metrics.c, check_http.c, check_secrets.c, check_limits.c,
 * check_tools.c and check_deploy_files.c, each a suite of its own. The
 * fixtures are per TCase (one redis-server) and per test (a clean
 * database, a scratch directory, the processes the test left running).
 */
#ifndef SL_TEST_OPS_H
#define SL_TEST_OPS_H

#include <stddef.h>
#include <sys/types.h>
#include <check.h>
#include <hiredis.h>
#include <jansson.h>
#include "harness.h"
#include "http.h"
#include "prom.h"

#define MAXTRACKED 16             /* processes a test may leave running */
#define MAXARGS 48                /* words of one command run by run_cmd() */

extern struct sl_test_redis srv;  /* the TCase's server (unchecked fixture) */
extern redisContext *rc;          /* this test's connection (checked fixture) */
extern char *tmp;                 /* this test's scratch directory */
extern char host[256];            /* gethostname(): the prefix of consumer names */
extern pid_t tracked[MAXTRACKED]; /* processes to kill in teardown */

/* What run_cmd() saw. */
struct out {
    int code;                     /* exit code; 128+N for signal N */
    char *out;                    /* standard output (new) */
    char *err;                    /* standard error (new) */
};

/* One `sluice run`. */
struct pool {
    pid_t pid;                    /* the supervisor */
    char cfg[600];                /* its configuration file */
    char log[600];                /* its stdout and stderr */
    int port;                     /* metrics port, 0 when disabled */
};

void track(pid_t pid);
void untrack(pid_t pid);
void kill_tracked(void);
void out_free(struct out *o);
struct out run_env(const char *const argv[], const char *const env[], const char *in,
                          int timeout_ms);
struct out run(const char *const argv[]);
int have(const char *prog);
int file_count(const char *path, const char *needle);
long long file_last_number(const char *path, const char *needle);
int closed_port(void);
const char *write_config(char *buf, size_t len, const char *name, const char *workers,
                                const char *extra, int metrics);
void pool_start(struct pool *p, const char *workers, const char *extra, int metrics,
                       int children);
void pool_stop(struct pool *p);
pid_t child_pid(const struct pool *p, const char *suffix);
long long group_backlog(const char *stream, const char *group);
size_t count_keys(const char *pattern);
json_t *parse_json(const char *text);
long long jint(const json_t *o, const char *key);
double jnum(const json_t *o, const char *key);
const char *jstr(const json_t *o, const char *key);
void server_up(void);
void server_down(void);
void test_up(void);
void test_down(void);
void assert_exposition(const char *text);
char *scrape(const struct pool *p);
double scrape_value(const struct pool *p, const char *name, const char *worker,
                           const char *stream, const char *group);
char *healthz(const struct pool *p, int *status);
int healthz_is(const struct pool *p, int status, const char *body);
const char *secrets_config(char *buf, size_t len, const char *url, const char *redis_extra,
                           const char *workers);
/* The stalled state of make_stalled(): its IDs, and the consumer,
 * deliveries and base idle (ms) of each of the five pending entries. */
struct stalled {
    const char *consumer;
    long long deliveries;
    long long idle;
};
extern const char *const sid[6];
extern const struct stalled stalled_want[5];
void make_stalled(void);
void assert_idle(int i, long long idle);
TCase *ops_server_case(Suite *s, const char *name, int timeout_s);

#endif /* SL_TEST_OPS_H */
