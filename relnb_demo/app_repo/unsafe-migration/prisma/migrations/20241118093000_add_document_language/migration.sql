-- Keep locks short: fail fast instead of queueing behind long transactions.
SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- AlterTable (nullable, no default: catalog-only change, no table rewrite)
ALTER TABLE "documents" ADD COLUMN IF NOT EXISTS "language" TEXT;
-- AlterTable (ids are running out on big tenants)
ALTER TABLE "documents" ALTER COLUMN "id" SET DATA TYPE BIGINT;
