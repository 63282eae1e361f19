/*
 * What a reader without containers:operate sees of a container: the
 * environment's names without their values, and labels whose names look
 * like secrets without their values. Pure functions, unit-tested in
 * core/tests/test_docker.c.
 */
#include "docker.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const secret_words[] = {"PASSWORD",   "PASSWD",  "PASSPHRASE", "SECRET", "TOKEN", "KEY",
                                           "CREDENTIAL", "PRIVATE", "AUTH",       "CERT",   "DSN",   "SALT"};

bool docker_name_is_secret(const char *name)
{
    if (!name)
        return false;
    for (size_t i = 0; i < sizeof secret_words / sizeof secret_words[0]; i++)
        if (strcasestr(name, secret_words[i]))
            return true;
    return false;
}

void docker_redact_labels(json_t *labels)
{
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        if (docker_name_is_secret(k))
            json_object_set_new(labels, k, json_string(DOCKER_REDACTED));
    }
}

/* ["NAME=value", …] -> ["NAME=<redacted>", …]: every value, whatever its
 * name (a database URL holds a password under any name). */
static void redact_env(json_t *env)
{
    size_t i;
    json_t *v;
    json_array_foreach(env, i, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        const char *eq = strchr(s, '=');
        size_t n = eq ? (size_t)(eq - s) : strlen(s);
        char *t = malloc(n + sizeof DOCKER_REDACTED + 1);
        if (!t) {
            json_array_set_new(env, i, json_string(DOCKER_REDACTED));
            continue;
        }
        memcpy(t, s, n);
        t[n] = '=';
        memcpy(t + n + 1, DOCKER_REDACTED, sizeof DOCKER_REDACTED);
        json_t *nv = json_string(t);
        free(t);
        json_array_set_new(env, i, nv ? nv : json_string(DOCKER_REDACTED));
    }
}

void docker_redact_inspect(json_t *doc)
{
    json_t *cfg = json_object_get(doc, "Config");
    if (json_is_array(json_object_get(cfg, "Env")))
        redact_env(json_object_get(cfg, "Env"));
    if (json_is_object(json_object_get(cfg, "Labels")))
        docker_redact_labels(json_object_get(cfg, "Labels"));
    /* exec instances and the image's own config are not part of inspect;
     * the command line (Path, Args, Config.Cmd) is shown: secrets belong in
     * the environment or in files, never in arguments. */
}
