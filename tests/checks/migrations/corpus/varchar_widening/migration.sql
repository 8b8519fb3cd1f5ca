-- squawk flags this (changing-column-type); PostgreSQL does not rewrite.
ALTER TABLE documents ALTER COLUMN title TYPE varchar(500);
