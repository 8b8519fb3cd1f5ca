ALTER TABLE documents ADD CONSTRAINT documents_workspace_fk FOREIGN KEY (workspace_id) REFERENCES workspaces (id) NOT VALID;
