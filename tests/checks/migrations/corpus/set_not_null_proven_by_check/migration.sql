-- documents_status_not_null is a valid CHECK (status IS NOT NULL): PG 12+ skips the scan.
ALTER TABLE documents ALTER COLUMN status SET NOT NULL;
