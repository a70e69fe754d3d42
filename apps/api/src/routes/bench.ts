import type { Router } from "express";
import { guardedRouter } from "../auth/permissions.js";
import { BenchNoopRequest, IaasError } from "@iaas/contracts";
import { poolOf, type PrismaClient } from "@iaas/db";
import { validate, sendAccepted } from "../http/validate.js";
import type { JobSubmitter } from "../services/JobSubmitter.js";

/**
 * The benchmark's endpoint (`npm run bench:jobs`): submits a `bench.noop` job through the same
 * submitter as every other job. Mounted only when IAAS_ENABLE_BENCH_JOBS=true.
 */
export function benchRoutes(deps: { db: PrismaClient; submitter: JobSubmitter; offlineAfterSeconds: number }): Router {
  const router = guardedRouter("/v1/bench");
  router.post("/noop", async (req, res) => {
    const body = validate(BenchNoopRequest, req.body, "bench request");
    // One plain read on the shared pool (the submit path's own reads are one or none).
    const { rows: hosts } = await poolOf(deps.db).query<{ id: string }>(
      `SELECT "id" FROM "Host" WHERE "lastHeartbeatAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $1) ORDER BY "id"`,
      [deps.offlineAfterSeconds],
    );
    const host = body.host ? hosts.find((h) => h.id === body.host) : hosts[body.n % Math.max(hosts.length, 1)];
    if (!host) throw new IaasError("NO_HOST_AVAILABLE", "no online host for the benchmark job", { hint: "start a worker" });
    const submitted = await deps.submitter.submitDirect({ hash: "" }, { type: "bench.noop", payload: { n: body.n }, hostId: host.id, targetName: `bench-${body.n}` });
    sendAccepted(res, submitted, {});
  });
  return router;
}
