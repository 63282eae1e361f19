/*
 * Notifications: one "alert.deliver" job per alert transition and channel,
 * queued in the transition event's transaction (alerts_transition).
 * The job loads the channel and its sealed secrets (never in job args),
 * formats the message for the channel's kind, sends it with libcurl (HTTP
 * POST, or SMTP with STARTTLS when the server offers it), and records the
 * attempt with the receiver's answer (alert.delivered / delivery_failed).
 * A receiver that is down or answers 5xx/429/408 is retried with backoff
 * (jobs/); another 4xx fails at once.
 *
 * Every connection is checked again at connect time (CURLOPT_OPENSOCKET):
 * a name that now resolves to a refused address (DNS rebinding) is not
 * reached. Redirects are not followed.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ANSWER_MAX 1000

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

#define CHANNELS_MAX 64 /* delivery jobs queued with one transition */

int alerts_transition(struct alerts *a, const char *stream, const char *type, json_t *data, json_t *rule,
                      json_t *alert, const char *notification, int *queued, struct sb_err *err)
{
    *queued = 0;
    json_t *channels = NULL;
    if (rule && notification && store_alert_channels_list(a->cfg.store, &channels, err))
        return err && err->code ? err->code : SB_EUNAVAIL; /* nothing recorded: the next round tries again */
    struct jobs_new ins[CHANNELS_MAX];
    json_t *args[CHANNELS_MAX];
    char keys[CHANNELS_MAX][80], target[64];
    int n = 0;
    snprintf(target, sizeof target, "alert/%s", jstr(alert, "id"));
    const char *node = jstr(alert, "node_id");
    json_t *wanted = json_object_get(rule, "channels");
    size_t i;
    json_t *c;
    json_array_foreach(channels, i, c)
    {
        if (!json_is_true(json_object_get(c, "enabled")))
            continue;
        if (json_array_size(wanted)) {
            bool named = false;
            size_t j;
            json_t *w;
            json_array_foreach(wanted, j, w) named = named || json_equal(w, json_object_get(c, "id"));
            if (!named)
                continue;
        }
        if (n == CHANNELS_MAX) {
            log_warn("notification not queued: too many channels", "alert=%s channel=%s", jstr(alert, "id"),
                     jstr(c, "id"));
            continue;
        }
        args[n] = json_pack("{s:s, s:s, s:s}", "alert_id", jstr(alert, "id"), "channel_id", jstr(c, "id"),
                            "notification", notification);
        /* One delivery at a time per channel, in order: a resolution never
         * overtakes its firing, and a receiver that hangs holds one worker. */
        snprintf(keys[n], sizeof keys[n], "alert-channel/%s", jstr(c, "id"));
        ins[n] = (struct jobs_new){.kind = "alert.deliver",
                                   .target = target,
                                   .concurrency_key = keys[n],
                                   .node_id = node && uuid_valid(node) ? node : NULL,
                                   .args = args[n],
                                   .actor = {.kind = "system", .name = "alerts"}};
        n++;
    }
    /* The transition and its deliveries: one transaction. */
    struct event_new ev = {.stream = stream,
                           .type = type,
                           .data = data,
                           .actor = {.kind = "system", .name = "alerts"},
                           .outcome = "success"};
    int rc = jobs_enqueue_with(a->cfg.jobs, &ev, ins, n, err);
    if (rc == 0)
        *queued = n;
    for (int k = 0; k < n; k++)
        json_decref(args[k]);
    json_decref(channels);
    return rc;
}

/* ---- sending ------------------------------------------------------------------ */

struct send {
    struct alerts *a;
    struct buf answer; /* the receiver's answer, first ANSWER_MAX bytes */
    const char *upload;
    size_t upload_len, upload_off;
    char last_line[300]; /* SMTP: the server's last reply line */
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct send *s = ud;
    size_t n = size * nmemb;
    if (s->answer.len < ANSWER_MAX)
        buf_append(&s->answer, ptr, n < ANSWER_MAX - s->answer.len ? n : ANSWER_MAX - s->answer.len);
    return n;
}

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct send *s = ud;
    size_t room = size * nmemb, left = s->upload_len - s->upload_off;
    size_t n = left < room ? left : room;
    memcpy(ptr, s->upload + s->upload_off, n);
    s->upload_off += n;
    return n;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct send *s = ud;
    if (type == CURLINFO_HEADER_IN && size) {
        size_t n = size;
        while (n && (data[n - 1] == '\n' || data[n - 1] == '\r'))
            n--;
        snprintf(s->last_line, sizeof s->last_line, "%.*s", (int)n, data);
    }
    return 0;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct send *s = ud;
    char ip[64] = "";
    if (addr->family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&addr->addr)->sin_addr, ip, sizeof ip);
    else if (addr->family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&addr->addr)->sin6_addr, ip, sizeof ip);
    if (!alerts_address_allowed(ip, s->a->cfg.allow_loopback)) {
        snprintf(s->last_line, sizeof s->last_line, "refused to connect to %s", ip);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static void common_options(CURL *h, struct send *s, const char *url)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, s);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* feeds on_debug only */
    if (s->a->cfg.ca_file && *s->a->cfg.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->a->cfg.ca_file);
}

/* 0 and *status for an answer (any status), SB_EUNAVAIL for no answer. */
static int http_post(struct send *s, const char *url, struct curl_slist *headers, const char *body,
                     size_t len, long *status, struct sb_err *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return sb_error(err, SB_ENOMEM, "out of memory");
    common_options(h, s, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "serverbox-alerts/1");
    CURLcode rc = curl_easy_perform(h);
    int out = 0;
    if (rc != CURLE_OK)
        out = sb_error(err, SB_EUNAVAIL, "%s%s%s", curl_easy_strerror(rc), s->last_line[0] ? ": " : "",
                       strncmp(s->last_line, "refused", 7) == 0 ? s->last_line : "");
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    return out;
}

static void rfc5322_date(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static int smtp_send(struct send *s, json_t *config, json_t *secret, const char *text, const char *delivery,
                     long *status, struct sb_err *err)
{
    const char *nl = strchr(text, '\n');
    char subject[300];
    snprintf(subject, sizeof subject, "%.*s", nl ? (int)(nl - text) : (int)strlen(text), text);
    for (char *p = subject; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    struct buf msg;
    buf_init(&msg, 1 << 20);
    char date[64];
    rfc5322_date(date, sizeof date);
    buf_printf(&msg, "Date: %s\r\nFrom: Serverbox <%s>\r\nTo: ", date, jstr(config, "from"));
    size_t i;
    json_t *to;
    json_array_foreach(json_object_get(config, "to"), i, to)
        buf_printf(&msg, "%s<%s>", i ? ", " : "", json_string_value(to));
    buf_printf(&msg,
               "\r\nSubject: %s\r\nMessage-ID: <%s@serverbox>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
               subject, delivery);
    /* The body with CRLF line ends and dot-stuffing left to curl. */
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            buf_puts(&msg, "\r\n");
        else
            buf_putc(&msg, *p);
    }
    buf_puts(&msg, "\r\n");
    CURL *h = curl_easy_init();
    if (!h) {
        buf_release(&msg);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    common_options(h, s, jstr(secret, "url"));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     jstr(config, "starttls") && strcmp(jstr(config, "starttls"), "required") == 0
                         ? (long)CURLUSESSL_ALL
                         : (long)CURLUSESSL_TRY);
    char from[300];
    snprintf(from, sizeof from, "<%s>", jstr(config, "from"));
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    struct curl_slist *rcpt = NULL;
    json_array_foreach(json_object_get(config, "to"), i, to)
    {
        char r[300];
        snprintf(r, sizeof r, "<%s>", json_string_value(to));
        rcpt = curl_slist_append(rcpt, r);
    }
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    if (jstr(config, "username"))
        curl_easy_setopt(h, CURLOPT_USERNAME, jstr(config, "username"));
    if (jstr(secret, "password"))
        curl_easy_setopt(h, CURLOPT_PASSWORD, jstr(secret, "password"));
    s->upload = msg.data;
    s->upload_len = msg.len;
    s->upload_off = 0;
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, s);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    CURLcode rc = curl_easy_perform(h);
    int out = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (rc != CURLE_OK) {
        /* A refusal with a 5xx reply is the server's answer: permanent. */
        if (*status >= 500 && *status < 600)
            out = sb_error(err, SB_EUPSTREAM, "the SMTP server refused: %s", s->last_line);
        else
            out = sb_error(err, SB_EUNAVAIL, "%s%s%.200s", curl_easy_strerror(rc),
                           s->last_line[0] ? ": " : "", s->last_line);
    }
    buf_reset(&s->answer);
    buf_puts(&s->answer, s->last_line);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(h);
    buf_release(&msg);
    return out;
}

static int send_http(struct send *s, const char *kind, json_t *secret, json_t *alert,
                     const char *notification, const char *delivery, long *status, struct sb_err *err)
{
    struct buf text;
    buf_init(&text, 1 << 16);
    alerts_text(alert, notification, &text);
    struct curl_slist *h = NULL;
    char *body = NULL;
    size_t len = 0;
    const char *url = jstr(secret, "url");
    char gotify_url[2100];
    if (strcmp(kind, "webhook") == 0) {
        json_t *p = alerts_payload(alert, notification, delivery);
        body = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        len = body ? strlen(body) : 0;
        char ts[32], sig[72], line[200];
        snprintf(ts, sizeof ts, "%lld", (long long)(time_now_us() / 1000000));
        alerts_signature(jstr(secret, "secret"), ts, body ? body : "", len, sig);
        h = curl_slist_append(h, "Content-Type: application/json");
        snprintf(line, sizeof line, "X-Serverbox-Event: %s", notification);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof line, "X-Serverbox-Delivery: %s", delivery);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof line, "X-Serverbox-Timestamp: %s", ts);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof line, "X-Serverbox-Signature: %s", sig);
        h = curl_slist_append(h, line);
    } else if (strcmp(kind, "slack") == 0 || strcmp(kind, "discord") == 0) {
        if (strcmp(kind, "discord") == 0 && text.len > 1900) {
            text.data[1900] = '\0';
            text.len = 1900;
        }
        json_t *p = json_pack("{s:s}", strcmp(kind, "slack") == 0 ? "text" : "content", text.data);
        body = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        len = body ? strlen(body) : 0;
        h = curl_slist_append(h, "Content-Type: application/json");
    } else if (strcmp(kind, "gotify") == 0) {
        /* POST <server>/message {title, message, priority}; the application
         * token in X-Gotify-Key (never in the URL, which is logged by
         * proxies). Priority: 8 critical, 5 warning, 2 info or resolved. */
        char *nl = strchr(text.data, '\n');
        char title[300];
        snprintf(title, sizeof title, "%.*s", nl ? (int)(nl - text.data) : (int)text.len, text.data);
        const char *sev = jstr(alert, "severity");
        int prio = strcmp(notification, "resolved") == 0 ? 2
                   : sev && strcmp(sev, "critical") == 0 ? 8
                   : sev && strcmp(sev, "info") == 0     ? 2
                                                         : 5;
        json_t *p = json_pack("{s:s, s:s, s:i}", "title", title, "message", nl ? nl + 1 : text.data,
                              "priority", prio);
        body = p ? json_dumps(p, JSON_COMPACT) : NULL;
        json_decref(p);
        len = body ? strlen(body) : 0;
        const char *base = jstr(secret, "url");
        size_t blen = base ? strlen(base) : 0;
        while (blen && base[blen - 1] == '/')
            blen--;
        snprintf(gotify_url, sizeof gotify_url, "%.*s/message", (int)blen, base ? base : "");
        url = gotify_url;
        char line[300];
        h = curl_slist_append(h, "Content-Type: application/json");
        snprintf(line, sizeof line, "X-Gotify-Key: %.200s",
                 jstr(secret, "token") ? jstr(secret, "token") : "");
        h = curl_slist_append(h, line);
        sodium_memzero(line, sizeof line);
    } else { /* ntfy: the title header and the rest as the message */
        char *nl = strchr(text.data, '\n');
        char title[300], line[400];
        snprintf(title, sizeof title, "%.*s", nl ? (int)(nl - text.data) : (int)text.len, text.data);
        for (char *q = title; *q; q++) /* a header line: no CR, LF or other controls */
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                *q = ' ';
        body = strdup(nl ? nl + 1 : text.data);
        len = body ? strlen(body) : 0;
        snprintf(line, sizeof line, "Title: %s", title);
        h = curl_slist_append(h, line);
        const char *sev = jstr(alert, "severity");
        bool resolved = strcmp(notification, "resolved") == 0;
        snprintf(line, sizeof line, "Priority: %s",
                 resolved                              ? "default"
                 : sev && strcmp(sev, "critical") == 0 ? "urgent"
                 : sev && strcmp(sev, "info") == 0     ? "default"
                                                       : "high");
        h = curl_slist_append(h, line);
        h = curl_slist_append(h, resolved ? "Tags: white_check_mark" : "Tags: rotating_light");
        h = curl_slist_append(h, "Content-Type: text/plain; charset=utf-8");
        if (jstr(secret, "token")) {
            snprintf(line, sizeof line, "Authorization: Bearer %.300s", jstr(secret, "token"));
            h = curl_slist_append(h, line);
        }
    }
    int rc = body ? http_post(s, url, h, body, len, status, err) : sb_error(err, SB_ENOMEM, "out of memory");
    curl_slist_free_all(h);
    free(body);
    buf_release(&text);
    return rc;
}

/* ---- the job --------------------------------------------------------------------- */

static void record(struct alerts *a, struct job_ctx *c, json_t *alert, json_t *channel,
                   const char *notification, bool ok, long status, const char *answer)
{
    bool test = !alert;
    const char *id = test ? jstr(channel, "id") : jstr(alert, "id");
    char stream[96];
    snprintf(stream, sizeof stream, "%s/%s", test ? "alert_channel" : "alert", id);
    json_t *d = json_pack("{s:s, s:O, s:O, s:s, s:i, s:s}", "id", id, "channel_id",
                          json_object_get(channel, "id"), "channel_name", json_object_get(channel, "name"),
                          "notification", notification, "attempt", job_attempt(c), "job_id", job_id(c));
    /* The receiver's answer is text the log can hold only as valid UTF-8. */
    json_t *ans = json_string(answer ? answer : "");
    json_object_set_new(d, "answer", ans ? ans : json_string("(an answer that is not UTF-8)"));
    if (status > 0)
        json_object_set_new(d, "status", json_integer(status));
    if (alert && jstr(alert, "node_id"))
        json_object_set(d, "node_id", json_object_get(alert, "node_id"));
    const char *type = test ? (ok ? "alert_channel.test_delivered" : "alert_channel.test_failed")
                            : (ok ? "alert.delivered" : "alert.delivery_failed");
    struct sb_err err = {0};
    if (alerts_append(a, stream, type, d, &err))
        log_warn("delivery not recorded", "channel=%s detail=\"%s\"", jstr(channel, "id"), err.msg);
    json_decref(d);
}

int alerts_deliver_job(struct job_ctx *c, json_t *args, json_t **result, struct sb_err *err)
{
    struct alerts *a = job_kind_ctx(c);
    const char *channel_id = jstr(args, "channel_id"), *alert_id = jstr(args, "alert_id");
    const char *notification = jstr(args, "notification") ? jstr(args, "notification") : "firing";
    json_t *channel = NULL, *alert = NULL, *secret = NULL;
    int rc = store_alert_channel_get(a->cfg.store, channel_id, &channel, err);
    if (rc == 0 && !json_is_true(json_object_get(channel, "enabled"))) {
        *result = json_pack("{s:s}", "skipped", "the channel is disabled");
        json_decref(channel);
        return 0;
    }
    if (rc == 0 && alert_id)
        rc = store_alert_get(a->cfg.store, alert_id, &alert, err);
    if (rc == 0)
        rc = alerts_channel_secrets(a, channel_id, &secret, err);
    if (rc) {
        json_decref(channel);
        json_decref(alert);
        return rc == SB_EUNAVAIL ? rc : sb_error(err, rc, "%s", err->msg);
    }
    struct send s = {.a = a};
    buf_init(&s.answer, ANSWER_MAX + 1);
    const char *kind = jstr(channel, "kind");
    long status = 0;
    json_t *empty = alert ? NULL : json_object();
    job_progress(c, -1, "sending");
    if (strcmp(kind, "email") == 0) {
        /* The text's first line is the subject. */
        struct buf text;
        buf_init(&text, 1 << 16);
        alerts_text(alert ? alert : empty, notification, &text);
        rc = smtp_send(&s, json_object_get(channel, "config"), secret, text.data, job_id(c), &status, err);
        buf_release(&text);
    } else {
        rc = send_http(&s, kind, secret, alert ? alert : empty, notification, job_id(c), &status, err);
    }
    bool ok = false;
    if (rc == 0) {
        if (strcmp(kind, "email") == 0)
            ok = true;
        else if (status >= 200 && status < 300)
            ok = true;
        else if (status >= 500 || status == 429 || status == 408)
            rc = sb_error(err, SB_EUNAVAIL, "the receiver answered %ld", status);
        else
            rc = sb_error(err, SB_EUPSTREAM, "the receiver answered %ld", status);
    }
    const char *answer = rc && !ok && s.answer.len == 0 ? err->msg : s.answer.data;
    record(a, c, alert, channel, notification, ok, status, answer);
    job_log(c, "%s %s: %s %ld", kind, ok ? "delivered" : "failed", rc ? err->msg : "status", status);
    if (ok)
        *result = json_pack("{s:i, s:s}", "status", (int)status, "answer", s.answer.data);
    buf_release(&s.answer);
    json_decref(empty);
    if (secret) {
        json_object_clear(secret);
        json_decref(secret);
    }
    json_decref(channel);
    json_decref(alert);
    return rc;
}
