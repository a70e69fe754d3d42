-- CreateEnum
CREATE TYPE "BackupKind" AS ENUM ('full', 'incremental');

-- CreateEnum
CREATE TYPE "BackupState" AS ENUM ('creating', 'ready', 'deleting');

-- AlterTable
ALTER TABLE "Vm" ADD COLUMN     "backupBaseId" UUID;

-- CreateTable
CREATE TABLE "Backup" (
    "id" UUID NOT NULL,
    "vmId" UUID NOT NULL,
    "vmName" TEXT NOT NULL,
    "hostId" TEXT NOT NULL,
    "kind" "BackupKind" NOT NULL,
    "state" "BackupState" NOT NULL DEFAULT 'creating',
    "parentId" UUID,
    "live" BOOLEAN NOT NULL DEFAULT false,
    "path" TEXT,
    "sizeBytes" BIGINT,
    "diskBytes" BIGINT NOT NULL,
    "bytesCopied" BIGINT,
    "sha256" TEXT,
    "config" JSONB NOT NULL,
    "keepLast" INTEGER,
    "scheduleId" UUID,
    "jobId" UUID NOT NULL,
    "lockJobId" UUID,
    "verifiedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Backup_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "BackupSchedule" (
    "id" UUID NOT NULL,
    "vmId" UUID NOT NULL,
    "everyMs" INTEGER,
    "cron" TEXT,
    "keepLast" INTEGER NOT NULL,
    "incremental" BOOLEAN NOT NULL DEFAULT false,
    "lastRunAt" TIMESTAMP(3),
    "lastJobId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "BackupSchedule_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Backup_vmId_createdAt_idx" ON "Backup"("vmId", "createdAt");

-- CreateIndex
CREATE INDEX "Backup_parentId_idx" ON "Backup"("parentId");

-- CreateIndex
CREATE INDEX "Backup_lockJobId_idx" ON "Backup"("lockJobId");

-- CreateIndex
CREATE UNIQUE INDEX "BackupSchedule_vmId_key" ON "BackupSchedule"("vmId");

-- AddForeignKey
ALTER TABLE "BackupSchedule" ADD CONSTRAINT "BackupSchedule_vmId_fkey" FOREIGN KEY ("vmId") REFERENCES "Vm"("id") ON DELETE CASCADE ON UPDATE CASCADE;
