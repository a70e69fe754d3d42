import type { Health, Readiness } from "@iaas/contracts";
import { Router } from "express";
import type { Redis } from "ioredis";
import type { PrismaClient } from "@iaas/db";

export function healthRoutes(deps: { db: PrismaClient; redis: Redis }): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" } satisfies Health);
  });
  router.get("/readyz", async (_req, res) => {
    const check = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        return "ok";
      } catch (err) {
        return `failed: ${(err as Error).message}`;
      }
    };
    const [postgres, redis] = await Promise.all([check(() => deps.db.$queryRaw`SELECT 1`), check(() => deps.redis.ping())]);
    const ready = postgres === "ok" && redis === "ok";
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", postgres, redis } satisfies Readiness);
  });
  return router;
}
