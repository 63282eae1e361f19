#!/bin/sh
# make deb: build/deb/serverbox-core_<v>_amd64.deb and
# build/deb/serverbox-collector_<v>_amd64.deb with dpkg-deb (root-owned files
# through --root-owner-group; no fakeroot needed). Expects `make all`.
set -eu
cd "$(dirname "$0")/.."
V=${SERVERBOX_DEB_VERSION:-0.0.$(git rev-list --count HEAD 2>/dev/null || echo 0)+g$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
case "$V" in [0-9]*) ;; *) V="0~$V" ;; esac
ARCH=$(dpkg --print-architecture)
OUT=build/deb
rm -rf "$OUT" && mkdir -p "$OUT"

control() { # name depends description
    cat <<CTL
Package: $1
Version: $V
Architecture: $ARCH
Maintainer: Serverbox <serverbox@localhost>
Section: admin
Priority: optional
Depends: adduser${2:+, $2}
Installed-Size: $(du -sk "$4" | cut -f1)
Homepage: https://github.com/serverbox/serverbox
Description: $3
CTL
}

scripts() { # dir prefix
    for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$2.$s" "$1/DEBIAN/$s"; done
}

# serverbox-core
d=$OUT/core
install -d "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system" "$d/etc/serverbox" "$d/usr/share/serverbox" \
    "$d/usr/share/doc/serverbox-core"
install -m 0755 build/serverbox-core "$d/usr/bin/serverbox-core"
install -m 0644 packaging/systemd/serverbox-core.service "$d/lib/systemd/system/"
install -m 0640 packaging/deb/core.env "$d/etc/serverbox/core.env"
cp -r dashboard "$d/usr/share/serverbox/dashboard"
find "$d/usr/share/serverbox/dashboard" -name ".*" -type f -delete
find "$d/usr/share/serverbox/dashboard" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
install -m 0644 README.md "$d/usr/share/doc/serverbox-core/README.md"
echo /etc/serverbox/core.env >"$d/DEBIAN/conffiles"
control serverbox-core "libmicrohttpd12, libpq5, libcurl4, libssh2-1, libhiredis0.14, libjansson4, libsodium23" \
    "Serverbox control plane (serverbox-core) with its dashboard and systemd unit" "$d" >"$d/DEBIAN/control"
scripts "$d" core
dpkg-deb --root-owner-group -Zxz --build "$d" "$OUT/serverbox-core_${V}_$ARCH.deb" >&2

# serverbox-collector (static: no library dependencies)
d=$OUT/collector
install -d "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system"
install -m 0755 build/serverbox-collector "$d/usr/bin/serverbox-collector"
sed 's#/usr/local/bin/serverbox-collector#/usr/bin/serverbox-collector#g' collector/serverbox-collector.service \
    >"$d/lib/systemd/system/serverbox-collector.service"
chmod 0644 "$d/lib/systemd/system/serverbox-collector.service"
control serverbox-collector "" "Serverbox node metrics collector (static) with its systemd unit" "$d" >"$d/DEBIAN/control"
scripts "$d" collector
dpkg-deb --root-owner-group -Zxz --build "$d" "$OUT/serverbox-collector_${V}_$ARCH.deb" >&2
rm -rf "$OUT/core" "$OUT/collector"
ls "$OUT"/*.deb
