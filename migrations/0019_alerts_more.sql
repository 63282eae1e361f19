-- Alerts, continued (issue #18): Gotify channels.
ALTER TABLE alert_channels DROP CONSTRAINT alert_channels_kind_check;
ALTER TABLE alert_channels ADD CONSTRAINT alert_channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'discord', 'email', 'ntfy', 'gotify'));
