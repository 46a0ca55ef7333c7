-- 0013: a time limit per attempt (docs/design.md, Time limits). An attempt
-- times out at started_at + timeout_seconds; the partial index serves the
-- maintenance job that finds processing tasks past it.
ALTER TABLE tasks ADD COLUMN timeout_seconds integer;
CREATE INDEX tasks_deadline_idx ON tasks (started_at)
    WHERE status = 'processing' AND timeout_seconds IS NOT NULL;
