import type { Router } from "express";
import { inProject } from "../auth/scope.js";
import { guardedRouter } from "../auth/permissions.js";
import path from "node:path";
import { IaasError, type ExportList } from "@iaas/contracts";
import type { Prisma, PrismaClient } from "@iaas/db";
import { toExportDto } from "../services/dto.js";
import type { ExportService } from "../services/ExportService.js";
import { NEWEST_FIRST, pageArgs, pageRequest, pageResult } from "../http/paginate.js";

export function exportRoutes(deps: { db: PrismaClient; exports: ExportService; store: string }): Router {
  const router = guardedRouter("/v1/exports");

  router.get("/", async (req, res) => {
    const page = pageRequest(req.query, NEWEST_FIRST);
    const { items, nextCursor } = pageResult(await deps.db.export.findMany(pageArgs<Prisma.ExportWhereInput>(inProject(), NEWEST_FIRST, page)), NEWEST_FIRST, page);
    res.json({ items: items.map(toExportDto), nextCursor } satisfies ExportList);
  });

  router.get("/:id", async (req, res) => {
    res.json(toExportDto(await deps.exports.find(req.params.id)));
  });

  // The file, with Range, ETag and HEAD from express' sendFile; the checksum in headers so a
  // client can verify what it assembled from several ranges.
  router.get("/:id/file", async (req, res, next) => {
    const found = await deps.exports.find(req.params.id);
    if (found.state === "expired") {
      throw new IaasError("EXPORT_EXPIRED", `export ${found.id} expired at ${found.expiresAt?.toISOString()}`, {
        hint: `export again: \`iaas ${found.sourceType} export ${found.sourceName} --format ${found.format} --to PATH\``,
      });
    }
    if (found.state !== "ready" || !found.path || !found.sha256) {
      throw new IaasError("INVALID_STATE", `export ${found.id} is ${found.state}`, { hint: `wait for job ${found.jobId}: \`iaas job wait ${found.jobId}\`` });
    }
    res.setHeader("X-Checksum-Sha256", found.sha256);
    res.setHeader("Digest", `sha-256=${Buffer.from(found.sha256, "hex").toString("base64")}`);
    const ext = found.format === "vpc" ? "vhd" : found.format;
    res.attachment(`${found.sourceName}.${ext}`);
    res.sendFile(path.join(deps.store, found.path), { acceptRanges: true, etag: true, lastModified: true, dotfiles: "allow" }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });

  router.delete("/:id", async (req, res) => {
    await deps.exports.remove(req.params.id);
    res.status(204).end();
  });

  return router;
}
