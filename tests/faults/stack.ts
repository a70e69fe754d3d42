// Two API processes and two workers (two hosts) on the suite's own PostgreSQL and Redis, sharing
// one image store and queue prefix; each process logs to a file in the suite's directory.
import { chmod, mkdir, readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { applyMigrations } from "@iaas/db/testing";
import { guestNameFromArgv, readCmdline } from "@iaas/hypervisor";
import { ManagedProcess, type ProcessExit } from "./processes.js";
import { freePort, PostgresServer, RedisServer, sleep, waitUntil } from "./services.js";

export const ROOT = path.resolve(import.meta.dirname, "../..");
const API_MAIN = path.join(ROOT, "apps/api/dist/main.js");
const WORKER_MAIN = path.join(ROOT, "apps/worker/dist/main.js");
export const CLI_MAIN = path.join(ROOT, "apps/cli/dist/main.js");

export const HOSTS = ["fa", "fb"] as const;
export type HostId = (typeof HOSTS)[number];

/** The short timings every process gets, so faults resolve within the suite's few minutes. */
export const TIMINGS = {
  IAAS_HOST_OFFLINE_SECONDS: "5",
  IAAS_HEARTBEAT_SECONDS: "1",
  IAAS_MONITOR_INTERVAL_MS: "1000",
  IAAS_RELAY_INTERVAL_MS: "1000",
  IAAS_JOB_LEASE_SECONDS: "5",
  IAAS_SHUTDOWN_GRACE_SECONDS: "5",
  IAAS_HOST_LOST_SECONDS: "30",
} as const;

export interface QemuProcess {
  pid: number;
  guest: string | null;
  /** The host whose data directory its argv names, or null when it names none. */
  hostId: HostId | null;
  argv: string[];
}

export class FaultStack {
  readonly apis: { proc: ManagedProcess; url: string }[] = [];
  readonly workers = new Map<HostId, ManagedProcess>();
  /** Exits no one asked for, with the log tail of the process. */
  readonly crashes: ProcessExit[] = [];
  /** Worker starts that did not register (the process exited while starting) and were retried. */
  readonly startRetries: ProcessExit[] = [];
  pg!: PostgresServer;
  redis!: RedisServer;
  db!: pg.Pool;
  databaseUrl = "";

  private constructor(
    readonly dir: string,
    readonly t0: number,
    private readonly say: (line: string) => void,
  ) {}

  get storeDir(): string {
    return path.join(this.dir, "store");
  }
  get importDir(): string {
    return path.join(this.dir, "import");
  }
  get logDir(): string {
    return path.join(this.dir, "logs");
  }
  dataDir(host: HostId): string {
    return path.join(this.dir, host);
  }

  /** Starts PostgreSQL, Redis, two APIs and two workers in `dir`; cleans up what it made if that fails. */
  static async start(dir: string, t0: number, say: (line: string) => void): Promise<FaultStack> {
    const stack = new FaultStack(dir, t0, say);
    try {
      await stack.boot();
    } catch (err) {
      await stack.close();
      throw err;
    }
    return stack;
  }

  private async boot(): Promise<void> {
    // QEMU runs as an unprivileged user and Postgres as `postgres`: both must traverse the directory.
    await chmod(this.dir, 0o755);
    for (const d of [this.logDir, this.importDir, this.storeDir]) await mkdir(d, { recursive: true });
    this.pg = await PostgresServer.create(path.join(this.dir, "pg"), path.join(this.logDir, "postgres.log"));
    this.redis = await RedisServer.create(path.join(this.logDir, "redis.log"));
    const admin = new pg.Client({ connectionString: this.pg.url });
    await admin.connect();
    await admin.query("CREATE DATABASE iaas");
    await admin.end();
    const url = new URL(this.pg.url);
    url.pathname = "/iaas";
    this.databaseUrl = url.toString();
    await applyMigrations(this.databaseUrl);
    this.db = new pg.Pool({ connectionString: this.databaseUrl, max: 6, connectionTimeoutMillis: 3000 });
    // A Postgres restart breaks idle connections; the pool drops them and queries retry (query()).
    this.db.on("error", () => undefined);

    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const proc = new ManagedProcess(`api${i + 1}`, API_MAIN, this.apiEnv(port), path.join(this.logDir, `api${i + 1}.log`), this.t0, (e) => this.crashed(e));
      this.apis.push({ proc, url: `http://127.0.0.1:${port}` });
    }
    for (let i = 0; i < this.apis.length; i++) await this.startApi(i);
    for (const host of HOSTS) {
      this.workers.set(host, new ManagedProcess(`worker-${host}`, WORKER_MAIN, this.workerEnv(host), path.join(this.logDir, `worker-${host}.log`), this.t0, (e) => this.crashed(e)));
    }
    await Promise.all(HOSTS.map((h) => this.startWorker(h)));
  }

  private crashed(exit: ProcessExit): void {
    this.crashes.push(exit);
    this.say(`process ${exit.name} exited on its own (code ${String(exit.code)}, signal ${String(exit.signal)}); restarting it`);
  }

  private commonEnv(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: this.dir,
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redis.url,
      IAAS_QUEUE_PREFIX: "faults",
      IAAS_IMAGE_STORE: this.storeDir,
      LOG_LEVEL: "info",
      ...TIMINGS,
    };
  }

  private apiEnv(port: number): NodeJS.ProcessEnv {
    return {
      ...this.commonEnv(),
      IAAS_API_HOST: "127.0.0.1",
      IAAS_API_PORT: String(port),
      IAAS_AUTH: "none",
      IAAS_RATE_LIMIT_PER_MINUTE: "0",
      IAAS_RATE_LIMIT_PER_ADDRESS_PER_MINUTE: "0",
      IAAS_EXPORT_TTL_SECONDS: "3600",
    };
  }

  private workerEnv(host: HostId): NodeJS.ProcessEnv {
    return {
      ...this.commonEnv(),
      IAAS_HOST_ID: host,
      // Several workers on this machine: no metrics endpoints (each would need its own port).
      IAAS_METRICS_PORT: "0",
      IAAS_HOST_NAME: host,
      IAAS_DATA_DIR: this.dataDir(host),
      IAAS_IMPORT_DIR: this.importDir,
      IAAS_ACCEL: "tcg",
      // Workers in the root namespace never make bridges or touch the machine's network.
      IAAS_NETWORK_MODE: "user",
      IAAS_HOST_CPUS: "32",
      IAAS_HOST_MEMORY: "16G",
      IAAS_HOST_DISK: "200G",
    };
  }

  /** Runs a query on the suite's own connection pool, retrying while PostgreSQL restarts. */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], timeoutMs = 30_000): Promise<R[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return (await this.db.query<R>(sql, params)).rows;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }

  async startApi(i: number): Promise<void> {
    const api = this.apis[i];
    if (!api) throw new Error(`no API ${i}`);
    api.proc.starting = true;
    api.proc.spawn();
    await waitUntil(`${api.proc.name} to answer /readyz`, async () => {
      if (!api.proc.alive) throw new Error(`${api.proc.name} exited while starting:\n${await api.proc.tail(20)}`);
      return (await fetch(`${api.url}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
    }, 60_000, 200);
    api.proc.starting = false;
  }

  /**
   * Starts (or restarts) a host's worker and waits until it registered. A start that exits before
   * registering (say it was refused because the killed instance still looked alive) is recorded
   * and retried, as a service manager would.
   */
  async startWorker(host: HostId): Promise<void> {
    const proc = this.workers.get(host);
    if (!proc) throw new Error(`no worker ${host}`);
    const deadline = Date.now() + 90_000;
    for (;;) {
      const since = await this.query<{ now: Date }>("SELECT now() AS now").then((r) => r[0]?.now ?? new Date());
      proc.starting = true;
      const exitsBefore = proc.exits.length;
      proc.spawn();
      try {
        await waitUntil(`worker ${host} to register`, async () => {
          if (!proc.alive) throw new Error("exited while starting");
          const rows = await this.db.query<{ startedAt: Date }>(`SELECT "startedAt" FROM "Host" WHERE id = $1`, [host]);
          const started = rows.rows[0]?.startedAt;
          return started !== undefined && started.getTime() >= since.getTime() - 1000;
        }, Math.max(1000, deadline - Date.now()), 200);
        proc.starting = false;
        return;
      } catch (err) {
        if (proc.alive || Date.now() > deadline) {
          proc.starting = false;
          throw new Error(`worker ${host} did not register: ${(err as Error).message}\n${await proc.tail(30)}`, { cause: err });
        }
        await waitUntil("the exit to be recorded", async () => proc.exits.length > exitsBefore, 5000, 50).catch(() => undefined);
        const exit = proc.exits.at(-1);
        if (exit) this.startRetries.push(exit);
        this.say(`worker ${host} exited while starting (code ${String(exit?.code)}); starting it again in 2 s`);
        await sleep(2000);
      }
    }
  }

  async restartWorkerAfter(host: HostId, pauseMs: number): Promise<void> {
    await sleep(pauseMs);
    await this.startWorker(host);
  }

  /** QEMU processes whose argv names a path under the suite's directory. */
  async qemuProcesses(): Promise<QemuProcess[]> {
    const found: QemuProcess[] = [];
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = await readCmdline(Number(entry));
      if (!argv || !path.basename(argv[0] ?? "").includes("qemu-system")) continue;
      if (!argv.some((a) => a.includes(`${this.dir}/`))) continue;
      const hostId = HOSTS.find((h) => argv.some((a) => a.includes(`${this.dataDir(h)}/`))) ?? null;
      found.push({ pid: Number(entry), guest: guestNameFromArgv(argv), hostId, argv });
    }
    return found;
  }

  /** Every process and file the suite made goes; safe to call more than once and after a failed start. */
  async close(): Promise<void> {
    await Promise.all([...this.workers.values(), ...this.apis.map((a) => a.proc)].map((p) => p.close().catch(() => undefined)));
    for (const q of await this.qemuProcesses().catch(() => [])) {
      try {
        process.kill(q.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await this.db?.end().catch(() => undefined);
    await this.redis?.close().catch(() => undefined);
    await this.pg?.close().catch(() => undefined);
    if (process.env["IAAS_FAULT_KEEP"] !== "1") await rm(this.dir, { recursive: true, force: true });
  }

  /** The last lines of every process's log, for a failed run. */
  async logTails(lines = 25): Promise<string> {
    const parts: string[] = [];
    for (const p of [...this.apis.map((a) => a.proc), ...this.workers.values()]) parts.push(`----- ${p.name} (${p.logFile}) -----\n${await p.tail(lines)}`);
    for (const name of ["postgres.log", "redis.log"]) {
      const text = await readFile(path.join(this.logDir, name), "utf8").catch(() => "");
      parts.push(`----- ${name} -----\n${text.split("\n").slice(-8).join("\n")}`);
    }
    return parts.join("\n");
  }
}
