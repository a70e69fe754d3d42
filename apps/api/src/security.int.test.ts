import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_PROJECT_ID, roleAllows, type ApiToken, type AuditEvent, type Problem, type Role, type TokenCreated } from "@iaas/contracts";
import { REGISTERED_ROUTES, ROUTE_PERMISSIONS } from "./auth/permissions.js";
import { generateToken } from "./auth/tokens.js";
import { startTestApi, type TestApi } from "./testing/testApi.js";

// Tokens, roles, projects, quotas and the audit trail through the REST API with authentication
// on, against the real Postgres and Redis (no worker: jobs stay queued).
describe("security: tokens, roles, projects, quotas, audit", () => {
  let api: TestApi;
  let admin: string;
  const tokens: Record<string, string> = {};
  let projectB = "";

  beforeAll(async () => {
    api = await startTestApi({ auth: "token" });
    await api.reset();
    // The first admin token, as `npm run up` makes it: straight into the database, hashed.
    const made = generateToken();
    await api.db.apiToken.create({ data: { name: "root", prefix: made.prefix, hash: made.hash, role: "admin" } });
    admin = made.token;
    for (const p of ["alpha", "beta"]) expect((await call(admin, "POST", "/v1/projects", { name: p })).status).toBe(201);
    projectB = (await api.db.project.findUniqueOrThrow({ where: { name: "beta" } })).id;
    const specs: [string, Role, string | undefined][] = [
      ["viewer", "viewer", undefined],
      ["operator", "operator", undefined],
      ["admin2", "admin", undefined],
      ["alpha-op", "operator", "alpha"],
      ["alpha-admin", "admin", "alpha"],
    ];
    for (const [name, role, project] of specs) {
      const res = await call(admin, "POST", "/v1/tokens", { name, role, ...(project ? { project } : {}) });
      expect(res.status).toBe(201);
      tokens[name] = ((await res.json()) as TokenCreated).secret;
    }
    // Things of project beta that alpha's tokens must never see.
    const image = await api.db.image.findFirstOrThrow({ where: { name: "deb" } });
    await api.db.vm.create({ data: { name: "beta-vm", projectId: projectB, hostId: "h1", imageId: image.id, cpus: 1, memoryBytes: 268435456n, diskBytes: 1073741824n, state: "stopped" } });
    await api.db.network.create({ data: { name: "beta-net", projectId: projectB, subnet: "10.201.0.0/24", gateway: "10.201.0.1", mtu: 1450, dnsDomain: "iaas.internal" } });
    await api.db.image.create({ data: { name: "beta-img", projectId: projectB, state: "ready", sourceFormat: "qcow2", virtualSize: 1073741824n, storedSize: 1000n, sha256: "1".repeat(64), path: "images/b.qcow2" } });
  }, 60_000);
  // No worker heartbeats the test host: keep it online as one would, since a slow test before
  // may take longer than the offline threshold (30 s) and placement would then find no host.
  beforeEach(async () => {
    await api.db.host.updateMany({ data: { lastHeartbeatAt: new Date() } });
  });

  afterAll(async () => {
    await api?.close();
  });

  function call(token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${api.base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  }
  const problem = async (res: Response) => (await res.json()) as Problem;

  it("answers 401 with a hint without a token, with a wrong one, a revoked one and an expired one", async () => {
    const none = await call(null, "GET", "/v1/vms");
    expect(none.status).toBe(401);
    expect((await problem(none)).hint).toMatch(/iaas login/);
    const forged = `${admin.slice(0, -4)}AAAA`;
    expect((await call(forged, "GET", "/v1/vms")).status).toBe(401);
    const res = await call(admin, "POST", "/v1/tokens", { name: "short-lived", role: "viewer", expires: "1h" });
    const created = (await res.json()) as TokenCreated;
    expect(created.token).toMatchObject({ name: "short-lived", role: "viewer", project: null });
    expect(created.token.expiresAt).not.toBeNull();
    // Only a hash is stored, never the secret.
    const row = await api.db.apiToken.findUniqueOrThrow({ where: { name: "short-lived" } });
    expect(JSON.stringify(row)).not.toContain(created.secret.split("_")[2]);
    expect((await call(created.secret, "GET", "/v1/vms")).status).toBe(200);
    const listed = ((await (await call(admin, "GET", "/v1/tokens")).json()) as { items: ApiToken[] }).items.find((t) => t.name === "short-lived");
    expect(listed?.lastUsedAt).not.toBeNull();
    await api.db.apiToken.update({ where: { id: row.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const expired = await call(created.secret, "GET", "/v1/vms");
    expect(expired.status).toBe(401);
    expect((await problem(expired)).detail).toMatch(/expired/);
    await api.db.apiToken.update({ where: { id: row.id }, data: { expiresAt: null } });
    expect((await call(admin, "DELETE", "/v1/tokens/short-lived")).status).toBe(204);
    const revoked = await call(created.secret, "GET", "/v1/vms");
    expect(revoked.status).toBe(401);
    expect((await problem(revoked)).detail).toMatch(/revoked/);
  });

  it("every registered route has a rule, and every rule a route", () => {
    const registered = [...REGISTERED_ROUTES].sort();
    expect(registered.filter((r) => ROUTE_PERMISSIONS[r] === undefined)).toEqual([]);
    // The bench route is mounted only for `npm run bench:jobs`.
    expect(Object.keys(ROUTE_PERMISSIONS).filter((r) => !REGISTERED_ROUTES.has(r) && r !== "POST /v1/bench/noop")).toEqual([]);
  });

  // Parameters naming nothing: an allowed role gets past authorization (to 404/400/409…).
  const fill = (route: string, values: Record<string, string>) => route.replace(/:(\w+)/g, (_m, name: string) => values[name] ?? "nothing-here");
  const bodyFor = (method: string) => (method === "GET" || method === "HEAD" || method === "DELETE" ? undefined : {});

  it("authorization matrix: each route × role is 403 exactly when the role may not", async () => {
    const roles: [string, Role, boolean][] = [
      ["viewer", "viewer", false],
      ["operator", "operator", false],
      ["admin2", "admin", false],
      ["alpha-admin", "admin", true],
    ];
    const wrong: string[] = [];
    for (const [route, permission] of Object.entries(ROUTE_PERMISSIONS)) {
      if (!REGISTERED_ROUTES.has(route)) continue;
      const [method = "GET", path = ""] = route.split(" ");
      for (const [token, role, scoped] of roles) {
        const allowed = roleAllows(role, permission) && !(permission === "admin" && scoped);
        const res = await call(tokens[token] ?? "", method, fill(path, { id: "00000000-0000-4000-8000-00000000dead" }), bodyFor(method));
        if (res.status === 401 || (res.status === 403) === allowed) wrong.push(`${route} as ${token}: ${res.status}`);
        await res.body?.cancel();
      }
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it("a project's token finds nothing of another project: answered as a missing one (404), never 403", async () => {
    const alpha = tokens["alpha-op"] ?? "";
    const job = await api.db.job.create({ data: { type: "vm_start", projectId: projectB, hostId: "h1", targetName: "beta-vm", payload: {}, maxAttempts: 1, timeoutMs: 1000 } });
    const values = { ref: "beta-vm", id: job.id, name: "x", nic: "0", hostPort: "2222" };
    const leaks: string[] = [];
    for (const [route, permission] of Object.entries(ROUTE_PERMISSIONS)) {
      if (!REGISTERED_ROUTES.has(route) || permission === "admin" || !route.includes(":")) continue;
      const [method = "GET", path = ""] = route.split(" ");
      const base = path.split("/")[2];
      const target = base === "images" ? { ...values, ref: "beta-img" } : base === "networks" ? { ...values, ref: "beta-net" } : base === "projects" ? { ...values, ref: "beta" } : values;
      const res = await call(alpha, method, fill(path, target), bodyFor(method));
      const absent = await call(alpha, method, fill(path, { ref: "no-such-thing", id: "00000000-0000-4000-8000-00000000dead", name: "x", nic: "0", hostPort: "2222" }), bodyFor(method));
      // The other project's thing answers exactly as a missing one: 404, or 400 when the (empty) body is judged first.
      if (res.status !== absent.status || (res.status !== 404 && res.status !== 400)) leaks.push(`${route}: ${res.status} (missing: ${absent.status})`);
      await Promise.all([res.body?.cancel(), absent.body?.cancel()]);
    }
    expect(leaks).toEqual([]);
    const other = await problem(await call(alpha, "GET", "/v1/vms/beta-vm"));
    const missing = await problem(await call(alpha, "GET", "/v1/vms/no-such-vm"));
    expect(other.detail.replace("beta-vm", "X")).toBe(missing.detail.replace("no-such-vm", "X"));
    const list = (await (await call(alpha, "GET", "/v1/vms")).json()) as { items: { name: string }[] };
    expect(list.items.map((v) => v.name)).not.toContain("beta-vm");
    // Nor can it reach there by naming the project.
    expect((await call(alpha, "GET", "/v1/vms", undefined, { "x-iaas-project": "beta" })).status).toBe(404);
    // An unscoped admin can, with the project header.
    const asAdmin = (await (await call(admin, "GET", "/v1/vms", undefined, { "x-iaas-project": "beta" })).json()) as { items: { name: string }[] };
    expect(asAdmin.items.map((v) => v.name)).toEqual(["beta-vm"]);
  }, 60_000);

  it("a quota of 5 VMs lets exactly 5 of 20 parallel creates through, naming the quota", async () => {
    expect((await call(admin, "PUT", "/v1/projects/alpha/quota", { vms: 5, memory: "4G" })).status).toBe(200);
    // alpha uses default's image only once an admin makes it public.
    expect((await call(tokens["alpha-op"] ?? "", "POST", "/v1/vms", { name: "nope", image: "deb", networks: [] })).status).toBe(404);
    expect((await call(admin, "PATCH", "/v1/images/deb", { public: true })).status).toBe(200);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(tokens["alpha-op"] ?? "", "POST", "/v1/vms", { name: `q${i}`, image: "deb", memory: "256M", networks: [] })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(5);
    expect(statuses.filter((s) => s === 409)).toHaveLength(15);
    const refused = await problem(results[statuses.indexOf(409)] as Response);
    expect(refused.code).toBe("QUOTA_EXCEEDED");
    expect(refused.detail).toMatch(/quota vms \(VMs\) of project 'alpha' is 5: 5 in use, this needs 1 more/);
    const shown = (await (await call(admin, "GET", "/v1/projects/alpha")).json()) as { usage: { vms: number }; quota: { vms: number } };
    expect([shown.usage.vms, shown.quota.vms]).toEqual([5, 5]);
    const dry = (await (await call(tokens["alpha-op"] ?? "", "POST", "/v1/vms", { name: "dry", image: "deb", networks: [], dryRun: true })).json()) as { quota: string[] };
    expect(dry.quota?.[0], JSON.stringify(dry)).toMatch(/quota vms/);
  }, 60_000);

  it("records who did what: jobs carry their actor; allowed and denied requests are in the audit trail, which cannot be changed", async () => {
    const job = await api.db.job.findFirstOrThrow({ where: { type: "vm_create", targetName: "q0" } }).catch(async () => api.db.job.findFirstOrThrow({ where: { type: "vm_create" } }));
    expect(job.actorName).toBe("alpha-op");
    expect(job.projectId).not.toBe(DEFAULT_PROJECT_ID);
    const denied = await call(tokens["viewer"] ?? "", "POST", "/v1/vms", { name: "v", image: "deb" }, { "user-agent": "audit-test/1.0" });
    expect(denied.status).toBe(403);
    await new Promise((r) => setTimeout(r, 200));
    const res = await call(admin, "GET", "/v1/audit?limit=1000");
    const items = ((await res.json()) as { items: AuditEvent[] }).items;
    const mine = items.find((a) => a.actorName === "viewer" && a.outcome === "denied" && a.method === "POST");
    expect(mine).toMatchObject({ status: 403, userAgent: "audit-test/1.0", project: "default" });
    expect(mine?.detail).toMatch(/FORBIDDEN/);
    expect(mine?.sourceAddress).toMatch(/127\.0\.0\.1/);
    const created = items.find((a) => a.actorName === "alpha-op" && a.outcome === "allowed" && a.jobId !== null);
    expect(created).toMatchObject({ action: "vm.create", project: "alpha" });
    expect(items.some((a) => a.actorName === "anonymous" && a.status === 401)).toBe(true);
    const byActor = ((await (await call(admin, "GET", "/v1/audit?actor=viewer")).json()) as { items: AuditEvent[] }).items;
    expect(byActor.every((a) => a.actorName === "viewer")).toBe(true);
    await expect(api.db.auditEvent.updateMany({ data: { status: 200 } })).rejects.toThrow(/append-only/);
    await expect(api.db.auditEvent.deleteMany()).rejects.toThrow(/append-only/);
  }, 60_000);
});
