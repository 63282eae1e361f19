/*
 * crypto — secrets at rest and signing keys, all with libsodium.
 *
 * The master key (32 random bytes, stored as 64 hex characters in the file
 * given by --master-key-file) encrypts every secret the database holds (SSH
 * private keys, webhook secrets) with XSalsa20-Poly1305 (crypto_secretbox).
 * A sealed value is "sb1:" + base64(nonce || ciphertext): self-describing,
 * so the scheme can change later without guessing.
 */
#ifndef SB_CRYPTO_H
#define SB_CRYPTO_H

#include "../util/util.h"

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_BYTES 32

struct crypto_master_key {
    uint8_t key[CRYPTO_KEY_BYTES];
};

/* Loads the key from path. With create, a missing file is made with a fresh
 * random key and mode 0600. Refuses a file readable by group or others. */
int crypto_master_key_load(const char *path, bool create, struct crypto_master_key *out, struct sb_err *err);
/* Wipes the key from memory. */
void crypto_master_key_wipe(struct crypto_master_key *k);

/* Encrypts len bytes; returns a malloc'd NUL-terminated string (free()). */
char *crypto_seal(const struct crypto_master_key *k, const void *plain, size_t len);
/* Decrypts a sealed string into out (cleared first). SB_EINVAL when the value
 * was not sealed with this key or was altered. Wipe out when done. */
int crypto_open(const struct crypto_master_key *k, const char *sealed, struct buf *out, struct sb_err *err);

/* Wipes and releases a buffer that held a secret. */
void crypto_buf_wipe(struct buf *b);

#endif
