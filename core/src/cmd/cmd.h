/*
 * cmd — the subcommands of serverbox-core, one file each in the manner of
 * git's builtins. Each gets the parsed configuration and returns the exit
 * status.
 */
#ifndef SB_CMD_H
#define SB_CMD_H

#include "../util/util.h"

int cmd_serve(const struct config *cfg);
int cmd_migrate(const struct config *cfg);
int cmd_verify_audit(const struct config *cfg);
int cmd_rebuild_projections(const struct config *cfg);
int cmd_routes(const struct config *cfg);
int cmd_create_user(const struct config *cfg);
int cmd_restore(const struct config *cfg);

/* The URL administration commands use: --migrate-database-url, else --database-url. */
const char *cmd_admin_database_url(const struct config *cfg);

/* Sets the addresses nodes may have (--node-allowed-networks) into ssh/
 * (cmd/networks.c); before any node connection. */
int cmd_node_networks_load(const struct config *cfg, struct sb_err *err);

#endif
