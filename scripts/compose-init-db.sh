#!/bin/sh
# Run by the postgres image on first start (docker-entrypoint-initdb.d):
# the daemon's restricted login role. The schema owner is POSTGRES_USER.
# The password comes from SERVERBOX_APP_PASSWORD_FILE (a compose secret) or
# SERVERBOX_APP_PASSWORD.
set -e
if [ -n "${SERVERBOX_APP_PASSWORD_FILE:-}" ]; then
    SERVERBOX_APP_PASSWORD=$(cat "$SERVERBOX_APP_PASSWORD_FILE")
fi
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="$SERVERBOX_APP_PASSWORD" <<'SQL'
CREATE ROLE serverbox_app LOGIN PASSWORD :'app_password';
SQL
