import { BlockList, isIP } from "node:net";
import { z } from "zod";

/** Splits `a, b,,c` into `["a", "b", "c"]`. */
export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** A comma-separated list whose items `parse` checks and normalizes (it returns an error message or the item). */
function commaList(fallback: string, parse: (item: string) => { ok: string } | { error: string }) {
  return z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const out: string[] = [];
      for (const item of splitList(text)) {
        const r = parse(item);
        if ("error" in r) ctx.addIssue({ code: "custom", message: r.error });
        else out.push(r.ok);
      }
      return out;
    });
}

/** `IAAS_ALLOWED_ORIGINS`: exact browser origins, `https://console.example.com[:port]`. */
export function originList() {
  return commaList("", (item) => {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      return { error: `'${item}' is not an origin; write scheme://host[:port], e.g. https://console.example.com` };
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.pathname !== "/" || url.search !== "" || url.hash !== "" || url.username !== "") {
      return { error: `'${item}' is not an origin; write scheme://host[:port] with no path, e.g. https://console.example.com` };
    }
    return { ok: url.origin };
  });
}

const LABEL = "[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?";
const HOST_NAME = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*\\.?$`);

/** `IAAS_ALLOWED_HOSTS`: host names (`api.example.com`), wildcards (`*.example.com`) or `*` (any). */
export function hostNameList() {
  return commaList("", (item) => {
    const name = item.toLowerCase();
    if (name === "*" || HOST_NAME.test(name)) return { ok: name.replace(/\.$/, "") };
    return { error: `'${item}' is not a host name; write api.example.com, *.example.com or * (any)` };
  });
}

/** Adds an address or CIDR to `list`; false when it is neither. */
export function addToBlockList(list: BlockList, item: string): boolean {
  const [address = "", bits, ...rest] = item.split("/");
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  const type = family === 4 ? "ipv4" : "ipv6";
  if (bits === undefined) {
    list.addAddress(address, type);
    return true;
  }
  const prefix = Number(bits);
  if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) return false;
  list.addSubnet(address, prefix, type);
  return true;
}

/** `IAAS_RATE_LIMIT_EXEMPT`: addresses and CIDRs; default loopback. */
export function addressList(fallback: string) {
  return commaList(fallback, (item) => (addToBlockList(new BlockList(), item) ? { ok: item } : { error: `'${item}' is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1)` }));
}

const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);

/**
 * `IAAS_TRUST_PROXY`, Express's "trust proxy": unset (the socket's address is the client), a
 * number of proxy hops, or the proxies' addresses/CIDRs/`loopback`/`linklocal`/`uniquelocal`.
 * `true` (trust any X-Forwarded-For) is refused: any client could then pick its own address.
 */
export function trustProxySetting() {
  return z
    .string()
    .optional()
    .transform((text, ctx): false | number | string => {
      const value = text?.trim() ?? "";
      if (value === "" || value === "false") return false;
      if (/^\d+$/.test(value)) return Number(value);
      const items = splitList(value);
      const bad = items.filter((i) => !PROXY_NAMES.has(i) && !addToBlockList(new BlockList(), i));
      if (bad.length > 0 || items.length === 0) {
        ctx.addIssue({
          code: "custom",
          message: `'${value}' is not a proxy setting; give the number of proxies in front of the API (e.g. 1), or their addresses/CIDRs or loopback, linklocal, uniquelocal (true is refused: clients could forge their address)`,
        });
        return false;
      }
      return items.join(",");
    });
}

/** Checks that involve several hardening variables. */
export function hardeningEnvChecks(
  env: { IAAS_TLS_CERT?: string | undefined; IAAS_TLS_KEY?: string | undefined; IAAS_HEADERS_TIMEOUT_SECONDS: number; IAAS_REQUEST_TIMEOUT_SECONDS: number },
  ctx: z.RefinementCtx,
): void {
  if ((env.IAAS_TLS_CERT === undefined) !== (env.IAAS_TLS_KEY === undefined)) {
    const missing = env.IAAS_TLS_CERT === undefined ? "IAAS_TLS_CERT" : "IAAS_TLS_KEY";
    ctx.addIssue({ code: "custom", path: [missing], message: "set both IAAS_TLS_CERT and IAAS_TLS_KEY (PEM files) for HTTPS, or neither for plain HTTP" });
  }
  if (env.IAAS_REQUEST_TIMEOUT_SECONDS > 0 && env.IAAS_HEADERS_TIMEOUT_SECONDS > env.IAAS_REQUEST_TIMEOUT_SECONDS) {
    ctx.addIssue({ code: "custom", path: ["IAAS_HEADERS_TIMEOUT_SECONDS"], message: "must not exceed IAAS_REQUEST_TIMEOUT_SECONDS (or set that to 0: no limit)" });
  }
}
