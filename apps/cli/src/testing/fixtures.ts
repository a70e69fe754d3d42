import type { ApiToken, AuditEvent, Backup, BackupSchedule, Export, Host, HostNetworkInfo, Image, Job, JobEvent, JobProgress, JobState, Network, Nic, PortForward, Project, Snapshot, Vm } from "@iaas/contracts";

export const JOB_ID = "1a2b3c4d-0000-4000-8000-000000000001";
export const VM_ID = "5e6f7a8b-0000-4000-8000-000000000002";
export const HOST_ID = "9c0d1e2f-0000-4000-8000-000000000003";
export const IMAGE_ID = "3a4b5c6d-0000-4000-8000-000000000004";
export const EXPORT_ID = "7e8f9a0b-0000-4000-8000-000000000005";
export const NETWORK_ID = "2b3c4d5e-0000-4000-8000-000000000006";
export const NIC_ID = "6f7a8b9c-0000-4000-8000-000000000007";
export const FORWARD_ID = "8b9c0d1e-0000-4000-8000-000000000008";
export const SNAPSHOT_ID = "4c5d6e7f-0000-4000-8000-000000000009";
export const BACKUP_ID = "0d1e2f3a-0000-4000-8000-00000000000a";
export const PARENT_BACKUP_ID = "e4f5a6b7-0000-4000-8000-00000000000b";
const T0 = "2025-01-01T00:00:00.000Z";

export function makeJob(overrides: Partial<Job> = {}): Job {
  return {
    id: JOB_ID,
    type: "vm.create",
    state: "queued",
    hostId: HOST_ID,
    vmId: VM_ID,
    imageId: null,
    targetName: "web1",
    payload: { vmId: VM_ID, start: false },
    result: null,
    progress: null,
    error: null,
    attempts: 0,
    maxAttempts: 3,
    timeoutMs: 600_000,
    idempotencyKey: null,
    createdAt: T0,
    startedAt: null,
    finishedAt: null,
    ...overrides,
  };
}

export function makeEvent(seq: number, overrides: Partial<JobEvent> = {}): JobEvent {
  return {
    jobId: JOB_ID,
    seq,
    type: "log",
    level: "info",
    message: "",
    state: null,
    progress: null,
    error: null,
    createdAt: `2025-01-01T00:00:0${Math.min(seq, 9)}.000Z`,
    ...overrides,
  };
}

export function stateEvent(seq: number, state: JobState, message = ""): JobEvent {
  return makeEvent(seq, { type: "state", state, message });
}

export function progressEvent(seq: number, progress: JobProgress): JobEvent {
  return makeEvent(seq, { type: "progress", progress });
}

export function makeVm(overrides: Partial<Vm> = {}): Vm {
  return {
    id: VM_ID,
    name: "web1",
    state: "stopped",
    hostId: HOST_ID,
    imageId: IMAGE_ID,
    imageName: "deb12",
    cpus: 2,
    memoryBytes: 512 * 1024 ** 2,
    diskBytes: 2 * 1024 ** 3,
    lockJobId: null,
    pid: null,
    accelerator: "kvm",
    hostName: null,
    hostname: "web1",
    nics: [],
    userModeNetworking: false,
    lastError: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function makeHost(overrides: Partial<Host> = {}): Host {
  return {
    id: HOST_ID,
    name: "hv1",
    state: "online",
    drained: false,
    accelerator: "kvm",
    qemuVersion: "8.2.2",
    capacity: { cpus: 8, memoryBytes: 16 * 1024 ** 3, diskBytes: 500 * 1024 ** 3 },
    allocated: { cpus: 2, memoryBytes: 512 * 1024 ** 2, diskBytes: 2 * 1024 ** 3, vms: 1 },
    labels: {},
    network: null,
    lastHeartbeatAt: "2025-01-01T00:00:55.000Z",
    startedAt: T0,
    ...overrides,
  };
}

export function makeImage(overrides: Partial<Image> = {}): Image {
  return {
    id: IMAGE_ID,
    name: "deb12",
    state: "ready",
    sourceFormat: "qcow2",
    virtualSize: 2 * 1024 ** 3,
    storedSize: 300 * 1024 ** 2,
    sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    storedSha256: "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    checkedAt: T0,
    description: null,
    labels: {},
    origin: { type: "upload", location: null },
    compression: null,
    uploadUrl: null,
    upload: null,
    lastError: null,
    usedBy: [],
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function makeExport(overrides: Partial<Export> = {}): Export {
  return {
    id: EXPORT_ID,
    jobId: JOB_ID,
    state: "ready",
    source: { type: "image", id: IMAGE_ID, name: "deb12" },
    format: "qcow2",
    compressed: false,
    sizeBytes: null,
    sha256: null,
    downloadUrl: `/v1/exports/${EXPORT_ID}/file`,
    expiresAt: "2025-01-02T00:00:00.000Z",
    createdAt: T0,
    ...overrides,
  };
}

export function makeNetwork(overrides: Partial<Network> = {}): Network {
  return {
    id: NETWORK_ID,
    name: "default",
    mode: "nat",
    subnet: "10.100.0.0/24",
    gateway: "10.100.0.1",
    mtu: 1450,
    dnsDomain: "iaas.internal",
    vni: 100,
    vms: [],
    createdAt: T0,
    ...overrides,
  };
}

export function makeForward(overrides: Partial<PortForward> = {}): PortForward {
  return {
    id: FORWARD_ID,
    protocol: "tcp",
    address: null,
    hostPort: 8080,
    guestPort: 80,
    nicIndex: 0,
    hostId: HOST_ID,
    createdAt: T0,
    ...overrides,
  };
}

export function makeNic(overrides: Partial<Nic> = {}): Nic {
  return {
    id: NIC_ID,
    index: 0,
    networkId: NETWORK_ID,
    networkName: "default",
    mac: "52:54:00:12:34:56",
    ip: "10.100.0.2",
    lease: null,
    forwards: [],
    ...overrides,
  };
}

export function makeHostNetwork(overrides: Partial<HostNetworkInfo> = {}): HostNetworkInfo {
  return {
    mode: "bridge",
    address: "192.168.1.10",
    capabilities: { root: true, bridge: true, tap: true, nftables: true, dnsmasq: true, vxlan: true },
    notes: [],
    routes: [],
    listening: [],
    ...overrides,
  };
}

export function makeSnapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    id: SNAPSHOT_ID,
    vmId: VM_ID,
    name: "before-upgrade",
    kind: "disk",
    state: "ready",
    description: null,
    vmState: "stopped",
    sizeBytes: null,
    createdAt: T0,
    ...overrides,
  };
}

/** A ready full backup of web1 (stopped), with one NIC on "default" in its configuration. */
export function makeBackup(overrides: Partial<Backup> = {}): Backup {
  return {
    id: BACKUP_ID,
    vmId: VM_ID,
    vmName: "web1",
    vmExists: true,
    hostId: HOST_ID,
    kind: "full",
    state: "ready",
    parentId: null,
    live: false,
    sizeBytes: 300 * 1024 ** 2,
    diskBytes: 2 * 1024 ** 3,
    bytesCopied: 300 * 1024 ** 2,
    sha256: "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567",
    config: {
      cpus: 2,
      memoryBytes: 512 * 1024 ** 2,
      diskBytes: 2 * 1024 ** 3,
      image: { id: IMAGE_ID, name: "deb12" },
      hostname: "web1",
      sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@laptop"],
      userData: null,
      nics: [{ index: 0, network: "default", networkId: NETWORK_ID, mac: "52:54:00:12:34:56", ip: "10.100.0.2" }],
    },
    keepLast: null,
    scheduleId: null,
    jobId: JOB_ID,
    lockJobId: null,
    verifiedAt: null,
    createdAt: T0,
    finishedAt: "2025-01-01T00:00:20.000Z",
    ...overrides,
  };
}

/** web1's backup schedule: every 24h, keeping 7, full backups, not run yet. */
export function makeSchedule(overrides: Partial<BackupSchedule> = {}): BackupSchedule {
  return {
    vmId: VM_ID,
    vmName: "web1",
    everyMs: 24 * 3_600_000,
    cron: null,
    keepLast: 7,
    incremental: false,
    lastRunAt: null,
    lastJobId: null,
    nextRunAt: "2025-01-02T00:00:00.000Z",
    createdAt: T0,
    ...overrides,
  };
}

export const PROJECT_ID = "5a6b7c8d-0000-4000-8000-00000000000c";
export const TOKEN_ID = "9d0e1f2a-0000-4000-8000-00000000000d";

export function makeProject(overrides: Partial<Project> = {}): Project {
  return {
    id: PROJECT_ID,
    name: "team-a",
    description: null,
    quota: {},
    usage: { vms: 0, vcpus: 0, memoryBytes: 0, diskBytes: 0, images: 0, imageBytes: 0, networks: 0, backups: 0 },
    createdAt: T0,
    ...overrides,
  };
}

export function makeToken(overrides: Partial<ApiToken> = {}): ApiToken {
  return {
    id: TOKEN_ID,
    name: "ci",
    prefix: "iaas_1a2b3c4d",
    role: "operator",
    project: "team-a",
    createdBy: "admin",
    createdAt: T0,
    lastUsedAt: null,
    expiresAt: null,
    revokedAt: null,
    ...overrides,
  };
}

export function makeAuditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: "1",
    at: "2025-01-01T00:00:30.123Z",
    actorTokenId: TOKEN_ID,
    actorName: "ci",
    project: "team-a",
    requestId: "req-1",
    sourceAddress: "192.0.2.10",
    userAgent: "iaas-cli",
    method: "GET",
    path: "/v1/vms",
    outcome: "allowed",
    status: 200,
    action: "vm.list",
    jobId: null,
    detail: null,
    ...overrides,
  };
}
