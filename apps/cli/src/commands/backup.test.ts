import { afterEach, describe, expect, it } from "vitest";
import type { Job } from "@iaas/contracts";
import {
  BACKUP_ID,
  HOST_ID,
  IMAGE_ID,
  JOB_ID,
  makeBackup,
  makeHost,
  makeImage,
  makeJob,
  makeSchedule,
  makeVm,
  PARENT_BACKUP_ID,
  stateEvent,
  VM_ID,
} from "../testing/fixtures.js";
import type { JobScript } from "../testing/jobApi.js";
import { bodyOf, json, noContent, problem, routeTable, type Route } from "../testing/routes.js";
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

/** The requests other than the job API's, as "METHOD /path?query". */
const calls = (s: ScriptedServer) => s.requests.filter((r) => !r.path.startsWith("/v1/jobs/")).map((r) => `${r.method} ${r.url}`);

/** A job of `type` on web1 that succeeds with `result`. */
function jobScript(type: Job["type"], result: Record<string, unknown> | null, overrides: Partial<Job> = {}): { job: Job; script: JobScript } {
  const job = makeJob({ type, state: "running", startedAt: "2025-01-01T00:00:01.000Z", ...overrides });
  const final = { ...job, state: "succeeded" as const, result, finishedAt: "2025-01-01T00:00:02.000Z" };
  return { job, script: { running: job, events: [stateEvent(1, "running"), stateEvent(2, "succeeded")], final } };
}

const follow = `follow it with: iaas job wait ${JOB_ID}\n`;
const MIB = 1024 ** 2;

describe("vm backup", () => {
  it("posts incremental: false by default and prints the backup and how to follow the job", async () => {
    const backup = makeBackup({ state: "creating", sizeBytes: null, bytesCopied: null, sha256: null, finishedAt: null });
    const s = await serve({ "POST /v1/vms/web1/backups": json({ job: makeJob({ type: "vm.backup" }), vm: makeVm(), backup, image: null }, 202) });
    const run = await runIaas(["vm", "backup", "web1"], s.url);
    expect(run).toEqual({ code: 0, stdout: `backup ${BACKUP_ID} (full) of vm web1\njob ${JOB_ID} queued: back up VM (vm web1)\n${follow}`, stderr: "" });
    expect(calls(s)).toEqual(["POST /v1/vms/web1/backups"]);
    expect(bodyOf(s.requests[0])).toEqual({ incremental: false });
  });

  it("sends --incremental and --keep-last; says when the backup is live; -o json prints the answer", async () => {
    const backup = makeBackup({ kind: "incremental", parentId: PARENT_BACKUP_ID, live: true, state: "creating", keepLast: 7 });
    const answer = { job: makeJob({ type: "vm.backup" }), vm: makeVm({ state: "running" }), backup, image: null };
    const s = await serve({ "POST /v1/vms/web1/backups": json(answer, 202) });
    const run = await runIaas(["vm", "backup", "web1", "--incremental", "--keep-last", "7"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`backup ${BACKUP_ID} (incremental, live) of vm web1\njob ${JOB_ID} queued: back up VM (vm web1)\n${follow}`);
    const asJson = await runIaas(["vm", "backup", "web1", "--incremental", "--keep-last", "7", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual(answer);
    expect(s.requests.map(bodyOf)).toEqual([
      { incremental: true, keepLast: 7 },
      { incremental: true, keepLast: 7 },
    ]);
  });

  it("sends --as-image and prints the image it makes", async () => {
    const image = makeImage({ name: "web1-golden", state: "importing" });
    const s = await serve({ "POST /v1/vms/web1/backups": json({ job: makeJob({ type: "vm.backup" }), vm: makeVm(), backup: null, image }, 202) });
    const run = await runIaas(["vm", "backup", "web1", "--as-image", "web1-golden"], s.url);
    expect(run).toEqual({ code: 0, stdout: `image web1-golden from vm web1\njob ${JOB_ID} queued: back up VM (vm web1)\n${follow}`, stderr: "" });
    expect(bodyOf(s.requests[0])).toEqual({ incremental: false, asImage: "web1-golden" });
  });

  it("exits 2 for --as-image with --incremental or --keep-last, a bad image name or keep-last, before calling the API", async () => {
    const s = await serve({});
    for (const extra of [["--incremental"], ["--keep-last", "3"]]) {
      const run = await runIaas(["vm", "backup", "web1", "--as-image", "gold", ...extra], s.url);
      expect(run.code, extra.join(" ")).toBe(2);
      expect(run.stderr, extra.join(" ")).toBe(
        "error: --as-image makes an image, not a backup: it cannot be combined with --incremental or --keep-last\n" +
          "hint: leave them out, or back up without --as-image: iaas vm backup web1 --incremental\n",
      );
    }
    const badName = await runIaas(["vm", "backup", "web1", "--as-image", "_gold"], s.url);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toBe("error: invalid image name '_gold': an image name is 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit\n");
    for (const n of ["0", "-1", "2.5", "seven", "1001"]) {
      const run = await runIaas(["vm", "backup", "web1", "--keep-last", n], s.url);
      expect(run.code, n).toBe(2);
      expect(run.stderr, n).toContain("expected a whole number from 1 to 1000.");
    }
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 for an unknown VM, with the API's hint", async () => {
    const s = await serve({ "POST /v1/vms/nope/backups": problem(404, "NOT_FOUND", "VM 'nope' not found", "list VMs with `iaas vm list`") });
    const run = await runIaas(["vm", "backup", "nope"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: VM 'nope' not found\nhint: list VMs with `iaas vm list`\n" });
  });

  it("follows the job with --wait and prints what was backed up and what retention removed", async () => {
    const result = { vmId: VM_ID, backupId: BACKUP_ID, imageId: null, kind: "incremental", live: true, sizeBytes: 40 * MIB, bytesCopied: 12 * MIB, sha256: "ab".repeat(32), pruned: [PARENT_BACKUP_ID] };
    const { job, script } = jobScript("vm.backup", result);
    const backup = makeBackup({ kind: "incremental", parentId: PARENT_BACKUP_ID, live: true, state: "creating" });
    const s = await serve({ "POST /v1/vms/web1/backups": json({ job, vm: makeVm({ state: "running" }), backup, image: null }, 202) }, script);
    const run = await runIaas(["vm", "backup", "web1", "--incremental", "--keep-last", "1", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      `backup ${BACKUP_ID} (incremental, live) of vm web1\n` +
        `vm web1: incremental backup ${BACKUP_ID} done (live): 40 MiB, 12 MiB copied\n` +
        `retention removed 1 older backup: ${PARENT_BACKUP_ID}\n`,
    );
    expect(run.stderr).toContain("[job 1a2b3c4d] succeeded");
  });

  it("follows an --as-image job with --wait and says where the image is", async () => {
    const result = { vmId: VM_ID, backupId: null, imageId: IMAGE_ID, kind: "full", live: false, sizeBytes: 2 * 1024 * MIB, bytesCopied: 300 * MIB, sha256: "cd".repeat(32), pruned: [] };
    const { job, script } = jobScript("vm.backup", result);
    const s = await serve({ "POST /v1/vms/web1/backups": json({ job, vm: makeVm(), backup: null, image: makeImage({ name: "gold" }) }, 202) }, script);
    const run = await runIaas(["vm", "backup", "web1", "--as-image", "gold", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`image gold from vm web1\nvm web1: disk saved as image ${IMAGE_ID} (2 GiB)\nsee it with: iaas image show ${IMAGE_ID}\n`);
  });

  it("exits 1 with the job's error when the backup fails", async () => {
    const job = makeJob({ type: "vm.backup", state: "running" });
    const error = { code: "QEMU_FAILED" as const, message: "drive-backup of vm web1 failed: No space left on device", hint: "free space in the backup store" };
    const final = { ...job, state: "failed" as const, error, finishedAt: "2025-01-01T00:00:02.000Z" };
    const s = await serve({ "POST /v1/vms/web1/backups": json({ job, vm: makeVm(), backup: makeBackup({ state: "creating" }), image: null }, 202) }, {
      running: job,
      events: [stateEvent(1, "running"), stateEvent(2, "failed")],
      final,
    });
    const run = await runIaas(["vm", "backup", "web1", "--wait"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: drive-backup of vm web1 failed: No space left on device\nhint: free space in the backup store\n");
  });
});

describe("backup list", () => {
  const OTHER_ID = "c0ffee00-0000-4000-8000-00000000000c";
  const backups = [
    makeBackup({ id: OTHER_ID, vmName: "old1", vmExists: false, state: "creating", sizeBytes: null, bytesCopied: null, createdAt: "2025-01-01T00:00:58.000Z" }),
    makeBackup({ kind: "incremental", parentId: PARENT_BACKUP_ID, live: true, sizeBytes: 40 * MIB, bytesCopied: 12 * MIB, createdAt: "2025-01-01T00:00:50.000Z" }),
    makeBackup({ id: PARENT_BACKUP_ID }),
  ];

  it("prints a table with full ids, the VM (marked when deleted), live or stopped, sizes and the shortened parent", async () => {
    const s = await serve({ "GET /v1/backups": json({ items: backups }) });
    const run = await runIaas(["backup", "list"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: [
        "ID                                    VM              KIND         STATE     MODE     SIZE     COPIED   PARENT    CREATED",
        `${OTHER_ID}  old1 (deleted)  full         creating  stopped  -        -        -         2s ago`,
        `${BACKUP_ID}  web1            incremental  ready     live     40 MiB   12 MiB   e4f5a6b7  10s ago`,
        `${PARENT_BACKUP_ID}  web1            full         ready     stopped  300 MiB  300 MiB  -         1m ago`,
        "",
      ].join("\n"),
      stderr: "",
    });
    expect(calls(s)).toEqual(["GET /v1/backups"]);
  });

  it("filters by --vm, prints {items} with -o json (also as ls), and the header alone when there are none", async () => {
    const s = await serve({ "GET /v1/backups": json({ items: backups.slice(1) }) });
    const run = await runIaas(["backup", "ls", "--vm", "web1", "-o", "json"], s.url);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ items: backups.slice(1) });
    expect(calls(s)).toEqual(["GET /v1/backups?vm=web1"]);
    await server?.close();
    const t = await serve({ "GET /v1/backups": json({ items: [] }) });
    expect((await runIaas(["backup", "list"], t.url)).stdout).toBe("ID  VM  KIND  STATE  MODE  SIZE  COPIED  PARENT  CREATED\n");
  });

  it("names the endpoint when an answer does not match the contract (exit 1)", async () => {
    const s = await serve({ "GET /v1/backups": json({ items: [{ id: BACKUP_ID }] }) });
    const run = await runIaas(["backup", "list"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: unexpected response from GET \/v1\/backups: items\.0\.vmId: /);
  });
});

describe("backup show", () => {
  it("prints the backup, its chain parent, sha256 and the VM configuration with its NICs", async () => {
    const backup = makeBackup({ kind: "incremental", parentId: PARENT_BACKUP_ID, live: true, keepLast: 7, verifiedAt: "2025-01-01T00:00:30.000Z" });
    const s = await serve({ "GET /v1/backups/0d1e2f3a": json(backup) });
    const run = await runIaas(["backup", "show", "0d1e2f3a"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: [
        `id:          ${BACKUP_ID}`,
        `vm:          web1 (${VM_ID})`,
        "kind:        incremental",
        `parent:      ${PARENT_BACKUP_ID}`,
        "state:       ready",
        "mode:        live (taken while the VM was running)",
        "size:        300 MiB",
        "copied:      300 MiB",
        "disk:        2 GiB",
        `sha256:      ${backup.sha256}`,
        "verified:    2025-01-01T00:00:30.000Z (30s ago)",
        "keep last:   7",
        "schedule:    -",
        `host:        ${HOST_ID}`,
        `job:         ${JOB_ID}`,
        "held by job: -",
        "created:     2025-01-01T00:00:00.000Z (1m ago)",
        "finished:    2025-01-01T00:00:20.000Z",
        "config:",
        "  cpus:      2",
        "  memory:    512 MiB",
        "  disk:      2 GiB",
        `  image:     deb12 (${IMAGE_ID})`,
        "  hostname:  web1",
        "  ssh keys:  1",
        "  user data: none",
        "  nics:      1",
        "    NIC  NETWORK  MAC                IP",
        "    0    default  52:54:00:12:34:56  10.100.0.2",
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  it("says a full backup needs no parent, marks a deleted VM, and prints the backup as JSON with -o json", async () => {
    const backup = makeBackup({ vmExists: false, config: { ...makeBackup().config, nics: [], userData: "#cloud-config\n" } });
    const s = await serve({ [`GET /v1/backups/${BACKUP_ID}`]: json(backup) });
    const run = await runIaas(["backup", "show", BACKUP_ID], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("parent:      - (a full backup needs no other)\n");
    expect(run.stdout).toContain(`vm:          web1 (deleted) (${VM_ID})\n`);
    expect(run.stdout).toContain("verified:    never\n");
    expect(run.stdout).toContain("  user data: 14 characters\n");
    expect(run.stdout.endsWith("  nics:      none\n")).toBe(true);
    expect(JSON.parse((await runIaas(["backup", "show", BACKUP_ID, "-o", "json"], s.url)).stdout)).toEqual(backup);
  });

  it("exits 3 for an unknown id and 2 for an ambiguous prefix, with the API's hint", async () => {
    const s = await serve({
      "GET /v1/backups/nope": problem(404, "NOT_FOUND", "backup 'nope' not found", "list backups with: iaas backup list"),
      "GET /v1/backups/0": problem(400, "VALIDATION_FAILED", "backup id prefix '0' matches more than one backup", "give more of the id (`iaas backup list`)"),
    });
    expect(await runIaas(["backup", "show", "nope"], s.url)).toEqual({ code: 3, stdout: "", stderr: "error: backup 'nope' not found\nhint: list backups with: iaas backup list\n" });
    const ambiguous = await runIaas(["backup", "show", "0"], s.url);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain("hint: give more of the id (`iaas backup list`)\n");
  });
});

describe("backup verify", () => {
  it("posts to the backup's verify path and says how to follow the job", async () => {
    const s = await serve({ "POST /v1/backups/0d1e2f3a/verify": json({ job: makeJob({ type: "backup.verify" }), backup: makeBackup() }, 202) });
    const run = await runIaas(["backup", "verify", "0d1e2f3a"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: verify backup (vm web1)\n${follow}`, stderr: "" });
    expect(calls(s)).toEqual(["POST /v1/backups/0d1e2f3a/verify"]);
    expect(bodyOf(s.requests[0])).toBeUndefined();
  });

  it("follows the job with --wait and lists the chain it checked", async () => {
    const chain = [
      { id: PARENT_BACKUP_ID, sha256: "aa".repeat(32), sizeBytes: 300 * MIB },
      { id: BACKUP_ID, sha256: "bb".repeat(32), sizeBytes: 40 * MIB },
    ];
    const { job, script } = jobScript("backup.verify", { backupId: BACKUP_ID, chain });
    const s = await serve({ [`POST /v1/backups/${BACKUP_ID}/verify`]: json({ job, backup: makeBackup() }, 202) }, script);
    const run = await runIaas(["backup", "verify", BACKUP_ID, "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        `backup ${BACKUP_ID} verified: the 2 backups of its chain read back with their recorded sha256`,
        `  ${PARENT_BACKUP_ID}  300 MiB  ${"aa".repeat(32)}`,
        `  ${BACKUP_ID}  40 MiB  ${"bb".repeat(32)}`,
        "",
      ].join("\n"),
    );
  });

  it("exits 1 with the job's error when a checksum does not match", async () => {
    const job = makeJob({ type: "backup.verify", state: "running" });
    const error = { code: "BACKUP_CORRUPT" as const, message: `backup ${BACKUP_ID} does not match its sha256`, hint: "take a new full backup" };
    const final = { ...job, state: "failed" as const, error, finishedAt: "2025-01-01T00:00:02.000Z" };
    const s = await serve({ [`POST /v1/backups/${BACKUP_ID}/verify`]: json({ job, backup: makeBackup() }, 202) }, { running: job, events: [stateEvent(1, "running"), stateEvent(2, "failed")], final });
    const run = await runIaas(["backup", "verify", BACKUP_ID, "--wait"], s.url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`error: backup ${BACKUP_ID} does not match its sha256\nhint: take a new full backup\n`);
  });
});

describe("backup delete", () => {
  it("deletes by id (also as rm) and says how to follow the job", async () => {
    const deleting = json({ job: makeJob({ type: "backup.delete" }), backup: makeBackup({ state: "deleting" }) }, 202);
    const s = await serve({ [`DELETE /v1/backups/${BACKUP_ID}`]: deleting });
    const run = await runIaas(["backup", "delete", BACKUP_ID], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: delete backup (vm web1)\n${follow}`, stderr: "" });
    expect((await runIaas(["backup", "rm", BACKUP_ID], s.url)).code).toBe(0);
    expect(calls(s)).toEqual([`DELETE /v1/backups/${BACKUP_ID}`, `DELETE /v1/backups/${BACKUP_ID}`]);
  });

  it("follows the job with --wait and says the backup is gone; exits 3 when incrementals still need it", async () => {
    const { job, script } = jobScript("backup.delete", { backupId: BACKUP_ID, deleted: true });
    const s = await serve(
      {
        [`DELETE /v1/backups/${BACKUP_ID}`]: json({ job, backup: makeBackup({ state: "deleting" }) }, 202),
        [`DELETE /v1/backups/${PARENT_BACKUP_ID}`]: problem(409, "BACKUP_IN_USE", `backup ${PARENT_BACKUP_ID} is the base of incremental backup ${BACKUP_ID}`, "delete the incrementals first (newest first)"),
      },
      script,
    );
    const run = await runIaas(["backup", "delete", BACKUP_ID, "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`backup ${BACKUP_ID} deleted\n`);
    const needed = await runIaas(["backup", "delete", PARENT_BACKUP_ID], s.url);
    expect(needed.code).toBe(3);
    expect(needed.stderr).toBe(`error: backup ${PARENT_BACKUP_ID} is the base of incremental backup ${BACKUP_ID}\nhint: delete the incrementals first (newest first)\n`);
  });
});

describe("backup restore", () => {
  const restoring = json({ job: makeJob({ type: "vm.backup.restore" }), vm: makeVm(), backup: makeBackup() }, 202);

  it("posts the VM with discardSnapshots and start false by default, true with the flags", async () => {
    const s = await serve({ [`POST /v1/backups/${BACKUP_ID}/restore`]: restoring });
    const run = await runIaas(["backup", "restore", BACKUP_ID, "web1"], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: restore VM from backup (vm web1)\n${follow}`, stderr: "" });
    expect((await runIaas(["backup", "restore", BACKUP_ID, "web1", "--discard-snapshots", "--start"], s.url)).code).toBe(0);
    expect(calls(s)).toEqual([`POST /v1/backups/${BACKUP_ID}/restore`, `POST /v1/backups/${BACKUP_ID}/restore`]);
    expect(s.requests.map(bodyOf)).toEqual([
      { vm: "web1", discardSnapshots: false, start: false },
      { vm: "web1", discardSnapshots: true, start: true },
    ]);
  });

  it("exits 2 without the VM, 3 with the API's hint when the VM has snapshots or runs", async () => {
    const s = await serve({
      [`POST /v1/backups/${BACKUP_ID}/restore`]: problem(409, "INVALID_STATE", "vm web1 has 2 snapshots; restoring replaces the disk they live in", "add --discard-snapshots to drop them"),
    });
    const missing = await runIaas(["backup", "restore", BACKUP_ID], s.url);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error: missing required argument 'vm'");
    const run = await runIaas(["backup", "restore", BACKUP_ID, "web1"], s.url);
    expect(run).toEqual({ code: 3, stdout: "", stderr: "error: vm web1 has 2 snapshots; restoring replaces the disk they live in\nhint: add --discard-snapshots to drop them\n" });
  });

  it("follows the job with --wait and says what state the VM is in after", async () => {
    const { job, script } = jobScript("vm.backup.restore", { vmId: VM_ID, state: "running", backupId: BACKUP_ID });
    const s = await serve({ [`POST /v1/backups/${BACKUP_ID}/restore`]: json({ job, vm: makeVm(), backup: makeBackup() }, 202) }, script);
    const run = await runIaas(["backup", "restore", BACKUP_ID, "web1", "--start", "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`vm web1: restored from backup ${BACKUP_ID}; the VM is running\n`);
    expect(run.stderr).toContain("[job 1a2b3c4d] succeeded");
  });
});

describe("vm create --from-backup", () => {
  const path = `POST /v1/backups/${BACKUP_ID}/vms`;
  const creating = json({ job: makeJob({ type: "vm.create", targetName: "web2" }), vm: makeVm({ name: "web2", state: "creating" }) }, 202);

  it("posts only the name when nothing else is given: the backup supplies the rest", async () => {
    const s = await serve({ [path]: creating });
    const run = await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID], s.url);
    expect(run).toEqual({ code: 0, stdout: `job ${JOB_ID} queued: create VM (vm web2)\n${follow}`, stderr: "" });
    expect(calls(s)).toEqual([path]);
    expect(bodyOf(s.requests[0])).toEqual({ name: "web2" });
  });

  it("sends the resources, image, host, NICs and --start the user gave; --no-network sends no NICs", async () => {
    const s = await serve({ [path]: creating });
    const args = ["--cpus", "4", "--memory", "1G", "--disk", "20G", "--image", "deb12", "--host", "hv1", "--network", "backend,ip=10.20.0.10", "--network", "default", "--start"];
    expect((await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, ...args], s.url)).code).toBe(0);
    expect((await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, "--no-network"], s.url)).code).toBe(0);
    expect(s.requests.map(bodyOf)).toEqual([
      { name: "web2", cpus: 4, memory: "1G", disk: "20G", image: "deb12", host: "hv1", networks: [{ network: "backend", ip: "10.20.0.10" }, { network: "default" }], start: true },
      { name: "web2", networks: [] },
    ]);
  });

  it("follows the job with --wait and prints the new VM", async () => {
    const { job, script } = jobScript("vm.create", { vmId: VM_ID, state: "stopped" }, { targetName: "web2" });
    const s = await serve({ [path]: json({ job, vm: makeVm({ name: "web2", state: "creating" }) }, 202), [`GET /v1/vms/${VM_ID}`]: json(makeVm({ name: "web2" })), "GET /v1/hosts": json({ items: [makeHost()] }) }, script);
    const run = await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, "--wait"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^name:\s+web2\n/);
    expect(run.stdout).toContain(`host:        hv1 (${HOST_ID})`);
  });

  it("exits 2 for the cloud-init options and --dry-run with --from-backup, and for neither --image nor --from-backup", async () => {
    const s = await serve({});
    const hostname = await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, "--hostname", "www", "--user-data", "init.yaml"], s.url);
    expect(hostname).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "error: --user-data, --hostname cannot be combined with --from-backup: the VM takes its cloud-init settings from the backup\n" +
        `hint: leave them out: iaas vm create web2 --from-backup ${BACKUP_ID}\n`,
    });
    const dryRun = await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, "--dry-run"], s.url);
    expect(dryRun.code).toBe(2);
    expect(dryRun.stderr).toContain("error: --dry-run cannot be combined with --from-backup");
    const neither = await runIaas(["vm", "create", "web2"], s.url);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toBe(
      "error: required option '--image <image>' not specified\nhint: name the image to base the VM on (see `iaas image list`), or make it from a backup with --from-backup ID\n",
    );
    const both = await runIaas(["vm", "create", "web2", "--from-backup", BACKUP_ID, "--network", "default", "--no-network"], s.url);
    expect(both.code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });

  it("exits 3 for an unknown backup, and leaves a plain vm create as it was", async () => {
    const s = await serve({
      [`POST /v1/backups/nope/vms`]: problem(404, "NOT_FOUND", "backup 'nope' not found", "list backups with: iaas backup list"),
      "POST /v1/vms": json({ job: makeJob(), vm: makeVm({ state: "creating" }) }, 202),
    });
    expect(await runIaas(["vm", "create", "web2", "--from-backup", "nope"], s.url)).toEqual({
      code: 3,
      stdout: "",
      stderr: "error: backup 'nope' not found\nhint: list backups with: iaas backup list\n",
    });
    expect((await runIaas(["vm", "create", "web1", "--image", "deb12", "--cpus", "2"], s.url)).code).toBe(0);
    expect(calls(s)).toEqual(["POST /v1/backups/nope/vms", "POST /v1/vms"]);
    expect(bodyOf(s.requests[1])).toEqual({ name: "web1", image: "deb12", cpus: 2, start: false, dryRun: false });
  });
});

describe("vm backup-schedule", () => {
  const schedulePath = "/v1/vms/web1/backup-schedule";

  it("set --every puts the interval, keep-last and incremental: false, and prints the schedule", async () => {
    const s = await serve({ [`PUT ${schedulePath}`]: json(makeSchedule()) });
    const run = await runIaas(["vm", "backup-schedule", "set", "web1", "--every", "24h", "--keep-last", "7"], s.url);
    expect(run).toEqual({
      code: 0,
      stdout: [
        `vm:          web1 (${VM_ID})`,
        "every:       1d",
        "keep last:   7",
        "incremental: no",
        "last run:    never",
        "last job:    -",
        "next run:    2025-01-02T00:00:00.000Z (in 23h)",
        "created:     2025-01-01T00:00:00.000Z",
        "",
      ].join("\n"),
      stderr: "",
    });
    expect(calls(s)).toEqual([`PUT ${schedulePath}`]);
    expect(bodyOf(s.requests[0])).toEqual({ every: "24h", keepLast: 7, incremental: false });
  });

  it("set --cron puts the pattern with --incremental; -o json prints the schedule", async () => {
    const stored = makeSchedule({ everyMs: null, cron: "0 3 * * *", keepLast: 14, incremental: true });
    const s = await serve({ [`PUT ${schedulePath}`]: json(stored) });
    const run = await runIaas(["vm", "backup-schedule", "set", "web1", "--cron", "0 3 * * *", "--keep-last", "14", "--incremental"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("cron:        0 3 * * * (UTC)\n");
    expect(run.stdout).toContain("incremental: yes\n");
    const asJson = await runIaas(["vm", "backup-schedule", "set", "web1", "--cron", "0 3 * * *", "--keep-last", "14", "--incremental", "-o", "json"], s.url);
    expect(JSON.parse(asJson.stdout)).toEqual(stored);
    expect(bodyOf(s.requests[0])).toEqual({ cron: "0 3 * * *", keepLast: 14, incremental: true });
  });

  it("exits 2 for a bad or missing --every/--cron or --keep-last, before calling the API", async () => {
    const s = await serve({});
    const set = (...args: string[]) => runIaas(["vm", "backup-schedule", "set", "web1", ...args], s.url);
    const neither = await set("--keep-last", "7");
    expect(neither).toEqual({
      code: 2,
      stdout: "",
      stderr: "error: give --every INTERVAL or --cron PATTERN: when the backups run\nhint: e.g. iaas vm backup-schedule set web1 --every 24h --keep-last 7\n",
    });
    const both = await set("--every", "24h", "--cron", "0 3 * * *", "--keep-last", "7");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("error: --every and --cron contradict each other; give one of them\n");
    const badEvery = await set("--every", "24x", "--keep-last", "7");
    expect(badEvery).toEqual({
      code: 2,
      stdout: "",
      stderr: "error: invalid --every: '24x' is not a duration: use a number and a unit s, m, h, d or w, e.g. 30m, 24h, 7d\n",
    });
    const tooShort = await set("--every", "5s", "--keep-last", "7");
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toBe("error: invalid --every: '5s' is shorter than the shortest interval, 10s\n");
    const badCron = await set("--cron", "0 3 * *", "--keep-last", "7");
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toContain("error: invalid --cron '0 3 * *': a cron pattern has 5 fields");
    const noKeep = await set("--every", "24h");
    expect(noKeep.code).toBe(2);
    expect(noKeep.stderr).toContain("error: required option '--keep-last <n>' not specified");
    expect((await set("--every", "24h", "--keep-last", "0")).code).toBe(2);
    expect(s.requests).toHaveLength(0);
  });

  it("show prints the schedule with its last and next run; exits 3 when the VM has none", async () => {
    const ran = makeSchedule({ lastRunAt: "2025-01-01T00:00:30.000Z", lastJobId: JOB_ID, nextRunAt: null, incremental: true });
    const s = await serve({
      [`GET ${schedulePath}`]: json(ran),
      "GET /v1/vms/db1/backup-schedule": problem(404, "NOT_FOUND", "vm db1 has no backup schedule", "set one with: iaas vm backup-schedule set db1 --every 24h --keep-last 7"),
    });
    const run = await runIaas(["vm", "backup-schedule", "show", "web1"], s.url);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("last run:    2025-01-01T00:00:30.000Z (30s ago)\n");
    expect(run.stdout).toContain(`last job:    ${JOB_ID}\n`);
    expect(run.stdout).toContain("next run:    unknown (the scheduler could not be asked)\n");
    const none = await runIaas(["vm", "backup-schedule", "show", "db1"], s.url);
    expect(none).toEqual({ code: 3, stdout: "", stderr: "error: vm db1 has no backup schedule\nhint: set one with: iaas vm backup-schedule set db1 --every 24h --keep-last 7\n" });
  });

  it("remove (also rm) deletes the schedule and says so; -o json prints what was removed", async () => {
    const s = await serve({ [`DELETE ${schedulePath}`]: noContent() });
    expect(await runIaas(["vm", "backup-schedule", "remove", "web1"], s.url)).toEqual({ code: 0, stdout: "backup schedule of vm web1 removed\n", stderr: "" });
    const run = await runIaas(["vm", "backup-schedule", "rm", "web1", "-o", "json"], s.url);
    expect(JSON.parse(run.stdout)).toEqual({ vm: "web1", removed: true });
    expect(calls(s)).toEqual([`DELETE ${schedulePath}`, `DELETE ${schedulePath}`]);
  });
});

describe("backup help", () => {
  it("lists the backup commands under backup and vm, and in the top-level help", async () => {
    const s = await serve({});
    const top = (await runIaas(["--help"], s.url)).stdout;
    expect(top).toMatch(/backup\s+list, show, verify, restore\s+and\s+delete\s+VM\s+backups/);
    expect(top).toContain("Backups:\n");
    expect(top).toContain("iaas backup list|show|verify|restore|delete");
    const backup = (await runIaas(["backup", "--help"], s.url)).stdout;
    for (const command of ["list|ls [options]", "show [options] <id>", "verify [options] <id>", "restore [options] <id> <vm>", "delete|rm [options] <id>"]) expect(backup).toContain(command);
    const vm = (await runIaas(["vm", "--help"], s.url)).stdout;
    expect(vm).toContain("backup [options] <name>");
    expect(vm).toMatch(/backup-schedule\s+back up a VM regularly/);
    const schedule = (await runIaas(["vm", "backup-schedule", "--help"], s.url)).stdout;
    for (const command of ["set [options] <name>", "show [options] <name>", "remove|rm [options] <name>"]) expect(schedule).toContain(command);
    expect((await runIaas(["vm", "create", "--help"], s.url)).stdout).toContain("--from-backup <id>");
    expect((await runIaas(["vm", "backup", "--help"], s.url)).stdout).toContain("--as-image <image>");
  });
});
