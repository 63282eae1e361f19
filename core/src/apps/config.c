/*
 * An app's configuration checked and normalized (pure). Every rule names
 * the field it refuses, so the API answers 422 with that field.
 */
#include "apps.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool apps_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > APPS_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return s[n - 1] != '-';
}

bool apps_branch_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 200 || s[0] == '-' || s[0] == '/' || s[n - 1] == '/' || s[n - 1] == '.' ||
        strstr(s, "..") || strstr(s, "//") || strstr(s, "@{") || strstr(s, "/.") || s[0] == '.' ||
        (n >= 5 && strcmp(s + n - 5, ".lock") == 0) || strcmp(s, "@") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f || strchr("~^:?*[\\", c))
            return false;
    }
    return true;
}

/* A repository URL the core may fetch: git://, http(s)://, ssh:// or
 * scp-like user@host:path. Never a local path or file:// (that would read
 * the control plane's own disk). */
static bool repo_url_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 8 || n > 1024)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return false;
    static const char *const schemes[] = {"git://", "http://", "https://", "ssh://", NULL};
    for (int i = 0; schemes[i]; i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
            return n > strlen(schemes[i]) + 1 && s[strlen(schemes[i])] != '/';
    const char *at = strchr(s, '@'), *colon = strchr(s, ':');
    return at && colon && at < colon && at > s && colon > at + 1 && colon[1] && !strchr(s, '\\') &&
           strncmp(s, "file:", 5) != 0;
}

static bool subdir_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 256 || s[0] == '/' || (n && s[n - 1] == '/'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return false;
    }
    /* no "." or ".." component */
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += len + (e ? 1 : 0);
    }
    return true;
}

static bool health_path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256 || s[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return false;
    return true;
}

static bool domain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || (c == '-' && label > 0) || (c == '*' && i == 0 && s[1] == '.')) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0 && s[n - 1] != '-';
}

static int want_string(json_t *in, const char *key, bool required, const char **out, struct sb_err *err)
{
    json_t *v = json_object_get(in, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return sb_field_error(err, key, "%s is required", key);
        return 0;
    }
    if (!json_is_string(v))
        return sb_field_error(err, key, "%s must be a string", key);
    *out = json_string_value(v);
    return 0;
}

static int want_int(json_t *in, const char *key, long long min, long long max, long long *out, bool *present,
                    struct sb_err *err)
{
    json_t *v = json_object_get(in, key);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return sb_field_error(err, key, "%s is an integer from %lld to %lld", key, min, max);
    *out = json_integer_value(v);
    return 0;
}

bool apps_repo_is_ssh(const char *url)
{
    if (!url)
        return false;
    if (strncmp(url, "ssh://", 6) == 0)
        return true;
    return strstr(url, "://") == NULL && strchr(url, '@') && strchr(url, ':');
}

bool apps_host_key_ok(const char *s)
{
    if (!s || strncmp(s, "SHA256:", 7) != 0 || strlen(s) != 7 + 43)
        return false;
    for (const char *p = s + 7; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '+' || *p == '/'))
            return false;
    return true;
}

int apps_config_check(json_t *in, bool create, json_t **out, struct sb_err *err)
{
    *out = json_object();
    const char *s;
    long long n;
    bool present;
    int rc;
    if ((rc = want_string(in, "name", create, &s, err)))
        goto bad;
    if (s && !apps_name_ok(s)) {
        rc = sb_field_error(err, "name", "name is 1 to %d of a-z 0-9 - starting with a letter or digit",
                            APPS_NAME_MAX);
        goto bad;
    }
    if (s)
        json_object_set_new(*out, "name", json_string(s));
    if ((rc = want_string(in, "node_id", create, &s, err)))
        goto bad;
    if (s)
        json_object_set_new(*out, "node_id", json_string(s));
    if ((rc = want_string(in, "repo_url", create, &s, err)))
        goto bad;
    if (s && !repo_url_ok(s)) {
        rc = sb_field_error(
            err, "repo_url",
            "repo_url is a git://, http(s)://, ssh:// or user@host:path URL (never a local path)");
        goto bad;
    }
    if (s)
        json_object_set_new(*out, "repo_url", json_string(s));
    if ((rc = want_string(in, "branch", false, &s, err)))
        goto bad;
    if (s && !apps_branch_ok(s)) {
        rc = sb_field_error(err, "branch", "branch is not a valid git branch name");
        goto bad;
    }
    if (s || create)
        json_object_set_new(*out, "branch", json_string(s ? s : "main"));
    if ((rc = want_string(in, "subdir", false, &s, err)))
        goto bad;
    if (s && !subdir_ok(s)) {
        rc = sb_field_error(err, "subdir", "subdir is a relative path inside the repository (no . or ..)");
        goto bad;
    }
    if (s || create)
        json_object_set_new(*out, "subdir", json_string(s ? s : ""));
    n = 80;
    if ((rc = want_int(in, "port", 1, 65535, &n, &present, err)))
        goto bad;
    if (present || create)
        json_object_set_new(*out, "port", json_integer(n));
    if ((rc = want_string(in, "health_path", false, &s, err)))
        goto bad;
    if (s && !health_path_ok(s)) {
        rc = sb_field_error(err, "health_path", "health_path is a URL path starting with /");
        goto bad;
    }
    if (s || create)
        json_object_set_new(*out, "health_path", json_string(s ? s : "/"));
    n = 60;
    if ((rc = want_int(in, "health_timeout_s", 1, 600, &n, &present, err)))
        goto bad;
    if (present || create)
        json_object_set_new(*out, "health_timeout_s", json_integer(n));
    json_t *d = json_object_get(in, "domain");
    if (d && !json_is_null(d) && (!json_is_string(d) || !domain_ok(json_string_value(d)))) {
        rc = sb_field_error(err, "domain", "domain is a host name (or null)");
        goto bad;
    }
    if (d || create)
        json_object_set_new(*out, "domain",
                            d && !json_is_null(d) ? json_string(json_string_value(d)) : json_null());
    json_t *m = json_object_get(in, "memory");
    if (m && !json_is_null(m) &&
        (!json_is_integer(m) || json_integer_value(m) < (4 << 20) || json_integer_value(m) > (1LL << 40))) {
        rc = sb_field_error(err, "memory", "memory is a number of bytes from 4 MiB to 1 TiB (or null)");
        goto bad;
    }
    if (m || create)
        json_object_set_new(*out, "memory",
                            m && !json_is_null(m) ? json_integer(json_integer_value(m)) : json_null());
    json_t *c = json_object_get(in, "cpus");
    if (c && !json_is_null(c) &&
        (!json_is_number(c) || json_number_value(c) < 0.01 || json_number_value(c) > 256)) {
        rc = sb_field_error(err, "cpus", "cpus is a number from 0.01 to 256 (or null)");
        goto bad;
    }
    if (c || create)
        json_object_set_new(*out, "nano_cpus",
                            c && !json_is_null(c)
                                ? json_integer((json_int_t)(json_number_value(c) * 1e9 + 0.5))
                                : json_null());
    json_t *hk = json_object_get(in, "git_host_key");
    if (hk && !json_is_null(hk) && (!json_is_string(hk) || !apps_host_key_ok(json_string_value(hk)))) {
        rc = sb_field_error(err, "git_host_key",
                            "git_host_key is the git host's key fingerprint as ssh-keygen -l prints it "
                            "(SHA256:…), or null to pin it at the next fetch");
        goto bad;
    }
    if (hk)
        json_object_set_new(*out, "git_host_key",
                            json_is_null(hk) ? json_null() : json_string(json_string_value(hk)));
    return 0;
bad:
    json_decref(*out);
    *out = NULL;
    return rc ? rc : SB_EINVAL;
}
