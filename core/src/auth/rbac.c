/*
 * RBAC: the one table that says which role holds which permission. Routes
 * declare a permission (core/src/api/routes.c); the guard asks auth_allows;
 * handlers never look at roles.
 */
#include "auth.h"

#include "../http/http.h" /* the route table's rows, checked against the RBAC table */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { R_ADMIN = 1 << 0, R_OPERATOR = 1 << 1, R_VIEWER = 1 << 2 };
#define R_ALL (R_ADMIN | R_OPERATOR | R_VIEWER)
#define R_OPS (R_ADMIN | R_OPERATOR)
#define G_ANY 0xffffu /* guests with any scope */

static const struct perm {
    const char *name;
    unsigned roles;  /* R_* */
    unsigned scopes; /* guest scopes that grant it (enum api_guest_scope) */
} perms[] = {
    {"public", R_ALL, G_ANY},
    {"agent", R_ALL, G_ANY},
    {"authenticated", R_ALL, 0},
    {"self:read", R_ALL, G_ANY}, /* who the caller is: guests too (their page checks its link) */
    {"users:admin", R_ADMIN, 0},
    {"tokens:manage", R_OPS, 0},
    {"guest_links:admin", R_ADMIN, 0},
    {"audit:read", R_ALL, API_SCOPE_AUDIT},
    {"audit:checkpoint", R_OPS, 0}, /* GET /audit/checkpoint may store a new one */
    {"events:read", R_ALL, G_ANY & ~API_SCOPE_RECORDINGS},
    {"annotations:create", R_OPS, 0},
    {"nodes:read", R_ALL, API_SCOPE_METRICS | API_SCOPE_CONTAINERS},
    {"nodes:connection", R_ALL, 0}, /* a node's SSH host, port, user, host key; not for guests */
    {"nodes:write", R_OPS, 0},
    {"nodes:delete", R_ADMIN, 0},
    {"nodes:exec", R_OPS, 0},
    {"nodes:check", R_OPS, 0},          /* a check connects to the node and may record events */
    {"nodes:local_engine", R_ADMIN, 0}, /* point a node at the core's own Docker engine */
    {"containers:read", R_ALL, API_SCOPE_CONTAINERS},
    {"containers:operate", R_OPS, 0},
    {"containers:delete", R_ADMIN, 0},
    {"logs:read", R_ALL, API_SCOPE_LOGS},
    {"images:read", R_ALL, 0},
    {"images:pull", R_OPS, 0},
    {"images:delete", R_ADMIN, 0},
    {"volumes:read", R_ALL, 0},
    {"volumes:write", R_OPS, 0},
    {"volumes:delete", R_ADMIN, 0},
    {"networks:read", R_ALL, 0},
    {"networks:write", R_OPS, 0},
    {"networks:delete", R_ADMIN, 0},
    {"metrics:read", R_ALL, API_SCOPE_METRICS},
    {"deployments:read", R_ALL, API_SCOPE_DEPLOYMENTS},
    {"stacks:read", R_ALL, API_SCOPE_STACKS},
    {"stacks:write", R_OPS, 0},
    {"stacks:delete", R_ADMIN, 0},
    {"apps:read", R_ALL, 0},
    {"apps:write", R_OPS, 0},
    {"apps:deploy", R_OPS, 0},
    {"apps:delete", R_ADMIN, 0},
    {"jobs:read", R_ALL, 0},
    {"jobs:cancel", R_OPS, 0},
    {"jobs:test", R_OPS, 0},
    {"terminal:node", R_OPS, 0},
    {"terminal:container", R_OPS, 0},
    {"recordings:replay", R_OPS, API_SCOPE_RECORDINGS},
    {"roles:read", R_ALL, 0}, /* the roles and the permissions they may hold */
    {"alerts:read", R_ALL, 0},
    {"alerts:write", R_OPS, 0}, /* rules, silences, channels (their secrets), acknowledgement */
    {"backups:read", R_ALL, 0},
    {"backups:write", R_OPS, 0},
    {"backups:restore", R_ADMIN, 0}, /* a restore overwrites a volume */
    {"stacks:admin", R_ADMIN, 0},    /* stack policy keys (root on the node), removing volumes */
};
#define N_PERMS (sizeof perms / sizeof perms[0])
_Static_assert(N_PERMS <= AUTH_PERM_WORDS * 64, "grow AUTH_PERM_WORDS");

/* What each permission allows, for the roles editor. Kept apart from the
 * table so that a new row needs no description to build (it then shows the
 * routes that need it, see api/roles.c). */
static const struct {
    const char *name, *description;
} perm_docs[] = {
    {"authenticated", "use one's own credential: log out, change one's password, manage one's 2FA"},
    {"self:read", "see who one is and what one may do (GET /api/v1/me)"},
    {"users:admin", "create, change, disable and delete users; define roles; reset a user's 2FA"},
    {"tokens:manage", "create, list and revoke API tokens (at most one's own role and scope)"},
    {"guest_links:admin", "create, list and revoke read-only guest links"},
    {"audit:read", "read the audit log, verify the hash chain, get a signed checkpoint"},
    {"audit:checkpoint", "store a new signed checkpoint of the audit chain"},
    {"events:read", "follow live events and read the event history"},
    {"annotations:create", "write markers (deploy started, maintenance) into the audit log"},
    {"nodes:read", "list nodes and read a node's status"},
    {"nodes:connection", "see a node's SSH host, port, user, host key and check errors"},
    {"nodes:write", "register and change nodes, issue collector enrollment tokens"},
    {"nodes:delete", "remove a node and its stored key"},
    {"nodes:exec", "run a command on a node over SSH"},
    {"nodes:check", "run a node's health check now"},
    {"nodes:local_engine", "point a node at the control plane's own Docker engine"},
    {"containers:read", "list and inspect containers, read their resource use"},
    {"containers:operate", "create, start, stop, restart, kill, pause containers and exec in them; see "
                           "their environment"},
    {"containers:delete", "remove containers"},
    {"logs:read", "read and tail container logs"},
    {"images:read", "list a node's images"},
    {"images:pull", "pull images"},
    {"images:delete", "remove and prune images"},
    {"volumes:read", "list a node's volumes"},
    {"volumes:write", "create volumes"},
    {"volumes:delete", "remove and prune volumes"},
    {"networks:read", "list a node's networks"},
    {"networks:write", "create networks"},
    {"networks:delete", "remove and prune networks"},
    {"metrics:read", "read node and container metric series"},
    {"deployments:read", "read deployments"},
    {"stacks:read", "list stacks, read their revisions and diffs"},
    {"stacks:write", "create, change, plan, deploy, roll back, scale, stop and start stacks"},
    {"stacks:delete", "delete stacks"},
    {"jobs:read", "list jobs and read their state"},
    {"jobs:cancel", "cancel jobs"},
    {"jobs:test", "enqueue test jobs (test daemons only)"},
    {"terminal:node", "open, use and close terminals on nodes"},
    {"terminal:container", "open consoles in running containers"},
    {"recordings:replay", "list and download terminal recordings"},
    {"roles:read", "list roles and the permissions they may hold"},
    {"stacks:admin", "use a stack's policy keys (privileged, host network/pid/ipc, devices, cap_add, bind "
                     "mounts outside --stack-bind-base: root on the node) and remove a stack's volumes"},
};

static const struct perm *find(const char *name)
{
    for (size_t i = 0; name && i < N_PERMS; i++)
        if (strcmp(perms[i].name, name) == 0)
            return &perms[i];
    return NULL;
}

static int perm_index(const char *name)
{
    for (size_t i = 0; name && i < N_PERMS; i++)
        if (strcmp(perms[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void bit_set(struct auth_perms *p, size_t i)
{
    p->w[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool bit_has(const struct auth_perms *p, size_t i)
{
    return (p->w[i / 64] >> (i % 64)) & 1;
}

static unsigned role_bit(const char *role)
{
    if (!role)
        return 0;
    if (strcmp(role, "admin") == 0)
        return R_ADMIN;
    if (strcmp(role, "operator") == 0)
        return R_OPERATOR;
    if (strcmp(role, "viewer") == 0)
        return R_VIEWER;
    return 0;
}

bool auth_permission_known(const char *permission)
{
    return find(permission) != NULL;
}

bool auth_role_valid(const char *role)
{
    return role_bit(role) != 0;
}

bool auth_allows(const char *role, unsigned scopes, const char *permission)
{
    const struct perm *p = find(permission);
    if (!p)
        return false; /* unknown permissions are never granted */
    if (role && strcmp(role, "guest") == 0)
        return scopes && (p->scopes & scopes) != 0;
    return (p->roles & role_bit(role)) != 0;
}

static int rank(const char *role)
{
    unsigned b = role_bit(role);
    return b == R_ADMIN ? 3 : b == R_OPERATOR ? 2 : b == R_VIEWER ? 1 : 0;
}

bool auth_role_within(const char *role, const char *ceiling)
{
    return rank(role) > 0 && rank(role) <= rank(ceiling);
}

unsigned auth_scope_bit(const char *scope)
{
    static const struct {
        const char *name;
        unsigned bit;
    } scopes[] = {{"view:metrics", API_SCOPE_METRICS},
                  {"view:containers", API_SCOPE_CONTAINERS},
                  {"view:logs", API_SCOPE_LOGS},
                  {"view:deployments", API_SCOPE_DEPLOYMENTS},
                  {"view:audit", API_SCOPE_AUDIT},
                  {"view:stacks", API_SCOPE_STACKS},
                  {"view:recordings", API_SCOPE_RECORDINGS}};
    for (size_t i = 0; scope && i < sizeof scopes / sizeof scopes[0]; i++)
        if (strcmp(scopes[i].name, scope) == 0)
            return scopes[i].bit;
    return 0;
}

json_t *auth_permissions_of(const char *role, unsigned scopes)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < N_PERMS; i++)
        if (strcmp(perms[i].name, "public") != 0 && strcmp(perms[i].name, "agent") != 0 &&
            auth_allows(role, scopes, perms[i].name))
            json_array_append_new(arr, json_string(perms[i].name));
    return arr;
}

/* The permission lists as JSON text, per role and guest scope set, built
 * once: GET /api/v1/me answers on the hot path. */
#define N_ROLES      4
#define N_SCOPE_SETS 128
static char perm_text[N_ROLES][N_SCOPE_SETS][2048];
static pthread_once_t perm_once = PTHREAD_ONCE_INIT;
static const char *const role_names[N_ROLES] = {"admin", "operator", "viewer", "guest"};

static void perm_text_build(void)
{
    for (int r = 0; r < N_ROLES; r++) {
        for (unsigned sc = 0; sc < N_SCOPE_SETS; sc++) {
            json_t *arr = auth_permissions_of(role_names[r], sc);
            char *t = json_dumps(arr, JSON_COMPACT);
            sb_strlcpy(perm_text[r][sc], t ? t : "[]", sizeof perm_text[r][sc]);
            free(t);
            json_decref(arr);
        }
    }
}

const char *auth_permissions_json(const char *role, unsigned scopes)
{
    pthread_once(&perm_once, perm_text_build);
    for (int r = 0; r < N_ROLES; r++)
        if (role && strcmp(role, role_names[r]) == 0)
            return perm_text[r][scopes % N_SCOPE_SETS];
    return "[]";
}

int auth_check_routes(const struct http_route *routes, size_t n, struct sb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!auth_permission_known(routes[i].permission))
            return sb_error(err, SB_EINTERNAL, "route %s %s declares unknown permission '%s'",
                            routes[i].method, routes[i].pattern,
                            routes[i].permission ? routes[i].permission : "(none)");
        if ((routes[i].flags & HTTP_ROUTE_INLINE) && strcmp(routes[i].permission, "public") != 0)
            return sb_error(err, SB_EINTERNAL, "route %s %s is inline but not public", routes[i].method,
                            routes[i].pattern);
    }
    return 0;
}

/* ---- custom roles --------------------------------------------------------- */

bool auth_role_builtin(const char *role)
{
    return role && (role_bit(role) != 0 || strcmp(role, "guest") == 0);
}

int auth_role_name_valid(const char *name, const char *field, struct sb_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > AUTH_ROLE_MAX)
        return sb_field_error(err, field, "a role name is 1 to %d characters", AUTH_ROLE_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (i > 0 && ((c >= '0' && c <= '9') || c == '_' || c == '-'));
        if (!ok)
            return sb_field_error(err, field,
                                  "a role name holds only a-z, 0-9, '_' and '-', starting with a letter");
    }
    if (auth_role_builtin(name))
        return sb_field_error(err, field, "'%s' is a built-in role", name);
    return 0;
}

static bool implicit(const char *name)
{
    return strcmp(name, "authenticated") == 0 || strcmp(name, "self:read") == 0;
}

bool auth_permission_assignable(const char *permission)
{
    const struct perm *p = find(permission);
    return p && strcmp(p->name, "public") != 0 && strcmp(p->name, "agent") != 0 && !implicit(p->name);
}

void auth_perms_builtin(const char *role, unsigned scopes, struct auth_perms *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < N_PERMS; i++)
        if (auth_allows(role, scopes, perms[i].name))
            bit_set(out, i);
}

void auth_perms_custom(json_t *names, struct auth_perms *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_array(names))
        return;
    for (size_t i = 0; i < N_PERMS; i++)
        if (implicit(perms[i].name))
            bit_set(out, i);
    size_t k;
    json_t *v;
    json_array_foreach(names, k, v)
    {
        const char *name = json_string_value(v);
        if (name && auth_permission_assignable(name))
            bit_set(out, (size_t)perm_index(name));
    }
}

void auth_perms_of_role(const char *role, json_t *custom_names, struct auth_perms *out)
{
    if (auth_role_builtin(role))
        auth_perms_builtin(role, 0, out);
    else
        auth_perms_custom(custom_names, out);
}

bool auth_perms_has(const struct auth_perms *p, const char *permission)
{
    int i = perm_index(permission);
    return i >= 0 && bit_has(p, (size_t)i);
}

bool auth_perms_within(const struct auth_perms *a, const struct auth_perms *b)
{
    for (int i = 0; i < AUTH_PERM_WORDS; i++)
        if (a->w[i] & ~b->w[i])
            return false;
    return true;
}

void auth_perms_and(struct auth_perms *a, const struct auth_perms *b)
{
    for (int i = 0; i < AUTH_PERM_WORDS; i++)
        a->w[i] &= b->w[i];
}

bool auth_perms_equal(const struct auth_perms *a, const struct auth_perms *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

json_t *auth_perms_names(const struct auth_perms *p)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < N_PERMS; i++)
        if (bit_has(p, i) && strcmp(perms[i].name, "public") != 0 && strcmp(perms[i].name, "agent") != 0)
            json_array_append_new(arr, json_string(perms[i].name));
    return arr;
}

bool auth_caller_allows(const struct api_caller *c, const char *permission)
{
    const struct perm *p = find(permission);
    if (!c || !p)
        return false;
    if (strcmp(p->name, "public") == 0 || strcmp(p->name, "agent") == 0)
        return true;
    return bit_has(&c->perms, (size_t)(p - perms));
}

json_t *auth_permission_catalog(void)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < N_PERMS; i++) {
        if (!auth_permission_assignable(perms[i].name))
            continue;
        const char *doc = "";
        for (size_t d = 0; d < sizeof perm_docs / sizeof perm_docs[0]; d++)
            if (strcmp(perm_docs[d].name, perms[i].name) == 0)
                doc = perm_docs[d].description;
        json_t *held = json_array();
        for (int r = 0; r < 3; r++)
            if (auth_allows(role_names[r], 0, perms[i].name))
                json_array_append_new(held, json_string(role_names[r]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", perms[i].name, "description", doc,
                                             "builtin_roles", held));
    }
    return arr;
}
