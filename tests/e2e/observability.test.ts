import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parser } from "@prometheus-io/lezer-promql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import type { OpenApiDocument } from "../../apps/api/src/openapi/openApiDocument.js";
import { scrape, type Scrape } from "../../apps/api/src/testing/prometheusText.js";
import { ResponseValidator } from "../../apps/api/src/testing/ResponseValidator.js";
import { eventually, guestImages, Stack } from "./harness.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The metric names a PromQL expression selects, parsed with Prometheus' own PromQL grammar; throws on a syntax error. */
function selectedMetrics(expr: string): string[] {
  const names: string[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) throw new Error(`PromQL syntax error at ${node.from} in: ${expr}`);
      if (node.name === "Identifier" && node.node.parent?.name === "VectorSelector") names.push(expr.slice(node.from, node.to));
    },
  });
  return names;
}

interface DashboardPanel {
  title: string;
  targets?: { expr: string }[];
}

// A whole stack as processes (API, one worker, QEMU), driven by the CLI: both /metrics outputs
// parsed by a Prometheus text-format parser after real actions, the request id of a request
// shown by `iaas job show`, and the example Grafana dashboard checked against what is exported.
describe("observability of a running stack", () => {
  let stack: Stack;
  let apiUrl: string;
  let workerUrl: string;
  let before: { api: Scrape; worker: Scrape };

  beforeAll(async () => {
    const images = await guestImages(["bootsector"]);
    stack = await Stack.start(["obs-a"], { defaultNetwork: false });
    apiUrl = `${stack.url}/metrics`;
    workerUrl = `http://127.0.0.1:${stack.metricsPorts.get("obs-a") ?? 0}/metrics`;
    before = { api: await scrape(apiUrl), worker: await scrape(workerUrl) };
    const imported = await stack.cli(["image", "import", "boot", "--file", images.bootsector, "--wait"]);
    expect(imported.code, imported.stderr).toBe(0);
    const created = await stack.cli(["vm", "create", "o1", "--image", "boot", "--memory", "64M", "--no-network", "--start", "--wait"]);
    expect(created.code, `${created.stderr}\n${stack.logTail()}`).toBe(0);
  }, 240_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it("counts the CLI's requests and jobs on the API, and the job and its QEMU process on the worker", async () => {
    // The cluster gauges and the QEMU count are cached for two seconds.
    await new Promise((r) => setTimeout(r, 2100));
    const api = await scrape(apiUrl);
    const worker = await scrape(workerUrl);
    const post = { method: "POST", route: "/v1/vms", status: "202" };
    expect(api.value("iaas_http_requests_total", post) - before.api.value("iaas_http_requests_total", post)).toBe(1);
    expect(api.value("iaas_jobs_submitted_total", { type: "vm.create" }) - before.api.value("iaas_jobs_submitted_total", { type: "vm.create" })).toBe(1);
    expect(api.value("iaas_vms", { host: "obs-a", state: "running" })).toBe(1);
    expect(api.value("iaas_host_allocated_memory_bytes", { host: "obs-a" })).toBe(64 * 1024 ** 2);
    expect(api.value("iaas_host_capacity_memory_bytes", { host: "obs-a" })).toBe(2 * 1024 ** 3);
    expect(api.value("iaas_queue_depth", { host: "obs-a" })).toBe(0);
    const done = { type: "vm.create", state: "succeeded", host: "obs-a" };
    expect(worker.value("iaas_jobs_finished_total", done) - before.worker.value("iaas_jobs_finished_total", done)).toBe(1);
    expect(worker.count("iaas_job_duration_seconds", { type: "vm.create" })).toBe(1);
    expect(worker.count("iaas_job_queue_wait_seconds", { type: "vm.create" })).toBe(1);
    expect(worker.value("iaas_qemu_processes", { host: "obs-a" })).toBe(1);
  });

  it("counts an open console stream while it is open", async () => {
    const abort = new AbortController();
    const res = await fetch(`${stack.url}/v1/vms/o1/console?follow=true`, { signal: abort.signal });
    expect(res.status).toBe(200);
    await eventually("the console stream to be counted", async () => (await scrape(apiUrl)).value("iaas_open_streams", { kind: "console" }) === 1);
    abort.abort();
    await eventually("the console stream to be released", async () => (await scrape(apiUrl)).value("iaas_open_streams", { kind: "console" }) === 0);
  });

  it("stores a request's X-Request-Id on its job, prints it in `iaas job show` and in the API's access log", async () => {
    const res = await fetch(`${stack.url}/v1/vms`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "e2e-trace-0001" },
      body: JSON.stringify({ name: "o2", image: "boot", memory: "64M", networks: [] }),
    });
    expect(res.status, await res.clone().text()).toBe(202);
    expect(res.headers.get("x-request-id")).toBe("e2e-trace-0001");
    const { job } = (await res.json()) as { job: Job };
    const shown = await stack.cli(["job", "show", job.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^request id:\s+e2e-trace-0001$/m);
    expect((await stack.cliJson<Job>(["job", "show", job.id, "-o", "json"])).requestId).toBe("e2e-trace-0001");
    const access = stack.logs.join("").split("\n").find((l) => l.includes('"requestId":"e2e-trace-0001"') && l.includes('"route":"/v1/vms"'));
    expect(access).toBeDefined();
    expect(access).toContain('"status":202');
  });

  it("has a Grafana dashboard whose queries parse and name only metrics the API or the worker exports", async () => {
    const dashboard = JSON.parse(await readFile(path.join(ROOT, "docs/grafana-dashboard.json"), "utf8")) as { panels: DashboardPanel[] };
    const exported = new Set([...(await scrape(apiUrl)).names(), ...(await scrape(workerUrl)).names()]);
    const histograms = /_(bucket|sum|count)$/;
    const named = dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => selectedMetrics(t.expr)));
    expect(named.length).toBeGreaterThan(15);
    const missing = [...new Set(named)].filter((name) => !exported.has(name) && !(histograms.test(name) && exported.has(name.replace(histograms, ""))));
    expect(missing).toEqual([]);
    // Every metric this project defines appears on the dashboard.
    const own = [...exported].filter((n) => n.startsWith("iaas_"));
    const used = new Set(named.map((n) => n.replace(histograms, "")));
    expect(own.filter((n) => !used.has(n))).toEqual([]);
  });

  it("answers as the OpenAPI document it serves says, from a running API process", async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as OpenApiDocument;
    const validator = new ResponseValidator(doc);
    const jobs = (await (await fetch(`${stack.url}/v1/jobs?vm=o1`)).json()) as { items: Job[] };
    const jobId = jobs.items[0]?.id ?? "";
    expect(jobId).not.toBe("");
    const requests: [string, string, unknown?][] = [
      ["GET", "/v1/vms"],
      ["GET", "/v1/vms/o1"],
      ["GET", "/v1/vms/o1/snapshots"],
      ["GET", "/v1/vms/o1/ports"],
      ["GET", "/v1/images"],
      ["GET", "/v1/images/boot"],
      ["GET", "/v1/jobs?limit=1"],
      ["GET", `/v1/jobs/${jobId}`],
      ["GET", `/v1/jobs/${jobId}/wait?timeout=1`],
      ["GET", "/v1/hosts"],
      ["GET", "/v1/networks"],
      ["GET", "/v1/exports"],
      ["GET", "/v1/backups"],
      ["GET", "/v1/projects"],
      ["GET", "/v1/vms/no-such-vm"],
      ["POST", "/v1/vms", { name: "" }],
      ["POST", "/v1/vms/o1/reboot"],
      ["GET", "/readyz"],
    ];
    const findings: string[] = [];
    for (const [method, url, body] of requests) {
      const res = await fetch(`${stack.url}${url}`, { method, ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }) });
      const finding = validator.check(method, new URL(url, stack.url).pathname, res.status, res.headers.get("content-type") ?? "", await res.json());
      if (finding) findings.push(finding);
    }
    expect(findings).toEqual([]);
    expect(validator.checked.size).toBeGreaterThanOrEqual(15);
    // The check is real: a VM answer missing its state is refused.
    const vm = (await (await fetch(`${stack.url}/v1/vms/o1`)).json()) as Record<string, unknown>;
    delete vm["state"];
    expect(validator.check("GET", "/v1/vms/o1", 200, "application/json", vm)).toMatch(/state/);
  });
});
