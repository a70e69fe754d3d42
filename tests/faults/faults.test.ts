import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, open } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { Chaos } from "./chaos.js";
import { ApiClient, ClientStats } from "./client.js";
import { checkInvariants, type Findings } from "./invariants.js";
import { Load } from "./load.js";
import { faultSeed, Prng } from "./prng.js";
import { buildReport } from "./report.js";
import { sleep } from "./services.js";
import { FaultStack, ROOT } from "./stack.js";

const execFileP = promisify(execFile);

// `npm run test:faults`: two APIs and two workers (two hosts) on their own PostgreSQL and Redis,
// under a mixed load of at least 300 jobs while a seeded chaos script kills workers mid-job (each
// job type), kills an API (once mid-upload), restarts Redis empty, FLUSHALLs it, restarts
// PostgreSQL and pauses a worker past the offline threshold. Then, once every job is final, the
// invariants must hold: every job terminal, nothing transitional, one QEMU per running VM and
// none else, store files and rows agree, no accepted job lost, every lock released.
const MIN_LOAD_MS = Number(process.env["IAAS_FAULT_LOAD_SECONDS"] ?? 150) * 1000;
const MAX_LOAD_MS = MIN_LOAD_MS + 90_000;
const QUIESCE_MS = 180_000;
const MIN_JOBS = 300;

describe("fault suite", () => {
  it("keeps every job, VM, image and file consistent under faults", async () => {
    const t0 = Date.now();
    const seed = faultSeed();
    const say = (line: string) => console.log(`[+${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
    console.log(`fault seed: ${seed} (replay with IAAS_FAULT_SEED=${seed})`);
    const rng = new Prng(seed);
    const dir = await mkdtemp("/tmp/if-");
    const stack = await FaultStack.start(dir, t0, say);
    let report = "";
    let findings: Findings = { violations: [], warnings: [] };
    let accepted = 0;
    try {
      say(`stack up in ${dir}: APIs ${stack.apis.map((a) => a.url).join(", ")}; PostgreSQL :${stack.pg.port}; Redis :${stack.redis.port}`);
      await prepareImportDir(stack.importDir);
      const stats = new ClientStats();
      const client = new ApiClient(stack.apis.map((a) => a.url), stats, `f${seed}`, t0);
      const network = await client.request("POST", "/v1/networks", { body: { name: "default" } });
      if ("failed" in network || network.status !== 201) throw new Error(`could not create the default network: ${JSON.stringify(network)}`);
      const load = new Load(stack, client, rng.fork("load"), say);
      for (const [name, file] of [["boot", "boot.raw"], ["big", "big.raw"]]) {
        const s = await client.submit("setup image import", "POST", "/v1/images", { name, source: { type: "path", path: path.join(stack.importDir, file as string) } });
        const state = s.kind === "accepted" ? await load.waitJob(s.jobId, 60_000) : s.kind;
        if (state !== "succeeded") throw new Error(`setup: importing ${file} ended ${state}: ${JSON.stringify(s)}\n${await stack.logTails()}`);
      }
      const setupMs = Date.now() - t0;
      say("setup done; load and chaos start");

      const loadStart = Date.now();
      load.start();
      const chaos = new Chaos(stack, client, load, rng.fork("chaos"), say);
      let chaosDone = false;
      const chaosRun = chaos.run().finally(() => (chaosDone = true));
      let lastNote = 0;
      for (;;) {
        const elapsed = Date.now() - loadStart;
        if (chaosDone && elapsed >= MIN_LOAD_MS && client.accepted.size >= MIN_JOBS + 20) break;
        if (chaosDone && elapsed >= MAX_LOAD_MS) break;
        if (elapsed >= MAX_LOAD_MS + 60_000) {
          say("the chaos script is still busy past the load's bound: stopping it after its current fault");
          chaos.stop();
          break;
        }
        if (Date.now() - lastNote > 15_000) {
          lastNote = Date.now();
          say(`load: ${client.accepted.size} jobs accepted, ${chaos.faults.length} faults so far`);
        }
        await sleep(1000);
      }
      await chaosRun;
      say(`stopping the load (${client.accepted.size} jobs accepted)`);
      await load.stop();
      const loadMs = Date.now() - loadStart;

      const quiesceStart = Date.now();
      let open = -1;
      for (;;) {
        open = Number((await stack.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE state NOT IN ('succeeded', 'failed', 'cancelled')`))[0]?.n ?? -1);
        if (open === 0 || Date.now() - quiesceStart > QUIESCE_MS) break;
        if (Date.now() - lastNote > 15_000) {
          lastNote = Date.now();
          say(`waiting for quiescence: ${open} jobs not final`);
        }
        await sleep(1000);
      }
      // One more monitor and maintenance interval, so their last corrections are in.
      await sleep(3000);
      const quiesceMs = Date.now() - quiesceStart;
      say(open === 0 ? `quiescent after ${(quiesceMs / 1000).toFixed(1)} s` : `not quiescent after ${QUIESCE_MS / 1000} s: ${open} jobs not final`);

      const checkStart = Date.now();
      findings = await checkInvariants(stack, client.accepted);
      const checkMs = Date.now() - checkStart;
      accepted = client.accepted.size;
      report = await buildReport({
        seed,
        stack,
        chaos,
        load,
        stats,
        accepted: client.accepted,
        findings,
        quiesced: open === 0,
        durations: { setupMs, loadMs, quiesceMs, checkMs, totalMs: Date.now() - t0 },
      });
      console.log(report);
      if (findings.violations.length > 0) console.log(`\nlogs of the processes (${stack.logDir}):\n${await stack.logTails()}`);
    } catch (err) {
      console.log(`fault suite failed before its checks: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n${await stack.logTails().catch(() => "")}`);
      throw err;
    } finally {
      await stack.close();
    }
    expect(findings.violations.map((v) => `[${v.invariant}] ${v.detail}`)).toEqual([]);
    expect(accepted).toBeGreaterThanOrEqual(MIN_JOBS);
    console.log(`fault seed: ${seed}`);
  }, 15 * 60_000);
});

/** boot.raw (the boot-sector guest), boot.qcow2 (the same, converted) and big.raw (64 MiB of random data). */
async function prepareImportDir(dir: string): Promise<void> {
  const guests = process.env["IAAS_GUEST_DIR"] ?? path.join(ROOT, ".cache/guests");
  await execFileP(process.execPath, [path.join(ROOT, "scripts/guest/build-bootsector.mjs"), "--out", guests]);
  await copyFile(path.join(guests, "bootsector.raw"), path.join(dir, "boot.raw"));
  await execFileP("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", path.join(dir, "boot.raw"), path.join(dir, "boot.qcow2")]);
  const big = await open(path.join(dir, "big.raw"), "w");
  try {
    for (let i = 0; i < 16; i++) await big.write(randomBytes(4 * 1024 * 1024));
  } finally {
    await big.close();
  }
}
