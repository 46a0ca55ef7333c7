-- 0016: the fair claim reads pending tasks through tasks_fair_claim_idx
-- alone. With tasks_claim_idx beside it, the planner took each (tenant,
-- task type) pair's first tasks from tasks_claim_idx, filtering on the
-- pair: it cannot tell that one tenant holds most of the queue, so a tenant
-- whose tasks are queued behind 20,000 of another walked past all of them
-- (21 ms per claim instead of 0.05 ms). tasks_fair_claim_idx serves every
-- reader of pending tasks that tasks_claim_idx served (the claim, the queue
-- statistics), and each task write now maintains one index fewer.
DROP INDEX tasks_claim_idx;
