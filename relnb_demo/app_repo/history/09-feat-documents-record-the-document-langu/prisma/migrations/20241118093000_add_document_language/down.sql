ALTER TABLE "documents" DROP COLUMN IF EXISTS "language";
