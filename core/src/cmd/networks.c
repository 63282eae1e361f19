/*
 * The address policy of node connections (--node-allowed-networks), set
 * into ssh/ by serve before any connection. It lives with the wiring
 * because it reads the configuration with http/'s CIDR parser.
 */
#include "cmd.h"

#include "../http/http.h"
#include "../ssh/ssh.h"

#include <string.h>

#define NETWORKS_MAX 64

/* ---- which addresses nodes may have (--node-allowed-networks) ------------- */

/* Set once by serve before any connection, read by the SSH
 * connect of every thread (ssh_set_address_policy). Without the flag every
 * address is allowed but the core's own loopback, link-local (cloud
 * metadata services: 169.254.169.254) and unspecified ones; with it, only
 * its CIDRs ("any" for everything). */
static struct {
    bool any;
    size_t n;
    struct http_cidr allowed[NETWORKS_MAX];
    size_t n_denied;
    struct http_cidr denied[16];
} node_networks;

static bool node_address_allowed(const char *ip)
{
    if (node_networks.any)
        return true;
    if (node_networks.n)
        return http_peer_trusted(ip, node_networks.allowed, node_networks.n);
    return !http_peer_trusted(ip, node_networks.denied, node_networks.n_denied);
}

int cmd_node_networks_load(const struct config *cfg, struct sb_err *err)
{
    static const char *const denied[] = {"loopback", "169.254.0.0/16",    "fe80::/10",         "0.0.0.0/8",
                                         "::/128",   "fd00:ec2::254/128", "100.100.100.200/32"};
    memset(&node_networks, 0, sizeof node_networks);
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        size_t n = 0;
        if (http_cidr_parse(denied[i], node_networks.denied + node_networks.n_denied,
                            16 - node_networks.n_denied, &n, err))
            return err ? err->code : SB_EINVAL;
        node_networks.n_denied += n;
    }
    const char *const *list = NULL;
    size_t n_list = config_get_list(cfg, "node-allowed-networks", &list);
    for (size_t i = 0; i < n_list; i++) {
        if (strcmp(list[i], "any") == 0) {
            node_networks.any = true;
            continue;
        }
        size_t n = 0;
        if (http_cidr_parse(list[i], node_networks.allowed + node_networks.n, NETWORKS_MAX - node_networks.n,
                            &n, err))
            return sb_error(err, SB_EINVAL,
                            "--node-allowed-networks: '%s' is not a CIDR, an address, "
                            "loopback, private or any",
                            list[i]);
        node_networks.n += n;
    }
    ssh_set_address_policy(node_address_allowed);
    return 0;
}
