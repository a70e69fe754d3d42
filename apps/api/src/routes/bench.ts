import type { Router } from "express";
import { guardedRouter } from "../auth/permissions.js";
import { BenchNoopRequest, IaasError } from "@iaas/contracts";
import type { PrismaClient } from "@iaas/db";
import { validate, sendAccepted } from "../http/validate.js";
import type { JobSubmitter } from "../services/JobSubmitter.js";
import { hostAges } from "../services/hostLiveness.js";

/**
 * The benchmark's endpoint (`npm run bench:jobs`): submits a `bench.noop` job through the same
 * submitter as every other job. Mounted only when IAAS_ENABLE_BENCH_JOBS=true.
 */
export function benchRoutes(deps: { db: PrismaClient; submitter: JobSubmitter; offlineAfterSeconds: number }): Router {
  const router = guardedRouter("/v1/bench");
  router.post("/noop", async (req, res) => {
    const body = validate(BenchNoopRequest, req.body, "bench request");
    const ages = await hostAges(deps.db);
    const hosts = (await deps.db.host.findMany({ orderBy: { id: "asc" } })).filter((h) => (ages.get(h.id) ?? Infinity) <= deps.offlineAfterSeconds);
    const host = body.host ? hosts.find((h) => h.id === body.host) : hosts[body.n % Math.max(hosts.length, 1)];
    if (!host) throw new IaasError("NO_HOST_AVAILABLE", "no online host for the benchmark job", { hint: "start a worker" });
    const submitted = await deps.submitter.submit({ hash: "" }, async () => ({
      spec: { type: "bench.noop", payload: { n: body.n }, hostId: host.id, targetName: `bench-${body.n}` },
      extra: null,
    }));
    sendAccepted(res, submitted, {});
  });
  return router;
}
