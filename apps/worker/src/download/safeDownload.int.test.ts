import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IaasError } from "@iaas/contracts";
import { safeDownload, type DownloadProgress, type Lookup, type SafeDownloadOptions } from "./safeDownload.js";
import { parseAllowList } from "./urlPolicy.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  port: number;
  requests: { url: string; headers: IncomingHttpHeaders }[];
  connections: number;
  url(p: string, host?: string): string;
}

let dir: string;
let servers: (http.Server | https.Server)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "iaas-download-"));
});

afterEach(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  servers = [];
  await rm(dir, { recursive: true, force: true });
});

async function serve(handler: Handler, host = "127.0.0.1", server: http.Server | https.Server = http.createServer()): Promise<TestServer> {
  const state: TestServer = { port: 0, requests: [], connections: 0, url: (p, h = host.includes(":") ? `[${host}]` : host) => `${server instanceof https.Server ? "https" : "http"}://${h}:${state.port}${p}` };
  server.on("connection", () => state.connections++);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    state.requests.push({ url: req.url ?? "", headers: req.headers });
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  state.port = (server.address() as AddressInfo).port;
  return state;
}

/** Serves `body` (in 64 KiB pieces `delayMs` apart), honouring `Range: bytes=N-` when `ranges` is set. */
function serveBody(body: Buffer, opts: { delayMs?: number; ranges?: boolean; contentLength?: boolean } = {}): Handler {
  return (req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = opts.ranges === true && m ? Number(m[1]) : 0;
    const headers: http.OutgoingHttpHeaders = { "content-type": "application/octet-stream" };
    if (opts.contentLength !== false) headers["content-length"] = body.length - start;
    if (start > 0) headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    let at = start;
    const next = (): void => {
      if (at >= body.length || res.destroyed) return void res.end();
      res.write(body.subarray(at, (at += 65536)));
      setTimeout(next, opts.delayMs ?? 0);
    };
    next();
  };
}

const loopback = parseAllowList("127.0.0.1/32");
const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");
const fileSha = async (f: string): Promise<string> => sha256(await readFile(f));

function fakeLookup(table: Record<string, string[]>, calls: string[] = []): Lookup {
  return async (hostname) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
}

async function failure(p: Promise<unknown>): Promise<IaasError> {
  const err = await p.then(
    () => new Error("expected the download to fail"),
    (e: unknown) => e,
  );
  if (!(err instanceof IaasError)) throw err;
  return err;
}

function options(extra: Partial<SafeDownloadOptions> = {}): SafeDownloadOptions {
  return { allow: loopback, maxBytes: 64 * 1024 * 1024, timeoutMs: 20_000, ...extra };
}

describe("safeDownload", () => {
  it("downloads a file and reports progress at most every 250 ms with rate and ETA", async () => {
    const body = randomBytes(16 * 65536);
    const server = await serve(serveBody(body, { delayMs: 60 }));
    const reports: (DownloadProgress & { at: number })[] = [];
    const dest = path.join(dir, "disk.img");
    const result = await safeDownload(server.url("/disk.img"), dest, options({ onProgress: (p) => reports.push({ ...p, at: performance.now() }) }));
    expect(result).toEqual({ bytes: body.length, finalUrl: server.url("/disk.img"), contentType: "application/octet-stream" });
    expect(await fileSha(dest)).toBe(sha256(body));
    expect(reports.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < reports.length - 1; i++) expect(reports[i]!.at - reports[i - 1]!.at).toBeGreaterThanOrEqual(240);
    expect(reports.every((r, i) => i === 0 || r.bytesDone >= reports[i - 1]!.bytesDone)).toBe(true);
    expect(reports[1]).toMatchObject({ bytesTotal: body.length, etaSeconds: expect.any(Number) });
    expect(reports[1]!.rate).toBeGreaterThan(0);
    expect(reports.at(-1)).toMatchObject({ bytesDone: body.length, bytesTotal: body.length, etaSeconds: 0 });
  });

  it("refuses a loopback URL by default before any connection is made", async () => {
    const server = await serve(serveBody(Buffer.from("secret")));
    const err = await failure(safeDownload(server.url("/"), path.join(dir, "x"), options({ allow: parseAllowList(undefined) })));
    expect(err.code).toBe("URL_NOT_ALLOWED");
    expect(err.message).toContain("loopback");
    expect(server.connections).toBe(0);
    expect(existsSync(path.join(dir, "x"))).toBe(false);
  });

  it("refuses a name whose DNS answer mixes a public and a private address", async () => {
    const calls: string[] = [];
    const lookup = fakeLookup({ "mixed.test": ["93.184.216.34", "10.0.0.7"] }, calls);
    const err = await failure(safeDownload("http://mixed.test/disk.img", path.join(dir, "x"), options({ lookup })));
    expect(err.code).toBe("URL_NOT_ALLOWED");
    expect(err.message).toBe("host 'mixed.test' resolves to 10.0.0.7, which is not allowed: 10.0.0.7 is in 10.0.0.0/8 (private, RFC 1918)");
    expect(calls).toEqual(["mixed.test"]);
  });

  it("connects to the checked address with the URL's Host header and asks DNS only once", async () => {
    const server = await serve(serveBody(Buffer.from("hello")));
    const calls: string[] = [];
    let answers = 0;
    const rebinding: Lookup = async (hostname) => {
      calls.push(hostname);
      return [{ address: answers++ === 0 ? "127.0.0.1" : "10.0.0.1", family: 4 }];
    };
    const result = await safeDownload(server.url("/a", "rebind.test"), path.join(dir, "x"), options({ lookup: rebinding }));
    expect(result.bytes).toBe(5);
    expect(calls).toEqual(["rebind.test"]);
    expect(server.requests[0]?.headers.host).toBe(`rebind.test:${server.port}`);
  });

  it("follows a redirect on an allowed host and reports the final URL", async () => {
    const server = await serve((req, res) => (req.url === "/old" ? res.writeHead(302, { location: "/new" }).end() : serveBody(Buffer.from("moved"))(req, res)));
    const result = await safeDownload(server.url("/old"), path.join(dir, "x"), options());
    expect(result.finalUrl).toBe(server.url("/new"));
    expect(server.requests.map((r) => r.url)).toEqual(["/old", "/new"]);
  });

  it.each(["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:PORT/", "file:///etc/passwd"])(
    "refuses a redirect from an allowed host to %s",
    async (target) => {
      const denied = await serve(serveBody(Buffer.from("metadata")), "127.0.0.2");
      const server = await serve((_req, res) => res.writeHead(301, { location: target.replace("PORT", String(denied.port)) }).end());
      const lookup = fakeLookup({ "allowed.test": ["127.0.0.1"] });
      const opts = options({ allow: parseAllowList("allowed.test"), lookup });
      const err = await failure(safeDownload(server.url("/image", "allowed.test"), path.join(dir, "x"), opts));
      expect(err.code).toBe("URL_NOT_ALLOWED");
      expect(err.message).toContain(`redirect from ${server.url("/image", "allowed.test")} to `);
      expect(server.requests).toHaveLength(1);
      expect(denied.connections).toBe(0);
    },
  );

  it("gives up after too many redirects", async () => {
    let hops = 0;
    const server = await serve((_req, res) => res.writeHead(302, { location: `/hop${++hops}` }).end());
    const err = await failure(safeDownload(server.url("/"), path.join(dir, "x"), options({ maxRedirects: 3 })));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/^gave up after 3 redirects/);
    expect(server.requests).toHaveLength(4);
  });

  it("resumes a download that was cut halfway with a Range request", async () => {
    const body = randomBytes(1024 * 1024);
    let cut = true;
    const server = await serve((req, res) => {
      if (!cut) return serveBody(body, { ranges: true })(req, res);
      cut = false;
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, body.length / 2), () => setTimeout(() => req.socket.destroy(), 50));
    });
    const dest = path.join(dir, "disk.img");
    const first = await failure(safeDownload(server.url("/disk.img"), dest, options()));
    expect(first.code).toBe("DOWNLOAD_FAILED");
    expect(first.retryable).toBe(true);
    const kept = (await stat(dest)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(body.length / 2);
    const reports: DownloadProgress[] = [];
    const result = await safeDownload(server.url("/disk.img"), dest, options({ onProgress: (p) => reports.push(p) }));
    expect(server.requests[1]?.headers.range).toBe(`bytes=${kept}-`);
    expect(result.bytes).toBe(body.length);
    expect(reports.at(-1)).toMatchObject({ bytesDone: body.length, bytesTotal: body.length });
    expect(await fileSha(dest)).toBe(sha256(body));
  });

  it("starts over when the server ignores the Range and answers 200", async () => {
    const body = randomBytes(200_000);
    const server = await serve(serveBody(body));
    const dest = path.join(dir, "disk.img");
    await writeFile(dest, randomBytes(5000));
    const result = await safeDownload(server.url("/disk.img"), dest, options());
    expect(server.requests[0]?.headers.range).toBe("bytes=5000-");
    expect(result.bytes).toBe(body.length);
    expect(await fileSha(dest)).toBe(sha256(body));
  });

  it("starts over when a 206 answer does not begin where the file ends", async () => {
    const body = randomBytes(100_000);
    const server = await serve((req, res) => {
      if (req.headers.range === undefined) return serveBody(body)(req, res);
      res.writeHead(206, { "content-range": `bytes 0-99/${body.length}`, "content-length": 100 }).end(body.subarray(0, 100));
    });
    const dest = path.join(dir, "disk.img");
    await writeFile(dest, body.subarray(0, 4000));
    expect((await safeDownload(server.url("/d"), dest, options())).bytes).toBe(body.length);
    expect(server.requests.map((r) => r.headers.range)).toEqual(["bytes=4000-", undefined]);
    expect(await fileSha(dest)).toBe(sha256(body));
  });

  it("keeps a complete file when the server answers 416 with the same size", async () => {
    const body = randomBytes(5000);
    const server = await serve((_req, res) => res.writeHead(416, { "content-range": `bytes */${body.length}` }).end());
    const dest = path.join(dir, "disk.img");
    await writeFile(dest, body);
    expect(await safeDownload(server.url("/d"), dest, options())).toMatchObject({ bytes: body.length });
    expect(await fileSha(dest)).toBe(sha256(body));
  });

  it("refuses a Content-Length over the size limit before writing anything", async () => {
    const server = await serve(serveBody(randomBytes(300_000)));
    const err = await failure(safeDownload(server.url("/big"), path.join(dir, "x"), options({ maxBytes: 100_000 })));
    expect(err.code).toBe("IMAGE_TOO_LARGE");
    expect(err.message).toContain("300000 bytes, more than the limit of 100000");
    expect(existsSync(path.join(dir, "x"))).toBe(false);
  });

  it("aborts a stream without Content-Length once it passes the size limit", async () => {
    const server = await serve(serveBody(randomBytes(2_000_000), { contentLength: false, delayMs: 5 }));
    const dest = path.join(dir, "x");
    const err = await failure(safeDownload(server.url("/endless"), dest, options({ maxBytes: 100_000 })));
    expect(err.code).toBe("IMAGE_TOO_LARGE");
    expect(err.message).toContain("more than 100000 bytes");
    expect((await stat(dest)).size).toBeLessThanOrEqual(100_000);
  });

  it("fails without retry on 404 and with retry on 503", async () => {
    const server = await serve((req, res) => res.writeHead(req.url === "/missing" ? 404 : 503).end());
    const notFound = await failure(safeDownload(server.url("/missing"), path.join(dir, "x"), options()));
    expect(notFound).toMatchObject({ code: "DOWNLOAD_FAILED", retryable: false, details: { status: 404 } });
    expect(notFound.message).toBe(`${server.url("/missing")} answered HTTP 404 Not Found`);
    const unavailable = await failure(safeDownload(server.url("/busy"), path.join(dir, "x"), options()));
    expect(unavailable).toMatchObject({ code: "DOWNLOAD_FAILED", retryable: true, details: { status: 503 } });
  });

  it("stops promptly when the signal aborts", async () => {
    let closed = false;
    const server = await serve((req, res) => {
      res.on("close", () => (closed = true));
      serveBody(randomBytes(50 * 65536), { delayMs: 100 })(req, res);
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const started = performance.now();
    const err = await failure(safeDownload(server.url("/slow"), path.join(dir, "x"), options({ signal: ac.signal })));
    expect(err.code).toBe("JOB_CANCELLED");
    expect(performance.now() - started).toBeLessThan(1500);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(true);
  });

  it("fails with retry when the server stalls longer than the idle timeout", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-length": 1000 });
      res.write(Buffer.alloc(10));
    });
    const err = await failure(safeDownload(server.url("/stall"), path.join(dir, "x"), options({ idleTimeoutMs: 300 })));
    expect(err).toMatchObject({ code: "DOWNLOAD_FAILED", retryable: true });
    expect(err.message).toContain("stalled");
  });

  it("fails with retry when the whole download takes longer than its timeout", async () => {
    const server = await serve(serveBody(randomBytes(40 * 65536), { delayMs: 50 }));
    const err = await failure(safeDownload(server.url("/slow"), path.join(dir, "x"), options({ timeoutMs: 400 })));
    expect(err).toMatchObject({ code: "DOWNLOAD_FAILED", retryable: true });
    expect(err.message).toContain("did not finish within");
  });

  it("downloads from an allowed IPv6 loopback address", async () => {
    const server = await serve(serveBody(Buffer.from("six")), "::1");
    const result = await safeDownload(server.url("/v6"), path.join(dir, "x"), options({ allow: parseAllowList("::1/128") }));
    expect(result).toMatchObject({ bytes: 3, finalUrl: server.url("/v6") });
  });

  it("speaks TLS to the pinned address with the host name as SNI", async () => {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test"], { stdio: "ignore" });
    const tlsServer = https.createServer({ key: await readFile(key), cert: await readFile(cert) });
    let sni: string | false | null | undefined;
    tlsServer.on("secureConnection", (s) => (sni = s.servername));
    const server = await serve(serveBody(Buffer.from("secure")), "127.0.0.1", tlsServer);
    const opts = options({ allow: parseAllowList("images.test"), lookup: fakeLookup({ "images.test": ["127.0.0.1"] }), ca: await readFile(cert, "utf8") });
    const result = await safeDownload(server.url("/tls", "images.test"), path.join(dir, "x"), opts);
    expect(result.bytes).toBe(6);
    expect(sni).toBe("images.test");
  });
});
