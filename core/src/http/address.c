/*
 * Client addresses and trusted proxies. Only a peer inside a trusted range
 * may speak for someone else through X-Forwarded-For; the client is then the
 * rightmost forwarded address that is not itself a trusted proxy.
 */
#include "http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_one(const char *spec, struct http_cidr *out)
{
    char addr[64];
    const char *slash = strchr(spec, '/');
    size_t alen = slash ? (size_t)(slash - spec) : strlen(spec);
    if (alen == 0 || alen >= sizeof addr)
        return -1;
    memcpy(addr, spec, alen);
    addr[alen] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || bits < 0 || bits > out->bits)
            return -1;
        out->bits = (int)bits;
    }
    return 0;
}

int http_cidr_parse(const char *spec, struct http_cidr *out, size_t max, size_t *n, struct sb_err *err)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1/128", NULL};
    static const char *const private_[] = {
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "127.0.0.0/8", "::1/128", NULL};
    const char *const *list = NULL;
    const char *single[] = {spec, NULL};
    if (strcmp(spec, "loopback") == 0)
        list = loopback;
    else if (strcmp(spec, "private") == 0)
        list = private_;
    else
        list = single;
    for (size_t i = 0; list[i]; i++) {
        if (*n >= max)
            return sb_error(err, SB_EINVAL, "too many trusted proxies");
        if (parse_one(list[i], &out[*n]))
            return sb_error(err, SB_EINVAL, "'%s' is not loopback, private, an IP address or a CIDR", spec);
        (*n)++;
    }
    return 0;
}

static bool cidr_contains(const struct http_cidr *c, const char *ip)
{
    uint8_t a[16] = {0};
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    if (family != c->family || inet_pton(family, ip, a) != 1)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, (size_t)full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        return (a[full] & mask) == (c->addr[full] & mask);
    }
    return true;
}

static bool is_trusted(const char *ip, const struct http_cidr *trusted, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&trusted[i], ip))
            return true;
    return false;
}

static bool valid_ip(const char *ip)
{
    uint8_t tmp[16];
    return inet_pton(AF_INET, ip, tmp) == 1 || inet_pton(AF_INET6, ip, tmp) == 1;
}

void http_client_ip(const char *peer, const char *xff, const struct http_cidr *trusted, size_t n_trusted,
                    char *out, size_t outlen)
{
    sb_strlcpy(out, peer, outlen);
    if (!xff || !is_trusted(peer, trusted, n_trusted))
        return;
    /* Walk the list from the right. */
    char copy[1024];
    sb_strlcpy(copy, xff, sizeof copy);
    for (;;) {
        char *comma = strrchr(copy, ',');
        char *item = comma ? comma + 1 : copy;
        while (*item == ' ' || *item == '\t')
            item++;
        size_t len = strlen(item);
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = '\0';
        if (!valid_ip(item))
            return; /* garbage: keep the last address we could trust */
        sb_strlcpy(out, item, outlen);
        if (!is_trusted(item, trusted, n_trusted) || !comma)
            return;
        *comma = '\0';
    }
}

bool http_peer_trusted(const char *peer, const struct http_cidr *trusted, size_t n_trusted)
{
    return valid_ip(peer) && is_trusted(peer, trusted, n_trusted);
}

bool http_listen_is_loopback(const char *listen)
{
    char host[64];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon)
        return false;
    size_t n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return false; /* ":8080" is every address */
    memcpy(host, listen, n);
    host[n] = '\0';
    if (strcmp(host, "localhost") == 0)
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    static const unsigned char v6_loop[16] = {[15] = 1};
    return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, v6_loop, 16) == 0;
}
