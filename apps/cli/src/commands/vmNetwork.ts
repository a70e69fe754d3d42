import type { Command } from "commander";
import type { NicRequest } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import { forwardLabel, nicTable, portTable } from "../output/networkView.js";
import type { ContextFactory } from "./CommandContext.js";
import { reportAcceptedJob } from "./jobOutcome.js";
import { ipv4, NIC_SPEC_HELP, parseNicSpec, parsePortRef, parsePortSpec, type PortRef, type PortSpec } from "./networkSpecs.js";
import { intBetween } from "./optionParsers.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

const WAIT_HELP = "follow the job until it finishes (bounded by --timeout)";

const PORT_HELP = `
A forward makes a port of the VM's host lead to a port of the guest (on one of its NICs).
HOST_PORT:GUEST_PORT[/tcp|udp]: ports are 1-65535; the protocol defaults to tcp.

Examples:
  iaas vm port add web1 2222:22 --wait       then: iaas vm ssh web1
  iaas vm port add web1 8080:80 --address 127.0.0.1
  iaas vm port add dns1 5353:53/udp --nic 1
`;

const NIC_HELP = `
The VM must be stopped. NICs are numbered from 0 in the order they were added.

Examples:
  iaas vm nic add web1 --network backend --wait
  iaas vm nic add web1 --network backend,ip=10.20.0.10,mac=52:54:00:aa:bb:cc
  iaas vm nic remove web1 --network backend --wait
  iaas vm nic remove web1 --index 1
`;

interface NicRemoveOptions {
  network?: string;
  index?: number;
  wait?: boolean;
}

interface PortAddOptions {
  address?: string;
  nic?: number;
  wait?: boolean;
}

/** `iaas vm ip`, `iaas vm nic add|remove`, `iaas vm port add|list|remove`. */
export function registerVmNetworkCommands(vm: Command, ctxOf: ContextFactory): void {
  vm.command("ip")
    .description("show the VM's NICs: network, MAC, assigned IP, DHCP lease and port forwards (-o json: the nics array)")
    .argument("<name>", "VM name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getVm(name);
      if (ctx.out.json) {
        ctx.out.printJson(found.nics);
        return;
      }
      if (found.nics.length > 0) ctx.out.line(nicTable(found.nics, ctx.now()));
      else if (!found.userModeNetworking) ctx.out.line(`vm ${found.name} has no NIC; add one with: iaas vm nic add ${found.name} --network default`);
      if (found.userModeNetworking) {
        ctx.out.line(`vm ${found.name} uses user-mode networking (its host has no bridge support): reach it through port forwards (iaas vm port list ${found.name})`);
      }
    });

  const nic = vm.command("nic").description("add or remove a stopped VM's network interfaces");

  nic
    .command("add")
    .description("add a NIC on a network to a stopped VM")
    .argument("<name>", "VM name or id")
    .requiredOption("--network <spec>", `the NIC: ${NIC_SPEC_HELP}`, parseNicSpec)
    .option("--wait", WAIT_HELP)
    .addHelpText("after", NIC_HELP)
    .action(async (name: string, opts: { network: NicRequest; wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.addNic(name, opts.network), opts.wait === true);
    });

  nic
    .command("remove")
    .alias("rm")
    .description("remove a NIC (named by its network or its index) from a stopped VM; its address is released")
    .argument("<name>", "VM name or id")
    .option("--network <network>", "the NIC on this network (name or id)")
    .option("--index <n>", "the NIC with this index (0-15, as `iaas vm ip` shows)", intBetween(0, 15))
    .option("--wait", WAIT_HELP)
    .addHelpText("after", NIC_HELP)
    .action(async (name: string, opts: NicRemoveOptions, command: Command) => {
      const ctx = ctxOf(command);
      if ((opts.network === undefined) === (opts.index === undefined)) {
        throw usageError("give the NIC to remove with either --network NET or --index N", `see the VM's NICs with: iaas vm ip ${name}`);
      }
      const which = opts.network ?? String(opts.index);
      await reportAcceptedJob(ctx, await ctx.client.removeNic(name, which), opts.wait === true);
    });

  const port = vm.command("port").description("forward ports of the VM's host to the VM");

  port
    .command("add")
    .description("forward a port of the VM's host to a port of the guest")
    .argument("<name>", "VM name or id")
    .argument("<ports>", "HOST_PORT:GUEST_PORT[/tcp|udp], e.g. 8080:80 or 5353:53/udp", parsePortSpec)
    .option("--address <ip>", "listen on this address of the host only (default: every address)", ipv4)
    .option("--nic <n>", "forward to this NIC of the VM (0-15; default 0)", intBetween(0, 15))
    .option("--wait", WAIT_HELP)
    .addHelpText("after", PORT_HELP)
    .action(async (name: string, spec: PortSpec, opts: PortAddOptions, command: Command) => {
      const ctx = ctxOf(command);
      const accepted = await ctx.client.addPort(name, { ...spec, address: opts.address, nic: opts.nic });
      const forward = accepted.forward;
      if (!ctx.out.json && forward !== null && forward !== undefined) {
        ctx.out.line(`port forward ${forwardLabel(forward)} to vm ${accepted.vm?.name ?? name} nic ${forward.nicIndex}`);
      }
      await reportAcceptedJob(ctx, accepted, opts.wait === true);
    });

  addPagingOptions(port.command("list").alias("ls").description("list the VM's port forwards ('*': every address of the host)"), "port forwards")
    .argument("<name>", "VM name or id")
    .action(async (name: string, opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.ports(name), pagingOf(opts));
      printPage(ctx, page, portTable);
    });

  port
    .command("remove")
    .alias("rm")
    .description("remove a port forward")
    .argument("<name>", "VM name or id")
    .argument("<port>", "HOST_PORT[/tcp|udp], e.g. 8080 or 5353/udp", parsePortRef)
    .option("--wait", WAIT_HELP)
    .action(async (name: string, ref: PortRef, opts: { wait?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      await reportAcceptedJob(ctx, await ctx.client.removePort(name, ref.hostPort, ref.protocol), opts.wait === true);
    });
}
