# A stand-in for the official redis:7 image where Docker Hub cannot be reached
# (make test-compose here): Debian's Redis 7 on the local Debian base. Like the
# official image started without a configuration file, it listens on every
# address with protected mode off (the compose network is its boundary).
ARG SERVERBOX_BASE_IMAGE=serverbox-debian:12
FROM ${SERVERBOX_BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
ENTRYPOINT ["sh", "-c", "exec \"$@\" --bind 0.0.0.0 --protected-mode no", "redis-entrypoint"]
CMD ["redis-server"]
