import type { RequestHandler } from "express";
import type { Logger } from "pino";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { PrismaClient } from "@iaas/db";
import { routeOf } from "../http/accessLog.js";
import type { StreamKind, StreamLimiter } from "../http/streamLimits.js";
import { loadClusterSnapshot, type ClusterSnapshot } from "./clusterSnapshot.js";

/** Request durations: 5 ms (a read) to 60 s (a long-poll that timed out). */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** How long a database snapshot serves scrapes: several Prometheus servers scraping at once cost one query. */
const SNAPSHOT_TTL_MS = 2000;

const STREAM_KINDS: readonly StreamKind[] = ["job-events", "console"];

/**
 * The API process's Prometheus metrics, in a registry of its own (one per app): HTTP requests by
 * route pattern and status with durations, jobs submitted by type, open event/console streams,
 * and the cluster as Postgres sees it — queue depth, VMs by state, capacity and allocation per
 * host — read at scrape time with one grouped query, cached for two seconds.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"method" | "route" | "status">;
  private readonly durations: Histogram<"method" | "route" | "status">;
  private readonly submitted: Counter<"type">;
  private snapshot: { at: number; value: Promise<ClusterSnapshot | null> } | undefined;

  constructor(
    private readonly db: PrismaClient,
    private readonly log: Logger,
    streams: () => StreamLimiter | undefined,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: "iaas_http_requests_total", help: "HTTP requests answered, by method, route pattern and status", labelNames: ["method", "route", "status"], registers });
    this.durations = new Histogram({
      name: "iaas_http_request_duration_seconds",
      help: "Time from a request's arrival to its response's end (streams: until they close), by method, route pattern and status",
      labelNames: ["method", "route", "status"],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.submitted = new Counter({ name: "iaas_jobs_submitted_total", help: "Jobs this API process created, by type (replays of an Idempotency-Key not counted)", labelNames: ["type"], registers });
    new Gauge({
      name: "iaas_open_streams",
      help: "Job event (SSE) and console-follow streams open in this API process",
      labelNames: ["kind"],
      registers,
      collect() {
        const limiter = streams();
        for (const kind of STREAM_KINDS) this.set({ kind }, limiter?.totalOf(kind) ?? 0);
      },
    });
    this.databaseGauges(registers);
  }

  /** Counts a job this process created. */
  jobSubmitted(type: string): void {
    this.submitted.inc({ type });
  }

  /** Times every request (mount first): counted when its response finishes or its connection closes. */
  observeRequests(): RequestHandler {
    return (req, res, next) => {
      const end = this.durations.startTimer();
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        const labels = { method: req.method, route: routeOf(req), status: String(res.statusCode) };
        end(labels);
        this.requests.inc(labels);
      };
      res.once("finish", finish);
      res.once("close", finish);
      next();
    };
  }

  /** The text exposition of every metric. */
  async metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The latest cluster snapshot, shared by every gauge of a scrape and by scrapes within the TTL; null when Postgres did not answer. */
  private cluster(): Promise<ClusterSnapshot | null> {
    const now = Date.now();
    if (!this.snapshot || now - this.snapshot.at > SNAPSHOT_TTL_MS) {
      const value = loadClusterSnapshot(this.db).catch((err: unknown) => {
        this.log.warn({ err }, "metrics: could not read the cluster from Postgres; its gauges are left out of this scrape");
        return null;
      });
      this.snapshot = { at: now, value };
    }
    return this.snapshot.value;
  }

  private databaseGauges(registers: Registry[]): void {
    const cluster = () => this.cluster();
    const gauge = <L extends string>(name: string, help: string, labelNames: L[], fill: (g: Gauge<L>, s: ClusterSnapshot) => void) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const snapshot = await cluster();
          this.reset();
          if (snapshot) fill(this, snapshot);
        },
      });
    new Gauge({
      name: "iaas_metrics_database_up",
      help: "1 when the last cluster snapshot was read from Postgres, 0 when the query failed (the cluster gauges are then empty)",
      registers,
      async collect() {
        this.set((await cluster()) === null ? 0 : 1);
      },
    });
    gauge("iaas_queue_depth", "Jobs queued in Postgres for each host, not yet started", ["host"], (g, s) => {
      for (const host of s.hosts) g.set({ host: host.id }, 0);
      for (const j of s.jobs) if (j.state === "queued") g.set({ host: j.host }, j.count);
    });
    gauge("iaas_jobs_running", "Jobs running on each host", ["host"], (g, s) => {
      for (const host of s.hosts) g.set({ host: host.id }, 0);
      for (const j of s.jobs) if (j.state === "running") g.set({ host: j.host }, j.count);
    });
    gauge("iaas_vms", "VMs on each host by state", ["host", "state"], (g, s) => {
      for (const v of s.vms) g.set({ host: v.host, state: v.state }, v.count);
    });
    gauge("iaas_host_heartbeat_age_seconds", "Seconds since each host's worker last heartbeat (database clock)", ["host"], (g, s) => {
      for (const h of s.hosts) g.set({ host: h.id }, h.heartbeatAgeSeconds);
    });
    gauge("iaas_host_drained", "1 when the host is drained (no new VMs placed there)", ["host"], (g, s) => {
      for (const h of s.hosts) g.set({ host: h.id }, h.drained ? 1 : 0);
    });
    const resources = [
      ["cpus", "vCPUs", "cpus"],
      ["memory_bytes", "memory in bytes", "memoryBytes"],
      ["disk_bytes", "disk in bytes", "diskBytes"],
    ] as const;
    for (const [suffix, what, key] of resources) {
      gauge(`iaas_host_capacity_${suffix}`, `Schedulable ${what} each host advertises`, ["host"], (g, s) => {
        for (const h of s.hosts) g.set({ host: h.id }, h.capacity[key]);
      });
      gauge(`iaas_host_allocated_${suffix}`, `${what[0]?.toUpperCase() ?? ""}${what.slice(1)} allocated to the VMs placed on each host, running or not`, ["host"], (g, s) => {
        for (const h of s.hosts) g.set({ host: h.id }, h.allocated[key]);
      });
    }
  }
}
