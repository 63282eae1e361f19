#!/bin/sh
# Run by the postgres image on first start (docker-entrypoint-initdb.d):
# the daemon's restricted login role. The schema owner is POSTGRES_USER.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="$SERVERBOX_APP_PASSWORD" <<'SQL'
CREATE ROLE serverbox_app LOGIN PASSWORD :'app_password';
SQL
