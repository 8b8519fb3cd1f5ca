-- The storage path moved to S3 object keys in 0.9; nothing reads this column any more.
-- AlterTable
ALTER TABLE "documents" DROP COLUMN "legacy_path";
