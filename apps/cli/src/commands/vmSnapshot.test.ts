import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import { JOB_ID, makeJob, makeSnapshot, makeVm, SNAPSHOT_ID, stateEvent, VM_ID } from "../testing/fixtures.js";
import type { JobScript } from "../testing/jobApi.js";
import { bodyOf, json, problem, routeTable, type Route } from "../testing/routes.js";
import { runIaas } from "../testing/runIaas.js";
import { startScriptedServer, type ScriptedServer } from "../testing/scriptedServer.js";

let server: ScriptedServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function serve(table: Record<string, Route>, job?: JobScript): Promise<ScriptedServer> {
  server = await startScriptedServer(routeTable(table, job));
  return server;
}

const calls = (s: ScriptedServer) => s.requests.filter((r) => !r.path.startsWith("/v1/jobs/")).map((r) => `${r.method} ${r.path}`);

/** A job of `type` on web1 that succeeds with `result`. */
function jobScript(type: Job["type"], result: Record<string, unknown> | null): { job: Job; script: JobScript } {
  const job = makeJob({ type, state: "running", startedAt: "2025-01-01T00:00:01.000Z" });
  const final = { ...job, state: "succeeded" as const, result, finishedAt: "2025-01-01T00:00:02.000Z" };
  return { job, script: { running: job, events: [stateEvent(1, "running"), stateEvent(2, "succeeded")], final } };
}

const created = { vmId: VM_ID, snapshotId: SNAPSHOT_ID, name: "before-upgrade" };

describe("vm snapshot create", () => {
  it("sends the name and memory: false, prints the snapshot and how to follow the job", async () => {
    const snapshot = makeSnapshot({ state: "creating" });
    const s = await serve({ "POST /v1/vms/web1/snapshots": json({ job: makeJob({ type: "vm.snapshot.create" }), vm: makeVm(), snapshot }, 202) });
    const run = await runIaas(["vm", "snapshot", "create", "web1", "before-upgrade"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: `snapshot before-upgrade (disk only) of vm web1\njob ${JOB_ID} queued: snapshot VM (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`,
      stderr: "",
    });
    expect(bodyOf(s.requests[0])).toEqual({ name: "before-upgrade", memory: false });
  });

  it("sends --memory and --description; -o json prints the job with the snapshot", async () => {
    const snapshot = makeSnapshot({ name: "live-1", kind: "memory", state: "creating", description: "before the migration", vmState: "running" });
    const s = await serve({ "POST /v1/vms/web1/snapshots": json({ job: makeJob({ type: "vm.snapshot.create" }), vm: makeVm({ state: "running" }), snapshot }, 202) });
    const run = await runIaas(["vm", "snap", "create", "web1", "live-1", "--memory", "--description", "before the migration", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(bodyOf(s.requests[0])).toEqual({ name: "live-1", memory: true, description: "before the migration" });
    expect(JSON.parse(run.stdout)).toMatchObject({ job: { id: JOB_ID, type: "vm.snapshot.create" }, snapshot });
    const text = await runIaas(["vm", "snapshot", "create", "web1", "live-1", "--memory"], s.url);
    expect(text.stdout).toContain("snapshot live-1 (disk and memory) of vm web1\n");
  });

  it("accepts an answer without the snapshot (a replayed request)", async () => {
    const s = await serve({ "POST /v1/vms/web1/snapshots": json({ job: makeJob({ type: "vm.snapshot.create" }), vm: null, snapshot: null }, 202) });
    const run = await runIaas(["vm", "snapshot", "create", "web1", "before-upgrade"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: snapshot VM (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`, stderr: "" });
  });

  it("follows the job with --wait and says the snapshot was taken", async () => {
    const { job, script } = jobScript("vm.snapshot.create", created);
    const s = await serve({ "POST /v1/vms/web1/snapshots": json({ job, vm: makeVm(), snapshot: makeSnapshot({ state: "creating" }) }, 202) }, script);
    const run = await runIaas(["vm", "snapshot", "create", "web1", "before-upgrade", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("snapshot before-upgrade (disk only) of vm web1\nvm web1: snapshot before-upgrade taken (list them with: iaas vm snapshot list web1)\n");
    expect(run.stderr).toContain("[job 1a2b3c4d] succeeded");
  });

  it("exits 2 for a bad snapshot name or description, naming the rule, before calling the API", async () => {
    const s = await serve({});
    for (const name of ["_x", ".hidden", "has space", "a/b", "x".repeat(64)]) {
      const run = await runIaas(["vm", "snapshot", "create", "web1", name], s.url);
      expect(run.code, name).toBe(2);
      expect(run.stderr, name).toBe(`error: invalid snapshot name '${name}': a snapshot name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit\n`);
    }
    const long = await runIaas(["vm", "snapshot", "create", "web1", "ok", "--description", "d".repeat(1001)], s.url);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/^error: invalid --description: .*1000/);
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 for a name the VM has already, 2 for --memory on a stopped VM", async () => {
    const s = await serve({
      "POST /v1/vms/web1/snapshots": problem(409, "NAME_TAKEN", "vm web1 already has a snapshot named 'before-upgrade'", "choose another name, or delete it: iaas vm snapshot delete web1 before-upgrade"),
      "POST /v1/vms/db1/snapshots": problem(400, "VALIDATION_FAILED", "vm db1 is stopped; a memory snapshot needs a running VM", "leave out --memory"),
    });
    const taken = await runIaas(["vm", "snapshot", "create", "web1", "before-upgrade"], s.url);
    expect(taken).toEqual({
      code: 3,
      stdout: "",
      stderr: "error: vm web1 already has a snapshot named 'before-upgrade'\nhint: choose another name, or delete it: iaas vm snapshot delete web1 before-upgrade\n",
    });
    const stopped = await runIaas(["vm", "snapshot", "create", "db1", "live", "--memory"], s.url);
    expect(stopped.code).toBe(2);
    expect(stopped.stderr).toContain("hint: leave out --memory");
  });
});

describe("vm snapshot list", () => {
  const snapshots = [
    makeSnapshot(),
    makeSnapshot({ name: "live-1", kind: "memory", vmState: "running", sizeBytes: 312 * 1024 ** 2, description: "before the\nmigration", createdAt: "2025-01-01T00:00:50.000Z" }),
    makeSnapshot({ name: "tmp", state: "creating", vmState: "running", createdAt: "2025-01-01T00:00:58.000Z", description: "x".repeat(80) }),
  ];

  it("prints a table, oldest first, with '-' for no size or description", async () => {
    const s = await serve({ "GET /v1/vms/web1/snapshots": json({ items: snapshots }) });
    const run = await runIaas(["vm", "snapshot", "list", "web1"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: [
        "NAME            KIND    STATE     VM-STATE  SIZE     CREATED  DESCRIPTION",
        "before-upgrade  disk    ready     stopped   -        1m ago   -",
        "live-1          memory  ready     running   312 MiB  10s ago  before the migration",
        `tmp             disk    creating  running   -        2s ago   ${"x".repeat(59)}…`,
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  it("prints {items} with -o json, under the ls and snap aliases too", async () => {
    const s = await serve({ "GET /v1/vms/web1/snapshots": json({ items: snapshots }) });
    const run = await runIaas(["vm", "snap", "ls", "web1", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ items: snapshots });
  });

  it("prints the header alone for a VM without snapshots, and exits 3 for an unknown VM", async () => {
    const s = await serve({ "GET /v1/vms/web1/snapshots": json({ items: [] }) });
    expect((await runIaas(["vm", "snapshot", "list", "web1"], s.url)).stdout).toBe("NAME  KIND  STATE  VM-STATE  SIZE  CREATED  DESCRIPTION\n");
    expect((await runIaas(["vm", "snapshot", "list", "nope"], s.url)).code).toBe(3);
  });
});

describe("vm snapshot restore", () => {
  const restoring = json({ job: makeJob({ type: "vm.snapshot.restore" }), vm: makeVm() }, 202);

  it("posts restart: false, or true with --restart, to the snapshot's restore path", async () => {
    const s = await serve({ "POST /v1/vms/web1/snapshots/before-upgrade/restore": restoring });
    const run = await runIaas(["vm", "snapshot", "restore", "web1", "before-upgrade"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: restore VM snapshot (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`, stderr: "" });
    expect((await runIaas(["vm", "snapshot", "restore", "web1", "before-upgrade", "--restart"], s.url)).code).toBe(0);
    expect(calls(s)).toEqual(["POST /v1/vms/web1/snapshots/before-upgrade/restore", "POST /v1/vms/web1/snapshots/before-upgrade/restore"]);
    expect(s.requests.map(bodyOf)).toEqual([{ restart: false }, { restart: true }]);
  });

  it("exits 3 with the API's hint when a disk-only snapshot would be restored on a running VM", async () => {
    const s = await serve({
      "POST /v1/vms/web1/snapshots/before-upgrade/restore": problem(
        409,
        "INVALID_STATE",
        "vm web1 is running; a disk-only snapshot is restored on a stopped VM",
        "stop it first, or restart it around the restore: iaas vm snapshot restore web1 before-upgrade --restart",
      ),
    });
    const run = await runIaas(["vm", "snapshot", "restore", "web1", "before-upgrade"], s.url);
    expect(run).toEqual({
      code: 3,
      stdout: "",
      stderr:
        "error: vm web1 is running; a disk-only snapshot is restored on a stopped VM\nhint: stop it first, or restart it around the restore: iaas vm snapshot restore web1 before-upgrade --restart\n",
    });
  });

  it("exits 3 for an unknown snapshot and 2 for a bad name, pointing at the list", async () => {
    const s = await serve({ "POST /v1/vms/web1/snapshots/nope/restore": problem(404, "NOT_FOUND", "vm web1 has no snapshot named 'nope'", "list them with: iaas vm snapshot list web1") });
    expect((await runIaas(["vm", "snapshot", "restore", "web1", "nope"], s.url)).code).toBe(3);
    const bad = await runIaas(["vm", "snapshot", "restore", "web1", "_x"], s.url);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error: invalid snapshot name '_x': a snapshot name is 1-63 letters");
    expect(bad.stderr).toContain("hint: see the VM's snapshots with: iaas vm snapshot list web1\n");
    expect(s.requests).toHaveLength(1);
  });

  it("follows the job with --wait and says what state the VM is in after", async () => {
    const { job, script } = jobScript("vm.snapshot.restore", { ...created, state: "running" });
    const s = await serve({ "POST /v1/vms/web1/snapshots/before-upgrade/restore": json({ job, vm: makeVm() }, 202) }, script);
    const run = await runIaas(["vm", "snapshot", "restore", "web1", "before-upgrade", "--restart", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("vm web1: snapshot before-upgrade restored; the VM is running\n");
    expect(run.stderr).toContain("[job 1a2b3c4d] succeeded");
  });

  it("exits 1 when the restore job fails, with the job's error", async () => {
    const job = makeJob({ type: "vm.snapshot.restore", state: "running" });
    const error = { code: "INVALID_STATE" as const, message: "the machine configuration of snapshot live-1 no longer matches vm web1", hint: "take a new snapshot" };
    const final = { ...job, state: "failed" as const, error, finishedAt: "2025-01-01T00:00:02.000Z" };
    const script: JobScript = { running: job, events: [stateEvent(1, "running"), stateEvent(2, "failed")], final };
    const s = await serve({ "POST /v1/vms/web1/snapshots/live-1/restore": json({ job, vm: makeVm() }, 202) }, script);
    const run = await runIaas(["vm", "snapshot", "restore", "web1", "live-1", "--wait"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: the machine configuration of snapshot live-1 no longer matches vm web1\nhint: take a new snapshot\n");
  });
});

describe("vm snapshot delete", () => {
  it("deletes by name (also as rm) and says how to follow the job", async () => {
    const deleting = json({ job: makeJob({ type: "vm.snapshot.delete" }), vm: makeVm() }, 202);
    const s = await serve({ "DELETE /v1/vms/web1/snapshots/before-upgrade": deleting });
    const run = await runIaas(["vm", "snapshot", "delete", "web1", "before-upgrade"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: delete VM snapshot (vm web1)\nfollow it with: iaas job wait ${JOB_ID}\n`, stderr: "" });
    expect((await runIaas(["vm", "snap", "rm", "web1", "before-upgrade"], s.url)).code).toBe(0);
    expect(calls(s)).toEqual(["DELETE /v1/vms/web1/snapshots/before-upgrade", "DELETE /v1/vms/web1/snapshots/before-upgrade"]);
  });

  it("follows the job with --wait and says the snapshot is gone", async () => {
    const { job, script } = jobScript("vm.snapshot.delete", created);
    const s = await serve({ "DELETE /v1/vms/web1/snapshots/before-upgrade": json({ job, vm: makeVm() }, 202) }, script);
    const run = await runIaas(["vm", "snapshot", "delete", "web1", "before-upgrade", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("vm web1: snapshot before-upgrade deleted\n");
  });

  it("exits 2 for a bad name before calling the API, and 3 for an unknown snapshot", async () => {
    const s = await serve({ "DELETE /v1/vms/web1/snapshots/nope": problem(404, "NOT_FOUND", "vm web1 has no snapshot named 'nope'") });
    expect((await runIaas(["vm", "snapshot", "delete", "web1", "a b"], s.url)).code).toBe(2);
    expect(s.requests).toHaveLength(0);
    const run = await runIaas(["vm", "snapshot", "delete", "web1", "nope"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: vm web1 has no snapshot named 'nope'\n" });
  });

  it("exits 4 when --timeout passes before the job ends", async () => {
    const job = makeJob({ type: "vm.snapshot.delete", state: "running" });
    const s = await serve({ "DELETE /v1/vms/web1/snapshots/before-upgrade": json({ job, vm: makeVm() }, 202) }, { running: job, events: [stateEvent(1, "running")], final: null });
    const run = await runIaas(["vm", "snapshot", "delete", "web1", "before-upgrade", "--wait", "--timeout", "0.2"], s.url);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain(`error: job ${JOB_ID} is still running; re-attach with: iaas job wait ${JOB_ID}`);
  });
});

describe("job wait for snapshot jobs", () => {
  it("prints the result line of a finished snapshot job, and the job itself without a result", async () => {
    const { script } = jobScript("vm.snapshot.restore", { ...created, state: "stopped" });
    const s = await serve({}, script);
    expect((await runIaas(["job", "wait", JOB_ID], s.url)).stdout).toBe("vm web1: snapshot before-upgrade restored; the VM is stopped\n");
    await server?.close();
    const bare = jobScript("vm.snapshot.create", null);
    const t = await serve({}, bare.script);
    const run = await runIaas(["job", "wait", JOB_ID], t.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("type:     vm.snapshot.create (snapshot VM)\n");
  });
});

describe("vm snapshot help", () => {
  it("lists the snapshot commands under vm and in the top-level help", async () => {
    const s = await serve({});
    expect((await runIaas(["vm", "--help"], s.url)).stdout).toMatch(/snapshot\|snap\s+take, list, restore and delete snapshots/);
    const help = (await runIaas(["vm", "snapshot", "--help"], s.url)).stdout;
    for (const command of ["create [options] <name> <snapshot>", "list|ls [options] <name>", "restore [options] <name> <snapshot>", "delete|rm [options] <name> <snapshot>"]) expect(help).toContain(command);
    expect((await runIaas(["vm", "snapshot", "restore", "--help"], s.url)).stdout).toContain("--restart");
    expect((await runIaas(["--help"], s.url)).stdout).toContain("iaas vm snapshot create|list|restore|delete");
  });
});
