import { gzipSync } from "node:zlib";
import { z } from "zod";
import {
  AuditListQuery,
  BackupListQuery,
  BackupRestoreRequest,
  BackupScheduleRequest,
  BackupVmCreateRequest,
  DEFAULT_PROJECT_ID,
  ExportRequest,
  ImageCreateRequest,
  JobListQuery,
  NetworkCreateRequest,
  NicRequest,
  PortForwardRequest,
  ProjectCreateRequest,
  ProjectQuotaRequest,
  SnapshotCreateRequest,
  SnapshotRestoreRequest,
  TokenCreateRequest,
  VmBackupRequest,
  VmCloneRequest,
  VmCreateRequest,
  VmProbeRequest,
  VmResizeRequest,
  VmSetRequest,
  VmStopRequest,
} from "@iaas/contracts";
import { ROUTE_PERMISSIONS } from "../auth/permissions.js";
import type { Rng } from "./prng.js";
import { deepJson, hugeString, jsonSchemaOf, ODD_STRINGS, ODD_VALUES, setOwn, validValue, type JsonSchema } from "./schemaValues.js";

/** Fixed ids of the fixture rows (fixtures.ts), so cases are the same in every run of a seed. */
const fixtureId = (n: number) => `f0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
export const FIXTURE_IDS = {
  vm: fixtureId(0x01),
  vm2: fixtureId(0x04),
  runningVm: fixtureId(0x02),
  runningVm2: fixtureId(0x05),
  projectVm: fixtureId(0x03),
  queuedJob: fixtureId(0x11),
  doneJob: fixtureId(0x12),
  exportJob: fixtureId(0x13),
  expiredExportJob: fixtureId(0x14),
  backup: fixtureId(0x21),
  export: fixtureId(0x31),
  expiredExport: fixtureId(0x32),
  project: fixtureId(0x41),
  missing: fixtureId(0xff),
} as const;

/** Who a case authenticates as; the tokens themselves are made at run time (fixtures.ts). */
export type AuthAs = "admin" | "viewer" | "operator" | "revoked" | "expired" | "none";
export type FuzzTokens = Record<Exclude<AuthAs, "none">, string>;
/** Token names the fuzzer needs alive: never offered to DELETE /v1/tokens/:name. */
export const FUZZ_TOKEN_NAMES = { admin: "fz-admin", viewer: "fz-viewer", operator: "fz-operator", revoked: "fz-revoked", expired: "fz-expired" } as const;

/** In raw requests, stands for the case's token (the secret is not known when the case is made). */
export const TOKEN_PLACEHOLDER = "@@TOKEN@@";

export type CaseKind = "valid" | "mutated" | "odd-param" | "odd-query" | "path-trick" | "wrong-method" | "odd-header" | "odd-auth" | "raw-http";

export interface FuzzCase {
  index: number;
  kind: CaseKind;
  /** The route table entry it aims at ("METHOD /v1/path/:param"), or what it is for raw requests. */
  route: string;
  /** What the case does, in a few words (mutation, trick), for the report. */
  note: string;
  method: string;
  /** Sent as it is: already percent-encoded, tricks included. */
  path: string;
  auth: AuthAs;
  /** Besides Authorization; duplicates allowed. */
  headers: [string, string][];
  body?: Buffer | undefined;
  /** May stay open until the client leaves (event streams, console follow, long-polls). */
  streaming: boolean;
  /** Malformed HTTP: these bytes (latin1) over a fresh socket instead of a well-formed request. */
  raw?: { bytes: string; halfClose: boolean } | undefined;
}

interface RouteSpec {
  key: string;
  method: string;
  path: string;
  params: string[];
  body?: JsonSchema | undefined;
  query?: JsonSchema | undefined;
}

/** Request bodies by route, from the contracts (PATCH /v1/images/:ref's is written in routes/admin.ts). */
export const BODY_SCHEMAS: Record<string, z.ZodType> = {
  "POST /v1/vms": VmCreateRequest,
  "PATCH /v1/vms/:ref": VmSetRequest,
  "POST /v1/vms/:ref/stop": VmStopRequest,
  "POST /v1/vms/:ref/export": ExportRequest,
  "POST /v1/vms/:ref/nics": NicRequest,
  "POST /v1/vms/:ref/ports": PortForwardRequest,
  "POST /v1/vms/:ref/probe": VmProbeRequest,
  "POST /v1/vms/:ref/clone": VmCloneRequest,
  "POST /v1/vms/:ref/resize": VmResizeRequest,
  "POST /v1/vms/:ref/snapshots": SnapshotCreateRequest,
  "POST /v1/vms/:ref/snapshots/:name/restore": SnapshotRestoreRequest,
  "POST /v1/vms/:ref/backups": VmBackupRequest,
  "PUT /v1/vms/:ref/backup-schedule": BackupScheduleRequest,
  "POST /v1/backups/:id/restore": BackupRestoreRequest,
  "POST /v1/backups/:id/vms": BackupVmCreateRequest,
  "POST /v1/networks": NetworkCreateRequest,
  "POST /v1/images": ImageCreateRequest,
  "PATCH /v1/images/:ref": z.object({ public: z.boolean() }),
  "POST /v1/images/:ref/export": ExportRequest,
  "POST /v1/projects": ProjectCreateRequest,
  "PUT /v1/projects/:ref/quota": ProjectQuotaRequest,
  "POST /v1/tokens": TokenCreateRequest,
};

const PORT_QUERY: JsonSchema = { type: "object", properties: { protocol: { type: "string", enum: ["tcp", "udp"] } } };
/** Query parameters by route: the contracts' query schemas, and the few read by hand. */
export const QUERY_SCHEMAS: Record<string, JsonSchema> = {
  "GET /v1/jobs": jsonSchemaOf(JobListQuery),
  "GET /v1/audit": jsonSchemaOf(AuditListQuery),
  "GET /v1/backups": jsonSchemaOf(BackupListQuery),
  "GET /v1/jobs/:id/wait": { type: "object", properties: { timeout: { type: "integer", minimum: 0, maximum: 1 } } },
  "GET /v1/jobs/:id/events": { type: "object", properties: { after: { type: "integer", minimum: 0, maximum: 5 } } },
  "GET /v1/vms/:ref/console": { type: "object", properties: { follow: { type: "string", enum: ["true", "1", "false"] } } },
  "DELETE /v1/vms/:ref/ports/:hostPort": PORT_QUERY,
};

/** Routes that may hold the response open: event streams, console follow and the job long-poll. */
const STREAMING_ROUTES = new Set(["GET /v1/jobs/:id/events", "GET /v1/vms/:ref/console", "GET /v1/jobs/:id/wait"]);
/** Mounted only for the job benchmark (`enableBenchJobs`), not in the API under test. */
const UNMOUNTED_ROUTES = new Set(["POST /v1/bench/noop"]);

/** Every route of ROUTE_PERMISSIONS (less the unmounted ones) plus the health checks. */
export function routeCatalog(): RouteSpec[] {
  const keys = [...Object.keys(ROUTE_PERMISSIONS).filter((k) => !UNMOUNTED_ROUTES.has(k)), "GET /healthz", "GET /readyz"];
  return keys.map((key) => {
    const [method = "GET", path = "/"] = key.split(" ");
    const schema = BODY_SCHEMAS[key];
    return { key, method, path, params: [...path.matchAll(/:(\w+)/g)].map((m) => m[1] ?? ""), body: schema ? jsonSchemaOf(schema) : undefined, query: QUERY_SCHEMAS[key] };
  });
}

/** Realistic values of a path parameter (names and ids of fixture rows), by resource and name. */
function realisticParams(path: string, param: string): readonly string[] {
  const ids = FIXTURE_IDS;
  switch (`${path.split("/")[2] ?? ""}.${param}`) {
    case "vms.ref":
      return ["fz-vm", "fz-vm", "fz-vm2", "fz-run", "fz-run2", "fz-b-vm", ids.vm, ids.vm.toUpperCase(), ids.vm2, ids.runningVm, ids.runningVm2, ids.projectVm, "nothing-here"];
    case "vms.nic":
      return ["0", "1", "default", "fz-net", "15"];
    case "vms.hostPort":
      return ["2222", "8080", "22"];
    case "vms.name":
      return ["snap1", "snap1", "snap2"];
    case "images.ref":
      // The upload routes need the image that waits for its content.
      return path.endsWith("/file") ? ["fz-up", "fz-up", "deb", "nothing-here"] : ["deb", "deb", "fz-up", "nothing-here"];
    case "networks.ref":
      return ["default", "fz-net", "fz-net", "nothing-here"];
    case "backups.id":
      return [ids.backup, ids.backup, ids.backup.slice(0, 8), ids.missing];
    case "exports.id":
      return [ids.export, ids.export, ids.expiredExport, ids.missing];
    case "jobs.id":
      return [ids.queuedJob, ids.doneJob, ids.doneJob, ids.exportJob, ids.missing];
    case "hosts.id":
      return ["h1", "h1", "h2"];
    case "projects.ref":
      return ["fz-b", "default", DEFAULT_PROJECT_ID, "fz-empty", "nothing-here"];
    case "tokens.name":
      return ["fz-temp", FUZZ_TOKEN_NAMES.revoked, FUZZ_TOKEN_NAMES.expired, "nothing-here"];
    default:
      return ["nothing-here"];
  }
}

/** Path segments (already encoded) that are odd anywhere: bad escapes, bad UTF-8, traversal, NUL. */
const ODD_SEGMENTS: readonly string[] = [
  "%00",
  "a%00b",
  "%FF",
  "%E0%A4%A",
  "%C0%AF",
  "%ED%A0%80",
  "%",
  "%zz",
  "..",
  "%2e%2e",
  ".",
  "%2F",
  "a%2Fb",
  "..%2F..%2Fetc%2Fpasswd",
  "x".repeat(2000),
  "%F0%9F%98%80",
  "%27%20OR%201%3D1--",
  "%20",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "prototype",
  "0",
  "-1",
  "1e308",
  "NaN",
  "00000000-0000-0000-0000-000000000000",
  "FFFFFFFF-FFFF-4FFF-8FFF-FFFFFFFFFFFF",
  "f0000000-0000-4000-8000-00000000001g",
  "%u0041",
  "%2500",
  "a;b",
  "a,b",
  "*",
  "~",
  "%0d%0aSet-Cookie:%20x=1",
  "%3Cscript%3E",
];

const ODD_QUERIES: readonly string[] = [
  "limit=abc",
  "limit=1e308",
  "limit=-0",
  "limit=0",
  "limit=1001",
  "limit=1.5",
  "limit=%00",
  "limit=1&limit=2",
  "limit[]=1",
  "limit[a]=1",
  "__proto__=x",
  "constructor[prototype][x]=1",
  "timeout=abc",
  "timeout=1e308",
  "timeout=-1",
  "timeout=0",
  "after=abc",
  "after=-5",
  "after=1e308",
  "follow=true",
  "follow=TRUE",
  "protocol=sctp",
  "protocol=",
  "vm=fz-vm",
  "vm=%FF",
  "vm=%E0%A4%A",
  "since=1h",
  "since=abc",
  "since=9999-99-99",
  "since=10000000w",
  "outcome=allowed",
  "outcome=x",
  "state=queued",
  "state=%00",
  "type=vm.start",
  "type=x",
  "image=deb",
  "image=00000000-0000-4000-8000-000000000000",
  "actor=fz-admin",
  "project=fz-b",
  `q=${"x".repeat(6000)}`,
  "a=%",
  "&&&==",
  "=",
];

function encodeSegment(value: string): string {
  return encodeURIComponent(value);
}

function fillPath(rng: Rng, route: RouteSpec, oddParam: boolean): { path: string; note: string } {
  const odd: string[] = [];
  const path = route.path.replace(/:(\w+)/g, (_m, name: string) => {
    if (oddParam && (route.params.length === 1 || rng.chance(0.6))) {
      const value = rng.pick(ODD_SEGMENTS);
      odd.push(`${name}=${value.length > 40 ? `${value.slice(0, 12)}…(${value.length})` : value}`);
      return value;
    }
    return encodeSegment(rng.pick(realisticParams(route.path, name)));
  });
  return { path, note: odd.join(" ") };
}

function queryString(rng: Rng, schema: JsonSchema | undefined): string {
  if (!schema || !rng.chance(0.6)) return "";
  const value = validValue(rng, schema) as Record<string, unknown>;
  const parts = Object.entries(value).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

function pickAuth(rng: Rng): AuthAs {
  return rng.weighted<AuthAs>([
    [80, "admin"],
    [8, "viewer"],
    [8, "operator"],
    [1, "revoked"],
    [1, "expired"],
    [2, "none"],
  ]);
}

function jsonBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

// ---------------------------------------------------------------------------------------------
// Body mutations: each takes a schema-valid object and returns the text to send.

/** A JSON literal JSON.stringify cannot write (it is spliced into the text in place of a string). */
const RAW_NUMBERS = ["1e999", "-1e999", "-0", "1E400", "1e-400", "123456789012345678901234567890", "1.0", "0.1e1", "-9007199254740993"];

interface BodyMutation {
  name: string;
  apply(rng: Rng, body: Record<string, unknown>, schema: JsonSchema): Buffer;
}

const RAW_MARK = "@@RAW@@";

function withRaw(body: Record<string, unknown>, key: string, raw: string): Buffer {
  body[key] = RAW_MARK;
  return Buffer.from(JSON.stringify(body).replace(`"${RAW_MARK}"`, raw), "utf8");
}

const fieldOf = (rng: Rng, body: Record<string, unknown>, schema: JsonSchema): string => {
  const keys = [...new Set([...Object.keys(body), ...Object.keys(schema.properties ?? {})])];
  return keys.length > 0 ? rng.pick(keys) : "name";
};

const BAD_UTF8: readonly Buffer[] = [Buffer.from([0xff]), Buffer.from([0xc0, 0xaf]), Buffer.from([0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0xe2, 0x82])];

const MUTATIONS: readonly BodyMutation[] = [
  {
    name: "drop-required",
    apply: (rng, body, schema) => {
      const key = rng.pick(schema.required && schema.required.length > 0 ? schema.required : Object.keys(body).length > 0 ? Object.keys(body) : ["x"]);
      delete body[key];
      return jsonBody(body);
    },
  },
  {
    name: "wrong-type",
    apply: (rng, body, schema) => {
      for (let i = rng.int(1, 3); i > 0; i--) body[fieldOf(rng, body, schema)] = rng.pick(ODD_VALUES);
      return jsonBody(body);
    },
  },
  {
    name: "odd-string",
    apply: (rng, body, schema) => {
      body[fieldOf(rng, body, schema)] = rng.pick(ODD_STRINGS) + (rng.chance(0.3) ? rng.pick(ODD_STRINGS) : "");
      return jsonBody(body);
    },
  },
  {
    name: "huge-string",
    apply: (rng, body, schema) => {
      body[fieldOf(rng, body, schema)] = hugeString(rng, rng.int(10_000, 300_000));
      return jsonBody(body);
    },
  },
  {
    name: "extra-fields",
    apply: (rng, body) => {
      const keys = ["__proto__", "constructor", "prototype", "", " ", "toString", "hasOwnProperty", "x".repeat(5000), "\u0000", "id", "projectId", "state", "role", "admin"];
      for (let i = rng.int(1, 4); i > 0; i--) setOwn(body, rng.pick(keys), rng.pick<unknown>([...ODD_VALUES, { isAdmin: true, role: "admin" }, { prototype: { polluted: true } }]));
      return jsonBody(body);
    },
  },
  {
    name: "proto-pollution",
    apply: (rng, body) => {
      setOwn(body, "__proto__", { isAdmin: true, role: "admin", polluted: "yes" });
      if (rng.chance(0.5)) setOwn(body, "constructor", { prototype: { polluted: "yes" } });
      return jsonBody(body);
    },
  },
  {
    name: "deep-nesting",
    apply: (rng, body, schema) => withRaw(body, fieldOf(rng, body, schema), deepJson(rng.pick([100, 5_000, 50_000]), rng.pick(["array", "object"] as const))),
  },
  {
    name: "raw-number",
    apply: (rng, body, schema) => withRaw(body, fieldOf(rng, body, schema), rng.pick(RAW_NUMBERS)),
  },
  {
    name: "all-null",
    apply: (_rng, body, schema) => {
      for (const key of Object.keys(schema.properties ?? body)) body[key] = null;
      return jsonBody(body);
    },
  },
  {
    name: "not-an-object",
    apply: (rng, body) => Buffer.from(rng.pick(["null", "1", '"x"', "true", "[]", JSON.stringify([body]), "[[[]]]", "{}", "  {}  "]), "utf8"),
  },
  {
    name: "duplicate-keys",
    apply: (rng, body, schema) => {
      const key = fieldOf(rng, body, schema);
      const text = JSON.stringify(body);
      return Buffer.from(`{${JSON.stringify(key)}:${JSON.stringify(rng.pick(ODD_VALUES))},${text.slice(1)}`, "utf8");
    },
  },
  {
    name: "broken-json",
    apply: (rng, body) => {
      const text = JSON.stringify(body);
      return Buffer.from(
        rng.pick([
          text.slice(0, Math.max(1, rng.int(1, text.length - 1))),
          `${text.slice(0, -1)},}`,
          text.replaceAll('"', "'"),
          `/* c */${text}`,
          `${text}${text}`,
          `\ufeff${text}`,
          `{"a":NaN}`,
          `{"a":undefined}`,
          `{"a":"\\x41"}`,
          `{"a":"\\ud800"}`,
          `{"a":"\\u0000"}`,
          "",
          " ",
          "\n",
        ]),
        "utf8",
      );
    },
  },
  {
    name: "bad-utf8",
    apply: (rng, body) => {
      const text = Buffer.from(JSON.stringify(body), "utf8");
      const at = rng.int(0, text.length);
      return Buffer.concat([text.subarray(0, at), rng.pick(BAD_UTF8), text.subarray(at)]);
    },
  },
  {
    name: "utf16",
    apply: (_rng, body) => Buffer.from(`\ufeff${JSON.stringify(body)}`, "utf16le"),
  },
  {
    name: "over-limit",
    apply: (rng, body) => {
      body["padding"] = "p".repeat(1024 * 1024 + rng.int(1, 4096));
      return jsonBody(body);
    },
  },
];

/** A schema-valid body of the route, with realistic values. */
function validBody(rng: Rng, schema: JsonSchema): Record<string, unknown> {
  const value = validValue(rng, schema);
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** A small body (upload chunks) for the raw image upload. */
function uploadBody(rng: Rng): { body: Buffer; headers: [string, string][]; note: string } {
  const body = rng.bytes(rng.pick([0, 1, 10, 512, 4096]));
  const range = rng.pick<string | null>([null, null, `bytes 0-${Math.max(0, body.length - 1)}/1024`, `bytes */1024`, "bytes 5-2/10", "bytes 0-9/*", "garbage", "bytes 0-99999999999999999999/1", `bytes -1-${body.length}/1024`, "bytes=0-1"]);
  const headers: [string, string][] = [["content-type", rng.pick(["application/octet-stream", "application/json", "text/plain"])]];
  if (range !== null) headers.push(["content-range", range]);
  return { body, headers, note: `upload ${body.length} B${range ? `, Content-Range: ${range}` : ""}` };
}

/** The body for a route in a valid or mutated case. */
function bodyFor(rng: Rng, route: RouteSpec, mutate: boolean): { body?: Buffer; headers: [string, string][]; note: string } {
  if (route.key === "PUT /v1/images/:ref/file") return uploadBody(rng);
  if (route.method === "GET" || route.method === "HEAD") {
    return mutate && rng.chance(0.3) ? { body: jsonBody({ unexpected: true }), headers: [["content-type", "application/json"]], note: "GET with a body" } : { headers: [], note: "" };
  }
  const json: [string, string][] = [["content-type", "application/json"]];
  if (!route.body) {
    // Routes without a body schema: none, {}, or (mutated) something they should ignore or refuse.
    if (!mutate) return rng.chance(0.5) ? { headers: [], note: "" } : { body: jsonBody({}), headers: json, note: "{}" };
    const mutation = rng.pick(MUTATIONS);
    return { body: mutation.apply(rng, { force: rng.chance(0.5) }, { type: "object", properties: { force: { type: "boolean" } } }), headers: json, note: mutation.name };
  }
  const body = validBody(rng, route.body);
  if (!mutate) return { body: jsonBody(body), headers: json, note: "schema-valid" };
  const mutation = rng.pick(MUTATIONS);
  return { body: mutation.apply(rng, body, route.body), headers: json, note: mutation.name };
}

// ---------------------------------------------------------------------------------------------
// Path tricks, wrong methods, odd headers.

const PATH_TRICKS: readonly { name: string; apply: (rng: Rng, path: string) => string }[] = [
  { name: "leading //", apply: (_r, p) => `/${p}` },
  { name: "inner //", apply: (_r, p) => p.replace(/^\/v1\//, "/v1//") },
  { name: "upper case", apply: (_r, p) => p.toUpperCase() },
  { name: "mixed case", apply: (r, p) => [...p].map((c) => (r.chance(0.5) ? c.toUpperCase() : c)).join("") },
  { name: "trailing /", apply: (_r, p) => `${p}/` },
  { name: "trailing //", apply: (_r, p) => `${p}//` },
  { name: "encoded letter", apply: (_r, p) => p.replace("v", "%76") },
  { name: "encoded slash", apply: (r, p) => p.replace(/\/(?=[^/]*$)/, r.pick(["%2F", "%2f"])) },
  { name: "encoded v1 slash", apply: (_r, p) => p.replace("/v1/", "/v1%2F") },
  { name: "dot segment", apply: (r, p) => p.replace("/v1/", r.pick(["/v1/./", "/v1/%2e/", "/./v1/"])) },
  { name: "dot-dot segment", apply: (r, p) => p.replace("/v1/", r.pick(["/v1/x/../", "/v1/x/%2e%2e/", "/v1/x/%2E%2E/", "/v1/../v1/"])) },
  { name: "traversal", apply: (r, p) => `${p}/${r.pick(["../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc%2fpasswd", "....//....//etc/passwd"])}` },
  { name: "matrix param", apply: (_r, p) => `${p};jsessionid=1` },
  { name: "NUL suffix", apply: (r, p) => `${p}${r.pick(["%00", "%00.json", "%20", "%09"])}` },
  { name: "empty query/fragment", apply: (r, p) => `${p}${r.pick(["?", "#frag", "?#", "??a=1"])}` },
  { name: "backslashes", apply: (_r, p) => p.replaceAll("/", "\\") },
  { name: "absolute-form", apply: (r, p) => `${r.pick(["http://127.0.0.1", "http://evil.example", "https://localhost:1"])}${p}` },
  { name: "long segment", apply: (r, p) => `${p}/${"a".repeat(r.pick([1000, 8000]))}` },
  { name: "many segments", apply: (_r, p) => `${p}${"/a".repeat(1500)}` },
  { name: "no v1", apply: (_r, p) => p.replace("/v1", "") },
  { name: "v2", apply: (_r, p) => p.replace("/v1", "/v2") },
];

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "PURGE", "SEARCH", "LINK", "LOCK"];

interface HeaderTrick {
  name: string;
  headers: (rng: Rng) => [string, string][];
  body?: (rng: Rng) => Buffer;
}

const validJson = (rng: Rng) => Buffer.from(JSON.stringify({ name: `fz-${rng.int(0, 99)}` }), "utf8");

const HEADER_TRICKS: readonly HeaderTrick[] = [
  {
    name: "content-type",
    headers: (rng) => [
      ["content-type", rng.pick(["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/json; charset=utf-16", 'application/json; charset="utf-8"', "APPLICATION/JSON", "application/json-seq", "multipart/form-data; boundary=x", "application/json, text/plain", "*/*", ";;;", "application/json; charset=", "application/problem+json", "application/vnd.api+json", "json"])],
    ],
    body: validJson,
  },
  { name: "no content-type", headers: () => [], body: validJson },
  { name: "content-encoding garbage", headers: (rng) => [["content-type", "application/json"], ["content-encoding", rng.pick(["gzip", "deflate", "br", "compress", "x-unknown", "gzip, gzip", "identity, gzip"])]], body: (rng) => rng.bytes(64) },
  { name: "content-encoding gzip", headers: () => [["content-type", "application/json"], ["content-encoding", "gzip"]], body: (rng) => gzipSync(validJson(rng)) },
  { name: "gzip bomb", headers: () => [["content-type", "application/json"], ["content-encoding", "gzip"]], body: () => gzipSync(Buffer.from(`{"a":"${"a".repeat(8 * 1024 * 1024)}"}`)) },
  { name: "huge header", headers: (rng) => [["x-fuzz", "a".repeat(rng.pick([17 * 1024, 64 * 1024]))]] },
  { name: "many headers", headers: (rng) => Array.from({ length: rng.pick([100, 1000, 3000]) }, (_v, i): [string, string] => [`x-fuzz-${i}`, "v"]) },
  { name: "request id", headers: (rng) => [["x-request-id", rng.pick(["", "x".repeat(8000), "\u00ff\u00fe", "<script>", "a b c", "../../x"])]] },
  { name: "origin", headers: (rng) => [["origin", rng.pick(["https://evil.example", "null", "http://127.0.0.1", "garbage", "file://", "http://[::1"])]] },
  { name: "host", headers: (rng) => [["host", rng.pick(["evil.example", "localhost:99999", "[::1]", "", "a_b", "127.0.0.1:1", "EVIL.EXAMPLE.", "xn--nxasmq6b"])]] },
  { name: "sec-fetch-site", headers: (rng) => [["sec-fetch-site", rng.pick(["cross-site", "same-site", "same-origin", "none", "x"])]] },
  { name: "range", headers: (rng) => [["range", rng.pick(["bytes=0-10", "bytes=-5", "bytes=999999999-", "bytes=abc", "bytes=0-1,2-3,4-5", "bytes=1-0", "items=0-1", `bytes=${"0-1,".repeat(500)}0-1`])]] },
  { name: "conditional", headers: (rng) => [[rng.pick(["if-none-match", "if-match", "if-modified-since", "if-range", "if-unmodified-since"]), rng.pick(["*", '"x"', "garbage", "Thu, 01 Jan 1970 00:00:00 GMT", "W/"])]] },
  { name: "accept", headers: (rng) => [["accept", rng.pick(["text/html", "application/xml", "*/*;q=abc", "text/event-stream", "", "application/json;q=0"])]] },
  { name: "accept-encoding", headers: (rng) => [["accept-encoding", rng.pick(["gzip", "br", "deflate, gzip;q=abc", "*", "identity;q=0, *;q=0"])]] },
  { name: "last-event-id", headers: (rng) => [["last-event-id", rng.pick(["abc", "-1", "1e308", "99999999999999999999", "", "0x10"])]] },
  { name: "idempotency-key", headers: (rng) => [["idempotency-key", rng.pick(["fz-reused-key", "fz-reused-key", "k".repeat(201), "k".repeat(200), "\u00ff", " ", `fz-${rng.int(0, 1e9)}`])]] },
  { name: "project header", headers: (rng) => [["x-iaas-project", rng.pick(["fz-b", "default", DEFAULT_PROJECT_ID.toUpperCase(), FIXTURE_IDS.project, "nothing-here", " ", "\u00ff", "x".repeat(5000), FIXTURE_IDS.missing])]] },
  { name: "forwarded", headers: (rng) => [[rng.pick(["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"]), rng.pick(["1.2.3.4", "garbage", "evil.example", "for=1.2.3.4;host=evil", "::1, 10.0.0.1"])]] },
  { name: "duplicate headers", headers: (rng) => [["x-iaas-project", "default"], ["x-iaas-project", rng.pick(["fz-b", "nothing"])], ["content-type", "application/json"], ["content-type", "text/plain"]], body: validJson },
  { name: "transfer-encoding chunked", headers: () => [["content-type", "application/json"], ["transfer-encoding", "chunked"]], body: validJson },
];

/** Authorization headers that are not a valid token. */
const ODD_AUTH: readonly string[] = [
  "",
  "Bearer",
  "Bearer ",
  "bearer garbage",
  "Bearer iaas_deadbeef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  "Bearer iaas_00000000_" + "A".repeat(43),
  "Bearer iaas_DEADBEEF_" + "A".repeat(43),
  "Bearer " + "x".repeat(8000),
  "Basic YWRtaW46YWRtaW4=",
  "Token abc",
  "Bearer a b",
  "Bearer \u00ff\u00fe",
  "Bearer ' OR 1=1 --",
  "Bearer %00",
  "Bearer null",
];

// ---------------------------------------------------------------------------------------------
// Malformed HTTP over a raw socket.

interface RawTrick {
  name: string;
  /** The request's bytes (as a latin1 string), aimed at the route's method and filled-in path. */
  build: (rng: Rng, target: { method: string; path: string }) => string;
  halfClose?: boolean;
}

const CRLF = "\r\n";
const auth = `Authorization: Bearer ${TOKEN_PLACEHOLDER}`;
const head = (method: string, path: string, headers: string[], body = "") => `${method} ${path} HTTP/1.1${CRLF}Host: 127.0.0.1${CRLF}${[auth, "Connection: close", ...headers].join(CRLF)}${CRLF}${CRLF}${body}`;
const latin1 = (bytes: number[]) => Buffer.from(bytes).toString("latin1");

const RAW_TRICKS: readonly RawTrick[] = [
  { name: "bad UTF-8 bytes in path", build: (rng, t) => head("GET", `${t.path}/${latin1(rng.pick([[0xff, 0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x80], [0xe2, 0x82]]))}`, []) },
  { name: "bad UTF-8 escapes in path", build: (rng, t) => head(t.method === "HEAD" ? "HEAD" : "GET", t.path.replace(/[^/]+$/, rng.pick(["%FF%FE", "%C0%AF", "%ED%A0%80", "%E0%A4%A", "%", "%%", "%zz"])), []) },
  { name: "bad UTF-8 in header", build: (rng, t) => head("GET", t.path, [`${rng.pick(["X-Iaas-Project", "User-Agent", "X-Request-Id", "Idempotency-Key"])}: ${latin1([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80])}`]) },
  { name: "bad UTF-8 in token", build: (_r, t) => `GET ${t.path} HTTP/1.1${CRLF}Host: 127.0.0.1${CRLF}Authorization: Bearer ${latin1([0xff, 0xfe, 0x80])}${CRLF}Connection: close${CRLF}${CRLF}` },
  { name: "bad UTF-8 JSON body", build: (_r, t) => { const body = `{"name":"${latin1([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80])}"}`; return head("POST", t.path, ["Content-Type: application/json", `Content-Length: ${body.length}`], body); } },
  { name: "invalid header line", build: (rng, t) => head("GET", t.path, [rng.pick(["NoColonHere", " folded: x", "Bad Name: x", "X:\u0000y", "X: a\rb", "X(y): 1", ": empty-name", "X-A:\u0007bell", "Content-Length : 5"])]) },
  { name: "huge header", build: (rng, t) => head("GET", t.path, [`X-Fuzz: ${"a".repeat(rng.pick([17 * 1024, 100 * 1024]))}`]) },
  { name: "huge request line", build: (rng, t) => head("GET", `${t.path}?${"q".repeat(rng.pick([17 * 1024, 80 * 1024]))}`, []) },
  { name: "thousands of headers", build: (_r, t) => head("GET", t.path, Array.from({ length: 2500 }, (_v, i) => `X-${i}: v`)) },
  { name: "truncated body", build: (rng, t) => head(t.method === "GET" ? "POST" : t.method, t.path, ["Content-Type: application/json", `Content-Length: ${rng.pick([100, 1000, 1_000_000])}`], '{"name":"fz'), halfClose: true },
  { name: "body longer than Content-Length", build: (_r, t) => head("POST", t.path, ["Content-Type: application/json", "Content-Length: 5"], '{"name":"fz-x","image":"deb"}') },
  { name: "bad chunked", build: (rng, t) => head("POST", t.path, ["Content-Type: application/json", "Transfer-Encoding: chunked"], rng.pick(["zz\r\n{}\r\n0\r\n\r\n", "2\r\n{}\r\n", "ffffffffffffffff\r\n{}\r\n0\r\n\r\n", "2;ext=\u0001\r\n{}\r\n0\r\n\r\n", "2\r\n{}0\r\n\r\n", "-1\r\n{}\r\n0\r\n\r\n"])), halfClose: true },
  { name: "CL and TE", build: (_r, t) => head("POST", t.path, ["Content-Type: application/json", "Content-Length: 4", "Transfer-Encoding: chunked"], "2\r\n{}\r\n0\r\n\r\n") },
  { name: "bad Content-Length", build: (rng, t) => head("POST", t.path, ["Content-Type: application/json", ...rng.pick([["Content-Length: -1"], ["Content-Length: abc"], ["Content-Length: 1e3"], ["Content-Length: 2", "Content-Length: 3"], ["Content-Length: 99999999999999999999"], ["Content-Length: 0x2"]])], "{}") },
  {
    name: "bad request line",
    build: (rng, t) => {
      const rest = `Host: 127.0.0.1${CRLF}Connection: close${CRLF}${CRLF}`;
      return rng.pick([`GET${CRLF}${CRLF}`, `GET ${t.path}${CRLF}${CRLF}`, `GET ${t.path} HTTP/9.9${CRLF}${rest}`, `GET  ${t.path} HTTP/1.1${CRLF}${rest}`, `get ${t.path} HTTP/1.1${CRLF}${rest}`, `FOO ${t.path} HTTP/1.1${CRLF}${rest}`, `GET v1/vms HTTP/1.1${CRLF}${rest}`, `GET\t${t.path}\tHTTP/1.1${CRLF}${rest}`, `CONNECT 127.0.0.1:22 HTTP/1.1${CRLF}${rest}`, `OPTIONS * HTTP/1.1${CRLF}${rest}`]);
    },
  },
  { name: "no Host", build: (rng, t) => `GET ${t.path} ${rng.pick(["HTTP/1.1", "HTTP/1.0"])}${CRLF}${auth}${CRLF}Connection: close${CRLF}${CRLF}` },
  { name: "HTTP/2 preface", build: () => `PRI * HTTP/2.0${CRLF}${CRLF}SM${CRLF}${CRLF}` },
  { name: "binary garbage", build: (rng) => rng.bytes(rng.int(1, 2048)).toString("latin1"), halfClose: true },
  { name: "TLS hello", build: () => latin1([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, ...new Array<number>(32).fill(7)]), halfClose: true },
  { name: "headers cut off", build: (_r, t) => `GET ${t.path} HTTP/1.1${CRLF}Host: 127.0.0.1${CRLF}X-Half: `, halfClose: true },
  { name: "pipelined", build: (rng, t) => `${head("GET", t.path, []).replace("Connection: close", "Connection: keep-alive")}${rng.pick([head("GET", "/healthz", []), `GARBAGE${CRLF}${CRLF}`, head("GET", `${t.path}/%FF`, [])])}` },
  { name: "expect", build: (rng, t) => head("POST", t.path, ["Content-Type: application/json", "Content-Length: 2", `Expect: ${rng.pick(["100-continue", "garbage", "200-ok"])}`], "{}") },
];

/** How often each kind of case is drawn (relative weights). */
const KIND_WEIGHTS: readonly (readonly [number, CaseKind])[] = [
  [28, "valid"],
  [25, "mutated"],
  [9, "odd-param"],
  [5, "odd-query"],
  [8, "path-trick"],
  [6, "wrong-method"],
  [8, "odd-header"],
  [4, "odd-auth"],
  [7, "raw-http"],
];

const ROUTES = routeCatalog();

/** Case `index` of the run seeded with `rng`'s seed (see Rng.forCase): the same every time. */
export function makeCase(rng: Rng, index: number, only?: CaseKind): FuzzCase {
  const kind = only ?? rng.weighted(KIND_WEIGHTS);
  const route = rng.pick(ROUTES);
  const streaming = STREAMING_ROUTES.has(route.key);
  const base = (over: Partial<FuzzCase> & Pick<FuzzCase, "path" | "note">): FuzzCase => ({
    index,
    kind,
    route: route.key,
    method: route.method,
    auth: pickAuth(rng),
    headers: [],
    streaming,
    ...over,
  });

  switch (kind) {
    case "valid":
    case "mutated": {
      const { path } = fillPath(rng, route, false);
      const { body, headers, note } = bodyFor(rng, route, kind === "mutated");
      if (rng.chance(0.1)) headers.push(["idempotency-key", `fz-${rng.int(0, 50)}`]);
      if (rng.chance(0.1)) headers.push(["x-iaas-project", rng.pick(["fz-b", "default"])]);
      return base({ path: path + queryString(rng, route.query), body, headers, note });
    }
    case "odd-param": {
      if (route.params.length === 0) return makeCase(rng, index, "odd-query");
      const { path, note } = fillPath(rng, route, true);
      const { body, headers } = bodyFor(rng, route, false);
      return base({ path, body, headers, note });
    }
    case "odd-query": {
      const { path } = fillPath(rng, route, false);
      const query = Array.from({ length: rng.int(1, 3) }, () => rng.pick(ODD_QUERIES)).join("&");
      const { body, headers } = bodyFor(rng, route, false);
      return base({ path: `${path}?${query}`, body, headers, note: query.length > 60 ? `${query.slice(0, 60)}…` : query });
    }
    case "path-trick": {
      const trick = rng.pick(PATH_TRICKS);
      const { path } = fillPath(rng, route, false);
      const { body, headers } = bodyFor(rng, route, false);
      return base({ path: trick.apply(rng, path), body, headers, note: trick.name });
    }
    case "wrong-method": {
      const { path } = fillPath(rng, route, false);
      const allowed = new Set(ROUTES.filter((r) => r.path === route.path).map((r) => r.method));
      const method = rng.pick(METHODS.filter((m) => !allowed.has(m)));
      const body = method === "GET" || method === "HEAD" || rng.chance(0.5) ? undefined : jsonBody({});
      return base({ method, path, body, headers: body ? [["content-type", "application/json"]] : [], note: `${method} instead of ${[...allowed].join("/")}` });
    }
    case "odd-header": {
      const trick = rng.pick(HEADER_TRICKS);
      const { path } = fillPath(rng, route, false);
      const planned = bodyFor(rng, route, false);
      const body = trick.body ? trick.body(rng) : planned.body;
      const headers = trick.body ? trick.headers(rng) : [...planned.headers, ...trick.headers(rng)];
      const method = trick.body && (route.method === "GET" || route.method === "HEAD") ? "POST" : route.method;
      return base({ method, path: path + queryString(rng, route.query), body, headers, note: trick.name });
    }
    case "odd-auth": {
      const { path } = fillPath(rng, route, false);
      const { body, headers } = bodyFor(rng, route, false);
      const value = rng.pick(ODD_AUTH);
      return base({ path, body, headers: [...headers, ["authorization", value]], auth: "none", note: `Authorization: ${value.length > 40 ? `${value.slice(0, 40)}…` : value}` });
    }
    case "raw-http": {
      const trick = rng.pick(RAW_TRICKS);
      const { path } = fillPath(rng, route, false);
      const bytes = trick.build(rng, { method: route.method, path });
      return base({ path, auth: "admin", note: trick.name, raw: { bytes, halfClose: trick.halfClose ?? false } });
    }
  }
}
