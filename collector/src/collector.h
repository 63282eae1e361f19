/*
 * serverbox-collector — the node agent. One header for its few parts:
 *   proc.c    /proc and statvfs readers (a root prefix lets tests use fixture trees)
 *   docker.c  per-container figures from the Engine API over the unix socket
 *   net.c     a minimal HTTP/1.1 client over TCP (one request per connection), http or https
 *   tls.c     TLS with BearSSL: the core's certificate checked by anchors (--core-ca) or a key pin
 *   spool.c   the bounded on-disk queue of batches, sent oldest first
 *   main.c    configuration, enroll, --once, the run loop, signing
 *
 * Everything is single-threaded. Readers never crash on a missing file or an
 * odd line: what cannot be read is left out of the sample.
 */
#ifndef SB_COLLECTOR_H
#define SB_COLLECTOR_H

#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- proc.c ------------------------------------------------------------ */

struct cpu_times {
    uint64_t busy, total; /* jiffies: total includes idle and iowait */
};

struct mem_info {
    int64_t total, available, swap_total, swap_free; /* bytes; -1 when unknown */
};

/* A named device with cumulative counters (disk or network interface). */
struct dev_counters {
    char name[64];
    uint64_t c[4];    /* see the reader that fills it */
    uint64_t errs[2]; /* network: rx and tx errors */
};

struct fs_usage {
    char mount[256];
    char type[32];
    uint64_t total, used;
};

/* Parsers. Each returns 0, or -1 when the file is missing or unusable; a
 * caller treats -1 as "not measured". Arrays are malloc'd (free()). */
int proc_read_stat(const char *root, struct cpu_times *total, struct cpu_times **cores, size_t *n_cores);
int proc_read_meminfo(const char *root, struct mem_info *out);
int proc_read_loadavg(const char *root, double load[3]);
int proc_read_uptime(const char *root, double *uptime);
int proc_count_processes(const char *root, long *count);
/* Whole disks only (partitions, loop and ram devices skipped); c[0] read
 * bytes, c[1] written bytes. */
int proc_read_diskstats(const char *root, struct dev_counters **out, size_t *n);
/* c[0] rx bytes, c[1] tx bytes, c[2] rx packets, c[3] tx packets, errs[0] rx
 * errors, errs[1] tx errors. */
int proc_read_netdev(const char *root, struct dev_counters **out, size_t *n);
/* Real mounted filesystems (pseudo filesystems and duplicate devices
 * skipped), with statvfs figures of root+mountpoint. */
int proc_read_filesystems(const char *root, struct fs_usage **out, size_t *n);
/* Whether a filesystem type is a pseudo filesystem (proc, tmpfs, cgroup…). */
bool proc_pseudo_fs(const char *type);

/* What a reading keeps for the next one, to turn counters into rates. */
struct proc_state {
    bool have;
    int64_t t_ms;
    struct cpu_times cpu;
    struct cpu_times *cores;
    size_t n_cores;
    struct dev_counters *disks, *ifaces;
    size_t n_disks, n_ifaces;
};
void proc_state_release(struct proc_state *st);

/* Reads everything under root and appends the members of one sample (no
 * braces: `"cpu":{…},"mem":{…},…`) to out; rates against st, which it then
 * updates. */
void proc_sample(const char *root, struct proc_state *st, int64_t now_ms, struct buf *out);

/* Appends s as a JSON string (quoted, escaped). */
void json_put_str(struct buf *b, const char *s);
/* Appends a number, or null when not finite. */
void json_put_num(struct buf *b, double v);

/* ---- docker.c ---------------------------------------------------------- */

struct docker_state {
    struct docker_prev *prev;
    size_t n_prev;
    bool warned;
};
/* Appends `"containers":[…]` (possibly empty) when the socket answers;
 * appends nothing when it does not. */
void docker_sample(const char *socket_path, struct docker_state *st, int64_t now_ms, struct buf *out);
void docker_state_release(struct docker_state *st);

/* ---- net.c ------------------------------------------------------------- */

/* POSTs body to base_url + path with extra headers ("Name: value\r\n" lines).
 * Returns the HTTP status, or -1 when the server could not be reached; the
 * response body goes to resp (capped). */
int net_post(const char *base_url, const char *path, const char *extra_headers, const char *body, size_t len,
             int timeout_ms, struct buf *resp);

/* Why the last net_post failed ("" when it reached the core), for logs. */
const char *net_last_error(void);

/* ---- tls.c ------------------------------------------------------------- */

/* How https:// cores are trusted: ca_file (PEM anchors; NULL or "" = the
 * system bundle unless a pin is given) and/or pin (hex SHA-256 of the core's
 * SubjectPublicKeyInfo, optionally "sha256/"-prefixed). Files are read at
 * the first https request. Returns 0, or -1 with err. */
int tls_configure(const char *ca_file, const char *pin, char *err, size_t errlen);
/* Over a connected socket: handshake with host (SNI, name check), sends out1
 * then out2, reads until the core closes into in. Returns 0, or -1 with err
 * (a refused certificate says why). */
int tls_exchange(int fd, const char *host, const char *out1, size_t len1, const char *out2, size_t len2,
                 int64_t deadline, struct buf *in, char *err, size_t errlen);
/* Pure DER helpers (unit tests, fuzzing): the SubjectPublicKeyInfo TLV of a
 * certificate; whether its subjectAltName holds the iPAddress ip. */
int tls_cert_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len);
bool tls_cert_has_ip(const uint8_t *der, size_t len, const uint8_t *ip, size_t ip_len);
/* Every CERTIFICATE in PEM text as BearSSL trust anchors (an array of n
 * br_x509_trust_anchor, freed by tls_anchors_free). -1 when none. */
int tls_pem_anchors(const char *pem, size_t len, void **anchors, size_t *n);
void tls_anchors_free(void *anchors, size_t n);

/* ---- spool.c ----------------------------------------------------------- */

struct spool {
    char dir[512];
    int64_t lo, hi; /* seqs held: lo..hi; empty when lo > hi */
    size_t max_batches;
    uint64_t dropped;
};
/* Opens (creating) dir and finds the batches already there. */
int spool_open(struct spool *sp, const char *dir, size_t max_batches);
/* Stores a batch under seq (seq must be hi+1 or the spool empty); drops the
 * oldest batches beyond the bound. */
int spool_put(struct spool *sp, int64_t seq, const char *data, size_t len);
/* Reads the oldest batch into out; -1 when empty. */
int spool_peek(struct spool *sp, int64_t *seq, struct buf *out);
/* Removes the oldest batch. */
void spool_pop(struct spool *sp);
static inline size_t spool_count(const struct spool *sp)
{
    return sp->lo > sp->hi ? 0 : (size_t)(sp->hi - sp->lo + 1);
}

#endif
