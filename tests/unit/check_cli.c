/* check_cli.c -- the configuration search of every command
 * (sl__config_find): -c, then SLUICE_CONFIG, then each built-in place in
 * order, then none (the built-in defaults). The places are given here as
 * files in a temp dir, standing in for ./config/sluice.json and
 * /etc/sluice/sluice.json. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <check.h>
#include "internal.h"

static char dir[64];
static char cwd_place[128], sys_place[128];

/* Creates the temp dir and the two place names (no files yet). */
static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sluice-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cwd_place, sizeof(cwd_place), "%s/config/sluice.json", dir);
    snprintf(sys_place, sizeof(sys_place), "%s/etc/sluice.json", dir);
}

/* Removes what setup() and the tests made. */
static void teardown(void)
{
    char sub[128];

    unlink(cwd_place);
    unlink(sys_place);
    snprintf(sub, sizeof(sub), "%s/config", dir);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/etc", dir);
    rmdir(sub);
    rmdir(dir);
}

/* Creates an empty file at path, and its folder. */
static void touch(const char *path)
{
    char folder[PATH_MAX];
    FILE *f;

    snprintf(folder, sizeof(folder), "%s", path);
    *strrchr(folder, '/') = '\0';
    mkdir(folder, 0755);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

START_TEST(test_config_find_order)
{
    const char *places[] = { cwd_place, sys_place, NULL };

    /* Nothing anywhere: the built-in defaults. */
    ck_assert_ptr_null(sl__config_find(NULL, NULL, places));
    ck_assert_ptr_null(sl__config_find(NULL, "", places));
    /* The system place alone. */
    touch(sys_place);
    ck_assert_str_eq(sl__config_find(NULL, NULL, places), sys_place);
    /* The working directory's file comes first. */
    touch(cwd_place);
    ck_assert_str_eq(sl__config_find(NULL, NULL, places), cwd_place);
    ck_assert_str_eq(sl__config_find(NULL, "", places), cwd_place);
    /* SLUICE_CONFIG beats the places, -c beats SLUICE_CONFIG, whether
     * or not the named files exist (loading them reports a missing one). */
    ck_assert_str_eq(sl__config_find(NULL, "/nonexistent/env.json", places), "/nonexistent/env.json");
    ck_assert_str_eq(sl__config_find("/nonexistent/flag.json", "/nonexistent/env.json", places),
                     "/nonexistent/flag.json");
    ck_assert_str_eq(sl__config_find("flag.json", NULL, places), "flag.json");
}
END_TEST

/* A missing folder on the way (ENOTDIR, ENOENT) falls through; a place
 * that cannot be examined for another reason is chosen, so loading it
 * reports the problem instead of silently using other settings. */
START_TEST(test_config_find_unreadable_place_is_chosen)
{
    char notdir[256], loop[256];
    const char *through[] = { notdir, sys_place, NULL };
    const char *stuck[] = { loop, sys_place, NULL };

    touch(sys_place);
    snprintf(notdir, sizeof(notdir), "%s/sluice.json", sys_place);   /* a file as a folder */
    ck_assert_str_eq(sl__config_find(NULL, NULL, through), sys_place);
    snprintf(loop, sizeof(loop), "%s/loop", dir);
    ck_assert_int_eq(symlink(loop, loop), 0);                        /* ELOOP */
    ck_assert_ptr_eq(sl__config_find(NULL, NULL, stuck), loop);
    unlink(loop);
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("config_find");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_find_order);
    tcase_add_test(tc, test_config_find_unreadable_place_is_chosen);
    suite_add_tcase(s, tc);
    return s;
}
