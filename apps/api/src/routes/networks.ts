import type { Router } from "express";
import { inProject } from "../auth/scope.js";
import { guardedRouter } from "../auth/permissions.js";
import { NetworkCreateRequest, type NetworkList } from "@iaas/contracts";
import type { Prisma, PrismaClient } from "@iaas/db";
import { validate } from "../http/validate.js";
import { toNetworkDto } from "../services/dto.js";
import { NETWORK_DTO_INCLUDE, type NetworkService } from "../services/NetworkService.js";
import { findNetwork } from "../services/resolve.js";
import { BY_NAME, pageArgs, pageRequest, pageResult } from "../http/paginate.js";

export function networkRoutes(deps: { db: PrismaClient; networks: NetworkService }): Router {
  const { db, networks } = deps;
  const router = guardedRouter("/v1/networks");

  router.get("/", async (req, res) => {
    const page = pageRequest(req.query, BY_NAME);
    const rows = await db.network.findMany({ ...pageArgs<Prisma.NetworkWhereInput>(inProject(), BY_NAME, page), include: NETWORK_DTO_INCLUDE });
    const { items, nextCursor } = pageResult(rows, BY_NAME, page);
    res.json({ items: items.map(toNetworkDto), nextCursor } satisfies NetworkList);
  });

  router.post("/", async (req, res) => {
    const body = validate(NetworkCreateRequest, req.body, "network create request");
    const created = await networks.create(body);
    const network = await db.network.findUniqueOrThrow({ where: { id: created.id }, include: NETWORK_DTO_INCLUDE });
    res.status(201).location(`/v1/networks/${created.id}`).json(toNetworkDto(network));
  });

  router.get("/:ref", async (req, res) => {
    const found = await findNetwork(db, req.params.ref);
    const network = await db.network.findUniqueOrThrow({ where: { id: found.id }, include: NETWORK_DTO_INCLUDE });
    res.json(toNetworkDto(network));
  });

  router.delete("/:ref", async (req, res) => {
    await networks.delete(req.params.ref);
    res.status(204).end();
  });

  return router;
}
