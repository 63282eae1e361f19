/*
 * The pure parts of alerts: rule, silence and channel validation, what an
 * event means for a rule, threshold windows, silence matching, the webhook
 * signature and the notification texts. No database, no clock except where
 * a caller passes it; alerts_url_check resolves the host name (DNS).
 */
#include "alerts.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const rule_kinds[] = {"metric",
                                         "node_offline",
                                         "node_hostkey_mismatch",
                                         "collector_silent",
                                         "container_died",
                                         "container_oom",
                                         "container_unhealthy",
                                         "container_restart_loop",
                                         "stack_deploy_failed",
                                         "stack_rolled_back",
                                         "audit_chain_broken",
                                         "backup_failed",
                                         NULL};
static const char *const metrics[] = {"node.cpu",      "node.memory",      "node.disk",
                                      "container.cpu", "container.memory", NULL};
static const char *const severities[] = {"info", "warning", "critical", NULL};
static const char *const ops[] = {">", ">=", "<", "<=", NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

bool alerts_rule_kind_known(const char *kind)
{
    return in_list(kind, rule_kinds);
}

bool alerts_rule_event_driven(const char *kind)
{
    return kind && (strncmp(kind, "container_", 10) == 0 || strncmp(kind, "stack_", 6) == 0 ||
                    strcmp(kind, "backup_failed") == 0);
}

static bool text_ok(json_t *v, size_t max, bool empty_ok)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || json_string_length(v) > max ||
        (!empty_ok && json_string_length(v) == 0))
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static int check_labels(json_t *v, struct sb_err *err)
{
    static const struct labels_rule rule = {"node_labels", 16, 100, 100, NULL, true};
    return labels_check(v, &rule, err);
}

/* The value of a field: in the input if present, else in old (may be NULL). */
static json_t *pick(json_t *in, json_t *old, const char *key)
{
    json_t *v = json_object_get(in, key);
    return v ? v : old ? json_object_get(old, key) : NULL;
}

static json_t *pick_param(json_t *in, json_t *old, const char *key)
{
    json_t *v = json_object_get(in, key);
    return v ? v : old ? json_object_get(json_object_get(old, "params"), key) : NULL;
}

static int int_field(json_t *v, const char *name, json_int_t min, json_int_t max, json_int_t def,
                     json_int_t *out, struct sb_err *err)
{
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return sb_field_error(err, name, "%s must be a whole number from %lld to %lld", name, (long long)min,
                              (long long)max);
    *out = json_integer_value(v);
    return 0;
}

static const char *default_severity(const char *kind)
{
    if (strcmp(kind, "node_offline") == 0 || strcmp(kind, "container_oom") == 0 ||
        strcmp(kind, "audit_chain_broken") == 0 || strcmp(kind, "node_hostkey_mismatch") == 0)
        return "critical";
    return "warning";
}

int alerts_rule_normalize(json_t *in, json_t *old, json_t **rule, struct sb_err *err)
{
    static const char *const allowed[] = {"name",     "kind",     "metric",   "op",       "threshold",
                                          "for_s",    "count",    "window_s", "severity", "node_labels",
                                          "channels", "repeat_s", "enabled",  NULL};
    *rule = NULL;
    if (!json_is_object(in))
        return sb_error(err, SB_EINVAL, "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (!in_list(k, allowed))
            return sb_field_error(err, k, "unknown field '%.40s'", k);
    }
    json_t *name = pick(in, old, "name");
    if (!text_ok(name, 100, false))
        return sb_field_error(err, "name", "name must be 1 to 100 characters without control characters");
    if (old && json_object_get(in, "kind") &&
        !json_equal(json_object_get(in, "kind"), json_object_get(old, "kind")))
        return sb_field_error(err, "kind", "a rule's kind cannot change (make a new rule)");
    const char *kind = json_string_value(pick(in, old, "kind"));
    if (!alerts_rule_kind_known(kind))
        return sb_field_error(
            err, "kind",
            "kind must be one of metric, node_offline, node_hostkey_mismatch, collector_silent, "
            "container_died, container_oom, container_unhealthy, container_restart_loop, "
            "stack_deploy_failed, stack_rolled_back, audit_chain_broken, backup_failed");
    json_t *params = json_object();
    json_int_t n;
    if (strcmp(kind, "metric") == 0) {
        const char *metric = json_string_value(pick_param(in, old, "metric"));
        if (!in_list(metric, metrics)) {
            json_decref(params);
            return sb_field_error(err, "metric",
                                  "metric must be one of node.cpu, node.memory, node.disk, container.cpu, "
                                  "container.memory (percent)");
        }
        json_t *opv = pick_param(in, old, "op");
        const char *op = opv ? json_string_value(opv) : ">";
        if (!in_list(op, ops)) {
            json_decref(params);
            return sb_field_error(err, "op", "op must be one of >, >=, <, <=");
        }
        json_t *th = pick_param(in, old, "threshold");
        if (!json_is_number(th) || !isfinite(json_number_value(th)) || json_number_value(th) < 0 ||
            json_number_value(th) > 10000) {
            json_decref(params);
            return sb_field_error(err, "threshold", "threshold must be a number of percent from 0 to 10000");
        }
        if (int_field(pick_param(in, old, "for_s"), "for_s", 0, 86400, 0, &n, err)) {
            json_decref(params);
            return err ? err->code : SB_EINVAL;
        }
        json_object_set_new(params, "metric", json_string(metric));
        json_object_set_new(params, "op", json_string(op));
        json_object_set_new(params, "threshold", json_real(json_number_value(th)));
        json_object_set_new(params, "for_s", json_integer(n));
    } else {
        for (const char *const *f = (const char *const[]){"metric", "op", "threshold", "for_s", NULL}; *f;
             f++)
            if (json_object_get(in, *f)) {
                json_decref(params);
                return sb_field_error(err, *f, "%s applies to metric rules only", *f);
            }
    }
    if (strcmp(kind, "container_restart_loop") == 0) {
        json_int_t w;
        if (int_field(pick_param(in, old, "count"), "count", 2, 100, 3, &n, err) ||
            int_field(pick_param(in, old, "window_s"), "window_s", 10, 86400, 600, &w, err)) {
            json_decref(params);
            return err ? err->code : SB_EINVAL;
        }
        json_object_set_new(params, "count", json_integer(n));
        json_object_set_new(params, "window_s", json_integer(w));
    } else {
        for (const char *const *f = (const char *const[]){"count", "window_s", NULL}; *f; f++)
            if (json_object_get(in, *f)) {
                json_decref(params);
                return sb_field_error(err, *f, "%s applies to container_restart_loop rules only", *f);
            }
    }
    json_t *sev = pick(in, old, "severity");
    const char *severity = sev ? json_string_value(sev) : default_severity(kind);
    if (!in_list(severity, severities)) {
        json_decref(params);
        return sb_field_error(err, "severity", "severity must be info, warning or critical");
    }
    json_t *labels = pick(in, old, "node_labels");
    if (labels && check_labels(labels, err)) {
        json_decref(params);
        return err ? err->code : SB_EINVAL;
    }
    json_t *channels = pick(in, old, "channels");
    if (channels && !json_is_null(channels)) {
        size_t i;
        json_t *c;
        bool ok = json_is_array(channels) && json_array_size(channels) <= 20;
        json_array_foreach(channels, i, c) ok = ok && json_is_string(c) && uuid_valid(json_string_value(c));
        if (!ok) {
            json_decref(params);
            return sb_field_error(err, "channels", "channels must be an array of at most 20 channel ids");
        }
    }
    json_int_t repeat;
    if (int_field(pick(in, old, "repeat_s"), "repeat_s", 0, 604800, 0, &repeat, err)) {
        json_decref(params);
        return err ? err->code : SB_EINVAL;
    }
    if (repeat != 0 && repeat < 10) {
        json_decref(params);
        return sb_field_error(err, "repeat_s", "repeat_s must be 0 (never) or at least 10 seconds");
    }
    json_t *en = pick(in, old, "enabled");
    if (en && !json_is_boolean(en)) {
        json_decref(params);
        return sb_field_error(err, "enabled", "enabled must be true or false");
    }
    *rule = json_pack("{s:O, s:s, s:o, s:s, s:O, s:o, s:I, s:b}", "name", name, "kind", kind, "params",
                      params, "severity", severity, "node_labels",
                      labels && !json_is_null(labels) && json_object_size(labels) ? labels : json_null(),
                      "channels", channels && !json_is_null(channels) ? json_incref(channels) : json_array(),
                      "repeat_s", (json_int_t)repeat, "enabled", en ? json_is_true(en) : true);
    if (!*rule)
        return sb_error(err, SB_ENOMEM, "out of memory");
    return 0;
}

json_t *alerts_default_rules(void)
{
    static const char *const defaults[] = {
        "{\"name\":\"Node offline\",\"kind\":\"node_offline\"}",
        "{\"name\":\"Container killed: out of memory\",\"kind\":\"container_oom\"}",
        "{\"name\":\"Disk over 90 %\",\"kind\":\"metric\",\"metric\":\"node.disk\",\"op\":\">\","
        "\"threshold\":90,\"for_s\":300}",
        "{\"name\":\"Audit chain broken\",\"kind\":\"audit_chain_broken\"}",
        "{\"name\":\"Backup failed\",\"kind\":\"backup_failed\"}",
        NULL};
    json_t *out = json_array();
    for (size_t i = 0; defaults[i]; i++) {
        json_t *in = json_loads(defaults[i], 0, NULL), *r = NULL;
        if (in && alerts_rule_normalize(in, NULL, &r, NULL) == 0)
            json_array_append_new(out, r);
        json_decref(in);
    }
    return out;
}

/* ---- events → signals ------------------------------------------------------ */

static const char *dstr(json_t *data, const char *key)
{
    return json_string_value(json_object_get(data, key));
}

static json_t *container_signal(const char *action, json_t *data, const char *what)
{
    const char *node = dstr(data, "node_id"), *cid = dstr(data, "container_id");
    if (!node || !cid)
        return NULL;
    char target[200];
    snprintf(target, sizeof target, "container/%s/%s", node, cid);
    json_t *s = json_pack("{s:s, s:s, s:s, s:s}", "action", action, "target", target, "node_id", node,
                          "container_id", cid);
    const char *name = dstr(data, "name");
    if (name)
        json_object_set_new(s, "container_name", json_string(name));
    if (what)
        json_object_set_new(s, strcmp(action, "fire") == 0 ? "summary" : "reason", json_string(what));
    return s;
}

/* A backup event: the plan's runs and restore tests fire and resolve the
 * alert of backup_plan/<id>; a restore (which names no plan) fires and
 * resolves that of backup_repository/<id>. */
static json_t *backup_signal(const char *t, json_t *data)
{
    static const char *const fires[] = {"run_failed", "restore_test_failed", "restore_failed", NULL};
    static const char *const clears[] = {"run_succeeded", "restore_test_succeeded", "restored", NULL};
    bool fire = in_list(t, fires);
    if (!fire && !in_list(t, clears) && strcmp(t, "plan_deleted") != 0)
        return NULL;
    if (strcmp(t, "plan_deleted") == 0 && dstr(data, "id")) {
        char target[100];
        snprintf(target, sizeof target, "backup_plan/%.60s", dstr(data, "id"));
        return json_pack("{s:s, s:s, s:s, s:s}", "action", "resolve", "target", target, "plan_id",
                         dstr(data, "id"), "reason", "the plan was deleted");
    }
    const char *plan = dstr(data, "plan_id"), *repo = dstr(data, "repository_id");
    if (strcmp(t, "restore_failed") == 0 || strcmp(t, "restored") == 0)
        plan = NULL; /* a restore is the repository's, whatever else it names */
    if (!plan && !repo)
        return NULL;
    char target[100];
    snprintf(target, sizeof target, "%s/%.60s", plan ? "backup_plan" : "backup_repository",
             plan ? plan : repo);
    json_t *s = json_pack("{s:s, s:s}", "action", fire ? "fire" : "resolve", "target", target);
    if (plan)
        json_object_set_new(s, "plan_id", json_string(plan));
    else
        json_object_set_new(s, "repository_id", json_string(repo));
    if (dstr(data, "node_id"))
        json_object_set_new(s, "node_id", json_string(dstr(data, "node_id")));
    char what[400];
    if (fire) {
        const char *how = strcmp(t, "run_failed") == 0            ? "backup run failed"
                          : strcmp(t, "restore_test_failed") == 0 ? "restore test failed"
                                                                  : "restore failed";
        snprintf(what, sizeof what, "%s: %.300s", how,
                 dstr(data, "reason") ? dstr(data, "reason") : "no reason given");
        json_object_set_new(s, "summary", json_string(what));
    } else {
        json_object_set_new(s, "reason",
                            json_string(strcmp(t, "run_succeeded") == 0 ? "the next backup run succeeded"
                                        : strcmp(t, "restored") == 0    ? "a restore succeeded"
                                                                        : "the next restore test succeeded"));
    }
    return s;
}

json_t *alerts_event_signal(json_t *rule, const char *type, json_t *data)
{
    const char *kind = dstr(rule, "kind");
    if (!kind || !type || !alerts_rule_event_driven(kind))
        return NULL;
    if (strncmp(type, "container.", 10) == 0) {
        const char *t = type + 10;
        if (strcmp(t, "destroyed") == 0)
            return container_signal("resolve", data, "the container was removed");
        if (strcmp(kind, "container_oom") == 0) {
            if (strcmp(t, "oom") == 0)
                return container_signal("fire", data, "killed: out of memory");
            if (strcmp(t, "started") == 0)
                return container_signal("resolve", data, "running again");
        } else if (strcmp(kind, "container_died") == 0) {
            json_t *code = json_object_get(data, "exit_code");
            if (strcmp(t, "died") == 0 && json_is_integer(code) && json_integer_value(code) != 0) {
                char what[64];
                snprintf(what, sizeof what, "died with exit code %lld", (long long)json_integer_value(code));
                return container_signal("fire", data, what);
            }
            if (strcmp(t, "started") == 0)
                return container_signal("resolve", data, "running again");
        } else if (strcmp(kind, "container_unhealthy") == 0) {
            const char *h = dstr(data, "health");
            if (strcmp(t, "health_status") == 0 && h && strcmp(h, "unhealthy") == 0)
                return container_signal("fire", data, "unhealthy");
            if (strcmp(t, "health_status") == 0 && h && strcmp(h, "healthy") == 0)
                return container_signal("resolve", data, "healthy again");
        } else if (strcmp(kind, "container_restart_loop") == 0) {
            /* A candidate: the evaluator counts the deaths in the window. */
            if (strcmp(t, "died") == 0)
                return container_signal("count", data, "restarting in a loop");
        }
        return NULL;
    }
    if (strncmp(type, "backup.", 7) == 0)
        return strcmp(kind, "backup_failed") == 0 ? backup_signal(type + 7, data) : NULL;
    if (strncmp(type, "stack.", 6) == 0 && strncmp(kind, "stack_", 6) == 0) {
        const char *id = dstr(data, "id"), *t = type + 6;
        if (!id)
            return NULL;
        char target[64];
        snprintf(target, sizeof target, "stack/%s", id);
        bool rolled = json_is_true(json_object_get(data, "rolled_back"));
        if (strcmp(t, "deploy_failed") == 0 && (strcmp(kind, "stack_deploy_failed") == 0 || rolled)) {
            char what[300];
            snprintf(what, sizeof what, "%s: %.240s", rolled ? "deploy rolled back" : "deploy failed",
                     dstr(data, "reason") ? dstr(data, "reason") : "no reason given");
            return json_pack("{s:s, s:s, s:s, s:s}", "action", "fire", "target", target, "stack_id", id,
                             "summary", what);
        }
        if (strcmp(t, "deployed") == 0 || strcmp(t, "deleted") == 0)
            return json_pack("{s:s, s:s, s:s, s:s}", "action", "resolve", "target", target, "stack_id", id,
                             "reason", strcmp(t, "deployed") == 0 ? "deployed" : "the stack was deleted");
    }
    return NULL;
}

/* ---- thresholds ------------------------------------------------------------- */

bool alerts_threshold_met(const char *op, double value, double threshold)
{
    if (!op || isnan(value))
        return false;
    if (strcmp(op, ">") == 0)
        return value > threshold;
    if (strcmp(op, ">=") == 0)
        return value >= threshold;
    if (strcmp(op, "<") == 0)
        return value < threshold;
    if (strcmp(op, "<=") == 0)
        return value <= threshold;
    return false;
}

bool alerts_window_met(json_t *rule, json_t *window)
{
    json_t *p = json_object_get(rule, "params");
    const char *op = dstr(p, "op");
    double th = json_number_value(json_object_get(p, "threshold"));
    json_int_t for_s = json_integer_value(json_object_get(p, "for_s"));
    if (!op || json_integer_value(json_object_get(window, "n")) < 1)
        return false;
    if (for_s <= 0) {
        json_t *last = json_object_get(window, "last");
        return json_is_number(last) && alerts_threshold_met(op, json_number_value(last), th);
    }
    /* The window must reach back (nearly) for_s: its oldest sample at most
     * a quarter of it (30 s at most) younger than the window's start. */
    double slack = (double)for_s / 4 < 30 ? (double)for_s / 4 : 30;
    json_t *age = json_object_get(window, "age_s");
    if (!json_is_number(age) || json_number_value(age) < (double)for_s - slack)
        return false;
    json_t *worst = json_object_get(window, op[0] == '>' ? "min" : "max");
    return json_is_number(worst) && alerts_threshold_met(op, json_number_value(worst), th);
}

/* ---- silences --------------------------------------------------------------- */

static const char *const silence_fields[] = {"rule_id", "rule_name", "kind",           "severity", "target",
                                             "node_id", "node_name", "container_name", NULL};

bool alerts_silence_matches(json_t *silence, json_t *alert, json_t *node_labels)
{
    json_t *sel = json_object_get(silence, "node_labels");
    if (json_is_object(sel) && json_object_size(sel)) {
        if (!json_is_object(node_labels) || !labels_match(sel, node_labels))
            return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(silence, "matchers"), k, v)
    {
        const char *want = json_string_value(v), *have = dstr(alert, k);
        if (!want || !have)
            return false;
        size_t n = strlen(want);
        if (n && want[n - 1] == '*') {
            if (strncmp(have, want, n - 1) != 0)
                return false;
        } else if (strcmp(have, want) != 0) {
            return false;
        }
    }
    return true;
}

static const char *const weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

/* {days, start "HH:MM", duration_s} into a new normalized object (days in
 * week order, each once), or NULL with err naming the field. */
static json_t *recurrence_normalize(json_t *in, struct sb_err *err)
{
    if (!json_is_object(in)) {
        sb_field_error(err, "recurrence", "recurrence must be an object {days, start, duration_s}");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (strcmp(k, "days") != 0 && strcmp(k, "start") != 0 && strcmp(k, "duration_s") != 0) {
            sb_field_error(err, "recurrence", "recurrence: unknown field '%.40s' (days, start, duration_s)",
                           k);
            return NULL;
        }
    }
    json_t *days = json_object_get(in, "days");
    bool seen[7] = {false};
    size_t i;
    json_t *d;
    bool ok = json_is_array(days) && json_array_size(days) >= 1 && json_array_size(days) <= 7;
    json_array_foreach(days, i, d)
    {
        int day = -1;
        for (int w = 0; ok && weekdays[w]; w++)
            if (json_is_string(d) && strcmp(json_string_value(d), weekdays[w]) == 0)
                day = w;
        ok = ok && day >= 0 && !seen[day];
        if (day >= 0)
            seen[day] = true;
    }
    if (!ok) {
        sb_field_error(err, "recurrence.days",
                       "recurrence.days must be 1 to 7 different days of mon, tue, wed, thu, fri, sat, sun");
        return NULL;
    }
    const char *start = json_string_value(json_object_get(in, "start"));
    int hh = -1, mm = -1;
    if (!start || strlen(start) != 5 || start[2] != ':' || sscanf(start, "%2d:%2d", &hh, &mm) != 2 ||
        strspn(start, "0123456789:") != 5 || hh < 0 || hh > 23 || mm < 0 || mm > 59) {
        sb_field_error(err, "recurrence.start", "recurrence.start must be a UTC time HH:MM (00:00 to 23:59)");
        return NULL;
    }
    json_t *dur = json_object_get(in, "duration_s");
    if (!json_is_integer(dur) || json_integer_value(dur) < 60 || json_integer_value(dur) > 7 * 86400) {
        sb_field_error(err, "recurrence.duration_s",
                       "recurrence.duration_s must be a whole number of seconds from 60 to 604800");
        return NULL;
    }
    json_t *out_days = json_array();
    for (int w = 1; w <= 7; w++) /* mon … sun */
        if (seen[w % 7])
            json_array_append_new(out_days, json_string(weekdays[w % 7]));
    char st[6];
    snprintf(st, sizeof st, "%02d:%02d", hh, mm);
    return json_pack("{s:o, s:s, s:I}", "days", out_days, "start", st, "duration_s", json_integer_value(dur));
}

bool alerts_recurrence_open(json_t *rec, int64_t now_us)
{
    const char *start = json_string_value(json_object_get(rec, "start"));
    json_int_t dur = json_integer_value(json_object_get(rec, "duration_s"));
    int hh, mm;
    if (!start || sscanf(start, "%2d:%2d", &hh, &mm) != 2 || dur <= 0)
        return false;
    int64_t now = now_us / 1000000;
    int64_t midnight = now - ((now % 86400) + 86400) % 86400;
    /* A window that began on one of the last 8 days (at most 7 days long) may cover now. */
    for (int back = 0; back <= 7; back++) {
        int64_t day = midnight - (int64_t)back * 86400;
        int wd = (int)(((day / 86400) + 4) % 7); /* 1970-01-01 was a Thursday */
        if (wd < 0)
            wd += 7;
        bool listed = false;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(rec, "days"), i, d) listed =
            listed || (json_is_string(d) && strcmp(json_string_value(d), weekdays[wd]) == 0);
        int64_t from = day + hh * 3600 + mm * 60;
        if (listed && now >= from && now < from + dur)
            return true;
    }
    return false;
}

int alerts_silence_normalize(json_t *in, int64_t now_us, json_t **silence, struct sb_err *err)
{
    static const char *const allowed[] = {"matchers",    "until",      "duration_s", "comment",
                                          "node_labels", "recurrence", NULL};
    *silence = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (!in_list(k, allowed))
            return sb_field_error(err, k, "unknown field '%.40s'", k);
    }
    json_t *m = json_object_get(in, "matchers");
    if (m && !json_is_null(m)) {
        if (!json_is_object(m) || json_object_size(m) > 8)
            return sb_field_error(err, "matchers", "matchers must be an object of at most 8 field -> value");
        json_object_foreach(m, k, v)
        {
            if (!in_list(k, silence_fields))
                return sb_field_error(err, "matchers",
                                      "matchers: '%.40s' is not one of rule_id, rule_name, kind, severity, "
                                      "target, node_id, node_name, container_name",
                                      k);
            if (!text_ok(v, 200, false))
                return sb_field_error(err, "matchers",
                                      "matchers.%.40s must be a string of 1 to 200 characters", k);
        }
    }
    json_t *labels = json_object_get(in, "node_labels");
    if (labels && check_labels(labels, err))
        return err ? err->code : SB_EINVAL;
    json_t *until = json_object_get(in, "until"), *dur = json_object_get(in, "duration_s");
    json_t *rin = json_object_get(in, "recurrence");
    bool recurring = rin && !json_is_null(rin);
    int64_t until_us = 0;
    if (until && dur)
        return sb_field_error(err, "until", "give until or duration_s, not both");
    if (recurring) {
        /* A maintenance window: weekly, for the nodes of node_labels. */
        if (!json_is_object(labels) || json_object_size(labels) == 0)
            return sb_field_error(err, "node_labels",
                                  "node_labels is required for a recurring maintenance window");
        if (dur)
            return sb_field_error(err, "duration_s",
                                  "duration_s: a recurring window's length is recurrence.duration_s (until "
                                  "may end the schedule)");
    }
    if (dur) {
        if (!json_is_integer(dur) || json_integer_value(dur) < 1 || json_integer_value(dur) > 90 * 86400)
            return sb_field_error(err, "duration_s", "duration_s must be a whole number from 1 to 7776000");
        until_us = now_us + (int64_t)json_integer_value(dur) * 1000000;
    } else if (until) {
        if (!json_is_string(until) || time_parse_rfc3339(json_string_value(until), &until_us))
            return sb_field_error(err, "until", "until must be an RFC 3339 time");
        if (until_us <= now_us)
            return sb_field_error(err, "until", "until must be in the future");
        if (!recurring && until_us > now_us + (int64_t)90 * 86400 * 1000000)
            return sb_field_error(err, "until", "until must be at most 90 days ahead");
    } else if (!recurring) {
        return sb_field_error(err, "until", "until (or duration_s) is required");
    }
    json_t *comment = json_object_get(in, "comment");
    if (comment && !text_ok(comment, 500, true))
        return sb_field_error(err, "comment", "comment must be a string of at most 500 characters");
    json_t *rec = recurring ? recurrence_normalize(rin, err) : NULL;
    if (recurring && !rec)
        return err ? err->code : SB_EINVAL;
    char at[40];
    if (until_us)
        time_format_rfc3339(until_us, at, sizeof at);
    /* until null: a window that recurs until it is deleted. */
    *silence = json_pack("{s:o, s:o, s:o, s:O, s:o}", "matchers",
                         m && !json_is_null(m) ? json_incref(m) : json_object(), "until",
                         until_us ? json_string(at) : json_null(), "comment",
                         comment ? json_incref(comment) : json_string(""), "node_labels",
                         labels && !json_is_null(labels) && json_object_size(labels) ? labels : json_null(),
                         "recurrence", rec ? rec : json_null());
    return *silence ? 0 : sb_error(err, SB_ENOMEM, "out of memory");
}

/* ---- channels --------------------------------------------------------------- */

bool alerts_address_allowed(const char *ip, bool allow_loopback)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
    v4:
        if (a[0] == 127)
            return allow_loopback;
        if (a[0] == 0 || (a[0] == 169 && a[1] == 254) || a[0] >= 224)
            return false;
        if (a[0] == 100 && a[1] == 100 && a[2] == 100 && a[3] == 200)
            return false;
        return true;
    }
    if (inet_pton(AF_INET6, ip, a) != 1)
        return false;
    static const uint8_t zero[16], mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0) {
        memmove(a, a + 12, 4);
        goto v4;
    }
    if (memcmp(a, zero, 15) == 0 && a[15] == 1)
        return allow_loopback;
    if (memcmp(a, zero, 16) == 0 || a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
        return false;
    static const uint8_t ec2[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    if (memcmp(a, ec2, 16) == 0)
        return false;
    return true;
}

int alerts_url_check(const char *kind, const char *url, bool allow_loopback, struct sb_err *err)
{
    if (!url || !*url || strlen(url) > 2000)
        return sb_field_error(err, "url", "url is required (at most 2000 characters)");
    for (const char *s = url; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return sb_field_error(err, "url", "url must not contain spaces or control characters");
    CURLU *u = curl_url();
    if (!u)
        return sb_error(err, SB_ENOMEM, "out of memory");
    char *scheme = NULL, *host = NULL, *user = NULL, *port = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        rc = sb_field_error(err, "url", "url is not an absolute URL");
        goto out;
    }
    bool email = strcmp(kind, "email") == 0;
    bool scheme_ok = email ? (strcmp(scheme, "smtp") == 0 || strcmp(scheme, "smtps") == 0)
                           : (strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0);
    if (!scheme_ok) {
        rc = sb_field_error(err, "url", "url must be %s, not %.20s://",
                            email ? "smtp:// or smtps://" : "http(s)://", scheme);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        rc = sb_field_error(err, "url", "url has no host");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
        rc = sb_field_error(err, "url", "url must not hold credentials (use the channel's secret fields)");
        goto out;
    }
    /* Brackets of an IPv6 literal off. */
    char h[256];
    sb_strlcpy(h, host[0] == '[' ? host + 1 : host, sizeof h);
    char *br = strchr(h, ']');
    if (br)
        *br = '\0';
    char *zone = strchr(h, '%');
    if (zone)
        *zone = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, NULL, &hints, &res) != 0 || !res) {
        rc = sb_field_error(err, "url", "url: host '%.100s' does not resolve", h);
        goto out;
    }
    for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
        char ip[64] = "";
        if (ai->ai_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
        else if (ai->ai_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
        if (!alerts_address_allowed(ip, allow_loopback))
            rc = sb_field_error(err, "url",
                                "url: host '%.100s' resolves to %s, which channels may not reach "
                                "(loopback, link-local, metadata, multicast%s)",
                                h, ip, allow_loopback ? "" : "; loopback only with --alerts-allow-loopback");
    }
    freeaddrinfo(res);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

void alerts_url_masked(const char *url, char *out, size_t len)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p) {
        sb_strlcpy(out, ALERTS_SECRET_MASK, len);
        return;
    }
    const char *host = p + 3;
    const char *end = host + strcspn(host, "/?#");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (at)
        host = at + 1;
    snprintf(out, len, "%.*s://%.*s/%s", (int)(p - url), url, (int)(end - host), host, ALERTS_SECRET_MASK);
}

static bool email_ok(json_t *v)
{
    if (!text_ok(v, 254, false))
        return false;
    const char *s = json_string_value(v), *at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && !strpbrk(s, "<>,;\"' ");
}

int alerts_channel_normalize(json_t *in, json_t *old_clear, json_t *old_secret, bool allow_loopback,
                             json_t **clear, json_t **secret, struct sb_err *err)
{
    static const char *const allowed[] = {"name",     "kind",     "url",   "secret",   "to",      "from",
                                          "username", "password", "token", "starttls", "enabled", NULL};
    *clear = *secret = NULL;
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (!in_list(k, allowed))
            return sb_field_error(err, k, "unknown field '%.40s'", k);
    }
    json_t *name = pick(in, old_clear, "name");
    if (!text_ok(name, 100, false))
        return sb_field_error(err, "name", "name must be 1 to 100 characters without control characters");
    if (old_clear && json_object_get(in, "kind") &&
        !json_equal(json_object_get(in, "kind"), json_object_get(old_clear, "kind")))
        return sb_field_error(err, "kind", "a channel's kind cannot change (make a new channel)");
    const char *kind = json_string_value(pick(in, old_clear, "kind"));
    static const char *const kinds[] = {"webhook", "slack", "discord", "email", "ntfy", "gotify", NULL};
    if (!in_list(kind, kinds))
        return sb_field_error(err, "kind", "kind must be webhook, slack, discord, email, ntfy or gotify");
    bool email = strcmp(kind, "email") == 0;
    /* Fields of another kind are refused, not ignored. */
    const char *only_email[] = {"to", "from", "username", "password", "starttls", NULL};
    for (size_t i = 0; only_email[i]; i++)
        if (!email && json_object_get(in, only_email[i]))
            return sb_field_error(err, only_email[i], "%s applies to email channels only", only_email[i]);
    if (strcmp(kind, "webhook") != 0 && json_object_get(in, "secret"))
        return sb_field_error(err, "secret", "secret applies to webhook channels only");
    if (strcmp(kind, "ntfy") != 0 && strcmp(kind, "gotify") != 0 && json_object_get(in, "token"))
        return sb_field_error(err, "token", "token applies to ntfy and gotify channels only");

    json_t *s = json_object();
    /* Secrets: a value given as the mask (or a masked URL) keeps the old one. */
    const char *secret_fields[] = {"url", "secret", "password", "token", NULL};
    for (size_t i = 0; secret_fields[i]; i++) {
        json_t *nv = json_object_get(in, secret_fields[i]);
        const char *ns = json_string_value(nv);
        if (!nv || json_is_null(nv) || (ns && strstr(ns, ALERTS_SECRET_MASK))) {
            json_t *ov = old_secret ? json_object_get(old_secret, secret_fields[i]) : NULL;
            if (ov && !(nv && json_is_null(nv)))
                json_object_set(s, secret_fields[i], ov);
            continue;
        }
        if (!text_ok(nv, 2000, false)) {
            json_decref(s);
            return sb_field_error(err, secret_fields[i], "%s must be a string of 1 to 2000 characters",
                                  secret_fields[i]);
        }
        json_object_set(s, secret_fields[i], nv);
    }
    const char *url = json_string_value(json_object_get(s, "url"));
    int rc = alerts_url_check(kind, url, allow_loopback, err);
    if (rc) {
        json_decref(s);
        return rc;
    }
    if (strcmp(kind, "gotify") == 0) {
        /* The server's base URL: the message goes to <url>/message. */
        const char *tok = json_string_value(json_object_get(s, "token"));
        if (strpbrk(url, "?#")) {
            json_decref(s);
            return sb_field_error(err, "url",
                                  "url is the Gotify server's address, without a query (the token "
                                  "goes in token)");
        }
        if (!tok || strlen(tok) > 200 || strpbrk(tok, " \t")) {
            json_decref(s);
            return sb_field_error(err, "token",
                                  "token is required for gotify: the application's token (at most 200 "
                                  "characters, no spaces)");
        }
    }
    if (strcmp(kind, "webhook") == 0) {
        const char *sec = json_string_value(json_object_get(s, "secret"));
        if (!sec || strlen(sec) < 16) {
            json_decref(s);
            return sb_field_error(err, "secret",
                                  "secret is required for webhooks: at least 16 characters (it signs each "
                                  "delivery)");
        }
    }
    json_t *c = json_pack("{s:O, s:s}", "name", name, "kind", kind);
    char masked[300];
    alerts_url_masked(url, masked, sizeof masked);
    json_object_set_new(c, "url", json_string(masked));
    if (email) {
        json_t *from = pick(in, old_clear, "from");
        if (!email_ok(from)) {
            json_decref(s);
            json_decref(c);
            return sb_field_error(err, "from", "from must be an email address");
        }
        json_t *to = pick(in, old_clear, "to");
        json_t *list = json_is_string(to) ? json_pack("[O]", to) : json_incref(to);
        size_t i;
        json_t *x;
        bool ok = json_is_array(list) && json_array_size(list) >= 1 && json_array_size(list) <= 10;
        json_array_foreach(list, i, x) ok = ok && email_ok(x);
        if (!ok) {
            json_decref(list);
            json_decref(s);
            json_decref(c);
            return sb_field_error(err, "to", "to must be 1 to 10 email addresses");
        }
        json_t *user = pick(in, old_clear, "username");
        if (user && !json_is_null(user) && !text_ok(user, 200, false)) {
            json_decref(list);
            json_decref(s);
            json_decref(c);
            return sb_field_error(err, "username", "username must be a string of at most 200 characters");
        }
        json_t *tls = pick(in, old_clear, "starttls");
        const char *t = tls ? json_string_value(tls) : "try";
        if (!t || (strcmp(t, "try") != 0 && strcmp(t, "required") != 0)) {
            json_decref(list);
            json_decref(s);
            json_decref(c);
            return sb_field_error(err, "starttls", "starttls must be \"try\" (when offered) or \"required\"");
        }
        json_object_set_new(c, "from", json_incref(from));
        json_object_set_new(c, "to", list);
        if (user && !json_is_null(user))
            json_object_set(c, "username", user);
        json_object_set_new(c, "starttls", json_string(t));
    }
    json_t *en = pick(in, old_clear, "enabled");
    if (en && !json_is_boolean(en)) {
        json_decref(s);
        json_decref(c);
        return sb_field_error(err, "enabled", "enabled must be true or false");
    }
    json_object_set_new(c, "enabled", json_boolean(en ? json_is_true(en) : true));
    *clear = c;
    *secret = s;
    return 0;
}

/* ---- signature and texts ---------------------------------------------------- */

void alerts_signature(const char *secret, const char *timestamp, const char *body, size_t len, char out[72])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp, strlen(timestamp));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    hex_encode(mac, sizeof mac, out + 7);
    sodium_memzero(&st, sizeof st);
}

json_t *alerts_payload(json_t *alert, const char *notification, const char *delivery_id)
{
    static const char *const keys[] = {"id",
                                       "rule_id",
                                       "rule_name",
                                       "kind",
                                       "severity",
                                       "state",
                                       "target",
                                       "node_id",
                                       "node_name",
                                       "container_id",
                                       "container_name",
                                       "summary",
                                       "value",
                                       "fired_at",
                                       "acknowledged_at",
                                       "acknowledged_by",
                                       "resolved_at",
                                       "resolved_reason",
                                       NULL};
    json_t *a = json_object();
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(alert, keys[i]);
        json_object_set(a, keys[i], v ? v : json_null());
    }
    struct buf t;
    buf_init(&t, 8192);
    alerts_text(alert, notification, &t);
    json_t *p =
        json_pack("{s:i, s:s, s:s, s:o, s:s}", "version", 1, "delivery", delivery_id ? delivery_id : "",
                  "notification", notification, "alert", a, "text", t.data);
    buf_release(&t);
    return p;
}

void alerts_text(json_t *alert, const char *notification, struct buf *out)
{
    const char *n = notification;
    const char *tag = strcmp(n, "resolved") == 0 ? "RESOLVED" : strcmp(n, "test") == 0 ? "TEST" : "FIRING";
    if (strcmp(n, "test") == 0 && !dstr(alert, "id")) {
        buf_printf(out, "[TEST] Serverbox test notification\nThis channel works: Serverbox can reach it.\n");
        return;
    }
    const char *sev = dstr(alert, "severity") ? dstr(alert, "severity") : "warning";
    buf_printf(out, "[%s] %s: %s", tag, sev, dstr(alert, "rule_name") ? dstr(alert, "rule_name") : "alert");
    if (dstr(alert, "summary"))
        buf_printf(out, " - %s", dstr(alert, "summary"));
    if (strcmp(n, "repeat") == 0)
        buf_puts(out, " (still firing)");
    buf_putc(out, '\n');
    if (dstr(alert, "node_id"))
        buf_printf(out, "Node: %s (%s)\n", dstr(alert, "node_name") ? dstr(alert, "node_name") : "?",
                   dstr(alert, "node_id"));
    if (dstr(alert, "container_id"))
        buf_printf(out, "Container: %s (%.12s)\n",
                   dstr(alert, "container_name") ? dstr(alert, "container_name") : "?",
                   dstr(alert, "container_id"));
    json_t *value = json_object_get(alert, "value");
    if (json_is_number(value))
        buf_printf(out, "Value: %.1f\n", json_number_value(value));
    buf_printf(out, "Target: %s\n", dstr(alert, "target") ? dstr(alert, "target") : "?");
    if (dstr(alert, "fired_at"))
        buf_printf(out, "Fired at: %s\n", dstr(alert, "fired_at"));
    if (strcmp(n, "resolved") == 0 && dstr(alert, "resolved_at"))
        buf_printf(out, "Resolved at: %s (%s)\n", dstr(alert, "resolved_at"),
                   dstr(alert, "resolved_reason") ? dstr(alert, "resolved_reason") : "cleared");
    if (dstr(alert, "acknowledged_by"))
        buf_printf(out, "Acknowledged by: %s\n", dstr(alert, "acknowledged_by"));
    if (dstr(alert, "id"))
        buf_printf(out, "Alert: %s\n", dstr(alert, "id"));
}
