ALTER TABLE documents ADD COLUMN owner_id integer NOT NULL;
