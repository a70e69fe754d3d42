import { Router } from "express";
import { IaasError, metricsScrapeAllowed } from "@iaas/contracts";
import type { ApiMetrics } from "../metrics/ApiMetrics.js";

/**
 * `GET /metrics`: the Prometheus text exposition of this API process, outside /v1 (no API token,
 * no rate limit), guarded by IAAS_METRICS_TOKEN when it is set.
 */
export function metricsRoutes(deps: { metrics: ApiMetrics; token: string | undefined }): Router {
  const router = Router();
  router.get("/metrics", async (req, res) => {
    if (!metricsScrapeAllowed(req.header("authorization"), deps.token)) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="metrics"');
      throw new IaasError("UNAUTHORIZED", "this API's /metrics needs `Authorization: Bearer <IAAS_METRICS_TOKEN>`", {
        hint: "give the scraper the API's IAAS_METRICS_TOKEN (Prometheus: authorization: { credentials: ... })",
      });
    }
    const body = await deps.metrics.metrics();
    res.setHeader("Content-Type", deps.metrics.contentType);
    res.setHeader("Cache-Control", "no-store");
    res.send(body);
  });
  return router;
}
