import { createReadStream } from "node:fs";
import type { z } from "zod";
import {
  ExitCode,
  Host,
  Image,
  Job,
  Vm,
  VmCreateDryRun,
  listOf,
  type ImageCreateRequest,
  type JobState,
  type JobType,
  type VmCreateRequest,
  type VmStopRequest,
} from "@iaas/contracts";
import { CliError } from "../CliError.js";
import { HttpTransport, type HttpTransportOptions } from "./HttpTransport.js";
import { JobAccepted } from "./JobAccepted.js";

export type VmCreateInput = Omit<z.input<typeof VmCreateRequest>, "dryRun">;

export interface JobFilter {
  vm?: string;
  image?: string;
  state?: JobState;
  type?: JobType;
  host?: string;
  limit?: number;
}

const VmList = listOf(Vm);
const ImageList = listOf(Image);
const JobList = listOf(Job);
const HostList = listOf(Host);

export type ApiClientOptions = HttpTransportOptions;

/** Typed access to the REST API: every answer parsed with the contracts' schemas. */
export class ApiClient {
  private readonly http: HttpTransport;

  constructor(options: ApiClientOptions) {
    this.http = new HttpTransport(options);
  }

  get baseUrl(): string {
    return this.http.baseUrl;
  }

  async listVms(): Promise<Vm[]> {
    return (await this.http.json(VmList, { method: "GET", path: "/v1/vms" })).items;
  }

  getVm(ref: string): Promise<Vm> {
    return this.http.json(Vm, { method: "GET", path: `/v1/vms/${enc(ref)}` });
  }

  createVm(input: VmCreateInput): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: "/v1/vms", json: { ...input, dryRun: false } });
  }

  /** The placement decision for a VM, nothing created (`dryRun: true`). */
  planVm(input: VmCreateInput): Promise<VmCreateDryRun> {
    return this.http.json(VmCreateDryRun, { method: "POST", path: "/v1/vms", json: { ...input, dryRun: true } });
  }

  startVm(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/start` });
  }

  stopVm(ref: string, body: Partial<VmStopRequest>): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/stop`, json: body });
  }

  rebootVm(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "POST", path: `/v1/vms/${enc(ref)}/reboot` });
  }

  deleteVm(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/vms/${enc(ref)}` });
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

  createImage(req: ImageCreateRequest): Promise<Image> {
    return this.http.json(Image, { method: "POST", path: "/v1/images", json: req });
  }

  /**
   * Streams `file` (of `size` bytes) to the image's upload URL without reading it into memory;
   * `onProgress` gets the bytes sent so far.
   */
  uploadImageFile(image: Image, file: string, size: number, onProgress: (bytesSent: number) => void): Promise<JobAccepted> {
    const path = `/v1/images/${enc(image.id)}/file`;
    const url = image.uploadUrl === null ? undefined : this.http.resolve(image.uploadUrl);
    return this.http.json(JobAccepted, {
      method: "PUT",
      path: url === undefined ? path : new URL(url).pathname,
      url,
      body: countBytes(createReadStream(file, { highWaterMark: 1024 * 1024 }), onProgress),
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      timeoutMs: null,
      retry: false,
    });
  }

  async listImages(): Promise<Image[]> {
    return (await this.http.json(ImageList, { method: "GET", path: "/v1/images" })).items;
  }

  getImage(ref: string): Promise<Image> {
    return this.http.json(Image, { method: "GET", path: `/v1/images/${enc(ref)}` });
  }

  deleteImage(ref: string): Promise<JobAccepted> {
    return this.http.json(JobAccepted, { method: "DELETE", path: `/v1/images/${enc(ref)}` });
  }

  async listJobs(filter: JobFilter = {}): Promise<Job[]> {
    return (await this.http.json(JobList, { method: "GET", path: "/v1/jobs", query: { ...filter } })).items;
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

  cancelJob(id: string): Promise<Job> {
    return this.http.json(Job, { method: "POST", path: `/v1/jobs/${enc(id)}/cancel` });
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
    return (await this.http.json(HostList, { method: "GET", path: "/v1/hosts" })).items;
  }
}

async function* countBytes(source: AsyncIterable<unknown>, onProgress: (bytesSent: number) => void): AsyncGenerator<Uint8Array> {
  let sent = 0;
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("expected bytes from the file stream");
    yield chunk;
    sent += chunk.byteLength;
    onProgress(sent);
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
