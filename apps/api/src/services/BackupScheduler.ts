import { randomUUID } from "node:crypto";
import { runInScope } from "../auth/scope.js";
import { Queue, Worker, type Job as QueueJob } from "bullmq";
import { CronExpressionParser } from "cron-parser";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { IaasError, MIN_SCHEDULE_EVERY_MS, parseDuration, type BackupScheduleRequest } from "@iaas/contracts";
import { createJobRow, finishJobIn, type BackupSchedule, type PrismaClient } from "@iaas/db";
import type { BackupService } from "./BackupService.js";
import { requestHash } from "./JobSubmitter.js";
import { findVm } from "./resolve.js";

/** BullMQ queue whose job schedulers fire the backups (one scheduler per VM). */
export const SCHEDULE_QUEUE = "backup-schedules";

const schedulerId = (vmId: string) => `backup-${vmId}`;

function validation(message: string, hint: string): IaasError {
  return new IaasError("VALIDATION_FAILED", message, { hint });
}

/** The interval or cron pattern of a request, checked as BullMQ will read it (cron-parser, UTC). */
export function scheduleTiming(req: Pick<BackupScheduleRequest, "every" | "cron">): { everyMs: number | null; cron: string | null } {
  if (req.every !== undefined) {
    let everyMs: number;
    try {
      everyMs = parseDuration(req.every);
    } catch (err) {
      throw validation((err as Error).message, "e.g. --every 24h or --every 30m");
    }
    if (everyMs < MIN_SCHEDULE_EVERY_MS) throw validation(`--every ${req.every} is too often: at least ${MIN_SCHEDULE_EVERY_MS / 1000}s`, "e.g. --every 1h");
    if (everyMs > 2 ** 31 - 1) throw validation(`--every ${req.every} is too long: at most 24 days`, "use --cron for monthly schedules");
    return { everyMs, cron: null };
  }
  const cron = (req.cron ?? "").trim();
  try {
    CronExpressionParser.parse(cron, { tz: "UTC" });
  } catch (err) {
    throw validation(`--cron '${cron}' is not a cron pattern: ${(err as Error).message}`, 'five fields "minute hour day month weekday", e.g. --cron "0 3 * * *" (03:00 UTC daily)');
  }
  return { everyMs: null, cron };
}

/** When a schedule last should have fired before `now` (null: not yet due since it was set). */
function lastDue(s: BackupSchedule, now: Date): Date | null {
  const since = s.lastRunAt ?? s.createdAt;
  if (s.everyMs !== null) {
    const due = new Date(since.getTime() + s.everyMs);
    return due.getTime() + s.everyMs / 2 < now.getTime() ? due : null;
  }
  const prev = CronExpressionParser.parse(s.cron ?? "", { tz: "UTC", currentDate: now }).prev().toDate();
  return prev.getTime() > since.getTime() + 60_000 ? prev : null;
}

/**
 * Backup schedules: a row per VM in Postgres (the truth) and a BullMQ job scheduler per row in
 * Redis, rebuilt from the rows at start and on every maintenance pass, so schedules survive
 * restarts of the API, the workers and an emptied Redis. Each fire submits a `vm.backup` job like
 * `iaas vm backup` does; a fire that cannot (VM busy, host offline) and a run Redis lost are
 * recorded as failed `backup.missed` jobs, so `iaas job list` shows them.
 */
export class BackupScheduler {
  private readonly queue: Queue;
  private worker: Worker | null = null;

  constructor(
    private readonly db: PrismaClient,
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly backups: BackupService,
    private readonly log: Logger,
    /** For the consumer (a blocking connection that retries forever). */
    private readonly consumerConnection: Redis = connection,
  ) {
    this.queue = new Queue(SCHEDULE_QUEUE, { connection, prefix });
  }

  async set(ref: string, req: BackupScheduleRequest): Promise<{ schedule: BackupSchedule; vmName: string; next: Date | null }> {
    const timing = scheduleTiming(req);
    const vm = await findVm(this.db, ref);
    const data = { ...timing, keepLast: req.keepLast, incremental: req.incremental };
    const schedule = await this.db.backupSchedule.upsert({ where: { vmId: vm.id }, create: { vmId: vm.id, ...data }, update: data });
    const next = await this.install(schedule).catch((err: unknown) => {
      // Kept in Postgres: the next maintenance pass installs it once Redis answers.
      this.log.warn({ err, vmId: vm.id }, "could not install the backup schedule in Redis yet");
      return null;
    });
    return { schedule, vmName: vm.name, next };
  }

  async show(ref: string): Promise<{ schedule: BackupSchedule; vmName: string; next: Date | null }> {
    const vm = await findVm(this.db, ref);
    const schedule = await this.db.backupSchedule.findUnique({ where: { vmId: vm.id } });
    if (!schedule) {
      throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no backup schedule`, { hint: `set one: \`iaas vm backup-schedule set ${vm.name} --every 24h --keep-last 7\`` });
    }
    return { schedule, vmName: vm.name, next: await this.nextRun(vm.id) };
  }

  async remove(ref: string): Promise<void> {
    const vm = await findVm(this.db, ref);
    const { count } = await this.db.backupSchedule.deleteMany({ where: { vmId: vm.id } });
    if (count === 0) throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no backup schedule`, { hint: "nothing to remove" });
    // A scheduler left behind (Redis down now) is removed by reconcile: its fires find no row.
    await this.queue.removeJobScheduler(schedulerId(vm.id)).catch((err: unknown) => this.log.warn({ err, vmId: vm.id }, "could not remove the job scheduler yet"));
  }

  private async nextRun(vmId: string): Promise<Date | null> {
    const found = await this.queue.getJobScheduler(schedulerId(vmId)).catch(() => undefined);
    return found?.next ? new Date(found.next) : null;
  }

  private async install(s: BackupSchedule): Promise<Date | null> {
    const repeat = s.everyMs !== null ? { every: s.everyMs } : { pattern: s.cron ?? "", tz: "UTC" };
    const next = await this.queue.upsertJobScheduler(schedulerId(s.vmId), repeat, {
      name: "backup",
      data: { vmId: s.vmId },
      opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
    });
    return next.timestamp && next.opts.delay !== undefined ? new Date(next.timestamp + next.opts.delay) : await this.nextRun(s.vmId);
  }

  /** Makes Redis' schedulers match the rows: installs missing or changed ones, removes orphans, records runs Redis lost. */
  async reconcile(now = new Date()): Promise<void> {
    const [rows, installed] = await Promise.all([this.db.backupSchedule.findMany({ include: { vm: { select: { name: true, hostId: true, projectId: true } } } }), this.queue.getJobSchedulers(0, -1)]);
    const byId = new Map(installed.map((s) => [s.key, s]));
    for (const row of rows) {
      const found = byId.get(schedulerId(row.vmId));
      byId.delete(schedulerId(row.vmId));
      const same = found && (row.everyMs !== null ? found.every === row.everyMs : found.pattern === row.cron);
      if (same) continue;
      if (!found) {
        const due = lastDue(row, now);
        if (due) await this.recordMissed(row, row.vm, due, new IaasError("SERVICE_UNAVAILABLE", `the scheduled backup due at ${due.toISOString()} did not run: its schedule was not in Redis`, { hint: "it was reinstalled; the next run is on time" }));
      }
      await this.install(row);
    }
    for (const orphan of byId.keys()) if (orphan.startsWith("backup-")) await this.queue.removeJobScheduler(orphan);
  }

  /** Starts taking fires (any number of API processes may: each fire goes to one). */
  start(): void {
    this.worker = new Worker(SCHEDULE_QUEUE, (job) => this.fire(job), { connection: this.consumerConnection, prefix: this.prefix, concurrency: 1 });
    this.worker.on("error", (err) => this.log.warn({ err }, "backup schedule worker error"));
  }

  private async fire(job: QueueJob): Promise<void> {
    const vmId = String((job.data as { vmId?: unknown }).vmId ?? "");
    const row = await this.db.backupSchedule.findUnique({ where: { vmId }, include: { vm: { select: { name: true, hostId: true, projectId: true } } } });
    if (!row) {
      await this.queue.removeJobScheduler(schedulerId(vmId));
      return;
    }
    const req = { incremental: row.incremental, keepLast: row.keepLast, scheduleId: row.id };
    // One backup per fire, even when BullMQ delivers the fire twice.
    const meta = { idempotencyKey: `schedule:${job.id ?? randomUUID()}`, hash: requestHash("SCHEDULE", vmId, req) };
    // The backup is the schedule's doing, in the VM's project.
    const scope = {
      auth: { tokenId: null, tokenName: "schedule", role: "operator" as const, projectId: row.vm.projectId },
      projectId: row.vm.projectId,
      projectName: "",
      requestId: null,
      sourceAddress: null,
      userAgent: null,
    };
    try {
      const submitted = await runInScope(scope, () => this.backups.backup(vmId, req, meta));
      await this.db.backupSchedule.updateMany({ where: { id: row.id }, data: { lastRunAt: new Date(), lastJobId: submitted.job.id } });
    } catch (err) {
      if (!(err instanceof IaasError)) throw err;
      const jobId = await this.recordMissed(row, row.vm, new Date(job.timestamp), err);
      await this.db.backupSchedule.updateMany({ where: { id: row.id }, data: { lastRunAt: new Date(), lastJobId: jobId } });
    }
  }

  private async recordMissed(row: BackupSchedule, vm: { name: string; hostId: string; projectId: string }, dueAt: Date, error: IaasError): Promise<string> {
    const jobId = randomUUID();
    await this.db.$transaction(async (tx) => {
      await createJobRow(tx, jobId, { type: "backup.missed", payload: { vmId: row.vmId, scheduleId: row.id, dueAt: dueAt.toISOString() }, hostId: vm.hostId, vmId: row.vmId, targetName: vm.name, projectId: vm.projectId }, { actor: { name: "schedule", tokenId: null, requestId: null } });
      await finishJobIn(tx, jobId, { state: "failed", error: { code: error.code, message: `scheduled backup not taken: ${error.message}`, hint: error.hint } });
    });
    this.log.warn({ vmId: row.vmId, jobId, code: error.code }, "scheduled backup missed");
    return jobId;
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
