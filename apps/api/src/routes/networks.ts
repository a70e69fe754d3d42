import type { Router } from "express";
import { inProject } from "../auth/scope.js";
import { guardedRouter } from "../auth/permissions.js";
import { NetworkCreateRequest, type NetworkList } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import { validate } from "../http/validate.js";
import { toNetworkDto } from "../services/dto.js";
import { NETWORK_DTO_INCLUDE, type NetworkService } from "../services/NetworkService.js";
import { findNetwork } from "../services/resolve.js";

export function networkRoutes(deps: { db: PrismaClient; networks: NetworkService }): Router {
  const { db, networks } = deps;
  const router = guardedRouter("/v1/networks");

  router.get("/", async (_req, res) => {
    const items = await db.network.findMany({ where: inProject(), include: NETWORK_DTO_INCLUDE, orderBy: { name: "asc" } });
    res.json({ items: items.map(toNetworkDto) } satisfies NetworkList);
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
