/*
 * The error vocabulary: every `code` the API can answer, once, with its
 * status and meaning. docs/openapi.yaml lists the same codes
 * (components.schemas.Error), and scripts/check-error-codes.sh (make check)
 * fails when the source answers a code missing here or the two lists differ.
 */
#include "http.h"

#include <string.h>

const struct http_error_code http_error_codes[] = {
    {"bad_parameter", 400, "a query or path parameter is malformed"},
    {"malformed_json", 400, "the body is not one JSON object (the message has line and column)"},
    {"bad_request", 400, "the request's framing is refused (Content-Length with Transfer-Encoding)"},
    {"session_required", 400, "only a session can do this (not an API token or guest link)"},
    {"unauthenticated", 401, "no credential, or an invalid, expired or revoked one"},
    {"invalid_credentials", 401, "wrong username or password"},
    {"invalid_second_factor", 401, "a wrong or used 2FA code, or an unknown or expired login challenge"},
    {"invalid_token", 401, "a collector enrollment token that is unknown, used or expired"},
    {"unsigned", 401, "a collector batch without its key and signature headers"},
    {"unknown_key", 401, "a collector batch signed by a key the core does not know"},
    {"revoked_key", 401, "a collector batch signed by a revoked key"},
    {"bad_signature", 401, "a collector batch whose signature does not verify"},
    {"stale_batch", 401, "a collector batch sent too long ago to be accepted"},
    {"forbidden", 403, "the caller may not do this (role, scope or policy)"},
    {"csrf_failed", 403, "a cookie session's change without its X-CSRF-Token"},
    {"not_found", 404, "no such thing, or outside the caller's scope"},
    {"method_not_allowed", 405, "the path exists, the method does not (Allow names the others)"},
    {"conflict", 409, "conflicts with existing state (a name taken, a changed object)"},
    {"tmux_missing", 409, "the node has no tmux, which terminals need (install it there)"},
    {"not_running", 409, "the container is not running"},
    {"too_large", 413, "a body or value over its size limit"},
    {"unsupported_media_type", 415, "the body is not application/json"},
    {"misdirected_request", 421, "the Host is not one of --public-host"},
    {"validation_failed", 422, "a field is invalid (`field` names it)"},
    {"rate_limited", 429, "too many requests (Retry-After says when to retry)"},
    {"input_backlog_full", 429, "a terminal's input is not being read fast enough; retry"},
    {"internal", 500, "a bug or an unexpected answer; the log has the request id"},
    {"upstream_error", 502, "a node, engine or other peer answered with an error"},
    {"hostkey_mismatch", 502, "the node presented another SSH host key than the pinned one"},
    {"ssh_auth_failed", 502, "the node refused the SSH login"},
    {"ssh_key_unreadable", 502, "the stored SSH key cannot be used"},
    {"ssh_unreachable", 502, "the node's SSH port cannot be reached"},
    {"unavailable", 503, "a dependency (database, node, engine) is down or not ready"},
    {"ssh_pool_busy", 503, "every SSH session to the node is busy; retry"},
    {"timeout", 503, "gave up waiting for a dependency"},
    {"shutting_down", 503, "the daemon is stopping"},
};
const size_t http_n_error_codes = sizeof http_error_codes / sizeof http_error_codes[0];

const struct http_error_code *http_error_code_find(const char *code)
{
    for (size_t i = 0; i < http_n_error_codes; i++)
        if (strcmp(http_error_codes[i].code, code) == 0)
            return &http_error_codes[i];
    return NULL;
}
