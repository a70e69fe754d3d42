import type { Logger } from "pino";
import type { JobError, JobPayload, JobProgress, JobResult, JobType } from "@iaas/contracts";
import type { Job, PrismaClient } from "@iaas/db";
import type { QemuImg } from "@iaas/hypervisor";
import type { ConsoleTailer } from "../vm/ConsoleTailer.js";
import type { VmRuntime } from "../vm/VmRuntime.js";
import type { AllowList } from "../download/urlPolicy.js";
import type { HostNetwork } from "../net/HostNetwork.js";
import type { NetRunner } from "../net/NetRunner.js";

export interface ImportConfig {
  /** Directory on this host that `--source-path` imports may read from; unset disables them. */
  importDir: string | undefined;
  urlAllowList: AllowList;
  maxVirtualSize: number;
  maxDownloadBytes: number;
  downloadTimeoutMs: number;
}

export interface WorkerServices {
  db: PrismaClient;
  runtime: VmRuntime;
  qemuImg: QemuImg;
  consoles: ConsoleTailer;
  hostId: string;
  imageStore: string;
  importConfig: ImportConfig;
  /** This host's networking (bridges, taps, dnsmasq, nftables), kept in line with Postgres. */
  network: HostNetwork;
  /** Runs commands in the worker's network namespace. */
  runner: NetRunner;
}

export interface HandlerContext<T extends JobType> extends WorkerServices {
  job: Job;
  payload: JobPayload<T>;
  attempt: number;
  log: Logger;
  /** Aborted when the job passes its timeout or the worker must stop. */
  signal: AbortSignal;
  progress(progress: JobProgress): Promise<void>;
  note(message: string, level?: "info" | "warn"): Promise<void>;
}

export interface JobHandler<T extends JobType> {
  run(ctx: HandlerContext<T>): Promise<JobResult<T>>;
  /**
   * Called once when the job has failed for good, before the failure is recorded: put the domain
   * rows back in a state that matches reality and remove partial files.
   */
  settle?(ctx: HandlerContext<T>, error: JobError): Promise<void>;
  /** A line for the success event. */
  describe?(result: JobResult<T>): string;
}

export type HandlerRegistry = { [T in JobType]?: JobHandler<T> };
