# Production image for serverbox-core (used by docker-compose.yml). Runs as
# the serverbox user and works with a read-only root filesystem (state only
# in /var/lib/serverbox). `make test-compose` builds it from a local Debian
# base: SERVERBOX_BASE_IMAGE=serverbox-debian:12.
ARG SERVERBOX_BASE_IMAGE=debian:12
FROM ${SERVERBOX_BASE_IMAGE} AS build
# The -dev package of every pkg-config name in the Makefile's PKGS (tests/073 checks).
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential pkg-config libmicrohttpd-dev libpq-dev libcurl4-openssl-dev libssh2-1-dev \
      libhiredis-dev libjansson-dev libsodium-dev libyaml-dev liboath-dev libssl-dev libgnutls28-dev \
      libgit2-dev libarchive-dev nodejs npm git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Extra trust for npm behind an inspecting proxy (make test-compose passes it); empty: none.
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /src
COPY . .
RUN make build/serverbox-core dashboard

FROM ${SERVERBOX_BASE_IMAGE}
# The libraries the binary links (tests/073 checks them against ldd), curl for
# the healthcheck, and the tools backups run: restic and pg_dump/pg_restore 15.
RUN apt-get update && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libpq5 libcurl4 libssh2-1 libhiredis0.14 libjansson4 libsodium23 libyaml-0-2 \
      liboath0 libssl3 libgnutls30 libgit2-1.5 libarchive13 ca-certificates curl restic postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/serverbox serverbox \
    && mkdir -p /var/lib/serverbox && chown serverbox /var/lib/serverbox
COPY --from=build /src/build/serverbox-core /usr/local/bin/serverbox-core
COPY --from=build /src/dashboard /usr/share/serverbox/dashboard
COPY scripts/docker-entrypoint.sh /usr/local/bin/serverbox-entrypoint
USER serverbox
ENV SERVERBOX_LISTEN=0.0.0.0:8080 SERVERBOX_DATA_DIR=/var/lib/serverbox \
    SERVERBOX_DASHBOARD_DIR=/usr/share/serverbox/dashboard \
    SERVERBOX_MASTER_KEY_FILE=/var/lib/serverbox/master.key
EXPOSE 8080
HEALTHCHECK CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health/ready"]
ENTRYPOINT ["/usr/local/bin/serverbox-entrypoint"]
CMD ["serve"]
