import { createHash } from "node:crypto";
import { invalid } from "./invalid.js";

// Host interface names for our devices. Linux allows 15 bytes; the names are derived from ids with
// sha256, so two UUIDs that share a prefix still get different names.

export const IFNAME_PREFIXES = { bridge: "ibr-", vxlan: "ivx-", tap: "itap-" } as const;

const MANAGED_RE = /^(ibr-|ivx-|itap-)[0-9a-f]{8}$/;

function hash8(id: string, what: string): string {
  if (typeof id !== "string" || id === "") throw invalid(`a ${what} id is needed to name its interface`, `pass the ${what}'s id`);
  return createHash("sha256").update(id, "utf8").digest("hex").slice(0, 8);
}

/** The bridge of a network: "ibr-" + 8 hex digits. */
export function bridgeName(networkId: string): string {
  return IFNAME_PREFIXES.bridge + hash8(networkId, "network");
}

/** The VXLAN device of a network: "ivx-" + 8 hex digits. */
export function vxlanName(networkId: string): string {
  return IFNAME_PREFIXES.vxlan + hash8(networkId, "network");
}

/** The tap device of a NIC: "itap-" + 8 hex digits. */
export function tapName(nicId: string): string {
  return IFNAME_PREFIXES.tap + hash8(nicId, "NIC");
}

/** Whether `name` is an interface name this system creates (and so may delete). */
export function isManagedIfname(name: string): boolean {
  return typeof name === "string" && MANAGED_RE.test(name);
}
