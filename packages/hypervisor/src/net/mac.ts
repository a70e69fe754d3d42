import { createHash } from "node:crypto";
import { invalid, shown } from "./invalid.js";

/** The OUI QEMU uses for its NICs; derived MACs stay inside it. */
export const QEMU_MAC_PREFIX = "52:54:00:";

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

function hexPairs(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * A MAC derived from `seed` (e.g. a NIC id): "52:54:00:" + the first 3 bytes of
 * sha256(`${seed}/${attempt}`). Raise `attempt` to get another one after a collision.
 */
export function deriveMac(seed: string, attempt = 0): string {
  if (!Number.isSafeInteger(attempt) || attempt < 0) {
    throw invalid(`MAC derivation attempt ${String(attempt)} is not a non-negative integer`, "pass 0 for the first attempt and count up after a collision");
  }
  return QEMU_MAC_PREFIX + hexPairs(sha256(`${seed}/${attempt}`).subarray(0, 3));
}

const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/;

/**
 * A MAC in the form QEMU and dnsmasq take: six lower-case hex pairs separated by ':' ('-' is
 * accepted too). Throws VALIDATION_FAILED for anything else, a multicast MAC (lowest bit of the
 * first octet set, broadcast included) or the all-zero MAC.
 */
export function normalizeMac(mac: string): string {
  const hint = "leave mac= out to get one allocated, or give a unicast address such as 52:54:00:12:34:56";
  const lower = typeof mac === "string" ? mac.trim().toLowerCase() : "";
  if (!MAC_RE.test(lower)) throw invalid(`${shown(mac)} is not a MAC address (six hex pairs such as 52:54:00:12:34:56)`, hint);
  const normal = lower.replaceAll("-", ":");
  const first = parseInt(normal.slice(0, 2), 16);
  if ((first & 1) === 1) throw invalid(`${normal} is a multicast MAC address and cannot be given to a NIC`, hint, { mac: normal });
  if (normal === "00:00:00:00:00:00") throw invalid("00:00:00:00:00:00 is not a usable MAC address", hint, { mac: normal });
  return normal;
}

/**
 * The MAC of a network's gateway: "0a:" + the first 5 bytes of sha256(networkId). 0x0a marks it
 * locally administered and unicast; it is the same on every host, so a VM keeps its gateway's MAC
 * wherever the gateway answers it.
 */
export function gatewayMac(networkId: string): string {
  if (typeof networkId !== "string" || networkId === "") throw invalid("a network id is needed to derive its gateway MAC", "pass the network's id");
  return "0a:" + hexPairs(sha256(networkId).subarray(0, 5));
}
