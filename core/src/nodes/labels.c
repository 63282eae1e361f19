/*
 * Node id → labels, for the event bus's visibility rule, which runs on MHD
 * threads for every event and subscriber and so must answer from memory.
 * Reloaded from the projection by the bus's log observer on every
 * node.registered/updated/deleted before streams see the event; a label
 * object in the map is never modified, only replaced.
 */
#include "internal.h"

#include "../events/events.h"

#include <string.h>

#define GONE_MAX 1024 /* deleted nodes whose labels are remembered */

static void labels_reload(struct nodes *an)
{
    json_t *all = NULL;
    struct sb_err err = {0};
    json_t *map = NULL;
    if (store_node_list(an->store, &all, &err) == 0 && (map = json_object())) {
        size_t i;
        json_t *n;
        json_array_foreach(all, i, n)
        {
            const char *id = json_string_value(json_object_get(n, "id"));
            json_t *l = json_object_get(n, "labels");
            if (id && json_is_object(l))
                json_object_set(map, id, l);
        }
    }
    json_decref(all);
    pthread_mutex_lock(&an->labels_lock);
    if (map) {
        json_decref(an->labels);
        an->labels = map;
    }
    an->labels_stale = map == NULL;
    pthread_mutex_unlock(&an->labels_lock);
    if (!map)
        log_warn("cannot load node labels; label-scoped streams miss node events until it works",
                 "detail=\"%s\"", err.msg);
}

/* events_node_labels_fn: a new reference, or NULL for an unknown node. */
static json_t *labels_lookup(void *ctx, const char *node_id)
{
    struct nodes *an = ctx;
    pthread_mutex_lock(&an->labels_lock);
    json_t *l = an->labels ? json_object_get(an->labels, node_id) : NULL;
    if (!l && an->gone)
        l = json_object_get(an->gone, node_id);
    json_incref(l);
    pthread_mutex_unlock(&an->labels_lock);
    return l;
}

/* The labels of one node from the projection into the map (or out of it,
 * when the node is gone). False when the store could not be read. */
static bool labels_update_one(struct nodes *an, const char *id)
{
    json_t *node = NULL;
    struct sb_err err = {0};
    int rc = store_node_get(an->store, id, &node, &err);
    if (rc && rc != SB_ENOTFOUND)
        return false;
    json_t *l = json_object_get(node, "labels");
    pthread_mutex_lock(&an->labels_lock);
    if (json_is_object(l))
        json_object_set(an->labels, id, l);
    else
        json_object_del(an->labels, id);
    pthread_mutex_unlock(&an->labels_lock);
    json_decref(node);
    return true;
}

/* events_log_observer_fn, on the follower thread: the projection already
 * holds the event (it commits with it), so one lookup of that node brings
 * the map up to date before any stream filters the event. */
static void labels_observe(void *ctx, const char *stream, const char *type, json_t *body)
{
    (void)stream;
    struct nodes *an = ctx;
    bool changes = strcmp(type, "node.registered") == 0 || strcmp(type, "node.updated") == 0 ||
                   strcmp(type, "node.deleted") == 0;
    const char *id = json_string_value(json_object_get(json_object_get(body, "data"), "id"));
    pthread_mutex_lock(&an->labels_lock);
    bool stale = an->labels_stale || !an->labels;
    json_t *was = changes && id && an->labels && strcmp(type, "node.deleted") == 0
                      ? json_object_get(an->labels, id)
                      : NULL;
    if (was) {
        if (!an->gone || json_object_size(an->gone) >= GONE_MAX) {
            json_decref(an->gone);
            an->gone = json_object();
        }
        if (an->gone)
            json_object_set(an->gone, id, was);
    }
    pthread_mutex_unlock(&an->labels_lock);
    if (stale || (changes && (!id || !labels_update_one(an, id))))
        labels_reload(an);
}

void nodes_labels_start(struct nodes *n)
{
    if (!n->events)
        return;
    /* The observer first, so no node event falls between the load and it. */
    events_set_log_observer(n->events, labels_observe, n);
    labels_reload(n);
    events_set_node_labels_fn(n->events, labels_lookup, n);
}

void nodes_labels_reload_if_stale(struct nodes *n)
{
    pthread_mutex_lock(&n->labels_lock);
    bool stale = n->labels_stale;
    pthread_mutex_unlock(&n->labels_lock);
    if (stale)
        labels_reload(n);
}

void nodes_labels_free(struct nodes *n)
{
    json_decref(n->labels);
    json_decref(n->gone);
    n->labels = n->gone = NULL;
}
