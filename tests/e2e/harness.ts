import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { createPrismaClient, type PrismaClient } from "@iaas/db";
import { createTestDatabase, testRedisUrl, type TestDatabase } from "@iaas/db/testing";
import { freePort } from "../../apps/api/src/testing/privateRedis.js";

const execFileP = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, "../..");
const API_MAIN = path.join(ROOT, "apps/api/dist/main.js");
const WORKER_MAIN = path.join(ROOT, "apps/worker/dist/main.js");
const CLI_MAIN = path.join(ROOT, "apps/cli/dist/main.js");

export interface StackOptions {
  /** Extra environment for every worker (e.g. IAAS_URL_ALLOW_LIST, IAAS_IMPORT_DIR, IAAS_MAX_IMAGE_VIRTUAL_SIZE). */
  workerEnv?: NodeJS.ProcessEnv;
  /** Extra environment for the API. */
  apiEnv?: NodeJS.ProcessEnv;
  /** Extra environment for one host's worker (e.g. IAAS_NETNS, IAAS_HOST_ADDRESS), by host id. */
  hostEnv?: Record<string, NodeJS.ProcessEnv>;
  /** Create the `default` nat network once the API is up (default true). */
  defaultNetwork?: boolean;
  /** API processes to run (default 1); with more, the CLI is given all of them (IAAS_URL=a,b). */
  apis?: number;
  /** Run a host's worker as this user instead of root (its data directory is given to it). */
  hostUser?: Record<string, { uid: number; gid: number }>;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventually<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 20_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(intervalMs);
  }
}

/**
 * A whole stack as real processes: the API and one worker per host, on a fresh database, a unique
 * queue prefix and short temp directories, driven through the built `iaas` binary.
 */
export class Stack {
  readonly workers = new Map<string, ChildProcess>();
  /** Each host's worker metrics port (IAAS_METRICS_PORT): `http://127.0.0.1:<port>/metrics`. */
  readonly metricsPorts = new Map<string, number>();
  private readonly apis: (ChildProcess | undefined)[] = [];
  private readonly apiPorts: number[] = [];
  readonly logs: string[] = [];
  url = "";

  private constructor(
    readonly dir: string,
    readonly database: TestDatabase,
    readonly redisUrl: string,
    readonly prefix: string,
    readonly db: PrismaClient,
    private readonly options: StackOptions = {},
  ) {}

  static async start(hosts: string[], options: StackOptions = {}): Promise<Stack> {
    const dir = await mkdtemp("/tmp/ie-");
    // dnsmasq reads its hosts files as `nobody`: the host data directories must be traversable.
    await chmod(dir, 0o755);
    const database = await createTestDatabase();
    const redisUrl = await testRedisUrl();
    const stack = new Stack(dir, database, redisUrl, `e2e-${randomBytes(4).toString("hex")}`, createPrismaClient(database.url), options);
    try {
      for (let i = 0; i < (options.apis ?? 1); i++) stack.apiPorts.push(await freePort());
      stack.url = stack.apiUrl(0);
      for (let i = 0; i < stack.apiPorts.length; i++) await stack.startApi(i);
      if (options.defaultNetwork !== false) {
        const res = await fetch(`${stack.url}/v1/networks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "default" }) });
        if (res.status !== 201) throw new Error(`could not create the default network: ${res.status} ${await res.text()}`);
      }
      for (const host of hosts) await stack.startWorker(host);
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  /** The base URL of API process `i`. */
  apiUrl(i: number): string {
    return `http://127.0.0.1:${this.apiPorts[i] ?? 0}`;
  }

  /** What the CLI is pointed at: every API process, comma-separated. */
  get cliUrl(): string {
    return this.apiPorts.map((_, i) => this.apiUrl(i)).join(",");
  }

  /** Starts (or restarts) API process `i` on its port and waits until it is ready. */
  async startApi(i: number): Promise<void> {
    const child = this.spawn(i === 0 ? "api" : `api${i}`, API_MAIN, { IAAS_API_PORT: String(this.apiPorts[i]), IAAS_RELAY_INTERVAL_MS: "500", IAAS_AUTH: "none", ...this.options.apiEnv });
    this.apis[i] = child;
    await eventually(`API ${i} to be ready`, async () => {
      if (child.exitCode !== null) throw new Error(`API ${i} exited: ${this.logTail()}`);
      return (await fetch(`${this.apiUrl(i)}/readyz`)).ok;
    }, 90_000);
  }

  /** Stops API process `i` with `signal` (SIGKILL by default); resolves with its exit code once it is gone. */
  async killApi(i: number, signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    const child = this.apis[i];
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill(signal);
    const code = await exited;
    this.apis[i] = undefined;
    return code;
  }

  /** The worker process of a host (to signal it). */
  workerProcess(hostId: string): ChildProcess | undefined {
    return this.workers.get(hostId);
  }

  private baseEnv(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: this.database.url,
      REDIS_URL: this.redisUrl,
      IAAS_QUEUE_PREFIX: this.prefix,
      IAAS_IMAGE_STORE: path.join(this.dir, "store"),
      IAAS_HOST_OFFLINE_SECONDS: "5",
      LOG_LEVEL: "info",
    };
  }

  private spawn(name: string, main: string, env: NodeJS.ProcessEnv, user?: { uid: number; gid: number }): ChildProcess {
    const child = spawn(process.execPath, [main], { env: { ...this.baseEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"], ...user });
    const keep = (chunk: Buffer) => {
      this.logs.push(`[${name}] ${chunk.toString()}`);
      if (this.logs.length > 2000) this.logs.splice(0, 1000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    return child;
  }

  /** Starts (or restarts) the worker of a host and waits until it has registered and heartbeats. */
  async startWorker(hostId: string): Promise<void> {
    const since = new Date();
    const user = this.options.hostUser?.[hostId];
    if (user) {
      // Its own data directory, and the shared image store it imports into and exports from.
      for (const dir of [hostId, "store", "store/images", "store/staging", "store/exports"].map((d) => path.join(this.dir, d))) {
        await mkdir(dir, { recursive: true });
        await chown(dir, user.uid, user.gid);
      }
    }
    const metricsPort = this.metricsPorts.get(hostId) ?? (await freePort());
    this.metricsPorts.set(hostId, metricsPort);
    const child = this.spawn(hostId, WORKER_MAIN, {
      IAAS_HOST_ID: hostId,
      IAAS_METRICS_PORT: String(metricsPort),
      IAAS_HOST_NAME: hostId,
      IAAS_DATA_DIR: path.join(this.dir, hostId),
      IAAS_ACCEL: "tcg",
      IAAS_HEARTBEAT_SECONDS: "1",
      IAAS_MONITOR_INTERVAL_MS: "300",
      IAAS_HOST_CPUS: "4",
      IAAS_HOST_MEMORY: "2G",
      IAAS_HOST_DISK: "20G",
      // Workers in the root namespace never make bridges: tests that want them give IAAS_NETNS.
      IAAS_NETWORK_MODE: "user",
      ...this.options.workerEnv,
      ...this.options.hostEnv?.[hostId],
    }, user);
    this.workers.set(hostId, child);
    await eventually(`worker ${hostId} to register`, async () => {
      if (child.exitCode !== null) throw new Error(`worker ${hostId} exited: ${this.logTail()}`);
      const host = await this.db.host.findUnique({ where: { id: hostId } });
      return host !== null && host.startedAt >= new Date(since.getTime() - 1000);
    }, 90_000);
  }

  /** Kills a worker's process (SIGKILL by default) and waits for it to be gone. */
  async killWorker(hostId: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.workers.get(hostId);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
    this.workers.delete(hostId);
  }

  async cli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
    try {
      const { stdout, stderr } = await execFileP(process.execPath, [CLI_MAIN, ...args], {
        env: { PATH: process.env.PATH, HOME: this.dir, IAAS_URL: this.cliUrl, ...opts.env },
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number | string; stdout?: string; stderr?: string };
      if (typeof e.code !== "number") throw err;
      return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  /** Starts the CLI without waiting for it: the child (to signal it) and its outcome. */
  cliBackground(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; done: Promise<CliResult> } {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      env: { PATH: process.env.PATH, HOME: this.dir, IAAS_URL: this.cliUrl, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    const done = new Promise<CliResult>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
    });
    return { child, done };
  }

  /** Runs the CLI with `-o json` and parses its output, failing with the CLI's stderr. */
  async cliJson<T>(args: string[]): Promise<T> {
    const r = await this.cli([...args, "-o", "json"]);
    if (r.code !== 0) throw new Error(`iaas ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  logTail(lines = 40): string {
    return this.logs.join("").split("\n").slice(-lines).join("\n");
  }

  /** QEMU processes the tests started, found from the pidfiles under the stack's directory. */
  async qemuPids(): Promise<number[]> {
    const pids: number[] = [];
    for (const host of await readdir(this.dir).catch(() => [])) {
      const vmsDir = path.join(this.dir, host, "vms");
      for (const vm of await readdir(vmsDir).catch(() => [])) {
        const text = await readFile(path.join(vmsDir, vm, "qemu.pid"), "utf8").catch(() => "");
        const pid = Number(text.trim());
        if (pid > 0) pids.push(pid);
      }
    }
    return pids;
  }

  async stop(): Promise<void> {
    for (const host of [...this.workers.keys()]) await this.killWorker(host, "SIGTERM");
    for (let i = 0; i < this.apis.length; i++) await this.killApi(i, "SIGTERM");
    for (const pid of await this.qemuPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await this.db.$disconnect();
    await this.database.drop();
    const redis = new Redis(this.redisUrl);
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${this.prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
    redis.disconnect();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Builds (once, cached) the offline test guests and returns their paths. */
export async function guestImages(which: ("bootsector" | "linux")[] = ["bootsector"]): Promise<{ bootsector: string; linux: string }> {
  const dir = process.env.IAAS_GUEST_DIR ?? path.join(ROOT, ".cache/guests");
  if (which.includes("bootsector")) await execFileP(process.execPath, [path.join(ROOT, "scripts/guest/build-bootsector.mjs"), "--out", dir]);
  if (which.includes("linux")) await execFileP("bash", [path.join(ROOT, "scripts/guest/build-linux.sh"), "--out", dir], { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
  return { bootsector: path.join(dir, "bootsector.raw"), linux: path.join(dir, "linux.qcow2") };
}
