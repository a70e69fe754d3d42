import type {
  Backup as BackupDto,
  BackupSchedule as BackupScheduleDto,
  Export as ExportDto,
  Host as HostDto,
  Image as ImageDto,
  Job as JobDto,
  JobError,
  JobEvent as JobEventDto,
  Network as NetworkDto,
  Nic as NicDto,
  PortForward as PortForwardDto,
  Snapshot as SnapshotDto,
  Vm as VmDto,
} from "@iaas/contracts";
import { Accelerator, BackupConfig, ErrorCode, HostNetworkInfo, ImageFormat, JobProgress, type HostState } from "@iaas/contracts";
import { jobTypeOf, type Backup, type BackupSchedule, type Export, type Host, type Image, type Job, type JobEvent, type Network, type Nic, type PortForward, type Prisma, type Snapshot, type Vm } from "@iaas/db";

interface ErrorColumns {
  errorCode: string | null;
  errorMessage: string | null;
  errorHint: string | null;
}

function errorOf(row: ErrorColumns): JobError | null {
  if (!row.errorCode || !row.errorMessage) return null;
  const code = ErrorCode.safeParse(row.errorCode);
  return { code: code.success ? code.data : "INTERNAL", message: row.errorMessage, hint: row.errorHint };
}

function accel(value: string | null): VmDto["accelerator"] {
  const parsed = Accelerator.safeParse(value);
  return parsed.success ? parsed.data : null;
}

/** What a VM DTO is read with: image name, host (name, network mode), NICs with network and forwards. */
export const VM_DTO_INCLUDE = {
  image: { select: { name: true } },
  host: { select: { name: true, network: true } },
  nics: { include: { network: { select: { name: true } }, forwards: true }, orderBy: { index: "asc" } },
} satisfies Prisma.VmInclude;

export type NicWithNetwork = Nic & { network: Pick<Network, "name">; forwards: PortForward[] };
export type VmWithRelations = Vm & {
  image?: Pick<Image, "name"> | null;
  host?: Pick<Host, "name" | "network"> | null;
  nics?: NicWithNetwork[];
};

export function toPortForwardDto(f: PortForward, nicIndex: number): PortForwardDto {
  return {
    id: f.id,
    protocol: f.protocol,
    address: f.address,
    hostPort: f.hostPort,
    guestPort: f.guestPort,
    nicIndex,
    hostId: f.hostId,
    createdAt: f.createdAt.toISOString(),
  };
}

export function toNicDto(nic: NicWithNetwork): NicDto {
  return {
    id: nic.id,
    index: nic.index,
    networkId: nic.networkId,
    networkName: nic.network.name,
    mac: nic.mac,
    ip: nic.ip,
    lease: nic.leaseIp && nic.leasedAt ? { ip: nic.leaseIp, at: nic.leasedAt.toISOString() } : null,
    forwards: nic.forwards.map((f) => toPortForwardDto(f, nic.index)),
  };
}

/** The host's reported network facts, or null for a worker that reports none. */
export function hostNetworkOf(host: Pick<Host, "network">): HostNetworkInfo | null {
  const parsed = HostNetworkInfo.safeParse(host.network);
  return parsed.success ? parsed.data : null;
}

/**
 * `hostState`: the state of the VM's host (`hostStates` in hostLiveness.ts); a VM on a lost host
 * is shown `unknown`, with its recorded state as `reportedState`.
 */
export function toVmDto(vm: VmWithRelations, hostState?: HostState): VmDto {
  return {
    id: vm.id,
    name: vm.name,
    state: hostState === "lost" ? "unknown" : vm.state,
    reportedState: vm.state,
    ...(hostState !== undefined ? { hostState } : {}),
    hostId: vm.hostId,
    imageId: vm.imageId,
    imageName: vm.image?.name ?? null,
    cpus: vm.cpus,
    memoryBytes: Number(vm.memoryBytes),
    diskBytes: Number(vm.diskBytes),
    lockJobId: vm.lockJobId,
    pid: vm.pid,
    accelerator: accel(vm.accelerator),
    hostName: vm.host?.name ?? null,
    hostname: vm.hostname ?? vm.name,
    nics: (vm.nics ?? []).map(toNicDto),
    userModeNetworking: vm.host ? hostNetworkOf(vm.host)?.mode === "user" : false,
    lastError: errorOf(vm),
    createdAt: vm.createdAt.toISOString(),
    updatedAt: vm.updatedAt.toISOString(),
  };
}

export function toNetworkDto(n: Network & { nics: (Pick<Nic, "ip"> & { vm: Pick<Vm, "id" | "name"> })[] }): NetworkDto {
  return {
    id: n.id,
    name: n.name,
    mode: n.mode,
    subnet: n.subnet,
    gateway: n.gateway,
    mtu: n.mtu,
    dnsDomain: n.dnsDomain,
    vni: n.vni,
    vms: n.nics.map((nic) => ({ id: nic.vm.id, name: nic.vm.name, ip: nic.ip })).sort((a, b) => a.name.localeCompare(b.name)),
    createdAt: n.createdAt.toISOString(),
  };
}

/** An image created for an upload whose bytes have not all arrived (no import job yet). */
export function isAwaitingUpload(image: Pick<Image, "state" | "lockJobId" | "originType">): boolean {
  return image.state === "importing" && image.lockJobId === null && (image.originType ?? "upload") === "upload";
}

/** `uploadOffset`: bytes received so far, for an image waiting for its upload. */
export function toImageDto(image: Image & { vms?: Pick<Vm, "id" | "name">[] }, uploadOffset: number | null = null): ImageDto {
  const awaitingUpload = isAwaitingUpload(image);
  const originType = image.originType === "url" || image.originType === "path" || image.originType === "upload" ? image.originType : null;
  return {
    id: image.id,
    name: image.name,
    state: image.state,
    sourceFormat: image.sourceFormat,
    virtualSize: image.virtualSize === null ? null : Number(image.virtualSize),
    storedSize: image.storedSize === null ? null : Number(image.storedSize),
    sha256: image.sha256,
    storedSha256: image.storedSha256,
    checkedAt: image.checkedAt === null ? null : image.checkedAt.toISOString(),
    description: image.description,
    labels: Object.fromEntries(Object.entries(asRecord(image.labels) ?? {}).map(([k, v]) => [k, String(v)])),
    origin: originType ? { type: originType, location: image.originLocation } : null,
    compression: image.compression === "gzip" || image.compression === "xz" ? image.compression : null,
    uploadUrl: awaitingUpload ? `/v1/images/${image.id}/file` : null,
    upload: awaitingUpload ? { offset: uploadOffset ?? 0, length: image.uploadLength === null ? null : Number(image.uploadLength) } : null,
    lastError: errorOf(image),
    usedBy: (image.vms ?? []).map((v) => ({ id: v.id, name: v.name })),
    createdAt: image.createdAt.toISOString(),
    updatedAt: image.updatedAt.toISOString(),
  };
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

export function toJobDto(job: Job): JobDto {
  const progress = JobProgress.safeParse(job.progress);
  return {
    id: job.id,
    type: jobTypeOf(job),
    state: job.state,
    hostId: job.hostId,
    vmId: job.vmId,
    imageId: job.imageId,
    targetName: job.targetName,
    payload: asRecord(job.payload) ?? {},
    result: asRecord(job.result),
    progress: progress.success ? progress.data : null,
    error: errorOf(job),
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    timeoutMs: job.timeoutMs,
    idempotencyKey: job.idempotencyKey,
    requestId: job.requestId,
    projectId: job.projectId,
    actor: job.actorName !== null ? { name: job.actorName, tokenId: job.actorTokenId, requestId: job.requestId } : null,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
  };
}

export function toJobEventDto(ev: JobEvent): JobEventDto {
  const progress = JobProgress.safeParse(ev.progress);
  const error = asRecord(ev.error);
  return {
    jobId: ev.jobId,
    seq: ev.seq,
    type: ev.type,
    level: ev.level,
    message: ev.message,
    state: ev.state,
    progress: progress.success ? progress.data : null,
    error: error ? (error as JobError) : null,
    createdAt: ev.createdAt.toISOString(),
  };
}

export interface HostAllocation {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  vms: number;
}

/** `state`: from the heartbeat's age on the database clock (hostLiveness.ts). */
export function toHostDto(host: Host, allocated: HostAllocation, state: HostState): HostDto {
  const labels = asRecord(host.labels) ?? {};
  return {
    id: host.id,
    name: host.name,
    state,
    drained: host.drained,
    accelerator: accel(host.accelerator) ?? "tcg",
    qemuVersion: host.qemuVersion,
    capacity: { cpus: host.cpus, memoryBytes: Number(host.memoryBytes), diskBytes: Number(host.diskBytes) },
    allocated,
    labels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])),
    network: hostNetworkOf(host),
    lastHeartbeatAt: host.lastHeartbeatAt.toISOString(),
    startedAt: host.startedAt.toISOString(),
  };
}

export function toExportDto(e: Export): ExportDto {
  const format = ImageFormat.safeParse(e.format);
  return {
    id: e.id,
    jobId: e.jobId,
    state: e.state,
    source: { type: e.sourceType, id: e.sourceId, name: e.sourceName },
    format: format.success ? format.data : "raw",
    compressed: e.compressed,
    sizeBytes: e.sizeBytes === null ? null : Number(e.sizeBytes),
    sha256: e.sha256,
    downloadUrl: e.state === "ready" ? `/v1/exports/${e.id}/file` : null,
    expiresAt: e.expiresAt?.toISOString() ?? null,
    createdAt: e.createdAt.toISOString(),
  };
}

export function toSnapshotDto(s: Snapshot): SnapshotDto {
  return {
    id: s.id,
    vmId: s.vmId,
    name: s.name,
    kind: s.kind,
    state: s.state,
    description: s.description,
    vmState: s.vmState,
    sizeBytes: s.sizeBytes === null ? null : Number(s.sizeBytes),
    createdAt: s.createdAt.toISOString(),
  };
}

export function toBackupDto(b: Backup, vmExists: boolean): BackupDto {
  return {
    id: b.id,
    vmId: b.vmId,
    vmName: b.vmName,
    vmExists,
    hostId: b.hostId,
    kind: b.kind,
    state: b.state,
    parentId: b.parentId,
    live: b.live,
    sizeBytes: b.sizeBytes === null ? null : Number(b.sizeBytes),
    diskBytes: Number(b.diskBytes),
    bytesCopied: b.bytesCopied === null ? null : Number(b.bytesCopied),
    sha256: b.sha256,
    config: BackupConfig.parse(b.config),
    keepLast: b.keepLast,
    scheduleId: b.scheduleId,
    jobId: b.jobId,
    lockJobId: b.lockJobId,
    verifiedAt: b.verifiedAt?.toISOString() ?? null,
    createdAt: b.createdAt.toISOString(),
    finishedAt: b.finishedAt?.toISOString() ?? null,
  };
}

export function toBackupScheduleDto(s: BackupSchedule, vmName: string, nextRunAt: Date | null): BackupScheduleDto {
  return {
    vmId: s.vmId,
    vmName,
    everyMs: s.everyMs,
    cron: s.cron,
    keepLast: s.keepLast,
    incremental: s.incremental,
    lastRunAt: s.lastRunAt?.toISOString() ?? null,
    lastJobId: s.lastJobId,
    nextRunAt: nextRunAt?.toISOString() ?? null,
    createdAt: s.createdAt.toISOString(),
  };
}
