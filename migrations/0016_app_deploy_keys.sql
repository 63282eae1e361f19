-- GitOps apps fetched over ssh (issue #15): the public half of an app's
-- deploy key (the private half is sealed in app_secrets) and the git host's
-- pinned host key (SHA256:<base64>, pinned at the first fetch or given).
-- Both projections of app.created / app.updated / app.host_key_pinned.
ALTER TABLE apps ADD COLUMN deploy_key_public text;
ALTER TABLE apps ADD COLUMN git_host_key text;
