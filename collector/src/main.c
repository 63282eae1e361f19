/*
 * serverbox-collector: configuration, the subcommands, and the run loop.
 *
 *   serverbox-collector enroll --core URL --token TOKEN   make a key, register it
 *   serverbox-collector --once                            print one sample as JSON
 *   serverbox-collector [run]                             sample, spool, send
 *
 * Options: a flag, then SERVERBOX_COLLECTOR_<NAME>, then the config file
 * (`name = value` lines, default /etc/serverbox-collector.conf), then the
 * default.
 */
#include "collector.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SERVERBOX_VERSION
#define SERVERBOX_VERSION "dev"
#endif

struct opt {
    const char *name, *def, *help;
    const char *value;
};

static struct opt opts[] = {
    {"core", NULL, "core URL(s), comma-separated, tried in order (https://host:port or http://host:port)",
     NULL},
    {"core-ca", NULL,
     "PEM file of the core's certificate or its CA, for https cores (default: the system CAs)", NULL},
    {"core-pin", NULL, "hex SHA-256 of the core's public key (its spki_sha256 log line), for https cores",
     NULL},
    {"token", NULL, "one-time enrollment token (enroll)", NULL},
    {"state-dir", "/var/lib/serverbox-collector", "key, identity, sequence number and spool", NULL},
    {"interval", "5", "seconds between samples", NULL},
    {"docker-socket", "/var/run/docker.sock", "Docker Engine socket (containers are skipped if unreadable)",
     NULL},
    {"spool-max-batches", "20000", "batches kept while no core answers; the oldest go first", NULL},
    {"backoff-max", "60", "longest wait between attempts to reach a core, seconds", NULL},
    {"timeout", "10", "seconds one request to a core may take", NULL},
    {"proc-root", "", "prefix for /proc and mount points (tests)", NULL},
    {"config", "/etc/serverbox-collector.conf", "configuration file", NULL},
    {"log-level", "info", "debug, info, warn or error", NULL},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

static char *file_values[N_OPTS];
static volatile sig_atomic_t stop_flag;

static struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

static const char *opt(const char *name)
{
    struct opt *o = find_opt(name, strlen(name));
    return o->value ? o->value : o->def;
}

static long opt_int(const char *name, long min, long max)
{
    long v = strtol(opt(name), NULL, 10);
    return v < min ? min : v > max ? max : v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: serverbox-collector [options] [run | enroll | version]\n"
            "       serverbox-collector --once\n\nOptions (flag, env SERVERBOX_COLLECTOR_*, config file):\n");
    for (size_t i = 0; i < N_OPTS; i++)
        fprintf(stderr, "  --%-20s %s%s%s%s\n", opts[i].name, opts[i].help, opts[i].def ? " (default " : "",
                opts[i].def ? opts[i].def : "", opts[i].def ? ")" : "");
}

/* Fills values not given as flags from the environment, then the file. */
static int load_config(void)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].value)
            continue;
        char env[96] = "SERVERBOX_COLLECTOR_";
        size_t n = strlen(env);
        for (const char *p = opts[i].name; *p && n < sizeof env - 1; p++)
            env[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        env[n] = '\0';
        const char *v = getenv(env);
        if (v && *v)
            opts[i].value = v;
    }
    const char *path = opt("config");
    FILE *f = fopen(path, "re");
    if (!f) {
        struct opt *c = find_opt("config", 6);
        if (c->value && errno != ENOENT) {
            fprintf(stderr, "serverbox-collector: cannot read %s: %s\n", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '#' || *s == '\n' || *s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(stderr, "serverbox-collector: %s:%d: expected name = value\n", path, lineno);
            fclose(f);
            return -1;
        }
        char *ke = eq;
        while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strcspn(v, "\r\n");
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        v[vl] = '\0';
        struct opt *o = find_opt(s, (size_t)(ke - s));
        if (!o) {
            fprintf(stderr, "serverbox-collector: %s:%d: unknown option '%.*s'\n", path, lineno,
                    (int)(ke - s), s);
            fclose(f);
            return -1;
        }
        size_t idx = (size_t)(o - opts);
        if (!o->value) {
            free(file_values[idx]);
            file_values[idx] = strdup(v);
            o->value = file_values[idx];
        }
    }
    fclose(f);
    return 0;
}

static void state_path(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", opt("state-dir"), name);
}

/* Writes a small file atomically with the given mode. */
static int write_file(const char *path, const char *data, mode_t mode)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(data);
    bool ok = write(fd, data, len) == (ssize_t)len && fchmod(fd, mode) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int read_small(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(out, 1, len - 1, f);
    fclose(f);
    out[n] = '\0';
    return 0;
}

struct identity {
    char node_id[64];
    char fingerprint[65];
    char core[512];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static int load_identity(struct identity *id)
{
    char path[600], text[2048];
    memset(id, 0, sizeof *id);
    state_path("identity", path, sizeof path);
    if (read_small(path, text, sizeof text))
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "node_id=", 8))
            sb_strlcpy(id->node_id, line + 8, sizeof id->node_id);
        else if (!strncmp(line, "fingerprint=", 12))
            sb_strlcpy(id->fingerprint, line + 12, sizeof id->fingerprint);
        else if (!strncmp(line, "core=", 5))
            sb_strlcpy(id->core, line + 5, sizeof id->core);
    }
    state_path("key", path, sizeof path);
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077))
        log_warn("key file is readable by others; it should be mode 0600", "path=%s", path);
    char hex[2 * crypto_sign_SECRETKEYBYTES + 8];
    if (read_small(path, hex, sizeof hex))
        return -1;
    hex[strcspn(hex, "\r\n")] = '\0';
    int rc = hex_decode(hex, id->sk, sizeof id->sk);
    sodium_memzero(hex, sizeof hex);
    return rc == 0 && id->node_id[0] && id->fingerprint[0] ? 0 : -1;
}

static int cmd_enroll(void)
{
    const char *core = opt("core"), *token = opt("token");
    if (!core || !token) {
        fprintf(stderr, "serverbox-collector: enroll needs --core URL and --token TOKEN\n");
        return 2;
    }
    char first[512];
    sb_strlcpy(first, core, sizeof first);
    first[strcspn(first, ",")] = '\0';
    if (mkdir(opt("state-dir"), 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "serverbox-collector: cannot create %s: %s\n", opt("state-dir"), strerror(errno));
        return 1;
    }
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    char pk_hex[65], host[256] = "";
    hex_encode(pk, sizeof pk, pk_hex);
    gethostname(host, sizeof host - 1);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "token", token, "public_key", pk_hex, "hostname", host,
                            "version", SERVERBOX_VERSION);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct buf resp;
    buf_init(&resp, 65536);
    int status = net_post(first, "/api/v1/agent/enroll", NULL, body, strlen(body),
                          (int)opt_int("timeout", 1, 300) * 1000, &resp);
    sodium_memzero(body, strlen(body));
    free(body);
    int rc = 1;
    json_t *ans = json_loads(resp.data, 0, NULL);
    const char *node_id = json_string_value(json_object_get(ans, "node_id"));
    const char *fp = json_string_value(json_object_get(ans, "fingerprint"));
    if (status != 201 || !node_id || !fp) {
        fprintf(stderr, "serverbox-collector: enrollment refused (%d): %s\n", status,
                status < 0 ? net_last_error() : resp.data);
        goto out;
    }
    char path[600], sk_hex[2 * sizeof sk + 2], ident[1200], seq[32];
    hex_encode(sk, sizeof sk, sk_hex);
    sk_hex[2 * sizeof sk] = '\n';
    sk_hex[2 * sizeof sk + 1] = '\0';
    state_path("key", path, sizeof path);
    int w = write_file(path, sk_hex, 0600);
    sodium_memzero(sk_hex, sizeof sk_hex);
    snprintf(ident, sizeof ident, "node_id=%s\nfingerprint=%s\ncore=%s\n", node_id, fp, core);
    char ipath[600], spath[600];
    state_path("identity", ipath, sizeof ipath);
    state_path("seq", spath, sizeof spath);
    /* A fresh identity starts its sequence at the clock in milliseconds:
     * above anything an earlier identity of this node sent (one per interval),
     * so the core's duplicate check never swallows the new batches. */
    snprintf(seq, sizeof seq, "%lld\n", (long long)(time_now_us() / 1000));
    if (w || write_file(ipath, ident, 0600) || write_file(spath, seq, 0600)) {
        fprintf(stderr, "serverbox-collector: cannot write to %s: %s\n", opt("state-dir"), strerror(errno));
        goto out;
    }
    printf("enrolled node %s\nfingerprint %s\n", node_id, fp);
    rc = 0;
out:
    sodium_memzero(sk, sizeof sk);
    json_decref(ans);
    buf_release(&resp);
    return rc;
}

struct sampler {
    struct proc_state proc;
    struct docker_state docker;
};

/* One sample object `{"ts":…,…}` into out. */
static void take_sample(struct sampler *s, struct buf *out)
{
    int64_t now = time_now_us() / 1000;
    struct buf p;
    buf_init(&p, 4 << 20);
    proc_sample(opt("proc-root"), &s->proc, now, &p);
    buf_printf(out, "{\"ts\":%lld", (long long)now);
    if (p.len) {
        buf_putc(out, ',');
        buf_append(out, p.data, p.len);
    }
    docker_sample(opt("docker-socket"), &s->docker, now, out);
    buf_putc(out, '}');
    buf_release(&p);
}

static int cmd_once(void)
{
    struct sampler s = {0};
    struct buf b;
    buf_init(&b, 8 << 20);
    take_sample(&s, &b); /* the first reading only primes the rates */
    buf_reset(&b);
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    take_sample(&s, &b);
    printf("%s\n", b.data);
    buf_release(&b);
    proc_state_release(&s.proc);
    docker_state_release(&s.docker);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

enum send_result { SEND_OK, SEND_DROP, SEND_RETRY };

/* Signs and sends one spooled batch to the first core that takes it. */
static enum send_result send_batch(const struct identity *id, const char *cores, int64_t seq,
                                   struct buf *payload)
{
    struct buf body;
    buf_init(&body, (size_t)16 << 20);
    buf_append(&body, payload->data, payload->len);
    buf_printf(&body, ",\"sent_at\":%lld}", (long long)(time_now_us() / 1000));
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)body.data, body.len, id->sk);
    char sig_hex[2 * crypto_sign_BYTES + 1], headers[400];
    hex_encode(sig, sizeof sig, sig_hex);
    snprintf(headers, sizeof headers, "X-Serverbox-Key: %s\r\nX-Serverbox-Signature: %s\r\n", id->fingerprint,
             sig_hex);
    enum send_result r = SEND_RETRY;
    char list[1024];
    sb_strlcpy(list, cores, sizeof list);
    struct buf resp;
    buf_init(&resp, 65536);
    char *save = NULL;
    for (char *url = strtok_r(list, ",", &save); url && r == SEND_RETRY; url = strtok_r(NULL, ",", &save)) {
        while (*url == ' ')
            url++;
        int status = net_post(url, "/api/v1/agent/metrics", headers, body.data, body.len,
                              (int)opt_int("timeout", 1, 300) * 1000, &resp);
        if (status >= 200 && status < 300) {
            r = SEND_OK;
        } else if (status == 400 || status == 413 || status == 415 || status == 422) {
            /* The core will never take this batch: keeping it would block the spool. */
            log_error("batch refused for good; dropped", "seq=%lld status=%d answer=\"%.200s\"",
                      (long long)seq, status, resp.data);
            r = SEND_DROP;
        } else if (status == 401) {
            /* Kept and retried: a clock put right or a fresh enrollment
             * (same state dir) lets the spool drain. Said once per spell. */
            static int64_t told_seq = -1;
            if (told_seq != seq)
                log_warn("the core refuses this collector's batches; re-enroll if its key was revoked",
                         "core=%s seq=%lld answer=\"%.200s\"", url, (long long)seq, resp.data);
            told_seq = seq;
        } else if (status < 0 && strstr(net_last_error(), "certificate refused")) {
            log_warn("core not trusted; batch kept", "core=%s detail=\"%s\"", url, net_last_error());
        } else {
            log_debug("core did not take the batch", "core=%s seq=%lld status=%d detail=\"%s\"", url,
                      (long long)seq, status, net_last_error());
        }
    }
    buf_release(&resp);
    buf_release(&body);
    return r;
}

static int cmd_run(void)
{
    struct identity id;
    if (load_identity(&id)) {
        fprintf(stderr,
                "serverbox-collector: not enrolled (no key or identity in %s): run 'serverbox-collector "
                "enroll --core URL --token TOKEN' first\n",
                opt("state-dir"));
        return 2;
    }
    const char *cores = opt("core") ? opt("core") : id.core;
    if (!cores || !*cores) {
        fprintf(stderr, "serverbox-collector: no core URL (--core)\n");
        return 2;
    }
    long interval_ms = opt_int("interval", 1, 3600) * 1000;
    long backoff_max = opt_int("backoff-max", 1, 3600) * 1000;
    char spool_dir[600], seq_path[600], seq_text[64] = "";
    state_path("spool", spool_dir, sizeof spool_dir);
    state_path("seq", seq_path, sizeof seq_path);
    struct spool sp;
    if (spool_open(&sp, spool_dir, (size_t)opt_int("spool-max-batches", 1, 10000000))) {
        fprintf(stderr, "serverbox-collector: cannot open spool %s: %s\n", spool_dir, strerror(errno));
        return 1;
    }
    read_small(seq_path, seq_text, sizeof seq_text);
    int64_t seq = strtoll(seq_text, NULL, 10);
    if (sp.hi > seq)
        seq = sp.hi;
    if (seq <= 0)
        seq = time_now_us() / 1000;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    log_info("collector started", "node=%s interval_ms=%ld spooled=%zu core=%s", id.node_id, interval_ms,
             spool_count(&sp), cores);

    struct sampler s = {0};
    struct buf batch, sample, payload;
    buf_init(&batch, (size_t)8 << 20);
    buf_init(&sample, (size_t)8 << 20);
    buf_init(&payload, (size_t)16 << 20);
    int64_t next_sample = time_mono_ms(), next_try = 0, backoff = 0;
    int failures = 0;
    bool was_down = false;
    while (!stop_flag) {
        int64_t now = time_mono_ms();
        if (now >= next_sample) {
            buf_reset(&sample);
            take_sample(&s, &sample);
            seq++;
            buf_reset(&batch);
            buf_printf(&batch,
                       "{\"v\":1,\"node_id\":\"%s\",\"seq\":%lld,\"interval_ms\":%ld,\"samples\":[%s]",
                       id.node_id, (long long)seq, interval_ms, sample.data);
            char t[32];
            snprintf(t, sizeof t, "%lld\n", (long long)seq);
            uint64_t dropped = sp.dropped;
            if (spool_put(&sp, seq, batch.data, batch.len) || write_file(seq_path, t, 0600))
                log_error("cannot write to the spool", "dir=%s error=\"%s\"", spool_dir, strerror(errno));
            if (sp.dropped != dropped)
                log_warn("spool full; oldest batches dropped", "dropped_total=%llu",
                         (unsigned long long)sp.dropped);
            log_debug("sampled", "seq=%lld", (long long)seq);
            next_sample += interval_ms;
            if (next_sample <= now)
                next_sample = now + interval_ms;
        }
        /* Send oldest first; stop at the first failure and back off. */
        for (int sent = 0; spool_count(&sp) && now >= next_try && sent < 1000 && !stop_flag; sent++) {
            int64_t bseq;
            if (spool_peek(&sp, &bseq, &payload))
                break;
            enum send_result r = send_batch(&id, cores, bseq, &payload);
            if (r == SEND_RETRY) {
                failures++;
                backoff = failures > 16 ? backoff_max : 1000LL << (failures - 1);
                if (backoff > backoff_max)
                    backoff = backoff_max;
                backoff = backoff / 2 + (int64_t)randombytes_uniform((uint32_t)(backoff / 2 + 1));
                next_try = time_mono_ms() + backoff;
                if (!was_down)
                    log_warn("no core reachable; spooling", "spooled=%zu", spool_count(&sp));
                was_down = true;
                break;
            }
            spool_pop(&sp);
            failures = 0;
            if (was_down)
                log_info("core reachable again; spool draining", "spooled=%zu", spool_count(&sp));
            was_down = false;
            now = time_mono_ms();
            if (now >= next_sample)
                break;
        }
        int64_t wake = next_sample;
        if (spool_count(&sp) && next_try < wake)
            wake = next_try;
        int64_t wait = wake - time_mono_ms();
        if (wait > 0) {
            struct timespec ts = {wait / 1000, (wait % 1000) * 1000000};
            nanosleep(&ts, NULL); /* a signal cuts it short */
        }
    }
    log_info("collector stopping", "spooled=%zu last_seq=%lld", spool_count(&sp), (long long)seq);
    buf_release(&batch);
    buf_release(&sample);
    buf_release(&payload);
    proc_state_release(&s.proc);
    docker_state_release(&s.docker);
    sodium_memzero(&id, sizeof id);
    return 0;
}

int main(int argc, char **argv)
{
    const char *command = "run";
    bool once = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(a, "--once")) {
            once = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            command = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        struct opt *o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) {
            fprintf(stderr, "serverbox-collector: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            fprintf(stderr, "serverbox-collector: %s needs a value\n", a);
            return 2;
        }
    }
    if (sodium_init() < 0)
        return 1;
    int rc = load_config();
    char terr[256];
    if (rc == 0 && tls_configure(opt("core-ca"), opt("core-pin"), terr, sizeof terr)) {
        fprintf(stderr, "serverbox-collector: %s\n", terr);
        rc = -1;
    }
    if (rc == 0) {
        log_set_level(opt("log-level"));
        if (once)
            rc = cmd_once();
        else if (!strcmp(command, "enroll"))
            rc = cmd_enroll();
        else if (!strcmp(command, "run"))
            rc = cmd_run();
        else if (!strcmp(command, "version"))
            rc = printf("serverbox-collector %s\n", SERVERBOX_VERSION) < 0;
        else {
            fprintf(stderr, "serverbox-collector: unknown command '%s' (see --help)\n", command);
            rc = 2;
        }
    } else {
        rc = 2;
    }
    for (size_t i = 0; i < N_OPTS; i++)
        free(file_values[i]);
    return rc;
}
