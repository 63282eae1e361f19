/*
 * Keys: ed25519 keypairs made with libsodium and written in the OpenSSH
 * private-key format ourselves (no ssh-keygen child process with user data),
 * and a peek at a private key's type so RSA failures can say why.
 */
#include "internal.h"

#include "../crypto/crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 4);
}

static void put_str(struct buf *b, const void *s, size_t len)
{
    put_u32(b, (uint32_t)len);
    buf_append(b, s, len);
}

static int put_base64(struct buf *out, const uint8_t *bin, size_t len, size_t wrap)
{
    size_t blen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(blen);
    if (!b64)
        return SB_ENOMEM;
    sodium_bin2base64(b64, blen, bin, len, sodium_base64_VARIANT_ORIGINAL);
    size_t n = strlen(b64);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += wrap ? wrap : n) {
        size_t chunk = wrap && n - i > wrap ? wrap : n - i;
        rc = buf_append(out, b64 + i, chunk);
        if (wrap && rc == 0)
            rc = buf_putc(out, '\n');
    }
    free(b64);
    return rc;
}

int ssh_key_generate_ed25519(const char *comment, struct buf *priv, struct buf *pub, struct sb_err *err)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk); /* sk = seed || pk, the layout OpenSSH stores */
    struct buf blob, secret, file;
    buf_init(&blob, 0);
    buf_init(&secret, 0);
    buf_init(&file, 0);
    put_str(&blob, "ssh-ed25519", 11);
    put_str(&blob, pk, sizeof pk);

    uint32_t check = randombytes_random();
    put_u32(&secret, check);
    put_u32(&secret, check);
    put_str(&secret, "ssh-ed25519", 11);
    put_str(&secret, pk, sizeof pk);
    put_str(&secret, sk, sizeof sk);
    put_str(&secret, comment, strlen(comment));
    for (uint8_t pad = 1; secret.len % 8; pad++)
        buf_putc(&secret, (char)pad);

    buf_append(&file, "openssh-key-v1", 15); /* with its NUL */
    put_str(&file, "none", 4);
    put_str(&file, "none", 4);
    put_str(&file, "", 0);
    put_u32(&file, 1);
    put_str(&file, blob.data, blob.len);
    put_str(&file, secret.data, secret.len);

    buf_reset(priv);
    buf_reset(pub);
    int rc = buf_puts(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    if (!rc)
        rc = put_base64(priv, (const uint8_t *)file.data, file.len, 70);
    if (!rc)
        rc = buf_puts(priv, "-----END OPENSSH PRIVATE KEY-----\n");
    if (!rc)
        rc = buf_puts(pub, "ssh-ed25519 ");
    if (!rc)
        rc = put_base64(pub, (const uint8_t *)blob.data, blob.len, 0);
    if (!rc)
        rc = buf_printf(pub, " %s", comment);
    sodium_memzero(sk, sizeof sk);
    crypto_buf_wipe(&secret);
    crypto_buf_wipe(&file);
    buf_release(&blob);
    if (rc)
        return sb_error(err, SB_ENOMEM, "out of memory making a key");
    return 0;
}

static bool get_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    if (end - *p < 4)
        return false;
    *v = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 | (*p)[3];
    *p += 4;
    return true;
}

static bool get_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *len)
{
    if (!get_u32(p, end, len) || (size_t)(end - *p) < *len)
        return false;
    *s = *p;
    *p += *len;
    return true;
}

void ssh_key_type(const char *key, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!key)
        return;
    static const struct {
        const char *marker, *type;
    } pem[] = {{"-----BEGIN RSA PRIVATE KEY-----", "ssh-rsa"},
               {"-----BEGIN EC PRIVATE KEY-----", "ecdsa"},
               {"-----BEGIN DSA PRIVATE KEY-----", "ssh-dss"}};
    for (size_t i = 0; i < sizeof pem / sizeof pem[0]; i++) {
        if (memmem(key, len, pem[i].marker, strlen(pem[i].marker))) {
            sb_strlcpy(out, pem[i].type, outlen);
            return;
        }
    }
    static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----",
                      end_m[] = "-----END OPENSSH PRIVATE KEY-----";
    const char *b = memmem(key, len, begin, sizeof begin - 1);
    if (!b)
        return;
    b += sizeof begin - 1;
    const char *e = memmem(b, len - (size_t)(b - key), end_m, sizeof end_m - 1);
    if (!e)
        return;
    /* The public part of the OpenSSH format is never encrypted. */
    size_t cap = (size_t)(e - b);
    uint8_t *bin = malloc(cap + 1);
    size_t binlen = 0;
    if (!bin)
        return;
    if (sodium_base642bin(bin, cap, b, (size_t)(e - b), " \r\n\t", &binlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        binlen > 15 && memcmp(bin, "openssh-key-v1", 15) == 0) {
        const uint8_t *p = bin + 15, *end = bin + binlen, *s, *blob;
        uint32_t sl, n, bl;
        if (get_str(&p, end, &s, &sl) && get_str(&p, end, &s, &sl) && get_str(&p, end, &s, &sl) &&
            get_u32(&p, end, &n) && n >= 1 && get_str(&p, end, &blob, &bl)) {
            const uint8_t *q = blob;
            if (get_str(&q, blob + bl, &s, &sl) && sl < outlen) {
                memcpy(out, s, sl);
                out[sl] = '\0';
                for (size_t i = 0; i < sl; i++)
                    if (out[i] < 0x21 || out[i] > 0x7e)
                        out[0] = '\0';
            }
        }
    }
    sodium_memzero(bin, cap + 1);
    free(bin);
}
