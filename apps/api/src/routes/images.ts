import { Router, type Request } from "express";
import { ImageCreateRequest } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import { idempotencyKeyOf, sendAccepted, validate } from "../http/validate.js";
import { toImageDto } from "../services/dto.js";
import type { ImageService } from "../services/ImageService.js";
import { requestHash } from "../services/JobSubmitter.js";
import { findImage } from "../services/resolve.js";

const withUsers = { vms: { select: { id: true, name: true } } } as const;

export function imageRoutes(deps: { db: PrismaClient; images: ImageService }): Router {
  const { db, images } = deps;
  const router = Router();

  router.get("/", async (_req, res) => {
    const items = await db.image.findMany({ include: withUsers, orderBy: { name: "asc" } });
    res.json({ items: items.map(toImageDto) });
  });

  router.post("/", async (req, res) => {
    const body = validate(ImageCreateRequest, req.body, "image create request");
    const image = await images.create(body);
    res.status(201).location(`/v1/images/${image.id}`).json(toImageDto(image));
  });

  router.get("/:ref", async (req, res) => {
    const image = await findImage(db, req.params.ref);
    res.json(toImageDto(await db.image.findUniqueOrThrow({ where: { id: image.id }, include: withUsers })));
  });

  router.put("/:ref/file", async (req: Request<{ ref: string }>, res) => {
    const length = req.header("content-length");
    const key = idempotencyKeyOf(req.header("idempotency-key"));
    const submitted = await images.upload(req.params.ref, req, length === undefined ? null : Number(length), {
      idempotencyKey: key,
      hash: requestHash(req.method, req.path, { contentLength: length ?? null }),
    });
    const image = await db.image.findUniqueOrThrow({ where: { id: submitted.job.imageId ?? "" }, include: withUsers });
    sendAccepted(res, submitted, { image: toImageDto(image) });
  });

  router.delete("/:ref", async (req, res) => {
    const submitted = await images.remove(req.params.ref, {
      idempotencyKey: idempotencyKeyOf(req.header("idempotency-key")),
      hash: requestHash(req.method, req.path, null),
    });
    const image = await db.image.findUnique({ where: { id: submitted.job.imageId ?? "" }, include: withUsers });
    sendAccepted(res, submitted, { image: image ? toImageDto(image) : null });
  });

  return router;
}
