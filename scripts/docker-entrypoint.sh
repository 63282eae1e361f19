#!/bin/sh
# Entrypoint of the serverbox-core image (Dockerfile, docker-compose.yml):
# builds the database URLs from the compose secrets, so no password is in
# the compose file, the environment of `docker inspect`, or an argument.
#   /run/secrets/postgres_password       the schema owner's (POSTGRES_USER)
#   /run/secrets/serverbox_app_password  the daemon's restricted role
# Passwords are used in a URL as they are: make them URL-safe
# (openssl rand -hex 24). Without the files the environment is used as given.
set -eu
db_host=${SERVERBOX_DB_HOST:-postgres}
db_name=${SERVERBOX_DB_NAME:-serverbox}
if [ -r /run/secrets/postgres_password ]; then
    owner_pw=$(cat /run/secrets/postgres_password)
    SERVERBOX_MIGRATE_DATABASE_URL="postgresql://serverbox:${owner_pw}@${db_host}/${db_name}"
    export SERVERBOX_MIGRATE_DATABASE_URL
    if [ "${1:-serve}" = migrate ]; then
        SERVERBOX_DATABASE_URL=$SERVERBOX_MIGRATE_DATABASE_URL
        export SERVERBOX_DATABASE_URL
    fi
fi
if [ -r /run/secrets/serverbox_app_password ] && [ "${1:-serve}" != migrate ]; then
    app_pw=$(cat /run/secrets/serverbox_app_password)
    SERVERBOX_DATABASE_URL="postgresql://serverbox_app:${app_pw}@${db_host}/${db_name}"
    export SERVERBOX_DATABASE_URL
fi
exec /usr/local/bin/serverbox-core "$@"
