import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job, Vm } from "@iaas/contracts";
import { isProcessAlive } from "@iaas/hypervisor";
import { eventually, guestImages, Stack } from "./harness.js";

// Processes that stop or die while they work: two API processes behind the CLI, a worker that is
// told to stop (SIGTERM) or killed (SIGKILL) in the middle of a job, an API told to stop while a
// request is in flight. Short leases and grace periods keep it quick.
describe("processes that stop or die mid-job", () => {
  let stack: Stack;
  const job = (id: string) => stack.cliJson<Job>(["job", "show", id]);
  const vm = (name: string) => stack.cliJson<Vm>(["vm", "show", name]);

  beforeAll(async () => {
    const images = await guestImages(["bootsector"]);
    stack = await Stack.start(["host-a"], {
      apis: 2,
      defaultNetwork: false,
      workerEnv: { IAAS_JOB_LEASE_SECONDS: "3", IAAS_SHUTDOWN_GRACE_SECONDS: "2", IAAS_MONITOR_INTERVAL_MS: "500" },
      apiEnv: { IAAS_SHUTDOWN_GRACE_SECONDS: "5" },
    });
    const r = await stack.cli(["image", "import", "boot", "--file", images.bootsector, "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    for (const name of ["r1", "r2"]) {
      const c = await stack.cli(["vm", "create", name, "--image", "boot", "--memory", "64M", "--no-network", "--start", "--wait"]);
      expect(c.code, `${c.stderr}\n${stack.logTail()}`).toBe(0);
    }
  }, 240_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  /** Submits a stop that waits for an ACPI power-down the boot-sector guest never does. */
  async function slowStop(name: string): Promise<string> {
    const submitted = await stack.cliJson<{ job: Job }>(["vm", "stop", name, "--stop-timeout", "12"]);
    await eventually(`the stop of ${name} to be waiting for the guest`, async () => {
      const j = await job(submitted.job.id);
      return j.state === "running" && j.progress?.phase === "acpi-powerdown";
    }, 60_000);
    return submitted.job.id;
  }

  it("keeps serving the CLI through the second API process when the first is killed", async () => {
    expect(stack.cliUrl.split(",")).toHaveLength(2);
    await stack.killApi(0);
    const list = await stack.cli(["vm", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/r1\s/);
    const created = await stack.cli(["vm", "create", "r3", "--image", "boot", "--memory", "64M", "--no-network", "--wait"]);
    expect(created.code, created.stderr).toBe(0);
    expect((await vm("r3")).state).toBe("stopped");
    await stack.startApi(0);
  }, 120_000);

  it("hands a running job back at the end of the shutdown grace, keeps VMs running, and finishes the job after the worker restarts", async () => {
    const r2Pid = (await vm("r2")).pid;
    expect(r2Pid).toBeGreaterThan(0);
    const stopId = await slowStop("r1");
    const worker = stack.workerProcess("host-a");
    const exit = new Promise<number | null>((r) => worker?.once("exit", (code) => r(code)));
    await stack.killWorker("host-a", "SIGTERM");
    expect(await exit).toBe(0);
    // Handed back, not failed: still running, its lease ended; the VMs' QEMUs did not stop with the worker.
    const handed = await stack.db.job.findUniqueOrThrow({ where: { id: stopId } });
    expect(handed.state, stack.logTail(60)).toBe("running");
    expect(handed.leaseExpiresAt?.getTime()).toBe(0);
    expect(await isProcessAlive(r2Pid ?? 0)).toBe(true);

    await stack.startWorker("host-a");
    const done = await eventually("the handed-back stop to finish", async () => {
      const j = await job(stopId);
      return j.state === "succeeded" ? j : null;
    }, 90_000);
    expect(done.state).toBe("succeeded");
    const events = await stack.db.jobEvent.findMany({ where: { jobId: stopId }, orderBy: { seq: "asc" } });
    expect(events.some((e) => /resumed on host host-a/.test(e.message))).toBe(true);
    expect((await vm("r1")).state).toBe("stopped");
    // r2 was re-adopted by the new worker, same QEMU.
    expect(await vm("r2")).toMatchObject({ state: "running", pid: r2Pid });
  }, 180_000);

  it("finishes a job whose worker was killed (SIGKILL) in the middle of it, once the worker is back", async () => {
    const stopId = await slowStop("r2");
    await stack.killWorker("host-a", "SIGKILL");
    expect((await stack.db.job.findUniqueOrThrow({ where: { id: stopId } })).state).toBe("running");
    await stack.startWorker("host-a");
    const done = await eventually("the interrupted stop to finish", async () => {
      const j = await job(stopId);
      return j.state === "succeeded" || j.state === "failed" ? j : null;
    }, 90_000);
    expect(done.state, JSON.stringify(done.error)).toBe("succeeded");
    expect(await vm("r2")).toMatchObject({ state: "stopped", pid: null, lockJobId: null });
    expect(await stack.qemuPids().then(async (pids) => (await Promise.all(pids.map(isProcessAlive))).filter(Boolean).length)).toBe(0);
  }, 180_000);

  it("lets an in-flight request finish when an API process is told to stop", async () => {
    const started = await stack.cliJson<{ job: Job }>(["vm", "start", "r3"]);
    const waiting = fetch(`${stack.apiUrl(1)}/v1/jobs/${started.job.id}/wait?timeout=20`);
    await new Promise((r) => setTimeout(r, 300));
    const exit = stack.killApi(1, "SIGTERM");
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(((await res.json()) as Job).state).toBe("succeeded");
    expect(await exit).toBe(0);
    await stack.startApi(1);
  }, 120_000);
});
