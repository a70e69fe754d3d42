import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Redis } from "ioredis";
import { consoleStreamKey, IaasError } from "@iaas/contracts";
import { createJobRow, finishJobIn, isUniqueViolation, type Job, type PrismaClient } from "@iaas/db";
import { currentScope } from "../auth/scope.js";
import { formatSilence, hostAge, hostStateOf, type HostThresholds } from "./hostLiveness.js";
import type { Submitted } from "./JobSubmitter.js";
import { findVm } from "./resolve.js";
import type { RequestMeta } from "./VmService.js";
import { releaseDeadJobs } from "./VmMigrationService.js";

/**
 * `iaas vm delete NAME --force`: removes the records of a VM whose host is lost (its row, with its
 * NICs, port forwards, snapshots and backup schedule; its addresses and MACs become free) at once,
 * in the API: no worker can do it. The unfinished jobs of the VM on that host end (cancelled or
 * failed with HOST_LOST), and the delete is recorded as a `vm.delete` job (`force: true`) written
 * and finished in the same transaction, so `iaas job list` shows it. The VM's files stay on the
 * lost host until its worker returns: its OrphanCleaner removes them then (the row is gone).
 */
export class VmForceDelete {
  constructor(
    private readonly db: PrismaClient,
    private readonly redis: Redis,
    private readonly queuePrefix: string,
    private readonly hosts: HostThresholds,
    private readonly log: Logger,
  ) {}

  async delete(ref: string, meta: RequestMeta): Promise<Submitted<null>> {
    const replay = await this.replay(meta);
    if (replay) return replay;
    let job: Job;
    let vmId: string;
    try {
      ({ job, vmId } = await this.db.$transaction(async (tx) => {
        const found = await findVm(tx, ref);
        // The row is locked for the rest of the transaction: a submit that raced it finds it gone.
        await tx.$queryRaw`SELECT "id" FROM "Vm" WHERE "id" = ${found.id}::uuid FOR UPDATE`;
        const vm = await tx.vm.findUniqueOrThrow({ where: { id: found.id } });
        const age = await hostAge(tx, vm.hostId);
        const state = age === null ? "lost" : hostStateOf(age, this.hosts);
        if (state === "online") {
          throw new IaasError("INVALID_STATE", `VM '${vm.name}' is on host '${vm.hostId}', which is online: --force is only for a VM whose host is lost`, {
            hint: `delete it normally: \`iaas vm delete ${vm.name}\``,
          });
        }
        if (state === "offline") {
          throw new IaasError("HOST_OFFLINE", `VM '${vm.name}' is on host '${vm.hostId}', which is offline (no heartbeat for ${formatSilence(age ?? 0)}) but not lost yet (after ${formatSilence(this.hosts.lostAfterSeconds)})`, {
            hint: `bring its worker back and delete normally (\`iaas vm delete ${vm.name}\`), or wait until the host counts as lost (IAAS_HOST_LOST_SECONDS) and retry`,
          });
        }
        const ended = await releaseDeadJobs(tx, vm, `VM '${vm.name}' was deleted with --force`);
        const jobId = randomUUID();
        const scope = currentScope();
        const actor = scope ? { name: scope.auth.tokenName, tokenId: scope.auth.tokenId, requestId: scope.requestId } : { name: "system", tokenId: null, requestId: null };
        await createJobRow(
          tx,
          jobId,
          { type: "vm.delete", payload: { vmId: vm.id, force: true }, hostId: vm.hostId, vmId: vm.id, imageId: vm.imageId, targetName: vm.name, projectId: vm.projectId },
          { idempotencyKey: meta.idempotencyKey, hash: meta.hash, actor },
        );
        // NICs (their addresses and MACs), port forwards, snapshots and the backup schedule go with the row.
        await tx.vm.delete({ where: { id: vm.id } });
        const message =
          `VM '${vm.name}' removed from the records without its host '${vm.hostId}' (lost: no heartbeat for ${formatSilence(age ?? 0)})` +
          `${ended.length > 0 ? `; its unfinished jobs ${ended.join(", ")} ended` : ""}; its files there are removed when that host's worker comes back`;
        await finishJobIn(tx, jobId, { state: "succeeded", result: { vmId: vm.id, deleted: true }, message });
        return { job: await tx.job.findUniqueOrThrow({ where: { id: jobId } }), vmId: vm.id };
      }));
    } catch (err) {
      if (meta.idempotencyKey && isUniqueViolation(err, "idempotencyKey")) {
        const raced = await this.replay(meta);
        if (raced) return raced;
      }
      throw err;
    }
    // The console stream the API served for it (the worker that fed it is gone).
    await this.redis.del(consoleStreamKey(this.queuePrefix, vmId)).catch((err: unknown) => {
      this.log.warn({ err, vmId }, "could not remove the console stream of a force-deleted VM; it stays in Redis until removed by hand");
    });
    return { job, replayed: false, extra: null };
  }

  /** A request with an Idempotency-Key seen before answers the first job (the same request) or 409. */
  private async replay(meta: RequestMeta): Promise<Submitted<null> | null> {
    if (!meta.idempotencyKey) return null;
    const existing = await this.db.job.findUnique({ where: { idempotencyKey: meta.idempotencyKey } });
    if (!existing) return null;
    if (existing.requestHash !== meta.hash) {
      throw new IaasError("IDEMPOTENCY_KEY_REUSED", `Idempotency-Key '${meta.idempotencyKey}' was already used for a different request (job ${existing.id})`, {
        hint: "use a new Idempotency-Key for a new request",
        details: { jobId: existing.id },
      });
    }
    return { job: existing, replayed: true, extra: null };
  }
}
