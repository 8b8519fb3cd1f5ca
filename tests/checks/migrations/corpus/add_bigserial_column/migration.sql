-- squawk only says prefer-identity; the nextval() default rewrites the table.
ALTER TABLE documents ADD COLUMN seq bigserial;
