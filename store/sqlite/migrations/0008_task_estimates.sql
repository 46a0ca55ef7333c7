-- 0007: a task says whether its totalItems is an estimate (an import counts
-- rows as it reads and knows the exact total only at the end) and how many
-- seconds its running attempt is expected to take still (docs/design.md §2,
-- Progress).
ALTER TABLE tasks ADD COLUMN total_items_estimated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN eta_seconds INTEGER;
