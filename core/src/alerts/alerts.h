/*
 * alerts — alert rules, the alert lifecycle (firing → acknowledged →
 * resolved), silences, and notification channels (signed webhook, Slack,
 * Discord, email over SMTP, ntfy, Gotify). See README.md in this folder.
 *
 * Evaluation is the singleton duty "alerts-eval" (jobs/): with several
 * daemons on one database it runs on one, and the alerts projection refuses
 * a second open alert per rule and target, so an alert fires once.
 * Notifications are jobs of kind "alert.deliver" (retried with backoff,
 * durable across restarts); every attempt is an event with the receiver's
 * answer.
 *
 * Memory: every json_t ** out-parameter is a new reference the caller
 * decrefs; inputs are borrowed.
 */
#ifndef SB_ALERTS_H
#define SB_ALERTS_H

#include "../crypto/crypto.h"
#include "../store/store.h"
#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>

#define ALERTS_SECRET_MASK "********"

/* ---- pure parts (rules.c; unit-tested in core/tests/test_alerts.c) ------- */

/* Whether kind is a rule kind: metric, node_offline, node_hostkey_mismatch,
 * collector_silent, container_died, container_oom, container_unhealthy,
 * container_restart_loop, stack_deploy_failed, stack_rolled_back,
 * audit_chain_broken, backup_failed. */
bool alerts_rule_kind_known(const char *kind);
/* Validates a rule as the API takes it ({name, kind, metric, op, threshold,
 * for_s, count, window_s, severity, node_labels, channels, repeat_s,
 * enabled}); with `old` (a stored rule) absent fields keep their value.
 * *rule is the normalized stored form {name, kind, params:{…}, severity,
 * node_labels, channels, repeat_s, enabled}. SB_EINVAL naming the field. */
int alerts_rule_normalize(json_t *in, json_t *old, json_t **rule, struct sb_err *err);
/* The rules of a fresh install (an array of normalized rules). */
json_t *alerts_default_rules(void);

/* What an event means for a rule of an event-driven kind: NULL when
 * nothing, else {"action":"fire"|"resolve", "target", "node_id",
 * "container_id"?, "container_name"?, "stack_id"?, "plan_id"?,
 * "repository_id"?, "summary"?, "reason"?}.
 * Metric and state kinds (node_offline, …) never answer here. */
json_t *alerts_event_signal(json_t *rule, const char *type, json_t *data);
/* Whether a rule kind is judged from the events (else from state). */
bool alerts_rule_event_driven(const char *kind);

/* Whether a metric value meets a rule's condition (op ">", ">=", "<", "<="). */
bool alerts_threshold_met(const char *op, double value, double threshold);
/* A metric window {min, max, last, age_s, n} meets the rule's condition:
 * every sample in the last for_s seconds does (the window covers them: its
 * oldest sample is at most for_s/4, and 30 s, younger than for_s), or with
 * for_s 0 the last one. */
bool alerts_window_met(json_t *rule, json_t *window);

/* Silences: {matchers:{field:value}, node_labels} match an alert (the
 * stored row: rule_id, rule_name, kind, severity, target, node_id,
 * node_name, container_name) whose node has node_labels. */
bool alerts_silence_matches(json_t *silence, json_t *alert, json_t *node_labels);
/* Validates a silence as the API takes it ({matchers, until, duration_s,
 * comment, node_labels, recurrence}) into {matchers, until (RFC 3339, or
 * null for a recurring window without end), comment, node_labels,
 * recurrence}; now_us for "until in the past". A recurring maintenance
 * window has recurrence {days, start, duration_s} and needs node_labels. */
int alerts_silence_normalize(json_t *in, int64_t now_us, json_t **silence, struct sb_err *err);
/* Whether a recurring window {days ["mon"…], start "HH:MM" (UTC),
 * duration_s} is open at now_us: it opens on each of its days at start and
 * stays open duration_s (past midnight too). */
bool alerts_recurrence_open(json_t *rec, int64_t now_us);

/* Channels: validates {name, kind, url, secret, to, from, username,
 * password, token, starttls, enabled} (with `old` absent fields keep their
 * value, a secret given as ALERTS_SECRET_MASK keeps the old one) into
 * *clear (stored in the event) and *secret (sealed; never in events). The
 * URL is checked by alerts_url_check. */
int alerts_channel_normalize(json_t *in, json_t *old_clear, json_t *old_secret, bool allow_loopback,
                             json_t **clear, json_t **secret, struct sb_err *err);
/* A URL a channel of this kind may send to: http(s) for webhook, slack,
 * discord, ntfy and gotify; smtp or smtps for email; a host that resolves, every
 * address of which is not loopback (unless allow_loopback), link-local,
 * unspecified, multicast or a cloud metadata address. SB_EINVAL naming
 * "url". */
int alerts_url_check(const char *kind, const char *url, bool allow_loopback, struct sb_err *err);
/* Whether an address (text) may be sent to. */
bool alerts_address_allowed(const char *ip, bool allow_loopback);
/* "https://host/" + ALERTS_SECRET_MASK: a URL with its path and credentials hidden. */
void alerts_url_masked(const char *url, char *out, size_t len);

/* The webhook signature: "sha256=" + hex(HMAC-SHA256(secret, timestamp +
 * "." + body)). out has room for 72 bytes. */
void alerts_signature(const char *secret, const char *timestamp, const char *body, size_t len, char out[72]);
/* What a notification says. notification: firing, resolved, repeat,
 * unsilenced or test. The JSON payload of the generic webhook, and a
 * one-paragraph text for chat and mail (subject on the first line). */
json_t *alerts_payload(json_t *alert, const char *notification, const char *delivery_id);
void alerts_text(json_t *alert, const char *notification, struct buf *out);

/* ---- the service (service.c, eval.c, notify.c) ------------------------- */
struct jobs;
struct alerts;

struct alerts_config {
    struct store *store;
    struct jobs *jobs;
    const struct crypto_master_key *key;
    int interval_ms;     /* evaluation period (--alerts-interval, seconds * 1000) */
    bool allow_loopback; /* --alerts-allow-loopback: channels may send to loopback */
    const char *ca_file; /* --alerts-ca-file: CA bundle for HTTPS and SMTP STARTTLS; NULL = system */
    bool run_evaluation; /* competes for the alerts-eval duty (false: never evaluates here) */
};
/* Registers the job kind and the duty (before jobs_start) and starts the
 * thread that keeps the firing count for /metrics. NULL on bad config. */
struct alerts *alerts_open(const struct alerts_config *cfg, struct sb_err *err);
void alerts_close(struct alerts *a); /* after jobs_stop; NULL is a no-op */
/* serverbox_alerts_firing{severity=…} lines (from memory). */
void alerts_prometheus(struct alerts *a, struct buf *out);

/* Rules. `scope` is the caller's node-label selector (NULL = all): a rule
 * made without node_labels takes it; one wider than it is SB_EDENIED. */
int alerts_rule_create(struct alerts *a, json_t *in, json_t *scope, const struct event_actor *actor,
                       json_t **out, struct sb_err *err);
int alerts_rule_update(struct alerts *a, json_t *old, json_t *in, json_t *scope,
                       const struct event_actor *actor, json_t **out, struct sb_err *err);
int alerts_rule_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err);

/* Channels: answers are alerts_channel_view (secrets masked). */
int alerts_channel_create(struct alerts *a, json_t *in, const struct event_actor *actor, json_t **out,
                          struct sb_err *err);
int alerts_channel_update(struct alerts *a, json_t *old, json_t *in, const struct event_actor *actor,
                          json_t **out, struct sb_err *err);
int alerts_channel_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err);
json_t *alerts_channel_view(json_t *row);
/* Queues a test notification to the channel: *job as jobs_enqueue gives. */
int alerts_channel_test(struct alerts *a, json_t *channel, const struct event_actor *actor, json_t **job,
                        struct sb_err *err);

/* Silences (`scope` as for rules). */
int alerts_silence_create(struct alerts *a, json_t *in, json_t *scope, const struct event_actor *actor,
                          json_t **out, struct sb_err *err);
int alerts_silence_delete(struct alerts *a, json_t *old, const struct event_actor *actor, struct sb_err *err);

/* Acknowledges a firing alert (no more repeats); an acknowledged one is
 * answered as it is; a resolved one is SB_ECONFLICT. */
int alerts_ack(struct alerts *a, json_t *alert, const struct event_actor *actor, json_t **out,
               struct sb_err *err);

/* One evaluation round now, whoever holds the duty (tests, the API never). */
void alerts_evaluate(struct alerts *a);

#endif
