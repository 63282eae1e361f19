/*
 * append-load: appends events from many threads through store_append, the
 * same path the daemon uses. Used by the tests (concurrency, gaplessness) and
 * by the benchmark (events per second).
 *
 *   append-load DATABASE_URL THREADS EVENTS_PER_THREAD [STREAM_PREFIX]
 * Prints one JSON line: {"threads":..,"events":..,"seconds":..,"per_second":..,"failed":..}
 */
#include "store/store.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    struct store *st;
    int id, count, failed;
    const char *prefix;
    pthread_t thread;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    char stream[96], n[32];
    snprintf(stream, sizeof stream, "%s/%d", w->prefix, w->id);
    for (int i = 0; i < w->count; i++) {
        snprintf(n, sizeof n, "%d", i);
        json_t *data =
            json_pack("{s:i, s:s, s:s}", "i", i, "worker", stream, "note", "load \"quoted\" \xc3\xa9");
        struct event_new ev = {.stream = stream,
                               .type = "test.appended",
                               .data = data,
                               .actor = {.kind = "system", .id = n, .name = "append-load", .ip = NULL},
                               .outcome = "success"};
        struct sb_err err = {0};
        int64_t seq;
        if (store_append(w->st, &ev, &seq, &err)) {
            w->failed++;
            fprintf(stderr, "append failed: %s\n", err.msg);
        }
        json_decref(data);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: append-load DATABASE_URL THREADS EVENTS_PER_THREAD [STREAM_PREFIX]\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    log_set_level("warn");
    int threads = (int)strtol(argv[2], NULL, 10), per = (int)strtol(argv[3], NULL, 10);
    struct sb_err err = {0};
    struct store_config cfg = {.database_url = argv[1], .pool_size = 2};
    struct store *st = store_open(&cfg, &err);
    if (!st) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct worker *w = calloc((size_t)threads, sizeof *w);
    int64_t t0 = time_mono_ms();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.st = st, .id = i, .count = per, .prefix = argc > 4 ? argv[4] : "load"};
        pthread_create(&w[i].thread, NULL, run, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        failed += w[i].failed;
    }
    double secs = (double)(time_mono_ms() - t0) / 1000.0;
    struct store_stats ss;
    store_get_stats(st, &ss);
    printf(
        "{\"threads\":%d,\"events\":%d,\"seconds\":%.3f,\"per_second\":%.0f,\"failed\":%d,\"groups\":%llu}\n",
        threads, threads * per, secs, secs > 0 ? threads * per / secs : 0.0, failed,
        (unsigned long long)ss.groups_committed);
    store_close(st);
    free(w);
    return failed ? 1 : 0;
}
