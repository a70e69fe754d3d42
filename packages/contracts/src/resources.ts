import { z } from "zod";
import { Accelerator, HostState, ImageState, VmState } from "./states.js";
import { JobError } from "./errors.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `ref` has the form of a UUID (so it is looked up as an id, not a name). */
export function looksLikeUuid(ref: string): boolean {
  return UUID_RE.test(ref);
}

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
});
export type VmCreateRequest = z.infer<typeof VmCreateRequest>;

export const VmStopRequest = z.object({
  force: z.boolean().default(false),
  /** Seconds to wait for the guest to power off after ACPI before quitting QEMU. */
  timeoutSeconds: z.number().int().min(0).max(3600).default(60),
});
export type VmStopRequest = z.infer<typeof VmStopRequest>;

export const Vm = z.object({
  id: z.string(),
  name: z.string(),
  state: VmState,
  hostId: z.string(),
  imageId: z.string(),
  imageName: z.string().nullable(),
  cpus: z.number().int(),
  memoryBytes: z.number(),
  diskBytes: z.number(),
  lockJobId: z.string().nullable(),
  pid: z.number().int().nullable(),
  accelerator: Accelerator.nullable(),
  lastError: JobError.nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Vm = z.infer<typeof Vm>;

export const ImageCreateRequest = z.object({
  name: ImageName,
  description: z.string().max(1000).optional(),
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
  sha256: z.string().nullable(),
  description: z.string().nullable(),
  /** Where to PUT the image content while the image waits for it. */
  uploadUrl: z.string().nullable(),
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
});
export type VmCreateDryRun = z.infer<typeof VmCreateDryRun>;

export function listOf<T extends z.ZodTypeAny>(item: T) {
  return z.object({ items: z.array(item) });
}
