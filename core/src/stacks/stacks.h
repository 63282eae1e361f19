/*
 * stacks — compose stacks: a compose file parsed (libyaml) into a model,
 * validated, checked against the policy, compared with the containers that
 * exist into a plan, and applied through the Docker client (docker/), so it
 * works alike on the local engine and on nodes behind the SSH bridge.
 *
 * Pure parts (compose.c, plan.c): no I/O; fed many inputs by
 * core/tests/test_stacks.c. Apply (apply.c): Docker Engine API calls.
 * See README.md in this folder for the model, the plan and the update
 * strategies.
 *
 * Memory: every json_t ** out-parameter is a new reference the caller
 * decrefs. Inputs are borrowed.
 */
#ifndef SB_STACKS_H
#define SB_STACKS_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define STACKS_COMPOSE_MAX  ((size_t)256 << 10) /* bytes of compose text */
#define STACKS_DEPTH_MAX    32                  /* nesting of collections */
#define STACKS_NODES_MAX    20000               /* YAML nodes, aliases expanded */
#define STACKS_NAME_MAX     63
#define STACKS_SERVICES_MAX 64
#define STACKS_REPLICAS_MAX 20

/* ---- names ------------------------------------------------------------- */
/* A project (stack) name: 1-63 of [a-z0-9_-], starting with a letter or
 * digit (compose 1.29 lowercases to this set; we require it as given). */
bool stacks_project_name_ok(const char *s);
/* A service, network or volume name: 1-63 of [A-Za-z0-9_.-], starting with a
 * letter or digit, no "..". */
bool stacks_object_name_ok(const char *s);

/* ---- parse and validate ------------------------------------------------ */
/* Parses compose text (at most STACKS_COMPOSE_MAX bytes, one document) and
 * validates it into the model: {"services":{name:{…}},"networks":{…},
 * "volumes":{…}} with every value normalized (README.md). `variables`
 * (object of strings, may be NULL) feeds ${VAR} interpolation; `env_files`
 * (object name → KEY=VALUE text, may be NULL) is what `env_file:` names.
 * Errors: SB_ETOOLARGE (size); SB_EINVAL with err->field "compose" and the
 * message "line L, column C: …" for YAML errors, or err->field the key path
 * ("services.web.sysctls") and the message "services.web.sysctls: not
 * supported (line L, column C)" for validation errors. */
int stacks_compose_parse(const char *text, size_t len, json_t *variables, json_t *env_files, json_t **model,
                         struct sb_err *err);

/* ---- policy ------------------------------------------------------------ */
/* What needs an admin: privileged, network_mode/pid/ipc host, devices,
 * cap_add, bind mounts outside bind_base (NULL = every bind mount). For a
 * non-admin the first such key gives SB_EDENIED with err->field its path
 * ("services.web.privileged"). `admin` is whether the caller holds stacks:admin (api/stacks.c).
 * A caller that does passes. */
int stacks_policy_check(json_t *model, const char *bind_base, bool admin, struct sb_err *err);

/* ---- config hash and plan ---------------------------------------------- */
/* sha256 (hex) of the service's canonical JSON without its replica count,
 * with the image reference replaced by image_id when given, so a rebuilt
 * tag or a pinned digest recreates the container. */
void stacks_config_hash(json_t *service, const char *image_id, char out[65]);
/* Services in start order (dependencies first): a new array of names.
 * SB_EINVAL naming the service on a cycle. */
int stacks_order(json_t *model, json_t **order, struct sb_err *err);
/* The plan: from the model, the image id per service (object, may be NULL
 * or lack a service) and the project's existing containers (array of
 * {"id","name","state","health","labels":{…}} as stacks_containers gives),
 * per service in start order {"service","action":create|recreate|scale|
 * unchanged|remove,"strategy":"start-first"|"stop-first","reason",
 * "expected_gap_s","replicas","existing","config_hash","remove":[ids]}, and
 * {"networks":[…],"volumes":[…]} to ensure. */
int stacks_plan(json_t *model, const char *project, json_t *image_ids, json_t *containers, json_t **plan,
                struct sb_err *err);
/* A short readable summary of a plan ("web: recreate start-first, …"). */
void stacks_plan_summary(json_t *plan, struct buf *out);

/* ---- apply (apply.c; Docker Engine API at `socket`) -------------------- */
struct stacks_apply_hooks {
    void (*progress)(void *ctx, int percent, const char *step);
    void (*log)(void *ctx, const char *line);
    bool (*cancelled)(void *ctx);
    void *ctx;
};

/* The project's containers on the engine (label com.docker.compose.project,
 * oneoff False): a new array as stacks_plan wants. */
int stacks_containers(const char *socket, const char *project, json_t **out, struct sb_err *err);
/* The image id of each service's image on the engine (pulled when absent
 * and `pull`, unless pinned); `pinned` (object service → image id, may be
 * NULL) is used as is, without pulling. SB_ENOTFOUND naming
 * "services.<s>.image" when an image cannot be had; without `pull` a
 * missing image is left out of *image_ids and listed in *missing (may be
 * NULL). */
int stacks_resolve_images(const char *socket, json_t *model, json_t *pinned, bool pull, json_t **image_ids,
                          json_t **missing, struct sb_err *err);

struct stacks_apply {
    const char *socket;
    const char *project;
    json_t *model;
    json_t *image_ids;        /* from stacks_resolve_images */
    json_t *plan;             /* from stacks_plan on the same inputs */
    const char *config_files; /* label com.docker.compose.project.config_files */
    const char *working_dir;  /* label …project.working_dir */
    int health_timeout_s;     /* default per service unless x-serverbox.health_timeout; 0 = 60 */
    /* routes (x-serverbox.route) through the node's Caddy (caddy/) */
    const char *caddy_admin;   /* its admin API; NULL/"" = routing off (a routed service fails) */
    const char *domain_listen; /* what the shared server listens on when it is made */
    const char *route_prefix;  /* a service's route is "@id": route_prefix + service */
    struct stacks_apply_hooks hooks;
};
/* Runs the plan: networks, volumes, then services in order (README.md for
 * the strategies). *result (always set when not NULL) is {"services":{s:
 * {"action","outcome","containers":[…]}},"digests":{s:image id},
 * "rolled_back":bool,"failed_service":…}. A failed health gate gives
 * SB_EUPSTREAM with rolled_back true in *result when the old containers
 * kept serving. */
int stacks_apply_run(const struct stacks_apply *a, json_t **result, struct sb_err *err);

/* The last `tail` (0..STACKS_LOG_TAIL_MAX) log lines of a service's
 * containers, merged by time: *lines [{"container","stream","ts","line"}],
 * *containers [{"name","state"}] (an unknown service has none). */
#define STACKS_LOG_TAIL_MAX 5000
int stacks_service_logs(const char *socket, const char *project, const char *service, int tail,
                        json_t **containers, json_t **lines, struct sb_err *err);

/* Per service {"desired","running","healthy","containers":[…],"route"?} from the
 * model (may be NULL: only what runs) and the engine. */
int stacks_status(const char *socket, const char *project, json_t *model, json_t **out, struct sb_err *err);
/* Scales one service to n replicas (start-first for new ones). */
int stacks_scale(const struct stacks_apply *a, const char *service, int replicas, json_t **result,
                 struct sb_err *err);
/* Restarts a service's containers (docker restart), stops or starts every
 * container of the project. `service` NULL = all. */
int stacks_containers_action(const char *socket, const char *project, const char *service, const char *action,
                             struct sb_err *err);
/* Removes the project's containers and networks; its volumes too when
 * `volumes`. *removed (may be NULL) lists what went. */
int stacks_down(const char *socket, const char *project, bool volumes, json_t **removed, struct sb_err *err);

/* ---- the service layer (service.c): stored stacks, secrets, jobs -------- */
#include "../crypto/crypto.h"
struct store;
struct docker;
struct jobs;
struct event_actor;

struct stacks_env {
    struct store *store;
    struct docker *docker;
    const struct crypto_master_key *key;
    const char *bind_base;     /* --stack-bind-base; NULL = no bind mount without an admin */
    int health_timeout_s;      /* --stack-health-timeout */
    const char *caddy_admin;   /* --app-caddy-admin: the local node's Caddy; NULL/"" = no routes */
    const char *domain_listen; /* --app-domain-listen: the shared server of host routes */
};

#define STACKS_VARS_MAX    200
#define STACKS_SECRET_MASK "********"

/* Variables as the API takes them ({"K":"v"} or {"K":{"value":"v",
 * "secret":true}}) split into clear values and secret values. A secret
 * given as STACKS_SECRET_MASK keeps its value from `old_secret`. */
int stacks_variables_split(json_t *in, json_t *old_secret, json_t **clear, json_t **secret,
                           struct sb_err *err);
/* Clear values plus every secret name mapped to STACKS_SECRET_MASK. */
json_t *stacks_variables_masked(json_t *clear, json_t *secret_names);
/* The secret values of a revision, opened (an empty object when none). */
int stacks_revision_secrets(const struct stacks_env *e, const char *stack_id, int revision, json_t **secret,
                            struct sb_err *err);
/* Seals `secret` (may be empty: nothing stored) for a revision. */
int stacks_revision_secrets_put(const struct stacks_env *e, const char *stack_id, int revision,
                                json_t *secret, struct sb_err *err);
/* A stored revision's compose parsed with its variables (secrets opened)
 * and env files into *model; the stack's /scale overrides applied. */
int stacks_revision_model(const struct stacks_env *e, json_t *stack, json_t *rev, json_t **model,
                          struct sb_err *err);
/* The engine socket of the stack's node (DOCKER_SOCKET_MAX bytes). */
int stacks_node_socket(const struct stacks_env *e, const char *node_id, char *socket, size_t len,
                       struct sb_err *err);
/* The dry run: images resolved without pulling (a missing image is named
 * as "pull" in the plan), containers listed, plan computed. */
int stacks_dry_plan(const struct stacks_env *e, json_t *stack, json_t *model, json_t *pinned, json_t **plan,
                    struct sb_err *err);
/* The route "@id" prefix of a stack: "sbx-stack-<id>-" (+ service). */
void stacks_route_prefix(const char *stack_id, char *out, size_t len);
/* Whether the model's routes can be served on that node: routing on
 * (--app-caddy-admin) and the local node (routes through a remote node's
 * Caddy are not built). SB_EINVAL naming services.<s>.x-serverbox.route. */
int stacks_routes_check(const struct stacks_env *e, json_t *model, const char *node_id, struct sb_err *err);
/* Removes every route of the stack from Caddy (down, delete). */
int stacks_routes_remove(const struct stacks_env *e, const char *stack_id, struct sb_err *err);
/* Registers the job kinds stack.deploy (args {stack_id, revision,
 * requested_by}) and stack.scale ({stack_id, service, replicas,
 * requested_by}). `e` must outlive the jobs. */
int stacks_jobs_register(struct jobs *j, struct stacks_env *e, struct sb_err *err);

#endif
