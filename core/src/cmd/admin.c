/* migrate, verify-audit, rebuild-projections, routes. */
#include "cmd.h"

#include "../api/api.h"
#include "../store/store.h"

#include <stdio.h>
#include <string.h>

const char *cmd_admin_database_url(const struct config *cfg)
{
    const char *u = config_get(cfg, "migrate-database-url");
    return u && *u ? u : config_get(cfg, "database-url");
}

static const char *need_url(const struct config *cfg)
{
    const char *url = cmd_admin_database_url(cfg);
    if (!url || !*url)
        fprintf(stderr, "serverbox-core: no database URL: set --database-url or SERVERBOX_DATABASE_URL\n");
    return url && *url ? url : NULL;
}

int cmd_migrate(const struct config *cfg)
{
    const char *url = need_url(cfg);
    if (!url)
        return 2;
    struct sb_err err = {0};
    if (store_migrate(url, &err)) {
        fprintf(stderr, "serverbox-core: migrate: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int cmd_verify_audit(const struct config *cfg)
{
    const char *url = need_url(cfg);
    if (!url)
        return 2;
    struct sb_err err = {0};
    struct store_verify_result v;
    if (store_verify_chain(url, &v, &err)) {
        fprintf(stderr, "serverbox-core: verify-audit: %s\n", err.msg);
        return 2;
    }
    char hash[65];
    hex_encode(v.head_hash, 32, hash);
    if (v.first_bad_seq) {
        printf("chain broken at seq %lld: %s (%lld events verified before it)\n", (long long)v.first_bad_seq,
               v.reason, (long long)v.checked);
        return 1;
    }
    printf("chain ok: %lld events, head seq %lld, head hash %s\n", (long long)v.checked,
           (long long)v.head_seq, hash);
    return 0;
}

int cmd_rebuild_projections(const struct config *cfg)
{
    const char *url = need_url(cfg);
    if (!url)
        return 2;
    struct sb_err err = {0};
    int64_t n = 0;
    if (store_rebuild_projections(url, &n, &err)) {
        fprintf(stderr, "serverbox-core: rebuild-projections: %s\n", err.msg);
        return 1;
    }
    printf("projections rebuilt from %lld events\n", (long long)n);
    return 0;
}

int cmd_routes(const struct config *cfg)
{
    (void)cfg;
    json_t *arr = json_array();
    for (size_t i = 0; i < api_n_routes; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:b}", "method", api_routes[i].method,
                                             "path", api_routes[i].pattern, "permission",
                                             api_routes[i].permission, "summary", api_routes[i].summary,
                                             "takes_body", (api_routes[i].flags & HTTP_ROUTE_BODY) != 0));
    char *s = json_dumps(arr, JSON_INDENT(1));
    printf("%s\n", s);
    free(s);
    json_decref(arr);
    return 0;
}
