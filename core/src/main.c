/*
 * serverbox-core: the control-plane daemon and its administration commands.
 */
#include "cmd/cmd.h"
#include "ssh/ssh.h"
#include "util/util.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#ifndef SERVERBOX_VERSION
#define SERVERBOX_VERSION "0.0.0-dev"
#endif

static const struct config_option options[] = {
    {"listen", CONFIG_STRING, "127.0.0.1:8080", "address and port to serve HTTP on (port 0 picks one)",
     false},
    {"tls-cert", CONFIG_STRING, NULL,
     "PEM certificate chain (leaf first): serve HTTPS with --tls-key; SIGHUP reloads both files", false},
    {"tls-key", CONFIG_STRING, NULL, "PEM private key of --tls-cert", false},
    {"database-url", CONFIG_STRING, NULL, "PostgreSQL connection URI the daemon uses", true},
    {"migrate-database-url", CONFIG_STRING, NULL,
     "URI for migrate and rebuild-projections (the schema owner); defaults to --database-url", true},
    {"redis-url", CONFIG_STRING, NULL, "Redis URL, redis://host:port[/db] (optional; degraded without)",
     true},
    {"data-dir", CONFIG_STRING, "./data", "directory for keys and local state", false},
    {"master-key-file", CONFIG_STRING, NULL, "file holding the 32-byte master key as 64 hex characters",
     false},
    {"dashboard-dir", CONFIG_STRING, "./dashboard", "static dashboard served at /", false},
    {"trusted-proxy", CONFIG_LIST, NULL, "peer allowed to set X-Forwarded-For: loopback, private, IP or CIDR",
     false},
    {"docker-socket", CONFIG_STRING, "/var/run/docker.sock",
     "unix socket of the local Docker engine (node 'local'); at most 107 bytes", false},
    {"log-level", CONFIG_STRING, "info", "debug, info, warn or error", false},
    {"workers", CONFIG_INT, "64", "worker threads for requests that wait on I/O", false},
    {"http-threads", CONFIG_INT, "2", "libmicrohttpd epoll threads", false},
    {"max-body-bytes", CONFIG_INT, "1048576", "largest request body accepted (larger gets 413)", false},
    {"db-pool-size", CONFIG_INT, "12", "PostgreSQL connections in the pool", false},
    {"metrics-raw-days", CONFIG_INT, "7", "days raw metric samples are kept", false},
    {"metrics-rollup-days", CONFIG_INT, "90", "days one-minute metric roll-ups are kept", false},
    {"connection-limit", CONFIG_INT, "16000", "most simultaneous HTTP connections", false},
    {"session-idle-timeout", CONFIG_INT, "7200", "seconds of inactivity after which a session expires",
     false},
    {"session-max-age", CONFIG_INT, "86400", "seconds after login at which a session expires regardless",
     false},
    {"token-rate-limit", CONFIG_INT, "500", "requests per second per credential (per daemon); 0 = unlimited",
     false},
    {"login-ip-limit", CONFIG_INT, "10", "failed logins per minute per client address before 429", false},
    {"login-user-limit", CONFIG_INT, "20", "failed logins per minute per username before 429", false},
    {"audit-window", CONFIG_INT, "60",
     "seconds per audit window: denials and guest requests past the first few per key become one summary",
     false},
    {"anon-ip-limit", CONFIG_INT, "600",
     "requests without a valid credential per minute per client address before 429 (0 = unlimited)", false},
    {"per-ip-connection-limit", CONFIG_INT, "256",
     "simultaneous connections per client address (0 = unlimited; behind a proxy, every client is the proxy)",
     false},
    {"header-timeout", CONFIG_INT, "15",
     "seconds a connection has to send a request's headers, from opening or from its previous answer", false},
    {"public-host", CONFIG_LIST, NULL,
     "repeatable: a Host value the core answers for (others get 421); unset = any host", false},
    {"checkpoint-interval", CONFIG_INT, "3600",
     "seconds between signed audit checkpoints (0 = on demand only)", false},
    {"oidc-issuer", CONFIG_STRING, NULL, "OpenID Connect issuer URL for single sign-on (unset: SSO off)",
     false},
    {"oidc-client-id", CONFIG_STRING, NULL, "this core's client id at the OpenID Connect provider", false},
    {"oidc-client-secret", CONFIG_STRING, NULL,
     "the client secret (prefer the environment); unset = a public client with PKCE alone", true},
    {"oidc-algorithm", CONFIG_STRING, "RS256", "the ID token signature algorithm accepted (RS256)", false},
    {"oidc-scopes", CONFIG_STRING, "openid profile email", "scopes asked of the provider", false},
    {"oidc-name", CONFIG_STRING, "SSO", "the provider's name on the login page (\"Sign in with …\")", false},
    {"oidc-mapping", CONFIG_STRING, NULL,
     "JSON: {\"claim\":\"groups\",\"rules\":[{\"match\":\"ops\",\"role\":\"operator\",\"node_labels\":{…}}],"
     "\"default\":null}: claim values to role and node labels, first match wins",
     false},
    {"oidc-redirect-uri", CONFIG_STRING, NULL,
     "the callback URL registered at the provider; default: from the request's Host", false},
    {"password-login", CONFIG_STRING, "on",
     "off: only SSO logs in, except the --break-glass-user (needs --oidc-issuer)", false},
    {"break-glass-user", CONFIG_STRING, NULL,
     "with --password-login off: the one user who may log in with a password", false},
    {"backup-helper-image", CONFIG_STRING, "busybox:stable",
     "image of the short-lived container that mounts a stack's volumes for backup and restore (needs sh)",
     false},
    {"backup-check-percent", CONFIG_INT, "5",
     "after each backup run, restic check reads this share of the repository's data (0 = structure only)",
     false},
    {"checkpoint-post-url", CONFIG_STRING, NULL,
     "an http(s) URL each signed audit checkpoint is also POSTed to (JSON, retried while it fails): "
     "a copy of the chain's checkpoints off the box (secret: it may hold a token)",
     true},
    {"backup-scratch-database-url", CONFIG_STRING, NULL,
     "restore tests: a connection of a role that may create databases, where the scratch database is "
     "made and dropped (default: --migrate-database-url, else --database-url)",
     true},
    {"checkpoints", CONFIG_STRING, NULL,
     "verify-audit: a directory of signed checkpoint files (*.json, as GET /api/v1/audit/checkpoint "
     "answers them or a backup repository keeps them) the chain must match",
     false},
    {"checkpoint-public-key", CONFIG_STRING, NULL,
     "verify-audit --checkpoints: the audit signing key (base64, a checkpoint's public_key from a "
     "trusted copy) every checkpoint must be signed with; default: all with one key",
     false},
    {"repository", CONFIG_STRING, NULL, "restore: the restic repository (a path, or sftp:user@host:/path)",
     false},
    {"repository-password-file", CONFIG_STRING, NULL,
     "restore: a file holding the repository's password (never give it on the command line)", false},
    {"snapshot", CONFIG_STRING, "latest", "restore: the control-plane database snapshot (id or latest)",
     false},
    {"username", CONFIG_STRING, NULL, "create-user: the new user's name", false},
    {"role", CONFIG_STRING, "admin", "create-user: admin, operator or viewer", false},
    {"password-stdin", CONFIG_STRING, NULL, "create-user: read the password from standard input", false},
    {"if-no-users", CONFIG_STRING, NULL, "create-user: do nothing when a user exists already", false},
    {"ssh-pool-size", CONFIG_INT, "3", "SSH sessions kept per node", false},
    {"ssh-pool-max", CONFIG_INT, "256", "SSH sessions kept in all", false},
    {"ssh-idle-ttl", CONFIG_INT, "300", "seconds an idle SSH session is kept", false},
    {"ssh-keepalive", CONFIG_INT, "30", "seconds between keepalives on idle SSH sessions", false},
    {"ssh-acquire-timeout", CONFIG_INT, "10", "seconds a request waits for a busy node's session (then 503)",
     false},
    {"node-docker-socket", CONFIG_STRING, "/var/run/docker.sock",
     "the Docker socket on nodes whose docker is 'ssh' (reached over SSH); at most 107 bytes", false},
    {"node-docker-events", CONFIG_INT, "0",
     "1 records the Docker events of nodes reached over SSH (one daemon of several: a duty)", false},
    {"node-check-interval", CONFIG_INT, "60", "seconds between node health checks (0 disables)", false},
    {"node-allowed-networks", CONFIG_LIST, NULL,
     "CIDRs (or loopback, private, any) node hosts may resolve to; default: any but the core's loopback, "
     "link-local and metadata addresses",
     false},
    {"tunnel-authorized-keys", CONFIG_STRING, NULL,
     "the tunnel sshd's authorized_keys file, written from the node registry (empty: no tunnel nodes)",
     false},
    {"tunnel-port-range", CONFIG_STRING, "30000-30999",
     "ports on 127.0.0.1 the tunnel nodes' forwards listen on (one per node)", false},
    {"tunnel-endpoint", CONFIG_STRING, NULL,
     "host:port of the tunnel sshd as nodes dial it (shown in a tunnel node's command)", false},
    {"tunnel-user", CONFIG_STRING, "sbx-tunnel", "the tunnel sshd's account nodes log in as", false},
    {"tunnel-host-key", CONFIG_STRING, NULL,
     "the tunnel sshd's host public key file (its line is answered for the node's known_hosts)", false},
    {"exec-max-output", CONFIG_INT, "1048576", "bytes of stdout and of stderr kept per remote command",
     false},
    {"events-heartbeat-ms", CONFIG_INT, "15000", "comment line on idle event streams; finds dead clients",
     false},
    {"stack-bind-base", CONFIG_STRING, NULL,
     "host directory under which operators may bind-mount into stacks (outside it: admins only)", false},
    {"stack-health-timeout", CONFIG_INT, "60",
     "seconds a stack's new container may take to become healthy before the update is rolled back", false},
    {"app-static-image", CONFIG_STRING, "nginx:1-alpine",
     "base image of the Dockerfile generated for a static site (index.html, no Dockerfile)", false},
    {"app-static-root", CONFIG_STRING, "/usr/share/nginx/html",
     "where a static site's files go in that image", false},
    {"app-static-command", CONFIG_STRING, "",
     "CMD of the generated static Dockerfile (JSON array or words; {port} is the app's port; empty = the "
     "image's)",
     false},
    {"app-caddy-admin", CONFIG_STRING, "",
     "Caddy's admin API for app routes: http://127.0.0.1:2019 or unix//path (empty = no routes)", false},
    {"app-route-ports", CONFIG_STRING, "20000-20999", "ports Caddy listens on for apps without a domain",
     false},
    {"app-route-host", CONFIG_STRING, "", "address those ports listen on (empty = every address)", false},
    {"app-domain-listen", CONFIG_STRING, ":80",
     "the listener of the Caddy server holding apps' domain routes", false},
    {"app-build-timeout", CONFIG_INT, "1800", "seconds an app's image build may take", false},
    {"app-build-memory", CONFIG_INT, "0", "bytes of memory an app's build may use (0 = no limit)", false},
    {"job-workers", CONFIG_INT, "16", "job attempts run at once by this daemon (one thread each)", false},
    {"job-lease-ms", CONFIG_INT, "5000",
     "lease of a running job and of a singleton duty; a dead daemon's work moves after it", false},
    {"job-retry-base-ms", CONFIG_INT, "1000", "delay before a job's first retry (doubled each attempt)",
     false},
    {"job-retention-days", CONFIG_INT, "7",
     "days finished jobs (succeeded, failed, cancelled) are kept before they are pruned (0 = forever)",
     false},
    {"job-prune-interval", CONFIG_INT, "3600", "seconds between two prunes of finished jobs", false},
    {"job-test-kinds", CONFIG_INT, "0", "1 registers the test job kinds (black-box tests only)", false},
    {"alerts-interval", CONFIG_INT, "15",
     "seconds between alert evaluations (a duty: one daemon evaluates; 0 "
     "disables evaluation here)",
     false},
    {"alerts-allow-loopback", CONFIG_INT, "0",
     "1 lets notification channels send to loopback addresses (tests, a local relay)", false},
    {"alerts-ca-file", CONFIG_STRING, NULL,
     "CA bundle that notification channels trust for HTTPS and SMTP STARTTLS (default: the system's)", false},
    {"record-input", CONFIG_INT, "0", "terminal recordings hold the input too (asciicast \"i\" events)",
     false},
    {"recording-retention-days", CONFIG_INT, "90", "days terminal recordings are kept (0 = forever)", false},
    {"recording-max-bytes", CONFIG_INT, "67108864",
     "size cap of one terminal recording (then it stops, saying so)", false},
    {"terminal-idle-timeout", CONFIG_INT, "3600",
     "seconds without input or viewer before a terminal is detached (tmux keeps the session)", false},
    {"terminal-max-per-node", CONFIG_INT, "8",
     "open terminals per node (256 in all); they share one SSH connection, so keep it under sshd's "
     "MaxSessions",
     false},
    {"terminal-ring-bytes", CONFIG_INT, "1048576",
     "output kept per terminal for reconnects (older offsets get a gap event)", false},
};
static const char *const bool_flags[] = {"password-stdin", "if-no-users", "record-input", NULL};

static const char usage[] =
    "usage: serverbox-core [options] [command]\n"
    "\n"
    "Commands:\n"
    "  serve                 run the daemon (the default)\n"
    "  migrate               apply database migrations\n"
    "  verify-audit          recompute the event hash chain; non-zero exit names the first bad seq\n"
    "                        (--checkpoints DIR: and match it against signed checkpoints kept elsewhere)\n"
    "  rebuild-projections   truncate projection tables and replay them from the event log\n"
    "  routes                print the route table as JSON\n"
    "  restore               --repository R --repository-password-file F [--snapshot ID]: the control\n"
    "                        plane from a backup into an empty database and a new data dir\n"
    "  create-user           --username NAME --role ROLE --password-stdin [--if-no-users]\n"
    "  version               print the version";

static void init_libraries(void)
{
    /* Before any thread: see shared/LIBRARY-NOTES.md. */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (sodium_init() < 0) {
        fprintf(stderr, "serverbox-core: libsodium failed to initialise\n");
        exit(1);
    }
    json_object_seed(0);
    if (ssh_global_init() != 0) {
        fprintf(stderr, "serverbox-core: libssh2 failed to initialise\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct sb_err err = {0};
    if (config_parse(&cfg, options, sizeof options / sizeof options[0], argc, argv, bool_flags, &err)) {
        fprintf(stderr, "serverbox-core: %s\n", err.msg);
        config_release(&cfg);
        return 2;
    }
    if (cfg.help) {
        config_print_help(options, sizeof options / sizeof options[0], usage);
        return 0;
    }
    log_set_level(config_get(&cfg, "log-level"));
    const char *command = cfg.n_args ? cfg.args[0] : "serve";
    if (strcmp(command, "version") == 0) {
        printf("serverbox-core %s\n", SERVERBOX_VERSION);
        return 0;
    }
    init_libraries();
    int rc;
    if (strcmp(command, "serve") == 0)
        rc = cmd_serve(&cfg);
    else if (strcmp(command, "migrate") == 0)
        rc = cmd_migrate(&cfg);
    else if (strcmp(command, "verify-audit") == 0)
        rc = cmd_verify_audit(&cfg);
    else if (strcmp(command, "rebuild-projections") == 0)
        rc = cmd_rebuild_projections(&cfg);
    else if (strcmp(command, "routes") == 0)
        rc = cmd_routes(&cfg);
    else if (strcmp(command, "create-user") == 0)
        rc = cmd_create_user(&cfg);
    else if (strcmp(command, "restore") == 0)
        rc = cmd_restore(&cfg);
    else {
        fprintf(stderr, "serverbox-core: unknown command '%s' (see --help)\n", command);
        rc = 2;
    }
    ssh_global_cleanup();
    curl_global_cleanup();
    config_release(&cfg);
    return rc;
}
