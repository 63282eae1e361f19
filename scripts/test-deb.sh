#!/bin/sh
# make test-deb (opt-in, not part of make test): the .debs installed,
# upgraded, removed and purged for real with dpkg in a throwaway Debian 12
# root (debootstrap --variant=minbase from the Debian mirror, in a private
# mount namespace), never in this machine's root. Dependencies come from the
# mirror through apt-get inside the chroot. No systemd there: the
# maintainer scripts' systemctl branch is not exercised.
#   SERVERBOX_DEB_BASE=DIR reuses a debootstrapped root (copied, not changed).
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (debootstrap, chroot)" >&2; exit 1; }
MIRROR=${SERVERBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /tmp/serverbox-testdeb.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
if [ -n "${SERVERBOX_DEB_BASE:-}" ]; then
    cp -a "$SERVERBOX_DEB_BASE" "$root"
else
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"

SERVERBOX_DEB_VERSION=0.0.1 scripts/make-deb.sh >/dev/null
mkdir -p "$root/tmp/v1" && cp build/deb/*.deb "$root/tmp/v1/"
SERVERBOX_DEB_VERSION=0.0.2 scripts/make-deb.sh >/dev/null
mkdir -p "$root/tmp/v2" && cp build/deb/*.deb "$root/tmp/v2/"

cat >"$root/tmp/check.sh" <<'IN'
set -eu
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends /tmp/v1/serverbox-core_0.0.1_*.deb /tmp/v1/serverbox-collector_0.0.1_*.deb >/dev/null
getent passwd serverbox >/dev/null || fail "no user serverbox"
getent passwd serverbox-collector >/dev/null || fail "no user serverbox-collector"
[ "$(stat -c '%U:%G %a' /etc/serverbox/core.env)" = "root:serverbox 640" ] || fail "core.env: $(stat -c '%U:%G %a' /etc/serverbox/core.env)"
[ "$(stat -c '%U %a' /var/lib/serverbox)" = "serverbox 700" ] || fail "data dir"
[ "$(stat -c '%U %a' /var/lib/serverbox-collector)" = "serverbox-collector 700" ] || fail "collector state dir"
serverbox-core version | grep -q '^serverbox-core ' || fail "core does not run"
serverbox-collector --once --docker-socket '' | grep -q '"mem"' || fail "collector does not sample"
echo secret >/var/lib/serverbox/master.key
echo 'SERVERBOX_LISTEN=127.0.0.1:9999' >>/etc/serverbox/core.env
# upgrade keeps data and the edited conffile
dpkg -i --force-confold /tmp/v2/serverbox-core_0.0.2_*.deb /tmp/v2/serverbox-collector_0.0.2_*.deb >/dev/null
[ "$(dpkg-query -W -f='${Version}' serverbox-core)" = 0.0.2 ] || fail "upgrade"
grep -q 9999 /etc/serverbox/core.env || fail "upgrade lost the edited core.env"
[ -s /var/lib/serverbox/master.key ] || fail "upgrade lost data"
# remove keeps data, purge removes it and the users
dpkg -r serverbox-core serverbox-collector >/dev/null
[ -s /var/lib/serverbox/master.key ] || fail "remove deleted data"
[ ! -e /usr/bin/serverbox-core ] || fail "remove left the binary"
dpkg -P serverbox-core serverbox-collector >/dev/null
[ ! -e /var/lib/serverbox ] || fail "purge left /var/lib/serverbox"
[ ! -e /var/lib/serverbox-collector ] || fail "purge left /var/lib/serverbox-collector"
[ ! -e /etc/serverbox ] || fail "purge left /etc/serverbox"
! getent passwd serverbox >/dev/null || fail "purge left the user serverbox"
! getent passwd serverbox-collector >/dev/null || fail "purge left the user serverbox-collector"
echo "test-deb: ok (install, upgrade 0.0.1 -> 0.0.2 keeping data and conffile, remove keeps data, purge removes data and users)"
IN
unshare -m sh -c 'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh /tmp/check.sh' sh "$root"
