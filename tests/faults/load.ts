// The mixed load: VM lifecycles (create, start, stop, reboot, snapshot, backup, export, delete),
// image imports from the import directory, image exports, resumable uploads, and a few operations
// through the built `iaas` CLI. Each actor waits for its job before the next step (now and then it
// does not, to meet VM_BUSY), so the load stays within what two cores can run.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { ApiClient, Submitted } from "./client.js";
import type { Prng } from "./prng.js";
import { sleep } from "./services.js";
import { CLI_MAIN, type FaultStack } from "./stack.js";
import { uploadImage } from "./upload.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const VM_MEMORY = "32M";
/** At most this many VMs run (or start) at once, whoever started them: two cores. */
const MAX_RUNNING_VMS = 6;

interface VmRow {
  id: string;
  state: string;
  lockJobId: string | null;
  hostId: string;
}

export class Load {
  private stopped = false;
  /** Exceptions of the suite's own code in an actor (a bug of the suite, reported). */
  readonly errors: string[] = [];
  readonly cliStats = { commands: 0, ok: 0, refused: 0, retried: 0, failed: 0 };
  readonly uploads = { done: 0, resumes: 0 };
  private actors: Promise<void>[] = [];

  constructor(
    readonly stack: FaultStack,
    readonly client: ApiClient,
    private readonly rng: Prng,
    private readonly say: (line: string) => void,
  ) {}

  get stopping(): boolean {
    return this.stopped;
  }

  start(): void {
    const actors: [string, () => Promise<void>][] = [
      ...[1, 2, 3, 4, 5].map((i) => [`vm${i}`, () => this.vmActor(i)] as [string, () => Promise<void>]),
      ["images1", () => this.imageActor(1)],
      ["images2", () => this.imageActor(2)],
      ["exports", () => this.exportActor()],
      ["uploads", () => this.uploadActor()],
      ["cli", () => this.cliActor()],
    ];
    this.actors = actors.map(([name, run]) => this.guard(name, run));
  }

  /** Asks every actor to finish its current step and waits for them. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.actors);
  }

  private async guard(name: string, run: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      try {
        await run();
      } catch (err) {
        const text = `${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
        this.errors.push(text);
        this.say(`load actor error (suite): ${text.split("\n")[0] ?? ""}`);
        await sleep(1000);
      }
    }
  }

  /** The job's final state, or `unfinished` when it is not final within `timeoutMs` (or the load stops). */
  async waitJob(jobId: string, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.stack.query<{ state: string }>(`SELECT state FROM "Job" WHERE id = $1`, [jobId]).catch(() => []);
      const state = rows[0]?.state;
      if (state && TERMINAL.has(state)) return state;
      if (Date.now() > deadline || this.stopped) return "unfinished";
      await sleep(300);
    }
  }

  private async waitSubmitted(s: Submitted, timeoutMs = 60_000): Promise<string> {
    return s.kind === "accepted" ? this.waitJob(s.jobId, timeoutMs) : s.kind;
  }

  private async mayStart(): Promise<boolean> {
    const rows = await this.stack.query<{ n: string }>(`SELECT count(*) AS n FROM "Vm" WHERE state IN ('running', 'starting')`);
    return Number(rows[0]?.n ?? 0) < MAX_RUNNING_VMS;
  }

  async vmRow(name: string): Promise<VmRow | null> {
    const rows = await this.stack.query<VmRow>(`SELECT id, state, "lockJobId", "hostId" FROM "Vm" WHERE name = $1`, [name]);
    return rows[0] ?? null;
  }

  private async vmActor(id: number): Promise<void> {
    const rng = this.rng.fork(`vm${id}`);
    for (let n = 0; !this.stopped; n++) {
      const name = `v${id}-${n}`;
      const body = { name, image: "boot", memory: VM_MEMORY, cpus: 1, start: rng.chance(0.5) && (await this.mayStart()), ...(rng.chance(0.7) ? { networks: [] } : {}) };
      const created = await this.client.submit("vm create", "POST", "/v1/vms", body);
      if (created.kind !== "accepted") {
        await sleep(1000);
        continue;
      }
      await this.waitJob(created.jobId);
      const steps = rng.int(3, 6);
      for (let k = 0; k < steps && !this.stopped; k++) {
        const vm = await this.vmRow(name);
        if (!vm || vm.state === "error" || vm.state === "creating") break;
        if (vm.lockJobId) await this.waitJob(vm.lockJobId, 30_000);
        const s = await this.vmStep(name, vm.state, k, rng, vm.state === "stopped" && (await this.mayStart()));
        if (s.kind === "accepted" && rng.chance(0.1)) {
          // Without waiting: under the VM's lock this is refused with VM_BUSY (counted, not a failure).
          await this.client.submit(vm.state === "running" ? "vm stop" : "vm start", "POST", `/v1/vms/${name}/${vm.state === "running" ? "stop" : "start"}`, vm.state === "running" ? { force: true } : undefined);
        }
        await this.waitSubmitted(s);
      }
      await this.deleteVm(name);
    }
  }

  private async vmStep(name: string, state: string, k: number, rng: Prng, mayStart: boolean): Promise<Submitted> {
    const c = this.client;
    const roll = rng.next();
    if (state === "running") {
      if (roll < 0.5) return c.submit("vm stop", "POST", `/v1/vms/${name}/stop`, rng.chance(0.6) ? { force: true } : { timeoutSeconds: 1 });
      if (roll < 0.65) return c.submit("vm reboot", "POST", `/v1/vms/${name}/reboot`);
      if (roll < 0.85) return c.submit("vm snapshot", "POST", `/v1/vms/${name}/snapshots`, { name: `s${k}`, memory: rng.chance(0.4) });
      return c.submit("vm backup", "POST", `/v1/vms/${name}/backups`, {});
    }
    if (roll < 0.45 && mayStart) return c.submit("vm start", "POST", `/v1/vms/${name}/start`);
    if (roll < 0.6) return c.submit("vm snapshot", "POST", `/v1/vms/${name}/snapshots`, { name: `s${k}` });
    if (roll < 0.8) {
      const s = await c.submit("vm backup", "POST", `/v1/vms/${name}/backups`, {});
      if (s.kind === "accepted" && rng.chance(0.5) && (await this.waitJob(s.jobId)) === "succeeded") {
        const backupId = (s.body["backup"] as { id?: string } | null)?.id;
        if (backupId) return c.submit("backup delete", "DELETE", `/v1/backups/${backupId}`);
      }
      return s;
    }
    return c.submit("vm export", "POST", `/v1/vms/${name}/export`, { format: rng.pick(["qcow2", "raw"]) });
  }

  /** Deletes a VM, waiting out a lock or an offline host a few times. */
  async deleteVm(name: string): Promise<void> {
    for (let attempt = 0; attempt < 4; attempt++) {
      const vm = await this.vmRow(name);
      if (!vm) return;
      if (vm.lockJobId) await this.waitJob(vm.lockJobId, 30_000);
      const s = await this.client.submit("vm delete", "DELETE", `/v1/vms/${name}`);
      if (s.kind === "accepted") {
        await this.waitJob(s.jobId);
        return;
      }
      if (s.kind === "refused" && s.code === "NOT_FOUND") return;
      if (this.stopped) return;
      await sleep(2000);
    }
  }

  private async imageActor(id: number): Promise<void> {
    const rng = this.rng.fork(`images${id}`);
    for (let n = 0; !this.stopped; n++) {
      const name = `i${id}-${n}`;
      const file = rng.pick(["boot.raw", "boot.qcow2"]);
      const s = await this.client.submit("image import", "POST", "/v1/images", { name, source: { type: "path", path: path.join(this.stack.importDir, file) } });
      if ((await this.waitSubmitted(s)) === "succeeded") {
        if (rng.chance(0.6)) await this.exportImage(name, rng.pick(["qcow2", "raw", "vmdk", "vdi", "vpc"]), rng.chance(0.5), rng);
        if (rng.chance(0.8)) await this.waitSubmitted(await this.client.submit("image delete", "DELETE", `/v1/images/${name}`));
      }
      await sleep(rng.int(200, 1500));
    }
  }

  private async exportImage(image: string, format: string, drop: boolean, rng: Prng): Promise<void> {
    const s = await this.client.submit("image export", "POST", `/v1/images/${image}/export`, { format, compress: format === "qcow2" && rng.chance(0.3) });
    if ((await this.waitSubmitted(s)) === "succeeded" && drop && s.kind === "accepted") {
      const exportId = (s.body["export"] as { id?: string } | null)?.id;
      if (exportId) await this.client.submit("export delete", "DELETE", `/v1/exports/${exportId}`);
    }
  }

  private async exportActor(): Promise<void> {
    const rng = this.rng.fork("exports");
    while (!this.stopped) {
      await this.exportImage("big", rng.pick(["raw", "qcow2"]), rng.chance(0.7), rng);
      await sleep(rng.int(2000, 5000));
    }
  }

  private async uploadActor(): Promise<void> {
    const rng = this.rng.fork("uploads");
    const content = await readFile(path.join(this.stack.importDir, "boot.raw"));
    for (let n = 0; !this.stopped; n++) {
      await sleep(rng.int(4000, 9000));
      const { outcome, resumes } = await uploadImage(this.client, "image upload", `u${n}`, content, { chunkBytes: 256 * 1024 });
      this.uploads.done += 1;
      this.uploads.resumes += resumes;
      if ((await this.waitSubmitted(outcome)) === "succeeded" && rng.chance(0.7)) {
        await this.waitSubmitted(await this.client.submit("image delete", "DELETE", `/v1/images/u${n}`));
      }
    }
  }

  /** Runs `iaas … -o json` against one API; a connection failure or 5xx is retried with the same key on the other. */
  async cli(op: string, args: string[]): Promise<Submitted> {
    const key = this.client.newKey(op);
    let api = this.client.pickApi();
    for (let attempt = 1; attempt <= 8; attempt++) {
      this.cliStats.commands += 1;
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI_MAIN, ...args, "-o", "json", "--idempotency-key", key], {
          env: { PATH: process.env.PATH, HOME: this.stack.dir, IAAS_URL: this.client.urls[api] },
          timeout: 60_000,
        }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 99) : 0, stdout, stderr }));
      });
      if (r.code === 0) {
        this.cliStats.ok += 1;
        const job = (JSON.parse(r.stdout) as { job?: { id: string; type: string } }).job;
        if (!job) return { kind: "ok", status: 200, body: null };
        this.client.record({ jobId: job.id, jobType: job.type, op, key, via: "cli" });
        this.client.stats.outcome(op, "accepted");
        return { kind: "accepted", jobId: job.id, jobType: job.type, body: {} };
      }
      if (r.code === 3 || r.code === 2) {
        this.cliStats.refused += 1;
        const code = /\b([A-Z][A-Z_]{3,})\b/.exec(r.stderr)?.[1] ?? `exit ${r.code}`;
        this.client.stats.outcome(op, `refused ${code}`);
        return { kind: "refused", status: 409, code, detail: r.stderr.trim() };
      }
      // 5: unreachable or 5xx; anything else unexpected: try the other API with the same key.
      this.cliStats.retried += 1;
      this.client.stats.count(this.client.stats.retried, `cli exit ${r.code}`);
      api = (api + 1) % this.client.urls.length;
      await sleep(Math.min(4000, 300 * 2 ** attempt));
    }
    this.cliStats.failed += 1;
    return this.client.settle(op, key, { failed: `iaas ${args.join(" ")} failed 8 times` });
  }

  private async cliActor(): Promise<void> {
    const rng = this.rng.fork("cli");
    for (let n = 0; !this.stopped && n < 4; n++) {
      const name = `c${n}`;
      const created = await this.cli("cli vm create", ["vm", "create", name, "--image", "boot", "--memory", VM_MEMORY, "--no-network", "--start"]);
      if ((await this.waitSubmitted(created)) === "succeeded" && !this.stopped) {
        await this.waitSubmitted(await this.cli("cli vm stop", ["vm", "stop", name, "--force"]));
      }
      const vm = await this.vmRow(name);
      if (vm?.lockJobId) await this.waitJob(vm.lockJobId, 30_000);
      if (vm) await this.waitSubmitted(await this.cli("cli vm delete", ["vm", "delete", name]));
      await sleep(rng.int(3000, 8000));
    }
    // Four rounds are enough to show the CLI path under faults.
    while (!this.stopped) await sleep(500);
  }
}
