/* session.c -- what opens every connection to Redis: the password looked
 * up anew (URL, SLUICE_REDIS_PASSWORD, redis.password_file), AUTH (with
 * the ACL user when the URL names one) when there is a password, SELECT
 * when the database is not 0 -- written once here and used by every
 * connection (conn.c).
 */
#include <stdio.h>
#include <string.h>
#include "internal.h"

/* Looks up the password and prepares the AUTH and SELECT commands (see
 * internal.h). */
int sl__session_begin(const struct sl_redis_url *u, const char *password_file,
                      struct sl_session *ss, char *err, size_t errlen)
{
    char perr[SL_ERRLEN];

    memset(ss, 0, sizeof(*ss));
    if (sl__redis_password(u, password_file, ss->password, sizeof(ss->password),
                           perr, sizeof(perr)) != 0) {
        snprintf(err, errlen, "authentication failed: redis.password_file: %.100s", perr);
        return -1;
    }
    if (ss->password[0] != '\0') {
        /* Redis 6 ACL: AUTH user password; without a user, the
         * "default" user of the one-argument form. */
        ss->auth[ss->nauth++] = "AUTH";
        if (u->user[0] != '\0')
            ss->auth[ss->nauth++] = u->user;
        ss->auth[ss->nauth++] = ss->password;
    }
    if (u->db != 0) {
        snprintf(ss->db, sizeof(ss->db), "%d", u->db);
        ss->select[0] = "SELECT";
        ss->select[1] = ss->db;
        ss->nselect = 2;
    }
    return 0;
}

/* Wipes the password from ss. */
void sl__session_end(struct sl_session *ss)
{
    memset(ss->password, 0, sizeof(ss->password));
}

