import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { normalizeApiUrl } from "../config.js";
import { HttpTransport } from "./HttpTransport.js";

async function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
}

/** A port with nothing listening on it: a replica that is down. */
async function deadPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

describe("HttpTransport with several API replicas", () => {
  let server: Server;
  let live: number;
  const seen: { method: string; key: string | undefined }[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      seen.push({ method: req.method ?? "", key: req.headers["idempotency-key"] as string | undefined });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ ok: true }));
    });
    live = await listen(server);
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it("passes over a replica that cannot be reached and keeps using the one that answers", async () => {
    const down = await deadPort();
    const http = new HttpTransport({ baseUrl: `http://127.0.0.1:${down},http://127.0.0.1:${live}`, token: null, idempotencyKey: "k-1", retryDelaysMs: [] });
    expect(http.baseUrl).toBe(`http://127.0.0.1:${down}`);
    expect(await http.json(z.object({ ok: z.boolean() }), { method: "POST", path: "/v1/vms", json: {} })).toEqual({ ok: true });
    expect(http.baseUrl).toBe(`http://127.0.0.1:${live}`);
    expect(seen.at(-1)).toEqual({ method: "POST", key: "k-1" });
    await http.json(z.object({ ok: z.boolean() }), { method: "GET", path: "/v1/vms" });
    expect(http.baseUrl).toBe(`http://127.0.0.1:${live}`);
  });

  it("fails with the usual message when no replica answers", async () => {
    const [a, b] = [await deadPort(), await deadPort()];
    const http = new HttpTransport({ baseUrl: `http://127.0.0.1:${a},http://127.0.0.1:${b}`, token: null, idempotencyKey: "k-2", retryDelaysMs: [] });
    await expect(http.send({ method: "GET", path: "/v1/vms" })).rejects.toThrow(/cannot reach the IaaS API/);
  });

  it("accepts a comma-separated list of URLs in IAAS_URL and checks each", () => {
    expect(normalizeApiUrl("http://a:8080/, http://b:8080", "IAAS_URL")).toBe("http://a:8080,http://b:8080");
    expect(() => normalizeApiUrl("http://a:8080,ftp://b", "IAAS_URL")).toThrow(/only http and https/);
  });
});
