/*
 * Private to http/: the TLS certificate holder (tls.c) the server hands to
 * libmicrohttpd.
 */
#ifndef SB_HTTP_INTERNAL_H
#define SB_HTTP_INTERNAL_H

#include "http.h"

#include <gnutls/abstract.h>

struct http_tls;

/* Loads the PEM certificate chain and private key (they must match).
 * Only one holder may exist at a time in a process: GnuTLS's certificate
 * callback has no user pointer. Returns NULL and fills err. */
struct http_tls *http_tls_open(const char *cert_file, const char *key_file, struct sb_err *err);
/* Loads the files again; on success new handshakes use the new pair, on
 * failure the current pair stays and err says why. */
int http_tls_reload(struct http_tls *t, struct sb_err *err);
/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK: the newest pair. */
gnutls_certificate_retrieve_function2 http_tls_cert_callback;
/* SHA-256 of the leaf certificate and of its public key (hex), and its
 * expiry, for logs. */
void http_tls_describe(struct http_tls *t, char *fingerprint, size_t flen, char *spki, size_t slen,
                       int64_t *not_after);
/* Frees every pair ever loaded (handshakes may still point at old ones
 * until the daemon stops, so none is freed before). */
void http_tls_free(struct http_tls *t);

#endif
