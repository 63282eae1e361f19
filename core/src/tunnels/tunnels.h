/*
 * tunnels — nodes behind NAT reach the core over a reverse SSH tunnel held
 * by the stock OpenSSH client (`ssh -N -R 127.0.0.1:<port>:localhost:22`)
 * to a dedicated OpenSSH sshd on the core's host (scripts/tunnel-sshd.sh).
 * This subsystem is the core's side of that sshd: the authorized_keys file
 * it reads (one restricted line per tunnel node, written atomically), the
 * tunnel ports (a configured range, one per node), the node's public key
 * check, and cutting a revoked node's live tunnel. The registry (nodes/)
 * decides when; nothing here knows about nodes' rows beyond key and port.
 * README.md beside this file explains the design and what a key may do.
 */
#ifndef SB_TUNNELS_H
#define SB_TUNNELS_H

#include "../util/util.h"

#include <stdbool.h>
#include <stddef.h>

/* "ssh-ed25519 " + 68 base64 characters. */
#define TUNNELS_KEY_MAX 96

/* --tunnel-port-range "FIRST-LAST" (1024..65535, FIRST <= LAST). */
int tunnels_range_parse(const char *text, int *lo, int *hi, struct sb_err *err);

/* Checks an OpenSSH public key line for a node's tunnel: "ssh-ed25519",
 * one base64 blob that decodes to that key type and 32 key bytes, and an
 * optional comment (dropped). Nothing else (no options, no second line).
 * The normal form "ssh-ed25519 <base64>" goes to out (>= TUNNELS_KEY_MAX).
 * SB_EINVAL naming the field "tunnel_public_key". */
int tunnels_public_key_check(const char *text, char *out, size_t outlen, struct sb_err *err);

/* Appends the authorized_keys line of one node to out:
 * restrict,port-forwarding,permitlisten="127.0.0.1:<port>",command="/bin/false" <key> sbx-node-<id>
 * `key` must have passed tunnels_public_key_check, `id` is a uuid. */
int tunnels_line(const char *key, int port, const char *id, struct buf *out, struct sb_err *err);

/* The lowest port of lo..hi not in used[0..n_used). SB_ECONFLICT when the
 * range is full. */
int tunnels_port_pick(int lo, int hi, const int *used, size_t n_used, int *port, struct sb_err *err);

/* Replaces the file at path with data, atomically: a temporary file in the
 * same directory (mode 0644: public keys only), fsync, rename, fsync of the
 * directory. Unchanged content is not rewritten (*changed false). */
int tunnels_file_write(const char *path, const char *data, size_t len, bool *changed, struct sb_err *err);

/* Cuts the live tunnel whose forward listens on 127.0.0.1:port: finds the
 * processes holding that listening socket (/proc/net/tcp and /proc/<pid>/fd)
 * and, when they are sshd's running as `user` (the tunnel account; NULL: any
 * user), sends them SIGTERM; their connection drops and the client exits. *killed says how many; 0 when no
 * tunnel listens. Needs the right to signal the tunnel sshd's session processes (root, or the same user):
 * SB_EDENIED otherwise, naming the pid. */
int tunnels_cut(int port, const char *user, int *killed, struct sb_err *err);

/* The ports of lo..hi something listens on at 127.0.0.1 (at most max, into
 * ports), ascending; how many. For finding forwards no node owns. */
size_t tunnels_listening(int lo, int hi, int *ports, size_t max);

#endif
