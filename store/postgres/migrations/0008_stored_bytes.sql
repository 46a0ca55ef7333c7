-- 0008: a task counts the bytes its files hold in the object store (its
-- input once confirmed, its output and errors files once it completed), and
-- a tenant's usage against the stored-bytes quota is their sum
-- (docs/design.md §3, Quotas). The partial index holds only the tasks with
-- files, so the sum is an index-only scan over those of one tenant. Tasks
-- confirmed before this migration count 0 until they are deleted.
--
-- Adding a column with a constant default rewrites nothing; the index is
-- built in this migration's transaction, which reads the table once and
-- blocks writes meanwhile (nothing matches it yet, so it is small).
ALTER TABLE tasks ADD COLUMN stored_bytes bigint NOT NULL DEFAULT 0;
CREATE INDEX tasks_tenant_stored_idx ON tasks (tenant_id) INCLUDE (stored_bytes) WHERE stored_bytes > 0;
