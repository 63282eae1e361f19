#!/usr/bin/env bash
# Installs every Debian package Serverbox needs to build, run and test.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config clang libclang-rt-14-dev clang-format
    libmicrohttpd-dev libpq-dev libcurl4-openssl-dev libssh2-1-dev
    libhiredis-dev libjansson-dev libsodium-dev libcmocka-dev libgnutls28-dev libbearssl-dev
    postgresql-15 postgresql-client-15 redis-server
    docker.io busybox-static openssh-server openssh-client tmux git
    iproute2 procps curl wrk valgrind
    chromium prometheus prometheus-node-exporter
    libyaml-dev caddy liboath-dev libssl-dev libgit2-dev libarchive-dev
    ansible-core ansible-lint docker-compose debootstrap nftables file
    python3-aiosmtpd
    restic
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# Node.js may come from another source than Debian (with npm bundled);
# only install Debian's when no node is on PATH at all.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Package scripts must not start system services on a machine without
# systemd; we run every service privately.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
