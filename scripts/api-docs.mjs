#!/usr/bin/env node
// Rewrites the route table of docs/rest-api.md from the contracts' route catalog (run after `npm run build`;
// `npm run docs:api` does both). apps/api/src/openapi/routeTable.test.ts fails while the file is stale.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { withRouteTable } from "../apps/api/dist/openapi/routeTable.js";

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "docs", "rest-api.md");
const before = await readFile(file, "utf8");
const after = withRouteTable(before);
if (after === before) {
  console.log("docs/rest-api.md: route table is current");
} else {
  await writeFile(file, after);
  console.log("docs/rest-api.md: route table rewritten");
}
