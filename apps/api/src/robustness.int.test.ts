import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Problem } from "@iaas/contracts";
import express from "express";
import { pino } from "pino";
import { Prisma } from "@iaas/db";
import { errorHandler } from "./http/problem.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Requests the fuzzer found answered with 5xx or a dropped connection, each pinned down: every
// one is the client's mistake and gets a 4xx problem saying so.
describe("bad requests get 4xx, never 5xx", () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi();
  }, 60_000);
  afterAll(async () => {
    await api?.close();
  });
  beforeEach(async () => {
    await api.reset();
  });

  const send = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    fetch(`${api.base}${path}`, { method, headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers }, ...(body !== undefined ? { body } : {}) });
  const problem = async (res: Response) => ({ ...((await res.json()) as Problem), status: res.status });

  it("a malformed %-escape or a NUL in the path is 400, and does not fail other requests", async () => {
    expect(await problem(await send("GET", "/v1/vms/%E0%A4%A"))).toMatchObject({ status: 400, code: "VALIDATION_FAILED", detail: expect.stringMatching(/%-escape/) });
    expect((await send("DELETE", "/v1/tokens/%C0%AF")).status).toBe(400);
    const mixed = await Promise.all([...Array.from({ length: 10 }, () => send("GET", "/v1/networks/default")), ...Array.from({ length: 10 }, () => send("GET", "/v1/networks/a%00b"))]);
    expect(mixed.map((r) => r.status)).toEqual([...Array<number>(10).fill(200), ...Array<number>(10).fill(400)]);
  });

  it("a NUL or a lone surrogate in a JSON string, and absurd nesting, are 400", async () => {
    expect(await problem(await send("POST", "/v1/projects", '{"name":"a","description":"\\ud800"}'))).toMatchObject({ status: 400, detail: expect.stringMatching(/unpaired UTF-16 surrogate/) });
    expect((await send("PATCH", "/v1/vms/x", '{"memory":"a\\u0000b"}')).status).toBe(400);
    const deep = `${"[".repeat(5000)}${"]".repeat(5000)}`;
    expect(await problem(await send("POST", "/v1/vms/x/start", deep))).toMatchObject({ status: 400, detail: expect.stringMatching(/nested deeper/) });
  });

  it("a body that claims a compression it does not have is 400; an absurd --since is 400", async () => {
    expect((await send("POST", "/v1/networks", "{}", { "content-encoding": "gzip" })).status).toBe(400);
    expect((await send("GET", "/v1/audit?since=9999999999w")).status).toBe(400);
  });

  it("an unknown host is 404, not 503", async () => {
    expect(await problem(await send("POST", "/v1/images", JSON.stringify({ name: "x", source: { type: "path", path: "/srv/x.qcow2" }, host: "h2" })))).toMatchObject({ status: 404, code: "NOT_FOUND" });
  });

  it("an upload longer than declared is answered 400 IMAGE_TOO_LARGE, not a dropped connection, and a JSON Content-Type does not swallow it", async () => {
    const created = await send("POST", "/v1/images", JSON.stringify({ name: "up", source: { type: "upload", size: 1024 } }));
    expect(created.status).toBe(201);
    const over = await fetch(`${api.base}/v1/images/up/file`, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(4096).fill(7) });
    expect(await problem(over)).toMatchObject({ status: 400, code: "IMAGE_TOO_LARGE" });
    const asJson = await fetch(`${api.base}/v1/images/up/file`, { method: "PUT", headers: { "content-type": "application/json", "content-range": "bytes 0-6/1024" }, body: "{\"a\":1}" });
    expect(((await asJson.json()) as { offset: number }).offset).toBe(7);
  });

  it("a row deleted between two reads of one request (Prisma P2025) is 404, not 500", async () => {
    const app = express();
    app.get("/gone", () => {
      throw new Prisma.PrismaClientKnownRequestError("No record was found for a query.", { code: "P2025", clientVersion: Prisma.prismaVersion.client });
    });
    app.use(errorHandler(pino({ level: "silent" })));
    const server = app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const address = server.address();
      const res = await fetch(`http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/gone`);
      expect(await problem(res)).toMatchObject({ status: 404, code: "NOT_FOUND" });
    } finally {
      server.close();
    }
  });
});
