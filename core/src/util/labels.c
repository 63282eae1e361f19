/*
 * Labels: the one validator and the one selector matcher (util.h).
 */
#include "util.h"

#include <string.h>

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static bool key_chars_ok(const char *k, const char *extra)
{
    for (; *k; k++) {
        char c = *k;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(extra, c)))
            return false;
    }
    return true;
}

int labels_check(json_t *labels, const struct labels_rule *rule, struct sb_err *err)
{
    if ((!labels || json_is_null(labels)) && rule->null_ok)
        return 0;
    if (!json_is_object(labels) || json_object_size(labels) > rule->max_labels)
        return sb_field_error(err, rule->field, "%s must be an object of at most %zu string labels",
                              rule->field, rule->max_labels);
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        size_t kl = strlen(k);
        if (!json_is_string(v))
            return sb_field_error(err, rule->field, "label values must be strings");
        if (kl == 0 || kl > rule->key_max || (rule->key_extra && !key_chars_ok(k, rule->key_extra)))
            return rule->key_extra
                       ? sb_field_error(err, rule->field, "label keys are 1 to %zu letters, digits or '%s'",
                                        rule->key_max, rule->key_extra)
                       : sb_field_error(err, rule->field, "label keys are 1 to %zu characters",
                                        rule->key_max);
        if (json_string_length(v) > rule->value_max)
            return sb_field_error(err, rule->field, "label values are at most %zu characters",
                                  rule->value_max);
        if (has_control(k, kl) || has_control(json_string_value(v), json_string_length(v)))
            return sb_field_error(err, rule->field, "labels may not hold control characters");
    }
    return 0;
}

bool labels_match(json_t *selector, json_t *labels)
{
    const char *key;
    json_t *want;
    json_object_foreach(selector, key, want)
    {
        json_t *have = json_object_get(labels, key);
        if (!json_is_string(have) || !json_equal(have, want))
            return false;
    }
    return true;
}
