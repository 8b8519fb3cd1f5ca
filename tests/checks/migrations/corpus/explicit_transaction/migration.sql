BEGIN;
ALTER TABLE documents ADD COLUMN summary text;
ALTER TABLE documents ADD COLUMN reviewed_at timestamptz;
COMMIT;
