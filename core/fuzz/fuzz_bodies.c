/*
 * libFuzzer target for JSON request bodies, per route family: each input is
 * parsed as the server parses a body (one object, duplicate keys refused),
 * checked against the fields of a body-taking route of the table, then
 * handed to the pure validators and decoders its handler uses before any
 * I/O: labels and node-label selectors (nodes, annotations, users, tokens,
 * guest links, Docker objects), usernames and roles, stack variables and
 * compose text (stacks), a collector batch's samples (agent), engine events
 * (docker). Handlers themselves need the store and are not run here.
 *
 * Input: the first byte picks the body route; the rest is the body.
 */
#include "api/api.h"
#include "auth/auth.h"
#include "docker/docker.h"
#include "http/http.h"
#include "stacks/stacks.h"

#include <string.h>

static const struct http_route *body_routes[256];
static size_t n_body;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (size_t i = 0; i < api_n_routes && n_body < 256; i++)
        if (api_routes[i].flags & HTTP_ROUTE_BODY)
            body_routes[n_body++] = &api_routes[i];
    return 0;
}

static void labels_family(json_t *body)
{
    static const struct labels_rule rules[] = {
        {"labels", 64, 63, 63, "-_./", true},
        {"labels", 64, 128, 1024, NULL, true},
        {"node_labels", 16, 100, 100, NULL, true},
    };
    struct sb_err err = {0};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
        labels_check(json_object_get(body, rules[r].field), &rules[r], &err);
    json_t *labels = json_object_get(body, "labels"), *sel = json_object_get(body, "node_labels");
    api_check_node_labels(sel, &err);
    labels_match(sel, labels);
    api_labels_within(sel, labels);
    const char *u = json_string_value(json_object_get(body, "username"));
    if (u)
        auth_username_valid(u, &err);
    const char *role = json_string_value(json_object_get(body, "role"));
    if (role)
        auth_role_valid(role);
}

static void stacks_family(json_t *body)
{
    struct sb_err err = {0};
    json_t *clear = NULL, *secret = NULL;
    json_t *vars = json_object_get(body, "variables");
    if (vars && stacks_variables_split(vars, NULL, &clear, &secret, &err) == 0) {
        json_t *names = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(secret, k, v) json_object_set_new(names, k, json_true());
        json_decref(stacks_variables_masked(clear, names));
        json_decref(names);
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    if (name)
        stacks_project_name_ok(name);
    json_t *compose = json_object_get(body, "compose");
    if (json_is_string(compose)) {
        json_t *model = NULL;
        if (stacks_compose_parse(json_string_value(compose), json_string_length(compose), clear, NULL, &model,
                                 &err) == 0) {
            stacks_policy_check(model, NULL, false, &err);
            json_decref(model);
        }
    }
    json_decref(clear);
    json_decref(secret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || n_body == 0 || size > (1 << 20))
        return 0;
    const struct http_route *route = body_routes[data[0] % n_body];
    struct sb_err err = {0};
    json_t *body = http_parse_json_object((const char *)data + 1, size - 1, &err);
    if (!body)
        return 0;
    static const char *const common[] = {"name",      "labels",   "node_labels", "role",
                                         "username",  "password", "message",     "compose",
                                         "variables", "samples",  NULL};
    http_json_check_fields(body, common, &err);
    if (strstr(route->pattern, "/agent/")) {
        struct api_batch b;
        if (api_agent_batch_decode(json_object_get(body, "samples"), 1800000000000LL, &b) == 0)
            api_agent_batch_release(&b);
    } else if (strstr(route->pattern, "/stacks")) {
        stacks_family(body);
    } else {
        labels_family(body);
    }
    /* Any object might be an engine event relayed by the watcher. */
    const char *type = NULL;
    json_t *ev = NULL;
    if (docker_translate_event("local", body, &type, &ev) == 0)
        json_decref(ev);
    json_decref(body);
    return 0;
}
