/*
 * Projections: tables derived from the event log. Each is updated from the
 * events alone, inside the transaction that appends them, so
 * `rebuild-projections` (truncate, then replay every event in seq order)
 * reproduces them exactly. A projection never reads the clock or anything
 * but the events.
 *
 * projections_apply gets a whole group of events (in seq order), so that a
 * projection touched by every event (streams) writes once per group, while
 * per-type projections can still handle one event at a time.
 *
 * To add one: write its apply function, call it from projections_apply, and
 * list its tables in projection_tables.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* streams: one row per stream with its first and last seq and its length.
 * The group is folded into one row per distinct stream (in the SQL), so the
 * statement is the same whatever the group's size. */
static int project_streams(struct store_tx *tx, const struct store_event *evs, int n)
{
    struct buf col[4];
    for (int k = 0; k < 4; k++) {
        buf_init(&col[k], 0);
        buf_putc(&col[k], '{');
    }
    for (int i = 0; i < n; i++) {
        char seq[24];
        snprintf(seq, sizeof seq, "%lld", (long long)evs[i].seq);
        store_array_add(&col[0], evs[i].stream, i == 0);
        store_array_add(&col[1], seq, i == 0);
        store_array_add(&col[2], evs[i].type, i == 0);
        store_array_add(&col[3], evs[i].occurred_at, i == 0);
    }
    const char *p[4];
    for (int k = 0; k < 4; k++) {
        buf_putc(&col[k], '}');
        p[k] = col[k].data;
    }
    int rc = store_tx_exec(
        tx,
        "INSERT INTO streams (stream, first_seq, last_seq, event_count, last_type, updated_at) "
        "SELECT u.stream, min(u.seq), max(u.seq), count(*), "
        "       (array_agg(u.type ORDER BY u.seq DESC))[1], (array_agg(u.at ORDER BY u.seq DESC))[1] "
        "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u(stream, seq, type, at) "
        "GROUP BY u.stream "
        "ON CONFLICT (stream) DO UPDATE SET last_seq = EXCLUDED.last_seq, "
        "  event_count = streams.event_count + EXCLUDED.event_count, "
        "  last_type = EXCLUDED.last_type, updated_at = EXCLUDED.updated_at",
        4, p);
    for (int k = 0; k < 4; k++)
        buf_release(&col[k]);
    return rc;
}

static const char *data_str(const struct store_event *ev, const char *key)
{
    return json_string_value(json_object_get(ev->data, key));
}

/* agent_enroll_tokens and agent_keys (collector enrollment, issue #7). A
 * token enrolls once: agent_keys.token_sha256 is unique, so a second
 * agent.enrolled with the same token fails its append with a conflict. */
static int project_agent(struct store_tx *tx, const struct store_event *ev)
{
    if (strcmp(ev->outcome, "success") != 0)
        return 0;
    if (strcmp(ev->type, "agent.enroll_token_issued") == 0) {
        const char *p[4] = {data_str(ev, "token_sha256"), data_str(ev, "node_id"), data_str(ev, "expires_at"),
                            ev->occurred_at};
        return store_tx_exec(tx,
                             "INSERT INTO agent_enroll_tokens (token_sha256, node_id, expires_at, issued_at) "
                             "VALUES ($1, $2, $3, $4)",
                             4, p);
    }
    if (strcmp(ev->type, "agent.enrolled") == 0) {
        const char *p[5] = {data_str(ev, "fingerprint"), data_str(ev, "node_id"), data_str(ev, "public_key"),
                            ev->occurred_at, data_str(ev, "token_sha256")};
        int rc = store_tx_exec(
            tx,
            "INSERT INTO agent_keys (fingerprint, node_id, public_key, enrolled_at, token_sha256) "
            "VALUES ($1, $2, $3, $4, $5)",
            5, p);
        if (rc)
            return rc;
        const char *u[2] = {p[4], ev->occurred_at};
        return store_tx_exec(tx, "UPDATE agent_enroll_tokens SET used_at = $2 WHERE token_sha256 = $1", 2, u);
    }
    return 0;
}

const char *const projection_tables[] = {"streams", "agent_enroll_tokens", "agent_keys", NULL};

int projections_apply(struct store_tx *tx, const struct store_event *evs, int n)
{
    if (n <= 0)
        return 0;
    int rc = project_streams(tx, evs, n);
    for (int i = 0; rc == 0 && i < n; i++)
        if (strncmp(evs[i].type, "agent.", 6) == 0)
            rc = project_agent(tx, &evs[i]);
    return rc;
}
