import type { Vm } from "@iaas/contracts";
import type { ApiClient } from "../client/ApiClient.js";
import { hostNames, type HostNames } from "../output/vmView.js";

/**
 * Host names for showing `vms`: VMs name their host (`hostName`), so the host list is read only
 * when one does not (an older API, a host row gone). The names are for display: without the list
 * the host shows as a shortened id.
 */
export async function vmHostNames(client: ApiClient, vms: readonly Vm[]): Promise<HostNames> {
  if (vms.every((vm) => vm.hostName !== null)) return new Map();
  return hostNames(await client.listHosts().catch(() => []));
}
