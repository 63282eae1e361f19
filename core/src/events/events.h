/*
 * events — the live event bus: every committed event of the log (from this
 * daemon or any other on the same database) and ephemeral data (metrics,
 * log tails, terminal output) fanned out to Server-Sent-Events streams.
 * See core/src/events/README.md for the design.
 *
 * Threads: events_stream_open and events_history block (database) and run on
 * worker threads; the stream itself is written from libmicrohttpd's threads
 * and never blocks; publishers may call from any thread.
 *
 * Topics (`?topics=a,b`): each entry is a family name, a stream prefix (an
 * entry containing '/'), or an event type or type prefix ("container" matches
 * "container.started"). Families, from the event type's first word (or the
 * stream's first segment when the type says nothing):
 *   nodes        node.*                      (or stream node/…)
 *   containers   container.* image.* volume.* network.*
 *   deployments  deployment.* stack.* gitops.*
 *   annotations  annotation.*
 *   audit        user.* token.* session.* guest_link.* auth.* checkpoint.*
 *   metrics, logs, terminal, alerts   metric(s).*, log(s).*, terminal.*, alert(s).*
 *   anything else: the stream's first segment ("agent/…" → agent), else "other".
 * Without `?topics=` a stream gets every log event it may see. Ephemeral
 * topics are never sent unless a `?topics=` entry names them.
 *
 * Visibility (one rule, events_caller_may_see): a stream carries only what
 * its caller may read. See that function.
 */
#ifndef SB_EVENTS_H
#define SB_EVENTS_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct api_caller;
struct store;
struct MHD_Connection;
struct MHD_Response;
struct events_bus;

struct events_config {
    struct store *store;   /* the log to follow (required) */
    const char *redis_url; /* ephemeral data across daemons; NULL = this daemon only */
    int heartbeat_ms;      /* comment line on idle streams; 0 = 15000 */
};

/* Starts the bus: follows the log (store_follow_start) and, with Redis,
 * subscribes to the ephemeral channel. Returns NULL with err on failure. */
struct events_bus *events_open(const struct events_config *cfg, struct sb_err *err);
/* Ends every stream (each gets `event: closed`), refuses new ones, and stops
 * the follower and the Redis subscriber. Call before http_server_stop: no
 * stream stays suspended, as MHD_stop_daemon requires. */
void events_shutdown(struct events_bus *b);
/* Frees the bus; after http_server_stop (streams hold references to it). */
void events_free(struct events_bus *b);

/* ---- topics and visibility ---------------------------------------------- */

#define EVENTS_MAX_TOPICS 16
#define EVENTS_TOPIC_MAX  128

struct events_topics {
    size_t n;
    char *text;                           /* owned copy, split in place */
    const char *topic[EVENTS_MAX_TOPICS]; /* into text */
};
/* Parses "nodes,node/abc,container.started". SB_EINVAL on a bad entry. An
 * empty or NULL spec gives n = 0 (everything). */
int events_topics_parse(const char *spec, struct events_topics *out, struct sb_err *err);
void events_topics_release(struct events_topics *t);
/* The family of an event (static string). */
const char *events_family(const char *stream, const char *type);
/* Whether an event passes the topics. Ephemeral events need an explicit match. */
bool events_topics_match(const struct events_topics *t, const char *family, const char *stream,
                         const char *type, bool ephemeral);

/* Node labels for the visibility rule: returns a new reference to the node's
 * labels (a JSON object) or NULL for an unknown node. Called on MHD threads:
 * it must answer from memory, never block. The nodes module installs it. */
typedef json_t *(*events_node_labels_fn)(void *ctx, const char *node_id);
void events_set_node_labels_fn(struct events_bus *b, events_node_labels_fn fn, void *ctx);

/* Sees every log event (from any daemon) on the follower thread before any
 * stream does, so a cache the visibility rule reads (node labels) is current
 * when the event is filtered. It may block briefly (one query); body is the
 * event's JSON, borrowed. One observer per bus; NULL removes it. */
typedef void (*events_log_observer_fn)(void *ctx, const char *stream, const char *type, json_t *body);
void events_set_log_observer(struct events_bus *b, events_log_observer_fn fn, void *ctx);

/* THE visibility rule for events (streams and history):
 *   - no caller (no auth guard installed): everything;
 *   - an expired credential: nothing;
 *   - a guest: only families its scopes grant: metrics ← view:metrics,
 *     containers ← view:containers, nodes ← view:metrics or view:containers,
 *     logs ← view:logs, deployments ← view:deployments, audit and annotations
 *     ← view:audit; nothing else;
 *   - an event about a node (stream node/<id>, or data.node_id) when the
 *     caller has a node-label selector: only if the node's labels (from
 *     `labels_fn`) match it; an unknown node, or no labels_fn, hides it.
 * node_id may be NULL. */
bool events_caller_may_see(const struct api_caller *c, const char *family, const char *node_id,
                           events_node_labels_fn labels_fn, void *labels_ctx, int64_t now_us);
/* What a guest without view:audit gets of a node's events: its status
 * changes and its removal (node.online, node.offline, node.deleted), never
 * the records that hold how to reach it or what ran on it (node.registered,
 * node.updated, node.exec, node.hostkey_mismatch): the stream sends bodies
 * exactly as the log holds them, so those are left out rather than cut.
 * Every other caller and type: true. */
bool events_type_visible(const struct api_caller *c, const char *type);
/* The node an event is about: stream "node/<id>", data.node_id (a string),
 * or data.path "/api/v1/nodes/<id>…" (requests the guard recorded), copied
 * into out (>= 64); false when none. data is the event's data. */
bool events_node_of(const char *stream, json_t *data, char *out, size_t outlen);

/* The node-scope half of the rule alone (no guest family rule), with the
 * bus's node labels: whether an event of the log (its stream and its JSON
 * body) is about no node, or about a node the caller's label selector
 * matches. The audit API lists the log through it. */
bool events_in_node_scope(struct events_bus *b, const struct api_caller *c, const char *stream, json_t *body);

/* ---- streams -------------------------------------------------------------- */

struct events_stream_params {
    const struct api_caller *caller;    /* copied; NULL = anonymous */
    const struct events_topics *topics; /* copied; NULL = everything */
    int64_t last_event_id;              /* replay events after it; -1 = live only */
    struct MHD_Connection *conn;        /* the request's connection */
};
/* Registers a subscriber, replays the log after last_event_id (up to a bound;
 * beyond it the stream ends with `event: resync` naming the seq to resume
 * after), and returns the stream's response (give it to
 * http_reply_response). SB_EUNAVAIL while the log position is not known yet
 * or when shutting down. Blocks on the database: call from a worker. */
int events_stream_open(struct events_bus *b, const struct events_stream_params *p, struct MHD_Response **out,
                       struct sb_err *err);

/* Ends the streams of a credential (each gets `event: closed` with reason
 * "revoked", then the response ends):
 *   "user"          a user id: every stream of that user (sessions and tokens);
 *   "user_sessions" a user id: the streams of that user's sessions;
 *   "session"       a session id: the streams of that session;
 *   "token", "guest" a token or guest link id.
 * Called by the handlers that revoke (logout, token and guest link
 * revocation, a user disabled, deleted or whose password was reset), after
 * the revocation, so a reconnect with the same credential is refused. Every
 * daemon's bus also calls it when it sees auth.logout, token.revoked,
 * guest_link.revoked, user.deleted or user.updated {disabled: true} in the
 * log, so streams held by other daemons on the same database end as well.
 * Streams of an expired credential end by themselves (reason "expired"). */
void events_close_streams_of(struct events_bus *b, const char *kind, const char *id);

/* Ephemeral data: delivered like events (same SSE format, `event:` = type,
 * `data:` = {"topic","type","data","at"}, no `id:`) to streams whose topics
 * name it, in this daemon and, through Redis pub/sub, every other daemon.
 * Never enters the log. topic: "metrics/node/<id>", "logs/container/<id>"…
 * (1..128 of [A-Za-z0-9._:/-]); data is borrowed. */
int events_publish_ephemeral(struct events_bus *b, const char *topic, const char *type, json_t *data,
                             struct sb_err *err);

/* ---- history -------------------------------------------------------------- */

/* One page of the log after `after` that the caller may see: *out gets
 * {"events":[<body objects>…],"next_after":N}. next_after is the last seq
 * examined (filtered events are skipped, not counted in limit). */
int events_history(struct events_bus *b, const struct api_caller *caller, const struct events_topics *topics,
                   int64_t after, int limit, json_t **out, struct sb_err *err);

struct events_stats {
    uint64_t subscribers;
    uint64_t published;
    uint64_t resyncs;
};
void events_get_stats(struct events_bus *b, struct events_stats *out);

#endif
