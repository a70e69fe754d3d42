import { z } from "zod";
import { BackupListQuery, BackupRestoreRequest, BackupSchedule, BackupScheduleRequest, BackupVmCreateRequest, Backup, VmBackupRequest } from "./backups.js";
import { Problem } from "./errors.js";
import { HostEvacuateRequest, HostEvacuation, VmMigrateRequest } from "./evacuation.js";
import { Job, JobEvent, JobListQuery } from "./jobs.js";
import { PageQuery } from "./pagination.js";
import { Network, NetworkCreateRequest, NicRequest, PortForwardRequest, PortProtocol, VmProbeRequest } from "./networks.js";
import {
  Export,
  ExportRequest,
  Host,
  Image,
  ImageCreateRequest,
  Vm,
  VmCloneRequest,
  VmCreateDryRun,
  VmCreateRequest,
  VmResizeRequest,
  VmSetRequest,
  VmStopRequest,
} from "./resources.js";
import {
  ApiTokenList,
  AuditEventList,
  BackupList,
  ExportList,
  Health,
  HostDrained,
  HostList,
  ImageDeduplicated,
  ImageList,
  ImageUploadPartial,
  JobAccepted,
  JobEventsEnd,
  JobList,
  NetworkList,
  PortForwardList,
  ProjectList,
  Readiness,
  SnapshotList,
  VmList,
  Whoami,
} from "./responses.js";
import { AuditListQuery, Project, ProjectCreateRequest, ProjectQuotaRequest, TokenCreated, TokenCreateRequest } from "./security.js";
import { SnapshotCreateRequest, SnapshotRestoreRequest } from "./snapshots.js";

/**
 * The REST API as data: every route with its request body, query, and answers by status, each a
 * schema of this package. The API's OpenAPI document (`GET /openapi.json`) is generated from it,
 * and a test holds the API's routes and its actual answers to it.
 */

/** `DELETE /v1/vms/:ref?force=true`. */
export const VmDeleteQuery = z.object({
  force: z
    .enum(["true", "false", "1", "0"])
    .optional()
    .transform((v) => v === "true" || v === "1"),
});
/** `PATCH /v1/images/:ref` (admin). */
export const ImagePublicRequest = z.object({ public: z.boolean() });
/** `POST /v1/bench/noop` (only with IAAS_ENABLE_BENCH_JOBS=true). */
export const BenchNoopRequest = z.object({ n: z.number().int().nonnegative(), host: z.string().optional() });
export const JobWaitQuery = z.object({ timeout: z.coerce.number().min(0).optional() });
export const JobEventsQuery = z.object({ after: z.coerce.number().int().min(0).optional() });
export const ConsoleQuery = z.object({ follow: z.enum(["true", "false", "1", "0"]).optional() });
export const PortRemoveQuery = z.object({ protocol: PortProtocol.optional() });

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD";

export interface ApiAnswer {
  description: string;
  /** The body's schema (none: an empty body, or bytes described in words). */
  schema?: z.ZodType;
  /** Default `application/json`. */
  contentType?: string;
  /** Response headers worth knowing, with what they carry. */
  headers?: Record<string, string>;
}

export interface ApiRoute {
  method: HttpMethod;
  /** Express-style path (`/v1/vms/:ref`). */
  path: string;
  summary: string;
  description: string;
  tag: string;
  body?: z.ZodType;
  /** Default `application/json`. */
  bodyContentType?: string;
  query?: z.ZodObject;
  /** Request headers the route reads, with what they mean. */
  headers?: Record<string, string>;
  /** The answers; every route may also answer problem+json errors (`4XX`, `5XX`). */
  responses: Record<number, ApiAnswer>;
  /** Served without a token (outside `/v1`). */
  public?: boolean;
}

const json = (schema: z.ZodType, description: string): ApiAnswer => ({ schema, description });
const accepted = (what: string): ApiAnswer => ({
  schema: JobAccepted,
  description: `Accepted: the job${what ? ` and ${what}` : ""}`,
  headers: { Location: "`/v1/jobs/<id>` of the job", "Idempotent-Replayed": "`true` when an Idempotency-Key replayed an earlier request" },
});
const noContent: ApiAnswer = { description: "Done; no body" };
const IDEMPOTENCY = { "Idempotency-Key": "up to 200 characters: the same key with the same request answers the first request's job" };

/** Path parameters and what they hold. */
export const PATH_PARAMETERS: Record<string, string> = {
  ref: "name or id",
  id: "id",
  name: "name",
  nic: "the NIC's network (name or id) or its index",
  hostPort: "the forward's host port",
};

/** Component names of the schemas in the OpenAPI document (request bodies and answers). */
export const API_SCHEMAS = {
  Problem,
  Vm,
  VmList,
  VmCreateDryRun,
  Image,
  ImageList,
  ImageDeduplicated,
  ImageUploadPartial,
  Job,
  JobList,
  JobAccepted,
  JobEvent,
  JobEventsEnd,
  Host,
  HostList,
  HostDrained,
  HostEvacuation,
  Network,
  NetworkList,
  PortForwardList,
  SnapshotList,
  Backup,
  BackupList,
  BackupSchedule,
  Export,
  ExportList,
  Project,
  ProjectList,
  TokenCreated,
  ApiTokenList,
  AuditEventList,
  Whoami,
  Health,
  Readiness,
} as const satisfies Record<string, z.ZodType>;

export const API_REQUEST_SCHEMAS = {
  VmCreateRequest,
  VmStopRequest,
  VmCloneRequest,
  VmResizeRequest,
  VmSetRequest,
  VmMigrateRequest,
  VmProbeRequest,
  VmBackupRequest,
  NicRequest,
  PortForwardRequest,
  SnapshotCreateRequest,
  SnapshotRestoreRequest,
  ExportRequest,
  ImageCreateRequest,
  ImagePublicRequest,
  BackupRestoreRequest,
  BackupVmCreateRequest,
  BackupScheduleRequest,
  NetworkCreateRequest,
  HostEvacuateRequest,
  ProjectCreateRequest,
  ProjectQuotaRequest,
  TokenCreateRequest,
  BenchNoopRequest,
} as const satisfies Record<string, z.ZodType>;

function route(method: HttpMethod, path: string, tag: string, summary: string, description: string, rest: Omit<ApiRoute, "method" | "path" | "tag" | "summary" | "description">): ApiRoute {
  return { method, path, tag, summary, description, ...rest };
}

export const API_ROUTES: readonly ApiRoute[] = [
  route("GET", "/healthz", "health", "Liveness", "`200 {\"status\":\"ok\"}` while the process serves", { public: true, responses: { 200: json(Health, "The process serves") } }),
  route("GET", "/readyz", "health", "Readiness", "`200 {\"status\":\"ready\",\"postgres\":\"ok\",\"redis\":\"ok\"}`, or `503` naming what failed", {
    public: true,
    responses: { 200: json(Readiness, "Postgres and Redis answer"), 503: json(Readiness, "Postgres or Redis does not answer") },
  }),

  route("GET", "/openapi.json", "docs", "This document", "The OpenAPI 3.1 document of the API, generated from the zod schemas of `packages/contracts`", {
    public: true,
    responses: { 200: json(z.record(z.string(), z.unknown()), "The OpenAPI document") },
  }),
  route("GET", "/docs", "docs", "Browsable API reference", "Swagger UI over `/openapi.json`; its scripts and styles are served by the API (`/docs/assets/`, from the swagger-ui-dist package), nothing from elsewhere", {
    public: true,
    responses: { 200: { description: "The page", contentType: "text/html", schema: z.string() } },
  }),

  route("GET", "/metrics", "observability", "Prometheus metrics", "Prometheus text format: HTTP requests by route and status, jobs submitted, open streams, queue depth, VMs by state, host capacity and allocation. No API token; with `IAAS_METRICS_TOKEN` set it needs `Authorization: Bearer <that token>` (`401` otherwise)", {
    public: true,
    responses: { 200: { description: "The metrics", contentType: "text/plain", schema: z.string() }, 401: json(Problem, "IAAS_METRICS_TOKEN is set and the request does not carry it") },
  }),

  // VMs
  route("GET", "/v1/vms", "vms", "List VMs", "`200 {items: Vm[], nextCursor}`; a VM on a lost host has `state: \"unknown\"`, its recorded state in `reportedState`, and `hostState`", { query: PageQuery, responses: { 200: json(VmList, "The project's VMs, by name") } }),
  route("POST", "/v1/vms", "vms", "Create a VM", "body `VmCreateRequest` → `202 {job, vm}`; with `\"dryRun\": true` → `200 VmCreateDryRun` (placement only, nothing created). `networks: [{network, ip?, mac?}]` (left out: one NIC on `default`; `[]`: none), `sshKeys`, `userData` (≤ 64 KiB), `hostname`. Addresses and MACs are allocated in the same transaction: `409 ADDRESS_TAKEN` for a taken `ip`/`mac`, `400 VALIDATION_FAILED` for one outside the subnet or bad cloud-init input", {
    body: VmCreateRequest,
    headers: IDEMPOTENCY,
    responses: { 200: json(VmCreateDryRun, "`dryRun`: the placement decision; nothing created"), 202: accepted("the VM (`creating`)") },
  }),
  route("GET", "/v1/vms/:ref", "vms", "Show a VM", "`200 Vm`", { responses: { 200: json(Vm, "The VM") } }),
  route("PATCH", "/v1/vms/:ref", "vms", "Change a stopped VM's CPUs or memory", "body `{cpus?, memory?}` → `200 Vm`; stopped VMs only (`409 INVALID_STATE`, or `VM_BUSY` naming the job); checked against the host's room", { body: VmSetRequest, responses: { 200: json(Vm, "The VM as changed") } }),
  route("DELETE", "/v1/vms/:ref", "vms", "Delete a VM", `${"`202 {job, vm}` (stops the VM first if it runs)"}. With \`?force=true\`: ${"only for a VM whose host is lost: removes its records now (NICs, addresses, forwards, snapshots, backup schedule; backups stay) → `200 {job, vm: null}` with `Location` of a `vm.delete` job that is already `succeeded` (payload `force: true`); its unfinished jobs on that host end (queued: `cancelled`, running: `failed` `HOST_LOST`). `409 INVALID_STATE` when the host is online, `503 HOST_OFFLINE` when it is offline but not lost yet. The host's worker removes the files when it returns"}`, {
    query: VmDeleteQuery,
    headers: IDEMPOTENCY,
    responses: { 200: { ...accepted("`vm: null`"), description: "`force=true`: the VM's records are gone; the `vm.delete` job is already `succeeded`" }, 202: accepted("the VM") },
  }),
  route("POST", "/v1/vms/:ref/start", "vms", "Start a VM", "`202 {job, vm}`", { headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/stop", "vms", "Stop a VM", "body `{force?: boolean, timeoutSeconds?: number}` → `202 {job, vm}`", { body: VmStopRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/reboot", "vms", "Reboot a VM", "`202 {job, vm}`", { headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/migrate", "vms", "Move a VM to another host", "body `VmMigrateRequest` `{host?}` (id or name; default placement's choice) → `202 {job, vm}` (a `vm.migrate` job; the VM row is on the new host from then on, and back on the old one if the job fails). Host online: the VM must be stopped (`409 INVALID_STATE`); the job on the old host stages the disk in the shared store and names (`result.nextJobId`) the `vm.migrate` job that takes it over on the new host. Host lost: the VM is recreated, stopped, from its newest ready backup (`404` without one). `503 HOST_OFFLINE` for a host offline but not lost yet; `409 VM_BUSY`, `NO_HOST_AVAILABLE`; `400` for its own host", { body: VmMigrateRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/export", "exports", "Export a VM's disk", "body `ExportRequest` → `202 {job, export}`: the stopped VM's disk flattened to one file (a backup)", { body: ExportRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the export") } }),
  route("POST", "/v1/vms/:ref/nics", "networks", "Add a NIC", "body `NicRequest` `{network, ip?, mac?}` → `202 {job, vm}` (a `vm.nic.add` job); the VM must be stopped (`409 INVALID_STATE`)", { body: NicRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("DELETE", "/v1/vms/:ref/nics/:nic", "networks", "Remove a NIC", "`:nic` is the NIC's network (name or id) or index → `202 {job, vm}`; its address and forwards are released", { headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("GET", "/v1/vms/:ref/ports", "networks", "List a VM's port forwards", "`200 {items: PortForward[], nextCursor}`", { query: PageQuery, responses: { 200: json(PortForwardList, "The VM's forwards") } }),
  route("POST", "/v1/vms/:ref/ports", "networks", "Add a port forward", "body `PortForwardRequest` `{hostPort, guestPort, protocol?: \"tcp\"\\|\"udp\", address?, nic?}` → `202 {job, vm, forward}`; `409 PORT_TAKEN` when another VM's forward or a process on the host holds the port (the message names it); `400` for a NIC on a `private` network", { body: PortForwardRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM and the forward") } }),
  route("DELETE", "/v1/vms/:ref/ports/:hostPort", "networks", "Remove a port forward", "`202 {job, vm}`", {
    query: PortRemoveQuery,
    headers: IDEMPOTENCY,
    responses: { 202: accepted("the VM") },
  }),
  route("POST", "/v1/vms/:ref/probe", "networks", "Wait for a guest port", "body `{port, nic?, timeoutSeconds?}` → `202 {job, vm}`: a `vm.probe` job on the VM's host that succeeds once a TCP connection to the guest's address and port succeeds, and fails with `WAIT_TIMEOUT` otherwise (`iaas vm wait --for port=N`)", { body: VmProbeRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/clone", "vms", "Clone a VM", "body `VmCloneRequest` `{name, snapshot?, host?, start?}` → `202 {job, vm}` (the new VM, `creating`; a `vm.clone` job that holds the source too); `409 INVALID_STATE` for a running source without `snapshot`. With a `host` other than the source's, the job runs on the source's host, stages the disk in the shared store and names (`result.nextJobId`) the `vm.clone` job that takes it over on `host`; `503 HOST_OFFLINE`/`409 NO_HOST_AVAILABLE` when that host is offline, drained, out of room or cannot join the networks", { body: VmCloneRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the new VM") } }),
  route("POST", "/v1/vms/:ref/resize", "vms", "Grow a VM's disk", "body `{disk}` (larger than now) → `202 {job, vm}` (a `vm.resize` job: QMP `block_resize` on a running VM, `qemu-img resize` on a stopped one); `400` for a size that would not grow the disk; `409 NO_HOST_AVAILABLE` when the host has no room", { body: VmResizeRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("GET", "/v1/vms/:ref/snapshots", "snapshots", "List a VM's snapshots", "`200 {items: Snapshot[], nextCursor}`, oldest first", { query: PageQuery, responses: { 200: json(SnapshotList, "The VM's snapshots, oldest first") } }),
  route("POST", "/v1/vms/:ref/snapshots", "snapshots", "Take a snapshot", "body `SnapshotCreateRequest` `{name, memory?, description?}` → `202 {job, vm, snapshot}` (a `vm.snapshot.create` job; the snapshot is `creating` until it is `ready`); `409 NAME_TAKEN`; `400` for `memory` on a stopped VM", { body: SnapshotCreateRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM and the snapshot") } }),
  route("POST", "/v1/vms/:ref/snapshots/:name/restore", "snapshots", "Restore a snapshot", "body `{restart?}` → `202 {job, vm}`; `409 INVALID_STATE` for a disk-only snapshot of a running VM without `restart`, or a memory snapshot of a VM whose CPUs, memory or NICs changed", {
    body: SnapshotRestoreRequest,
    headers: IDEMPOTENCY,
    responses: { 202: accepted("the VM") },
  }),
  route("DELETE", "/v1/vms/:ref/snapshots/:name", "snapshots", "Delete a snapshot", "`202 {job, vm}`", { headers: IDEMPOTENCY, responses: { 202: accepted("the VM") } }),
  route("POST", "/v1/vms/:ref/backups", "backups", "Back up a VM", "body `VmBackupRequest` `{incremental?, keepLast?, asImage?, bwlimit?}` → `202 {job, vm, backup, image}`: a `vm.backup` job; `backup` (state `creating`, kind `full`, or `incremental` on the VM's last backup) or, with `asImage`, `image` (state `importing`); `400` for `asImage` with `incremental`/`keepLast`, a `bwlimit` under 64 KiB/s; `409 VM_BUSY`, `INVALID_STATE`, `NAME_TAKEN` (image name)", { body: VmBackupRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM and the backup (or image)") } }),
  route("GET", "/v1/vms/:ref/backup-schedule", "backups", "Show a VM's backup schedule", "`200 BackupSchedule`; `404` when the VM has none", { responses: { 200: json(BackupSchedule, "The schedule") } }),
  route("PUT", "/v1/vms/:ref/backup-schedule", "backups", "Set a VM's backup schedule", "body `BackupScheduleRequest` `{every \\| cron, keepLast, incremental?}` → `200 BackupSchedule` (with `nextRunAt`); `400` for an interval under 10s or a bad cron pattern", { body: BackupScheduleRequest, responses: { 200: json(BackupSchedule, "The schedule as stored") } }),
  route("DELETE", "/v1/vms/:ref/backup-schedule", "backups", "Remove a VM's backup schedule", "`204`; `404` when the VM has none", { responses: { 204: noContent } }),
  route("GET", "/v1/vms/:ref/console", "vms", "Read a VM's serial console", "`200 text/plain`: the serial console output kept so far (last 1 MiB). `?follow=true` keeps the response open and streams new output as it arrives", {
    query: ConsoleQuery,
    responses: { 200: { description: "The console output (UTF-8 text); with `follow`, streamed until the client leaves", contentType: "text/plain", schema: z.string() } },
  }),

  // Backups
  route("GET", "/v1/backups", "backups", "List backups", "`200 {items: Backup[], nextCursor}`, newest first; `vm` is a name or id (a deleted VM's backups by the name it had)", { query: BackupListQuery, responses: { 200: json(BackupList, "Backups, newest first") } }),
  route("GET", "/v1/backups/:id", "backups", "Show a backup", "`200 Backup` (`id` or a unique prefix of at least 6 characters); `404`", { responses: { 200: json(Backup, "The backup") } }),
  route("POST", "/v1/backups/:id/verify", "backups", "Verify a backup", "`202 {job, backup}` (a `backup.verify` job; fails with `BACKUP_CORRUPT` naming the file); `409 BACKUP_IN_USE` while another job holds the backup", { headers: IDEMPOTENCY, responses: { 202: accepted("the backup") } }),
  route("DELETE", "/v1/backups/:id", "backups", "Delete a backup", "`202 {job, backup}` (a `backup.delete` job); `409 BACKUP_IN_USE` when an incremental builds on it (naming them) or a job holds it", { headers: IDEMPOTENCY, responses: { 202: accepted("the backup") } }),
  route("POST", "/v1/backups/:id/restore", "backups", "Restore a backup into a VM", "body `{vm, discardSnapshots?, start?}` → `202 {job, vm, backup}` (a `vm.backup.restore` job on the VM's host); `409 INVALID_STATE` for a VM that is not stopped, or has snapshots without `discardSnapshots`; `409 NO_HOST_AVAILABLE` when the backup's CPUs or memory do not fit its host", { body: BackupRestoreRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the VM and the backup") } }),
  route("POST", "/v1/backups/:id/vms", "backups", "Create a VM from a backup", "body `BackupVmCreateRequest` `{name, cpus?, memory?, disk?, image?, host?, networks?, start?}` → `202 {job, vm}` (a `vm.create` job with `fromBackupId`); defaults from the backup's configuration; `404` when the backup's image or a network is gone (give `image`/`networks`)", { body: BackupVmCreateRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the new VM") } }),

  // Networks
  route("GET", "/v1/networks", "networks", "List networks", "`200 {items: Network[], nextCursor}`", { query: PageQuery, responses: { 200: json(NetworkList, "The project's networks, by name") } }),
  route("POST", "/v1/networks", "networks", "Create a network", "body `NetworkCreateRequest` `{name, mode?: \"nat\"\\|\"private\", subnet?, mtu?, dnsDomain?, allowPublicSubnet?}` → `201 Network` (no host is touched until a VM has a NIC on it); `400 SUBNET_CONFLICT` naming the network or host route it overlaps, or a public range", {
    body: NetworkCreateRequest,
    responses: { 201: { ...json(Network, "The network"), headers: { Location: "`/v1/networks/<id>`" } } },
  }),
  route("GET", "/v1/networks/:ref", "networks", "Show a network", "`200 Network`, with the VMs on it and their addresses", { responses: { 200: json(Network, "The network") } }),
  route("DELETE", "/v1/networks/:ref", "networks", "Delete a network", "`204`; `409 NETWORK_IN_USE` naming the VMs with NICs on it", { responses: { 204: noContent } }),

  // Images
  route("GET", "/v1/images", "images", "List images", "`200 {items: Image[], nextCursor}`", { query: PageQuery, responses: { 200: json(ImageList, "The project's images and the public ones, by name") } }),
  route("POST", "/v1/images", "images", "Import an image", "body `ImageCreateRequest`. `source: {type:\"upload\", size?}` (the default) → `201 Image` in state `importing` with `uploadUrl`; `source: {type:\"url\", url}` or `{type:\"path\", path}` → `202 {job, image}` (the worker fetches it). `sha256` is verified against the content as delivered; with `dedupe: true` and `sha256` of content already stored, answers `200 {image, deduplicated: true}` with the stored image and creates nothing", {
    body: ImageCreateRequest,
    headers: IDEMPOTENCY,
    responses: {
      200: json(ImageDeduplicated, "`dedupe`: the content is stored already, as this image; nothing created"),
      201: { ...json(Image, "The image, waiting for its upload at `uploadUrl`"), headers: { Location: "`/v1/images/<id>`" } },
      202: accepted("the image"),
    },
  }),
  route("GET", "/v1/images/:ref", "images", "Show an image", "`200 Image`", { responses: { 200: json(Image, "The image") } }),
  route("PATCH", "/v1/images/:ref", "images", "Make an image public or private", "body `{public}` → `200 Image` (a public image is usable from every project)", { body: ImagePublicRequest, responses: { 200: json(Image, "The image as changed") } }),
  route("HEAD", "/v1/images/:ref/file", "images", "Upload offset", "`204` with `Upload-Offset` (bytes the server has) and `Upload-Length` (declared size, if any)", {
    responses: { 204: { description: "No body", headers: { "Upload-Offset": "bytes the server has", "Upload-Length": "the declared size, when there is one" } } },
  }),
  route("PUT", "/v1/images/:ref/file", "images", "Upload image bytes", "body: image bytes (`application/octet-stream`, streamed). Without `Content-Range`: the whole file. With `Content-Range: bytes START-END/TOTAL`: appended at `START`, which must equal `Upload-Offset` (else `409 UPLOAD_OFFSET_MISMATCH` with the right offset in `Upload-Offset`). While bytes are missing → `200 {image, offset}`; once the file is whole → `202 {job, image}` (an `image.import` job). `409 UPLOAD_IN_PROGRESS` while another request writes the same upload; the offset is kept in Postgres, so any API replica resumes it", {
    body: z.string(),
    bodyContentType: "application/octet-stream",
    headers: { ...IDEMPOTENCY, "Content-Range": "`bytes START-END/TOTAL` for a part; START must equal `Upload-Offset`" },
    responses: { 200: { ...json(ImageUploadPartial, "Bytes are still missing"), headers: { "Upload-Offset": "bytes the server has" } }, 202: accepted("the image") },
  }),
  route("POST", "/v1/images/:ref/export", "exports", "Export an image", "body `ExportRequest` `{format, compress?}` → `202 {job, export}`", { body: ExportRequest, headers: IDEMPOTENCY, responses: { 202: accepted("the export") } }),
  route("POST", "/v1/images/:ref/verify", "images", "Verify an image's stored file", "no body → `202 {job, image}` (an `image.verify` job: the stored file's existence, size, sha256 and `qemu-img check`; the image ends `ready` or `error`); `409 VM_BUSY` while a job holds the image, `409 INVALID_STATE` unless it is `ready` or `error`", { headers: IDEMPOTENCY, responses: { 202: accepted("the image") } }),
  route("DELETE", "/v1/images/:ref", "images", "Delete an image", "`202 {job, image}`; `409 IMAGE_IN_USE` naming the VMs that use it", { headers: IDEMPOTENCY, responses: { 202: accepted("the image") } }),

  // Exports
  route("GET", "/v1/exports", "exports", "List exports", "`200 {items: Export[], nextCursor}`", { query: PageQuery, responses: { 200: json(ExportList, "The project's exports, newest first") } }),
  route("GET", "/v1/exports/:id", "exports", "Show an export", "`200 Export`", { responses: { 200: json(Export, "The export") } }),
  route("GET", "/v1/exports/:id/file", "exports", "Download an export", "the file; supports `Range` (`206`), `HEAD`; headers `X-Checksum-Sha256: <hex>`, `Digest: sha-256=<base64>`, `ETag`; `410 EXPORT_EXPIRED` once expired", {
    headers: { Range: "`bytes=START-` to resume", "If-Range": "the ETag the first part had" },
    responses: {
      200: { description: "The file", contentType: "application/octet-stream", schema: z.string(), headers: { "X-Checksum-Sha256": "hex sha256 of the whole file", Digest: "`sha-256=<base64>`", ETag: "the file's entity tag" } },
      206: { description: "The part asked for with `Range`", contentType: "application/octet-stream", schema: z.string(), headers: { "Content-Range": "the bytes sent" } },
    },
  }),
  route("DELETE", "/v1/exports/:id", "exports", "Delete an export", "`204`; removes the file", { responses: { 204: noContent } }),

  // Jobs
  route("GET", "/v1/jobs", "jobs", "List jobs", "query `vm`, `image`, `state`, `type`, `host`, `limit`, `cursor` → `200 {items: Job[], nextCursor}`, newest first", { query: JobListQuery, responses: { 200: json(JobList, "Jobs, newest first") } }),
  route("GET", "/v1/jobs/:id", "jobs", "Show a job", "`200 Job`", { responses: { 200: json(Job, "The job") } }),
  route("GET", "/v1/jobs/:id/wait", "jobs", "Wait for a job", "long-poll: answers `200 Job` as soon as the job is final, or after `S` seconds (max 60) with the job as it is then", { query: JobWaitQuery, responses: { 200: json(Job, "The job, final or as it is when the wait ends") } }),
  route("GET", "/v1/jobs/:id/events", "jobs", "Follow a job's events", "Server-Sent Events: every `JobEvent` in order (`id:` = `seq`, `event:` = `state`, `progress` or `log`, `data:` = the JobEvent JSON); resumes after `Last-Event-ID` (or `?after=N`); ends with an `event: end` once the job is final, whose `data:` is the final job (the body of `GET /v1/jobs/:id`)", {
    query: JobEventsQuery,
    headers: { "Last-Event-ID": "resume after this event (`seq`)" },
    responses: {
      200: {
        description: "`text/event-stream`: one event per `JobEvent` (schema `JobEvent`: `id:` its `seq`, `event:` its `type`, `data:` its JSON), then `event: end` with the final job (schema `JobEventsEnd`, the same as `Job`)",
        contentType: "text/event-stream",
        schema: z.string(),
      },
    },
  }),
  route("POST", "/v1/jobs/:id/cancel", "jobs", "Cancel a job", "a queued job → `200 Job` (now `cancelled`); a running import or export → `202 Job` (the worker stops the transfer or `qemu-img`, removes partial files, and the job ends `cancelled`); `409 JOB_NOT_CANCELLABLE` for other running jobs and final ones", {
    responses: { 200: json(Job, "The job, now `cancelled`"), 202: json(Job, "A running transfer or conversion the worker is stopping") },
  }),

  // Hosts
  route("GET", "/v1/hosts", "hosts", "List hosts", "`200 {items: Host[], nextCursor}` with state (`online`, `offline`, `lost`; database clock), accelerator, capacity and allocation, and `network`: mode (`bridge` or `user`), underlay address, capabilities, notes, routes and listening ports", { query: PageQuery, responses: { 200: json(HostList, "The hosts, by id") } }),
  route("POST", "/v1/hosts/:id/drain", "hosts", "Drain a host", "`200 {id, drained}`: a drained host takes no new VMs", { responses: { 200: json(HostDrained, "The host, drained") } }),
  route("POST", "/v1/hosts/:id/undrain", "hosts", "Undrain a host", "`200 {id, drained}`: the host takes new VMs again", { responses: { 200: json(HostDrained, "The host, not drained") } }),
  route("POST", "/v1/hosts/:id/evacuate", "hosts", "Evacuate a host", "body `HostEvacuateRequest` `{dryRun?: boolean}` (default `false`) → `200 HostEvacuation` `{hostId, hostState, drained, dryRun, items: [{vmId, vmName, action: \"migrate\"\\|\"restore\"\\|\"skip\", toHostId, jobId, backupId, backupAt, reason}]}`. Drains the host (not in a dry run), then per VM: `migrate` (a stopped VM of an online host: a `vm.migrate` job), `restore` (a VM of a lost host, recreated from its newest ready backup), or `skip` with the reason (running, no backup, busy, no room). A dry run plans only (`jobId` null). `:id` is the host's id or name; `404`; `503 HOST_OFFLINE` for a host offline but not lost yet. An `Idempotency-Key` becomes one key per VM, so a replay answers the same jobs", { body: HostEvacuateRequest, headers: IDEMPOTENCY, responses: { 200: json(HostEvacuation, "The plan, and the jobs made") } }),

  // Tenancy
  route("GET", "/v1/whoami", "tenancy", "Who the token is", "`200 {token, tokenId, role, scopedToProject, project}`", { responses: { 200: json(Whoami, "The token, its role and project") } }),
  route("GET", "/v1/projects", "tenancy", "List projects", "`200 {items: Project[], nextCursor}` (a project-scoped token sees its own) with `quota` and `usage`", { query: PageQuery, responses: { 200: json(ProjectList, "The projects") } }),
  route("POST", "/v1/projects", "tenancy", "Create a project", "body `{name, description?}` → `201 Project`; `409 NAME_TAKEN`", { body: ProjectCreateRequest, responses: { 201: json(Project, "The project") } }),
  route("GET", "/v1/projects/:ref", "tenancy", "Show a project", "`200 Project`", { responses: { 200: json(Project, "The project") } }),
  route("PUT", "/v1/projects/:ref/quota", "tenancy", "Set a project's quota", "body `{vms?, vcpus?, memory?, disk?, images?, imageBytes?, networks?, backups?}` (sizes like `\"32G\"`; `null` removes a limit) → `200 Project`", { body: ProjectQuotaRequest, responses: { 200: json(Project, "The project as changed") } }),
  route("DELETE", "/v1/projects/:ref", "tenancy", "Delete a project", "`204`; `409 INVALID_STATE` while it holds VMs, images, networks, backups or live tokens, or for `default`", { responses: { 204: noContent } }),
  route("GET", "/v1/tokens", "tenancy", "List tokens", "`200 {items: ApiToken[], nextCursor}` (never the secret)", { query: PageQuery, responses: { 200: json(ApiTokenList, "The tokens") } }),
  route("POST", "/v1/tokens", "tenancy", "Create a token", "body `{name, role, project?, expires?: \"30d\"}` → `201 {token, secret}` — the only time the secret is shown", { body: TokenCreateRequest, responses: { 201: json(TokenCreated, "The token and its secret") } }),
  route("DELETE", "/v1/tokens/:name", "tenancy", "Revoke a token", "`204` (revoked: it gets `401` from then on)", { responses: { 204: noContent } }),
  route("GET", "/v1/audit", "tenancy", "Read the audit trail", "`200 {items: AuditEvent[], nextCursor}`, newest first; `since` is an ISO time or a duration (`1h`, `7d`)", { query: AuditListQuery, responses: { 200: json(AuditEventList, "Audit events, newest first") } }),

  route("POST", "/v1/bench/noop", "bench", "Submit a benchmark job", "Only mounted with `IAAS_ENABLE_BENCH_JOBS=true` (`npm run bench:jobs`): a `bench.noop` job through the same submitter as every other job", {
    body: BenchNoopRequest,
    responses: { 202: accepted("") },
  }),
];
