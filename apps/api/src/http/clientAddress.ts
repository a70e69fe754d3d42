import type { Request } from "express";
import { BlockList, isIP } from "node:net";
import { addToBlockList } from "./envParsers.js";

/**
 * The client's address: `req.ip` (the socket's peer, or what X-Forwarded-For says when
 * IAAS_TRUST_PROXY trusts the proxy), with IPv4-mapped IPv6 (`::ffff:10.0.0.1`) written as IPv4.
 */
export function clientAddress(req: Request): string {
  const raw = req.ip ?? req.socket.remoteAddress ?? "";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
  return mapped?.[1] ?? raw;
}

/** Matches addresses against a list of addresses and CIDRs (built once). */
export function addressMatcher(items: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const item of items) {
    if (!addToBlockList(list, item)) throw new Error(`not an IP address or CIDR: '${item}'`);
  }
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6");
  };
}
