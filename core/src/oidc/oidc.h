/*
 * oidc — single sign-on with an OpenID Connect provider: the authorization
 * code flow with PKCE (S256), discovery, the provider's JWKS, and the ID
 * token verified here with OpenSSL 3 (JWK -> EVP_PKEY_fromdata,
 * EVP_DigestVerify). The algorithm is the configured one, never the
 * token's; iss, aud (and azp), exp, nbf, iat and nonce are all checked.
 * Claims map to a role and node labels by configured rules. Blocking calls
 * (discovery, JWKS, the token endpoint: libcurl, 10 s timeouts) run on
 * worker threads. Thread-safe.
 */
#ifndef SB_OIDC_H
#define SB_OIDC_H

#include "../util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct oidc_config {
    const char *issuer; /* exact issuer URL; NULL or "" = SSO off */
    const char *client_id;
    const char *client_secret; /* may be NULL (public client: PKCE alone) */
    const char *algorithm;     /* RS256 (the only one supported) */
    const char *scopes;        /* default "openid profile email" */
    const char *name;          /* shown as "Sign in with <name>" */
    /* {"claim": "groups", "rules": [{"match": "ops", "role": "operator",
     *  "node_labels": {"env": "lab"}}, …], "default": null | {"role": …}}:
     * the first rule whose value the claim holds (a string or an array of
     * strings) wins. */
    const char *mapping_json;
};

struct oidc;

/* NULL with err->code 0 when SSO is not configured; NULL with an error for
 * a bad configuration. */
struct oidc *oidc_open(const struct oidc_config *cfg, struct sb_err *err);
void oidc_close(struct oidc *o);
const char *oidc_name(const struct oidc *o);
const char *oidc_issuer(const struct oidc *o);

/* What the start of a login must remember until the callback. */
struct oidc_pending {
    char state[44];
    char nonce[44];
    char verifier[64];
};
/* Fresh state, nonce and PKCE verifier, and the provider's authorization
 * URL for them (discovery is fetched once and cached). */
int oidc_begin(struct oidc *o, const char *redirect_uri, struct oidc_pending *p, struct buf *url,
               struct sb_err *err);
/* Exchanges the code (with the verifier) and verifies the ID token against
 * the nonce: the verified claims in *claims (caller owns). SB_EAUTH with a
 * message saying what was wrong. */
int oidc_finish(struct oidc *o, const char *code, const char *redirect_uri, const char *verifier,
                const char *nonce, json_t **claims, struct sb_err *err);
/* The ID token checks alone (keys from the JWKS, refetched once for an
 * unknown kid). */
int oidc_verify_id_token(struct oidc *o, const char *jwt, const char *nonce, int64_t now_s, json_t **claims,
                         struct sb_err *err);
/* The role (out >= 40 bytes) and node labels (*labels, owned, NULL = every
 * node) the claims map to; SB_EDENIED when no rule matches. */
int oidc_map(const struct oidc *o, json_t *claims, char *role, size_t rolelen, json_t **labels,
             struct sb_err *err);

/* For tests: the JWK -> key -> signature check on its own. */
int oidc_rs256_verify(json_t *jwk, const void *data, size_t len, const uint8_t *sig, size_t siglen,
                      struct sb_err *err);

#endif
