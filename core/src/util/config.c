#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_env_name(const char *name, char *out, size_t outlen)
{
    size_t j = sb_strlcpy(out, "SERVERBOX_", outlen);
    for (const char *p = name; *p && j + 1 < outlen; p++, j++)
        out[j] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[j < outlen ? j : outlen - 1] = '\0';
}

static int find_option(const struct config *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_options; i++)
        if (strlen(c->options[i].name) == len && strncmp(c->options[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

static bool is_bool_flag(const char *const *bool_flags, const char *name, size_t len)
{
    for (size_t i = 0; bool_flags && bool_flags[i]; i++)
        if (strlen(bool_flags[i]) == len && strncmp(bool_flags[i], name, len) == 0)
            return true;
    return false;
}

static int set_value(struct config *c, int idx, const char *v, struct sb_err *err)
{
    const struct config_option *o = &c->options[idx];
    if (o->kind == CONFIG_INT) {
        char *end;
        strtol(v, &end, 10);
        if (!*v || *end)
            return sb_error(err, SB_EINVAL, "--%s wants a whole number, not '%s'", o->name, v);
    }
    if (o->kind == CONFIG_LIST) {
        if (c->list_len[idx] >= CONFIG_MAX_LIST)
            return sb_error(err, SB_EINVAL, "--%s given too many times", o->name);
        c->list[idx][c->list_len[idx]++] = v;
    }
    c->value[idx] = v;
    return 0;
}

int config_parse(struct config *c, const struct config_option *options, size_t n, int argc, char **argv,
                 const char *const *bool_flags, struct sb_err *err)
{
    memset(c, 0, sizeof *c);
    if (n > CONFIG_MAX_OPTIONS)
        return sb_error(err, SB_EINTERNAL, "too many options");
    c->options = options;
    c->n_options = n;
    bool from_flag[CONFIG_MAX_OPTIONS] = {false};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (c->n_args >= sizeof c->args / sizeof c->args[0])
                return sb_error(err, SB_EINVAL, "too many arguments");
            c->args[c->n_args++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (!eq && is_bool_flag(bool_flags, name, len)) {
            int idx = find_option(c, name, len);
            if (idx >= 0) {
                set_value(c, idx, "1", err);
                from_flag[idx] = true;
            }
            continue;
        }
        int idx = find_option(c, name, len);
        if (idx < 0)
            return sb_error(err, SB_EINVAL, "unknown option '--%.*s' (see --help)", (int)len, name);
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc)
                return sb_error(err, SB_EINVAL, "--%s needs a value", options[idx].name);
            v = argv[++i];
        }
        if (set_value(c, idx, v, err))
            return err ? err->code : SB_EINVAL;
        from_flag[idx] = true;
    }

    for (size_t i = 0; i < n; i++) {
        if (from_flag[i])
            continue;
        char env[96];
        config_env_name(options[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && *v) {
            if (options[i].kind == CONFIG_LIST) {
                /* A list from the environment is comma-separated. */
                char *copy = strdup(v);
                c->owned[i] = copy;
                for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
                     tok = strtok_r(NULL, ",", &save))
                    if (set_value(c, (int)i, tok, err))
                        return err ? err->code : SB_EINVAL;
            } else if (set_value(c, (int)i, v, err)) {
                return err ? err->code : SB_EINVAL;
            }
        } else if (options[i].def) {
            if (options[i].kind == CONFIG_LIST)
                set_value(c, (int)i, options[i].def, err);
            else
                c->value[i] = options[i].def;
        }
    }
    return 0;
}

const char *config_get(const struct config *c, const char *name)
{
    int idx = find_option(c, name, strlen(name));
    return idx < 0 ? NULL : c->value[idx];
}

long config_get_int(const struct config *c, const char *name)
{
    const char *v = config_get(c, name);
    return v ? strtol(v, NULL, 10) : 0;
}

size_t config_get_list(const struct config *c, const char *name, const char *const **out)
{
    int idx = find_option(c, name, strlen(name));
    if (idx < 0) {
        *out = NULL;
        return 0;
    }
    *out = c->list[idx];
    return c->list_len[idx];
}

void config_print_help(const struct config_option *options, size_t n, const char *usage)
{
    printf("%s\n\nOptions (flag, then environment variable, then default):\n", usage);
    for (size_t i = 0; i < n; i++) {
        char env[96];
        config_env_name(options[i].name, env, sizeof env);
        printf("  --%-22s %s\n  %-24s env %s", options[i].name, options[i].help, "", env);
        if (options[i].def && !options[i].secret)
            printf(", default %s", options[i].def);
        if (options[i].kind == CONFIG_LIST)
            printf(" (repeatable; comma-separated in the environment)");
        printf("\n");
    }
}

void config_release(struct config *c)
{
    for (size_t i = 0; i < CONFIG_MAX_OPTIONS; i++) {
        free(c->owned[i]);
        c->owned[i] = NULL;
    }
}
