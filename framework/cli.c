/* cli.c -- sl_main(): the `sluice` command line (docs/configuration.md).
 *
 * Options may come before or after positional arguments. Every
 * subcommand finds its configuration file the same way (sl__config_find):
 * -c FILE, else $SLUICE_CONFIG, else ./config/sluice.json, else
 * /etc/sluice/sluice.json, else the built-in defaults. Only the two
 * built-in places may be missing: a file the user named must exist, so a
 * typo is an error rather than a silent fall back to other settings. The
 * Redis URL is then the file's, replaced by SLUICE_REDIS_URL, replaced by
 * --redis. Exit codes: 0 success, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <hiredis.h>
#include "internal.h"
#include "admin.h"

#define DEFAULT_CONFIG "config/sluice.json"
#define SYSTEM_CONFIG "/etc/sluice/sluice.json"

/* The places searched when neither -c nor SLUICE_CONFIG names a file:
 * the working directory first (a checkout), then the system location (a
 * package, the container image). */
static const char *const config_places[] = { DEFAULT_CONFIG, SYSTEM_CONFIG, NULL };

static const char usage_text[] =
"usage:\n"
"  sluice run     [-c FILE] [--redis URL] [--workers NAME[:N],...] [--metrics ADDR]\n"
"  sluice pending STREAM [GROUP] [--idle MS] [--count N] [--json]\n"
"  sluice stats   [--json] [--watch SECONDS]\n"
"  sluice workers [--json]\n"
"  sluice dlq     list|show ID|replay [ID|--all]|purge  STREAM [--json]\n"
"  sluice enqueue STREAM TYPE JSON\n"
"  sluice health  [--metrics ADDR]\n"
"  sluice --help | --version\n"
"\n"
"Every subcommand takes -c FILE and --redis URL\n"
"(redis://[:password@]host:port[/db]; also SLUICE_REDIS_URL). A password is\n"
"better given by SLUICE_REDIS_PASSWORD or redis.password_file.\n"
"Without -c: $SLUICE_CONFIG, else ./config/sluice.json, else\n"
"/etc/sluice/sluice.json, else the built-in defaults.\n";

/* Prints a usage error and returns 2. The argument goes through the URL
 * redaction, since a mistyped option may carry a password
 * ("--redsi=redis://:pw@host"). */
static int usage_error(const char *fmt, const char *arg)
{
    char shown[512];

    sl__url_redact(arg, shown, sizeof(shown));
    fprintf(stderr, "sluice: ");
    fprintf(stderr, fmt, shown);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

/* Options that take a value, and those that do not. */
static const char *const value_opts[] = { "-c", "--config", "--redis", "--workers",
                                          "--metrics", "--idle", "--count", "--watch", NULL };
static const char *const flag_opts[] = { "--json", "--all", "-h", "--help", "--version", NULL };

/* Returns 1 when s is in the NULL-terminated list. */
static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* Splits argv into options and positionals. Returns 0 or 2 (usage). */
static int parse_args(int argc, char **argv, struct sl_args *a)
{
    int i;

    memset(a, 0, sizeof(*a));
    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        char name[32];
        const char *eq = strchr(s, '=');

        if (strcmp(s, "--") == 0) {
            for (i++; i < argc && a->npos < SL_MAXPOS; i++)
                a->pos[a->npos++] = argv[i];
            break;
        }
        if (s[0] != '-' || s[1] == '\0') {
            if (a->npos >= SL_MAXPOS)
                return usage_error("too many arguments at \"%s\"", s);
            a->pos[a->npos++] = s;
            continue;
        }
        if (eq != NULL && s[1] == '-' && (size_t)(eq - s) < sizeof(name)) {
            memcpy(name, s, (size_t)(eq - s));
            name[eq - s] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", s);
        }
        if (in_list(value_opts, name)) {
            if (val == NULL) {
                if (i + 1 >= argc)
                    return usage_error("option %s needs a value", name);
                val = argv[++i];
            }
            if (!strcmp(name, "-c") || !strcmp(name, "--config"))
                a->config = val;
            else if (!strcmp(name, "--redis"))
                a->redis = val;
            else if (!strcmp(name, "--workers"))
                a->workers = val;
            else if (!strcmp(name, "--metrics"))
                a->metrics = val;
            else if (!strcmp(name, "--idle"))
                a->idle = val;
            else if (!strcmp(name, "--count"))
                a->count = val;
            else if (!strcmp(name, "--watch"))
                a->watch = val;
        } else if (in_list(flag_opts, name) && val == NULL) {
            if (!strcmp(name, "--json"))
                a->json = 1;
            else if (!strcmp(name, "--all"))
                a->all = 1;
            else if (!strcmp(name, "--version"))
                a->version = 1;
            else
                a->help = 1;
        } else {
            return usage_error("unknown option \"%s\"", s);
        }
    }
    return 0;
}

/* Hides the password of the --redis value in place, in the memory that
 * holds argv, so that /proc/<pid>/cmdline and `ps` show
 * "redis://:***@host" for the supervisor and for every child (they are
 * forked, never exec'd, and so share this memory's contents). The
 * redacted text is never longer than what it replaces except for a
 * password shorter than "***": then it is cut, which still leaves no
 * password behind. The bytes left over are zeroed. Until this runs,
 * shortly after exec, the password is visible like any argument: the
 * README says to prefer redis.password_file or SLUICE_REDIS_PASSWORD. */
static void scrub_arg(char *arg)
{
    char shown[1024];
    size_t len = strlen(arg), n;

    if (strchr(arg, '@') == NULL && strstr(arg, "://:") == NULL)
        return;                     /* nothing that can hold a password */
    sl__url_redact(arg, shown, sizeof(shown));
    n = strlen(shown);
    if (n > len)
        n = len;
    memcpy(arg, shown, n);
    memset(arg + n, 0, len - n);
}

/* Picks the configuration file (see internal.h). A place that cannot be
 * examined for a reason other than its absence (EACCES on the folder, say)
 * counts as found, so that loading it reports the problem instead of
 * quietly using other settings. */
const char *sl__config_find(const char *flag, const char *env,
                            const char *const *places)
{
    struct stat st;

    if (flag != NULL)
        return flag;
    if (env != NULL && *env != '\0')
        return env;
    for (; places != NULL && *places != NULL; places++)
        if (stat(*places, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
            return *places;
    return NULL;
}

/* Loads the configuration found by sl__config_find() (path NULL: the
 * built-in defaults) with its URL overrides. Returns NULL after printing
 * the error (exit code 2). */
static struct sl_config *load_config(const struct sl_args *a, const char *path)
{
    char err[512];
    const char *env = getenv("SLUICE_REDIS_URL");
    struct sl_config *cfg = path != NULL ? sl__config_load(path, 1, err, sizeof(err)) :
                            sl__config_default();

    if (cfg == NULL) {
        if (path == NULL)
            snprintf(err, sizeof(err), "out of memory");
        fprintf(stderr, "sluice: %s\n", err);
        return NULL;
    }
    sl__log(SL_LOG_DEBUG, "config", "path=%s", sl__logq(path != NULL ? path : "(built-in defaults)"));
    if ((env != NULL && *env && sl__config_set_url(cfg, env, "SLUICE_REDIS_URL", err, sizeof(err)) < 0) ||
        (a->redis != NULL && sl__config_set_url(cfg, a->redis, "--redis", err, sizeof(err)) < 0)) {
        fprintf(stderr, "sluice: %s\n", err);
        sl__config_free(cfg);
        return NULL;
    }
    return cfg;
}

int sl_main(int argc, char **argv, const struct sl_handler *const *registry)
{
    struct sl_args a;
    struct sl_config *cfg;
    char *redis = NULL;
    const char *cmd, *path;
    const char *lvl = getenv("SLUICE_LOG_LEVEL");
    char why[SL_ERRLEN];
    int rc;

    if (lvl != NULL)
        sl__log_level = !strcmp(lvl, "debug") ? SL_LOG_DEBUG : !strcmp(lvl, "warn") ? SL_LOG_WARN :
                        !strcmp(lvl, "error") ? SL_LOG_ERROR : SL_LOG_INFO;
    if ((rc = parse_args(argc, argv, &a)) != 0)
        return rc;
    /* Keep our own copy of --redis (a reload reads it again), then hide
     * the password in argv. a.redis points into argv, which main() hands
     * us writable. */
    if (a.redis != NULL) {
        if ((redis = strdup(a.redis)) == NULL) {
            fprintf(stderr, "sluice: out of memory\n");
            return 1;
        }
        scrub_arg((char *)a.redis);
        a.redis = redis;
    }
    if (a.version) {
        printf("sluice %s\n", SL_VERSION);
        rc = 0;
        goto out;
    }
    if (a.help || a.npos == 0) {
        fputs(usage_text, a.help ? stdout : stderr);
        rc = a.help ? 0 : 2;
        goto out;
    }
    if (sl__registry_check(registry, why, sizeof(why)) != 0) {
        fprintf(stderr, "sluice: %s\n", why);
        rc = 2;
        goto out;
    }
    cmd = a.pos[0];
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "pending") != 0 && strcmp(cmd, "stats") != 0 &&
        strcmp(cmd, "workers") != 0 && strcmp(cmd, "dlq") != 0 && strcmp(cmd, "enqueue") != 0 &&
        strcmp(cmd, "health") != 0) {
        rc = usage_error("unknown command \"%s\"", cmd);
        goto out;
    }
    if (a.metrics != NULL && strcmp(a.metrics, "none") != 0 && !sl__host_port_valid(a.metrics)) {
        rc = usage_error("--metrics \"%s\": expected host:port (port 0 to 65535) or none",
                         a.metrics);
        goto out;
    }
    /* dlq builds "<stream>:dead" from its argument: the same bound as a
     * configured stream name. */
    if (strcmp(cmd, "dlq") == 0 && a.npos >= 3 && strlen(a.pos[a.npos - 1]) > SL_NAME_MAX) {
        fprintf(stderr, "sluice: STREAM: longer than %d bytes\n", SL_NAME_MAX);
        rc = 2;
        goto out;
    }
    path = sl__config_find(a.config, getenv("SLUICE_CONFIG"), config_places);
    if ((cfg = load_config(&a, path)) == NULL) {
        rc = 2;
        goto out;
    }
    if (strcmp(cmd, "run") == 0) {
        /* A reload reads the file found now; with none found, it looks at
         * ./config/sluice.json again, falling back to the defaults. */
        if (a.npos != 1)
            rc = usage_error("run takes no arguments, got \"%s\"", a.pos[1]);
        else
            rc = sl__pool_run(cfg, path != NULL ? path : DEFAULT_CONFIG, path != NULL,
                              a.redis, a.workers, a.metrics, registry);
    } else if (strcmp(cmd, "health") == 0) {
        if (a.npos != 1)
            rc = usage_error("health takes no arguments, got \"%s\"", a.pos[1]);
        else
            rc = sl__health(cfg, a.metrics);
    } else {
        rc = sl__admin(cmd, &a, cfg);
    }
    sl__config_free(cfg);
out:
    free(redis);
    return rc;
}
