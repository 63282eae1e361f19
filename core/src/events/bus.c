/*
 * The bus and the SSE fan-out. Design (see README.md in this folder):
 *
 * Every event is encoded once, as its SSE text, into a refcounted item and
 * put in a ring of the last RING_SIZE items shared by all streams. A stream
 * (struct sub) is a cursor into the ring plus a little state, so an idle
 * subscriber costs its libmicrohttpd connection and a few hundred bytes.
 *
 * Each stream has its own writer (http/sse.h) whose fill is sub_read. When
 * the cursor has caught up, the writer suspends the stream; a publisher, after
 * putting an item in the ring, resumes every suspended stream that may want
 * it (and just moves the cursor of a caught-up stream whose topics do not
 * match, so it is not woken for nothing). The check "nothing to send" and the
 * writer's "suspended" are under the stream's lock, and publishers set the
 * ring head before taking it, so a wake-up is never lost.
 *
 * A stream that falls more than MAX_LAG items behind the head (it reads too
 * slowly) gets a final `event: resync` whose `id:` and data name the seq to
 * resume after, and its stream ends: it is never silently skipped.
 *
 * Resume without gap or duplicate: under the publish lock a new stream takes
 * the ring head as its cursor and the bus's last seq S; every later log event
 * has seq > S and is in the ring after the cursor. The log after
 * Last-Event-ID up to S is replayed from the database first.
 *
 * Lock order: publish_lock → ring_lock; publish_lock → subs_lock → sub->lock
 * → (MHD's own). sub_read takes sub->lock then ring_lock (read) briefly;
 * nobody takes sub->lock while holding ring_lock.
 */
#include "events.h"

#include "../auth/auth.h"
#include "../redis/redis.h"
#include "../store/store.h"

#include "../http/sse.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_SIZE   4096
#define MAX_LAG     2048
#define REPLAY_PAGE 500
/* One replay is at most this much SSE text; beyond it the stream ends with
 * resync and the client continues from there (EventSource does by itself). */
#define REPLAY_MAX_BYTES ((size_t)1 << 20)
/* The kernel's send buffer of a stream socket (it doubles it). Left alone,
 * Linux grows it to megabytes for a client that does not read, which hides
 * the lag from us and costs memory; fixed, a stalled client holds at most
 * this much and then falls behind the ring, and is told to resync. */
#define STREAM_SNDBUF     32768
#define EPHEMERAL_CHANNEL "serverbox:ephemeral"
/* Revocations remembered so that a stream opened just after one, with a
 * credential still in some daemon's short-lived credential cache, ends at
 * once: longer than that cache lives (auth/credentials.c, about 3 s). */
#define REVOKED_MAX    256
#define REVOKED_TTL_MS 10000

struct item {
    atomic_int refs;
    int64_t seq; /* 0 for ephemeral */
    bool ephemeral;
    const char *family; /* static */
    char *stream, *type;
    char node_id[64]; /* empty when the event is about no node */
    size_t len;
    char text[]; /* the SSE message */
};

enum sub_close { CLOSE_NONE, CLOSE_RESYNC, CLOSE_CLOSED };

struct sub {
    struct events_bus *bus;
    struct sub *prev, *next;
    struct http_sse *w; /* under lock; NULL before the response exists and after it is done */
    pthread_mutex_t lock;
    bool has_caller;
    struct api_caller caller;
    struct events_topics topics;

    uint64_t cursor;  /* next ring position to read */
    int64_t last_seq; /* the last log seq this stream has passed */
    char *pre;        /* text to send before the ring: replay, then the final message */
    size_t pre_len, pre_off;
    struct item *cur; /* item being written */
    size_t cur_off;

    uint64_t swept_cursor; /* the cursor at the timer's last sweep */
    bool final_queued, ended, dead;
    enum sub_close close;
    const char *close_reason;
    struct sub *next_dead;
};

struct events_bus {
    struct store *store;
    struct redis_client *redis_pub;
    struct redis_subscription *redis_sub;
    char origin[17]; /* this daemon, to skip our own Redis messages */
    int heartbeat_ms;

    pthread_mutex_t publish_lock;
    pthread_rwlock_t ring_lock;
    struct item *ring[RING_SIZE];
    uint64_t head;    /* next position */
    int64_t last_seq; /* of the last log event published */
    bool ready;       /* last_seq is known */
    bool stopping;

    pthread_mutex_t subs_lock;
    struct sub *subs;
    struct revoked {
        char kind[16];
        char id[64];
        int64_t until_ms;
    } revoked[REVOKED_MAX]; /* a ring, under subs_lock */
    size_t revoked_next;
    atomic_uint_fast64_t n_subs; /* written under subs_lock, read without */

    pthread_mutex_t dead_lock;
    struct sub *dead;

    events_node_labels_fn labels_fn;
    void *labels_ctx;
    events_log_observer_fn observer; /* under publish_lock */
    void *observer_ctx;

    pthread_t timer;
    bool timer_started;
    pthread_mutex_t timer_lock;
    pthread_cond_t timer_cond;
    bool timer_stop;

    bool following;
    atomic_uint_fast64_t published, resyncs;
};

/* ---- items ------------------------------------------------------------------ */

static void item_unref(struct item *it)
{
    if (it && atomic_fetch_sub(&it->refs, 1) == 1) {
        free(it->stream);
        free(it->type);
        free(it);
    }
}

static struct item *item_new(int64_t seq, const char *stream, const char *type, json_t *data,
                             const char *json, size_t json_len)
{
    char head[64];
    int hn = seq ? snprintf(head, sizeof head, "id: %lld\n", (long long)seq) : 0;
    size_t len = (size_t)hn + strlen("event: \ndata: \n\n") + strlen(type) + json_len;
    struct item *it = malloc(sizeof *it + len + 1);
    if (!it)
        return NULL;
    atomic_init(&it->refs, 1);
    it->seq = seq;
    it->ephemeral = seq == 0;
    it->family = events_family(stream, type);
    it->stream = strdup(stream);
    it->type = strdup(type);
    it->node_id[0] = '\0';
    events_node_of(stream, data, it->node_id, sizeof it->node_id);
    int n = snprintf(it->text, len + 1, "%sevent: %s\ndata: %.*s\n\n", seq ? head : "", type, (int)json_len,
                     json);
    it->len = (size_t)n;
    if (!it->stream || !it->type) {
        item_unref(it);
        return NULL;
    }
    return it;
}

/* ---- the stream's reader (MHD thread) ---------------------------------------- */

static bool sub_wants(struct sub *s, const struct item *it, int64_t now)
{
    struct events_bus *b = s->bus;
    if (!events_topics_match(&s->topics, it->family, it->stream, it->type, it->ephemeral))
        return false;
    return events_caller_may_see(s->has_caller ? &s->caller : NULL, it->family,
                                 it->node_id[0] ? it->node_id : NULL, b->labels_fn, b->labels_ctx, now) &&
           events_type_visible(s->has_caller ? &s->caller : NULL, it->type);
}

static void queue_final(struct sub *s)
{
    char text[256];
    int n;
    if (s->close == CLOSE_RESYNC) {
        atomic_fetch_add(&s->bus->resyncs, 1);
        n = snprintf(text, sizeof text,
                     "id: %lld\nevent: resync\ndata: {\"resume_after\":%lld,\"reason\":\"%s\"}\n\n",
                     (long long)s->last_seq, (long long)s->last_seq, s->close_reason);
    } else {
        n = snprintf(text, sizeof text, "event: closed\ndata: {\"reason\":\"%s\"}\n\n", s->close_reason);
    }
    free(s->pre);
    s->pre = strdup(text);
    s->pre_len = s->pre ? (size_t)n : 0;
    s->pre_off = 0;
    s->final_queued = true;
    if (!s->pre)
        s->ended = true;
}

/* http_sse fill, s->lock held. */
static ssize_t sub_read(void *cls, char *buf, size_t max)
{
    struct sub *s = cls;
    struct events_bus *b = s->bus;
    size_t out = 0;
    int64_t now = 0;
    while (out < max) {
        if (s->cur) {
            size_t n = s->cur->len - s->cur_off;
            if (n > max - out)
                n = max - out;
            memcpy(buf + out, s->cur->text + s->cur_off, n);
            out += n;
            s->cur_off += n;
            if (s->cur_off == s->cur->len) {
                item_unref(s->cur);
                s->cur = NULL;
            }
            continue;
        }
        if (s->pre) {
            size_t n = s->pre_len - s->pre_off;
            if (n > max - out)
                n = max - out;
            memcpy(buf + out, s->pre + s->pre_off, n);
            out += n;
            s->pre_off += n;
            if (s->pre_off == s->pre_len) {
                free(s->pre);
                s->pre = NULL;
                if (s->final_queued)
                    s->ended = true;
            }
            continue;
        }
        if (s->ended)
            break;
        if (s->close != CLOSE_NONE) {
            queue_final(s);
            continue;
        }
        pthread_rwlock_rdlock(&b->ring_lock);
        uint64_t head = b->head;
        if (s->cursor >= head) {
            pthread_rwlock_unlock(&b->ring_lock);
            break;
        }
        if (head - s->cursor > MAX_LAG) {
            pthread_rwlock_unlock(&b->ring_lock);
            s->close = CLOSE_RESYNC;
            s->close_reason = "slow_consumer";
            continue;
        }
        struct item *it = b->ring[s->cursor % RING_SIZE];
        atomic_fetch_add(&it->refs, 1);
        pthread_rwlock_unlock(&b->ring_lock);
        s->cursor++;
        if (it->seq)
            s->last_seq = it->seq;
        if (!now)
            now = time_now_us();
        if (sub_wants(s, it, now)) {
            s->cur = it;
            s->cur_off = 0;
        } else {
            item_unref(it);
        }
    }
    /* Nothing to send: the writer sends a due heartbeat or suspends the
     * stream until a publisher, the heartbeat or a close wakes it. */
    if (out == 0 && s->ended)
        return HTTP_SSE_END;
    return (ssize_t)out;
}

/* Called when the connection is done with the response. The stream is only
 * marked; the timer thread unlinks and frees it under the list lock, so a
 * publisher walking the list never sees freed memory. */
static void sub_done(void *cls)
{
    struct sub *s = cls;
    struct events_bus *b = s->bus;
    pthread_mutex_lock(&s->lock);
    s->dead = true;
    s->w = NULL;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&b->dead_lock);
    s->next_dead = b->dead;
    b->dead = s;
    pthread_mutex_unlock(&b->dead_lock);
}

static void sub_free(struct sub *s)
{
    item_unref(s->cur);
    free(s->pre);
    if (s->has_caller)
        json_decref(s->caller.node_labels);
    events_topics_release(&s->topics);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* http_sse done: the writer is gone. */
static void sub_writer_done(void *cls, enum http_sse_close why)
{
    (void)why;
    sub_done(cls);
}

/* Whether the stream sleeps, waiting for data. Called with s->lock held. */
static bool sub_suspended(const struct sub *s)
{
    return !s->dead && http_sse_suspended_locked(s->w);
}

/* Called with s->lock held. */
static void sub_wake(struct sub *s)
{
    if (!s->dead)
        http_sse_wake_locked(s->w);
}

static void reap_dead(struct events_bus *b)
{
    pthread_mutex_lock(&b->dead_lock);
    struct sub *d = b->dead;
    b->dead = NULL;
    pthread_mutex_unlock(&b->dead_lock);
    if (!d)
        return;
    pthread_mutex_lock(&b->subs_lock);
    for (struct sub *s = d; s; s = s->next_dead) {
        if (s->prev)
            s->prev->next = s->next;
        else
            b->subs = s->next;
        if (s->next)
            s->next->prev = s->prev;
        atomic_fetch_sub(&b->n_subs, 1);
    }
    pthread_mutex_unlock(&b->subs_lock);
    while (d) {
        struct sub *next = d->next_dead;
        sub_free(d);
        d = next;
    }
}

/* ---- publishing ---------------------------------------------------------------- */

static void publish(struct events_bus *b, struct item *it)
{
    pthread_mutex_lock(&b->publish_lock);
    pthread_rwlock_wrlock(&b->ring_lock);
    uint64_t pos = b->head;
    struct item *old = b->ring[pos % RING_SIZE];
    b->ring[pos % RING_SIZE] = it;
    b->head = pos + 1;
    if (it->seq)
        b->last_seq = it->seq;
    pthread_rwlock_unlock(&b->ring_lock);
    item_unref(old);
    atomic_fetch_add(&b->published, 1);

    pthread_mutex_lock(&b->subs_lock);
    for (struct sub *s = b->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (sub_suspended(s)) {
            /* A caught-up stream that does not want this: step over it
             * without waking the connection. */
            if (s->cursor == pos && !s->cur && !s->pre && s->close == CLOSE_NONE &&
                !events_topics_match(&s->topics, it->family, it->stream, it->type, it->ephemeral)) {
                s->cursor = pos + 1;
                if (it->seq)
                    s->last_seq = it->seq;
            } else {
                sub_wake(s);
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&b->subs_lock);
    pthread_mutex_unlock(&b->publish_lock);
}

static void on_log_ready(void *ctx, int64_t head)
{
    struct events_bus *b = ctx;
    pthread_mutex_lock(&b->publish_lock);
    b->last_seq = head;
    b->ready = true;
    pthread_mutex_unlock(&b->publish_lock);
    log_info("event bus following the log", "head_seq=%lld", (long long)head);
}

/* A revocation recorded by any daemon ends the streams of that credential
 * here too. The daemon that revoked has already ended its own (after the
 * revocation, see events_close_streams_of); this catches the others. */
static void close_revoked(struct events_bus *b, const char *type, json_t *body)
{
    const char *outcome = json_string_value(json_object_get(body, "outcome"));
    if (!outcome || strcmp(outcome, "success") != 0)
        return;
    json_t *d = json_object_get(body, "data");
    const char *id = json_string_value(json_object_get(d, "id"));
    if (strcmp(type, "auth.logout") == 0 || strcmp(type, "auth.session_ended") == 0)
        events_close_streams_of(b, "session", json_string_value(json_object_get(d, "session_id")));
    else if (strcmp(type, "token.revoked") == 0) {
        events_close_streams_of(b, "token", id);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(d, "descendants"), i, v)
            events_close_streams_of(b, "token", json_string_value(v));
    } else if (strcmp(type, "guest_link.revoked") == 0)
        events_close_streams_of(b, "guest", id);
    else if (strcmp(type, "user.deleted") == 0 ||
             (strcmp(type, "user.updated") == 0 &&
              (json_is_true(json_object_get(d, "disabled")) || json_object_get(d, "node_labels") ||
               json_object_get(d, "role"))))
        /* A changed role or scope: the streams of the user (and of their
         * tokens) were opened under the old one; they reconnect under the new. */
        events_close_streams_of(b, "user", id);
    else if (strcmp(type, "role.updated") == 0) {
        /* A custom role's permissions changed: its holders reconnect. */
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(d, "users"), i, v)
            events_close_streams_of(b, "user", json_string_value(v));
    }
}

static void on_log_event(void *ctx, const struct store_event_row *row)
{
    struct events_bus *b = ctx;
    json_t *body = json_loadb(row->body, row->body_len, 0, NULL);
    pthread_mutex_lock(&b->publish_lock);
    events_log_observer_fn observer = b->observer;
    void *observer_ctx = b->observer_ctx;
    pthread_mutex_unlock(&b->publish_lock);
    if (observer && body)
        observer(observer_ctx, row->stream, row->type, body);
    if (body)
        close_revoked(b, row->type, body);
    struct item *it =
        item_new(row->seq, row->stream, row->type, json_object_get(body, "data"), row->body, row->body_len);
    json_decref(body);
    if (it)
        publish(b, it);
    else
        log_error("event bus out of memory; streams will resync", "seq=%lld", (long long)row->seq);
}

static bool topic_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > EVENTS_TOPIC_MAX || strstr(t, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/' || c == ':'))
            return false;
    }
    return true;
}

/* Local delivery of an ephemeral message (ours, or from Redis). */
static int publish_ephemeral_local(struct events_bus *b, const char *topic, const char *type, json_t *data,
                                   const char *encoded)
{
    struct item *it = item_new(0, topic, type, data, encoded, strlen(encoded));
    if (!it)
        return SB_ENOMEM;
    publish(b, it);
    return 0;
}

int events_publish_ephemeral(struct events_bus *b, const char *topic, const char *type, json_t *data,
                             struct sb_err *err)
{
    if (!topic_valid(topic))
        return sb_error(err, SB_EINVAL, "bad ephemeral topic");
    if (!topic_valid(type) || strchr(type, '/'))
        return sb_error(err, SB_EINVAL, "bad ephemeral type");
    char at[40];
    time_format_rfc3339(time_now_us(), at, sizeof at);
    json_t *msg = json_pack("{s:s, s:s, s:O, s:s}", "topic", topic, "type", type, "data",
                            data ? data : json_null(), "at", at);
    char *enc = msg ? json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int rc = enc ? publish_ephemeral_local(b, topic, type, data, enc) : SB_EINVAL;
    if (rc == 0 && b->redis_pub) {
        json_object_set_new(msg, "origin", json_string(b->origin));
        char *wire = json_dumps(msg, JSON_COMPACT);
        if (wire)
            redis_publish(b->redis_pub, EPHEMERAL_CHANNEL, wire, strlen(wire), NULL);
        free(wire);
    }
    free(enc);
    json_decref(msg);
    return rc ? sb_error(err, rc, "cannot publish ephemeral data") : 0;
}

static void on_redis_message(void *ctx, const char *msg, size_t len)
{
    struct events_bus *b = ctx;
    json_t *m = json_loadb(msg, len, 0, NULL);
    const char *origin = json_string_value(json_object_get(m, "origin"));
    const char *topic = json_string_value(json_object_get(m, "topic"));
    const char *type = json_string_value(json_object_get(m, "type"));
    if (origin && strcmp(origin, b->origin) != 0 && topic_valid(topic) && topic_valid(type)) {
        json_object_del(m, "origin");
        char *enc = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
        if (enc)
            publish_ephemeral_local(b, topic, type, json_object_get(m, "data"), enc);
        free(enc);
    }
    json_decref(m);
}

/* ---- streams ------------------------------------------------------------------- */

struct replay_ctx {
    struct events_bus *b;
    struct sub *s;
    struct buf text;
    int64_t upto;
    int64_t last;
    bool full;
    int64_t now;
};

static int replay_row(void *ctx, const struct store_event_row *row)
{
    struct replay_ctx *r = ctx;
    if (row->seq > r->upto)
        return 1;
    json_t *body = json_loadb(row->body, row->body_len, 0, NULL);
    char node[64] = "";
    const char *family = events_family(row->stream, row->type);
    bool has_node = events_node_of(row->stream, json_object_get(body, "data"), node, sizeof node);
    json_decref(body);
    bool want = events_topics_match(&r->s->topics, family, row->stream, row->type, false) &&
                events_caller_may_see(r->s->has_caller ? &r->s->caller : NULL, family, has_node ? node : NULL,
                                      r->b->labels_fn, r->b->labels_ctx, r->now) &&
                events_type_visible(r->s->has_caller ? &r->s->caller : NULL, row->type);
    if (want) {
        size_t before = r->text.len;
        if (buf_printf(&r->text, "id: %lld\nevent: %s\ndata: ", (long long)row->seq, row->type) ||
            buf_append(&r->text, row->body, row->body_len) || buf_puts(&r->text, "\n\n")) {
            r->text.len = before; /* over the bound: stop before this one */
            r->text.data[before] = '\0';
            r->full = true;
            return 1;
        }
    }
    r->last = row->seq;
    return 0;
}

static int replay(struct events_bus *b, struct sub *s, int64_t after, int64_t upto, struct sb_err *err)
{
    struct replay_ctx r = {.b = b, .s = s, .upto = upto, .last = after, .now = time_now_us()};
    buf_init(&r.text, REPLAY_MAX_BYTES);
    int rc = 0;
    while (r.last < upto && !r.full) {
        int64_t page_last = r.last;
        int64_t before = r.last;
        rc = store_events_after(b->store, r.last, REPLAY_PAGE, replay_row, &r, &page_last, err);
        if (rc || r.last == before)
            break;
    }
    if (rc) {
        buf_release(&r.text);
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    if (r.text.len)
        s->pre = buf_detach(&r.text, &s->pre_len);
    else
        buf_release(&r.text);
    if (r.last < upto) {
        /* Too much to replay at once (or the log ended early): the client
         * resumes from here. */
        s->last_seq = r.last;
        s->close = CLOSE_RESYNC;
        s->close_reason = "replay_limit";
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static bool caller_is(const struct api_caller *c, const char *kind, const char *id)
{
    if (strcmp(kind, "user") == 0)
        return strcmp(c->user_id, id) == 0;
    if (strcmp(kind, "user_sessions") == 0)
        return c->session_id[0] && strcmp(c->user_id, id) == 0;
    if (strcmp(kind, "session") == 0)
        return strcmp(c->session_id, id) == 0;
    return !c->session_id[0] && strcmp(c->kind, kind) == 0 && strcmp(c->id, id) == 0;
}

/* Whether a revocation of the last REVOKED_TTL_MS names this caller. Called
 * with subs_lock held. */
static bool recently_revoked(struct events_bus *b, const struct api_caller *c, int64_t now_ms)
{
    for (size_t i = 0; i < REVOKED_MAX; i++) {
        const struct revoked *r = &b->revoked[i];
        if (r->until_ms > now_ms && caller_is(c, r->kind, r->id))
            return true;
    }
    return false;
}

int events_stream_open(struct events_bus *b, const struct events_stream_params *p, struct MHD_Response **out,
                       struct sb_err *err)
{
    struct sub *s = calloc(1, sizeof *s);
    if (!s)
        return sb_error(err, SB_ENOMEM, "out of memory");
    s->bus = b;
    pthread_mutex_init(&s->lock, NULL);
    if (p->caller) {
        s->has_caller = true;
        s->caller = *p->caller;
        json_incref(s->caller.node_labels);
    }
    if (p->topics && p->topics->n) {
        struct events_topics copy;
        /* Re-parse the joined text into our own storage. */
        struct buf joined;
        buf_init(&joined, 4096);
        for (size_t i = 0; i < p->topics->n; i++) {
            if (i)
                buf_putc(&joined, ',');
            buf_puts(&joined, p->topics->topic[i]);
        }
        int rc = events_topics_parse(joined.data, &copy, err);
        buf_release(&joined);
        if (rc) {
            sub_free(s);
            return rc;
        }
        s->topics = copy;
    }

    pthread_mutex_lock(&b->publish_lock);
    if (!b->ready || b->stopping) {
        bool stopping = b->stopping;
        pthread_mutex_unlock(&b->publish_lock);
        sub_free(s);
        return sb_error(err, SB_EUNAVAIL, stopping ? "shutting down" : "the event log is not reachable yet");
    }
    pthread_rwlock_rdlock(&b->ring_lock);
    s->cursor = b->head;
    int64_t upto = b->last_seq;
    pthread_rwlock_unlock(&b->ring_lock);
    s->last_seq = upto;
    pthread_mutex_lock(&b->subs_lock);
    s->next = b->subs;
    if (b->subs)
        b->subs->prev = s;
    b->subs = s;
    atomic_fetch_add(&b->n_subs, 1);
    /* Admitted from a cache just after its credential was revoked: the
     * stream ends at once, without a replay. */
    bool revoked = s->has_caller && recently_revoked(b, &s->caller, time_mono_ms());
    if (revoked) {
        pthread_mutex_lock(&s->lock);
        s->close = CLOSE_CLOSED;
        s->close_reason = "revoked";
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&b->subs_lock);
    pthread_mutex_unlock(&b->publish_lock);

    int rc = 0;
    if (!revoked && p->last_event_id >= 0 && p->last_event_id < upto)
        rc = replay(b, s, p->last_event_id, upto, err);
    /* A 256-byte block keeps the response small; the data goes through the
     * connection's own write buffer (chunked). */
    struct http_sse_config c = {.conn = p->conn,
                                .lock = &s->lock,
                                .fill = sub_read,
                                .done = sub_writer_done,
                                .ctx = s,
                                .block = 256,
                                .sndbuf = STREAM_SNDBUF};
    struct http_sse *w = rc ? NULL : http_sse_open(&c, out);
    if (!w) {
        sub_done(s); /* unlinked and freed by the timer */
        return rc ? rc : sb_error(err, SB_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&s->lock);
    s->w = w;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void events_close_streams_of(struct events_bus *b, const char *kind, const char *id)
{
    if (!b || !kind || !id || !*id)
        return;
    pthread_mutex_lock(&b->subs_lock);
    struct revoked *r = &b->revoked[b->revoked_next++ % REVOKED_MAX];
    sb_strlcpy(r->kind, kind, sizeof r->kind);
    sb_strlcpy(r->id, id, sizeof r->id);
    r->until_ms = time_mono_ms() + REVOKED_TTL_MS;
    for (struct sub *s = b->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->has_caller && s->close == CLOSE_NONE && caller_is(&s->caller, kind, id)) {
            s->close = CLOSE_CLOSED;
            s->close_reason = "revoked";
            sub_wake(s);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&b->subs_lock);
}

/* ---- the timer: heartbeats, expiry, freeing closed streams ---------------------- */

static void *timer_main(void *arg)
{
    struct events_bus *b = arg;
    int64_t next_hb = time_mono_ms() + b->heartbeat_ms;
    pthread_mutex_lock(&b->timer_lock);
    while (!b->timer_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&b->timer_cond, &b->timer_lock, &ts);
        if (b->timer_stop)
            break;
        pthread_mutex_unlock(&b->timer_lock);

        reap_dead(b);
        int64_t now_ms = time_mono_ms(), now_us = time_now_us();
        bool hb = now_ms >= next_hb;
        if (hb)
            next_hb = now_ms + b->heartbeat_ms;
        pthread_rwlock_rdlock(&b->ring_lock);
        uint64_t head = b->head;
        pthread_rwlock_unlock(&b->ring_lock);
        pthread_mutex_lock(&b->subs_lock);
        bool stuck = false;
        for (struct sub *s = b->subs; s; s = s->next) {
            pthread_mutex_lock(&s->lock);
            /* Safety net: a stream asleep while the ring is ahead of it is
             * woken within a second, whatever lost the wake-up. */
            if (s->cursor < head && sub_suspended(s))
                sub_wake(s);
            /* A stream awake, behind, and without progress for a second
             * is waiting inside 0.9.75's epoll loop, which can sit on a
             * burst of exactly 128 ready connections until some other
             * event arrives: see the nudge below. */
            else if (s->cursor < head && !s->dead && s->cursor == s->swept_cursor)
                stuck = true;
            s->swept_cursor = s->cursor;
            if (s->has_caller && s->caller.expires_us && now_us >= s->caller.expires_us &&
                s->close == CLOSE_NONE) {
                s->close = CLOSE_CLOSED;
                s->close_reason = "expired";
                sub_wake(s);
            }
            if (hb) {
                /* Writing is how a dead client is found: suspended
                 * connections do not notice a hang-up. */
                if (!s->dead)
                    http_sse_heartbeat_locked(s->w);
            }
            pthread_mutex_unlock(&s->lock);
        }
        /* The nudge: resuming connections signals MHD's threads, which
         * then serve the connections they were sitting on. A woken
         * stream with nothing to send just suspends again. */
        for (struct sub *s = b->subs; stuck && s; s = s->next) {
            pthread_mutex_lock(&s->lock);
            sub_wake(s);
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&b->subs_lock);
        pthread_mutex_lock(&b->timer_lock);
    }
    pthread_mutex_unlock(&b->timer_lock);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------ */

struct events_bus *events_open(const struct events_config *cfg, struct sb_err *err)
{
    struct events_bus *b = calloc(1, sizeof *b);
    if (!b) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    b->store = cfg->store;
    b->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 15000;
    random_hex(b->origin, 8);
    pthread_mutex_init(&b->publish_lock, NULL);
    pthread_rwlock_init(&b->ring_lock, NULL);
    pthread_mutex_init(&b->subs_lock, NULL);
    pthread_mutex_init(&b->dead_lock, NULL);
    pthread_mutex_init(&b->timer_lock, NULL);
    pthread_cond_init(&b->timer_cond, NULL);

    struct store_follow_config fc = {.ready = on_log_ready, .fn = on_log_event, .ctx = b};
    if (store_follow_start(b->store, &fc, err)) {
        events_free(b);
        return NULL;
    }
    b->following = true;
    if (cfg->redis_url && *cfg->redis_url) {
        b->redis_pub = redis_open(cfg->redis_url, err);
        b->redis_sub = b->redis_pub
                           ? redis_subscribe(cfg->redis_url, EPHEMERAL_CHANNEL, on_redis_message, b, err)
                           : NULL;
        if (!b->redis_sub) {
            events_free(b);
            return NULL;
        }
    }
    if (pthread_create(&b->timer, NULL, timer_main, b) != 0) {
        sb_error(err, SB_EINTERNAL, "cannot start the event timer");
        events_free(b);
        return NULL;
    }
    b->timer_started = true;
    return b;
}

void events_set_node_labels_fn(struct events_bus *b, events_node_labels_fn fn, void *ctx)
{
    pthread_mutex_lock(&b->publish_lock);
    b->labels_fn = fn;
    b->labels_ctx = ctx;
    pthread_mutex_unlock(&b->publish_lock);
}

void events_set_log_observer(struct events_bus *b, events_log_observer_fn fn, void *ctx)
{
    pthread_mutex_lock(&b->publish_lock);
    b->observer = fn;
    b->observer_ctx = ctx;
    pthread_mutex_unlock(&b->publish_lock);
}

static void stop_sources(struct events_bus *b)
{
    if (b->following) {
        store_follow_stop(b->store);
        b->following = false;
    }
    redis_unsubscribe(b->redis_sub);
    b->redis_sub = NULL;
    redis_close(b->redis_pub);
    b->redis_pub = NULL;
    if (b->timer_started) {
        pthread_mutex_lock(&b->timer_lock);
        b->timer_stop = true;
        pthread_cond_signal(&b->timer_cond);
        pthread_mutex_unlock(&b->timer_lock);
        pthread_join(b->timer, NULL);
        b->timer_started = false;
    }
}

void events_shutdown(struct events_bus *b)
{
    if (!b)
        return;
    stop_sources(b);
    pthread_mutex_lock(&b->publish_lock);
    b->stopping = true;
    pthread_mutex_lock(&b->subs_lock);
    for (struct sub *s = b->subs; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->close == CLOSE_NONE) {
            s->close = CLOSE_CLOSED;
            s->close_reason = "shutdown";
        }
        sub_wake(s);
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&b->subs_lock);
    pthread_mutex_unlock(&b->publish_lock);
}

void events_free(struct events_bus *b)
{
    if (!b)
        return;
    stop_sources(b);
    reap_dead(b);
    while (b->subs) {
        struct sub *s = b->subs;
        b->subs = s->next;
        sub_free(s);
    }
    for (size_t i = 0; i < RING_SIZE; i++)
        item_unref(b->ring[i]);
    pthread_mutex_destroy(&b->publish_lock);
    pthread_rwlock_destroy(&b->ring_lock);
    pthread_mutex_destroy(&b->subs_lock);
    pthread_mutex_destroy(&b->dead_lock);
    pthread_mutex_destroy(&b->timer_lock);
    pthread_cond_destroy(&b->timer_cond);
    free(b);
}

void events_get_stats(struct events_bus *b, struct events_stats *out)
{
    /* Lock-free: /metrics answers on an MHD thread. */
    memset(out, 0, sizeof *out);
    out->subscribers = atomic_load(&b->n_subs);
    out->published = atomic_load(&b->published);
    out->resyncs = atomic_load(&b->resyncs);
}

/* ---- history ---------------------------------------------------------------------- */

struct history_ctx {
    struct events_bus *b;
    const struct api_caller *caller;
    const struct events_topics *topics;
    json_t *events;
    int limit;
    int64_t last;
    int64_t now;
};

static int history_row(void *ctx, const struct store_event_row *row)
{
    struct history_ctx *h = ctx;
    json_t *body = json_loadb(row->body, row->body_len, 0, NULL);
    char node[64] = "";
    const char *family = events_family(row->stream, row->type);
    bool has_node = events_node_of(row->stream, json_object_get(body, "data"), node, sizeof node);
    if (body && events_topics_match(h->topics, family, row->stream, row->type, false) &&
        events_caller_may_see(h->caller, family, has_node ? node : NULL, h->b->labels_fn, h->b->labels_ctx,
                              h->now) &&
        events_type_visible(h->caller, row->type))
        json_array_append(h->events, body);
    json_decref(body);
    h->last = row->seq;
    return (int)json_array_size(h->events) >= h->limit;
}

bool events_in_node_scope(struct events_bus *b, const struct api_caller *c, const char *stream, json_t *body)
{
    if (!c || !c->node_labels || json_object_size(c->node_labels) == 0)
        return true;
    char node[64];
    if (!events_node_of(stream, json_object_get(body, "data"), node, sizeof node))
        return true;
    /* Family "other" carries no guest scope requirement: only the labels
     * (and expiry) decide. */
    struct api_caller scoped = *c;
    sb_strlcpy(scoped.kind, "user", sizeof scoped.kind);
    sb_strlcpy(scoped.role, "viewer", sizeof scoped.role);
    return events_caller_may_see(&scoped, "other", node, b->labels_fn, b->labels_ctx, time_now_us());
}

int events_history(struct events_bus *b, const struct api_caller *caller, const struct events_topics *topics,
                   int64_t after, int limit, json_t **out, struct sb_err *err)
{
    struct history_ctx h = {.b = b,
                            .caller = caller,
                            .topics = topics,
                            .events = json_array(),
                            .limit = limit,
                            .last = after,
                            .now = time_now_us()};
    /* Filtered pages may be sparse: read a few pages at most per request. */
    for (int pages = 0; pages < 10 && (int)json_array_size(h.events) < limit; pages++) {
        int64_t before = h.last, page_last;
        int rc = store_events_after(b->store, h.last, limit, history_row, &h, &page_last, err);
        if (rc) {
            json_decref(h.events);
            return rc;
        }
        if (h.last == before)
            break;
    }
    *out = json_pack("{s:o, s:I}", "events", h.events, "next_after", (json_int_t)h.last);
    return 0;
}
