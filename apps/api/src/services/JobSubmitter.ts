import { randomUUID, createHash } from "node:crypto";
import { currentProjectId, currentScope } from "../auth/scope.js";
import type { Logger } from "pino";
import { IaasError } from "@iaas/contracts";
import { createJobRow, isUniqueViolation, type Job, type JobActor, type JobSpec, type Prisma, type PrismaClient } from "@iaas/db";
import type { JobQueues } from "./JobQueues.js";

export interface Submitted<E> {
  job: Job;
  /** True when an earlier request with the same Idempotency-Key made this job. */
  replayed: boolean;
  extra: E | null;
}

/** A stable fingerprint of a request, to tell a replay from a different request with the same key. */
export function requestHash(method: string, path: string, body: unknown): string {
  return createHash("sha256").update(`${method} ${path}\n${JSON.stringify(body ?? null)}`).digest("hex");
}

/**
 * Transactional outbox: the job row (and whatever domain rows `build` writes, such as a VM or a
 * lock) commit together, and only then is the job put on its host's queue. If the enqueue fails,
 * the job stays `queued` in Postgres and the relay enqueues it later.
 */
export class JobSubmitter {
  constructor(
    private readonly db: PrismaClient,
    private readonly queues: JobQueues,
    private readonly log: Logger,
    /** Told of every job this submitter creates (not of replays): the jobs-submitted metric. */
    private readonly onSubmitted: (job: Job) => void = () => undefined,
  ) {}

  /**
   * While Redis is unreachable a new job is refused up front (503 QUEUE_UNAVAILABLE, nothing
   * written) unless `deferIfQueueDown`: then it is committed and the relay enqueues it when Redis
   * is back (a finished upload must not lose its import). A replay is answered either way.
   */
  async submit<E>(
    request: { idempotencyKey?: string | undefined; hash: string; actor?: JobActor; deferIfQueueDown?: boolean },
    build: (tx: Prisma.TransactionClient, jobId: string) => Promise<{ spec: JobSpec; extra: E }>,
  ): Promise<Submitted<E>> {
    const replay = await this.findReplay<E>(request);
    if (replay) return replay;
    if (!request.deferIfQueueDown) this.queues.assertAvailable();
    let job: Job;
    let extra: E;
    try {
      ({ job, extra } = await this.db.$transaction(async (tx) => {
        const jobId = randomUUID();
        const built = await build(tx, jobId);
        const scope = currentScope();
        const actor = scope ? { name: scope.auth.tokenName, tokenId: scope.auth.tokenId, requestId: scope.requestId } : { name: "system", tokenId: null, requestId: null };
        const created = await createJobRow(tx, jobId, { projectId: currentProjectId(), ...built.spec }, { ...request, actor: request.actor ?? actor });
        return { job: created, extra: built.extra };
      }));
    } catch (err) {
      if (request.idempotencyKey && isUniqueViolation(err, "idempotencyKey")) {
        const raced = await this.findReplay<E>(request);
        if (raced) return raced;
      }
      throw err;
    }
    this.onSubmitted(job);
    await this.enqueueOrDefer(job);
    return { job, replayed: false, extra };
  }

  async enqueueOrDefer(job: Job): Promise<void> {
    try {
      await this.queues.enqueue(job);
    } catch (err) {
      this.log.warn({ err, jobId: job.id }, "enqueue failed; the outbox relay will retry");
    }
  }

  private async findReplay<E>(request: { idempotencyKey?: string | undefined; hash: string }): Promise<Submitted<E> | null> {
    if (!request.idempotencyKey) return null;
    const existing = await this.db.job.findUnique({ where: { idempotencyKey: request.idempotencyKey } });
    if (!existing) return null;
    if (existing.requestHash !== request.hash) {
      throw new IaasError(
        "IDEMPOTENCY_KEY_REUSED",
        `Idempotency-Key '${request.idempotencyKey}' was already used for a different request (job ${existing.id})`,
        { hint: "use a new Idempotency-Key for a new request", details: { jobId: existing.id } },
      );
    }
    return { job: existing, replayed: true, extra: null };
  }
}

