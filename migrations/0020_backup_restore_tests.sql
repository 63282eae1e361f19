-- Backups (issue #19): the scheduled restore test and its last outcome on
-- the plan (projection of backup.plan_created / plan_updated /
-- restore_test_fired / restore_test_succeeded / restore_test_failed,
-- store/backups.c), and the containers a run holds paused
-- (backup.services_paused / services_unpaused), so that those of a run
-- whose daemon died are unpaused by the backup-schedule duty.
ALTER TABLE backup_plans
    ADD COLUMN restore_test            text,        -- cron; NULL = only when asked
    ADD COLUMN restore_test_fired_at   timestamptz, -- the last time that schedule fired
    ADD COLUMN paused                  boolean NOT NULL DEFAULT false, -- no scheduled run or test
    ADD COLUMN pause_services          boolean NOT NULL DEFAULT false, -- docker pause while volumes are read
    ADD COLUMN last_verified_at        timestamptz, -- the last restore test's end
    ADD COLUMN last_verified_status    text,        -- succeeded | failed
    ADD COLUMN last_verified_snapshot  text,        -- the snapshot it restored (the failing one if it failed)
    ADD COLUMN last_verified_reason    text;

ALTER TABLE backup_runs
    ADD COLUMN paused_containers jsonb; -- [container ids] paused by the run and not yet unpaused
