ALTER TABLE documents ALTER COLUMN body TYPE varchar(100);
