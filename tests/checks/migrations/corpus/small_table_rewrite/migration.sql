ALTER TABLE audit_log ALTER COLUMN id TYPE numeric;
