/*
 * TLS to the core, with BearSSL (linked statically: the handshake code it
 * pulls in is ~200 KB, its state lives in one static context of ~45 KB that
 * is only touched when a core URL is https://).
 *
 * How the core's certificate is trusted (tls_configure):
 *   --core-pin  the SHA-256 of the core's SubjectPublicKeyInfo (what the core
 *               logs as spki_sha256 at start): the leaf's key must be that
 *               key; names, dates and issuers are not looked at (as an SSH
 *               host key). Survives renewals that keep the key.
 *   --core-ca   PEM trust anchors (the core's own certificate, or its CA):
 *               the chain is verified by BearSSL's X.509 engine, dates
 *               included, and the URL's host must be in the certificate (a
 *               DNS name, or for an IP literal an iPAddress SAN, which BearSSL
 *               does not check itself: done here).
 *   neither     the system bundle, as --core-ca.
 *   both        both must hold.
 * TLS 1.2 only (BearSSL 0.6 has no 1.3), the library's full suite list:
 * forward-secret ECDHE suites first.
 *
 * The wrapper X.509 engine below forwards every call to the minimal engine
 * (when anchors are used) and keeps a copy of the leaf certificate for the
 * pin and the IP check at end_chain.
 */
#include "collector.h"

#include <arpa/inet.h>
#include <bearssl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LEAF_MAX   16384
#define SYSTEM_CAS "/etc/ssl/certs/ca-certificates.crt"

/* ---- DER walking (pure; fuzzed and unit-tested) ---------------------------- */

/* One TLV in [p, end): single-byte tags, definite lengths up to 4 bytes.
 * Returns the byte after it, or NULL when malformed. */
static const uint8_t *der_next(const uint8_t *p, const uint8_t *end, uint8_t *tag, const uint8_t **val,
                               size_t *vlen)
{
    if (!p || end - p < 2 || (p[0] & 0x1f) == 0x1f)
        return NULL;
    *tag = p[0];
    size_t len = p[1];
    p += 2;
    if (len & 0x80) {
        size_t n = len & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - p) < n)
            return NULL;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = len << 8 | *p++;
    }
    if (len > (size_t)(end - p))
        return NULL;
    *val = p;
    *vlen = len;
    return p + len;
}

/* The TBSCertificate's members from subjectPublicKeyInfo on: *spki is the
 * whole SPKI TLV, *rest what follows it inside the TBS. */
static int cert_walk(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len,
                     const uint8_t **rest, const uint8_t **tbs_end)
{
    uint8_t tag;
    const uint8_t *v, *end = der + len;
    size_t vl;
    if (!der_next(der, end, &tag, &v, &vl) || tag != 0x30)
        return -1;
    const uint8_t *cend = v + vl;
    if (!der_next(v, cend, &tag, &v, &vl) || tag != 0x30)
        return -1;
    const uint8_t *p = v, *tend = v + vl, *x;
    size_t xl;
    if (p < tend && *p == 0xa0 && !(p = der_next(p, tend, &tag, &x, &xl)))
        return -1;
    /* serial, signature algorithm, issuer, validity, subject */
    static const uint8_t want[] = {0x02, 0x30, 0x30, 0x30, 0x30};
    for (size_t i = 0; i < sizeof want; i++)
        if (!(p = der_next(p, tend, &tag, &x, &xl)) || tag != want[i])
            return -1;
    const uint8_t *start = p;
    if (!(p = der_next(p, tend, &tag, &x, &xl)) || tag != 0x30)
        return -1;
    *spki = start;
    *spki_len = (size_t)(p - start);
    *rest = p;
    *tbs_end = tend;
    return 0;
}

int tls_cert_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len)
{
    const uint8_t *rest, *tend;
    return cert_walk(der, len, spki, spki_len, &rest, &tend);
}

bool tls_cert_has_ip(const uint8_t *der, size_t len, const uint8_t *ip, size_t ip_len)
{
    const uint8_t *spki, *p, *tend, *v;
    size_t sl, vl;
    uint8_t tag;
    if (cert_walk(der, len, &spki, &sl, &p, &tend))
        return false;
    /* issuerUniqueID [1], subjectUniqueID [2], extensions [3] */
    while (p && p < tend) {
        p = der_next(p, tend, &tag, &v, &vl);
        if (!p || tag != 0xa3)
            continue;
        const uint8_t *e = v, *eend = v + vl, *ev;
        size_t el;
        if (!der_next(e, eend, &tag, &ev, &el) || tag != 0x30)
            return false;
        for (const uint8_t *q = ev, *qend = ev + el; q && q < qend;) {
            const uint8_t *x, *oid, *os;
            size_t xl, ol, osl;
            if (!(q = der_next(q, qend, &tag, &x, &xl)) || tag != 0x30)
                return false;
            const uint8_t *r = x, *rend = x + xl;
            if (!(r = der_next(r, rend, &tag, &oid, &ol)) || tag != 0x06)
                return false;
            static const uint8_t san_oid[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
            if (ol != sizeof san_oid || memcmp(oid, san_oid, ol) != 0)
                continue;
            if (r < rend && *r == 0x01 && !(r = der_next(r, rend, &tag, &x, &xl)))
                return false;
            if (!(r = der_next(r, rend, &tag, &os, &osl)) || tag != 0x04)
                return false;
            const uint8_t *names, *n;
            size_t nl;
            if (!der_next(os, os + osl, &tag, &names, &nl) || tag != 0x30)
                return false;
            for (const uint8_t *g = names, *gend = names + nl; g && g < gend;) {
                if (!(g = der_next(g, gend, &tag, &n, &nl)))
                    return false;
                if (tag == 0x87 && nl == ip_len && memcmp(n, ip, ip_len) == 0)
                    return true;
            }
        }
        return false;
    }
    return false;
}

/* ---- trust anchors from PEM ----------------------------------------------- */

static void buf_sink(void *ctx, const void *data, size_t len)
{
    buf_append(ctx, data, len);
}

static int add_anchor(br_x509_trust_anchor **tas, size_t *n, const uint8_t *der, size_t len)
{
    br_x509_decoder_context dc;
    struct buf dn;
    buf_init(&dn, 65536);
    br_x509_decoder_init(&dc, buf_sink, &dn);
    br_x509_decoder_push(&dc, der, len);
    const br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
    br_x509_trust_anchor ta = {0};
    if (!pk || !dn.len || br_x509_decoder_last_error(&dc) != 0)
        goto fail;
    ta.dn.data = malloc(dn.len);
    if (!ta.dn.data)
        goto fail;
    memcpy(ta.dn.data, dn.data, dn.len);
    ta.dn.len = dn.len;
    ta.flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
    ta.pkey.key_type = pk->key_type;
    if (pk->key_type == BR_KEYTYPE_RSA) {
        ta.pkey.key.rsa.n = malloc(pk->key.rsa.nlen);
        ta.pkey.key.rsa.e = malloc(pk->key.rsa.elen);
        if (!ta.pkey.key.rsa.n || !ta.pkey.key.rsa.e)
            goto fail_key;
        memcpy(ta.pkey.key.rsa.n, pk->key.rsa.n, pk->key.rsa.nlen);
        memcpy(ta.pkey.key.rsa.e, pk->key.rsa.e, pk->key.rsa.elen);
        ta.pkey.key.rsa.nlen = pk->key.rsa.nlen;
        ta.pkey.key.rsa.elen = pk->key.rsa.elen;
    } else if (pk->key_type == BR_KEYTYPE_EC) {
        ta.pkey.key.ec.curve = pk->key.ec.curve;
        ta.pkey.key.ec.q = malloc(pk->key.ec.qlen);
        if (!ta.pkey.key.ec.q)
            goto fail_key;
        memcpy(ta.pkey.key.ec.q, pk->key.ec.q, pk->key.ec.qlen);
        ta.pkey.key.ec.qlen = pk->key.ec.qlen;
    } else {
        goto fail_key;
    }
    br_x509_trust_anchor *grown = realloc(*tas, (*n + 1) * sizeof **tas);
    if (!grown)
        goto fail_key;
    *tas = grown;
    (*tas)[(*n)++] = ta;
    buf_release(&dn);
    return 0;
fail_key:
    if (ta.pkey.key_type == BR_KEYTYPE_RSA) {
        free(ta.pkey.key.rsa.n);
        free(ta.pkey.key.rsa.e);
    } else if (ta.pkey.key_type == BR_KEYTYPE_EC) {
        free(ta.pkey.key.ec.q);
    }
    free(ta.dn.data);
fail:
    buf_release(&dn);
    return -1;
}

static void anchors_free(br_x509_trust_anchor *tas, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tas[i].dn.data);
        if (tas[i].pkey.key_type == BR_KEYTYPE_RSA) {
            free(tas[i].pkey.key.rsa.n);
            free(tas[i].pkey.key.rsa.e);
        } else {
            free(tas[i].pkey.key.ec.q);
        }
    }
    free(tas);
}

/* Every CERTIFICATE in a PEM text becomes an anchor (others are skipped). */
int tls_pem_anchors(const char *pem, size_t len, void **anchors, size_t *n)
{
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    struct buf der;
    buf_init(&der, 1 << 20);
    br_x509_trust_anchor *tas = NULL;
    size_t count = 0;
    bool in_cert = false, bad = false;
    /* The decoder wants a line end after the last line. */
    for (int pass = 0; pass < 2 && !bad; pass++) {
        const char *p = pass ? "\n" : pem;
        size_t left = pass ? 1 : len;
        while (left && !bad) {
            size_t used = br_pem_decoder_push(&pc, p, left);
            p += used;
            left -= used;
            switch (br_pem_decoder_event(&pc)) {
            case BR_PEM_BEGIN_OBJ:
                in_cert = strcmp(br_pem_decoder_name(&pc), "CERTIFICATE") == 0 ||
                          strcmp(br_pem_decoder_name(&pc), "X509 CERTIFICATE") == 0;
                buf_reset(&der);
                br_pem_decoder_setdest(&pc, in_cert ? buf_sink : NULL, &der);
                break;
            case BR_PEM_END_OBJ:
                if (in_cert && add_anchor(&tas, &count, (const uint8_t *)der.data, der.len))
                    bad = true;
                in_cert = false;
                break;
            case BR_PEM_ERROR:
                bad = true;
                break;
            default:
                break;
            }
        }
    }
    buf_release(&der);
    if (bad || count == 0) {
        anchors_free(tas, count);
        return -1;
    }
    *anchors = tas;
    *n = count;
    return 0;
}

void tls_anchors_free(void *anchors, size_t n)
{
    anchors_free(anchors, n);
}

/* ---- the wrapper X.509 engine ------------------------------------------- */

struct verifier {
    const br_x509_class *vtable;
    br_x509_minimal_context minimal;
    bool use_anchors;
    bool have_pin;
    uint8_t pin[32];
    uint8_t ip[16];
    size_t ip_len; /* the URL's host is an IP literal: check it in the SAN */
    uint8_t leaf[LEAF_MAX];
    size_t leaf_len;
    bool leaf_over;
    unsigned cert_index;
    br_x509_decoder_context dec; /* the leaf's key, without anchors */
    enum { WHY_NONE, WHY_PIN, WHY_IP, WHY_LEAF } why;
};

static struct verifier *verifier_of(const br_x509_class **ctx)
{
    return (struct verifier *)(void *)ctx;
}

static void v_start_chain(const br_x509_class **ctx, const char *server_name)
{
    struct verifier *v = verifier_of(ctx);
    v->cert_index = 0;
    v->leaf_len = 0;
    v->leaf_over = false;
    v->why = WHY_NONE;
    /* An IP literal is not a DNS name: BearSSL would compare it with the
     * DNS names; the iPAddress check is ours. */
    if (v->use_anchors)
        v->minimal.vtable->start_chain(&v->minimal.vtable, v->ip_len ? NULL : server_name);
}

static void v_start_cert(const br_x509_class **ctx, uint32_t length)
{
    struct verifier *v = verifier_of(ctx);
    if (v->cert_index == 0 && length > LEAF_MAX)
        v->leaf_over = true;
    if (v->use_anchors)
        v->minimal.vtable->start_cert(&v->minimal.vtable, length);
}

static void v_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
    struct verifier *v = verifier_of(ctx);
    if (v->cert_index == 0 && !v->leaf_over) {
        if (len > LEAF_MAX - v->leaf_len)
            v->leaf_over = true;
        else {
            memcpy(v->leaf + v->leaf_len, buf, len);
            v->leaf_len += len;
        }
    }
    if (v->use_anchors)
        v->minimal.vtable->append(&v->minimal.vtable, buf, len);
}

static void v_end_cert(const br_x509_class **ctx)
{
    struct verifier *v = verifier_of(ctx);
    v->cert_index++;
    if (v->use_anchors)
        v->minimal.vtable->end_cert(&v->minimal.vtable);
}

static unsigned v_end_chain(const br_x509_class **ctx)
{
    struct verifier *v = verifier_of(ctx);
    if (v->use_anchors) {
        unsigned r = v->minimal.vtable->end_chain(&v->minimal.vtable);
        if (r)
            return r;
    }
    if (v->leaf_over || v->cert_index == 0) {
        v->why = WHY_LEAF;
        return BR_ERR_X509_LIMIT_EXCEEDED;
    }
    if (v->have_pin) {
        const uint8_t *spki;
        size_t sl;
        uint8_t h[32];
        if (tls_cert_spki(v->leaf, v->leaf_len, &spki, &sl)) {
            v->why = WHY_LEAF;
            return BR_ERR_X509_UNSUPPORTED;
        }
        br_sha256_context sc;
        br_sha256_init(&sc);
        br_sha256_update(&sc, spki, sl);
        br_sha256_out(&sc, h);
        if (memcmp(h, v->pin, 32) != 0) {
            v->why = WHY_PIN;
            return BR_ERR_X509_NOT_TRUSTED;
        }
    }
    if (v->use_anchors && v->ip_len && !tls_cert_has_ip(v->leaf, v->leaf_len, v->ip, v->ip_len)) {
        v->why = WHY_IP;
        return BR_ERR_X509_BAD_SERVER_NAME;
    }
    if (!v->use_anchors) {
        br_x509_decoder_init(&v->dec, NULL, NULL);
        br_x509_decoder_push(&v->dec, v->leaf, v->leaf_len);
        if (!br_x509_decoder_get_pkey(&v->dec)) {
            v->why = WHY_LEAF;
            return BR_ERR_X509_UNSUPPORTED;
        }
    }
    return 0;
}

static const br_x509_pkey *v_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
    const struct verifier *v = (const struct verifier *)(const void *)ctx;
    if (v->use_anchors)
        return v->minimal.vtable->get_pkey(&v->minimal.vtable, usages);
    if (usages)
        *usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
    return br_x509_decoder_get_pkey((br_x509_decoder_context *)&v->dec);
}

static const br_x509_class verifier_vtable = {
    sizeof(struct verifier), v_start_chain, v_start_cert, v_append, v_end_cert, v_end_chain, v_get_pkey,
};

/* ---- configuration and one exchange ---------------------------------------- */

static struct {
    char ca_file[512];
    bool have_pin;
    uint8_t pin[32];
    bool loaded;
    br_x509_trust_anchor *tas;
    size_t n_tas;
} conf;

static struct {
    br_ssl_client_context cc;
    struct verifier v;
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
    br_sslio_context io;
} tls;

int tls_configure(const char *ca_file, const char *pin, char *err, size_t errlen)
{
    conf.have_pin = false;
    sb_strlcpy(conf.ca_file, ca_file ? ca_file : "", sizeof conf.ca_file);
    if (pin && *pin) {
        if (strncmp(pin, "sha256/", 7) == 0)
            pin += 7;
        if (strlen(pin) != 64 || hex_decode(pin, conf.pin, sizeof conf.pin)) {
            snprintf(err, errlen,
                     "--core-pin must be the 64 hex digits of the SHA-256 of the core's public key");
            return -1;
        }
        conf.have_pin = true;
    }
    return 0;
}

/* Anchors, once: --core-ca, or the system bundle when there is no pin. */
static int load_anchors(char *err, size_t errlen)
{
    if (conf.loaded)
        return 0;
    const char *path = conf.ca_file[0] ? conf.ca_file : conf.have_pin ? NULL : SYSTEM_CAS;
    if (path) {
        FILE *f = fopen(path, "re");
        struct buf text;
        buf_init(&text, 4 << 20);
        char chunk[4096];
        size_t r;
        while (f && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
            if (buf_append(&text, chunk, r))
                break;
        if (f)
            fclose(f);
        int rc = f ? tls_pem_anchors(text.data, text.len, (void **)&conf.tas, &conf.n_tas) : -1;
        buf_release(&text);
        if (rc) {
            snprintf(err, errlen, "no usable PEM certificate in %s%s%s", path, f ? "" : ": ",
                     f ? "" : strerror(errno));
            return -1;
        }
    }
    conf.loaded = true;
    return 0;
}

struct sock_ctx {
    int fd;
    int64_t deadline;
};

static int wait_io(int fd, short ev, int64_t deadline)
{
    int64_t left = deadline - time_mono_ms();
    if (left <= 0)
        return -1;
    struct pollfd p = {.fd = fd, .events = ev};
    int r;
    do
        r = poll(&p, 1, (int)left);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

static int sock_read(void *ctx, unsigned char *buf, size_t len)
{
    struct sock_ctx *s = ctx;
    for (;;) {
        ssize_t r = recv(s->fd, buf, len, 0);
        if (r > 0)
            return (int)r;
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return -1;
        if (wait_io(s->fd, POLLIN, s->deadline))
            return -1;
    }
}

static int sock_write(void *ctx, const unsigned char *buf, size_t len)
{
    struct sock_ctx *s = ctx;
    for (;;) {
        ssize_t w = send(s->fd, buf, len, MSG_NOSIGNAL);
        if (w > 0)
            return (int)w;
        if (w == 0 || (errno != EAGAIN && errno != EINTR))
            return -1;
        if (wait_io(s->fd, POLLOUT, s->deadline))
            return -1;
    }
}

static void describe(int code, const char *host, char *err, size_t errlen)
{
    switch (tls.v.why) {
    case WHY_PIN:
        snprintf(err, errlen, "core certificate refused: its public key is not the one --core-pin names");
        return;
    case WHY_IP:
        snprintf(err, errlen, "core certificate refused: it is not issued for the address %s", host);
        return;
    case WHY_LEAF:
        snprintf(err, errlen, "core certificate refused: unreadable or too large");
        return;
    default:
        break;
    }
    switch (code) {
    case BR_ERR_X509_NOT_TRUSTED:
        snprintf(err, errlen, "core certificate refused: not issued by a trusted certificate (--core-ca)");
        break;
    case BR_ERR_X509_BAD_SERVER_NAME:
        snprintf(err, errlen, "core certificate refused: it is not issued for %s", host);
        break;
    case BR_ERR_X509_EXPIRED:
        snprintf(err, errlen, "core certificate refused: expired or not yet valid");
        break;
    case BR_ERR_IO:
        snprintf(err, errlen, "connection lost during TLS");
        break;
    default:
        if (code >= 32 && code < 64)
            snprintf(err, errlen, "core certificate refused (BearSSL X.509 error %d)", code);
        else
            snprintf(err, errlen, "TLS failed (BearSSL error %d)", code);
    }
}

int tls_exchange(int fd, const char *host, const char *out1, size_t len1, const char *out2, size_t len2,
                 int64_t deadline, struct buf *in, char *err, size_t errlen)
{
    if (load_anchors(err, errlen))
        return -1;
    br_ssl_client_init_full(&tls.cc, &tls.v.minimal, conf.tas, conf.n_tas);
    br_ssl_engine_set_versions(&tls.cc.eng, BR_TLS12, BR_TLS12);
    tls.v.vtable = &verifier_vtable;
    tls.v.use_anchors = conf.n_tas > 0;
    tls.v.have_pin = conf.have_pin;
    memcpy(tls.v.pin, conf.pin, sizeof tls.v.pin);
    tls.v.ip_len = 0;
    if (inet_pton(AF_INET, host, tls.v.ip) == 1)
        tls.v.ip_len = 4;
    else if (inet_pton(AF_INET6, host, tls.v.ip) == 1)
        tls.v.ip_len = 16;
    br_ssl_engine_set_x509(&tls.cc.eng, &tls.v.vtable);
    br_ssl_engine_set_buffer(&tls.cc.eng, tls.iobuf, sizeof tls.iobuf, 1);
    /* No SNI for an IP literal (RFC 6066 3). */
    if (!br_ssl_client_reset(&tls.cc, tls.v.ip_len ? NULL : host, 0)) {
        describe(br_ssl_engine_last_error(&tls.cc.eng), host, err, errlen);
        return -1;
    }
    struct sock_ctx sc = {.fd = fd, .deadline = deadline};
    br_sslio_init(&tls.io, &tls.cc.eng, sock_read, &sc, sock_write, &sc);
    int rc = -1;
    if (br_sslio_write_all(&tls.io, out1, len1) || (len2 && br_sslio_write_all(&tls.io, out2, len2)) ||
        br_sslio_flush(&tls.io))
        goto out;
    for (;;) {
        char chunk[4096];
        int r = br_sslio_read(&tls.io, chunk, sizeof chunk);
        if (r <= 0)
            break;
        if (buf_append(in, chunk, (size_t)r))
            break;
    }
    rc = 0;
out:;
    int code = br_ssl_engine_last_error(&tls.cc.eng);
    /* An answer read in full then a close without close_notify is fine:
     * the status line is what matters, and it was authenticated. */
    if (rc == 0 && (code == 0 || in->len > 0))
        return 0;
    describe(code ? code : BR_ERR_IO, host, err, errlen);
    return -1;
}
