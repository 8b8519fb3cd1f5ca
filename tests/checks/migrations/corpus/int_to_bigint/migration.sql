ALTER TABLE documents ALTER COLUMN id TYPE bigint;
