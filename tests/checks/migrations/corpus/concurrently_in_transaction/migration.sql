ALTER TABLE documents ADD COLUMN summary text;
CREATE INDEX CONCURRENTLY documents_summary_idx ON documents (summary);
