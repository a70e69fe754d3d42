import { type Request, type Response, type Router } from "express";
import { inProject } from "../auth/scope.js";
import { guardedRouter } from "../auth/permissions.js";
import type { Redis } from "ioredis";
import {
  BackupScheduleRequest,
  ExportRequest,
  NicRequest,
  PortForwardRequest,
  PortProtocol,
  SnapshotCreateRequest,
  SnapshotRestoreRequest,
  VmCreateRequest,
  VmCloneRequest,
  VmProbeRequest,
  VmResizeRequest,
  VmSetRequest,
  VmStopRequest,
  VmBackupRequest,
  VmMigrateRequest,
  VmDeleteQuery,
  type JobAccepted,
  type PortForwardList,
  type SnapshotList,
  type VmList,
} from "@iaas/contracts";
import { jobTypeOf, type Prisma, type PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, sendAccepted, validate } from "../http/validate.js";
import type { BackupScheduler } from "../services/BackupScheduler.js";
import type { BackupService } from "../services/BackupService.js";
import { backupDtos } from "./backups.js";
import { toBackupScheduleDto, toImageDto, toExportDto, toJobDto, toPortForwardDto, toSnapshotDto, toVmDto, VM_DTO_INCLUDE } from "../services/dto.js";
import type { SnapshotService } from "../services/SnapshotService.js";
import type { VmChangeService } from "../services/VmChangeService.js";
import type { VmCloneService } from "../services/VmCloneService.js";
import type { ExportService } from "../services/ExportService.js";
import { requestHash } from "../services/JobSubmitter.js";
import { findVm } from "../services/resolve.js";
import type { VmAction, VmService } from "../services/VmService.js";
import type { VmNetworkService } from "../services/VmNetworkService.js";
import { streamConsole } from "./console.js";
import { watchClient } from "../http/clientWatch.js";
import { hostStates, type HostThresholds } from "../services/hostLiveness.js";
import type { VmForceDelete } from "../services/VmForceDelete.js";
import type { VmMigrationService } from "../services/VmMigrationService.js";
import { BY_NAME, OLDEST_FIRST, pageArgs, pageRequest, pageResult, type SortKey } from "../http/paginate.js";

function meta(req: Request) {
  return { idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")), hash: requestHash(req.method, req.path, req.body) };
}

/** Port forwards: by protocol and host port (unique per host, so per VM). */
const PORT_KEYS: readonly SortKey[] = [
  { field: "protocol", dir: "asc", kind: "string" },
  { field: "hostPort", dir: "asc", kind: "number" },
  { field: "id", dir: "asc", kind: "string" },
];

export function vmRoutes(deps: {
  db: PrismaClient;
  vms: VmService;
  vmNetworks: VmNetworkService;
  snapshots: SnapshotService;
  changes: VmChangeService;
  clones: VmCloneService;
  exports: ExportService;
  backups: BackupService;
  schedules: BackupScheduler;
  redis: Redis;
  queuePrefix: string;
  hosts: HostThresholds;
  forceDelete: VmForceDelete;
  migrations: VmMigrationService;
}): Router {
  const { db, vms, vmNetworks } = deps;
  const router = guardedRouter("/v1/vms");
  // A VM on a lost host is shown `unknown` (its recorded state stays in `reportedState`).
  const vmDto = async (id: string | null) => {
    const vm = await db.vm.findUnique({ where: { id: id ?? "" }, include: VM_DTO_INCLUDE });
    return vm ? toVmDto(vm, (await hostStates(db, deps.hosts)).get(vm.hostId) ?? "lost") : null;
  };

  router.get("/", async (req, res) => {
    const page = pageRequest(req.query, BY_NAME);
    const [rows, states] = await Promise.all([db.vm.findMany({ ...pageArgs<Prisma.VmWhereInput>(inProject(), BY_NAME, page), include: VM_DTO_INCLUDE }), hostStates(db, deps.hosts)]);
    const { items, nextCursor } = pageResult(rows, BY_NAME, page);
    res.json({ items: items.map((vm) => toVmDto(vm, states.get(vm.hostId) ?? "lost")), nextCursor } satisfies VmList);
  });

  router.post("/", async (req, res) => {
    const body = validate(VmCreateRequest, req.body, "VM create request");
    if (body.dryRun) {
      res.json(await vms.dryRun(body));
      return;
    }
    const submitted = await vms.create(body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.get("/:ref", async (req, res) => {
    const vm = await findVm(db, req.params.ref);
    res.json(await vmDto(vm.id));
  });

  const action = (name: VmAction) => async (req: Request<{ ref: string }>, res: Response) => {
    const stop = name === "stop" ? validate(VmStopRequest, req.body, "VM stop request") : undefined;
    const submitted = await vms.act(req.params.ref, name, meta(req), stop);
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  };
  router.post("/:ref/start", action("start"));
  router.post("/:ref/stop", action("stop"));
  router.post("/:ref/reboot", action("reboot"));
  router.delete("/:ref", async (req, res) => {
    const force = validate(VmDeleteQuery, req.query, "delete query").force;
    if (!force) return action("delete")(req, res);
    // Only for a VM whose host is lost: its records go now, in a job that is already finished.
    const done = await deps.forceDelete.delete(req.params.ref, { ...meta(req), hash: requestHash(req.method, `${req.path}?force=true`, req.body) });
    res.status(200).location(`/v1/jobs/${done.job.id}`);
    (res.locals as { jobType?: string }).jobType = jobTypeOf(done.job);
    if (done.replayed) res.setHeader("Idempotent-Replayed", "true");
    res.json({ job: toJobDto(done.job), vm: null } satisfies JobAccepted);
  });

  router.post("/:ref/migrate", async (req, res) => {
    const body = validate(VmMigrateRequest, req.body ?? {}, "migrate request");
    const submitted = await deps.migrations.migrate(req.params.ref, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.post("/:ref/export", async (req, res) => {
    const body = validate(ExportRequest, req.body, "export request");
    const submitted = await deps.exports.exportVm(req.params.ref, body, meta(req));
    const created = await db.export.findUniqueOrThrow({ where: { jobId: submitted.job.id } });
    sendAccepted(res, submitted, { export: toExportDto(created) });
  });

  router.post("/:ref/nics", async (req, res) => {
    const body = validate(NicRequest, req.body, "NIC request");
    const submitted = await vmNetworks.addNic(req.params.ref, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.delete("/:ref/nics/:nic", async (req, res) => {
    const submitted = await vmNetworks.removeNic(req.params.ref, req.params.nic, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.get("/:ref/ports", async (req, res) => {
    const page = pageRequest(req.query, PORT_KEYS);
    const vm = await findVm(db, req.params.ref);
    const rows = await db.portForward.findMany({ ...pageArgs<Prisma.PortForwardWhereInput>({ vmId: vm.id }, PORT_KEYS, page), include: { nic: { select: { index: true } } } });
    const { items, nextCursor } = pageResult(rows, PORT_KEYS, page);
    res.json({ items: items.map((f) => toPortForwardDto(f, f.nic.index)), nextCursor } satisfies PortForwardList);
  });

  router.post("/:ref/ports", async (req, res) => {
    const body = validate(PortForwardRequest, req.body, "port forward request");
    const submitted = await vmNetworks.addPort(req.params.ref, body, meta(req));
    const forward = submitted.extra?.forward ?? (await db.portForward.findFirst({ where: { vmId: submitted.job.vmId ?? "", hostPort: body.hostPort, protocol: body.protocol } }));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId), forward: forward ? toPortForwardDto(forward, body.nic) : null });
  });

  router.delete("/:ref/ports/:hostPort", async (req, res) => {
    const port = validate(PortForwardRequest.shape.hostPort, Number(req.params.hostPort), "host port");
    const protocol = validate(PortProtocol, req.query["protocol"] ?? "tcp", "protocol");
    const submitted = await vmNetworks.removePort(req.params.ref, port, protocol, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.post("/:ref/probe", async (req, res) => {
    const body = validate(VmProbeRequest, req.body, "probe request");
    const submitted = await vmNetworks.probe(req.params.ref, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.post("/:ref/clone", async (req, res) => {
    const body = validate(VmCloneRequest, req.body, "clone request");
    const submitted = await deps.clones.clone(req.params.ref, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.post("/:ref/resize", async (req, res) => {
    const body = validate(VmResizeRequest, req.body, "resize request");
    const submitted = await deps.changes.resize(req.params.ref, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.patch("/:ref", async (req, res) => {
    const body = validate(VmSetRequest, req.body, "VM change request");
    const vm = await deps.changes.set(req.params.ref, body);
    res.json(await vmDto(vm.id));
  });

  router.get("/:ref/snapshots", async (req, res) => {
    const page = pageRequest(req.query, OLDEST_FIRST);
    const vm = await findVm(db, req.params.ref);
    const { items, nextCursor } = pageResult(await db.snapshot.findMany(pageArgs<Prisma.SnapshotWhereInput>({ vmId: vm.id }, OLDEST_FIRST, page)), OLDEST_FIRST, page);
    res.json({ items: items.map(toSnapshotDto), nextCursor } satisfies SnapshotList);
  });

  router.post("/:ref/snapshots", async (req, res) => {
    const body = validate(SnapshotCreateRequest, req.body, "snapshot request");
    const submitted = await deps.snapshots.create(req.params.ref, body, meta(req));
    const snapshot = submitted.extra?.snapshot ?? (await db.snapshot.findFirst({ where: { vmId: submitted.job.vmId ?? "", name: body.name } }));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId), snapshot: snapshot ? toSnapshotDto(snapshot) : null });
  });

  router.post("/:ref/snapshots/:name/restore", async (req, res) => {
    const body = validate(SnapshotRestoreRequest, req.body, "snapshot restore request");
    const submitted = await deps.snapshots.restore(req.params.ref, req.params.name, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.delete("/:ref/snapshots/:name", async (req, res) => {
    const submitted = await deps.snapshots.delete(req.params.ref, req.params.name, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  router.post("/:ref/backups", async (req, res) => {
    const body = validate(VmBackupRequest, req.body, "backup request");
    const submitted = await deps.backups.backup(req.params.ref, body, meta(req));
    const backup = submitted.extra?.backup ?? (await db.backup.findFirst({ where: { jobId: submitted.job.id } }));
    const image = submitted.extra?.image ?? (submitted.job.imageId ? await db.image.findUnique({ where: { id: submitted.job.imageId } }) : null);
    sendAccepted(res, submitted, {
      vm: await vmDto(submitted.job.vmId),
      backup: backup ? ((await backupDtos(db, [backup]))[0] ?? null) : null,
      image: image ? toImageDto(image) : null,
    });
  });

  router.put("/:ref/backup-schedule", async (req, res) => {
    const body = validate(BackupScheduleRequest, req.body, "backup schedule");
    const { schedule, vmName, next } = await deps.schedules.set(req.params.ref, body);
    res.json(toBackupScheduleDto(schedule, vmName, next));
  });

  router.get("/:ref/backup-schedule", async (req, res) => {
    const { schedule, vmName, next } = await deps.schedules.show(req.params.ref);
    res.json(toBackupScheduleDto(schedule, vmName, next));
  });

  router.delete("/:ref/backup-schedule", async (req, res) => {
    await deps.schedules.remove(req.params.ref);
    res.status(204).end();
  });

  router.get("/:ref/console", async (req, res) => {
    const watch = watchClient(req, res); // before the first await: a client may leave during the lookup
    const vm = await findVm(db, req.params.ref);
    const follow = req.query["follow"] === "true" || req.query["follow"] === "1";
    await streamConsole({ redis: deps.redis, prefix: deps.queuePrefix, db, vmId: vm.id, follow, req, res, watch });
  });

  return router;
}
