ALTER TABLE documents ADD CONSTRAINT documents_title_key UNIQUE (title);
