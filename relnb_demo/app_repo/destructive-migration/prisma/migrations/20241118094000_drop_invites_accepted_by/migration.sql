-- Who accepted an invite is the membership row it creates; 1.1.0 no longer writes this column.
-- AlterTable
ALTER TABLE "invites" DROP COLUMN "accepted_by";
