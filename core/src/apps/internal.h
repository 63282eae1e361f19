/* Private to apps/. */
#ifndef SB_APPS_INTERNAL_H
#define SB_APPS_INTERNAL_H

#include "apps.h"

/* git.c: the bare mirror of an app, fetched with libgit2. */
struct apps_git_hooks {
    void (*progress)(void *ctx, unsigned received, unsigned total);
    bool (*cancelled)(void *ctx);
    void *ctx;
    /* ssh remotes */
    const char *ssh_key;      /* the deploy key, OpenSSH private key text (ed25519/ECDSA); may be NULL */
    const char *ssh_pub;      /* its authorized_keys line; NULL = derived by libssh2 (which leaks a little) */
    const char *host_key_pin; /* "SHA256:…" the host must present; NULL = accept and report it */
    char host_key_seen[80];   /* out: what the host presented */
};
/* Fetches `branch` of `url` into the bare mirror at `dir` (made on first
 * use; later fetches are incremental) and gives the commit it points at.
 * Over ssh the host's key must match host_key_pin (SB_EDENIED otherwise:
 * the fetch never authenticates to another host). */
int apps_git_fetch(const char *dir, const char *url, const char *branch, struct apps_git_hooks *h,
                   char commit[41], struct sb_err *err);
/* The names at the top of `subdir` ("" = the root) of a commit: a new array. */
int apps_git_names(const char *dir, const char *commit, const char *subdir, json_t **names,
                   struct sb_err *err);
/* The tree of `subdir` at the commit as a tar (libarchive, pax), with
 * `dockerfile` (may be NULL) added as ./Dockerfile. At most
 * APPS_CONTEXT_MAX bytes and APPS_CONTEXT_ENTRIES entries; submodules are
 * left out. */
int apps_git_tar(const char *dir, const char *commit, const char *subdir, const char *dockerfile,
                 struct buf *out, struct sb_err *err);

#endif
