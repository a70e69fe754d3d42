import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { IaasError, type VmState } from "@iaas/contracts";
import { createJobRow, finishJobIn, transitionVm, type Vm } from "@iaas/db";
import type { WorkerServices } from "../jobs/HandlerContext.js";

/**
 * Keeps Postgres true to what runs on this host. At start-up it re-adopts the QEMU processes that
 * outlived the previous worker and corrects VMs whose QEMU died; afterwards it notices VMs that
 * powered themselves off (pid gone). VMs held by a job are left to that job. Each correction is
 * recorded as a finished `vm.reconcile` job, so `iaas job list --vm NAME` shows what happened.
 */
export class VmMonitor {
  constructor(
    private readonly services: WorkerServices,
    private readonly log: Logger,
  ) {}

  async pass(startup = false): Promise<void> {
    const { db, runtime, consoles, hostId } = this.services;
    const vms = await db.vm.findMany({ where: { hostId } });
    for (const vm of vms) {
      try {
        const pid = await runtime.runningPid(vm);
        await consoles.pump(vm.id, runtime.files(vm.id).console);
        if (vm.lockJobId !== null) continue;
        await this.correct(vm, pid, startup);
      } catch (err) {
        this.log.warn({ err, vmId: vm.id }, "could not check VM");
      }
    }
  }

  private async correct(vm: Vm, pid: number | null, startup: boolean): Promise<void> {
    if (pid !== null) {
      if (vm.state === "running" && vm.pid === pid) return;
      await this.record(vm, "running", pid, `QEMU pid ${pid} is running${startup ? " (re-adopted after a worker restart)" : ""}; VM was ${vm.state}`);
      return;
    }
    if (vm.state === "stopped" || vm.state === "error") return;
    if (vm.state === "running" || vm.state === "starting" || vm.state === "stopping") {
      const why = startup
        ? `QEMU${vm.pid ? ` (pid ${vm.pid})` : ""} is no longer running after the worker restarted`
        : `QEMU${vm.pid ? ` (pid ${vm.pid})` : ""} exited: the guest powered off or QEMU stopped`;
      await this.record(vm, "stopped", null, `${why}; VM marked stopped`);
      return;
    }
    // creating/deleting with no job holding the VM: the job died; show what is really there.
    const next: VmState = (await this.services.runtime.diskExists(vm.id)) ? "stopped" : "error";
    await this.record(vm, next, null, `VM was left ${vm.state} by a job that did not finish; its disk is ${next === "stopped" ? "present" : "missing"}`);
  }

  private async record(vm: Vm, state: VmState, pid: number | null, reason: string): Promise<void> {
    const { db, hostId } = this.services;
    const changed = await db.$transaction(async (tx) => {
      // Only a VM no job holds, and only from the state this pass saw: a job or another pass that
      // changed it meanwhile wins, and this correction is dropped.
      const moved = await transitionVm(tx, vm.id, { to: state, lock: null, from: [vm.state], pid }).then(
        () => true,
        (err: unknown) => {
          if (err instanceof IaasError) return false;
          throw err;
        },
      );
      if (!moved) return false;
      const jobId = randomUUID();
      await createJobRow(tx, jobId, { type: "vm.reconcile", payload: { vmId: vm.id, reason }, hostId, vmId: vm.id, targetName: vm.name, projectId: vm.projectId }, {});
      await finishJobIn(tx, jobId, { state: "succeeded", result: { vmId: vm.id, state, previousState: vm.state }, message: reason });
      return true;
    });
    if (changed) this.log.info({ vmId: vm.id, from: vm.state, to: state }, reason);
  }
}
