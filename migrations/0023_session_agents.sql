-- The browser (User-Agent) a session was opened from, so its user can tell
-- their sessions apart on the Account page (issue #17). Not a secret; kept
-- at most 256 characters by the core.
ALTER TABLE sessions ADD COLUMN user_agent text;
