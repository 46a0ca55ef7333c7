-- 0002: the claim index covers the claim's whole ORDER BY (priority DESC,
-- created_at, id), so a claim reads the first runnable rows from the index
-- instead of sorting every pending task, whatever the statistics say.
DROP INDEX tasks_claim_idx;
CREATE INDEX tasks_claim_idx ON tasks (priority DESC, created_at, id) WHERE status = 'pending';

-- Tasks and outbox churn like queues: every task is updated a few
-- times within seconds of its insert, and every outbox row once. With the
-- default thresholds (20% of the table) autovacuum lets dead tuples pile up
-- in the claim and unsent-outbox indexes, and claims slow down as the
-- backlog grows. Vacuum and analyze them after a small fixed number of
-- changes instead.
ALTER TABLE tasks SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
