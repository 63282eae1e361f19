#!/bin/sh
# make test-compose (opt-in, not part of make test): the production compose
# stack for real. Makes a Debian 12 base image with debootstrap from the
# Debian mirror (cached in run/compose-base.tar), imports it with
# `docker import`, builds the core's image from the Dockerfile on it, starts
# docker-compose.yml with fresh secrets under a throwaway project, waits for
# the core's /health/ready, creates an admin and logs in, then tears the
# stack down (volumes too).
# Needs root (debootstrap) and a running Docker engine with bridge networking
# (DOCKER_HOST or the system one). PostgreSQL and Redis: the postgres:15 and
# redis:7 images, SERVERBOX_POSTGRES_IMAGE / SERVERBOX_REDIS_IMAGE naming
# others, or else stand-ins built from Debian's packages on the same base
# (scripts/compose-standins/: where Docker Hub cannot be reached).
set -eu
cd "$(dirname "$0")/.."
MIRROR=${SERVERBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_TAR=run/compose-base.tar
BASE_IMAGE=serverbox-debian:12
PROJECT=sbxcompose$$
PORT=${SERVERBOX_COMPOSE_PORT:-18080}
work=$(mktemp -d /tmp/serverbox-compose.XXXXXX)

docker info >/dev/null 2>&1 || { echo "test-compose: no Docker engine (set DOCKER_HOST)" >&2; exit 1; }

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$BASE_TAR" ]; then
        mkdir -p run
        echo "test-compose: debootstrap bookworm from $MIRROR" >&2
        debootstrap --variant=minbase --include=ca-certificates bookworm "$work/root" "$MIRROR" >&2
        echo "deb $MIRROR bookworm main" >"$work/root/etc/apt/sources.list"
        # This machine's extra trust (an inspecting egress proxy): npm in the build needs it.
        if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
            cp /usr/local/share/ca-certificates/*.crt "$work/root/usr/local/share/ca-certificates/"
            chroot "$work/root" update-ca-certificates >/dev/null
        fi
        tar -C "$work/root" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$work/root"
    fi
    docker import "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi

# The official postgres:15 and redis:7, else local stand-ins made from
# Debian's packages on the same base (scripts/compose-standins/), said so.
standin() { # name official
    if [ -n "$(eval echo "\${SERVERBOX_${1}_IMAGE:-}")" ]; then return; fi
    if docker image inspect "$2" >/dev/null 2>&1 || docker pull "$2" >/dev/null 2>&1; then return; fi
    lower=$(echo "$1" | tr A-Z a-z)
    echo "test-compose: $2 cannot be pulled here: building the stand-in serverbox-standin/$lower" >&2
    docker build --network host --build-arg SERVERBOX_BASE_IMAGE="$BASE_IMAGE" -t "serverbox-standin/$lower" \
        -f "scripts/compose-standins/$lower.Dockerfile" scripts/compose-standins >&2
    export "SERVERBOX_${1}_IMAGE=serverbox-standin/$lower"
}
standin POSTGRES postgres:15
standin REDIS redis:7
CA_ARG=
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then CA_ARG=/etc/ssl/certs/ca-certificates.crt; fi

secrets="$work/secrets"
mkdir -m 700 "$secrets"
od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$secrets/postgres_password"
od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$secrets/serverbox_app_password"
export SERVERBOX_SECRETS_DIR="$secrets" SERVERBOX_PUBLISH="127.0.0.1:$PORT" SERVERBOX_CORE_IMAGE="serverbox-core:test-$$"
dc() { docker-compose -p "$PROJECT" -f docker-compose.yml "$@"; }
cleanup() {
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    docker image rm "$SERVERBOX_CORE_IMAGE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)
docker build --network host --build-arg SERVERBOX_BASE_IMAGE="$BASE_IMAGE" \
    --build-arg NODE_EXTRA_CA_CERTS="$CA_ARG" -t "$SERVERBOX_CORE_IMAGE" . >&2
built=$(date +%s)
dc up -d >&2
i=0
until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/ready"; do
    i=$((i + 1))
    if [ $i -gt 120 ]; then dc ps >&2; dc logs --tail 50 >&2; echo "test-compose: core never ready" >&2; exit 1; fi
    sleep 1
done
ready=$(date +%s)
pw=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pw" | dc exec -T core serverbox-entrypoint create-user --username admin --role admin --password-stdin >&2
code=$(curl -s -o "$work/login.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$pw\"}" "http://127.0.0.1:$PORT/api/v1/auth/login")
[ "$code" = 200 ] || { echo "test-compose: login answered $code: $(cat "$work/login.json")" >&2; exit 1; }
# The core runs as non-root on a read-only root filesystem.
[ "$(dc exec -T core id -un | tr -d '\r')" = serverbox ] || { echo "test-compose: core is not user serverbox" >&2; exit 1; }
if dc exec -T core sh -c 'touch /usr/local/bin/x' 2>/dev/null; then echo "test-compose: root filesystem writable" >&2; exit 1; fi
echo "test-compose: ok (image build $((built - start)) s, stack ready $((ready - built)) s, login 200)"
