/*
 * ssh-bench: times `true` through the SSH module, warm pool vs a fresh
 * connection each time. Used by bench/ssh.bench.sh.
 *   ssh-bench HOST PORT USER KEYFILE FINGERPRINT COUNT pool|fresh
 * Prints {"mode":…,"count":…,"p50_ms":…,"p99_ms":…,"failed":…}.
 */
#include "ssh/ssh.h"
#include "util/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: ssh-bench HOST PORT USER KEYFILE FINGERPRINT COUNT pool|fresh\n");
        return 2;
    }
    if (sodium_init() < 0 || ssh_global_init() != 0)
        return 1;
    struct sb_err err = {0};
    struct buf key;
    buf_init(&key, 65536);
    if (file_read_all(argv[4], 65536, &key, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct ssh_target t = {.node_id = "bench",
                           .host = argv[1],
                           .port = (int)strtol(argv[2], NULL, 10),
                           .user = argv[3],
                           .private_key = key.data,
                           .private_key_len = key.len,
                           .fingerprint = argv[5]};
    int n = (int)strtol(argv[6], NULL, 10);
    bool pool_mode = strcmp(argv[7], "pool") == 0;
    struct ssh_pool_config pc = {.per_node = 3};
    struct ssh_pool *pool = ssh_pool_new(&pc, &err);
    double *lat = calloc((size_t)n, sizeof *lat);
    int failed = 0;
    struct ssh_exec_opts o = {.command = "true", .timeout_ms = 10000, .max_output = 4096};
    if (pool_mode) { /* warm it */
        struct ssh_exec_result r;
        ssh_exec_result_init(&r);
        ssh_pool_exec(pool, &t, &o, &r, NULL, &err);
        ssh_exec_result_release(&r);
    }
    for (int i = 0; i < n; i++) {
        struct ssh_exec_result r;
        ssh_exec_result_init(&r);
        double t0 = now_ms();
        int rc;
        if (pool_mode) {
            rc = ssh_pool_exec(pool, &t, &o, &r, NULL, &err);
        } else {
            struct ssh_session *s = NULL;
            rc = ssh_connect(&t, 10000, &s, NULL, &err);
            if (rc == 0)
                rc = ssh_exec(s, &o, &r, &err);
            ssh_session_close(s);
        }
        lat[i] = now_ms() - t0;
        if (rc || r.exit_code != 0)
            failed++;
        ssh_exec_result_release(&r);
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("{\"mode\":\"%s\",\"count\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"failed\":%d}\n", argv[7], n,
           lat[n / 2], lat[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1], failed);
    free(lat);
    ssh_pool_free(pool);
    buf_release(&key);
    ssh_global_cleanup();
    return failed ? 1 : 0;
}
