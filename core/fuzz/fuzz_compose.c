/*
 * libFuzzer target for compose stacks: the compose parser (libyaml, the
 * interpolation, the validation into the model), then everything the API
 * does with a model before Docker: the policy check (admin and not, with and
 * without a bind base), the start order, the config hash and the plan
 * against no containers.
 *
 * Input: the first byte picks flags; then compose text up to a line holding
 * only "---vars", then KEY=VALUE lines (the variables).
 */
#include "stacks/stacks.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > STACKS_COMPOSE_MAX)
        return 0;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1, tlen = len;
    const char *sep = memmem(text, len, "\n---vars\n", 9);
    json_t *vars = json_object();
    if (sep) {
        tlen = (size_t)(sep - text);
        const char *p = sep + 9, *end = text + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            const char *eq = memchr(p, '=', (size_t)(le - p));
            if (eq && eq > p) {
                char *k = strndup(p, (size_t)(eq - p));
                json_t *v = json_stringn(eq + 1, (size_t)(le - eq - 1));
                if (k && v)
                    json_object_set_new(vars, k, v);
                else
                    json_decref(v);
                free(k);
            }
            p = nl ? nl + 1 : end;
        }
    }
    json_t *env_files = json_pack("{s:s}", ".env", "A=1\nB=two\n");
    json_t *model = NULL;
    struct sb_err err = {0};
    if (stacks_compose_parse(text, tlen, (flags & 1) ? vars : NULL, (flags & 2) ? env_files : NULL, &model,
                             &err) == 0) {
        struct sb_err e2 = {0};
        stacks_policy_check(model, (flags & 4) ? "/srv/stacks" : NULL, (flags & 8) != 0, &e2);
        json_t *order = NULL;
        if (stacks_order(model, &order, &e2) == 0)
            json_decref(order);
        json_t *services = json_object_get(model, "services");
        const char *name;
        json_t *svc;
        json_object_foreach(services, name, svc)
        {
            char hash[65];
            stacks_config_hash(svc, (flags & 16) ? "sha256:0123" : NULL, hash);
        }
        json_t *plan = NULL, *containers = json_array();
        if (stacks_plan(model, "fuzz", NULL, containers, &plan, &e2) == 0) {
            struct buf b;
            buf_init(&b, 1 << 20);
            stacks_plan_summary(plan, &b);
            buf_release(&b);
            json_decref(plan);
        }
        json_decref(containers);
        json_decref(model);
    }
    json_decref(env_files);
    json_decref(vars);
    return 0;
}
