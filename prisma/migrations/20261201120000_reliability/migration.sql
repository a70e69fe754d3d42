-- Reliability: image integrity state, host instance fencing, job leases, uploads tracked in Postgres.
ALTER TYPE "ImageState" ADD VALUE 'error';

ALTER TABLE "Host" ADD COLUMN "instanceId" TEXT;

ALTER TABLE "Image" ADD COLUMN "uploadOffset" BIGINT,
  ADD COLUMN "uploadOwner" TEXT,
  ADD COLUMN "uploadLockedUntil" TIMESTAMP(3),
  ADD COLUMN "uploadActivityAt" TIMESTAMP(3),
  ADD COLUMN "checkedAt" TIMESTAMP(3);

ALTER TABLE "Job" ADD COLUMN "workerInstance" TEXT,
  ADD COLUMN "leaseExpiresAt" TIMESTAMP(3);

CREATE INDEX "Job_state_finishedAt_idx" ON "Job"("state", "finishedAt");
