#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_PREFIX "sb1:"

static int create_key_file(const char *path, struct sb_err *err)
{
    uint8_t key[CRYPTO_KEY_BYTES];
    char hex[2 * CRYPTO_KEY_BYTES + 2];
    randombytes_buf(key, sizeof key);
    hex_encode(key, sizeof key, hex);
    sodium_memzero(key, sizeof key);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sb_error(err, SB_EINVAL, "cannot create key file '%s': %s", path, strerror(errno));
    ssize_t w = write(fd, hex, n);
    int sync_rc = fsync(fd);
    close(fd);
    sodium_memzero(hex, sizeof hex);
    if (w != (ssize_t)n || sync_rc != 0)
        return sb_error(err, SB_EINTERNAL, "cannot write key file '%s'", path);
    log_info("key file created", "path=%s", path);
    return 0;
}

int crypto_master_key_load(const char *path, bool create, struct crypto_master_key *out, struct sb_err *err)
{
    if (!path || !*path)
        return sb_error(err, SB_EINVAL, "no master key: set --master-key-file or SERVERBOX_MASTER_KEY_FILE");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT || !create)
            return sb_error(err, SB_EINVAL, "cannot read key file '%s': %s", path, strerror(errno));
        int rc = create_key_file(path, err);
        if (rc)
            return rc;
        if (stat(path, &st) != 0)
            return sb_error(err, SB_EINTERNAL, "key file '%s' vanished", path);
    }
    if (st.st_mode & 077)
        return sb_error(err, SB_EINVAL, "key file '%s' is readable by others; chmod 600 it", path);
    struct buf b;
    buf_init(&b, 256);
    int rc = file_read_all(path, 256, &b, err);
    if (rc == 0) {
        size_t n = b.len;
        while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' '))
            b.data[--n] = '\0';
        if (hex_decode(b.data, out->key, CRYPTO_KEY_BYTES))
            rc = sb_error(err, SB_EINVAL, "key file '%s' must hold 64 hex characters", path);
    }
    crypto_buf_wipe(&b);
    return rc;
}

void crypto_master_key_wipe(struct crypto_master_key *k)
{
    sodium_memzero(k->key, sizeof k->key);
}

char *crypto_seal(const struct crypto_master_key *k, const void *plain, size_t len)
{
    size_t raw_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
    uint8_t *raw = malloc(raw_len);
    if (!raw)
        return NULL;
    randombytes_buf(raw, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(raw + crypto_secretbox_NONCEBYTES, plain, len, raw, k->key);
    size_t b64_len = sodium_base64_ENCODED_LEN(raw_len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(strlen(SEAL_PREFIX) + b64_len);
    if (out) {
        memcpy(out, SEAL_PREFIX, strlen(SEAL_PREFIX));
        sodium_bin2base64(out + strlen(SEAL_PREFIX), b64_len, raw, raw_len, sodium_base64_VARIANT_ORIGINAL);
    }
    free(raw);
    return out;
}

int crypto_open(const struct crypto_master_key *k, const char *sealed, struct buf *out, struct sb_err *err)
{
    buf_reset(out);
    if (strncmp(sealed, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0)
        return sb_error(err, SB_EINVAL, "not a sealed value");
    const char *b64 = sealed + strlen(SEAL_PREFIX);
    size_t cap = strlen(b64), raw_len = 0;
    uint8_t *raw = malloc(cap + 1);
    if (!raw)
        return sb_error(err, SB_ENOMEM, "out of memory");
    int rc = 0;
    if (sodium_base642bin(raw, cap, b64, strlen(b64), NULL, &raw_len, NULL, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        raw_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        rc = sb_error(err, SB_EINVAL, "sealed value is damaged");
        goto out;
    }
    size_t plain_len = raw_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    uint8_t *plain = sodium_malloc(plain_len + 1);
    if (!plain) {
        rc = sb_error(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    if (crypto_secretbox_open_easy(plain, raw + crypto_secretbox_NONCEBYTES,
                                   raw_len - crypto_secretbox_NONCEBYTES, raw, k->key) != 0)
        rc = sb_error(err, SB_EINVAL, "sealed value does not open with this master key");
    else if (buf_append(out, plain, plain_len))
        rc = sb_error(err, SB_ENOMEM, "out of memory");
    sodium_free(plain);
out:
    free(raw);
    return rc;
}

void crypto_buf_wipe(struct buf *b)
{
    if (b->cap)
        sodium_memzero(b->data, b->cap);
    buf_release(b);
}
