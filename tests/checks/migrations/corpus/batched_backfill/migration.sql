-- one batch; a background job runs the rest
UPDATE documents SET body = '' WHERE id IN (SELECT id FROM documents WHERE body IS NULL ORDER BY id LIMIT 1000);
