/*
 * The alerts service: open and close, the firing figure for /metrics, and
 * the changes the API asks for (rules, channels, silences, acknowledgement),
 * each one event (a channel's sealed secrets written beside it).
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int alerts_append(struct alerts *a, const char *stream, const char *type, json_t *data, struct sb_err *err)
{
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .name = "alerts"},
                           .outcome = "success"};
    int64_t seq;
    return store_append(a->cfg.store, &ev, &seq, err);
}

static int append_as(struct alerts *a, const char *prefix, const char *id, const char *type, json_t *data,
                     const struct event_actor *actor, struct sb_err *err)
{
    char stream[96];
    snprintf(stream, sizeof stream, "%s/%s", prefix, id);
    json_object_set_new(data, "id", json_string(id));
    struct event_new ev = {
        .stream = stream, .type = type, .data = data, .actor = *actor, .outcome = "success"};
    int64_t seq;
    return store_append(a->cfg.store, &ev, &seq, err);
}

/* ---- the firing figure ----------------------------------------------------- */

static const char *const severity_names[3] = {"info", "warning", "critical"};

static void *counter_main(void *arg)
{
    struct alerts *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stopping) {
        pthread_mutex_unlock(&a->lock);
        json_t *counts = NULL;
        struct sb_err err = {0};
        if (store_alerts_open_counts(a->cfg.store, &counts, &err) == 0) {
            for (int i = 0; i < 3; i++)
                atomic_store(&a->firing[i],
                             (long long)json_integer_value(json_object_get(counts, severity_names[i])));
        }
        json_decref(counts);
        pthread_mutex_lock(&a->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        if (!a->stopping)
            pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

void alerts_prometheus(struct alerts *a, struct buf *out)
{
    if (!a)
        return;
    buf_puts(out, "# HELP serverbox_alerts_firing Open alerts (firing or acknowledged), by severity.\n"
                  "# TYPE serverbox_alerts_firing gauge\n");
    for (int i = 0; i < 3; i++)
        buf_printf(out, "serverbox_alerts_firing{severity=\"%s\"} %lld\n", severity_names[i],
                   (long long)atomic_load(&a->firing[i]));
}

/* ---- open and close ----------------------------------------------------------- */

struct alerts *alerts_open(const struct alerts_config *cfg, struct sb_err *err)
{
    struct alerts *a = calloc(1, sizeof *a);
    if (!a) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    a->cfg = *cfg;
    if (a->cfg.interval_ms <= 0)
        a->cfg.interval_ms = 15000;
    pthread_mutex_init(&a->eval_lock, NULL);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    struct jobs_kind k = {
        .kind = "alert.deliver", .run = alerts_deliver_job, .ctx = a, .max_attempts = 12, .timeout_s = 60};
    if (jobs_register(cfg->jobs, &k, err))
        goto fail;
    if (cfg->run_evaluation) {
        struct jobs_duty d = {
            .name = "alerts-eval", .interval_ms = a->cfg.interval_ms, .run = alerts_eval_run, .ctx = a};
        if (jobs_duty_register(cfg->jobs, &d, err))
            goto fail;
    }
    /* The defaults of a fresh install, before the daemon serves (so they are
     * there from the first request); each round retries if the database was
     * down now. */
    if (cfg->run_evaluation)
        alerts_seed_defaults(a);
    if (pthread_create(&a->counter, NULL, counter_main, a) == 0)
        a->counter_started = true;
    return a;
fail:
    pthread_mutex_destroy(&a->eval_lock);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
    return NULL;
}

void alerts_close(struct alerts *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->counter_started)
        pthread_join(a->counter, NULL);
    pthread_mutex_destroy(&a->eval_lock);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    free(a);
}

/* ---- rules ------------------------------------------------------------------- */

/* A rule's node selector against the caller's scope: none given takes the
 * scope; a wider one is refused. */
static int scope_labels(json_t *obj, json_t *scope, struct sb_err *err)
{
    if (!json_is_object(scope) || json_object_size(scope) == 0)
        return 0;
    json_t *labels = json_object_get(obj, "node_labels");
    if (!json_is_object(labels) || json_object_size(labels) == 0) {
        json_object_set(obj, "node_labels", scope);
        return 0;
    }
    if (!labels_match(scope, labels))
        return sb_field_error(err, "node_labels", "node_labels must be within your own node scope");
    return 0;
}

static int check_channels(struct alerts *a, json_t *rule, struct sb_err *err)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(rule, "channels"), i, c)
    {
        json_t *row = NULL;
        int rc = store_alert_channel_get(a->cfg.store, json_string_value(c), &row, err);
        json_decref(row);
        if (rc == SB_ENOTFOUND)
            return sb_field_error(err, "channels", "channels: no channel %.40s", json_string_value(c));
        if (rc)
            return rc;
    }
    return 0;
}

int alerts_rule_create(struct alerts *a, json_t *in, json_t *scope, const struct event_actor *actor,
                       json_t **out, struct sb_err *err)
{
    *out = NULL;
    json_t *rule = NULL;
    int rc = alerts_rule_normalize(in, NULL, &rule, err);
    if (rc == 0)
        rc = scope_labels(rule, scope, err);
    if (rc == 0)
        rc = check_channels(a, rule, err);
    char id[37];
    uuid_v4(id);
    if (rc == 0) {
        json_object_set_new(rule, "by", json_string(actor->name ? actor->name : ""));
        rc = append_as(a, "alert_rule", id, "alert_rule.created", rule, actor, err);
    }
    json_decref(rule);
    if (rc == SB_ECONFLICT)
        return sb_error(err, SB_ECONFLICT, "a rule with this name exists");
    return rc ? rc : store_alert_rule_get(a->cfg.store, id, out, err);
}

int alerts_rule_update(struct alerts *a, json_t *old, json_t *in, json_t *scope,
                       const struct event_actor *actor, json_t **out, struct sb_err *err)
{
    *out = NULL;
    json_t *rule = NULL;
    int rc = alerts_rule_normalize(in, old, &rule, err);
    if (rc == 0)
        rc = scope_labels(rule, scope, err);
    if (rc == 0)
        rc = check_channels(a, rule, err);
    const char *id = json_string_value(json_object_get(old, "id"));
    if (rc == 0) {
        json_object_set_new(rule, "by", json_string(actor->name ? actor->name : ""));
        rc = append_as(a, "alert_rule", id, "alert_rule.updated", rule, actor, err);
    }
    json_decref(rule);
    if (rc == SB_ECONFLICT)
        return sb_error(err, SB_ECONFLICT, "a rule with this name exists");
    return rc ? rc : store_alert_rule_get(a->cfg.store, id, out, err);
}

int alerts_rule_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err)
{
    json_t *d = json_object();
    int rc = append_as(a, "alert_rule", json_string_value(json_object_get(old, "id")), "alert_rule.deleted",
                       d, actor, err);
    json_decref(d);
    return rc;
}

/* ---- channels ---------------------------------------------------------------- */

int alerts_channel_secrets(struct alerts *a, const char *id, json_t **secret, struct sb_err *err)
{
    *secret = NULL;
    char *sealed = NULL;
    int rc = store_alert_channel_secret_get(a->cfg.store, id, &sealed, err);
    if (rc)
        return rc;
    if (!sealed) {
        *secret = json_object();
        return 0;
    }
    struct buf plain;
    buf_init(&plain, 1 << 16);
    rc = crypto_open(a->cfg.key, sealed, &plain, err);
    free(sealed);
    if (rc) /* every daemon on one database must share the master key */
        log_warn("a channel's secrets do not open with this daemon's master key", "channel=%s detail=\"%s\"",
                 id, err ? err->msg : "");
    if (rc == 0) {
        *secret = json_loadb(plain.data, plain.len, 0, NULL);
        if (!*secret)
            rc = sb_error(err, SB_EINTERNAL, "a channel's sealed secrets do not parse");
    }
    crypto_buf_wipe(&plain);
    return rc;
}

/* The clear part of a stored channel, as alerts_channel_normalize takes it. */
static json_t *channel_clear(json_t *row)
{
    json_t *c = json_deep_copy(json_object_get(row, "config"));
    if (!json_is_object(c)) {
        json_decref(c);
        c = json_object();
    }
    json_object_set(c, "name", json_object_get(row, "name"));
    json_object_set(c, "kind", json_object_get(row, "kind"));
    json_object_set(c, "enabled", json_object_get(row, "enabled"));
    return c;
}

json_t *alerts_channel_view(json_t *row)
{
    json_t *v = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "id", json_object_get(row, "id"), "name",
        json_object_get(row, "name"), "kind", json_object_get(row, "kind"), "enabled",
        json_object_get(row, "enabled"), "created_by",
        json_object_get(row, "created_by") ? json_object_get(row, "created_by") : json_null(), "created_at",
        json_object_get(row, "created_at"), "updated_at", json_object_get(row, "updated_at"));
    json_object_update(v, json_object_get(row, "config"));
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(row, "secret_names"), i, n)
    {
        if (json_is_string(n) && strcmp(json_string_value(n), "url") != 0)
            json_object_set_new(v, json_string_value(n), json_string(ALERTS_SECRET_MASK));
    }
    return v;
}

static int channel_write(struct alerts *a, const char *id, const char *type, json_t *clear, json_t *secret,
                         const struct event_actor *actor, struct sb_err *err)
{
    char *text = json_dumps(secret, JSON_COMPACT);
    char *sealed = text ? crypto_seal(a->cfg.key, text, strlen(text)) : NULL;
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    if (!sealed)
        return sb_error(err, SB_ENOMEM, "cannot seal the channel's secrets");
    json_t *config = json_deep_copy(clear);
    json_object_del(config, "name");
    json_object_del(config, "kind");
    json_object_del(config, "enabled");
    json_t *names = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(secret, k, v) json_array_append_new(names, json_string(k));
    char stream[96];
    snprintf(stream, sizeof stream, "alert_channel/%s", id);
    json_t *data =
        json_pack("{s:s, s:O, s:O, s:O, s:o, s:o, s:s}", "id", id, "name", json_object_get(clear, "name"),
                  "kind", json_object_get(clear, "kind"), "enabled", json_object_get(clear, "enabled"),
                  "config", config, "secret_names", names, "by", actor->name ? actor->name : "");
    struct event_new ev = {
        .stream = stream, .type = type, .data = data, .actor = *actor, .outcome = "success"};
    int rc = store_alert_channel_append(a->cfg.store, &ev, id, sealed, err);
    json_decref(data);
    free(sealed);
    if (rc == SB_ECONFLICT)
        return sb_error(err, SB_ECONFLICT, "a channel with this name exists");
    return rc;
}

int alerts_channel_create(struct alerts *a, json_t *in, const struct event_actor *actor, json_t **out,
                          struct sb_err *err)
{
    *out = NULL;
    json_t *clear = NULL, *secret = NULL;
    int rc = alerts_channel_normalize(in, NULL, NULL, a->cfg.allow_loopback, &clear, &secret, err);
    char id[37];
    uuid_v4(id);
    if (rc == 0)
        rc = channel_write(a, id, "alert_channel.created", clear, secret, actor, err);
    json_decref(clear);
    json_decref(secret);
    json_t *row = NULL;
    if (rc == 0 && (rc = store_alert_channel_get(a->cfg.store, id, &row, err)) == 0) {
        *out = alerts_channel_view(row);
        json_decref(row);
    }
    return rc;
}

int alerts_channel_update(struct alerts *a, json_t *old, json_t *in, const struct event_actor *actor,
                          json_t **out, struct sb_err *err)
{
    *out = NULL;
    const char *id = json_string_value(json_object_get(old, "id"));
    json_t *old_secret = NULL, *clear = NULL, *secret = NULL;
    int rc = alerts_channel_secrets(a, id, &old_secret, err);
    json_t *old_clear = channel_clear(old);
    if (rc == 0)
        rc = alerts_channel_normalize(in, old_clear, old_secret, a->cfg.allow_loopback, &clear, &secret, err);
    if (rc == 0)
        rc = channel_write(a, id, "alert_channel.updated", clear, secret, actor, err);
    json_decref(old_clear);
    json_decref(old_secret);
    json_decref(clear);
    json_decref(secret);
    json_t *row = NULL;
    if (rc == 0 && (rc = store_alert_channel_get(a->cfg.store, id, &row, err)) == 0) {
        *out = alerts_channel_view(row);
        json_decref(row);
    }
    return rc;
}

int alerts_channel_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err)
{
    const char *id = json_string_value(json_object_get(old, "id"));
    char stream[96];
    snprintf(stream, sizeof stream, "alert_channel/%s", id);
    json_t *data = json_pack("{s:s}", "id", id);
    struct event_new ev = {.stream = stream,
                           .type = "alert_channel.deleted",
                           .data = data,
                           .actor = *actor,
                           .outcome = "success"};
    int rc = store_alert_channel_append(a->cfg.store, &ev, id, NULL, err);
    json_decref(data);
    return rc;
}

int alerts_channel_test(struct alerts *a, json_t *channel, const struct event_actor *actor, json_t **job,
                        struct sb_err *err)
{
    const char *id = json_string_value(json_object_get(channel, "id"));
    char target[96];
    snprintf(target, sizeof target, "alert_channel/%s", id);
    json_t *args = json_pack("{s:s, s:s}", "channel_id", id, "notification", "test");
    char key[80];
    snprintf(key, sizeof key, "alert-channel/%s", id);
    struct jobs_new jn = {
        .kind = "alert.deliver", .target = target, .concurrency_key = key, .args = args, .actor = *actor};
    int rc = jobs_enqueue(a->cfg.jobs, &jn, job, err);
    json_decref(args);
    return rc;
}

/* ---- silences and acknowledgement ------------------------------------------- */

int alerts_silence_create(struct alerts *a, json_t *in, json_t *scope, const struct event_actor *actor,
                          json_t **out, struct sb_err *err)
{
    *out = NULL;
    json_t *s = NULL;
    int rc = alerts_silence_normalize(in, time_now_us(), &s, err);
    if (rc == 0)
        rc = scope_labels(s, scope, err);
    char id[37];
    uuid_v4(id);
    if (rc == 0) {
        json_object_set_new(s, "by", json_string(actor->name ? actor->name : ""));
        rc = append_as(a, "alert_silence", id, "alert_silence.created", s, actor, err);
    }
    json_decref(s);
    return rc ? rc : store_alert_silence_get(a->cfg.store, id, out, err);
}

int alerts_silence_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err)
{
    const char *state = json_string_value(json_object_get(old, "state"));
    if (!state || strcmp(state, "active") != 0)
        return sb_error(err, SB_ECONFLICT, "the silence has ended already");
    json_t *d = json_object();
    int rc = append_as(a, "alert_silence", json_string_value(json_object_get(old, "id")),
                       "alert_silence.deleted", d, actor, err);
    json_decref(d);
    return rc;
}

int alerts_ack(struct alerts *a, json_t *alert, const struct event_actor *actor, json_t **out,
               struct sb_err *err)
{
    *out = NULL;
    const char *id = json_string_value(json_object_get(alert, "id"));
    const char *state = json_string_value(json_object_get(alert, "state"));
    if (state && strcmp(state, "resolved") == 0)
        return sb_error(err, SB_ECONFLICT, "the alert is resolved already");
    if (state && strcmp(state, "firing") == 0) {
        json_t *d = json_pack("{s:s}", "by", actor->name ? actor->name : "");
        json_t *node = json_object_get(alert, "node_id");
        if (json_is_string(node))
            json_object_set(d, "node_id", node);
        int rc = append_as(a, "alert", id, "alert.acknowledged", d, actor, err);
        json_decref(d);
        if (rc == SB_ECONFLICT)
            return sb_error(err, SB_ECONFLICT, "the alert changed meanwhile (resolved?)");
        if (rc)
            return rc;
    }
    return store_alert_get(a->cfg.store, id, out, err);
}
