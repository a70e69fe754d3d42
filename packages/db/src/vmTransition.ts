import { canTransitionVm, IaasError, vmStatesInto, type JobError, type VmState } from "@iaas/contracts";
import type { Vm } from "./generated/prisma/client.js";
import type { Db } from "./tx.js";

/** A state change of one VM, and the facts recorded with it. */
export interface VmTransition {
  to: VmState;
  /**
   * The job that must hold the VM for the change to apply (`Vm.lockJobId`), or null for writers
   * that act only on VMs no job holds (the monitor, the sweeper after it released the lock).
   */
  lock: string | null;
  /** Only from these states (default: every state the table allows into `to`). */
  from?: readonly VmState[];
  pid?: number | null;
  accelerator?: string | null;
  /** An error to record on the VM, or null to clear it; left as is when undefined. */
  error?: JobError | null;
}

/**
 * The one way a VM's state changes: a fenced conditional update that applies only from a state
 * the transition table (`VM_TRANSITIONS`) allows into `to` and only while `lock` holds the VM.
 * Returns the state it moved from. Throws when the change cannot apply: NOT_FOUND (the row is
 * gone), VM_BUSY (another job holds the VM: this writer lost its lock, e.g. to the sweeper), or a
 * plain Error for a transition the table forbids (a bug).
 */
export async function transitionVm(db: Db, vmId: string, change: VmTransition): Promise<VmState> {
  const allowed = vmStatesInto(change.to).filter((s) => !change.from || change.from.includes(s));
  const setPid = change.pid !== undefined;
  const setAccel = change.accelerator !== undefined;
  const setError = change.error !== undefined;
  const error = change.error ?? null;
  // One statement: the old state comes back from the row the update matched and locked.
  const rows = await db.$queryRaw<{ from: VmState }[]>`
    UPDATE "Vm" AS v SET
      "state" = ${change.to}::"VmState",
      "pid" = CASE WHEN ${setPid} THEN ${change.pid ?? null}::int ELSE v."pid" END,
      "accelerator" = CASE WHEN ${setAccel} THEN ${change.accelerator ?? null}::text ELSE v."accelerator" END,
      "errorCode" = CASE WHEN ${setError} THEN ${error?.code ?? null}::text ELSE v."errorCode" END,
      "errorMessage" = CASE WHEN ${setError} THEN ${error?.message ?? null}::text ELSE v."errorMessage" END,
      "errorHint" = CASE WHEN ${setError} THEN ${error?.hint ?? null}::text ELSE v."errorHint" END,
      "updatedAt" = now()
    FROM (SELECT "id", "state" FROM "Vm" WHERE "id" = ${vmId}::uuid FOR UPDATE) AS old
    WHERE v."id" = old."id"
      AND old."state"::text = ANY(${allowed}::text[])
      AND v."lockJobId" IS NOT DISTINCT FROM ${change.lock}::uuid
    RETURNING old."state"::text AS "from"`;
  const from = rows[0]?.from;
  if (from === undefined) throw await refusal(db, vmId, change);
  return from;
}

async function refusal(db: Db, vmId: string, change: VmTransition): Promise<Error> {
  const vm: Pick<Vm, "name" | "state" | "lockJobId"> | null = await db.vm.findUnique({ where: { id: vmId }, select: { name: true, state: true, lockJobId: true } });
  if (!vm) return new IaasError("NOT_FOUND", `VM ${vmId} no longer exists`, { hint: "run `iaas vm list`" });
  if (vm.lockJobId !== change.lock) {
    return new IaasError("VM_BUSY", `VM '${vm.name}' is not held by ${change.lock ? `job ${change.lock}` : "no job"} any more (held by ${vm.lockJobId ? `job ${vm.lockJobId}` : "no job"}); its state stays ${vm.state}`, {
      hint: "the job lost the VM (it ran past its timeout, or its worker was replaced); look at `iaas job list --vm " + vm.name + "`",
      details: vm.lockJobId ? { jobId: vm.lockJobId } : undefined,
    });
  }
  if (!canTransitionVm(vm.state, change.to)) return new Error(`illegal VM transition ${vm.state} → ${change.to} for VM '${vm.name}' (see VM_TRANSITIONS)`);
  return new IaasError("INVALID_STATE", `VM '${vm.name}' is ${vm.state}, not ${change.from?.join(" or ") ?? "in a state that moves to " + change.to}`, { hint: `look at it with \`iaas vm show ${vm.name}\`` });
}
