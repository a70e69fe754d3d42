import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { MAX_PAGE_LIMIT } from "@iaas/contracts";
import { startTestApi, type TestApi } from "../../api/src/testing/testApi.js";
import { runIaas } from "./testing/runIaas.js";

// Cursor paging of the list endpoints, and the CLI's --limit / --all / -o yaml, against the real
// API on a real Postgres (no worker: created VMs stay `creating`, which is all a list needs).
describe("cursor pagination", () => {
  let api: TestApi;

  const getJson = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${api.base}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** Every item of a list, page by page, as a client following nextCursor sees it. */
  const walk = async (path: string, limit: number): Promise<{ names: string[]; pages: number }> => {
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const { status, body } = await getJson(`${path}${sep}limit=${limit}${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(status).toBe(200);
      const items = body["items"] as { name?: string; id: string }[];
      expect(items.length).toBeLessThanOrEqual(limit);
      names.push(...items.map((i) => i.name ?? i.id));
      cursor = body["nextCursor"] as string | null;
      pages++;
    } while (cursor !== null);
    return { names, pages };
  };

  beforeAll(async () => {
    api = await startTestApi();
    await api.reset();
    for (let i = 0; i < 7; i++) {
      const res = await api.post("/v1/vms", { name: `vm${i}`, image: "deb", memory: "128M", disk: "1G", network: false });
      expect(res.status).toBe(202);
    }
    for (let i = 0; i < 5; i++) expect((await api.post("/v1/projects", { name: `team-${i}` })).status).toBe(201);
    for (let i = 2; i <= 6; i++) {
      await api.db.host.create({ data: { id: `h${i}`, name: `h${i}`, cpus: 4, memoryBytes: 1024n ** 3n, diskBytes: 1024n ** 3n, accelerator: "tcg" } });
    }
  }, 120_000);

  afterAll(async () => {
    await api?.close();
  });

  it("pages every list in a stable order with an opaque cursor, nextCursor null on the last page", async () => {
    const vms = await walk("/v1/vms", 3);
    expect(vms).toEqual({ names: ["vm0", "vm1", "vm2", "vm3", "vm4", "vm5", "vm6"], pages: 3 });
    const jobs = await walk("/v1/jobs", 2);
    expect(jobs.names).toHaveLength(7);
    expect(new Set(jobs.names).size).toBe(7);
    expect((await walk("/v1/hosts", 2)).names).toEqual(["h1", "h2", "h3", "h4", "h5", "h6"]);
    expect((await walk("/v1/projects", 2)).names).toEqual(["default", "team-0", "team-1", "team-2", "team-3", "team-4"]);
    for (const path of ["/v1/images", "/v1/networks", "/v1/exports", "/v1/backups", "/v1/tokens", "/v1/audit", "/v1/vms/vm0/snapshots", "/v1/vms/vm0/ports"]) {
      const { status, body } = await getJson(`${path}?limit=1`);
      expect(status, path).toBe(200);
      expect(body, path).toHaveProperty("nextCursor");
    }
    const first = await getJson("/v1/vms?limit=3");
    expect(first.body["nextCursor"]).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("neither repeats nor skips an item when one is added before the cursor between pages", async () => {
    const first = await getJson("/v1/vms?limit=4");
    expect((first.body["items"] as { name: string }[]).map((v) => v.name)).toEqual(["vm0", "vm1", "vm2", "vm3"]);
    expect((await api.post("/v1/vms", { name: "vm00", image: "deb", memory: "128M", disk: "1G", network: false })).status).toBe(202);
    const next = await getJson(`/v1/vms?limit=4&cursor=${encodeURIComponent(first.body["nextCursor"] as string)}`);
    expect((next.body["items"] as { name: string }[]).map((v) => v.name)).toEqual(["vm4", "vm5", "vm6"]);
    expect(next.body["nextCursor"]).toBeNull();
  });

  it("answers 400 with a hint for a limit out of range, not a number, or a cursor it did not make", async () => {
    for (const query of [`limit=${MAX_PAGE_LIMIT + 1}`, "limit=0", "limit=ten", "cursor=bm90LWEtY3Vyc29y", "cursor=%21%21"]) {
      const { status, body } = await getJson(`/v1/vms?${query}`);
      expect(status, query).toBe(400);
      expect(body["code"], query).toBe("VALIDATION_FAILED");
      expect(String(body["detail"] ?? body["title"]), query).toMatch(/limit must be an integer from 1 to 1000|cursor/);
      expect(body["hint"], query).toBeTruthy();
    }
  });

  it("iaas vm list --limit shows one page and says more follow; --all follows every cursor", async () => {
    const page = await runIaas(["vm", "list", "--limit", "2", "-o", "json"], api.base);
    expect(page.code).toBe(0);
    const parsed = JSON.parse(page.stdout) as { items: { name: string }[]; nextCursor: string };
    expect(parsed.items.map((v) => v.name)).toEqual(["vm0", "vm00"]);
    expect(parsed.nextCursor).toEqual(expect.any(String));
    expect(page.stderr).toContain("add --all");

    const all = await runIaas(["vm", "list", "--all", "--limit", "3"], api.base);
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split("\n").slice(1).map((line) => line.split(/\s+/)[0])).toEqual(["vm0", "vm00", "vm1", "vm2", "vm3", "vm4", "vm5", "vm6"]);
    expect(all.stderr).not.toContain("add --all");

    for (const argv of [["host", "list"], ["project", "list"], ["job", "list"], ["image", "list"], ["network", "list"], ["export", "list"], ["backup", "list"], ["token", "list"], ["audit", "list"], ["vm", "snapshot", "list", "vm0"], ["vm", "port", "list", "vm0"]]) {
      const run = await runIaas([...argv, "--all", "--limit", "1", "-o", "json"], api.base);
      expect(run.code, argv.join(" ")).toBe(0);
      expect(JSON.parse(run.stdout), argv.join(" ")).not.toHaveProperty("nextCursor");
    }
    const hosts = await runIaas(["host", "list", "--all", "--limit", "4", "-o", "json"], api.base);
    expect((JSON.parse(hosts.stdout) as { items: unknown[] }).items).toHaveLength(6);
    expect((await runIaas(["vm", "list", "--limit", "1001"], api.base)).code).toBe(2);
  });

  it("prints the same data as YAML with -o yaml", async () => {
    const json = await runIaas(["project", "list", "--all", "-o", "json"], api.base);
    const yaml = await runIaas(["project", "list", "--all", "-o", "yaml"], api.base);
    expect(yaml.code).toBe(0);
    expect(yaml.stdout).toMatch(/^items:\n {2}- /);
    expect(parseYaml(yaml.stdout)).toEqual(JSON.parse(json.stdout));
    const show = await runIaas(["vm", "show", "vm1", "-o", "yaml"], api.base);
    expect((parseYaml(show.stdout) as { name: string }).name).toBe("vm1");
  });
});
