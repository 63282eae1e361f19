#!/usr/bin/env bash
# One error vocabulary (issue #12): every code the source answers is in the
# table of core/src/http/errors.c, and docs/openapi.yaml lists exactly the
# table's codes. Run by `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."

table=$(grep -oE '^ *\{"[a-z_]+", [0-9]{3},' core/src/http/errors.c | grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
docs=$(grep -E '^ *enum: \[bad_parameter' docs/openapi.yaml | sed -E 's/.*\[(.*)\].*/\1/' | tr ',' '\n' | tr -d ' ' | sort -u)
# Codes in the source: every http_reply_error(req, <status>, "<code>" and
# the guard's deny(req, <status>, "<code>", the collector's refusal reasons, and what
# sb_errcode_name answers for http_reply_sb_err.
used=$({
    find core/src -name '*.c' -print0 | xargs -0 perl -0777 -ne \
        'print "\"$1\"\n" while /\b(?:http_reply_error|deny)\(\s*[\w>-]+,\s*[1-5][0-9]{2},\s*"([a-z_]+)"/g'
    grep -rhE 'reply_unauthorized\(' core/src/api/agent.c | grep -oE '"[a-z_]+"'
    sed -n '/sb_errcode_name/,/^}/p' core/src/util/error.c | grep -oE 'return "[a-z_]+"' | grep -oE '"[a-z_]+"'
} | tr -d '"' | grep -vxE 'ok' | sort -u)

fail=0
missing=$(comm -23 <(echo "$used") <(echo "$table"))
if [ -n "$missing" ]; then
    echo "check-error-codes: answered but not in core/src/http/errors.c: $(echo $missing)" >&2
    fail=1
fi
if [ "$table" != "$docs" ]; then
    echo "check-error-codes: docs/openapi.yaml (components.schemas.Error code enum) differs from core/src/http/errors.c (python3 tools/error-codes-doc.py . rewrites it):" >&2
    diff <(echo "$table") <(echo "$docs") >&2 || true
    fail=1
fi
[ "$fail" -eq 0 ] && echo "check-error-codes: ok ($(echo "$table" | wc -l) codes)"
exit "$fail"
