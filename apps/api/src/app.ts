import express from "express";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { IaasError } from "@iaas/contracts";
import { jobTypeOf, type PrismaClient } from "@iaas/db";
import { errorHandler } from "./http/problem.js";
import { accessLog, captureRoute } from "./http/accessLog.js";
import { streamLimiterOf } from "./http/streamLimits.js";
import { ApiMetrics } from "./metrics/ApiMetrics.js";
import { metricsRoutes } from "./routes/metrics.js";
import { storableText } from "./http/storableText.js";
import { benchRoutes } from "./routes/bench.js";
import { exportRoutes } from "./routes/exports.js";
import { ExportService } from "./services/ExportService.js";
import { healthRoutes } from "./routes/health.js";
import { docsRoutes } from "./openapi/docsRoutes.js";
import { hostRoutes } from "./routes/hosts.js";
import { DEFAULT_LOST_AFTER_SECONDS, type HostThresholds } from "./services/hostLiveness.js";
import { HostEvacuationService } from "./services/HostEvacuationService.js";
import { VmForceDelete } from "./services/VmForceDelete.js";
import { VmMigrationService } from "./services/VmMigrationService.js";
import { imageRoutes } from "./routes/images.js";
import { jobRoutes } from "./routes/jobs.js";
import { JobEventHub } from "./events/JobEventHub.js";
import { vmRoutes } from "./routes/vms.js";
import { networkRoutes } from "./routes/networks.js";
import { NetworkService } from "./services/NetworkService.js";
import { VmNetworkService } from "./services/VmNetworkService.js";
import { SnapshotService } from "./services/SnapshotService.js";
import { VmChangeService } from "./services/VmChangeService.js";
import { VmCloneService } from "./services/VmCloneService.js";
import { ImageService } from "./services/ImageService.js";
import type { JobQueues } from "./services/JobQueues.js";
import { JobSubmitter } from "./services/JobSubmitter.js";
import { VmService } from "./services/VmService.js";
import { BackupService } from "./services/BackupService.js";
import { BackupScheduler } from "./services/BackupScheduler.js";
import { backupRoutes } from "./routes/backups.js";
import { afterAuthHardening, mountHardening, type HardeningConfig } from "./http/hardening.js";
import { adminRoutes } from "./routes/admin.js";
import { auditTrail, authenticate, type AuthMode } from "./auth/authenticate.js";
import { ProjectService } from "./services/ProjectService.js";

export interface AppDeps {
  db: PrismaClient;
  redis: Redis;
  /** A connection for BullMQ consumers (blocking commands, retried forever); default: `redis`. */
  blockingRedis?: Redis;
  queues: JobQueues;
  log: Logger;
  /**
   * Pushes job events to event streams and long-polls (events/JobEventHub.ts); main and the test
   * API pass one that LISTENs. Left out: a hub without a LISTEN connection, so events arrive
   * with its safety poll only (every second).
   */
  jobEvents?: JobEventHub;
  /** HTTP hardening (http/hardening.ts): Origin/Host checks, rate and stream limits, HSTS; left out: DEFAULT_HARDENING. */
  hardening?: HardeningConfig | undefined;
  config: {
    imageStore: string;
    queuePrefix: string;
    offlineAfterSeconds: number;
    /** IAAS_HOST_LOST_SECONDS: offline this long, a host is lost (default 300). */
    lostAfterSeconds?: number;
    /** `token` (API tokens; the default) or `none` (everyone is the local admin: loopback only, checked by main). */
    auth: AuthMode;
    maxUploadBytes: number;
    /** How long an export stays downloadable. */
    exportTtlSeconds: number;
    /** Mount the benchmark's `POST /v1/bench/noop` (only for `npm run bench:jobs`). */
    enableBenchJobs?: boolean;
    /** IAAS_METRICS_TOKEN: when set, `GET /metrics` needs it as a bearer token. */
    metricsToken?: string | undefined;
  };
}

export interface Api {
  app: express.Express;
  /** Backup schedules: the caller starts taking fires (`start`) and reconciles them with maintenance. */
  backupScheduler: BackupScheduler;
}

export function createApp(deps: AppDeps): Api {
  const { db, log, config } = deps;
  // Prometheus metrics of this process (GET /metrics); streams are counted by the app's stream limiter.
  const metrics = new ApiMetrics(db, log, () => streamLimiterOf(app));
  const submitter = new JobSubmitter(db, deps.queues, log, (job) => metrics.jobSubmitted(jobTypeOf(job)));
  const hosts: HostThresholds = { offlineAfterSeconds: config.offlineAfterSeconds, lostAfterSeconds: config.lostAfterSeconds ?? DEFAULT_LOST_AFTER_SECONDS };
  const vms = new VmService(db, submitter, hosts);
  const vmNetworks = new VmNetworkService(db, submitter, hosts);
  const networks = new NetworkService(db);
  const snapshots = new SnapshotService(db, submitter, hosts);
  const changes = new VmChangeService(db, submitter, hosts);
  const clones = new VmCloneService(db, submitter, hosts);
  const migrations = new VmMigrationService(db, submitter, hosts);
  const evacuations = new HostEvacuationService(db, migrations, hosts);
  const forceDelete = new VmForceDelete(db, deps.redis, config.queuePrefix, hosts, log);
  const images = new ImageService(db, submitter, config.imageStore, config.offlineAfterSeconds, config.maxUploadBytes);
  const exports = new ExportService(db, submitter, config.imageStore, config.offlineAfterSeconds, config.exportTtlSeconds);
  const backups = new BackupService(db, submitter, vms, hosts);
  const jobEvents = deps.jobEvents ?? new JobEventHub(db, { safetyPollMs: 1000, log });
  const backupScheduler = new BackupScheduler(db, deps.redis, config.queuePrefix, backups, log, deps.blockingRedis ?? deps.redis);

  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  // X-Request-Id (the client's when safe, else new) on every response, the route pattern each
  // request matched, one access log line and the HTTP metrics per request (http/accessLog.ts).
  app.use(captureRoute(), accessLog(log), metrics.observeRequests());
  // Every /v1 request gets its audit row when it finishes (the denied ones of the hardening below too).
  app.use("/v1", auditTrail(db, log));
  // --- HTTP hardening (http/hardening.ts) — before health, authentication and express.json:
  // security headers on every answer; on /v1 Cache-Control: no-store, the Origin/Host check
  // (403), the per-address rate limit (429) and JSON-only bodies (415/413). The per-token rate
  // limit belongs right after authentication: `app.use("/v1", ...afterAuthHardening(app))`.
  mountHardening(app, { redis: deps.redis, prefix: config.queuePrefix, log, config: deps.hardening });
  // --- end HTTP hardening
  app.use(healthRoutes({ db, redis: deps.redis }));
  app.use(metricsRoutes({ metrics, token: config.metricsToken }));
  // GET /openapi.json and /docs: public like /healthz (they describe the API, they hold no data).
  app.use(docsRoutes());
  // Who the request is and in which project; then the per-token rate limit.
  app.use("/v1", authenticate(db, config.auth));
  const afterAuth = afterAuthHardening(app);
  if (afterAuth.length > 0) app.use("/v1", ...afterAuth);
  // The raw upload (PUT /v1/images/:ref/file) is never parsed as JSON, whatever its Content-Type says.
  app.use("/v1", express.json({ limit: "1mb", type: (req) => req.headers["content-type"]?.toLowerCase().includes("json") === true && !(req.method === "PUT" && /\/images\/[^/]+\/file$/.test(req.url ?? "")) }));
  app.use("/v1", storableText());
  const admin = adminRoutes({ db, projects: new ProjectService(db) });
  app.use("/v1/projects", admin.projects);
  app.use("/v1/tokens", admin.tokens);
  app.use("/v1/audit", admin.audit);
  app.use("/v1/whoami", admin.whoami);
  app.use("/v1/hosts", admin.hostAdmin);
  app.use("/v1/images", admin.imageAdmin);
  app.use("/v1/vms", vmRoutes({ db, vms, vmNetworks, snapshots, changes, clones, exports, backups, schedules: backupScheduler, redis: deps.redis, queuePrefix: config.queuePrefix, hosts, forceDelete, migrations }));
  app.use("/v1/backups", backupRoutes({ db, backups }));
  app.use("/v1/networks", networkRoutes({ db, networks }));
  app.use("/v1/images", imageRoutes({ db, images, exports }));
  app.use("/v1/exports", exportRoutes({ db, exports, store: config.imageStore }));
  app.use("/v1/jobs", jobRoutes({ db, queues: deps.queues, store: config.imageStore, redis: deps.redis, queuePrefix: config.queuePrefix, jobEvents }));
  app.use("/v1/hosts", hostRoutes({ db, hosts, evacuations }));
  if (config.enableBenchJobs) app.use("/v1/bench", benchRoutes({ db, submitter, offlineAfterSeconds: config.offlineAfterSeconds }));
  app.use((req, _res, next) => {
    next(new IaasError("NOT_FOUND", `no route for ${req.method} ${req.path}`, { hint: "see GET /openapi.json (or /docs in a browser) for the endpoints" }));
  });
  app.use(errorHandler(log));
  return { app, backupScheduler };
}
