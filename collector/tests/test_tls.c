/* The DER helpers of tls.c (the SPKI for pins, the iPAddress SAN check) and
 * PEM trust anchors, on a certificate made by openssl (fixtures/tls). Every
 * truncation of the certificate is fed too: no read past the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "collector.h"

#include <bearssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "collector/tests/fixtures/tls/"

static size_t slurp(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

static void test_spki_and_ip(void **state)
{
    (void)state;
    static uint8_t der[8192];
    size_t n = slurp(FIX "cert.der", der, sizeof der);
    assert_true(n > 100);
    const uint8_t *spki;
    size_t sl;
    assert_int_equal(tls_cert_spki(der, n, &spki, &sl), 0);
    uint8_t h[32];
    br_sha256_context sc;
    br_sha256_init(&sc);
    br_sha256_update(&sc, spki, sl);
    br_sha256_out(&sc, h);
    char hex[65], want[80] = "";
    hex_encode(h, 32, hex);
    slurp(FIX "spki.sha256", (uint8_t *)want, sizeof want - 1);
    want[64] = '\0';
    assert_string_equal(hex, want);

    const uint8_t lo4[4] = {127, 0, 0, 1}, other4[4] = {127, 0, 0, 2};
    uint8_t lo6[16] = {0};
    lo6[15] = 1;
    assert_true(tls_cert_has_ip(der, n, lo4, 4));
    assert_true(tls_cert_has_ip(der, n, lo6, 16));
    assert_false(tls_cert_has_ip(der, n, other4, 4));
    /* Every prefix: a clean refusal, never a read past the end (ASan). */
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, der, k);
        assert_int_equal(tls_cert_spki(cut, k, &spki, &sl), -1);
        assert_false(tls_cert_has_ip(cut, k, lo4, 4));
        free(cut);
    }
}

static void test_pem_anchors(void **state)
{
    (void)state;
    static char pem[16384];
    size_t n = slurp(FIX "cert.pem", (uint8_t *)pem, sizeof pem);
    void *tas = NULL;
    size_t count = 0;
    assert_int_equal(tls_pem_anchors(pem, n, &tas, &count), 0);
    assert_int_equal(count, 1);
    tls_anchors_free(tas, count);
    /* Twice in one text, with junk around it: two anchors. */
    static char two[40000];
    int len = snprintf(two, sizeof two, "junk\n%.*s\nmore junk\n%.*s", (int)n, pem, (int)n, pem);
    assert_int_equal(tls_pem_anchors(two, (size_t)len, &tas, &count), 0);
    assert_int_equal(count, 2);
    tls_anchors_free(tas, count);
    assert_int_equal(tls_pem_anchors("no pem here", 11, &tas, &count), -1);
    assert_int_equal(tls_pem_anchors(pem, n / 2, &tas, &count), -1);
}

static void test_configure(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(tls_configure(NULL,
                                   "sha256/e550833b2f241dc632bd684fd067c4d8c4cee015247c3cdac95b70b54126afea",
                                   err, sizeof err),
                     0);
    assert_int_equal(tls_configure(NULL, "e550833b", err, sizeof err), -1);
    assert_non_null(strstr(err, "--core-pin"));
    assert_int_equal(tls_configure(NULL, "zz50833b2f241dc632bd684fd067c4d8c4cee015247c3cdac95b70b54126afea",
                                   err, sizeof err),
                     -1);
    assert_int_equal(tls_configure("", NULL, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_spki_and_ip), cmocka_unit_test(test_pem_anchors),
                                       cmocka_unit_test(test_configure)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
