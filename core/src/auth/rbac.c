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
};
#define N_PERMS (sizeof perms / sizeof perms[0])

static const struct perm *find(const char *name)
{
    for (size_t i = 0; name && i < N_PERMS; i++)
        if (strcmp(perms[i].name, name) == 0)
            return &perms[i];
    return NULL;
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
