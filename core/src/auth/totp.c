/*
 * TOTP (RFC 6238) with liboath: 30-second steps, SHA-1, exactly 6 digits
 * (liboath takes the length from the code and would accept 6 to 8), one
 * step of clock drift either way. The matched time step is returned so the
 * store can refuse it and every earlier one next time (no replay).
 * Recovery codes: 16 characters of base32 (80 bits) shown once, kept as
 * SHA-256 (their entropy makes a slow hash unnecessary).
 */
#include "internal.h"

#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOTP_STEP_S 30
#define TOTP_WINDOW 1

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static void oath_start(void)
{
    oath_init();
}

void auth_totp_secret_new(uint8_t out[AUTH_TOTP_SECRET_BYTES])
{
    randombytes_buf(out, AUTH_TOTP_SECRET_BYTES);
}

int auth_totp_base32(const uint8_t *secret, size_t len, char *out, size_t outlen, struct sb_err *err)
{
    pthread_once(&oath_once, oath_start);
    char *b32 = NULL;
    size_t n = 0;
    if (oath_base32_encode((const char *)secret, len, &b32, &n) != OATH_OK || !b32)
        return sb_error(err, SB_ENOMEM, "cannot encode the secret");
    /* Without the '=' padding, as authenticator apps expect. */
    while (n && b32[n - 1] == '=')
        n--;
    int rc = 0;
    if (n + 1 > outlen)
        rc = sb_error(err, SB_ENOMEM, "secret too long");
    else {
        memcpy(out, b32, n);
        out[n] = '\0';
    }
    sodium_memzero(b32, strlen(b32));
    free(b32);
    return rc;
}

bool auth_totp_code_valid(const char *code)
{
    if (!code || strlen(code) != AUTH_TOTP_DIGITS)
        return false;
    for (const char *c = code; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return true;
}

int auth_totp_check(const uint8_t *secret, size_t len, const char *code, int64_t now_s, int64_t *counter)
{
    pthread_once(&oath_once, oath_start);
    *counter = 0;
    if (!auth_totp_code_valid(code))
        return SB_EINVAL;
    int pos = 0;
    uint64_t ctr = 0;
    int rc = oath_totp_validate4((const char *)secret, len, (time_t)now_s, TOTP_STEP_S, 0, TOTP_WINDOW, &pos,
                                 &ctr, 0, code);
    if (rc < 0)
        return SB_EAUTH;
    *counter = (int64_t)ctr;
    return 0;
}

void auth_totp_uri(const char *issuer, const char *account, const char *base32, struct buf *out)
{
    /* issuer and account are [A-Za-z0-9._-] here (usernames); anything
     * else is percent-encoded. */
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {issuer, account};
    buf_append(out, "otpauth://totp/", 15);
    for (int k = 0; k < 2; k++) {
        for (const unsigned char *c = (const unsigned char *)parts[k]; *c; c++) {
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                *c == '.' || *c == '_' || *c == '-')
                buf_putc(out, (char)*c);
            else
                buf_printf(out, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
        }
        if (k == 0)
            buf_append(out, "%3A", 3);
    }
    buf_printf(out, "?secret=%s&issuer=", base32);
    for (const unsigned char *c = (const unsigned char *)issuer; *c; c++)
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))
            buf_putc(out, (char)*c);
        else
            buf_printf(out, "%%%c%c", hex[*c >> 4], hex[*c & 15]);
    buf_printf(out, "&algorithm=SHA1&digits=%d&period=%d", AUTH_TOTP_DIGITS, TOTP_STEP_S);
}

void auth_recovery_code_hash(const char *code, char hash_hex[65])
{
    /* Spaces and dashes are ignored and case does not matter. */
    char norm[64];
    size_t n = 0;
    for (const char *c = code ? code : ""; *c && n + 1 < sizeof norm; c++) {
        if (*c == '-' || *c == ' ')
            continue;
        norm[n++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
    }
    norm[n] = '\0';
    uint8_t h[32];
    crypto_hash_sha256(h, (const unsigned char *)norm, n);
    hex_encode(h, 32, hash_hex);
    sodium_memzero(norm, sizeof norm);
}

void auth_recovery_code_new(char out[AUTH_RECOVERY_CODE_LEN + 1], char hash_hex[65])
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789"; /* 32, no l/o/0/1 */
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    /* xxxx-xxxx-xxxx-xxxx */
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i && i % 4 == 0)
            out[k++] = '-';
        out[k++] = alphabet[raw[i] & 31];
    }
    out[k] = '\0';
    sodium_memzero(raw, sizeof raw);
    auth_recovery_code_hash(out, hash_hex);
}
