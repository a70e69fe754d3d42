import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { startTestApi, type TestApi } from "../testing/testApi.js";
import { scrape } from "../testing/prometheusText.js";
import { createLogger } from "./logger.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const METRICS_TOKEN = "scrape-token-0123456789";

// The API in-process on the real Postgres and Redis, its logger writing into an array: request
// ids (given, refused, generated; stored on the job), the access log line and its redaction, and
// GET /metrics parsed by a Prometheus text-format parser.
describe("request ids, access logs and API metrics", () => {
  let api: TestApi;
  const lines: string[] = [];
  const logged = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    api = await startTestApi({ log: createLogger("info", { write: (line: string) => void lines.push(line) }), metricsToken: METRICS_TOKEN });
  });
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
    lines.length = 0;
  });

  it("keeps a safe X-Request-Id, answers with it, stores it on the job it made and shows it in the job", async () => {
    const res = await api.post("/v1/vms", { name: "traced", image: "deb", memory: "256M" }, { "x-request-id": "trace-4711.a:b/c+d=" });
    expect(res.status).toBe(202);
    expect(res.headers.get("x-request-id")).toBe("trace-4711.a:b/c+d=");
    const { job } = (await res.json()) as { job: Job };
    expect((await api.db.job.findUniqueOrThrow({ where: { id: job.id } })).requestId).toBe("trace-4711.a:b/c+d=");
    const shown = (await (await fetch(`${api.base}/v1/jobs/${job.id}`)).json()) as Job;
    expect(shown.requestId).toBe("trace-4711.a:b/c+d=");
  });

  it("replaces an X-Request-Id that is too long or holds unsafe characters with a new UUID", async () => {
    for (const bad of ["has space", 'quote"d', "x".repeat(129), "new\\nline", "é"]) {
      const res = await fetch(`${api.base}/v1/jobs`, { headers: { "x-request-id": bad } });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toMatch(UUID);
    }
    const longest = "y".repeat(128);
    expect((await fetch(`${api.base}/v1/jobs`, { headers: { "x-request-id": longest } })).headers.get("x-request-id")).toBe(longest);
  });

  it("generates a request id when none is given, on every response including errors, and stores it on the job", async () => {
    const missing = await fetch(`${api.base}/v1/nowhere`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toMatch(UUID);
    const res = await api.post("/v1/vms", { name: "untraced", image: "deb", memory: "256M" });
    const generated = res.headers.get("x-request-id");
    expect(generated).toMatch(UUID);
    const { job } = (await res.json()) as { job: Job };
    expect((await api.db.job.findUniqueOrThrow({ where: { id: job.id } })).requestId).toBe(generated);
  });

  it("logs one access line per request at info with method, route pattern, path, status, duration and request id, and no credentials", async () => {
    const made = await api.post("/v1/vms", { name: "logged", image: "deb", memory: "256M" });
    const { job } = (await made.json()) as { job: Job };
    lines.length = 0;
    const res = await fetch(`${api.base}/v1/jobs/${job.id}?token=query-secret-42`, {
      headers: { "x-request-id": "access-1", authorization: "Bearer iaas_0badc0de_header-secret-42", cookie: "session=cookie-secret-42" },
    });
    expect(res.status).toBe(200);
    await res.text();
    await expect.poll(() => logged().some((l) => l["requestId"] === "access-1")).toBe(true);
    const line = logged().find((l) => l["requestId"] === "access-1");
    expect(line).toMatchObject({ level: 30, service: "api", method: "GET", route: "/v1/jobs/:id", path: `/v1/jobs/${job.id}`, status: 200, msg: "GET /v1/jobs/:id 200" });
    expect(typeof line?.["durationMs"]).toBe("number");
    const out = lines.join("");
    for (const secret of ["query-secret-42", "header-secret-42", "cookie-secret-42"]) expect(out).not.toContain(secret);
    // One key per line: the request id is not printed twice.
    for (const raw of lines) expect(raw.match(/"requestId":/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });

  it("logs an unmatched path under the route 'unmatched', and a 5xx-free 404 at info", async () => {
    await (await fetch(`${api.base}/v1/nowhere/deep`, { headers: { "x-request-id": "lost-1" } })).text();
    await expect.poll(() => logged().find((l) => l["requestId"] === "lost-1")).toMatchObject({ level: 30, route: "unmatched", status: 404, path: "/v1/nowhere/deep" });
  });

  it("serves /metrics only with IAAS_METRICS_TOKEN when it is set", async () => {
    const without = await fetch(`${api.base}/metrics`);
    expect(without.status).toBe(401);
    expect(without.headers.get("www-authenticate")).toContain("Bearer");
    expect((await fetch(`${api.base}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789" } })).status).toBe(401);
    expect((await fetch(`${api.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(200);
  });

  it("counts requests by route pattern and status, jobs submitted by type, and reads VMs, queue depth and allocation per host from Postgres", async () => {
    const url = `${api.base}/metrics`;
    const before = await scrape(url, METRICS_TOKEN);
    const made = await api.post("/v1/vms", { name: "counted", image: "deb", memory: "256M", cpus: 2 });
    expect(made.status).toBe(202);
    const { job } = (await made.json()) as { job: Job };
    await (await fetch(`${api.base}/v1/jobs/${job.id}`)).text();
    await (await fetch(`${api.base}/v1/jobs/${job.id}`)).text();
    // The cluster gauges are cached for two seconds: wait out the snapshot `before` read.
    await new Promise((r) => setTimeout(r, 2100));
    const after = await scrape(url, METRICS_TOKEN);
    const route = { method: "GET", route: "/v1/jobs/:id", status: "200" };
    expect(after.value("iaas_http_requests_total", route) - before.value("iaas_http_requests_total", route)).toBe(2);
    expect(after.count("iaas_http_request_duration_seconds", route) - before.count("iaas_http_request_duration_seconds", route)).toBe(2);
    expect(after.value("iaas_http_requests_total", { method: "POST", route: "/v1/vms", status: "202" })).toBeGreaterThanOrEqual(1);
    // No raw path ever becomes a label.
    expect(after.text).not.toContain(job.id);
    expect(after.value("iaas_jobs_submitted_total", { type: "vm.create" }) - before.value("iaas_jobs_submitted_total", { type: "vm.create" })).toBe(1);
    // Nothing consumes the queue here: the job waits in h1's queue, its VM is `creating`.
    expect(after.value("iaas_queue_depth", { host: "h1" })).toBe(1);
    expect(after.value("iaas_jobs_running", { host: "h1" })).toBe(0);
    expect(after.value("iaas_vms", { host: "h1", state: "creating" })).toBe(1);
    expect(after.value("iaas_host_capacity_cpus", { host: "h1" })).toBe(8);
    expect(after.value("iaas_host_allocated_cpus", { host: "h1" })).toBe(2);
    expect(after.value("iaas_host_allocated_memory_bytes", { host: "h1" })).toBe(256 * 1024 ** 2);
    expect(after.value("iaas_host_capacity_memory_bytes", { host: "h1" })).toBe(8 * 1024 ** 3);
    expect(after.value("iaas_metrics_database_up")).toBe(1);
    expect(after.value("iaas_open_streams", { kind: "job-events" })).toBe(0);
  });
});
