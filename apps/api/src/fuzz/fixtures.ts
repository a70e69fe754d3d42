import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Role } from "@iaas/contracts";
import { generateToken } from "../auth/tokens.js";
import type { TestApi } from "../testing/testApi.js";
import { FIXTURE_IDS, FUZZ_TOKEN_NAMES, type FuzzTokens } from "./cases.js";

export interface Fixtures {
  tokens: FuzzTokens;
  /** Puts back every fixture row as it was (between rounds: requests delete and lock things). */
  restore(): Promise<void>;
  /** What a worker's heartbeat does: keeps host h1 online. */
  heartbeat(): Promise<void>;
}

const EXPORT_FILE = "exports/fz-export.qcow2";
const EXPORT_BYTES = Buffer.alloc(4096, 0x5a);

/**
 * The rows the fuzzer's realistic values name (cases.ts), on top of TestApi.reset()'s host `h1`,
 * image `deb` and network `default`: a second project `fz-b` with its VM; VMs `fz-vm` (stopped,
 * with a NIC, a port forward and snapshot `snap1`), `fz-vm2` (stopped), `fz-run` and `fz-run2` (running); image `fz-up` waiting
 * for its upload; network `fz-net`; a queued and a finished job; a ready backup; a ready and an
 * expired export. Tokens (made once, straight into the database as `npm run up` does): admin,
 * viewer, an operator scoped to `fz-b`, a revoked and an expired one.
 */
export async function setUpFixtures(api: TestApi): Promise<Fixtures> {
  const { db } = api;
  await db.project.create({ data: { id: FIXTURE_IDS.project, name: "fz-b", description: "second project of the fuzzer" } });
  await db.project.create({ data: { name: "fz-empty" } });
  const makeToken = async (name: string, role: Role, extra: { projectId?: string; revokedAt?: Date; expiresAt?: Date } = {}) => {
    const made = generateToken();
    await db.apiToken.create({ data: { name, prefix: made.prefix, hash: made.hash, role, ...extra } });
    return made.token;
  };
  const tokens: FuzzTokens = {
    admin: await makeToken(FUZZ_TOKEN_NAMES.admin, "admin"),
    viewer: await makeToken(FUZZ_TOKEN_NAMES.viewer, "viewer"),
    operator: await makeToken(FUZZ_TOKEN_NAMES.operator, "operator", { projectId: FIXTURE_IDS.project }),
    revoked: await makeToken(FUZZ_TOKEN_NAMES.revoked, "admin", { revokedAt: new Date() }),
    expired: await makeToken(FUZZ_TOKEN_NAMES.expired, "admin", { expiresAt: new Date(Date.now() - 60_000) }),
  };

  const heartbeat = async () => {
    await db.host.updateMany({ where: { id: "h1" }, data: { lastHeartbeatAt: new Date() } });
  };

  const restore = async () => {
    await api.reset();
    await db.backupSchedule.deleteMany();
    await db.project.updateMany({ data: { quota: {} } });
    const limits = await api.redis.keys(`${api.prefix}:rl:*`);
    if (limits.length > 0) await api.redis.del(...limits);

    const deb = await db.image.findFirstOrThrow({ where: { name: "deb" } });
    const defaultNet = await db.network.findFirstOrThrow({ where: { name: "default" } });
    await db.image.create({ data: { name: "fz-up", state: "importing", originType: "upload", uploadLength: 1024n } });
    await db.network.create({ data: { name: "fz-net", subnet: "10.201.0.0/24", gateway: "10.201.0.1", mtu: 1450, dnsDomain: "iaas.internal" } });
    const vm = { hostId: "h1", imageId: deb.id, cpus: 1, memoryBytes: 268_435_456n, diskBytes: 1_073_741_824n };
    await db.vm.create({ data: { ...vm, id: FIXTURE_IDS.vm, name: "fz-vm", state: "stopped" } });
    await db.vm.create({ data: { ...vm, id: FIXTURE_IDS.vm2, name: "fz-vm2", state: "stopped" } });
    await db.vm.create({ data: { ...vm, id: FIXTURE_IDS.runningVm, name: "fz-run", state: "running", pid: 4242, accelerator: "tcg" } });
    await db.vm.create({ data: { ...vm, id: FIXTURE_IDS.runningVm2, name: "fz-run2", state: "running", pid: 4243, accelerator: "tcg" } });
    await db.vm.create({ data: { ...vm, id: FIXTURE_IDS.projectVm, name: "fz-b-vm", state: "stopped", projectId: FIXTURE_IDS.project } });
    const nic = await db.nic.create({ data: { vmId: FIXTURE_IDS.vm, networkId: defaultNet.id, index: 0, mac: "52:54:00:f0:00:01", ip: "10.200.0.10" } });
    await db.portForward.create({ data: { nicId: nic.id, vmId: FIXTURE_IDS.vm, hostId: "h1", protocol: "tcp", hostPort: 2222, guestPort: 22 } });
    await db.snapshot.create({ data: { vmId: FIXTURE_IDS.vm, name: "snap1", kind: "disk", state: "ready", vmState: "stopped" } });

    const job = { hostId: "h1", payload: {}, maxAttempts: 1, timeoutMs: 60_000 };
    const finished = { state: "succeeded" as const, startedAt: new Date(), finishedAt: new Date() };
    await db.job.create({ data: { ...job, id: FIXTURE_IDS.queuedJob, type: "vm_start", vmId: FIXTURE_IDS.vm, targetName: "fz-vm" } });
    await db.job.create({ data: { ...job, ...finished, id: FIXTURE_IDS.doneJob, type: "vm_start", vmId: FIXTURE_IDS.vm, targetName: "fz-vm", eventSeq: 1 } });
    await db.jobEvent.create({ data: { jobId: FIXTURE_IDS.doneJob, seq: 1, type: "state", state: "succeeded", message: "succeeded" } });
    await db.job.create({ data: { ...job, ...finished, id: FIXTURE_IDS.exportJob, type: "image_export", imageId: deb.id, targetName: "deb" } });
    await db.job.create({ data: { ...job, ...finished, id: FIXTURE_IDS.expiredExportJob, type: "image_export", imageId: deb.id, targetName: "deb" } });

    await db.backup.create({
      data: {
        id: FIXTURE_IDS.backup,
        vmId: FIXTURE_IDS.vm,
        vmName: "fz-vm",
        hostId: "h1",
        kind: "full",
        state: "ready",
        path: `backups/${FIXTURE_IDS.vm}/${FIXTURE_IDS.backup}.qcow2`,
        sizeBytes: 1000n,
        diskBytes: 1_073_741_824n,
        sha256: "a".repeat(64),
        config: { cpus: 1, memoryBytes: 268_435_456, diskBytes: 1_073_741_824, image: { id: deb.id, name: "deb" }, hostname: null, sshKeys: [], userData: null, nics: [] },
        jobId: FIXTURE_IDS.doneJob,
        finishedAt: new Date(),
      },
    });
    // DELETE /v1/exports/:id removes the file too.
    await mkdir(path.join(api.store, path.dirname(EXPORT_FILE)), { recursive: true });
    await writeFile(path.join(api.store, EXPORT_FILE), EXPORT_BYTES);
    const exported = { sourceType: "image" as const, sourceId: deb.id, sourceName: "deb", format: "qcow2" };
    await db.export.create({
      data: {
        ...exported,
        id: FIXTURE_IDS.export,
        jobId: FIXTURE_IDS.exportJob,
        state: "ready",
        path: EXPORT_FILE,
        sizeBytes: BigInt(EXPORT_BYTES.length),
        sha256: createHash("sha256").update(EXPORT_BYTES).digest("hex"),
        expiresAt: new Date(Date.now() + 3_600_000),
      },
    });
    await db.export.create({ data: { ...exported, id: FIXTURE_IDS.expiredExport, jobId: FIXTURE_IDS.expiredExportJob, state: "expired", expiresAt: new Date(Date.now() - 60_000) } });
    await heartbeat();
  };

  await restore();
  return { tokens, restore, heartbeat };
}
