import { Router, type Request, type Response } from "express";
import type { Redis } from "ioredis";
import { ExportRequest, VmCreateRequest, VmStopRequest } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, sendAccepted, validate } from "../http/validate.js";
import { toExportDto, toVmDto } from "../services/dto.js";
import type { ExportService } from "../services/ExportService.js";
import { requestHash } from "../services/JobSubmitter.js";
import { findVm } from "../services/resolve.js";
import type { VmAction, VmService } from "../services/VmService.js";
import { streamConsole } from "./console.js";

function meta(req: Request) {
  return { idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")), hash: requestHash(req.method, req.path, req.body) };
}

export function vmRoutes(deps: { db: PrismaClient; vms: VmService; exports: ExportService; redis: Redis; queuePrefix: string }): Router {
  const { db, vms } = deps;
  const router = Router();

  router.get("/", async (_req, res) => {
    const items = await db.vm.findMany({ include: { image: { select: { name: true } } }, orderBy: { name: "asc" } });
    res.json({ items: items.map(toVmDto) });
  });

  router.post("/", async (req, res) => {
    const body = validate(VmCreateRequest, req.body, "VM create request");
    if (body.dryRun) {
      res.json(await vms.dryRun(body));
      return;
    }
    const submitted = await vms.create(body, meta(req));
    const vm = await db.vm.findUnique({ where: { id: submitted.job.vmId ?? "" }, include: { image: { select: { name: true } } } });
    sendAccepted(res, submitted, { vm: vm ? toVmDto(vm) : null });
  });

  router.get("/:ref", async (req, res) => {
    const vm = await findVm(db, req.params.ref);
    const image = await db.image.findUnique({ where: { id: vm.imageId }, select: { name: true } });
    res.json(toVmDto({ ...vm, image }));
  });

  const action = (name: VmAction) => async (req: Request<{ ref: string }>, res: Response) => {
    const stop = name === "stop" ? validate(VmStopRequest, req.body, "VM stop request") : undefined;
    const submitted = await vms.act(req.params.ref, name, meta(req), stop);
    const vm = await db.vm.findUnique({ where: { id: submitted.job.vmId ?? "" }, include: { image: { select: { name: true } } } });
    sendAccepted(res, submitted, { vm: vm ? toVmDto(vm) : null });
  };
  router.post("/:ref/start", action("start"));
  router.post("/:ref/stop", action("stop"));
  router.post("/:ref/reboot", action("reboot"));
  router.delete("/:ref", action("delete"));

  router.post("/:ref/export", async (req, res) => {
    const body = validate(ExportRequest, req.body, "export request");
    const submitted = await deps.exports.exportVm(req.params.ref, body, meta(req));
    const created = await db.export.findUniqueOrThrow({ where: { jobId: submitted.job.id } });
    sendAccepted(res, submitted, { export: toExportDto(created) });
  });

  router.get("/:ref/console", async (req, res) => {
    const vm = await findVm(db, req.params.ref);
    const follow = req.query["follow"] === "true" || req.query["follow"] === "1";
    await streamConsole({ redis: deps.redis, prefix: deps.queuePrefix, db, vmId: vm.id, follow, req, res });
  });

  return router;
}
