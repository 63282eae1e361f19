/* Unit tests for events/: families, topics and the visibility rule, with
 * hand-built callers (the auth guard fills real ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/api.h"
#include "events/events.h"

#include <string.h>

static void test_families(void **state)
{
    (void)state;
    assert_string_equal(events_family("node/1", "node.registered"), "nodes");
    assert_string_equal(events_family("container/x", "container.started"), "containers");
    assert_string_equal(events_family("image/x", "image.pulled"), "containers");
    assert_string_equal(events_family("stack/x", "stack.deployed"), "deployments");
    assert_string_equal(events_family("annotation/x", "annotation.created"), "annotations");
    assert_string_equal(events_family("user/x", "user.created"), "audit");
    assert_string_equal(events_family("token/x", "token.revoked"), "audit");
    assert_string_equal(events_family("metrics/node/1", "metrics.sample"), "metrics");
    assert_string_equal(events_family("node/1", "weird.thing"), "nodes"); /* stream decides */
    assert_string_equal(events_family("zzz/1", "weird.thing"), "other");
}

static void test_topics(void **state)
{
    (void)state;
    struct events_topics t;
    struct sb_err err = {0};
    assert_int_equal(events_topics_parse("nodes,container.started,node/abc,stack", &t, &err), 0);
    assert_int_equal(t.n, 4);
    assert_true(events_topics_match(&t, "nodes", "node/zzz", "node.updated", false));
    assert_true(events_topics_match(&t, "containers", "container/1", "container.started", false));
    assert_false(events_topics_match(&t, "containers", "container/1", "container.stopped", false));
    assert_true(events_topics_match(&t, "other", "node/abc", "x.y", false));
    assert_false(events_topics_match(&t, "other", "node/abcd", "x.y", false)); /* prefix stops at a segment */
    assert_true(events_topics_match(&t, "deployments", "stack/1", "stack.deployed", false));
    assert_false(events_topics_match(&t, "deployments", "stack/1", "stacks.deployed", false));
    assert_false(events_topics_match(&t, "annotations", "annotation/1", "annotation.created", false));
    events_topics_release(&t);

    /* No topics: every log event, no ephemeral data. */
    assert_int_equal(events_topics_parse(NULL, &t, &err), 0);
    assert_true(events_topics_match(&t, "audit", "user/1", "user.created", false));
    assert_false(events_topics_match(&t, "metrics", "metrics/node/1", "metrics.sample", true));
    /* Ephemeral data needs an explicit topic. */
    assert_int_equal(events_topics_parse("metrics/node/1", &t, &err), 0);
    assert_true(events_topics_match(&t, "metrics", "metrics/node/1", "metrics.sample", true));
    assert_false(events_topics_match(&t, "metrics", "metrics/node/2", "metrics.sample", true));
    events_topics_release(&t);

    const char *bad[] = {"", "a,,b", "a,", "x y", "../etc", "a;rm", "a\nb", NULL};
    for (int i = 0; bad[i]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(events_topics_parse(bad[i], &t, &err) != 0, bad[i][0] != '\0');
        if (bad[i][0])
            assert_string_equal(err.field, "topics");
        events_topics_release(&t);
    }
    char many[400] = "";
    for (int i = 0; i < 17; i++)
        sb_strlcpy(many + strlen(many), i ? ",t" : "t", sizeof many - strlen(many));
    assert_int_equal(events_topics_parse(many, &t, &err), SB_EINVAL);
}

static void test_node_of(void **state)
{
    (void)state;
    char id[64];
    assert_true(events_node_of("node/n1", NULL, id, sizeof id));
    assert_string_equal(id, "n1");
    json_t *d = json_pack("{s:s}", "node_id", "n2");
    assert_true(events_node_of("container/c1", d, id, sizeof id));
    assert_string_equal(id, "n2");
    json_decref(d);
    assert_true(events_node_of("metrics/node/n3/cpu", NULL, id, sizeof id));
    assert_string_equal(id, "n3");
    assert_false(events_node_of("annotation/a", NULL, id, sizeof id));
}

/* The nodes "module": n1 is staging, n2 production, others unknown. */
static int lookups;
static json_t *labels_of(void *ctx, const char *node_id)
{
    (void)ctx;
    lookups++;
    if (strcmp(node_id, "n1") == 0)
        return json_pack("{s:s, s:s}", "env", "staging", "team", "a");
    if (strcmp(node_id, "n2") == 0)
        return json_pack("{s:s}", "env", "production");
    return NULL;
}

static struct api_caller caller(const char *kind, const char *role, unsigned scopes, json_t *labels,
                                int64_t expires)
{
    struct api_caller c;
    memset(&c, 0, sizeof c);
    sb_strlcpy(c.kind, kind, sizeof c.kind);
    sb_strlcpy(c.role, role, sizeof c.role);
    c.scopes = scopes;
    c.node_labels = labels;
    c.expires_us = expires;
    return c;
}

static void test_visibility(void **state)
{
    (void)state;
    int64_t now = 1000000;
    struct api_caller admin = caller("user", "admin", 0, NULL, 0);
    struct api_caller viewer = caller("token", "viewer", 0, NULL, 0);
    json_t *staging = json_pack("{s:s}", "env", "staging");
    struct api_caller scoped = caller("user", "operator", 0, staging, 0);
    struct api_caller empty_sel = caller("user", "operator", 0, json_object(), 0);
    struct api_caller guest = caller("guest", "guest", API_SCOPE_METRICS | API_SCOPE_LOGS, NULL, now + 10);
    struct api_caller audit_guest = caller("guest", "guest", API_SCOPE_AUDIT, NULL, 0);
    json_t *staging_guest_sel = json_pack("{s:s}", "env", "staging");
    struct api_caller scoped_guest = caller("guest", "guest", API_SCOPE_CONTAINERS, staging_guest_sel, 0);

    /* anonymous (no auth guard installed) and unscoped roles see everything */
    assert_true(events_caller_may_see(NULL, "audit", "n2", labels_of, NULL, now));
    assert_true(events_caller_may_see(&admin, "audit", NULL, labels_of, NULL, now));
    assert_true(events_caller_may_see(&admin, "nodes", "n2", labels_of, NULL, now));
    assert_true(events_caller_may_see(&viewer, "containers", "n9", labels_of, NULL, now));
    assert_true(events_caller_may_see(&empty_sel, "nodes", "n2", labels_of, NULL, now));

    /* label scope: only matching nodes; unknown nodes and no lookup hide */
    assert_true(events_caller_may_see(&scoped, "nodes", "n1", labels_of, NULL, now));
    assert_false(events_caller_may_see(&scoped, "nodes", "n2", labels_of, NULL, now));
    assert_false(events_caller_may_see(&scoped, "containers", "n9", labels_of, NULL, now));
    assert_false(events_caller_may_see(&scoped, "nodes", "n1", NULL, NULL, now));
    assert_true(events_caller_may_see(&scoped, "annotations", NULL, labels_of, NULL, now));

    /* guests: their scopes' families only */
    assert_true(events_caller_may_see(&guest, "metrics", NULL, labels_of, NULL, now));
    assert_true(events_caller_may_see(&guest, "nodes", NULL, labels_of, NULL, now));
    assert_true(events_caller_may_see(&guest, "logs", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&guest, "containers", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&guest, "audit", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&guest, "annotations", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&guest, "other", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&guest, "deployments", NULL, labels_of, NULL, now));
    assert_true(events_caller_may_see(&audit_guest, "audit", NULL, labels_of, NULL, now));
    assert_true(events_caller_may_see(&audit_guest, "annotations", NULL, labels_of, NULL, now));
    assert_false(events_caller_may_see(&audit_guest, "nodes", NULL, labels_of, NULL, now));
    /* a guest scoped to labels: both rules apply */
    assert_true(events_caller_may_see(&scoped_guest, "containers", "n1", labels_of, NULL, now));
    assert_false(events_caller_may_see(&scoped_guest, "containers", "n2", labels_of, NULL, now));
    assert_false(events_caller_may_see(&scoped_guest, "metrics", "n1", labels_of, NULL, now));

    /* expired: nothing */
    assert_false(events_caller_may_see(&guest, "metrics", NULL, labels_of, NULL, now + 10));
    json_decref(staging);
    json_decref(empty_sel.node_labels);
    json_decref(staging_guest_sel);
}

static void test_guest_types_and_paths(void **state)
{
    (void)state;
    struct api_caller guest = caller("guest", "guest", API_SCOPE_METRICS, NULL, 0);
    struct api_caller auditor = caller("guest", "guest", API_SCOPE_METRICS | API_SCOPE_AUDIT, NULL, 0);
    struct api_caller viewer = caller("user", "viewer", 0, NULL, 0);
    assert_true(events_type_visible(&guest, "node.online"));
    assert_true(events_type_visible(&guest, "node.offline"));
    assert_true(events_type_visible(&guest, "node.deleted"));
    assert_false(events_type_visible(&guest, "node.registered"));
    assert_false(events_type_visible(&guest, "node.updated"));
    assert_false(events_type_visible(&guest, "node.exec"));
    assert_true(events_type_visible(&guest, "metrics.sample"));
    assert_true(events_type_visible(&auditor, "node.registered"));
    assert_true(events_type_visible(&viewer, "node.registered"));
    assert_true(events_type_visible(NULL, "node.registered"));
    /* a request the guard recorded is about the node of its path */
    char out[64];
    json_t *d = json_pack("{s:s}", "path", "/api/v1/nodes/abc-1/containers/x");
    assert_true(events_node_of("access", d, out, sizeof out));
    assert_string_equal(out, "abc-1");
    json_decref(d);
    d = json_pack("{s:s}", "path", "/api/v1/nodes/abc-2?x=1");
    assert_true(events_node_of("guest_link/g", d, out, sizeof out));
    assert_string_equal(out, "abc-2");
    json_decref(d);
    d = json_pack("{s:s}", "path", "/api/v1/nodes");
    assert_false(events_node_of("access", d, out, sizeof out));
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_node_of),
        cmocka_unit_test(test_visibility),
        cmocka_unit_test(test_guest_types_and_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
