import { Option, type Command } from "commander";
import { NetworkMode, NetworkName } from "@iaas/contracts";
import { usageError } from "../CliError.js";
import { networkDetails, networkTable } from "../output/networkView.js";
import type { ContextFactory } from "./CommandContext.js";
import { cidr, dnsDomain } from "./networkSpecs.js";
import { intBetween } from "./optionParsers.js";
import { ListEndpoints } from "../client/ApiClient.js";
import { addPagingOptions, pagingOf, printPage } from "./listPaging.js";

interface NetworkCreateOptions {
  mode?: NetworkMode;
  subnet?: string;
  mtu?: number;
  dnsDomain?: string;
  allowPublicSubnet?: boolean;
}

const CREATE_HELP = `
Modes:
  nat       DHCP and DNS from every host's bridge, a gateway with outbound NAT, port forwards
  private   an L2 segment between the VMs (and the hosts) with no way out

A network spans every host (VXLAN between them). The subnet must not overlap another network or
a route of a host (exit 2, SUBNET_CONFLICT); it must be private (RFC 1918) unless
--allow-public-subnet is given. The default is a free /24 in 10.0.0.0/8.

Examples:
  iaas network create backend --subnet 10.20.0.0/24
  iaas network create lab --mode private --mtu 1400
  iaas vm create db1 --image deb12 --network default --network backend,ip=10.20.0.10
`;

/** `iaas network …` (alias `net`): create, list, show, delete. */
export function registerNetworkCommands(program: Command, ctxOf: ContextFactory): void {
  const network = program.command("network").alias("net").description("create and manage virtual networks (subnets with DHCP, DNS and NAT) for VMs");

  network
    .command("create")
    .description("create a network: a subnet with a gateway on every host, DHCP and DNS (and NAT in nat mode)")
    .argument("<name>", "network name: lower-case letters, digits and '-'")
    .addOption(new Option("--mode <mode>", "nat (the default) or private; see Modes below").choices(NetworkMode.options))
    .option("--subnet <cidr>", "IPv4 subnet, /16 to /29, e.g. 10.20.0.0/24 (default: a free /24 in 10.0.0.0/8)", cidr)
    .option("--mtu <n>", "MTU of the VMs' NICs (576-9000; default 1450: a 1500 underlay minus VXLAN)", intBetween(576, 9000))
    .option("--dns-domain <domain>", "DNS domain of the VMs' names (default iaas.internal)", dnsDomain)
    .option("--allow-public-subnet", "allow a subnet outside 10/8, 172.16/12 and 192.168/16")
    .addHelpText("after", CREATE_HELP)
    .action(async (name: string, opts: NetworkCreateOptions, command: Command) => {
      const ctx = ctxOf(command);
      const checked = NetworkName.safeParse(name);
      if (!checked.success) throw usageError(`invalid network name '${name}': ${checked.error.issues.map((i) => i.message).join("; ")}`);
      const created = await ctx.client.createNetwork({
        name,
        mode: opts.mode,
        subnet: opts.subnet,
        mtu: opts.mtu,
        dnsDomain: opts.dnsDomain,
        allowPublicSubnet: opts.allowPublicSubnet === true ? true : undefined,
      });
      if (ctx.out.json) ctx.out.printJson(created);
      else ctx.out.line(networkDetails(created));
    });

  addPagingOptions(network.command("list").alias("ls").description("list networks: mode, subnet, gateway, MTU, DNS domain and how many VMs are on each"), "networks")
    .action(async (opts: { limit?: number; all?: boolean }, command: Command) => {
      const ctx = ctxOf(command);
      const page = await ctx.client.page(ListEndpoints.networks(), pagingOf(opts));
      printPage(ctx, page, networkTable);
    });

  network
    .command("show")
    .description("show a network and every VM on it with its address")
    .argument("<name>", "network name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      const found = await ctx.client.getNetwork(name);
      if (ctx.out.json) ctx.out.printJson(found);
      else ctx.out.line(networkDetails(found));
    });

  network
    .command("delete")
    .alias("rm")
    .description("delete a network (refused while VMs have a NIC on it: exit 3)")
    .argument("<name>", "network name or id")
    .action(async (name: string, _opts: object, command: Command) => {
      const ctx = ctxOf(command);
      await ctx.client.deleteNetwork(name);
      if (ctx.out.json) ctx.out.printJson({ name, deleted: true });
      else ctx.out.line(`network ${name} deleted`);
    });
}
