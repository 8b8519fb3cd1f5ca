CREATE INDEX documents_title_idx ON documents (title);
