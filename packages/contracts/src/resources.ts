import { z } from "zod";
import { Accelerator, HostState, ImageState, VmShownState, VmState } from "./states.js";
import { JobError } from "./errors.js";

import { looksLikeUuid } from "./ids.js";
import { HostNetworkInfo, Nic, NicRequest } from "./networks.js";



/** VM names are DNS labels: safe in file names, QEMU options and host names. */
export const VmName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: "a VM name is 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
  })
  .refine((s) => !looksLikeUuid(s), { message: "a VM name must not look like a UUID" });

export const ImageName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, {
    message: "an image name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
  })
  .refine((s) => !looksLikeUuid(s), { message: "an image name must not look like a UUID" });

/** A size in bytes, or a string such as "512M" / "2G" (parsed by the API). */
export const SizeInput = z.union([z.number().int().positive(), z.string().min(1)]);

export const VmCreateRequest = z.object({
  name: VmName,
  image: z.string().min(1, "image is required: an image name or id (see `iaas image list`)"),
  cpus: z.number().int().min(1).max(64).default(1),
  /** Memory: bytes, or "512M"; a bare number under 1 MiB is read as MiB. */
  memory: SizeInput.default("512M"),
  /** Disk size; the overlay is grown to it. Defaults to the image's virtual size. */
  disk: SizeInput.optional(),
  host: z.string().min(1).optional(),
  start: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  /** One NIC per entry; left out: one NIC on the `default` network; `[]`: no NIC. */
  networks: z.array(NicRequest).max(8).optional(),
  /** cloud-init: SSH public keys for the default user (one per line of an authorized_keys file). */
  sshKeys: z.array(z.string().min(1)).max(32).optional(),
  /** cloud-init user-data (a `#cloud-config` document or a script), at most 64 KiB. */
  userData: z.string().optional(),
  /** The guest's host name (a DNS label); default the VM name. */
  hostname: z.string().optional(),
});
export type VmCreateRequest = z.infer<typeof VmCreateRequest>;

export const VmStopRequest = z.object({
  force: z.boolean().default(false),
  /** Seconds to wait for the guest to power off after ACPI before quitting QEMU. */
  timeoutSeconds: z.number().int().min(0).max(3600).default(60),
});
export type VmStopRequest = z.infer<typeof VmStopRequest>;

/** A new VM holding another's disk as it is (stopped) or as one of its snapshots has it. */
export const VmCloneRequest = z.object({
  name: VmName,
  /** Clone from this snapshot of the source (needed when the source runs). */
  snapshot: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "a snapshot name is 1-63 letters, digits, '.', '_' or '-'").optional(),
  /** Another host for the clone: its disk goes through the shared store (default: the source's host). */
  host: z.string().min(1).optional(),
  start: z.boolean().default(false),
});
export type VmCloneRequest = z.infer<typeof VmCloneRequest>;

/** Grow a VM's disk (never shrink): live on a running VM, with qemu-img on a stopped one. */
export const VmResizeRequest = z.object({ disk: SizeInput });
export type VmResizeRequest = z.infer<typeof VmResizeRequest>;

/** Change a stopped VM's CPUs and memory (they take effect at its next start). */
export const VmSetRequest = z
  .object({
    cpus: z.number().int().min(1).max(64).optional(),
    memory: SizeInput.optional(),
  })
  .refine((r) => r.cpus !== undefined || r.memory !== undefined, { message: "give cpus or memory (or both)" });
export type VmSetRequest = z.infer<typeof VmSetRequest>;

export const Vm = z.object({
  id: z.string(),
  name: z.string(),
  /** `unknown` while the VM's host is lost; `reportedState` is then what was last known. */
  state: VmShownState,
  /** The state last recorded for the VM (missing from older APIs). */
  reportedState: VmState.optional(),
  /** The state of the VM's host (missing from older APIs). */
  hostState: HostState.optional(),
  hostId: z.string(),
  imageId: z.string(),
  imageName: z.string().nullable(),
  cpus: z.number().int(),
  memoryBytes: z.number(),
  diskBytes: z.number(),
  lockJobId: z.string().nullable(),
  pid: z.number().int().nullable(),
  accelerator: Accelerator.nullable(),
  /** Name of the host the VM lives on. */
  hostName: z.string().nullable(),
  hostname: z.string(),
  nics: z.array(Nic),
  /** The user-mode fallback NIC (host without bridge support): isolated, forwards only. */
  userModeNetworking: z.boolean(),
  lastError: JobError.nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Vm = z.infer<typeof Vm>;

/** Disk image formats we import and export. Images are stored as qcow2. */
export const ImageFormat = z.enum(["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"]);
export type ImageFormat = z.infer<typeof ImageFormat>;

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lower-case hex digits");

/** Where an image's content comes from. */
export const ImageSource = z.discriminatedUnion("type", [
  /** Uploaded by the client to `uploadUrl`; `size` makes the upload resumable. */
  z.object({ type: z.literal("upload"), size: z.number().int().positive().optional() }),
  /** Downloaded by a worker over http(s), subject to the URL policy. */
  z.object({ type: z.literal("url"), url: z.string().min(1) }),
  /** A file already on the hypervisor host, under the operator's import directory. */
  z.object({ type: z.literal("path"), path: z.string().min(1) }),
]);
export type ImageSource = z.infer<typeof ImageSource>;

export const Labels = z.record(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/, "a label key is 1-63 letters, digits, '.', '_', '/' or '-'"),
  z.string().max(255),
);

export const ImageCreateRequest = z.object({
  name: ImageName,
  description: z.string().max(1000).optional(),
  labels: Labels.optional(),
  /** The format the content is declared to be; a header that says otherwise is refused. */
  format: ImageFormat.optional(),
  /** Expected sha256 of the content as delivered (before decompression). */
  sha256: Sha256.optional(),
  /** Reuse an already stored image with the same content instead of storing it twice. */
  dedupe: z.boolean().default(false),
  source: ImageSource.default({ type: "upload" }),
  /** For `path` and `url` sources: the host whose worker fetches the content (default: any online host). */
  host: z.string().min(1).optional(),
});
export type ImageCreateRequest = z.infer<typeof ImageCreateRequest>;

export const Image = z.object({
  id: z.string(),
  name: z.string(),
  state: ImageState,
  /** Format the image arrived in (qcow2, raw); stored as qcow2. */
  sourceFormat: z.string().nullable(),
  virtualSize: z.number().nullable(),
  storedSize: z.number().nullable(),
  /** sha256 of the content as delivered (before decompression and conversion). */
  sha256: z.string().nullable(),
  /** sha256 of the stored qcow2 file, which `image verify` checks it against. */
  storedSha256: z.string().nullable(),
  /** When the stored file was last found whole (the store check's size, or `image verify`). */
  checkedAt: z.string().nullable(),
  description: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  /** Where the content came from: upload, url or path (with the URL or path). */
  origin: z.object({ type: z.enum(["upload", "url", "path"]), location: z.string().nullable() }).nullable(),
  /** Compression of the content as delivered (decompressed on import). */
  compression: z.enum(["gzip", "xz"]).nullable(),
  /** Where to PUT the image content while the image waits for it. */
  uploadUrl: z.string().nullable(),
  /** Bytes received so far and expected, for an upload that is under way. */
  upload: z.object({ offset: z.number(), length: z.number().nullable() }).nullable(),
  lastError: JobError.nullable(),
  usedBy: z.array(z.object({ id: z.string(), name: z.string() })),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Image = z.infer<typeof Image>;

export const HostResources = z.object({
  cpus: z.number().int(),
  memoryBytes: z.number(),
  diskBytes: z.number(),
});
export type HostResources = z.infer<typeof HostResources>;

export const Host = z.object({
  id: z.string(),
  name: z.string(),
  state: HostState,
  drained: z.boolean(),
  accelerator: Accelerator,
  qemuVersion: z.string().nullable(),
  capacity: HostResources,
  allocated: HostResources.extend({ vms: z.number().int() }),
  labels: z.record(z.string(), z.string()),
  network: HostNetworkInfo.nullable(),
  lastHeartbeatAt: z.string(),
  startedAt: z.string(),
});
export type Host = z.infer<typeof Host>;

/** One host's verdict in a placement decision. */
export const PlacementCandidate = z.object({
  hostId: z.string(),
  fits: z.boolean(),
  /** What the host lacks, in words ("offline", "needs 2 CPUs, 1 free"). */
  reasons: z.array(z.string()),
  /** Lower is better: the share of the host's most loaded resource after placing the VM. */
  score: z.number().nullable(),
});
export type PlacementCandidate = z.infer<typeof PlacementCandidate>;

export const Placement = z.object({
  hostId: z.string(),
  candidates: z.array(PlacementCandidate),
});
export type Placement = z.infer<typeof Placement>;

export const VmCreateDryRun = z.object({
  dryRun: z.literal(true),
  name: z.string(),
  imageId: z.string(),
  cpus: z.number().int(),
  memoryBytes: z.number(),
  diskBytes: z.number(),
  placement: Placement,
  /** Why the project's quotas would refuse it (empty: it fits). */
  quota: z.array(z.string()),
});
export type VmCreateDryRun = z.infer<typeof VmCreateDryRun>;

/**
 * A page of a list: `items`, and `nextCursor` to pass as `?cursor=` for the next page (null on
 * the last page; absent from APIs older than cursor paging).
 */
export function listOf<T extends z.ZodTypeAny>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullish() });
}

export const ExportRequest = z.object({
  format: ImageFormat,
  /** qcow2 only: compress clusters (`qemu-img convert -c`). */
  compress: z.boolean().default(false),
});
export type ExportRequest = z.infer<typeof ExportRequest>;

export const ExportState = z.enum(["pending", "ready", "failed", "expired"]);
export type ExportState = z.infer<typeof ExportState>;

/** A converted disk, downloadable until it expires. */
export const Export = z.object({
  id: z.string(),
  jobId: z.string(),
  state: ExportState,
  source: z.object({ type: z.enum(["image", "vm"]), id: z.string(), name: z.string() }),
  format: ImageFormat,
  compressed: z.boolean(),
  sizeBytes: z.number().nullable(),
  sha256: z.string().nullable(),
  /** Relative URL of the file (HTTP Range supported); null until ready. */
  downloadUrl: z.string().nullable(),
  expiresAt: z.string().nullable(),
  createdAt: z.string(),
});
export type Export = z.infer<typeof Export>;
