/*
 * apps — GitOps apps: a git repository (branch, optional subdirectory)
 * fetched into a bare mirror with libgit2, its build detected (a Dockerfile
 * wins; else index.html gets a generated static Dockerfile), built on the
 * app's node through the Engine API (POST /build with a tar context made
 * with libarchive, through docker/, so the SSH bridge carries it to remote
 * nodes), run with the app's limits and environment, switched to behind a
 * health gate, and routed by Caddy through its admin API. One job per
 * deployment ("app.deploy", concurrency key app/<id>: one at a time per
 * app); each step is an app.deploy_step event; progress and the build log
 * go out on job/<id> and the log is kept with the deployment.
 *
 * Pure parts (config.c, detect.c, webhook.c): no I/O, unit-tested by
 * core/tests/test_apps.c. See README.md in this folder for the pipeline,
 * the cutover and what a failure leaves.
 *
 * Memory: every json_t ** out-parameter is a new reference the caller
 * decrefs; inputs are borrowed.
 */
#ifndef SB_APPS_H
#define SB_APPS_H

#include "../crypto/crypto.h"
#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define APPS_NAME_MAX        40
#define APPS_SECRET_MASK     "********"
#define APPS_LOG_MAX         ((size_t)256 << 10) /* bytes of a deployment's log kept */
#define APPS_CONTEXT_MAX     ((size_t)256 << 20) /* bytes of a build context */
#define APPS_CONTEXT_ENTRIES 100000
#define APPS_LABEL_APP       "serverbox.app"
#define APPS_LABEL_DEPLOY    "serverbox.deployment"
#define APPS_NETWORK         "serverbox-apps"

/* ---- configuration of an app (config.c, pure) --------------------------- */
/* An app name: 1-40 of [a-z0-9-], starting with a letter or digit (it names
 * the image repository serverbox/<name> and the containers). */
bool apps_name_ok(const char *s);
/* A branch name git accepts (git check-ref-format, for one component path). */
bool apps_branch_ok(const char *s);
/* Checks the fields of a create (create = true: name, node_id, repo_url
 * required) or update body and normalizes them into *out: name, repo_url,
 * branch ("main"), subdir (""), port (80), health_path ("/"),
 * health_timeout_s (60), domain (null), memory (bytes or null), nano_cpus
 * (from "cpus", or null), git_host_key (when given). An update gives only
 * the keys present. node_id is
 * copied as given (the caller checks it). SB_EINVAL naming the field. */
int apps_config_check(json_t *in, bool create, json_t **out, struct sb_err *err);
/* Whether a repository URL is fetched over ssh (ssh:// or user@host:path):
 * such an app has a deploy key. */
bool apps_repo_is_ssh(const char *url);
/* "SHA256:" + 43 base64 characters, as ssh-keygen -l prints a key. */
bool apps_host_key_ok(const char *s);

/* ---- detection (detect.c, pure) ---------------------------------------- */
struct apps_static_config {
    const char *image;   /* --app-static-image */
    const char *root;    /* --app-static-root: where the files go in the image */
    const char *command; /* --app-static-command: JSON array or shell words; NULL/"" = the image's own */
};
/* From the names at the top of the build directory (an array of strings):
 * "dockerfile" (the user's Dockerfile wins, *dockerfile NULL) or "static"
 * (index.html: *dockerfile a new generated one, malloc'd); SB_ENOTFOUND
 * with a message naming what was looked for. port is the app's port,
 * substituted for {port} in the static command. */
int apps_detect(json_t *names, const struct apps_static_config *sc, int port, const char **detector,
                char **dockerfile, struct sb_err *err);

/* ---- webhooks (webhook.c, pure) ---------------------------------------- */
/* GitHub: header "sha256=<64 hex>" = HMAC-SHA256(secret, body), compared in
 * constant time. */
bool apps_github_signature_ok(const char *secret, const void *body, size_t len, const char *header);
/* GitLab: X-Gitlab-Token equals the secret (constant time). */
bool apps_gitlab_token_ok(const char *secret, const char *header);
/* Whether a push payload's "ref" is refs/heads/<branch>. */
bool apps_push_matches(json_t *payload, const char *branch);

/* ---- the service (service.c, pipeline.c, caddy.c) ----------------------- */
struct docker;
struct jobs;

struct apps_env {
    struct store *store;
    struct docker *docker;
    struct jobs *jobs;
    const struct crypto_master_key *key;
    char mirrors[512];                 /* <data-dir>/apps: bare mirrors <id>.git */
    struct apps_static_config static_; /* the generated static Dockerfile */
    const char *caddy_admin; /* --app-caddy-admin: http://host:port or unix//path; NULL = no routes */
    const char *route_host;  /* --app-route-host: the address allocated ports listen on ("" = all) */
    int route_port_min, route_port_max; /* --app-route-ports "a-b" */
    const char *domain_listen;          /* --app-domain-listen: the server of domain routes (":80") */
    int build_timeout_s;                /* --app-build-timeout */
    int64_t build_memory;               /* --app-build-memory (bytes; 0 = none) */
};

/* Once, before any thread (libgit2's global state). */
void apps_global_init(void);
void apps_global_shutdown(void);

/* The app's sealed secrets: {"env":{name:value}, "webhook":"…"} (a new
 * object; empty parts when none). */
int apps_secrets_open(const struct apps_env *e, const char *app_id, json_t **out, struct sb_err *err);
int apps_secrets_seal(const struct apps_env *e, const char *app_id, json_t *secrets, struct sb_err *err);

/* A new deployment of `app` (its row): records app.deploy_requested
 * (deployment_id fresh) and enqueues the app.deploy job. kind "deploy"
 * (fetch and build) or "rollback" (`of` is the deployment whose image is
 * re-run, without building). trigger "manual" | "webhook" | "rollback".
 * *job is the job as GET /jobs/{id} shows it. */
int apps_deploy_request(const struct apps_env *e, json_t *app, const char *kind, const char *trigger,
                        json_t *of, const struct event_actor *actor, json_t *requested_by, json_t **job,
                        char deployment_id[37], struct sb_err *err);

/* Removes the app's containers on its node and its route; for delete. */
int apps_teardown(const struct apps_env *e, json_t *app, struct sb_err *err);

/* A route port for a new app without a domain: the lowest of the range no
 * other app holds (0 when routing is off). SB_ECONFLICT when all are taken. */
int apps_route_port_pick(const struct apps_env *e, int *port, struct sb_err *err);

/* Registers the job kinds app.deploy {app_id, deployment_id} and
 * app.retire {app_id, node_id, containers} (the replaced containers, after
 * a cutover). `e` must outlive the jobs. */
int apps_jobs_register(struct jobs *j, struct apps_env *e, struct sb_err *err);

/* ---- Caddy (caddy.c) ------------------------------------------------------ */
/* Points the app's route at 127.0.0.1:<upstream_port> in one config change
 * (created on first use: a server of its own on route_port, or a host
 * route on the domain server). 0 when routing is off. */
int apps_caddy_route(const struct apps_env *e, json_t *app, int upstream_port, struct sb_err *err);
int apps_caddy_unroute(const struct apps_env *e, const char *app_id, struct sb_err *err);
/* GET of http://127.0.0.1:<port><path>: 0 when it answered 2xx or 3xx
 * within timeout_ms; the status in *status (0 when no answer). */
int apps_http_probe(int port, const char *path, long timeout_ms, long *status, struct sb_err *err);

#endif
