/*
 * create-user: makes a user from the command line (the first admin, or a
 * way back in). The password comes from standard input only, never from
 * argv (which `ps` shows). With --if-no-users it does nothing when any user
 * exists, which is how `make run` creates the first admin exactly once.
 *
 * Exit: 0 created, 3 skipped (--if-no-users and users exist), 1 failed,
 * 2 bad usage.
 */
#include "cmd.h"

#include "../auth/auth.h"
#include "../store/store.h"

#include <stdio.h>
#include <string.h>

static int read_password(char *out, size_t len)
{
    if (!fgets(out, (int)len, stdin))
        return -1;
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return 0;
}

int cmd_create_user(const struct config *cfg)
{
    const char *username = config_get(cfg, "username");
    const char *role = config_get(cfg, "role");
    const char *url = config_get(cfg, "database-url");
    if (!url || !*url)
        url = cmd_admin_database_url(cfg);
    struct sb_err err = {0};
    if (!url || !*url) {
        fprintf(stderr, "serverbox-core: no database URL: set --database-url or SERVERBOX_DATABASE_URL\n");
        return 2;
    }
    if (auth_username_valid(username, &err) || !auth_role_valid(role)) {
        fprintf(stderr, "serverbox-core: create-user: %s\n",
                err.code ? err.msg : "--role must be admin, operator or viewer");
        return 2;
    }
    if (!config_get(cfg, "password-stdin")) {
        fprintf(stderr,
                "serverbox-core: create-user: give the password on standard input with --password-stdin\n");
        return 2;
    }
    char password[AUTH_PASSWORD_MAX + 4];
    if (read_password(password, sizeof password) || auth_password_policy(password, &err)) {
        sodium_memzero(password, sizeof password);
        fprintf(stderr, "serverbox-core: create-user: %s\n",
                err.code ? err.msg : "no password on standard input");
        return 2;
    }
    char hash[AUTH_HASH_MAX];
    int rc = auth_password_hash(password, hash, &err);
    sodium_memzero(password, sizeof password);
    if (rc) {
        fprintf(stderr, "serverbox-core: create-user: %s\n", err.msg);
        return 1;
    }

    struct store_config sc = {.database_url = url, .pool_size = 2, .acquire_timeout_ms = 5000};
    struct store *st = store_open(&sc, &err);
    if (!st) {
        fprintf(stderr, "serverbox-core: create-user: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    int64_t n = 0;
    if (store_user_count(st, &n, &err)) {
        fprintf(stderr, "serverbox-core: create-user: %s\n", err.msg);
        goto out;
    }
    if (n > 0 && config_get(cfg, "if-no-users")) {
        printf("skipped: %lld user(s) exist already\n", (long long)n);
        status = 3;
        goto out;
    }
    char id[37], stream[64];
    uuid_v4(id);
    snprintf(stream, sizeof stream, "user/%s", id);
    json_t *data = json_pack("{s:s, s:s, s:s}", "id", id, "username", username, "role", role);
    struct event_new ev = {.stream = stream,
                           .type = "user.created",
                           .data = data,
                           .outcome = "success",
                           .actor = {.kind = "system", .name = "create-user"}};
    /* The user and its password hash commit together. */
    rc = store_password_set(st, &ev, id, hash, &err);
    json_decref(data);
    if (rc) {
        fprintf(stderr, "serverbox-core: create-user: %s\n",
                rc == SB_ECONFLICT ? "that username is taken" : err.msg);
        goto out;
    }
    printf("created user %s (%s) id %s\n", username, role, id);
    status = 0;
out:
    sodium_memzero(hash, sizeof hash);
    store_close(st);
    return status;
}
