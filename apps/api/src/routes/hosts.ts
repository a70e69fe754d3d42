import type { Router } from "express";
import { guardedRouter } from "../auth/permissions.js";
import type { PrismaClient } from "@iaas/db";
import { toHostDto } from "../services/dto.js";
import { allocationsByHost, NO_ALLOCATION } from "../services/hostCapacity.js";

export function hostRoutes(deps: { db: PrismaClient; offlineAfterSeconds: number }): Router {
  const router = guardedRouter("/v1/hosts");
  router.get("/", async (_req, res) => {
    const [hosts, allocations] = await Promise.all([deps.db.host.findMany({ orderBy: { id: "asc" } }), allocationsByHost(deps.db)]);
    const now = new Date();
    res.json({ items: hosts.map((h) => toHostDto(h, allocations.get(h.id) ?? NO_ALLOCATION, deps.offlineAfterSeconds, now)) });
  });
  return router;
}
