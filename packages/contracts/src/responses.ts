import { z } from "zod";
import { Backup } from "./backups.js";
import { Job } from "./jobs.js";
import { Network, PortForward } from "./networks.js";
import { Export, Host, Image, listOf, Vm } from "./resources.js";
import { ApiToken, AuditEvent, Project, Role } from "./security.js";
import { Snapshot } from "./snapshots.js";

/**
 * Response bodies that are not a single resource: what the API answers and the CLI parses. The
 * resources themselves (Vm, Image, Job, …) live beside their requests; every one of them is named
 * in the OpenAPI document (apiCatalog.ts).
 */

/**
 * The body of every request that makes a job (`202 Accepted`, `Location: /v1/jobs/<id>`): the job
 * and what it acts on. Which resource members a route sets is in its description; a member is
 * null for a replayed request whose resource is gone by now.
 */
export const JobAccepted = z.object({
  job: Job,
  vm: Vm.nullish(),
  image: Image.nullish(),
  export: Export.nullish(),
  backup: Backup.nullish(),
  snapshot: Snapshot.nullish(),
  forward: PortForward.nullish(),
});
export type JobAccepted = z.infer<typeof JobAccepted>;

/** `200` of `POST /v1/images` with `dedupe`: the content is stored already, as this image. */
export const ImageDeduplicated = z.object({ image: Image, deduplicated: z.literal(true) });
export type ImageDeduplicated = z.infer<typeof ImageDeduplicated>;

/** `200` of a ranged `PUT /v1/images/:ref/file` while bytes are still missing. */
export const ImageUploadPartial = z.object({ image: Image.nullish(), offset: z.number().int().nonnegative() });
export type ImageUploadPartial = z.infer<typeof ImageUploadPartial>;

/** `GET /v1/whoami`: the token a request is made with, its role, and the project it acts in. */
export const Whoami = z.object({
  token: z.string(),
  tokenId: z.string().nullable(),
  role: Role,
  /** True when the token is scoped to one project (it sees nothing else). */
  scopedToProject: z.boolean(),
  /** The project the request acted in. */
  project: z.string().nullable(),
});
export type Whoami = z.infer<typeof Whoami>;

/** `POST /v1/hosts/:id/drain` and `/undrain`. */
export const HostDrained = z.object({ id: z.string(), drained: z.boolean() });
export type HostDrained = z.infer<typeof HostDrained>;

/** `GET /healthz`: the process serves. */
export const Health = z.object({ status: z.literal("ok") });
export type Health = z.infer<typeof Health>;

/** `GET /readyz`: `ok`, or `failed: <why>` for each dependency. */
export const Readiness = z.object({ status: z.enum(["ready", "not ready"]), postgres: z.string(), redis: z.string() });
export type Readiness = z.infer<typeof Readiness>;

/** The `data:` of a job event stream's `end` event: the final job, as `GET /v1/jobs/:id` answers it. */
export const JobEventsEnd = Job;
export type JobEventsEnd = z.infer<typeof JobEventsEnd>;

// Lists: `{ items: [...] }`; `listOf` (resources.ts) is where members common to every list go.
export const VmList = listOf(Vm);
export type VmList = z.infer<typeof VmList>;
export const ImageList = listOf(Image);
export type ImageList = z.infer<typeof ImageList>;
export const JobList = listOf(Job);
export type JobList = z.infer<typeof JobList>;
export const HostList = listOf(Host);
export type HostList = z.infer<typeof HostList>;
export const ExportList = listOf(Export);
export type ExportList = z.infer<typeof ExportList>;
export const NetworkList = listOf(Network);
export type NetworkList = z.infer<typeof NetworkList>;
export const PortForwardList = listOf(PortForward);
export type PortForwardList = z.infer<typeof PortForwardList>;
export const SnapshotList = listOf(Snapshot);
export type SnapshotList = z.infer<typeof SnapshotList>;
export const BackupList = listOf(Backup);
export type BackupList = z.infer<typeof BackupList>;
export const ProjectList = listOf(Project);
export type ProjectList = z.infer<typeof ProjectList>;
export const ApiTokenList = listOf(ApiToken);
export type ApiTokenList = z.infer<typeof ApiTokenList>;
export const AuditEventList = listOf(AuditEvent);
export type AuditEventList = z.infer<typeof AuditEventList>;
