-- 0004: a task records the files it confirmed (docs/design.md §4): the ETag
-- of its input when the upload was confirmed, the key and ETag of its
-- output when it completed. A download of a file whose ETag has changed
-- since is refused. NULL for tasks confirmed before this migration: their
-- files are served unchecked, as before.
ALTER TABLE tasks ADD COLUMN input_etag TEXT;
ALTER TABLE tasks ADD COLUMN output_object TEXT;
ALTER TABLE tasks ADD COLUMN output_etag TEXT;
