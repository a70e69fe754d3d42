import { z } from "zod";
import {
  ApiTokenList,
  AuditEventList,
  Backup,
  BackupList,
  BackupSchedule,
  ExitCode,
  MAX_PAGE_LIMIT,
  Export,
  ExportList,
  HostDrained,
  HostEvacuation,
  HostList,
  Image,
  ImageDeduplicated,
  ImageList,
  ImageUploadPartial,
  Job,
  JobAccepted,
  JobList,
  Network,
  NetworkList,
  PortForwardList,
  Project,
  ProjectList,
  SnapshotList,
  TokenCreated,
  Vm,
  VmCreateDryRun,
  VmList,
  Whoami,
  type ApiToken,
  type AuditEvent,
  type Host,
  type PortForward,
  type Snapshot,
  type BackupRestoreRequest,
  type BackupScheduleRequest,
  type BackupVmCreateRequest,
  type ExportRequest,
  type ImageCreateRequest,
  type JobState,
  type JobType,
  type NetworkCreateRequest,
  type NicRequest,
  type PortForwardRequest,
  type PortProtocol,
  type ProjectQuotaRequest,
  type TokenCreateRequest,
  type SnapshotCreateRequest,
  type SnapshotRestoreRequest,
  type VmCreateRequest,
  type VmProbeRequest,
  type VmBackupRequest,
  type VmMigrateRequest,
  type VmStopRequest,
} from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { HttpTransport, type HttpTransportOptions, type RequestSpec } from "./HttpTransport.js";
import { ALL_PAGES, readPages, type ListEndpoint, type ListPage, type Paging } from "./paging.js";

export type VmCreateInput = Omit<z.input<typeof VmCreateRequest>, "dryRun">;
export type ImageCreateInput = z.input<typeof ImageCreateRequest>;
export type ExportInput = z.input<typeof ExportRequest>;
export type NetworkCreateInput = z.input<typeof NetworkCreateRequest>;
export type NicInput = z.input<typeof NicRequest>;
export type PortForwardInput = z.input<typeof PortForwardRequest>;
export type VmProbeInput = z.input<typeof VmProbeRequest>;
export type SnapshotCreateInput = z.input<typeof SnapshotCreateRequest>;
export type SnapshotRestoreInput = z.input<typeof SnapshotRestoreRequest>;
export type VmBackupInput = z.input<typeof VmBackupRequest>;
export type BackupRestoreInput = z.input<typeof BackupRestoreRequest>;
export type BackupVmCreateInput = z.input<typeof BackupVmCreateRequest>;
export type BackupScheduleInput = z.input<typeof BackupScheduleRequest>;
export type TokenCreateInput = z.input<typeof TokenCreateRequest>;
export type ProjectQuotaInput = z.input<typeof ProjectQuotaRequest>;

/** The placement decision of `vm create --dry-run`; `quota` (why the project's quotas would refuse it) is missing from older APIs. */
export const VmPlan = VmCreateDryRun.extend({ quota: z.array(z.string()).optional() });
export type VmPlan = z.infer<typeof VmPlan>;

export interface AuditFilter {
  actor?: string;
  project?: string;
  /** ISO time, or a duration back from now ("1h"). */
  since?: string;
  outcome?: AuditEvent["outcome"];
  limit?: number;
}

/** What POST /v1/images made. */
export type ImageCreated =
  /** 201: the image waits for its content at `image.uploadUrl`. */
  | { kind: "upload"; image: Image }
  /** 202: a worker fetches the content (url or path source). */
  | { kind: "job"; accepted: JobAccepted }
  /** 200: `dedupe` found the content stored already, as this image; nothing was created. */
  | { kind: "deduplicated"; image: Image };

/** What a ranged PUT of upload bytes achieved. */
export type UploadAnswer = { kind: "partial"; offset: number } | { kind: "complete"; accepted: JobAccepted };


export interface JobFilter {
  vm?: string;
  image?: string;
  state?: JobState;
  type?: JobType;
  host?: string;
  limit?: number;
}

/** The API's list endpoints (each answers pages: `?limit=&cursor=` → `{items, nextCursor}`). */
export const ListEndpoints = {
  vms: (): ListEndpoint<Vm> => ({ schema: VmList, path: "/v1/vms" }),
  images: (): ListEndpoint<Image> => ({ schema: ImageList, path: "/v1/images" }),
  jobs: (filter: Omit<JobFilter, "limit"> = {}): ListEndpoint<Job> => ({ schema: JobList, path: "/v1/jobs", query: { ...filter } }),
  hosts: (): ListEndpoint<Host> => ({ schema: HostList, path: "/v1/hosts" }),
  exports: (): ListEndpoint<Export> => ({ schema: ExportList, path: "/v1/exports" }),
  networks: (): ListEndpoint<Network> => ({ schema: NetworkList, path: "/v1/networks" }),
  ports: (vm: string): ListEndpoint<PortForward> => ({ schema: PortForwardList, path: `/v1/vms/${enc(vm)}/ports` }),
  snapshots: (vm: string): ListEndpoint<Snapshot> => ({ schema: SnapshotList, path: `/v1/vms/${enc(vm)}/snapshots` }),
  backups: (vm?: string): ListEndpoint<Backup> => ({ schema: BackupList, path: "/v1/backups", query: { vm } }),
  projects: (): ListEndpoint<Project> => ({ schema: ProjectList, path: "/v1/projects" }),
  tokens: (): ListEndpoint<ApiToken> => ({ schema: ApiTokenList, path: "/v1/tokens" }),
  audit: (filter: Omit<AuditFilter, "limit"> = {}): ListEndpoint<AuditEvent> => ({ schema: AuditEventList, path: "/v1/audit", query: { ...filter } }),
};

export type ApiClientOptions = HttpTransportOptions;

/** Typed access to the REST API: every answer parsed with the contracts' schemas. */
export class ApiClient {
  private readonly http: HttpTransport;

  constructor(options: ApiClientOptions) {
    this.http = new HttpTransport(options);
  }

  /** One page of a list, or with `paging.all` all of it (`iaas … list --limit N / --all`). */
  page<T>(list: ListEndpoint<T>, paging: Paging): Promise<ListPage<T>> {
    return readPages(
      async <U>(l: ListEndpoint<U>, limit: number | undefined, cursor: string | undefined) => {
        const got = await this.http.json(l.schema, { method: "GET", path: l.path, query: { ...l.query, limit, cursor } });
        return { items: got.items, nextCursor: got.nextCursor ?? null };
      },
      list,
      paging,
      MAX_PAGE_LIMIT,
    );
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  async listVms(): Promise<Vm[]> {
    return (await this.page(ListEndpoints.vms(), ALL_PAGES)).items;
  }

  getVm(ref: string): Promise<Vm> {
    return this.http.json(Vm, { method: "GET", path: `/v1/vms/${enc(ref)}` });
  }

  createVm(input: VmCreateInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: "/v1/vms", json: { ...input, dryRun: false } });
  }

  /** The placement decision for a VM, nothing created (`dryRun: true`). */
  planVm(input: VmCreateInput): Promise<VmPlan> {
    return this.http.json(VmPlan, { method: "POST", path: "/v1/vms", json: { ...input, dryRun: true } });
  }

  startVm(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/start` });
  }

  stopVm(ref: string, body: Partial<VmStopRequest>): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/stop`, json: body });
  }

  /** A new VM from a stopped VM's disk or one of its snapshots (a `vm.clone` job). */
  cloneVm(ref: string, req: { name: string; snapshot?: string; host?: string; start: boolean }): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/clone`, json: req });
  }

  /** Grows the VM's disk (a `vm.resize` job). */
  resizeVm(ref: string, disk: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/resize`, json: { disk } });
  }

  /** Sets a stopped VM's CPUs and/or memory; answers the VM as changed. */
  setVm(ref: string, change: { cpus?: number; memory?: string }): Promise<Vm> {
    return this.http.json(Vm, { method: "PATCH", path: `/v1/vms/${enc(ref)}`, json: change });
  }

  rebootVm(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/reboot` });
  }

  /** `force`: only for a VM whose host is lost: its records go at once (a job that is already finished). */
  deleteVm(ref: string, opts: { force?: boolean } = {}): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/vms/${enc(ref)}${opts.force === true ? "?force=true" : ""}` });
  }

  /** Moves a stopped VM to another host (a `vm.migrate` job; from its backup when its host is lost). */
  migrateVm(ref: string, req: VmMigrateRequest): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/migrate`, json: req });
  }

  /** The serial console as a byte stream; with `follow` it stays open for new output. */
  async openConsole(ref: string, follow: boolean, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const path = `/v1/vms/${enc(ref)}/console`;
    const res = await this.http.send({
      method: "GET",
      path,
      query: follow ? { follow: "true" } : undefined,
      accept: "text/plain",
      signal,
      timeoutMs: follow ? null : undefined,
    });
    if (res.body === null) throw new CliError(`unexpected response from GET ${path}: no body`, { exitCode: ExitCode.JOB_FAILED });
    return res.body;
  }

  /** The serial console as text (the last 1 MiB), read to the end. */
  async consoleText(ref: string, signal?: AbortSignal): Promise<string> {
    const path = `/v1/vms/${enc(ref)}/console`;
    const res = await this.http.send({ method: "GET", path, accept: "text/plain", signal });
    return res.text();
  }

  /** Adds a NIC to a stopped VM: POST /v1/vms/:ref/nics. */
  addNic(ref: string, nic: NicInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/nics`, json: nic });
  }

  /** Removes a NIC from a stopped VM; `nic` is its network (name or id) or its index. */
  removeNic(ref: string, nic: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/vms/${enc(ref)}/nics/${enc(nic)}` });
  }

  async listPorts(ref: string): Promise<PortForward[]> {
    return (await this.page(ListEndpoints.ports(ref), ALL_PAGES)).items;
  }

  addPort(ref: string, req: PortForwardInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/ports`, json: req });
  }

  removePort(ref: string, hostPort: number, protocol: PortProtocol): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/vms/${enc(ref)}/ports/${hostPort}`, query: { protocol } });
  }

  /** The VM's snapshots, oldest first. */
  async listSnapshots(ref: string): Promise<Snapshot[]> {
    return (await this.page(ListEndpoints.snapshots(ref), ALL_PAGES)).items;
  }

  /** A `vm.snapshot.create` job: a disk-only snapshot, or (`memory`) one of a running VM's RAM and device state too. */
  createSnapshot(ref: string, req: SnapshotCreateInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/snapshots`, json: req });
  }

  /** A `vm.snapshot.restore` job: the VM's disk (and, for a memory snapshot, its running state) as the snapshot has it. */
  restoreSnapshot(ref: string, name: string, req: SnapshotRestoreInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/snapshots/${enc(name)}/restore`, json: req });
  }

  deleteSnapshot(ref: string, name: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/vms/${enc(ref)}/snapshots/${enc(name)}` });
  }

  /** A `vm.backup` job: a full or incremental backup of the VM's disk, or (`asImage`) a new image of it. */
  backupVm(ref: string, req: VmBackupInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/backups`, json: req });
  }

  /** Backups, newest first; with `vm` (a name or id, also of a deleted VM) only that VM's. */
  async listBackups(vm?: string): Promise<Backup[]> {
    return (await this.page(ListEndpoints.backups(vm), ALL_PAGES)).items;
  }

  /** A backup by id or unique id prefix. */
  getBackup(id: string): Promise<Backup> {
    return this.http.json(Backup, { method: "GET", path: `/v1/backups/${enc(id)}` });
  }

  /** A `backup.verify` job: reads the backup (and the chain it needs) back against their sha256. */
  verifyBackup(id: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/backups/${enc(id)}/verify` });
  }

  /** A `backup.delete` job. */
  deleteBackup(id: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/backups/${enc(id)}` });
  }

  /** A `vm.backup.restore` job: the stopped VM's disk (and CPUs, memory) replaced by the backup's. */
  restoreBackup(id: string, req: BackupRestoreInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/backups/${enc(id)}/restore`, json: req });
  }

  /** A `vm.create` job making a new VM from a backup. */
  createVmFromBackup(id: string, req: BackupVmCreateInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/backups/${enc(id)}/vms`, json: req });
  }

  /** Sets (creates or replaces) the VM's backup schedule; answers it as stored. */
  setBackupSchedule(ref: string, req: BackupScheduleInput): Promise<BackupSchedule> {
    return this.http.json(BackupSchedule, { method: "PUT", path: `/v1/vms/${enc(ref)}/backup-schedule`, json: req });
  }

  /** The VM's backup schedule; a NOT_FOUND problem (exit 3) when it has none. */
  getBackupSchedule(ref: string): Promise<BackupSchedule> {
    return this.http.json(BackupSchedule, { method: "GET", path: `/v1/vms/${enc(ref)}/backup-schedule` });
  }

  async deleteBackupSchedule(ref: string): Promise<void> {
    const res = await this.http.send({ method: "DELETE", path: `/v1/vms/${enc(ref)}/backup-schedule` });
    await res.body?.cancel();
  }

  /** A `vm.probe` job: succeeds once the guest's TCP port answers, fails with WAIT_TIMEOUT otherwise. */
  probeVm(ref: string, req: VmProbeInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/probe`, json: req });
  }

  createNetwork(req: NetworkCreateInput): Promise<Network> {
    return this.http.json(Network, { method: "POST", path: "/v1/networks", json: req });
  }

  async listNetworks(): Promise<Network[]> {
    return (await this.page(ListEndpoints.networks(), ALL_PAGES)).items;
  }

  getNetwork(ref: string): Promise<Network> {
    return this.http.json(Network, { method: "GET", path: `/v1/networks/${enc(ref)}` });
  }

  async deleteNetwork(ref: string): Promise<void> {
    const res = await this.http.send({ method: "DELETE", path: `/v1/networks/${enc(ref)}` });
    await res.body?.cancel();
  }

  /**
   * POST /v1/images: `201 Image` awaiting its upload, `202 {job, image}` for a source the worker
   * fetches, or `200 {image, deduplicated}` when `dedupe` found the content stored already.
   */
  async createImage(req: ImageCreateInput): Promise<ImageCreated> {
    const spec: RequestSpec = { method: "POST", path: "/v1/images", json: req };
    const res = await this.http.send(spec);
    if (res.status === 202) return { kind: "job", accepted: await this.http.parse(JobAccepted, res, spec) };
    if (res.status === 200) return { kind: "deduplicated", image: (await this.http.parse(ImageDeduplicated, res, spec)).image };
    return { kind: "upload", image: await this.http.parse(Image, res, spec) };
  }

  /** HEAD of an upload URL: the bytes the server has (`Upload-Offset`) and the declared length. */
  async uploadOffset(uploadUrl: string, signal?: AbortSignal): Promise<{ offset: number; length: number | null }> {
    const spec = this.urlSpec("HEAD", uploadUrl, { signal, retry: false });
    const res = await this.http.send(spec);
    const offset = headerInt(res, "upload-offset");
    if (offset === null) {
      throw new CliError(`HEAD ${spec.path} answered no Upload-Offset header`, {
        exitCode: ExitCode.JOB_FAILED,
        hint: "the API may not support resumable uploads; compare `iaas --version` with the API's",
      });
    }
    return { offset, length: headerInt(res, "upload-length") };
  }

  /**
   * PUTs bytes `start`..`total - 1` of an upload (`Content-Range`), streamed from `body`: the
   * server's new offset while bytes are missing, the import job once the file is whole.
   */
  async putUploadRange(uploadUrl: string, body: AsyncIterable<Uint8Array>, start: number, total: number, signal?: AbortSignal): Promise<UploadAnswer> {
    const spec = this.urlSpec("PUT", uploadUrl, {
      body,
      signal,
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(total - start),
        "content-range": `bytes ${start}-${total - 1}/${total}`,
      },
      timeoutMs: null,
      retry: false,
    });
    const res = await this.http.send(spec);
    if (res.status === 202) return { kind: "complete", accepted: await this.http.parse(JobAccepted, res, spec) };
    return { kind: "partial", offset: (await this.http.parse(ImageUploadPartial, res, spec)).offset };
  }

  async listImages(): Promise<Image[]> {
    return (await this.page(ListEndpoints.images(), ALL_PAGES)).items;
  }

  getImage(ref: string): Promise<Image> {
    return this.http.json(Image, { method: "GET", path: `/v1/images/${enc(ref)}` });
  }

  deleteImage(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/images/${enc(ref)}` });
  }

  /** An `image.verify` job: the stored file's existence, size, sha256 and `qemu-img check`. */
  verifyImage(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/images/${enc(ref)}/verify` });
  }

  /** The newest jobs matching `filter`: one page of `filter.limit` (the API's default: 50). */
  async listJobs(filter: JobFilter = {}): Promise<Job[]> {
    const { limit, ...rest } = filter;
    return (await this.page(ListEndpoints.jobs(rest), { limit })).items;
  }

  getJob(id: string, signal?: AbortSignal): Promise<Job> {
    return this.http.json(Job, { method: "GET", path: `/v1/jobs/${enc(id)}`, signal });
  }

  /** Long-polls until the job is final or `timeoutSeconds` (1-60) pass; answers the job as it is then. */
  waitJob(id: string, timeoutSeconds: number, signal?: AbortSignal): Promise<Job> {
    const seconds = Math.min(60, Math.max(1, Math.ceil(timeoutSeconds)));
    return this.http.json(Job, {
      method: "GET",
      path: `/v1/jobs/${enc(id)}/wait`,
      query: { timeout: seconds },
      signal,
      timeoutMs: seconds * 1000 + this.http.defaultTimeoutMs,
    });
  }

  /** Cancels a job: `stopping` when the API answered 202 (a running job the worker is stopping). */
  async cancelJob(id: string): Promise<{ job: Job; stopping: boolean }> {
    const spec: RequestSpec = { method: "POST", path: `/v1/jobs/${enc(id)}/cancel` };
    const res = await this.http.send(spec);
    return { job: await this.http.parse(Job, res, spec), stopping: res.status === 202 };
  }

  /** Opens the job's event stream, resuming after `lastEventId` when given. No retries here. */
  openJobEvents(id: string, lastEventId: string | null, signal?: AbortSignal): Promise<Response> {
    return this.http.send({
      method: "GET",
      path: `/v1/jobs/${enc(id)}/events`,
      accept: "text/event-stream",
      headers: lastEventId === null ? {} : { "last-event-id": lastEventId },
      signal,
      timeoutMs: null,
      retry: false,
    });
  }

  async listHosts(): Promise<Host[]> {
    return (await this.page(ListEndpoints.hosts(), ALL_PAGES)).items;
  }

  /** Drains a host (it takes no new VMs) or undrains it; `id` is the host's id. */
  drainHost(id: string, drained: boolean): Promise<HostDrained> {
    return this.http.json(HostDrained, { method: "POST", path: `/v1/hosts/${enc(id)}/${drained ? "drain" : "undrain"}` });
  }

  /** Drains a host and moves its VMs away (admin); `dryRun` answers the plan only. */
  evacuateHost(id: string, dryRun: boolean): Promise<HostEvacuation> {
    return this.http.json(HostEvacuation, { method: "POST", path: `/v1/hosts/${enc(id)}/evacuate`, json: { dryRun } });
  }

  /** Makes an image public (every project may use it) or private to its project (admin). */
  setImagePublic(ref: string, isPublic: boolean): Promise<Image> {
    return this.http.json(Image, { method: "PATCH", path: `/v1/images/${enc(ref)}`, json: { public: isPublic } });
  }

  /** Who the token is: its name, role, and the project requests act in. */
  whoami(): Promise<Whoami> {
    return this.http.json(Whoami, { method: "GET", path: "/v1/whoami" });
  }

  async listProjects(): Promise<Project[]> {
    return (await this.page(ListEndpoints.projects(), ALL_PAGES)).items;
  }

  createProject(req: { name: string; description?: string }): Promise<Project> {
    return this.http.json(Project, { method: "POST", path: "/v1/projects", json: req });
  }

  /** A project by name or id, with its quota and usage. */
  getProject(ref: string): Promise<Project> {
    return this.http.json(Project, { method: "GET", path: `/v1/projects/${enc(ref)}` });
  }

  /** Sets some of a project's limits (`null` removes one); answers the project as changed. */
  setProjectQuota(ref: string, req: ProjectQuotaInput): Promise<Project> {
    return this.http.json(Project, { method: "PUT", path: `/v1/projects/${enc(ref)}/quota`, json: req });
  }

  async deleteProject(ref: string): Promise<void> {
    const res = await this.http.send({ method: "DELETE", path: `/v1/projects/${enc(ref)}` });
    await res.body?.cancel();
  }

  async listTokens(): Promise<ApiToken[]> {
    return (await this.page(ListEndpoints.tokens(), ALL_PAGES)).items;
  }

  /** Creates a token: the answer carries its secret, which the API never shows again. */
  createToken(req: TokenCreateInput): Promise<TokenCreated> {
    return this.http.json(TokenCreated, { method: "POST", path: "/v1/tokens", json: req });
  }

  async revokeToken(name: string): Promise<void> {
    const res = await this.http.send({ method: "DELETE", path: `/v1/tokens/${enc(name)}` });
    await res.body?.cancel();
  }

  /** The audit trail, newest first. */
  async listAudit(filter: AuditFilter = {}): Promise<AuditEvent[]> {
    const { limit, ...rest } = filter;
    return (await this.page(ListEndpoints.audit(rest), { limit })).items;
  }

  exportImage(ref: string, req: ExportInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/images/${enc(ref)}/export`, json: req });
  }

  exportVm(ref: string, req: ExportInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/export`, json: req });
  }

  async listExports(): Promise<Export[]> {
    return (await this.page(ListEndpoints.exports(), ALL_PAGES)).items;
  }

  getExport(id: string): Promise<Export> {
    return this.http.json(Export, { method: "GET", path: `/v1/exports/${enc(id)}` });
  }

  async deleteExport(id: string): Promise<void> {
    const res = await this.http.send({ method: "DELETE", path: `/v1/exports/${enc(id)}` });
    await res.body?.cancel();
  }

  /**
   * GET (or HEAD) of a download URL, from byte `from` on (`Range`, guarded by `If-Range` when an
   * ETag is known). Not bounded in time: the caller watches the stream; connection errors throw.
   */
  openDownload(url: string, options: { method: "GET" | "HEAD"; from?: number; ifRange?: string | null; signal?: AbortSignal }): Promise<Response> {
    const headers: Record<string, string> = {};
    if (options.from !== undefined && options.from > 0) {
      headers.range = `bytes=${options.from}-`;
      if (options.ifRange !== undefined && options.ifRange !== null) headers["if-range"] = options.ifRange;
    }
    return this.http.send(this.urlSpec(options.method, url, { headers, accept: "*/*", signal: options.signal, timeoutMs: null, retry: false }));
  }

  /** A request to a URL the API handed out (absolute, or a path under the API). */
  private urlSpec(method: RequestSpec["method"], urlOrPath: string, rest: Omit<RequestSpec, "method" | "path" | "url">): RequestSpec {
    const url = this.http.resolve(urlOrPath);
    return { ...rest, method, path: new URL(url).pathname, url };
  }
}

/** An integer header, or null when absent or not a number. */
export function headerInt(res: Response, name: string): number | null {
  const text = res.headers.get(name);
  if (text === null || !/^\d+$/.test(text.trim())) return null;
  return Number(text.trim());
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
