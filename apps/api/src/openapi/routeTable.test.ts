import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { API_ROUTES } from "@iaas/contracts";
import { renderRouteTable, withRouteTable } from "./routeTable.js";

const REST_API_MD = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "docs", "rest-api.md");

describe("the route table of docs/rest-api.md", () => {
  it("is the one generated from the route catalog (run `npm run docs:api` after changing a route)", async () => {
    const markdown = await readFile(REST_API_MD, "utf8");
    expect(withRouteTable(markdown)).toBe(markdown);
  });

  it("has one row per route, with the role it needs", () => {
    const rows = renderRouteTable().split("\n").filter((l) => /^\| (GET|POST|PUT|PATCH|DELETE|HEAD) \|/.test(l));
    expect(rows).toHaveLength(API_ROUTES.length);
    expect(rows).toContain(rows.find((r) => r.startsWith("| POST | `/v1/tokens` | admin |")));
    expect(rows.find((r) => r.startsWith("| GET | `/healthz` |"))).toContain("| public |");
  });
});
