-- 0006: the list's search (a case-insensitive substring of file_name,
-- message or error_message, or an id prefix) reads indexes instead of every
-- task of the tenant: 1.2-1.5 s over 1,000,000 tasks before this migration.
--
-- The id prefix (id LIKE 'abc%') gets a text_pattern_ops btree: the primary
-- key serves LIKE prefixes only under the C collation, which a database
-- created with another (C.UTF-8, en_US.UTF-8) does not have.
--
-- The substrings get a pg_trgm GIN index, which serves ILIKE '%...%' for a
-- search of three characters or more. pg_trgm ships with PostgreSQL
-- (contrib) and is a trusted extension since PostgreSQL 13, so the owner of
-- the database can create it without being a superuser. Where it cannot be
-- created (the contrib package missing, or no CREATE privilege on the
-- database) the migration still succeeds without the index: search then
-- keeps its meaning and scans the tenant's tasks, bounded by the read
-- timeout (ReadTimeout); an operator can run
-- CREATE EXTENSION pg_trgm SCHEMA public and create the index by hand, as
-- below.
--
-- The extension goes to the schema public, where extensions usually live,
-- not to the store's schema: an extension belongs to one schema of the
-- database, and dropping a store's schema must not drop it for the others.
-- Creating it takes a lock first, so stores migrating side by side do not
-- race on it.
--
-- Both indexes are built in this migration's transaction, which blocks
-- writes to tasks while they build (about a minute for 1,000,000 tasks);
-- on a large table create them CONCURRENTLY by hand before upgrading.
CREATE INDEX tasks_id_pattern_idx ON tasks (id text_pattern_ops);

DO $$
DECLARE
    ext_schema text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('commonops.extension.pg_trgm'));
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm is not available (%); search will scan instead of using an index', SQLERRM;
    END;
    SELECT n.nspname INTO ext_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF ext_schema IS NOT NULL THEN
        EXECUTE format('CREATE INDEX tasks_search_trgm_idx ON tasks USING gin (file_name %1$I.gin_trgm_ops, message %1$I.gin_trgm_ops, error_message %1$I.gin_trgm_ops)', ext_schema);
    END IF;
END
$$;
