// The chaos script: a seeded, shuffled list of faults run one after another during the load. A
// worker is killed (-9) while a job of a chosen type runs on it (the script submits that job itself
// and polls Postgres until it is `running`), then restarted after a short pause; an API is killed
// (once in the middle of an upload) and restarted; Redis is restarted empty and FLUSHALLed;
// PostgreSQL is restarted; a worker is paused (SIGSTOP) past the offline threshold.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { ApiClient, Submitted } from "./client.js";
import type { Load } from "./load.js";
import { TERMINAL, VM_MEMORY } from "./load.js";
import type { Prng } from "./prng.js";
import { sleep } from "./services.js";
import { HOSTS, type FaultStack, type HostId } from "./stack.js";
import { uploadImage } from "./upload.js";

export const KILL_TYPES = ["vm.create", "vm.start", "vm.stop", "vm.delete", "image.import", "image.export", "vm.export", "vm.snapshot.create", "vm.backup"] as const;
export type KillType = (typeof KILL_TYPES)[number];

export type FaultKind = "kill -9 worker" | "kill -9 api" | "restart redis (empty)" | "redis FLUSHALL" | "restart postgres" | "pause worker (SIGSTOP)";

type Step = { kind: "kill -9 worker"; type: KillType } | { kind: "kill -9 api"; midUpload: boolean } | { kind: Exclude<FaultKind, "kill -9 worker" | "kill -9 api"> };

export interface FaultRecord {
  kind: FaultKind;
  detail: string;
  /** Seconds since the run started. */
  at: number;
  durationMs: number;
}

export interface KilledJob {
  jobId: string;
  type: string;
  host: string;
}

/** How long after a job turns `running` the kill may land, per type (ms): later for longer jobs. */
const KILL_DELAY_MS: Record<KillType, number> = {
  "vm.create": 30,
  "vm.start": 80,
  "vm.stop": 1500,
  "vm.delete": 20,
  "image.import": 300,
  "image.export": 300,
  "vm.export": 300,
  "vm.snapshot.create": 100,
  "vm.backup": 300,
};

export class Chaos {
  readonly faults: FaultRecord[] = [];
  /** Kill types whose job was never seen running (three tries). */
  readonly missed: KillType[] = [];
  readonly killedJobs: KilledJob[] = [];
  readonly errors: string[] = [];
  readonly midUploads: { name: string; outcome: string; resumes: number }[] = [];
  private pending: Promise<void>[] = [];
  private seq = 0;
  private stopped = false;
  /** A worker's restart after a kill, awaited before the next fault that needs that worker. */
  private readonly restarting = new Map<HostId, Promise<void>>();

  constructor(
    private readonly stack: FaultStack,
    private readonly client: ApiClient,
    private readonly load: Load,
    private readonly rng: Prng,
    private readonly say: (line: string) => void,
  ) {}

  plan(): Step[] {
    const steps: Step[] = [
      ...KILL_TYPES.map((type) => ({ kind: "kill -9 worker" as const, type })),
      { kind: "kill -9 api", midUpload: true },
      { kind: "kill -9 api", midUpload: false },
      { kind: "restart redis (empty)" },
      { kind: "redis FLUSHALL" },
      { kind: "restart postgres" },
      { kind: "pause worker (SIGSTOP)" },
    ];
    return this.rng.shuffle(steps);
  }

  private async ready(host?: HostId): Promise<void> {
    await Promise.all(host ? [this.restarting.get(host)] : [...this.restarting.values()]);
  }

  async run(): Promise<void> {
    // The VMs the kills act on: a stopped and a running one per host, made while the load starts.
    await Promise.all(HOSTS.flatMap((h) => [this.createVm(h, false), this.createVm(h, true)])).catch((err: unknown) => {
      this.errors.push(`preparing the chaos VMs: ${String(err)}`);
    });
    const steps = this.plan();
    this.say(`chaos plan: ${steps.map((s) => (s.kind === "kill -9 worker" ? `kill worker during ${s.type}` : s.kind === "kill -9 api" && s.midUpload ? "kill api mid-upload" : s.kind)).join(", ")}`);
    for (const step of steps) {
      await sleep(this.rng.int(1000, 2500));
      if (this.stopped) break;
      try {
        await this.inject(step);
      } catch (err) {
        const text = `${step.kind}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
        this.errors.push(text);
        this.say(`chaos error (suite): ${text.split("\n")[0] ?? ""}`);
      }
    }
    await this.ready();
    await Promise.all(this.pending);
  }

  /** Skips the faults not started yet. */
  stop(): void {
    this.stopped = true;
  }

  private now(): number {
    return (Date.now() - this.stack.t0) / 1000;
  }

  private record(kind: FaultKind, detail: string, startedAt: number): void {
    const at = (startedAt - this.stack.t0) / 1000;
    this.faults.push({ kind, detail, at, durationMs: Date.now() - startedAt });
    this.say(`fault at +${at.toFixed(1)}s: ${kind}: ${detail}`);
  }

  private async inject(step: Step): Promise<void> {
    // One fault at a time: a worker still restarting from the last kill comes up first.
    if (step.kind !== "kill -9 worker") await this.ready();
    const started = Date.now();
    switch (step.kind) {
      case "kill -9 worker":
        return this.killDuring(step.type);
      case "kill -9 api":
        return step.midUpload ? this.killApiMidUpload() : this.killApi(this.rng.int(0, this.stack.apis.length - 1), "while serving the load");
      case "restart redis (empty)": {
        const pause = this.rng.int(1000, 3000);
        await this.stack.redis.restart(pause);
        return this.record(step.kind, `killed, started empty after ${pause} ms`, started);
      }
      case "redis FLUSHALL":
        await this.stack.redis.command(["FLUSHALL"]);
        return this.record(step.kind, "every key gone", started);
      case "restart postgres": {
        const pause = this.rng.int(500, 2500);
        await this.stack.pg.restart(pause);
        return this.record(step.kind, `fast shutdown, started again after ${pause} ms`, started);
      }
      case "pause worker (SIGSTOP)": {
        const host = this.rng.pick(HOSTS);
        const worker = this.stack.workers.get(host);
        await worker?.kill("SIGSTOP");
        await sleep(8000);
        await worker?.kill("SIGCONT");
        return this.record(step.kind, `worker ${host} stopped for 8 s (offline after ${5} s), then SIGCONT`, started);
      }
    }
  }

  private async killApi(i: number, why: string): Promise<void> {
    const started = Date.now();
    const api = this.stack.apis[i];
    if (!api) throw new Error(`no API ${i}`);
    await api.proc.kill("SIGKILL");
    const pause = this.rng.int(1000, 3000);
    this.record("kill -9 api", `${api.proc.name} ${why}; restarted after ${pause} ms`, started);
    await sleep(pause);
    await this.stack.startApi(i);
  }

  /** An 8 MiB upload sent slowly to one API, which is killed once 2 MiB went out; the upload resumes on the other. */
  private async killApiMidUpload(): Promise<void> {
    const first = this.rng.int(0, this.stack.apis.length - 1);
    const boot = await readFile(path.join(this.stack.importDir, "boot.raw"));
    const content = Buffer.alloc(8 * 1024 * 1024);
    boot.copy(content);
    let sent = 0;
    let sentTo = first;
    const name = `cxu-${++this.seq}`;
    const upload = uploadImage(this.client, "image upload", name, content, {
      chunkBytes: content.length,
      first,
      throttle: { pieceBytes: 128 * 1024, delayMs: 40 },
      onSent: (n, api) => {
        sent = n;
        sentTo = api;
      },
    });
    const deadline = Date.now() + 30_000;
    while (sent < 2 * 1024 * 1024 && Date.now() < deadline) await sleep(20);
    if (sent < 2 * 1024 * 1024) this.say(`upload ${name} did not get going within 30 s; killing the API anyway`);
    await this.killApi(sentTo, `mid-upload of ${name} (${(sent / 1024 / 1024).toFixed(1)} of 8 MiB sent)`);
    this.pending.push(
      upload.then(
        (r) => {
          this.midUploads.push({ name, outcome: r.outcome.kind === "accepted" ? `import job ${r.outcome.jobId}` : JSON.stringify(r.outcome), resumes: r.resumes });
        },
        (err: unknown) => {
          this.errors.push(`mid-upload ${name}: ${String(err)}`);
        },
      ),
    );
  }

  /** Submits a job of `type` (on a host the script picks, where it can), kills its worker while it runs. */
  private async killDuring(type: KillType): Promise<void> {
    const host = this.rng.pick(HOSTS);
    await this.ready(host);
    for (let attempt = 1; attempt <= 3; attempt++) {
      const started = Date.now();
      const jobId = await this.provoke(type, host);
      if (jobId === null) continue;
      const caught = await this.catchRunning(jobId, type);
      if (caught === null) continue;
      await this.ready(caught);
      const worker = this.stack.workers.get(caught);
      if (!worker) throw new Error(`no worker ${caught}`);
      await worker.kill("SIGKILL");
      this.killedJobs.push({ jobId, type, host: caught });
      const pause = this.rng.int(1000, 3000);
      this.record("kill -9 worker", `worker ${caught} while ${type} job ${jobId} ran; restarted after ${pause} ms`, started);
      this.restarting.set(
        caught,
        this.stack.restartWorkerAfter(caught, pause).catch((err: unknown) => {
          this.errors.push(`restarting worker ${caught}: ${String(err)}`);
          this.say(`chaos error (suite): worker ${caught} did not come back: ${String(err).split("\n")[0] ?? ""}`);
        }),
      );
      return;
    }
    this.missed.push(type);
    this.say(`could not catch a ${type} job running (3 tries); no kill for it`);
  }

  /** Polls the job until it runs (then waits a little, per type) and returns its host, or null if it ended first. */
  private async catchRunning(jobId: string, type: KillType): Promise<HostId | null> {
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      const row = (await this.stack.query<{ state: string; hostId: string }>(`SELECT state, "hostId" FROM "Job" WHERE id = $1`, [jobId]))[0];
      if (row && TERMINAL.has(row.state)) return null;
      if (row?.state === "running") {
        await sleep(this.rng.int(0, KILL_DELAY_MS[type]));
        const again = (await this.stack.query<{ state: string }>(`SELECT state FROM "Job" WHERE id = $1`, [jobId]))[0];
        if (again?.state !== "running") return null;
        return row.hostId as HostId;
      }
      await sleep(10);
    }
    return null;
  }

  private async wait(s: Submitted, timeoutMs = 45_000): Promise<string> {
    return s.kind === "accepted" ? this.load.waitJob(s.jobId, timeoutMs) : s.kind;
  }

  /** A chaos VM (`cx-N`, on the big image so exports and backups take a while) on `host` in `want` state and unlocked. */
  private async ensureVm(host: HostId, want: "stopped" | "running"): Promise<string | null> {
    for (let tries = 0; tries < 3; tries++) {
      const rows = await this.stack.query<{ name: string; state: string; lockJobId: string | null }>(
        `SELECT name, state, "lockJobId" FROM "Vm" WHERE name LIKE 'cx-%' AND "hostId" = $1 ORDER BY name`,
        [host],
      );
      const ready = rows.find((r) => r.state === want && r.lockJobId === null);
      if (ready) return ready.name;
      const stopped = rows.find((r) => r.state === "stopped" && r.lockJobId === null);
      if (want === "running" && stopped) {
        await this.wait(await this.client.submit("chaos vm start", "POST", `/v1/vms/${stopped.name}/start`));
        continue;
      }
      await this.createVm(host, want === "running");
    }
    return null;
  }

  private async createVm(host: HostId, start: boolean): Promise<void> {
    const name = `cx-${++this.seq}`;
    await this.wait(await this.client.submit("chaos vm create", "POST", "/v1/vms", { name, image: "big", memory: VM_MEMORY, networks: [], host, start }));
  }

  private async provoke(type: KillType, host: HostId): Promise<string | null> {
    const c = this.client;
    let s: Submitted;
    switch (type) {
      case "vm.create":
        s = await c.submit("chaos vm create", "POST", "/v1/vms", { name: `cx-${++this.seq}`, image: "big", memory: VM_MEMORY, networks: [], host, start: true });
        break;
      case "vm.start":
      case "vm.export":
      case "vm.backup": {
        const vm = await this.ensureVm(host, "stopped");
        if (!vm) return null;
        if (type === "vm.start") s = await c.submit("chaos vm start", "POST", `/v1/vms/${vm}/start`);
        else if (type === "vm.export") s = await c.submit("chaos vm export", "POST", `/v1/vms/${vm}/export`, { format: "raw" });
        else s = await c.submit("chaos vm backup", "POST", `/v1/vms/${vm}/backups`, {});
        break;
      }
      case "vm.stop":
      case "vm.delete":
      case "vm.snapshot.create": {
        const vm = await this.ensureVm(host, "running");
        if (!vm) return null;
        if (type === "vm.stop") s = await c.submit("chaos vm stop", "POST", `/v1/vms/${vm}/stop`, { timeoutSeconds: 3 });
        else if (type === "vm.delete") s = await c.submit("chaos vm delete", "DELETE", `/v1/vms/${vm}`);
        else s = await c.submit("chaos vm snapshot", "POST", `/v1/vms/${vm}/snapshots`, { name: `cs-${++this.seq}`, memory: true });
        break;
      }
      case "image.import":
        s = await c.submit("chaos image import", "POST", "/v1/images", { name: `cxi-${++this.seq}`, source: { type: "path", path: path.join(this.stack.importDir, "big.raw") }, host });
        break;
      case "image.export":
        s = await c.submit("chaos image export", "POST", "/v1/images/big/export", { format: "raw" });
        break;
    }
    if (s.kind !== "accepted") {
      this.say(`chaos: ${type} on ${host} was not accepted (${s.kind === "refused" ? s.code : s.kind}) at +${this.now().toFixed(1)}s`);
      await sleep(1000);
      return null;
    }
    return s.jobId;
  }
}
