-- 0004: listing a tenant's tasks of one entityType, newest first.
CREATE INDEX tasks_tenant_entity_created ON tasks (tenant_id, entity_type, created_at);
