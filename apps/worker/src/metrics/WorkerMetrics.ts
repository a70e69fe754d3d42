import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { metricsScrapeAllowed } from "@iaas/contracts";

/** Job durations and queue waits: 50 ms (a state check) to 6 h (a large import or backup). */
const JOB_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 21600];

/** How long a QEMU process count serves scrapes. */
const QEMU_COUNT_TTL_MS = 2000;

/** What the job runner reports: starts (after their queue wait) and final outcomes. */
export interface JobMetrics {
  /** A job's first run started `waitSeconds` after it was created. */
  started(type: string, waitSeconds: number): void;
  /** A job reached a final state after running `durationSeconds` (null when it never started). */
  finished(type: string, state: string, durationSeconds: number | null): void;
}

/**
 * One worker's Prometheus metrics, every series labelled with its host: jobs finished by type and
 * state, job durations and queue waits, jobs running now, and the QEMU processes alive on the host
 * (counted from the VMs' pidfiles at scrape time, cached for two seconds).
 */
export class WorkerMetrics implements JobMetrics {
  readonly registry = new Registry();
  private readonly finishedTotal: Counter<"type" | "state">;
  private readonly duration: Histogram<"type" | "state">;
  private readonly queueWait: Histogram<"type">;
  private qemu: { at: number; value: Promise<number> } | undefined;

  constructor(
    hostId: string,
    sources: { runningJobs: () => number; countQemuProcesses: () => Promise<number> },
    private readonly log: Logger,
  ) {
    this.registry.setDefaultLabels({ host: hostId });
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.finishedTotal = new Counter({ name: "iaas_jobs_finished_total", help: "Jobs this worker brought to a final state, by type and state", labelNames: ["type", "state"], registers });
    this.duration = new Histogram({ name: "iaas_job_duration_seconds", help: "Time from a job's start to its final state, by type and state", labelNames: ["type", "state"], buckets: JOB_BUCKETS, registers });
    this.queueWait = new Histogram({ name: "iaas_job_queue_wait_seconds", help: "Time from a job's creation to its first start on this worker, by type", labelNames: ["type"], buckets: JOB_BUCKETS, registers });
    new Gauge({
      name: "iaas_worker_jobs_running",
      help: "Jobs this worker process runs now",
      registers,
      collect() {
        this.set(sources.runningJobs());
      },
    });
    const qemuCount = () => this.qemuCount(sources.countQemuProcesses);
    new Gauge({
      name: "iaas_qemu_processes",
      help: "QEMU processes alive on this host (VMs' pidfiles whose process runs)",
      registers,
      async collect() {
        this.set(await qemuCount());
      },
    });
  }

  started(type: string, waitSeconds: number): void {
    this.queueWait.observe({ type }, Math.max(0, waitSeconds));
  }

  finished(type: string, state: string, durationSeconds: number | null): void {
    this.finishedTotal.inc({ type, state });
    if (durationSeconds !== null) this.duration.observe({ type, state }, Math.max(0, durationSeconds));
  }

  private qemuCount(count: () => Promise<number>): Promise<number> {
    const now = Date.now();
    if (!this.qemu || now - this.qemu.at > QEMU_COUNT_TTL_MS) {
      const value = Promise.resolve().then(count).catch((err: unknown) => {
        this.log.warn({ err }, "metrics: could not count the QEMU processes");
        return 0;
      });
      this.qemu = { at: now, value };
    }
    return this.qemu.value;
  }

  /**
   * Serves `GET /metrics` on `host:port` (0: a free port, for tests) and nothing else; with a
   * token, only to `Authorization: Bearer <token>`. Resolves with the server once it listens.
   */
  async serve(opts: { port: number; host: string; token: string | undefined }): Promise<Server> {
    const server = createServer((req, res) => {
      const path = (req.url ?? "").split("?")[0];
      if (req.method !== "GET" || path !== "/metrics") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found: this port serves GET /metrics only\n");
        return;
      }
      if (!metricsScrapeAllowed(req.headers.authorization, opts.token)) {
        res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="metrics"' }).end("this worker's /metrics needs Authorization: Bearer <IAAS_METRICS_TOKEN>\n");
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": this.registry.contentType, "cache-control": "no-store" }).end(body),
        (err: unknown) => {
          this.log.error({ err }, "metrics: could not render the metrics");
          res.writeHead(500, { "content-type": "text/plain" }).end("could not render the metrics; see the worker log\n");
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          new Error(
            err.code === "EADDRINUSE"
              ? `IAAS_METRICS_PORT ${opts.port} on ${opts.host} is taken (another worker on this machine?): give each worker its own port, or 0 to serve no metrics`
              : `cannot serve metrics on ${opts.host}:${opts.port}: ${err.message}`,
          ),
        ),
      );
      server.listen(opts.port, opts.host, () => resolve());
    });
    return server;
  }
}
