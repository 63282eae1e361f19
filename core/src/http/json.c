#include "http.h"

#include <string.h>

json_t *http_parse_json_object(const char *data, size_t len, struct sb_err *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        sb_error(err, SB_EINVAL, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        sb_error(err, SB_EINVAL, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

int http_json_check_fields(json_t *obj, const char *const *allowed, struct sb_err *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok) {
            /* The key came from the client: keep it short in the message. */
            char shown[65];
            sb_strlcpy(shown, key, sizeof shown);
            return sb_field_error(err, shown, "unknown field '%s'", shown);
        }
    }
    return 0;
}
