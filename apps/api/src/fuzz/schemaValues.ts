import { z } from "zod";
import type { Rng } from "./prng.js";

/** The part of JSON Schema (as zod's toJSONSchema writes it) the generator reads. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  default?: unknown;
}

/** The JSON Schema of what a zod schema accepts as input (refinements are not represented). */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
}

/** Names of rows the fuzzer's fixtures create, so generated values reach past the 404s. */
const KNOWN = {
  vms: ["fz-vm", "fz-vm2", "fz-run", "fz-run2", "fz-b-vm"],
  images: ["deb", "fz-up"],
  networks: ["default", "fz-net"],
  hosts: ["h1"],
  projects: ["fz-b", "default"],
  snapshots: ["snap1"],
} as const;

/**
 * Realistic string values by property name, the most ordinary first, then odd but well-formed
 * ones; a pattern in the schema keeps only those it accepts.
 */
const STRING_HINTS: Record<string, readonly string[]> = {
  image: [...KNOWN.images, "nothing-here"],
  network: [...KNOWN.networks, "nothing-here"],
  host: [...KNOWN.hosts, "h2", "nothing-here"],
  vm: [...KNOWN.vms, "nothing-here"],
  project: [...KNOWN.projects, "nothing-here"],
  snapshot: [...KNOWN.snapshots, "snap2"],
  expires: ["1h", "30d", "90s", "0s", "1w", "1h30m", "10000w"],
  every: ["30m", "1h", "24h", "90s", "1m", "7d", "0s", "9999999999w"],
  cron: ["0 3 * * *", "*/5 * * * *", "0 0 1 1 *", "* * * * *", "61 25 32 13 8", "@daily"],
  url: ["https://example.com/img.qcow2", "http://127.0.0.1:1/x.raw", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data", "ftp://x/y"],
  path: ["/var/lib/iaas/import/x.qcow2", "/etc/passwd", "relative/x.img", "/tmp/../etc/shadow"],
  subnet: ["10.77.0.0/24", "10.200.0.0/24", "192.168.50.0/28", "172.16.0.0/16", "8.8.8.0/24", "10.0.0.0/8", "300.1.1.1/33", "10.1.2.3/31"],
  ip: ["10.200.0.50", "10.200.0.1", "10.200.0.255", "0.0.0.0", "255.255.255.255", "10.201.0.9"],
  address: ["127.0.0.1", "0.0.0.0", "10.200.0.1", "255.255.255.255"],
  mac: ["52:54:00:12:34:56", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "01:00:5e:00:00:01", "52:54:00:f0:00:01"],
  sha256: ["0".repeat(64), "f".repeat(64), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  dnsDomain: ["iaas.internal", "example.com", "a", "x.y.z"],
  memory: ["512M", "1G", "2G", "1.5G", "0", "1T", "99999T", "1K", "16E", " 64 M "],
  disk: ["1G", "10G", "512M", "0", "1.5T", "99999999T"],
  imageBytes: ["1G", "0", "100T"],
  bwlimit: ["50M", "1K", "0", "1T"],
  userData: ["#cloud-config\nruncmd: [ls]\n", "#!/bin/sh\necho hi\n", ""],
  hostname: ["fz-host", "UPPER", "a.b", "-bad-", ""],
  description: ["a fuzzed thing", "", "ünïcödé ✓"],
  format: ["qcow2", "raw"],
  role: ["viewer", "operator", "admin"],
};

const NAME_LIKE = ["fz-a", "fz-new", "a", "A1", "x".repeat(63), "x".repeat(64), "fz.dot", "fz_under", "Fz-Upper", "fz-"];

/** Realistic integers by property name, the most ordinary first (kept to the schema's bounds). */
const INT_HINTS: Record<string, readonly number[]> = {
  cpus: [1, 2, 4, 64],
  hostPort: [8080, 2222, 22, 1, 65535],
  guestPort: [22, 80, 443, 65535],
  port: [22, 80, 65535],
  mtu: [1450, 576, 1500, 9000],
  keepLast: [1, 7, 1000],
  timeoutSeconds: [0, 1, 60, 3600],
  nic: [0, 1, 15],
  index: [0, 1, 7],
  size: [1024, 1, 1_000_000_000],
  memory: [256, 512, 268_435_456, 1],
  disk: [1_073_741_824, 1, 2 ** 40],
};

/** Strings that are odd anywhere: control characters, unicode tricks, injections, paths. */
export const ODD_STRINGS: readonly string[] = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\u202eevil",
  "😀",
  "\ud800",
  "\ufeff",
  "a\r\nb",
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "${jndi:ldap://x}",
  "../../etc/passwd",
  "%00",
  "\\",
  "C:\\Windows",
  "名前",
  "e\u0301",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "NaN",
  "Infinity",
  "-0",
  "0x10",
  "1e3",
  "١٢",
];

/** Values of every JSON type, for wrong-type mutations. */
export const ODD_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  -1,
  0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 31,
  "",
  "NaN",
  "Infinity",
  "-0",
  [],
  [null],
  {},
  { $gt: "" },
  { __proto__x: 1 },
  ...ODD_STRINGS,
];

function typeOf(schema: JsonSchema): string | undefined {
  return Array.isArray(schema.type) ? schema.type[0] : schema.type;
}

function patternOf(schema: JsonSchema): RegExp | null {
  if (!schema.pattern) return null;
  try {
    return new RegExp(schema.pattern);
  } catch {
    return null;
  }
}

function fitsLength(s: string, schema: JsonSchema): boolean {
  return s.length >= (schema.minLength ?? 0) && s.length <= (schema.maxLength ?? Infinity);
}

function validString(rng: Rng, schema: JsonSchema, hint: string): string {
  const pattern = patternOf(schema);
  const named = STRING_HINTS[hint] ?? [];
  // Half the time the field's most ordinary value (hints start with it), so requests get through.
  const usual = named[0];
  if (usual !== undefined && rng.chance(0.5) && (!pattern || pattern.test(usual)) && fitsLength(usual, schema)) return usual;
  const generic = [`fz-${rng.int(0, 999)}`, `fz-${rng.string("abcdefghijklmnopqrstuvwxyz0123456789", rng.int(1, 20))}`, ...NAME_LIKE];
  const pool = rng.chance(0.8) && named.length > 0 ? [...named, ...generic] : [...generic, ...named, ...Object.values(STRING_HINTS).flat()];
  const fitting = pool.filter((s) => (!pattern || pattern.test(s)) && fitsLength(s, schema));
  // Prefer the hints for the field's name; fall back to any fitting value, then to a bare one.
  const preferred = fitting.filter((s) => named.includes(s));
  if (preferred.length > 0 && rng.chance(0.7)) return rng.pick(preferred);
  if (fitting.length > 0) return rng.pick(fitting);
  return "a".repeat(Math.max(1, schema.minLength ?? 1));
}

function validInteger(rng: Rng, schema: JsonSchema, hint: string): number {
  const min = schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : (schema.minimum ?? -1000);
  const max = schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : (schema.maximum ?? 1_000_000);
  const hinted = (INT_HINTS[hint] ?? []).filter((n) => n >= min && n <= max);
  if (hinted.length > 0 && rng.chance(0.7)) return rng.chance(0.5) ? (hinted[0] ?? min) : rng.pick(hinted);
  return rng.weighted<() => number>([
    [2, () => min],
    [2, () => max],
    [1, () => Math.min(max, min + 1)],
    [5, () => rng.int(min, Math.min(max, min + 1000))],
  ])();
}

/**
 * A value the schema accepts (as far as JSON Schema says: refinements such as "one of every or
 * cron" may still refuse it), preferring realistic values for known property names.
 */
export function validValue(rng: Rng, schema: JsonSchema, hint = "", depth = 0): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.enum && schema.enum.length > 0) return rng.pick(schema.enum);
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches && branches.length > 0) {
    const nonNull = branches.filter((b) => typeOf(b) !== "null");
    return validValue(rng, rng.chance(0.9) && nonNull.length > 0 ? rng.pick(nonNull) : rng.pick(branches), hint, depth + 1);
  }
  switch (typeOf(schema)) {
    case "object": {
      const out: Record<string, unknown> = {};
      const required = new Set(schema.required ?? []);
      for (const [key, prop] of Object.entries(schema.properties ?? {})) {
        if (required.has(key) || rng.chance(0.4)) out[key] = validValue(rng, prop, key, depth + 1);
      }
      const extra = schema.additionalProperties;
      if (typeof extra === "object" && depth < 4) {
        for (let i = rng.int(0, 3); i > 0; i--) {
          const key = validValue(rng, schema.propertyNames ?? { type: "string" }, `${hint}Key`, depth + 1);
          out[String(key)] = validValue(rng, extra, hint, depth + 1);
        }
      }
      return out;
    }
    case "array": {
      const max = Math.min(schema.maxItems ?? 3, 3);
      const count = rng.int(Math.min(schema.minItems ?? 0, max), max);
      return Array.from({ length: count }, () => validValue(rng, schema.items ?? {}, hint, depth + 1));
    }
    case "string":
      return validString(rng, schema, hint);
    case "integer":
      return validInteger(rng, schema, hint);
    case "number":
      return rng.chance(0.5) ? validInteger(rng, schema, hint) : rng.next() * (schema.maximum ?? 1000);
    case "boolean":
      return rng.chance(0.5);
    case "null":
      return null;
    default:
      return rng.pick(ODD_VALUES);
  }
}

/** A string of `length` characters: ASCII, or mixed with multi-byte and odd characters. */
export function hugeString(rng: Rng, length: number): string {
  const unit = rng.pick(["a", "é", "😀", "\u0000", "\\", '"', "x".repeat(1023) + "\n"]);
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/** JSON text `[[[…]]]` or `{"a":{"a":…}}` nested `depth` levels (written as text: JSON.stringify would recurse). */
export function deepJson(depth: number, kind: "array" | "object"): string {
  return kind === "array" ? `${"[".repeat(depth)}${"]".repeat(depth)}` : `${'{"a":'.repeat(depth)}{}${"}".repeat(depth)}`;
}

/** Makes `obj[key] = value` an own, enumerable property even for `__proto__` (JSON.stringify writes it). */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
