/*
 * static — a directory of static files (the dashboard) loaded into memory at
 * start, so that answering from it never blocks an MHD thread and a request
 * path can only ever name a file that was loaded: there is no filesystem
 * access at request time, hence no traversal through "..", encodings or
 * symlinks swapped in later. Changing the files needs a restart.
 *
 * Loading walks the directory, skips dot-files, and refuses (skips with a
 * warning) symlinks and anything else whose real path lies outside it.
 */
#ifndef SB_STATIC_H
#define SB_STATIC_H

#include "../util/util.h"

#include <stdbool.h>
#include <stddef.h>

struct static_site;

struct static_file {
    char *path; /* relative, "/"-separated, no leading "/": "js/app.js" */
    char *data; /* the bytes */
    size_t len;
    const char *content_type; /* from the extension */
    char etag[24];            /* a strong validator from the content, quoted */
    bool immutable;           /* the name carries a content hash ("app.3f9a1c2e.js") */
};

/* Limits on what is loaded; a tree over them fails to load. */
#define STATIC_MAX_FILES 4096
#define STATIC_MAX_BYTES ((size_t)64 << 20)
#define STATIC_MAX_DEPTH 12

/* Loads every regular file under dir. Returns NULL and fills err when dir
 * cannot be read or a limit is hit. The caller owns the site
 * (static_site_free). */
struct static_site *static_site_load(const char *dir, struct sb_err *err);
void static_site_free(struct static_site *site);
size_t static_site_count(const struct static_site *site);

/* The file for a URL path ("/js/app.js"), or NULL. Paths with "..", ".",
 * empty segments, backslashes or control characters never match. The file
 * belongs to the site. */
const struct static_file *static_site_find(const struct static_site *site, const char *url_path);

/* Content type for a file name, by extension. */
const char *static_content_type(const char *name);
/* Whether a base name carries a content hash of at least 8 hex digits
 * before its extension: "app.3f9a1c2e.js", "chunk-0a1b2c3d4e.css". */
bool static_name_is_hashed(const char *name);

#endif
