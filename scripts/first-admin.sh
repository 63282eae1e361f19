#!/usr/bin/env bash
# First start of `make run`: when the database has no user yet, create an
# `admin` with a random password and print the URL and credentials once.
# Afterwards it does nothing. Uses SERVERBOX_DATABASE_URL (and
# SERVERBOX_LISTEN for the URL) from the environment, as scripts/run.sh sets.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SERVERBOX_CORE_BIN:-build/serverbox-core}
# 24 random bytes -> 32 URL-safe characters; never on a command line.
password=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')

set +e
out=$(printf '%s\n' "$password" | "$BIN" create-user --username admin --role admin --password-stdin --if-no-users 2>&1)
rc=$?
set -e
case $rc in
0)
    listen=${SERVERBOX_LISTEN:-127.0.0.1:8080}
    cat <<BANNER

  ================================================================
   Serverbox: first start. An administrator was created.

     URL       http://$listen/
     username  admin
     password  $password

   This password is shown only now. Change it after logging in:
   POST /api/v1/auth/password {"current_password","new_password"}
  ================================================================

BANNER
    ;;
3) ;; # users exist already: nothing to do
*)
    echo "first-admin: could not create the first admin: $out" >&2
    exit 1
    ;;
esac
