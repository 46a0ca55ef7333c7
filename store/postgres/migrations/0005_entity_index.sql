-- 0005: commonops is about entities: listing a tenant's tasks of one
-- entityType, newest first, gets its own index too.
CREATE INDEX tasks_tenant_entity_created_idx ON tasks (tenant_id, entity_type, created_at DESC) INCLUDE (status, task_type);
