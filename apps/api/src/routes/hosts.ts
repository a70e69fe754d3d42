import type { Router } from "express";
import { HostEvacuateRequest, type HostList } from "@iaas/contracts";
import { guardedRouter } from "../auth/permissions.js";
import type { Prisma, PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, validate } from "../http/validate.js";
import { toHostDto } from "../services/dto.js";
import type { HostEvacuationService } from "../services/HostEvacuationService.js";
import { allocationsByHost, NO_ALLOCATION } from "../services/hostCapacity.js";
import { hostStates, type HostThresholds } from "../services/hostLiveness.js";
import { requestHash } from "../services/JobSubmitter.js";
import { BY_ID, pageArgs, pageRequest, pageResult } from "../http/paginate.js";

export function hostRoutes(deps: { db: PrismaClient; hosts: HostThresholds; evacuations: HostEvacuationService }): Router {
  const router = guardedRouter("/v1/hosts");
  router.get("/", async (req, res) => {
    const page = pageRequest(req.query, BY_ID);
    const [rows, allocations, states] = await Promise.all([deps.db.host.findMany(pageArgs<Prisma.HostWhereInput>({}, BY_ID, page)), allocationsByHost(deps.db), hostStates(deps.db, deps.hosts)]);
    const { items, nextCursor } = pageResult(rows, BY_ID, page);
    res.json({ items: items.map((h) => toHostDto(h, allocations.get(h.id) ?? NO_ALLOCATION, states.get(h.id) ?? "lost")), nextCursor } satisfies HostList);
  });

  // Drains the host, then moves its VMs (one job each) or says why one stays; `dryRun` plans only.
  router.post("/:id/evacuate", async (req, res) => {
    const body = validate(HostEvacuateRequest, req.body ?? {}, "evacuate request");
    const meta = { idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")), hash: requestHash(req.method, req.path, req.body) };
    res.json(await deps.evacuations.evacuate(req.params.id, body.dryRun, meta));
  });
  return router;
}
