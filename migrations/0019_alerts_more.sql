-- Alerts, continued (issue #18): Gotify channels, recurring maintenance windows.
ALTER TABLE alert_channels DROP CONSTRAINT alert_channels_kind_check;
ALTER TABLE alert_channels ADD CONSTRAINT alert_channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'discord', 'email', 'ntfy', 'gotify'));

-- Recurring maintenance windows: a silence with node_labels and a weekly
-- recurrence {days, start "HH:MM" UTC, duration_s}, silencing only while
-- open; until is 'infinity' for a window without end.
ALTER TABLE alert_silences ADD COLUMN recurrence jsonb;
