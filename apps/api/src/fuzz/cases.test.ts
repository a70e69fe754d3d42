import { describe, expect, it } from "vitest";
import { ROUTE_PERMISSIONS } from "../auth/permissions.js";
import { BODY_SCHEMAS, makeCase, QUERY_SCHEMAS, routeCatalog, type CaseKind } from "./cases.js";
import { Rng, seedFrom } from "./prng.js";
import { check, leakPatterns } from "./report.js";
import { jsonSchemaOf, validValue } from "./schemaValues.js";
import type { Outcome } from "./transport.js";

// The fuzzer's generator and checks, without the API: fuzz.int.test.ts runs them against it.
describe("fuzz case generator", () => {
  const summary = (seed: number, index: number) => {
    const c = makeCase(Rng.forCase(seed, index), index);
    return JSON.stringify({ ...c, body: c.body?.toString("base64") });
  };

  it("makes the same case from the same seed and index, whatever ran before", () => {
    const forward = Array.from({ length: 200 }, (_v, i) => summary(42, i));
    const backward = Array.from({ length: 200 }, (_v, i) => summary(42, 199 - i)).reverse();
    expect(backward).toEqual(forward);
    expect(summary(43, 7)).not.toEqual(summary(42, 7));
  });

  it("reads the seed from IAAS_FUZZ_SEED, or picks one", () => {
    expect(seedFrom("123")).toBe(123);
    expect(seedFrom("0xff")).toBe(255);
    expect(() => seedFrom("-1")).toThrow(/IAAS_FUZZ_SEED/);
    expect(seedFrom(undefined)).toBeGreaterThanOrEqual(0);
  });

  it("covers every route of ROUTE_PERMISSIONS (but the benchmark's) and every kind of case", () => {
    const routes = new Set<string>();
    const kinds = new Set<CaseKind>();
    for (let i = 0; i < 5000; i++) {
      const c = makeCase(Rng.forCase(1, i), i);
      routes.add(c.route);
      kinds.add(c.kind);
    }
    const expected = [...Object.keys(ROUTE_PERMISSIONS).filter((r) => r !== "POST /v1/bench/noop"), "GET /healthz", "GET /readyz"];
    expect([...routes].sort()).toEqual(expected.sort());
    expect(kinds.size).toBe(9);
  });

  it("has body and query schemas only for routes that exist", () => {
    const known = new Set(routeCatalog().map((r) => r.key));
    expect(Object.keys(BODY_SCHEMAS).filter((k) => !known.has(k))).toEqual([]);
    expect(Object.keys(QUERY_SCHEMAS).filter((k) => !known.has(k))).toEqual([]);
  });

  it("makes schema-valid bodies the contracts accept (refinements aside)", () => {
    const rng = new Rng(7);
    for (const [route, schema] of Object.entries(BODY_SCHEMAS)) {
      const json = jsonSchemaOf(schema);
      let accepted = 0;
      for (let i = 0; i < 100; i++) if (schema.safeParse(validValue(rng, json)).success) accepted++;
      // VmSetRequest, VmBackupRequest and BackupScheduleRequest have refinements JSON Schema cannot say.
      expect(accepted, route).toBeGreaterThanOrEqual(30);
    }
  });
});

describe("fuzz checks", () => {
  const c = makeCase(Rng.forCase(1, 0), 0, "valid");
  const answer = (status: number, body: string, over: Partial<Outcome> = {}): Outcome => ({
    status,
    statuses: [status],
    text: `HTTP/1.1 ${status} X\ncontent-type: application/json\n\n${body}`,
    timedOut: false,
    error: null,
    ms: 1,
    ...over,
  });
  const leaks = leakPatterns(["/tmp/iaas-api-abc"]);
  const problems = (o: Outcome, fc = c) => check(fc, o, leaks).map((f) => `${f.problem}: ${f.detail}`);

  it("passes a plain 4xx problem", () => {
    expect(problems(answer(404, '{"code":"NOT_FOUND","detail":"VM \'x\' not found, revoked at 2026-01-01"}'))).toEqual([]);
  });

  it("flags a 5xx, a hang and a dropped connection", () => {
    expect(problems(answer(503, "{}"))).toEqual(["5xx: status 503"]);
    expect(problems(answer(200, "", { status: null, statuses: [], timedOut: true }))).toEqual(["timeout: no answer in time"]);
    expect(problems(answer(200, "", { status: null, statuses: [], error: "ECONNRESET read ECONNRESET" }))).toEqual(["connection error: ECONNRESET read ECONNRESET"]);
    expect(problems(answer(200, "", { timedOut: true }), { ...c, streaming: true })).toEqual([]);
  });

  it("scans huge echoed answers in linear time", () => {
    const started = performance.now();
    for (const unit of ["x", "a-", "a.", "at ", "at /", "\\n at ", "prisma.", "/home/"]) problems(answer(400, unit.repeat(Math.ceil(300_000 / unit.length))));
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it("flags stack traces, source paths and server paths, not what the request itself sent", () => {
    const stack = "Error: boom\n    at findVm (/work/main/apps/api/src/services/resolve.ts:12:9)\n    at async Layer.handle (node_modules/router/lib/layer.js:1:2)";
    expect(problems(answer(400, JSON.stringify({ detail: stack }))).map((p) => p.split(":")[0])).toEqual(["leak", "leak", "leak", "leak"]);
    expect(problems(answer(400, '{"detail":"cannot read /tmp/iaas-api-abc/images/x"}'))).toEqual(["leak: server path: /tmp/iaas-api-abc"]);
    const echo = { ...c, path: "/v1/images/..%2Fnode_modules" };
    expect(problems(answer(404, '{"detail":"image \'../node_modules\' not found"}'), echo)).toEqual([]);
  });
});
