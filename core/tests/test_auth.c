/* Unit tests for auth/: the RBAC table against the roles of the brief, the
 * route-table check that keeps the daemon from serving an unknown
 * permission, usernames, passwords, tokens and the checkpoint message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/api.h"
#include "auth/auth.h"

#include <sodium.h>
#include <string.h>

static void test_roles(void **state)
{
    (void)state;
    assert_true(auth_allows("admin", 0, "users:admin"));
    assert_true(auth_allows("admin", 0, "images:delete"));
    assert_true(auth_allows("operator", 0, "containers:operate"));
    assert_false(auth_allows("operator", 0, "users:admin"));
    assert_false(auth_allows("operator", 0, "guest_links:admin"));
    assert_false(auth_allows("operator", 0, "nodes:delete"));
    assert_false(auth_allows("operator", 0, "images:delete"));
    assert_true(auth_allows("viewer", 0, "logs:read"));
    assert_true(auth_allows("viewer", 0, "authenticated"));
    assert_false(auth_allows("viewer", 0, "annotations:create"));
    assert_false(auth_allows("viewer", 0, "tokens:manage"));
    /* guests: only what their scopes grant, plus events:read */
    assert_true(auth_allows("guest", API_SCOPE_METRICS, "metrics:read"));
    assert_true(auth_allows("guest", API_SCOPE_METRICS, "nodes:read"));
    assert_true(auth_allows("guest", API_SCOPE_METRICS, "events:read"));
    assert_false(auth_allows("guest", API_SCOPE_METRICS, "logs:read"));
    assert_false(auth_allows("guest", API_SCOPE_AUDIT, "authenticated"));
    assert_false(auth_allows("guest", 0, "events:read"));
    /* unknown permission or role: never */
    assert_false(auth_allows("admin", 0, "nodes:rule"));
    assert_false(auth_allows("root", 0, "nodes:read"));
    assert_false(auth_allows(NULL, 0, "nodes:read"));
    assert_true(auth_role_within("viewer", "operator"));
    assert_true(auth_role_within("operator", "operator"));
    assert_false(auth_role_within("admin", "operator"));
    assert_false(auth_role_within("guest", "admin"));
    assert_int_equal(auth_scope_bit("view:audit"), API_SCOPE_AUDIT);
    assert_int_equal(auth_scope_bit("view:everything"), 0);
}

static void test_custom_roles(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(auth_role_name_valid("log-reader_2", "name", &err), 0);
    assert_int_not_equal(auth_role_name_valid("admin", "name", &err), 0);
    assert_int_not_equal(auth_role_name_valid("guest", "name", &err), 0);
    assert_int_not_equal(auth_role_name_valid("2fa", "name", &err), 0);
    assert_int_not_equal(auth_role_name_valid("", "name", &err), 0);
    assert_int_not_equal(auth_role_name_valid("abcdefghijklmnopqrstuvwxyzabcdefg", "name", &err), 0);
    assert_true(auth_permission_assignable("logs:read"));
    assert_false(auth_permission_assignable("public"));
    assert_false(auth_permission_assignable("authenticated"));
    assert_false(auth_permission_assignable("logs:write"));

    json_t *names = json_pack("[s, s, s]", "containers:read", "logs:read", "bogus:x");
    struct auth_perms lr, viewer, op, none;
    auth_perms_custom(names, &lr);
    auth_perms_builtin("viewer", 0, &viewer);
    auth_perms_builtin("operator", 0, &op);
    auth_perms_custom(NULL, &none);
    assert_true(auth_perms_has(&lr, "logs:read"));
    assert_true(auth_perms_has(&lr, "authenticated"));
    assert_true(auth_perms_has(&lr, "self:read"));
    assert_false(auth_perms_has(&lr, "images:read"));
    assert_false(auth_perms_has(&none, "authenticated"));
    assert_true(auth_perms_within(&lr, &viewer));
    assert_false(auth_perms_within(&viewer, &lr));
    assert_true(auth_perms_within(&viewer, &op));
    json_t *list = auth_perms_names(&lr);
    assert_int_equal(json_array_size(list), 4);
    json_decref(list);

    struct api_caller c = {.role = "lr"};
    c.perms = lr;
    assert_true(auth_caller_allows(&c, "containers:read"));
    assert_true(auth_caller_allows(&c, "public"));
    assert_false(auth_caller_allows(&c, "containers:operate"));
    assert_false(auth_caller_allows(&c, "nope:x"));
    auth_perms_and(&c.perms, &none);
    assert_false(auth_caller_allows(&c, "containers:read"));
    json_decref(names);

    json_t *cat = auth_permission_catalog();
    assert_true(json_array_size(cat) > 30);
    json_decref(cat);
}

static void test_totp(void **state)
{
    (void)state;
    /* RFC 6238 appendix B, SHA-1 (the last 6 of the 8 digits). */
    const uint8_t *key = (const uint8_t *)"12345678901234567890";
    int64_t ctr = 0;
    assert_int_equal(auth_totp_check(key, 20, "287082", 59, &ctr), 0);
    assert_int_equal(ctr, 1);
    assert_int_equal(auth_totp_check(key, 20, "081804", 1111111109, &ctr), 0);
    assert_int_equal(ctr, 37037036);
    /* one step of drift either way, not two */
    assert_int_equal(auth_totp_check(key, 20, "081804", 1111111109 + 30, &ctr), 0);
    assert_int_equal(ctr, 37037036);
    assert_int_equal(auth_totp_check(key, 20, "081804", 1111111109 + 70, &ctr), SB_EAUTH);
    /* exactly six digits */
    assert_int_equal(auth_totp_check(key, 20, "07081804", 1111111109, &ctr), SB_EINVAL);
    assert_int_equal(auth_totp_check(key, 20, "81804", 1111111109, &ctr), SB_EINVAL);
    assert_int_equal(auth_totp_check(key, 20, "08180a", 1111111109, &ctr), SB_EINVAL);
    assert_int_equal(auth_totp_check(key, 20, "081805", 1111111109, &ctr), SB_EAUTH);

    char b32[64];
    struct sb_err err = {0};
    assert_int_equal(auth_totp_base32(key, 20, b32, sizeof b32, &err), 0);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    struct buf uri;
    buf_init(&uri, 256);
    auth_totp_uri("Serverbox", "ann.b", b32, &uri);
    assert_string_equal(uri.data, "otpauth://totp/Serverbox%3Aann.b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                                  "&issuer=Serverbox&algorithm=SHA1&digits=6&period=30");
    buf_release(&uri);

    char code[AUTH_RECOVERY_CODE_LEN + 1], h1[65], h2[65];
    auth_recovery_code_new(code, h1);
    assert_int_equal(strlen(code), AUTH_RECOVERY_CODE_LEN);
    for (char *c = code; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    auth_recovery_code_hash(code, h2);
    assert_string_equal(h1, h2);
}

static void noop(struct http_request *req)
{
    (void)req;
}

static void test_route_check(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(auth_check_routes(api_routes, api_n_routes, &err), 0);
    const struct http_route unknown[] = {{"GET", "/x", noop, 0, "nodes:rule", "x"}};
    assert_int_not_equal(auth_check_routes(unknown, 1, &err), 0);
    assert_non_null(strstr(err.msg, "nodes:rule"));
    const struct http_route inline_private[] = {{"GET", "/x", noop, HTTP_ROUTE_INLINE, "nodes:read", "x"}};
    assert_int_not_equal(auth_check_routes(inline_private, 1, &err), 0);
}

static void test_names_and_passwords(void **state)
{
    (void)state;
    struct sb_err err = {0};
    assert_int_equal(auth_username_valid("ana.ops-1", &err), 0);
    const char *bad[] = {"", "Ana", "../x", "a b", "a;b", "-x", "a..b", "x\n", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(auth_username_valid(bad[i], &err), SB_EINVAL);
    assert_int_equal(auth_password_policy("short", &err), SB_EINVAL);
    assert_string_equal(err.field, "password");
    assert_int_equal(auth_password_policy("twelve chars", &err), 0);
    char hash[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash("correct horse battery", hash, &err), 0);
    assert_memory_equal(hash, "$argon2id$", 10);
    assert_int_equal(crypto_pwhash_str_verify(hash, "correct horse battery", 21), 0);
}

static void test_tokens(void **state)
{
    (void)state;
    char a[80], b[80], ha[65], hb[65], again[65];
    auth_token_new("sbx_", a, sizeof a, ha);
    auth_token_new("sbx_", b, sizeof b, hb);
    assert_int_equal(strlen(a), 4 + 43);
    assert_memory_equal(a, "sbx_", 4);
    assert_string_not_equal(a, b);
    auth_token_sha256(a, again);
    assert_string_equal(ha, again);
}

static void test_checkpoint_message(void **state)
{
    (void)state;
    uint8_t h[32];
    memset(h, 0xab, sizeof h);
    struct buf b;
    buf_init(&b, 512);
    auth_checkpoint_message(42, h, "2026-11-22T03:01:54.123456Z", &b);
    assert_string_equal(b.data, "serverbox-checkpoint-v1\n42\n"
                                "abababababababababababababababababababababababababababababababab\n"
                                "2026-11-22T03:01:54.123456Z\n");
    buf_release(&b);
}

/* A checkpoint document as the API answers it verifies; any change to
 * what was signed, or another key, does not. */
static json_t *signed_doc(const uint8_t pk[32], const uint8_t sk[64], int64_t seq, const uint8_t hash[32],
                          const char *at)
{
    struct buf msg;
    buf_init(&msg, 512);
    auth_checkpoint_message(seq, hash, at, &msg);
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg.data, msg.len, sk);
    buf_release(&msg);
    char hex[65], sigb[100], pkb[60];
    hex_encode(hash, 32, hex);
    sodium_bin2base64(sigb, sizeof sigb, sig, 64, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(pkb, sizeof pkb, pk, 32, sodium_base64_VARIANT_ORIGINAL);
    return json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)seq, "hash", hex, "signed_at", at,
                     "signature", sigb, "public_key", pkb);
}

static void test_checkpoint_check(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64], pk2[32], sk2[64], hash[32], got_hash[32], got_pk[32];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    memset(hash, 0xab, sizeof hash);
    const char *at = "2026-12-03T10:00:00.123456Z";
    struct sb_err err = {0};
    int64_t seq = 0;
    json_t *doc = signed_doc(pk, sk, 42, hash, at);
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), 0);
    assert_int_equal(seq, 42);
    assert_memory_equal(got_hash, hash, 32);
    assert_memory_equal(got_pk, pk, 32);
    /* Another seq, hash or time than was signed. */
    json_object_set_new(doc, "seq", json_integer(43));
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    assert_string_equal(err.msg, "the signature does not verify");
    json_decref(doc);
    doc = signed_doc(pk, sk, 42, hash, at);
    json_object_set_new(doc, "hash",
                        json_string("00000000000000000000000000000000000000000000000000000000000000ab"));
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    json_decref(doc);
    doc = signed_doc(pk, sk, 42, hash, at);
    json_object_set_new(doc, "signed_at", json_string("2026-12-03T10:00:01.123456Z"));
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    json_decref(doc);
    /* Signed by one key, claiming another. */
    doc = signed_doc(pk, sk, 42, hash, at);
    json_t *other = signed_doc(pk2, sk2, 42, hash, at);
    json_object_set(doc, "public_key", json_object_get(other, "public_key"));
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    json_decref(other);
    /* Malformed fields. */
    json_object_set_new(doc, "signature", json_string("not base64!"));
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    json_object_del(doc, "seq");
    assert_int_equal(auth_checkpoint_check(doc, &seq, got_hash, got_pk, &err), SB_EINVAL);
    json_decref(doc);
    assert_int_equal(auth_checkpoint_check(NULL, &seq, got_hash, got_pk, &err), SB_EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_custom_roles),
        cmocka_unit_test(test_route_check),
        cmocka_unit_test(test_names_and_passwords),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_checkpoint_message),
        cmocka_unit_test(test_checkpoint_check),
        cmocka_unit_test(test_totp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
