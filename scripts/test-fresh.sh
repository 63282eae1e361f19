#!/bin/sh
# make test-fresh (opt-in, not part of make test): the README's promise on a
# bare machine. A Debian 12 root made with `debootstrap --variant=minbase`
# (plus git, make, sudo and ca-certificates, the least a user has to clone),
# a clone of this repository's HEAD at /root/serverbox (the most common first
# try, a directory the postgres user cannot enter), then, as root in that
# root (a private mount namespace, pivot_root): `make run` on the first try, until it prints
# the URL and the first admin's credentials; a login with them; then, with
# SERVERBOX_FRESH_TEST=1, `make test` too (adds ~25 min).
#   SERVERBOX_FRESH_BASE=DIR reuses a debootstrapped root (copied, not changed).
#   SERVERBOX_FRESH_KEEP=1 keeps the work directory (its path is printed).
# Committed work only: the clone is of HEAD, not of the working tree.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-fresh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
MIRROR=${SERVERBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PORT=${SERVERBOX_FRESH_PORT:-$(scripts/services.sh free-port)}
EXTRA_CA=
work=$(mktemp -d /var/tmp/serverbox-fresh.XXXXXX)
cleanup() {
    # The mounts lived in the namespace that ended; --one-file-system guards anyway.
    if [ -z "${SERVERBOX_FRESH_KEEP:-}" ]; then rm -rf --one-file-system "$work"; else echo "test-fresh: kept $work" >&2; fi
}
trap cleanup EXIT
root=$work/root
if [ -n "${SERVERBOX_FRESH_BASE:-}" ]; then
    cp -a "$SERVERBOX_FRESH_BASE" "$root"
else
    echo "test-fresh: debootstrap bookworm (minbase) into $root" >&2
    debootstrap --variant=minbase --include=git,make,sudo,ca-certificates bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log" >&2; exit 1; }
fi
# This machine's network, not the project's set-up: its resolver, and the
# CAs it trusts beyond Debian's (a TLS-inspecting egress proxy, as here:
# npm would refuse the registry without them).
cp /etc/resolv.conf "$root/etc/resolv.conf"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    EXTRA_CA=/etc/ssl/certs/ca-certificates.crt
fi
git clone --quiet "$PWD" "$root/root/serverbox"

cat >"$root/tmp/fresh.sh" <<IN
set -eu
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SERVERBOX_LISTEN=127.0.0.1:$PORT
${EXTRA_CA:+export NODE_EXTRA_CA_CERTS=$EXTRA_CA}
cd /root/serverbox
make run >/tmp/run.log 2>&1 &
pid=\$!
for _ in \$(seq 1 3600); do
    grep -q 'run: serving on' /tmp/run.log && break
    kill -0 \$pid 2>/dev/null || { echo "test-fresh: make run ended before serving:" >&2; tail -40 /tmp/run.log >&2; exit 1; }
    sleep 1
done
grep -q 'run: serving on' /tmp/run.log || { echo "test-fresh: make run not serving after 1 h" >&2; tail -40 /tmp/run.log >&2; exit 1; }
user=\$(awk '\$1 == "username" {print \$2}' /tmp/run.log)
pass=\$(awk '\$1 == "password" {print \$2}' /tmp/run.log)
[ -n "\$user" ] && [ -n "\$pass" ] || { echo "test-fresh: no credentials printed" >&2; exit 1; }
for _ in \$(seq 1 50); do curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
printf '{"username":"%s","password":"%s"}' "\$user" "\$pass" >/tmp/login.json
curl -fsS -H 'content-type: application/json' --data @/tmp/login.json "http://127.0.0.1:$PORT/api/v1/auth/login" >/tmp/login.out ||
    { echo "test-fresh: login with the printed credentials failed" >&2; exit 1; }
grep -q '"token"' /tmp/login.out
echo "test-fresh: make run served on the first try and the printed admin logged in"
kill \$pid; wait \$pid 2>/dev/null || true
pkill -f /root/serverbox/build/serverbox-core 2>/dev/null || true
rc=0
if [ -n "${SERVERBOX_FRESH_TEST:-}" ]; then
    make test >/tmp/test.log 2>&1 || rc=\$?
    tail -30 /tmp/test.log
    [ \$rc = 0 ] && echo "test-fresh: make test passed" || echo "test-fresh: make test failed (exit \$rc)" >&2
fi
scripts/dockerd.sh stop run/docker >/dev/null 2>&1 || true
scripts/services.sh stop-all run/services >/dev/null 2>&1 || true
exit \$rc
IN

# A private mount namespace whose root is the new system (pivot_root, not a
# bare chroot: runc's exec enters the namespace's root, which a chroot would
# leave at this machine's /). /proc, /sys and /dev vanish with it.
mkdir -p "$root/.old"
unshare --mount --propagation private sh -c '
    set -e
    root=$1
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    cd "$root"
    pivot_root . .old
    exec chroot . /bin/sh -c "umount -l /.old && exec /bin/bash /tmp/fresh.sh"
' sh "$root"
