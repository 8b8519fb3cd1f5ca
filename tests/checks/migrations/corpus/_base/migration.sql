-- The "current" schema every corpus case starts from (applied as the earlier migration).
CREATE TYPE doc_kind AS ENUM ('pdf', 'image');
CREATE TABLE workspaces (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE documents (
    id integer PRIMARY KEY,
    workspace_id integer NOT NULL,
    title varchar(200) NOT NULL,
    body text,
    status text,
    kind doc_kind NOT NULL DEFAULT 'pdf',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_status_not_null CHECK (status IS NOT NULL)
);
CREATE INDEX documents_workspace_idx ON documents (workspace_id);
ALTER TABLE documents ADD CONSTRAINT documents_status_known CHECK (status IN ('new', 'done')) NOT VALID;
CREATE TABLE audit_log (id bigint PRIMARY KEY, note text);
