/*
 * The output ring: a fixed buffer addressed by absolute byte offsets, so a
 * client that reconnects with the offset it had reached resumes exactly
 * there (no loss, no duplicate) as long as those bytes are still held, and
 * is told where the ring starts otherwise. Pure: no locks, no I/O (the
 * terminal's lock guards it).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int term_ring_init(struct term_ring *r, size_t size)
{
    memset(r, 0, sizeof *r);
    r->data = malloc(size ? size : 1);
    if (!r->data)
        return SB_ENOMEM;
    r->size = size ? size : 1;
    return 0;
}

void term_ring_release(struct term_ring *r)
{
    free(r->data);
    memset(r, 0, sizeof *r);
}

void term_ring_write(struct term_ring *r, const char *p, size_t n)
{
    if (n >= r->size) { /* only the last `size` bytes can stay */
        p += n - r->size;
        r->end += n - r->size;
        n = r->size;
    }
    size_t pos = (size_t)(r->end % r->size);
    size_t first = r->size - pos < n ? r->size - pos : n;
    memcpy(r->data + pos, p, first);
    memcpy(r->data, p + first, n - first);
    r->end += n;
    if (r->end - r->start > r->size)
        r->start = r->end - r->size;
}

size_t term_ring_read(const struct term_ring *r, uint64_t at, char *out, size_t max)
{
    if (at < r->start || at >= r->end)
        return 0;
    size_t avail = (size_t)(r->end - at);
    size_t pos = (size_t)(at % r->size);
    size_t n = avail < max ? avail : max;
    if (n > r->size - pos)
        n = r->size - pos; /* to the wrap; the caller reads again */
    memcpy(out, r->data + pos, n);
    return n;
}
