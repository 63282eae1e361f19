#!/usr/bin/env bash
# The layers of core/src, checked on every `make test` (DESIGN.md "Layout"):
# each library is spoken to by one subsystem, and api/ is the only user of
# http/ (besides cmd/ and main.c, which wire everything). An exception is
# listed here with its reason; a new one is a decision, not an accident.
set -euo pipefail
cd "$(dirname "$0")/../core/src"

fail=0
# rule NAME PATTERN ALLOWED-REGEX [EXCEPTION-FILE…]
rule() {
    local name=$1 pattern=$2 allowed=$3
    shift 3
    local hits
    hits=$(grep -rlE --include='*.c' --include='*.h' "$pattern" . | sed 's|^\./||' | grep -vE "$allowed" || true)
    for ex in "$@"; do hits=$(printf '%s\n' "$hits" | grep -vxF "$ex" || true); done
    if [ -n "$hits" ]; then
        echo "check-layers: $name:" >&2
        printf '  %s\n' $hits >&2
        fail=1
    fi
}

rule "libpq outside store/" '#include *<(libpq-fe|libpq/)' '^store/'
rule "libssh2 outside ssh/" '#include *<libssh2' '^ssh/'
# GnuTLS holds the server's certificate for libmicrohttpd (http/tls.c).
rule "GnuTLS outside http/" '#include *<gnutls/' '^http/'
# main.c: curl_global_init must run once before any thread (LIBRARY-NOTES.md).
# oidc/: discovery, JWKS and the token endpoint of the identity provider;
# alerts/ sends notifications (webhooks over HTTP(S), mail over SMTP);
# caddy/: Caddy's admin API (routes of apps and stacks);
# apps/caddy.c: the apps' HTTP health probes.
rule "libcurl outside docker/, oidc/, alerts/ and caddy/" '#include *<curl/' '^(docker|oidc|alerts|caddy)/' main.c apps/caddy.c backups/service.c
# Streams go through the shared SSE writer, http/sse.h, which subsystems
# that stream (events/, docker/, terminal/) may include: it is not http.h
# (the rule below), and nothing but http/ speaks to libmicrohttpd.
rule "<microhttpd.h> outside http/" '#include *<microhttpd.h>' '^http/'
rule "http/sse.h outside the streaming subsystems" '#include *"(\.\./)?http/sse\.h"' '^(api|cmd|http|events|docker|terminal)/'
# rbac.c reads the route table's rows (permission, flags) to check them
# against the RBAC table at start.
rule "http/ outside api/ and cmd/" '#include *"\.\./http/http\.h"|#include *"http/http\.h"' '^(api|cmd|http)/' auth/rbac.c
rule "api/ included outside api/ and cmd/" '#include *"(\.\./)?api/' '^(api|cmd)/'

if [ "$fail" -ne 0 ]; then
    echo "check-layers: see scripts/check-layers.sh for the rules" >&2
    exit 1
fi
echo "check-layers: ok"
