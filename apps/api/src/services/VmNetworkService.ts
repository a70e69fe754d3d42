import { IaasError, type NicRequest, type PortForwardRequest, type PortProtocol, type VmProbeRequest } from "@iaas/contracts";
import { isUniqueViolation, type Nic, type PortForward, type Prisma, type PrismaClient, type Vm } from "@iaas/db";
import { hostNetworkOf } from "./dto.js";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { allocateNic, networkReasons, resolveNicRequests } from "./nicAllocation.js";
import { findNetwork, findVm } from "./resolve.js";
import { lockVm, requireHostOnline, type RequestMeta } from "./VmService.js";
import type { HostThresholds } from "./hostLiveness.js";

/** NICs, port forwards and port probes of existing VMs; each change is a job on the VM's host. */
export class VmNetworkService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly hosts: HostThresholds,
  ) {}

  /** Adds a NIC to a stopped VM; its address and MAC are allocated here, in the submitting transaction. */
  async addNic(ref: string, req: NicRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      requireStopped(vm, "add a NIC to");
      const host = await requireHostOnline(tx, vm, "add a NIC to", this.hosts);
      const [demand] = await resolveNicRequests(tx, [req]);
      if (!demand) throw new IaasError("VALIDATION_FAILED", "no network given", { hint: "pass --network NET" });
      const reasons = networkReasons(host.id, hostNetworkOf(host), [demand]);
      if (reasons.length > 0) {
        throw new IaasError("NO_HOST_AVAILABLE", `host '${host.id}' of VM '${vm.name}' cannot carry this NIC: ${reasons.join(", ")}`, {
          hint: "use another network, or fix the host (see `iaas host list`)",
        });
      }
      const last = await tx.nic.findFirst({ where: { vmId: vm.id }, orderBy: { index: "desc" }, select: { index: true } });
      const nic = await allocateNic(tx, vm.id, (last?.index ?? -1) + 1, demand.network, req);
      return { spec: { type: "vm.nic.add", payload: { vmId: vm.id, nicId: nic.id }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name }, extra: vm };
    });
  }

  /** Removes a stopped VM's NIC (by network name/id or index): its address and forwards are released. */
  async removeNic(ref: string, nicRef: string, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      requireStopped(vm, "remove a NIC from");
      await requireHostOnline(tx, vm, "remove a NIC from", this.hosts);
      const nic = await findNic(tx, vm, nicRef);
      const network = await tx.network.findUniqueOrThrow({ where: { id: nic.networkId } });
      await tx.nic.delete({ where: { id: nic.id } });
      return {
        spec: { type: "vm.nic.remove", payload: { vmId: vm.id, nicId: nic.id, network: network.name }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: vm,
      };
    });
  }

  /** Forwards a port of the VM's host to a guest port; a port already taken on that host is refused. */
  async addPort(ref: string, req: PortForwardRequest, meta: RequestMeta): Promise<Submitted<{ vm: Vm; forward: PortForward }>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      if (vm.state === "creating" || vm.state === "deleting") {
        throw new IaasError("INVALID_STATE", `cannot add a port forward to VM '${vm.name}': it is ${vm.state}`, { hint: `wait for it: \`iaas vm show ${vm.name}\`` });
      }
      const host = await requireHostOnline(tx, vm, "add a port forward to", this.hosts);
      const nic = await findNic(tx, vm, String(req.nic));
      const network = await tx.network.findUniqueOrThrow({ where: { id: nic.networkId } });
      const info = hostNetworkOf(host);
      if (network.mode !== "nat" && info?.mode !== "user") {
        throw new IaasError("VALIDATION_FAILED", `network '${network.name}' is private: it has no way in or out, so no port forwards`, {
          hint: "forward a port of a NIC on a nat network (--nic N), or add one with `iaas vm nic add`",
        });
      }
      const holder = await tx.portForward.findUnique({
        where: { hostId_protocol_hostPort: { hostId: vm.hostId, protocol: req.protocol, hostPort: req.hostPort } },
        include: { nic: { select: { vm: { select: { name: true } } } } },
      });
      if (holder) {
        throw new IaasError("PORT_TAKEN", `port ${req.hostPort}/${req.protocol} on host '${vm.hostId}' is already forwarded to VM '${holder.nic.vm.name}'`, {
          hint: `pick another host port, or remove that forward: \`iaas vm port remove ${holder.nic.vm.name} ${req.hostPort}/${req.protocol}\``,
        });
      }
      if (info?.listening.some((l) => l.protocol === req.protocol && l.port === req.hostPort)) {
        throw new IaasError("PORT_TAKEN", `port ${req.hostPort}/${req.protocol} on host '${vm.hostId}' is held by a process listening on the host`, {
          hint: "pick another host port",
        });
      }
      let forward: PortForward;
      try {
        forward = await tx.portForward.create({
          data: { nicId: nic.id, vmId: vm.id, hostId: vm.hostId, protocol: req.protocol, address: req.address ?? null, hostPort: req.hostPort, guestPort: req.guestPort },
        });
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new IaasError("PORT_TAKEN", `port ${req.hostPort}/${req.protocol} on host '${vm.hostId}' was just taken`, { hint: "pick another host port" });
        }
        throw err;
      }
      return {
        spec: { type: "vm.port.add", payload: { vmId: vm.id, forwardId: forward.id }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: { vm, forward },
      };
    });
  }

  async removePort(ref: string, hostPort: number, protocol: PortProtocol, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx, jobId) => {
      const vm = await lockVm(tx, await findVm(tx, ref), jobId);
      await requireHostOnline(tx, vm, "remove a port forward of", this.hosts);
      const forward = await tx.portForward.findFirst({ where: { vmId: vm.id, hostPort, protocol }, include: { nic: { select: { index: true } } } });
      if (!forward) {
        throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no forward of port ${hostPort}/${protocol}`, { hint: `see its forwards with \`iaas vm port list ${vm.name}\`` });
      }
      await tx.portForward.delete({ where: { id: forward.id } });
      return {
        spec: { type: "vm.port.remove", payload: { vmId: vm.id, forwardId: forward.id, hostPort, protocol, address: forward.address, nicIndex: forward.nic.index }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: vm,
      };
    });
  }

  /** A job that waits until a guest TCP port answers through the VM's network; it holds no lock. */
  async probe(ref: string, req: VmProbeRequest, meta: RequestMeta): Promise<Submitted<Vm>> {
    return this.submitter.submit(meta, async (tx) => {
      const vm = await findVm(tx, ref);
      if (vm.state !== "running" && vm.state !== "starting") {
        throw new IaasError("INVALID_STATE", `VM '${vm.name}' is ${vm.state}: nothing can answer on its ports`, { hint: `start it: \`iaas vm start ${vm.name}\`` });
      }
      await requireHostOnline(tx, vm, "probe", this.hosts);
      await findNic(tx, vm, String(req.nic));
      return {
        spec: { type: "vm.probe", payload: { vmId: vm.id, port: req.port, nic: req.nic, timeoutSeconds: req.timeoutSeconds }, hostId: vm.hostId, vmId: vm.id, targetName: vm.name },
        extra: vm,
      };
    });
  }
}

function requireStopped(vm: Vm, verb: string): void {
  if (vm.state !== "stopped") {
    throw new IaasError("INVALID_STATE", `cannot ${verb} VM '${vm.name}': it is ${vm.state}, not stopped`, {
      hint: `stop it first: \`iaas vm stop ${vm.name} --wait\``,
    });
  }
}

/** A VM's NIC by index ("0") or by its network's name or id. */
async function findNic(tx: Prisma.TransactionClient, vm: Vm, ref: string): Promise<Nic> {
  const nics = await tx.nic.findMany({ where: { vmId: vm.id }, orderBy: { index: "asc" } });
  let nic: Nic | undefined;
  if (/^\d+$/.test(ref)) nic = nics.find((n) => n.index === Number(ref));
  else {
    const network = await findNetwork(tx, ref);
    nic = nics.find((n) => n.networkId === network.id);
  }
  if (!nic) {
    throw new IaasError("NOT_FOUND", `VM '${vm.name}' has no NIC ${/^\d+$/.test(ref) ? `with index ${ref}` : `on network '${ref}'`}`, {
      hint: `see its NICs with \`iaas vm ip ${vm.name}\``,
    });
  }
  return nic;
}
