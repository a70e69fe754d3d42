import { IaasError, type VmCloneRequest } from "@iaas/contracts";
import { enforceQuota } from "./ProjectService.js";
import { isUniqueViolation, type Host, type Network, type Prisma, type PrismaClient, type Vm } from "@iaas/db";
import { hostNetworkOf } from "./dto.js";
import { lockPlacement, requireHostRoom } from "./hostCapacity.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { allocateNic, networkReasons, resolveNicRequests } from "./nicAllocation.js";
import { requireUsableImage } from "./imageUsable.js";
import { findVm } from "./resolve.js";
import { findSnapshot } from "./SnapshotService.js";
import { lockVm, quotaDemand, requireHostOnline, type RequestMeta } from "./VmService.js";
import { hostAge, type HostThresholds } from "./hostLiveness.js";

/**
 * `vm clone`: a new VM (on the source's host, or another one through the shared store) whose disk is a new overlay on the same image holding
 * the source's data (a stopped source as it is, or one of its snapshots), with new MACs, addresses
 * and cloud-init instance-id. The job holds both VMs while the source's disk is read.
 */
export class VmCloneService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  async clone(ref: string, req: VmCloneRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      await lockPlacement(tx);
      const src = await lockVm(tx, await findVm(tx, ref), jobId);
      if (src.state !== "stopped" && src.state !== "running") {
        throw new IaasError("INVALID_STATE", `cannot clone VM '${src.name}': it is ${src.state}`, { hint: `wait for it: \`iaas vm show ${src.name}\`` });
      }
      if (req.snapshot === undefined && src.state === "running") {
        throw new IaasError("INVALID_STATE", `VM '${src.name}' is running: its disk changes while it would be copied`, {
          hint: `stop it first, or clone one of its snapshots: \`iaas vm clone ${src.name} ${req.name} --snapshot SNAP\``,
        });
      }
      if (req.snapshot !== undefined) {
        const snap = await findSnapshot(tx, src, req.snapshot);
        if (snap.state !== "ready") throw new IaasError("INVALID_STATE", `snapshot '${snap.name}' is ${snap.state}`, { hint: "wait for its job to finish" });
      }
      await requireHostOnline(tx, src, "clone", this.hosts);
      // The clone's disk is an overlay on the source's image.
      await requireUsableImage(tx, src.imageId, `clone VM '${src.name}'`);
      const nics = await tx.nic.findMany({ where: { vmId: src.id }, include: { network: true }, orderBy: { index: "asc" } });
      const host = req.host === undefined || req.host === src.hostId ? await tx.host.findUniqueOrThrow({ where: { id: src.hostId } }) : await this.otherHost(tx, req.host, nics.map((n) => n.network));
      const demand = { name: req.name, cpus: src.cpus, memoryBytes: Number(src.memoryBytes), diskBytes: Number(src.diskBytes) };
      await enforceQuota(tx, src.projectId, quotaDemand(demand));
      await requireHostRoom(tx, host, demand, this.hosts.offlineAfterSeconds, `clone '${req.name}'`);
      let vm: Vm;
      try {
        vm = await tx.vm.create({
          data: {
            projectId: src.projectId,
            name: req.name,
            state: "creating",
            hostId: host.id,
            imageId: src.imageId,
            cpus: src.cpus,
            memoryBytes: src.memoryBytes,
            diskBytes: src.diskBytes,
            hostname: req.name,
            sshKeys: src.sshKeys,
            userData: src.userData,
            lockJobId: jobId,
          },
        });
      } catch (err) {
        if (isUniqueViolation(err, "name")) {
          throw new IaasError("NAME_TAKEN", `a VM named '${req.name}' already exists`, { hint: "choose another name for the clone" });
        }
        throw err;
      }
      for (const nic of nics) await allocateNic(tx, vm.id, nic.index, nic.network, { network: nic.networkId });
      return {
        spec: {
          type: "vm.clone",
          payload: { vmId: vm.id, sourceVmId: src.id, ...(req.snapshot !== undefined ? { snapshot: req.snapshot } : {}), start: req.start },
          // The source's host reads the disk; for another host it hands over through the shared store.
          hostId: src.hostId,
          vmId: vm.id,
          imageId: vm.imageId,
          targetName: vm.name,
        },
        extra: vm,
      };
    });
  }

  /** The host a clone is asked to go to: online, not drained, and able to join the source's networks. */
  private async otherHost(tx: Prisma.TransactionClient, ref: string, networks: Network[]): Promise<Host> {
    const demands = await resolveNicRequests(tx, networks.map((n) => ({ network: n.id })));
    const host = await tx.host.findFirst({ where: { OR: [{ id: ref }, { name: ref }] } });
    if (!host) throw new IaasError("NOT_FOUND", `host '${ref}' not found`, { hint: "`iaas host list` shows the hosts" });
    if (((await hostAge(tx, host.id)) ?? Infinity) > this.hosts.offlineAfterSeconds) {
      throw new IaasError("HOST_OFFLINE", `host '${ref}' is offline`, { hint: "`iaas host list` shows the hosts that are online" });
    }
    if (host.drained) throw new IaasError("NO_HOST_AVAILABLE", `host '${host.id}' is drained: it takes no new VMs`, { hint: "choose another host, or undrain it" });
    const reasons = networkReasons(host.id, hostNetworkOf(host), demands);
    if (reasons.length > 0) throw new IaasError("NO_HOST_AVAILABLE", `host '${host.id}' cannot take the clone: ${reasons.join(", ")}`, { hint: "choose another host with --host" });
    return host;
  }
}
