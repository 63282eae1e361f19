/*
 * The evaluator: the singleton duty "alerts-eval", one round every
 * --alerts-interval on the daemon holding the duty's lease.
 *
 * A round:
 *   1. makes the default rules on a fresh install (once: when no rule was
 *      ever recorded);
 *   2. ends silences whose time is up (alert_silence.ended);
 *   3. judges the state rules (node_offline, node_hostkey_mismatch,
 *      collector_silent, metric, audit_chain_broken) from the projections
 *      and the metric tables: a target that meets the rule and has no open
 *      alert fires, an open alert whose target no longer does resolves;
 *   4. reads the log after its cursor for the event rules (container_*,
 *      stack_*, backup_failed): an event fires or resolves the alert of its
 *      target;
 *   5. moves alerts into and out of silences (alert.silenced, and
 *      alert.unsilenced, which notifies again if still firing), and repeats
 *      notifications of firing, unacknowledged alerts every repeat_s.
 * Every transition is an event, appended in one transaction with its
 * delivery jobs (alerts_transition): a crash cannot keep one without the
 * other. The alerts projection refuses a second
 * open alert per rule and target (so two daemons that both think they hold
 * the duty for a moment still fire once) and a transition that does not
 * apply to the alert's state.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_PER_ROUND 5000
#define CHAIN_CHECK_MS   60000

struct round {
    struct alerts *a;
    json_t *rules;    /* enabled rules */
    json_t *rule_ix;  /* id → rule */
    json_t *open;     /* "rule_id|target" → alert row (firing or acknowledged) */
    json_t *nodes;    /* id → node row */
    json_t *silences; /* active silences */
    int64_t now_us;
};

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *node_labels_of(struct round *r, const char *node_id)
{
    json_t *n = node_id ? json_object_get(r->nodes, node_id) : NULL;
    return n ? json_object_get(n, "labels") : NULL;
}

/* Whether a rule applies to a node (or to no node: alerts about the fleet). */
static bool rule_covers(struct round *r, json_t *rule, const char *node_id)
{
    json_t *sel = json_object_get(rule, "node_labels");
    if (!json_is_object(sel) || json_object_size(sel) == 0)
        return true;
    if (!node_id)
        return true;
    json_t *labels = node_labels_of(r, node_id);
    return json_is_object(labels) && labels_match(sel, labels);
}

static bool silenced(struct round *r, json_t *alert)
{
    json_t *labels = node_labels_of(r, jstr(alert, "node_id"));
    size_t i;
    json_t *s;
    json_array_foreach(r->silences, i, s)
    {
        /* A recurring maintenance window silences only while it is open. */
        json_t *rec = json_object_get(s, "recurrence");
        if (json_is_object(rec) && !alerts_recurrence_open(rec, r->now_us))
            continue;
        if (alerts_silence_matches(s, alert, labels))
            return true;
    }
    return false;
}

static void key_of(const char *rule_id, const char *target, char *out, size_t len)
{
    snprintf(out, len, "%s|%s", rule_id, target);
}

static void now_text(char *out, size_t len)
{
    time_format_rfc3339(time_now_us(), out, len);
}

/* Fires rule's alert on target, unless one is open. info: node_id,
 * container_id, container_name, summary, value (borrowed). */
static void fire(struct round *r, json_t *rule, const char *target, json_t *info, int64_t source_seq)
{
    const char *rule_id = jstr(rule, "id");
    char key[400];
    key_of(rule_id, target, key, sizeof key);
    if (json_object_get(r->open, key))
        return;
    char id[37];
    uuid_v4(id);
    json_t *d = json_pack("{s:s, s:s, s:O, s:O, s:O, s:s}", "id", id, "rule_id", rule_id, "rule_name",
                          json_object_get(rule, "name"), "kind", json_object_get(rule, "kind"), "severity",
                          json_object_get(rule, "severity"), "target", target);
    const char *node_id = jstr(info, "node_id");
    if (node_id) {
        json_object_set_new(d, "node_id", json_string(node_id));
        json_t *n = json_object_get(r->nodes, node_id);
        const char *name = n ? jstr(n, "name") : strcmp(node_id, "local") == 0 ? "local" : NULL;
        if (name)
            json_object_set_new(d, "node_name", json_string(name));
    }
    for (const char *const *k =
             (const char *const[]){"container_id", "container_name", "summary", "value", NULL};
         *k; k++) {
        json_t *v = json_object_get(info, *k);
        if (v && !json_is_null(v))
            json_object_set(d, *k, v);
    }
    if (!json_object_get(d, "summary"))
        json_object_set(d, "summary", json_object_get(rule, "name"));
    if (source_seq > 0)
        json_object_set_new(d, "source_seq", json_integer(source_seq));
    bool quiet = silenced(r, d);
    json_object_set_new(d, "silenced", json_boolean(quiet));
    char stream[64];
    snprintf(stream, sizeof stream, "alert/%s", id);
    struct sb_err err = {0};
    int queued = 0;
    int rc =
        alerts_transition(r->a, stream, "alert.fired", d, quiet ? NULL : rule, d, "firing", &queued, &err);
    if (rc) {
        if (rc != SB_ECONFLICT)
            log_warn("alert not recorded", "rule=%s target=%s detail=\"%s\"", rule_id, target, err.msg);
        json_decref(d);
        return;
    }
    char at[40];
    now_text(at, sizeof at);
    json_object_set_new(d, "state", json_string("firing"));
    json_object_set_new(d, "fired_at", json_string(at));
    json_object_set_new(d, "notifications", json_integer(quiet ? 0 : 1));
    log_info("alert firing", "rule=\"%s\" target=%s silenced=%d deliveries=%d", jstr(rule, "name"), target,
             quiet, queued);
    json_object_set_new(r->open, key, d);
}

static void resolve(struct round *r, const char *key, json_t *alert, const char *reason)
{
    json_t *d = json_pack("{s:s, s:s}", "id", jstr(alert, "id"), "reason", reason);
    if (jstr(alert, "node_id"))
        json_object_set(d, "node_id", json_object_get(alert, "node_id"));
    char stream[64];
    snprintf(stream, sizeof stream, "alert/%s", jstr(alert, "id"));
    json_t *rule = json_object_get(r->rule_ix, jstr(alert, "rule_id"));
    bool notify = rule && json_integer_value(json_object_get(alert, "notifications")) > 0 &&
                  !json_is_true(json_object_get(alert, "silenced"));
    struct sb_err err = {0};
    int queued = 0;
    int rc = alerts_transition(r->a, stream, "alert.resolved", d, notify ? rule : NULL, alert, "resolved",
                               &queued, &err);
    json_decref(d);
    if (rc) {
        if (rc != SB_ECONFLICT)
            log_warn("alert resolution not recorded", "alert=%s detail=\"%s\"", jstr(alert, "id"), err.msg);
        else
            json_object_del(r->open, key);
        return;
    }
    char at[40];
    now_text(at, sizeof at);
    json_object_set_new(alert, "state", json_string("resolved"));
    json_object_set_new(alert, "resolved_at", json_string(at));
    json_object_set_new(alert, "resolved_reason", json_string(reason));
    log_info("alert resolved", "rule=\"%s\" target=%s deliveries=%d", jstr(alert, "rule_name"),
             jstr(alert, "target"), queued);
    json_object_del(r->open, key);
}

/* ---- state rules ---------------------------------------------------------------- */

static void judge_nodes(struct round *r, json_t *rule, json_t *desired)
{
    const char *kind = jstr(rule, "kind");
    const char *k;
    json_t *n;
    json_object_foreach(r->nodes, k, n)
    {
        if (!rule_covers(r, rule, k))
            continue;
        const char *status = jstr(n, strcmp(kind, "collector_silent") == 0 ? "agent_status" : "status");
        const char *want = strcmp(kind, "node_hostkey_mismatch") == 0 ? "hostkey_mismatch" : "offline";
        if (!status || strcmp(status, want) != 0)
            continue;
        char target[64], summary[400];
        snprintf(target, sizeof target, "node/%s", k);
        if (strcmp(kind, "collector_silent") == 0)
            snprintf(summary, sizeof summary, "node %s: its collector stopped reporting", jstr(n, "name"));
        else if (strcmp(kind, "node_hostkey_mismatch") == 0)
            snprintf(summary, sizeof summary, "node %s presented another SSH host key", jstr(n, "name"));
        else
            snprintf(summary, sizeof summary, "node %s is offline%s%.300s", jstr(n, "name"),
                     jstr(n, "status_reason") ? ": " : "",
                     jstr(n, "status_reason") ? jstr(n, "status_reason") : "");
        json_object_set_new(desired, target, json_pack("{s:s, s:s}", "node_id", k, "summary", summary));
    }
}

static void judge_metric(struct round *r, json_t *rule, json_t *desired, bool *judged)
{
    json_t *p = json_object_get(rule, "params");
    const char *metric = jstr(p, "metric");
    json_int_t for_s = json_integer_value(json_object_get(p, "for_s"));
    json_t *windows = NULL;
    struct sb_err err = {0};
    if (!metric ||
        store_metric_windows(r->a->cfg.store, metric, for_s > 0 ? (int)for_s : 300, &windows, &err)) {
        log_warn("metric rule not evaluated", "rule=\"%s\" detail=\"%s\"", jstr(rule, "name"), err.msg);
        return;
    }
    *judged = true;
    bool container = strncmp(metric, "container.", 10) == 0;
    size_t i;
    json_t *w;
    json_array_foreach(windows, i, w)
    {
        const char *key = jstr(w, "key");
        if (!key)
            continue;
        char node[64] = "", cid[128] = "";
        if (container) {
            const char *slash = strchr(key, '/');
            if (!slash)
                continue;
            snprintf(node, sizeof node, "%.*s", (int)(slash - key), key);
            sb_strlcpy(cid, slash + 1, sizeof cid);
        } else {
            sb_strlcpy(node, key, sizeof node);
        }
        if (!json_object_get(r->nodes, node) || !rule_covers(r, rule, node) || !alerts_window_met(rule, w))
            continue;
        char target[256], summary[400];
        double last = json_number_value(json_object_get(w, "last"));
        const char *what = strchr(metric, '.') + 1;
        if (container) {
            snprintf(target, sizeof target, "container/%s/%s", node, cid);
            snprintf(summary, sizeof summary, "container %s: %s %.1f %% %s %g %%",
                     jstr(w, "name") ? jstr(w, "name") : cid, what, last, jstr(p, "op"),
                     json_number_value(json_object_get(p, "threshold")));
        } else {
            snprintf(target, sizeof target, "node/%s", node);
            snprintf(summary, sizeof summary, "node %s: %s %.1f %% %s %g %%",
                     jstr(json_object_get(r->nodes, node), "name"), what, last, jstr(p, "op"),
                     json_number_value(json_object_get(p, "threshold")));
        }
        json_t *info = json_pack("{s:s, s:s, s:f}", "node_id", node, "summary", summary, "value", last);
        if (container) {
            json_object_set_new(info, "container_id", json_string(cid));
            if (jstr(w, "name"))
                json_object_set(info, "container_name", json_object_get(w, "name"));
        }
        json_object_set_new(desired, target, info);
    }
    json_decref(windows);
}

static void judge_chain(struct round *r, json_t *desired, bool *judged)
{
    struct alerts *a = r->a;
    int64_t now = time_mono_ms();
    if (!a->chain_checked || now - a->last_chain_check_ms >= CHAIN_CHECK_MS) {
        struct store_verify_result v;
        struct sb_err err = {0};
        if (store_verify_chain_pool(a->cfg.store, &v, &err) == 0) {
            a->chain_checked = true;
            a->last_chain_check_ms = now;
            a->chain_broken = v.first_bad_seq != 0;
            if (a->chain_broken)
                log_warn("audit chain broken", "first_bad_seq=%lld reason=\"%s\"", (long long)v.first_bad_seq,
                         v.reason);
        }
    }
    if (!a->chain_checked)
        return;
    *judged = true;
    if (a->chain_broken)
        json_object_set_new(desired, "audit",
                            json_pack("{s:s}", "summary", "the audit chain does not verify"));
}

static void judge_state_rules(struct round *r)
{
    size_t i;
    json_t *rule;
    json_array_foreach(r->rules, i, rule)
    {
        const char *kind = jstr(rule, "kind");
        if (alerts_rule_event_driven(kind))
            continue;
        json_t *desired = json_object();
        bool judged = true;
        if (strcmp(kind, "metric") == 0) {
            judged = false;
            judge_metric(r, rule, desired, &judged);
        } else if (strcmp(kind, "audit_chain_broken") == 0) {
            judged = false;
            judge_chain(r, desired, &judged);
        } else {
            judge_nodes(r, rule, desired);
        }
        if (!judged) {
            json_decref(desired);
            continue;
        }
        const char *rule_id = jstr(rule, "id");
        size_t plen = strlen(rule_id);
        /* Resolve first (iterating a copy of the keys: resolve deletes). */
        json_t *keys = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(r->open, k, v)
        {
            if (strncmp(k, rule_id, plen) == 0 && k[plen] == '|')
                json_array_append_new(keys, json_string(k));
        }
        size_t j;
        json_t *kv;
        json_array_foreach(keys, j, kv)
        {
            const char *key = json_string_value(kv);
            if (!json_object_get(desired, key + plen + 1))
                resolve(r, key, json_object_get(r->open, key), "cleared");
        }
        json_decref(keys);
        json_object_foreach(desired, k, v) fire(r, rule, k, v, 0);
        json_decref(desired);
    }
}

/* ---- event rules ------------------------------------------------------------------ */

struct batch {
    json_t *rows; /* [{seq, type, data}] */
};

static int collect(void *ctx, const struct store_event_row *ev)
{
    struct batch *b = ctx;
    if (strncmp(ev->type, "container.", 10) != 0 && strncmp(ev->type, "stack.", 6) != 0 &&
        strncmp(ev->type, "backup.", 7) != 0)
        return 0;
    json_t *body = json_loadb(ev->body, ev->body_len, 0, NULL);
    if (!body)
        return 0;
    json_array_append_new(b->rows, json_pack("{s:I, s:s, s:O}", "seq", (json_int_t)ev->seq, "type", ev->type,
                                             "data", json_object_get(body, "data")));
    json_decref(body);
    return 0;
}

/* The node a stack lives on (NULL when unknown). */
static char *stack_node(struct round *r, const char *stack_id)
{
    json_t *s = NULL;
    struct sb_err err = {0};
    char *node = NULL;
    if (stack_id && store_stack_get(r->a->cfg.store, stack_id, &s, &err) == 0 && jstr(s, "node_id"))
        node = strdup(jstr(s, "node_id"));
    json_decref(s);
    return node;
}

/* "plan <name>: " before a backup alert's summary (the event names only the id). */
static void name_plan(struct round *r, json_t *sig)
{
    json_t *plan = NULL;
    struct sb_err err = {0};
    if (store_backup_get(r->a->cfg.store, "plan", jstr(sig, "plan_id"), &plan, &err) == 0 &&
        jstr(plan, "name")) {
        char what[600];
        snprintf(what, sizeof what, "plan %s: %s", jstr(plan, "name"), jstr(sig, "summary"));
        json_object_set_new(sig, "summary", json_string(what));
    }
    json_decref(plan);
}

static void apply_event(struct round *r, int64_t seq, const char *type, json_t *data)
{
    size_t i;
    json_t *rule;
    char *snode = NULL;
    bool snode_loaded = false;
    json_array_foreach(r->rules, i, rule)
    {
        json_t *sig = alerts_event_signal(rule, type, data);
        if (!sig)
            continue;
        const char *action = jstr(sig, "action"), *target = jstr(sig, "target");
        if (jstr(sig, "stack_id") && !jstr(sig, "node_id")) {
            if (!snode_loaded) {
                snode = stack_node(r, jstr(sig, "stack_id"));
                snode_loaded = true;
            }
            if (snode)
                json_object_set_new(sig, "node_id", json_string(snode));
        }
        char key[400];
        key_of(jstr(rule, "id"), target, key, sizeof key);
        json_t *open = json_object_get(r->open, key);
        if (strcmp(action, "resolve") == 0) {
            if (open)
                resolve(r, key, open, jstr(sig, "reason") ? jstr(sig, "reason") : "cleared");
        } else if (rule_covers(r, rule, jstr(sig, "node_id"))) {
            bool go = strcmp(action, "fire") == 0;
            if (strcmp(action, "count") == 0 && !open) {
                json_t *p = json_object_get(rule, "params");
                char stream[220];
                snprintf(stream, sizeof stream, "container/%s/%s", jstr(sig, "node_id"),
                         jstr(sig, "container_id"));
                int64_t n = 0;
                struct sb_err err = {0};
                if (store_events_count_recent(r->a->cfg.store, stream, "container.died",
                                              (int)json_integer_value(json_object_get(p, "window_s")), &n,
                                              &err) == 0 &&
                    n >= json_integer_value(json_object_get(p, "count"))) {
                    char what[120];
                    snprintf(what, sizeof what, "died %lld times in %lld s", (long long)n,
                             (long long)json_integer_value(json_object_get(p, "window_s")));
                    json_object_set_new(sig, "summary", json_string(what));
                    go = true;
                }
            }
            if (go) {
                if (jstr(sig, "plan_id") && jstr(sig, "summary"))
                    name_plan(r, sig);
                if (jstr(sig, "container_id") && jstr(sig, "summary")) {
                    char what[600];
                    snprintf(what, sizeof what, "container %s %s",
                             jstr(sig, "container_name") ? jstr(sig, "container_name")
                                                         : jstr(sig, "container_id"),
                             jstr(sig, "summary"));
                    json_object_set_new(sig, "summary", json_string(what));
                }
                fire(r, rule, target, sig, seq);
            }
        }
        json_decref(sig);
    }
    free(snode);
}

static void read_events(struct round *r)
{
    struct store *st = r->a->cfg.store;
    struct sb_err err = {0};
    int64_t cursor = 0;
    bool found = false;
    if (store_alert_cursor_get(st, "events", &cursor, &found, &err))
        return;
    if (!found) {
        /* Set by the migration; if the row went missing, from the head on. */
        uint8_t hash[32];
        if (store_head(st, &cursor, hash, &err) == 0)
            store_alert_cursor_set(st, "events", cursor, &err);
        return;
    }
    int total = 0;
    while (total < EVENTS_PER_ROUND) {
        struct batch b = {.rows = json_array()};
        int64_t last = cursor;
        if (store_events_after(st, cursor, 500, collect, &b, &last, &err)) {
            json_decref(b.rows);
            return;
        }
        size_t i;
        json_t *row;
        json_array_foreach(b.rows, i, row)
            apply_event(r, (int64_t)json_integer_value(json_object_get(row, "seq")), jstr(row, "type"),
                        json_object_get(row, "data"));
        json_decref(b.rows);
        if (last == cursor)
            break;
        total += (int)(last - cursor);
        cursor = last;
        store_alert_cursor_set(st, "events", cursor, &err);
    }
}

/* Open restart-loop alerts resolve when the deaths in the window fall
 * under the count. */
static void judge_restart_loops(struct round *r)
{
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(r->open, k, v)
    {
        if (jstr(v, "kind") && strcmp(jstr(v, "kind"), "container_restart_loop") == 0)
            json_array_append_new(keys, json_string(k));
    }
    size_t i;
    json_t *kv;
    json_array_foreach(keys, i, kv)
    {
        json_t *alert = json_object_get(r->open, json_string_value(kv));
        json_t *rule = json_object_get(r->rule_ix, jstr(alert, "rule_id"));
        if (!rule)
            continue;
        json_t *p = json_object_get(rule, "params");
        int64_t n = 0;
        struct sb_err err = {0};
        if (store_events_count_recent(r->a->cfg.store, jstr(alert, "target"), "container.died",
                                      (int)json_integer_value(json_object_get(p, "window_s")), &n,
                                      &err) == 0 &&
            n < json_integer_value(json_object_get(p, "count")))
            resolve(r, json_string_value(kv), alert, "no longer restarting");
    }
    json_decref(keys);
}

/* ---- silences and repeats ----------------------------------------------------------- */

static void end_silences(struct round *r, json_t *all)
{
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s)
    {
        if (!json_is_true(json_object_get(s, "expired"))) {
            json_array_append(r->silences, s);
            continue;
        }
        char stream[64];
        snprintf(stream, sizeof stream, "alert_silence/%s", jstr(s, "id"));
        json_t *d = json_pack("{s:s}", "id", jstr(s, "id"));
        struct sb_err err = {0};
        if (alerts_append(r->a, stream, "alert_silence.ended", d, &err))
            log_warn("silence end not recorded", "silence=%s detail=\"%s\"", jstr(s, "id"), err.msg);
        json_decref(d);
    }
}

static int64_t time_of(json_t *alert, const char *key)
{
    int64_t us = 0;
    const char *s = jstr(alert, key);
    return s && time_parse_rfc3339(s, &us) == 0 ? us : 0;
}

static void silences_and_repeats(struct round *r)
{
    const char *k;
    json_t *alert;
    json_object_foreach(r->open, k, alert)
    {
        json_t *rule = json_object_get(r->rule_ix, jstr(alert, "rule_id"));
        bool was = json_is_true(json_object_get(alert, "silenced"));
        bool now = silenced(r, alert);
        const char *state = jstr(alert, "state");
        char stream[64];
        snprintf(stream, sizeof stream, "alert/%s", jstr(alert, "id"));
        struct sb_err err = {0};
        if (was != now) {
            json_t *d = json_pack("{s:s}", "id", jstr(alert, "id"));
            if (jstr(alert, "node_id"))
                json_object_set(d, "node_id", json_object_get(alert, "node_id"));
            bool notify = !now && rule && state && strcmp(state, "firing") == 0;
            int queued = 0;
            int rc = alerts_transition(r->a, stream, now ? "alert.silenced" : "alert.unsilenced", d,
                                       notify ? rule : NULL, alert, "unsilenced", &queued, &err);
            json_decref(d);
            if (rc)
                continue;
            json_object_set_new(alert, "silenced", json_boolean(now));
            if (notify) {
                char at[40];
                now_text(at, sizeof at);
                json_object_set_new(alert, "last_notified_at", json_string(at));
                json_object_set_new(
                    alert, "notifications",
                    json_integer(json_integer_value(json_object_get(alert, "notifications")) + 1));
            }
            continue;
        }
        json_int_t repeat = rule ? json_integer_value(json_object_get(rule, "repeat_s")) : 0;
        if (now || repeat <= 0 || !state || strcmp(state, "firing") != 0)
            continue;
        int64_t last = time_of(alert, "last_notified_at");
        if (!last)
            last = time_of(alert, "fired_at");
        if (!last || r->now_us - last < (int64_t)repeat * 1000000)
            continue;
        json_t *d = json_pack("{s:s, s:s}", "id", jstr(alert, "id"), "reason", "repeat");
        if (jstr(alert, "node_id"))
            json_object_set(d, "node_id", json_object_get(alert, "node_id"));
        int queued = 0;
        int rc = alerts_transition(r->a, stream, "alert.renotified", d, rule, alert, "repeat", &queued, &err);
        json_decref(d);
        if (rc)
            continue;
        char at[40];
        now_text(at, sizeof at);
        json_object_set_new(alert, "last_notified_at", json_string(at));
    }
}

/* ---- the round ------------------------------------------------------------------------ */

void alerts_seed_defaults(struct alerts *a)
{
    bool seeded = true;
    struct sb_err err = {0};
    if (store_alert_rules_seeded(a->cfg.store, &seeded, &err) || seeded)
        return;
    json_t *defs = alerts_default_rules();
    size_t i;
    json_t *rule;
    json_array_foreach(defs, i, rule)
    {
        char id[37], stream[64];
        uuid_v4(id);
        snprintf(stream, sizeof stream, "alert_rule/%s", id);
        json_object_set_new(rule, "id", json_string(id));
        json_object_set_new(rule, "builtin", json_true());
        json_object_set_new(rule, "by", json_string("serverbox"));
        int rc = alerts_append(a, stream, "alert_rule.created", rule, &err);
        if (rc == SB_ECONFLICT) /* another daemon made it at the same moment */
            log_debug("default alert rule exists", "detail=\"%s\"", err.msg);
        else if (rc)
            log_warn("default alert rule not recorded", "detail=\"%s\"", err.msg);
    }
    log_info("default alert rules made", "count=%zu", json_array_size(defs));
    json_decref(defs);
}

void alerts_evaluate(struct alerts *a)
{
    pthread_mutex_lock(&a->eval_lock);
    alerts_seed_defaults(a);
    struct round r = {.a = a,
                      .rules = json_array(),
                      .rule_ix = json_object(),
                      .open = json_object(),
                      .nodes = json_object(),
                      .silences = json_array(),
                      .now_us = time_now_us()};
    json_t *rules = NULL, *open = NULL, *nodes = NULL, *sil = NULL;
    struct sb_err err = {0};
    if (store_alert_rules_list(a->cfg.store, &rules, &err) ||
        store_alerts_list(a->cfg.store, "open", 5000, &open, &err) ||
        store_node_list(a->cfg.store, &nodes, &err) ||
        store_alert_silences_list(a->cfg.store, "active", &sil, &err)) {
        log_debug("alert evaluation skipped", "detail=\"%s\"", err.msg);
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach(rules, i, v)
    {
        json_object_set(r.rule_ix, jstr(v, "id"), v);
        if (json_is_true(json_object_get(v, "enabled")))
            json_array_append(r.rules, v);
    }
    json_array_foreach(nodes, i, v) json_object_set(r.nodes, jstr(v, "id"), v);
    json_array_foreach(open, i, v)
    {
        char key[400];
        key_of(jstr(v, "rule_id"), jstr(v, "target"), key, sizeof key);
        json_object_set(r.open, key, v);
    }
    end_silences(&r, sil);
    /* Alerts of rules deleted or disabled resolve. */
    json_t *orphans = json_array();
    const char *k;
    json_object_foreach(r.open, k, v)
    {
        json_t *rule = json_object_get(r.rule_ix, jstr(v, "rule_id"));
        if (!rule || !json_is_true(json_object_get(rule, "enabled")))
            json_array_append_new(orphans, json_string(k));
    }
    json_t *kv;
    json_array_foreach(orphans, i, kv)
    {
        json_t *alert = json_object_get(r.open, json_string_value(kv));
        json_object_del(r.rule_ix, jstr(alert, "rule_id")); /* no notification for a disabled rule */
        resolve(&r, json_string_value(kv), alert, "the rule was deleted or disabled");
    }
    json_decref(orphans);
    judge_state_rules(&r);
    read_events(&r);
    judge_restart_loops(&r);
    silences_and_repeats(&r);
out:
    json_decref(rules);
    json_decref(open);
    json_decref(nodes);
    json_decref(sil);
    json_decref(r.rules);
    json_decref(r.rule_ix);
    json_decref(r.open);
    json_decref(r.nodes);
    json_decref(r.silences);
    pthread_mutex_unlock(&a->eval_lock);
}

void alerts_eval_run(void *ctx)
{
    alerts_evaluate(ctx);
}
