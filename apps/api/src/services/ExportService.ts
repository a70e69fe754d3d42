import { randomUUID } from "node:crypto";
import { currentProjectId, inProject } from "../auth/scope.js";
import { rm } from "node:fs/promises";
import path from "node:path";
import { IaasError, looksLikeUuid, type ExportRequest } from "@iaas/contracts";
import type { Export, PrismaClient } from "@iaas/db";
import type { JobSubmitter, Submitted } from "./JobSubmitter.js";
import { assertImageUsable } from "./imageUsable.js";
import { pickWorkHost } from "./pickWorkHost.js";
import { findImage, findVm } from "./resolve.js";
import { lockVm, type RequestMeta } from "./VmService.js";

function assertCompressible(req: ExportRequest): void {
  if (req.compress && req.format !== "qcow2") {
    throw new IaasError("VALIDATION_FAILED", `--compress applies to qcow2 only, not ${req.format}`, { hint: "drop --compress, or export as qcow2" });
  }
}

/**
 * Exports: an image, or a stopped VM's disk flattened to one file, converted by a job into the
 * store's export area and downloadable until it expires.
 */
export class ExportService {
  constructor(
    private readonly db: PrismaClient,
    private readonly submitter: JobSubmitter,
    private readonly store: string,
    private readonly offlineAfterSeconds: number,
    private readonly ttlSeconds: number,
  ) {}

  async exportImage(ref: string, req: ExportRequest, meta: RequestMeta): Promise<Submitted<Export>> {
    assertCompressible(req);
    return this.submitter.submit(meta, async (tx, jobId) => {
      const image = await findImage(tx, ref);
      assertImageUsable(image, `export image '${image.name}'`);
      const exportId = randomUUID();
      const created = await tx.export.create({
        data: { id: exportId, jobId, projectId: currentProjectId(), sourceType: "image", sourceId: image.id, sourceName: image.name, format: req.format, compressed: req.compress },
      });
      const hostId = await pickWorkHost(tx, this.offlineAfterSeconds);
      return {
        spec: {
          type: "image.export",
          payload: { exportId, imageId: image.id, format: req.format, compress: req.compress, ttlSeconds: this.ttlSeconds },
          hostId,
          imageId: image.id,
          targetName: image.name,
        },
        extra: created,
      };
    });
  }

  async exportVm(ref: string, req: ExportRequest, meta: RequestMeta): Promise<Submitted<Export>> {
    assertCompressible(req);
    return this.submitter.submit(meta, async (tx, jobId) => {
      const found = await lockVm(tx, await findVm(tx, ref), jobId);
      if (found.state !== "stopped") {
        throw new IaasError("INVALID_STATE", `VM '${found.name}' is ${found.state}; only a stopped VM's disk can be exported consistently`, {
          hint: `stop it first: \`iaas vm stop ${found.name} --wait\``,
        });
      }
      const exportId = randomUUID();
      const created = await tx.export.create({
        data: { id: exportId, jobId, projectId: found.projectId, sourceType: "vm", sourceId: found.id, sourceName: found.name, format: req.format, compressed: req.compress },
      });
      return {
        spec: {
          type: "vm.export",
          payload: { vmId: found.id, exportId, format: req.format, compress: req.compress, ttlSeconds: this.ttlSeconds },
          hostId: found.hostId,
          vmId: found.id,
          targetName: found.name,
        },
        extra: created,
      };
    });
  }

  async find(id: string): Promise<Export> {
    const found = looksLikeUuid(id) ? await this.db.export.findFirst({ where: { id: id.toLowerCase(), ...inProject() } }) : null;
    if (!found) throw new IaasError("NOT_FOUND", `export '${id}' not found`, { hint: "run `iaas export list`" });
    return found;
  }

  async remove(id: string): Promise<void> {
    const found = await this.find(id);
    if (found.state === "pending") {
      throw new IaasError("INVALID_STATE", `export ${found.id} is still being made by job ${found.jobId}`, { hint: `cancel it with \`iaas job cancel ${found.jobId}\`` });
    }
    if (found.path) await rm(path.join(this.store, found.path), { force: true });
    const { count } = await this.db.export.deleteMany({ where: { id: found.id } });
    if (count === 0) throw new IaasError("NOT_FOUND", `export '${id}' not found`, { hint: "it was deleted meanwhile" });
  }
}
