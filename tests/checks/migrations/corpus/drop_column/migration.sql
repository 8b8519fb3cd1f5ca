ALTER TABLE documents DROP COLUMN body;
