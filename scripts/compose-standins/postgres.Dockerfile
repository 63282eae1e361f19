# A stand-in for the official postgres:15 image where Docker Hub cannot be
# reached (make test-compose here): Debian's PostgreSQL 15 on the local Debian
# base, and an entrypoint with the part of the official one docker-compose.yml
# uses (POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE, the scripts in
# /docker-entrypoint-initdb.d on first start, password logins from the network).
ARG SERVERBOX_BASE_IMAGE=serverbox-debian:12
FROM ${SERVERBOX_BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /run/postgresql && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
