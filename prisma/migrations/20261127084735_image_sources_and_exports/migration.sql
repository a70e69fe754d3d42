-- CreateEnum
CREATE TYPE "ExportState" AS ENUM ('pending', 'ready', 'failed', 'expired');

-- AlterTable
ALTER TABLE "Image" ADD COLUMN     "compression" TEXT,
ADD COLUMN     "labels" JSONB NOT NULL DEFAULT '{}',
ADD COLUMN     "originLocation" TEXT,
ADD COLUMN     "originType" TEXT,
ADD COLUMN     "uploadLength" BIGINT;

-- AlterTable
ALTER TABLE "Job" ADD COLUMN     "cancelRequestedAt" TIMESTAMP(3);

-- CreateTable
CREATE TABLE "Export" (
    "id" UUID NOT NULL,
    "jobId" UUID NOT NULL,
    "state" "ExportState" NOT NULL DEFAULT 'pending',
    "sourceType" TEXT NOT NULL,
    "sourceId" UUID NOT NULL,
    "sourceName" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "compressed" BOOLEAN NOT NULL DEFAULT false,
    "path" TEXT,
    "sizeBytes" BIGINT,
    "sha256" TEXT,
    "expiresAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Export_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Export_jobId_key" ON "Export"("jobId");

-- CreateIndex
CREATE INDEX "Export_state_expiresAt_idx" ON "Export"("state", "expiresAt");
