-- State, type and kind columns become enums: a value outside the set is refused by Postgres, and
-- the rows already there are converted in place (ALTER COLUMN ... TYPE ... USING), keeping them.
-- Job types keep the names users see (vm.create), the Prisma client spells them vm_create.

CREATE TYPE "JobType" AS ENUM ('vm.create', 'vm.start', 'vm.stop', 'vm.reboot', 'vm.delete', 'vm.nic.add', 'vm.nic.remove', 'vm.port.add', 'vm.port.remove', 'vm.probe', 'vm.resize', 'vm.clone', 'vm.snapshot.create', 'vm.snapshot.restore', 'vm.snapshot.delete', 'vm.backup', 'vm.backup.restore', 'backup.verify', 'backup.delete', 'backup.missed', 'image.import', 'image.export', 'vm.export', 'image.delete', 'image.verify', 'image.reconcile', 'bench.noop', 'vm.reconcile', 'vm.migrate');
CREATE TYPE "JobEventType" AS ENUM ('state', 'progress', 'log');
CREATE TYPE "JobEventLevel" AS ENUM ('info', 'warn', 'error');
CREATE TYPE "ExportSourceType" AS ENUM ('image', 'vm');
CREATE TYPE "PortProtocol" AS ENUM ('tcp', 'udp');
CREATE TYPE "SnapshotKind" AS ENUM ('disk', 'memory');
CREATE TYPE "SnapshotState" AS ENUM ('creating', 'ready', 'deleting');
CREATE TYPE "AuditOutcome" AS ENUM ('allowed', 'denied', 'failed');

ALTER TABLE "Job" ALTER COLUMN "type" TYPE "JobType" USING "type"::"JobType";

ALTER TABLE "JobEvent" ALTER COLUMN "type" TYPE "JobEventType" USING "type"::"JobEventType";
ALTER TABLE "JobEvent" ALTER COLUMN "level" DROP DEFAULT;
ALTER TABLE "JobEvent" ALTER COLUMN "level" TYPE "JobEventLevel" USING "level"::"JobEventLevel";
ALTER TABLE "JobEvent" ALTER COLUMN "level" SET DEFAULT 'info';

ALTER TABLE "Export" ALTER COLUMN "sourceType" TYPE "ExportSourceType" USING "sourceType"::"ExportSourceType";

ALTER TABLE "PortForward" ALTER COLUMN "protocol" TYPE "PortProtocol" USING "protocol"::"PortProtocol";

ALTER TABLE "Snapshot" ALTER COLUMN "kind" TYPE "SnapshotKind" USING "kind"::"SnapshotKind";
ALTER TABLE "Snapshot" ALTER COLUMN "state" DROP DEFAULT;
ALTER TABLE "Snapshot" ALTER COLUMN "state" TYPE "SnapshotState" USING "state"::"SnapshotState";
ALTER TABLE "Snapshot" ALTER COLUMN "state" SET DEFAULT 'creating';
ALTER TABLE "Snapshot" ALTER COLUMN "vmState" TYPE "VmState" USING "vmState"::"VmState";

-- The audit trail is append-only: its rows keep what they said, anything unknown was a failure.
ALTER TABLE "AuditEvent" ALTER COLUMN "outcome" TYPE "AuditOutcome"
  USING (CASE WHEN "outcome" IN ('allowed', 'denied') THEN "outcome" ELSE 'failed' END)::"AuditOutcome";
