import express from "express";
import type { Server } from "node:http";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_ROUTES } from "@iaas/contracts";
import { ROUTE_PERMISSIONS } from "./auth/permissions.js";
import { buildOpenApiDocument, openApiPath, type OpenApiDocument } from "./openapi/openApiDocument.js";
import { ResponseValidator } from "./testing/ResponseValidator.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// The OpenAPI document generated from the contracts: a valid OpenAPI 3.1 document, naming every
// route the API serves, served at /openapi.json and browsable at /docs; and the API's real answers
// (here and in every test that uses startTestApi) match it.
describe("OpenAPI document", () => {
  let api: TestApi;
  let doc: OpenApiDocument;

  beforeAll(async () => {
    api = await startTestApi();
    await api.reset();
    doc = buildOpenApiDocument();
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  it("is a valid OpenAPI 3.1 document by the official schema", async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(JSON.stringify(doc)) as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("has an operation for every route the API serves, and none it does not", () => {
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    const served = new Set([...Object.keys(ROUTE_PERMISSIONS), "GET /healthz", "GET /readyz", "GET /openapi.json", "GET /docs", "GET /metrics"].map((key) => {
      const [method, route] = key.split(" ");
      return `${method} ${openApiPath(route ?? "")}`;
    }));
    expect([...served].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((r) => !served.has(r))).toEqual([]);
    expect(API_ROUTES.length).toBe(served.size);
  });

  it("is served at /openapi.json without a token", async () => {
    const res = await fetch(`${api.base}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
  });

  it("serves /docs as an HTML page whose scripts and styles load from the API itself", async () => {
    const res = await fetch(`${api.base}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await res.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? "");
    expect(assets).toEqual(expect.arrayContaining(["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"]));
    for (const asset of assets) {
      expect(asset.startsWith("/"), `${asset} is not served by the API`).toBe(true);
      const got = await fetch(`${api.base}${asset}`);
      expect(got.status, asset).toBe(200);
      expect((await got.arrayBuffer()).byteLength, asset).toBeGreaterThan(100);
    }
    const init = await (await fetch(`${api.base}/docs/init.js`)).text();
    expect(init).toContain('url: "/openapi.json"');
  });

  it("holds the API's VM, image, job, host, list and problem answers to the document", async () => {
    const json = async (res: Response) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> });
    const created = await json(await api.post("/v1/vms", { name: "doc-vm", image: "deb", memory: "256M" }));
    expect(created.status).toBe(202);
    const job = created.body["job"] as { id: string };
    const answers = await Promise.all(
      ["/v1/vms", "/v1/vms/doc-vm", "/v1/images", "/v1/images/deb", "/v1/jobs", `/v1/jobs/${job.id}`, "/v1/hosts", "/v1/networks", "/v1/vms/nope", "/v1/no-such-route", "/healthz"].map(
        async (p) => json(await fetch(`${api.base}${p}`)),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 404, 404, 200]);
    expect((await json(await api.post("/v1/vms", { name: "Bad_Name", image: "deb" }))).status).toBe(400);
    for (const seen of [
      "POST /v1/vms 202",
      "GET /v1/vms 200",
      "GET /v1/vms/{ref} 200",
      "GET /v1/images 200",
      "GET /v1/images/{ref} 200",
      "GET /v1/jobs 200",
      "GET /v1/jobs/{id} 200",
      "GET /v1/hosts 200",
      "GET /v1/vms/{ref} 404",
      "GET /v1/no-such-route 404",
      "POST /v1/vms 400",
    ]) {
      expect(api.responses.checked, seen).toContain(seen);
    }
    expect(api.responses.mismatches).toEqual([]);
  });

  it("fails an answer the document does not describe: a 500 naming the mismatch, recorded for the test run", async () => {
    const validator = new ResponseValidator(doc);
    const app = express();
    app.use(validator.middleware());
    app.get("/v1/vms/:ref", (_req, res) => {
      res.json({ id: "x", name: 42 });
    });
    app.get("/v1/hosts", (_req, res) => {
      res.status(404).json({ code: "NOT_FOUND" });
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const address = server.address();
      const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
      const vm = await fetch(`${base}/v1/vms/x`);
      expect(vm.status).toBe(500);
      const problem = (await vm.json()) as { detail: string };
      expect(problem.detail).toContain("GET /v1/vms/{ref} 200: the answer does not match the OpenAPI document");
      expect(problem.detail).toContain("must have required property 'state'");
      expect((await fetch(`${base}/v1/hosts`)).status).toBe(500);
      expect(validator.mismatches).toHaveLength(2);
      expect(validator.mismatches[1]).toContain("not application/problem+json");
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
