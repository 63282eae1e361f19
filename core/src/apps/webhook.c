/*
 * Webhook verification (pure): GitHub's X-Hub-Signature-256 is
 * "sha256=" + hex(HMAC-SHA256(secret, raw body)); GitLab's X-Gitlab-Token
 * is the secret itself. Both compared in constant time (sodium_memcmp).
 */
#include "apps.h"

#include <sodium.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool apps_github_signature_ok(const char *secret, const void *body, size_t len, const char *header)
{
    if (!secret || !*secret || !header || strncmp(header, "sha256=", 7) != 0 || strlen(header) != 7 + 64)
        return false;
    unsigned char given[32];
    for (int i = 0; i < 32; i++) {
        int hi = hexval(header[7 + 2 * i]), lo = hexval(header[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return false;
        given[i] = (unsigned char)(hi << 4 | lo);
    }
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    return sodium_memcmp(mac, given, 32) == 0;
}

bool apps_gitlab_token_ok(const char *secret, const char *header)
{
    if (!secret || !*secret || !header)
        return false;
    /* compare digests so the lengths do not leak through the time taken */
    unsigned char a[32], b[32];
    crypto_hash_sha256(a, (const unsigned char *)secret, strlen(secret));
    crypto_hash_sha256(b, (const unsigned char *)header, strlen(header));
    return sodium_memcmp(a, b, 32) == 0;
}

bool apps_push_matches(json_t *payload, const char *branch)
{
    const char *ref = json_string_value(json_object_get(payload, "ref"));
    if (!ref || !branch || strncmp(ref, "refs/heads/", 11) != 0)
        return false;
    return strcmp(ref + 11, branch) == 0;
}
