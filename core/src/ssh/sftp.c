/*
 * SFTP confined to a base directory. The relative path is checked as text
 * first (no "..", no absolute path), then the parent directory's real path
 * is asked of the node (SSH_FXP_REALPATH resolves symlinks there) and must
 * lie inside the base's real path, so a symlink planted on the node cannot
 * lead a write or read outside. Writes go to a temporary name in the same
 * directory and are renamed over the target.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SFTP_CHUNK   32768
#define PATH_MAX_LEN 1024

int ssh_path_check(const char *relpath, struct sb_err *err)
{
    size_t n = relpath ? strlen(relpath) : 0;
    if (n == 0 || n > PATH_MAX_LEN)
        return sb_field_error(err, "path", "path must be 1 to %d bytes", PATH_MAX_LEN);
    if (relpath[0] == '/')
        return sb_field_error(err, "path", "path must be relative to the base directory");
    for (const char *p = relpath; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return sb_field_error(err, "path", "path contains a control character or backslash");
    const char *c = relpath;
    for (;;) {
        const char *slash = strchr(c, '/');
        size_t len = slash ? (size_t)(slash - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return sb_field_error(err, "path", "path must not contain empty, '.' or '..' components");
        if (!slash)
            break;
        c = slash + 1;
    }
    return 0;
}

static int remote_realpath(LIBSSH2_SFTP *sftp, const char *path, char *out, size_t outlen, struct sb_err *err)
{
    int n = libssh2_sftp_realpath(sftp, path, out, (unsigned)outlen - 1);
    if (n < 0)
        return sb_error(err, SB_ENOTFOUND, "'%s' does not exist on the node", path);
    out[n] = '\0';
    return 0;
}

static bool inside(const char *real, const char *base)
{
    size_t bl = strlen(base);
    if (bl == 1 && base[0] == '/')
        return true;
    return strncmp(real, base, bl) == 0 && (real[bl] == '\0' || real[bl] == '/');
}

/* Resolves base and the parent of relpath; fills realbase, realparent and leaf. */
static int confine(LIBSSH2_SFTP *sftp, const char *base, const char *relpath, char *realbase,
                   char *realparent, const char **leaf, struct sb_err *err)
{
    int rc = ssh_path_check(relpath, err);
    if (rc)
        return rc;
    rc = remote_realpath(sftp, base, realbase, PATH_MAX_LEN + 2, err);
    if (rc)
        return rc;
    const char *slash = strrchr(relpath, '/');
    *leaf = slash ? slash + 1 : relpath;
    char parent[2 * PATH_MAX_LEN + 8];
    if (slash)
        snprintf(parent, sizeof parent, "%s/%.*s", realbase, (int)(slash - relpath), relpath);
    else
        snprintf(parent, sizeof parent, "%s", realbase);
    rc = remote_realpath(sftp, parent, realparent, PATH_MAX_LEN + 2, err);
    if (rc)
        return rc;
    if (!inside(realparent, realbase))
        return sb_field_error(err, "path", "path leaves the base directory (through a symlink)");
    return 0;
}

static LIBSSH2_SFTP *sftp_start(struct ssh_session *s, struct sb_err *err)
{
    libssh2_session_set_blocking(s->s, 1);
    libssh2_session_set_timeout(s->s, SSH_OP_TIMEOUT_MS);
    LIBSSH2_SFTP *sftp = libssh2_sftp_init(s->s);
    if (!sftp) {
        int rc = libssh2_session_last_errno(s->s);
        if (rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
            rc == LIBSSH2_ERROR_SOCKET_DISCONNECT)
            s->broken = true;
        sb_error(err, SB_EUPSTREAM, "the node refused the SFTP subsystem");
    }
    return sftp;
}

/* Renames over an existing file. SFTP v3 rename (what OpenSSH speaks)
 * refuses an existing target, so that case uses mv on the node. */
static int replace_file(struct ssh_session *s, LIBSSH2_SFTP *sftp, const char *tmp, const char *target,
                        struct sb_err *err)
{
    if (libssh2_sftp_rename_ex(sftp, tmp, (unsigned)strlen(tmp), target, (unsigned)strlen(target),
                               LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
                                   LIBSSH2_SFTP_RENAME_NATIVE) == 0)
        return 0;
    struct buf cmd;
    buf_init(&cmd, 8 * PATH_MAX_LEN);
    buf_puts(&cmd, "mv -f -T -- ");
    const char *args[2] = {tmp, target};
    for (int i = 0; i < 2; i++) {
        buf_putc(&cmd, '\'');
        for (const char *p = args[i]; *p; p++)
            if (*p == '\'')
                buf_puts(&cmd, "'\\''");
            else
                buf_putc(&cmd, *p);
        buf_puts(&cmd, i == 0 ? "' " : "'");
    }
    struct ssh_exec_opts o = {.command = cmd.data, .timeout_ms = 15000, .max_output = 4096};
    struct ssh_exec_result r;
    ssh_exec_result_init(&r);
    int rc = ssh_exec(s, &o, &r, err);
    if (rc == 0 && r.exit_code != 0)
        rc = sb_error(err, SB_EUPSTREAM, "cannot replace '%s' on the node", target);
    ssh_exec_result_release(&r);
    buf_release(&cmd);
    return rc;
}

int ssh_sftp_upload(struct ssh_session *s, const char *base, const char *relpath, const void *data,
                    size_t len, long mode, size_t max_bytes, struct sb_err *err)
{
    if (max_bytes && len > max_bytes)
        return sb_error(err, SB_ETOOLARGE, "file is %zu bytes, more than the limit of %zu", len, max_bytes);
    if (mode < 0 || mode > 07777)
        return sb_field_error(err, "mode", "mode must be between 0 and 07777");
    LIBSSH2_SFTP *sftp = sftp_start(s, err);
    if (!sftp)
        return err ? err->code : SB_EUPSTREAM;
    char realbase[PATH_MAX_LEN + 2], realparent[PATH_MAX_LEN + 2];
    const char *leaf;
    char target[2 * PATH_MAX_LEN + 8], tmp[2 * PATH_MAX_LEN + 48];
    int rc = confine(sftp, base, relpath, realbase, realparent, &leaf, err);
    if (rc)
        goto out;
    snprintf(target, sizeof target, "%s/%s", realparent, leaf);
    LIBSSH2_SFTP_ATTRIBUTES st;
    bool exists = false;
    if (libssh2_sftp_lstat(sftp, target, &st) == 0) {
        exists = true;
        if (LIBSSH2_SFTP_S_ISLNK(st.permissions)) {
            rc = sb_field_error(err, "path", "path is a symlink on the node; refusing to write through it");
            goto out;
        }
        if (!LIBSSH2_SFTP_S_ISREG(st.permissions)) {
            rc = sb_field_error(err, "path", "path exists on the node and is not a regular file");
            goto out;
        }
    }
    char rnd[17];
    random_hex(rnd, 8);
    snprintf(tmp, sizeof tmp, "%s/.sbx-%s.tmp", realparent, rnd);
    LIBSSH2_SFTP_HANDLE *h =
        libssh2_sftp_open(sftp, tmp, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0600);
    if (!h) {
        rc = sb_error(err, SB_EUPSTREAM, "cannot create a temporary file in '%s' on the node", realparent);
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left && rc == 0) {
        ssize_t w = libssh2_sftp_write(h, p, left > SFTP_CHUNK ? SFTP_CHUNK : left);
        if (w <= 0)
            rc = sb_error(err, SB_EUPSTREAM, "write to the node failed");
        else {
            p += w;
            left -= (size_t)w;
        }
    }
    if (rc == 0) {
        LIBSSH2_SFTP_ATTRIBUTES a = {.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS,
                                     .permissions = (unsigned long)mode};
        if (libssh2_sftp_fsetstat(h, &a) != 0)
            rc = sb_error(err, SB_EUPSTREAM, "cannot set the mode of the file on the node");
    }
    libssh2_sftp_close(h);
    if (rc == 0)
        rc = exists ? replace_file(s, sftp, tmp, target, err)
                    : (libssh2_sftp_rename(sftp, tmp, target) == 0 ? 0
                                                                   : replace_file(s, sftp, tmp, target, err));
    if (rc)
        libssh2_sftp_unlink(sftp, tmp);
out:
    libssh2_sftp_shutdown(sftp);
    return rc;
}

int ssh_sftp_download(struct ssh_session *s, const char *base, const char *relpath, size_t max_bytes,
                      struct buf *out, struct sb_err *err)
{
    buf_reset(out);
    LIBSSH2_SFTP *sftp = sftp_start(s, err);
    if (!sftp)
        return err ? err->code : SB_EUPSTREAM;
    char realbase[PATH_MAX_LEN + 2], realparent[PATH_MAX_LEN + 2], real[PATH_MAX_LEN + 2];
    char target[2 * PATH_MAX_LEN + 8];
    const char *leaf;
    int rc = confine(sftp, base, relpath, realbase, realparent, &leaf, err);
    if (rc)
        goto out;
    snprintf(target, sizeof target, "%s/%s", realparent, leaf);
    rc = remote_realpath(sftp, target, real, sizeof real, err);
    if (rc)
        goto out;
    if (!inside(real, realbase)) {
        rc = sb_field_error(err, "path", "path leaves the base directory (through a symlink)");
        goto out;
    }
    LIBSSH2_SFTP_ATTRIBUTES st;
    if (libssh2_sftp_stat(sftp, real, &st) != 0 || !LIBSSH2_SFTP_S_ISREG(st.permissions)) {
        rc = sb_error(err, SB_ENOTFOUND, "'%s' is not a regular file on the node", relpath);
        goto out;
    }
    if (max_bytes && st.filesize > max_bytes) {
        rc = sb_error(err, SB_ETOOLARGE, "file is larger than the limit of %zu bytes", max_bytes);
        goto out;
    }
    LIBSSH2_SFTP_HANDLE *h = libssh2_sftp_open(sftp, real, LIBSSH2_FXF_READ, 0);
    if (!h) {
        rc = sb_error(err, SB_EUPSTREAM, "cannot open '%s' on the node", relpath);
        goto out;
    }
    char chunk[SFTP_CHUNK];
    for (;;) {
        ssize_t n = libssh2_sftp_read(h, chunk, sizeof chunk);
        if (n == 0)
            break;
        if (n < 0) {
            rc = sb_error(err, SB_EUPSTREAM, "read from the node failed");
            break;
        }
        if ((max_bytes && out->len + (size_t)n > max_bytes) || buf_append(out, chunk, (size_t)n)) {
            rc = sb_error(err, SB_ETOOLARGE, "file is larger than the limit of %zu bytes", max_bytes);
            break;
        }
    }
    libssh2_sftp_close(h);
out:
    libssh2_sftp_shutdown(sftp);
    return rc;
}
