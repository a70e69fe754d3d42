-- AlterTable
ALTER TABLE "Image" ADD COLUMN     "declaredFormat" TEXT,
ADD COLUMN     "expectedSha256" TEXT;
