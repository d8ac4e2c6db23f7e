/* invariants.h -- checks the invariants of docs/payment-flow.md on a Redis.
 *
 * Works on any Redis holding the payment flow's keys (user:, order:,
 * payment:, credit:, the `ledger` stream), whatever produced them: a
 * test, a benchmark or a chaos run. It reads with SCAN and paged XRANGE,
 * never KEYS, and never writes.
 */
#ifndef SL_INVARIANTS_H
#define SL_INVARIANTS_H

#include <stddef.h>
#include <hiredis.h>

/* Checks every invariant of docs/payment-flow.md, including those that hold
 * only once the system is quiet (every order paid or failed, every
 * payment's order final, every group of users/orders/payments with an
 * empty pending list and read to the end, no dead letter twice):
 *   - money is conserved: sum of balances = sum of opening balances
 *     (ledger entries with ref open:<id>) + sum of credits (credit:<id>
 *     hashes) - sum of succeeded payments (payment:<id> hashes);
 *   - the ledger replays to every balance, and every ledger entry agrees
 *     with the credit or payment it names;
 *   - no balance is below 0, now or at any point of the ledger's replay;
 *   - each payment_id is applied at most once (at most one ledger debit
 *     per ref payment:<id>, exactly one for a succeeded payment, none for
 *     a declined one);
 *   - every payment's status agrees with its order's (succeeded with
 *     paid, declined with failed and the same reason).
 * `c` is borrowed. Writes one line per violation into report (len bytes,
 * always NUL-terminated when len > 0, cut with "..." when too long).
 * Returns the number of violations (0 when all hold), or -1 when Redis
 * could not be read (the report says why). */
int sl_test_invariants(redisContext *c, char *report, size_t len);

/* The same without the checks that need a quiet system, for use while
 * workers are still running: orders may be pending and groups may lag. */
int sl_test_invariants_live(redisContext *c, char *report, size_t len);

#endif /* SL_INVARIANTS_H */
