/*
 * api — the REST resources, one file per resource, and the route table.
 * Handlers validate input, call the domain and store layers, and set one
 * reply. They never include libpq.
 */
#ifndef SB_API_H
#define SB_API_H

#include "../auth/auth.h"
#include "../crypto/crypto.h"
#include "../http/http.h"
#include "../redis/redis.h"
#include "../ssh/ssh.h"
#include "../store/store.h"
#include "../util/util.h"

#include "../app/app.h"
#include "../nodes/nodes.h"

/* Whether the caller may see a node with these labels (a JSON object of
 * strings): every label of the caller's selector must be present and equal.
 * Outside the scope a node does not exist for the caller: answer 404. */
bool api_node_visible(const struct http_request *req, json_t *node_labels);
/* Whether selector `labels` is at least as narrow as `ceiling` (every
 * label of the ceiling present and equal); a NULL or empty ceiling allows
 * any. For credentials made by a scoped caller. */
bool api_labels_within(json_t *labels, json_t *ceiling);
/* Loads node `id` into *node (caller owns it) if the caller may see it;
 * otherwise replies (404 for unknown or out of scope, 503 when the store is
 * down) and returns -1. */
int api_node_load_visible(struct http_request *req, const char *id, json_t **node);
/* The actor of an event made by this request (pointers into req). */
void api_actor(struct http_request *req, struct event_actor *out);

/* Validates a body against the allowed fields; replies 422 and returns -1. */
int api_check_fields(struct http_request *req, const char *const *allowed);
/* Validates a node label selector (null, or an object of string labels);
 * SB_EINVAL naming "node_labels". */
int api_check_node_labels(json_t *labels, struct sb_err *err);
/* A collector batch's samples decoded for the store (api/agent.c; pure):
 * samples outside [now - 2 days, now + 5 min] or not objects are skipped,
 * containers capped. `last` is borrowed from `samples`. SB_ENOMEM only. */
struct api_batch {
    struct store_metric_sample *s;
    size_t ns;
    struct store_container_sample *cs;
    size_t nc;
    size_t skipped;
    json_t *last;
    int64_t oldest_ms;
};
int api_agent_batch_decode(json_t *samples, int64_t now_ms, struct api_batch *out);
void api_agent_batch_release(struct api_batch *b);
/* Replies with err mapped to its status; always returns -1. */
int api_fail(struct http_request *req, const struct sb_err *err);

/* The permissions of a role a user or token may be given (api/roles.c): a
 * built-in one but guest, or a custom role that exists. SB_EINVAL naming
 * `field` otherwise. */
int api_role_perms(struct http_request *req, const char *role, const char *field, struct auth_perms *out,
                   struct sb_err *err);

/* Opens a session for u after every factor passed (api/session.c): the
 * session row and its auth.login event (factor: password, totp,
 * recovery_code, oidc), the session cookie; the bearer token (>= 80 bytes,
 * may be NULL) and CSRF token (65 bytes). */
int api_session_open(struct http_request *req, const struct store_user *u, const char *factor,
                     char token_out[80], char csrf[65], int64_t *expires_us, struct sb_err *err);

/* A login challenge (sbc_…) for a user with 2FA whose first factor passed:
 * POST /api/v1/auth/login/totp exchanges it with a code for the session. */
int api_login_challenge_new(struct http_request *req, const struct store_user *u, char token[80],
                            int64_t *expires_us, struct sb_err *err);

/* The dashboard (api/dashboard.c). A route whose path a browser also opens
 * as a page (/g/<token>) answers with the app when the client asks for HTML. */
bool api_dashboard_wants_page(const struct http_request *req);
void api_dashboard_page(struct http_request *req);

extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/* The HTTP guard (http_server_config.guard): resolves the credential into
 * req->user, enforces the route's permission through the RBAC table, rate
 * limits (per credential, and per address for unauthenticated requests),
 * CSRF for cookie sessions, and audits denied requests and guest requests
 * through the windowed summarizer (audit/audit.h). */
int api_guard(struct http_request *req);
/* For a route that checks its own credential (a webhook's signature): the
 * audited, bounded 401 every denial gets (keyed by the client address; a
 * few recorded one by one per window, the rest summarized). Returns -1. */
int api_deny_unauthenticated(struct http_request *req, const char *message, const char *reason);
/* Audits a request made with a guest link (req->user a guest): the first of
 * the link's window as guest.request, the rest in its summary. */
void api_guest_request_note(struct http_request *req);
/* The never-blocking part of the guard, for HTTP_ROUTE_INLINE_IF_ADMITTED
 * routes on the MHD thread: admits a cached bearer credential that holds the
 * permission; anything else is left to api_guard on a worker. */
int api_fast_guard(struct http_request *req);

/* Makes a signed checkpoint of the audit chain's head, unless the latest one
 * already covers it. */
struct store_checkpoint;
int api_audit_checkpoint(struct app *app, struct store_checkpoint *out, struct sb_err *err);

/* Terminals (api/terminals.c): terminal_config.closed, recording the
 * terminal.closed event of a terminal that ended by itself (ctx = app). */
struct terminal_closed;
void api_terminal_closed(void *ctx, const struct terminal_closed *c);
/* Starts the terminals (after nodes_open) / stops them. */
int api_terminals_start(struct app *app, struct sb_err *err);
void api_terminals_shutdown(struct app *app);
void api_terminals_stop(struct app *app);

/* Starts the thread that checks the database and Redis every second. */
int api_health_start(struct app *app);
void api_health_stop(struct app *app);
/* One check now, synchronously (used at start-up). */
void api_health_check_now(struct app *app);

/* The OpenAPI document built into the binary (docs/openapi.yaml as JSON). */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;

#endif
