/*
 * OpenID Connect relying party. See oidc.h; README.md for the decisions.
 */
#include "oidc.h"

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_TIMEOUT_S   10
#define HTTP_MAX_BYTES   (1 << 20)
#define CLOCK_LEEWAY_S   60
#define DISCOVERY_TTL_MS (3600 * 1000)
#define JWKS_MIN_GAP_MS  10000 /* an unknown kid refetches at most this often */
#define RSA_MIN_BITS     2048

struct oidc {
    char *issuer, *client_id, *client_secret, *algorithm, *scopes, *name;
    json_t *mapping;

    pthread_mutex_t lock;
    json_t *discovery; /* cached */
    int64_t discovery_ms;
    json_t *jwks; /* {"keys": [...]} */
    int64_t jwks_ms;
};

static char *dup_or(const char *s, const char *def)
{
    return strdup(s && *s ? s : def);
}

const char *oidc_name(const struct oidc *o)
{
    return o->name;
}

const char *oidc_issuer(const struct oidc *o)
{
    return o->issuer;
}

static int mapping_check(json_t *m, struct sb_err *err)
{
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "claim")))
        return sb_error(err, SB_EINVAL, "--oidc-mapping: an object with \"claim\" and \"rules\"");
    json_t *rules = json_object_get(m, "rules");
    if (rules && !json_is_array(rules))
        return sb_error(err, SB_EINVAL, "--oidc-mapping: \"rules\" is an array");
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        if (!json_is_string(json_object_get(r, "match")) || !json_is_string(json_object_get(r, "role")))
            return sb_error(err, SB_EINVAL, "--oidc-mapping: rule %zu needs \"match\" and \"role\"", i);
        json_t *l = json_object_get(r, "node_labels");
        if (l && !json_is_null(l) && !json_is_object(l))
            return sb_error(err, SB_EINVAL, "--oidc-mapping: rule %zu: node_labels is an object", i);
    }
    json_t *d = json_object_get(m, "default");
    if (d && !json_is_null(d) && !json_is_string(json_object_get(d, "role")))
        return sb_error(err, SB_EINVAL, "--oidc-mapping: \"default\" is null or {\"role\": …}");
    return 0;
}

struct oidc *oidc_open(const struct oidc_config *cfg, struct sb_err *err)
{
    if (!cfg->issuer || !*cfg->issuer)
        return NULL;
    if (!cfg->client_id || !*cfg->client_id) {
        sb_error(err, SB_EINVAL, "--oidc-issuer needs --oidc-client-id");
        return NULL;
    }
    if (cfg->algorithm && *cfg->algorithm && strcmp(cfg->algorithm, "RS256") != 0) {
        sb_error(err, SB_EINVAL, "--oidc-algorithm: only RS256 is supported");
        return NULL;
    }
    json_error_t je;
    json_t *mapping = json_loads(
        cfg->mapping_json && *cfg->mapping_json ? cfg->mapping_json : "{\"claim\":\"groups\",\"rules\":[]}",
        JSON_REJECT_DUPLICATES, &je);
    if (!mapping) {
        sb_error(err, SB_EINVAL, "--oidc-mapping is not JSON: %s", je.text);
        return NULL;
    }
    if (mapping_check(mapping, err)) {
        json_decref(mapping);
        return NULL;
    }
    struct oidc *o = calloc(1, sizeof *o);
    if (!o) {
        json_decref(mapping);
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    o->issuer = strdup(cfg->issuer);
    o->client_id = strdup(cfg->client_id);
    o->client_secret = cfg->client_secret && *cfg->client_secret ? strdup(cfg->client_secret) : NULL;
    o->algorithm = dup_or(cfg->algorithm, "RS256");
    o->scopes = dup_or(cfg->scopes, "openid profile email");
    o->name = dup_or(cfg->name, "SSO");
    o->mapping = mapping;
    pthread_mutex_init(&o->lock, NULL);
    return o;
}

void oidc_close(struct oidc *o)
{
    if (!o)
        return;
    free(o->issuer);
    free(o->client_id);
    if (o->client_secret) {
        sodium_memzero(o->client_secret, strlen(o->client_secret));
        free(o->client_secret);
    }
    free(o->algorithm);
    free(o->scopes);
    free(o->name);
    json_decref(o->mapping);
    json_decref(o->discovery);
    json_decref(o->jwks);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    size_t len = size * n;
    if (b->len + len > HTTP_MAX_BYTES || buf_append(b, p, len))
        return 0;
    return len;
}

/* GET (form NULL) or POST a form; the answer as JSON. */
static int http_json(const char *url, const char *form, const char *user, const char *pass, long *status,
                     json_t **out, struct sb_err *err)
{
    *out = NULL;
    CURL *c = curl_easy_init();
    if (!c)
        return sb_error(err, SB_ENOMEM, "out of memory");
    struct buf b;
    buf_init(&b, HTTP_MAX_BYTES);
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (form)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    if (user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
    }
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    int ret = 0;
    if (rc != CURLE_OK)
        ret = sb_error(err, SB_EUPSTREAM, "the identity provider cannot be reached (%s)",
                       curl_easy_strerror(rc));
    else if (!(*out = json_loadb(b.data ? b.data : "", b.len, 0, NULL)))
        ret = sb_error(err, SB_EUPSTREAM, "the identity provider answered HTTP %ld without JSON", *status);
    buf_release(&b);
    return ret;
}

/* The discovery document (cached); its issuer must be ours exactly. */
static int discovery(struct oidc *o, json_t **out, struct sb_err *err)
{
    pthread_mutex_lock(&o->lock);
    if (o->discovery && time_mono_ms() - o->discovery_ms < DISCOVERY_TTL_MS) {
        *out = json_incref(o->discovery);
        pthread_mutex_unlock(&o->lock);
        return 0;
    }
    pthread_mutex_unlock(&o->lock);
    char url[1024];
    size_t n = strlen(o->issuer);
    snprintf(url, sizeof url, "%s%s.well-known/openid-configuration", o->issuer,
             n && o->issuer[n - 1] == '/' ? "" : "/");
    long status;
    json_t *d = NULL;
    int rc = http_json(url, NULL, NULL, NULL, &status, &d, err);
    if (rc)
        return rc;
    const char *iss = json_string_value(json_object_get(d, "issuer"));
    if (status != 200 || !iss || strcmp(iss, o->issuer) != 0 ||
        !json_is_string(json_object_get(d, "authorization_endpoint")) ||
        !json_is_string(json_object_get(d, "token_endpoint")) ||
        !json_is_string(json_object_get(d, "jwks_uri"))) {
        json_decref(d);
        return sb_error(err, SB_EUPSTREAM, "the identity provider's discovery document is not for issuer %s",
                        o->issuer);
    }
    pthread_mutex_lock(&o->lock);
    json_decref(o->discovery);
    o->discovery = json_incref(d);
    o->discovery_ms = time_mono_ms();
    pthread_mutex_unlock(&o->lock);
    *out = d;
    return 0;
}

static void random_b64url(char *out, size_t outlen, size_t bytes)
{
    uint8_t raw[48];
    randombytes_buf(raw, bytes);
    sodium_bin2base64(out, outlen, raw, bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

static void url_escape(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '_' || *c == '.' || *c == '~')
            buf_putc(b, (char)*c);
        else
            buf_printf(b, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
    }
}

int oidc_begin(struct oidc *o, const char *redirect_uri, struct oidc_pending *p, struct buf *url,
               struct sb_err *err)
{
    json_t *d = NULL;
    int rc = discovery(o, &d, err);
    if (rc)
        return rc;
    random_b64url(p->state, sizeof p->state, 24);
    random_b64url(p->nonce, sizeof p->nonce, 24);
    random_b64url(p->verifier, sizeof p->verifier, 32); /* 43 characters (RFC 7636: 43-128) */
    uint8_t h[32];
    crypto_hash_sha256(h, (const unsigned char *)p->verifier, strlen(p->verifier));
    char challenge[48];
    sodium_bin2base64(challenge, sizeof challenge, h, sizeof h, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    const char *ep = json_string_value(json_object_get(d, "authorization_endpoint"));
    buf_printf(url, "%s%sresponse_type=code&client_id=", ep, strchr(ep, '?') ? "&" : "?");
    url_escape(url, o->client_id);
    buf_append(url, "&redirect_uri=", 14);
    url_escape(url, redirect_uri);
    buf_append(url, "&scope=", 7);
    url_escape(url, o->scopes);
    buf_printf(url, "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256", p->state, p->nonce,
               challenge);
    json_decref(d);
    return 0;
}

/* ---- JWT ------------------------------------------------------------------- */

static int b64url_decode(const char *s, size_t len, struct buf *out)
{
    buf_reset(out);
    size_t cap = len * 3 / 4 + 4, got = 0;
    unsigned char *tmp = malloc(cap);
    if (!tmp)
        return SB_ENOMEM;
    int rc =
        sodium_base642bin(tmp, cap, s, len, NULL, &got, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0
            ? buf_append(out, tmp, got)
            : SB_EINVAL;
    free(tmp);
    return rc;
}

int oidc_rs256_verify(json_t *jwk, const void *data, size_t len, const uint8_t *sig, size_t siglen,
                      struct sb_err *err)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *n64 = json_string_value(json_object_get(jwk, "n"));
    const char *e64 = json_string_value(json_object_get(jwk, "e"));
    if (!kty || strcmp(kty, "RSA") != 0 || !n64 || !e64)
        return sb_error(err, SB_EAUTH, "the signing key is not an RSA key");
    struct buf n, e;
    buf_init(&n, 4096);
    buf_init(&e, 64);
    int rc = 0;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *kctx = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = NULL;
    if (b64url_decode(n64, strlen(n64), &n) || b64url_decode(e64, strlen(e64), &e) || n.len == 0 ||
        e.len == 0) {
        rc = sb_error(err, SB_EAUTH, "the signing key is malformed");
        goto out;
    }
    bn = BN_bin2bn((const unsigned char *)n.data, (int)n.len, NULL);
    be = BN_bin2bn((const unsigned char *)e.data, (int)e.len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) || !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) || EVP_PKEY_fromdata_init(kctx) <= 0 ||
        EVP_PKEY_fromdata(kctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        rc = sb_error(err, SB_EAUTH, "the signing key cannot be used");
        goto out;
    }
    if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
        rc = sb_error(err, SB_EAUTH, "the signing key is shorter than %d bits", RSA_MIN_BITS);
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestVerify(md, sig, siglen, data, len) != 1)
        rc = sb_error(err, SB_EAUTH, "the ID token's signature does not verify");
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(kctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    buf_release(&n);
    buf_release(&e);
    return rc;
}

/* The JWKS key with this kid (or the only RS256-usable one when the token
 * names none); refetched once when unknown. A new reference or NULL. */
static json_t *find_key(struct oidc *o, const char *kid, struct sb_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&o->lock);
        json_t *keys = o->jwks ? json_incref(json_object_get(o->jwks, "keys")) : NULL;
        bool stale = !o->jwks || time_mono_ms() - o->jwks_ms >= JWKS_MIN_GAP_MS;
        pthread_mutex_unlock(&o->lock);
        json_t *found = NULL;
        size_t i, usable = 0;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            const char *use = json_string_value(json_object_get(k, "use"));
            const char *kty = json_string_value(json_object_get(k, "kty"));
            if ((use && strcmp(use, "sig") != 0) || !kty || strcmp(kty, "RSA") != 0)
                continue;
            usable++;
            const char *kk = json_string_value(json_object_get(k, "kid"));
            if ((kid && kk && strcmp(kid, kk) == 0) || (!kid && !found))
                found = k;
        }
        if (found && (kid || usable == 1)) {
            json_incref(found);
            json_decref(keys);
            return found;
        }
        json_decref(keys);
        if (attempt == 1 || !stale)
            break;
        json_t *d = NULL;
        if (discovery(o, &d, err))
            return NULL;
        long status;
        json_t *jwks = NULL;
        int rc = http_json(json_string_value(json_object_get(d, "jwks_uri")), NULL, NULL, NULL, &status,
                           &jwks, err);
        json_decref(d);
        if (rc)
            return NULL;
        if (status != 200 || !json_is_array(json_object_get(jwks, "keys"))) {
            json_decref(jwks);
            sb_error(err, SB_EUPSTREAM, "the identity provider's JWKS is unreadable");
            return NULL;
        }
        pthread_mutex_lock(&o->lock);
        json_decref(o->jwks);
        o->jwks = jwks;
        o->jwks_ms = time_mono_ms();
        pthread_mutex_unlock(&o->lock);
    }
    sb_error(err, SB_EAUTH, "the ID token is signed with a key the identity provider does not publish");
    return NULL;
}

static bool aud_has(json_t *aud, const char *client_id)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), client_id) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i,
                       v) if (json_is_string(v) && strcmp(json_string_value(v), client_id) == 0) return true;
    return false;
}

int oidc_verify_id_token(struct oidc *o, const char *jwt, const char *nonce, int64_t now_s, json_t **claims,
                         struct sb_err *err)
{
    *claims = NULL;
    const char *d1 = jwt ? strchr(jwt, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return sb_error(err, SB_EAUTH, "the ID token is not a signed JWT");
    struct buf part;
    buf_init(&part, 64 * 1024);
    json_t *header = NULL, *payload = NULL, *key = NULL;
    int rc = 0;
    if (b64url_decode(jwt, (size_t)(d1 - jwt), &part) ||
        !(header = json_loadb(part.data, part.len, JSON_REJECT_DUPLICATES, NULL)) ||
        !json_is_object(header)) {
        rc = sb_error(err, SB_EAUTH, "the ID token's header is malformed");
        goto out;
    }
    /* The algorithm is ours, never the token's ("none", HS256 keyed with
     * the public key…). */
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, o->algorithm) != 0) {
        rc = sb_error(err, SB_EAUTH, "the ID token is signed with %s; only %s is accepted",
                      alg ? alg : "nothing", o->algorithm);
        goto out;
    }
    if (json_object_get(header, "crit")) {
        rc = sb_error(err, SB_EAUTH, "the ID token has critical header extensions");
        goto out;
    }
    key = find_key(o, json_string_value(json_object_get(header, "kid")), err);
    if (!key) {
        rc = err ? err->code : SB_EAUTH;
        goto out;
    }
    if (b64url_decode(d2 + 1, strlen(d2 + 1), &part)) {
        rc = sb_error(err, SB_EAUTH, "the ID token's signature is malformed");
        goto out;
    }
    if ((rc = oidc_rs256_verify(key, jwt, (size_t)(d2 - jwt), (const uint8_t *)part.data, part.len, err)))
        goto out;
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &part) ||
        !(payload = json_loadb(part.data, part.len, JSON_REJECT_DUPLICATES, NULL)) ||
        !json_is_object(payload)) {
        rc = sb_error(err, SB_EAUTH, "the ID token's claims are malformed");
        goto out;
    }
    const char *iss = json_string_value(json_object_get(payload, "iss"));
    json_t *aud = json_object_get(payload, "aud");
    json_t *exp = json_object_get(payload, "exp"), *nbf = json_object_get(payload, "nbf"),
           *iat = json_object_get(payload, "iat");
    const char *azp = json_string_value(json_object_get(payload, "azp"));
    const char *tn = json_string_value(json_object_get(payload, "nonce"));
    const char *sub = json_string_value(json_object_get(payload, "sub"));
    if (!iss || strcmp(iss, o->issuer) != 0)
        rc = sb_error(err, SB_EAUTH, "the ID token is from another issuer (%.100s)", iss ? iss : "none");
    else if (!aud_has(aud, o->client_id))
        rc = sb_error(err, SB_EAUTH, "the ID token is for another audience, not this client");
    else if (json_is_array(aud) && json_array_size(aud) > 1 && (!azp || strcmp(azp, o->client_id) != 0))
        rc = sb_error(err, SB_EAUTH, "the ID token has several audiences and another authorized party");
    else if (!json_is_integer(exp) && !json_is_real(exp))
        rc = sb_error(err, SB_EAUTH, "the ID token has no expiry");
    else if ((int64_t)json_number_value(exp) + CLOCK_LEEWAY_S < now_s)
        rc = sb_error(err, SB_EAUTH, "the ID token has expired");
    else if (nbf && (int64_t)json_number_value(nbf) - CLOCK_LEEWAY_S > now_s)
        rc = sb_error(err, SB_EAUTH, "the ID token is not valid yet");
    else if (iat && (int64_t)json_number_value(iat) - CLOCK_LEEWAY_S > now_s)
        rc = sb_error(err, SB_EAUTH, "the ID token was issued in the future");
    else if (!tn || !nonce || strcmp(tn, nonce) != 0)
        rc = sb_error(err, SB_EAUTH, "the ID token's nonce is not this login's");
    else if (!sub || !*sub || strlen(sub) > 255)
        rc = sb_error(err, SB_EAUTH, "the ID token has no subject");
out:
    if (rc == 0)
        *claims = json_incref(payload);
    json_decref(payload);
    json_decref(header);
    json_decref(key);
    buf_release(&part);
    return rc;
}

int oidc_finish(struct oidc *o, const char *code, const char *redirect_uri, const char *verifier,
                const char *nonce, json_t **claims, struct sb_err *err)
{
    *claims = NULL;
    json_t *d = NULL;
    int rc = discovery(o, &d, err);
    if (rc)
        return rc;
    struct buf form;
    buf_init(&form, 8192);
    buf_append(&form, "grant_type=authorization_code&code=", 35);
    url_escape(&form, code);
    buf_append(&form, "&redirect_uri=", 14);
    url_escape(&form, redirect_uri);
    buf_append(&form, "&code_verifier=", 15);
    url_escape(&form, verifier);
    if (!o->client_secret) {
        buf_append(&form, "&client_id=", 11);
        url_escape(&form, o->client_id);
    }
    long status = 0;
    json_t *tok = NULL;
    rc = http_json(json_string_value(json_object_get(d, "token_endpoint")), form.data,
                   o->client_secret ? o->client_id : NULL, o->client_secret, &status, &tok, err);
    json_decref(d);
    buf_release(&form);
    if (rc)
        return rc;
    const char *id_token = json_string_value(json_object_get(tok, "id_token"));
    if (status != 200 || !id_token) {
        const char *e = json_string_value(json_object_get(tok, "error"));
        rc =
            sb_error(err, SB_EAUTH, "the identity provider refused the code (%.100s)", e ? e : "no ID token");
    } else {
        rc = oidc_verify_id_token(o, id_token, nonce, time_now_us() / 1000000, claims, err);
    }
    json_decref(tok);
    return rc;
}

/* Whether a claim value (string or array of strings) holds `v`. */
static bool claim_has(json_t *c, const char *v)
{
    if (json_is_string(c))
        return strcmp(json_string_value(c), v) == 0;
    size_t i;
    json_t *x;
    json_array_foreach(c, i, x) if (json_is_string(x) && strcmp(json_string_value(x), v) == 0) return true;
    return false;
}

int oidc_map(const struct oidc *o, json_t *claims, char *role, size_t rolelen, json_t **labels,
             struct sb_err *err)
{
    *labels = NULL;
    const char *claim = json_string_value(json_object_get(o->mapping, "claim"));
    json_t *value = json_object_get(claims, claim);
    size_t i;
    json_t *r, *hit = NULL;
    json_array_foreach(json_object_get(o->mapping, "rules"), i, r)
    {
        if (claim_has(value, json_string_value(json_object_get(r, "match")))) {
            hit = r;
            break;
        }
    }
    if (!hit) {
        json_t *d = json_object_get(o->mapping, "default");
        if (json_is_object(d))
            hit = d;
    }
    if (!hit)
        return sb_error(err, SB_EDENIED, "no role is mapped for you (claim '%s'): ask an admin", claim);
    sb_strlcpy(role, json_string_value(json_object_get(hit, "role")), rolelen);
    json_t *l = json_object_get(hit, "node_labels");
    if (json_is_object(l) && json_object_size(l))
        *labels = json_deep_copy(l);
    return 0;
}
