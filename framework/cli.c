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
#include "web.h"

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
"  sluice enqueue STREAM TYPE JSON | STREAM - [--json]\n"
"  sluice health  [--metrics ADDR]\n"
"  sluice acl\n"
"  sluice web     [--listen ADDR] [--allow-writes] [--stream S ...]\n"
"  sluice --help | --version | help COMMAND\n"
"\n"
"Every subcommand takes -c FILE and --redis URL\n"
"(redis://[[user]:password@]host:port[/db], rediss:// for TLS; also\n"
"SLUICE_REDIS_URL). A password is\n"
"better given by SLUICE_REDIS_PASSWORD or redis.password_file.\n"
"Without -c: $SLUICE_CONFIG, else ./config/sluice.json, else\n"
"/etc/sluice/sluice.json, else the built-in defaults.\n"
"`sluice help COMMAND` or `sluice COMMAND --help`: that command's options.\n";

/* The options, as bits: which ones a command line gave, and which ones
 * each subcommand reads. */
enum {
    OPT_WORKERS = 1 << 0,
    OPT_METRICS = 1 << 1,
    OPT_IDLE = 1 << 2,
    OPT_COUNT = 1 << 3,
    OPT_WATCH = 1 << 4,
    OPT_JSON = 1 << 5,
    OPT_ALL = 1 << 6,
    OPT_AFTER = 1 << 7,
    OPT_DATA = 1 << 8,
    OPT_CODE = 1 << 9,
    OPT_OLDER = 1 << 10,
    OPT_YES = 1 << 11,
    OPT_LISTEN = 1 << 12,
    OPT_ALLOW_WRITES = 1 << 13,
    OPT_STREAM = 1 << 14
};

/* The options every subcommand takes, at the end of each usage. */
#define COMMON_OPTS \
"  -c, --config FILE    the configuration file (see `sluice help`)\n" \
"  --redis URL          redis[s]://[[user]:password@]host:port[/db], replaces\n" \
"                       redis.url\n" \
"  -h, --help           this text\n"

/* Exit codes of the admin commands, at the end of their usage. */
#define ADMIN_EXIT \
"exit codes: 0 done, 1 Redis unreachable or failing, 2 usage or configuration\n" \
"error\n"

/* One subcommand: its name, the options it reads (what its code really
 * looks at in struct sl_args) and its own usage. The dlq verbs narrow
 * its options further (dlq_opts). */
struct cmd_spec {
    const char *name;
    unsigned opts;
    const char *usage;
};

static const struct cmd_spec cmds[] = {
    { "run", OPT_WORKERS | OPT_METRICS,
      "usage: sluice run [-c FILE] [--redis URL] [--workers NAME[:N],...] [--metrics ADDR]\n"
      "\n"
      "Runs the pool in the foreground: a supervisor and its worker processes,\n"
      "until SIGTERM or SIGINT; SIGHUP reloads the configuration.\n"
      "\n"
      "options:\n"
      "  --workers NAME[:N],...  N processes (0 to 256; 1 without :N) for every\n"
      "                       worker entry whose handler is NAME\n"
      "  --metrics ADDR       host:port of /metrics and /healthz (port 0: any free\n"
      "                       port), or none; replaces metrics.listen\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 stopped by a signal, 1 runtime failure (Redis, a busy consumer\n"
      "name, an address that cannot be bound, a stop past its timeout), 2 usage or\n"
      "configuration error\n" },
    { "pending", OPT_IDLE | OPT_COUNT | OPT_JSON,
      "usage: sluice pending STREAM [GROUP] [--idle MS] [--count N] [--json]\n"
      "\n"
      "The pending entries of every consumer group of STREAM (or of GROUP).\n"
      "\n"
      "options:\n"
      "  --idle MS            only entries idle at least MS milliseconds (default 0)\n"
      "  --count N            at most N entries per group (default 10)\n"
      "  --json               an array with one object per group\n"
      COMMON_OPTS
      "\n"
      ADMIN_EXIT },
    { "stats", OPT_JSON | OPT_WATCH,
      "usage: sluice stats [--json] [--watch SECONDS]\n"
      "\n"
      "Length, lag, pending, rates and Little's law for every group of every\n"
      "configured stream, measured over one second.\n"
      "\n"
      "options:\n"
      "  --watch SECONDS      repeat every SECONDS (the window) until interrupted\n"
      "  --json               an array with one object per stream and group\n"
      COMMON_OPTS
      "\n"
      ADMIN_EXIT },
    { "workers", OPT_JSON,
      "usage: sluice workers [--json]\n"
      "\n"
      "Every live worker heartbeat, sorted by consumer name.\n"
      "\n"
      "options:\n"
      "  --json               an array with one object per heartbeat\n"
      COMMON_OPTS
      "\n"
      ADMIN_EXIT },
    { "dlq", OPT_COUNT | OPT_JSON | OPT_ALL | OPT_AFTER | OPT_DATA | OPT_CODE | OPT_OLDER |
             OPT_YES,
      "usage: sluice dlq list STREAM [--after ID] [--count N]\n"
      "       sluice dlq show ID STREAM\n"
      "       sluice dlq replay ID STREAM [--data JSON]\n"
      "       sluice dlq replay --all STREAM\n"
      "       sluice dlq purge ID STREAM\n"
      "       sluice dlq purge STREAM --code CODE | --older-than DURATION | --yes\n"
      "\n"
      "The dead letters of STREAM, kept in STREAM:dead (STREAM is the source).\n"
      "ID is a dead letter's own ID (the first column of list).\n"
      "\n"
      "  list     a page of dead letters, oldest first; when more follow, the last\n"
      "           line is \"next: --after ID\" (on stderr with --json)\n"
      "  show     every field of one dead letter\n"
      "  replay   re-adds the entry to STREAM without the fields sluice added and\n"
      "           deletes the dead letter, in one atomic step; --all replays the\n"
      "           dead letters there were when it started, each once\n"
      "  purge    deletes one dead letter, those of one code, those older than a\n"
      "           duration (both filters: both must match), or all with --yes;\n"
      "           pages of 500, each atomic; prints how many were deleted\n"
      "\n"
      "options:\n"
      "  --after ID           list: start after this dead letter (the cursor)\n"
      "  --count N            list: at most N dead letters (default 100)\n"
      "  --all                replay: every dead letter of STREAM\n"
      "  --data JSON          replay ID: re-add with this data instead (checked\n"
      "                       like enqueue's before anything is written)\n"
      "  --code CODE          purge: only dead letters whose error has this code\n"
      "  --older-than DURATION\n"
      "                       purge: only those dead-lettered longer ago than\n"
      "                       DURATION (a number and ms, s, m, h or d: 7d)\n"
      "  --yes                purge: every dead letter of STREAM\n"
      "  --json               every verb: JSON output\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 done, 1 Redis unreachable or failing, or no such dead letter,\n"
      "2 usage or configuration error (an ID that is not an entry ID, a purge\n"
      "without filter or --yes, --data that a worker would dead-letter)\n" },
    { "enqueue", OPT_JSON,
      "usage: sluice enqueue STREAM TYPE JSON [--json]\n"
      "       sluice enqueue STREAM - [--json]\n"
      "\n"
      "Adds one entry (type TYPE, data JSON, a JSON object) to STREAM and prints\n"
      "its ID. With -, adds one entry per line of standard input, each line\n"
      "either TYPE DATA (the type, one space, the data) or a JSON object\n"
      "{\"type\": TYPE, \"data\": DATA}; blank lines are skipped. Every entry is\n"
      "checked first as the handler that consumes STREAM in the configuration\n"
      "checks it (its types, the size and JSON rules); one bad line adds\n"
      "nothing and names its line number.\n"
      "\n"
      "options:\n"
      "  --json               {\"id\": ID}, or with - an array of {\"line\", \"id\"}\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 done, 1 Redis unreachable or failing, 2 usage or configuration\n"
      "error, or an entry the stream's handler would dead-letter (nothing added)\n" },
    { "health", OPT_METRICS,
      "usage: sluice health [--metrics ADDR]\n"
      "\n"
      "Whether the pool on this host is healthy: its /healthz when it has a\n"
      "listener on a fixed port, else Redis and the configured workers' heartbeats.\n"
      "\n"
      "options:\n"
      "  --metrics ADDR       ask the listener at host:port instead of\n"
      "                       metrics.listen; none: check Redis and the heartbeats\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 healthy, 1 unhealthy, 2 usage or configuration error\n" },
    { "acl", 0,
      "usage: sluice acl\n"
      "\n"
      "Prints the Redis ACL rules the configuration needs: one ACL SETUSER line\n"
      "granting the commands and keys of the framework, the admin commands and\n"
      "the configured handlers, for the URL's user (else \"sluice\"). Needs no\n"
      "Redis; prints no password.\n"
      "\n"
      "options:\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 printed, 1 failure, 2 usage or configuration error\n" },
    { "web", OPT_LISTEN | OPT_ALLOW_WRITES | OPT_STREAM,
      "usage: sluice web [--listen ADDR] [--allow-writes] [--stream S ...]\n"
      "\n"
      "Serves the dashboard (docs/dashboard.md): streams, groups, dead letters and\n"
      "workers, until SIGTERM or SIGINT. It shows the configured workers' streams\n"
      "plus each --stream. A token for the whole site comes from SLUICE_WEB_TOKEN\n"
      "or SLUICE_WEB_TOKEN_FILE, never from an argument.\n"
      "\n"
      "options:\n"
      "  --listen ADDR        host:port to serve on (default 127.0.0.1:9122; port 0:\n"
      "                       any free port, logged as web_listening)\n"
      "  --allow-writes       allow replay and purge of dead letters (read-only\n"
      "                       without it)\n"
      "  --stream S           show stream S too (repeatable, up to 64)\n"
      COMMON_OPTS
      "\n"
      "exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage or\n"
      "configuration error\n" },
};

/* Returns the subcommand called name, or NULL. */
static const struct cmd_spec *cmd_find(const char *name)
{
    size_t i;

    for (i = 0; name != NULL && i < SL_NELEM(cmds); i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

/* The options a dlq verb reads (cmd_dlq in admin.c): --count only for
 * list, --all only for replay. An unknown verb gets them all, since
 * cmd_dlq refuses it anyway. */
static unsigned dlq_opts(const char *verb)
{
    const unsigned every = OPT_COUNT | OPT_JSON | OPT_ALL | OPT_AFTER | OPT_DATA | OPT_CODE |
                           OPT_OLDER | OPT_YES;

    if (verb == NULL)
        return every;
    if (strcmp(verb, "list") == 0)
        return OPT_COUNT | OPT_AFTER | OPT_JSON;
    if (strcmp(verb, "replay") == 0)
        return OPT_ALL | OPT_DATA | OPT_JSON;
    if (strcmp(verb, "purge") == 0)
        return OPT_CODE | OPT_OLDER | OPT_YES | OPT_JSON;
    if (strcmp(verb, "show") == 0)
        return OPT_JSON;
    return every;
}

/* Prints a usage error, then the usage of cmd (NULL: the global one),
 * and returns 2. The argument goes through the URL redaction, since a
 * mistyped option may carry a password ("--redsi=redis://:pw@host"). */
static int usage_error_for(const struct cmd_spec *cmd, const char *fmt, const char *arg)
{
    char shown[512];

    sl__url_redact(arg, shown, sizeof(shown));
    fprintf(stderr, "sluice: ");
    fprintf(stderr, fmt, shown);
    fprintf(stderr, "\n%s", cmd != NULL ? cmd->usage : usage_text);
    return 2;
}

/* usage_error_for() with the global usage. */
static int usage_error(const char *fmt, const char *arg)
{
    return usage_error_for(NULL, fmt, arg);
}

/* An option: its spellings' bit (0 for those every subcommand takes)
 * and whether it takes a value. */
struct opt_spec {
    const char *name;
    unsigned bit;
    int value;
};

static const struct opt_spec opts[] = {
    { "-c", 0, 1 }, { "--config", 0, 1 }, { "--redis", 0, 1 },
    { "--workers", OPT_WORKERS, 1 }, { "--metrics", OPT_METRICS, 1 },
    { "--idle", OPT_IDLE, 1 }, { "--count", OPT_COUNT, 1 }, { "--watch", OPT_WATCH, 1 },
    { "--json", OPT_JSON, 0 }, { "--all", OPT_ALL, 0 },
    { "--after", OPT_AFTER, 1 }, { "--data", OPT_DATA, 1 }, { "--code", OPT_CODE, 1 },
    { "--older-than", OPT_OLDER, 1 }, { "--yes", OPT_YES, 0 },
    { "--listen", OPT_LISTEN, 1 }, { "--allow-writes", OPT_ALLOW_WRITES, 0 },
    { "--stream", OPT_STREAM, 1 },
    { "-h", 0, 0 }, { "--help", 0, 0 }, { "--version", 0, 0 },
};

/* What parse_args() saw besides struct sl_args: the option bits given,
 * the spelling that set each bit first (for a message), and the first
 * error, kept until the subcommand is known so that its usage follows. */
struct parsed {
    unsigned given;
    const char *given_as[16];
    char err[160];
    const char *err_arg;
};

/* Splits argv into options and positionals. Records the first error in
 * p->err (with p->err_arg for its %s) and goes on, so that the
 * subcommand is found even after a bad option. Returns 0, or 2 after an
 * error. */
static int parse_args(int argc, char **argv, struct sl_args *a, struct parsed *p)
{
    int i;

    memset(a, 0, sizeof(*a));
    memset(p, 0, sizeof(*p));
#define PARSE_ERROR(fmt, arg) do { if (p->err[0] == '\0') { \
        snprintf(p->err, sizeof(p->err), "%s", fmt); p->err_arg = (arg); } } while (0)
    for (i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        const struct opt_spec *o = NULL;
        char name[32];
        const char *eq = strchr(s, '=');
        size_t k;

        if (strcmp(s, "--") == 0) {
            for (i++; i < argc; i++) {
                if (a->npos >= SL_MAXPOS) {
                    PARSE_ERROR("too many arguments at \"%s\"", argv[i]);
                    break;
                }
                a->pos[a->npos++] = argv[i];
            }
            break;
        }
        if (s[0] != '-' || s[1] == '\0') {
            if (a->npos >= SL_MAXPOS)
                PARSE_ERROR("too many arguments at \"%s\"", s);
            else
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
        for (k = 0; k < SL_NELEM(opts) && o == NULL; k++)
            if (strcmp(opts[k].name, name) == 0)
                o = &opts[k];
        if (o == NULL || (!o->value && val != NULL)) {
            PARSE_ERROR("unknown option \"%s\"", s);
            continue;
        }
        if (o->value && val == NULL) {
            if (i + 1 >= argc) {
                PARSE_ERROR("option %s needs a value", o->name);
                continue;
            }
            val = argv[++i];
        }
        if (o->bit != 0) {
            unsigned b = 0;
            while (!(o->bit & (1u << b)))
                b++;
            if (!(p->given & o->bit))
                p->given_as[b] = o->name;
            p->given |= o->bit;
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
        else if (!strcmp(name, "--json"))
            a->json = 1;
        else if (!strcmp(name, "--all"))
            a->all = 1;
        else if (!strcmp(name, "--after"))
            a->after = val;
        else if (!strcmp(name, "--data"))
            a->data = val;
        else if (!strcmp(name, "--code"))
            a->code = val;
        else if (!strcmp(name, "--older-than"))
            a->older_than = val;
        else if (!strcmp(name, "--yes"))
            a->yes = 1;
        else if (!strcmp(name, "--listen"))
            a->listen = val;
        else if (!strcmp(name, "--allow-writes"))
            a->allow_writes = 1;
        else if (!strcmp(name, "--stream")) {
            if (a->nstreams >= SL_MAXSTREAMS)
                PARSE_ERROR("more than 64 --stream options at \"%s\"", val);
            else
                a->streams[a->nstreams++] = val;
        }
        else if (!strcmp(name, "--version"))
            a->version = 1;
        else
            a->help = 1;
    }
#undef PARSE_ERROR
    return p->err[0] != '\0' ? 2 : 0;
}

/* Refuses an option that cmd does not read (for dlq: that its verb
 * does not read), naming it, with cmd's usage. Returns 0 or 2. */
static int check_opts(const struct cmd_spec *cmd, const struct sl_args *a, const struct parsed *p)
{
    unsigned allowed = cmd->opts, b;

    if (strcmp(cmd->name, "dlq") == 0)
        allowed &= dlq_opts(a->npos > 1 ? a->pos[1] : NULL);
    for (b = 0; b < SL_NELEM(p->given_as); b++)
        if ((p->given & ~allowed & (1u << b)) && p->given_as[b] != NULL) {
            /* The verb is the user's text: printed as an argument of the
             * format, never as part of it. */
            if (strcmp(cmd->name, "dlq") == 0 && a->npos > 1)
                fprintf(stderr, "sluice: dlq %s does not take %s\n%s", a->pos[1],
                        p->given_as[b], cmd->usage);
            else
                fprintf(stderr, "sluice: %s does not take %s\n%s", cmd->name,
                        p->given_as[b], cmd->usage);
            return 2;
        }
    return 0;
}

/* sluice help [COMMAND] and --help: the usage of COMMAND, else the
 * global one, on stdout. Returns the exit code. */
static int help(const struct sl_args *a)
{
    const struct cmd_spec *cmd;
    const char *topic = NULL;

    if (a->npos > 0 && strcmp(a->pos[0], "help") == 0) {
        if (a->npos > 2)
            return usage_error("help takes one command, got \"%s\"", a->pos[2]);
        topic = a->npos == 2 ? a->pos[1] : NULL;
    } else if (a->npos > 0) {
        topic = a->pos[0];
    }
    if (topic == NULL) {
        fputs(usage_text, stdout);
        return 0;
    }
    if ((cmd = cmd_find(topic)) == NULL)
        return usage_error("unknown command \"%s\"", topic);
    fputs(cmd->usage, stdout);
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
    struct parsed p;
    const struct cmd_spec *spec;
    struct sl_config *cfg;
    char *redis = NULL;
    const char *cmd, *path;
    const char *lvl = getenv("SLUICE_LOG_LEVEL");
    const char *fmt = getenv("SLUICE_LOG_FORMAT");  /* "json", else logfmt */
    char why[SL_ERRLEN];
    int rc;

    if (fmt != NULL)
        sl__log_json = strcmp(fmt, "json") == 0;
    if (lvl != NULL)
        sl__log_level = !strcmp(lvl, "debug") ? SL_LOG_DEBUG : !strcmp(lvl, "warn") ? SL_LOG_WARN :
                        !strcmp(lvl, "error") ? SL_LOG_ERROR : SL_LOG_INFO;
    if (parse_args(argc, argv, &a, &p) != 0) {
        /* The subcommand's own usage when it is known. */
        return usage_error_for(a.npos > 0 ? cmd_find(a.pos[0]) : NULL, p.err,
                               p.err_arg != NULL ? p.err_arg : "");
    }
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
    if (a.help || (a.npos > 0 && strcmp(a.pos[0], "help") == 0)) {
        rc = help(&a);
        goto out;
    }
    if (a.npos == 0) {
        fputs(usage_text, stderr);
        rc = 2;
        goto out;
    }
    if ((spec = cmd_find(a.pos[0])) == NULL) {
        rc = usage_error("unknown command \"%s\"", a.pos[0]);
        goto out;
    }
    if ((rc = check_opts(spec, &a, &p)) != 0)
        goto out;
    if (sl__registry_check(registry, why, sizeof(why)) != 0) {
        fprintf(stderr, "sluice: %s\n", why);
        rc = 2;
        goto out;
    }
    cmd = a.pos[0];
    if (a.metrics != NULL && strcmp(a.metrics, "none") != 0 && !sl__host_port_valid(a.metrics)) {
        rc = usage_error_for(spec, "--metrics \"%s\": expected host:port (port 0 to 65535) or none",
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
            rc = usage_error_for(spec, "run takes no arguments, got \"%s\"", a.pos[1]);
        else
            rc = sl__pool_run(cfg, path != NULL ? path : DEFAULT_CONFIG, path != NULL,
                              a.redis, a.workers, a.metrics, registry);
    } else if (strcmp(cmd, "acl") == 0) {
        if (a.npos != 1)
            rc = usage_error_for(spec, "acl takes no arguments, got \"%s\"", a.pos[1]);
        else
            rc = sl__acl(cfg, registry);
    } else if (strcmp(cmd, "web") == 0) {
        int k;
        rc = 0;
        for (k = 0; k < a.nstreams && rc == 0; k++)
            if (a.streams[k][0] == '\0' || strlen(a.streams[k]) > SL_NAME_MAX)
                rc = usage_error_for(spec, "--stream \"%s\": expected a stream name of 1 to 200 bytes",
                                     a.streams[k]);
        if (rc == 0 && a.npos != 1)
            rc = usage_error_for(spec, "web takes no arguments, got \"%s\"", a.pos[1]);
        else if (rc == 0)
            rc = sl__web_run(cfg, a.listen, a.allow_writes, a.streams, (size_t)a.nstreams);
    } else if (strcmp(cmd, "health") == 0) {
        if (a.npos != 1)
            rc = usage_error_for(spec, "health takes no arguments, got \"%s\"", a.pos[1]);
        else
            rc = sl__health(cfg, a.metrics);
    } else {
        rc = sl__admin(cmd, &a, cfg, registry);
    }
    sl__config_free(cfg);
out:
    free(redis);
    return rc;
}
