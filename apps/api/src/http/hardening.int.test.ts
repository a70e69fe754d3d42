import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import express from "express";
import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "@iaas/db/testing";
import { createApp } from "../app.js";
import { setAuth } from "../auth/AuthContext.js";
import type { BackupScheduler } from "../services/BackupScheduler.js";
import { JobQueues } from "../services/JobQueues.js";
import { DEFAULT_HARDENING, type HardeningConfig } from "./hardening.js";
import { errorHandler } from "./problem.js";
import { rateLimits } from "./rateLimit.js";
import { createApiServer, DEFAULT_SERVER_OPTIONS, listen, type ApiServer, type ServerOptions } from "./server.js";

// The real app (createApp) on the real Postgres and Redis, served by the API's server factory.

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with exactly these headers (fetch may not set Host), over http or https. */
function raw(base: string, opts: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; ca?: Buffer }): Promise<RawAnswer> {
  const url = new URL(opts.path, base);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method: opts.method ?? "GET", headers: opts.headers ?? {}, ...(opts.ca ? { ca: opts.ca } : {}), agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const codeOf = (a: RawAnswer | { body: string }) => (JSON.parse(a.body) as { code: string }).code;

describe("HTTP hardening", () => {
  let database: TestDatabase;
  let db: PrismaClient;
  let redis: Redis;
  let store: string;
  const running: { server: ApiServer; scheduler: BackupScheduler; queues: JobQueues; prefix: string }[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createPrismaClient(database.url);
    redis = new Redis(await testRedisUrl(), { maxRetriesPerRequest: null });
    store = await mkdtemp(path.join(os.tmpdir(), "iaas-hardening-"));
  }, 60_000);

  afterAll(async () => {
    for (const r of running) {
      r.server.closeAllConnections();
      await new Promise((res) => r.server.close(res));
      await r.scheduler.close();
      await r.queues.close();
      const keys = await redis.keys(`${r.prefix}:*`);
      if (keys.length) await redis.del(...keys);
    }
    redis?.disconnect();
    await db?.$disconnect();
    await database?.drop();
    if (store) await rm(store, { recursive: true, force: true });
  });

  /** The API with `hardening` (defaults otherwise) on its own queue prefix unless given one; its base URL. */
  async function start(hardening: Partial<HardeningConfig> = {}, opts: { prefix?: string; server?: Partial<ServerOptions> } = {}): Promise<string> {
    const prefix = opts.prefix ?? `hd-${randomBytes(4).toString("hex")}`;
    const queues = new JobQueues(redis, prefix);
    const { app, backupScheduler } = createApp({
      db,
      redis,
      queues,
      log: pino({ level: "silent" }),
      hardening: { ...DEFAULT_HARDENING, ...hardening },
      config: { imageStore: store, queuePrefix: prefix, offlineAfterSeconds: 30, maxUploadBytes: 1024 ** 3, exportTtlSeconds: 3600, auth: "none" },
    });
    const serverOptions = { ...DEFAULT_SERVER_OPTIONS, ...opts.server };
    const server = createApiServer(app, serverOptions);
    running.push({ server, scheduler: backupScheduler, queues, prefix });
    const port = await listen(server, 0, "127.0.0.1");
    return `${serverOptions.tls ? "https" : "http"}://127.0.0.1:${port}`;
  }

  describe("bodies", () => {
    let base: string;
    beforeAll(async () => {
      base = await start();
    });

    it("answers 415 to a form-encoded or text body on a JSON route, and takes JSON", async () => {
      const form = await fetch(`${base}/v1/networks`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "name=evil" });
      expect(form.status).toBe(415);
      expect(form.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await form.json()) as { code: string }).code).toBe("UNSUPPORTED_MEDIA_TYPE");
      // A string body without a type: fetch sends text/plain, as an HTML form or a no-cors fetch would.
      const text = await fetch(`${base}/v1/networks`, { method: "POST", body: JSON.stringify({ name: "sneaky" }) });
      expect(text.status).toBe(415);
      expect(await db.network.count({ where: { name: { in: ["evil", "sneaky"] } } })).toBe(0);
      const json = await fetch(`${base}/v1/networks`, { method: "POST", headers: { "content-type": "application/json; charset=utf-8" }, body: JSON.stringify({ name: "fine" }) });
      expect(json.status).toBe(201);
      // No body, no type needed (cancel has none).
      const cancel = await fetch(`${base}/v1/jobs/00000000-0000-4000-8000-00000000dead/cancel`, { method: "POST" });
      expect(cancel.status).toBe(404);
    });

    it("still takes the raw image upload (PUT /v1/images/:ref/file), typed or not", async () => {
      const content = randomBytes(64 * 1024);
      const created = await fetch(`${base}/v1/images`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "raw-upload", source: { type: "upload", size: content.length } }),
      });
      expect(created.status).toBe(201);
      const { uploadUrl } = (await created.json()) as { uploadUrl: string };
      const first = await fetch(`${base}${uploadUrl}`, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "content-range": `bytes 0-32767/${content.length}` },
        body: content.subarray(0, 32 * 1024),
      });
      expect(first.status).toBe(200);
      expect(first.headers.get("upload-offset")).toBe(String(32 * 1024));
      const untyped = await raw(base, { method: "PUT", path: uploadUrl, headers: { "content-range": `bytes 32768-49151/${content.length}` }, body: content.subarray(32 * 1024, 48 * 1024) });
      expect(untyped.status).toBe(200);
      expect(untyped.headers["upload-offset"]).toBe(String(48 * 1024));
    });

    it("answers 413 to a JSON body over 1 MiB, announced or chunked", async () => {
      const big = JSON.stringify({ name: "big", description: "x".repeat(2 * 1024 * 1024) });
      const announced = await fetch(`${base}/v1/networks`, { method: "POST", headers: { "content-type": "application/json" }, body: big });
      expect(announced.status).toBe(413);
      // Refused from its Content-Length, before the body is read.
      expect(await announced.json()).toMatchObject({ code: "REQUEST_TOO_LARGE", detail: expect.stringContaining(`(${Buffer.byteLength(big)} bytes)`) });
      const chunked = await fetch(`${base}/v1/networks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: Readable.toWeb(Readable.from([Buffer.from(big)])) as ReadableStream<Uint8Array>,
        duplex: "half",
      } as RequestInit);
      // No length announced: express.json stops reading at 1 MiB, and the error handler says 413.
      expect(chunked.status).toBe(413);
      expect(((await chunked.json()) as { code: string }).code).toBe("REQUEST_TOO_LARGE");
    });
  });

  describe("Origin and Host", () => {
    let base: string;
    let port: string;
    beforeAll(async () => {
      base = await start({ allowedOrigins: ["https://console.example.com"], allowedHosts: ["api.example.com", "*.iaas.example.net"] });
      port = new URL(base).port;
    });

    it("refuses a foreign Origin with 403 and lets an allowed one and none through", async () => {
      const foreign = await raw(base, { method: "POST", path: "/v1/networks", headers: { origin: "https://evil.example", "content-type": "application/json" }, body: '{"name":"csrf"}' });
      expect(foreign.status).toBe(403);
      expect(codeOf(foreign)).toBe("FORBIDDEN_ORIGIN");
      expect(await db.network.count({ where: { name: "csrf" } })).toBe(0);
      expect((await raw(base, { path: "/v1/hosts", headers: { origin: "null" } })).status).toBe(403);
      expect((await raw(base, { path: "/v1/hosts", headers: { origin: "https://console.example.com" } })).status).toBe(200);
      expect((await raw(base, { path: "/v1/hosts" })).status).toBe(200);
      // A GET from another site's page carries no Origin, but Sec-Fetch-Site says where it came from.
      expect((await raw(base, { path: "/v1/hosts", headers: { "sec-fetch-site": "cross-site" } })).status).toBe(403);
      expect((await raw(base, { path: "/v1/hosts", headers: { "sec-fetch-site": "none" } })).status).toBe(200);
    });

    it("refuses a rebinding Host with 403; IP literals, localhost and allowed names pass", async () => {
      const rebound = await raw(base, { path: "/v1/hosts", headers: { host: `attacker.example:${port}` } });
      expect(rebound.status).toBe(403);
      expect(codeOf(rebound)).toBe("FORBIDDEN_ORIGIN");
      expect(JSON.parse(rebound.body)).toMatchObject({ status: 403, hint: expect.stringContaining("IAAS_ALLOWED_HOSTS") });
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, "10.1.2.3", `api.example.com:${port}`, "API.Example.com.", "a.iaas.example.net"]) {
        expect((await raw(base, { path: "/v1/hosts", headers: { host } })).status, host).toBe(200);
      }
      expect((await raw(base, { path: "/v1/hosts", headers: { host: "iaas.example.net.attacker.example" } })).status).toBe(403);
      // Health checks are not browser targets and load balancers probe them by any name.
      expect((await raw(base, { path: "/healthz", headers: { host: "lb-probe.internal" } })).status).toBe(200);
    });
  });

  it("sends helmet's security headers, no-store on /v1, and no HSTS over plain HTTP", async () => {
    const base = await start();
    const res = await fetch(`${base}/v1/hosts`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cross-origin-resource-policy")).toBe("same-origin");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("strict-transport-security")).toBeNull();
    expect(res.headers.get("x-powered-by")).toBeNull();
    const health = await fetch(`${base}/healthz`);
    expect(health.headers.get("x-content-type-options")).toBe("nosniff");
    const missing = await fetch(`${base}/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-content-type-options")).toBe("nosniff");
  });

  describe("rate limits", () => {
    const tiny = (perAddress: number) => ({ rateLimit: { perToken: 0, perAddress, exempt: [] } });

    it("answers 429 with Retry-After and a problem once an address passes its limit", async () => {
      const base = await start(tiny(3));
      for (let i = 0; i < 3; i++) {
        const ok = await fetch(`${base}/v1/hosts`);
        expect(ok.status).toBe(200);
        expect(ok.headers.get("ratelimit")).toMatch(new RegExp(`^"address"; r=${2 - i}; t=\\d+$`));
      }
      const refused = await fetch(`${base}/v1/hosts`);
      expect(refused.status).toBe(429);
      const retryAfter = Number(refused.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(await refused.json()).toMatchObject({ status: 429, code: "RATE_LIMITED", hint: expect.stringContaining("IAAS_RATE_LIMIT_PER_ADDRESS_PER_MINUTE") });
      // Health checks are not counted.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    });

    it("does not count exempt addresses (loopback by default)", async () => {
      const base = await start({ rateLimit: { perToken: 0, perAddress: 2, exempt: ["127.0.0.0/8"] } });
      for (let i = 0; i < 5; i++) expect((await fetch(`${base}/v1/hosts`)).status).toBe(200);
    });

    it("shares the counts between two API replicas on the same Redis and prefix", async () => {
      const prefix = `hd-shared-${randomBytes(4).toString("hex")}`;
      const a = await start(tiny(4), { prefix });
      const b = await start(tiny(4), { prefix });
      expect((await fetch(`${a}/v1/hosts`)).status).toBe(200);
      expect((await fetch(`${b}/v1/hosts`)).status).toBe(200);
      expect((await fetch(`${a}/v1/hosts`)).status).toBe(200);
      expect((await fetch(`${b}/v1/hosts`)).status).toBe(200);
      expect((await fetch(`${a}/v1/hosts`)).status).toBe(429);
      expect((await fetch(`${b}/v1/hosts`)).status).toBe(429);
      expect(await redis.keys(`${prefix}:rl:address:*`)).toHaveLength(1);
    });

    it("counts per token after authentication, and per address without a token", async () => {
      const prefix = `hd-token-${randomBytes(4).toString("hex")}`;
      const app = express();
      app.use((req, _res, next) => {
        const token = req.header("x-test-token");
        if (token) setAuth(req, { tokenId: token, tokenName: `name-${token.slice(0, 4)}`, role: "operator", projectId: null });
        next();
      });
      app.use(...rateLimits(redis, prefix, { perToken: 2, perAddress: 0, exempt: [] }));
      app.get("/x", (_req, res) => {
        res.json({ ok: true });
      });
      app.use(errorHandler(pino({ level: "silent" })));
      const server = createApiServer(app, DEFAULT_SERVER_OPTIONS);
      const base = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
      const as = (token?: string) => fetch(`${base}/x`, { headers: token ? { "x-test-token": token } : {} });
      const t1 = "11111111-1111-4111-8111-111111111111";
      const t2 = "22222222-2222-4222-8222-222222222222";
      try {
        expect((await as(t1)).status).toBe(200);
        expect((await as(t1)).status).toBe(200);
        const refused = await as(t1);
        expect(refused.status).toBe(429);
        expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
        expect(await refused.json()).toMatchObject({ code: "RATE_LIMITED", detail: expect.stringContaining("token name-1111") });
        // Another token has its own count; so does a request with none (its address).
        expect((await as(t2)).status).toBe(200);
        expect((await as()).status).toBe(200);
        expect((await as()).status).toBe(200);
        expect((await as()).status).toBe(429);
        expect((await redis.keys(`${prefix}:rl:token:*`)).sort()).toEqual([`${prefix}:rl:token:a:127.0.0.1`, `${prefix}:rl:token:t:${t1}`, `${prefix}:rl:token:t:${t2}`].sort());
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
        const keys = await redis.keys(`${prefix}:*`);
        if (keys.length) await redis.del(...keys);
      }
    });

    it("lets requests through (fails open) when Redis does not answer in time", async () => {
      const broken = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => 50 });
      broken.on("error", () => undefined);
      const lines: string[] = [];
      const log = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
      const app = express();
      app.use(...rateLimits(broken, "nowhere", { perToken: 1, perAddress: 0, exempt: [], storeTimeoutMs: 200 }, log));
      app.get("/x", (_req, res) => {
        res.json({ ok: true });
      });
      const server = createApiServer(app, DEFAULT_SERVER_OPTIONS);
      const base = `http://127.0.0.1:${await listen(server, 0, "127.0.0.1")}`;
      try {
        const started = Date.now();
        for (let i = 0; i < 3; i++) expect((await fetch(`${base}/x`)).status).toBe(200);
        expect(Date.now() - started).toBeLessThan(5_000);
        // Logged, but not once per request.
        expect(lines.filter((l) => l.includes("error from store"))).toHaveLength(1);
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
        broken.disconnect();
      }
    });
  });

  it("limits open event streams per token with 429 and frees a slot when a stream closes", async () => {
    const base = await start({ maxStreamsPerToken: 2 });
    const job = await db.job.create({ data: { type: "vm_start", payload: {}, maxAttempts: 1, timeoutMs: 60_000 } });
    const open = async () => {
      const abort = new AbortController();
      const res = await fetch(`${base}/v1/jobs/${job.id}/events`, { signal: abort.signal });
      return { res, abort };
    };
    const first = await open();
    const second = await open();
    expect(first.res.status).toBe(200);
    expect(second.res.status).toBe(200);
    const third = await open();
    expect(third.res.status).toBe(429);
    expect(third.res.headers.get("retry-after")).toBe("5");
    expect(await third.res.json()).toMatchObject({ code: "RATE_LIMITED", hint: expect.stringContaining("IAAS_MAX_STREAMS_PER_TOKEN") });
    // A 404 is not counted, and plain reads are not streams.
    expect((await fetch(`${base}/v1/jobs/00000000-0000-4000-8000-00000000dead/events`)).status).toBe(404);
    expect((await fetch(`${base}/v1/jobs/${job.id}`)).status).toBe(200);
    first.abort.abort();
    let again: Response | undefined;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const next = await open();
      if (next.res.status === 200) {
        again = next.res;
        next.abort.abort();
        break;
      }
      await next.res.body?.cancel();
    }
    expect(again?.status).toBe(200);
    second.abort.abort();
  });

  describe("TLS", () => {
    let dir: string;
    let cert: Buffer;
    let key: Buffer;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), "iaas-tls-"));
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
      ], { stdio: "ignore" });
      cert = await readFile(path.join(dir, "cert.pem"));
      key = await readFile(path.join(dir, "key.pem"));
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("serves the API over HTTPS with HSTS", async () => {
      const base = await start({ tls: true }, { server: { tls: { cert, key } } });
      expect(base.startsWith("https://")).toBe(true);
      const hosts = await raw(base, { path: "/v1/hosts", ca: cert });
      expect(hosts.status).toBe(200);
      expect(JSON.parse(hosts.body)).toMatchObject({ items: expect.any(Array) });
      expect(hosts.headers["strict-transport-security"]).toMatch(/^max-age=31536000/);
      const created = await raw(base, { method: "POST", path: "/v1/networks", headers: { "content-type": "application/json" }, body: '{"name":"over-tls"}', ca: cert });
      expect(created.status).toBe(201);
      // Plain HTTP to the TLS port gets nowhere; an unknown CA is refused by the client.
      await expect(raw(base.replace("https:", "http:"), { path: "/v1/hosts" })).rejects.toThrow();
      await expect(raw(base, { path: "/v1/hosts" })).rejects.toThrow(/self.signed|certificate/i);
    });
  });
});
