/* migrate, verify-audit, rebuild-projections, routes. */
#include "cmd.h"

#include "../api/api.h"
#include "../auth/auth.h"
#include "../store/store.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* A checkpoint file of --checkpoints DIR. */
struct cp_file {
    char name[256];
    int64_t seq;
    uint8_t hash[32], pk[32];
    char why[256]; /* set when the file itself is bad */
};

static int cp_by_seq(const void *a, const void *b)
{
    const struct cp_file *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every *.json of dir, parsed and its signature checked. *n of them (a
 * malloc'd array), or NULL when the directory cannot be read. */
static struct cp_file *cp_load(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct cp_file *v = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || l >= 256 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            struct cp_file *nv = realloc(v, cap * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        struct cp_file *c = &v[(*n)++];
        memset(c, 0, sizeof *c);
        sb_strlcpy(c->name, de->d_name, sizeof c->name);
        struct buf b;
        buf_init(&b, 1 << 16);
        struct sb_err err = {0};
        json_t *doc = NULL;
        if (file_read_all(path, 1 << 16, &b, &err) || !(doc = json_loadb(b.data, b.len, 0, NULL)))
            snprintf(c->why, sizeof c->why, "not a readable JSON file");
        else if (auth_checkpoint_check(doc, &c->seq, c->hash, c->pk, &err))
            snprintf(c->why, sizeof c->why, "%s", err.msg);
        json_decref(doc);
        buf_release(&b);
    }
    closedir(d);
    if (v)
        qsort(v, *n, sizeof *v, cp_by_seq);
    return v ? v : calloc(1, sizeof *v);
}

/* --checkpoints DIR: the chain must verify and, at each checkpoint's seq,
 * have the hash the checkpoint signed. A history rewritten with its hashes
 * recomputed verifies alone, but not against a checkpoint kept elsewhere. */
static int verify_against(const char *url, const char *dir, const char *pin_b64)
{
    uint8_t pin[32];
    size_t plen = 0;
    if (pin_b64 && *pin_b64 &&
        (sodium_base642bin(pin, sizeof pin, pin_b64, strlen(pin_b64), NULL, &plen, NULL,
                           sodium_base64_VARIANT_ORIGINAL) ||
         plen != 32)) {
        fprintf(stderr, "serverbox-core: verify-audit: --checkpoint-public-key is a base64 Ed25519 key "
                        "(public_key of a checkpoint)\n");
        return 2;
    }
    size_t n;
    struct cp_file *cps = cp_load(dir, &n);
    if (!cps) {
        fprintf(stderr, "serverbox-core: verify-audit: cannot read the directory %s\n", dir);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "serverbox-core: verify-audit: no checkpoint (*.json) in %s\n", dir);
        free(cps);
        return 2;
    }
    int64_t *seqs = calloc(n, sizeof *seqs);
    uint8_t(*hashes)[32] = calloc(n, 32);
    bool *found = calloc(n, sizeof *found);
    for (size_t i = 0; i < n; i++)
        seqs[i] = cps[i].seq;
    struct store_verify_result v;
    struct sb_err err = {0};
    int rc = store_verify_chain_at(url, seqs, n, hashes, found, &v, &err);
    int status = 0;
    if (rc) {
        fprintf(stderr, "serverbox-core: verify-audit: %s\n", err.msg);
        status = 2;
    } else {
        char hex[65], want[65], key[65];
        hex_encode(v.head_hash, 32, hex);
        if (v.first_bad_seq) {
            printf("chain broken at seq %lld: %s (%lld events verified before it)\n",
                   (long long)v.first_bad_seq, v.reason, (long long)v.checked);
            status = 1;
        } else {
            printf("chain ok: %lld events, head seq %lld, head hash %s\n", (long long)v.checked,
                   (long long)v.head_seq, hex);
        }
        size_t good = 0;
        for (size_t i = 0; i < n; i++) {
            struct cp_file *c = &cps[i];
            hex_encode(c->hash, 32, want);
            hex_encode(c->pk, 32, key);
            if (!c->why[0] && plen == 32 && memcmp(c->pk, pin, 32) != 0)
                snprintf(c->why, sizeof c->why, "signed by another key than --checkpoint-public-key");
            else if (!c->why[0] && plen != 32 && i > 0 && !cps[0].why[0] && memcmp(c->pk, cps[0].pk, 32) != 0)
                snprintf(c->why, sizeof c->why,
                         "signed by another key than %.100s (pin one with --checkpoint-public-key)",
                         cps[0].name);
            if (c->why[0]) {
                printf("checkpoint %s: BAD: %s\n", c->name, c->why);
                status = 1;
            } else if (!found[i] && !v.first_bad_seq) {
                printf("checkpoint %s: seq %lld is beyond the chain's head %lld: events were removed\n",
                       c->name, (long long)c->seq, (long long)v.head_seq);
                status = 1;
            } else if (!found[i]) {
                printf("checkpoint %s: seq %lld not reached (the chain breaks before it)\n", c->name,
                       (long long)c->seq);
                status = 1;
            } else if (memcmp(hashes[i], c->hash, 32) != 0) {
                hex_encode(hashes[i], 32, hex);
                printf("checkpoint %s: MISMATCH at seq %lld: the chain has %s, the checkpoint signed %s "
                       "(history before it was rewritten)\n",
                       c->name, (long long)c->seq, hex, want);
                status = 1;
            } else {
                printf("checkpoint %s: ok (seq %lld, signed by key %.16s...)\n", c->name, (long long)c->seq,
                       key);
                good++;
            }
        }
        printf("%zu of %zu checkpoints match the chain\n", good, n);
    }
    free(seqs);
    free(hashes);
    free(found);
    free(cps);
    return status;
}

int cmd_verify_audit(const struct config *cfg)
{
    const char *url = need_url(cfg);
    if (!url)
        return 2;
    const char *dir = config_get(cfg, "checkpoints");
    if (dir && *dir)
        return verify_against(url, dir, config_get(cfg, "checkpoint-public-key"));
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
