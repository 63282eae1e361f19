/*
 * backups — the control plane and the stacks' named volumes, encrypted,
 * deduplicated and verified by restic (Debian `restic`), on local-directory
 * and SFTP repositories. See README.md in this folder.
 *
 * Repositories hold a restic password sealed with the master key; it
 * reaches restic only through a pipe read as --password-file /dev/fd/3:
 * never argv, the environment, logs, events or answers. Plans say what
 * (the control plane: pg_dump -Fc and the data dir's key files; a stack's
 * named volumes, read by a short-lived helper container) goes where, on a
 * cron schedule (the `backup-schedule` singleton duty), with a retention
 * applied by `restic forget --prune`. Runs and restores are jobs.
 *
 * Memory: every json_t ** out-parameter is a new reference the caller
 * decrefs. Inputs are borrowed.
 */
#ifndef SB_BACKUPS_H
#define SB_BACKUPS_H

#include "../crypto/crypto.h"
#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- cron (cron.c, pure) ---------------------------------------------------
 * Five fields (minute hour day-of-month month day-of-week; `*`, lists,
 * ranges, steps, names jan..dec and sun..sat, 7 = Sunday) or @hourly,
 * @daily, @weekly, @monthly, @yearly. UTC. As in cron, when both day
 * fields are restricted a day matching either fires. */
struct backups_cron {
    uint64_t minute; /* bit per minute 0..59 */
    uint32_t hour;   /* 0..23 */
    uint32_t dom;    /* 1..31 */
    uint16_t month;  /* 1..12 */
    uint8_t dow;     /* 0..6, Sunday = 0 */
    bool dom_star, dow_star;
};
/* SB_EINVAL naming "schedule" with what is wrong. */
int backups_cron_parse(const char *text, struct backups_cron *out, struct sb_err *err);
/* The first minute strictly after `after_us` (µs since the epoch) that the
 * schedule fires, or 0 when none within 5 years. */
int64_t backups_cron_next(const struct backups_cron *c, int64_t after_us);

/* ---- retention (pure) ------------------------------------------------------
 * {"daily":n,"weekly":n,"monthly":n} (each 0..1000, absent = 0): appends
 * the `restic forget` flags to argv (at most 6 entries, strings kept in
 * `store`, 3 x 24 bytes). Returns how many were appended; 0 = keep all. */
int backups_retention_check(json_t *retention, struct sb_err *err);
int backups_retention_args(json_t *retention, const char **argv, char store[3][24]);

/* ---- a small ustar writer and reader (tar.c, pure) -----------------------
 * For the data dir's key files: regular files only, names < 100 bytes. */
int backups_tar_add(struct buf *out, const char *name, const void *data, size_t len, unsigned mode);
void backups_tar_finish(struct buf *out);
/* Calls fn for each regular file of a ustar archive; SB_EINVAL if malformed. */
int backups_tar_each(const char *data, size_t len,
                     int (*fn)(void *ctx, const char *name, const char *data, size_t len, unsigned mode),
                     void *ctx, struct sb_err *err);

/* ---- restic (restic.c) -----------------------------------------------------
 * Where a repository is and how to open it. The password is only in memory
 * here. */
struct restic_target {
    const char *repo;         /* restic -r value: a path or sftp:user@host:/path */
    const char *password;     /* written to a pipe that restic reads as /dev/fd/3 */
    const char *sftp_command; /* -o sftp.command=… (no secret in it), or NULL */
    const char *cache_dir;    /* --cache-dir, or NULL for --no-cache */
};
struct restic_io {
    /* Runs on its own thread and writes restic's stdin to fd (closed after);
     * NULL = stdin is /dev/null. Its return value is in *feed_rc. */
    int (*feed)(void *ctx, int fd, struct sb_err *err);
    /* Runs on its own thread and reads restic's stdout from fd until EOF
     * (`restic dump`); NULL = stdout lines go to `line` and `out`. */
    int (*drain)(void *ctx, int fd, struct sb_err *err);
    void *ctx;
    void (*line)(void *ctx, const char *line); /* each stdout line (may be NULL) */
    bool (*cancelled)(void *ctx);              /* polled; true → SIGINT, then SIGKILL */
    int timeout_s;                             /* 0 = 24 h */
};
struct restic_result {
    int exit_code; /* restic's status; -1 when it did not exit by itself */
    int feed_rc, drain_rc;
    struct sb_err feed_err, drain_err;
    struct buf out;     /* stdout (capped at 8 MiB) unless drained */
    struct buf errtext; /* stderr (last 16 KiB) */
};
void restic_result_release(struct restic_result *r);
/* Runs `restic -r … --password-file /dev/fd/3 [--json] args…` with a clean
 * environment (PATH, HOME, RESTIC_PROGRESS_FPS). Returns 0 once it ran (its
 * status in r->exit_code) or the error that kept it from running. */
int restic_run(const struct restic_target *t, const char *const *args, const struct restic_io *io,
               struct restic_result *r, struct sb_err *err);
/* The last line of stderr that says something, for messages (into out). */
void restic_error_line(const struct restic_result *r, char *out, size_t len);

/* Spawns argv[0] (a PATH lookup) with env (NULL-terminated "K=V" strings)
 * and stdin/stdout set to the given fds (-1 = /dev/null) and stderr to
 * err_fd (-1 = /dev/null); every other fd closed. */
int backups_spawn(const char *const *argv, const char *const *env, int in_fd, int out_fd, int err_fd,
                  pid_t *pid, struct sb_err *err);
/* waitpid; the exit status, or 128 + signal. */
int backups_wait(pid_t pid);
/* pg_restore --single-transaction --exit-on-error --no-owner of the custom
 * format dump read from fd into the database the PG* variables of `pgenv`
 * name (store_url_env); --no-privileges too when asked (a scratch
 * database, made by another role). */
int backups_pg_restore(json_t *pgenv, int fd, bool no_privileges, struct sb_err *err);

/* ---- the service (service.c): repositories, plans, runs, restores ---------- */
struct docker;
struct jobs;
struct events_bus;

struct backups_env {
    struct store *store;
    struct docker *docker;
    struct jobs *jobs;
    const struct crypto_master_key *key;
    const char *data_dir;             /* restic cache, temporary SSH files, the key files backed up */
    const char *master_key_file;      /* the master key's file (backed up as master.key) */
    const char *database_url;         /* what pg_dump reads (the schema owner's URL) */
    const char *helper_image;         /* --backup-helper-image: mounts volumes for the archive API */
    int check_percent;                /* --backup-check-percent: restic check --read-data-subset after runs */
    const char *scratch_database_url; /* --backup-scratch-database-url: where restore tests make their
                                         scratch database (NULL = database_url) */
    const char *checkpoint_post_url;  /* --checkpoint-post-url: each checkpoint is POSTed there too */
};

/* Registers the job kinds backup.run {plan_id, trigger}, backup.restore_test
 * {plan_id, trigger}, backup.restore
 * {repository_id, snapshot_id, node_id, volume} and backup.check
 * {repository_id}, and the singleton duty backup-schedule. `e` must
 * outlive the jobs. */
int backups_register(struct jobs *j, struct backups_env *e, struct sb_err *err);

/* The repository as answered (never a secret). */
json_t *backups_repo_view(json_t *repo);
/* Validates {name, kind: local|sftp, path, host?, port?, user?,
 * private_key?, password}, initializes the repository (or opens an existing
 * one with that password), and records backup.repository_created with the
 * sealed secrets. SB_EINVAL naming the field; SB_EUPSTREAM when restic
 * cannot reach or open it; SB_ECONFLICT for a name taken. */
int backups_repo_create(struct backups_env *e, json_t *body, const struct event_actor *actor, json_t **out,
                        struct sb_err *err);
/* SB_ECONFLICT while a plan uses it. */
int backups_repo_delete(struct backups_env *e, const char *id, const struct event_actor *actor,
                        struct sb_err *err);
/* `restic snapshots --json`, each with part, plan_id, run_id, node_id and
 * volume from its tags. */
int backups_snapshots(struct backups_env *e, const char *repo_id, json_t **out, struct sb_err *err);

/* Validates {name, repository_id, control_plane?, stack_id?, volumes?,
 * schedule?, restore_test? (cron), retention?, pause_services? (docker pause
 * the stack's running containers while its volumes are read)} (the stack loaded by the caller and passed as
 * `stack`, may be NULL) and records backup.plan_created. */
int backups_plan_create(struct backups_env *e, json_t *body, json_t *stack, const struct event_actor *actor,
                        json_t **out, struct sb_err *err);
int backups_plan_delete(struct backups_env *e, const char *id, const struct event_actor *actor,
                        struct sb_err *err);
/* Changes {name?, schedule?, restore_test?, retention?, paused?,
 * pause_services?, volumes?}
 * of `plan` (its row; the caller checked the fields' names) and records
 * backup.plan_updated {id, changes} with only what differs (nothing changed:
 * no event). A changed schedule (or restore_test), or a plan resumed,
 * counts its next fire from now. SB_EINVAL naming the field. */
int backups_plan_update(struct backups_env *e, json_t *plan, json_t *body, const struct event_actor *actor,
                        json_t **out, struct sb_err *err);
/* The plan as answered, with next_run (RFC 3339 or null). */
json_t *backups_plan_view(json_t *plan);
/* Enqueues a run of the plan (trigger "manual" or "schedule"); *job for 202. */
int backups_plan_run(struct backups_env *e, json_t *plan, const char *trigger,
                     const struct event_actor *actor, json_t **job, struct sb_err *err);
/* Enqueues a restore test of the plan's last successful run (job
 * backup.restore_test {plan_id, trigger}): the database dump into a scratch
 * database whose audit chain is verified, the key files' archive read back,
 * each volume into a scratch volume whose files' sha256 are compared with
 * the snapshot's; backup.restore_test_succeeded / _failed {id, plan_id,
 * run_id, snapshot, snapshots, duration_ms, reason?}. Both scratches are
 * removed whatever the outcome. */
int backups_plan_restore_test(struct backups_env *e, json_t *plan, const char *trigger,
                              const struct event_actor *actor, json_t **job, struct sb_err *err);
/* Enqueues a volume restore: snapshot `snapshot_id` of repository into
 * `volume` on `node_id` (both default to the snapshot's own). */
int backups_restore(struct backups_env *e, const char *repo_id, const char *snapshot_id, const char *node_id,
                    const char *volume, const struct event_actor *actor, json_t **job, struct sb_err *err);
/* Enqueues `restic check` of a repository. */
int backups_check(struct backups_env *e, const char *repo_id, const struct event_actor *actor, json_t **job,
                  struct sb_err *err);

/* Checkpoints off the box: queues a backup.checkpoint job per repository
 * that writes the signed checkpoint `doc` (as GET /api/v1/audit/checkpoint
 * answers it; public) as a snapshot /checkpoint-<seq>.json tagged
 * part:checkpoint. */
int backups_checkpoint_publish(struct backups_env *e, json_t *doc, struct sb_err *err);

/* ---- the control plane, for `serverbox-core restore` (controlplane.c) ---- */
struct backups_restore_cli {
    const char *repo;            /* path or sftp:user@host:/path */
    const char *password;        /* the repository's password */
    const char *sftp_command;    /* or NULL */
    const char *snapshot;        /* a database snapshot id, or "latest" */
    const char *database_url;    /* an empty database (the schema owner) */
    const char *data_dir;        /* where the key files go (refuses to overwrite) */
    const char *master_key_file; /* where master.key goes; NULL = data_dir/master.key */
};
/* restic dump | pg_restore into the database, and the key files of the same
 * run into the data dir. Prints what it did to stdout. */
int backups_restore_control_plane(const struct backups_restore_cli *c, struct sb_err *err);

#endif
