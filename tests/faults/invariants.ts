// What must hold once the load stopped and every job is final, whatever faults happened: each
// check returns its violations with the details needed to find the code path that broke it.
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { AcceptedJob } from "./client.js";
import { HOSTS, type FaultStack } from "./stack.js";

export const INVARIANTS = [
  "1 every job terminal",
  "2 no transitional state",
  "3 one QEMU per running VM, none else",
  "4 store files match rows",
  "5 no accepted job lost",
  "6 locks released",
  "7 no process exited on its own",
  "8 no illegal VM transition",
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export interface Violation {
  invariant: Invariant;
  detail: string;
}

export interface Findings {
  violations: Violation[];
  warnings: string[];
}

const VM_TRANSITIONAL = ["creating", "starting", "stopping", "deleting"];

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Files under `dir`, relative to it (directories are walked, not listed). */
async function walk(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true }).catch(() => [])) {
    const rel = path.join(prefix, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(dir, rel)));
    else out.push(rel);
  }
  return out;
}

export async function checkInvariants(stack: FaultStack, accepted: Map<string, AcceptedJob>): Promise<Findings> {
  const violations: Violation[] = [];
  const warnings: string[] = [];
  const v = (invariant: Invariant, detail: string) => violations.push({ invariant, detail });
  const q = <R extends Record<string, unknown>>(sql: string, params: unknown[] = []) => stack.query<R>(sql, params);

  // 1. Every job terminal.
  const open = await q<{ id: string; type: string; state: string; hostId: string | null; attempts: number; createdAt: Date; startedAt: Date | null }>(
    `SELECT id, type, state, "hostId", attempts, "createdAt", "startedAt" FROM "Job" WHERE state NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY "createdAt"`,
  );
  for (const j of open) {
    v("1 every job terminal", `job ${j.id} ${j.type} on ${j.hostId ?? "-"} is ${j.state} (attempts ${j.attempts}, created ${j.createdAt.toISOString()}, started ${j.startedAt?.toISOString() ?? "never"})`);
  }

  // 2. Nothing left in a transitional state.
  const vms = await q<{ id: string; name: string; state: string; hostId: string; pid: number | null; lockJobId: string | null; errorCode: string | null; errorMessage: string | null }>(
    `SELECT id, name, state, "hostId", pid, "lockJobId", "errorCode", "errorMessage" FROM "Vm" ORDER BY name`,
  );
  for (const vm of vms.filter((x) => VM_TRANSITIONAL.includes(x.state))) {
    v("2 no transitional state", `VM ${vm.name} (${vm.id}) on ${vm.hostId} is ${vm.state} (lock ${vm.lockJobId ?? "none"})`);
  }
  const images = await q<{ id: string; name: string; state: string; path: string | null; lockJobId: string | null; originType: string | null }>(
    `SELECT id, name, state::text AS state, path, "lockJobId", "originType" FROM "Image" ORDER BY name`,
  );
  for (const img of images.filter((x) => x.state === "importing" || x.state === "deleting")) {
    v("2 no transitional state", `image ${img.name} (${img.id}, ${img.originType ?? "?"}) is ${img.state} (lock ${img.lockJobId ?? "none"})`);
  }
  const exportsRows = await q<{ id: string; state: string; path: string | null; jobId: string; sourceName: string }>(`SELECT id, state, path, "jobId", "sourceName" FROM "Export"`);
  for (const e of exportsRows.filter((x) => x.state === "pending")) v("2 no transitional state", `export ${e.id} of ${e.sourceName} is pending (job ${e.jobId})`);
  const snapshots = await q<{ id: string; name: string; state: string; vmId: string }>(`SELECT id, name, state, "vmId" FROM "Snapshot" WHERE state <> 'ready'`);
  for (const s of snapshots) v("2 no transitional state", `snapshot ${s.name} (${s.id}) of VM ${s.vmId} is ${s.state}`);
  const backups = await q<{ id: string; state: string; path: string | null; vmName: string; lockJobId: string | null; jobId: string }>(
    `SELECT id, state::text AS state, path, "vmName", "lockJobId", "jobId" FROM "Backup"`,
  );
  for (const b of backups.filter((x) => x.state !== "ready")) v("2 no transitional state", `backup ${b.id} of ${b.vmName} is ${b.state} (job ${b.jobId})`);

  // 3. Exactly one QEMU per running VM, with the recorded pid; none for anything else.
  const qemus = await stack.qemuProcesses();
  const byName = new Map(vms.map((vm) => [vm.name, vm]));
  for (const p of qemus) {
    const vm = p.guest === null ? undefined : byName.get(p.guest);
    if (p.guest === null) v("3 one QEMU per running VM, none else", `QEMU pid ${p.pid} without a guest name: ${p.argv.join(" ").slice(0, 200)}`);
    else if (!vm) v("3 one QEMU per running VM, none else", `QEMU pid ${p.pid} for guest '${p.guest}' on ${p.hostId ?? "?"}: no VM row has that name`);
    else if (vm.state !== "running") v("3 one QEMU per running VM, none else", `QEMU pid ${p.pid} for VM ${vm.name} which is ${vm.state} (recorded pid ${String(vm.pid)})`);
    else if (vm.hostId !== p.hostId) v("3 one QEMU per running VM, none else", `QEMU pid ${p.pid} for VM ${vm.name} runs in ${p.hostId ?? "?"}'s directory, the VM is on ${vm.hostId}`);
  }
  for (const vm of vms.filter((x) => x.state === "running")) {
    const mine = qemus.filter((p) => p.guest === vm.name && p.hostId === vm.hostId);
    if (mine.length !== 1) v("3 one QEMU per running VM, none else", `running VM ${vm.name} on ${vm.hostId} has ${mine.length} QEMU processes (pids ${mine.map((p) => p.pid).join(", ") || "none"}; recorded ${String(vm.pid)})`);
    else if (mine[0]?.pid !== vm.pid) v("3 one QEMU per running VM, none else", `running VM ${vm.name}: recorded pid ${String(vm.pid)}, its QEMU is pid ${String(mine[0]?.pid)}`);
  }

  // 4. Files in the store and the host directories against the rows.
  const imageByPath = new Map(images.filter((i) => i.path).map((i) => [i.path as string, i]));
  const exportByPath = new Map(exportsRows.filter((e) => e.path).map((e) => [e.path as string, e]));
  const backupByPath = new Map(backups.filter((b) => b.path).map((b) => [b.path as string, b]));
  for (const rel of await walk(stack.storeDir)) {
    const image = imageByPath.get(rel);
    const exp = exportByPath.get(rel);
    const backup = backupByPath.get(rel);
    const size = (await stat(path.join(stack.storeDir, rel)).catch(() => null))?.size ?? 0;
    if (image && (image.state === "ready" || image.state === "error")) continue;
    if (exp && exp.state === "ready") continue;
    if (backup && backup.state === "ready") continue;
    const row = image ? `image ${image.name} is ${image.state}` : exp ? `export ${exp.id} is ${exp.state}` : backup ? `backup ${backup.id} is ${backup.state}` : "no row names it";
    v("4 store files match rows", `store file ${rel} (${size} bytes): ${row}`);
  }
  for (const img of images.filter((i) => i.state === "ready")) {
    if (!img.path) v("4 store files match rows", `image ${img.name} is ready without a path`);
    else if (!(await exists(path.join(stack.storeDir, img.path)))) v("4 store files match rows", `image ${img.name} is ready but ${img.path} is missing`);
  }
  for (const e of exportsRows.filter((x) => x.state === "ready")) {
    if (!e.path || !(await exists(path.join(stack.storeDir, e.path)))) v("4 store files match rows", `export ${e.id} of ${e.sourceName} is ready but its file ${e.path ?? "(no path)"} is missing`);
  }
  for (const b of backups.filter((x) => x.state === "ready")) {
    if (!b.path || !(await exists(path.join(stack.storeDir, b.path)))) v("4 store files match rows", `backup ${b.id} of ${b.vmName} is ready but its file ${b.path ?? "(no path)"} is missing`);
  }
  const byId = new Map(vms.map((vm) => [vm.id, vm]));
  for (const host of HOSTS) {
    const vmsDir = path.join(stack.dataDir(host), "vms");
    for (const entry of await readdir(vmsDir).catch(() => [] as string[])) {
      const vm = byId.get(entry);
      const files = (await readdir(path.join(vmsDir, entry)).catch(() => [] as string[])).join(", ");
      if (!vm) v("4 store files match rows", `${host}: directory vms/${entry} has no VM row (files: ${files || "none"})`);
      else if (vm.hostId !== host) v("4 store files match rows", `${host}: directory vms/${entry} belongs to VM ${vm.name}, which is on ${vm.hostId}`);
    }
    for (const vm of vms.filter((x) => x.hostId === host && x.state !== "creating")) {
      if (await exists(path.join(vmsDir, vm.id, "disk.qcow2"))) continue;
      if (vm.state === "error") warnings.push(`VM ${vm.name} on ${host} is in error without a disk (${vm.errorCode ?? "?"}: ${(vm.errorMessage ?? "").slice(0, 120)}); it can only be deleted`);
      else v("4 store files match rows", `VM ${vm.name} on ${host} is ${vm.state} but vms/${vm.id}/disk.qcow2 is missing`);
    }
  }

  // 5. Every job an API accepted is in Postgres, with the key it was submitted under.
  const ids = [...accepted.keys()];
  const found = new Map(
    (await q<{ id: string; idempotencyKey: string | null }>(`SELECT id, "idempotencyKey" FROM "Job" WHERE id = ANY($1::uuid[])`, [ids])).map((r) => [r.id, r.idempotencyKey]),
  );
  for (const job of accepted.values()) {
    if (!found.has(job.jobId)) v("5 no accepted job lost", `${job.op} job ${job.jobId} (${job.jobType}, accepted at +${(job.at / 1000).toFixed(1)}s via ${job.via}) is not in Postgres`);
  }

  // 6. Locks released.
  for (const vm of vms.filter((x) => x.lockJobId !== null)) v("6 locks released", `VM ${vm.name} (${vm.state}) still locked by job ${vm.lockJobId}`);
  for (const img of images.filter((x) => x.lockJobId !== null)) v("6 locks released", `image ${img.name} (${img.state}) still locked by job ${img.lockJobId}`);
  for (const b of backups.filter((x) => x.lockJobId !== null)) v("6 locks released", `backup ${b.id} still locked by job ${b.lockJobId}`);
  const leased = await q<{ id: string; type: string; state: string; leaseExpiresAt: Date }>(
    `SELECT id, type, state, "leaseExpiresAt" FROM "Job" WHERE state IN ('succeeded', 'failed', 'cancelled') AND "leaseExpiresAt" IS NOT NULL`,
  );
  for (const j of leased) v("6 locks released", `job ${j.id} ${j.type} is ${j.state} but keeps a lease until ${j.leaseExpiresAt.toISOString()}`);

  // 7. No process died on its own (a crash the service manager would have restarted).
  for (const c of stack.crashes) {
    v("7 no process exited on its own", `${c.name} exited at +${(c.at / 1000).toFixed(1)}s (code ${String(c.code)}, signal ${String(c.signal)}); log tail:\n${c.logTail.split("\n").slice(-12).join("\n")}`);
  }

  // Warnings: failures without a clear code.
  const failed = await q<{ id: string; type: string; errorCode: string | null; errorMessage: string | null }>(`SELECT id, type, "errorCode", "errorMessage" FROM "Job" WHERE state = 'failed'`);
  for (const j of failed) {
    const message = j.errorMessage ?? "";
    // A writer asked for a move the transition table does not have: a bug, whatever the fault.
    if (/illegal VM transition/.test(message)) {
      v("8 no illegal VM transition", `job ${j.id} ${j.type} failed: ${message.slice(0, 200)}`);
      continue;
    }
    if (j.errorCode === null || j.errorCode === "INTERNAL" || /\n\s+at |Invalid `|prisma\.|TypeError|ReferenceError|Cannot read propert/.test(message)) {
      warnings.push(`job ${j.id} ${j.type} failed with ${j.errorCode ?? "no code"}: ${message.replace(/\s+/g, " ").slice(0, 200)}`);
    }
  }
  return { violations, warnings };
}
