/*
 * Schema migrations. The files of migrations/ are built into the binary in
 * name order. `migrate` applies the missing ones, each in its own
 * transaction, and records name and SHA-256 checksum in schema_migrations.
 * A session advisory lock makes concurrent migrators take turns. A file that
 * was changed after it was applied, or an applied migration this binary does
 * not know (a newer schema), stops everything with a clear message.
 *
 * Migration files are trusted SQL with several statements, so they run with
 * PQexec; nothing else in the daemon does.
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void checksum_hex(const struct store_migration *m, char out[65])
{
    uint8_t h[32];
    crypto_hash_sha256(h, (const unsigned char *)m->sql, m->len);
    hex_encode(h, 32, out);
}

static const char SQL_CREATE_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       "  name text PRIMARY KEY,"
                                       "  checksum text NOT NULL,"
                                       "  applied_at timestamptz NOT NULL DEFAULT now())";

/* Compares applied rows (name, checksum) with the built-in list. */
static enum store_schema_state compare(PGresult *applied, size_t *n_applied, char *detail, size_t dlen)
{
    int rows = PQntuples(applied);
    size_t matched = 0;
    for (int r = 0; r < rows; r++) {
        const char *name = PQgetvalue(applied, r, 0), *sum = PQgetvalue(applied, r, 1);
        const struct store_migration *m = NULL;
        for (size_t i = 0; i < store_n_migrations && !m; i++)
            if (strcmp(store_migrations[i].name, name) == 0)
                m = &store_migrations[i];
        if (!m) {
            snprintf(detail, dlen, "the database has migration '%s', which this binary does not know", name);
            return STORE_SCHEMA_NEWER;
        }
        char want[65];
        checksum_hex(m, want);
        if (strcmp(want, sum) != 0) {
            snprintf(detail, dlen, "migration '%s' was changed after it was applied", name);
            return STORE_SCHEMA_CHANGED;
        }
        matched++;
    }
    *n_applied = matched;
    if (matched < store_n_migrations) {
        snprintf(detail, dlen, "%zu of %zu migrations applied", matched, store_n_migrations);
        return STORE_SCHEMA_UNMIGRATED;
    }
    return STORE_SCHEMA_OK;
}

const char *store_schema_state_name(enum store_schema_state s)
{
    switch (s) {
    case STORE_SCHEMA_OK:
        return "migrated";
    case STORE_SCHEMA_UNMIGRATED:
        return "unmigrated";
    case STORE_SCHEMA_NEWER:
        return "newer";
    case STORE_SCHEMA_CHANGED:
        return "changed";
    }
    return "unknown";
}

static PGresult *exec_ok(PGconn *pg, const char *sql, int n, const char *const *params, struct sb_err *err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        store_result_error(pg, r, err);
        PQclear(r);
        return NULL;
    }
    return r;
}

static int apply_one(PGconn *pg, const struct store_migration *m, struct sb_err *err)
{
    PGresult *r = exec_ok(pg, "BEGIN", 0, NULL, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    PQclear(r);
    r = PQexec(pg, m->sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[200];
        sb_strlcpy(msg, PQresultErrorMessage(r), sizeof msg);
        msg[strcspn(msg, "\n")] = '\0';
        PQclear(r);
        PQclear(PQexec(pg, "ROLLBACK"));
        return sb_error(err, SB_EINTERNAL, "migration '%s' failed: %s", m->name, msg);
    }
    PQclear(r);
    char sum[65];
    checksum_hex(m, sum);
    const char *p[2] = {m->name, sum};
    r = exec_ok(pg, "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", 2, p, err);
    if (!r) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return err ? err->code : SB_EINTERNAL;
    }
    PQclear(r);
    r = exec_ok(pg, "COMMIT", 0, NULL, err);
    if (!r)
        return err ? err->code : SB_EINTERNAL;
    PQclear(r);
    log_info("migration applied", "name=%s checksum=%s", m->name, sum);
    return 0;
}

int store_migrate(const char *database_url, struct sb_err *err)
{
    struct store_conn *c = store_conn_open(database_url, err);
    if (!c)
        return SB_EUNAVAIL;
    PGconn *pg = c->pg;
    int rc = 0;
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)STORE_LOCK_MIGRATE);
    const char *kp[1] = {key};
    PGresult *r = exec_ok(pg, "SELECT pg_advisory_lock($1::bigint)", 1, kp, err);
    if (!r) {
        rc = err ? err->code : SB_EINTERNAL;
        goto out;
    }
    PQclear(r);
    r = exec_ok(pg, SQL_CREATE_TABLE, 0, NULL, err);
    if (!r) {
        rc = err ? err->code : SB_EINTERNAL;
        goto unlock;
    }
    PQclear(r);
    r = exec_ok(pg, "SELECT name, checksum FROM schema_migrations ORDER BY name", 0, NULL, err);
    if (!r) {
        rc = err ? err->code : SB_EINTERNAL;
        goto unlock;
    }
    char detail[200];
    size_t n_applied = 0;
    enum store_schema_state state = compare(r, &n_applied, detail, sizeof detail);
    /* which ones are applied, by name, for the loop below */
    bool *applied = calloc(store_n_migrations + 1, sizeof *applied);
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t i = 0; i < store_n_migrations; i++)
            if (strcmp(store_migrations[i].name, PQgetvalue(r, row, 0)) == 0)
                applied[i] = true;
    PQclear(r);
    if (state == STORE_SCHEMA_NEWER || state == STORE_SCHEMA_CHANGED) {
        rc = sb_error(err, SB_ECONFLICT, "refusing to migrate: %s", detail);
        free(applied);
        goto unlock;
    }
    int done = 0;
    for (size_t i = 0; i < store_n_migrations && rc == 0; i++) {
        if (applied[i])
            continue;
        rc = apply_one(pg, &store_migrations[i], err);
        done += rc == 0;
    }
    free(applied);
    if (rc == 0)
        log_info("schema is up to date", "applied_now=%d total=%zu", done, store_n_migrations);
unlock:
    r = PQexecParams(pg, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, kp, NULL, NULL, 0);
    PQclear(r);
out:
    store_conn_close(c);
    return rc;
}

static struct store_stmt stmt_applied =
    STORE_STMT("SELECT name, checksum FROM schema_migrations ORDER BY name");
static struct store_stmt stmt_has_table = STORE_STMT("SELECT to_regclass('schema_migrations') IS NOT NULL");

int store_check(struct store *st, enum store_schema_state *state, struct sb_err *err)
{
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return SB_EUNAVAIL;
    int rc = 0;
    PGresult *r = store_exec(c, &stmt_has_table, 0, NULL, err);
    if (!r) {
        rc = err ? err->code : SB_EUNAVAIL;
        goto out;
    }
    bool has = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!has) {
        *state = STORE_SCHEMA_UNMIGRATED;
        sb_error(err, SB_OK, "no migrations applied; run 'serverbox-core migrate'");
        goto out;
    }
    r = store_exec(c, &stmt_applied, 0, NULL, err);
    if (!r) {
        rc = err ? err->code : SB_EUNAVAIL;
        goto out;
    }
    size_t n_applied;
    char detail[200];
    *state = compare(r, &n_applied, detail, sizeof detail);
    PQclear(r);
    if (*state != STORE_SCHEMA_OK)
        sb_error(err, SB_OK, "%s", detail);
out:
    store_release(st, c);
    return rc;
}
