ALTER TABLE documents VALIDATE CONSTRAINT documents_status_known;
