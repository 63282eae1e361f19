/*
 * libFuzzer target for the Docker stream decoders: the multiplexed frame
 * decoder fed the input in pieces whose sizes the input itself picks (every
 * split matters to a state machine), its payloads into the line splitter,
 * and the engine-event translation of each line that is a JSON object.
 *
 * Input: the first byte (raw or framed; split seed), then the stream bytes.
 */
#include "docker/docker.h"

#include <string.h>

static int on_line(void *ctx, int stream, const char *line, size_t len)
{
    (void)ctx, (void)stream;
    json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    if (ev) {
        const char *type = NULL;
        json_t *data = NULL;
        if (docker_translate_event("local", ev, &type, &data) == 0)
            json_decref(data);
        json_decref(ev);
    }
    return 0;
}

static int on_data(void *ctx, int stream, const char *data, size_t len)
{
    return docker_lines_feed(ctx, stream, data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t seed = data[0];
    struct docker_lines lines;
    docker_lines_init(&lines, on_line, NULL);
    struct docker_frames f;
    docker_frames_init(&f, (seed & 1) != 0, on_data, &lines);
    const char *p = (const char *)data + 1;
    size_t left = size - 1;
    unsigned step = (seed >> 1) + 1;
    while (left) {
        size_t n = step < left ? step : left;
        if (docker_frames_feed(&f, p, n))
            break;
        p += n;
        left -= n;
        step = (step * 7 + 3) % 23 + 1;
    }
    docker_lines_flush(&lines);
    docker_lines_release(&lines);
    return 0;
}
