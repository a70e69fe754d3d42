import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import path from "node:path";
import type { Export, Image, Job } from "@iaas/contracts";
import type { Stack } from "./harness.js";

export const MiB = 1024 * 1024;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program, answering its exit code instead of throwing. */
export function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * MiB }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== "number") {
        reject(err);
        return;
      }
      resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout, stderr });
    });
  });
}

/** qemu-img, failing the test (with its stderr) unless it exits 0. */
export async function qemuImg(...args: string[]): Promise<string> {
  const r = await run("qemu-img", args);
  if (r.code !== 0) throw new Error(`qemu-img ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `qemu-img compare`: exit 0 means identical content. */
export function qemuCompare(a: string, aFormat: string, b: string, bFormat: string): Promise<RunResult> {
  return run("qemu-img", ["compare", "-f", aFormat, a, "-F", bFormat, b]);
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * A raw disk of `size` bytes (a multiple of 1 MiB, at least 4 MiB) with a known pattern: random
 * data, zero stretches (sparse in most formats), a compressible text stretch and random bytes in
 * the very last sector, so a lost tail or a shifted block shows.
 */
export async function writePatternRaw(file: string, size = 4 * MiB): Promise<void> {
  const fh = await open(file, "w");
  try {
    await fh.truncate(size);
    await fh.write(randomBytes(MiB), 0, MiB, 0);
    const text = Buffer.alloc(MiB, "IAAS-PATTERN-0123456789abcdef\n");
    await fh.write(text, 0, MiB, 2 * MiB);
    await fh.write(randomBytes(64 * 1024), 0, 64 * 1024, size - 64 * 1024);
  } finally {
    await fh.close();
  }
}

/** A file of `size` random bytes, written in chunks. */
export async function writeRandom(file: string, size: number): Promise<void> {
  const fh = await open(file, "w");
  try {
    const chunk = 16 * MiB;
    for (let at = 0; at < size; at += chunk) {
      const n = Math.min(chunk, size - at);
      await fh.write(randomBytes(n), 0, n, at);
    }
  } finally {
    await fh.close();
  }
}

/** Files in the store's images/, staging/ and exports/ whose name starts with `id`. */
export async function storeLeftovers(stack: Stack, id: string): Promise<string[]> {
  const found: string[] = [];
  for (const sub of ["images", "staging", "exports"]) {
    for (const name of await readdir(path.join(stack.dir, "store", sub)).catch(() => [] as string[])) {
      if (name.startsWith(id)) found.push(`${sub}/${name}`);
    }
  }
  return found;
}

export function storedImageFile(stack: Stack, image: Pick<Image, "id">): string {
  return path.join(stack.dir, "store", "images", `${image.id}.qcow2`);
}

export async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * GETs a resource from the API (the same JSON `iaas … show -o json` prints). Reads go over REST
 * rather than the CLI: each CLI start costs about a second of CPU on a small machine.
 */
export async function apiGet<T>(stack: Stack, p: string): Promise<T> {
  const res = await fetch(`${stack.url}${p}`);
  if (!res.ok) throw new Error(`GET ${p} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

/** GET status of a resource (404 for one that does not exist). */
export async function apiStatus(stack: Stack, p: string): Promise<number> {
  const res = await fetch(`${stack.url}${p}`);
  await res.arrayBuffer();
  return res.status;
}

export const showImage = (stack: Stack, ref: string) => apiGet<Image>(stack, `/v1/images/${encodeURIComponent(ref)}`);
export const showExport = (stack: Stack, id: string) => apiGet<Export>(stack, `/v1/exports/${id}`);
export const showJob = (stack: Stack, id: string) => apiGet<Job>(stack, `/v1/jobs/${id}`);

/** Jobs of an image, newest first. */
export async function jobsOf(stack: Stack, image: string, type?: string): Promise<Job[]> {
  const q = new URLSearchParams({ image, ...(type ? { type } : {}) });
  return (await apiGet<{ items: Job[] }>(stack, `/v1/jobs?${q.toString()}`)).items;
}

/** The text of a job's events, as `iaas job logs` prints them. */
export async function jobLogs(stack: Stack, jobId: string): Promise<string> {
  const r = await stack.cli(["job", "logs", jobId]);
  if (r.code !== 0) throw new Error(`iaas job logs ${jobId} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * An HTTP server on a loopback address that records every connection and request, with
 * per-path handlers (404 otherwise).
 */
export class TestServer {
  readonly requests: SeenRequest[] = [];
  connections = 0;
  private readonly routes = new Map<string, Handler>();
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: http.Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(host: string): Promise<TestServer> {
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve());
    });
    const ts = new TestServer(server, host, (server.address() as AddressInfo).port);
    server.on("connection", (socket: Socket) => {
      ts.connections++;
      ts.sockets.add(socket);
      socket.on("close", () => ts.sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      ts.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
      const handler = ts.routes.get((req.url ?? "").split("?")[0] ?? "");
      if (handler) handler(req, res);
      else res.writeHead(404).end("not found");
    });
    return ts;
  }

  url(p: string): string {
    return `http://${this.host}:${this.port}${p}`;
  }

  route(p: string, handler: Handler): this {
    this.routes.set(p, handler);
    return this;
  }

  requestsFor(p: string): SeenRequest[] {
    return this.requests.filter((r) => r.url.split("?")[0] === p);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Serves a file with `Range` support (206), like a plain static file server. */
export function serveFile(file: string): Handler {
  return (req, res) => {
    void stat(file).then((info) => {
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      if (m) {
        const start = Number(m[1]);
        const end = m[2] === "" ? info.size - 1 : Math.min(Number(m[2]), info.size - 1);
        if (start >= info.size) {
          res.writeHead(416, { "content-range": `bytes */${info.size}` }).end();
          return;
        }
        res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${info.size}`, "accept-ranges": "bytes" });
        createReadStream(file, { start, end }).pipe(res);
        return;
      }
      res.writeHead(200, { "content-length": info.size, "accept-ranges": "bytes", "content-type": "application/octet-stream" });
      createReadStream(file).pipe(res);
    });
  };
}

export interface CountingProxy {
  url: string;
  /** Every PUT that passed: its Content-Range and the body bytes it carried. */
  puts: { url: string; range: string | null; bytes: number }[];
  close(): Promise<void>;
}

/**
 * A forwarding HTTP proxy in front of the API that counts what uploads send; with
 * `cutFirstPutAfter` it drops both connections of the first PUT once that many bytes passed.
 */
export async function countingProxy(target: string, opts: { cutFirstPutAfter?: number } = {}): Promise<CountingProxy> {
  const t = new URL(target);
  const puts: CountingProxy["puts"] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const rec = req.method === "PUT" ? { url: req.url ?? "", range: req.headers["content-range"] ?? null, bytes: 0 } : null;
    if (rec) puts.push(rec);
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    const cutAt = rec !== null && puts.length === 1 ? opts.cutFirstPutAfter : undefined;
    req.on("data", (chunk: Buffer) => {
      if (!rec) return;
      rec.bytes += chunk.length;
      if (cutAt !== undefined && rec.bytes >= cutAt) {
        up.destroy();
        req.socket.destroy();
      }
    });
    req.pipe(up);
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    puts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Processes whose command line mentions `needle` (read from /proc; nothing is signalled). */
export async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(needle)) found.push(`${pid}: ${cmd.replaceAll("\0", " ")}`);
  }
  return found;
}
