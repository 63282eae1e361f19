/*
 * libFuzzer target for the collector's parsers of untrusted-ish bytes: the
 * /proc readers (stat, meminfo, loadavg, uptime, diskstats, net/dev,
 * mounts) and a whole sample with rates against the previous one, and the
 * TLS helpers that read the core's certificate (SPKI for pins, the
 * iPAddress SAN check) and PEM trust anchors.
 *
 * The /proc readers take a root prefix (as the unit tests' fixture trees):
 * the input is written to a file under a private directory in /dev/shm.
 * Input: the first byte picks the file or helper; the rest is its content.
 */
#include "collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static const char *const files[] = {"/proc/stat",      "/proc/meminfo", "/proc/loadavg", "/proc/uptime",
                                    "/proc/diskstats", "/proc/net/dev", "/proc/mounts"};
#define N_FILES (sizeof files / sizeof files[0])

static void put(const char *rel, const uint8_t *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s%s", root, rel);
    FILE *f = fopen(path, "we");
    if (!f)
        abort();
    if (len && fwrite(data, 1, len, f) != len)
        abort();
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(root, sizeof root, "/dev/shm/sbx-fuzz-proc-%d", (int)getpid());
    char p[128];
    mkdir(root, 0700);
    snprintf(p, sizeof p, "%s/proc", root);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/proc/net", root);
    mkdir(p, 0700);
    for (size_t i = 0; i < N_FILES; i++)
        put(files[i], (const uint8_t *)"", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] % (N_FILES + 3);
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    if (pick == N_FILES) {
        const uint8_t *spki;
        size_t sl;
        const uint8_t ip4[4] = {127, 0, 0, 1};
        tls_cert_spki(body, len, &spki, &sl);
        tls_cert_has_ip(body, len, ip4, 4);
        return 0;
    }
    if (pick == N_FILES + 1) {
        void *tas = NULL;
        size_t n = 0;
        if (tls_pem_anchors((const char *)body, len, &tas, &n) == 0)
            tls_anchors_free(tas, n);
        return 0;
    }
    if (pick == N_FILES + 2) {
        /* The same bytes as every file at once: a whole sample, twice (rates). */
        for (size_t i = 0; i < N_FILES; i++)
            put(files[i], body, len);
    } else {
        put(files[pick], body, len);
    }
    struct proc_state st = {0};
    struct buf out;
    buf_init(&out, 8 << 20);
    proc_sample(root, &st, 1000, &out);
    buf_reset(&out);
    proc_sample(root, &st, 6000, &out);
    buf_release(&out);
    proc_state_release(&st);
    for (size_t i = 0; i < N_FILES; i++)
        put(files[i], (const uint8_t *)"", 0);
    return 0;
}
