/*
 * libgit2 1.5: a bare mirror per app under <data-dir>/apps/<id>.git,
 * fetched incrementally (1.5 has no shallow clone); the build context is
 * read from the mirror's objects (no checkout on disk) and written as a tar
 * with libarchive. A mirror is used by one thread at a time: deployments of
 * one app run one at a time (the job's concurrency key), and different apps
 * have different mirrors. Errors are per thread in libgit2: read right away.
 */
#include "internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <git2.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void apps_global_init(void)
{
    git_libgit2_init();
}

void apps_global_shutdown(void)
{
    git_libgit2_shutdown();
}

static int git_fail(struct sb_err *err, int code, const char *what)
{
    const git_error *e = git_error_last();
    return sb_error(err, code, "%s: %s", what, e && e->message ? e->message : "unknown libgit2 error");
}

struct fetch_ctx {
    struct apps_git_hooks *h;
    bool cancelled;
    bool mismatch;
    int auth_tries;
};

static int on_transfer(const git_indexer_progress *stats, void *payload)
{
    struct fetch_ctx *c = payload;
    if (c->h && c->h->cancelled && c->h->cancelled(c->h->ctx)) {
        c->cancelled = true;
        return -1;
    }
    if (c->h && c->h->progress)
        c->h->progress(c->h->ctx, stats->received_objects, stats->total_objects);
    return 0;
}

/* https: the TLS library's verdict. ssh: the host key's SHA-256 against
 * the pin (ssh-keygen -l's form); without a pin it is accepted and
 * reported, and the caller pins it. */
static int on_certificate(git_cert *cert, int valid, const char *host, void *payload)
{
    struct fetch_ctx *c = payload;
    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
        return valid ? 0 : GIT_ECERTIFICATE;
    const git_cert_hostkey *hk = (const git_cert_hostkey *)cert;
    if (!(hk->type & GIT_CERT_SSH_SHA256))
        return GIT_ECERTIFICATE;
    char b64[48]; /* 43 characters */
    sodium_bin2base64(b64, sizeof b64, hk->hash_sha256, 32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(c->h->host_key_seen, sizeof c->h->host_key_seen, "SHA256:%s", b64);
    /* A mismatch is refused by on_credentials (no key is offered to that
     * host): failing here instead leaks libgit2 1.5's known-hosts list. */
    if (c->h->host_key_pin && *c->h->host_key_pin && strcmp(c->h->host_key_pin, c->h->host_key_seen) != 0)
        c->mismatch = true;
    return 0;
}

/* The deploy key, once: libgit2 asks again after each refusal. */
static int on_credentials(git_credential **out, const char *url, const char *username, unsigned int allowed,
                          void *payload)
{
    struct fetch_ctx *c = payload;
    if (c->mismatch)
        return GIT_EUSER; /* not the pinned host: never authenticate to it */
    if (!(allowed & GIT_CREDENTIAL_SSH_KEY) || !c->h->ssh_key || c->auth_tries++ > 0)
        return GIT_PASSTHROUGH;
    return git_credential_ssh_key_memory_new(out, username && *username ? username : "git", c->h->ssh_pub,
                                             c->h->ssh_key, NULL);
}

int apps_git_fetch(const char *dir, const char *url, const char *branch, struct apps_git_hooks *h,
                   char commit[41], struct sb_err *err)
{
    commit[0] = '\0';
    git_repository *repo = NULL;
    git_remote *remote = NULL;
    int rc = 0;
    if (git_repository_open_bare(&repo, dir) < 0) {
        if (git_repository_init(&repo, dir, 1) < 0)
            return git_fail(err, SB_EINTERNAL, "cannot make the app's mirror");
    }
    /* A fetch killed midway (kill -9 of the core) leaves its lock files; no
     * other fetch of this mirror can be running now. */
    char lock[1024];
    snprintf(lock, sizeof lock, "%s/refs/heads/%s.lock", dir, branch);
    unlink(lock);
    snprintf(lock, sizeof lock, "%s/packed-refs.lock", dir);
    unlink(lock);
    if (git_remote_create_anonymous(&remote, repo, url) < 0) {
        rc = git_fail(err, SB_EINVAL, "bad repository URL");
        goto out;
    }
    char spec[512];
    snprintf(spec, sizeof spec, "+refs/heads/%s:refs/heads/%s", branch, branch);
    char *specs[1] = {spec};
    git_strarray refspecs = {specs, 1};
    git_fetch_options opts;
    git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
    struct fetch_ctx fc = {.h = h};
    opts.callbacks.transfer_progress = on_transfer;
    opts.callbacks.certificate_check = on_certificate;
    opts.callbacks.credentials = on_credentials;
    opts.callbacks.payload = &fc;
    opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    opts.prune = GIT_FETCH_NO_PRUNE;
    if (git_remote_fetch(remote, &refspecs, &opts, NULL) < 0) {
        if (fc.cancelled)
            rc = sb_error(err, SB_ETIMEOUT, "the fetch was cancelled");
        else if (fc.mismatch)
            rc = sb_error(
                err, SB_EDENIED,
                "the git host's key changed: pinned %s, offered %s (set git_host_key if that is expected)",
                h->host_key_pin, h->host_key_seen);
        else if (fc.auth_tries > 0)
            rc = git_fail(err, SB_EDENIED, "the git host refused the deploy key");
        else
            rc = git_fail(err, SB_EUNAVAIL, "fetch failed");
        goto out;
    }
    char ref[512];
    snprintf(ref, sizeof ref, "refs/heads/%s", branch);
    git_oid oid;
    if (git_reference_name_to_id(&oid, repo, ref) < 0) {
        rc = sb_error(err, SB_ENOTFOUND, "the repository has no branch %s", branch);
        goto out;
    }
    git_oid_tostr(commit, 41, &oid);
out:
    git_remote_free(remote);
    git_repository_free(repo);
    return rc;
}

/* The tree of subdir at commit (*repo and *tree the caller's). */
static int open_tree(const char *dir, const char *commit, const char *subdir, git_repository **repo,
                     git_tree **tree, struct sb_err *err)
{
    *repo = NULL;
    *tree = NULL;
    git_oid oid;
    git_commit *c = NULL;
    git_tree *root = NULL;
    if (git_repository_open_bare(repo, dir) < 0)
        return git_fail(err, SB_EINTERNAL, "cannot open the app's mirror");
    if (git_oid_fromstr(&oid, commit) < 0 || git_commit_lookup(&c, *repo, &oid) < 0 ||
        git_commit_tree(&root, c) < 0) {
        git_commit_free(c);
        return git_fail(err, SB_ENOTFOUND, "cannot read the commit");
    }
    git_commit_free(c);
    if (!subdir || !*subdir) {
        *tree = root;
        return 0;
    }
    git_tree_entry *e = NULL;
    int rc = 0;
    if (git_tree_entry_bypath(&e, root, subdir) < 0 || git_tree_entry_type(e) != GIT_OBJECT_TREE)
        rc = sb_error(err, SB_ENOTFOUND, "the commit has no directory %s", subdir);
    else if (git_tree_lookup(tree, *repo, git_tree_entry_id(e)) < 0)
        rc = git_fail(err, SB_EINTERNAL, "cannot read the directory");
    git_tree_entry_free(e);
    git_tree_free(root);
    return rc;
}

int apps_git_names(const char *dir, const char *commit, const char *subdir, json_t **names,
                   struct sb_err *err)
{
    *names = NULL;
    git_repository *repo;
    git_tree *tree;
    int rc = open_tree(dir, commit, subdir, &repo, &tree, err);
    if (rc == 0) {
        *names = json_array();
        size_t n = git_tree_entrycount(tree);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*names, json_string(git_tree_entry_name(git_tree_entry_byindex(tree, i))));
    }
    git_tree_free(tree);
    git_repository_free(repo);
    return rc;
}

struct tar_ctx {
    git_repository *repo;
    struct archive *a;
    struct buf *out;
    size_t entries;
    time_t mtime;
    int rc;
    struct sb_err *err;
};

static la_ssize_t on_write(struct archive *a, void *ud, const void *buf, size_t len)
{
    struct tar_ctx *t = ud;
    if (buf_append(t->out, buf, len)) {
        archive_set_error(a, ENOSPC, "the build context is larger than its limit");
        return -1;
    }
    return (la_ssize_t)len;
}

static int add_entry(struct tar_ctx *t, const char *path, mode_t type, int perm, const void *data, size_t len,
                     const char *link)
{
    if (++t->entries > APPS_CONTEXT_ENTRIES) {
        t->rc = sb_error(t->err, SB_ETOOLARGE, "the build context has more than %d entries",
                         APPS_CONTEXT_ENTRIES);
        return -1;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_mtime(e, t->mtime, 0);
    archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)len : 0);
    if (link)
        archive_entry_set_symlink(e, link);
    int r = archive_write_header(t->a, e);
    if (r == ARCHIVE_OK && type == AE_IFREG && len && archive_write_data(t->a, data, len) != (la_ssize_t)len)
        r = ARCHIVE_FATAL;
    archive_entry_free(e);
    if (r != ARCHIVE_OK) {
        t->rc = sb_error(t->err, t->out->len >= t->out->max ? SB_ETOOLARGE : SB_EINTERNAL,
                         "cannot write the build context: %s", archive_error_string(t->a) ?: "error");
        return -1;
    }
    return 0;
}

static int on_tree_entry(const char *root, const git_tree_entry *entry, void *payload)
{
    struct tar_ctx *t = payload;
    char path[4096];
    snprintf(path, sizeof path, "%s%s", root, git_tree_entry_name(entry));
    git_filemode_t mode = git_tree_entry_filemode(entry);
    if (mode == GIT_FILEMODE_TREE)
        return add_entry(t, path, AE_IFDIR, 0755, NULL, 0, NULL) ? -1 : 0;
    if (mode == GIT_FILEMODE_COMMIT)
        return 0; /* a submodule: not fetched */
    git_blob *blob = NULL;
    if (git_blob_lookup(&blob, t->repo, git_tree_entry_id(entry)) < 0) {
        t->rc = git_fail(t->err, SB_EINTERNAL, "cannot read a file of the commit");
        return -1;
    }
    const void *data = git_blob_rawcontent(blob);
    size_t len = (size_t)git_blob_rawsize(blob);
    int r;
    if (mode == GIT_FILEMODE_LINK) {
        char target[4096];
        snprintf(target, sizeof target, "%.*s", (int)(len < 4095 ? len : 4095), (const char *)data);
        r = add_entry(t, path, AE_IFLNK, 0777, NULL, 0, target);
    } else {
        r = add_entry(t, path, AE_IFREG, mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644, data, len, NULL);
    }
    git_blob_free(blob);
    return r ? -1 : 0;
}

int apps_git_tar(const char *dir, const char *commit, const char *subdir, const char *dockerfile,
                 struct buf *out, struct sb_err *err)
{
    git_repository *repo;
    git_tree *tree;
    int rc = open_tree(dir, commit, subdir, &repo, &tree, err);
    if (rc) {
        git_tree_free(tree);
        git_repository_free(repo);
        return rc;
    }
    struct tar_ctx t = {.repo = repo, .out = out, .mtime = 0, .err = err};
    /* the commit's time for every entry: the same commit gives the same
     * context, so the engine's build cache holds */
    git_oid oid;
    git_commit *c = NULL;
    if (git_oid_fromstr(&oid, commit) == 0 && git_commit_lookup(&c, repo, &oid) == 0)
        t.mtime = (time_t)git_commit_time(c);
    git_commit_free(c);
    t.a = archive_write_new();
    archive_write_set_format_pax_restricted(t.a);
    archive_write_set_bytes_in_last_block(t.a, 1);
    if (archive_write_open(t.a, &t, NULL, on_write, NULL) != ARCHIVE_OK) {
        rc = sb_error(err, SB_EINTERNAL, "cannot start the build context");
    } else {
        if (git_tree_walk(tree, GIT_TREEWALK_PRE, on_tree_entry, &t) < 0 && t.rc == 0)
            t.rc = git_fail(err, SB_EINTERNAL, "cannot walk the commit's tree");
        if (t.rc == 0 && dockerfile)
            add_entry(&t, "Dockerfile", AE_IFREG, 0644, dockerfile, strlen(dockerfile), NULL);
        if (archive_write_close(t.a) != ARCHIVE_OK && t.rc == 0)
            t.rc = sb_error(err, out->len >= out->max ? SB_ETOOLARGE : SB_EINTERNAL,
                            "cannot finish the build context");
        rc = t.rc;
    }
    archive_write_free(t.a);
    git_tree_free(tree);
    git_repository_free(repo);
    return rc;
}
