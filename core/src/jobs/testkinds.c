/*
 * Job kinds for the black-box tests only (serve --job-test-kinds 1): they
 * exercise the queue without Docker. Never registered otherwise.
 *
 * test.sleep {ms, fail_times, fail_code, marker}: sleeps ms (reporting
 * progress), stopping early when cancelled; fails its first fail_times
 * attempts with fail_code ("unavailable": retried, "invalid": not); on
 * success appends "<job id> <attempt>\n" to the file `marker` (an absolute
 * path) — the side effect the tests count.
 */
#include "jobs.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int test_sleep(struct job_ctx *c, json_t *args, json_t **result, struct sb_err *err)
{
    json_int_t ms = json_integer_value(json_object_get(args, "ms"));
    json_int_t fail_times = json_integer_value(json_object_get(args, "fail_times"));
    const char *code = json_string_value(json_object_get(args, "fail_code"));
    const char *marker = json_string_value(json_object_get(args, "marker"));
    if (ms < 0 || ms > 600000)
        return sb_field_error(err, "ms", "ms is 0 to 600000");
    if (job_attempt(c) <= fail_times) {
        job_log(c, "failing attempt %d on purpose", job_attempt(c));
        if (code && strcmp(code, "invalid") == 0)
            return sb_error(err, SB_EINVAL, "failed on purpose (not retried)");
        return sb_error(err, SB_EUNAVAIL, "failed on purpose (retried)");
    }
    int64_t start = time_mono_ms(), last = 0;
    job_progress(c, 0, "sleeping");
    for (;;) {
        int64_t el = time_mono_ms() - start;
        if (el >= ms)
            break;
        if (job_cancelled(c))
            return sb_error(err, SB_ECONFLICT, "cancelled");
        if (el - last >= 200) {
            last = el;
            job_progress(c, (int)(el * 100 / (ms ? ms : 1)), "sleeping");
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (marker) {
        if (marker[0] != '/' || strlen(marker) > 200)
            return sb_field_error(err, "marker", "marker is an absolute path");
        int fd = open(marker, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
            return sb_error(err, SB_EINTERNAL, "cannot open the marker file");
        char line[80];
        int n = snprintf(line, sizeof line, "%s %d\n", job_id(c), job_attempt(c));
        ssize_t w = write(fd, line, (size_t)n);
        close(fd);
        if (w != n)
            return sb_error(err, SB_EINTERNAL, "cannot write the marker file");
    }
    job_progress(c, 100, "done");
    *result = json_pack("{s:I, s:i}", "slept_ms", ms, "attempt", job_attempt(c));
    return 0;
}

int jobs_register_test_kinds(struct jobs *j, struct sb_err *err)
{
    struct jobs_kind k = {.kind = "test.sleep", .run = test_sleep, .max_attempts = 3, .timeout_s = 600};
    return jobs_register(j, &k, err);
}
