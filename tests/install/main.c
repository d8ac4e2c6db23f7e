/* main.c -- an out-of-tree sluice worker: the three-line main() of a
 * project with workers of its own, linked against an installed
 * libsluice.a with `pkg-config --cflags --libs sluice`. */
#include <stddef.h>
#include <sluice.h>

extern const struct sl_handler hello_handler;

static const struct sl_handler *const handlers[] = { &hello_handler, NULL };

/* Runs the sluice command line (run, pending, stats, ...) over this
 * program's own registry. */
int main(int argc, char **argv)
{
    return sl_main(argc, argv, handlers);
}
