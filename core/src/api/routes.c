/*
 * The route table: every route the daemon serves, with the permission it
 * needs. `serverbox-core routes` prints it; the tests check it against
 * docs/openapi.yaml and generate the permission matrix from it.
 */
#include "api.h"

void api_health_live(struct http_request *req);
void api_health_ready(struct http_request *req);
void api_openapi(struct http_request *req);
void api_metrics(struct http_request *req);
void api_annotation_create(struct http_request *req);
void api_login(struct http_request *req);
void api_logout(struct http_request *req);
void api_me(struct http_request *req);
void api_password_change(struct http_request *req);
void api_guest_landing(struct http_request *req);
void api_dashboard(struct http_request *req);
void api_dashboard_guest_page(struct http_request *req);
void api_users_list(struct http_request *req);
void api_user_create(struct http_request *req);
void api_user_update(struct http_request *req);
void api_user_delete(struct http_request *req);
void api_token_create(struct http_request *req);
void api_tokens_list(struct http_request *req);
void api_token_revoke(struct http_request *req);
void api_guest_link_create(struct http_request *req);
void api_guest_links_list(struct http_request *req);
void api_guest_link_revoke(struct http_request *req);
void api_audit_list(struct http_request *req);
void api_audit_verify(struct http_request *req);
void api_audit_checkpoint_get(struct http_request *req);
void api_containers_list(struct http_request *req);
void api_node_containers_list(struct http_request *req);
void api_container_create(struct http_request *req);
void api_container_inspect(struct http_request *req);
void api_container_action(struct http_request *req);
void api_container_remove(struct http_request *req);
void api_container_exec(struct http_request *req);
void api_container_stats(struct http_request *req);
void api_container_logs(struct http_request *req);
void api_images_list(struct http_request *req);
void api_image_pull(struct http_request *req);
void api_image_remove(struct http_request *req);
void api_images_prune(struct http_request *req);
void api_volumes_list(struct http_request *req);
void api_volume_create(struct http_request *req);
void api_volume_remove(struct http_request *req);
void api_volumes_prune(struct http_request *req);
void api_networks_list(struct http_request *req);
void api_network_create(struct http_request *req);
void api_network_remove(struct http_request *req);
void api_networks_prune(struct http_request *req);
void api_node_create(struct http_request *req);
void api_node_list(struct http_request *req);
void api_node_get(struct http_request *req);
void api_node_update(struct http_request *req);
void api_node_delete(struct http_request *req);
void api_node_exec(struct http_request *req);
void api_node_check(struct http_request *req);
void api_events_stream(struct http_request *req);
void api_events_history(struct http_request *req);
void api_agent_enroll_token(struct http_request *req);
void api_node_provision_command(struct http_request *req);
void api_agent_enroll(struct http_request *req);
void api_agent_metrics(struct http_request *req);
void api_node_metrics(struct http_request *req);
void api_container_metrics(struct http_request *req);
void api_stacks_list(struct http_request *req);
void api_stack_create(struct http_request *req);
void api_stack_get(struct http_request *req);
void api_stack_update(struct http_request *req);
void api_stack_delete(struct http_request *req);
void api_stack_plan(struct http_request *req);
void api_stack_deploy(struct http_request *req);
void api_stack_revisions(struct http_request *req);
void api_stack_revision(struct http_request *req);
void api_stack_diff(struct http_request *req);
void api_stack_rollback(struct http_request *req);
void api_stack_scale(struct http_request *req);
void api_stack_service_restart(struct http_request *req);
void api_stack_stop(struct http_request *req);
void api_stack_start(struct http_request *req);
void api_stack_down(struct http_request *req);
void api_stack_service_logs(struct http_request *req);
void api_apps_list(struct http_request *req);
void api_app_create(struct http_request *req);
void api_app_get(struct http_request *req);
void api_app_update(struct http_request *req);
void api_app_delete(struct http_request *req);
void api_app_deploy(struct http_request *req);
void api_app_deployments(struct http_request *req);
void api_deployment_get(struct http_request *req);
void api_deployment_rollback(struct http_request *req);
void api_git_hook(struct http_request *req);
void api_jobs_list(struct http_request *req);
void api_job_get(struct http_request *req);
void api_job_cancel(struct http_request *req);
void api_job_test_create(struct http_request *req);
void api_terminal_open(struct http_request *req);
void api_container_console(struct http_request *req);
void api_terminal_kill_session(struct http_request *req);
void api_terminals_list(struct http_request *req);
void api_terminal_get(struct http_request *req);
void api_terminal_output(struct http_request *req);
void api_terminal_input(struct http_request *req);
void api_terminal_resize(struct http_request *req);
void api_terminal_close(struct http_request *req);
void api_recordings_list(struct http_request *req);
void api_recording_get(struct http_request *req);
void api_permissions_list(struct http_request *req);
void api_login_totp(struct http_request *req);
void api_oidc_info(struct http_request *req);
void api_oidc_start(struct http_request *req);
void api_oidc_callback(struct http_request *req);
void api_totp_status(struct http_request *req);
void api_totp_begin(struct http_request *req);
void api_totp_confirm(struct http_request *req);
void api_totp_disable(struct http_request *req);
void api_user_totp_reset(struct http_request *req);
void api_role_policy_set(struct http_request *req);
void api_roles_list(struct http_request *req);
void api_role_create(struct http_request *req);
void api_role_get(struct http_request *req);
void api_role_update(struct http_request *req);
void api_role_delete(struct http_request *req);
void api_sessions_list(struct http_request *req);
void api_session_end(struct http_request *req);
void api_sessions_end_others(struct http_request *req);

void api_alerts_list(struct http_request *req);
void api_alert_get(struct http_request *req);
void api_alert_ack(struct http_request *req);
void api_alert_rules_list(struct http_request *req);
void api_alert_rule_create(struct http_request *req);
void api_alert_rule_get(struct http_request *req);
void api_alert_rule_update(struct http_request *req);
void api_alert_rule_delete(struct http_request *req);
void api_alert_silences_list(struct http_request *req);
void api_alert_silence_create(struct http_request *req);
void api_alert_silence_get(struct http_request *req);
void api_alert_silence_delete(struct http_request *req);
void api_alert_channels_list(struct http_request *req);
void api_alert_channel_create(struct http_request *req);
void api_alert_channel_get(struct http_request *req);
void api_alert_channel_update(struct http_request *req);
void api_alert_channel_delete(struct http_request *req);
void api_alert_channel_test(struct http_request *req);

void api_backup_repos_list(struct http_request *req);
void api_backup_repo_create(struct http_request *req);
void api_backup_repo_delete(struct http_request *req);
void api_backup_repo_check(struct http_request *req);
void api_backup_snapshots(struct http_request *req);
void api_backup_plans_list(struct http_request *req);
void api_backup_plan_create(struct http_request *req);
void api_backup_plan_get(struct http_request *req);
void api_backup_plan_delete(struct http_request *req);
void api_backup_plan_run(struct http_request *req);
void api_backup_runs_list(struct http_request *req);
void api_backup_run_get(struct http_request *req);
void api_backup_restore(struct http_request *req);
void api_backup_plan_restore_test(struct http_request *req);
void api_backup_plan_update(struct http_request *req);

const struct http_route api_routes[] = {
    {"GET", "/health/live", api_health_live, HTTP_ROUTE_INLINE, "public", "the process is serving"},
    {"GET", "/health/ready", api_health_ready, HTTP_ROUTE_INLINE, "public",
     "database reachable and migrated; names each dependency's state"},
    {"GET", "/api/v1/openapi.json", api_openapi, HTTP_ROUTE_INLINE, "public",
     "this API's OpenAPI description"},
    {"GET", "/metrics", api_metrics, HTTP_ROUTE_INLINE, "public", "Prometheus text metrics"},
    {"POST", "/api/v1/annotations", api_annotation_create, HTTP_ROUTE_BODY, "annotations:create",
     "write a marker (deploy started, maintenance) into the audit log"},
    {"POST", "/api/v1/auth/login", api_login, HTTP_ROUTE_BODY, "public",
     "exchange a username and password for a session token and cookie"},
    {"POST", "/api/v1/auth/login/totp", api_login_totp, HTTP_ROUTE_BODY, "public",
     "the second step of a login with 2FA: the password step's challenge and a 6-digit code (or a recovery "
     "code) for the session"},
    {"GET", "/api/v1/auth/oidc", api_oidc_info, 0, "public",
     "whether single sign-on is on, the provider's name, whether password login works"},
    {"GET", "/api/v1/auth/oidc/start", api_oidc_start, 0, "public",
     "begin single sign-on: 302 to the OpenID Connect provider (code flow with PKCE)"},
    {"GET", "/api/v1/auth/oidc/callback", api_oidc_callback, 0, "public",
     "the provider's redirect back: verifies the ID token, makes or updates the user, opens a session"},
    {"POST", "/api/v1/auth/logout", api_logout, 0, "authenticated", "end the current session"},
    {"GET", "/api/v1/auth/totp", api_totp_status, 0, "authenticated",
     "whether your 2FA is on, pending or required by your role"},
    {"POST", "/api/v1/auth/totp", api_totp_begin, 0, "authenticated",
     "begin 2FA enrollment: a new TOTP secret and its otpauth:// URI (shown once)"},
    {"POST", "/api/v1/auth/totp/confirm", api_totp_confirm, HTTP_ROUTE_BODY, "authenticated",
     "turn 2FA on with a code from the app; answers the ten recovery codes (shown once)"},
    {"POST", "/api/v1/auth/totp/disable", api_totp_disable, HTTP_ROUTE_BODY, "authenticated",
     "turn your 2FA off with a code or recovery code (not when your role requires it)"},
    {"POST", "/api/v1/auth/password", api_password_change, HTTP_ROUTE_BODY, "authenticated",
     "change your own password (ends your other sessions)"},
    {"GET", "/api/v1/me", api_me, HTTP_ROUTE_INLINE_IF_ADMITTED, "self:read",
     "who the caller is and what they may do"},
    {"GET", "/g/{token}", api_guest_landing, HTTP_ROUTE_SECRET_PATH, "public",
     "what a guest link grants (the link's token is its bearer credential)"},
    {"GET", "/api/v1/users", api_users_list, 0, "users:admin", "list users"},
    {"POST", "/api/v1/users", api_user_create, HTTP_ROUTE_BODY, "users:admin", "create a user"},
    {"PATCH", "/api/v1/users/{id}", api_user_update, HTTP_ROUTE_BODY, "users:admin",
     "change a user's role, labels or password, or disable them"},
    {"DELETE", "/api/v1/users/{id}", api_user_delete, 0, "users:admin",
     "delete a user and revoke their credentials"},
    {"DELETE", "/api/v1/users/{id}/totp", api_user_totp_reset, 0, "users:admin",
     "reset a user's 2FA (they can log in with their password and enroll again)"},
    {"GET", "/api/v1/tokens", api_tokens_list, 0, "tokens:manage", "list API tokens (never their secrets)"},
    {"POST", "/api/v1/tokens", api_token_create, HTTP_ROUTE_BODY, "tokens:manage",
     "create an API token; the secret is shown once"},
    {"DELETE", "/api/v1/tokens/{id}", api_token_revoke, 0, "tokens:manage", "revoke an API token"},
    {"GET", "/api/v1/guest-links", api_guest_links_list, 0, "guest_links:admin", "list guest links"},
    {"POST", "/api/v1/guest-links", api_guest_link_create, HTTP_ROUTE_BODY, "guest_links:admin",
     "create a read-only, time-limited guest link"},
    {"DELETE", "/api/v1/guest-links/{id}", api_guest_link_revoke, 0, "guest_links:admin",
     "revoke a guest link"},
    {"GET", "/api/v1/audit", api_audit_list, 0, "audit:read", "the audit log, filtered and cursor-paged"},
    {"GET", "/api/v1/audit/verify", api_audit_verify, 0, "audit:read", "recompute the event hash chain"},
    {"GET", "/api/v1/audit/checkpoint", api_audit_checkpoint_get, 0, "audit:read",
     "a signed checkpoint of the chain's head (Ed25519)"},
    {"GET", "/api/v1/containers", api_containers_list, 0, "containers:read",
     "containers of every node, with node id and name (?node= &state= &label= &name=)"},
    {"GET", "/api/v1/nodes/{id}/containers", api_node_containers_list, 0, "containers:read",
     "the containers of one node"},
    {"POST", "/api/v1/nodes/{id}/containers", api_container_create, HTTP_ROUTE_BODY, "containers:operate",
     "create and start a container from an image"},
    {"GET", "/api/v1/nodes/{id}/containers/{cid}", api_container_inspect, 0, "containers:read",
     "inspect a container"},
    {"DELETE", "/api/v1/nodes/{id}/containers/{cid}", api_container_remove, 0, "containers:delete",
     "remove a container (?force= &volumes=)"},
    {"POST", "/api/v1/nodes/{id}/containers/{cid}/exec", api_container_exec, HTTP_ROUTE_BODY,
     "containers:operate", "run a command in a running container; stdout, stderr and exit code"},
    {"GET", "/api/v1/nodes/{id}/containers/{cid}/stats", api_container_stats, 0, "containers:read",
     "one sample of a container's resource use"},
    {"GET", "/api/v1/nodes/{id}/containers/{cid}/logs", api_container_logs, 0, "logs:read",
     "a container's logs as JSON lines, or with follow=1 a Server-Sent Events stream"},
    {"POST", "/api/v1/nodes/{id}/containers/{cid}/console", api_container_console, HTTP_ROUTE_BODY,
     "terminal:container", "open a console in a running container (docker exec with a TTY: bash, else sh)"},
    {"POST", "/api/v1/nodes/{id}/containers/{cid}/{action}", api_container_action, 0, "containers:operate",
     "start, stop (?timeout=), restart, kill (?signal=), pause or unpause a container"},
    {"GET", "/api/v1/nodes/{id}/images", api_images_list, 0, "images:read", "a node's images"},
    {"POST", "/api/v1/nodes/{id}/images/pull", api_image_pull, HTTP_ROUTE_BODY, "images:pull",
     "pull an image; the engine's progress as JSON lines"},
    {"POST", "/api/v1/nodes/{id}/images/prune", api_images_prune, 0, "images:delete",
     "remove dangling images"},
    {"DELETE", "/api/v1/nodes/{id}/images/{*ref}", api_image_remove, 0, "images:delete",
     "remove an image by id or reference (?force=)"},
    {"GET", "/api/v1/nodes/{id}/volumes", api_volumes_list, 0, "volumes:read", "a node's volumes"},
    {"POST", "/api/v1/nodes/{id}/volumes", api_volume_create, HTTP_ROUTE_BODY, "volumes:write",
     "create a volume"},
    {"POST", "/api/v1/nodes/{id}/volumes/prune", api_volumes_prune, 0, "volumes:delete",
     "remove unused volumes"},
    {"DELETE", "/api/v1/nodes/{id}/volumes/{name}", api_volume_remove, 0, "volumes:delete",
     "remove a volume (?force=)"},
    {"GET", "/api/v1/nodes/{id}/networks", api_networks_list, 0, "networks:read", "a node's networks"},
    {"POST", "/api/v1/nodes/{id}/networks", api_network_create, HTTP_ROUTE_BODY, "networks:write",
     "create a network"},
    {"POST", "/api/v1/nodes/{id}/networks/prune", api_networks_prune, 0, "networks:delete",
     "remove unused networks"},
    {"DELETE", "/api/v1/nodes/{id}/networks/{nid}", api_network_remove, 0, "networks:delete",
     "remove a network"},
    {"POST", "/api/v1/nodes", api_node_create, HTTP_ROUTE_BODY, "nodes:write",
     "register a node reached over SSH (connects once to verify and pin its host key)"},
    {"GET", "/api/v1/nodes", api_node_list, 0, "nodes:read", "list nodes, optionally filtered by ?label=k=v"},
    {"GET", "/api/v1/nodes/{id}", api_node_get, 0, "nodes:read", "one node with its SSH pool figures"},
    {"PATCH", "/api/v1/nodes/{id}", api_node_update, HTTP_ROUTE_BODY, "nodes:write",
     "change a node (connection changes are verified first)"},
    {"DELETE", "/api/v1/nodes/{id}", api_node_delete, 0, "nodes:delete", "remove a node and its stored key"},
    {"POST", "/api/v1/nodes/{id}/exec", api_node_exec, HTTP_ROUTE_BODY, "nodes:exec",
     "run a command on the node over SSH"},
    {"POST", "/api/v1/nodes/{id}/check", api_node_check, 0, "nodes:check",
     "run the node's health check now (connects to the node; may record its status)"},
    {"GET", "/api/v1/events", api_events_stream, 0, "events:read",
     "live events as Server-Sent Events; Last-Event-ID replays from the log"},
    {"GET", "/api/v1/events/history", api_events_history, 0, "events:read",
     "pages of the event log after a seq, as JSON"},
    {"POST", "/api/v1/nodes/{id}/enroll-token", api_agent_enroll_token, HTTP_ROUTE_BODY, "nodes:write",
     "issue a one-time, expiring token that enrolls a collector for this node"},
    {"POST", "/api/v1/nodes/{id}/provision-command", api_node_provision_command, HTTP_ROUTE_BODY,
     "nodes:write",
     "an inventory line and ansible-playbook command, with a fresh one-time enroll token, that provision "
     "this node"},
    {"POST", "/api/v1/agent/enroll", api_agent_enroll, HTTP_ROUTE_BODY, "public",
     "a collector registers its Ed25519 public key, consuming an enrollment token"},
    {"POST", "/api/v1/agent/metrics", api_agent_metrics, HTTP_ROUTE_BODY, "agent",
     "a batch of samples signed by an enrolled collector"},
    {"GET", "/api/v1/nodes/{id}/metrics", api_node_metrics, 0, "metrics:read",
     "a node's metric series, downsampled to at most 2000 points"},
    {"GET", "/api/v1/nodes/{id}/containers/{cid}/metrics", api_container_metrics, 0, "metrics:read",
     "one container's metric series on a node"},
    {"GET", "/api/v1/stacks", api_stacks_list, 0, "stacks:read",
     "compose stacks on the nodes you can see, with health per stack (?node_id=)"},
    {"POST", "/api/v1/stacks", api_stack_create, HTTP_ROUTE_BODY, "stacks:write",
     "create a stack (name, node_id, compose, variables, env_files): validated, not deployed"},
    {"GET", "/api/v1/stacks/{id}", api_stack_get, 0, "stacks:read",
     "a stack: compose, masked variables, per service desired vs running vs healthy"},
    {"PATCH", "/api/v1/stacks/{id}", api_stack_update, HTTP_ROUTE_BODY, "stacks:write",
     "change compose, variables or env files: a new revision (deploy to apply it)"},
    {"DELETE", "/api/v1/stacks/{id}", api_stack_delete, 0, "stacks:delete",
     "take the stack down on its node and delete it (volumes kept unless ?volumes=1)"},
    {"POST", "/api/v1/stacks/{id}/plan", api_stack_plan, HTTP_ROUTE_BODY, "stacks:write",
     "dry run: what a deploy would do per service (optionally of an edited compose)"},
    {"POST", "/api/v1/stacks/{id}/deploy", api_stack_deploy, HTTP_ROUTE_BODY, "stacks:write",
     "deploy the latest (or a given) revision as a job; 202 {job}"},
    {"GET", "/api/v1/stacks/{id}/revisions", api_stack_revisions, 0, "stacks:read",
     "the stack's revisions, newest first, with deploy outcome and image digests"},
    {"GET", "/api/v1/stacks/{id}/revisions/{n}", api_stack_revision, 0, "stacks:read",
     "one revision: compose, masked variables, plan and digests"},
    {"GET", "/api/v1/stacks/{id}/diff", api_stack_diff, 0, "stacks:read",
     "what changed between two revisions (?from= &to=): compose lines, variable names, digests"},
    {"POST", "/api/v1/stacks/{id}/rollback", api_stack_rollback, HTTP_ROUTE_BODY, "stacks:write",
     "re-apply a revision's compose and image digests (no pull) as a new revision; 202 {job}"},
    {"POST", "/api/v1/stacks/{id}/services/{service}/scale", api_stack_scale, HTTP_ROUTE_BODY, "stacks:write",
     "run N replicas of a service (a job; 202 {job})"},
    {"POST", "/api/v1/stacks/{id}/services/{service}/restart", api_stack_service_restart, 0, "stacks:write",
     "restart a service's containers"},
    {"POST", "/api/v1/stacks/{id}/stop", api_stack_stop, 0, "stacks:write",
     "stop every container of the stack"},
    {"POST", "/api/v1/stacks/{id}/start", api_stack_start, 0, "stacks:write",
     "start the stack's stopped containers"},
    {"POST", "/api/v1/stacks/{id}/down", api_stack_down, HTTP_ROUTE_BODY, "stacks:write",
     "remove the stack's containers and networks; volumes kept ({\"volumes\":true} removes them: admin "
     "only)"},
    {"GET", "/api/v1/apps", api_apps_list, 0, "apps:read",
     "GitOps apps on the nodes you can see, with their current commit, status and route"},
    {"POST", "/api/v1/apps", api_app_create, HTTP_ROUTE_BODY, "apps:write",
     "create an app from a git repository (not deployed yet); the webhook secret is shown once"},
    {"GET", "/api/v1/apps/{id}", api_app_get, 0, "apps:read", "one app, secret variables masked"},
    {"PATCH", "/api/v1/apps/{id}", api_app_update, HTTP_ROUTE_BODY, "apps:write",
     "change an app's repository, build, health check, limits, variables or webhook secret"},
    {"DELETE", "/api/v1/apps/{id}", api_app_delete, 0, "apps:delete",
     "remove the app's containers and route, and delete it"},
    {"POST", "/api/v1/apps/{id}/deploy", api_app_deploy, 0, "apps:deploy",
     "fetch, build and deploy the app's branch behind its health gate, as a job; 202 {job, deployment_id}"},
    {"GET", "/api/v1/apps/{id}/deployments", api_app_deployments, 0, "apps:read",
     "the app's deployments, newest first (?limit=)"},
    {"GET", "/api/v1/deployments/{id}", api_deployment_get, 0, "apps:read",
     "one deployment: steps, commit, image, outcome, generated Dockerfile and its log"},
    {"POST", "/api/v1/deployments/{id}/rollback", api_deployment_rollback, 0, "apps:deploy",
     "run that deployment's image again (no build) through the same health gate; 202 {job, deployment_id}"},
    {"POST", "/api/v1/hooks/git/{app_id}", api_git_hook, HTTP_ROUTE_BODY, "public",
     "a git host's push webhook (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token); a push to the app's "
     "branch deploys"},
    {"GET", "/api/v1/jobs", api_jobs_list, 0, "jobs:read",
     "durable jobs, newest first (?kind= &state= &target= &before= &limit=)"},
    {"POST", "/api/v1/jobs/test", api_job_test_create, HTTP_ROUTE_BODY, "jobs:test",
     "enqueue a test job (only with --job-test-kinds 1; 404 otherwise)"},
    {"GET", "/api/v1/jobs/{id}", api_job_get, 0, "jobs:read", "one job: state, attempt, result or error"},
    {"POST", "/api/v1/jobs/{id}/cancel", api_job_cancel, 0, "jobs:cancel",
     "cancel a queued job, or ask a running one to stop"},
    {"POST", "/api/v1/nodes/{id}/terminals", api_terminal_open, HTTP_ROUTE_BODY, "terminal:node",
     "open a terminal on the node's tmux session (tmux new-session -A), or join the one open on it"},
    {"DELETE", "/api/v1/nodes/{id}/terminals/{session}", api_terminal_kill_session, 0, "terminal:node",
     "kill a tmux session of the node that no open terminal shows"},
    {"GET", "/api/v1/terminals", api_terminals_list, 0, "terminal:node",
     "open terminals on the nodes in the caller's scope (?node=)"},
    {"GET", "/api/v1/terminals/{id}", api_terminal_get, 0, "terminal:node", "one open terminal"},
    {"GET", "/api/v1/terminals/{id}/output", api_terminal_output, 0, "terminal:node",
     "the terminal's output as Server-Sent Events of base64 chunks with byte offsets (?offset= resumes)"},
    {"POST", "/api/v1/terminals/{id}/input", api_terminal_input, 0, "terminal:node",
     "input for the terminal: raw bytes, or {\"data\": base64}"},
    {"POST", "/api/v1/terminals/{id}/resize", api_terminal_resize, HTTP_ROUTE_BODY, "terminal:node",
     "change the terminal's size {\"cols\",\"rows\"}"},
    {"DELETE", "/api/v1/terminals/{id}", api_terminal_close, 0, "terminal:node",
     "detach the terminal (tmux keeps the session), or with ?kill=1 end the tmux session too"},
    {"GET", "/api/v1/recordings", api_recordings_list, 0, "recordings:replay",
     "terminal recordings on the nodes in the caller's scope, newest first (?node= &limit=)"},
    {"GET", "/api/v1/recordings/{id}", api_recording_get, 0, "recordings:replay",
     "download a terminal recording (asciicast v2)"},
    {"GET", "/api/v1/permissions", api_permissions_list, 0, "roles:read",
     "the permissions a custom role may hold, with what each allows and the routes that need it"},
    {"GET", "/api/v1/roles", api_roles_list, 0, "roles:read", "the built-in and custom roles"},
    {"POST", "/api/v1/roles", api_role_create, HTTP_ROUTE_BODY, "users:admin",
     "define a custom role: a name and a set of permissions"},
    {"GET", "/api/v1/roles/{name}", api_role_get, 0, "roles:read", "one role and its permissions"},
    {"PATCH", "/api/v1/roles/{name}", api_role_update, HTTP_ROUTE_BODY, "users:admin",
     "change a custom role's description or permissions (built-in roles cannot be changed)"},
    {"DELETE", "/api/v1/roles/{name}", api_role_delete, 0, "users:admin",
     "delete a custom role that no user or live token holds"},
    {"PUT", "/api/v1/roles/{name}/policy", api_role_policy_set, HTTP_ROUTE_BODY, "users:admin",
     "require 2FA for a role's users (built-in or custom): until they enroll, their sessions may only do so"},
    {"GET", "/api/v1/alerts/rules", api_alert_rules_list, 0, "alerts:read",
     "alert rules (those of the caller's node scope, and those for every node)"},
    {"POST", "/api/v1/alerts/rules", api_alert_rule_create, HTTP_ROUTE_BODY, "alerts:write",
     "create an alert rule (metric threshold over a duration, node offline, container OOM, ...)"},
    {"GET", "/api/v1/alerts/rules/{id}", api_alert_rule_get, 0, "alerts:read", "one alert rule"},
    {"PATCH", "/api/v1/alerts/rules/{id}", api_alert_rule_update, HTTP_ROUTE_BODY, "alerts:write",
     "change an alert rule (its kind stays)"},
    {"DELETE", "/api/v1/alerts/rules/{id}", api_alert_rule_delete, 0, "alerts:write",
     "delete an alert rule (its open alerts resolve)"},
    {"GET", "/api/v1/alerts/silences", api_alert_silences_list, 0, "alerts:read",
     "silences, newest first (?state=active|ended|deleted)"},
    {"POST", "/api/v1/alerts/silences", api_alert_silence_create, HTTP_ROUTE_BODY, "alerts:write",
     "silence matching alerts until a time (matchers, node_labels, until or duration_s)"},
    {"GET", "/api/v1/alerts/silences/{id}", api_alert_silence_get, 0, "alerts:read", "one silence"},
    {"DELETE", "/api/v1/alerts/silences/{id}", api_alert_silence_delete, 0, "alerts:write",
     "end a silence now (alerts still firing notify again)"},
    {"GET", "/api/v1/alerts/channels", api_alert_channels_list, 0, "alerts:read",
     "notification channels, secrets masked"},
    {"POST", "/api/v1/alerts/channels", api_alert_channel_create, HTTP_ROUTE_BODY, "alerts:write",
     "create a notification channel: webhook (signed), slack, discord, email (SMTP) or ntfy"},
    {"GET", "/api/v1/alerts/channels/{id}", api_alert_channel_get, 0, "alerts:read",
     "one channel, secrets masked, with its test deliveries"},
    {"PATCH", "/api/v1/alerts/channels/{id}", api_alert_channel_update, HTTP_ROUTE_BODY, "alerts:write",
     "change a channel (a masked secret keeps its value)"},
    {"DELETE", "/api/v1/alerts/channels/{id}", api_alert_channel_delete, 0, "alerts:write",
     "delete a channel and its sealed secrets"},
    {"POST", "/api/v1/alerts/channels/{id}/test", api_alert_channel_test, 0, "alerts:write",
     "send a test notification through the channel (a job; 202 {job})"},
    {"GET", "/api/v1/alerts", api_alerts_list, 0, "alerts:read",
     "alerts on the nodes in the caller's scope, newest first (?state=firing|acknowledged|resolved|open "
     "&limit=)"},
    {"GET", "/api/v1/alerts/{id}", api_alert_get, 0, "alerts:read", "one alert with its delivery log"},
    {"POST", "/api/v1/alerts/{id}/ack", api_alert_ack, 0, "alerts:write",
     "acknowledge a firing alert (no more repeats; it still resolves)"},
    {"GET", "/api/v1/backups/repositories", api_backup_repos_list, 0, "backups:read",
     "restic repositories backups go to (the password is never answered)"},
    {"POST", "/api/v1/backups/repositories", api_backup_repo_create, HTTP_ROUTE_BODY, "backups:write",
     "add a local or SFTP restic repository: initialized (or opened) with the password, which is sealed"},
    {"DELETE", "/api/v1/backups/repositories/{id}", api_backup_repo_delete, 0, "backups:write",
     "forget a repository no plan uses (its data stays where it is)"},
    {"POST", "/api/v1/backups/repositories/{id}/check", api_backup_repo_check, 0, "backups:write",
     "run restic check on the repository as a job; 202 {job}"},
    {"GET", "/api/v1/backups/repositories/{id}/snapshots", api_backup_snapshots, 0, "backups:read",
     "the repository's snapshots you may see, with plan, run, part, node and volume"},
    {"GET", "/api/v1/backups/plans", api_backup_plans_list, 0, "backups:read",
     "backup plans with last run, size and next run"},
    {"POST", "/api/v1/backups/plans", api_backup_plan_create, HTTP_ROUTE_BODY, "backups:write",
     "a plan: the control plane and/or a stack's named volumes to a repository, on a cron schedule, with "
     "retention"},
    {"GET", "/api/v1/backups/plans/{id}", api_backup_plan_get, 0, "backups:read",
     "one plan with its recent runs"},
    {"DELETE", "/api/v1/backups/plans/{id}", api_backup_plan_delete, 0, "backups:write",
     "delete a plan (its snapshots stay in the repository)"},
    {"POST", "/api/v1/backups/plans/{id}/run", api_backup_plan_run, 0, "backups:write",
     "run the plan now as a job; 202 {job}"},
    {"GET", "/api/v1/backups/runs", api_backup_runs_list, 0, "backups:read",
     "backup runs, newest first (?plan_id= &limit=)"},
    {"GET", "/api/v1/backups/runs/{id}", api_backup_run_get, 0, "backups:read",
     "one run: status, snapshots, bytes, duration, check"},
    {"POST", "/api/v1/backups/restore", api_backup_restore, HTTP_ROUTE_BODY, "backups:restore",
     "restore a volume snapshot into the same or another volume (emptied first) as a job; 202 {job}"},
    {"GET", "/api/v1/stacks/{id}/services/{service}/logs", api_stack_service_logs, 0, "stacks:read",
     "the last lines of a service's containers merged by time, each naming its container (?tail=, max 5000), "
     "or with follow=1 a Server-Sent Events stream of one of them (?container=); needs logs:read too"},
    {"GET", "/api/v1/auth/sessions", api_sessions_list, 0, "authenticated",
     "your live sessions (browser, address, created, last used), the current one marked"},
    {"DELETE", "/api/v1/auth/sessions", api_sessions_end_others, 0, "authenticated",
     "end every session of yours but this one"},
    {"DELETE", "/api/v1/auth/sessions/{id}", api_session_end, 0, "authenticated",
     "end one of your sessions: its next request is refused"},
    {"POST", "/api/v1/backups/plans/{id}/restore-test", api_backup_plan_restore_test, 0, "backups:write",
     "test-restore the plan's last successful run now (scratch database and volumes) as a job; 202 {job}"},
    {"PATCH", "/api/v1/backups/plans/{id}", api_backup_plan_update, HTTP_ROUTE_BODY, "backups:write",
     "change a plan's name, schedule, restore_test, retention, paused or volumes"},
    /* Last: the dashboard takes every GET no route above matched. */
    {"GET", "/g/{token}/{*page}", api_dashboard_guest_page, HTTP_ROUTE_INLINE | HTTP_ROUTE_SECRET_PATH,
     "public", "a page of the dashboard's guest view, for browsers (the path holds the link's secret)"},
    {"GET", "/", api_dashboard, HTTP_ROUTE_INLINE, "public", "the dashboard (index.html)"},
    {"GET", "/{*path}", api_dashboard, HTTP_ROUTE_INLINE, "public",
     "dashboard files, and index.html for the app's own routes"},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
