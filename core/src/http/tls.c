/*
 * The server's certificate: PEM files loaded into GnuTLS "pcert" and private
 * key objects, handed to each handshake by a certificate callback so that a
 * SIGHUP can swap them while connections continue.
 *
 * Invariant: a generation (one loaded pair) is never freed while the daemon
 * runs. GnuTLS keeps the pointers the callback returned for the life of the
 * session (a TLS 1.2 renegotiation or gnutls_certificate_get_ours may read
 * them later), and there is no notification when the last session using a
 * generation ends. Reloads are rare, so old generations are kept on a list
 * and freed with the holder, after MHD stopped.
 */
#include "internal.h"

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 8

struct tls_gen {
    gnutls_pcert_st certs[MAX_CHAIN];
    unsigned n_certs;
    gnutls_privkey_t key;
    char fingerprint[65];
    char spki_sha256[65];
    int64_t not_after;
    struct tls_gen *older;
};

struct http_tls {
    char *cert_file, *key_file;
    pthread_mutex_t lock;
    struct tls_gen *current; /* newest; ->older the ones before */
};

/* The one holder of the process (the callback has no user pointer). */
static pthread_mutex_t holder_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_tls *holder;

static void gen_free(struct tls_gen *g)
{
    for (unsigned i = 0; i < g->n_certs; i++)
        gnutls_pcert_deinit(&g->certs[i]);
    if (g->key)
        gnutls_privkey_deinit(g->key);
    free(g);
}

static struct tls_gen *gen_load(const char *cert_file, const char *key_file, struct sb_err *err)
{
    gnutls_datum_t cert = {0}, key = {0};
    gnutls_x509_crt_t *crts = NULL;
    unsigned n_crts = 0;
    gnutls_certificate_credentials_t check = NULL;
    struct tls_gen *g = calloc(1, sizeof *g);
    int r;
    if (!g) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    if ((r = gnutls_load_file(cert_file, &cert)) < 0) {
        sb_error(err, SB_EINVAL, "cannot read --tls-cert '%s': %s", cert_file, gnutls_strerror(r));
        goto fail;
    }
    if ((r = gnutls_load_file(key_file, &key)) < 0) {
        sb_error(err, SB_EINVAL, "cannot read --tls-key '%s': %s", key_file, gnutls_strerror(r));
        goto fail;
    }
    /* The pair must match: GnuTLS checks it when credentials are set. */
    if ((r = gnutls_certificate_allocate_credentials(&check)) < 0 ||
        (r = gnutls_certificate_set_x509_key_mem2(check, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        sb_error(err, SB_EINVAL, "--tls-cert '%s' and --tls-key '%s' are not a usable pair: %s", cert_file,
                 key_file, gnutls_strerror(r));
        goto fail;
    }
    if ((r = gnutls_x509_crt_list_import2(&crts, &n_crts, &cert, GNUTLS_X509_FMT_PEM, 0)) < 0 ||
        n_crts == 0) {
        sb_error(err, SB_EINVAL, "--tls-cert '%s' holds no PEM certificate: %s", cert_file,
                 r < 0 ? gnutls_strerror(r) : "empty");
        goto fail;
    }
    if (n_crts > MAX_CHAIN) {
        sb_error(err, SB_EINVAL, "--tls-cert '%s' has %u certificates; at most %d", cert_file, n_crts,
                 MAX_CHAIN);
        goto fail;
    }
    unsigned n = n_crts;
    if ((r = gnutls_pcert_import_x509_list(g->certs, crts, &n, 0)) < 0) {
        sb_error(err, SB_EINVAL, "--tls-cert '%s': %s", cert_file, gnutls_strerror(r));
        goto fail;
    }
    g->n_certs = n;
    if ((r = gnutls_privkey_init(&g->key)) < 0 ||
        (r = gnutls_privkey_import_x509_raw(g->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        sb_error(err, SB_EINVAL, "--tls-key '%s': %s", key_file, gnutls_strerror(r));
        goto fail;
    }
    unsigned char fp[32];
    size_t fpl = sizeof fp;
    if (gnutls_x509_crt_get_fingerprint(crts[0], GNUTLS_DIG_SHA256, fp, &fpl) == 0 && fpl == 32)
        hex_encode(fp, 32, g->fingerprint);
    g->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crts[0]);
    /* What a collector pins (--core-pin): the hash of the public key alone. */
    gnutls_datum_t spki = {0};
    if (gnutls_pubkey_export2(g->certs[0].pubkey, GNUTLS_X509_FMT_DER, &spki) == 0 &&
        gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, fp) == 0)
        hex_encode(fp, 32, g->spki_sha256);
    gnutls_free(spki.data);
    goto out;
fail:
    gen_free(g);
    g = NULL;
out:
    for (unsigned i = 0; i < n_crts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (check)
        gnutls_certificate_free_credentials(check);
    if (key.data) {
        gnutls_memset(key.data, 0, key.size);
        gnutls_free(key.data);
    }
    gnutls_free(cert.data);
    return g;
}

struct http_tls *http_tls_open(const char *cert_file, const char *key_file, struct sb_err *err)
{
    struct tls_gen *g = gen_load(cert_file, key_file, err);
    if (!g)
        return NULL;
    struct http_tls *t = calloc(1, sizeof *t);
    if (t) {
        t->cert_file = strdup(cert_file);
        t->key_file = strdup(key_file);
    }
    if (!t || !t->cert_file || !t->key_file) {
        if (t) {
            free(t->cert_file);
            free(t->key_file);
        }
        free(t);
        gen_free(g);
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->current = g;
    pthread_mutex_lock(&holder_lock);
    bool taken = holder != NULL;
    if (!taken)
        holder = t;
    pthread_mutex_unlock(&holder_lock);
    if (taken) {
        http_tls_free(t);
        sb_error(err, SB_EINTERNAL, "only one TLS server per process");
        return NULL;
    }
    return t;
}

int http_tls_reload(struct http_tls *t, struct sb_err *err)
{
    struct tls_gen *g = gen_load(t->cert_file, t->key_file, err);
    if (!g)
        return -1;
    pthread_mutex_lock(&t->lock);
    g->older = t->current;
    t->current = g;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void http_tls_describe(struct http_tls *t, char *fingerprint, size_t flen, char *spki, size_t slen,
                       int64_t *not_after)
{
    pthread_mutex_lock(&t->lock);
    sb_strlcpy(fingerprint, t->current->fingerprint, flen);
    sb_strlcpy(spki, t->current->spki_sha256, slen);
    *not_after = t->current->not_after;
    pthread_mutex_unlock(&t->lock);
}

int http_tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                           gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
    (void)session, (void)req_ca_dn, (void)nreqs, (void)pk_algos, (void)pk_algos_length;
    pthread_mutex_lock(&holder_lock);
    struct http_tls *t = holder;
    struct tls_gen *g = NULL;
    if (t) {
        pthread_mutex_lock(&t->lock);
        g = t->current;
        pthread_mutex_unlock(&t->lock);
    }
    pthread_mutex_unlock(&holder_lock);
    if (!g)
        return -1;
    *pcert = g->certs;
    *pcert_length = g->n_certs;
    *privkey = g->key;
    return 0;
}

void http_tls_free(struct http_tls *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&holder_lock);
    if (holder == t)
        holder = NULL;
    pthread_mutex_unlock(&holder_lock);
    for (struct tls_gen *g = t->current, *older; g; g = older) {
        older = g->older;
        gen_free(g);
    }
    pthread_mutex_destroy(&t->lock);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}
