ALTER TABLE documents RENAME COLUMN body TO content;
