// The fault suite's own PostgreSQL and Redis: child processes on free ports and in its own
// directory, so restarting or emptying them cannot disturb anything else on the machine.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { chown, mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { freePort } from "../../apps/api/src/testing/privateRedis.js";

export { freePort };

const execFileP = promisify(execFile);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(intervalMs);
  }
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once("exit", () => r()));
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile("/etc/passwd", "utf8");
  const line = passwd.split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`there is no '${name}' user: install PostgreSQL (apt-get install postgresql) so its server can run as that user`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres. */
async function postgresBinDir(): Promise<string> {
  const root = "/usr/lib/postgresql";
  const versions = (await readdir(root).catch(() => [] as string[])).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no PostgreSQL server under ${root}: install it (apt-get install postgresql)`);
  return path.join(root, versions[0] as string, "bin");
}

/**
 * A PostgreSQL cluster of its own (initdb into `dir`, trust auth, fsync off), run as the
 * `postgres` OS user when this process is root. `restart()` stops it with a fast shutdown and
 * starts it again on the same port and directory.
 */
export class PostgresServer {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
    private readonly owner: { uid: number; gid: number } | undefined,
    private readonly logFile: string,
  ) {}

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async create(dir: string, logFile: string): Promise<PostgresServer> {
    const bin = await postgresBinDir();
    const owner = process.getuid?.() === 0 ? await userIds("postgres") : undefined;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (owner) await chown(dir, owner.uid, owner.gid);
    await execFileP(path.join(bin, "initdb"), ["-D", dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], {
      ...owner,
      env: { PATH: process.env.PATH, LANG: "C.UTF-8" },
      cwd: dir,
    }).catch((err: unknown) => {
      const e = err as { stderr?: string; message: string };
      throw new Error(`initdb failed: ${e.stderr || e.message}`, { cause: err });
    });
    const server = new PostgresServer(dir, await freePort(), bin, owner, logFile);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    this.log ??= createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(
      path.join(this.bin, "postgres"),
      ["-D", this.dir, "-p", String(this.port), "-k", this.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
        "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"],
      { ...this.owner, cwd: this.dir, env: { PATH: process.env.PATH, LANG: "C.UTF-8" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.child = child;
    await waitUntil("PostgreSQL to accept connections", async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited with code ${child.exitCode}; see ${this.logFile}`);
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    }, 30_000, 100);
  }

  /** Fast shutdown (SIGINT: running transactions are rolled back, clients disconnected), then waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT");
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited(child);
      clearTimeout(killer);
    }
  }

  async restart(pauseMs: number): Promise<void> {
    await this.stop();
    await sleep(pauseMs);
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop();
    this.log?.end();
  }
}

/** A Redis without persistence: a restart is a kill and an empty server on the same port. */
export class RedisServer {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;

  private constructor(
    readonly port: number,
    private readonly logFile: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(logFile: string): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), logFile);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    this.log ??= createWriteStream(this.logFile, { flags: "a" });
    const child = spawn("redis-server", ["--port", String(this.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--daemonize", "no"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    this.child = child;
    await waitUntil("Redis to answer PING", async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}; see ${this.logFile}`);
      return (await this.command(["PING"])) === "PONG";
    }, 20_000, 50);
  }

  /** SIGKILL: what is in memory is gone, as after a crash without persistence. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill("SIGKILL");
    await exited(child);
  }

  async restart(pauseMs: number): Promise<void> {
    await this.kill();
    await sleep(pauseMs);
    await this.start();
  }

  async command(args: [string, ...string[]]): Promise<unknown> {
    const redis = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    redis.on("error", () => undefined);
    try {
      await redis.connect();
      return await redis.call(...args);
    } finally {
      redis.disconnect();
    }
  }

  async close(): Promise<void> {
    await this.kill();
    this.log?.end();
  }
}
