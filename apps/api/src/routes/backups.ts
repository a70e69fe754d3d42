import { type Request, type Router } from "express";
import { guardedRouter } from "../auth/permissions.js";
import { BackupListQuery, BackupRestoreRequest, BackupVmCreateRequest, DEFAULT_PAGE_LIMIT, type BackupList } from "@iaas/contracts";
import type { Backup, PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, sendAccepted, validate } from "../http/validate.js";
import { findBackup, type BackupService } from "../services/BackupService.js";
import { toBackupDto, toVmDto, VM_DTO_INCLUDE } from "../services/dto.js";
import { requestHash } from "../services/JobSubmitter.js";
import { NEWEST_FIRST, pageArgs, pageOf, pageResult } from "../http/paginate.js";

function meta(req: Request) {
  return { idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")), hash: requestHash(req.method, req.path, req.body) };
}

/** Backup rows as the API shows them, each saying whether its VM still exists. */
export async function backupDtos(db: PrismaClient, backups: Backup[]) {
  const vmIds = [...new Set(backups.map((b) => b.vmId))];
  const live = new Set((await db.vm.findMany({ where: { id: { in: vmIds } }, select: { id: true } })).map((v) => v.id));
  return backups.map((b) => toBackupDto(b, live.has(b.vmId)));
}

/** `/v1/backups`: list, show, verify, delete, restore in place, and a new VM from a backup. */
export function backupRoutes(deps: { db: PrismaClient; backups: BackupService }): Router {
  const { db, backups } = deps;
  const router = guardedRouter("/v1/backups");
  const one = async (id: string) => {
    const found = await db.backup.findUnique({ where: { id } });
    return found ? ((await backupDtos(db, [found]))[0] ?? null) : null;
  };
  const vmDto = async (id: string | null) => {
    const vm = await db.vm.findUnique({ where: { id: id ?? "" }, include: VM_DTO_INCLUDE });
    return vm ? toVmDto(vm) : null;
  };

  router.get("/", async (req, res) => {
    const query = validate(BackupListQuery, req.query, "backup list query");
    const page = pageOf(query.limit ?? DEFAULT_PAGE_LIMIT, query.cursor, NEWEST_FIRST);
    const { items, nextCursor } = pageResult(await backups.list(query.vm, (where) => pageArgs(where, NEWEST_FIRST, page)), NEWEST_FIRST, page);
    res.json({ items: await backupDtos(db, items), nextCursor } satisfies BackupList);
  });

  router.get("/:id", async (req, res) => {
    res.json(await one((await findBackup(db, req.params.id)).id));
  });

  router.post("/:id/verify", async (req, res) => {
    const submitted = await backups.verify(req.params.id, meta(req));
    sendAccepted(res, submitted, { backup: submitted.extra ? await one(submitted.extra.id) : null });
  });

  router.delete("/:id", async (req, res) => {
    const submitted = await backups.remove(req.params.id, meta(req));
    sendAccepted(res, submitted, { backup: submitted.extra ? await one(submitted.extra.id) : null });
  });

  router.post("/:id/restore", async (req, res) => {
    const body = validate(BackupRestoreRequest, req.body, "backup restore request");
    const submitted = await backups.restore(req.params.id, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId), backup: submitted.extra ? await one(submitted.extra.backup.id) : null });
  });

  router.post("/:id/vms", async (req, res) => {
    const body = validate(BackupVmCreateRequest, req.body, "VM from backup request");
    const submitted = await backups.createVm(req.params.id, body, meta(req));
    sendAccepted(res, submitted, { vm: await vmDto(submitted.job.vmId) });
  });

  return router;
}
