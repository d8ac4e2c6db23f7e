/* check_slots.c -- hash slots (framework/cluster.c) and the one-slot
 * check of a script's keys (framework/scripts.c), without Redis. The
 * slots are checked against Redis's own CLUSTER KEYSLOT in
 * tests/cluster/check_cluster.c; here, the values Redis documents and the
 * hash-tag rules. */
#include <string.h>
#include <check.h>
#include "internal.h"
#include "cluster.h"
#include "scripts.h"
#include "heartbeat.h"

/* Known slots and the hash-tag rule. */
START_TEST(test_keyslot_values)
{
    ck_assert_int_eq(sl__cluster_keyslot("123456789", 9), 12739);
    ck_assert_int_eq(sl__cluster_keyslot("foo", 3), 12182);
    ck_assert_int_eq(sl__cluster_keyslot("{user1000}.following", 20),
                     sl__cluster_keyslot("{user1000}.followers", 20));
    /* The first tag only, an empty one means none, the tag anywhere. */
    ck_assert_int_eq(sl__cluster_keyslot("foo{bar}{zap}", 13), sl__cluster_keyslot("bar", 3));
    ck_assert_int_eq(sl__cluster_keyslot("foo{{bar}}zap", 13), sl__cluster_keyslot("{bar", 4));
    ck_assert_int_ne(sl__cluster_keyslot("foo{}{bar}", 10), sl__cluster_keyslot("bar", 3));
    ck_assert_int_eq(sl__cluster_keyslot("sluice:{p7}:x", 13), sl__cluster_keyslot("orders:{p7}", 11));
    ck_assert_int_eq(sl__cluster_keyslot("", 0), 0);
}
END_TEST

/* A script's mixed key set: refused in cluster mode, with the script and
 * the keys named; standalone, logged once when a key is tagged. */
START_TEST(test_script_slots)
{
    struct sl_lua l;
    const char *same[] = { "orders:{p7}", "sluice:attempts:11:orders:{p7}:g", "orders:{p7}:dead" };
    const char *mixed[] = { "orders:{p7}", "sluice:attempts:11:orders:{p7}:g", "payments:{p8}" };
    const char *plain[] = { "orders", "sluice:attempts:6:orders:g", "orders:dead" };
    char err[400] = "";

    memset(&l, 0, sizeof(l));
    l.name = "commit";
    ck_assert_int_eq(sl__script_check_slots(&l, 3, same, NULL, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(sl__script_check_slots(&l, 3, mixed, NULL, 1, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "script commit") != NULL && strstr(err, "payments:{p8}") != NULL
                  && strstr(err, "hash slots") != NULL, "%s", err);
    /* Untagged names in a cluster: refused too (their slots differ). */
    ck_assert_int_eq(sl__script_check_slots(&l, 3, plain, NULL, 1, err, sizeof(err)), -1);

    /* Standalone: untagged is the usual layout, no warning. */
    ck_assert_int_eq(sl__script_check_slots(&l, 3, plain, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(l.slot_warned, 0);
    ck_assert_int_eq(sl__script_check_slots(&l, 3, same, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(l.slot_warned, 0);
    ck_assert_int_eq(sl__script_check_slots(&l, 3, mixed, NULL, 0, NULL, 0), 0);
    ck_assert_int_eq(l.slot_warned, 1);
}
END_TEST

/* Every EVALSHA the framework builds goes through the standalone check. */
START_TEST(test_script_argv_checks)
{
    struct sl_lua *l = sl__script(SL_SCRIPT_RENEW);
    struct sl_lua copy = *l;
    const char *keys[] = { "a:{x}" };
    const char *args[16] = { "" };
    const char *argv[64];
    size_t argvlen[64];
    char nk[16];
    int i;

    for (i = 0; i < 16; i++)
        args[i] = "0";
    copy.more_keys = 1;
    sl__script_argv(&copy, nk, 1, keys, NULL, copy.nargs, args, NULL, argv, argvlen);
    ck_assert_int_eq(copy.slot_warned, 0);
    {
        const char *two[] = { "a:{x}", "b:{y}" };

        sl__script_argv(&copy, nk, 2, two, NULL, copy.nargs, args, NULL, argv, argvlen);
    }
    ck_assert_int_eq(copy.slot_warned, 1);
}
END_TEST

/* The heartbeat names: standalone as always; on a cluster tagged with
 * the stream's hash tag, so that a heartbeat, its registry and the stream
 * share one slot (release.lua and janitor.lua take them together). */
START_TEST(test_heartbeat_names)
{
    char k[SL_HB_KEYLEN], reg[SL_HB_KEYLEN];
    const char *keys[3];

    sl__hb_key_of(k, sizeof(k), 0, "orders:{p0}", "h:probe:0");
    ck_assert_str_eq(k, "sluice:worker:h:probe:0");
    sl__hb_registry(reg, sizeof(reg), 0, "orders:{p0}");
    ck_assert_str_eq(reg, "sluice:workers");
    sl__hb_key_of(k, sizeof(k), 1, "orders:{p0}", "h:probe:0");
    ck_assert_str_eq(k, "sluice:{p0}:worker:h:probe:0");
    sl__hb_registry(reg, sizeof(reg), 1, "orders:{p0}");
    ck_assert_str_eq(reg, "sluice:{p0}:workers");
    keys[0] = "orders:{p0}";
    keys[1] = k;
    keys[2] = reg;
    ck_assert_int_eq(sl__cluster_keys_slot(3, keys, NULL), sl__cluster_keyslot("p0", 2));
    /* The tag is the text of the first {...}, as Redis hashes it. */
    sl__hb_key_of(k, sizeof(k), 1, "{o}{p}", "c");
    ck_assert_str_eq(k, "sluice:{o}:worker:c");
    ck_assert_int_eq(sl__cluster_keyslot(k, strlen(k)), sl__cluster_keyslot("{o}{p}", 6));
}
END_TEST

/* The suite. */
Suite *slots_suite(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("slots");

    tcase_add_test(tc, test_keyslot_values);
    tcase_add_test(tc, test_script_slots);
    tcase_add_test(tc, test_script_argv_checks);
    tcase_add_test(tc, test_heartbeat_names);
    suite_add_tcase(s, tc);
    return s;
}
