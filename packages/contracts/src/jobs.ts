import { z } from "zod";
import { JobError } from "./errors.js";
import { ImageState, JobState, VmState } from "./states.js";
import { ImageFormat } from "./resources.js";
import { PageCursor, PageLimit } from "./pagination.js";

export const JobProgress = z.object({
  phase: z.string(),
  percent: z.number().min(0).max(100),
  bytesDone: z.number().optional(),
  bytesTotal: z.number().optional(),
  /** Bytes per second, for transfers. */
  rate: z.number().optional(),
  etaSeconds: z.number().optional(),
  message: z.string().optional(),
});
export type JobProgress = z.infer<typeof JobProgress>;

const VmRef = z.object({ vmId: z.string() });

/** Job payloads, one schema per job type. The VM/image rows hold the rest of the configuration. */
export const JobPayloads = {
  /** fromBackupId: the disk is made from that backup (its chain read through) instead of empty. */
  "vm.create": VmRef.extend({ start: z.boolean(), fromBackupId: z.string().optional() }),
  "vm.start": VmRef,
  "vm.stop": VmRef.extend({ force: z.boolean(), timeoutSeconds: z.number().int().min(0) }),
  "vm.reboot": VmRef,
  /** force: recorded (already final) by the API, which removed the rows of a VM whose host is lost. */
  "vm.delete": VmRef.extend({ force: z.boolean().optional() }),
  /** The NIC row exists already (IPAM in the submitting transaction); the host realizes it. */
  "vm.nic.add": VmRef.extend({ nicId: z.string() }),
  /** The NIC row is gone (its address released); the host removes its tap. */
  "vm.nic.remove": VmRef.extend({ nicId: z.string(), network: z.string() }),
  "vm.port.add": VmRef.extend({ forwardId: z.string() }),
  "vm.port.remove": VmRef.extend({
    forwardId: z.string(),
    hostPort: z.number().int(),
    protocol: z.enum(["tcp", "udp"]),
    address: z.string().nullable(),
    nicIndex: z.number().int(),
  }),
  "vm.resize": VmRef.extend({ diskBytes: z.number().int().positive() }),
  /** vmId is the new VM (created `creating`); the source is held too while its disk is read. */
  "vm.clone": VmRef.extend({
    sourceVmId: z.string(),
    snapshot: z.string().optional(),
    start: z.boolean(),
    /** The clone's host takes over: its disk was written here, relative to the shared store, by the source's host. */
    stagedDisk: z.string().optional(),
  }),
  "vm.snapshot.create": VmRef.extend({ snapshotId: z.string() }),
  "vm.snapshot.restore": VmRef.extend({ snapshotId: z.string(), restart: z.boolean() }),
  "vm.snapshot.delete": VmRef.extend({ snapshotId: z.string() }),
  /**
   * backupId: the Backup row (kind as decided at submit: incremental on `parentId`, or full);
   * imageId instead for `--as-image`. scheduleId when a schedule fired it.
   */
  "vm.backup": VmRef.extend({
    backupId: z.string().optional(),
    imageId: z.string().optional(),
    keepLast: z.number().int().optional(),
    scheduleId: z.string().optional(),
    /** Bytes per second at most. */
    bwlimit: z.number().int().positive().optional(),
  }),
  /** Replace a stopped VM's disk by a backup's content (and its CPUs and memory by the backup's). */
  "vm.backup.restore": VmRef.extend({ backupId: z.string(), start: z.boolean() }),
  "backup.verify": z.object({ backupId: z.string() }),
  "backup.delete": z.object({ backupId: z.string() }),
  /** Recorded (already final, failed) when a schedule could not run its backup. */
  "backup.missed": VmRef.extend({ scheduleId: z.string(), dueAt: z.string() }),
  /** Waits until a TCP port of the guest answers through its network (`iaas vm wait --for port=N`). */
  "vm.probe": VmRef.extend({ port: z.number().int(), nic: z.number().int(), timeoutSeconds: z.number().int() }),
  "image.import": z.object({
    imageId: z.string(),
    source: z.discriminatedUnion("type", [
      /** Staged upload, relative to the image store root. */
      z.object({
        type: z.literal("upload"),
        stagingFile: z.string(),
        sizeBytes: z.number().int().nonnegative(),
        /** sha256 computed by the API while the bytes streamed in (absent for a resumed upload). */
        sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
      }),
      z.object({ type: z.literal("url"), url: z.string() }),
      z.object({ type: z.literal("path"), path: z.string() }),
    ]),
    declaredFormat: ImageFormat.optional(),
    /** sha256 the content must have, as delivered. */
    expectedSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    dedupe: z.boolean(),
  }),
  "image.export": z.object({ exportId: z.string(), imageId: z.string(), format: ImageFormat, compress: z.boolean(), ttlSeconds: z.number().int().positive() }),
  "vm.export": VmRef.extend({ exportId: z.string(), format: ImageFormat, compress: z.boolean(), ttlSeconds: z.number().int().positive() }),
  "image.delete": z.object({ imageId: z.string() }),
  /** Checks the stored file (exists, size, sha256, `qemu-img check`): ready again if it is whole, else `error`. */
  "image.verify": z.object({ imageId: z.string() }),
  /** Recorded (already final) by a worker's store check that found a ready image's file missing or changed. */
  "image.reconcile": z.object({ imageId: z.string(), reason: z.string() }),
  /** A job that does no hypervisor work, used only by `npm run bench:jobs`. */
  "bench.noop": z.object({ n: z.number().int() }),
  /** Recorded (already final) by a worker that corrected a VM's state on its own. */
  "vm.reconcile": VmRef.extend({ reason: z.string() }),
  /**
   * Moves a stopped VM to another host, keeping its id, name, MACs and addresses; the VM row is on
   * `toHostId` from the submit on. Cold (its host online): the job runs on `fromHostId`, copies the
   * disk into the shared store and queues the job (`stagedDisk`) with which `toHostId` takes it
   * over. From a backup (its host lost): the job runs on `toHostId` and makes the disk from
   * `fromBackupId`.
   */
  "vm.migrate": VmRef.extend({
    fromHostId: z.string(),
    toHostId: z.string(),
    stagedDisk: z.string().optional(),
    fromBackupId: z.string().optional(),
  }),
} as const;

const VmResult = z.object({ vmId: z.string(), state: VmState });

export const JobResults = {
  "vm.create": VmResult,
  "vm.start": VmResult,
  "vm.stop": VmResult.extend({ forced: z.boolean() }),
  "vm.reboot": VmResult,
  "vm.delete": z.object({ vmId: z.string(), deleted: z.literal(true) }),
  "vm.nic.add": z.object({ vmId: z.string(), nicId: z.string(), mac: z.string(), ip: z.string() }),
  "vm.nic.remove": z.object({ vmId: z.string(), nicId: z.string() }),
  "vm.port.add": z.object({ vmId: z.string(), forwardId: z.string() }),
  "vm.port.remove": z.object({ vmId: z.string(), forwardId: z.string() }),
  "vm.probe": z.object({ vmId: z.string(), ip: z.string(), port: z.number().int(), elapsedMs: z.number() }),
  "vm.resize": z.object({ vmId: z.string(), diskBytes: z.number(), live: z.boolean() }),
  /** nextJobId: for a clone to another host, the job on that host that takes the disk over. */
  "vm.clone": VmResult.extend({ sourceVmId: z.string(), nextJobId: z.string().optional() }),
  "vm.snapshot.create": z.object({ vmId: z.string(), snapshotId: z.string(), name: z.string() }),
  "vm.snapshot.restore": z.object({ vmId: z.string(), snapshotId: z.string(), name: z.string(), state: VmState }),
  "vm.snapshot.delete": z.object({ vmId: z.string(), snapshotId: z.string(), name: z.string() }),
  "vm.backup": z.object({
    vmId: z.string(),
    backupId: z.string().nullable(),
    imageId: z.string().nullable(),
    kind: z.enum(["full", "incremental"]),
    live: z.boolean(),
    sizeBytes: z.number(),
    bytesCopied: z.number(),
    sha256: z.string(),
    /** Backups removed by the retention policy. */
    pruned: z.array(z.string()),
  }),
  "vm.backup.restore": VmResult.extend({ backupId: z.string() }),
  "backup.verify": z.object({ backupId: z.string(), chain: z.array(z.object({ id: z.string(), sha256: z.string(), sizeBytes: z.number() })) }),
  "backup.delete": z.object({ backupId: z.string(), deleted: z.literal(true) }),
  "backup.missed": z.object({ vmId: z.string() }),
  "image.import": z.object({
    imageId: z.string(),
    sourceFormat: z.string(),
    virtualSize: z.number(),
    storedSize: z.number(),
    sha256: z.string(),
    /** Set when `dedupe` found the same content stored already: the image reused instead. */
    deduplicatedTo: z.object({ id: z.string(), name: z.string() }).optional(),
  }),
  "image.export": z.object({ exportId: z.string(), format: ImageFormat, sizeBytes: z.number(), sha256: z.string(), expiresAt: z.string() }),
  "vm.export": z.object({ exportId: z.string(), format: ImageFormat, sizeBytes: z.number(), sha256: z.string(), expiresAt: z.string() }),
  "image.delete": z.object({ imageId: z.string(), deleted: z.literal(true) }),
  /** firstChecksum: the image had no checksum of its stored file yet (imported before they were kept); this one is kept now. */
  "image.verify": z.object({ imageId: z.string(), state: ImageState, sizeBytes: z.number(), sha256: z.string(), firstChecksum: z.boolean() }),
  "image.reconcile": z.object({ imageId: z.string(), state: ImageState, previousState: ImageState, code: z.string() }),
  "bench.noop": z.object({ n: z.number().int() }),
  "vm.reconcile": VmResult.extend({ previousState: VmState }),
  /** nextJobId: the job on the new host that takes the staged disk over; backupId/backupAt: the backup the disk was made from. */
  "vm.migrate": VmResult.extend({
    hostId: z.string(),
    fromHostId: z.string(),
    nextJobId: z.string().optional(),
    backupId: z.string().optional(),
    backupAt: z.string().optional(),
  }),
} as const;

export const JobType = z.enum([
  "vm.create",
  "vm.start",
  "vm.stop",
  "vm.reboot",
  "vm.delete",
  "vm.nic.add",
  "vm.nic.remove",
  "vm.port.add",
  "vm.port.remove",
  "vm.probe",
  "vm.resize",
  "vm.clone",
  "vm.snapshot.create",
  "vm.snapshot.restore",
  "vm.snapshot.delete",
  "vm.backup",
  "vm.backup.restore",
  "backup.verify",
  "backup.delete",
  "backup.missed",
  "image.import",
  "image.export",
  "vm.export",
  "image.delete",
  "image.verify",
  "image.reconcile",
  "bench.noop",
  "vm.reconcile",
  "vm.migrate",
]);
export type JobType = z.infer<typeof JobType>;

export type JobPayload<T extends JobType> = z.infer<(typeof JobPayloads)[T]>;
export type JobResult<T extends JobType> = z.infer<(typeof JobResults)[T]>;

export interface JobCatalogEntry {
  /** Longest a single attempt may run before it is failed with JOB_TIMEOUT. */
  timeoutMs: number;
  /** Attempts for retryable failures (a non-retryable error fails at once). */
  attempts: number;
  /** Whether `iaas job cancel` applies to the job before it starts. */
  cancellable: boolean;
  /** Whether it can also be cancelled while it runs (transfers and conversions). */
  cancellableWhileRunning?: boolean;
  /** A short description shown in `iaas job show`. */
  title: string;
}

/** Timeouts, attempts and cancellation for every job type. */
export const JobCatalog: Record<JobType, JobCatalogEntry> = {
  "vm.create": { timeoutMs: 10 * 60_000, attempts: 3, cancellable: true, title: "create VM" },
  "vm.start": { timeoutMs: 2 * 60_000, attempts: 2, cancellable: true, title: "start VM" },
  "vm.stop": { timeoutMs: 60 * 60_000 + 60_000, attempts: 2, cancellable: true, title: "stop VM" },
  "vm.reboot": { timeoutMs: 60_000, attempts: 2, cancellable: true, title: "reboot VM" },
  "vm.delete": { timeoutMs: 5 * 60_000, attempts: 3, cancellable: true, title: "delete VM" },
  "vm.nic.add": { timeoutMs: 2 * 60_000, attempts: 3, cancellable: false, title: "add NIC" },
  "vm.nic.remove": { timeoutMs: 2 * 60_000, attempts: 3, cancellable: false, title: "remove NIC" },
  "vm.port.add": { timeoutMs: 2 * 60_000, attempts: 3, cancellable: false, title: "add port forward" },
  "vm.port.remove": { timeoutMs: 2 * 60_000, attempts: 3, cancellable: false, title: "remove port forward" },
  "vm.resize": { timeoutMs: 10 * 60_000, attempts: 2, cancellable: true, title: "grow VM disk" },
  "vm.clone": { timeoutMs: 60 * 60_000, attempts: 2, cancellable: true, title: "clone VM" },
  "vm.snapshot.create": { timeoutMs: 30 * 60_000, attempts: 2, cancellable: true, title: "snapshot VM" },
  "vm.snapshot.restore": { timeoutMs: 30 * 60_000, attempts: 2, cancellable: true, title: "restore VM snapshot" },
  "vm.snapshot.delete": { timeoutMs: 30 * 60_000, attempts: 2, cancellable: true, title: "delete VM snapshot" },
  "vm.backup": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "back up VM" },
  "vm.backup.restore": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "restore VM from backup" },
  "backup.verify": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "verify backup" },
  "backup.delete": { timeoutMs: 10 * 60_000, attempts: 3, cancellable: true, title: "delete backup" },
  "backup.missed": { timeoutMs: 60_000, attempts: 1, cancellable: false, title: "scheduled backup that could not run" },
  "vm.probe": { timeoutMs: 61 * 60_000, attempts: 1, cancellable: true, cancellableWhileRunning: true, title: "wait for a guest port" },
  "image.import": { timeoutMs: 6 * 60 * 60_000, attempts: 3, cancellable: true, cancellableWhileRunning: true, title: "import image" },
  "image.export": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "export image" },
  "vm.export": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "export VM disk" },
  "image.delete": { timeoutMs: 5 * 60_000, attempts: 3, cancellable: true, title: "delete image" },
  "image.verify": { timeoutMs: 6 * 60 * 60_000, attempts: 2, cancellable: true, cancellableWhileRunning: true, title: "verify image" },
  "image.reconcile": { timeoutMs: 60_000, attempts: 1, cancellable: false, title: "image state corrected by the store check" },
  "bench.noop": { timeoutMs: 60_000, attempts: 1, cancellable: true, title: "benchmark no-op" },
  "vm.reconcile": { timeoutMs: 60_000, attempts: 1, cancellable: false, title: "state corrected by the worker" },
  // Not cancellable: the VM row is on the new host from the submit on; a failure moves it back.
  "vm.migrate": { timeoutMs: 60 * 60_000, attempts: 2, cancellable: false, title: "migrate VM" },
};

export const Job = z.object({
  id: z.string(),
  type: JobType,
  state: JobState,
  hostId: z.string().nullable(),
  vmId: z.string().nullable(),
  imageId: z.string().nullable(),
  /** Name of the VM or image the job acts on, as it was when the job was made. */
  targetName: z.string().nullable(),
  payload: z.record(z.string(), z.unknown()),
  result: z.record(z.string(), z.unknown()).nullable(),
  progress: JobProgress.nullable(),
  error: JobError.nullable(),
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  timeoutMs: z.number().int(),
  idempotencyKey: z.string().nullable(),
  /** The X-Request-Id of the request that made the job (given by the client or generated); null for background jobs. */
  requestId: z.string().nullable().optional(),
  /** The project the job belongs to, and who asked for it (token name and id, request id). */
  projectId: z.string().optional(),
  actor: z.object({ name: z.string(), tokenId: z.string().nullable(), requestId: z.string().nullable() }).nullable().optional(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
export type Job = z.infer<typeof Job>;

export const JobEventType = z.enum(["state", "progress", "log"]);
export type JobEventType = z.infer<typeof JobEventType>;

export const JobEvent = z.object({
  jobId: z.string(),
  /** Monotonic per job, starting at 1; the SSE event id. */
  seq: z.number().int(),
  type: JobEventType,
  level: z.enum(["info", "warn", "error"]),
  message: z.string(),
  state: JobState.nullable(),
  progress: JobProgress.nullable(),
  error: JobError.nullable(),
  createdAt: z.string(),
});
export type JobEvent = z.infer<typeof JobEvent>;

export const JobListQuery = z.object({
  vm: z.string().optional(),
  image: z.string().optional(),
  state: JobState.optional(),
  type: JobType.optional(),
  host: z.string().optional(),
  limit: PageLimit.default(50),
  cursor: PageCursor.optional(),
});
export type JobListQuery = z.infer<typeof JobListQuery>;

/** Queue name for a host. BullMQ forbids ':' in queue names, so `host-<id>`. */
export function hostQueueName(hostId: string): string {
  return `host-${hostId}`;
}

/** Redis stream that carries a VM's serial console output from its worker to the API. */
export function consoleStreamKey(prefix: string, vmId: string): string {
  return `${prefix}:console:${vmId}`;
}

/** Redis pub/sub channel on which the API tells workers to abort a running job (message: job id). */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}
