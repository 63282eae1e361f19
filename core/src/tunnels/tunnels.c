/*
 * The core's side of the tunnel sshd: key checks, authorized_keys lines,
 * port picks, the atomic file write, and cutting a live tunnel.
 *
 * Invariant: a line of the file grants exactly one thing, a remote forward
 * listening on 127.0.0.1:<the node's port>. Every byte of a line comes from
 * this file's constants, a port number, a uuid, or a key that decoded to an
 * ed25519 blob and was re-encoded here: no text of the caller's reaches the
 * file, so no option or second line can be smuggled in.
 */
#include "tunnels.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_TYPE "ssh-ed25519"

int tunnels_range_parse(const char *text, int *lo, int *hi, struct sb_err *err)
{
    char tail;
    if (!text || sscanf(text, "%d-%d%c", lo, hi, &tail) != 2 || *lo < 1024 || *hi > 65535 || *lo > *hi)
        return sb_error(err, SB_EINVAL, "--tunnel-port-range is \"FIRST-LAST\" within 1024-65535 (got %s)",
                        text ? text : "(none)");
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int tunnels_public_key_check(const char *text, char *out, size_t outlen, struct sb_err *err)
{
    static const char msg[] = "tunnel_public_key must be one OpenSSH ed25519 public key "
                              "(\"ssh-ed25519 AAAA… [comment]\", as in the node's id_ed25519.pub)";
    size_t tl = strlen(KEY_TYPE);
    if (!text || strncmp(text, KEY_TYPE " ", tl + 1) != 0)
        return sb_field_error(err, "tunnel_public_key", "%s", msg);
    const char *b64 = text + tl + 1;
    size_t b64len = strcspn(b64, " ");
    const char *rest = b64 + b64len;
    /* The comment may hold printable ASCII only (it is dropped anyway). */
    for (const char *p = rest; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return sb_field_error(err, "tunnel_public_key", "%s", msg);
    unsigned char blob[64];
    size_t bloblen = 0;
    if (b64len == 0 || b64len > 80 ||
        sodium_base642bin(blob, sizeof blob, b64, b64len, NULL, &bloblen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return sb_field_error(err, "tunnel_public_key", "%s", msg);
    /* string "ssh-ed25519", string key(32) */
    if (bloblen != 4 + tl + 4 + 32 || be32(blob) != tl || memcmp(blob + 4, KEY_TYPE, tl) != 0 ||
        be32(blob + 4 + tl) != 32)
        return sb_field_error(err, "tunnel_public_key", "%s", msg);
    char enc[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(enc, sizeof enc, blob, bloblen, sodium_base64_VARIANT_ORIGINAL);
    if (strlen(KEY_TYPE) + 1 + strlen(enc) + 1 > outlen)
        return sb_error(err, SB_EINTERNAL, "tunnel key buffer too small");
    snprintf(out, outlen, "%s %s", KEY_TYPE, enc);
    return 0;
}

int tunnels_line(const char *key, int port, const char *id, struct buf *out, struct sb_err *err)
{
    char norm[TUNNELS_KEY_MAX];
    if (tunnels_public_key_check(key, norm, sizeof norm, err))
        return SB_EINVAL;
    if (port < 1 || port > 65535 || !uuid_valid(id))
        return sb_error(err, SB_EINVAL, "a tunnel line needs a port and a node id");
    if (buf_printf(out,
                   "restrict,port-forwarding,permitlisten=\"127.0.0.1:%d\",command=\"/bin/false\" %s "
                   "sbx-node-%s\n",
                   port, norm, id))
        return sb_error(err, SB_ENOMEM, "the authorized_keys text is too large");
    return 0;
}

int tunnels_port_pick(int lo, int hi, const int *used, size_t n_used, int *port, struct sb_err *err)
{
    for (int p = lo; p <= hi; p++) {
        bool taken = false;
        for (size_t i = 0; i < n_used && !taken; i++)
            taken = used[i] == p;
        if (!taken) {
            *port = p;
            return 0;
        }
    }
    return sb_error(err, SB_ECONFLICT, "every port of --tunnel-port-range (%d-%d) is taken", lo, hi);
}

/* ---- the file ---------------------------------------------------------- */

static bool same_content(const char *path, const char *data, size_t len)
{
    struct buf cur;
    buf_init(&cur, len + 1);
    struct sb_err e = {0};
    bool same =
        file_read_all(path, len + 1, &cur, &e) == 0 && cur.len == len && memcmp(cur.data, data, len) == 0;
    buf_release(&cur);
    return same;
}

int tunnels_file_write(const char *path, const char *data, size_t len, bool *changed, struct sb_err *err)
{
    *changed = false;
    if (same_content(path, data, len))
        return 0;
    char tmp[4096], dir[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return sb_error(err, SB_EINVAL, "the authorized_keys path is too long");
    sb_strlcpy(dir, path, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        sb_strlcpy(dir, ".", sizeof dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return sb_error(err, SB_EUNAVAIL, "cannot write '%s': %s", tmp, strerror(errno));
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = sb_error(err, SB_EUNAVAIL, "cannot write '%s': %s", tmp, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    /* The mode is the file's, whatever the umask. */
    if (rc == 0 && (fchmod(fd, 0644) != 0 || fsync(fd) != 0))
        rc = sb_error(err, SB_EUNAVAIL, "cannot sync '%s': %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = sb_error(err, SB_EUNAVAIL, "cannot replace '%s': %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    *changed = true;
    return 0;
}

/* ---- cutting a tunnel -------------------------------------------------- */

/* The inodes of sockets listening on 127.0.0.1:port (/proc/net/tcp holds
 * the local address as hex in host order: 0100007F for 127.0.0.1). */
static size_t listen_inodes(int port, unsigned long *inodes, size_t max)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (!f)
        return 0;
    char line[512];
    size_t n = 0;
    if (!fgets(line, sizeof line, f)) { /* the header */
        fclose(f);
        return 0;
    }
    while (n < max && fgets(line, sizeof line, f)) {
        unsigned int addr, lport, st;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X %*8X:%*8X %*2X:%*8X %*8X %*u %*d %lu", &addr, &lport,
                   &st, &inode) == 4 &&
            addr == 0x0100007FU && (int)lport == port && st == 0x0A && inode != 0)
            inodes[n++] = inode;
    }
    fclose(f);
    return n;
}

/* Whether pid is an sshd process whose real uid is uid ((uid_t)-1: any). */
size_t tunnels_listening(int lo, int hi, int *ports, size_t max)
{
    FILE *f = fopen("/proc/net/tcp", "re");
    if (!f)
        return 0;
    char line[512];
    size_t n = 0;
    if (fgets(line, sizeof line, f)) {
        while (n < max && fgets(line, sizeof line, f)) {
            unsigned int addr, lport, st;
            if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &addr, &lport, &st) == 3 && addr == 0x0100007FU &&
                st == 0x0A && (int)lport >= lo && (int)lport <= hi) {
                bool seen = false;
                for (size_t i = 0; i < n && !seen; i++)
                    seen = ports[i] == (int)lport;
                if (!seen)
                    ports[n++] = (int)lport;
            }
        }
    }
    fclose(f);
    return n;
}

static bool is_sshd(const char *pid, uid_t uid)
{
    char path[300], line[128] = "";
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool named = false, owned = uid == (uid_t)-1;
    while (fgets(line, sizeof line, f)) {
        unsigned long ruid;
        if (strncmp(line, "Name:\t", 6) == 0)
            named = strncmp(line + 6, "sshd", 4) == 0;
        else if (sscanf(line, "Uid:\t%lu", &ruid) == 1 && !owned)
            owned = (uid_t)ruid == uid;
    }
    fclose(f);
    return named && owned;
}

/* Whether process pid holds one of the sockets. */
static bool holds(const char *pid, const unsigned long *inodes, size_t n)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char fdpath[600], target[64];
        snprintf(fdpath, sizeof fdpath, "%s/%s", path, e->d_name);
        ssize_t l = readlink(fdpath, target, sizeof target - 1);
        if (l <= 0)
            continue;
        target[l] = '\0';
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) == 1)
            for (size_t i = 0; i < n && !found; i++)
                found = inodes[i] == ino;
    }
    closedir(d);
    return found;
}

int tunnels_cut(int port, const char *user, int *killed, struct sb_err *err)
{
    *killed = 0;
    uid_t uid = (uid_t)-1;
    if (user && *user) {
        struct passwd pw, *res = NULL;
        char pwbuf[1024];
        if (getpwnam_r(user, &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res)
            return sb_error(err, SB_EINVAL, "no account '%s' (--tunnel-user) on this host", user);
        uid = res->pw_uid;
    }
    unsigned long inodes[8];
    size_t n = listen_inodes(port, inodes, 8);
    if (n == 0)
        return 0;
    DIR *proc = opendir("/proc");
    if (!proc)
        return sb_error(err, SB_EUNAVAIL, "cannot read /proc: %s", strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(proc))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !is_sshd(e->d_name, uid) ||
            !holds(e->d_name, inodes, n))
            continue;
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        if (kill(pid, SIGTERM) == 0)
            (*killed)++;
        else
            rc = sb_error(err, errno == EPERM ? SB_EDENIED : SB_EINTERNAL,
                          "cannot stop the tunnel's sshd process %ld: %s", (long)pid, strerror(errno));
    }
    closedir(proc);
    return rc;
}
