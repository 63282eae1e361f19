/*
 * The containers projection: its apply function (called from
 * projections_apply) and the queries the docker watcher needs.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SQL_UPSERT =
    "INSERT INTO containers (node_id, container_id, name, image, state, labels, exit_code, health, "
    "updated_seq, "
    "updated_at) VALUES ($1, $2, coalesce($3, ''), coalesce($4, ''), coalesce($5, 'unknown'), "
    "coalesce($6::jsonb, '{}'), $7::int, $8, $9::bigint, $10::timestamptz) "
    "ON CONFLICT (node_id, container_id) DO UPDATE SET name = coalesce($3, containers.name), "
    "image = coalesce($4, containers.image), state = coalesce($5, containers.state), "
    "labels = coalesce($6::jsonb, containers.labels), exit_code = coalesce($7::int, containers.exit_code), "
    "health = coalesce($8, containers.health), updated_seq = $9::bigint, updated_at = $10::timestamptz";

static const char *str_or_null(json_t *data, const char *key)
{
    const char *s = json_string_value(json_object_get(data, key));
    return s && *s ? s : NULL;
}

/* One container event; other events are ignored. */
int project_containers(struct store_tx *tx, const struct store_event *ev)
{
    if (strncmp(ev->type, "container.", 10) != 0 || !ev->outcome || strcmp(ev->outcome, "success") != 0 ||
        !ev->actor_kind || strcmp(ev->actor_kind, "system") != 0)
        return 0;
    const char *t = ev->type + 10;
    const char *node = str_or_null(ev->data, "node_id");
    const char *cid = str_or_null(ev->data, "container_id");
    if (!node || !cid)
        return 0;
    if (strcmp(t, "destroyed") == 0) {
        const char *p[2] = {node, cid};
        return store_tx_exec(tx, "DELETE FROM containers WHERE node_id = $1 AND container_id = $2", 2, p);
    }
    if (strcmp(t, "created") && strcmp(t, "started") && strcmp(t, "died") && strcmp(t, "paused") &&
        strcmp(t, "unpaused") && strcmp(t, "observed") && strcmp(t, "health_status") && strcmp(t, "oom"))
        return 0;
    char *labels = NULL;
    json_t *l = json_object_get(ev->data, "labels");
    if (json_is_object(l))
        labels = json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS);
    char exit_code[24] = "", seq[24];
    json_t *ec = json_object_get(ev->data, "exit_code");
    if (json_is_integer(ec))
        snprintf(exit_code, sizeof exit_code, "%lld", (long long)json_integer_value(ec));
    snprintf(seq, sizeof seq, "%lld", (long long)ev->seq);
    const char *p[10] = {node,
                         cid,
                         str_or_null(ev->data, "name"),
                         str_or_null(ev->data, "image"),
                         str_or_null(ev->data, "state"),
                         labels,
                         exit_code[0] ? exit_code : NULL,
                         str_or_null(ev->data, "health"),
                         seq,
                         ev->occurred_at};
    int rc = store_tx_exec(tx, SQL_UPSERT, 10, p);
    free(labels);
    return rc;
}

static struct store_stmt stmt_of_node =
    STORE_STMT("SELECT container_id, state, name FROM containers WHERE node_id = $1 ORDER BY container_id");

int store_containers_of_node(struct store *st, const char *node_id, json_t **rows, struct sb_err *err)
{
    *rows = NULL;
    struct store_conn *c = store_acquire(st, err);
    if (!c)
        return err ? err->code : SB_EUNAVAIL;
    const char *p[1] = {node_id};
    PGresult *r = store_exec(c, &stmt_of_node, 1, p, err);
    store_release(st, c);
    if (!r)
        return err ? err->code : SB_EUNAVAIL;
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "container_id", PQgetvalue(r, i, 0), "state",
                                           PQgetvalue(r, i, 1), "name", PQgetvalue(r, i, 2)));
    PQclear(r);
    *rows = a;
    return 0;
}
