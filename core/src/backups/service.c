/*
 * The backups service: repositories (restic init, sealed password), plans,
 * runs as jobs (backup.run), volume restores (backup.restore), checks
 * (backup.check) and the schedule (the backup-schedule duty). README.md in
 * this folder has the design; store/backups.c the events.
 */
#include "backups.h"

#include "../docker/docker.h"
#include "../jobs/jobs.h"

#include <curl/curl.h>
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#define NAME_MAX_LEN 63
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define KEY_MAX      16384

/* ---- small helpers ------------------------------------------------------------ */

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool printable(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return n > 0 && n <= max;
}

static bool name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > NAME_MAX_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.' || *p == ' '))
            return false;
    return s[0] != ' ' && s[0] != '.';
}

static bool host_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 253 || s[0] == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.' || *p == ':'))
            return false;
    return true;
}

static bool user_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 32 || s[0] == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return true;
}

/* A path restic and ssh get as one word: absolute, no spaces, quotes or
 * control characters. */
static bool path_ok(const char *s)
{
    if (!s || s[0] != '/' || strlen(s) > 500 || strstr(s, "/../") || strstr(s, "/./"))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '\'' || *p == '\\' || *p == '`' || *p == '$')
            return false;
    return true;
}

static bool volume_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 200 ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return false;
    return strstr(s, "..") == NULL;
}

static int append(struct backups_env *e, const char *stream_kind, const char *stream_id, const char *type,
                  json_t *data, const char *outcome, const struct event_actor *actor, struct sb_err *err)
{
    char stream[96];
    snprintf(stream, sizeof stream, "%s/%s", stream_kind, stream_id);
    struct event_new ev = {.stream = stream, .type = type, .data = data, .outcome = outcome, .actor = *actor};
    int64_t seq;
    return store_append(e->store, &ev, &seq, err);
}

/* ---- opening a repository ---------------------------------------------------- */

struct opened {
    struct restic_target t;
    struct buf password;
    char repo[700];
    char tmpdir[1100];
    char cache[1024];
    char sftp[3000];
};

static void opened_release(struct opened *o)
{
    crypto_buf_wipe(&o->password);
    if (o->tmpdir[0]) {
        char p[1200];
        snprintf(p, sizeof p, "%s/key", o->tmpdir);
        unlink(p);
        snprintf(p, sizeof p, "%s/known_hosts", o->tmpdir);
        unlink(p);
        rmdir(o->tmpdir);
        o->tmpdir[0] = '\0';
    }
}

static int write_file(const char *path, const char *data, size_t len, struct sb_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_error(err, SB_EINTERNAL, "cannot write %s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            return sb_error(err, SB_EINTERNAL, "cannot write %s", path);
        }
        off += (size_t)w;
    }
    close(fd);
    return 0;
}

/* Builds the target from the location and clear secrets (password, and
 * for SFTP the private key, written to a private temp dir with the pinned
 * known_hosts for the run). */
static int open_with(struct backups_env *e, const char *kind, json_t *loc, const char *password,
                     const char *key, struct opened *o, struct sb_err *err)
{
    memset(o, 0, sizeof *o);
    buf_init(&o->password, PASSWORD_MAX + 1);
    buf_puts(&o->password, password);
    snprintf(o->cache, sizeof o->cache, "%s/restic-cache", e->data_dir);
    mkdir(o->cache, 0700);
    o->t.password = o->password.data;
    o->t.cache_dir = o->cache;
    if (strcmp(kind, "local") == 0) {
        snprintf(o->repo, sizeof o->repo, "%s", str(loc, "path"));
        o->t.repo = o->repo;
        return 0;
    }
    char base[1024];
    snprintf(base, sizeof base, "%s/backups-tmp", e->data_dir);
    mkdir(base, 0700);
    char rnd[17];
    random_hex(rnd, 8);
    snprintf(o->tmpdir, sizeof o->tmpdir, "%s/%s", base, rnd);
    if (mkdir(o->tmpdir, 0700)) {
        o->tmpdir[0] = '\0';
        return sb_error(err, SB_EINTERNAL, "cannot make a temporary directory under %s", base);
    }
    char kp[1200], kh[1200];
    snprintf(kp, sizeof kp, "%s/key", o->tmpdir);
    snprintf(kh, sizeof kh, "%s/known_hosts", o->tmpdir);
    const char *known = str(loc, "known_hosts");
    int rc = write_file(kp, key ? key : "", key ? strlen(key) : 0, err);
    if (rc == 0)
        rc = write_file(kh, known ? known : "", known ? strlen(known) : 0, err);
    if (rc)
        return rc;
    json_int_t port = json_integer_value(json_object_get(loc, "port"));
    snprintf(o->sftp, sizeof o->sftp,
             "ssh -F /dev/null -p %lld -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=%s "
             "-o StrictHostKeyChecking=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=3 "
             "-o ConnectTimeout=10 %s@%s -s sftp",
             (long long)(port ? port : 22), kp, kh, str(loc, "user"), str(loc, "host"));
    snprintf(o->repo, sizeof o->repo, "sftp:%s@%s:%s", str(loc, "user"), str(loc, "host"), str(loc, "path"));
    o->t.repo = o->repo;
    o->t.sftp_command = o->sftp;
    return 0;
}

static int open_repo(struct backups_env *e, json_t *repo, struct opened *o, struct sb_err *err)
{
    char *sp = NULL, *sk = NULL;
    int rc = store_backup_repo_secrets(e->store, str(repo, "id"), &sp, &sk, err);
    struct buf pw, key;
    buf_init(&pw, 0);
    buf_init(&key, 0);
    if (rc == 0)
        rc = crypto_open(e->key, sp, &pw, err);
    if (rc == 0 && sk)
        rc = crypto_open(e->key, sk, &key, err);
    if (rc == 0)
        rc = open_with(e, str(repo, "kind"), json_object_get(repo, "location"), pw.data, sk ? key.data : NULL,
                       o, err);
    else
        memset(o, 0, sizeof *o);
    crypto_buf_wipe(&pw);
    crypto_buf_wipe(&key);
    free(sp);
    free(sk);
    return rc;
}

/* Runs restic with no stdin; 0 when it exited 0, else SB_EUPSTREAM with its
 * last stderr line. */
static int restic_simple(struct opened *o, const char *const *args, const struct restic_io *io,
                         struct buf *out, struct sb_err *err)
{
    struct restic_result r;
    int rc = restic_run(&o->t, args, io, &r, err);
    if (rc == 0 && r.exit_code != 0) {
        char line[300];
        restic_error_line(&r, line, sizeof line);
        rc = sb_error(err, SB_EUPSTREAM, "restic %s: %s", args[0], line);
    }
    if (rc == 0 && out) {
        buf_append(out, r.out.data, r.out.len);
    }
    restic_result_release(&r);
    return rc;
}

/* ---- repositories ------------------------------------------------------------- */

json_t *backups_repo_view(json_t *repo)
{
    json_t *v = json_deep_copy(repo);
    json_t *loc = json_object_get(v, "location");
    if (json_is_object(loc))
        json_object_del(loc, "known_hosts");
    json_object_set_new(v, "password", json_string("********"));
    return v;
}

static int keyscan(const char *host, json_int_t port, char *out, size_t len, struct sb_err *err)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%lld", (long long)port);
    const char *argv[] = {"ssh-keyscan", "-T", "5", "-p", portbuf, "-t", "ed25519,ecdsa,rsa", host, NULL};
    const char *env[] = {"PATH=/usr/bin:/bin", NULL};
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC))
        return sb_error(err, SB_EINTERNAL, "pipe failed");
    pid_t pid;
    int rc = backups_spawn(argv, env, -1, pfd[1], -1, &pid, err);
    close(pfd[1]);
    size_t n = 0;
    if (rc == 0) {
        for (;;) {
            ssize_t r = read(pfd[0], out + n, len - 1 - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (n += (size_t)r) >= len - 1)
                break;
        }
        backups_wait(pid);
    }
    close(pfd[0]);
    out[n] = '\0';
    if (rc == 0 && n == 0)
        rc = sb_error(err, SB_EUPSTREAM, "cannot reach the SSH server %s port %lld to pin its host key", host,
                      (long long)port);
    return rc;
}

int backups_repo_create(struct backups_env *e, json_t *b, const struct event_actor *actor, json_t **out,
                        struct sb_err *err)
{
    *out = NULL;
    const char *name = str(b, "name"), *kind = str(b, "kind") ? str(b, "kind") : "local",
               *path = str(b, "path"), *password = str(b, "password");
    if (!name_ok(name))
        return sb_field_error(err, "name", "name is 1-63 letters, digits, spaces, '-', '_' or '.'");
    if (strcmp(kind, "local") != 0 && strcmp(kind, "sftp") != 0)
        return sb_field_error(err, "kind", "kind is local or sftp");
    if (!path_ok(path))
        return sb_field_error(err, "path", "path is an absolute path (no spaces, quotes or '..')");
    if (!json_is_string(json_object_get(b, "password")) || strlen(password) < PASSWORD_MIN ||
        !printable(password, PASSWORD_MAX))
        return sb_field_error(err, "password",
                              "password is %d to %d printable characters (keep a copy: "
                              "restoring onto a new machine needs it)",
                              PASSWORD_MIN, PASSWORD_MAX);
    json_t *loc = json_pack("{s:s}", "path", path);
    const char *key = NULL;
    if (strcmp(kind, "sftp") == 0) {
        const char *host = str(b, "host"), *user = str(b, "user") ? str(b, "user") : "root";
        json_t *pv = json_object_get(b, "port");
        json_int_t port = pv ? json_integer_value(pv) : 22;
        key = str(b, "private_key");
        int rc = 0;
        if (!host_ok(host))
            rc = sb_field_error(err, "host", "host is a host name or address");
        else if ((pv && !json_is_integer(pv)) || port < 1 || port > 65535)
            rc = sb_field_error(err, "port", "port is 1 to 65535");
        else if (!user_ok(user))
            rc = sb_field_error(err, "user", "user is a login name");
        else if (!key || strlen(key) > KEY_MAX || !strstr(key, "PRIVATE KEY"))
            rc = sb_field_error(err, "private_key", "private_key is an OpenSSH private key (PEM text)");
        if (rc) {
            json_decref(loc);
            return rc;
        }
        char known[8192];
        const char *given = str(b, "known_hosts");
        if (given) {
            if (strlen(given) >= sizeof known || !strchr(given, ' ')) {
                json_decref(loc);
                return sb_field_error(err, "known_hosts", "known_hosts is the server's known_hosts line(s)");
            }
            sb_strlcpy(known, given, sizeof known);
        } else if ((rc = keyscan(host, port, known, sizeof known, err))) {
            json_decref(loc);
            return rc;
        }
        json_object_set_new(loc, "host", json_string(host));
        json_object_set_new(loc, "port", json_integer(port));
        json_object_set_new(loc, "user", json_string(user));
        json_object_set_new(loc, "known_hosts", json_string(known));
    }
    /* Initialize, or open one that exists with this password. */
    struct opened o;
    int rc = open_with(e, kind, loc, password, key, &o, err);
    if (rc == 0) {
        const char *init[] = {"init", NULL};
        struct restic_io io = {.timeout_s = 120};
        struct restic_result r;
        rc = restic_run(&o.t, init, &io, &r, err);
        if (rc == 0 && r.exit_code != 0) {
            bool exists =
                strstr(r.errtext.data, "already exists") || strstr(r.errtext.data, "already initialized");
            char line[300];
            restic_error_line(&r, line, sizeof line);
            if (exists) {
                const char *cat[] = {"cat", "config", NULL};
                rc = restic_simple(&o, cat, &io, NULL, err);
                if (rc)
                    rc = sb_field_error(err, "password",
                                        "a repository exists at that path and does not open "
                                        "with this password");
            } else {
                rc = sb_error(err, SB_EUPSTREAM, "restic init failed: %s", line);
            }
        }
        if (rc == 0 || r.exit_code >= 0)
            restic_result_release(&r);
    }
    opened_release(&o);
    if (rc) {
        json_decref(loc);
        return rc;
    }
    char id[37];
    uuid_v4(id);
    char *sealed_pw = crypto_seal(e->key, password, strlen(password));
    char *sealed_key = key ? crypto_seal(e->key, key, strlen(key)) : NULL;
    json_t *data = json_pack("{s:s,s:s,s:s,s:O,s:s}", "id", id, "name", name, "kind", kind, "location", loc,
                             "by", actor->name ? actor->name : "");
    char stream[64];
    snprintf(stream, sizeof stream, "backup_repository/%s", id);
    struct event_new ev = {.stream = stream,
                           .type = "backup.repository_created",
                           .data = data,
                           .outcome = "success",
                           .actor = *actor};
    rc = sealed_pw ? store_backup_repo_create(e->store, &ev, id, sealed_pw, sealed_key, err)
                   : sb_error(err, SB_ENOMEM, "out of memory");
    free(sealed_pw);
    free(sealed_key);
    json_decref(data);
    json_decref(loc);
    if (rc == SB_ECONFLICT)
        return sb_field_error(err, "name", "a repository named %s exists", name);
    if (rc)
        return rc;
    json_t *row = NULL;
    rc = store_backup_get(e->store, "repository", id, &row, err);
    if (rc == 0) {
        *out = backups_repo_view(row);
        json_decref(row);
    }
    return rc;
}

int backups_repo_delete(struct backups_env *e, const char *id, const struct event_actor *actor,
                        struct sb_err *err)
{
    json_t *repo = NULL, *plans = NULL;
    int rc = store_backup_get(e->store, "repository", id, &repo, err);
    if (rc == 0)
        rc = store_backup_list(e->store, "plan", NULL, 0, &plans, err);
    size_t i;
    json_t *p;
    json_array_foreach(plans, i, p) if (rc == 0 && str(p, "repository_id") &&
                                        strcmp(str(p, "repository_id"), id) == 0) rc =
        sb_error(err, SB_ECONFLICT, "plan %s backs up to this repository: delete it first", str(p, "name"));
    json_decref(plans);
    json_decref(repo);
    if (rc)
        return rc;
    json_t *data = json_pack("{s:s}", "id", id);
    rc = append(e, "backup_repository", id, "backup.repository_deleted", data, "success", actor, err);
    json_decref(data);
    return rc;
}

static json_t *snapshot_view(json_t *s)
{
    json_t *v = json_pack("{s:O,s:O,s:O,s:O,s:O}", "id", json_object_get(s, "id"), "short_id",
                          json_object_get(s, "short_id"), "time", json_object_get(s, "time"), "paths",
                          json_object_get(s, "paths"), "hostname", json_object_get(s, "hostname"));
    json_t *tags = json_object_get(s, "tags");
    json_object_set(v, "tags", tags ? tags : json_array());
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *x = json_string_value(t);
        if (!x)
            continue;
        static const struct {
            const char *prefix, *key;
        } map[] = {{"plan:", "plan_id"},  {"run:", "run_id"}, {"node:", "node_id"}, {"stack:", "stack_id"},
                   {"volume:", "volume"}, {"part:", "part"},  {"seq:", "seq"}};
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
            if (strncmp(x, map[k].prefix, strlen(map[k].prefix)) == 0)
                json_object_set_new(v, map[k].key, json_string(x + strlen(map[k].prefix)));
    }
    return v;
}

int backups_snapshots(struct backups_env *e, const char *repo_id, json_t **out, struct sb_err *err)
{
    *out = NULL;
    json_t *repo = NULL;
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    struct opened o;
    if (rc == 0 && (rc = open_repo(e, repo, &o, err)) == 0) {
        const char *args[] = {"snapshots", "--json", NULL};
        struct restic_io io = {.timeout_s = 120};
        struct buf b;
        buf_init(&b, 0);
        rc = restic_simple(&o, args, &io, &b, err);
        json_t *arr = rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
        if (rc == 0 && !json_is_array(arr))
            rc = sb_error(err, SB_EUPSTREAM, "restic snapshots gave no list");
        if (rc == 0) {
            *out = json_array();
            size_t i;
            json_t *s;
            json_array_foreach(arr, i, s) json_array_append_new(*out, snapshot_view(s));
        }
        json_decref(arr);
        buf_release(&b);
        opened_release(&o);
    }
    json_decref(repo);
    return rc;
}

/* ---- plans ---------------------------------------------------------------------- */

/* The next fire time of the plan's cron field `field` ("schedule" or
 * "restore_test") after it last fired (`fired`), or 0. */
static int64_t plan_next_of(json_t *plan, const char *field, const char *fired)
{
    const char *sched = str(plan, field);
    struct backups_cron c;
    struct sb_err e = {0};
    if (!sched || backups_cron_parse(sched, &c, &e))
        return 0;
    const char *base = str(plan, fired) ? str(plan, fired) : str(plan, "created_at");
    int64_t us = 0;
    if (!base || time_parse_rfc3339(base, &us))
        us = time_now_us();
    return backups_cron_next(&c, us);
}

static int64_t plan_next_us(json_t *plan)
{
    return plan_next_of(plan, "schedule", "last_fired_at");
}

static int64_t plan_next_test_us(json_t *plan)
{
    return plan_next_of(plan, "restore_test", "restore_test_fired_at");
}

static json_t *time_or_null(int64_t us)
{
    if (!us)
        return json_null();
    char t[40];
    time_format_rfc3339(us, t, sizeof t);
    return json_string(t);
}

json_t *backups_plan_view(json_t *plan)
{
    json_t *v = json_deep_copy(plan);
    json_object_set_new(v, "next_run", time_or_null(plan_next_us(plan)));
    json_object_set_new(v, "next_restore_test", time_or_null(plan_next_test_us(plan)));
    return v;
}

/* A cron field of a plan: absent, null, or a valid expression. */
static int cron_field_check(json_t *v, const char *field, struct sb_err *err)
{
    if (!v || json_is_null(v))
        return 0;
    struct backups_cron c;
    if (!json_is_string(v))
        return sb_field_error(err, field, "%s is a cron expression or null", field);
    int rc = backups_cron_parse(json_string_value(v), &c, err);
    if (rc && strcmp(field, "schedule") != 0) {
        char msg[256];
        sb_strlcpy(msg, err->msg, sizeof msg);
        return sb_field_error(err, field, "%s: %s", field, msg);
    }
    return rc;
}

int backups_plan_create(struct backups_env *e, json_t *b, json_t *stack, const struct event_actor *actor,
                        json_t **out, struct sb_err *err)
{
    *out = NULL;
    const char *name = str(b, "name"), *repo_id = str(b, "repository_id");
    json_t *cp = json_object_get(b, "control_plane"), *vols = json_object_get(b, "volumes"),
           *sched = json_object_get(b, "schedule"), *ret = json_object_get(b, "retention");
    if (!name_ok(name))
        return sb_field_error(err, "name", "name is 1-63 letters, digits, spaces, '-', '_' or '.'");
    if (cp && !json_is_boolean(cp))
        return sb_field_error(err, "control_plane", "control_plane is true or false");
    if (!json_is_true(cp) && !stack)
        return sb_field_error(err, "stack_id",
                              "a plan backs up the control plane, a stack's volumes, or both");
    if (vols && !json_is_null(vols)) {
        if (!stack)
            return sb_field_error(err, "volumes", "volumes name volumes of the plan's stack_id");
        if (!json_is_array(vols) || json_array_size(vols) == 0 || json_array_size(vols) > 64)
            return sb_field_error(err, "volumes", "volumes is a list of 1 to 64 of the stack's volume names");
        size_t i;
        json_t *v;
        json_array_foreach(vols, i, v) if (!volume_name_ok(json_string_value(v))) return sb_field_error(
            err, "volumes", "volumes[%zu] is not a volume name", i);
    }
    json_t *rtest = json_object_get(b, "restore_test"), *pause = json_object_get(b, "pause_services");
    if (pause && !json_is_boolean(pause))
        return sb_field_error(err, "pause_services", "pause_services is true or false");
    if (json_is_true(pause) && !stack)
        return sb_field_error(err, "pause_services",
                              "pause_services pauses a stack's containers: give stack_id");
    int rc = cron_field_check(sched, "schedule", err);
    if (rc == 0)
        rc = cron_field_check(rtest, "restore_test", err);
    if (rc == 0)
        rc = backups_retention_check(ret, err);
    if (rc)
        return rc;
    json_t *repo = NULL;
    if (!repo_id || store_backup_get(e->store, "repository", repo_id, &repo, err))
        return sb_field_error(err, "repository_id", "repository_id names no repository");
    json_decref(repo);
    json_t *what = json_pack("{s:b}", "control_plane", json_is_true(cp));
    if (stack) {
        json_object_set(what, "stack_id", json_object_get(stack, "id"));
        json_object_set(what, "stack_name", json_object_get(stack, "name"));
        if (vols && !json_is_null(vols))
            json_object_set(what, "volumes", vols);
    }
    char id[37];
    uuid_v4(id);
    json_t *data = json_pack("{s:s,s:s,s:s,s:o,s:s}", "id", id, "name", name, "repository_id", repo_id,
                             "what", what, "by", actor->name ? actor->name : "");
    json_object_set_new(data, "retention", json_is_object(ret) ? json_deep_copy(ret) : json_object());
    if (stack)
        json_object_set(data, "node_id", json_object_get(stack, "node_id"));
    if (json_is_string(sched))
        json_object_set(data, "schedule", sched);
    if (json_is_string(rtest))
        json_object_set(data, "restore_test", rtest);
    if (json_is_true(json_object_get(b, "pause_services")))
        json_object_set_new(data, "pause_services", json_true());
    rc = append(e, "backup_plan", id, "backup.plan_created", data, "success", actor, err);
    json_decref(data);
    if (rc == SB_ECONFLICT)
        return sb_field_error(err, "name", "a plan named %s exists", name);
    json_t *row = NULL;
    if (rc == 0 && (rc = store_backup_get(e->store, "plan", id, &row, err)) == 0) {
        *out = backups_plan_view(row);
        json_decref(row);
    }
    return rc;
}

int backups_plan_update(struct backups_env *e, json_t *plan, json_t *b, const struct event_actor *actor,
                        json_t **out, struct sb_err *err)
{
    *out = NULL;
    json_t *name = json_object_get(b, "name"), *sched = json_object_get(b, "schedule"),
           *rtest = json_object_get(b, "restore_test"), *ret = json_object_get(b, "retention"),
           *paused = json_object_get(b, "paused"), *vols = json_object_get(b, "volumes");
    json_t *what = json_object_get(plan, "what");
    if (name && !name_ok(json_string_value(name)))
        return sb_field_error(err, "name", "name is 1-63 letters, digits, spaces, '-', '_' or '.'");
    int rc = cron_field_check(sched, "schedule", err);
    if (rc == 0)
        rc = cron_field_check(rtest, "restore_test", err);
    if (rc == 0 && ret)
        rc = backups_retention_check(ret, err);
    if (rc)
        return rc;
    if (paused && !json_is_boolean(paused))
        return sb_field_error(err, "paused", "paused is true or false");
    json_t *pause = json_object_get(b, "pause_services");
    if (pause && !json_is_boolean(pause))
        return sb_field_error(err, "pause_services", "pause_services is true or false");
    if (json_is_true(pause) && !str(what, "stack_id"))
        return sb_field_error(err, "pause_services",
                              "pause_services pauses a stack's containers, and this plan has none");
    if (vols && !str(what, "stack_id"))
        return sb_field_error(err, "volumes",
                              "volumes name volumes of the plan's stack, and this plan has none");
    if (vols && !json_is_null(vols)) {
        if (!json_is_array(vols) || json_array_size(vols) == 0 || json_array_size(vols) > 64)
            return sb_field_error(err, "volumes",
                                  "volumes is a list of 1 to 64 of the stack's volume names, or null");
        size_t i;
        json_t *v;
        json_array_foreach(vols, i, v) if (!volume_name_ok(json_string_value(v))) return sb_field_error(
            err, "volumes", "volumes[%zu] is not a volume name", i);
    }
    /* Only what changes is recorded. */
    json_t *changes = json_object();
    static const char *const keys[] = {"name",      "schedule", "restore_test",
                                       "retention", "paused",   "pause_services"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(b, keys[i]), *cur = json_object_get(plan, keys[i]);
        if (v && !json_equal(v, cur ? cur : json_null()))
            json_object_set(changes, keys[i], v);
    }
    json_t *cur_vols = json_object_get(what, "volumes");
    if (vols && !json_equal(vols, cur_vols ? cur_vols : json_null()))
        json_object_set(changes, "volumes", vols);
    if (json_object_size(changes) == 0) {
        json_decref(changes);
        *out = backups_plan_view(plan);
        return 0;
    }
    json_t *data = json_pack("{s:s,s:o,s:s}", "id", str(plan, "id"), "changes", changes, "by",
                             actor->name ? actor->name : "");
    if (str(plan, "node_id"))
        json_object_set(data, "node_id", json_object_get(plan, "node_id"));
    rc = append(e, "backup_plan", str(plan, "id"), "backup.plan_updated", data, "success", actor, err);
    json_decref(data);
    if (rc == SB_ECONFLICT)
        return sb_field_error(err, "name", "a plan named %s exists", json_string_value(name));
    json_t *row = NULL;
    if (rc == 0 && (rc = store_backup_get(e->store, "plan", str(plan, "id"), &row, err)) == 0) {
        *out = backups_plan_view(row);
        json_decref(row);
    }
    return rc;
}

int backups_plan_delete(struct backups_env *e, const char *id, const struct event_actor *actor,
                        struct sb_err *err)
{
    json_t *plan = NULL;
    int rc = store_backup_get(e->store, "plan", id, &plan, err);
    if (rc)
        return rc;
    json_t *data = json_pack("{s:s}", "id", id);
    if (str(plan, "node_id"))
        json_object_set(data, "node_id", json_object_get(plan, "node_id"));
    rc = append(e, "backup_plan", id, "backup.plan_deleted", data, "success", actor, err);
    json_decref(data);
    json_decref(plan);
    return rc;
}

/* A job about a plan ({plan_id, trigger}), one at a time per repository. */
static int plan_job(struct backups_env *e, const char *kind, json_t *plan, const char *trigger,
                    const struct event_actor *actor, json_t **job, struct sb_err *err)
{
    char target[64], key[64];
    snprintf(target, sizeof target, "backup_plan/%s", str(plan, "id"));
    snprintf(key, sizeof key, "backup_repository/%s", str(plan, "repository_id"));
    json_t *args = json_pack("{s:s,s:s}", "plan_id", str(plan, "id"), "trigger", trigger);
    struct jobs_new in = {.kind = kind,
                          .target = target,
                          .node_id = str(plan, "node_id"),
                          .concurrency_key = key,
                          .args = args,
                          .actor = *actor};
    int rc = jobs_enqueue(e->jobs, &in, job, err);
    json_decref(args);
    return rc;
}

int backups_plan_run(struct backups_env *e, json_t *plan, const char *trigger,
                     const struct event_actor *actor, json_t **job, struct sb_err *err)
{
    return plan_job(e, "backup.run", plan, trigger, actor, job, err);
}

int backups_check(struct backups_env *e, const char *repo_id, const struct event_actor *actor, json_t **job,
                  struct sb_err *err)
{
    json_t *repo = NULL;
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    json_decref(repo);
    if (rc)
        return rc;
    char target[64];
    snprintf(target, sizeof target, "backup_repository/%s", repo_id);
    json_t *args = json_pack("{s:s}", "repository_id", repo_id);
    struct jobs_new in = {
        .kind = "backup.check", .target = target, .concurrency_key = target, .args = args, .actor = *actor};
    rc = jobs_enqueue(e->jobs, &in, job, err);
    json_decref(args);
    return rc;
}

int backups_restore(struct backups_env *e, const char *repo_id, const char *snapshot_id, const char *node_id,
                    const char *volume, const struct event_actor *actor, json_t **job, struct sb_err *err)
{
    json_t *repo = NULL;
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    json_decref(repo);
    if (rc)
        return rc;
    char target[64];
    snprintf(target, sizeof target, "backup_repository/%s", repo_id);
    json_t *args = json_pack("{s:s,s:s,s:s,s:s}", "repository_id", repo_id, "snapshot_id", snapshot_id,
                             "node_id", node_id, "volume", volume);
    struct jobs_new in = {.kind = "backup.restore",
                          .target = target,
                          .node_id = node_id,
                          .concurrency_key = target,
                          .args = args,
                          .actor = *actor};
    rc = jobs_enqueue(e->jobs, &in, job, err);
    json_decref(args);
    return rc;
}

/* ---- a run ------------------------------------------------------------------------ */

struct run {
    struct backups_env *e;
    struct job_ctx *job;
    json_t *plan;
    struct opened o;
    json_t *snapshots; /* [{id, part, bytes, added}] made so far */
    int64_t bytes, added;
    int part, parts; /* for progress */
    const char *step;
    /* the current feed */
    const char *socket;
    const char *container;
    const char *volume;
    struct buf keys_tar;
    json_t *summary;
};

static bool run_cancelled(void *ctx)
{
    struct run *r = ctx;
    return r->job && job_cancelled(r->job);
}

static void run_line(void *ctx, const char *line)
{
    struct run *r = ctx;
    if (line[0] != '{')
        return;
    json_t *j = json_loads(line, 0, NULL);
    const char *t = str(j, "message_type");
    if (t && strcmp(t, "summary") == 0) {
        json_decref(r->summary);
        r->summary = j;
        return;
    }
    if (t && strcmp(t, "status") == 0 && r->job) {
        double done = json_number_value(json_object_get(j, "percent_done"));
        json_int_t bytes = json_integer_value(json_object_get(j, "bytes_done"));
        char step[160];
        snprintf(step, sizeof step, "%s: %.1f MB read", r->step, (double)bytes / 1e6);
        int pct =
            r->parts ? (int)((100.0 * r->part + 100.0 * (done > 0 && done <= 1 ? done : 0)) / r->parts) : -1;
        job_progress(r->job, pct > 95 ? 95 : pct, step);
    }
    json_decref(j);
}

static int memfd_text(int fd, char *out, size_t len)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, out, len - 1);
    out[n > 0 ? n : 0] = '\0';
    size_t l = strlen(out);
    while (l && (out[l - 1] == '\n' || out[l - 1] == ' '))
        out[--l] = '\0';
    char *nl = strrchr(out, '\n');
    if (nl)
        memmove(out, nl + 1, strlen(nl + 1) + 1);
    return 0;
}

static int feed_pg_dump(void *ctx, int fd, struct sb_err *err)
{
    struct run *r = ctx;
    json_t *envj = NULL;
    int rc = store_url_env(r->e->database_url, &envj, err);
    if (rc)
        return rc;
    const char *env[20];
    char *owned[20];
    int n = 0;
    env[n] = owned[n] = strdup("PATH=/usr/local/bin:/usr/bin:/bin:/usr/lib/postgresql/15/bin");
    n++;
    const char *k;
    json_t *v;
    json_object_foreach(envj, k, v)
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
    int efd = memfd_create("pg_dump-stderr", MFD_CLOEXEC);
    const char *argv[] = {"pg_dump", "--format=custom", "--no-password", NULL};
    pid_t pid;
    rc = backups_spawn(argv, env, -1, fd, efd, &pid, err);
    if (rc == 0) {
        int st = backups_wait(pid);
        if (st != 0) {
            char msg[300];
            memfd_text(efd, msg, sizeof msg);
            rc = sb_error(err, SB_EUPSTREAM, "pg_dump failed (exit %d): %s", st, msg);
        }
    }
    if (efd >= 0)
        close(efd);
    for (int i = 0; i < n; i++) {
        explicit_bzero(owned[i], strlen(owned[i]));
        free(owned[i]);
    }
    json_decref(envj);
    return rc;
}

static int write_all(int fd, const char *d, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, d + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static int feed_buffer(void *ctx, int fd, struct sb_err *err)
{
    struct run *r = ctx;
    if (write_all(fd, r->keys_tar.data, r->keys_tar.len))
        return sb_error(err, SB_EUPSTREAM, "restic stopped reading");
    return 0;
}

static int feed_volume(void *ctx, int fd, struct sb_err *err)
{
    struct run *r = ctx;
    char path[400];
    snprintf(path, sizeof path, "/containers/%s/archive?path=/backup/%s", r->container, r->volume);
    long status = 0;
    return docker_get_to_fd(r->socket, path, fd, &status, err);
}

/* One `restic backup --stdin`; the snapshot goes to r->snapshots. */
static int backup_part(struct run *r, const char *filename, const char *part, const char *const *extra_tags,
                       int (*feed)(void *, int, struct sb_err *), struct sb_err *err)
{
    char plan_tag[80], run_tag[80], part_tag[300], fname[300];
    snprintf(plan_tag, sizeof plan_tag, "plan:%s", str(r->plan, "id"));
    snprintf(run_tag, sizeof run_tag, "run:%s", r->job ? job_id(r->job) : "none");
    snprintf(part_tag, sizeof part_tag, "part:%s", part);
    snprintf(fname, sizeof fname, "--stdin-filename=%s", filename);
    const char *args[32] = {"backup", "--json", "--stdin", fname,   "--tag", "serverbox",
                            "--tag",  plan_tag, "--tag",   run_tag, "--tag", part_tag};
    int n = 12;
    for (int i = 0; extra_tags && extra_tags[i] && n < 30; i++) {
        args[n++] = "--tag";
        args[n++] = extra_tags[i];
    }
    args[n] = NULL;
    struct restic_io io = {.feed = feed, .ctx = r, .line = run_line, .cancelled = run_cancelled};
    struct restic_result res;
    json_decref(r->summary);
    r->summary = NULL;
    int rc = restic_run(&r->o.t, args, &io, &res, err);
    const char *snap = str(r->summary, "snapshot_id");
    if (rc == 0 && res.feed_rc) {
        /* The source failed midway: restic may have saved what it got. */
        *err = res.feed_err;
        rc = res.feed_rc;
    } else if (rc == 0 && res.exit_code != 0) {
        char line[300];
        restic_error_line(&res, line, sizeof line);
        rc = sb_error(err, SB_EUPSTREAM, "restic backup of %s: %s", part, line);
    } else if (rc == 0 && !snap) {
        rc = sb_error(err, SB_EUPSTREAM, "restic backup of %s made no snapshot", part);
    }
    if (snap) {
        json_int_t bytes = json_integer_value(json_object_get(r->summary, "total_bytes_processed"));
        json_int_t added = json_integer_value(json_object_get(r->summary, "data_added"));
        json_array_append_new(r->snapshots, json_pack("{s:s,s:s,s:I,s:I}", "id", snap, "part", part, "bytes",
                                                      bytes, "added", added));
        r->bytes += bytes;
        r->added += added;
    }
    restic_result_release(&res);
    return rc;
}

static int add_key_file(struct buf *tar, const char *path, const char *name)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    struct sb_err e = {0};
    int rc = file_read_all(path, 1 << 20, &b, &e);
    if (rc == 0)
        rc = backups_tar_add(tar, name, b.data, b.len, 0600);
    crypto_buf_wipe(&b);
    return rc;
}

static int backup_control_plane(struct run *r, struct sb_err *err)
{
    r->step = "database";
    job_progress(r->job, r->parts ? 100 * r->part / r->parts : 0, "database (pg_dump)");
    int rc = backup_part(r, "serverbox.dump", "database", NULL, feed_pg_dump, err);
    if (rc)
        return rc;
    r->part++;
    r->step = "key files";
    buf_init(&r->keys_tar, 16 << 20);
    rc = add_key_file(&r->keys_tar, r->e->master_key_file, "master.key");
    DIR *d = opendir(r->e->data_dir);
    struct dirent *de;
    while (rc == 0 && d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".key") != 0 || strcmp(de->d_name, "master.key") == 0)
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", r->e->data_dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            rc = add_key_file(&r->keys_tar, p, de->d_name);
    }
    if (d)
        closedir(d);
    if (rc) {
        crypto_buf_wipe(&r->keys_tar);
        return sb_error(err, SB_EINTERNAL, "cannot read the key files of %s", r->e->data_dir);
    }
    backups_tar_finish(&r->keys_tar);
    rc = backup_part(r, "keys.tar", "keys", NULL, feed_buffer, err);
    crypto_buf_wipe(&r->keys_tar);
    r->part++;
    return rc;
}

static json_t *stack_volumes(const char *socket, json_t *stack, struct sb_err *err)
{
    struct buf p;
    buf_init(&p, 4096);
    char filt[300];
    snprintf(filt, sizeof filt, "{\"label\":[\"com.docker.compose.project=%s\"]}", str(stack, "name"));
    buf_puts(&p, "/volumes?filters=");
    docker_urlencode(filt, &p);
    json_t *res = NULL;
    int rc = docker_call(socket, "GET", p.data, NULL, 0, &res, NULL, err);
    buf_release(&p);
    if (rc)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(res, "Volumes"), i, v)
    {
        const char *full = str(v, "Name");
        const char *short_name = str(json_object_get(v, "Labels"), "com.docker.compose.volume");
        if (full)
            json_array_append_new(
                out, json_pack("{s:s,s:s}", "name", full, "short", short_name ? short_name : full));
    }
    json_decref(res);
    return out;
}

/* A created (never started) helper container with the binds; its id into
 * id_out. The archive API reads and writes its mounts. */
static int helper_create(struct backups_env *e, const char *socket, json_t *binds, json_t *cmd,
                         const char *why, char *id_out, size_t len, struct sb_err *err)
{
    json_t *body = json_pack("{s:s,s:o,s:b,s:{s:s},s:{s:o}}", "Image", e->helper_image, "Cmd",
                             cmd ? cmd : json_pack("[s]", "true"), "NetworkDisabled", 1, "Labels",
                             "serverbox.backup", why, "HostConfig", "Binds", binds);
    json_t *res = NULL;
    int rc = docker_call(socket, "POST", "/containers/create", body, 0, &res, NULL, err);
    json_decref(body);
    if (rc == SB_ENOTFOUND)
        rc = sb_error(err, SB_ENOTFOUND,
                      "the backup helper image %s is not on the node (--backup-helper-image)",
                      e->helper_image);
    if (rc == 0)
        sb_strlcpy(id_out, str(res, "Id") ? str(res, "Id") : "", len);
    json_decref(res);
    return rc;
}

static void helper_remove(const char *socket, const char *id)
{
    char p[200];
    snprintf(p, sizeof p, "/containers/%s?force=1", id);
    struct sb_err e = {0};
    docker_call(socket, "DELETE", p, NULL, 0, NULL, NULL, &e);
}

static int backup_volumes(struct run *r, json_t *stack, json_t *vols, const char *socket, struct sb_err *err)
{
    json_t *wanted = json_object_get(json_object_get(r->plan, "what"), "volumes");
    size_t i;
    json_t *v;
    int rc = 0, done = 0;
    json_array_foreach(vols, i, v)
    {
        if (rc)
            break;
        const char *full = str(v, "name"), *short_name = str(v, "short");
        if (json_is_array(wanted)) {
            bool want = false;
            size_t k;
            json_t *w;
            json_array_foreach(wanted, k, w) want = want || strcmp(json_string_value(w), short_name) == 0 ||
                                                    strcmp(json_string_value(w), full) == 0;
            if (!want)
                continue;
        }
        char bind[600], cid[80], step[300], vtag[300], ntag[100], stag[100], fname[300], part[300];
        snprintf(bind, sizeof bind, "%s:/backup/%s:ro", full, full);
        rc = helper_create(r->e, socket, json_pack("[s]", bind), NULL, "backup", cid, sizeof cid, err);
        if (rc)
            break;
        snprintf(step, sizeof step, "volume %s", short_name);
        r->step = step;
        job_progress(r->job, r->parts ? 100 * r->part / r->parts : 0, step);
        r->socket = socket;
        r->container = cid;
        r->volume = full;
        snprintf(vtag, sizeof vtag, "volume:%s", full);
        snprintf(ntag, sizeof ntag, "node:%s", str(stack, "node_id"));
        snprintf(stag, sizeof stag, "stack:%s", str(stack, "id"));
        snprintf(fname, sizeof fname, "%s.tar", full);
        snprintf(part, sizeof part, "volume:%s", short_name);
        const char *tags[] = {vtag, ntag, stag, NULL};
        rc = backup_part(r, fname, part, tags, feed_volume, err);
        helper_remove(socket, cid);
        r->part++;
        done++;
    }
    if (rc == 0 && done == 0)
        rc = sb_error(err, SB_ENOTFOUND, "stack %s has no named volume%s on its node", str(stack, "name"),
                      json_is_array(wanted) ? " of those the plan names" : "");
    return rc;
}

/* The "pause during backup" policy: the stack's running containers are
 * paused (docker pause: frozen, not stopped) while the helper reads its
 * volumes, so the files are read at rest. Returns the ids it paused (a new
 * array), or NULL with err after unpausing any it had paused. */
static void unpause_all(const char *socket, json_t *ids)
{
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        char p[200];
        snprintf(p, sizeof p, "/containers/%s/unpause", json_string_value(id));
        struct sb_err e = {0};
        if (docker_call(socket, "POST", p, NULL, 0, NULL, NULL, &e))
            log_warn("backup: a container paused for a backup was not unpaused",
                     "container=%.12s detail=\"%s\"", json_string_value(id), e.msg);
    }
}

/* Records backup.services_paused (before pausing: a daemon dying midway
 * leaves a record the duty sweeps) or backup.services_unpaused. */
static int record_paused(struct backups_env *e, json_t *run, bool paused, json_t *ids, const char *by,
                         struct sb_err *err)
{
    struct event_actor sys = {.kind = "system", .name = "backups"};
    json_t *data = json_pack("{s:O,s:O,s:O?,s:O}", "id", json_object_get(run, "id"), "plan_id",
                             json_object_get(run, "plan_id"), "node_id", json_object_get(run, "node_id"),
                             "containers", ids);
    if (by)
        json_object_set_new(data, "by", json_string(by));
    int rc =
        append(e, "backup_plan", str(run, "plan_id"),
               paused ? "backup.services_paused" : "backup.services_unpaused", data, "success", &sys, err);
    json_decref(data);
    return rc;
}

static json_t *pause_stack(struct backups_env *e, json_t *run, const char *socket, json_t *stack,
                           struct sb_err *err)
{
    struct buf p;
    buf_init(&p, 4096);
    char filt[400];
    snprintf(filt, sizeof filt, "{\"label\":[\"com.docker.compose.project=%s\"],\"status\":[\"running\"]}",
             str(stack, "name"));
    buf_puts(&p, "/containers/json?filters=");
    docker_urlencode(filt, &p);
    json_t *list = NULL;
    int rc = docker_call(socket, "GET", p.data, NULL, 0, &list, NULL, err);
    buf_release(&p);
    if (rc)
        return NULL;
    json_t *ids = json_array(), *paused = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) if (str(c, "Id")) json_array_append_new(ids, json_string(str(c, "Id")));
    json_decref(list);
    bool recorded = json_array_size(ids) && (rc = record_paused(e, run, true, ids, NULL, err)) == 0;
    json_array_foreach(ids, i, c)
    {
        if (rc)
            break;
        char path[200];
        snprintf(path, sizeof path, "/containers/%s/pause", json_string_value(c));
        if ((rc = docker_call(socket, "POST", path, NULL, 0, NULL, NULL, err)) == 0)
            json_array_append(paused, c);
    }
    if (rc) {
        unpause_all(socket, paused);
        struct sb_err e2 = {0};
        if (recorded)
            record_paused(e, run, false, ids, "run", &e2);
        json_decref(ids);
        json_decref(paused);
        return NULL;
    }
    json_decref(ids);
    return paused;
}

static void forget_ids(struct run *r, json_t *snaps)
{
    const char *args[80] = {"forget"};
    int n = 1;
    size_t i;
    json_t *s;
    json_array_foreach(snaps, i, s) if (n < 78) args[n++] = str(s, "id");
    args[n] = NULL;
    if (n == 1)
        return;
    struct restic_io io = {.timeout_s = 300};
    struct sb_err e = {0};
    if (restic_simple(&r->o, args, &io, NULL, &e))
        log_warn("backup: cannot forget the snapshots of a failed run", "detail=\"%s\"", e.msg);
}

/* Snapshots a failed run made but could not forget (the target went away
 * after restic saved them) are forgotten by the plan's next run. */
static void sweep_failed(struct run *r, const char *plan_id)
{
    json_t *runs = NULL;
    struct sb_err e = {0};
    if (store_backup_list(r->e->store, "run", plan_id, 500, &runs, &e))
        return;
    char tag[80];
    snprintf(tag, sizeof tag, "plan:%s", plan_id);
    const char *args[] = {"snapshots", "--json", "--tag", tag, NULL};
    struct restic_io io = {.timeout_s = 300};
    struct buf b;
    buf_init(&b, 0);
    json_t *snaps = restic_simple(&r->o, args, &io, &b, &e) == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    buf_release(&b);
    json_t *stale = json_array();
    size_t i, k;
    json_t *s, *x;
    json_array_foreach(snaps, i, s)
    {
        json_t *v = snapshot_view(s);
        const char *run = str(v, "run_id");
        json_array_foreach(runs, k, x) if (run && str(x, "status") &&
                                           strcmp(str(x, "status"), "failed") == 0 &&
                                           strcmp(str(x, "id"), run) == 0)
            json_array_append_new(stale, json_pack("{s:s}", "id", str(s, "id")));
        json_decref(v);
    }
    if (json_array_size(stale)) {
        log_info("backup: forgetting the snapshots of failed runs", "plan=%s count=%zu", plan_id,
                 json_array_size(stale));
        forget_ids(r, stale);
    }
    json_decref(stale);
    json_decref(snaps);
    json_decref(runs);
}

static int run_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct run r = {.e = e, .job = job, .snapshots = json_array()};
    int64_t t0 = time_mono_ms();
    const char *plan_id = str(args, "plan_id");
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    int rc = store_backup_get(e->store, "plan", plan_id, &r.plan, err);
    json_t *repo = NULL, *stack = NULL, *vols = NULL;
    char socket[DOCKER_SOCKET_MAX] = "";
    if (rc) {
        json_decref(r.snapshots);
        return rc == SB_ENOTFOUND ? sb_error(err, SB_EINVAL, "the plan was deleted") : rc;
    }
    json_t *what = json_object_get(r.plan, "what");
    json_t *started =
        json_pack("{s:s,s:s,s:s,s:s,s:i}", "id", job_id(job), "plan_id", plan_id, "repository_id",
                  str(r.plan, "repository_id"), "trigger",
                  str(args, "trigger") ? str(args, "trigger") : "manual", "attempt", job_attempt(job));
    if (str(r.plan, "node_id"))
        json_object_set(started, "node_id", json_object_get(r.plan, "node_id"));
    rc = append(e, "backup_plan", plan_id, "backup.run_started", started, "success", &sys, err);
    json_decref(started);
    if (rc) {
        json_decref(r.plan);
        json_decref(r.snapshots);
        return rc;
    }
    job_progress(job, 0, "opening the repository");
    rc = store_backup_get(e->store, "repository", str(r.plan, "repository_id"), &repo, err);
    bool opened = false;
    if (rc == 0)
        opened = (rc = open_repo(e, repo, &r.o, err)) == 0;
    r.parts = json_is_true(json_object_get(what, "control_plane")) ? 2 : 0;
    if (rc == 0 && str(what, "stack_id")) {
        rc = store_stack_get(e->store, str(what, "stack_id"), &stack, err);
        if (rc == SB_ENOTFOUND)
            rc = sb_error(err, SB_ENOTFOUND, "the plan's stack was deleted");
        if (rc == 0)
            rc = docker_endpoint_for_node(e->docker, str(stack, "node_id"), socket, sizeof socket,
                                          (char[128]){0}, 128, err);
        if (rc == 0 && !(vols = stack_volumes(socket, stack, err)))
            rc = err->code ? err->code : SB_EUPSTREAM;
        r.parts += (int)json_array_size(vols);
    }
    if (rc == 0) {
        /* Locks left by a restic that was killed would stop check and prune. */
        const char *unlock[] = {"unlock", NULL};
        struct restic_io io = {.timeout_s = 120, .cancelled = run_cancelled, .ctx = &r};
        rc = restic_simple(&r.o, unlock, &io, NULL, err);
    }
    if (rc == 0)
        sweep_failed(&r, plan_id);
    if (rc == 0 && json_is_true(json_object_get(what, "control_plane")))
        rc = backup_control_plane(&r, err);
    json_int_t n_paused = 0;
    if (rc == 0 && stack) {
        json_t *paused = NULL;
        json_t *me = json_pack("{s:s,s:s,s:O}", "id", job_id(job), "plan_id", plan_id, "node_id",
                               json_object_get(stack, "node_id"));
        if (json_is_true(json_object_get(r.plan, "pause_services"))) {
            job_progress(job, r.parts ? 100 * r.part / r.parts : 0, "pausing the stack's containers");
            if (!(paused = pause_stack(e, me, socket, stack, err)))
                rc = err->code ? err->code : SB_EUPSTREAM;
        }
        if (rc == 0)
            rc = backup_volumes(&r, stack, vols, socket, err);
        /* Whatever became of the backup, what was paused goes on. */
        n_paused = (json_int_t)json_array_size(paused);
        unpause_all(socket, paused);
        struct sb_err e3 = {0};
        if (n_paused && record_paused(e, me, false, paused, "run", &e3))
            log_warn("backup: the unpause was not recorded", "run=%s detail=\"%s\"", job_id(job), e3.msg);
        json_decref(paused);
        json_decref(me);
    }
    bool checked = false;
    if (rc == 0) {
        json_t *ret = json_object_get(r.plan, "retention");
        const char *fa[16] = {"forget", "--prune", "--group-by", "paths", "--tag"};
        char plan_tag[80], keep[3][24];
        snprintf(plan_tag, sizeof plan_tag, "plan:%s", plan_id);
        fa[5] = plan_tag;
        int k = backups_retention_args(ret, fa + 6, keep);
        fa[6 + k] = NULL;
        if (k > 0) {
            job_progress(job, 96, "retention (restic forget --prune)");
            struct restic_io io = {.timeout_s = 3600, .cancelled = run_cancelled, .ctx = &r};
            rc = restic_simple(&r.o, fa, &io, NULL, err);
        }
    }
    if (rc == 0) {
        job_progress(job, 98, "restic check");
        char subset[40];
        snprintf(subset, sizeof subset, "--read-data-subset=%d%%", e->check_percent);
        const char *ca[] = {"check", e->check_percent > 0 ? subset : NULL, NULL};
        struct restic_io io = {.timeout_s = 3600, .cancelled = run_cancelled, .ctx = &r};
        rc = restic_simple(&r.o, ca, &io, NULL, err);
        checked = rc == 0;
    }
    int64_t ms = time_mono_ms() - t0;
    json_t *data;
    if (rc == 0) {
        data = json_pack("{s:s,s:s,s:O,s:I,s:I,s:I,s:b}", "id", job_id(job), "plan_id", plan_id, "snapshots",
                         r.snapshots, "bytes", (json_int_t)r.bytes, "added", (json_int_t)r.added,
                         "duration_ms", (json_int_t)ms, "checked", checked);
    } else {
        if (opened && json_array_size(r.snapshots))
            forget_ids(&r, r.snapshots);
        data = json_pack("{s:s,s:s,s:s,s:I}", "id", job_id(job), "plan_id", plan_id, "reason", err->msg,
                         "duration_ms", (json_int_t)ms);
    }
    if (n_paused)
        json_object_set_new(data, "paused_containers", json_integer(n_paused));
    if (str(r.plan, "node_id"))
        json_object_set(data, "node_id", json_object_get(r.plan, "node_id"));
    struct sb_err e2 = {0};
    /* One attempt only: even a cancelled or stopped run says how it ended. */
    if (append(e, "backup_plan", plan_id, rc ? "backup.run_failed" : "backup.run_succeeded", data,
               rc ? "failure" : "success", &sys, &e2) &&
        rc == 0)
        rc = e2.code, *err = e2;
    if (rc == 0)
        *result = json_deep_copy(data);
    json_decref(data);
    if (opened)
        opened_release(&r.o);
    json_decref(repo);
    json_decref(stack);
    json_decref(vols);
    json_decref(r.plan);
    json_decref(r.snapshots);
    json_decref(r.summary);
    /* A failed run is final: the next one (scheduled or asked) is a new run. */
    if (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT)
        rc = SB_EUPSTREAM;
    return rc;
}

/* ---- restore of a volume -------------------------------------------------------- */

struct restore {
    struct run r;
    char path[400];
};

static int drain_to_engine(void *ctx, int fd, struct sb_err *err)
{
    struct restore *x = ctx;
    long status = 0;
    int rc = docker_put_from_fd(x->r.socket, x->path, "application/x-tar", fd, &status, err);
    /* Read what is left so restic is not killed by a closed pipe midway. */
    char sink[8192];
    while (read(fd, sink, sizeof sink) > 0)
        ;
    return rc;
}

static int find_snapshot(struct opened *o, const char *id, json_t **snap, struct sb_err *err)
{
    const char *args[] = {"snapshots", "--json", id, NULL};
    struct restic_io io = {.timeout_s = 120};
    struct buf b;
    buf_init(&b, 0);
    int rc = restic_simple(o, args, &io, &b, err);
    json_t *arr = rc == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    buf_release(&b);
    if (rc == 0 && json_array_size(arr) != 1)
        rc = sb_error(err, SB_ENOTFOUND, "no such snapshot");
    *snap = rc == 0 ? snapshot_view(json_array_get(arr, 0)) : NULL;
    json_decref(arr);
    return rc;
}

static int restore_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct restore x = {.r = {.e = e, .job = job}};
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    const char *repo_id = str(args, "repository_id"), *snap_id = str(args, "snapshot_id"),
               *node_id = str(args, "node_id"), *volume = str(args, "volume");
    json_t *repo = NULL, *snap = NULL;
    char socket[DOCKER_SOCKET_MAX], cid[80] = "";
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    bool opened = false;
    if (rc == 0)
        opened = (rc = open_repo(e, repo, &x.r.o, err)) == 0;
    job_progress(job, 5, "finding the snapshot");
    if (rc == 0)
        rc = find_snapshot(&x.r.o, snap_id, &snap, err);
    const char *src = snap ? str(snap, "volume") : NULL;
    if (rc == 0 && !src)
        rc = sb_error(err, SB_EINVAL, "snapshot %s is not a volume's", snap_id);
    if (rc == 0)
        rc = docker_endpoint_for_node(e->docker, node_id, socket, sizeof socket, (char[128]){0}, 128, err);
    if (rc == 0) {
        /* The target volume: made if missing. */
        char p[300];
        snprintf(p, sizeof p, "/volumes/%s", volume);
        struct sb_err e1 = {0};
        if (docker_call(socket, "GET", p, NULL, 0, NULL, NULL, &e1) == SB_ENOTFOUND) {
            json_t *body = json_pack("{s:s,s:s}", "Name", volume, "Driver", "local");
            rc = docker_call(socket, "POST", "/volumes/create", body, 0, NULL, NULL, err);
            json_decref(body);
        }
    }
    if (rc == 0) {
        /* Empty it with a helper that mounts it where the archive's top
         * directory lands, then extract the snapshot's tar there. */
        char bind[600], script[700];
        snprintf(bind, sizeof bind, "%s:/restore/%s", volume, src);
        snprintf(script, sizeof script, "cd /restore/%s && rm -rf -- * .[!.]* ..?*; true", src);
        job_progress(job, 20, "emptying the volume");
        rc = helper_create(e, socket, json_pack("[s]", bind), json_pack("[s,s,s]", "sh", "-c", script),
                           "restore", cid, sizeof cid, err);
        char p[300];
        if (rc == 0) {
            snprintf(p, sizeof p, "/containers/%s/start", cid);
            rc = docker_call(socket, "POST", p, NULL, 0, NULL, NULL, err);
        }
        json_t *w = NULL;
        if (rc == 0) {
            snprintf(p, sizeof p, "/containers/%s/wait", cid);
            rc = docker_call(socket, "POST", p, NULL, 600000, &w, NULL, err);
        }
        if (rc == 0 && json_integer_value(json_object_get(w, "StatusCode")) != 0)
            rc = sb_error(err, SB_EUPSTREAM, "emptying volume %s failed", volume);
        json_decref(w);
    }
    if (rc == 0) {
        job_progress(job, 40, "restic dump into the volume");
        char file[300];
        snprintf(file, sizeof file, "/%s.tar", src);
        snprintf(x.path, sizeof x.path, "/containers/%s/archive?path=/restore", cid);
        x.r.socket = socket;
        const char *da[] = {"dump", snap_id, file, NULL};
        struct restic_io io = {.drain = drain_to_engine, .ctx = &x, .cancelled = run_cancelled};
        struct restic_result res;
        rc = restic_run(&x.r.o.t, da, &io, &res, err);
        if (rc == 0 && res.drain_rc) {
            *err = res.drain_err;
            rc = res.drain_rc;
        } else if (rc == 0 && res.exit_code != 0) {
            char line[300];
            restic_error_line(&res, line, sizeof line);
            rc = sb_error(err, SB_EUPSTREAM, "restic dump: %s", line);
        }
        restic_result_release(&res);
    }
    if (cid[0])
        helper_remove(socket, cid);
    json_t *data = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", job_id(job), "repository_id", repo_id,
                             "snapshot_id", snap_id, "node_id", node_id, "volume", volume);
    if (rc)
        json_object_set_new(data, "reason", json_string(err->msg));
    struct sb_err e2 = {0};
    append(e, "backup_repository", repo_id, rc ? "backup.restore_failed" : "backup.restored", data,
           rc ? "failure" : "success", &sys, &e2);
    if (rc == 0)
        *result = json_deep_copy(data);
    json_decref(data);
    if (opened)
        opened_release(&x.r.o);
    json_decref(repo);
    json_decref(snap);
    if (rc == SB_EUNAVAIL || rc == SB_ETIMEOUT)
        rc = SB_EUPSTREAM;
    return rc;
}

static int check_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct run r = {.e = e, .job = job};
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    const char *repo_id = str(args, "repository_id");
    json_t *repo = NULL;
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    bool opened = false;
    if (rc == 0)
        opened = (rc = open_repo(e, repo, &r.o, err)) == 0;
    struct restic_io io = {.timeout_s = 3600, .cancelled = run_cancelled, .ctx = &r};
    if (rc == 0) {
        const char *unlock[] = {"unlock", NULL};
        rc = restic_simple(&r.o, unlock, &io, NULL, err);
    }
    if (rc == 0) {
        job_progress(job, 10, "restic check");
        const char *ca[] = {"check", NULL};
        rc = restic_simple(&r.o, ca, &io, NULL, err);
    }
    json_t *data = json_pack("{s:s,s:b}", "id", repo_id, "ok", rc == 0);
    if (rc)
        json_object_set_new(data, "reason", json_string(err->msg));
    struct sb_err e2 = {0};
    append(e, "backup_repository", repo_id, "backup.checked", data, rc ? "failure" : "success", &sys, &e2);
    if (rc == 0)
        *result = json_deep_copy(data);
    json_decref(data);
    if (opened)
        opened_release(&r.o);
    json_decref(repo);
    return rc == SB_EUNAVAIL || rc == SB_ETIMEOUT ? SB_EUPSTREAM : rc;
}

/* ---- checkpoints off the box ---------------------------------------------------- */

int backups_checkpoint_publish(struct backups_env *e, json_t *doc, struct sb_err *err)
{
    json_t *repos = NULL;
    int rc = 0;
    if (e->checkpoint_post_url && *e->checkpoint_post_url) {
        /* The URL stays out of the job's arguments: it may hold a token. */
        json_t *args = json_pack("{s:O}", "checkpoint", doc);
        struct jobs_new in = {.kind = "backup.checkpoint_post",
                              .target = "audit/checkpoints",
                              .concurrency_key = "audit/checkpoint-post",
                              .args = args,
                              .actor = {.kind = "system", .name = "audit-checkpoint"}};
        json_t *job = NULL;
        rc = jobs_enqueue(e->jobs, &in, &job, err);
        json_decref(job);
        json_decref(args);
    }
    int lrc = store_backup_list(e->store, "repository", NULL, 0, &repos, err);
    if (lrc)
        rc = lrc;
    size_t i;
    json_t *r;
    struct event_actor sys = {.kind = "system", .name = "audit-checkpoint"};
    json_array_foreach(repos, i, r)
    {
        char target[64];
        snprintf(target, sizeof target, "backup_repository/%s", str(r, "id"));
        json_t *args = json_pack("{s:s,s:O}", "repository_id", str(r, "id"), "checkpoint", doc);
        struct jobs_new in = {.kind = "backup.checkpoint",
                              .target = target,
                              .concurrency_key = target,
                              .args = args,
                              .actor = sys};
        json_t *job = NULL;
        if (jobs_enqueue(e->jobs, &in, &job, err))
            rc = err->code;
        json_decref(job);
        json_decref(args);
    }
    json_decref(repos);
    return rc;
}

struct text_feed {
    struct run r;
    char *text;
};

static int feed_text(void *ctx, int fd, struct sb_err *err)
{
    struct text_feed *t = ctx;
    if (write_all(fd, t->text, strlen(t->text)))
        return sb_error(err, SB_EUPSTREAM, "restic stopped reading");
    return 0;
}

static int checkpoint_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct text_feed t = {.r = {.e = e, .job = job}};
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    const char *repo_id = str(args, "repository_id");
    json_t *cp = json_object_get(args, "checkpoint");
    json_int_t seq = json_integer_value(json_object_get(cp, "seq"));
    json_t *repo = NULL;
    int rc = store_backup_get(e->store, "repository", repo_id, &repo, err);
    if (rc == SB_ENOTFOUND) {
        json_decref(repo);
        return 0; /* the repository went: nothing to write */
    }
    bool opened = false;
    if (rc == 0)
        opened = (rc = open_repo(e, repo, &t.r.o, err)) == 0;
    json_t *snap = NULL;
    if (rc == 0) {
        t.text = json_dumps(cp, JSON_COMPACT | JSON_SORT_KEYS);
        char fname[80], seqtag[40];
        snprintf(fname, sizeof fname, "--stdin-filename=checkpoint-%lld.json", (long long)seq);
        snprintf(seqtag, sizeof seqtag, "seq:%lld", (long long)seq);
        const char *ba[] = {"backup", "--json",          "--stdin", fname,  "--tag", "serverbox",
                            "--tag",  "part:checkpoint", "--tag",   seqtag, NULL};
        struct restic_io io = {
            .feed = feed_text, .ctx = &t, .line = run_line, .cancelled = run_cancelled, .timeout_s = 600};
        struct restic_result res;
        t.r.step = "checkpoint";
        rc = restic_run(&t.r.o.t, ba, &io, &res, err);
        if (rc == 0 && res.exit_code != 0) {
            char line[300];
            restic_error_line(&res, line, sizeof line);
            rc = sb_error(err, SB_EUPSTREAM, "restic backup of the checkpoint: %s", line);
        }
        restic_result_release(&res);
        free(t.text);
        snap = json_incref(json_object_get(t.r.summary, "snapshot_id"));
    }
    json_t *data = json_pack("{s:s,s:I}", "id", repo_id, "seq", seq);
    if (snap)
        json_object_set(data, "snapshot_id", snap);
    if (rc)
        json_object_set_new(data, "reason", json_string(err->msg));
    struct sb_err e2 = {0};
    append(e, "backup_repository", repo_id, rc ? "backup.checkpoint_failed" : "backup.checkpoint_written",
           data, rc ? "failure" : "success", &sys, &e2);
    if (rc == 0)
        *result = json_deep_copy(data);
    json_decref(data);
    json_decref(snap);
    json_decref(t.r.summary);
    if (opened)
        opened_release(&t.r.o);
    json_decref(repo);
    /* A repository down for a while gets the checkpoint on a retry. */
    return rc == SB_EUPSTREAM ? SB_EUNAVAIL : rc;
}

static size_t post_discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* POSTs the checkpoint to --checkpoint-post-url: any 2xx is delivered;
 * anything else, or no answer, is retried by the job (max_attempts). The
 * URL is never logged or recorded (it may hold a token); events carry the
 * seq and the receiver's status. */
static int checkpoint_post_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    json_t *cp = json_object_get(args, "checkpoint");
    json_int_t seq = json_integer_value(json_object_get(cp, "seq"));
    if (!e->checkpoint_post_url || !*e->checkpoint_post_url)
        return 0; /* the option went with a restart: nothing to send */
    char *body = json_dumps(cp, JSON_COMPACT | JSON_SORT_KEYS);
    CURL *h = curl_easy_init();
    long status = 0;
    CURLcode cc = CURLE_FAILED_INIT;
    if (h && body) {
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_URL, e->checkpoint_post_url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, post_discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hd);
    }
    if (h)
        curl_easy_cleanup(h);
    free(body);
    bool ok = cc == CURLE_OK && status >= 200 && status < 300;
    json_t *data = json_pack("{s:I,s:i}", "seq", seq, "status", (int)status);
    int rc = 0;
    if (!ok) {
        /* curl's own words name no part of the URL beyond the host. */
        rc = cc != CURLE_OK ? sb_error(err, SB_EUNAVAIL, "the checkpoint receiver did not answer (%s)",
                                       curl_easy_strerror(cc))
                            : sb_error(err, SB_EUNAVAIL, "the checkpoint receiver answered %ld", status);
        json_object_set_new(data, "reason", json_string(err->msg));
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)seq);
    struct sb_err e2 = {0};
    append(e, "audit_checkpoint", id, ok ? "backup.checkpoint_posted" : "backup.checkpoint_post_failed", data,
           ok ? "success" : "failure", &sys, &e2);
    if (ok)
        *result = json_deep_copy(data);
    json_decref(data);
    return rc;
}

/* ---- the restore test ------------------------------------------------------------
 * The snapshots of the plan's last successful run, restored where they hurt
 * nothing: the database dump into a scratch database (created and dropped
 * here) whose audit chain is then verified; the key files' archive read
 * back; each volume into a scratch volume through a helper, its files'
 * sha256 compared with those of the snapshot's own tar. */

struct rtest {
    struct restore x; /* first: run_cancelled and drain_to_engine take it */
    json_t *pgenv;    /* the scratch database, as PG* variables */
    json_t *sums;     /* what drain_sums read */
};

/* {path below the top directory: {sha256, size}} of each regular file of
 * the tar stream on fd (libarchive: ustar, pax and GNU headers). */
static int tar_sums(int fd, json_t **out, struct sb_err *err)
{
    *out = json_object();
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK)
        rc = sb_error(err, SB_EUPSTREAM, "not a tar stream: %s", archive_error_string(a));
    struct archive_entry *en;
    while (rc == 0) {
        int r = archive_read_next_header(a, &en);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = sb_error(err, SB_EUPSTREAM, "bad tar stream: %s", archive_error_string(a));
            break;
        }
        if (archive_entry_filetype(en) != AE_IFREG)
            continue;
        const char *path = archive_entry_pathname(en);
        const char *rel = path ? strchr(path, '/') : NULL;
        rel = rel ? rel + 1 : path ? path : "";
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        json_int_t size = 0;
        const void *blk;
        size_t len;
        la_int64_t off;
        while ((r = archive_read_data_block(a, &blk, &len, &off)) == ARCHIVE_OK) {
            crypto_hash_sha256_update(&st, blk, len);
            size += (json_int_t)len;
        }
        if (r != ARCHIVE_EOF) {
            rc = sb_error(err, SB_EUPSTREAM, "bad tar stream at %s: %s", rel, archive_error_string(a));
            break;
        }
        uint8_t h[32];
        char hex[65];
        crypto_hash_sha256_final(&st, h);
        hex_encode(h, 32, hex);
        json_object_set_new(*out, rel, json_pack("{s:s,s:I}", "sha256", hex, "size", size));
    }
    archive_read_free(a);
    /* Read what is left so the writer is not cut off midway. */
    char sink[8192];
    while (read(fd, sink, sizeof sink) > 0)
        ;
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int drain_sums(void *ctx, int fd, struct sb_err *err)
{
    struct rtest *t = ctx;
    return tar_sums(fd, &t->sums, err);
}

static int drain_scratch_db(void *ctx, int fd, struct sb_err *err)
{
    struct rtest *t = ctx;
    return backups_pg_restore(t->pgenv, fd, true, err);
}

/* `restic dump <snap> <file>` into drain (ctx = t). restic's own error
 * first: what it could not read is why the reader failed too. */
static int dump_into(struct rtest *t, const char *snap, const char *file,
                     int (*drain)(void *, int, struct sb_err *), struct sb_err *err)
{
    const char *da[] = {"dump", snap, file, NULL};
    struct restic_io io = {.drain = drain, .ctx = t, .cancelled = run_cancelled, .timeout_s = 6 * 3600};
    struct restic_result res;
    int rc = restic_run(&t->x.r.o.t, da, &io, &res, err);
    if (rc == 0 && res.exit_code != 0) {
        char line[200];
        restic_error_line(&res, line, sizeof line);
        rc = sb_error(err, SB_EUPSTREAM, "restic dump of %.12s: %s", snap, line);
    } else if (rc == 0 && res.drain_rc) {
        *err = res.drain_err;
        rc = res.drain_rc;
    }
    restic_result_release(&res);
    return rc;
}

static int test_database(struct rtest *t, const char *snap, json_t *detail, struct sb_err *err)
{
    struct backups_env *e = t->x.r.e;
    const char *admin =
        e->scratch_database_url && *e->scratch_database_url ? e->scratch_database_url : e->database_url;
    char name[64], rnd[17];
    random_hex(rnd, 8);
    snprintf(name, sizeof name, "serverbox_restore_test_%s", rnd);
    job_progress(t->x.r.job, -1, "database: a scratch database");
    int rc = store_scratch_database(admin, name, true, err);
    if (rc) {
        char msg[200];
        sb_strlcpy(msg, err->msg, sizeof msg);
        return sb_error(err, rc, "cannot create a scratch database (--backup-scratch-database-url): %s", msg);
    }
    rc = store_url_env(admin, &t->pgenv, err);
    if (rc == 0) {
        json_object_set_new(t->pgenv, "PGDATABASE", json_string(name));
        job_progress(t->x.r.job, -1, "database: restic dump | pg_restore");
        rc = dump_into(t, snap, "/serverbox.dump", drain_scratch_db, err);
    }
    if (rc == 0) {
        /* The audit chain of what was restored, recomputed from its rows. */
        job_progress(t->x.r.job, -1, "database: verifying the audit chain");
        struct buf url;
        buf_init(&url, 8192);
        struct store_verify_result v;
        rc = store_url_with_database(admin, name, &url, err);
        if (rc == 0)
            rc = store_verify_chain(url.data, &v, err);
        crypto_buf_wipe(&url);
        if (rc == 0 && v.first_bad_seq)
            rc = sb_error(err, SB_EUPSTREAM, "the restored audit chain is broken at seq %lld: %s",
                          (long long)v.first_bad_seq, v.reason);
        else if (rc == 0 && v.checked == 0)
            rc = sb_error(err, SB_EUPSTREAM, "the restored database holds no event");
        /* And it is this control plane's history: the live chain has the
         * same hash at the restored head (else one of them was rewritten). */
        uint8_t live[32];
        int lrc = rc == 0 ? store_event_hash_at(e->store, v.head_seq, live, err) : 0;
        if (rc == 0 && lrc == SB_ENOTFOUND)
            rc = sb_error(err, SB_EUPSTREAM, "the restored chain is longer than the live one (seq %lld)",
                          (long long)v.head_seq);
        else if (rc == 0 && lrc)
            rc = lrc;
        else if (rc == 0 && memcmp(live, v.head_hash, 32) != 0)
            rc = sb_error(
                err, SB_EUPSTREAM,
                "the restored chain's hash at seq %lld differs from the live chain's: one of them was "
                "rewritten",
                (long long)v.head_seq);
        if (rc == 0) {
            char hash[65];
            hex_encode(v.head_hash, 32, hash);
            json_object_set_new(detail, "events", json_integer(v.checked));
            json_object_set_new(detail, "head_hash", json_string(hash));
        }
    }
    struct sb_err e2 = {0};
    if (store_scratch_database(admin, name, false, &e2))
        log_warn("backup: the restore test's scratch database was not dropped", "database=%s detail=\"%s\"",
                 name, e2.msg);
    json_decref(t->pgenv);
    t->pgenv = NULL;
    return rc;
}

static int count_key(void *ctx, const char *name, const char *data, size_t len, unsigned mode)
{
    (void)data, (void)len, (void)mode;
    int *n = ctx;
    *n += strcmp(name, "master.key") == 0 ? 1000 : 1;
    return 0;
}

static int test_keys(struct rtest *t, const char *snap, json_t *detail, struct sb_err *err)
{
    const char *da[] = {"dump", snap, "/keys.tar", NULL};
    struct restic_io io = {.cancelled = run_cancelled, .ctx = t, .timeout_s = 600};
    struct buf tar;
    buf_init(&tar, 0);
    job_progress(t->x.r.job, -1, "key files: restic dump");
    int rc = restic_simple(&t->x.r.o, da, &io, &tar, err);
    int n = 0;
    if (rc == 0)
        rc = backups_tar_each(tar.data, tar.len, count_key, &n, err);
    crypto_buf_wipe(&tar);
    if (rc == 0 && n < 1000)
        rc = sb_error(err, SB_EUPSTREAM, "the key files' archive holds no master.key");
    if (rc == 0)
        json_object_set_new(detail, "files", json_integer(n - 999));
    return rc;
}

/* The engine's archive of `path` in container `cid`, summed as it streams. */
struct sums_reader {
    int fd, rc;
    json_t *sums;
    struct sb_err err;
};

static void *sums_reader_main(void *arg)
{
    struct sums_reader *s = arg;
    s->rc = tar_sums(s->fd, &s->sums, &s->err);
    return NULL;
}

static int engine_sums(const char *socket, const char *path, json_t **out, struct sb_err *err)
{
    *out = NULL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC))
        return sb_error(err, SB_EINTERNAL, "pipe failed");
    struct sums_reader s = {.fd = pfd[0]};
    pthread_t th;
    if (pthread_create(&th, NULL, sums_reader_main, &s)) {
        close(pfd[0]);
        close(pfd[1]);
        return sb_error(err, SB_EINTERNAL, "cannot start a thread");
    }
    long status = 0;
    int rc = docker_get_to_fd(socket, path, pfd[1], &status, err);
    close(pfd[1]);
    pthread_join(th, NULL);
    close(pfd[0]);
    if (rc == 0 && s.rc) {
        *err = s.err;
        rc = s.rc;
    }
    if (rc == 0)
        *out = s.sums;
    else
        json_decref(s.sums);
    return rc;
}

/* Whether the restored files are the snapshot's: same names, sizes, sha256. */
static int compare_sums(json_t *want, json_t *got, struct sb_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v)
    {
        json_t *g = json_object_get(got, k);
        if (!g)
            return sb_error(err, SB_EUPSTREAM,
                            "file %.120s of the snapshot is missing from the restored volume", k);
        if (!json_equal(g, v))
            return sb_error(err, SB_EUPSTREAM,
                            "file %.120s differs after the restore (sha256 %.12s, not %.12s)", k,
                            str(g, "sha256"), str(v, "sha256"));
    }
    json_object_foreach(got, k, v) if (!json_object_get(want, k)) return sb_error(
        err, SB_EUPSTREAM, "the restored volume has a file %.120s the snapshot does not", k);
    return 0;
}

static int test_volume(struct rtest *t, const char *snap_id, json_t *detail, struct sb_err *err)
{
    struct backups_env *e = t->x.r.e;
    json_t *snap = NULL;
    int rc = find_snapshot(&t->x.r.o, snap_id, &snap, err);
    const char *src = snap ? str(snap, "volume") : NULL, *node = snap ? str(snap, "node_id") : NULL;
    if (rc == 0 && (!src || !node || !volume_name_ok(src)))
        rc = sb_error(err, SB_EUPSTREAM, "snapshot %.12s names no volume or node", snap_id);
    char socket[DOCKER_SOCKET_MAX], cid[80] = "", scratch[80], rnd[17], p[600];
    random_hex(rnd, 8);
    snprintf(scratch, sizeof scratch, "serverbox-restore-test-%s", rnd);
    bool made = false;
    if (rc == 0)
        rc = docker_endpoint_for_node(e->docker, node, socket, sizeof socket, (char[128]){0}, 128, err);
    json_t *want = NULL, *got = NULL;
    if (rc == 0) {
        job_progress(t->x.r.job, -1, "volume: the snapshot's files (restic dump)");
        snprintf(p, sizeof p, "/%s.tar", src);
        rc = dump_into(t, snap_id, p, drain_sums, err);
        want = t->sums;
        t->sums = NULL;
    }
    if (rc == 0) {
        json_t *body = json_pack("{s:s,s:s,s:{s:s}}", "Name", scratch, "Driver", "local", "Labels",
                                 "serverbox.backup", "restore-test");
        rc = docker_call(socket, "POST", "/volumes/create", body, 0, NULL, NULL, err);
        json_decref(body);
        made = rc == 0;
    }
    if (rc == 0) {
        snprintf(p, sizeof p, "%s:/restore/%s", scratch, src);
        rc = helper_create(e, socket, json_pack("[s]", p), NULL, "restore-test", cid, sizeof cid, err);
    }
    if (rc == 0) {
        job_progress(t->x.r.job, -1, "volume: restic dump into a scratch volume");
        snprintf(t->x.path, sizeof t->x.path, "/containers/%s/archive?path=/restore", cid);
        t->x.r.socket = socket;
        snprintf(p, sizeof p, "/%s.tar", src);
        rc = dump_into(t, snap_id, p, drain_to_engine, err);
    }
    if (rc == 0) {
        job_progress(t->x.r.job, -1, "volume: comparing the restored files");
        snprintf(p, sizeof p, "/containers/%s/archive?path=/restore/%s", cid, src);
        rc = engine_sums(socket, p, &got, err);
    }
    if (rc == 0)
        rc = compare_sums(want, got, err);
    if (rc == 0) {
        json_object_set_new(detail, "files", json_integer((json_int_t)json_object_size(want)));
        json_object_set_new(detail, "volume", json_string(src));
    }
    if (cid[0])
        helper_remove(socket, cid);
    if (made) {
        snprintf(p, sizeof p, "/volumes/%s?force=1", scratch);
        struct sb_err e2 = {0};
        if (docker_call(socket, "DELETE", p, NULL, 0, NULL, NULL, &e2))
            log_warn("backup: the restore test's scratch volume was not removed", "volume=%s detail=\"%s\"",
                     scratch, e2.msg);
    }
    json_decref(want);
    json_decref(got);
    json_decref(snap);
    return rc;
}

int backups_plan_restore_test(struct backups_env *e, json_t *plan, const char *trigger,
                              const struct event_actor *actor, json_t **job, struct sb_err *err)
{
    return plan_job(e, "backup.restore_test", plan, trigger, actor, job, err);
}

static int restore_test_handler(struct job_ctx *job, json_t *args, json_t **result, struct sb_err *err)
{
    struct backups_env *e = job_kind_ctx(job);
    struct rtest t = {.x = {.r = {.e = e, .job = job}}};
    struct event_actor sys = {.kind = "system", .id = job_id(job), .name = "backups"};
    const char *plan_id = str(args, "plan_id");
    int64_t t0 = time_mono_ms();
    json_t *plan = NULL, *runs = NULL, *repo = NULL, *run = NULL, *tested = json_array();
    int rc = store_backup_get(e->store, "plan", plan_id, &plan, err);
    if (rc) {
        json_decref(tested);
        return rc == SB_ENOTFOUND ? sb_error(err, SB_EINVAL, "the plan was deleted") : rc;
    }
    job_progress(job, 0, "finding the last successful run");
    rc = store_backup_list(e->store, "run", plan_id, 200, &runs, err);
    size_t i;
    json_t *x;
    json_array_foreach(runs, i, x) if (!run && str(x, "status") && strcmp(str(x, "status"), "succeeded") == 0)
        run = x;
    if (rc == 0 && !run)
        rc = sb_error(err, SB_ENOTFOUND, "the plan has no successful run to restore");
    bool opened = false;
    if (rc == 0)
        rc = store_backup_get(e->store, "repository", str(plan, "repository_id"), &repo, err);
    if (rc == 0)
        opened = (rc = open_repo(e, repo, &t.x.r.o, err)) == 0;
    const char *failed_snap = NULL;
    json_t *snaps = json_object_get(run, "snapshots");
    size_t n = json_array_size(snaps);
    json_array_foreach(snaps, i, x)
    {
        if (rc)
            break;
        const char *id = str(x, "id"), *part = str(x, "part");
        if (!id || !part)
            continue;
        char step[200];
        snprintf(step, sizeof step, "%s (%zu of %zu)", part, i + 1, n);
        job_progress(job, (int)(100 * i / (n ? n : 1)), step);
        json_t *detail = json_pack("{s:s,s:s}", "id", id, "part", part);
        if (strcmp(part, "database") == 0)
            rc = test_database(&t, id, detail, err);
        else if (strcmp(part, "keys") == 0)
            rc = test_keys(&t, id, detail, err);
        else if (strncmp(part, "volume:", 7) == 0)
            rc = test_volume(&t, id, detail, err);
        json_object_set_new(detail, "ok", json_boolean(rc == 0));
        json_array_append_new(tested, detail);
        if (rc)
            failed_snap = id;
    }
    int64_t ms = time_mono_ms() - t0;
    const char *first = json_array_size(tested) ? str(json_array_get(tested, 0), "id") : NULL;
    const char *snap = failed_snap ? failed_snap : first;
    json_t *data =
        json_pack("{s:s,s:s,s:o,s:O,s:I,s:s}", "id", job_id(job), "plan_id", plan_id, "snapshot",
                  snap ? json_string(snap) : json_null(), "snapshots", tested, "duration_ms", (json_int_t)ms,
                  "trigger", str(args, "trigger") ? str(args, "trigger") : "manual");
    if (run)
        json_object_set(data, "run_id", json_object_get(run, "id"));
    if (str(plan, "node_id"))
        json_object_set(data, "node_id", json_object_get(plan, "node_id"));
    if (rc)
        json_object_set_new(data, "reason", json_string(err->msg));
    struct sb_err e2 = {0};
    if (append(e, "backup_plan", plan_id, rc ? "backup.restore_test_failed" : "backup.restore_test_succeeded",
               data, rc ? "failure" : "success", &sys, &e2) &&
        rc == 0)
        rc = e2.code, *err = e2;
    if (rc == 0)
        *result = json_deep_copy(data);
    json_decref(data);
    json_decref(tested);
    if (opened)
        opened_release(&t.x.r.o);
    json_decref(repo);
    json_decref(runs);
    json_decref(plan);
    return rc == SB_EUNAVAIL || rc == SB_ETIMEOUT ? SB_EUPSTREAM : rc;
}

/* ---- the schedule ------------------------------------------------------------------ */

/* Fires the plan's cron field when its time has come: the event first (a
 * daemon dying between the two misses one rather than doing it twice), then
 * the job. */
static void fire(struct backups_env *e, json_t *p, int64_t now, bool test)
{
    struct event_actor sys = {.kind = "system", .name = "backup-schedule"};
    struct sb_err err = {0};
    char at[40];
    time_format_rfc3339(now - now % 60000000, at, sizeof at);
    json_t *data = json_pack("{s:s,s:s}", "id", str(p, "id"), "at", at);
    if (str(p, "node_id"))
        json_object_set(data, "node_id", json_object_get(p, "node_id"));
    int rc = append(e, "backup_plan", str(p, "id"), test ? "backup.restore_test_fired" : "backup.plan_fired",
                    data, "success", &sys, &err);
    json_decref(data);
    json_t *job = NULL;
    if (rc == 0 && (test ? backups_plan_restore_test(e, p, "schedule", &sys, &job, &err)
                         : backups_plan_run(e, p, "schedule", &sys, &job, &err)))
        log_warn("backup: a scheduled job was not queued", "plan=%s kind=%s detail=\"%s\"", str(p, "id"),
                 test ? "restore_test" : "run", err.msg);
    json_decref(job);
}

/* Containers a run paused and whose daemon died before unpausing them
 * (the run is no longer running, its paused set still recorded). */
static void sweep_paused(struct backups_env *e)
{
    json_t *runs = NULL;
    struct sb_err err = {0};
    if (store_backup_list(e->store, "paused", NULL, 0, &runs, &err))
        return;
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r)
    {
        json_t *ids = json_object_get(r, "paused_containers");
        if (!json_array_size(ids))
            continue;
        char socket[DOCKER_SOCKET_MAX];
        if (docker_endpoint_for_node(e->docker, str(r, "node_id"), socket, sizeof socket, (char[128]){0}, 128,
                                     &err))
            continue; /* the node is away: next tick */
        log_info("backup: unpausing the containers of a run that ended without it", "run=%s count=%zu",
                 str(r, "id"), json_array_size(ids));
        unpause_all(socket, ids);
        record_paused(e, r, false, ids, "sweep", &err);
    }
    json_decref(runs);
}

static void schedule_tick(void *ctx)
{
    struct backups_env *e = ctx;
    sweep_paused(e);
    json_t *plans = NULL;
    struct sb_err err = {0};
    if (store_backup_list(e->store, "plan", NULL, 0, &plans, &err))
        return;
    int64_t now = time_now_us();
    size_t i;
    json_t *p;
    json_array_foreach(plans, i, p)
    {
        if (json_is_true(json_object_get(p, "paused")))
            continue; /* asked runs and tests still go */
        int64_t next = plan_next_us(p), next_test = plan_next_test_us(p);
        if (next && next <= now)
            fire(e, p, now, false);
        if (next_test && next_test <= now)
            fire(e, p, now, true);
    }
    json_decref(plans);
}

/* SFTP keys written for a restic call are removed after it; a daemon
 * killed meanwhile leaves them: remove those older than the longest run. */
static void sweep_tmp(const struct backups_env *e)
{
    char base[1024];
    snprintf(base, sizeof base, "%s/backups-tmp", e->data_dir);
    DIR *d = opendir(base);
    struct dirent *de;
    time_t limit = time(NULL) - 7 * 3600;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char dir[1300], f[1400];
        snprintf(dir, sizeof dir, "%s/%s", base, de->d_name);
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_mtime > limit)
            continue;
        snprintf(f, sizeof f, "%s/key", dir);
        unlink(f);
        snprintf(f, sizeof f, "%s/known_hosts", dir);
        unlink(f);
        if (rmdir(dir) == 0)
            log_info("backup: removed a stale SFTP key directory", "dir=\"%s\"", dir);
    }
    if (d)
        closedir(d);
}

int backups_register(struct jobs *j, struct backups_env *e, struct sb_err *err)
{
    sweep_tmp(e);
    struct jobs_kind run = {
        .kind = "backup.run", .run = run_handler, .ctx = e, .max_attempts = 1, .timeout_s = 6 * 3600};
    struct jobs_kind restore = {
        .kind = "backup.restore", .run = restore_handler, .ctx = e, .max_attempts = 1, .timeout_s = 6 * 3600};
    struct jobs_kind check = {
        .kind = "backup.check", .run = check_handler, .ctx = e, .max_attempts = 1, .timeout_s = 6 * 3600};
    struct jobs_kind checkpoint = {.kind = "backup.checkpoint",
                                   .run = checkpoint_handler,
                                   .ctx = e,
                                   .max_attempts = 5,
                                   .timeout_s = 900};
    struct jobs_kind post = {.kind = "backup.checkpoint_post",
                             .run = checkpoint_post_handler,
                             .ctx = e,
                             .max_attempts = 12,
                             .timeout_s = 60};
    struct jobs_kind rtest = {.kind = "backup.restore_test",
                              .run = restore_test_handler,
                              .ctx = e,
                              .max_attempts = 1,
                              .timeout_s = 6 * 3600};
    struct jobs_duty duty = {.name = "backup-schedule", .interval_ms = 5000, .run = schedule_tick, .ctx = e};
    int rc = jobs_register(j, &run, err);
    if (rc == 0)
        rc = jobs_register(j, &restore, err);
    if (rc == 0)
        rc = jobs_register(j, &check, err);
    if (rc == 0)
        rc = jobs_register(j, &checkpoint, err);
    if (rc == 0)
        rc = jobs_register(j, &rtest, err);
    if (rc == 0)
        rc = jobs_register(j, &post, err);
    if (rc == 0)
        rc = jobs_duty_register(j, &duty, err);
    return rc;
}
