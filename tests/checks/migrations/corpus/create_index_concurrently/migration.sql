CREATE INDEX CONCURRENTLY documents_title_idx ON documents (title);
