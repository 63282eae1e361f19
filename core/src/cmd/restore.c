/* restore: the control plane from a backup (backups/controlplane.c). */
#include "cmd.h"

#include "../backups/backups.h"
#include "../crypto/crypto.h"

#include <stdio.h>
#include <string.h>

int cmd_restore(const struct config *cfg)
{
    const char *repo = config_get(cfg, "repository"), *pwfile = config_get(cfg, "repository-password-file");
    const char *url = cmd_admin_database_url(cfg);
    if (!repo || !*repo || !pwfile || !*pwfile || !url || !*url) {
        fprintf(stderr, "serverbox-core: restore needs --repository, --repository-password-file and "
                        "--database-url (an empty database, owned by the schema owner)\n");
        return 2;
    }
    struct sb_err err = {0};
    struct buf pw;
    buf_init(&pw, 4096);
    if (file_read_all(pwfile, 4096, &pw, &err)) {
        fprintf(stderr, "serverbox-core: restore: %s\n", err.msg);
        buf_release(&pw);
        return 2;
    }
    while (pw.len && (pw.data[pw.len - 1] == '\n' || pw.data[pw.len - 1] == '\r'))
        pw.data[--pw.len] = '\0';
    struct backups_restore_cli c = {.repo = repo,
                                    .password = pw.data,
                                    .snapshot = config_get(cfg, "snapshot"),
                                    .database_url = url,
                                    .data_dir = config_get(cfg, "data-dir"),
                                    .master_key_file = config_get(cfg, "master-key-file")};
    int rc = backups_restore_control_plane(&c, &err);
    crypto_buf_wipe(&pw);
    if (rc) {
        fprintf(stderr, "serverbox-core: restore: %s\n", err.msg);
        return 1;
    }
    return 0;
}
