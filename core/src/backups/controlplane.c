/*
 * `serverbox-core restore`: the control plane back from a repository onto
 * a fresh machine. The database snapshot (pg_dump -Fc) is streamed from
 * `restic dump` into `pg_restore --single-transaction` (all or nothing), and
 * the key files of the same run (keys.tar) are written into the data dir,
 * never over a file that exists.
 */
#include "backups.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct cli {
    const struct backups_restore_cli *c;
    json_t *env;
};

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int run_simple(const struct restic_target *t, const char *const *args, struct buf *out,
                      struct sb_err *err)
{
    struct restic_io io = {.timeout_s = 600};
    struct restic_result r;
    int rc = restic_run(t, args, &io, &r, err);
    if (rc == 0 && r.exit_code != 0) {
        char line[300];
        restic_error_line(&r, line, sizeof line);
        rc = sb_error(err, SB_EUPSTREAM, "restic %s: %s", args[0], line);
    }
    if (rc == 0 && out)
        buf_append(out, r.out.data, r.out.len);
    restic_result_release(&r);
    return rc;
}

/* The newest snapshot of the list matching the tag filter (or the id). */
static int pick(const struct restic_target *t, const char *tag, const char *id, json_t **snap,
                struct sb_err *err)
{
    const char *args[8] = {"snapshots", "--json"};
    int n = 2;
    if (tag) {
        args[n++] = "--tag";
        args[n++] = tag;
    }
    if (id)
        args[n++] = id;
    args[n] = NULL;
    struct buf b;
    buf_init(&b, 0);
    int rc = run_simple(t, args, &b, err);
    json_t *arr = rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    buf_release(&b);
    json_t *best = NULL;
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) if (!best || strcmp(str(s, "time"), str(best, "time")) > 0) best = s;
    *snap = json_incref(best);
    json_decref(arr);
    if (rc == 0 && !best)
        rc = sb_error(err, SB_ENOTFOUND, "no matching snapshot in the repository");
    return rc;
}

static const char *tag_value(json_t *snap, const char *prefix)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(snap, "tags"), i, t)
    {
        const char *x = json_string_value(t);
        if (x && strncmp(x, prefix, strlen(prefix)) == 0)
            return x + strlen(prefix);
    }
    return NULL;
}

int backups_pg_restore(json_t *pgenv, int fd, bool no_privileges, struct sb_err *err)
{
    const char *env[20];
    char *owned[20];
    int n = 0;
    env[n] = owned[n] = strdup("PATH=/usr/local/bin:/usr/bin:/bin:/usr/lib/postgresql/15/bin");
    n++;
    const char *k;
    json_t *v;
    json_object_foreach(pgenv, k, v)
    {
        if (n >= 18)
            break;
        size_t l = strlen(k) + json_string_length(v) + 2;
        owned[n] = malloc(l);
        snprintf(owned[n], l, "%s=%s", k, json_string_value(v));
        env[n] = owned[n];
        n++;
    }
    env[n] = NULL;
    char dbopt[300];
    snprintf(dbopt, sizeof dbopt, "--dbname=%s", str(pgenv, "PGDATABASE") ? str(pgenv, "PGDATABASE") : "");
    const char *argv[] = {"pg_restore",
                          "--no-owner",
                          "--exit-on-error",
                          "--single-transaction",
                          "--no-password",
                          dbopt,
                          no_privileges ? "--no-privileges" : NULL,
                          NULL};
    int efd = memfd_create("pg_restore-stderr", MFD_CLOEXEC);
    pid_t pid;
    int rc = backups_spawn(argv, env, fd, -1, efd, &pid, err);
    if (rc == 0) {
        int st = backups_wait(pid);
        if (st != 0) {
            char msg[600] = "";
            lseek(efd, 0, SEEK_SET);
            ssize_t r = read(efd, msg, sizeof msg - 1);
            msg[r > 0 ? r : 0] = '\0';
            for (char *p = msg; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            rc = sb_error(err, SB_EUPSTREAM, "pg_restore failed (exit %d): %s", st, msg);
        }
    }
    if (efd >= 0)
        close(efd);
    for (int i = 0; i < n; i++) {
        explicit_bzero(owned[i], strlen(owned[i]));
        free(owned[i]);
    }
    return rc;
}

static int drain_pg_restore(void *ctx, int fd, struct sb_err *err)
{
    struct cli *x = ctx;
    return backups_pg_restore(x->env, fd, false, err);
}

struct keys {
    const struct backups_restore_cli *c;
    int written;
};

static int write_key(void *ctx, const char *name, const char *data, size_t len, unsigned mode)
{
    (void)mode;
    struct keys *k = ctx;
    if (!*name || strchr(name, '/') || name[0] == '.')
        return SB_EINVAL;
    char path[1200];
    if (strcmp(name, "master.key") == 0 && k->c->master_key_file && *k->c->master_key_file)
        snprintf(path, sizeof path, "%s", k->c->master_key_file);
    else
        snprintf(path, sizeof path, "%s/%s", k->c->data_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr,
                "serverbox-core: restore: cannot create %s: %s (the key files are never overwritten)\n", path,
                strerror(errno));
        return SB_ECONFLICT;
    }
    ssize_t w = write(fd, data, len);
    close(fd);
    if (w != (ssize_t)len)
        return SB_EINTERNAL;
    printf("wrote %s\n", path);
    k->written++;
    return 0;
}

int backups_restore_control_plane(const struct backups_restore_cli *c, struct sb_err *err)
{
    struct restic_target t = {.repo = c->repo, .password = c->password, .sftp_command = c->sftp_command};
    json_t *db = NULL, *keys = NULL;
    bool latest = !c->snapshot || !*c->snapshot || strcmp(c->snapshot, "latest") == 0;
    int rc = pick(&t, "serverbox,part:database", latest ? NULL : c->snapshot, &db, err);
    if (rc)
        return rc;
    if (!tag_value(db, "part:") || strcmp(tag_value(db, "part:"), "database") != 0) {
        json_decref(db);
        return sb_error(err, SB_EINVAL, "snapshot %s is not a control-plane database snapshot", c->snapshot);
    }
    const char *run = tag_value(db, "run:");
    char keytag[120];
    snprintf(keytag, sizeof keytag, "serverbox,part:keys,run:%s", run ? run : "none");
    rc = pick(&t, keytag, NULL, &keys, err);
    if (rc) {
        json_decref(db);
        return rc;
    }
    mkdir(c->data_dir, 0700);
    /* Key files first: refusing to overwrite one changes nothing else. */
    struct buf tar;
    buf_init(&tar, 64 << 20);
    const char *ka[] = {"dump", str(keys, "id"), "/keys.tar", NULL};
    rc = run_simple(&t, ka, &tar, err);
    struct keys k = {.c = c};
    if (rc == 0 && (rc = backups_tar_each(tar.data, tar.len, write_key, &k, err)))
        rc = sb_error(err, rc, "the key files were not restored (one exists already, or the archive is bad)");
    crypto_buf_wipe(&tar);
    json_t *env = NULL;
    if (rc == 0)
        rc = store_url_env(c->database_url, &env, err);
    if (rc == 0) {
        struct cli x = {.c = c, .env = env};
        const char *da[] = {"dump", str(db, "id"), "/serverbox.dump", NULL};
        struct restic_io io = {.drain = drain_pg_restore, .ctx = &x, .timeout_s = 86400};
        struct restic_result r;
        rc = restic_run(&t, da, &io, &r, err);
        if (rc == 0 && r.drain_rc) {
            *err = r.drain_err;
            rc = r.drain_rc;
        } else if (rc == 0 && r.exit_code != 0) {
            char line[300];
            restic_error_line(&r, line, sizeof line);
            rc = sb_error(err, SB_EUPSTREAM, "restic dump: %s", line);
        }
        restic_result_release(&r);
    }
    if (rc == 0)
        printf("restored the database from snapshot %s (%s, run %s) and %d key file(s)\n",
               str(db, "short_id"), str(db, "time"), run ? run : "?", k.written);
    json_decref(env);
    json_decref(db);
    json_decref(keys);
    return rc;
}
