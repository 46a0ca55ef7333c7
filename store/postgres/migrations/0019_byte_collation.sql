-- 0019: the columns that hold identifiers (ids, tenants, task and entity
-- types, keys, actors) or words of a fixed vocabulary (statuses, levels,
-- event types, topics) compare bytes: COLLATE "C", whatever the database's
-- collation. They are only ever compared for equality or ordered to page
-- through them, and a locale's rules (C.UTF-8, en_US.UTF-8) cost a call to
-- strcoll per comparison on every index insert and lookup: inserting a
-- task, which updates seven btrees keyed on these columns, is 10-20%
-- faster under "C". It is also the order SQLite gives these columns
-- (BINARY), so both stores now sort ids, statuses and types alike.
--
-- Under "C" the primary key serves an id prefix (id LIKE 'abc%'), so
-- tasks_id_pattern_idx (0006) is dropped: one index less to update on
-- every insert.
--
-- Free text keeps the database's collation: file names, messages and
-- errors are searched case-insensitively (ILIKE), which folds the case of
-- non-ASCII letters only under a locale.
--
-- Every column of a kind is changed in every table at once: a comparison
-- between a "C" column and one of another collation would be made under
-- "C" and could not use the other column's index.
--
-- Changing a column's collation rewrites no table but rebuilds the indexes
-- on the column, and holds an exclusive lock on each table (reads wait
-- too) until the migration commits: 16 s for 1,000,000 tasks with
-- 2,000,000 events and 1,000,000 log lines (1.7 GB) on a 2-core machine.
-- Run it at a quiet moment: meanwhile writes wait on the locks, and the
-- API's reads wait up to their timeout (--read-timeout, then 503).

-- Dropped first: the ALTER below would rebuild it, under its lock, for
-- nothing. IF EXISTS: 0006 invites building it by hand.
DROP INDEX IF EXISTS tasks_id_pattern_idx;

ALTER TABLE tasks
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN task_type TYPE text COLLATE "C",
    ALTER COLUMN entity_type TYPE text COLLATE "C",
    ALTER COLUMN status TYPE text COLLATE "C",
    ALTER COLUMN requested_by TYPE text COLLATE "C",
    ALTER COLUMN upload_status TYPE text COLLATE "C",
    ALTER COLUMN lease_owner TYPE text COLLATE "C";

ALTER TABLE task_logs
    ALTER COLUMN task_id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN level TYPE text COLLATE "C";

ALTER TABLE task_events
    ALTER COLUMN task_id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN task_type TYPE text COLLATE "C",
    ALTER COLUMN entity_type TYPE text COLLATE "C",
    ALTER COLUMN status TYPE text COLLATE "C",
    ALTER COLUMN requested_by TYPE text COLLATE "C",
    ALTER COLUMN event_type TYPE text COLLATE "C";

ALTER TABLE outbox
    ALTER COLUMN task_id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN topic TYPE text COLLATE "C";

ALTER TABLE idempotency_keys
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN key TYPE text COLLATE "C",
    ALTER COLUMN task_id TYPE text COLLATE "C",
    ALTER COLUMN request_hash TYPE text COLLATE "C";

ALTER TABLE api_keys
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN key_hash TYPE text COLLATE "C",
    ALTER COLUMN created_by TYPE text COLLATE "C";

ALTER TABLE schedules
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN last_task_id TYPE text COLLATE "C",
    ALTER COLUMN created_by TYPE text COLLATE "C",
    ALTER COLUMN overlap TYPE text COLLATE "C",
    ALTER COLUMN missed_runs TYPE text COLLATE "C";

ALTER TABLE webhook_subscriptions
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN task_type TYPE text COLLATE "C";

ALTER TABLE webhook_deliveries
    ALTER COLUMN task_id TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN subscription_id TYPE text COLLATE "C",
    ALTER COLUMN event_type TYPE text COLLATE "C",
    ALTER COLUMN status TYPE text COLLATE "C";

ALTER TABLE flow_controls
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN task_type TYPE text COLLATE "C";

ALTER TABLE leaders
    ALTER COLUMN name TYPE text COLLATE "C",
    ALTER COLUMN holder TYPE text COLLATE "C";

-- A column whose collation changes loses its statistics, and the planner
-- then guesses: lists over 1,000,000 tasks took 180-290 ms instead of
-- 1-40 ms until the next ANALYZE (autovacuum may wait long for it, as the
-- table did not change). So the tables that had statistics are analysed
-- again here (within the 16 s above); those never analysed
-- are left so, as a fresh database's are.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tasks', 'task_logs', 'task_events', 'outbox', 'idempotency_keys', 'api_keys',
                             'schedules', 'webhook_subscriptions', 'webhook_deliveries', 'flow_controls', 'leaders'] LOOP
        IF EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema() AND tablename = t) THEN
            EXECUTE format('ANALYZE %I', t);
        END IF;
    END LOOP;
END
$$;
