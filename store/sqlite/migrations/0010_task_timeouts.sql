-- 0010: a time limit per attempt (docs/design.md, Time limits). An attempt
-- times out at started_at + timeout_seconds (microseconds: * 1000000).
ALTER TABLE tasks ADD COLUMN timeout_seconds INTEGER;
