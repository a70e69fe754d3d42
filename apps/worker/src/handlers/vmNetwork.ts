import { IaasError } from "@iaas/contracts";
import { ProcessError } from "@iaas/hypervisor";
import type { HandlerContext, JobHandler } from "../jobs/HandlerContext.js";
import { loadVm, settleVm } from "./vmState.js";

type NetJob = "vm.nic.add" | "vm.nic.remove" | "vm.port.add" | "vm.port.remove";

function gone(id: string): IaasError {
  return new IaasError("NOT_FOUND", `VM ${id} no longer exists`, { hint: "run `iaas vm list`" });
}

/** On a user-mode host, forwards of a running VM change live through QEMU's monitor. */
async function userModeForward(ctx: HandlerContext<NetJob>, vmId: string, command: string): Promise<void> {
  const vm = await ctx.db.vm.findUniqueOrThrow({ where: { id: vmId } });
  if ((await ctx.runtime.runningPid(vm)) === null) return;
  const out = await ctx.runtime.qmp(vm.id, (q) => q.execute("human-monitor-command", { "command-line": command }));
  // The monitor answers errors in words ("Could not set up host forwarding rule …", "invalid …").
  if (typeof out === "string" && /could not|invalid|error|not found|failed/i.test(out)) {
    // An unprivileged QEMU (IAAS_QEMU_USER) cannot bind host ports below 1024.
    const port = Number(/:(\d+)-:/.exec(command)?.[1] ?? NaN);
    const user = ctx.runtime.qemuUser;
    const hint = user !== undefined && port < 1024 ? `QEMU runs as '${user.name}' (IAAS_QEMU_USER), which cannot bind host ports below 1024: pick a port from 1024 up` : "pick another host port";
    throw new IaasError("NETWORK_FAILED", `QEMU refused \`${command}\`: ${out.trim()}`, { hint });
  }
  await ctx.note(`live: ${command}`);
}

export const vmNicAdd: JobHandler<"vm.nic.add"> = {
  async run(ctx) {
    if (!(await loadVm(ctx))) throw gone(ctx.payload.vmId);
    const nic = await ctx.db.nic.findUnique({ where: { id: ctx.payload.nicId }, include: { network: true } });
    if (!nic) throw new IaasError("NOT_FOUND", `NIC ${ctx.payload.nicId} no longer exists`, { hint: "see the VM's NICs with `iaas vm ip`" });
    await ctx.progress({ phase: "network", percent: 50, message: `NIC on '${nic.network.name}': ${nic.mac}, ${nic.ip}` });
    await ctx.network.sync(`add NIC ${nic.id}`);
    return { vmId: nic.vmId, nicId: nic.id, mac: nic.mac, ip: nic.ip };
  },
  settle: settleVm,
  describe: (r) => `NIC added: ${r.mac}, ${r.ip}`,
};

export const vmNicRemove: JobHandler<"vm.nic.remove"> = {
  async run(ctx) {
    await ctx.progress({ phase: "network", percent: 50, message: `removing the NIC on '${ctx.payload.network}'` });
    await ctx.network.sync(`remove NIC ${ctx.payload.nicId}`);
    return { vmId: ctx.payload.vmId, nicId: ctx.payload.nicId };
  },
  settle: settleVm,
  describe: () => "NIC removed",
};

export const vmPortAdd: JobHandler<"vm.port.add"> = {
  async run(ctx) {
    const f = await ctx.db.portForward.findUnique({ where: { id: ctx.payload.forwardId }, include: { nic: { select: { index: true } } } });
    if (!f) throw new IaasError("NOT_FOUND", `port forward ${ctx.payload.forwardId} no longer exists`, { hint: "see the forwards with `iaas vm port list`" });
    await ctx.progress({ phase: "network", percent: 50, message: `${f.address ?? "*"}:${f.hostPort}/${f.protocol} -> guest port ${f.guestPort}` });
    if (ctx.network.mode === "bridge") await ctx.network.sync(`add forward ${f.hostPort}/${f.protocol}`);
    else await userModeForward(ctx, f.vmId, `hostfwd_add net${f.nic.index} ${f.protocol}:${f.address ?? "0.0.0.0"}:${f.hostPort}-:${f.guestPort}`);
    return { vmId: f.vmId, forwardId: f.id };
  },
  settle: settleVm,
  describe: () => "port forward added",
};

export const vmPortRemove: JobHandler<"vm.port.remove"> = {
  async run(ctx) {
    const p = ctx.payload;
    await ctx.progress({ phase: "network", percent: 50, message: `removing the forward of ${p.hostPort}/${p.protocol}` });
    if (ctx.network.mode === "bridge") await ctx.network.sync(`remove forward ${p.hostPort}/${p.protocol}`);
    else await userModeForward(ctx, p.vmId, `hostfwd_remove net${p.nicIndex} ${p.protocol}:${p.address ?? "0.0.0.0"}:${p.hostPort}`);
    return { vmId: p.vmId, forwardId: p.forwardId };
  },
  settle: settleVm,
  describe: () => "port forward removed",
};

/** Connects once from the host's namespace; exit 0 when the TCP handshake completes. */
const PROBE_SCRIPT =
  "const s=require('net').connect({host:process.argv[1],port:Number(process.argv[2]),timeout:2000});" +
  "s.on('connect',()=>{s.destroy();process.exit(0)});s.on('error',()=>process.exit(1));s.on('timeout',()=>process.exit(2));";

export const vmProbe: JobHandler<"vm.probe"> = {
  async run(ctx) {
    const { vmId, port, nic: index, timeoutSeconds } = ctx.payload;
    const nic = await ctx.db.nic.findFirst({ where: { vmId, index } });
    if (!nic) throw new IaasError("NOT_FOUND", `the VM has no NIC ${index}`, { hint: "see its NICs with `iaas vm ip`" });
    if (ctx.network.mode !== "bridge") {
      throw new IaasError("NETWORK_FAILED", "this host gives VMs isolated user-mode NICs: the guest is reachable only through port forwards", {
        hint: "wait with `--for console=REGEX` instead, or run the worker as root with nftables and dnsmasq installed",
      });
    }
    const started = Date.now();
    const deadline = started + timeoutSeconds * 1000;
    await ctx.progress({ phase: "probe", percent: 0, message: `waiting for ${nic.ip}:${port} to answer` });
    for (let attempt = 1; ; attempt++) {
      const r = await ctx.runner
        .run([process.execPath, "-e", PROBE_SCRIPT, nic.ip, String(port)], { timeoutMs: 10_000, signal: ctx.signal, allowExitCodes: [1, 2] })
        .catch((err: unknown) => {
          // On a loaded host the probe process itself can be slow to start: that is "no answer yet", not a failure.
          if (ctx.signal.aborted || !(err instanceof ProcessError) || err.reason !== "timeout") throw err;
          return { code: 2 };
        });
      if (r.code === 0) return { vmId, ip: nic.ip, port, elapsedMs: Date.now() - started };
      if (Date.now() >= deadline) {
        throw new IaasError("WAIT_TIMEOUT", `${nic.ip}:${port} did not answer within ${timeoutSeconds}s`, {
          hint: "check that the guest runs a service on that port (`iaas vm console`) and wait again",
        });
      }
      if (attempt % 5 === 0) {
        const percent = Math.min(99, Math.round(((Date.now() - started) / (timeoutSeconds * 1000)) * 100));
        await ctx.progress({ phase: "probe", percent, message: `still waiting for ${nic.ip}:${port}` });
      }
      await new Promise((r2) => setTimeout(r2, 500));
    }
  },
  describe: (r) => `${r.ip}:${r.port} answered after ${(r.elapsedMs / 1000).toFixed(1)}s`,
};
