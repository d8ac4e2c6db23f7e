/* main.c -- the `sluice` binary: the framework's command line over this
 * project's registry of workers. */
#include "sluice.h"
#include "registry.h"

int main(int argc, char **argv)
{
    return sl_main(argc, argv, sl_handlers);
}
