/* main.c -- build/sluice-test: the `sluice` command line over the test
 * registry, so the integration tests, the chaos runner and the container
 * test can use the `probe` and `echo` handlers that build/sluice lacks. */
#include "sluice.h"
#include "test_registry.h"

int main(int argc, char **argv)
{
    return sl_main(argc, argv, sl_test_handlers);
}
