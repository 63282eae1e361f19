/*
 * The in-memory file tree. Files are kept sorted by path and found by
 * binary search.
 */
#include "static.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct static_site {
    struct static_file *files;
    size_t n, cap;
    size_t bytes;
    char root[PATH_MAX]; /* real path of the directory */
};

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *static_content_type(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
            if (strcasecmp(dot + 1, content_types[i].ext) == 0)
                return content_types[i].type;
    return "application/octet-stream";
}

bool static_name_is_hashed(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *ext = strrchr(base, '.');
    if (!ext || ext == base)
        return false;
    /* the run of hex digits right before the extension, after '.' or '-' */
    const char *p = ext;
    size_t n = 0;
    while (p > base && strchr("0123456789abcdefABCDEF", p[-1])) {
        p--;
        n++;
    }
    return n >= 8 && p > base && (p[-1] == '.' || p[-1] == '-');
}

/* FNV-1a 64: an ETag needs to change with the content, not resist attack. */
static void etag_of(const char *data, size_t len, char *out, size_t outlen)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, outlen, "\"%016llx\"", (unsigned long long)h);
}

static bool inside_root(const struct static_site *site, const char *real)
{
    size_t n = strlen(site->root);
    return strncmp(real, site->root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

static int add_file(struct static_site *site, const char *rel, const char *full, struct sb_err *err)
{
    if (site->n >= STATIC_MAX_FILES)
        return sb_error(err, SB_ETOOLARGE, "more than %d files under the dashboard directory",
                        STATIC_MAX_FILES);
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_error(err, SB_EINVAL, "cannot open '%s': %s", full, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    size_t size = (size_t)st.st_size;
    if (site->bytes + size > STATIC_MAX_BYTES) {
        close(fd);
        return sb_error(err, SB_ETOOLARGE, "the dashboard directory holds more than %zu bytes",
                        (size_t)STATIC_MAX_BYTES);
    }
    char *data = malloc(size ? size : 1);
    size_t got = 0;
    while (data && got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!data || got != size) {
        free(data);
        return sb_error(err, SB_EINVAL, "cannot read '%s'", full);
    }
    if (site->n == site->cap) {
        size_t cap = site->cap ? site->cap * 2 : 64;
        struct static_file *f = realloc(site->files, cap * sizeof *f);
        if (!f) {
            free(data);
            return sb_error(err, SB_ENOMEM, "out of memory");
        }
        site->files = f;
        site->cap = cap;
    }
    struct static_file *f = &site->files[site->n];
    memset(f, 0, sizeof *f);
    f->path = strdup(rel);
    if (!f->path) {
        free(data);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    f->data = data;
    f->len = size;
    f->content_type = static_content_type(rel);
    f->immutable = static_name_is_hashed(rel);
    etag_of(data, size, f->etag, sizeof f->etag);
    site->n++;
    site->bytes += size;
    return 0;
}

static int walk(struct static_site *site, const char *rel, int depth, struct sb_err *err)
{
    if (depth > STATIC_MAX_DEPTH)
        return sb_error(err, SB_ETOOLARGE, "the dashboard directory is nested deeper than %d",
                        STATIC_MAX_DEPTH);
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s%s%s", site->root, *rel ? "/" : "", rel) >= (int)sizeof dir)
        return sb_error(err, SB_EINVAL, "path too long under '%s'", site->root);
    DIR *d = opendir(dir);
    if (!d)
        return sb_error(err, SB_EINVAL, "cannot read '%s': %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", and dot-files (.gitignore, editor swap files) */
        char child_rel[PATH_MAX], full[PATH_MAX * 2], real[PATH_MAX];
        if (snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "", e->d_name) >=
            (int)sizeof child_rel)
            continue;
        snprintf(full, sizeof full, "%s/%s", site->root, child_rel);
        if (!realpath(full, real) || !inside_root(site, real)) {
            log_warn("dashboard file skipped: it resolves outside the dashboard directory", "path=\"%s\"",
                     child_rel);
            continue;
        }
        struct stat st;
        if (stat(real, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc = walk(site, child_rel, depth + 1, err);
        else if (S_ISREG(st.st_mode))
            rc = add_file(site, child_rel, real, err);
    }
    closedir(d);
    return rc;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct static_file *)a)->path, ((const struct static_file *)b)->path);
}

struct static_site *static_site_load(const char *dir, struct sb_err *err)
{
    struct static_site *site = calloc(1, sizeof *site);
    if (!site) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    if (!realpath(dir, site->root)) {
        sb_error(err, SB_EINVAL, "dashboard directory '%s': %s", dir, strerror(errno));
        free(site);
        return NULL;
    }
    if (walk(site, "", 0, err)) {
        static_site_free(site);
        return NULL;
    }
    if (site->n)
        qsort(site->files, site->n, sizeof *site->files, file_cmp);
    return site;
}

void static_site_free(struct static_site *site)
{
    if (!site)
        return;
    for (size_t i = 0; i < site->n; i++) {
        free(site->files[i].path);
        free(site->files[i].data);
    }
    free(site->files);
    free(site);
}

size_t static_site_count(const struct static_site *site)
{
    return site ? site->n : 0;
}

static bool path_is_clean(const char *p)
{
    if (!*p)
        return false;
    const char *seg = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t n = (size_t)(c - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*c == '\0')
                return true;
            seg = c + 1;
        } else if (*c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
}

const struct static_file *static_site_find(const struct static_site *site, const char *url_path)
{
    if (!site || !url_path || url_path[0] != '/')
        return NULL;
    const char *rel = url_path + 1;
    if (!path_is_clean(rel))
        return NULL;
    struct static_file key = {.path = (char *)rel};
    return bsearch(&key, site->files, site->n, sizeof *site->files, file_cmp);
}
