#!/usr/bin/env bash
# A private OpenSSH server for tests and benchmarks.
#   scripts/sshd.sh start DIR [PORT]  -> prints SSHD_PORT=… SSHD_KEY=… SSHD_PUB=… SSHD_FP=…
#   scripts/sshd.sh stop DIR
# DIR gets its own ed25519 host key, a client key (root may log in with it),
# the config, the pid file and the log. Listens on 127.0.0.1 only. Starting
# an existing DIR again keeps its port and keys (a restart).
set -euo pipefail
cmd=${1:?usage: sshd.sh start|stop DIR [PORT]}
dir=${2:?usage: sshd.sh start|stop DIR [PORT]}

. "$(dirname "$0")/sshd-lib.sh"

sshd_write_config() {
    cat >"$dir/sshd_config" <<CFG
Port $1
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200:30:400
MaxSessions 64
AllowStreamLocalForwarding yes
LogLevel ERROR
Subsystem sftp internal-sftp
CFG
}

# The login shell's rc files run for every command over SSH. On machines
# whose ~/.bashrc is slow (pyenv init costs ~150 ms here) that would be all
# we measure, so sshd runs in a private mount namespace where the login
# user's ~/.bashrc reads as empty. SSHD_KEEP_RC=1 keeps it.
sshd_launch() {
    local home_rc="$HOME/.bashrc"
    if [ -z "${SSHD_KEEP_RC:-}" ] && [ -s "$home_rc" ] && command -v unshare >/dev/null &&
        unshare -m true 2>/dev/null; then
        unshare -m sh -c 'mount --bind /dev/null "$1" && exec /usr/sbin/sshd -D -f "$2" -E "$3"' sshd \
            "$home_rc" "$dir/sshd_config" "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    else
        /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null 2>&1 &
    fi
}

case "$cmd" in
start)
    sshd_dir_init "$dir"
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-host -f "$dir/host_ed25519"
    [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C sbx-client -f "$dir/client_ed25519"
    [ -f "$dir/authorized_keys" ] || cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
    sshd_start sshd.sh "${3:-}" connect
    fp=$(ssh-keygen -l -f "$dir/host_ed25519.pub" | awk '{print $2}')
    echo "SSHD_PORT=$port"
    echo "SSHD_KEY=$dir/client_ed25519"
    echo "SSHD_PUB=$dir/client_ed25519.pub"
    echo "SSHD_FP=$fp"
    ;;
stop)
    sshd_stop
    ;;
*)
    echo "usage: sshd.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
