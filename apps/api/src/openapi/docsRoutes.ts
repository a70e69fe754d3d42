import path from "node:path";
import { createRequire } from "node:module";
import express, { Router } from "express";
import { openApiDocument } from "./openApiDocument.js";

/** Where swagger-ui-dist keeps its built files (served under /docs/assets: no CDN). */
function swaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
}

/** The page's own script (not inline, so the page's CSP can forbid inline scripts). */
const INIT_JS = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Minimal IaaS Manager API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

/** The page loads its scripts, styles and the document from this API only. */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/**
 * `GET /openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (a browsable page, Swagger UI
 * from the swagger-ui-dist package). Public, like /healthz: they describe the API and hold no data.
 */
export function docsRoutes(): Router {
  const router = Router();
  router.get("/openapi.json", (_req, res) => {
    res.setHeader("Cache-Control", "no-cache");
    res.json(openApiDocument());
  });
  router.get("/docs", (_req, res) => {
    res.setHeader("Content-Security-Policy", PAGE_CSP);
    res.type("html").send(PAGE);
  });
  router.get("/docs/init.js", (_req, res) => {
    res.type("text/javascript").send(INIT_JS);
  });
  router.use("/docs/assets", express.static(swaggerUiDir(), { index: false, fallthrough: true, maxAge: "1h" }));
  return router;
}
