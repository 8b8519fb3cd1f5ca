ALTER TABLE documents ADD COLUMN token uuid DEFAULT gen_random_uuid();
