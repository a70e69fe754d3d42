-- CreateEnum
CREATE TYPE "JobState" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "VmState" AS ENUM ('creating', 'stopped', 'starting', 'running', 'stopping', 'deleting', 'error');

-- CreateEnum
CREATE TYPE "ImageState" AS ENUM ('importing', 'ready', 'failed', 'deleting');

-- CreateTable
CREATE TABLE "Host" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "cpus" INTEGER NOT NULL,
    "memoryBytes" BIGINT NOT NULL,
    "diskBytes" BIGINT NOT NULL,
    "accelerator" TEXT NOT NULL,
    "qemuVersion" TEXT,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "drained" BOOLEAN NOT NULL DEFAULT false,
    "startedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastHeartbeatAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Host_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Image" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "state" "ImageState" NOT NULL DEFAULT 'importing',
    "description" TEXT,
    "sourceFormat" TEXT,
    "virtualSize" BIGINT,
    "storedSize" BIGINT,
    "sha256" TEXT,
    "path" TEXT,
    "lockJobId" UUID,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "errorHint" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Image_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Vm" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "state" "VmState" NOT NULL DEFAULT 'creating',
    "hostId" TEXT NOT NULL,
    "imageId" UUID NOT NULL,
    "cpus" INTEGER NOT NULL,
    "memoryBytes" BIGINT NOT NULL,
    "diskBytes" BIGINT NOT NULL,
    "lockJobId" UUID,
    "pid" INTEGER,
    "accelerator" TEXT,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "errorHint" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Vm_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Job" (
    "id" UUID NOT NULL,
    "type" TEXT NOT NULL,
    "state" "JobState" NOT NULL DEFAULT 'queued',
    "hostId" TEXT,
    "vmId" UUID,
    "imageId" UUID,
    "targetName" TEXT,
    "payload" JSONB NOT NULL,
    "result" JSONB,
    "progress" JSONB,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "errorHint" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL,
    "timeoutMs" INTEGER NOT NULL,
    "idempotencyKey" TEXT,
    "requestHash" TEXT,
    "eventSeq" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "Job_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "JobEvent" (
    "id" BIGSERIAL NOT NULL,
    "jobId" UUID NOT NULL,
    "seq" INTEGER NOT NULL,
    "type" TEXT NOT NULL,
    "level" TEXT NOT NULL DEFAULT 'info',
    "message" TEXT NOT NULL,
    "state" "JobState",
    "progress" JSONB,
    "error" JSONB,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "JobEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Image_name_key" ON "Image"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Vm_name_key" ON "Vm"("name");

-- CreateIndex
CREATE INDEX "Vm_hostId_idx" ON "Vm"("hostId");

-- CreateIndex
CREATE UNIQUE INDEX "Job_idempotencyKey_key" ON "Job"("idempotencyKey");

-- CreateIndex
CREATE INDEX "Job_state_createdAt_idx" ON "Job"("state", "createdAt");

-- CreateIndex
CREATE INDEX "Job_vmId_createdAt_idx" ON "Job"("vmId", "createdAt");

-- CreateIndex
CREATE INDEX "Job_imageId_createdAt_idx" ON "Job"("imageId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "JobEvent_jobId_seq_key" ON "JobEvent"("jobId", "seq");

-- AddForeignKey
ALTER TABLE "Vm" ADD CONSTRAINT "Vm_hostId_fkey" FOREIGN KEY ("hostId") REFERENCES "Host"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Vm" ADD CONSTRAINT "Vm_imageId_fkey" FOREIGN KEY ("imageId") REFERENCES "Image"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "JobEvent" ADD CONSTRAINT "JobEvent_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "Job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
