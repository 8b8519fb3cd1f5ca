-- PG 11+: a non-volatile default is stored in the catalog, no rewrite.
ALTER TABLE documents ADD COLUMN priority integer NOT NULL DEFAULT 0;
